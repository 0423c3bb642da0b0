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
:func:`ora_dotplots`   the dot plots of several ontologies, stacked    05
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
from helpers.viz.style import (
    COHORT_MARKERS,
    CR_COLOR,
    DIVERGING,
    HIGHER_IN_CR,
    HIGHER_IN_NR,
    NEUTRAL,
    NR_COLOR,
    NS_COLOR,
    OKABE_ITO,
    direction_colors,
    mark_legend_response,
    mark_response,
    response_colors,
)

COHORT_COLORS = [OKABE_ITO[2], OKABE_ITO[4], OKABE_ITO[3], OKABE_ITO[5]]
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


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
            pts = ax.scatter(
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
            if cl in colors and colors[cl] in (CR_COLOR, NR_COLOR):
                mark_response(pts)
    ax.set_xlabel(f"{x} ({100 * var[x]:.1f}% of variance)")
    ax.set_ylabel(f"{y} ({100 * var[y]:.1f}% of variance)")
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    leg = ax.legend(**LEGEND_OUTSIDE)  # beside the axes, never on the points
    mark_legend_response(leg, [c for c in clevels if colors.get(c) in (CR_COLOR, NR_COLOR)])
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
    against -log10 p, cut-off lines, and the ``top_n`` most significant DEGs labelled.

    Points are coloured by the direction of the effect (purple: higher in ``cr``, green: higher
    in ``nr``, grey: not significant; :mod:`helpers.viz.style`), labels are placed by adjustText
    so that they overlap neither each other nor the points they name (a thin line joins a
    moved label to its point), and the legend sits above the axes, outside the data."""
    from adjustText import adjust_text

    col = "adj.P.Val" if use_fdr else "P.Value"
    fig, ax = _fig_ax(ax, (6.4, 5.4))
    y = -np.log10(table[col].clip(lower=1e-300))
    colors = {**direction_colors(), "ns": NS_COLOR}
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
    texts = [
        ax.text(float(row["logFC"]), float(-np.log10(max(row[col], 1e-300))), str(gene), fontsize=9)
        for gene, row in top.iterrows()
    ]
    ax.set_xlabel(f"log2 fold change ({cr} − {nr})")
    ax.set_ylabel(f"−log10 {'FDR' if use_fdr else 'p-value'}")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=3, markerscale=2, borderaxespad=0.0)
    if texts:
        ax.margins(0.08)
        sig = table["direction"].astype(str) != "ns"  # labels also keep off the DEG points
        adjust_text(
            texts,
            x=table.loc[sig, "logFC"].to_numpy(dtype=float),
            y=y[sig].to_numpy(dtype=float),
            ax=ax,
            arrowprops={"arrowstyle": "-", "color": "0.35", "lw": 0.6},
            expand=(1.2, 1.5),
            force_text=(0.4, 0.6),
            iter_lim=300,
            time_lim=None,  # a time limit would make the layout depend on the machine's speed
        )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- DEG heatmap (Fig. 2B)


def _legend_patches(items):
    from matplotlib.patches import Patch

    return [Patch(color=c, label=lab) for lab, c in items]


#: the DEG heatmap labels its samples up to this many columns
MAX_SAMPLE_LABELS = 80


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
    (``scipy.cluster.hierarchy.leaves_list(Z_samples)``), as scipy's dendrogram draws them; above
    :data:`MAX_SAMPLE_LABELS` samples they would overprint each other (and laying out 1,000
    labels took most of the figure's time), so the axis names the number of samples instead."""
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
    show_genes = len(z) <= 40 if show_genes is None else show_genes
    show_samples = z.shape[1] <= MAX_SAMPLE_LABELS
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
        xticklabels=show_samples,
        yticklabels=show_genes,
        figsize=(7.5, max(5.0, 0.19 * len(z) + 2.0) if show_genes else 6.5),
        dendrogram_ratio=(0.08, 0.14),
        colors_ratio=0.025,
        cbar_pos=(0.01, 0.80, 0.02, 0.14),
        cbar_kws={"label": "z-score"},
        rasterized=True,
    )
    ax = g.ax_heatmap
    ax.set_xlabel("" if show_samples else f"{z.shape[1]} samples (too many to label)")
    ax.set_ylabel("" if show_genes else f"{len(z)} genes")
    ax.tick_params(axis="x", labelsize=9, rotation=90)
    ax.tick_params(axis="y", labelsize=9)
    g.ax_col_colors.tick_params(axis="y", labelsize=9)
    mark_response(*g.ax_col_colors.collections[:1])  # the response bar (with the cohort bar: one mesh)
    handles = _legend_patches([(cr, rcol[cr]), (nr, rcol[nr])] + [(c, ccol[c]) for c in clevels])
    mark_response(*handles[:2])
    leg = g.ax_col_dendrogram.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), borderaxespad=0.0
    )
    mark_legend_response(leg, [cr, nr])
    cbar = g.ax_cbar
    cbar.tick_params(labelsize=9)
    cbar.yaxis.label.set_size(9)
    return g.figure


