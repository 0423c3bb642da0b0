"""helpers.methods.pam: nearest shrunken centroids against R pamr 1.57 golden outputs, plus unit checks.

Golden cases (tests/data/reference/r_outputs/<case>/pam_*.tsv, made by pamr.train defaults and
pamr.cv with one sample per fold): pamr was trained on voom's E (kept genes) for the count
fixtures and on the given log-expression for logexpr_trend.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.engine.errors import InputError
from helpers.methods import pam

CASES = {
    # case: (expression file under r_outputs, sample sheet)
    "counts_batch": ("counts_batch/voom_E.tsv.gz", "fixture/samples.csv"),
    "counts_nobatch": ("counts_nobatch/voom_E.tsv.gz", "fixture/samples_nobatch.csv"),
    "logexpr_trend": ("counts_nobatch/logcpm.tsv.gz", "fixture/samples_nobatch.csv"),
    "weak_nobatch": ("weak_nobatch/voom_E.tsv.gz", "fixture_weak/samples_nobatch.csv"),
}

THRESH_RTOL = 1e-5  # R wrote thresholds with 6 significant digits; voom E with 6 decimals
PROB_ATOL = 1e-5  # measured max 9.3e-7 (inputs rounded to 6 decimals)


def load_case(ref, case):
    expr, sheet = CASES[case]
    kept = (ref / "r_outputs" / case / "genes_kept.txt").read_text().split()
    X = pd.read_csv(ref / "r_outputs" / expr, sep="\t", index_col=0).loc[kept]
    s = pd.read_csv(ref / sheet, index_col=0)
    return X, s.loc[X.columns, "response"]


@pytest.fixture(scope="module", params=list(CASES))
def golden(request):
    from conftest import REF

    case = request.param
    X, y = load_case(REF, case)
    fit = pam.train(X, y)
    cvres = pam.cv(X, y, fit)
    d = REF / "r_outputs" / case
    return dict(
        case=case,
        X=X,
        y=y,
        fit=fit,
        cv=cvres,
        ref_cv=pd.read_csv(d / "pam_cv.tsv", sep="\t"),
        ref_pred=pd.read_csv(d / "pam_loocv_predictions.tsv", sep="\t", index_col=0),
        ref_genes=pd.read_csv(d / "pam_genes.tsv", sep="\t", index_col=0),
        summary=json.loads((d / "summary.json").read_text())["pam"],
    )


# ---------------------------------------------------------------------------- golden (R pamr)


def test_golden_threshold_grid(golden):
    ref, fit = golden["ref_cv"], golden["fit"]
    assert len(fit.thresholds) == len(ref) == 30
    np.testing.assert_allclose(fit.thresholds[1:], ref["threshold"].to_numpy()[1:], rtol=THRESH_RTOL)
    assert fit.thresholds[0] == 0.0
    assert golden["summary"]["n_features"] == len(fit.genes)


def test_golden_genes_per_threshold(golden):
    np.testing.assert_array_equal(golden["fit"].n_genes, golden["ref_cv"]["n_genes"].to_numpy())


def test_golden_training_errors(golden):
    np.testing.assert_array_equal(golden["fit"].train_errors, golden["ref_cv"]["train_errors"].to_numpy())


def test_golden_cv_errors(golden):
    c, ref = golden["cv"], golden["ref_cv"]
    np.testing.assert_array_equal(c.errors, ref["cv_errors"].to_numpy())
    np.testing.assert_allclose(c.error_rate, ref["cv_error_rate"].to_numpy(), atol=1e-6)


def test_golden_chosen_threshold(golden):
    idx, thr = pam.choose_threshold(golden["cv"])
    s = golden["summary"]
    assert thr == pytest.approx(s["best_threshold"], rel=THRESH_RTOL)
    assert golden["fit"].n_genes[idx] == s["n_genes_at_best"]
    assert golden["cv"].errors[idx] == s["loocv_errors"]


def test_golden_loocv_predictions(golden):
    idx, _ = pam.choose_threshold(golden["cv"])
    ours = golden["cv"].predictions(idx)
    ref = golden["ref_pred"]
    assert ours.index.tolist() == ref.index.tolist()
    assert (ours["truth"] == ref["truth"]).all()
    assert (ours["pred"] == ref["loocv_pred"]).all()
    np.testing.assert_allclose(ours[["prob_CR", "prob_NR"]].to_numpy(), ref[["X1", "X2"]].to_numpy(), atol=PROB_ATOL)


def test_golden_gene_list(golden):
    _, thr = pam.choose_threshold(golden["cv"])
    ours = pam.gene_scores(golden["fit"], thr)
    ref = golden["ref_genes"]
    assert ours.index.tolist() == ref.index.tolist()
    assert pam.surviving_genes(golden["fit"], thr) == ref.index.tolist()
    # R rounds to 4 decimals: ours must round-trip within half a unit (+ input rounding)
    np.testing.assert_allclose(
        ours[["CR-score", "NR-score"]].to_numpy(), ref[["CR-score", "NR-score"]].to_numpy(), atol=5e-5 + 1e-6
    )


def test_golden_predict_matches_training_calls(golden):
    fit = golden["fit"]
    for i in (0, 10, len(fit.thresholds) - 1):
        calls = pam.predict(fit, golden["X"], fit.thresholds[i])
        assert int((calls.to_numpy() != golden["y"].to_numpy()).sum()) == fit.train_errors[i]


# ---------------------------------------------------------------------------- unit checks


def toy(p=60, n_cr=12, n_nr=7, shift=1.5, n_shift=5, seed=3):
    rng = np.random.default_rng(seed)
    n = n_cr + n_nr
    x = rng.normal(5, 1, size=(p, n)) * rng.uniform(0.5, 2, size=(p, 1))
    x[:n_shift, n_cr:] += shift
    X = pd.DataFrame(x, index=[f"G{i}" for i in range(p)], columns=[f"S{j}" for j in range(n)])
    y = pd.Series(["CR"] * n_cr + ["NR"] * n_nr, index=X.columns)
    return X, y


def test_train_matches_formulas_written_out():
    X, y = toy()
    fit = pam.train(X, y)
    x = X.to_numpy()
    n = x.shape[1]
    cls = ["CR", "NR"]
    nk = np.array([(y == c).sum() for c in cls])
    cen = np.column_stack([x[:, (y == c).to_numpy()].mean(axis=1) for c in cls])
    ss = np.zeros(x.shape[0])
    for j in range(n):
        ss += (x[:, j] - cen[:, cls.index(y.iloc[j])]) ** 2
    s = np.sqrt(ss / (n - 2))
    s0 = np.median(s)
    m = np.sqrt(1 / nk - 1 / n)
    d = (cen - x.mean(axis=1)[:, None]) / (m[None, :] * (s + s0)[:, None])
    np.testing.assert_allclose(fit.centroids, cen, rtol=1e-12)
    np.testing.assert_allclose(fit.sd, s + s0, rtol=1e-12)
    assert fit.s0 == pytest.approx(s0, rel=1e-12)
    np.testing.assert_allclose(fit.d, d, rtol=1e-10)
    np.testing.assert_allclose(fit.thresholds, np.linspace(0, np.abs(d).max(), 30), rtol=1e-12)
    np.testing.assert_allclose(fit.prior, nk / n)
    # shrunken centroids at threshold t
    t = fit.thresholds[7]
    ds = np.sign(d) * np.maximum(np.abs(d) - t, 0)
    want = x.mean(axis=1)[:, None] + m[None, :] * (s + s0)[:, None] * ds
    np.testing.assert_allclose(pam.shrunken_centroids(fit, t).to_numpy(), want, rtol=1e-12)
    assert fit.n_genes[7] == int((np.abs(ds).sum(axis=1) > 0).sum())


def test_s0_percentile_changes_offset():
    X, y = toy()
    f50 = pam.train(X, y)
    f10 = pam.train(X, y, s0_percentile=10)
    s = f50.sd - f50.s0
    assert f10.s0 == pytest.approx(np.percentile(s, 10))
    assert f10.s0 < f50.s0


def test_discriminants_posterior_and_calls_agree():
    X, y = toy()
    fit = pam.train(X, y)
    t = fit.thresholds[10]
    delta = pam.discriminants(fit, X, t)
    prob = pam.predict_proba(fit, X, t)
    calls = pam.predict(fit, X, t)
    # class = smallest delta; posterior = softmax(-delta/2)
    assert (calls == delta.idxmin(axis=1)).all()
    a = -delta.to_numpy() / 2
    soft = np.exp(a - a.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob.to_numpy(), soft, rtol=1e-10)
    # the paper's delta written out for one sample over the surviving genes
    keep = pam.surviving_genes(fit, t)
    cen = pam.shrunken_centroids(fit, t).loc[keep]
    sd = pd.Series(fit.sd, index=fit.genes).loc[keep]
    xs = X.loc[keep, "S3"]
    for k, c in enumerate(fit.classes):
        want = sum(((xs - cen[c]) / sd) ** 2) - 2 * math.log(fit.prior[k])
        assert delta.loc["S3", c] == pytest.approx(want, rel=1e-12)


def test_no_surviving_gene_calls_majority_with_prior_probabilities():
    X, y = toy()
    fit = pam.train(X, y)
    t = fit.thresholds[-1]
    assert fit.n_genes[-1] == 0
    assert (pam.predict(fit, X, t) == "CR").all()
    np.testing.assert_allclose(pam.predict_proba(fit, X, t).to_numpy(), np.tile(fit.prior, (X.shape[1], 1)))


def test_threshold_for_n_genes_and_choose_threshold():
    X, y = toy()
    fit = pam.train(X, y)
    for n in (1, 3, 5, 20):
        t = pam.threshold_for_n_genes(fit, n)
        assert len(pam.surviving_genes(fit, t)) == n
    with pytest.raises(InputError):
        pam.threshold_for_n_genes(fit, 10**6)
    c = pam.cv(X, y, fit)
    idx, thr = pam.choose_threshold(c)
    assert c.errors[idx] == c.errors.min()
    assert not np.any(c.errors[idx + 1 :] == c.errors.min())  # the largest such threshold
    assert thr == fit.thresholds[idx]


def test_cv_custom_folds_and_bad_folds():
    X, y = toy()
    fit = pam.train(X, y)
    loo = pam.cv(X, y, fit)
    same = pam.cv(X, y, fit, folds=[[i] for i in range(X.shape[1])])
    np.testing.assert_array_equal(loo.errors, same.errors)
    with pytest.raises(InputError, match="partition"):
        pam.cv(X, y, fit, folds=[[0, 1], [1, 2]])
    with pytest.raises(InputError, match="folds"):
        pam.cv(X, y, fit, folds="tenfold")


def test_cv_uses_full_fit_grid_and_se_scale():
    """pamr.cv keeps the full fit's thresholds and m_k: a fold's own grid would differ."""
    X, y = toy()
    fit = pam.train(X, y)
    c = pam.cv(X, y, fit)
    np.testing.assert_array_equal(c.thresholds, fit.thresholds)
    np.testing.assert_array_equal(c.n_genes, fit.n_genes)
    own = pam.train(X.iloc[:, 1:], y.iloc[1:])
    assert not np.allclose(own.thresholds, fit.thresholds)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y: (X.iloc[:, :-1], y.tolist()), "labels"),
        (
            lambda X, y: (X.where(X.index.to_series().ne("G3").to_numpy()[:, None] | np.zeros(X.shape, bool)), y),
            "missing",
        ),
        (lambda X, y: (X, pd.Series(["CR"] * 18 + ["NR"], index=X.columns)), "at least 2"),
        (lambda X, y: (X, pd.Series(["CR"] * 19, index=X.columns)), "two classes"),
        (lambda X, y: (pd.concat([X, X.iloc[:1]]), y), "duplicated"),
    ],
)
def test_bad_input(mutate, match):
    X, y = toy()
    Xb, yb = mutate(X, y)
    with pytest.raises(InputError, match=match):
        pam.train(Xb, yb)


def test_predict_missing_gene():
    X, y = toy()
    fit = pam.train(X, y)
    with pytest.raises(InputError, match="missing"):
        pam.predict(fit, X.drop(index="G0"), 0.5)


# ---------------------------------------------------------------------------- honesty extras


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in [(28, 31), (22, 22), (6, 9), (0, 10), (5, 5), (1, 2)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = pam.clopper_pearson(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-12)
        assert hi == pytest.approx(ci.high, abs=1e-12)
    with pytest.raises(InputError):
        pam.clopper_pearson(5, 3)


def test_performance_reproduces_paper_figure_4_counts():
    truth = ["CR"] * 22 + ["NR"] * 9
    pred = ["CR"] * 22 + ["CR"] * 3 + ["NR"] * 6
    perf = pam.performance(truth, pred)
    assert perf["accuracy_text"] == "28/31" and round(100 * perf["accuracy"], 1) == 90.3
    assert perf["sensitivity_text"] == "22/22" and perf["sensitivity"] == 1.0
    assert perf["specificity_text"] == "6/9" and round(100 * perf["specificity"], 1) == 66.7
    assert perf["majority_class"] == "CR" and perf["majority_baseline"] == pytest.approx(22 / 31)
    assert perf["confusion"] == {"CR": {"CR": 22, "NR": 0}, "NR": {"CR": 3, "NR": 6}}
    assert perf["accuracy_ci"][0] < 0.903 < perf["accuracy_ci"][1]


def test_nested_loocv_on_pure_noise_is_not_inflated():
    rng = np.random.default_rng(11)
    X = pd.DataFrame(
        rng.normal(size=(300, 31)), index=[f"G{i}" for i in range(300)], columns=[f"S{j:02d}" for j in range(31)]
    )
    y = pd.Series(["CR"] * 22 + ["NR"] * 9, index=X.columns)
    res = pam.nested_loocv(X, y)
    baseline = 22 / 31
    assert res.n == 31 and res.accuracy == res.n_correct / 31
    assert res.accuracy <= baseline + 1e-12
    assert set(res.predictions.columns) >= {"truth", "pred", "prob_CR", "prob_NR", "threshold", "n_genes"}


def test_nested_loocv_recovers_real_signal():
    X, y = toy(p=80, n_cr=12, n_nr=7, shift=3.0, n_shift=6)
    res = pam.nested_loocv(X, y)
    assert res.accuracy >= 0.9


def test_permutation_pvalue_deterministic_and_sensible():
    X, y = toy(p=60, shift=3.0, n_shift=6)
    a = pam.permutation_pvalue(X, y, n_perm=19, seed=5)
    b = pam.permutation_pvalue(X, y, n_perm=19, seed=5)
    np.testing.assert_array_equal(a["null"], b["null"])
    assert a["p_value"] == b["p_value"] == pytest.approx(1 / 20)
    assert a["observed"] >= 0.9
    noise = X.copy()
    noise.iloc[:, :] = np.random.default_rng(2).normal(size=X.shape)
    c = pam.permutation_pvalue(noise, y, n_perm=19, seed=5)
    assert c["p_value"] > 0.05


@pytest.mark.slow
def test_weak_fixture_naive_vs_nested(ref):
    """Weak fixture: pamr's (naive) LOOCV finds 0 errors; nested LOOCV, with the threshold chosen
    inside each fold, must still do well (the fixture has a few |logFC| > 1 genes) but can only be
    lower or equal; with shuffled labels it falls to the majority baseline."""
    X, y = load_case(ref, "weak_nobatch")
    fit = pam.train(X, y)
    c = pam.cv(X, y, fit)
    idx, _ = pam.choose_threshold(c)
    naive = 1 - c.errors[idx] / len(y)
    nested = pam.nested_loocv(X, y)
    assert naive == 1.0
    assert nested.accuracy <= naive
    assert nested.accuracy >= 0.9
    yp = pd.Series(np.random.default_rng(0).permutation(y.to_numpy()), index=y.index)
    shuffled = pam.nested_loocv(X, yp)
    assert shuffled.accuracy <= 22 / 31 + 1e-12


# ---------------------------------------------------------------------------- fast path vs reference
#
# The module evaluates the threshold grid by binning genes between grid points and refits
# leave-one-out folds from running (Welford/Chan) statistics. These tests hold it to the plain
# transcription of pamr kept in the module (_nsc_reference / _grid_reference: T x K x p arrays, a
# direct refit per fold): identical calls, gene counts and error counts; discriminants within
# DD_RTOL of the largest |discriminant| of the same sample and threshold (measured: <= 5e-14).

DD_RTOL = 1e-12


def _close_dd(fast, ref):
    scale = np.maximum(np.abs(ref).max(axis=-1, keepdims=True), 1.0)
    assert np.all(np.abs(fast - ref) <= DD_RTOL * scale), float(np.max(np.abs(fast - ref) / scale))


def _random_grid_case(rng, kind):
    K = int(rng.integers(2, 5))
    p = int(rng.integers(1, 400))
    m = int(rng.integers(0, 4))
    d = rng.normal(size=(K, p)) * rng.uniform(0.1, 5)
    z = rng.normal(size=(m, p)) * 3
    amax = float(np.abs(d).max())
    if kind == "linspace":
        t = np.linspace(0, amax, 30)
    elif kind == "irregular":
        t = np.sort(rng.uniform(0, amax, 17))
    elif kind == "shuffled_negative":
        t = rng.permutation(np.linspace(-0.5, 1.2 * amax, 25))
    elif kind == "duplicates":
        t = np.sort(np.r_[np.linspace(0, amax, 10), np.linspace(0, amax, 10)[3:6]])
    else:  # ties: |d| exactly on grid points, plus exact zeros
        t = np.linspace(0, amax, 30)
        idx = rng.integers(0, p, min(p, 50))
        d[0, idx] = np.where(d[0, idx] < 0, -1.0, 1.0) * t[rng.integers(0, 30, len(idx))]
        d[1, : min(p, 3)] = 0.0
    return d, z, t, rng.uniform(0.1, 1, K), rng.dirichlet(np.ones(K))


@pytest.mark.parametrize("kind", ["linspace", "irregular", "shuffled_negative", "duplicates", "ties"])
def test_grid_matches_reference_on_random_data(kind):
    rng = np.random.default_rng(["linspace", "irregular", "shuffled_negative", "duplicates", "ties"].index(kind))
    for _ in range(40):
        d, z, t, se, prior = _random_grid_case(rng, kind)
        dd, nz = pam._grid(d, se, z, t, prior)
        ddr, nzr = pam._grid_reference(d, se, z, t, prior)
        assert dd.shape == ddr.shape
        np.testing.assert_array_equal(nz, nzr)
        np.testing.assert_array_equal(dd.argmax(axis=-1), ddr.argmax(axis=-1))
        _close_dd(dd, ddr)


def test_grid_ties_and_shrunk_genes_contribute_exactly_zero():
    """A gene with |d| == t is shrunk to zero at t (pamr's strict '(abs(d) - t) > 0'); with no
    surviving gene the discriminant is exactly log(prior)."""
    t = np.array([0.0, 1.0, 2.0])
    d = np.array([[1.0, -2.0], [0.5, 0.0]])
    z = np.array([[3.0, -1.0]])
    prior = np.array([0.6, 0.4])
    dd, nz = pam._grid(d, np.array([1.0, 1.0]), z, t, prior)
    np.testing.assert_array_equal(nz, [2, 1, 0])
    np.testing.assert_array_equal(dd[2, 0], np.log(prior))
    # t = 1: class 0 keeps only gene 1 (shrunk |d| = 1, sign -): lin = -1 * z = 1, quad = 1/2
    assert dd[1, 0, 0] == np.log(0.6) + 1.0 - 0.5
    assert dd[1, 0, 1] == np.log(0.4)


def test_n_below_matches_searchsorted():
    rng = np.random.default_rng(7)
    for t in (
        np.linspace(0, 3.7, 30),
        np.linspace(-1, 2, 7),
        np.sort(rng.uniform(0, 4, 12)),
        np.array([0.0, 0.0, 1.0]),
        np.array([0.5]),
    ):
        a = np.r_[np.abs(rng.normal(size=500)) * 2, t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), 0.0, 1e300]
        np.testing.assert_array_equal(pam._n_below(a, t), np.searchsorted(t, a, side="left"))


def _reference_fold_dd(x, codes, K, j, fit_like, s0_percentile=50.0):
    """Held-out discriminants of sample j from a direct refit (reference path)."""
    n = x.shape[1]
    tr = np.r_[0:j, j + 1 : n]
    r = pam._nsc_reference(
        x[:, tr],
        codes[tr],
        K,
        x[:, [j]],
        thresholds=fit_like["thresholds"],
        prior=fit_like["prior"],
        se_scale=fit_like["se_scale"],
        s0_percentile=s0_percentile,
    )
    z = (x[:, [j]] - r["overall"][:, None]) / r["sd"][:, None]
    ds, _ = pam._shrunk(r["d"], r["thresholds"])
    cs = ds * r["se_scale"][None, :, None]
    dd = np.matmul(cs, z)[:, :, 0] - 0.5 * np.einsum("tkp,tkp->tk", cs, cs) + np.log(r["prior"])[None, :]
    return dd, r["yhat"][:, 0], r["prob"][:, 0, :]


def _check_loo_against_reference(x, codes, K, samples=None, s0_percentile=50.0):
    xs = np.ascontiguousarray(x.T)
    full = pam._nsc(xs, codes, K, xs[:0], s0_percentile=s0_percentile)
    yhat, prob, dd = pam._loo(
        xs, codes, K, full["thresholds"], full["prior"], full["se_scale"], s0_percentile, return_dd=True
    )
    for j in range(x.shape[1]) if samples is None else samples:
        ddr, yr, pr = _reference_fold_dd(x, codes, K, j, full, s0_percentile)
        np.testing.assert_array_equal(yhat[j], yr)
        _close_dd(dd[j], ddr)
        np.testing.assert_allclose(prob[j].T, pr, rtol=0, atol=1e-12)


def test_nsc_fast_matches_reference(golden):
    x = golden["X"].to_numpy(dtype=float)
    codes = np.array([golden["fit"].classes.index(v) for v in golden["y"].astype(str)])
    xs = np.ascontiguousarray(x.T)
    fast = pam._nsc(xs, codes, 2, xs)
    ref = pam._nsc_reference(x, codes, 2, x)
    for key in ("centroids", "overall", "sd", "d", "thresholds"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-13, atol=1e-13 * np.abs(ref[key]).max())
    np.testing.assert_array_equal(fast["nonzero"], ref["nonzero"])
    np.testing.assert_array_equal(fast["yhat"], ref["yhat"])
    np.testing.assert_allclose(fast["prob"], ref["prob"], rtol=0, atol=1e-12)


def test_loo_fast_matches_direct_refits(golden):
    x = golden["X"].to_numpy(dtype=float)
    codes = np.array([golden["fit"].classes.index(v) for v in golden["y"].astype(str)])
    _check_loo_against_reference(x, codes, 2)


def test_cv_and_nested_match_reference_path(golden):
    """pam.cv / nested LOOCV on the golden fixtures equal the direct per-fold refits."""
    fit, X, y = golden["fit"], golden["X"], golden["y"]
    c = golden["cv"]
    x = X.to_numpy(dtype=float)
    codes = np.array([fit.classes.index(v) for v in y.astype(str)])
    n = x.shape[1]
    yhat = np.zeros((n, len(fit.thresholds)), dtype=int)
    for j in range(n):
        tr = np.r_[0:j, j + 1 : n]
        r = pam._nsc_reference(
            x[:, tr], codes[tr], 2, x[:, [j]], thresholds=fit.thresholds, prior=fit.prior, se_scale=fit.se_scale
        )
        yhat[j] = r["yhat"][:, 0]
    np.testing.assert_array_equal(c.errors, (yhat != codes[:, None]).sum(axis=0))
    # one outer fold of the nested procedure: inner errors from direct refits
    i = 3
    tr = np.r_[0:i, i + 1 : n]
    xs = np.ascontiguousarray(x.T)
    idx, thr, nz, _, _, errors = pam._select_and_predict(xs[tr], codes[tr], 2, xs[[i]], 30, 50.0, None)
    full = pam._nsc_reference(x[:, tr], codes[tr], 2, x[:, [i]])
    np.testing.assert_allclose(thr, full["thresholds"][: len(thr)], rtol=1e-13)
    np.testing.assert_array_equal(nz, full["nonzero"][: len(thr)])
    ref_err = np.zeros(len(thr), dtype=int)
    for j in range(n - 1):
        ttr = np.r_[0:j, j + 1 : n - 1]
        r = pam._nsc_reference(
            x[:, tr][:, ttr],
            codes[tr][ttr],
            2,
            x[:, tr][:, [j]],
            thresholds=thr,
            prior=full["prior"],
            se_scale=full["se_scale"],
        )
        ref_err += r["yhat"][:, 0] != codes[tr][j]
    np.testing.assert_array_equal(errors, ref_err)


def test_loo_outlier_dominated_genes_and_three_classes():
    """Running statistics stay exact where the held-out sample carries almost all of a gene's
    variance (a naive 'total minus one' downdate would lose ~all digits of s_i there)."""
    rng = np.random.default_rng(5)
    p, n = 200, 17
    x = rng.normal(size=(p, n)) + 8.0
    x[:5, 2] += 1e6  # one sample dominates five genes
    x[5:10, :] = 3.0 + 1e-9 * rng.normal(size=(5, n))  # nearly constant genes
    x[10:12, 0] = 5e3
    codes = np.array([0] * 7 + [1] * 5 + [2] * 5)
    x[20:30, codes == 2] += 2.0
    _check_loo_against_reference(x, codes, 3)
    _check_loo_against_reference(x, codes, 3, s0_percentile=5.0)


def test_cv_multisample_folds_match_reference():
    X, y = toy()
    fit = pam.train(X, y)
    folds = [[0, 5, 12], [1, 6, 13], [2, 7, 14], [3, 8, 15], [4, 9, 16, 10, 11, 17, 18]]
    c = pam.cv(X, y, fit, folds=folds)
    x = X.to_numpy()
    codes = np.array([fit.classes.index(v) for v in y])
    for f in folds:
        tr = np.setdiff1d(np.arange(x.shape[1]), f)
        r = pam._nsc_reference(
            x[:, tr], codes[tr], 2, x[:, f], thresholds=fit.thresholds, prior=fit.prior, se_scale=fit.se_scale
        )
        np.testing.assert_array_equal(c.pred.iloc[f].to_numpy(), np.asarray(fit.classes, object)[r["yhat"].T])
        np.testing.assert_allclose(c.prob[f], np.transpose(r["prob"], (1, 2, 0)), rtol=0, atol=1e-12)


def test_train_with_unsorted_user_thresholds_matches_reference():
    X, y = toy()
    t = np.array([1.0, 0.0, 2.5, 0.5, 0.5, 4.0])
    fit = pam.train(X, y, thresholds=t, remove_zeros=False)
    x = X.to_numpy()
    codes = np.array([fit.classes.index(v) for v in y])
    ref = pam._nsc_reference(x, codes, 2, x, thresholds=t)
    np.testing.assert_array_equal(fit.thresholds, t)
    np.testing.assert_array_equal(fit.n_genes, ref["nonzero"])
    np.testing.assert_array_equal(fit.train_errors, (ref["yhat"] != codes[None, :]).sum(axis=1))


# ----------------------------------------------------------------------------- worker processes


def _toy(n_cr=10, n_nr=8, p=60, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(p, n_cr + n_nr))
    X[:5, n_cr:] += 1.5
    cols = [f"s{i}" for i in range(n_cr + n_nr)]
    y = pd.Series(["CR"] * n_cr + ["NR"] * n_nr, index=cols)
    return pd.DataFrame(X, index=[f"g{i}" for i in range(p)], columns=cols), y


def test_nested_loocv_is_the_same_in_worker_processes():
    X, y = _toy()
    one = pam.nested_loocv(X, y, n_jobs=1)
    two = pam.nested_loocv(X, y, n_jobs=2)
    pd.testing.assert_frame_equal(one.predictions, two.predictions, check_exact=True)
    assert one.n_correct == two.n_correct


@pytest.mark.parametrize("nested", [False, True])
def test_permutation_pvalue_is_the_same_in_worker_processes(nested):
    X, y = _toy(n_cr=6, n_nr=5, p=40)
    one = pam.permutation_pvalue(X, y, n_perm=7, seed=11, nested=nested, n_jobs=1)
    two = pam.permutation_pvalue(X, y, n_perm=7, seed=11, nested=nested, n_jobs=2)
    assert np.array_equal(one["null"], two["null"]) and one["p_value"] == two["p_value"]
    assert one["observed"] == two["observed"]


def test_parallel_jobs_rule(monkeypatch):
    monkeypatch.delenv("HELPERS_PAM_JOBS", raising=False)
    assert pam.parallel_jobs(None, pam.PARALLEL_MIN_WORK / 2) == 1  # small: stay in this process
    big = pam.parallel_jobs(None, pam.PARALLEL_MIN_WORK * 2)
    assert big == min(2, __import__("os").cpu_count() or 1)
    assert pam.parallel_jobs(3, 1.0) == 3  # an explicit count wins
    monkeypatch.setenv("HELPERS_PAM_JOBS", "1")
    assert pam.parallel_jobs(None, pam.PARALLEL_MIN_WORK * 10) == 1
    monkeypatch.setenv("HELPERS_PAM_JOBS", "two")
    with pytest.raises(InputError, match="HELPERS_PAM_JOBS"):
        pam.parallel_jobs(None, 1.0)
    with pytest.raises(InputError, match="n_jobs"):
        pam.parallel_jobs(0, 1.0)


# ----------------------------------------------------------------------------- folds: loo, k, auto


def _class_counts(codes, fold):
    return np.bincount(np.asarray(codes)[fold], minlength=int(np.max(codes)) + 1)


@pytest.mark.parametrize("sizes", [(22, 9), (217, 93), (5, 5), (7, 3, 12)])
@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_balanced_folds_partition_and_balance(sizes, k):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(0).shuffle(codes)  # classes interleaved, not in blocks
    for seed in range(5):
        folds = pam.balanced_folds(codes, k, seed)
        k_eff = min(k, max(sizes))  # pamr lowers k to the largest class
        assert len(folds) == k_eff
        allidx = np.concatenate(folds)
        assert sorted(allidx.tolist()) == list(range(len(codes)))  # each sample exactly once
        for f in folds:
            expected = np.asarray(sizes) / k_eff
            assert np.all(np.abs(_class_counts(codes, f) - expected) < 1), (f, expected)


def test_balanced_folds_refuse_a_fold_that_is_not_balanced():
    """The balance rule can say no: blocked (unshuffled) folds of sorted labels break it."""
    codes = np.repeat([0, 1], [22, 9])
    blocked = np.array_split(np.arange(31), 3)
    assert any(np.any(np.abs(_class_counts(codes, f) - np.array([22, 9]) / 3) >= 1) for f in blocked)


def test_balanced_folds_depend_on_the_seed_and_nothing_else():
    codes = np.repeat([0, 1], [40, 20])
    a = pam.balanced_folds(codes, 5, 1)
    b = pam.balanced_folds(codes, 5, 1)
    c = pam.balanced_folds(codes, 5, 2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))
    named = pam.balanced_folds(np.where(codes == 0, "CR", "NR"), 5, 1)  # labels, not codes: same folds
    assert all(np.array_equal(u, v) for u, v in zip(a, named, strict=True))
    # the expression values and the sample names play no part in cv()'s folds
    rng = np.random.default_rng(0)
    y = pd.Series(np.where(codes == 0, "CR", "NR"), index=[f"S{i}" for i in range(60)])
    X1 = pd.DataFrame(rng.normal(size=(30, 60)), index=[f"G{i}" for i in range(30)], columns=y.index)
    X2 = pd.DataFrame(rng.normal(size=(30, 60)) * 3 + 1, index=X1.index, columns=[f"T{i}" for i in range(60)])
    f1 = pam.cv(X1, y, folds=5, seed=9).folds
    f2 = pam.cv(X2, y.to_numpy(), folds=5, seed=9).folds
    f3 = pam.cv(X1, y, folds=5, seed=10).folds
    assert all(np.array_equal(u, v) for u, v in zip(f1, f2, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(f1, f3, strict=True))


def test_balanced_folds_every_sample_moves_over_seeds():
    """Over many seeds each sample shares a fold with each same-class sample about as often as
    1 in k (a fixed or blocked dealing would not): a check of the randomization, in expectation."""
    codes = np.repeat([0, 1], [12, 8])
    k, n_seeds = 4, 400
    together = np.zeros((20, 20))
    for s in range(n_seeds):
        for f in pam.balanced_folds(codes, k, s):
            together[np.ix_(f, f)] += 1
    same = codes[:, None] == codes[None, :]
    off = same & ~np.eye(20, dtype=bool)
    rate = together[off] / n_seeds
    # 12 CR in 4 folds of 3: a CR partner shares the fold with probability 2/11; NR (2 per fold): 1/7
    want = np.where(codes[np.nonzero(off)[0]] == 0, 2 / 11, 1 / 7)
    assert np.max(np.abs(rate - want)) < 0.08


def test_cv_scheme_auto_and_bad_values():
    assert pam.cv_scheme("auto", 31) == "loo"
    assert pam.cv_scheme("auto", pam.AUTO_LOO_MAX_N) == "loo"
    assert pam.cv_scheme("auto", pam.AUTO_LOO_MAX_N + 1) == pam.AUTO_K == 10
    assert pam.cv_scheme("auto", 1000) == 10
    assert pam.cv_scheme("loo", 1000) == "loo"
    assert pam.cv_scheme(5, 31, 22) == 5 and pam.cv_scheme(np.int64(3), 31) == 3
    for bad in ("ten", "LOO", 1, 0, -3, 2.5, True, None, [3]):
        with pytest.raises(InputError, match="folds"):
            pam.cv_scheme(bad, 31, 22)
    with pytest.raises(InputError, match=r"2\.\.22"):
        pam.cv_scheme(23, 31, 22)  # more folds than the largest class: refused, not lowered
    X, y = toy()
    with pytest.raises(InputError, match="folds"):
        pam.cv(X, y, folds=1)
    with pytest.raises(InputError, match="folds"):
        pam.nested_cv(X, y, folds="tenfold")
    with pytest.raises(InputError, match="folds"):
        pam.permutation_pvalue(X, y, n_perm=3, folds=0)
    with pytest.raises(InputError, match="n_perm"):
        pam.permutation_pvalue(X, y, n_perm=2.5)


def test_auto_is_leave_one_out_on_the_golden_fixtures(golden):
    """31 samples: 'auto' runs pamr's leave-one-out exactly (R's cv errors), and the nested and
    permutation loops are those of leave-one-out, bit for bit."""
    X, y, fit = golden["X"], golden["y"], golden["fit"]
    auto = pam.cv(X, y, fit, folds="auto", seed=123)
    assert all(len(f) == 1 for f in auto.folds)
    np.testing.assert_array_equal(auto.errors, golden["ref_cv"]["cv_errors"].to_numpy())
    np.testing.assert_array_equal(auto.prob, golden["cv"].prob)
    if golden["case"] == "counts_nobatch":  # one case is enough for the slower loops
        a = pam.nested_cv(X, y, folds="auto", seed=5)
        b = pam.nested_loocv(X, y)
        pd.testing.assert_frame_equal(a.predictions, b.predictions, check_exact=True)
        assert a.folds == "loo"
        p1 = pam.permutation_pvalue(X, y, n_perm=5, seed=3, folds="auto")
        p2 = pam.permutation_pvalue(X, y, n_perm=5, seed=3, folds="loo")
        assert np.array_equal(p1["null"], p2["null"]) and p1["observed"] == p2["observed"]


def _big(n_cr=140, n_nr=60, p=40, shift=1.0, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(p, n_cr + n_nr))
    x[:4, n_cr:] += shift
    cols = [f"S{i}" for i in range(n_cr + n_nr)]
    y = pd.Series(["CR"] * n_cr + ["NR"] * n_nr, index=cols)
    return pd.DataFrame(x, index=[f"G{i}" for i in range(p)], columns=cols), y


def test_auto_is_tenfold_at_large_n():
    X, y = _big()
    c = pam.cv(X, y, folds="auto", seed=4)
    assert len(c.folds) == 10 and sorted(np.concatenate(c.folds).tolist()) == list(range(200))
    for f in c.folds:
        assert _class_counts((y == "NR").to_numpy().astype(int), f).tolist() == [14, 6]
    assert pam.nested_cv(X, y, folds="auto", seed=4).folds == 10
    assert pam.permutation_pvalue(X, y, n_perm=2, seed=4, folds="auto")["folds"] == 10


def test_kfold_cv_matches_direct_refits_three_classes():
    """The k-fold refits (merged per-fold statistics) equal pamr's per-fold nsc on the training part."""
    rng = np.random.default_rng(8)
    p, sizes = 70, (9, 7, 11)
    codes = np.repeat(np.arange(3), sizes)
    x = rng.normal(size=(p, codes.size)) * rng.uniform(0.5, 3, size=(p, 1)) + 4
    x[:6, codes == 1] += 1.5
    x[6:9, codes == 2] -= 2.0
    cols = [f"S{i}" for i in range(codes.size)]
    X = pd.DataFrame(x, index=[f"G{i}" for i in range(p)], columns=cols)
    y = pd.Series(np.array(["A", "B", "C"])[codes], index=cols)
    fit = pam.train(X, y)
    c = pam.cv(X, y, fit, folds=4, seed=2)
    for f in c.folds:
        tr = np.setdiff1d(np.arange(codes.size), f)
        r = pam._nsc_reference(
            x[:, tr], codes[tr], 3, x[:, f], thresholds=fit.thresholds, prior=fit.prior, se_scale=fit.se_scale
        )
        np.testing.assert_array_equal(c.pred.iloc[f].to_numpy(), np.array(["A", "B", "C"], object)[r["yhat"].T])
        np.testing.assert_allclose(c.prob[f], np.transpose(r["prob"], (1, 2, 0)), rtol=0, atol=1e-12)


