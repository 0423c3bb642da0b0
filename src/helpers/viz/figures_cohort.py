"""Chapter 01's figure, in the book's style (:mod:`helpers.viz.style`): library sizes and
detected genes per sample. It draws what :func:`helpers.data.cohort_report.sample_qc` computed."""

from __future__ import annotations

import pandas as pd

from helpers.viz.style import NS_COLOR, mark_legend_response, mark_response, response_colors

PANELS = (("library_size_millions", "library size (million reads)"), ("genes_detected", "genes with at least one read"))


def library_sizes(qc: pd.DataFrame, cr: str = "CR", nr: str = "NR"):
    """Two bar panels, one bar per sample (sorted by response, then library size): library size
    and detected genes, coloured by response (other labels grey), with a response legend to
    the right of the panels (outside the data)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = response_colors(cr, nr)
    order = qc.sort_values(["response", "library_size_millions", "sample_id"], kind="mergesort")
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
    bar_colors = [colors.get(r, NS_COLOR) for r in order["response"]]
    for ax, (col, label) in zip(axes, PANELS):
        mark_response(*ax.bar(range(len(order)), order[col].to_numpy(), color=bar_colors, width=0.85))
        ax.set_xticks([])
        ax.set_xlabel("samples (sorted by response, then size)")
        ax.set_ylabel(label)
    present = [lab for lab in (cr, nr) if (order["response"] == lab).any()]
    others = sorted(set(order["response"]) - {cr, nr})
    handles = [Patch(color=colors[lab], label=lab) for lab in present] + [
        Patch(color=NS_COLOR, label=", ".join(others))
    ] * bool(others)
    mark_response(*handles)
    leg = axes[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    mark_legend_response(leg, [cr, nr])  # beside the panel, never on the bars
    fig.tight_layout()
    return fig
