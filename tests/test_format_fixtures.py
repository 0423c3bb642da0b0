"""The real-format cohorts of tests/data/formats/ (scripts/make_format_fixtures.py) are what their
README says, pass chapter 01's checks, and regenerate byte for byte."""

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.analysis import signature as S
from helpers.analysis.expression import log_expression
from helpers.data import cohort as C
from helpers.methods import pam

ROOT = Path(__file__).resolve().parents[1]
FMT = ROOT / "tests" / "data" / "formats"
FILES = ["array_logexpr.tsv.gz", "array_samples.tsv", "null_counts_featurecounts.tsv.gz", "null_samples.tsv"]

ARRAY = {
    "dataset": "custom",
    "custom": {
        "table": str(FMT / "array_logexpr.tsv.gz"),
        "sample_sheet": str(FMT / "array_samples.tsv"),
        "kind": "logexpr",
    },
}
NULL = {
    "dataset": "custom",
    "custom": {"table": str(FMT / "null_counts_featurecounts.tsv.gz"), "sample_sheet": str(FMT / "null_samples.tsv")},
}


def test_fixtures_are_small():
    assert sum((FMT / f).stat().st_size for f in FILES) < 300_000


def test_array_cohort_misses_half_the_signature():
    coh = C.build_cohort(ARRAY)
    assert coh.kind == "logexpr" and coh.counts.shape == (2000, 24)
    rep = coh.meta["harmonize"]
    assert rep["n_duplicates_merged"] == 12 and rep["n_symbols_updated"] == 33  # 30 genes + 3 signature genes
    assert coh.meta["checks"]["n_per_class"] == {"CR": 16, "NR": 8} and coh.meta["checks"]["loocv"] == "nested"
    m = S.map_model("published", coh.counts.index)
    assert m.status == "not measured" and m.reason.startswith("not measured: 7 of 14 signature genes absent")
    t = m.table.set_index("model_gene")
    assert t.loc["CCDC155", "cohort_gene"] == "KASH5" and t.loc["CCDC155", "how"] == "current symbol"
    assert t.loc["NKAIN4", "how"] == "exact"  # C20orf58 in the file, NKAIN4 after harmonisation


def test_null_cohort_pamr_rule_lands_on_the_null_classifier():
    coh = C.build_cohort(NULL)
    assert coh.kind == "counts" and coh.counts.shape == (1200, 20)
    assert coh.meta["dropped_columns"] == ["Chr", "Start", "End", "Strand", "Length"]
    assert coh.meta["harmonize"]["n_version_stripped"] == 1200
    m = S.map_model("published", coh.counts.index)
    assert m.status == "complete" and m.renamed == {"CCDC155": "KASH5"}
    X = log_expression(coh, scale="logcpm")
    y = coh.samples.loc[X.columns, "response"].astype(str).to_numpy()
    fit = pam.train(X, y, classes=["CR", "NR"])
    cv = pam.cv(X, y, fit)
    idx, _ = pam.choose_threshold(cv)
    assert cv.n_genes[idx] == 0  # pamr's rule keeps no gene: no signature
    assert cv.errors[cv.n_genes > 0].min() >= cv.errors[idx]


@pytest.mark.slow
def test_fixtures_regenerate_identically(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_format_fixtures.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for f in FILES:
        assert filecmp.cmp(tmp_path / f, FMT / f, shallow=False), f
