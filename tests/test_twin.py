"""The simulated twin: design, planted biology, determinism, speed, and the round trip through
the chapters' own code (Table 1 unshrunk into the twin comes back out of pamr)."""

import time

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.expression import log_expression
from helpers.data import twin as S
from helpers.data.cohort import Cohort
from helpers.engine.errors import InputError
from helpers.methods import pam

SIG = list(S.SIGNATURE_TABLE1)
TABLE1 = pd.DataFrame.from_dict(S.SIGNATURE_TABLE1, orient="index", columns=["centroid_CR", "centroid_NR", "sd"])
DEFAULT_SEED = 20220218  # global.seed of config/params.yml


@pytest.fixture(scope="module")
def universe():
    return S.default_universe()


@pytest.fixture(scope="module")
def programs():
    return S.load_programs()


@pytest.fixture(scope="module")
def twin(universe, programs):
    return S.simulate_cohort(S.preset("default"), universe, programs, seed=11)


def _chapter08(counts, samples):
    """What chapter 08 does with a cohort: log-CPM of the filtered genes, pamr fit, LOOCV over the
    grid, the largest threshold with the fewest errors."""
    X = log_expression(Cohort(counts=counts, samples=samples, meta={"kind": "counts"}))
    y = samples.loc[X.columns, "response"].astype(str).to_numpy()
    fit = pam.train(X, y, classes=["CR", "NR"])
    cvres = pam.cv(X, y, fit)
    idx, thr = pam.choose_threshold(cvres)
    return X, y, fit, cvres, idx, thr


@pytest.fixture(scope="module")
def default_round_trip(universe, programs):
    counts, samples, truth = S.simulate_cohort(S.preset("default"), universe, programs, seed=DEFAULT_SEED)
    return (counts, samples, truth) + _chapter08(counts, samples)


# ------------------------------------------------------------------------------ design and counts


def test_design_counts_per_cohort_and_class(twin):
    counts, samples, truth = twin
    assert counts.shape == (20000, 31)
    tab = samples.groupby(["cohort", "response"]).size().to_dict()
    assert tab == {
        ("GSE153670-like", "CR"): 19,
        ("GSE153670-like", "NR"): 8,
        ("PRJCA000750-like", "CR"): 3,
        ("PRJCA000750-like", "NR"): 1,
    }
    assert list(samples.columns) == ["sample_id", "cohort", "response", "age", "sex", "library_size"]
    assert list(samples.index) == list(counts.columns)
    gse = samples.cohort == "GSE153670-like"
    assert samples.loc[gse, "age"].isna().all() and samples.loc[gse, "sex"].isna().all()
    assert samples.loc[~gse, "age"].notna().all() and set(samples.loc[~gse, "sex"]) <= {"F", "M"}
    assert (samples.library_size == counts.sum(axis=0)).all()


def test_counts_realistic(twin):
    counts, samples, truth = twin
    assert counts.dtypes.unique().tolist() == [np.int64]
    assert (counts.to_numpy() >= 0).all()
    lib = counts.sum(axis=0)
    assert 10e6 < lib.median() < 35e6
    assert len(set(counts.index)) == 20000 and counts.index.is_monotonic_increasing
    nb = truth[truth.program != "signature"]
    assert nb.loc[nb.base_mean < 5, "dispersion"].median() > 2 * nb.loc[nb.base_mean > 500, "dispersion"].median()
    cpm = counts / lib * 1e6
    frac = ((cpm > 1).sum(axis=1) >= 8).mean()
    assert 0.6 < frac < 0.85


