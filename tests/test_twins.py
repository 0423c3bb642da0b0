"""Claims over many twins (helpers.analysis.twins): the shared filter/TMM path equals the
chapters' own, the per-twin claim values are judged by the scorecard's rules, shares, the
power view, the prior-term check and the design-search summary."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import twins
from helpers.analysis.de import call_degs, run_de
from helpers.analysis.expression import log_expression
from helpers.analysis.scorecard import load_claims
from helpers.data import twin as T
from helpers.data.cohort import Cohort
from helpers.engine import memo, paths
from helpers.engine.errors import InputError
from helpers.methods import pam


@pytest.fixture(scope="module")
def small():
    counts, samples, truth = T.simulate_cohort(T.preset("test"), T.default_universe(), T.load_programs(), seed=3)
    return counts, samples, truth


@pytest.fixture(scope="module")
def settings():
    return twins.chapter_settings("test")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every twin run of these tests caches in its own folder, never in the checkout's results/."""
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HELPERS_CACHE", raising=False)
    return tmp_path / "cache"


def _rows(settings, n, seed, **kw):
    return twins.run_twins(settings, n, seed, **kw).drop(columns="seconds")


def test_one_filter_and_tmm_equal_the_chapters_paths(small):
    """prepare + deg_table give chapter 03's limma-voom table; prepare's log-CPM is chapter 08's."""
    counts, samples, _ = small
    prep = twins.prepare(counts, samples)
    ours = twins.deg_table(prep)
    ch03 = call_degs(run_de(counts, samples, method="limma-voom"))
    pd.testing.assert_index_equal(ours.index, ch03.index)
    for c in ("logFC", "AveExpr", "stat", "P.Value", "adj.P.Val"):
        np.testing.assert_allclose(ours[c].to_numpy(), ch03[c].to_numpy(), rtol=1e-10, atol=1e-12)
    assert (ours["direction"].astype(str) == ch03["direction"].astype(str)).all()
    ch08 = log_expression(Cohort(counts=counts, samples=samples, meta={"kind": "counts"}))
    pd.testing.assert_frame_equal(prep.logcpm, ch08, check_exact=False, rtol=1e-12, check_names=False)


def test_pam_measures_are_chapter_08s(small):
    counts, samples, _ = small
    X = log_expression(Cohort(counts=counts, samples=samples, meta={"kind": "counts"}))
    y = samples.loc[X.columns, "response"].to_numpy()
    m = twins.pam_measures(X, y, nested=True)
    fit = pam.train(X, y, classes=["CR", "NR"])
    cvres = pam.cv(X, y, fit)
    idx, thr = pam.choose_threshold(cvres)
    genes = pam.surviving_genes(fit, thr)
    assert m["pam_threshold"] == thr and m["pam_n_genes"] == len(genes)
    assert m["pam_signature_overlap"] == len(set(genes) & set(T.SIGNATURE_TABLE1))
    assert m["pam_loocv_accuracy_k"] == int((cvres.pred.iloc[:, idx].to_numpy() == y).sum())
    assert m["pam_loocv_sensitivity_n"] == 22 and m["pam_loocv_specificity_n"] == 9
    assert m["nested_accuracy_k"] == pam.nested_loocv(X, y, classes=["CR", "NR"]).n_correct


def test_deg_recall_counts_direction_and_filtered_genes():
    table = pd.DataFrame({"direction": ["up", "down", "up", "ns", "down"]}, index=list("abcde"))
    truth = pd.DataFrame({"gene": list("abcdefg"), "log2fc_cr_vs_nr": [1.0, 1.0, 0.0, -1.0, -0.2, 0.9, -2.0]})
    r = twins.deg_recall(table, truth, fc_min=1.5)
    # planted with |lfc| >= log2 1.5: a (up, hit), b (called down: miss), d (ns: miss), f, g (filtered out: miss)
    assert r["n_planted"] == 5 and r["deg_recall"] == pytest.approx(1 / 5)
    # called: a, b, c, e; planted at all: a, b, e
    assert r["deg_precision"] == pytest.approx(3 / 4)


