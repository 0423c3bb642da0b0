"""The benchmarks page's figure (chapter 12): seconds per chapter against the twin's size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.viz.style import OKABE_ITO


def time_against_n(wide: pd.DataFrame):
    """Seconds (log scale) against samples n (log scale), one line per chapter (``wide``: index
    n_samples, one column per notebook, NaN where a chapter did not finish), with dotted guides of
    slope 1 and 2 (time proportional to n and to n²) through the slowest chapter's first point."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    if wide.empty:
        ax.text(0.5, 0.5, "no scale runs yet: run `make bench`", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    n = len(OKABE_ITO)
    for i, nb in enumerate(wide.columns):
        ys = wide[nb].to_numpy(dtype=float)
        ax.plot(
            wide.index,
            ys,
            marker="os^D"[(i // n) % 4],
            ls=["-", "--"][(i // n) % 2],
            color=OKABE_ITO[i % n],
            label=nb,
            lw=1.4,
            ms=4,
        )
    if len(wide.index) >= 2 and wide.notna().any().any():
        x = np.asarray(wide.index, dtype=float)
        first = wide.iloc[0].dropna()
        if len(first):
            y0 = float(first.max())
            for k, lab in ((1, "∝ n"), (2, "∝ n²")):
                ax.plot(x, y0 * (x / x[0]) ** k, ls=":", color="#777777", lw=1)
                ax.annotate(lab, (x[-1], y0 * (x[-1] / x[0]) ** k), fontsize=9, color="#555555", ha="left", va="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples in the twin, n (log scale)")
    ax.set_ylabel("seconds (log scale)")
    ax.set_title("Time of each chapter as the cohort grows", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