def test_nested_kfold_matches_the_workflow_written_with_the_public_api():
    X, y = _big(n_cr=30, n_nr=20, p=30, shift=1.2)
    codes = (y == "NR").to_numpy().astype(int)
    res = pam.nested_cv(X, y, folds=4, seed=6)
    plan = pam._nested_plan(codes, 2, 4, pam._fold_rng(6, pam.STREAM_NESTED))
    for test, inner in plan:
        tr = np.setdiff1d(np.arange(50), test)
        Xtr, ytr = X.iloc[:, tr], y.iloc[tr]
        fit = pam.train(Xtr, ytr)
        idx, thr = pam.choose_threshold(pam.cv(Xtr, ytr, fit, folds=inner))
        want = pam.predict(fit, X.iloc[:, test], thr)
        got = res.predictions["pred"].iloc[test]
        assert got.tolist() == want.tolist()
        np.testing.assert_allclose(res.predictions["threshold"].iloc[test].to_numpy(), thr, rtol=1e-12)
    assert res.n_correct == int((res.predictions["pred"] == res.predictions["truth"]).sum())


def test_nested_kfold_on_noise_is_not_inflated_over_seeds():
    """Pure noise: the nested 5-fold accuracy averages at most the majority baseline (+ slack)."""
    acc = []
    for s in range(6):
        rng = np.random.default_rng(100 + s)
        cols = [f"S{j}" for j in range(40)]
        X = pd.DataFrame(rng.normal(size=(60, 40)), index=[f"G{i}" for i in range(60)], columns=cols)
        y = pd.Series(["CR"] * 28 + ["NR"] * 12, index=cols)
        acc.append(pam.nested_cv(X, y, folds=5, seed=s).accuracy)
    assert np.mean(acc) <= 28 / 40 + 0.03