def test_claim_values_and_shares_use_the_scorecards_rules():
    claims = load_claims(paths.PAPER / "claims.yml")
    rows = pd.DataFrame(
        [
            {
                "twin": 0,
                "n_up": 57,
                "n_down": 302,
                "n_deg": 359,
                "pam_n_genes": 14,
                "pam_signature_overlap": 14,
                "pam_loocv_accuracy_k": 28,
                "pam_loocv_accuracy_n": 31,
                "more_down_than_up": True,
            },
            {
                "twin": 1,
                "n_up": 60,
                "n_down": 340,
                "n_deg": 400,
                "pam_n_genes": 30,
                "pam_signature_overlap": 11,
                "pam_loocv_accuracy_k": 29,
                "pam_loocv_accuracy_n": 31,
                "more_down_than_up": False,
            },
            {
                "twin": 2,
                "n_up": 20,
                "n_down": 100,
                "n_deg": 120,
                "pam_n_genes": 3,
                "pam_signature_overlap": 0,
                "pam_loocv_accuracy_k": 31,
                "pam_loocv_accuracy_n": 31,
                "more_down_than_up": "not measured: no DEG",
            },
        ]
    )
    assert twins.claim_values(rows.iloc[0])["pam_loocv_accuracy"] == "28/31"
    status, shares = twins.claim_shares(rows, claims)
    assert status.loc[0, "n_up"] == "reproduced" and status.loc[1, "n_up"] == "within tolerance"
    assert status.loc[2, "n_up"] == "differs"  # 20 is far outside 57 +- 6: the rule must say no
    assert status.loc[1, "n_down"] == "differs"  # 340 is more than 30 off 302
    assert (
        status.loc[1, "pam_signature_overlap"] == "within tolerance"
        and status.loc[2, "pam_signature_overlap"] == "differs"
    )
    assert status.loc[1, "pam_loocv_accuracy"] == "within tolerance"  # 29/31 is within 0.05 of 28/31
    assert status.loc[2, "pam_loocv_accuracy"] == "differs"  # 31/31 (two patients off) is not
    assert status.loc[2, "more_down_than_up"] == "not measured"
    s = shares.set_index("id")
    assert s.loc["n_up", "share_reproduced"] == pytest.approx(1 / 3)
    assert s.loc["n_up", "share_holds"] == pytest.approx(2 / 3)
    assert s.loc["pam_loocv_accuracy", "share_holds"] == pytest.approx(2 / 3)
    assert s.loc["more_down_than_up", "share_holds"] == pytest.approx(1 / 3)
    assert s.loc["more_down_than_up", "share_not_measured"] == pytest.approx(1 / 3)
    assert list(shares["id"]) == [c for c in twins.MEASURED_CLAIMS if c in s.index]


def test_chapter_settings_read_the_profile_and_the_callers_globals():
    st = twins.chapter_settings("test", {"n_genes": 1500}, p_max=0.05, cr="R", nr="N")
    assert st["simulate"]["n_genes"] == 1500 and st["simulate"]["labels"] == ["R", "N"]
    assert st["p_max"] == 0.05 and st["cr"] == "R"
    assert st["rules"]["n_perm"] >= 1 and st["pam"]["n_threshold"] == 30
    assert twins.chapter_settings("default")["simulate"]["n_genes"] == T.DEFAULT_PARAMS["n_genes"]
    with pytest.raises(InputError, match="unknown setting"):
        twins.chapter_settings("test", p_maxx=0.1)
    with pytest.raises(InputError, match="unknown parameter"):
        twins.chapter_settings("test", {"n_gens": 5})