def test_planted_biology(twin, programs):
    counts, samples, truth = twin
    t = truth.set_index("gene")
    by = t.groupby("program")["log2fc_cr_vs_nr"]
    for prog in ("tcell_activation", "chemokine", "interleukin", "early_memory", "background_up"):
        assert by.min()[prog] > 0, prog
    for prog in ("cell_cycle_checkpoint", "background_down"):
        assert by.max()[prog] < 0, prog
    n_up = int((t.log2fc_cr_vs_nr > 0).sum())
    n_down = int((t.log2fc_cr_vs_nr < 0).sum())
    assert 4 < n_down / n_up < 15  # planted; the DEG rule calls about 5x more down than up
    assert set(t.index[t.program == "signature"]) == set(SIG)
    un = S.unshrink(S.SIGNATURE_TABLE1, S.DEFAULT_PARAMS["signature"]["delta"], truth.attrs["s0"], 22, 9)
    for g in SIG:  # the planted difference is Table 1's, unshrunk: larger than the printed one
        assert t.loc[g, "log2fc_cr_vs_nr"] == pytest.approx(un.loc[g, "mean_CR"] - un.loc[g, "mean_NR"])
        assert abs(t.loc[g, "log2fc_cr_vs_nr"]) > abs(TABLE1.loc[g, "centroid_CR"] - TABLE1.loc[g, "centroid_NR"])
    assert set(programs["chemokine"]) & set(S.default_universe()) <= set(counts.index)


def test_background_genes_are_low_variance(universe, programs):
    """With max_sd_quantile q the background DE genes come from the lower q of expected SDs: their
    observed within-class SD is below most unplanted genes' (200 background genes, 3 seeds;
    measured without the programme activity, which adds its own within-class spread)."""

    def medians(q, seed):
        p = S.preset("test")
        p["activity"] = {**p["activity"], "within_class_sd": 0.0}
        p["background"] = {**p["background"], "n_up": 0, "n_down": 200, "max_sd_quantile": q}
        counts, samples, truth = S.simulate_cohort(p, universe, programs, seed=seed)
        lc = np.log2(counts / counts.sum(axis=0) * 1e6 + 0.5)
        sd = pd.Series(S.pooled_sd(lc.to_numpy(), (samples.response == "CR").to_numpy()), index=lc.index)
        prog = truth.set_index("gene").program
        return sd[prog == "background_down"].median(), sd[prog == ""].quantile(0.3), sd[prog == ""].median()

    for seed in (1, 2, 3):
        bg, q30, med = medians(0.3, seed)
        assert bg < q30
        bg, q30, med = medians(1.0, seed)  # the must-fail side: drawn among all genes
        assert bg > q30 and abs(bg - med) < 0.1


def test_cohort_effect_is_a_parameter(universe, programs):
    p = S.preset("test", n_scale=20)
    p["cohort_effect"]["log2_sd"] = 1.0
    counts, samples, truth = S.simulate_cohort(p, universe, programs, seed=3)
    lcpm = np.log2(counts / counts.sum(axis=0) * 1e6 + 1)
    t = truth.set_index("gene")
    expressed = (t.base_mean > 200) & (t.program != "signature")
    b = (samples.cohort == "PRJCA000750-like").to_numpy()
    diff = lcpm.loc[expressed, b].mean(axis=1) - lcpm.loc[expressed, ~b].mean(axis=1)
    assert np.corrcoef(diff, t.loc[expressed, "cohort_shift_log2"])[0, 1] > 0.9


def test_deterministic_same_seed_identical(universe, programs):
    a = S.simulate_cohort(S.preset("test"), universe, programs, seed=42)
    b = S.simulate_cohort(S.preset("test"), universe, programs, seed=42)
    c = S.simulate_cohort(S.preset("test"), universe, programs, seed=43)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    assert a[2].attrs["s0"] == b[2].attrs["s0"]
    assert not a[0].equals(c[0])


def test_n_scale_and_speed(universe, programs):
    t0 = time.perf_counter()
    counts, samples, _ = S.simulate_cohort(S.preset("default"), universe, programs, seed=1)
    assert time.perf_counter() - t0 < 6
    counts, samples, _ = S.simulate_cohort(S.preset("test", n_scale=10), universe, programs, seed=1)
    assert counts.shape[1] == 310
    assert samples.groupby("response").size().to_dict() == {"CR": 220, "NR": 90}
    assert samples.sample_id.iloc[0] == "S001"
    counts, samples, _ = S.simulate_cohort(S.preset("test", n_scale=0.5), universe, programs, seed=1)
    assert samples.groupby("response").size().to_dict() == {"CR": 12, "NR": 5}  # 10 + 2 and 4 + 1


