"""Preranked GSEA against R fgsea 1.31.6 (fgseaMultilevel) golden outputs, plus properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data.genesets import read_gmt
from helpers.engine.errors import InputError
from helpers.methods.gsea import enrichment_curve, enrichment_score, prerank

REF = Path(__file__).parent / "data" / "reference"
FOLDERS = ("counts_batch", "counts_nobatch", "logexpr_trend")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """run_gsea keeps results in the step cache: each test gets its own (never results/.cache)."""
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HELPERS_CACHE", raising=False)


@pytest.fixture(scope="module")
def sets():
    return read_gmt(REF / "fixture" / "fixture.gmt")


def _ranking(folder):
    lim = pd.read_csv(REF / "r_outputs" / folder / "limma.tsv.gz", sep="\t", index_col=0)
    return lim["t"]  # fgsea was run on the limma moderated t


def _ref(folder):
    return pd.read_csv(REF / "r_outputs" / folder / "fgsea.tsv", sep="\t", index_col=0)


@pytest.fixture(scope="module")
def results(sets):
    return {f: prerank(_ranking(f), sets, min_size=15, max_size=500, seed=42) for f in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS)
def test_es_size_and_leading_edge_exact(folder, results):
    ref = _ref(folder)
    mine = results[folder].set_index("pathway")
    assert set(mine.index) == set(ref.index)  # same sets pass the 15..500 filter
    mine = mine.loc[ref.index]
    assert (mine["size"] == ref["size"]).all()
    np.testing.assert_allclose(mine["ES"], ref["ES"], rtol=0, atol=1e-6)  # measured <= 1e-15
    assert (mine["leadingEdge"] == ref["leadingEdge"]).all()


@pytest.mark.parametrize("folder", FOLDERS)
def test_nes_and_pvalues_agree(folder, results):
    ref = _ref(folder)
    mine = results[folder].set_index("pathway").loc[ref.index]
    # NES: both from simple permutations (ours 1000-10000, fgsea 1000); measured r >= 0.9999
    assert np.corrcoef(mine["NES"], ref["NES"])[0, 1] >= 0.99
    assert np.abs(mine["NES"] - ref["NES"]).max() <= 0.1  # measured <= 0.046
    # p-values above our permutation floor agree; below it ours sit at the floor
    above = ref["pval"] > 1e-3
    assert np.corrcoef(mine.loc[above, "pval"], ref.loc[above, "pval"])[0, 1] >= 0.98  # measured >= 0.995
    floor = 1.0 / (mine["n_perm"] + 1)
    assert (mine["pval"] >= floor).all()
    assert (mine.loc[~above, "pval"] <= 5e-3).all()


@pytest.mark.parametrize("folder", FOLDERS)
def test_same_top_sets(folder, results):
    ref = _ref(folder)
    mine = results[folder]
    assert list(mine["pathway"].head(4)) == list(ref.index[:4])
    assert set(mine.loc[mine["padj"] < 0.05, "pathway"]) == set(ref.index[ref["padj"] < 0.05])
    assert (np.sign(mine.set_index("pathway").loc[ref.index, "NES"]) == np.sign(ref["NES"])).all()


def test_deterministic_for_a_seed(sets):
    r = _ranking("counts_batch")
    a = prerank(r, sets, seed=7)
    b = prerank(r, sets, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = prerank(r, sets, seed=8)
    assert not np.array_equal(a["NES"].to_numpy(), c.set_index("pathway").loc[a["pathway"], "NES"].to_numpy())
    # the order of the input ranking does not matter
    d = prerank(r.sample(frac=1.0, random_state=1), sets, seed=7)
    pd.testing.assert_frame_equal(a, d)


def _slow_es(ranking: pd.Series, members, p: float):
    """Gene-by-gene walk (GSEA paper definition), independent of the vectorised code."""
    r = ranking.sort_values(ascending=False, kind="stable")
    hits = r.index.isin(list(members))
    w = np.abs(r.to_numpy()) ** p
    nr = w[hits].sum()
    running, best = 0.0, 0.0
    for hit, wi in zip(hits, w):
        running += (wi / nr) if hit else -1.0 / (len(r) - hits.sum())
        if abs(running) > abs(best):
            best = running
    return best


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0])
def test_es_matches_literal_walk(p):
    rng = np.random.default_rng(5)
    genes = [f"g{i}" for i in range(300)]
    ranking = pd.Series(rng.normal(size=300), index=genes)
    for k in (3, 17, 80):
        members = list(rng.choice(genes, k, replace=False))
        assert enrichment_score(ranking, members, gsea_param=p) == pytest.approx(
            _slow_es(ranking, members, p), abs=1e-12
        )
        curve = enrichment_curve(ranking, members, gsea_param=p)
        extreme = curve["running_sum"].to_numpy()[np.argmax(np.abs(curve["running_sum"].to_numpy()))]
        assert extreme == pytest.approx(curve.attrs["ES"], abs=1e-12)
        assert curve["hit"].sum() == k and len(curve) == 300


def test_pvalues_calibrated_under_null():
    # random ranking and random sets: p-values ~ uniform, NES centred on +-1
    rng = np.random.default_rng(11)
    genes = [f"g{i}" for i in range(2000)]
    ranking = pd.Series(rng.normal(size=2000), index=genes)
    sets = {f"s{i}": list(rng.choice(genes, rng.integers(15, 60), replace=False)) for i in range(300)}
    res = prerank(ranking, sets, n_perm=500, max_perm=500, seed=1)
    assert 0.02 <= (res["pval"] < 0.05).mean() <= 0.09
    assert 0.35 <= res["pval"].median() <= 0.65
    assert res["NES"].abs().median() == pytest.approx(1.0, abs=0.15)
    assert (res["padj"] > 0.05).all()


def test_planted_set_found_and_refined():
    rng = np.random.default_rng(2)
    genes = [f"g{i}" for i in range(3000)]
    ranking = pd.Series(rng.normal(size=3000), index=genes)
    ranking.iloc[:40] += 1.5
    sets = {"planted": genes[:40], "other": genes[1000:1040]}
    res = prerank(ranking, sets, n_perm=200, max_perm=2000, seed=3).set_index("pathway")
    assert res.loc["planted", "NES"] > 1.5
    assert res.loc["planted", "n_perm"] == 2000  # adaptive step kicked in
    assert res.loc["planted", "pval"] == pytest.approx(1 / (1 + 1000), rel=0.2)  # at the floor (~half nulls > 0)
    assert res.loc["other", "pval"] > 0.01


def test_bad_input(sets):
    r = _ranking("counts_batch")
    with pytest.raises(InputError, match="duplicated gene"):
        prerank(pd.concat([r, r.head(1)]), sets)
    bad = r.copy()
    bad.iloc[3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        prerank(bad, sets)
    with pytest.raises(InputError, match="no gene set"):
        prerank(r, {"x": ["nope1", "nope2"]})
    with pytest.raises(InputError, match="Series"):
        prerank(r.to_dict(), sets)
    with pytest.raises(InputError, match="n_perm"):
        prerank(r, sets, n_perm=0)


def test_gseapy_prerank_agrees_on_es_nes_sign_size_and_leading_edge(sets):
    """gseapy 1.3 (an independent GSEA implementation) as a cross-check of our fgsea-style engine
    on the reference fixture (49 sets, limma t of counts_batch).

    ES is deterministic, so it must agree to rounding (1e-9). NES divides ES by the mean same-sign
    null ES, estimated from random gene sets: gseapy's 500 and our 1000 permutations leave a
    Monte Carlo error of a few percent of that mean, so NES may differ by up to 0.15 at |NES| ~ 3
    (measured: max 0.11 with 200 gseapy permutations, 0.04 with 1000); the signs must all agree
    and the NES correlate at >= 0.999. Sizes and leading edges are deterministic: equal."""
    gseapy = pytest.importorskip("gseapy")
    ranking = _ranking("counts_batch")
    ours = prerank(ranking, sets, min_size=15, max_size=500, seed=42).set_index("pathway")
    pre = gseapy.prerank(
        rnk=ranking,
        gene_sets=dict(sets),
        outdir=None,
        min_size=15,
        max_size=500,
        permutation_num=500,
        seed=7,
        threads=1,
        no_plot=True,
        verbose=False,
    )
    theirs = pre.res2d.set_index("Term")
    assert sorted(theirs.index) == sorted(ours.index)
    theirs = theirs.loc[ours.index]
    np.testing.assert_allclose(theirs["ES"].astype(float), ours["ES"], rtol=0, atol=1e-9)
    nes = theirs["NES"].astype(float)
    assert (np.sign(nes) == np.sign(ours["NES"])).all()
    assert float(np.abs(nes - ours["NES"]).max()) <= 0.15
    assert np.corrcoef(nes, ours["NES"])[0, 1] >= 0.999
    sizes = theirs["Tag %"].str.split("/").str[1].astype(int)
    assert (sizes == ours["size"]).all()
    for pid in ours.index:
        assert set(theirs.loc[pid, "Lead_genes"].split(";")) == set(ours.loc[pid, "leadingEdge"].split("/")), pid


# --------------------------------------------------------------------------- multilevel p-values


@pytest.fixture(scope="module")
def multilevel_results(sets):
    return {f: prerank(_ranking(f), sets, min_size=15, max_size=500, seed=42, multilevel=True) for f in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS)
def test_multilevel_agrees_with_fgsea_multilevel(folder, results, multilevel_results):
    """Sets at the permutation floor get fgseaMultilevel-style p-values: below the floor, within
    one order of magnitude of R's (measured |log10 ratio| <= 0.6 over seeds 0-5; fgsea's own
    log2err is 0.5-0.85 there); everything else, NES included, is the simple result."""
    ref = _ref(folder)
    simple = results[folder].set_index("pathway").loc[ref.index]
    ml = multilevel_results[folder].set_index("pathway").loc[ref.index]
    pd.testing.assert_series_equal(ml["NES"], simple["NES"])
    at_floor = ml["p_method"] == "multilevel"
    assert at_floor.sum() >= 2  # the fixture's two strongest sets sit at the floor without it
    np.testing.assert_array_equal(ml.loc[~at_floor, "pval"], simple.loc[~at_floor, "pval"])
    assert (ml.loc[at_floor, "pval"] < simple.loc[at_floor, "pval"]).all()
    diff = np.log10(ml.loc[at_floor, "pval"]) - np.log10(ref.loc[at_floor, "pval"])
    assert np.abs(diff).max() <= 1.0
    assert set(ml.index[ml["padj"] < 0.05]) == set(ref.index[ref["padj"] < 0.05])


def test_multilevel_matches_brute_force_over_seeds():
    """Against a brute-force null (200,000 random sets) on a small problem: the multilevel
    p-values at p = 1e-2 and 1e-3 are unbiased in log10 (mean over 12 seeds within 0.15) and
    each within a factor 5."""
    from helpers.methods.gsea import _multilevel_pvalues, _multilevel_ruler, _walk_extremes

    rng = np.random.default_rng(0)
    n, k = 600, 20
    w = np.sort(np.abs(rng.standard_t(4, size=n)))[::-1]
    pos = np.sort(np.argsort(rng.random((200_000, n)), axis=1)[:, :k], axis=1)
    hi, lo = _walk_extremes(w, pos, n)
    null = np.sort(hi[hi >= -lo])  # positive ES of sets with a non-negative signed ES
    targets = np.quantile(null, [0.99, 0.999])
    truth = 1 - np.searchsorted(null, targets) / null.size
    ratios = []
    for seed in range(12):
        ruler = _multilevel_ruler(w, n, k, float(targets.max()), np.random.default_rng(seed), 101, 10, 1e-50)
        ratios.append(np.log10(_multilevel_pvalues(targets, ruler) / truth))
    ratios = np.array(ratios)
    assert np.abs(ratios.mean(axis=0)).max() <= 0.15
    assert np.abs(ratios).max() <= np.log10(5)


def test_multilevel_deterministic_and_checked(sets):
    r = _ranking("counts_batch")
    a = prerank(r, sets, seed=3, n_perm=300, max_perm=0, multilevel=True)
    b = prerank(r, sets, seed=3, n_perm=300, max_perm=0, multilevel=True)
    pd.testing.assert_frame_equal(a, b)
    c = prerank(r, sets, seed=4, n_perm=300, max_perm=0, multilevel=True)
    ml = a["p_method"] == "multilevel"
    assert ml.any()
    assert not np.array_equal(a.loc[ml, "pval"], c.set_index("pathway").loc[a.loc[ml, "pathway"], "pval"])
    for bad in ({"sample_size": 5}, {"eps": 0.0}, {"moves": 0}):
        with pytest.raises(InputError, match="multilevel settings"):
            prerank(r, sets, multilevel=True, **bad)


@pytest.fixture(scope="module")
def twin_ranking():
    """The test profile's twin (2,000 genes), limma-voom CR vs NR, ranked by log2 fold change."""
    from helpers.analysis.de import run_de
    from helpers.data import twin as S

    p = S.preset("default")
    p = S.merge_params(p, {"n_genes": 2000, "background": {"n_up": 4, "n_down": 30}})
    counts, samples, _ = S.simulate_cohort(p, seed=20220218)
    return run_de(counts, samples)["logFC"]


