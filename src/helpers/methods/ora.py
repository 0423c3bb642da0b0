"""Over-representation analysis (hypergeometric), with clusterProfiler ``enricher`` rules.

Rules (as clusterProfiler's ``enricher(gene, universe, TERM2GENE, minGSSize, maxGSSize)``):

1. universe ``N`` = the tested genes that are in at least one set (of the whole collection);
2. every set is cut to that universe; sets of size ``min_size..max_size`` are kept;
3. the query ``n`` = the query genes that are in at least one set (whole collection);
4. only sets holding at least one query gene are tested;
5. p = P(X >= k), X ~ Hypergeometric(N, M, n) (``phyper(k-1, M, N-M, n, lower.tail=FALSE)``);
6. Benjamini-Hochberg over the tested sets.

The table has one row per tested set, sorted by p-value (ties by set name), with the
columns ``set, description, k, n_query, M, N, GeneRatio, BgRatio, fold, pvalue,
p.adjust, genes`` (``genes`` = the query genes in the set, sorted, '/'-joined).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
from scipy.stats import hypergeom

from helpers.methods.limma import p_adjust_bh

COLUMNS = [
    "set",
    "description",
    "k",
    "n_query",
    "M",
    "N",
    "GeneRatio",
    "BgRatio",
    "fold",
    "pvalue",
    "p.adjust",
    "genes",
]


# one Benjamini-Hochberg for the whole package (limma's p.adjust(p, "BH") port)
bh_adjust = p_adjust_bh


def ora(
    query: Iterable[str],
    tested: Iterable[str],
    sets: Mapping[str, Iterable[str]],
    descriptions: Mapping[str, str] | None = None,
    min_size: int = 10,
    max_size: int = 500,
) -> pd.DataFrame:
    """Over-representation of ``query`` genes in ``sets`` against the ``tested`` genes.

    Parameters
    ----------
    query : the genes of interest (e.g. the DE genes); should be a subset of ``tested``.
    tested : every gene that was tested (the candidate universe).
    sets : set name -> genes (a :class:`helpers.data.genesets.GeneSets` or any mapping).
    descriptions : set name -> description; defaults to ``sets.descriptions`` if present.
    min_size, max_size : size rule applied after cutting sets to the universe (inclusive).

    Returns a DataFrame with the module's ``COLUMNS``; empty (same columns) when no set
    qualifies. Query genes outside ``tested`` are ignored (they cannot be drawn).
    """
    if descriptions is None:
        descriptions = getattr(sets, "descriptions", {}) or {}
    tested_set = set(tested)
    members = {name: set(genes) for name, genes in sets.items()}
    annotated = set().union(*members.values()) if members else set()
    universe = tested_set & annotated
    q = set(query) & universe
    N, n = len(universe), len(q)

    rows = []
    for name, genes in members.items():
        cut = genes & universe
        M = len(cut)
        if not (min_size <= M <= max_size):
            continue
        hits = sorted(cut & q)
        k = len(hits)
        if k == 0:
            continue
        rows.append((name, descriptions.get(name, ""), k, n, M, N, "/".join(hits)))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})

    df = pd.DataFrame(rows, columns=["set", "description", "k", "n_query", "M", "N", "genes"])
    k, M = df["k"].to_numpy(), df["M"].to_numpy()
    df["GeneRatio"] = [f"{a}/{n}" for a in k]
    df["BgRatio"] = [f"{b}/{N}" for b in M]
    df["fold"] = (k / n) / (M / N)
    df["pvalue"] = hypergeom.sf(k - 1, N, M, n)
    df["p.adjust"] = bh_adjust(df["pvalue"].to_numpy())
    df = df.sort_values(["pvalue", "set"], kind="mergesort").reset_index(drop=True)
    return df[COLUMNS]