def test_nested_kfold_recovers_signal():
    X, y = _big(n_cr=40, n_nr=25, p=50, shift=3.0)
    assert pam.nested_cv(X, y, folds=5, seed=1).accuracy >= 0.95


def test_nested_kfold_refuses_folds_that_leave_a_class_too_small():
    X, y = toy(n_cr=12, n_nr=3)
    with pytest.raises(InputError, match="fewer than 2"):
        pam.nested_cv(X, y, folds=3, seed=0)


@pytest.mark.parametrize("nested", [False, True])
def test_kfold_permutation_pvalue_deterministic_and_the_same_in_workers(nested):
    X, y = _toy(n_cr=14, n_nr=10, p=40)
    one = pam.permutation_pvalue(X, y, n_perm=6, seed=11, nested=nested, folds=3, n_jobs=1)
    two = pam.permutation_pvalue(X, y, n_perm=6, seed=11, nested=nested, folds=3, n_jobs=2)
    assert np.array_equal(one["null"], two["null"]) and one["p_value"] == two["p_value"]
    assert one["observed"] == two["observed"] and one["folds"] == 3
    other = pam.permutation_pvalue(X, y, n_perm=6, seed=12, nested=nested, folds=3, n_jobs=1)
    assert not np.array_equal(one["null"], other["null"]) or one["observed"] != other["observed"]