@pytest.mark.slow
def test_twin_pvalues_tied_at_the_floor_before_and_not_after(twin_ranking):
    from helpers.analysis import enrichment as en

    sets, _ = en.merged_sets(["go_bp", "tcell"], twin_ranking.index)
    kw = dict(min_size=15, max_size=500, n_perm=200, max_perm=1000, seed=20220218)
    simple = prerank(twin_ranking, sets, **kw).set_index("pathway")
    ml = prerank(twin_ranking, sets, multilevel=True, **kw).set_index("pathway").loc[simple.index]
    pd.testing.assert_series_equal(ml["NES"], simple["NES"])  # NES unchanged
    floor = ml["p_method"] == "multilevel"
    # before: sets with different ES share p-values at 1 / (1 + same-sign nulls)
    tied = simple[floor].groupby("pval")["ES"].nunique()
    assert (tied > 1).any()
    # after: one p-value per distinct ES (identical gene sets may still share one), below the floor
    per_es = ml[floor].groupby(ml.loc[floor, "ES"].round(12))["pval"].nunique()
    assert (per_es == 1).all()
    assert ml.loc[floor, "pval"].nunique() == ml.loc[floor, "ES"].round(12).nunique()
    # and mostly below the floor; a set just at it may come out a little above (estimation noise)
    ratio = ml.loc[floor, "pval"] / simple.loc[floor, "pval"]
    assert (ratio < 1).mean() >= 0.8 and ratio.max() <= 5


