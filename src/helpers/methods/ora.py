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

Why not per set in Python: a GO collection has ~15,000 sets and ~1.5 million (set, gene) pairs,
and a chapter tests several queries (up and down DEGs) against one collection. The pairs are
mapped to gene codes once (:func:`ora_many`), every set's cut size ``M`` and hit count ``k`` are
``bincount`` s over those codes, and only the tested sets' hit lists are joined in Python. The
p-values are the same ``scipy.stats.hypergeom.sf`` call on the same integers as a per-set loop,
so the table is identical to one (a test holds it to a literal per-set version, and the golden
tests to R's clusterProfiler).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from itertools import chain

import numpy as np
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
    return ora_many({"query": query}, tested, sets, descriptions, min_size=min_size, max_size=max_size)["query"]


def ora_many(
    queries: Mapping[Hashable, Iterable[str]],
    tested: Iterable[str],
    sets: Mapping[str, Iterable[str]],
    descriptions: Mapping[str, str] | None = None,
    min_size: int = 10,
    max_size: int = 500,
) -> dict:
    """:func:`ora` of each query (label -> genes) against one ``tested`` universe and one
    collection, which is mapped to gene codes once: ``{label: ORA table}``."""
    if descriptions is None:
        descriptions = getattr(sets, "descriptions", {}) or {}
    names = list(sets)
    members = [m if isinstance(m, (list, tuple)) else list(m) for m in sets.values()]
    tested_ix = pd.Index(list(dict.fromkeys(tested)), dtype=object)
    n_tested = len(tested_ix)
    flat = list(chain.from_iterable(members))
    if not flat or not n_tested:
        return {label: _empty() for label in queries}
    # (set, tested gene) pairs, each once: genes outside ``tested`` are outside the universe
    set_of = np.repeat(np.arange(len(names), dtype=np.int64), [len(m) for m in members])
    flat_arr = np.empty(len(flat), dtype=object)
    flat_arr[:] = flat  # (faster than pd.Index(flat): no type inference)
    code = tested_ix.get_indexer(flat_arr)
    keep = code >= 0
    pair = np.sort(set_of[keep] * n_tested + code[keep])  # (numpy 2's hash-based np.unique is slower here)
    if pair.size == 0:  # no tested gene in any set: an empty universe
        return {label: _empty() for label in queries}
    pair = pair[np.r_[True, pair[1:] != pair[:-1]]]
    pair_set, pair_gene = pair // n_tested, pair % n_tested
    # universe = tested genes in at least one set; rank = position in Python's sorted order
    univ = np.flatnonzero(np.bincount(pair_gene, minlength=n_tested))
    univ_names = tested_ix[univ].tolist()
    order = sorted(range(len(univ)), key=univ_names.__getitem__)
    rank = np.full(n_tested, -1, dtype=np.int64)
    rank[univ[order]] = np.arange(len(univ))
    sorted_names = [univ_names[i] for i in order]
    M_all = np.bincount(pair_set, minlength=len(names))
    size_ok = (min_size <= M_all) & (M_all <= max_size)
    N = len(univ)
    out = {}
    for label, query in queries.items():
        in_q = np.zeros(n_tested, dtype=bool)
        q_code = tested_ix.get_indexer(pd.Index(list(query), dtype=object))
        in_q[q_code[q_code >= 0]] = True
        in_q &= rank >= 0
        n = int(in_q.sum())
        hit = in_q[pair_gene]
        hit_set, hit_rank = pair_set[hit], rank[pair_gene[hit]]
        k_all = np.bincount(hit_set, minlength=len(names))
        chosen = np.flatnonzero(size_ok & (k_all > 0))
        if chosen.size == 0:
            out[label] = _empty()
            continue
        o = np.lexsort((hit_rank, hit_set))  # by set, then by gene name
        hit_set, hit_rank = hit_set[o], hit_rank[o]
        start = np.searchsorted(hit_set, chosen, side="left")
        stop = start + k_all[chosen]
        genes = ["/".join([sorted_names[r] for r in hit_rank[a:b].tolist()]) for a, b in zip(start, stop)]
        chosen_names = [names[i] for i in chosen]
        df = pd.DataFrame(
            {
                "set": chosen_names,
                "description": [descriptions.get(s, "") for s in chosen_names],
                "k": k_all[chosen].astype(np.int64),
                "n_query": np.full(chosen.size, n, dtype=np.int64),
                "M": M_all[chosen].astype(np.int64),
                "N": np.full(chosen.size, N, dtype=np.int64),
                "genes": genes,
            }
        )
        out[label] = _finish(df, n, N)
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def _finish(df: pd.DataFrame, n: int, N: int) -> pd.DataFrame:
    k, M = df["k"].to_numpy(), df["M"].to_numpy()
    df["GeneRatio"] = [f"{a}/{n}" for a in k]
    df["BgRatio"] = [f"{b}/{N}" for b in M]
    df["fold"] = (k / n) / (M / N)
    df["pvalue"] = hypergeom.sf(k - 1, N, M, n)
    df["p.adjust"] = bh_adjust(df["pvalue"].to_numpy())
    df = df.sort_values(["pvalue", "set"], kind="mergesort").reset_index(drop=True)
    return df[COLUMNS]
