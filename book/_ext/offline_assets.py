"""Keep the built book offline: drop any script or stylesheet that would load from the network.

Jupyter Book 1 always enables sphinx-thebe, which writes a CDN address into every page even when
thebe is off; this extension removes those tags (and any other absolute-URL asset) from the page
context before the HTML is written.
"""


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


def setup(app):
    app.connect("html-page-context", _strip, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