def test_run_gsea_methods_and_copy_collection(sets, tmp_path):
    from helpers.analysis import enrichment as en

    r = _ranking("counts_batch")
    desc = {"GO:0070098": "chemokine-mediated signaling pathway"}
    simple = en.run_gsea(r, sets, desc, p_method="simple", n_perm=300, max_perm=0, seed=1)
    assert list(simple.columns[:2]) == ["pathway", "description"]
    assert (simple["p_method"] == "simple").all()
    assert simple.set_index("pathway").loc["GO:0070098", "description"] == desc["GO:0070098"]
    ml = en.run_gsea(r, sets, desc, n_perm=300, max_perm=0, seed=1)
    assert (ml["p_method"] == "multilevel").any()
    with pytest.raises(InputError, match="unknown p_method 'fast'"):
        en.run_gsea(r, sets, desc, p_method="fast")
    out = en.copy_collection("tcell", tmp_path / "tcell_pathways.gmt")
    assert out.read_bytes() == (Path(en.gs.collection_path("tcell"))).read_bytes()
    assert en.copy_collection(str(tmp_path / "mine.gmt"), tmp_path / "x.gmt") is None


def test_fgsea_rule_for_multilevel():
    """fgseaMultilevel's choice (1000 simple permutations, 101 sets per level): multilevel for
    sets with few extreme nulls, simple where the permutations already pin p down."""
    from helpers.methods.gsea import fgsea_prefers_multilevel as prefers

    assert prefers(0, 1000) and prefers(9, 1000) and prefers(15, 1000)
    assert not prefers(16, 1000) and not prefers(100, 1000) and not prefers(1000, 1000)
    assert prefers(0, 200) and not prefers(60, 200)
    # more sets per level make multilevel more precise, so it takes over sooner
    assert prefers(25, 1000, sample_size=1001) and not prefers(25, 1000, sample_size=101)


