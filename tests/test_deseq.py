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


def test_gene_blocks_change_no_result(monkeypatch):
    """The port's gene-wise steps run on blocks of genes at 1,000 samples. Blocks of a few genes
    give one block's table up to rounding: the row-by-row steps differ only in BLAS's last bits
    (gene-wise dispersions ~1e-13), which can make a line search end a step apart for a few genes
    (the module docstring's R comparison: ~1e-7 here), and the DEG set is the same."""
    from helpers.methods import deseq2 as D

    counts = pd.read_csv(REF / "fixture" / "counts.tsv.gz", sep="\t", index_col=0).iloc[:1500]
    samples = pd.read_csv(REF / "fixture" / "samples_nobatch.csv", index_col=0)
    one = D.deseq2(counts, samples, details=True)
    assert len(D._row_blocks(len(counts), counts.shape[1])) == 1
    monkeypatch.setattr(D, "CHUNK_CELLS", 37 * counts.shape[1])  # blocks of 37 genes, the last one short
    assert len(D._row_blocks(len(counts), counts.shape[1])) == 41
    blocks = D.deseq2(counts, samples, details=True)
    iters = ("dispGeneIter", "dispIter", "betaIter")
    for c in [c for c in one.columns if pd.api.types.is_float_dtype(one[c]) and c not in iters]:
        a, b = one[c].to_numpy(), blocks[c].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=c)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(a - b) / np.abs(a)
        d = d[np.isfinite(d)]
        assert d.max() <= 1e-5, f"{c}: max rel diff {d.max():.3g}"
        assert np.quantile(d, 0.99) <= 1e-11, f"{c}: 99th percentile rel diff {np.quantile(d, 0.99):.3g}"
    for c in ("dispOutlier", "betaConv", "replace", "allZero"):
        assert blocks[c].astype(str).tolist() == one[c].astype(str).tolist(), c
    for c in iters:
        assert (blocks[c].fillna(-1) != one[c].fillna(-1)).sum() <= 5, c
    assert set(call_degs(blocks).query("direction != 'ns'").index) == set(
        call_degs(one).query("direction != 'ns'").index
    )


def test_row_blocks_cover_every_row_once():
    from helpers.methods.deseq2 import CHUNK_CELLS, _row_blocks

    for n_rows, n_cols in [(0, 31), (1, 31), (20000, 31), (15000, 1000), (7, CHUNK_CELLS * 2)]:
        blocks = _row_blocks(n_rows, n_cols)
        covered = np.concatenate([np.arange(n_rows)[b] for b in blocks]) if blocks else np.array([])
        np.testing.assert_array_equal(covered, np.arange(n_rows))
        assert all((b.stop - b.start) * n_cols <= max(CHUNK_CELLS, n_cols) for b in blocks)
    assert len(_row_blocks(20000, 31)) == 1 and len(_row_blocks(15000, 1000)) == 8
