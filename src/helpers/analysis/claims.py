"""The paper's qualitative claims as rules: each function takes what a chapter measured and the
rule's parameters (from the chapter's block of ``config/params.yml``) and returns a
:class:`Verdict`: the claim holds, does not hold, or could not be judged ("not measured", with
the reason). ``data/paper/claims.yml`` carries each rule in words (a template filled with
:attr:`Verdict.params`) and names the parameters it reads; the scorecard shows the filled rule
beside the verdict.

The rules, and why they are what they are:

- **"no visible grouping"** (Fig. 1B: no batch effect; no CR/NR separation on all genes),
  :func:`no_grouping`: a factor explains less than ``max_r2`` of the PC1-PC2 variance and its
  samples' silhouette width is below ``max_silhouette``. The paper's claim is about what the plot
  shows (an effect size), so an effect-size rule, not a test: with enough samples a tiny, invisible
  grouping becomes "significant". The batch claim, :func:`no_batch_effect`, is that rule for the
  dataset factor, and "not measured (one dataset)" for a cohort of one dataset: there is no batch
  to see, whatever numbers are passed.
- **"separates CR from NR"** (Fig. 2B heatmap, Fig. 2C DEG PCA), :func:`cluster_separation` and
  :func:`pca_separation`: a chance-corrected statistic (adjusted Rand index of the two-cluster
  cut; response silhouette in PC1-PC2) compared with its label-permutation null (response labels
  shuffled over the samples, the clustering and the scores held fixed; seeded). Raw purity is not
  used: calling every patient CR already scores 22/31 = 0.71.
- **"mainly T-cell"** (Fig. 2D), :func:`mainly_tcell`: at least ``min_share`` (default one half)
  of the top GO terms name T cells; the pattern (:data:`TCELL_PATTERN`) names T cells only, not
  lymphocytes in general, B or NK cells.
- **"no obvious link to T cells"** (Fig. S1), :func:`no_tcell_link`: at most ``max_share`` of the
  top terms name T cells. With no enriched term there is nothing to judge: "not measured".
- **"about five to one"** (Fig. 2A), :func:`down_up_ratio`: n_down / n_up lies in the band of
  ratios a DEG list of the paper's size would show if its genes fell down or up with the paper's
  proportions: the exact (Clopper-Pearson) ``level`` interval of the paper's down share 302/359,
  turned into a ratio (95%: 4.0 to 7.2, i.e. "four to seven to one").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from helpers.engine.errors import InputError

#: T cells only: "T cell", "T-cell", "T-helper", alpha-beta / gamma-delta T cells, thymocytes.
#: Not "lymphocyte" (also B and NK cells), not "leukocyte", not B or NK cells.
TCELL_PATTERN = r"\bT[- ]cells?\b|\bT[- ]helper\b|\bthymocytes?\b|\b(?:alpha-beta|gamma-delta) T\b"

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim rule.

    ``holds`` is True/False, or None when the rule could not be applied (then ``reason`` says
    why). ``detail`` names the statistic behind the verdict ("ratio 5.3 = 302/57"). ``params``
    fill the claim's rule template in ``claims.yml`` (parameters and the values derived from them).
    """

    holds: bool | None
    detail: str
    params: dict = field(default_factory=dict)
    reason: str | None = None

    def __post_init__(self):
        if self.holds is None and not self.reason:
            raise ValueError("a verdict that is not measured needs a reason")

    @property
    def value(self):
        """What ``numbers.json`` stores under the claim id: true/false or "not measured: <reason>"."""
        return bool(self.holds) if self.holds is not None else f"{NOT_MEASURED}: {self.reason}"


def not_measured(reason: str, params: dict | None = None) -> Verdict:
    return Verdict(None, reason, dict(params or {}), reason)


def _finite(*values) -> bool:
    return all(v is not None and np.isfinite(float(v)) for v in values)


# --------------------------------------------------------------------------- PCA of all genes


def no_grouping(r2_pooled: float, silhouette: float, max_r2: float, max_silhouette: float) -> Verdict:
    """Samples show no visible grouping by a factor: it explains less than ``max_r2`` of the
    PC1-PC2 variance **and** its silhouette width is below ``max_silhouette``."""
    params = {"max_r2": max_r2, "max_silhouette": max_silhouette}
    if not _finite(r2_pooled, silhouette):
        return not_measured("the factor has a single level (or no variance) in this cohort", params)
    holds = bool(r2_pooled < max_r2 and silhouette < max_silhouette)
    return Verdict(holds, f"R² {r2_pooled:.3f}, silhouette {silhouette:.3f}", params)


