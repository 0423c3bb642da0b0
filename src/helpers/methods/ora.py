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

from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from helpers.methods.limma import p_adjust_bh

COLUMNS = ["set", "description", "k", "n_query", "M", "N", "GeneRatio", "BgRatio",
           "fold", "pvalue", "p.adjust", "genes"]


# one Benjamini-Hochberg for the whole package (limma's p.adjust(p, "BH") port)
bh_adjust = p_adjust_bh


def ora(query: Iterable[str], tested: Iterable[str], sets: Mapping[str, Iterable[str]],
        descriptions: Mapping[str, str] | None = None, min_size: int = 10,
        max_size: int = 500) -> pd.DataFrame:
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


def gene_ratio(table: pd.DataFrame) -> pd.Series:
    """GeneRatio k/n as a float."""
    return table["k"] / table["n_query"]


def dotplot(ora_table: pd.DataFrame, top: int = 10, ax=None, title: str | None = None,
            wrap: int = 45):
    """clusterProfiler-style dot plot of an :func:`ora` table; returns the matplotlib Figure.

    The ``top`` sets with the smallest p-values are shown; x = GeneRatio, dot size = gene
    count ``k``, colour = adjusted p (red = small, blue = large, as clusterProfiler), terms
    on the y axis ordered by GeneRatio (largest at the top). Long descriptions are wrapped
    at ``wrap`` characters.
    """
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.42 * max(min(top, len(ora_table)), 3) + 1.2))
    else:
        fig = ax.figure
    if len(ora_table) == 0:
        ax.text(0.5, 0.5, "no enriched sets", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    tab = ora_table.sort_values(["pvalue", "set"], kind="mergesort").head(top).copy()
    tab["ratio"] = gene_ratio(tab)
    tab = tab.sort_values(["ratio", "pvalue"], ascending=[True, False], kind="mergesort")
    labels = [textwrap.fill(d if d else s, wrap) for d, s in zip(tab["description"], tab["set"])]
    y = np.arange(len(tab))
    kmax = max(int(tab["k"].max()), 1)
    sizes = 30 + 270 * tab["k"].to_numpy() / kmax
    cmap = LinearSegmentedColormap.from_list("red_blue", ["#e41a1c", "#377eb8"])
    sc = ax.scatter(tab["ratio"], y, s=sizes, c=tab["p.adjust"], cmap=cmap,
                    edgecolors="none", zorder=3)
    ax.set_yticks(y, labels)
    ax.set_xlabel("GeneRatio")
    ax.grid(True, color="0.9", zorder=0)
    lo, hi = float(tab["ratio"].min()), float(tab["ratio"].max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.1 * hi
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(tab) - 0.3)
    cb = fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label("p.adjust")
    ks = sorted({int(v) for v in np.unique(np.linspace(tab["k"].min(), kmax, 3).round())})
    handles = [ax.scatter([], [], s=30 + 270 * kk / kmax, color="0.4") for kk in ks]
    ax.legend(handles, [str(kk) for kk in ks], title="Count", loc="best",
              frameon=False, fontsize="small", title_fontsize="small", borderaxespad=0.3)
    if title:
        ax.set_title(title)
    return fig
