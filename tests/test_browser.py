"""Every page of the built test-profile book in a real browser (headless Chromium via Playwright):
no console error, no request outside the book, every image loaded, interactive tables initialised,
no literal ``{glue`` text, interactive plots drawn; on a desktop and on a 390-px phone screen."""

import os
import re

import pytest
from browser import check_pages, chromium_path

pytestmark = pytest.mark.slow


def _need_browser():
    if chromium_path() is None:
        msg = "Chromium not installed (Debian: apt-get install chromium; make setup does it as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but " + msg)
        pytest.skip(msg)
    pytest.importorskip("playwright")


def _pages(html):
    pages = sorted(
        p.relative_to(html).as_posix() for p in html.rglob("*.html") if not p.relative_to(html).parts[0].startswith("_")
    )
    return [p for p in pages if p not in ("genindex.html", "search.html")]


def test_every_page_loads_cleanly(built_book):
    _need_browser()
    html = built_book[0] / "_build" / "html"
    pages = _pages(html)
    assert any(p.startswith("executed/") for p in pages) and "index.html" in pages
    problems = {p: f for p, f in check_pages(html, pages).items() if f}
    assert not problems, problems


def test_pages_work_on_a_phone(built_book):
    _need_browser()
    html = built_book[0] / "_build" / "html"
    pages = [p for p in _pages(html) if p.startswith("executed/")]
    problems = {p: f for p, f in check_pages(html, pages, width=390, height=844).items() if f}
    assert not problems, problems


def test_the_checker_sees_a_broken_page(tmp_path):
    """The checks can fail: a page with a missing image, an outside request, a script error and
    literal glue text is reported on each count."""
    _need_browser()
    (tmp_path / "bad.html").write_text(
        "<html><body><img src='missing.png'><img src='http://203.0.113.9/x.png'>"
        "<script>throw new Error('boom')</script><p>{glue:text}`n`</p>"
        "<table class='helpers-interactive'><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
        "<div class='helpers-plotly' id='v'></div>"
        "</body></html>"
    )
    found = " | ".join(check_pages(tmp_path, ["bad.html"])["bad.html"])
    for needle in (
        "image not loaded",
        "request outside the book",
        "boom",
        "{glue",
        "interactive tables not initialised",
        "interactive plots not initialised",
    ):
        assert needle in found, found


def test_tables_js_sorts_and_searches(tmp_path):
    """book/_static/tables.js: a click on a header sorts numerically, typing filters rows."""
    _need_browser()
    from pathlib import Path

    from browser import serve
    from playwright.sync_api import sync_playwright

    js = Path(__file__).resolve().parents[1] / "book" / "_static" / "tables.js"
    (tmp_path / "tables.js").write_text(js.read_text())
    rows = "".join(f"<tr><td>{g}</td><td>{v}</td></tr>" for g, v in [("KCNK3", "10"), ("HAP1", "9"), ("TYRO3", "-2.5")])
    (tmp_path / "t.html").write_text(
        "<html><body><table class='helpers-interactive'><thead><tr><th>gene</th>"
        f"<th>logFC</th></tr></thead><tbody>{rows}</tbody></table>"
        "<script src='tables.js'></script></body></html>"
    )
    with serve(tmp_path) as base, sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        page = b.new_page()
        page.goto(f"{base}/t.html")
        assert page.evaluate("document.querySelector('table').classList.contains('dataTable')")
        page.click("th:nth-child(2)")
        col = page.evaluate("Array.from(document.querySelectorAll('tbody tr td:nth-child(2)')).map(c => c.textContent)")
        assert col == ["-2.5", "9", "10"]  # numbers, not text order ("10" < "9")
        page.fill("input.helpers-table-search", "hap")
        visible = page.evaluate(
            "Array.from(document.querySelectorAll('tbody tr')).filter(r => r.style.display !== 'none').length"
        )
        assert visible == 1
        b.close()


def test_interactive_volcano_hover(tmp_path):
    """helpers.viz.interactive.volcano_html: plotly from the book's static folder, a hover label
    with the gene, and a hostile gene name shown as text."""
    _need_browser()
    import numpy as np
    import pandas as pd
    from browser import serve
    from playwright.sync_api import sync_playwright

    from helpers.viz.interactive import install_plotly, volcano_html

    genes = ["KCNK3", "<img src=x onerror=alert(1)>", "HAP1"]
    t = pd.DataFrame(
        {"logFC": [2.0, -1.5, 0.1], "P.Value": [1e-6, 1e-4, 0.5], "direction": ["up", "down", "ns"]}, index=genes
    )
    install_plotly(tmp_path / "_static")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "v.html").write_text("<html><body>" + volcano_html(t, 0.01, np.log2(1.5)) + "</body></html>")
    with serve(tmp_path) as base, sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        page = b.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/p/v.html", wait_until="networkidle")
        assert page.evaluate("typeof Plotly") == "object"
        assert page.evaluate("document.querySelectorAll('img').length") == 0, "a gene name became an element"
        n = page.evaluate("document.getElementById('volcano').data.length")
        assert n == 3
        page.evaluate("Plotly.Fx.hover('volcano', [{curveNumber: 2, pointNumber: 0}])")
        hover = page.evaluate("document.querySelector('.hoverlayer').textContent")
        assert "KCNK3" in hover and "log2FC 2.00" in hover
        assert not errors, errors
        b.close()


def test_the_books_volcano_is_interactive(built_book):
    """Chapter 03's volcano in the built book: plotly from the book's own _static, one trace per
    group, and hovering a DEG shows its gene, log2FC and p-value."""
    _need_browser()
    from browser import FLAGS, serve
    from playwright.sync_api import sync_playwright

    html = built_book[0] / "_build" / "html"
    assert (html / "_static" / "plotly.min.js").stat().st_size > 1_000_000  # the build installed plotly.js
    with serve(html) as base, sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        page = b.new_page()
        outside = []
        page.on(
            "request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:") else outside.append(r.url)
        )
        page.goto(f"{base}/executed/03_de.html", wait_until="networkidle")
        assert page.evaluate("document.querySelectorAll('.helpers-plotly.js-plotly-plot').length") == 1
        traces = page.evaluate("document.querySelector('.helpers-plotly').data.map(t => t.name)")
        assert len(traces) == 3 and any(t.startswith("higher in CR") for t in traces), traces
        up = next(i for i, t in enumerate(traces) if t.startswith("higher in CR"))
        gene = page.evaluate(f"document.querySelector('.helpers-plotly').data[{up}].customdata[0][0]")
        page.evaluate(
            f"Plotly.Fx.hover(document.querySelector('.helpers-plotly'), [{{curveNumber: {up}, pointNumber: 0}}])"
        )
        hover = page.evaluate("document.querySelector('.hoverlayer').textContent")
        assert gene in hover and "log2FC" in hover and re.search(r"p \d", hover), hover
        assert page.evaluate("document.querySelectorAll('table.helpers-interactive.dataTable').length") >= 1  # Table S2
        assert not outside, outside
        b.close()
