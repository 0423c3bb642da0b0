"""pydeseq2 wrapper: agreement with R DESeq2 1.38.3 Wald test, size-factor choice, determinism."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.de import call_degs, run_de
from helpers.methods.pydeseq2 import RESULT_COLUMNS, run_deseq2, size_factor_type

REF = Path(__file__).parent / "data" / "reference"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,sheet,covariate", [("counts_nobatch", "samples_nobatch.csv", None), ("counts_batch", "samples.csv", "batch")]
)
def test_deseq2_matches_r(name, sheet, covariate):
    counts = pd.read_csv(REF / "fixture" / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / "fixture" / sheet, index_col=0)
    tab = run_de(counts, samples, method="deseq2-pydeseq2", covariate=covariate)
    r = pd.read_csv(REF / "r_outputs" / name / "deseq2.tsv.gz", sep="\t", index_col=0)
    assert list(tab.index) == list(r.index)  # same filterByExpr genes
    # measured: Pearson(stat) 0.999997-1.0, baseMean rel diff ~1e-15, median rel diff of stat ~2e-4
    assert np.corrcoef(tab["stat"], r["stat"])[0, 1] >= 0.999
    np.testing.assert_allclose(tab["baseMean"], r["baseMean"], rtol=1e-9)
    assert np.corrcoef(tab["logFC"], r["log2FoldChange"])[0, 1] >= 0.9999
    ours = set(call_degs(tab).query("direction != 'ns'").index)
    theirs = set(
        call_degs(r.rename(columns={"log2FoldChange": "logFC", "pvalue": "P.Value"})).query("direction != 'ns'").index
    )
    jaccard = len(ours & theirs) / len(ours | theirs)
    assert jaccard >= 0.9, f"DEG Jaccard {jaccard:.3f} ({len(ours)} vs {len(theirs)})"


def small_counts(seed=0, zeros=False):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(5, 200, size=(60, 1)) * np.array([1, 1.2, 0.8, 1, 1.1, 0.9, 1, 1.3])
    mu[:10, :4] *= 3  # 10 genes higher in CR
    counts = rng.poisson(rng.gamma(5, mu / 5))
    if zeros:
        counts[np.arange(60), np.arange(60) % 8] = 0  # every gene has a zero
    cols = [f"S{j}" for j in range(8)]
    samples = pd.DataFrame({"response": ["CR"] * 4 + ["NR"] * 4, "cohort": list("ABABABAB")}, index=cols)
    return pd.DataFrame(counts, index=[f"g{i}" for i in range(60)], columns=cols), samples


def test_small_run_is_deterministic_and_schema():
    counts, samples = small_counts()
    a = run_deseq2(counts, samples)
    b = run_deseq2(counts, samples)
    assert list(a.columns) == RESULT_COLUMNS and list(a.index) == list(counts.index)
    pd.testing.assert_frame_equal(a, b)
    assert (a["log2FoldChange"].iloc[:10] > 0.8).mean() > 0.8  # CR higher by log2(3)
    with_cov = run_deseq2(counts, samples, covariate="cohort")
    assert np.corrcoef(with_cov["stat"], a["stat"])[0, 1] > 0.9


def test_poscounts_when_every_gene_has_a_zero():
    counts, samples = small_counts(zeros=True)
    assert size_factor_type(counts) == "poscounts"
    assert size_factor_type(counts + 1) == "ratio"
    res = run_deseq2(counts, samples)
    assert np.isfinite(res["stat"]).all()


def test_run_de_deseq2_schema():
    counts, samples = small_counts()
    tab = run_de(counts, samples, method="deseq2", filter=False)
    assert list(tab.columns) == ["logFC", "AveExpr", "stat", "P.Value", "adj.P.Val", "baseMean", "lfcSE"]
    np.testing.assert_allclose(tab["AveExpr"], np.log2(tab["baseMean"]))
