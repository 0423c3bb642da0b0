"""The claim rules of helpers.analysis.claims: every rule has a case where it must say yes, one
where it must say no, and (where data can be missing) one where it must say "not measured"."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT

from helpers.analysis import claims
from helpers.analysis.scorecard import load_claims, rule_text
from helpers.engine.errors import InputError
from helpers.engine.paths import PAPER

# --------------------------------------------------------------------------- Verdict


def test_verdict_value_and_not_measured_needs_reason():
    assert claims.Verdict(True, "x").value is True
    assert claims.Verdict(False, "x").value is False
    v = claims.not_measured("no term enriched")
    assert v.holds is None and v.value == "not measured: no term enriched"
    with pytest.raises(ValueError, match="reason"):
        claims.Verdict(None, "x")


# --------------------------------------------------------------------------- no grouping (Fig. 1B)


@pytest.mark.parametrize(
    "r2, sil, holds",
    [
        (0.05, -0.1, True),
        (0.25, -0.1, False),  # explains too much of PC1-PC2
        (0.05, 0.30, False),  # visible clusters
        (0.20, 0.0, False),  # the bound itself is not "less than"
    ],
)
def test_no_grouping(r2, sil, holds):
    v = claims.no_grouping(r2, sil, max_r2=0.2, max_silhouette=0.25)
    assert v.holds is holds
    assert v.params == {"max_r2": 0.2, "max_silhouette": 0.25}


def test_no_grouping_single_level_is_not_measured():
    assert claims.no_grouping(np.nan, np.nan, 0.2, 0.25).holds is None


# --------------------------------------------------------------------------- permutation null


def test_permutation_pvalue_is_seeded_and_never_zero():
    labels = np.array(["CR"] * 22 + ["NR"] * 9)
    stat = lambda lab: float((lab[:9] == "NR").mean())  # noqa: E731 - largest when the NR come first
    obs, p, _ = claims.permutation_pvalue(stat, labels, 99, seed=1)  # CR first: the smallest statistic
    assert obs == 0.0 and p == 1.0
    obs, p, null = claims.permutation_pvalue(stat, labels[::-1], 99, seed=1)  # NR first: the largest
    assert obs == 1.0 and p == pytest.approx(1 / 100)
    np.testing.assert_array_equal(null, claims.permutation_pvalue(stat, labels[::-1], 99, seed=1)[2])
    assert not np.array_equal(null, claims.permutation_pvalue(stat, labels[::-1], 99, seed=2)[2])
    with pytest.raises(InputError, match="n_perm"):
        claims.permutation_pvalue(stat, labels, 0, seed=1)


def test_cluster_separation_yes_no_and_not_measured():
    labels = np.array(["CR"] * 22 + ["NR"] * 9)
    perfect = np.where(labels == "CR", 1, 2)
    v = claims.cluster_separation(perfect, labels, n_perm=199, alpha=0.05, seed=3)
    assert v.holds is True and v.params["ari"] == pytest.approx(1.0) and v.params["p"] == pytest.approx(1 / 200)
    # the purity trap: one outlier in its own cluster. Purity is 23/31 = 0.74 (above what
    # "everyone CR" scores), but the cut says nothing about response.
    outlier = np.ones(31, int)
    outlier[0] = 2
    v = claims.cluster_separation(outlier, labels, n_perm=199, alpha=0.05, seed=3)
    assert v.holds is False
    assert claims.cluster_separation(perfect, np.array(["CR"] * 31), 99, 0.05, 3).holds is None
    assert claims.cluster_separation(np.ones(31), labels, 99, 0.05, 3).holds is None


def test_cluster_separation_false_positive_rate_is_bounded():
    """Random two-cluster cuts: the rule may say "separates" only about alpha of the time."""
    labels = np.array(["CR"] * 22 + ["NR"] * 9)
    passes = 0
    for s in range(120):
        clusters = np.random.default_rng(1000 + s).integers(1, 3, size=31)
        passes += claims.cluster_separation(clusters, labels, n_perm=59, alpha=0.1, seed=s).holds
    # expected 12 of 120 at alpha 0.1; P(Binomial(120, 0.1) > 24) < 1e-3
    assert passes <= 24


def test_pca_separation_yes_no_and_false_positive_rate():
    labels = np.array(["CR"] * 22 + ["NR"] * 9)
    rng = np.random.default_rng(0)
    apart = rng.normal(size=(31, 2)) + np.where(labels == "CR", 0.0, 6.0)[:, None]
    v = claims.pca_separation(apart, labels, n_perm=199, alpha=0.05, seed=1)
    assert v.holds is True and v.params["silhouette"] > 0.5
    passes = 0
    for s in range(60):
        same = np.random.default_rng(2000 + s).normal(size=(31, 2))
        passes += claims.pca_separation(same, labels, n_perm=39, alpha=0.1, seed=s).holds
    assert passes <= 14  # expected 6 of 60; P(Binomial(60, 0.1) > 14) < 1e-3
    assert claims.pca_separation(apart, np.array(["CR"] * 31), 99, 0.05, 1).holds is None


# --------------------------------------------------------------------------- T-cell terms (Fig. 2D, S1)

TCELL = [
    "T cell activation",
    "positive regulation of T cell proliferation",
    "alpha-beta T cell differentiation",
    "T-helper 17 cell lineage commitment",
    "thymocyte aggregation",
    "regulation of T-cell receptor signaling",
    "gamma-delta T cell activation",
    "CD4-positive, alpha-beta T cell differentiation",
]
NOT_TCELL = [
    "lymphocyte activation",
    "B cell activation",
    "natural killer cell mediated cytotoxicity",
    "leukocyte migration",
    "regulation of lymphocyte proliferation",
    "ATP metabolic process",
    "T-tubule organization",
    "mitotic cell cycle checkpoint signaling",
    "NK cell activation",
]


def test_tcell_pattern_names_t_cells_only():
    assert claims.is_tcell_term(TCELL).all()
    assert not claims.is_tcell_term(NOT_TCELL).any()
    params = yaml.safe_load((ROOT / "config" / "params.yml").read_text())["notebooks"]["05_go"]
    assert params["tcell_pattern"] == claims.TCELL_PATTERN
    with pytest.raises(InputError, match="regular expression"):
        claims.is_tcell_term(["x"], pattern="T(")


def _ora(descriptions, p=None):
    n = len(descriptions)
    return pd.DataFrame(
        {
            "set": [f"GO:{i:07d}" for i in range(n)],
            "description": descriptions,
            "pvalue": p if p is not None else np.linspace(1e-6, 1e-2, n),
        }
    )


def test_top_terms_cuts_at_p_and_n():
    t = _ora(["a", "b", "c", "d"], p=[0.2, 0.01, 0.001, 0.04])
    assert claims.top_terms(t, 0.05, 2)["description"].tolist() == ["c", "b"]
    assert claims.top_terms(t, 0.05, 10)["description"].tolist() == ["c", "b", "d"]


def test_mainly_tcell_needs_at_least_half():
    half = _ora(TCELL[:5] + NOT_TCELL[:5])
    v = claims.mainly_tcell(half, p_cutoff=0.05, top_n=10, min_share=0.5)
    assert v.holds is True and v.detail == "5 of 10 top terms name T cells"
    four = _ora(TCELL[:4] + NOT_TCELL[:6])
    assert claims.mainly_tcell(four, 0.05, 10, min_share=0.5).holds is False
    # three T-cell terms plus lymphocyte / B / NK terms: the old rule ("3 of 10 matching a pattern
    # that includes 'lymphocyte'") said yes; T cells are not the main theme here
    mixed = _ora(TCELL[:3] + ["lymphocyte activation", "B cell activation", "NK cell activation"] + NOT_TCELL[3:7])
    assert claims.mainly_tcell(mixed, 0.05, 10, min_share=0.5).holds is False
    # terms beyond top_n or with p >= p_cutoff do not count
    late = _ora(NOT_TCELL[:6] + TCELL[:6])
    assert claims.mainly_tcell(late, 0.05, 6, min_share=0.5).holds is False


def test_mainly_tcell_and_no_tcell_link_not_measured_without_terms():
    nothing = _ora(TCELL[:3], p=[0.2, 0.3, 0.5])
    assert claims.mainly_tcell(nothing, 0.05, 10, 0.5).value == "not measured: no term enriched"
    v = claims.no_tcell_link(nothing, 0.05, 10, 0.0)
    assert v.holds is None and v.value.startswith("not measured")  # must not pass vacuously


def test_no_tcell_link():
    assert claims.no_tcell_link(_ora(NOT_TCELL[:6]), 0.05, 10, max_share=0.0).holds is True
    one = _ora(NOT_TCELL[:5] + TCELL[:1])
    assert claims.no_tcell_link(one, 0.05, 10, max_share=0.0).holds is False
    assert claims.no_tcell_link(one, 0.05, 10, max_share=0.2).holds is True


# --------------------------------------------------------------------------- down / up ratio (Fig. 2A)


def test_down_up_band_from_the_papers_counts():
    low, high = claims.down_up_band(57, 302, 0.95)
    assert low == pytest.approx(3.98, abs=0.01) and high == pytest.approx(7.16, abs=0.01)
    low99, high99 = claims.down_up_band(57, 302, 0.99)
    assert low99 < low and high99 > high
    with pytest.raises(InputError, match="level"):
        claims.down_up_band(57, 302, 1.5)
    with pytest.raises(InputError, match="positive"):
        claims.down_up_band(0, 302)


@pytest.mark.parametrize(
    "n_up, n_down, holds",
    [
        (57, 302, True),  # the paper itself
        (50, 250, True),  # 5:1
        (60, 240, True),  # 4:1
        (40, 100, False),  # 2.5:1 would pass a "more than twice" rule, not "about five to one"
        (4, 30, False),  # 7.5:1: more than "about five"
        (0, 30, False),  # no up gene at all
        (51, 43, False),  # more up than down
    ],
)
def test_down_up_ratio(n_up, n_down, holds):
    assert claims.down_up_ratio(n_up, n_down, 57, 302, 0.95).holds is holds


def test_down_up_ratio_not_measured_without_degs():
    assert claims.down_up_ratio(0, 0, 57, 302).holds is None


# --------------------------------------------------------------------------- claims.yml <-> rules <-> params


class _Page:
    def __init__(self):
        self.numbers = {}

    def number(self, key, value):
        self.numbers[key] = value


def _verdicts():
    """One verdict per qualitative claim, from the rule function the chapter calls."""
    labels = np.array(["CR"] * 22 + ["NR"] * 9)
    return {
        "no_batch_effect": claims.no_grouping(0.01, -0.1, 0.2, 0.25),
        "no_response_separation_all_genes": claims.no_grouping(0.0, -0.02, 0.2, 0.25),
        "more_down_than_up": claims.down_up_ratio(43, 51, 57, 302, 0.95),
        "heatmap_separates": claims.cluster_separation(np.where(labels == "CR", 1, 2), labels, 19, 0.05, 7),
        "deg_pca_separates": claims.pca_separation(np.c_[np.arange(31.0), np.zeros(31)], labels, 19, 0.05, 7),
        "go_up_tcell": claims.mainly_tcell(_ora(TCELL[:5]), 0.05, 10, 0.5, pattern=claims.TCELL_PATTERN),
        "go_down_no_tcell": claims.no_tcell_link(_ora(NOT_TCELL[:5]), 0.05, 10, 0.0, pattern=claims.TCELL_PATTERN),
    }


def test_every_qualitative_claim_has_a_rule_whose_template_its_verdict_fills():
    qual = [c for c in load_claims(PAPER / "claims.yml") if c["compare"] == "qualitative"]
    verdicts = _verdicts()
    assert sorted(c["id"] for c in qual) == sorted(verdicts)
    for c in qual:
        text = rule_text(c, verdicts[c["id"]].params)
        assert "{" not in text.split(" [")[0], (c["id"], text)
        page = _Page()
        claims.record(page, c["id"], verdicts[c["id"]])
        assert set(page.numbers) == {c["id"], f"{c['id']}_rule", f"{c['id']}_detail"}
        assert page.numbers[f"{c['id']}_rule"] == text


def test_rule_text_carries_the_values_used():
    c = next(c for c in load_claims(PAPER / "claims.yml") if c["id"] == "more_down_than_up")
    text = rule_text(c, claims.down_up_ratio(57, 302, 57, 302, 0.95).params)
    assert "between 4.0 and 7.2" in text and "95%" in text and "[03_de.ratio_level]" in text


def test_rule_parameters_exist_in_params_yml_and_in_the_chapters_parameters_cell():
    from helpers.engine.runner import read_notebook

    config = yaml.safe_load((ROOT / "config" / "params.yml").read_text())
    for c in load_claims(PAPER / "claims.yml"):
        for key in (c.get("params") or {}).values():
            block, name = key.split(".", 1)
            values = config["global"] if block == "global" else config["notebooks"][block]
            assert name in values, (c["id"], key)
            if block != "global":
                nb = read_notebook(ROOT / "notebooks" / f"{block}.md")
                cell = next(x for x in nb.cells if "parameters" in x.metadata.get("tags", []))
                assert re.search(rf"^{re.escape(name)} = ", cell.source, re.M), (c["id"], key)


def test_fast_ari_and_silhouette_equal_sklearn():
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(4, 40))
        a, b = rng.integers(0, 3, n), rng.integers(0, int(rng.integers(1, 5)), n)
        assert claims.adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
        x = rng.normal(size=(n, 2))
        lab = rng.integers(0, 3, n)
        if 1 < len(set(lab)) < n:
            d = squareform(pdist(x))
            assert claims.silhouette(d, lab) == pytest.approx(silhouette_score(x, lab), abs=1e-12)
    assert claims.adjusted_rand([1, 1, 1], [2, 2, 2]) == pytest.approx(adjusted_rand_score([1, 1, 1], [2, 2, 2]))
