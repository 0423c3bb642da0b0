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


# --------------------------------------------------------------------------- the Fig. 1B / 2C drawing


def _fig_inputs(n_datasets=2, extra_group=False):
    from helpers.methods.factominer_pca import group_ellipses, pca_scaled

    rng = np.random.default_rng(4)
    n = 24
    resp = (["CR"] * 8 + ["NR"] * 4) * 2
    if extra_group:
        resp[:3] = ["PR"] * 3
    cohort = ["A"] * 12 + ["B"] * 12 if n_datasets == 2 else ["A"] * n
    samples = pd.DataFrame({"cohort": cohort, "response": resp}, index=[f"s{i}" for i in range(n)])
    E = pd.DataFrame(rng.normal(size=(60, n)), columns=samples.index)
    scores, share = pca_scaled(E)
    return scores, share, samples, group_ellipses(scores, samples["response"])


def _hexes(artist_colors):
    from matplotlib.colors import to_hex

    return {to_hex(c) for c in artist_colors}


def test_pca_figure_layout_axes_legends_and_colours():
    from matplotlib.colors import to_hex

    from helpers.viz import figures_pca
    from helpers.viz.style import CR_COLOR, NR_COLOR

    scores, share, samples, rings = _fig_inputs()
    fig = figures_pca.pca_ellipses(scores, share, samples, ellipses=rings, title="t")
    ax = fig.axes[0]
    assert ax.get_xlabel() == f"PC1 ({100 * share['PC1']:.1f}% of variance)"
    assert ax.get_ylabel().startswith("PC2 (") and "% of variance" in ax.get_ylabel()
    # two legends (response with ellipses, dataset shapes), both entirely right of the data area
    fig.canvas.draw()
    legends = [a for a in ax.get_children() if a.__class__.__name__ == "Legend"]
    assert len(legends) == 2
    axbox = ax.get_window_extent()
    for lg in legends:
        assert lg.get_window_extent().x0 >= axbox.x1
    texts = {t.get_text() for lg in legends for t in lg.get_texts()}
    assert {"CR (n = 16)", "NR (n = 8)", "group mean", "A (n = 12)", "B (n = 12)"} == texts
    # one point per sample (plus one mean per group); CR/NR colours on the CR/NR points only
    pts = [c for c in ax.collections if c.get_offsets().shape[0] and c.get_sizes()[0] == 40]
    assert sum(len(c.get_offsets()) for c in pts) == len(samples)
    cr = [c for c in pts if to_hex(c.get_facecolor()[0]) == CR_COLOR.lower()]
    assert sum(len(c.get_offsets()) for c in cr) == 16
    # the dataset legend shows shapes without a response colour
    dataset_lg = [lg for lg in legends if lg.get_title().get_text() == "Dataset"][0]
    faces = _hexes(h.get_markerfacecolor() for h in dataset_lg.legend_handles)
    assert not faces & {CR_COLOR.lower(), NR_COLOR.lower()}
    # an ellipse outline per group, in the group's colour, fully inside the view
    outlines = [ln for ln in ax.lines if len(ln.get_xdata()) == 52]
    assert _hexes(ln.get_color() for ln in outlines) == {CR_COLOR.lower(), NR_COLOR.lower()}
    x0, x1 = ax.get_xlim()
    assert all(x0 <= r[:, 0].min() and r[:, 0].max() <= x1 for r in rings.values())


def test_pca_figure_other_groups_never_get_cr_nr_colours_and_one_dataset_has_no_dataset_legend():
    from helpers.viz import figures_pca
    from helpers.viz.style import CR_COLOR, NR_COLOR

    cmap = figures_pca.group_colors(["CR", "NR", "PR", "SD"])
    assert cmap["CR"] == CR_COLOR and cmap["NR"] == NR_COLOR
    assert not {cmap["PR"], cmap["SD"]} & {CR_COLOR, NR_COLOR} and cmap["PR"] != cmap["SD"]
    scores, share, samples, rings = _fig_inputs(n_datasets=1, extra_group=True)
    assert rings["PR"] is None  # 3 points: ggplot2 draws no ellipse
    fig = figures_pca.pca_ellipses(scores, share, samples, ellipses=rings)
    ax = fig.axes[0]
    legends = [a for a in ax.get_children() if a.__class__.__name__ == "Legend"]
    assert len(legends) == 1
    assert "PR (n = 3)" in {t.get_text() for t in legends[0].get_texts()}
    assert len([ln for ln in ax.lines if len(ln.get_xdata()) == 52]) == 2  # CR and NR only


def _structured(n, p, seed, k_true=6):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, k_true)) * np.geomspace(20, 2, k_true)
    load = rng.normal(size=(k_true, p))
    return scores @ load + rng.normal(size=(n, p))


@pytest.mark.parametrize("n,p", [(150, 600), (120, 2000)])
def test_leading_svd_gram_equals_full_svd(n, p):
    """From GRAM_MIN_SAMPLES samples on, the Gram path gives the full SVD's leading triplets to 1e-10."""
    X = _structured(n, p, seed=n + p)
    X -= X.mean(axis=0)
    assert n >= P.GRAM_MIN_SAMPLES
    U, S, Vt, total = P.leading_svd(X, 5)
    assert total is not None and U.shape == (n, 5)  # the Gram path ran
    U0, S0, Vt0 = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(S, S0[:5], rtol=1e-10)
    assert total == pytest.approx(float((S0**2).sum()), rel=1e-12)
    for j in range(5):  # equal up to sign
        s = np.sign(U[:, j] @ U0[:, j])
        np.testing.assert_allclose(s * U[:, j] * S[j], U0[:, j] * S0[j], atol=1e-10 * S0[0])
        np.testing.assert_allclose(s * Vt[j], Vt0[j], atol=1e-10)


def test_leading_svd_small_or_degenerate_uses_the_full_svd():
    X = _structured(40, 500, seed=1)
    assert P.leading_svd(X, 5)[3] is None  # below GRAM_MIN_SAMPLES: the reference path
    # rank 3 at 150 samples: the 5th eigenvalue is ~0, so the Gram path says no and falls back
    rng = np.random.default_rng(2)
    low = rng.normal(size=(150, 3)) @ rng.normal(size=(3, 400))
    U, S, Vt, total = P.leading_svd(low, 5)
    assert total is None and S.size == 150


def test_pca_many_samples_equals_the_svd_path(monkeypatch):
    """pca() at 150 samples (Gram path) equals the SVD path: scores, shares, loadings, signs."""
    E = pd.DataFrame(_structured(150, 800, seed=7).T + 8.0, index=[f"g{i}" for i in range(800)])
    fast = P.pca(E, n_components=5)
    monkeypatch.setattr(P, "GRAM_MIN_SAMPLES", 10**9)
    ref = P.pca(E, n_components=5)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-10)
