"""The published model on a cohort's genes: symbol mapping, match table, the partial-answer rule,
and the scorer's scale check."""

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import model as M
from helpers.analysis import signature as S
from helpers.engine.errors import InputError

PUB = M.published_model()
GENES = PUB.genes  # Table 1's names, CCDC155 included
FILLER = ["ACTB", "GAPDH", "CD3E", "TP53"]


def _cohort_genes(drop=(), rename=None, extra=()):
    rename = rename or {}
    return [rename.get(g, g) for g in GENES if g not in drop] + FILLER + list(extra)


def _by_gene(match):
    return match.table.set_index("model_gene")


def _expr(genes, n=6, seed=0, loc=5.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.normal(loc, 1.5, (len(genes), n)), index=pd.Index(genes, name="gene"), columns=[f"s{i}" for i in range(n)]
    )


def _delta_by_hand(x: pd.DataFrame, genes_model, genes_cohort):
    """The paper's discriminant written out, independent of helpers.analysis.model.score."""
    t = pd.read_csv(M.PAPER / "table1.tsv", sep="\t").set_index("gene")
    out = {}
    for cls, col in (("CR", "centroid_CR"), ("NR", "centroid_NR")):
        d = np.zeros(x.shape[1])
        for gm, gc in zip(genes_model, genes_cohort):
            d += ((x.loc[gc].to_numpy() - t.loc[gm, col]) / t.loc[gm, "sd"]) ** 2
        out[cls] = d - 2 * np.log(M.PUBLISHED_PRIORS[cls])
    return out


# ------------------------------------------------------------------------------ matching


def test_ccdc155_matches_kash5_by_current_symbol():
    genes = _cohort_genes(rename={"CCDC155": "KASH5"})
    m = S.map_model("published", genes)
    row = _by_gene(m).loc["CCDC155"]
    assert (row.cohort_gene, row.how) == ("KASH5", "current symbol")
    assert m.status == "complete" and m.n_present == 14 and m.measured
    assert "CCDC155 as KASH5" in m.reason and m.renamed == {"CCDC155": "KASH5"}
    assert "KASH5" in m.model.genes and "CCDC155" not in m.model.genes
    assert (_by_gene(m).drop(index="CCDC155").how == "exact").all()
    # scoring the mapped model on KASH5 is scoring Table 1's CCDC155 row
    x = _expr(genes)
    got = S.score_cohort(m, x)
    want = _delta_by_hand(x, GENES, [g if g != "CCDC155" else "KASH5" for g in GENES])
    np.testing.assert_allclose(got["delta_CR"], want["CR"], rtol=1e-12)
    np.testing.assert_allclose(got["delta_NR"], want["NR"], rtol=1e-12)


def test_without_mapping_the_old_scorer_would_miss_kash5():
    """The bug this module fixes: the plain scorer looks for CCDC155 only."""
    x = _expr(_cohort_genes(rename={"CCDC155": "KASH5"}))
    with pytest.raises(InputError, match="1 of 14 signature genes missing: CCDC155"):
        M.score(PUB, x)


def test_exact_name_wins_over_current_symbol():
    m = S.map_model(PUB, _cohort_genes(extra=["KASH5"]))
    assert _by_gene(m).loc["CCDC155", "how"] == "exact"
    assert m.model.genes == GENES


def test_alias_of_the_same_gene_is_used():
    # a cohort harmonised with update_symbols: false may still say C20orf58 for NKAIN4
    m = S.map_model(PUB, _cohort_genes(rename={"NKAIN4": "C20orf58"}))
    row = _by_gene(m).loc["NKAIN4"]
    assert (row.cohort_gene, row.how) == ("C20orf58", "alias")
    assert m.status == "complete" and "C20orf58" in m.model.genes


def test_alias_shared_by_several_genes_is_not_used():
    # IMP1 is an alias of IGF2BP1 and of two other genes
    m = S.map_model(PUB, _cohort_genes(rename={"IGF2BP1": "IMP1"}))
    row = _by_gene(m).loc["IGF2BP1"]
    assert row.how == "absent" and row.cohort_gene == "" and "IMP1" in row.note
    assert m.n_present == 13


def test_a_cohort_gene_is_used_once():
    # a model naming both the old and the new symbol: the exact name takes the cohort's KASH5
    d = PUB.to_dict()
    both = M._build({**d, "genes": GENES[:12] + ["CCDC155", "KASH5"]}, "test")
    m = S.map_model(both, GENES[:12] + ["KASH5"] + FILLER)
    t = _by_gene(m)
    assert t.loc["KASH5", "how"] == "exact" and t.loc["CCDC155", "how"] == "absent"
    assert m.model.genes.count("KASH5") == 1 and m.status == "partial"


# ------------------------------------------------------------------------------ the partial rule