# --------------------------------------------------------------------------- GO dot plot (Fig. 2D, S1)


def ora_dotplot(ora_table: pd.DataFrame, top: int = 10, ax=None, title: str | None = None, wrap: int = 40):
    """clusterProfiler-style dot plot of an ORA table (:func:`helpers.methods.ora.ora`).

    The ``top`` sets with the smallest p-values are shown; x = GeneRatio, dot size = gene
    count ``k``, colour = adjusted p (viridis: dark = small; the clusterProfiler red-blue scale
    would reuse the CR/NR hues), terms on the y axis ordered by GeneRatio (largest at the top).
    Long descriptions are wrapped at ``wrap`` characters; the size legend and the colour bar sit
    to the right of the axes."""
    n = max(min(top, len(ora_table)), 3)
    fig, ax = _fig_ax(ax, (7.2, 0.5 * n + 1.4))
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
    sc = ax.scatter(
        tab["ratio"],
        y,
        s=30 + 270 * tab["k"].to_numpy() / kmax,
        c=tab["p.adjust"],
        cmap="viridis",
        edgecolors="none",
        zorder=3,
    )
    ax.set_yticks(y, labels)
    ax.tick_params(axis="both", labelsize=9)
    ax.set_xlabel("GeneRatio")
    ax.grid(True, color="0.9", zorder=0)
    lo, hi = float(tab["ratio"].min()), float(tab["ratio"].max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.1 * hi
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(tab) - 0.3)
    cb = fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label("p.adjust", fontsize=9)
    cb.ax.tick_params(labelsize=9)
    ks = sorted({int(v) for v in np.unique(np.linspace(tab["k"].min(), kmax, 3).round())})
    handles = [ax.scatter([], [], s=30 + 270 * kk / kmax, color="0.4") for kk in ks]
    ax.legend(
        handles,
        [str(kk) for kk in ks],
        title="Count",
        loc="upper left",
        bbox_to_anchor=(1.25, 1.0),
        borderaxespad=0.0,
        labelspacing=1.2,
    )
    if title:
        ax.set_title(title)
    return fig


