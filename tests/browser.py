"""Load pages of the built book in headless Chromium (Debian's ``chromium``, driven by Playwright)
and report what a reader's browser would see go wrong: console errors, requests that leave the
book, images that did not load, literal ``{glue`` text, interactive tables that did not start.

The book is served from ``_build/html`` by a local HTTP server on 127.0.0.1, so every request
that does not go to that origin (or to ``data:``/``blob:``) is a request outside the book.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

from helpers.engine.pdf import CHROMIUM_FLAGS

# the same closed-network flags the PDF build uses, minus the ones only printing needs
FLAGS = [f for f in CHROMIUM_FLAGS if f.startswith(("--no-", "--disable-")) and f != "--no-pdf-header-footer"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on an ephemeral port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _load(ctx, base: str, rel: str) -> list:
    """Load one page in a new tab and list what went wrong."""
    page = ctx.new_page()
    found: list = []
    page.on("console", lambda m: found.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"page error: {e}"))

    def on_request(req):
        url = req.url
        if not (url.startswith(base) or url.startswith("data:") or url.startswith("blob:")):
            found.append(f"request outside the book: {url}")

    page.on("request", on_request)
    page.on(
        "requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED" else found.append(f"failed request: {r.url}")
    )
    resp = page.goto(f"{base}/{rel}", wait_until="networkidle")
    if resp is None or resp.status != 200:
        found.append(f"HTTP {resp.status if resp else 'no response'}")
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    found += [f"image not loaded: {s}" for s in broken]
    if "{glue" in page.inner_text("body"):
        found.append("literal {glue text on the page")
    tables = page.evaluate("() => document.querySelectorAll('table.helpers-interactive').length")
    ready = page.evaluate("() => document.querySelectorAll('table.helpers-interactive.dataTable').length")
    if tables and ready < tables:
        found.append(f"{tables - ready} of {tables} interactive tables not initialised")
    # helpers.viz.interactive: plotly marks a plot it has drawn with the class js-plotly-plot
    plots = page.evaluate("() => document.querySelectorAll('.helpers-plotly').length")
    drawn = page.evaluate(
        "() => Array.from(document.querySelectorAll('.helpers-plotly'))"
        ".filter(d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg')).length"
    )
    if plots and drawn < plots:
        found.append(f"{plots - drawn} of {plots} interactive plots not initialised")
    page.close()
    return found


def check_pages(html_root: Path, pages: list[str], width: int = 1280, height: int = 900) -> dict:
    """{page: [problem, ...]} for each page (relative to ``html_root``); empty lists when all is well."""
    from playwright.sync_api import sync_playwright

    problems: dict = {}
    with serve(html_root) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=FLAGS, headless=True)
        ctx = browser.new_context(viewport={"width": width, "height": height})
        for rel in pages:
            found = _load(ctx, base, rel)
            if found:  # a real defect shows on every load; a transient one (an aborted font fetch) does not
                again = _load(ctx, base, rel)
                found = [f for f in found if f in again]
            problems[rel] = found
        browser.close()
    return problems