def test_seven_of_fourteen_missing_is_not_measured():
    drop = GENES[::2]  # 7 genes
    m = S.map_model(PUB, _cohort_genes(drop=drop))
    assert m.status == "not measured" and not m.measured and m.model is None
    assert m.reason.startswith("not measured: 7 of 14 signature genes absent")
    assert all(g in m.reason for g in drop)
    assert m.absent == list(drop)
    assert m.numbers()["signature_n_absent"] == 7
    with pytest.raises(ValueError, match="nothing to score"):
        S.score_cohort(m, _expr(_cohort_genes(drop=drop)))


def _weakest(k):
    return S.separation_shares(PUB).sort_values().index[:k].tolist()


def test_count_rule_boundary():
    ten = S.map_model(PUB, _cohort_genes(drop=_weakest(4)))
    assert ten.status == "partial" and ten.n_present == 10
    assert ten.reason.startswith("partial: 4 of 14 signature genes absent")
    nine = S.map_model(PUB, _cohort_genes(drop=_weakest(5)))
    assert nine.status == "not measured" and "fewer than 10 present" in nine.reason
    # the 5 weakest genes carry almost nothing: it is the count that says no here
    assert nine.separation_kept > 0.98


def test_separation_rule_says_no_although_twelve_are_present():
    drop = ["IGF2BP1", "KCNK3"]
    m = S.map_model(PUB, _cohort_genes(drop=drop))
    assert m.n_present == 12 and m.status == "not measured"
    assert m.separation_kept == pytest.approx(0.365, abs=0.001)
    assert "less than 50%" in m.reason
    assert S.map_model(PUB, _cohort_genes(drop=drop), min_separation=0.0).status == "partial"


def test_partial_scores_on_the_genes_present():
    drop = ["HAP1", "TYRO3", "CCDC155"]
    genes = _cohort_genes(drop=drop)
    m = S.map_model(PUB, genes)
    assert m.status == "partial" and len(m.model.genes) == 11
    x = _expr(genes, n=8, seed=3)
    got = S.score_cohort(m, x)
    keep = [g for g in GENES if g not in drop]
    want = _delta_by_hand(x, keep, keep)
    np.testing.assert_allclose(got["delta_CR"], want["CR"], rtol=1e-12)
    np.testing.assert_allclose(got["delta_NR"], want["NR"], rtol=1e-12)
    assert m.model.provenance["signature_status"] == m.reason


def test_separation_shares_sum_to_one_and_rank_table1():
    s = S.separation_shares(PUB)
    assert s.sum() == pytest.approx(1.0)
    assert s.idxmax() == "IGF2BP1" and s["IGF2BP1"] == pytest.approx(0.4157, abs=1e-4)
    # two classes: proportional to ((c1 - c2) / sd)^2
    t = PUB.centroids
    w = ((t["CR"] - t["NR"]) / PUB.sd) ** 2
    np.testing.assert_allclose(s, w / w.sum(), rtol=1e-12)


def test_small_model_needs_all_its_genes():
    d = PUB.to_dict()
    small = M._build(
        {**d, "genes": d["genes"][:3], "sd": d["sd"][:3], "centroids": {c: v[:3] for c, v in d["centroids"].items()}},
        "small",
    )
    assert S.map_model(small, GENES[:3]).status == "complete"
    m = S.map_model(small, GENES[:2])
    assert m.status == "not measured" and m.min_genes == 3


# ------------------------------------------------------------------------------ scale of scorer input


def test_score_cohort_refuses_raw_counts():
    """The cohort path (chapter 09) applies the scorer's scale check to the mapped rows."""
    genes = _cohort_genes(rename={"CCDC155": "KASH5"})
    m = S.map_model(PUB, genes)
    rng = np.random.default_rng(5)
    counts = pd.DataFrame(rng.poisson(80, (len(genes), 6)), index=genes).astype(float)
    with pytest.raises(InputError, match="cohort.h5ad: values: .*raw counts"):
        S.score_cohort(m, counts, source="cohort.h5ad")
    S.score_cohort(m, np.log2(counts + 1))  # the same on a log scale is scored
    with pytest.raises(ValueError, match="other genes"):
        S.score_cohort(m, np.log2(counts + 1).drop(index="KASH5"))


def test_current_symbol_rule_is_the_annotation_rule():
    """The matcher's current symbol of a name is harmonize_ids' (annotation.current_symbols)."""
    from helpers.data import annotation as A

    names = GENES + ["C20orf58", "IMP1", "TASK1", "HLP", "SPRING", "NOT_A_GENE", "KASH5"]
    want = A.current_symbols(names)
    tables = S._alias_tables(None, None)
    assert {g: S._current_symbol(g, tables) for g in names} == want
    assert want["CCDC155"] == "KASH5" and want["IMP1"] == "IMP1"
