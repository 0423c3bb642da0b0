"""The PCA figures of chapters 02 and 04 (Fig. 1B, 2C), drawn the way the paper's
``factoextra::fviz_pca_ind(res, habillage = group, addEllipses = TRUE)`` draws them: one point
per sample, coloured by group (response), a 95% normal concentration ellipse and a larger mean
point per group, dashed zero lines, the share of variance on each axis. In the book's style:
CR/NR colours only for CR and NR (any other group gets a neutral colour), datasets as marker
shapes in grey in their own legend, both legends outside the data.

The ellipses are computed by :func:`helpers.methods.factominer_pca.group_ellipses`; nothing here
computes a statistic the chapter reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.viz.style import COHORT_MARKERS, response_colors

#: colours for groups that are not CR or NR (greys and a dark neutral: never the CR/NR hues)
OTHER_GROUP_COLORS = ["#555555", "#999999", "#222222", "#BBBBBB"]
DATASET_FACE = "#D9D9D9"  # marker face in the dataset legend: shape only, no response colour


def group_colors(levels, colors: dict | None = None) -> dict:
    """Colour of each group level: the given ``colors`` (CR/NR by default) for their levels,
    neutral greys for any other level."""
    colors = response_colors() if colors is None else dict(colors)
    out, k = {}, 0
    for lv in levels:
        if lv in colors:
            out[lv] = colors[lv]
        else:
            out[lv] = OTHER_GROUP_COLORS[k % len(OTHER_GROUP_COLORS)]
            k += 1
    return out


def pca_ellipses(
    scores: pd.DataFrame,
    share: pd.Series,
    samples: pd.DataFrame,
    ellipses: dict | None = None,
    color_col: str = "response",
    marker_col: str = "cohort",
    pcs=("PC1", "PC2"),
    colors: dict | None = None,
    title: str | None = None,
    group_name: str = "Response",
    marker_name: str = "Dataset",
):
    """Scatter of two PCs with group ellipses (Fig. 1B, 2C).

    ``scores``: samples x PCs; ``share``: share of variance per PC (0-1); ``samples``: the sample
    sheet (``color_col`` groups, ``marker_col`` datasets; the dataset legend is left out when
    there is one dataset); ``ellipses``: group -> outline (n x 2) or None, from
    :func:`helpers.methods.factominer_pca.group_ellipses`. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    samples = samples.loc[scores.index]
    groups = samples[color_col].astype(str)
    glevels = list(pd.unique(groups))
    cmap = group_colors(glevels, colors)
    has_marker = marker_col in samples.columns
    datasets = samples[marker_col].astype(str) if has_marker else pd.Series("", index=samples.index)
    dlevels = list(pd.unique(datasets))
    markers = {d: COHORT_MARKERS[i % len(COHORT_MARKERS)] for i, d in enumerate(dlevels)}
    x, y = pcs

    fig, ax = plt.subplots(figsize=(6.8, 4.4), layout="constrained")
    ax.axhline(0, color="0.6", lw=0.7, ls="--", zorder=0)
    ax.axvline(0, color="0.6", lw=0.7, ls="--", zorder=0)
    for g in glevels:
        ring = (ellipses or {}).get(g)
        if ring is not None:
            ax.fill(ring[:, 0], ring[:, 1], color=cmap[g], alpha=0.10, lw=0, zorder=1)
            ax.plot(ring[:, 0], ring[:, 1], color=cmap[g], lw=1.2, zorder=2)
    for d in dlevels:
        for g in glevels:
            sel = (groups == g) & (datasets == d)
            if sel.any():
                ax.scatter(
                    scores.loc[sel, x],
                    scores.loc[sel, y],
                    color=cmap[g],
                    marker=markers[d],
                    s=40,
                    edgecolors="black",
                    linewidths=0.4,
                    alpha=0.9,
                    zorder=3,
                )
    for g in glevels:
        pts = scores.loc[groups == g, [x, y]].to_numpy(dtype=float)
        ax.scatter(*pts.mean(axis=0), color=cmap[g], marker="X", s=130, edgecolors="black", linewidths=0.8, zorder=4)
    ax.set_xlabel(f"{x} ({100 * float(share[x]):.1f}% of variance)")
    ax.set_ylabel(f"{y} ({100 * float(share[y]):.1f}% of variance)")
    if title:
        ax.set_title(title)

    counts = groups.value_counts()
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            ls="-",
            lw=1.2,
            color=cmap[g],
            markerfacecolor=cmap[g],
            markeredgecolor="black",
            markersize=7,
            label=f"{g} (n = {int(counts[g])})",
        )
        for g in glevels
    ]
    handles.append(
        Line2D([], [], marker="X", ls="", color="0.3", markeredgecolor="black", markersize=9, label="group mean")
    )
    first = ax.legend(
        handles=handles,
        title=f"{group_name} (95% ellipse)",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=9,
        title_fontsize=9,
        alignment="left",
    )
    if has_marker and len(dlevels) > 1:
        ax.add_artist(first)
        dcounts = datasets.value_counts()
        dh = [
            Line2D(
                [],
                [],
                marker=markers[d],
                ls="",
                color=DATASET_FACE,
                markeredgecolor="black",
                markersize=7,
                label=f"{d} (n = {int(dcounts[d])})",
            )
            for d in dlevels
        ]
        ax.legend(
            handles=dh,
            title=marker_name,
            loc="lower left",
            bbox_to_anchor=(1.02, 0.0),
            borderaxespad=0.0,
            fontsize=9,
            title_fontsize=9,
            alignment="left",
        )
    _include_ellipses_in_view(ax, ellipses)
    return fig


def _include_ellipses_in_view(ax, ellipses):
    """Widen the axes' limits so that every ellipse is fully visible."""
    rings = [r for r in (ellipses or {}).values() if r is not None]
    if not rings:
        return
    allpts = np.vstack(rings)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    ax.set_xlim(min(x0, allpts[:, 0].min()), max(x1, allpts[:, 0].max()))
    ax.set_ylim(min(y0, allpts[:, 1].min()), max(y1, allpts[:, 1].max()))