def test_class_size_rounding():
    assert [S.class_size(n, 0.5) for n in (19, 8, 3, 1, 0)] == [10, 4, 2, 1, 0]
    assert [S.class_size(n, 2) for n in (19, 8, 3, 1, 0)] == [38, 16, 6, 2, 0]


def test_test_preset_small(universe, programs):
    counts, samples, truth = S.simulate_cohort(S.preset("test"), universe, programs, seed=1)
    assert counts.shape == (2000, 31)


def test_bad_params_are_input_errors(universe, programs):
    with pytest.raises(InputError, match="unknown parameter"):
        S.check_params({**S.preset("test"), "n_gens": 5})
    with pytest.raises(InputError, match="unknown simulation preset"):
        S.preset("huge")
    with pytest.raises(InputError, match="no gene list given"):
        S.simulate_cohort(S.preset("test"), universe, {"chemokine": ["CCL5"]}, seed=1)
    with pytest.raises(InputError, match="smaller than"):
        S.simulate_cohort(S.preset("test", n_genes=10), universe, programs, seed=1)
    with pytest.raises(InputError, match="unknown parameter"):
        S.merge_params(S.preset("test"), {"background": {"n_upp": 3}})
    merged = S.merge_params(S.preset("test"), {"background": {"n_up": 3}})
    assert merged["background"] == {**S.preset("test")["background"], "n_up": 3}
    for key, value, match in (("delta", -1.0, "delta"), ("co_variation", 1.0, "co_variation"), ("s0", 0.0, "s0")):
        p = S.preset("test")
        p["signature"] = {**p["signature"], key: value}
        with pytest.raises(InputError, match=match):
            S.check_params(p)
    p = S.preset("test")
    p["background"] = {**p["background"], "max_sd_quantile": 0.0}
    with pytest.raises(InputError, match="max_sd_quantile"):
        S.check_params(p)
    p = S.preset("test")
    p["activity"] = {**p["activity"], "nr_sd_ratio": 0.0}
    with pytest.raises(InputError, match="nr_sd_ratio"):
        S.check_params(p)
    p = S.preset("test")
    p["signature"] = {**p["signature"], "s0": 2.5}  # above LAMB4's S+S0 = 2.18: its own SD would be negative
    with pytest.raises(InputError, match="LAMB4"):
        S.simulate_cohort(p, universe, programs, seed=1)


def test_signature_constant_matches_paper_table():
    """The twin reads data/paper/table1.tsv (the paper's Table 1)."""
    from helpers.engine.paths import PAPER

    t = pd.read_csv(PAPER / "table1.tsv", sep="\t", index_col=0)
    assert list(t.index) == SIG
    for g, vals in S.SIGNATURE_TABLE1.items():
        assert t.loc[g].tolist() == pytest.approx(vals)


def test_twin_pca_shows_no_strong_cohort_or_response_structure(twin):
    """As in the paper's Fig. 1B: on all genes neither cohort nor response dominates PC1/PC2."""
    from helpers.methods.pca import batch_diagnostics, log_cpm, pca

    counts, samples, _ = twin
    cpm = counts / counts.sum(axis=0) * 1e6
    keep = (cpm > 1).sum(axis=1) >= 8
    scores, var, _ = pca(log_cpm(counts.loc[keep]))
    d = batch_diagnostics(scores, samples)
    assert d.loc["cohort", "r2_pooled"] < 0.3 and d.loc["response", "r2_pooled"] < 0.3
    assert d.loc["cohort", "silhouette"] < 0.25 and d.loc["response", "silhouette"] < 0.25


# ------------------------------------------------------------------------------ the pieces of the signature