def test_kfold_permutation_observed_is_the_threshold_choice_cv():
    """The observed statistic is the CV of :func:`pam.cv` with the same folds and seed (pamr's
    rule accuracy), and a real signal beats its shuffles while noise does not."""
    X, y = toy(p=60, n_cr=20, n_nr=14, shift=3.0, n_shift=6)
    r = pam.permutation_pvalue(X, y, n_perm=19, seed=5, folds=4)
    c = pam.cv(X, y, folds=4, seed=5)
    idx, _ = pam.choose_threshold(c)
    assert r["observed"] == pytest.approx(1 - c.errors[idx] / len(y), abs=1e-12)
    assert r["p_value"] == pytest.approx(1 / 20)
    noise = X.copy()
    noise.iloc[:, :] = np.random.default_rng(2).normal(size=X.shape)
    assert pam.permutation_pvalue(noise, y, n_perm=19, seed=5, folds=4)["p_value"] > 0.05


def test_parallel_jobs_no_workers_of_workers(monkeypatch):
    import multiprocessing as mp

    monkeypatch.delenv("HELPERS_PAM_JOBS", raising=False)
    assert pam.parallel_jobs(None, pam.PARALLEL_MIN_WORK * 10) == min(2, pam._usable_cpus())
    monkeypatch.setattr(mp, "parent_process", lambda: object())  # as inside a spawned worker
    assert pam.parallel_jobs(None, pam.PARALLEL_MIN_WORK * 10) == 1
    assert pam.parallel_jobs(2, 1.0) == 2  # an explicit count still wins