def no_batch_effect(
    r2_pooled: float, silhouette: float, n_datasets: int, max_r2: float, max_silhouette: float
) -> Verdict:
    """No batch effect (Fig. 1B): with two or more datasets, :func:`no_grouping` of the dataset
    factor; with one dataset, not measured ("one dataset"), never a comparison of undefined values."""
    params = {"max_r2": max_r2, "max_silhouette": max_silhouette}
    n_datasets = int(n_datasets)
    if n_datasets < 1:
        raise InputError(f"a cohort has at least one dataset, got {n_datasets}", where="no_batch_effect")
    if n_datasets == 1:
        return not_measured("one dataset", params)
    return no_grouping(r2_pooled, silhouette, max_r2=max_r2, max_silhouette=max_silhouette)


# --------------------------------------------------------------------------- separation (permutation null)


def permutation_pvalue(statistic, labels, n_perm: int, seed: int) -> tuple[float, float, np.ndarray]:
    """Label-permutation test of ``statistic(labels)`` (larger = more separated).

    The labels are shuffled ``n_perm`` times with ``numpy.random.default_rng(seed)``; the p-value is
    ``(1 + #{null >= observed}) / (1 + n_perm)`` (never 0). Returns (observed, p, null).
    """
    if int(n_perm) < 1:
        raise InputError(f"n_perm must be >= 1, got {n_perm}", where="n_perm")
    labels = np.asarray(labels).astype(str)
    observed = float(statistic(labels))
    rng = np.random.default_rng(seed)
    null = np.array([float(statistic(rng.permutation(labels))) for _ in range(int(n_perm))])
    p = (1 + int(np.sum(null >= observed - 1e-12))) / (1 + int(n_perm))
    return observed, p, null


def _two_classes(labels) -> bool:
    return len(set(np.asarray(labels).astype(str).tolist())) == 2