def test_unshrink_is_the_inverse_of_pamr_on_data_with_those_moments():
    """Gaussian data with the unshrunken class means and SDs (plus null genes whose SD is s0, so
    that pamr's median-s0 is s0): pamr at threshold Delta prints Table 1 back, to rounding."""
    delta, s0, n_cr, n_nr = 2.6, 0.7, 22, 9
    un = S.unshrink(S.SIGNATURE_TABLE1, delta, s0, n_cr, n_nr)
    rng = np.random.default_rng(0)
    is_cr = np.r_[np.ones(n_cr, bool), np.zeros(n_nr, bool)]
    f, c = S.activity_factor(rng, is_cr, 1.0)
    dev = S.signature_deviations(rng, np.ones(14), is_cr, 0.3, True, f, c)
    sig = (
        np.where(is_cr, un["mean_CR"].to_numpy()[:, None], un["mean_NR"].to_numpy()[:, None])
        + un["sd_within"].to_numpy()[:, None] * dev
    )
    null = S.signature_deviations(rng, np.ones(999), is_cr, 0.0, True, f, c) * s0 + 5.0
    X = pd.DataFrame(
        np.vstack([sig, null]), index=SIG + [f"N{i}" for i in range(999)], columns=[f"s{i}" for i in range(31)]
    )
    y = np.where(is_cr, "CR", "NR")
    fit = pam.train(X, y, classes=["CR", "NR"])
    assert fit.s0 == pytest.approx(s0, rel=1e-9)
    cen = pam.shrunken_centroids(fit, delta).loc[SIG]
    assert cen["CR"].to_numpy() == pytest.approx(TABLE1["centroid_CR"].to_numpy(), abs=1e-9)
    assert cen["NR"].to_numpy() == pytest.approx(TABLE1["centroid_NR"].to_numpy(), abs=1e-9)
    assert pd.Series(fit.sd, index=fit.genes).loc[SIG].to_numpy() == pytest.approx(TABLE1["sd"].to_numpy(), rel=1e-9)
    assert np.abs(fit.d[:14, 0]) == pytest.approx(np.abs(un["d"].to_numpy()), rel=1e-9)
    # Delta = 0 plants the printed centroids themselves: the old twin, whose signature pamr shrinks away
    flat = S.unshrink(S.SIGNATURE_TABLE1, 0.0, s0, n_cr, n_nr)
    assert flat["mean_CR"].to_numpy() == pytest.approx(TABLE1["centroid_CR"].to_numpy())
    assert (np.abs(un["d"]) - np.abs(un["d_shrunk"])).to_numpy() == pytest.approx(np.full(14, delta))


def test_signature_deviations_moments_covariation_and_class_spread():
    rng = np.random.default_rng(1)
    is_cr = np.r_[np.ones(220, bool), np.zeros(90, bool)]
    f, c = S.activity_factor(rng, is_cr, 1.8)
    assert S.pooled_sd(f[None, :], is_cr)[0] == pytest.approx(1.0)
    assert f[~is_cr].std(ddof=1) / f[is_cr].std(ddof=1) == pytest.approx(1.8)
    z = S.signature_deviations(rng, np.ones(200), is_cr, 0.4, True, f, c)
    for m in (is_cr, ~is_cr):
        assert np.abs(z[:, m].mean(axis=1)).max() < 1e-12
    assert S.pooled_sd(z, is_cr) == pytest.approx(np.ones(200))
    zc = z[:, is_cr] - z[:, is_cr].mean(axis=1, keepdims=True)
    r = np.corrcoef(zc)[np.triu_indices(200, 1)].mean()
    assert 0.3 < r < 0.5  # co_variation 0.4
    assert 1.6 < np.median(z[:, ~is_cr].std(axis=1) / z[:, is_cr].std(axis=1)) < 2.0
    z0 = S.signature_deviations(rng, np.ones(200), is_cr, 0.0, True, f, c)
    r0 = np.corrcoef(z0[:, is_cr])[np.triu_indices(200, 1)].mean()
    assert abs(r0) < 0.05  # the must-fail side: no co-variation without it
    # a gene higher in CR (sign -1) moves against the factor
    zs = S.signature_deviations(rng, np.r_[np.ones(100), -np.ones(100)], is_cr, 0.9, True, f, c)
    assert np.corrcoef(zs[:100].mean(axis=0), zs[100:].mean(axis=0))[0, 1] < -0.9