# ----------------------------------------------------------------------------- classifier.select with folds


def test_null_cv_errors_with_folds():
    from helpers.analysis import classifier as clf

    y = np.array(["CR"] * 4 + ["NR"] * 4)
    # fold 1 holds 3 CR: its training part (1 CR, 4 NR) calls NR, 3 errors; fold 2 (1 CR, 4 NR)
    # trains on 3 CR and 0 NR, calls CR: 4 errors
    assert clf.null_cv_errors(y, ["CR", "NR"], folds=[[0, 1, 2], [3, 4, 5, 6, 7]]) == 7
    assert clf.null_cv_errors(y, ["CR", "NR"], folds=[[i] for i in range(8)]) == clf.null_cv_errors(y, ["CR", "NR"])
    assert clf.null_cv_errors(y, ["CR", "NR"]) == 8


def test_select_with_kfold_and_its_words():
    from helpers.analysis import classifier as clf

    X, y = toy(p=60, n_cr=20, n_nr=14, shift=3.0, n_shift=6)
    sel = clf.select(X, y.to_numpy(), folds=4, seed=3)
    c = pam.cv(X, y, folds=4, seed=3)
    assert sel.folds == 4
    np.testing.assert_array_equal(sel.curve["cv_errors"].to_numpy(), c.errors)
    assert sel.null_errors == clf.null_cv_errors(y.to_numpy(), ["CR", "NR"], folds=c.folds)
    assert clf.select(X, y.to_numpy()).folds == "loo"
    t = clf.select(X, y.to_numpy(), folds=4, seed=3, target_n_genes=3)
    assert len(t.genes) == 3 and len(t.loo) == len(y)
    words = clf.cv_texts(10, "auto", 310)
    assert words["cv_name"].startswith("10-fold") and "310 patients" in words["cv_scheme_text"]
    assert "auto" in words["cv_scheme_text"] and "10-fold" in words["nested_inner_text"]
    loo = clf.cv_texts("loo", "auto", 31)
    assert loo["cv_name"] == "leave-one-out" and "other 30 patients" in loo["nested_inner_text"]
    assert "folds: 5" in clf.cv_texts(5, 5, 31)["cv_scheme_text"]
    assert clf.cv_label("loo") == "LOOCV" and clf.cv_label(10) == "10-fold CV"


def test_merged_fold_statistics_equal_the_two_pass_statistics():
    """The full fit inside a k-fold workflow takes its class statistics from the merged folds."""
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(37, 25)) * 10 + 1e3
    codes = np.repeat([0, 1, 2], [15, 12, 10])
    folds = pam.balanced_folds(codes, 4, 0)
    nk, cen, m2, total = pam._merged_stats(pam._fold_stats(xs, codes, 3, folds))
    want = pam._class_stats(xs, codes, 3)
    np.testing.assert_array_equal(nk, want[0])
    np.testing.assert_allclose(cen, want[1], rtol=1e-13)
    np.testing.assert_allclose(m2, want[2], rtol=1e-10)
    np.testing.assert_allclose(total, want[3], rtol=1e-13)
    assert not np.allclose(m2, want[2] * 1.001, rtol=1e-10)  # the tolerance can say no
