"""One figure style for the whole book: readable fonts, the Okabe-Ito colour-blind-safe palette,
fixed colours for CR and NR, deterministic SVG output."""

from __future__ import annotations

import matplotlib as mpl

# Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
CR_COLOR = "#0072B2"  # blue: complete response
NR_COLOR = "#D55E00"  # vermillion: no response
NS_COLOR = "#B0B0B0"  # grey: not significant
RESPONSE_COLORS = {"CR": CR_COLOR, "NR": NR_COLOR}
COHORT_MARKERS = ["o", "^", "s", "D", "v", "P"]
DIVERGING = "RdBu_r"  # z-scores, centred at zero
SEQUENTIAL = "viridis"


def response_colors(cr_label: str = "CR", nr_label: str = "NR") -> dict:
    return {cr_label: CR_COLOR, nr_label: NR_COLOR}


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=OKABE_ITO),
            "image.cmap": SEQUENTIAL,
            "svg.hashsalt": "car-t-book",  # stable element ids: same figure, same SVG bytes
            "svg.fonttype": "none",
            "path.simplify": True,
            "text.parse_math": False,  # labels come from data (gene, sample, pathway names): a "$" is a "$"
        }
    )