def ora_dotplots(tables: dict, top: int = 10, empty: str = "no term"):
    """Several :func:`ora_dotplot` panels stacked in one figure (``tables``: panel title -> ORA
    table, already cut to the terms to show), e.g. the three GO ontologies of Fig. 2D. A panel
    without a term says ``empty``."""
    if not tables:
        raise InputError("no table to draw", where="ora_dotplots")
    heights = [max(min(top, len(t)), 1) + 1.2 for t in tables.values()]
    fig, axes = _plt().subplots(
        len(tables), 1, figsize=(7.2, 0.5 * sum(heights) + 0.4), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for ax, (title, tab) in zip(axes[:, 0], tables.items()):
        if len(tab) == 0:
            ax.text(0.5, 0.5, f"{title}: {empty}", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        ora_dotplot(tab, top=top, ax=ax, title=title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- GSEA (Fig. 3A)


def gsea_bars(rows: pd.DataFrame, up_label: str = "CR", down_label: str = "NR", fdr: float = 0.05):
    """Fig. 3A as the paper draws it: one bar of NES per set, the sets higher in ``up_label``
    (NES > 0) above a dashed red line and those higher in ``down_label`` below it, in the order of
    ``rows`` (:func:`helpers.analysis.enrichment.fig3a_rows`: pathway, description, NES, padj,
    half, claim).

    Bars are coloured by direction (:data:`~helpers.viz.style.HIGHER_IN_CR` /
    :data:`~helpers.viz.style.HIGHER_IN_NR`); a set named for one of the paper's claims is drawn
    with a thick black outline and a bold label that says which claim, and a set above the
    ``fdr`` cut-off (only claim sets can be) is hatched and marked "n.s."."""
    need = {"pathway", "NES", "padj", "half", "claim"}
    if not isinstance(rows, pd.DataFrame) or not need <= set(rows.columns):
        raise InputError(f"rows need columns {sorted(need)}", where="gsea_bars")
    up = rows[rows["half"] == "up"]
    down = rows[rows["half"] == "down"]
    rows = pd.concat([up, down])
    desc = rows["description"] if "description" in rows.columns else rows["pathway"]
    names = []
    for pid, d, claim, q in zip(rows["pathway"], desc, rows["claim"], rows["padj"]):
        name = textwrap.shorten(str(d or pid), 48, placeholder="…")
        if claim:
            name = f"{name}  [{claim}]"
        if q >= fdr:
            name = f"{name} (n.s.)"
        names.append(name)
    y = np.arange(len(rows))[::-1].astype(float)
    y[len(up) :] -= 1.0  # a gap for the dashed line
    fig, ax = _plt().subplots(figsize=(7.5, 0.34 * (len(rows) + 1) + 1.6))
    colors = [HIGHER_IN_CR if v > 0 else HIGHER_IN_NR for v in rows["NES"]]
    claim = (rows["claim"] != "").to_numpy()
    ns = (rows["padj"] >= fdr).to_numpy()
    bars = ax.barh(y, rows["NES"], color=colors, height=0.7)
    for bar, is_claim, is_ns in zip(bars, claim, ns):
        if is_claim:
            bar.set_edgecolor("black")
            bar.set_linewidth(1.8)
        if is_ns:
            bar.set_hatch("///")
            bar.set_alpha(0.55)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=9)
    for tick, is_claim in zip(ax.get_yticklabels(), claim):
        if is_claim:
            tick.set_fontweight("bold")
    ax.axvline(0, color="black", linewidth=0.8)
    if len(up) and len(down):
        ax.axhline(y[len(up) - 1] - 1.0, color="#C00000", linestyle="--", linewidth=1.2)
    ax.set_xlabel("Normalized enrichment score (NES)")
    ax.set_title(f"higher in {up_label} (above the line) / higher in {down_label} (below)", fontsize=10)
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=HIGHER_IN_CR, label=f"higher in {up_label}"),
        Patch(facecolor=HIGHER_IN_NR, label=f"higher in {down_label}"),
        Patch(facecolor="white", edgecolor="black", linewidth=1.8, label="claim set (always shown)"),
    ]
    if ns.any():
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="///", label=f"FDR ≥ {fdr:g}"))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.6 / (len(rows) + 4)),
        ncol=2,
        borderaxespad=0.0,
    )
    fig.tight_layout()
    return fig