@pytest.mark.parametrize("folder", FOLDERS)
def test_fgsea_rule_agrees_with_fgsea_multilevel(folder, sets):
    """Chapter 06's default (run_gsea, p_method="multilevel"): 1000 permutations with no top-up
    and multilevel wherever fgsea's error rule prefers it. Against R's fgseaMultilevel: the
    same FDR < 0.05 sets, no p-value tied at the floor, multilevel p within a factor 10 of R's."""
    from helpers.analysis import enrichment as en

    ref = _ref(folder)
    res = en.run_gsea(_ranking(folder), sets, {}, p_method="multilevel", min_size=15, max_size=500, seed=42)
    res = res.set_index("pathway").loc[ref.index]
    assert (res["n_perm"] == 1000).all()  # no top-up
    ml = res["p_method"] == "multilevel"
    assert ml.sum() >= 2
    assert (res.loc[ml, "pval"] < 1 / 1001 * 17).all()  # only sets with few extreme nulls
    floor = 1 / 1001
    assert not (res["pval"] == floor).any()
    diff = np.log10(res.loc[ml, "pval"]) - np.log10(ref.loc[ml, "pval"])
    assert np.abs(diff).max() <= 1.0
    assert set(res.index[res["padj"] < 0.05]) == set(ref.index[ref["padj"] < 0.05])


