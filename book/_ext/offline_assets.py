"""Keep the built book offline: drop any script or stylesheet that would load from the network,
and serve the JavaScript the pages need from the book itself.

Jupyter Book 1 always enables sphinx-thebe, which writes a CDN address into every page even when
thebe is off; this extension removes those tags (and any other absolute-URL asset) from the page
context before the HTML is written.

The interactive figures (``helpers.viz.interactive``) load ``_static/plotly.min.js``; when an
HTML build finishes, this extension copies it there from the installed plotly package (the
version the figures were made with), as the runner does for MathJax.
"""

from pathlib import Path


def _remote(name: str) -> bool:
    return name.startswith(("http://", "https://", "//"))


def _strip(app, pagename, templatename, context, doctree):
    for key in ("script_files", "css_files"):
        files = context.get(key)
        if not files:
            continue
        keep = []
        for asset in files:
            name = getattr(asset, "filename", None) or str(asset) or ""
            body = (getattr(asset, "attributes", None) or {}).get("body", "") or ""
            if _remote(name) or "thebe" in name or "THEBE_JS_URL" in body or "https://" in body:
                continue
            keep.append(asset)
        files[:] = keep


def _install_plotly(app, exception):
    if exception is not None or getattr(app.builder, "format", "") != "html":
        return
    from helpers.viz.interactive import install_plotly

    install_plotly(Path(app.outdir) / "_static")


def setup(app):
    app.connect("html-page-context", _strip, priority=900)
    app.connect("build-finished", _install_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