def enrichment_curves(ranking: pd.Series, sets: dict, chosen: dict, labels: dict | None = None, xlabel: str = "rank"):
    """One panel per chosen set (``chosen``: panel title -> set id): the GSEA running sum along
    the ranking (:func:`helpers.methods.gsea.enrichment_curve`). A set that is not in ``sets``
    gets an empty, hidden panel."""
    from helpers.methods.gsea import enrichment_curve

    if not chosen:
        raise InputError("no set to draw", where="enrichment_curves")
    fig, axes = _plt().subplots(1, len(chosen), figsize=(2.5 * len(chosen), 3.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (name, pid) in zip(axes, chosen.items()):
        if pid not in sets:
            ax.set_visible(False)
            continue
        curve = enrichment_curve(ranking, sets[pid])
        es = curve.attrs["ES"]
        ax.plot(curve["rank"], curve["running_sum"], color=HIGHER_IN_CR if es > 0 else HIGHER_IN_NR)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(f"{name}\n{textwrap.shorten((labels or {}).get(pid, pid), 34, placeholder='…')}", fontsize=9)
    fig.supxlabel(xlabel, fontsize=10)
    axes[0].set_ylabel("running enrichment score")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- GSVA (Fig. 3B)


def gsva_heatmap(scores: pd.DataFrame, test: pd.DataFrame, samples: pd.DataFrame, cr: str = "CR", nr: str = "NR"):
    """seaborn heatmap of GSVA scores: pathways in the order of ``test`` (the limma table,
    sorted by p), samples grouped by response (stable within a group), a response colour bar
    on top (CR/NR colours) and a narrow column with each pathway's p-value, coloured by
    -log10 p signed by the direction of the difference on the direction palette (purple: higher
    in ``cr``, green: higher in ``nr``), so that no colour means two things. The two colour
    scales are explained by colour bars on the right; the response bar by a legend above."""
    import seaborn as sns
    from matplotlib.colors import ListedColormap

    order = samples.loc[scores.columns].sort_values("response", kind="mergesort").index
    m = scores.loc[test.index, order]
    fig = _plt().figure(figsize=(7.5, 0.4 * len(m) + 2.4))
    g = fig.add_gridspec(  # heatmap, p column, gap, score colour bar, gap (its labels), p colour bar
        2, 6, height_ratios=[0.5, len(m)], width_ratios=[30, 4.2, 1.0, 1, 6.5, 1], hspace=0.05, wspace=0.08
    )
    ax_r, ax, ax_p = fig.add_subplot(g[0, 0]), fig.add_subplot(g[1, 0]), fig.add_subplot(g[1, 1])
    cax, pax = fig.add_subplot(g[1, 3]), fig.add_subplot(g[1, 5])
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
    mark_response(*ax_r.collections)
    ax_r.tick_params(axis="y", labelsize=9, rotation=0)
    handles = _legend_patches([(cr, CR_COLOR), (nr, NR_COLOR)])
    mark_response(*handles)
    leg = ax_r.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.05), ncol=2, borderaxespad=0.0)
    mark_legend_response(leg, [cr, nr])
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
    ax.tick_params(axis="x", labelsize=9, rotation=90)
    ax.tick_params(axis="y", labelsize=9)
    cax.tick_params(labelsize=9)
    cax.yaxis.label.set_size(9)
    signed = -np.log10(test["P.Value"].to_numpy(dtype=float)) * np.sign(test["logFC"].to_numpy(dtype=float))
    pl = max(2.0, float(np.abs(signed).max()))
    sns.heatmap(
        signed[:, None],
        ax=ax_p,
        cmap=DIVERGING,
        vmin=-pl,
        vmax=pl,
        cbar_ax=pax,
        cbar_kws={"label": f"signed −log10 p (> 0: higher in {cr})"},
        xticklabels=["p"],
        yticklabels=False,
        annot=np.array([[f"{p:.1g}"] for p in test["P.Value"]]),
        fmt="",
        annot_kws={"fontsize": 9, "color": "black"},
    )
    for text, v in zip(ax_p.texts, signed):  # white on the dark ends of the scale
        text.set_color("white" if abs(v) > 0.6 * pl else "black")
    ax_p.tick_params(axis="x", labelsize=9)
    pax.tick_params(labelsize=9)
    pax.yaxis.label.set_size(9)
    return fig


