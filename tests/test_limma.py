"""limma re-implementation vs R (limma 3.54.1) golden output, plus unit checks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from helpers.engine.errors import InputError
from helpers.methods.edger import calc_norm_factors, filter_by_expr
from helpers.methods.limma import (
    ebayes,
    fit_f_dist,
    lm_fit,
    lowess,
    ns_basis,
    p_adjust_bh,
    top_table,
    trigamma_inverse,
    voom,
)

REF = Path(__file__).parent / "data" / "reference"
CASES = {
    "counts_nobatch": ("fixture", "samples_nobatch.csv"),
    "counts_batch": ("fixture", "samples.csv"),
    "weak_nobatch": ("fixture_weak", "samples_nobatch.csv"),
}
COLUMNS = ["logFC", "AveExpr", "t", "P.Value", "adj.P.Val", "B"]
# measured max relative differences are ~1e-10 (logFC, t) and ~1e-12 (P.Value, adj.P.Val, B);
# the tolerances leave room for BLAS/platform differences only
RTOL = {"logFC": 1e-6, "AveExpr": 1e-9, "t": 1e-6, "P.Value": 1e-6, "adj.P.Val": 1e-6, "B": 1e-6}


def design_for(samples):
    cols = [np.ones(len(samples))]
    if "batch" in samples.columns:
        cols.append((samples["batch"] == "B").to_numpy(float))
    cols.append((samples["response"] == "CR").to_numpy(float))
    return np.column_stack(cols)


LFC_MIN = float(np.log2(1.5))


def de_set(tab, p_max=0.01, lfc_min=LFC_MIN):
    sig = (tab["P.Value"] <= p_max) & (tab["logFC"].abs() >= lfc_min)
    return set(tab.index[sig & (tab["logFC"] > 0)]), set(tab.index[sig & (tab["logFC"] < 0)])


def rel_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.fixture(scope="module", params=list(CASES))
def voom_case(request):
    name = request.param
    folder, sheet = CASES[name]
    counts = pd.read_csv(REF / folder / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / folder / sheet, index_col=0)
    X = design_for(samples)
    kept = counts.loc[filter_by_expr(counts.to_numpy(), design=X)]
    nf = calc_norm_factors(kept.to_numpy())
    v = voom(kept, X, lib_size=kept.to_numpy().sum(axis=0) * nf)
    fit = ebayes(lm_fit(v.E, X, weights=v.weights))
    out = REF / "r_outputs" / name
    return {
        "v": v,
        "fit": fit,
        "table": top_table(fit, coef=-1),
        "r_E": pd.read_csv(out / "voom_E.tsv.gz", sep="\t", index_col=0),
        "r_limma": pd.read_csv(out / "limma.tsv.gz", sep="\t", index_col=0),
        "summary": json.loads((out / "summary.json").read_text()),
    }


def test_voom_E_matches_r(voom_case):
    r = voom_case["r_E"]
    E = voom_case["v"].E
    assert list(E.index) == list(r.index)
    # R file has 6 decimals
    np.testing.assert_allclose(E.to_numpy(), r.to_numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("col", COLUMNS)
def test_voom_limma_table_matches_r(voom_case, col):
    tab, r = voom_case["table"], voom_case["r_limma"]
    assert list(tab.index) == list(r.index)
    d = rel_diff(tab[col], r[col])
    assert d < RTOL[col], f"{col}: max rel diff {d:.3g}"


def test_voom_prior_and_de_set_match_r(voom_case):
    fit, s = voom_case["fit"], voom_case["summary"]["limma"]
    assert fit.df_prior == pytest.approx(s["df_prior"], rel=1e-9)
    assert np.median(fit.s2_prior) == pytest.approx(s["s2_prior_median"], rel=1e-9)
    up, down = de_set(voom_case["table"])
    r_up, r_down = de_set(voom_case["r_limma"])
    assert (up, down) == (r_up, r_down)
    assert (len(up) + len(down), len(up), len(down)) == (s["n_de"], s["n_up"], s["n_down"])
    assert int((voom_case["table"]["adj.P.Val"] <= 0.05).sum()) == s["n_adjp_0.05"]


def test_limma_trend_on_logexpr_matches_r():
    le = pd.read_csv(REF / "r_outputs" / "counts_nobatch" / "logcpm.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / "fixture" / "samples_nobatch.csv", index_col=0).loc[le.columns]
    fit = ebayes(lm_fit(le, design_for(samples)), trend=True)
    tab = top_table(fit, coef=-1)
    r = pd.read_csv(REF / "r_outputs" / "logexpr_trend" / "limma.tsv.gz", sep="\t", index_col=0)
    s = json.loads((REF / "r_outputs" / "logexpr_trend" / "summary.json").read_text())["limma"]
    assert list(tab.index) == list(r.index)
    for col in COLUMNS:
        d = rel_diff(tab[col], r[col])
        assert d < RTOL[col], f"{col}: max rel diff {d:.3g}"
    assert fit.df_prior == pytest.approx(s["df_prior"], rel=1e-9)
    assert np.median(fit.s2_prior) == pytest.approx(s["s2_prior_median"], rel=1e-9)
    up, down = de_set(tab)
    assert (up, down) == de_set(r)
    assert (len(up) + len(down), len(up), len(down)) == (s["n_de"], s["n_up"], s["n_down"])


# ---------------------------------------------------------------------------------------------
# unit checks
# ---------------------------------------------------------------------------------------------
def test_lowess_straight_line_and_statsmodels():
    x = np.linspace(0, 10, 101)
    xs, ys = lowess(x, 2 * x + 1, f=0.3)
    np.testing.assert_allclose(ys, 2 * xs + 1, atol=1e-10)
    sm = pytest.importorskip("statsmodels.nonparametric.smoothers_lowess")
    rng = np.random.default_rng(7)
    x = rng.normal(5, 2, 3000)
    x[:300] = np.round(x[:300], 1)  # ties
    y = np.sin(x) + rng.standard_t(3, x.size) * 0.3
    xs, ys = lowess(x, y, f=0.5)
    ref = sm.lowess(y, x, frac=0.5, it=3, delta=0.01 * np.ptp(x))
    np.testing.assert_array_equal(xs, ref[:, 0])
    # statsmodels' port differs from R's clowess only in rounding-level details
    np.testing.assert_allclose(ys, ref[:, 1], atol=1e-6)


def test_lowess_resists_outliers():
    x = np.arange(200.0)
    y = 0.5 * x
    y[::20] += 100  # 10 gross outliers
    _, ys = lowess(x, y, f=0.3, iter=3)
    assert np.max(np.abs(ys - 0.5 * x)) < 1e-6


def test_ns_basis_space():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 10, 200))
    B = ns_basis(x, 4)
    assert B.shape == (200, 4)
    assert np.linalg.matrix_rank(B) == 4

    def fitted(v):
        coef, *_ = np.linalg.lstsq(B, v, rcond=None)
        return B @ coef

    # linear functions are natural splines; a cubic is not (non-zero 2nd derivative at the ends)
    np.testing.assert_allclose(fitted(3 - 2 * x), 3 - 2 * x, atol=1e-9)
    assert np.max(np.abs(fitted(x**3) - x**3)) > 1
    # intercept=False drops the constant from the space
    assert ns_basis(x, 3, intercept=False).shape == (200, 3)


def test_trigamma_inverse_roundtrip():
    x = np.array([1e-8, 1e-3, 0.1, 1.0, 10.0, 1e8])
    y = trigamma_inverse(x)
    mid = (x >= 1e-6) & (x <= 1e7)
    np.testing.assert_allclose(special.polygamma(1, y[mid]), x[mid], rtol=1e-7)


def test_fit_f_dist_recovers_prior():
    rng = np.random.default_rng(11)
    d0, s0, d = 8.0, 0.5, 4.0
    sigma2 = s0 * d0 / rng.chisquare(d0, 20000)
    s2 = sigma2 * rng.chisquare(d, 20000) / d
    scale, df2 = fit_f_dist(s2, d)
    assert scale == pytest.approx(s0, rel=0.05)
    assert df2 == pytest.approx(d0, rel=0.15)


def test_p_adjust_bh_matches_scipy():
    p = np.random.default_rng(2).uniform(size=500) ** 3
    np.testing.assert_allclose(p_adjust_bh(p), stats.false_discovery_control(p, method="bh"))
    assert np.isnan(p_adjust_bh([0.1, np.nan, 0.2])[1])


def test_weighted_lm_fit_matches_direct_solve():
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(8), [0, 0, 0, 1, 1, 1, 1, 0], rng.normal(size=8)])
    E = rng.normal(size=(4, 8))
    W = rng.uniform(0.2, 3, size=(4, 8))
    fit = lm_fit(E, X, weights=W)
    for g in range(4):
        sw = np.sqrt(W[g])
        coef, *_ = np.linalg.lstsq(X * sw[:, None], E[g] * sw, rcond=None)
        np.testing.assert_allclose(fit.coefficients[g], coef, rtol=1e-10)
        cov = np.linalg.inv(X.T @ (W[g][:, None] * X))
        np.testing.assert_allclose(fit.stdev_unscaled[g], np.sqrt(np.diag(cov)), rtol=1e-10)
        res = E[g] - X @ coef
        assert fit.sigma[g] == pytest.approx(np.sqrt(np.sum(W[g] * res**2) / 5), rel=1e-10)
    # unit weights = unweighted fit
    np.testing.assert_allclose(lm_fit(E, X, weights=np.ones_like(E)).coefficients, lm_fit(E, X).coefficients)


def test_ebayes_infinite_prior_df_when_no_extra_variance():
    # all genes share exactly the same residual variance -> evar <= 0 -> df_prior = Inf
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(6), [0, 0, 0, 1, 1, 1]])
    base = rng.normal(size=6)
    base -= X @ np.linalg.lstsq(X, base, rcond=None)[0]  # residual-only pattern
    E = np.vstack([base + i * 0.01 * X[:, 1] for i in range(50)])
    fit = ebayes(lm_fit(E, X))
    assert np.isinf(fit.df_prior)
    assert np.all(fit.df_total == 50 * 4)
    assert np.isfinite(fit.lods).all()


def test_bad_design_and_inputs():
    E = np.zeros((3, 4))
    with pytest.raises(InputError):
        lm_fit(E, np.column_stack([np.ones(4), np.ones(4)]))  # rank deficient
    with pytest.raises(InputError):
        lm_fit(E, np.ones((3, 1)))  # wrong number of rows
    with pytest.raises(InputError):
        lm_fit(E, np.ones((4, 1)), weights=-np.ones((3, 4)))
    with pytest.raises(InputError):
        voom(np.ones((1, 4)), np.ones((4, 1)))
    fit = lm_fit(np.random.default_rng(0).normal(size=(5, 4)), np.ones((4, 1)))
    with pytest.raises(InputError):
        top_table(fit)  # no ebayes yet
