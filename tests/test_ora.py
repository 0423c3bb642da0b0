"""Tests for helpers.methods.ora: clusterProfiler-enricher ORA, checked against R golden outputs."""

from __future__ import annotations

from math import comb, log2
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from helpers.data.genesets import GeneSets, read_gmt
from helpers.methods.ora import COLUMNS, bh_adjust, ora, ora_many

REF = Path(__file__).parent / "data" / "reference"
FOLDERS = ("counts_nobatch", "counts_batch", "logexpr_trend")
RTOL = 1e-9


def test_bh_adjust_matches_r():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2, NA), "BH")
    p = [0.01, 0.04, 0.03, 0.005, 0.2, np.nan]
    expected = [0.025, 0.05, 0.05, 0.025, 0.2, np.nan]
    np.testing.assert_allclose(bh_adjust(p), expected, rtol=1e-12)
    assert bh_adjust([]).size == 0
    assert np.all(bh_adjust([0.9, 0.99]) <= 1)


def test_hypergeometric_tail_against_exact_sum():
    universe = [f"g{i}" for i in range(40)]
    sets = {"S": universe[:12], "T": universe[10:25]}
    query = universe[:5] + universe[30:33]  # 8 query genes, 5 in S
    res = ora(query, universe, sets, min_size=1, max_size=100).set_index("set")
    N, M, n, k = 25, 12, 5, 5  # universe = tested genes in any set (g0..g24); query in universe = 5
    exact = sum(comb(M, i) * comb(N - M, n - i) for i in range(k, min(M, n) + 1)) / comb(N, n)
    assert res.loc["S", "N"] == N and res.loc["S", "n_query"] == n
    assert res.loc["S", "pvalue"] == pytest.approx(exact, rel=1e-12)
    assert "T" not in res.index  # no query gene -> not tested


def test_enricher_rules_universe_cut_and_sizes():
    tested = [f"g{i}" for i in range(30)] + ["only_tested"]
    sets = GeneSets(
        {
            "big": [f"g{i}" for i in range(30)] + [f"x{i}" for i in range(100)],  # 30 after cut
            "small_after_cut": ["g0", "g1", "x1", "x2", "x3"],  # 2 after cut -> dropped
            "no_hits": [f"g{i}" for i in range(10, 20)],  # no query gene -> not tested
        },
        {"big": "Big set"},
    )
    res = ora(["g0", "g1", "g2", "g25", "only_tested", "not_tested"], tested, sets, min_size=3, max_size=30)
    assert list(res.columns) == COLUMNS
    assert list(res["set"]) == ["big"]
    big = res.set_index("set").loc["big"]
    assert (big["M"], big["N"], big["k"], big["n_query"]) == (30, 30, 4, 4)
    assert big["GeneRatio"] == "4/4" and big["BgRatio"] == "30/30" and big["description"] == "Big set"
    assert big["genes"] == "g0/g1/g2/g25"
    assert big["pvalue"] == pytest.approx(1.0)
    empty = ora(["zz"], tested, sets)
    assert list(empty.columns) == COLUMNS and len(empty) == 0


@pytest.fixture(scope="module")
def fixture_sets():
    return read_gmt(REF / "fixture" / "fixture.gmt")


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("direction", ["up", "down", "all"])
def test_golden_ora_against_r(folder, direction, fixture_sets):
    lim = pd.read_csv(REF / "r_outputs" / folder / "limma.tsv.gz", sep="\t", index_col=0)
    de = lim[(lim["P.Value"] <= 0.01) & (lim["logFC"].abs() >= log2(1.5))]
    query = {"up": de.index[de["logFC"] > 0], "down": de.index[de["logFC"] < 0], "all": de.index}[direction]
    ref = pd.read_csv(REF / "r_outputs" / folder / f"ora_{direction}.tsv", sep="\t")
    got = ora(query, lim.index, fixture_sets, min_size=10, max_size=500)
    assert list(got["set"]) == list(ref["set"])  # same sets, same order
    for col in ("description", "k", "n_query", "M", "N", "GeneRatio", "BgRatio", "genes"):
        assert got[col].tolist() == ref[col].tolist(), col
    for col in ("fold", "pvalue", "p.adjust"):
        np.testing.assert_allclose(got[col].to_numpy(float), ref[col].to_numpy(float), rtol=RTOL, atol=0)


def _literal_ora(query, tested, sets, min_size, max_size):
    """enricher's rules written out set by set (the shape of the code before it was vectorized)."""
    members = {name: set(genes) for name, genes in sets.items()}
    universe = set(tested) & set().union(*members.values())
    q = set(query) & universe
    rows = []
    for name, genes in members.items():
        cut = genes & universe
        hits = sorted(cut & q)
        if min_size <= len(cut) <= max_size and hits:
            rows.append({"set": name, "k": len(hits), "M": len(cut), "genes": "/".join(hits)})
    return pd.DataFrame(rows), len(q), len(universe)


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_ora_matches_a_set_by_set_count(seed):
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in rng.permutation(300)] + ["é1", "A-1", "a1"]
    tested = genes[:240] + genes[:5]  # repeated tested genes count once
    sets = {}
    for j in range(60):
        m = list(rng.choice(genes + ["NOT_TESTED1", "NOT_TESTED2"], size=int(rng.integers(1, 40))))
        m += m[:3]  # duplicated members count once
        sets[f"S{j:02d}"] = m if j % 3 else (set(m) if j % 2 else tuple(m))
    queries = {"a": list(rng.choice(genes, 50, replace=False)) + ["NOT_TESTED1"], "b": genes[:30], "none": ["x"]}
    got = ora_many(queries, tested, sets, min_size=5, max_size=25)
    assert list(got) == ["a", "b", "none"]
    for label, query in queries.items():
        ref, n, N = _literal_ora(query, tested, sets, 5, 25)
        g = got[label]
        if ref.empty:
            assert g.empty and list(g.columns) == COLUMNS
            continue
        assert len(ref) >= 3  # the case has sets that pass and sets that do not
        assert sorted(ref["set"]) == sorted(g["set"]) and len(g) < len(sets)
        mine = g.set_index("set").loc[ref["set"]]
        assert mine["k"].tolist() == ref["k"].tolist() and mine["M"].tolist() == ref["M"].tolist()
        assert mine["genes"].tolist() == ref["genes"].tolist()
        assert (mine["n_query"] == n).all() and (mine["N"] == N).all()
        assert g["pvalue"].is_monotonic_increasing
        # the p-value is the hypergeometric tail of these counts (scipy's, as R's phyper)
        np.testing.assert_allclose(mine["pvalue"], hypergeom.sf(ref["k"] - 1, N, ref["M"], n), rtol=1e-12)


def test_ora_many_on_an_empty_or_foreign_collection():
    assert ora_many({"q": ["a"]}, ["a", "b"], {}, min_size=1)["q"].empty
    out = ora_many({"q": ["a"]}, ["a", "b"], {"S": ["x", "y"]}, min_size=1)["q"]
    assert out.empty and list(out.columns) == COLUMNS
    ok = ora_many({"q": ["a"]}, ["a", "b"], {"S": ["a", "b", "y"]}, min_size=1)["q"]
    assert ok["set"].tolist() == ["S"] and ok["M"].tolist() == [2] and ok["genes"].tolist() == ["a"]