def _codes(labels) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def adjusted_rand(labels_a, labels_b) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings (sklearn's
    ``adjusted_rand_score``, computed from the contingency table so that thousands of
    permutations stay cheap)."""
    a, ka = _codes(labels_a)
    b, kb = _codes(labels_b)
    n = len(a)
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(float)
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    sum_ij = comb(table).sum()
    sum_a, sum_b = comb(table.sum(axis=1)).sum(), comb(table.sum(axis=0)).sum()
    expected = sum_a * sum_b / comb(n) if n > 1 else 0.0
    top = (sum_a + sum_b) / 2.0
    if top == expected:  # both labelings trivial (one cluster each, or all singletons)
        return 1.0
    return float((sum_ij - expected) / (top - expected))


def silhouette(distances: np.ndarray, labels) -> float:
    """Mean silhouette width of ``labels`` given a square distance matrix (sklearn's
    ``silhouette_score`` with ``metric="precomputed"``; a sample alone in its group scores 0),
    vectorised so that thousands of label permutations stay cheap."""
    codes, k = _codes(labels)
    n = len(codes)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), codes] = 1.0
    sums = distances @ onehot  # n x k: summed distance of each sample to each group
    sizes = onehot.sum(axis=0)
    own = sizes[codes]
    a = sums[np.arange(n), codes] / np.maximum(own - 1, 1)
    other = np.where(onehot.astype(bool), np.inf, sums / sizes[None, :])
    b = other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.where((own > 1) & np.isfinite(s), s, 0.0)
    return float(s.mean())


def cluster_separation(clusters, labels, n_perm: int, alpha: float, seed: int) -> Verdict:
    """The clusters of a tree cut separate the two response groups: the adjusted Rand index of
    clusters vs labels is larger than under shuffled labels, permutation p <= ``alpha``."""
    clusters = np.asarray(clusters)
    params = {"n_perm": int(n_perm), "alpha": alpha, "seed": int(seed)}
    if not _two_classes(labels) or len(set(clusters.tolist())) < 2:
        return not_measured("need two response groups and at least two clusters", params)
    ari, p, _ = permutation_pvalue(lambda lab: adjusted_rand(lab, clusters), labels, n_perm, seed)
    return Verdict(
        bool(p <= alpha and ari > 0), f"ARI {ari:.3f}, permutation p {p:.3g}", {**params, "p": p, "ari": ari}
    )


def pca_separation(points, labels, n_perm: int, alpha: float, seed: int) -> Verdict:
    """The response groups are apart in PC space: their mean silhouette width (Euclidean) is
    larger than under shuffled labels, permutation p <= ``alpha``."""
    from scipy.spatial.distance import pdist, squareform

    points = np.asarray(points, dtype=float)
    params = {"n_perm": int(n_perm), "alpha": alpha, "seed": int(seed)}
    if not _two_classes(labels) or len(points) < 3:
        return not_measured("need two response groups and at least three samples", params)
    dist = squareform(pdist(points))
    sil, p, _ = permutation_pvalue(lambda lab: silhouette(dist, lab), labels, n_perm, seed)
    return Verdict(
        bool(p <= alpha and sil > 0),
        f"silhouette {sil:.3f}, permutation p {p:.3g}",
        {**params, "p": p, "silhouette": sil},
    )


# --------------------------------------------------------------------------- GO terms and T cells


def top_terms(ora_table: pd.DataFrame, p_cutoff: float, top_n: int) -> pd.DataFrame:
    """The ``top_n`` terms of an ORA table (sorted by p) with p < ``p_cutoff``."""
    return ora_table[ora_table["pvalue"] < p_cutoff].sort_values("pvalue", kind="mergesort").head(int(top_n))


def is_tcell_term(descriptions, pattern: str = TCELL_PATTERN) -> np.ndarray:
    """True for each term description that names T cells (case-insensitive ``pattern``)."""
    try:
        rx = re.compile(pattern, re.I)
    except re.error as e:
        raise InputError(f"not a valid regular expression ({e})", where="tcell_pattern") from None
    return np.array([bool(rx.search(str(d))) for d in descriptions], dtype=bool)


def _tcell_share(ora_table: pd.DataFrame, p_cutoff: float, top_n: int, pattern: str, params: dict):
    top = top_terms(ora_table, p_cutoff, top_n)
    hits = is_tcell_term(top["description"], pattern)
    return hits, {**params, "p_cutoff": p_cutoff, "top_n": int(top_n), "pattern": pattern, "n_terms": int(len(hits))}


def mainly_tcell(
    ora_table: pd.DataFrame, p_cutoff: float, top_n: int, min_share: float, pattern: str = TCELL_PATTERN
) -> Verdict:
    """ "Mainly T-cell": at least ``min_share`` of the top terms (:func:`top_terms` of an ORA
    table) name T cells. With no enriched term the claim is not measured."""
    hits, params = _tcell_share(ora_table, p_cutoff, top_n, pattern, {"min_share": min_share})
    if len(hits) == 0:
        return not_measured("no term enriched", params)
    share = float(hits.mean())
    return Verdict(
        bool(share >= min_share), f"{int(hits.sum())} of {len(hits)} top terms name T cells", {**params, "share": share}
    )


def no_tcell_link(
    ora_table: pd.DataFrame, p_cutoff: float, top_n: int, max_share: float, pattern: str = TCELL_PATTERN
) -> Verdict:
    """ "No obvious link to T cells": at most ``max_share`` of the top terms name T cells. With no
    enriched term the claim is not measured: an empty list says nothing about T cells."""
    hits, params = _tcell_share(ora_table, p_cutoff, top_n, pattern, {"max_share": max_share})
    if len(hits) == 0:
        return not_measured("no term enriched", params)
    share = float(hits.mean())
    return Verdict(
        bool(share <= max_share), f"{int(hits.sum())} of {len(hits)} top terms name T cells", {**params, "share": share}
    )


# --------------------------------------------------------------------------- DEG direction ratio


def down_up_band(paper_up: int, paper_down: int, level: float = 0.95) -> tuple[float, float]:
    """Ratios n_down / n_up compatible with the paper's counts: the exact ``level`` interval of
    the down share paper_down / (paper_up + paper_down), as a ratio share / (1 - share)."""
    if not 0 < level < 1:
        raise InputError(f"level must be between 0 and 1, got {level}", where="ratio_level")
    n = int(paper_up) + int(paper_down)
    if paper_up <= 0 or paper_down <= 0:
        raise InputError(
            f"the paper's counts must be positive, got {paper_up} up, {paper_down} down", where="claims.yml"
        )
    ci = stats.binomtest(int(paper_down), n).proportion_ci(level, method="exact")
    return ci.low / (1 - ci.low), ci.high / (1 - ci.high)


def down_up_ratio(n_up: int, n_down: int, paper_up: int, paper_down: int, level: float = 0.95) -> Verdict:
    """ "Far more down than up, about five to one": n_down / n_up inside :func:`down_up_band`."""
    low, high = down_up_band(paper_up, paper_down, level)
    params = {
        "level": level,
        "low": low,
        "high": high,
        "paper_up": int(paper_up),
        "paper_down": int(paper_down),
        "paper_n": int(paper_up) + int(paper_down),
    }
    if n_up + n_down == 0:
        return not_measured("no DEG", params)
    if n_up == 0:
        return Verdict(False, f"no up gene ({n_down} down)", params)
    ratio = n_down / n_up
    return Verdict(bool(low <= ratio <= high), f"ratio {ratio:.1f} = {n_down}/{n_up}", {**params, "ratio": ratio})


# --------------------------------------------------------------------------- recording


def record(page, claim_id: str, verdict: Verdict, claims: list[dict] | None = None) -> Verdict:
    """Write a verdict into a chapter's numbers: ``<id>`` (true/false or "not measured: ..."),
    ``<id>_rule`` (the claim's rule in words from ``claims.yml``, filled with the verdict's
    parameters) and ``<id>_detail`` (the statistic behind it)."""
    from helpers.analysis.scorecard import claim_by_id, rule_text

    claim = claim_by_id(claim_id, claims)
    page.number(claim_id, verdict.value)
    page.number(f"{claim_id}_rule", rule_text(claim, verdict.params))
    page.number(f"{claim_id}_detail", verdict.detail)
    return verdict
