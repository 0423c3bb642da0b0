"""Figures and the numbers behind them that several chapters share: the volcano plot (Fig. 2A),
the clustered DEG heatmap (Fig. 2B) with how well its clusters match response, and the
multiverse of DE calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from helpers.analysis.de import call_degs, deg_counts
from helpers.viz.style import CR_COLOR, DIVERGING, NR_COLOR, NS_COLOR, OKABE_ITO


def volcano(table: pd.DataFrame, p_max: float, lfc_min: float, use_fdr: bool = False, top_n: int = 15,
            cr: str = "CR", nr: str = "NR", ax=None):
    """Volcano plot of a DE table with ``direction`` (from :func:`helpers.analysis.de.call_degs`): log2FC
    against -log10 p, cut-off lines, and the ``top_n`` most significant DEGs labelled."""
    import matplotlib.pyplot as plt

    col = "adj.P.Val" if use_fdr else "P.Value"
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 5.0))
    else:
        fig = ax.figure
    p = table[col].clip(lower=1e-300)
    y = -np.log10(p)
    colors = {"up": CR_COLOR, "down": NR_COLOR, "ns": NS_COLOR}
    names = {"up": f"higher in {cr}", "down": f"higher in {nr}", "ns": "not significant"}
    for d in ("ns", "down", "up"):
        sel = table["direction"].astype(str) == d
        ax.scatter(table.loc[sel, "logFC"], y[sel], s=6 if d == "ns" else 10, c=colors[d], alpha=0.6 if d == "ns" else 0.9,
                   linewidths=0, label=f"{names[d]} ({int(sel.sum())})", rasterized=d == "ns")
    ax.axhline(-np.log10(p_max), color="0.3", lw=0.8, ls="--")
    for s in (-1, 1):
        ax.axvline(s * lfc_min, color="0.3", lw=0.8, ls="--")
    top = table[table["direction"].astype(str) != "ns"].sort_values(col).head(top_n)
    for gene, row in top.iterrows():
        ax.annotate(str(gene), (row["logFC"], -np.log10(max(row[col], 1e-300))), fontsize=7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel(f"log2 fold change ({cr} − {nr})")
    ax.set_ylabel(f"−log10 {'FDR' if use_fdr else 'p-value'}")
    ax.legend(loc="upper left", fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def cluster_samples(z: pd.DataFrame, method: str = "average", metric: str = "correlation"):
    """Hierarchical clustering of the columns (samples) of a genes x samples matrix."""
    return linkage(pdist(z.T.to_numpy(), metric=metric), method=method)


def cluster_agreement(Z, labels, k: int = 2) -> dict:
    """Cut the tree into ``k`` clusters and compare with ``labels``: adjusted Rand index and
    purity (share of samples in their cluster's majority label)."""
    labels = np.asarray(labels).astype(str)
    cl = fcluster(Z, t=k, criterion="maxclust")
    tab = pd.crosstab(cl, labels)
    purity = float(tab.max(axis=1).sum() / len(labels))
    return {"ari": float(adjusted_rand_score(labels, cl)), "purity": purity, "clusters": cl, "table": tab}


def deg_heatmap(z: pd.DataFrame, samples: pd.DataFrame, Z_samples=None, cr: str = "CR", nr: str = "NR",
                cohort_col: str = "cohort", vmax: float = 2.5, show_genes: bool | None = None):
    """Heatmap of z-scored DEGs (genes x samples): samples ordered by the clustering ``Z_samples``,
    genes clustered too; colour bars for response and cohort; a diverging scale clipped at +-vmax."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if Z_samples is None:
        Z_samples = cluster_samples(z)
    col_order = leaves_list(Z_samples)
    row_order = leaves_list(linkage(pdist(z.to_numpy(), metric="euclidean"), method="average")) if len(z) > 2 else np.arange(len(z))
    m = z.iloc[row_order, col_order]
    s = samples.loc[m.columns]
    show_genes = len(m) <= 60 if show_genes is None else show_genes
    fig = plt.figure(figsize=(8.0, 6.5 if len(m) > 30 else 4.5))
    gs = fig.add_gridspec(3, 2, height_ratios=[0.35, 0.35, 10], width_ratios=[30, 1], hspace=0.05, wspace=0.03)
    ax_r = fig.add_subplot(gs[0, 0])
    ax_c = fig.add_subplot(gs[1, 0])
    ax = fig.add_subplot(gs[2, 0])
    cax = fig.add_subplot(gs[2, 1])
    resp = s["response"].astype(str).to_numpy()
    ax_r.imshow([[0 if r == cr else 1 for r in resp]], aspect="auto", cmap=ListedColormap([CR_COLOR, NR_COLOR]), vmin=0, vmax=1)
    cohorts = sorted(s[cohort_col].astype(str).unique()) if cohort_col in s.columns else ["all"]
    ccodes = [cohorts.index(c) for c in (s[cohort_col].astype(str) if cohort_col in s.columns else ["all"] * len(s))]
    cpal = [OKABE_ITO[2], OKABE_ITO[4], OKABE_ITO[3], OKABE_ITO[5]]
    ax_c.imshow([ccodes], aspect="auto", cmap=ListedColormap(cpal[: max(len(cohorts), 2)]), vmin=0, vmax=max(len(cohorts), 2) - 1)
    for a, lab in ((ax_r, "response"), (ax_c, "cohort")):
        a.set_xticks([])
        a.set_yticks([0])
        a.set_yticklabels([lab], fontsize=8)
    im = ax.imshow(m.to_numpy(), aspect="auto", cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(m.shape[1]))
    ax.set_xticklabels(m.columns, rotation=90, fontsize=6)
    if show_genes:
        ax.set_yticks(range(m.shape[0]))
        ax.set_yticklabels(m.index, fontsize=6)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{m.shape[0]} genes")
    fig.colorbar(im, cax=cax, label="z-score (per gene)")
    handles = [Patch(color=CR_COLOR, label=cr), Patch(color=NR_COLOR, label=nr)] + \
              [Patch(color=cpal[i], label=c) for i, c in enumerate(cohorts)]
    ax_r.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.05), ncol=len(handles), fontsize=7)
    return fig


def multiverse(tables: dict, fc_values, p_max: float, paper: dict | None = None) -> pd.DataFrame:
    """DEG counts for every DE method (``tables``: name -> DE table) x fold-change cut-off x
    nominal p vs FDR. ``paper`` (n_de, n_up, n_down) is added as a row for comparison."""
    rows = []
    for method, t in tables.items():
        for fc in fc_values:
            for use_fdr in (False, True):
                c = deg_counts(call_degs(t, p_max=p_max, lfc_min=float(np.log2(fc)), use_fdr=use_fdr))
                rows.append({"method": method, "fold_change_min": fc, "p_type": "FDR" if use_fdr else "nominal p",
                             "p_max": p_max, "n_de": c["n_de"], "n_up": c["n_up"], "n_down": c["n_down"],
                             "n_tested": c["n_tested"]})
    out = pd.DataFrame(rows)
    if paper:
        out = pd.concat([out, pd.DataFrame([{"method": "paper (Shao et al. 2022)", "fold_change_min": 1.5,
                                             "p_type": "nominal p", "p_max": 0.01, **paper}])], ignore_index=True)
    return out


def recovery(table: pd.DataFrame, truth: pd.DataFrame, min_abs_lfc: float = 0.0) -> dict:
    """Precision and recall of the DEG call against the twin's planted truth (genes with
    ``|log2fc_cr_vs_nr| > min_abs_lfc``; direction must match for a true positive)."""
    t = truth.set_index("gene")["log2fc_cr_vs_nr"].reindex(table.index).fillna(0.0)
    planted = np.sign(t.where(t.abs() > min_abs_lfc, 0.0))
    called = table["direction"].astype(str).map({"up": 1, "down": -1, "ns": 0}).astype(int)
    tp = int(((called != 0) & (called == planted)).sum())
    n_called = int((called != 0).sum())
    n_planted = int((planted != 0).sum())
    return {"true_positives": tp, "n_called": n_called, "n_planted_tested": n_planted,
            "precision": tp / n_called if n_called else float("nan"),
            "recall": tp / n_planted if n_planted else float("nan")}