def test_multilevel_extreme_limit_is_the_rules_boundary():
    from helpers.methods.gsea import fgsea_prefers_multilevel as prefers
    from helpers.methods.gsea import multilevel_extreme_limit as limit

    for n in (200, 1000, 5000):
        k = limit(n)
        assert prefers(k, n) and not prefers(k + 1, n)
    assert limit(1000) == 15 and limit(200) == 27


def _counting_prerank(monkeypatch):
    """Count the real prerank calls behind run_gsea (a cache hit makes none)."""
    import functools

    from helpers.methods import gsea

    calls = []
    real = gsea.prerank

    @functools.wraps(real)
    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(gsea, "prerank", counted)
    return calls


def test_run_gsea_cached_result_is_the_computed_one(sets, monkeypatch):
    from helpers.analysis import enrichment as en

    r = _ranking("counts_batch")
    desc = {"GO:0070098": "chemokine-mediated signaling pathway"}
    kw = dict(min_size=15, max_size=500, n_perm=200, seed=3)
    monkeypatch.setenv("HELPERS_CACHE", "off")
    computed = en.run_gsea(r, sets, desc, **kw)
    monkeypatch.delenv("HELPERS_CACHE")
    calls = _counting_prerank(monkeypatch)
    first = en.run_gsea(r, sets, desc, **kw)
    again = en.run_gsea(r.copy(), {k: list(v) for k, v in sets.items()}, desc, **kw)  # equal content: a hit
    assert calls == [1]
    assert (again["p_method"] == "multilevel").any() and again["leadingEdge"].str.count("/").max() > 10
    for got in (first, again):
        pd.testing.assert_frame_equal(got, computed, check_exact=True)
    assert again.to_csv(sep="\t") == computed.to_csv(sep="\t")


def test_run_gsea_cache_misses_when_an_input_changes(sets, monkeypatch):
    from helpers.analysis import enrichment as en

    r = _ranking("counts_batch")
    kw = dict(p_method="simple", min_size=15, max_size=500, n_perm=100, max_perm=0, seed=3)
    calls = _counting_prerank(monkeypatch)
    base = en.run_gsea(r, sets, {}, **kw)
    assert len(calls) == 1
    one_value = r.copy()
    one_value.iloc[10] = np.nextafter(one_value.iloc[10], np.inf)
    renamed = r.rename(index={r.index[0]: "SOMEGENE"})
    name = next(iter(sets))
    one_more_gene = {**sets, name: list(sets[name]) + [r.index[-1]]}
    variants = [
        (one_value, sets, kw),
        (renamed, sets, kw),
        (r, one_more_gene, kw),
        (r, sets, {**kw, "seed": 4}),
        (r, sets, {**kw, "n_perm": 101}),
        (r, sets, {**kw, "min_size": 16}),
        (r, sets, {**kw, "max_size": 400}),
        (r, sets, {**kw, "gsea_param": 2.0}),
        (r, sets, {**kw, "p_method": "multilevel"}),
    ]
    for i, (rk, gs_, k) in enumerate(variants, start=2):
        en.run_gsea(rk, gs_, {}, **k)
        assert len(calls) == i, f"variant {i - 2} was answered from the cache"
    differs = en.run_gsea(r, sets, {}, **{**kw, "seed": 4})  # now cached, and not the seed-3 table
    assert not differs["NES"].equals(base["NES"])
    en.run_gsea(r, sets, {}, **kw)
    assert len(calls) == len(variants) + 1  # the original inputs: still a hit
    with pytest.raises(TypeError):
        en.run_gsea(r, sets, {}, **kw, n_prem=10)  # a misspelt argument is not silently keyed
