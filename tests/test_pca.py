"""PCA against R's prcomp (golden), log-CPM against edgeR, batch diagnostics (the plot: test_viz.py).

Reference: R 4.2.2, limma 3.54.1, edgeR 3.40.2 (tests/data/reference/README.md). R's files are
rounded to 6 decimals, hence the tolerances.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.methods import pca as P

REF = Path(__file__).resolve().parent / "data" / "reference"
OUT = REF / "r_outputs"


def _read(p):
    return pd.read_csv(p, sep="\t", index_col=0)


CASES = [
    ("counts_nobatch", "counts_nobatch/voom_E.tsv.gz"),
    ("counts_batch", "counts_batch/voom_E.tsv.gz"),
    ("logexpr_trend", "counts_nobatch/logcpm.tsv.gz"),
    ("weak_nobatch", "weak_nobatch/voom_E.tsv.gz"),
]


@pytest.mark.parametrize("case,inp", CASES)
def test_pca_matches_prcomp(case, inp):
    E = _read(OUT / inp)
    r_scores = _read(OUT / case / "pca_scores.tsv")
    r_var = _read(OUT / case / "pca_variance.tsv")["var_explained"]
    pcs = [c for c in r_scores.columns if c.startswith("PC")]
    scores, var, loadings = P.pca(E, n_components=len(r_var))
    assert list(scores.index) == list(r_scores.index)
    for pc in pcs:
        a, b = scores[pc].to_numpy(), r_scores[pc].to_numpy()
        sign = np.sign(a @ b)
        assert sign != 0
        # scores agree up to sign; R rounds its input and output to 6 decimals, and late PCs with
        # close eigenvalues amplify that rounding (measured max: 5.5e-5 absolute, 6.1e-6 relative)
        np.testing.assert_allclose(sign * a, b, atol=2e-4, rtol=0)
        assert np.max(np.abs(sign * a - b)) / np.max(np.abs(b)) < 1e-5
    np.testing.assert_allclose(var.to_numpy()[: len(r_var)], r_var.to_numpy(), atol=1e-6)
    assert var.iloc[0] >= var.iloc[1]


def test_pca_sign_convention_and_shapes():
    rng = np.random.default_rng(0)
    E = pd.DataFrame(rng.normal(size=(50, 8)), index=[f"g{i}" for i in range(50)], columns=[f"s{i}" for i in range(8)])
    s1, v1, l1 = P.pca(E, n_components=3)
    s2, v2, l2 = P.pca(-E, n_components=3)  # negated data: same sign-fixed loadings up to flip rule
    assert s1.shape == (8, 3) and l1.shape == (50, 3) and v1.index.tolist() == ["PC1", "PC2", "PC3"]
    for pc in l1.columns:
        assert l1[pc].abs().idxmax() == l2[pc].abs().idxmax()
        assert l1.loc[l1[pc].abs().idxmax(), pc] > 0
    np.testing.assert_allclose(v1, v2)
    assert v1.sum() <= 1 + 1e-12
    s3, v3, _ = P.pca(E, n_components=3, scale=True)
    assert np.isfinite(s3.to_numpy()).all()


def test_log_cpm_matches_edger():
    counts = _read(REF / "fixture" / "counts.tsv.gz")
    r = _read(OUT / "counts_nobatch" / "logcpm.tsv.gz")
    nf = pd.read_csv(OUT / "counts_nobatch" / "norm_factors.tsv", sep="\t").set_index("sample_id")
    kept = counts.loc[r.index]  # edgeR recomputes library sizes after filterByExpr
    mine = P.log_cpm(kept, prior_count=2, norm_factors=nf["norm.factors"])
    diff = (mine[r.columns] - r).abs().to_numpy().max()
    assert diff < 1e-5


def test_batch_diagnostics_detect_a_planted_batch():
    rng = np.random.default_rng(1)
    n = 40
    samples = pd.DataFrame(
        {"cohort": ["A"] * 20 + ["B"] * 20, "response": ["CR", "NR"] * 20}, index=[f"s{i}" for i in range(n)]
    )
    E = pd.DataFrame(rng.normal(size=(200, n)), columns=samples.index)
    E.loc[:, samples.cohort == "B"] += rng.normal(0, 1, size=(200, 1)) * 2.0  # strong batch
    scores, var, _ = P.pca(E)
    d = P.batch_diagnostics(scores, samples)
    assert d.loc["cohort", "r2_PC1"] > 0.8 and d.loc["cohort", "p_PC1"] < 1e-6
    assert d.loc["cohort", "silhouette"] > 0.3
    assert d.loc["response", "r2_pooled"] < 0.2
    assert abs(d.loc["response", "silhouette"]) < 0.1
    # R^2 equals the squared correlation with the group indicator for two groups
    x = (samples.cohort == "B").astype(float)
    r2 = np.corrcoef(scores["PC1"], x)[0, 1] ** 2
    assert d.loc["cohort", "r2_PC1"] == pytest.approx(r2, rel=1e-10)
    # p-value equals scipy's one-way ANOVA
    from scipy.stats import f_oneway

    p = f_oneway(*[scores.loc[samples.cohort == g, "PC2"] for g in ("A", "B")]).pvalue
    assert d.loc["cohort", "p_PC2"] == pytest.approx(p, rel=1e-8)