# --------------------------------------------------------------------------- PAM (Fig. 4)


def cv_curve(curve: pd.DataFrame, threshold: float, n_genes: int, cv: str = "LOOCV"):
    """PAM's cross-validation curve: CV (``cv``: its name, "LOOCV" or "10-fold CV") and training
    errors along the threshold grid, the chosen threshold marked, the genes kept on a top axis
    (``curve``: threshold, n_genes, cv_errors, train_errors)."""
    fig, ax = _plt().subplots(figsize=(6.4, 3.6))
    ax.plot(curve["threshold"], curve["cv_errors"], "o-", color=NEUTRAL, label=f"{cv} errors")
    ax.plot(curve["threshold"], curve["train_errors"], "s--", color="0.5", ms=3, label="training errors")
    ax.axvline(threshold, color=OKABE_ITO[2], ls=":", label=f"chosen threshold ({n_genes} genes)")
    ax.set_xlabel("shrinkage threshold")
    ax.set_ylabel("misclassified samples")
    top = ax.secondary_xaxis("top")
    ticks = curve["threshold"].to_numpy()[:: max(1, len(curve) // 6)]
    top.set_xticks(ticks)
    top.set_xticklabels(curve.set_index("threshold").loc[ticks, "n_genes"].astype(int).astype(str))
    top.set_xlabel("genes kept")
    ax.legend(**LEGEND_OUTSIDE)
    fig.tight_layout()
    return fig


def delta_margins(scores: pd.DataFrame, cr: str = "CR", nr: str = "NR"):
    """One bar per sample: delta_CR - delta_NR of a frozen model (< 0: called CR), coloured by
    the recorded response, sorted by the margin (``scores``: sample, delta_<cr>, delta_<nr>, response)."""
    from matplotlib.patches import Patch

    d = scores.assign(margin=scores[f"delta_{cr}"] - scores[f"delta_{nr}"]).sort_values(
        ["margin", "sample"], kind="mergesort"
    )
    fig, ax = _plt().subplots(figsize=(7.5, 3.4))
    bars = ax.bar(range(len(d)), d["margin"], color=[CR_COLOR if r == cr else NR_COLOR for r in d["response"]])
    mark_response(*bars)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(d)))
    ax.set_xticklabels(d["sample"], rotation=90, fontsize=9)
    ax.set_ylabel(f"δ_{cr} − δ_{nr}  (< 0: called {cr})")
    handles = [Patch(color=CR_COLOR, label=f"recorded {cr}"), Patch(color=NR_COLOR, label=f"recorded {nr}")]
    mark_response(*handles)
    leg = ax.legend(handles=handles, **LEGEND_OUTSIDE)
    mark_legend_response(leg, [f"recorded {cr}", f"recorded {nr}"])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- benchmarks


def bench_scaling(scale: list[dict], notebooks):
    """Seconds per notebook against the number of samples in the twin (log scale), one line per
    notebook (``scale``: runs with ``n_samples`` and ``notebook_seconds``)."""
    fig, ax = _plt().subplots(figsize=(7, 4))
    sizes = [r["n_samples"] for r in scale]
    palette = [c for c in OKABE_ITO if c not in (CR_COLOR, NR_COLOR)]  # notebooks are not CR or NR
    n = len(palette)
    for i, nb in enumerate(notebooks):
        ys = [r["notebook_seconds"].get(nb) for r in scale]
        ax.plot(
            sizes,
            ys,
            marker="os^D"[(i // n) % 4],
            ls=["-", "--"][(i // n) % 2],
            color=palette[i % n],
            label=nb,
            lw=1.2,
            ms=3,
        )
    ax.set_xlabel("samples in the twin")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")
    ax.legend(ncol=2, **LEGEND_OUTSIDE)
    fig.tight_layout()
    return fig
