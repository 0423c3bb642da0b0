"""The simulated twin: design, planted biology, determinism, speed."""

import time

import numpy as np
import pandas as pd
import pytest

from helpers.data import twin as S
from helpers.engine.errors import InputError


@pytest.fixture(scope="module")
def universe():
    return S.default_universe()


@pytest.fixture(scope="module")
def programs():
    return S.load_programs()


@pytest.fixture(scope="module")
def twin(universe, programs):
    return S.simulate_cohort(S.preset("default"), universe, programs, seed=11)


def test_design_counts_per_cohort_and_class(twin):
    counts, samples, truth = twin
    assert counts.shape == (20000, 31)
    tab = samples.groupby(["cohort", "response"]).size().to_dict()
    assert tab == {("GSE153670-like", "CR"): 19, ("GSE153670-like", "NR"): 8,
                   ("PRJCA000750-like", "CR"): 3, ("PRJCA000750-like", "NR"): 1}
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
    # a mean-dispersion trend: low-count genes more overdispersed
    assert truth.loc[truth.base_mean < 5, "dispersion"].median() > 2 * truth.loc[truth.base_mean > 500,
                                                                                   "dispersion"].median()
    # about 60-85% of genes expressed at CPM > 1 in at least 8 samples
    cpm = counts / lib * 1e6
    frac = ((cpm > 1).sum(axis=1) >= 8).mean()
    assert 0.6 < frac < 0.85


def test_planted_biology(twin, programs):
    counts, samples, truth = twin
    t = truth.set_index("gene")
    by = t.groupby("program")["log2fc_cr_vs_nr"]
    for prog in ("tcell_activation", "chemokine", "interleukin"):
        assert by.min()[prog] > 0, prog
    assert by.max()["cell_cycle_checkpoint"] < 0
    n_up = int((t.log2fc_cr_vs_nr > 0).sum())
    n_down = int((t.log2fc_cr_vs_nr < 0).sum())
    assert 5 < n_down / n_up < 15  # planted; about 5x more are *called* down than up (power, noise)
    assert set(t.index[t.program == "signature"]) == set(S.SIGNATURE_TABLE1)
    for g, (c_cr, c_nr, _) in S.SIGNATURE_TABLE1.items():
        assert t.loc[g, "log2fc_cr_vs_nr"] == pytest.approx(c_cr - c_nr)
    # program genes are all in the universe
    assert set(programs["chemokine"]) & set(S.default_universe()) <= set(counts.index)


def test_signature_class_means_near_table1(universe, programs):
    """At 10x the design size, class means of log2 CPM recover Table 1's centroids."""
    p = S.preset("test", n_scale=10)
    counts, samples, truth = S.simulate_cohort(p, universe, programs, seed=5)
    lcpm = np.log2(counts / counts.sum(axis=0) * 1e6 + 0.5)
    cr = (samples.response == "CR").to_numpy()
    sd_scale = p["signature"]["sd_scale"]
    for g, (c_cr, c_nr, s) in S.SIGNATURE_TABLE1.items():
        assert lcpm.loc[g, cr].mean() == pytest.approx(c_cr, abs=0.35), g
        assert lcpm.loc[g, ~cr].mean() == pytest.approx(c_nr, abs=0.45), g
        assert lcpm.loc[g, cr].std() == pytest.approx(sd_scale * s, rel=0.3), g


def test_cohort_effect_is_a_parameter(universe, programs):
    p = S.preset("test", n_scale=20)
    p["cohort_effect"]["log2_sd"] = 1.0
    counts, samples, truth = S.simulate_cohort(p, universe, programs, seed=3)
    lcpm = np.log2(counts / counts.sum(axis=0) * 1e6 + 1)
    expressed = truth.set_index("gene").base_mean > 200
    b = (samples.cohort == "PRJCA000750-like").to_numpy()
    diff = (lcpm.loc[expressed, b].mean(axis=1) - lcpm.loc[expressed, ~b].mean(axis=1))
    shift = truth.set_index("gene").loc[expressed, "cohort_shift_log2"]
    assert np.corrcoef(diff, shift)[0, 1] > 0.9


def test_deterministic_same_seed_identical(universe, programs):
    a = S.simulate_cohort(S.preset("test"), universe, programs, seed=42)
    b = S.simulate_cohort(S.preset("test"), universe, programs, seed=42)
    c = S.simulate_cohort(S.preset("test"), universe, programs, seed=43)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    assert not a[0].equals(c[0])


def test_n_scale_and_speed(universe, programs):
    t0 = time.perf_counter()
    counts, samples, _ = S.simulate_cohort(S.preset("default"), universe, programs, seed=1)
    assert time.perf_counter() - t0 < 5
    counts, samples, _ = S.simulate_cohort(S.preset("test", n_scale=10), universe, programs, seed=1)
    assert counts.shape[1] == 310
    assert samples.groupby("response").size().to_dict() == {"CR": 220, "NR": 90}
    assert samples.sample_id.iloc[0] == "S001"


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
    p = S.preset("test", n_genes=10)
    with pytest.raises(InputError, match="smaller than"):
        S.simulate_cohort(p, universe, programs, seed=1)
    with pytest.raises(InputError, match="unknown parameter"):
        S.merge_params(S.preset("test"), {"background": {"n_upp": 3}})
    merged = S.merge_params(S.preset("test"), {"background": {"n_up": 3}})
    assert merged["background"] == {**S.preset("test")["background"], "n_up": 3}


def test_gamma_shape_solves_log_sd():
    from scipy.special import polygamma

    for sd in (0.3, 1.0, 2.5):
        k = S.gamma_shape_for_log_sd(sd)
        assert float(polygamma(1, k)) == pytest.approx(sd ** 2, rel=1e-9)


def test_signature_constant_matches_paper_table():
    """The defaults mirror data/paper/table1.tsv (the paper's Table 1)."""
    from helpers.engine.paths import PAPER

    path = PAPER / "table1.tsv"
    if not path.exists():
        pytest.skip("data/paper/table1.tsv not present")
    t = pd.read_csv(path, sep="\t", index_col=0)
    assert list(t.index) == list(S.SIGNATURE_TABLE1)
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