def test_expected_counts_invert_edger_log_cpm():
    from helpers.methods.edger import cpm

    lib = np.array([1e7, 2e7, 3.5e7])
    v = np.array([[-1.0, 2.0, 9.5], [4.0, 0.0, 6.0]])
    y = S.expected_counts_for_log_cpm(v, lib)
    assert cpm(y, lib_size=lib, log=True, prior_count=2) == pytest.approx(v, abs=1e-12)
    floor = S.expected_counts_for_log_cpm(np.array([[-8.0, -8.0, -8.0]]), lib)
    assert (floor == 0).all()  # below log2 of the prior: no count can say it


def test_measured_s0_is_what_pamr_computes(default_round_trip):
    """The s0 the signature is unshrunk with (median pooled SD, plain library sizes) is the s0
    chapter 08's pamr fit computes on the twin (TMM, filterByExpr by group) to within 3%."""
    counts, samples, truth, X, y, fit, *_ = default_round_trip
    assert truth.attrs["s0"] == pytest.approx(fit.s0, rel=0.03)


# ------------------------------------------------------------------------------ round trip (default seed)


def test_round_trip_default_seed(default_round_trip):
    """Twin -> chapter 08's code, on the book's seed. At the CV-chosen threshold PAM keeps at
    least 12 of the 14. Table 1 is pamr's fit at the threshold that keeps 14 genes: there the 14
    are (at least 12 of) the top 14, their shrunken centroids within 0.25 of Table 1 and their
    s_i + s0 within 20% of Table 1's S_i + S0."""
    counts, samples, truth, X, y, fit, cvres, idx, thr = default_round_trip
    assert len(set(pam.surviving_genes(fit, thr)) & set(SIG)) >= 12
    t14 = pam.threshold_for_n_genes(fit, 14)
    kept = [g for g in SIG if g in set(pam.surviving_genes(fit, t14))]
    assert len(kept) >= 12
    cen = pam.shrunken_centroids(fit, t14).loc[kept]
    assert np.abs(cen["CR"] - TABLE1.loc[kept, "centroid_CR"]).max() <= 0.25
    assert np.abs(cen["NR"] - TABLE1.loc[kept, "centroid_NR"]).max() <= 0.25
    sd = pd.Series(fit.sd, index=fit.genes).loc[kept]  # PamFit.sd already holds s_i + s0
    assert (np.abs(sd / TABLE1.loc[kept, "sd"] - 1)).max() <= 0.20


def test_round_trip_fails_when_the_printed_centroids_are_planted(universe, programs):
    """The must-fail side: Delta = 0 plants Table 1's shrunken centroids as class means (the old
    twin); the CV-chosen model then keeps at most a few of the 14."""
    p = S.preset("default")
    p["signature"] = {**p["signature"], "delta": 0.0}
    counts, samples, truth = S.simulate_cohort(p, universe, programs, seed=DEFAULT_SEED)
    X, y, fit, cvres, idx, thr = _chapter08(counts, samples)
    assert len(set(pam.surviving_genes(fit, thr)) & set(SIG)) < 12


@pytest.mark.slow
def test_round_trip_over_twenty_seeds():
    """On >= 16 of 20 twins (seeds 1..20) PAM at the CV-chosen threshold keeps >= 12 of the 14,
    and the naive LOOCV accuracy averages within two patients of 28/31. Table 1's frozen model
    on the same twins is reported with its accuracy distribution (printed with -s), and it must
    beat calling everyone CR on average: the prior term 2 log(22/9) does not swamp the shrunken
    distances once the class means are the unshrunken ones."""
    from helpers.analysis import twins

    st = twins.chapter_settings("default")
    rows = twins.run_twins(st, 20, 1, n_jobs=2, what="pam")
    assert int((rows["pam_signature_overlap"] >= 12).sum()) >= 16
    mean_correct = rows["pam_loocv_accuracy_k"].mean()
    assert abs(mean_correct - 28) <= 2
    acc = rows["published_model_accuracy_k"]
    print("Table 1's model, correct of 31 over 20 twins:", acc.describe().round(2).to_dict())
    assert acc.mean() > 22
