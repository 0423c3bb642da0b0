"""Interactive figures for the HTML book, offline: plotly draws them, and its JavaScript is served
by the book itself (``_static/plotly.min.js``, copied from the plotly Python package when the book
is built), never from a CDN. The static SVG/PNG of each figure stay the downloads.

Every string that comes from data (gene names) reaches the page only as JSON data inside plotly's
figure specification, which plotly renders as text, never as markup; :func:`volcano_html` also
escapes them before they enter the hover template.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.viz.style import NS_COLOR, direction_colors

PLOTLY_STATIC = "plotly.min.js"
#: at most this many not-significant genes are drawn in the interactive volcano (every DEG is)
MAX_NS_POINTS = 4000


def plotly_js_source() -> Path:
    """plotly.js as shipped inside the plotly Python package (same version as the Python side)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_STATIC


def install_plotly(static_dir: Path) -> Path:
    """Copy plotly.js into the book's static folder (once; same bytes every time)."""
    static_dir = Path(static_dir)
    target = static_dir / PLOTLY_STATIC
    src = plotly_js_source()
    if not target.exists() or target.stat().st_size != src.stat().st_size:
        static_dir.mkdir(parents=True, exist_ok=True)
        target.write_bytes(src.read_bytes())
    return target


def volcano_html(
    table: pd.DataFrame,
    p_max: float,
    lfc_min: float,
    use_fdr: bool = False,
    cr: str = "CR",
    nr: str = "NR",
    div_id: str = "volcano",
    static_prefix: str = "../_static/",
) -> str:
    """Fig. 2A as an interactive volcano: hovering a point shows the gene, log2FC and p-value.

    ``table`` is a DE table indexed by gene with ``logFC``, ``P.Value``/``adj.P.Val`` and
    ``direction`` (up/down/ns). Not-significant genes are thinned to at most
    :data:`MAX_NS_POINTS` points, evenly over the table's order (the static figure has them
    all), so that the page stays light; every DEG is drawn.
    """
    import plotly.graph_objects as go

    col = "adj.P.Val" if use_fdr else "P.Value"
    need = {"logFC", col, "direction"}
    if not need <= set(table.columns):
        raise ValueError(f"volcano_html needs columns {sorted(need)}")
    y = -np.log10(table[col].clip(lower=1e-300).to_numpy(dtype=float))
    fig = go.Figure()
    names = {"up": f"higher in {cr}", "down": f"higher in {nr}", "ns": "not significant"}
    colours = {**direction_colors(), "ns": NS_COLOR}  # direction of effect, as the static volcano
    direction = table["direction"].astype(str).to_numpy()
    for d in ("ns", "down", "up"):
        idx = np.flatnonzero(direction == d)
        if d == "ns" and len(idx) > MAX_NS_POINTS:
            idx = idx[np.linspace(0, len(idx) - 1, MAX_NS_POINTS).astype(int)]
        sub = table.iloc[idx]
        genes = [html.escape(str(g)) for g in sub.index]
        fig.add_trace(
            go.Scatter(
                x=sub["logFC"].round(4).tolist(),
                y=np.round(y[idx], 4).tolist(),
                mode="markers",
                name=f"{html.escape(names[d])} ({int((direction == d).sum())})",
                marker={"color": colours[d], "size": 5 if d == "ns" else 7, "opacity": 0.6 if d == "ns" else 0.9},
                customdata=[[g, f"{p:.3g}"] for g, p in zip(genes, sub[col])],
                hovertemplate="<b>%{customdata[0]}</b><br>log2FC %{x:.2f}<br>"
                + ("FDR" if use_fdr else "p")
                + " %{customdata[1]}<extra></extra>",
            )
        )
    fig.add_hline(y=-np.log10(p_max), line_dash="dash", line_color="#555555", line_width=1)
    for s in (-1, 1):
        fig.add_vline(x=s * lfc_min, line_dash="dash", line_color="#555555", line_width=1)
    fig.update_layout(
        template="simple_white",
        height=460,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis_title=f"log2 fold change ({html.escape(cr)} − {html.escape(nr)})",
        yaxis_title=f"−log10 {'FDR' if use_fdr else 'p-value'}",
        legend={"orientation": "h", "y": -0.2},
        font={"size": 13},
    )
    spec = fig.to_plotly_json()
    payload = json.dumps(
        {"data": spec["data"], "layout": spec["layout"]},
        sort_keys=True,
        default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o),
    )
    # no "<", ">" or "&" at all in the script body (JSON's \\u escapes instead): a data string can
    # neither close the script element nor switch the HTML parser's script states ("<!--", "<script")
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    safe_id = "".join(ch for ch in div_id if ch.isalnum() or ch in "-_") or "volcano"
    return (
        f'<div id="{safe_id}" class="helpers-plotly" style="width:100%;height:460px"></div>\n'
        f'<script src="{static_prefix}{PLOTLY_STATIC}"></script>\n'
        f"<script>(function(){{var f={payload};"
        f'Plotly.newPlot("{safe_id}",f.data,f.layout,{{responsive:true,displaylogo:false}});}})();</script>'
    )