@pytest.mark.slow
def test_run_twins_seeds_and_workers(settings, cache, monkeypatch):
    """Twin i is seed + i; the rows do not depend on the number of worker processes; one pool
    serves every call with the same n_jobs, and its workers cache where the caller says."""
    monkeypatch.setenv("HELPERS_CACHE", "off")
    one = _rows(settings, 3, 40, nested_twins=1)
    monkeypatch.delenv("HELPERS_CACHE")
    two = _rows(settings, 3, 40, nested_twins=1, n_jobs=2)  # computed in the workers, cold
    assert one["seed"].tolist() == [40, 41, 42] and one["twin"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert len(list((cache / "twin_pam").rglob("*.json"))) == 3  # the workers wrote to this test's folder
    pool = twins.worker_pool(2)
    pids = set(pool._processes)
    again = _rows(settings, 3, 40, nested_twins=1, n_jobs=2)  # from the cache, in the same pool
    pd.testing.assert_frame_equal(one, again, check_exact=True)
    assert twins.worker_pool(2) is pool and set(pool._processes) == pids  # no new pool, no new workers
    per2, summ2 = twins.power_view(settings, [2.0, 0.5, 1.0], 2, 40, n_jobs=2)  # two scales in one batch
    assert twins.worker_pool(2) is pool and set(pool._processes) == pids
    monkeypatch.setenv("HELPERS_CACHE", "off")
    per1, summ1 = twins.power_view(settings, [2.0, 0.5, 1.0], 2, 40)
    assert per2["n_samples"].tolist() == [62, 62, 17, 17, 31, 31]  # in the order of the scales asked
    pd.testing.assert_frame_equal(per1.drop(columns="seconds"), per2.drop(columns="seconds"), check_exact=True)
    pd.testing.assert_frame_equal(summ1, summ2, check_exact=True)
    with pytest.raises(InputError, match="what must be"):
        twins.run_twins(settings, 1, 1, what="everything")
    with pytest.raises(InputError, match="n_twins"):
        twins.run_twins(settings, 0, 1)
    with pytest.raises(InputError, match="n_jobs"):
        twins.run_twins(settings, 2, 1, n_jobs=0)


class _Counter:
    """Wraps one of twins' functions and counts its calls (the cache's compute step)."""

    def __init__(self, monkeypatch, name):
        self.calls = 0
        self.fn = getattr(twins, name)
        monkeypatch.setattr(twins, name, self)

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


def _counters(monkeypatch):
    names = ("pam_measures", "published_model_measures", "_limma_table", "_filter_tmm")
    return {n: _Counter(monkeypatch, n) for n in names}


def test_cached_rows_equal_computed_rows(settings, cache, monkeypatch):
    """Rows with a cold cache, from the cache (every rule-free step a hit) and with the cache
    off are the same to the last bit; the cached filter/TMM and limma columns equal prepare's
    and deg_table's."""
    calls = _counters(monkeypatch)
    before = dict(memo.stats)
    cold = _rows(settings, 2, 21, nested_twins=1)
    assert memo.stats["misses"] - before["misses"] == 8 and memo.stats["hits"] == before["hits"]
    assert [c.calls for c in calls.values()] == [2, 2, 2, 2]
    warm = _rows(settings, 2, 21, nested_twins=1)
    assert memo.stats["hits"] - before["hits"] == 8 and memo.stats["misses"] - before["misses"] == 8
    assert [c.calls for c in calls.values()] == [2, 2, 2, 2]  # nothing recomputed
    monkeypatch.setenv("HELPERS_CACHE", "off")
    off = _rows(settings, 2, 21, nested_twins=1)
    assert [c.calls for c in calls.values()] == [4, 4, 4, 4]
    for other in (warm, off):
        pd.testing.assert_frame_equal(cold, other, check_exact=True)
    assert cold["nested_accuracy_k"].notna().tolist() == [True, False]
    monkeypatch.delenv("HELPERS_CACHE")
    counts, samples, _ = T.simulate_cohort(settings["simulate"], T.default_universe(), T.load_programs(), seed=21)
    prep = twins.prepare(counts, samples)
    full = twins.deg_table(prep)
    key = twins._twin_key(counts, samples, "CR", "NR")
    cached = twins._prepare(counts, samples, "CR", "NR", key)  # stored by the cold run above
    hit = twins._de_rule_inputs(cached, key)
    assert calls["_limma_table"].calls == 5 and calls["_filter_tmm"].calls == 5  # prepare's and deg_table's own
    pd.testing.assert_frame_equal(cached.counts, prep.counts, check_exact=True)
    pd.testing.assert_frame_equal(cached.logcpm, prep.logcpm, check_exact=True)
    assert cached.eff_lib.tobytes() == prep.eff_lib.tobytes()
    pd.testing.assert_frame_equal(hit, full[list(twins.DE_RULE_INPUTS)], check_exact=True)


def test_a_new_deg_rule_reuses_the_classifier(settings, monkeypatch):
    """fc_min = 2 changes the DEG columns but not the classifier's, which come from the cache
    (no pamr fit, no limma run, no filter or TMM); the rows equal those computed without the cache."""
    first = _rows(settings, 2, 30, nested_twins=1)
    calls = _counters(monkeypatch)
    strict = {**settings, "fc_min": 2.0}
    before = dict(memo.stats)
    second = _rows(strict, 2, 30, nested_twins=1)
    assert memo.stats["hits"] - before["hits"] == 8 and memo.stats["misses"] == before["misses"]
    assert [c.calls for c in calls.values()] == [0, 0, 0, 0]
    assert (second["n_deg"] < first["n_deg"]).all() and (second["n_planted"] < first["n_planted"]).all()
    pam_cols = [c for c in first.columns if c.startswith(("pam_", "nested_", "published_model_"))]
    assert len(pam_cols) >= 10
    pd.testing.assert_frame_equal(first[pam_cols], second[pam_cols], check_exact=True)
    monkeypatch.setenv("HELPERS_CACHE", "off")
    pd.testing.assert_frame_equal(second, _rows(strict, 2, 30, nested_twins=1), check_exact=True)


def test_the_classifier_cache_misses_when_an_input_changes(settings, monkeypatch):
    """A pam setting, the seed, nested, the cohort size or the class priors each change the
    classifier's key: a miss, computed again (the cache says no); the DEG rule does not."""
    _rows(settings, 1, 50, what="pam")
    calls = _counters(monkeypatch)
    pam_settings = settings["pam"]
    changed = {
        "n_threshold": ({**settings, "pam": {**pam_settings, "n_threshold": 20}}, {}),
        "s0_percentile": ({**settings, "pam": {**pam_settings, "s0_percentile": 40.0}}, {}),
        "prior": ({**settings, "pam": {**pam_settings, "prior": [0.5, 0.5]}}, {}),
        "seed": (settings, {"seed": 51}),
        "nested": (settings, {"nested_twins": 1}),
        "n_scale": (settings, {"n_scale": 0.5}),
    }
    for name, (st, kw) in changed.items():
        n = calls["pam_measures"].calls
        _rows(st, 1, kw.pop("seed", 50), what="pam", **kw)
        assert calls["pam_measures"].calls == n + 1, name
    n = calls["pam_measures"].calls
    _rows({**settings, "p_max": 0.05, "use_fdr": True}, 1, 50, what="pam")
    assert calls["pam_measures"].calls == n  # the DEG rule is not the classifier's input: a hit
    assert calls["published_model_measures"].calls == 2  # seed and n_scale only: the pam settings are not its input


def test_run_twins_all_measures_every_claim(settings):
    rows = twins.run_twins(settings, 1, 7, nested_twins=1)
    vals = twins.claim_values(rows.iloc[0])
    assert set(vals) == set(twins.MEASURED_CLAIMS)
    assert isinstance(vals["heatmap_separates"], (bool, str)) and "/" in vals["published_model_accuracy"]
    assert rows["nested_accuracy_n"].iloc[0] == 31


def test_power_view_reuses_rows_and_scales(settings):
    base = twins.run_twins(settings, 1, 5, what="power")
    per, summ = twins.power_view(settings, [1.0, 2.0], 1, 5, reuse=base)
    assert summ["n_scale"].tolist() == [1.0, 2.0]
    assert summ["n_samples"].tolist() == [31, 62]
    first = per[per["n_scale"] == 1.0].iloc[0]
    assert first["deg_recall"] == base["deg_recall"].iloc[0]  # reused, not drawn again
    assert set(summ.columns) >= {"deg_recall", "share_overlap_holds", "mean_overlap", "loocv_accuracy"}
    assert "patients" in twins.power_sentence(summ)


def test_prior_term_check_matches_the_discussion():
    """Table 1 with class-proportion priors: NR only beyond lambda = 1/2 + log(22/9)/D (about
    1.73). The twin's unshrunken NR mean lies beyond it; with Delta = 0 (the printed centroids
    planted) it does not: the argument's premise is what unshrinking changes."""
    st = twins.chapter_settings("default")
    r = twins.prior_term_check(st, s0=0.66)
    t = pd.read_csv(paths.PAPER / "table1.tsv", sep="\t")
    D = float((((t.centroid_NR - t.centroid_CR) / t.sd) ** 2).sum())
    assert r["D"] == pytest.approx(D)
    assert r["boundary"] == pytest.approx(0.5 + np.log(22 / 9) / D)
    assert r["nr_mean_lambda"] > r["boundary"] and r["cr_mean_lambda"] < 0
    st0 = json.loads(json.dumps(st))
    st0["simulate"]["signature"]["delta"] = 0.0
    r0 = twins.prior_term_check(st0, s0=0.66)
    assert r0["nr_mean_lambda"] == pytest.approx(1.0) and r0["nr_mean_lambda"] < r0["boundary"]


def test_search_summary(tmp_path):
    p = tmp_path / "search.tsv"
    rows = []
    for stage, setting, vals in (
        ("verify", {}, {}),
        ("pam", {"signature.delta": 2.5}, {"signature.delta": 2.5}),
        ("pam", {"signature.delta": 3.0}, {"signature.delta": 3.0}),
    ):
        for seed, ov in ((1, 14), (2, 9)):
            rows.append(
                {
                    "stage": stage,
                    "setting": json.dumps(setting),
                    "seed": seed,
                    **vals,
                    "n_up": 50 + seed,
                    "n_down": 300,
                    "pam_n_genes": 14,
                    "pam_signature_overlap": ov,
                    "pam_loocv_accuracy_k": 28,
                    "pam_loocv_accuracy_n": 31,
                    "pam_loocv_specificity_k": 6,
                    "pam_loocv_specificity_n": 9,
                    "pam_loocv_sensitivity_k": 22,
                    "pam_loocv_sensitivity_n": 22,
                }
            )
    pd.DataFrame(rows).to_csv(p, sep="\t", index=False)
    design = T.preset("default")
    design["signature"] = {**design["signature"], "delta": 3.0}
    s = twins.search_summary(p, design=design)
    assert s["n_twins"].tolist() == [2, 2, 2]
    assert s["share_ok12"].tolist() == [0.5, 0.5, 0.5] and s["mean_up"].iloc[0] == 51.5
    assert s["mean_nr_errors"].iloc[0] == 3 and s["mean_cr_errors"].iloc[0] == 0
    assert s["is_default"].tolist() == [True, False, True]  # Delta 2.5 is not the design's
    assert s["design"].tolist() == ["the defaults", "signature.delta = 2.5", "signature.delta = 3"]
    mixed = pd.DataFrame(rows)
    mixed.loc[mixed["stage"] == "verify", [c for c in mixed.columns if c.startswith("pam_")]] = np.nan
    mixed.to_csv(tmp_path / "mixed.tsv", sep="\t", index=False)
    m = twins.search_summary(tmp_path / "mixed.tsv", design=design)
    assert np.isnan(m["share_ok12"].iloc[0]) and np.isnan(m["n_ok12"].iloc[0])  # a DE-only stage: not measured, not 0
    assert m["share_ok12"].iloc[1] == 0.5
    with pytest.raises(InputError, match="search"):
        twins.search_summary(tmp_path / "missing.tsv")


def test_distribution_and_nested_summaries():
    rows = pd.DataFrame(
        {
            "twin": [0, 1],
            "seed": [1, 2],
            "n_up": [50, 60],
            "pam_loocv_accuracy_k": [28, 30],
            "pam_loocv_accuracy_n": [31, 31],
            "nested_accuracy_k": [25.0, np.nan],
        }
    )
    d = twins.distribution_summary(rows).set_index("measure")
    assert d.loc["DEGs up", "mean"] == 55 and d.loc["LOOCV correct (nested)", "twins"] == 1
    n = twins.nested_summary(rows)
    assert n["nested_correct"].tolist() == [25] and n["naive_correct"].tolist() == [28]
    assert twins.nested_summary(rows.drop(columns="nested_accuracy_k")) is None


def test_figures_draw_what_the_tables_hold():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.viz import twins as F
    from helpers.viz.style import style_problems, use_style

    use_style()

    shares = pd.DataFrame({"id": ["a", "b", "c"], "share_holds": [1.0, 0.5, 0.2], "share_reproduced": [0.5, 0.5, 0.0]})
    fig = F.claim_share_bars(shares)
    bars = fig.axes[0].patches
    assert len(bars) == 6 and [b.get_width() for b in bars] == [1.0, 0.5, 0.2, 0.5, 0.5, 0.0]
    ypos = dict(zip([t.get_text() for t in fig.axes[0].get_yticklabels()], fig.axes[0].get_yticks()))
    assert ypos["a"] > ypos["b"] > ypos["c"]  # the first claim on top
    assert style_problems(fig) == []  # no CR/NR colour for what is not CR/NR, no text under 9 pt
    plt.close(fig)
    rows = pd.DataFrame(
        {
            "n_up": [50, 60, 61],
            "n_down": [300, 280, 310],
            "pam_n_genes": [14, 14, 120],
            "pam_signature_overlap": [14, 13, 8],
            "pam_loocv_accuracy_k": [28, 29, 27],
            "pam_loocv_accuracy_n": [31, 31, 31],
            "nested_accuracy_k": [25, np.nan, np.nan],
            "published_model_accuracy_k": [29, 30, 28],
            "published_model_accuracy_n": [31, 31, 31],
        }
    )
    fig = F.distributions(rows, {"n_up": 57, "pam_loocv_accuracy": "28/31"})
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 6
    heights = {ax.get_title().replace("\n", " "): sum(p.get_height() for p in ax.patches) for ax in axes}
    assert heights["DEGs higher in CR"] == 3
    assert heights["LOOCV: patients called right (of 31)"] == 4  # 3 naive + 1 nested
    paper_lines = [ln.get_xdata()[0] for ln in axes[0].get_lines()]
    assert paper_lines == [57]
    assert axes[2].get_xscale() == "log"  # PAM's gene count has a long tail
    assert style_problems(fig) == []
    plt.close(fig)
    power = pd.DataFrame({"n_samples": [17, 31, 62], "deg_recall": [0.2, 0.5, 0.7], "share_overlap_holds": [0.5, 1, 1]})
    fig = F.power_curves(power)
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == [0.2, 0.5, 0.7] and list(lines[1].get_ydata()) == [0.5, 1, 1]
    assert lines[2].get_xdata()[0] == 31
    assert style_problems(fig) == []
    plt.close(fig)


def test_share_margin():
    assert twins.share_margin(12) == pytest.approx(1.96 * (0.25 / 12) ** 0.5)
    assert twins.share_margin(48) == pytest.approx(twins.share_margin(12) / 2)  # four times the twins, half the margin
    assert twins.share_margin(12, share=0.8) < twins.share_margin(12)  # widest at one half
    assert twins.share_margin(5, share=1.0) == 0.0
    for bad in ({"n_twins": 0}, {"n_twins": 3, "share": 1.5}):
        with pytest.raises(InputError):
            twins.share_margin(**bad)


def test_structure_measures_use_the_chapters_pca_reading():
    """Chapter 13 judges Fig. 1B with chapter 02's PCA reading (``pca_scale``) and rule: its
    verdict detail equals the one computed from that reading, not from the other one; a cohort of
    one dataset leaves the batch claim not measured."""
    from helpers.analysis import claims
    from helpers.analysis import structure as st
    from helpers.methods import pca as pc

    rng = np.random.default_rng(5)
    genes = [f"g{i}" for i in range(60)]
    cols = [f"s{j}" for j in range(16)]
    sd = np.geomspace(0.2, 5.0, len(genes))[:, None]  # unequal gene scales: scaling changes the PCA
    X = pd.DataFrame(rng.normal(size=(60, 16)) * sd, index=genes, columns=cols)
    X.iloc[:5, :8] += 1.5  # a small-variance block that marks the first cohort
    samples = pd.DataFrame(
        {"cohort": ["A"] * 8 + ["B"] * 8, "response": (["CR", "NR"] * 8)}, index=pd.Index(cols, name="sample")
    )
    table = pd.DataFrame({"direction": ["ns"] * 60}, index=genes)
    rules = {"n_components": 5, "max_r2": 0.2, "max_silhouette": 0.25, "linkage_method": "average",
             "distance": "correlation", "n_perm": 19, "alpha": 0.05}  # fmt: skip

    def expected(scale):
        scores, _ = st.sample_pca(X, n_components=5, scale=scale)
        d = pc.batch_diagnostics(scores, samples, factors=("cohort", "response"), n_pcs=2)
        return claims.no_batch_effect(d.loc["cohort", "r2_pooled"], d.loc["cohort", "silhouette"], 2, 0.2, 0.25)

    scaled, unscaled = expected(True), expected(False)
    assert scaled.detail != unscaled.detail  # the two readings differ on this cohort
    for flag, want in ((True, scaled), (False, unscaled)):
        got = twins.structure_measures(X, table, samples, {**rules, "pca_scale": flag}, seed=1)["no_batch_effect"]
        assert (got.holds, got.detail) == (want.holds, want.detail)
    one = samples.assign(cohort="A")
    v = twins.structure_measures(X, table, one, {**rules, "pca_scale": True}, seed=1)["no_batch_effect"]
    assert v.holds is None and "one dataset" in v.reason


def test_twin_key_changes_with_every_input(small):
    """The key of a twin's cached steps: equal content, equal key (any memory layout); one
    count, one gene name, one response or the class labels changed: another key."""
    counts, samples, _ = small
    key = twins._twin_key(counts, samples, "CR", "NR")
    assert twins._twin_key(counts.copy(), samples, "CR", "NR") == key
    one = counts.copy()
    one.iloc[5, 3] += 1
    renamed = counts.rename(index={counts.index[0]: counts.index[0] + "x"})
    flipped = samples.copy()
    flipped.loc[counts.columns[0], "response"] = "NR" if flipped.loc[counts.columns[0], "response"] == "CR" else "CR"
    others = [
        twins._twin_key(one, samples, "CR", "NR"),
        twins._twin_key(renamed, samples, "CR", "NR"),
        twins._twin_key(counts, flipped, "CR", "NR"),
        twins._twin_key(counts, samples, "NR", "CR"),
    ]
    assert all(k != key for k in others) and len({str(k) for k in others}) == 4
