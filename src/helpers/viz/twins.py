"""Figures of the many-twins chapter (13), in the book's style (:mod:`helpers.viz.style`). Each
function draws tables computed by :mod:`helpers.analysis.twins` and returns a matplotlib Figure."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from helpers.viz.style import NEUTRAL, NS_COLOR, OKABE_ITO

# neither CR nor NR: the book keeps its CR/NR colours for responders (helpers.viz.style)
_LIGHT, _DARK, _SECOND = "#BDBDBD", NEUTRAL, OKABE_ITO[3]

#: distributions panel: column of the per-twin table -> (title, paper claim id); every value a count
DISTRIBUTIONS = (
    ("n_up", "DEGs higher in CR", "n_up"),
    ("n_down", "DEGs lower in CR", "n_down"),
    ("pam_n_genes", "genes PAM keeps", "pam_n_genes"),
    ("pam_signature_overlap", "of them among the paper's 14", "pam_signature_overlap"),
    ("pam_loocv_accuracy_k", "LOOCV: patients called right", "pam_loocv_accuracy"),
    ("published_model_accuracy_k", "Table 1's model: called right", "published_model_accuracy"),
)


def _plt():
    import matplotlib.pyplot as plt

    return plt


def claim_share_bars(shares: pd.DataFrame):
    """One horizontal bar per claim: the share of twins on which it holds (light) and the share
    on which it is reproduced exactly (dark), claims in the table's order, top to bottom."""
    plt = _plt()
    n = len(shares)
    fig, ax = plt.subplots(figsize=(7.2, 0.34 * n + 1.2))
    y = np.arange(n)[::-1]
    ax.barh(y, shares["share_holds"], color=_LIGHT, height=0.7, label="holds (incl. within tolerance)")
    ax.barh(y, shares["share_reproduced"], color=_DARK, height=0.7, label="reproduced exactly")
    ax.set_yticks(y)
    ax.set_yticklabels(shares["id"])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of twins")
    ax.axvline(0.5, color="0.7", lw=0.6, ls=":")
    ax.legend(loc="lower right", fontsize=9, bbox_to_anchor=(1.0, 1.0), ncol=2)
    fig.tight_layout()
    return fig


def _paper_count(v) -> float:
    """A published value as a count: "28/31" -> 28."""
    if isinstance(v, str) and "/" in v:
        return float(v.split("/")[0])
    return float(v)


def _bins(values, wide: bool):
    lo, hi = float(np.min(values)), float(np.max(values))
    if wide and lo > 0 and hi / lo > 5:  # a long tail (PAM's gene count): log-spaced bins
        return np.unique(np.round(np.geomspace(max(lo - 0.5, 0.5), hi + 0.5, 16), 2)), True
    width = max(1.0, float(np.ceil((hi - lo + 1) / 15)))
    return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + width + 0.5, width), False


def distributions(rows: pd.DataFrame, published: dict):
    """Small multiples over twins, each a count: DEGs up and down, PAM's genes and their overlap
    with the 14, the patients the LOOCV calls right (naive; nested where measured) and those
    Table 1's model calls right; the paper's value as a dashed line (``published``: claim id ->
    value, "k/n" for proportions)."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in DISTRIBUTIONS if p[0] in rows.columns]
    ncol = 3
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.5, 2.6 * nrow), squeeze=False)
    for ax, (col, title, cid) in zip(axes.flat, panels):
        series = [(rows[col].dropna().to_numpy(dtype=float), _DARK, "naive" if col.startswith("pam_loocv") else None)]
        if (
            col.startswith("pam_loocv")
            and "nested_accuracy_k" in rows.columns
            and rows["nested_accuracy_k"].notna().any()
        ):
            series.append((rows["nested_accuracy_k"].dropna().to_numpy(dtype=float), _SECOND, "nested"))
        allv = np.concatenate(
            [v for v, _, _ in series] + ([np.array([_paper_count(published[cid])])] if cid in published else [])
        )
        bins, log = _bins(allv, wide=col == "pam_n_genes")
        for vals, color, label in series:
            ax.hist(vals, bins=bins, color=color, alpha=0.75 if len(series) > 1 else 0.9, label=label)
        if cid in published:
            ax.axvline(_paper_count(published[cid]), color="black", lw=1.2, ls="--", label="paper")
        if log:  # plain tick labels (the book's style does not parse mathtext)
            ax.set_xscale("log")
            ticks = [t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if bins[0] <= t <= bins[-1]]
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
            ax.minorticks_off()
        n_col = col[:-2] + "_n" if col.endswith("_k") else None
        if n_col and n_col in rows.columns:
            title = f"{title} (of {int(rows[n_col].iloc[0])})"
        ax.set_title(textwrap.fill(title, 24), fontsize=10)  # three panels a row at the display width
        ax.set_ylabel("twins")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if not log:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        if len(series) > 1 or col.startswith("pam_loocv"):
            ax.legend(fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def power_curves(summary: pd.DataFrame, paper_n: int = 31):
    """Against the number of patients (one point per ``n_scale``): the mean recall of the planted
    DEGs and the share of twins on which PAM's overlap with the 14 holds; the paper's cohort
    size as a vertical line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    x = summary["n_samples"].to_numpy(dtype=float)
    ax.plot(x, summary["deg_recall"], "o-", color=_DARK, label="recall of the planted DEGs (mean)")
    ax.plot(x, summary["share_overlap_holds"], "s-", color=_SECOND, label="PAM overlap with the 14 holds (share)")
    ax.axvline(paper_n, color=NS_COLOR, lw=1.0, ls="--", label=f"the paper ({paper_n} patients)")
    ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([str(int(v)) for v in x])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("patients in the twin (log scale)")
    ax.set_ylabel("share")
    ax.legend(fontsize=9, loc="lower left", bbox_to_anchor=(0.0, 1.02), frameon=False)  # above the data
    fig.tight_layout()
    return fig
