"""Every figure of the reproduction chapters (02-12), in the book's one style
(:mod:`helpers.viz.style`). Each function takes computed results and returns a matplotlib
Figure; nothing here decides a verdict or computes a statistic the chapter reports.

=====================  ==============================================  =========
function               figure                                          chapter
=====================  ==============================================  =========
:func:`pca_scatter`    PCA of samples by response and cohort (Fig. 1B, 2C)  02, 04
:func:`volcano`        volcano plot of a DE table (Fig. 2A)            03
:func:`deg_heatmap`    clustered heatmap of the DEGs (Fig. 2B; seaborn)  04
:func:`ora_dotplot`    clusterProfiler-style GO dot plot (Fig. 2D, S1)  05
:func:`gsea_bars`      NES bars, CR-up above NR-up (Fig. 3A)           06
:func:`enrichment_curves`  running enrichment score of chosen sets     06
:func:`gsva_heatmap`   GSVA scores and per-pathway p (Fig. 3B; seaborn)  07
:func:`cv_curve`       PAM CV errors along the threshold grid          08
:func:`delta_margins`  the published model's delta_CR - delta_NR       09
:func:`bench_scaling`  seconds per notebook against cohort size        12
=====================  ==============================================  =========
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError
from helpers.viz.style import COHORT_MARKERS, CR_COLOR, DIVERGING, NR_COLOR, NS_COLOR, OKABE_ITO, response_colors

COHORT_COLORS = [OKABE_ITO[2], OKABE_ITO[4], OKABE_ITO[3], OKABE_ITO[5]]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _fig_ax(ax, figsize):
    if ax is None:
        return _plt().subplots(figsize=figsize)
    return ax.figure, ax


# --------------------------------------------------------------------------- PCA (Fig. 1B, 2C)


def pca_scatter(
    scores: pd.DataFrame,
    var: pd.Series,
    samples: pd.DataFrame,
    color_col: str = "response",
    marker_col: str = "cohort",
    pcs=("PC1", "PC2"),
    colors: dict | None = None,
    title: str | None = None,
    ax=None,
):
    """Scatter of two PCs: colour by ``color_col`` (response; ``colors`` maps level -> colour,
    default the book's CR/NR colours), marker by ``marker_col`` (cohort), the variance
    explained on the axes."""
    samples = samples.loc[scores.index]
    fig, ax = _fig_ax(ax, (5.2, 4.2))
    colors = {**response_colors(), **(colors or {})}
    clevels = sorted(samples[color_col].astype(str).unique())
    mlevels = sorted(samples[marker_col].astype(str).unique()) if marker_col in samples.columns else [None]
    cmap = {lv: colors.get(lv, OKABE_ITO[(i + 2) % len(OKABE_ITO)]) for i, lv in enumerate(clevels)}
    x, y = pcs
    for mi, ml in enumerate(mlevels):
        for cl in clevels:
            sel = samples[color_col].astype(str) == cl
            if ml is not None:
                sel &= samples[marker_col].astype(str) == ml
            if not sel.any():
                continue
            ax.scatter(
                scores.loc[sel, x],
                scores.loc[sel, y],
                c=cmap[cl],
                marker=COHORT_MARKERS[mi % len(COHORT_MARKERS)],
                s=42,
                edgecolors="black",
                linewidths=0.4,
                alpha=0.9,
                label=cl if ml is None else f"{cl}, {ml}",
            )
    ax.set_xlabel(f"{x} ({100 * var[x]:.1f}% of variance)")
    ax.set_ylabel(f"{y} ({100 * var[y]:.1f}% of variance)")
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- volcano (Fig. 2A)


def volcano(
    table: pd.DataFrame,
    p_max: float,
    lfc_min: float,
    use_fdr: bool = False,
    top_n: int = 15,
    cr: str = "CR",
    nr: str = "NR",
    ax=None,
):
    """Volcano plot of a DE table with ``direction`` (from :func:`helpers.analysis.de.call_degs`): log2FC
    against -log10 p, cut-off lines, and the ``top_n`` most significant DEGs labelled."""
    col = "adj.P.Val" if use_fdr else "P.Value"
    fig, ax = _fig_ax(ax, (6.4, 5.0))
    y = -np.log10(table[col].clip(lower=1e-300))
    colors = {"up": CR_COLOR, "down": NR_COLOR, "ns": NS_COLOR}
    names = {"up": f"higher in {cr}", "down": f"higher in {nr}", "ns": "not significant"}
    for d in ("ns", "down", "up"):
        sel = table["direction"].astype(str) == d
        ax.scatter(
            table.loc[sel, "logFC"],
            y[sel],
            s=6 if d == "ns" else 10,
            c=colors[d],
            alpha=0.6 if d == "ns" else 0.9,
            linewidths=0,
            label=f"{names[d]} ({int(sel.sum())})",
            rasterized=d == "ns",
        )
    ax.axhline(-np.log10(p_max), color="0.3", lw=0.8, ls="--")
    for s in (-1, 1):
        ax.axvline(s * lfc_min, color="0.3", lw=0.8, ls="--")
    top = table[table["direction"].astype(str) != "ns"].sort_values(col).head(top_n)
    for gene, row in top.iterrows():
        ax.annotate(
            str(gene),
            (row["logFC"], -np.log10(max(row[col], 1e-300))),
            fontsize=7,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.set_xlabel(f"log2 fold change ({cr} − {nr})")
    ax.set_ylabel(f"−log10 {'FDR' if use_fdr else 'p-value'}")
    ax.legend(loc="upper left", fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- DEG heatmap (Fig. 2B)


def _legend_patches(items):
    from matplotlib.patches import Patch

    return [Patch(color=c, label=lab) for lab, c in items]


def deg_heatmap(
    z: pd.DataFrame,
    samples: pd.DataFrame,
    Z_samples,
    Z_genes=None,
    cr: str = "CR",
    nr: str = "NR",
    cohort_col: str = "cohort",
    vmax: float = 2.5,
    show_genes: bool | None = None,
):
    """seaborn clustermap of z-scored DEGs (genes x samples) on the given clusterings: samples
    ordered by the linkage ``Z_samples``, genes by ``Z_genes`` (None: input order), colour bars
    for response and cohort, a diverging scale clipped at +-vmax, both dendrograms drawn.

    The heatmap's x tick labels are the samples in the tree's leaf order
    (``scipy.cluster.hierarchy.leaves_list(Z_samples)``), as scipy's dendrogram draws them."""
    import seaborn as sns

    s = samples.loc[z.columns]
    resp = s["response"].astype(str)
    cohorts = s[cohort_col].astype(str) if cohort_col in s.columns else pd.Series("all", index=s.index)
    clevels = sorted(cohorts.unique())
    ccol = dict(zip(clevels, COHORT_COLORS * (1 + len(clevels) // len(COHORT_COLORS))))
    rcol = response_colors(cr, nr)
    col_colors = pd.DataFrame(
        {"response": resp.map(lambda r: rcol.get(r, NS_COLOR)), "cohort": cohorts.map(ccol)}, index=z.columns
    )
    show_genes = len(z) <= 60 if show_genes is None else show_genes
    g = sns.clustermap(
        z,
        row_linkage=Z_genes,
        col_linkage=Z_samples,
        row_cluster=Z_genes is not None,
        col_colors=col_colors,
        cmap=DIVERGING,
        vmin=-vmax,
        vmax=vmax,
        center=0,
        xticklabels=True,
        yticklabels=show_genes,
        figsize=(8.5, 7.0 if len(z) > 30 else 5.0),
        dendrogram_ratio=(0.08, 0.14),
        colors_ratio=0.025,
        cbar_pos=(0.01, 0.80, 0.02, 0.14),
        cbar_kws={"label": "z-score"},
        rasterized=True,
    )
    ax = g.ax_heatmap
    ax.set_xlabel("")
    ax.set_ylabel("" if show_genes else f"{len(z)} genes")
    ax.tick_params(axis="x", labelsize=6, rotation=90)
    ax.tick_params(axis="y", labelsize=6)
    g.ax_col_colors.tick_params(axis="y", labelsize=8)
    handles = _legend_patches([(cr, rcol[cr]), (nr, rcol[nr])] + [(c, ccol[c]) for c in clevels])
    g.ax_col_dendrogram.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=7
    )
    return g.figure


# --------------------------------------------------------------------------- GO dot plot (Fig. 2D, S1)


def ora_dotplot(ora_table: pd.DataFrame, top: int = 10, ax=None, title: str | None = None, wrap: int = 45):
    """clusterProfiler-style dot plot of an ORA table (:func:`helpers.methods.ora.ora`).

    The ``top`` sets with the smallest p-values are shown; x = GeneRatio, dot size = gene
    count ``k``, colour = adjusted p (red = small, blue = large, as clusterProfiler), terms
    on the y axis ordered by GeneRatio (largest at the top). Long descriptions are wrapped
    at ``wrap`` characters."""
    from matplotlib.colors import LinearSegmentedColormap

    fig, ax = _fig_ax(ax, (6.5, 0.42 * max(min(top, len(ora_table)), 3) + 1.2))
    if len(ora_table) == 0:
        ax.text(0.5, 0.5, "no enriched sets", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    tab = ora_table.sort_values(["pvalue", "set"], kind="mergesort").head(top).copy()
    tab["ratio"] = tab["k"] / tab["n_query"]
    tab = tab.sort_values(["ratio", "pvalue"], ascending=[True, False], kind="mergesort")
    labels = [textwrap.fill(d if d else s, wrap) for d, s in zip(tab["description"], tab["set"])]
    y = np.arange(len(tab))
    kmax = max(int(tab["k"].max()), 1)
    cmap = LinearSegmentedColormap.from_list("red_blue", ["#e41a1c", "#377eb8"])
    sc = ax.scatter(
        tab["ratio"],
        y,
        s=30 + 270 * tab["k"].to_numpy() / kmax,
        c=tab["p.adjust"],
        cmap=cmap,
        edgecolors="none",
        zorder=3,
    )
    ax.set_yticks(y, labels)
    ax.set_xlabel("GeneRatio")
    ax.grid(True, color="0.9", zorder=0)
    lo, hi = float(tab["ratio"].min()), float(tab["ratio"].max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.1 * hi
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(tab) - 0.3)
    fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02).set_label("p.adjust")
    ks = sorted({int(v) for v in np.unique(np.linspace(tab["k"].min(), kmax, 3).round())})
    handles = [ax.scatter([], [], s=30 + 270 * kk / kmax, color="0.4") for kk in ks]
    ax.legend(
        handles,
        [str(kk) for kk in ks],
        title="Count",
        loc="best",
        fontsize="small",
        title_fontsize="small",
        borderaxespad=0.3,
    )
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- GSEA (Fig. 3A)


def gsea_bars(
    res: pd.DataFrame, top: int = 10, labels: dict | None = None, up_label: str = "CR", down_label: str = "NR"
):
    """Bar chart of NES like Fig. 3A of the paper.

    The ``top`` sets with NES > 0 (higher in ``up_label``) are drawn above a dashed line and the
    ``top`` sets with NES < 0 (higher in ``down_label``) below it; within each half the most
    significant (smallest pval, then largest |NES|) come first. ``labels`` maps pathway id ->
    display name."""
    need = {"pathway", "NES", "pval"}
    if not isinstance(res, pd.DataFrame) or not need <= set(res.columns):
        raise InputError(f"result table needs columns {sorted(need)}", where="gsea_bars")
    key = res.assign(absnes=res["NES"].abs())
    up = key[key["NES"] > 0].sort_values(["pval", "absnes"], ascending=[True, False], kind="mergesort").head(top)
    down = key[key["NES"] < 0].sort_values(["pval", "absnes"], ascending=[True, False], kind="mergesort").head(top)
    rows = pd.concat([up, down])
    names = [labels.get(p, p) if labels else p for p in rows["pathway"]]
    y = np.arange(len(rows))[::-1].astype(float)
    y[len(up) :] -= 1.0  # a gap for the dashed line
    fig, ax = _plt().subplots(figsize=(8, 0.35 * (len(rows) + 1) + 1.2))
    ax.barh(y, rows["NES"], color=[CR_COLOR if v > 0 else NR_COLOR for v in rows["NES"]], height=0.7)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    if len(up) and len(down):
        ax.axhline(y[len(up) - 1] - 1.0, color="0.3", linestyle="--", linewidth=1.2)
    ax.set_xlabel("Normalized enrichment score (NES)")
    ax.set_title(f"GSEA: higher in {up_label} (top) / higher in {down_label} (bottom)", fontsize=10)
    fig.tight_layout()
    return fig


def enrichment_curves(ranking: pd.Series, sets: dict, chosen: dict, labels: dict | None = None, xlabel: str = "rank"):
    """One panel per chosen set (``chosen``: panel title -> set id): the GSEA running sum along
    the ranking (:func:`helpers.methods.gsea.enrichment_curve`). A set that is not in ``sets``
    gets an empty, hidden panel."""
    from helpers.methods.gsea import enrichment_curve

    if not chosen:
        raise InputError("no set to draw", where="enrichment_curves")
    fig, axes = _plt().subplots(1, len(chosen), figsize=(4 * len(chosen), 3), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (name, pid) in zip(axes, chosen.items()):
        if pid not in sets:
            ax.set_visible(False)
            continue
        curve = enrichment_curve(ranking, sets[pid])
        ax.plot(curve["rank"], curve["running_sum"], color=CR_COLOR)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(f"{name}\n{(labels or {}).get(pid, pid)[:40]}", fontsize=9)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("running enrichment score")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- GSVA (Fig. 3B)


def gsva_heatmap(scores: pd.DataFrame, test: pd.DataFrame, samples: pd.DataFrame, cr: str = "CR", nr: str = "NR"):
    """seaborn heatmap of GSVA scores: pathways in the order of ``test`` (the limma table,
    sorted by p), samples grouped by response (stable within a group), a response colour bar
    on top and a narrow column with each pathway's p-value, coloured by -log10 p signed by the
    direction of the difference (orange: higher in ``cr``, purple: higher in ``nr``)."""
    import seaborn as sns
    from matplotlib.colors import ListedColormap

    order = samples.loc[scores.columns].sort_values("response", kind="mergesort").index
    m = scores.loc[test.index, order]
    fig = _plt().figure(figsize=(9, 0.35 * len(m) + 1.5))
    g = fig.add_gridspec(2, 3, height_ratios=[0.4, len(m)], width_ratios=[30, 2.2, 1], hspace=0.05, wspace=0.05)
    ax_r, ax, ax_p, cax = (
        fig.add_subplot(g[0, 0]),
        fig.add_subplot(g[1, 0]),
        fig.add_subplot(g[1, 1]),
        fig.add_subplot(g[1, 2]),
    )
    resp = samples.loc[order, "response"].astype(str).to_numpy()
    sns.heatmap(
        [[0 if r == cr else 1 for r in resp]],
        ax=ax_r,
        cmap=ListedColormap([CR_COLOR, NR_COLOR]),
        vmin=0,
        vmax=1,
        cbar=False,
        xticklabels=False,
        yticklabels=["response"],
    )
    ax_r.tick_params(axis="y", labelsize=8, rotation=0)
    lim = float(np.nanmax(np.abs(m.to_numpy()))) or 1.0
    sns.heatmap(
        m,
        ax=ax,
        cmap=DIVERGING,
        vmin=-lim,
        vmax=lim,
        center=0,
        cbar_ax=cax,
        xticklabels=True,
        yticklabels=True,
        cbar_kws={"label": "GSVA score"},
    )
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelsize=6, rotation=90)
    ax.tick_params(axis="y", labelsize=8)
    signed = -np.log10(test["P.Value"].to_numpy(dtype=float)) * np.sign(test["logFC"].to_numpy(dtype=float))
    pl = max(2.0, float(np.abs(signed).max()))
    sns.heatmap(
        signed[:, None],
        ax=ax_p,
        cmap="PuOr_r",
        vmin=-pl,
        vmax=pl,
        cbar=False,
        xticklabels=["p"],
        yticklabels=False,
        annot=np.array([[f"{p:.1g}"] for p in test["P.Value"]]),
        fmt="",
        annot_kws={"fontsize": 6, "color": "black"},
    )
    ax_p.tick_params(axis="x", labelsize=8)
    return fig


# --------------------------------------------------------------------------- PAM (Fig. 4)


def cv_curve(curve: pd.DataFrame, threshold: float, n_genes: int):
    """PAM's cross-validation curve: LOOCV and training errors along the threshold grid, the
    chosen threshold marked, the genes kept on a top axis (``curve``: threshold, n_genes,
    cv_errors, train_errors)."""
    fig, ax = _plt().subplots(figsize=(6.4, 3.6))
    ax.plot(curve["threshold"], curve["cv_errors"], "o-", color=NR_COLOR, label="LOOCV errors")
    ax.plot(curve["threshold"], curve["train_errors"], "s--", color="0.5", ms=3, label="training errors")
    ax.axvline(threshold, color=CR_COLOR, ls=":", label=f"chosen threshold ({n_genes} genes)")
    ax.set_xlabel("shrinkage threshold")
    ax.set_ylabel("misclassified samples")
    top = ax.secondary_xaxis("top")
    ticks = curve["threshold"].to_numpy()[:: max(1, len(curve) // 6)]
    top.set_xticks(ticks)
    top.set_xticklabels(curve.set_index("threshold").loc[ticks, "n_genes"].astype(int).astype(str))
    top.set_xlabel("genes kept")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def delta_margins(scores: pd.DataFrame, cr: str = "CR", nr: str = "NR"):
    """One bar per sample: delta_CR - delta_NR of a frozen model (< 0: called CR), coloured by
    the recorded response, sorted by the margin (``scores``: sample, delta_<cr>, delta_<nr>, response)."""
    from matplotlib.patches import Patch

    d = scores.assign(margin=scores[f"delta_{cr}"] - scores[f"delta_{nr}"]).sort_values(
        ["margin", "sample"], kind="mergesort"
    )
    fig, ax = _plt().subplots(figsize=(8, 3.4))
    ax.bar(range(len(d)), d["margin"], color=[CR_COLOR if r == cr else NR_COLOR for r in d["response"]])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(d)))
    ax.set_xticklabels(d["sample"], rotation=90, fontsize=6)
    ax.set_ylabel(f"δ_{cr} − δ_{nr}  (< 0: called {cr})")
    ax.legend(handles=[Patch(color=CR_COLOR, label=f"recorded {cr}"), Patch(color=NR_COLOR, label=f"recorded {nr}")])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- benchmarks


def bench_scaling(scale: list[dict], notebooks):
    """Seconds per notebook against the number of samples in the twin (log scale), one line per
    notebook (``scale``: runs with ``n_samples`` and ``notebook_seconds``)."""
    fig, ax = _plt().subplots(figsize=(7, 4))
    sizes = [r["n_samples"] for r in scale]
    n = len(OKABE_ITO)
    for i, nb in enumerate(notebooks):
        ys = [r["notebook_seconds"].get(nb) for r in scale]
        ax.plot(
            sizes,
            ys,
            marker="os^D"[(i // n) % 4],
            ls=["-", "--"][(i // n) % 2],
            color=OKABE_ITO[i % n],
            label=nb,
            lw=1.2,
            ms=3,
        )
    ax.set_xlabel("samples in the twin")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
