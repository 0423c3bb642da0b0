"""One figure style for the whole book: readable fonts, the Okabe-Ito colour-blind-safe palette,
fixed colours for CR and NR, a separate diverging palette for the direction of an effect,
deterministic SVG output, and the rules every figure keeps (:func:`style_problems`).

The rules, tested on every figure of :mod:`helpers.viz.figures` (``tests/test_viz.py``):

- **CR/NR colours mean CR and NR samples or groups, nothing else.** An artist drawn in
  :data:`CR_COLOR` or :data:`NR_COLOR` (or a colour map containing a colour close to them) must
  be marked as a response artist with :func:`mark_response`.
- **Direction of an effect** (higher in CR / higher in NR, signed statistics, z-scores) uses the
  purple-green diverging palette: :data:`HIGHER_IN_CR`, :data:`HIGHER_IN_NR`, :data:`DIVERGING`.
- **No text below** :data:`MIN_FONT_PT` points at the figure's display width: a figure wider than
  :data:`DISPLAY_WIDTH_IN` inches is shown scaled down to it, and its fonts with it.
- **Legends sit outside the data** (figures place them beside or above the axes).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

# Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
CR_COLOR = "#0072B2"  # blue: complete response
NR_COLOR = "#D55E00"  # vermillion: no response
NS_COLOR = "#B0B0B0"  # grey: not significant
RESPONSE_COLORS = {"CR": CR_COLOR, "NR": NR_COLOR}
COHORT_MARKERS = ["o", "^", "s", "D", "v", "P"]
# direction of an effect: the ends of ColorBrewer's purple-green scale (no blue, no orange)
HIGHER_IN_CR = "#762A83"  # purple: positive effect (higher in CR)
HIGHER_IN_NR = "#1B7837"  # green: negative effect (higher in NR)
DIVERGING = "PRGn_r"  # z-scores, GSVA scores, signed statistics: purple high, green low, centred at zero
SEQUENTIAL = "viridis"
NEUTRAL = "#333333"  # lines and markers that stand for neither group

MIN_FONT_PT = 9.0  # smallest text, in points, at the figure's display width
DISPLAY_WIDTH_IN = 7.5  # a wider figure is shown scaled down to this width in the book
RESPONSE_GID = "response"  # gid prefix of artists that stand for CR or NR
_CLOSE = 0.15  # RGB distance under which a colour counts as a CR/NR colour


def response_colors(cr_label: str = "CR", nr_label: str = "NR") -> dict:
    return {cr_label: CR_COLOR, nr_label: NR_COLOR}


def direction_colors() -> dict:
    """Colours of the direction of an effect: ``{"up": higher in CR, "down": higher in NR}``."""
    return {"up": HIGHER_IN_CR, "down": HIGHER_IN_NR}


def mark_response(*artists):
    """Mark artists (bars, points, colour bars) as standing for CR/NR samples or groups, the one
    use the CR/NR colours are allowed (:func:`style_problems`). Returns the first artist."""
    for a in artists:
        if a is not None:
            a.set_gid(RESPONSE_GID)
    return artists[0] if artists else None


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
            "legend.title_fontsize": 9,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=OKABE_ITO[2:]),  # the cycle avoids the CR/NR colours
            "image.cmap": SEQUENTIAL,
            "svg.hashsalt": "car-t-book",  # stable element ids: same figure, same SVG bytes
            "svg.fonttype": "none",
            "path.simplify": True,
            "text.parse_math": False,  # labels come from data (gene, sample, pathway names): a "$" is a "$"
        }
    )


# --------------------------------------------------------------------------- the rules, checked


def display_scale(fig) -> float:
    """How much the book shrinks ``fig``: 1 up to :data:`DISPLAY_WIDTH_IN`, less when wider."""
    return min(1.0, DISPLAY_WIDTH_IN / float(fig.get_size_inches()[0]))


def _is_response(artist) -> bool:
    return (artist.get_gid() or "").startswith(RESPONSE_GID)


def mark_legend_response(legend, labels) -> None:
    """Mark the entries of ``legend`` whose text starts with one of ``labels`` (the response
    labels) as response artists: their handle and text."""
    if legend is None:
        return
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        if any(text.get_text().startswith(str(lab)) for lab in labels):
            mark_response(handle, text)


def _rgb_rows(value) -> np.ndarray:
    from matplotlib.colors import to_rgba_array

    try:
        arr = to_rgba_array(value)
    except (ValueError, TypeError):
        return np.empty((0, 3))
    return arr[arr[:, 3] > 0, :3] if arr.size else np.empty((0, 3))


def _response_like(rgb: np.ndarray) -> bool:
    from matplotlib.colors import to_rgb

    if rgb.size == 0:
        return False
    refs = np.array([to_rgb(CR_COLOR), to_rgb(NR_COLOR)])
    d = np.sqrt(((rgb[:, None, :] - refs[None, :, :]) ** 2).sum(axis=2))
    return bool((d < _CLOSE).any())


def _artist_colours(a) -> list:
    out = []
    mapped = getattr(a, "get_array", lambda: None)() is not None  # colours come from its colour map
    for getter in ("get_edgecolor", "get_color") if mapped else ("get_facecolor", "get_edgecolor", "get_color"):
        f = getattr(a, getter, None)
        if f is not None:
            try:
                out.append(_rgb_rows(f()))
            except (ValueError, TypeError, AttributeError):
                pass
    cmap = getattr(a, "get_cmap", None)
    if cmap is not None and mapped:
        out.append(np.asarray(cmap()(np.linspace(0, 1, 64)))[:, :3])
    return out


def style_problems(fig, min_pt: float = MIN_FONT_PT) -> list[str]:
    """Every breach of the book's figure rules in ``fig``, one line each (empty: none):
    visible text smaller than ``min_pt`` points at the display width, and CR/NR colours (or
    colour maps containing them) on artists not marked with :func:`mark_response`."""
    from matplotlib.artist import Artist
    from matplotlib.text import Text

    problems = []
    fig.canvas.draw()  # colours mapped, legends and labels placed, as in the saved figure
    scale = display_scale(fig)
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() * scale < min_pt - 1e-9:
            problems.append(f"text {t.get_text()[:30]!r} is {t.get_fontsize() * scale:.1f} pt at display width")
    for a in fig.findobj(Artist):
        if isinstance(a, Text) or a is fig or not a.get_visible() or _is_response(a):
            continue
        if any(_response_like(rgb) for rgb in _artist_colours(a)):
            problems.append(f"{type(a).__name__} {a.get_label() or a.get_gid() or ''!r} uses a CR/NR colour")
    for t in fig.findobj(Text):  # text coloured as CR/NR must be a response label too
        if (
            t.get_visible()
            and t.get_text().strip()
            and not _is_response(t)
            and _response_like(_rgb_rows(t.get_color()))
        ):
            problems.append(f"text {t.get_text()[:30]!r} is in a CR/NR colour")
    return problems
