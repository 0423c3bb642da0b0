"""Gene-ID harmonization with the shipped annotation table (data/annotation/)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import annotation as A
from helpers.engine.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_table_shape_and_known_genes():
    ann = A.load_annotation()
    assert list(ann.columns) == ["entrez_id", "symbol", "ensembl_id", "gene_type"]
    assert ann["entrez_id"].nunique() > 70000
    tp53 = ann[ann.symbol == "TP53"]
    assert set(tp53.entrez_id) == {"7157"} and "ENSG00000141510" in set(tp53.ensembl_id)
    assert len(A.protein_coding_symbols(ann)) > 19000
    # rows sorted (entrez_id numeric, ensembl_id) as the build script promises
    key = list(zip(ann.entrez_id.astype(int), ann.ensembl_id, ann.symbol))
    assert key == sorted(key)


def test_shipped_files_are_deterministic_gzip():
    raw = (ROOT / "data/annotation/genes.tsv.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime = 0
    prov = (ROOT / "data/annotation/PROVENANCE.md").read_text()
    import hashlib

    assert hashlib.sha256(raw).hexdigest() in prov
    assert "2022-Sep12" in prov and "r-bioc-org.hs.eg.db" in prov


@pytest.mark.skipif(
    not Path("/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite").exists(),
    reason="Debian r-bioc-org.hs.eg.db not installed",
)
def test_build_script_reproduces_shipped_table(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_annotation.py"), "--outdir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for f in ("genes.tsv.gz", "aliases.tsv.gz", "programs.tsv"):
        assert (tmp_path / f).read_bytes() == (ROOT / "data/annotation" / f).read_bytes(), f


def test_strip_version_and_detect():
    ids = ["ENSG00000141510.17", "ENSG00000141510", "ENSG00000002586.20_PAR_Y", "TP53"]
    assert A.strip_version(ids) == ["ENSG00000141510", "ENSG00000141510", "ENSG00000002586", "TP53"]
    assert A.detect_id_type(ids[:3]) == "ensembl"
    assert A.detect_id_type(["7157", "1", "TP53"]) == "entrez"
    assert A.detect_id_type(["TP53", "CD3E"]) == "symbol"


def test_harmonize_ensembl_counts_sums_duplicates_and_reports():
    counts = pd.DataFrame(
        {"a": [10, 1, 2, 5, 7], "b": [20, 3, 4, 6, 8]},
        index=[
            "ENSG00000141510.17",  # TP53
            "ENSG00000162849.16",
            "ENSG00000281216.2",  # both KIF26B -> summed
            "ENSG00000999999.1",  # unknown -> dropped
            "ENSG00000105642",
        ],  # KCNN1, no version
    )
    out, rep = A.harmonize_ids(counts)
    assert rep["id_type"] == "ensembl"
    assert rep["n_unmapped_dropped"] == 1
    assert rep["n_duplicates_merged"] == 1
    assert rep["n_version_stripped"] == 4
    assert list(out.index) == ["TP53", "KIF26B", "KCNN1"]
    assert out.loc["KIF26B"].tolist() == [3, 7]
    assert out.dtypes.tolist() == [np.int64, np.int64]


def test_harmonize_logexpr_keeps_highest_mean_row():
    le = pd.DataFrame(
        {"a": [1.0, 5.0, 2.0], "b": [1.0, 7.0, 2.0]}, index=["ENSG00000162849", "ENSG00000281216", "ENSG00000141510"]
    )
    out, rep = A.harmonize_ids(le, kind="logexpr")
    assert out.loc["KIF26B"].tolist() == [5.0, 7.0]
    assert rep["duplicate_rule"] == "highest mean"


def test_harmonize_symbols_updates_aliases_and_keeps_unknown():
    counts = pd.DataFrame({"a": [1, 2, 3]}, index=["CCDC155", "TP53", "NOT_A_GENE_XYZ"])
    out, rep = A.harmonize_ids(counts)
    assert list(out.index) == ["KASH5", "TP53", "NOT_A_GENE_XYZ"]
    assert rep["n_symbols_updated"] == 1 and rep["n_unknown_symbols"] == 1
    out2, rep2 = A.harmonize_ids(counts, keep_unknown_symbols=False, update_symbols=False)
    assert list(out2.index) == ["TP53"] and rep2["n_unmapped_dropped"] == 2


def test_ambiguous_ensembl_rule_prefers_protein_coding_then_smallest_entrez():
    ann = pd.DataFrame(
        {
            "entrez_id": ["20", "10", "30"],
            "symbol": ["B", "A", "C"],
            "ensembl_id": ["ENSG00000000001", "ENSG00000000001", "ENSG00000000001"],
            "gene_type": ["protein-coding", "ncRNA", "protein-coding"],
        }
    )
    out, rep = A.harmonize_ids(pd.DataFrame({"x": [1]}, index=["ENSG00000000001.3"]), annotation=ann)
    assert list(out.index) == ["B"] and rep["n_ambiguous_ensembl"] == 1


def test_no_genes_left_is_an_input_error():
    with pytest.raises(InputError, match="no genes left"):
        A.harmonize_ids(pd.DataFrame({"x": [1]}, index=["ENSG00000999999.1"]), source="m.tsv")
