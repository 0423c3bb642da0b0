"""`make pdf`: the whole book printed by headless Chromium. The PDF has a page per screenful of
every chapter, and every figure of the single-page HTML is embedded in it."""

import os
import re

import pytest
from browser import chromium_path

pytestmark = pytest.mark.slow


def test_pdf_of_the_whole_book(built_book):
    if chromium_path() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Chromium is not installed")
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    from pypdf import PdfReader

    from helpers.engine.pdf import build_pdf, printed_page
    from helpers.engine.registry import steps

    dest = built_book[0]
    pdf = build_pdf(dest)
    reader = PdfReader(str(pdf))
    n_chapters = len(steps(dest / "config" / "book.yml"))
    assert len(reader.pages) >= 2 * n_chapters, f"{len(reader.pages)} pages for {n_chapters} chapters"
    text = "".join(p.extract_text() or "" for p in reader.pages)
    assert "{glue" not in text
    for title in ("Differential expression", "Scorecard"):
        assert title.lower() in text.lower(), f"'{title}' not in the PDF"
    single = printed_page(dest).read_text()
    figures = set(re.findall(r'<img[^>]+src="([^"]+\.png)"', single))
    embedded = sum(len(p.images) for p in reader.pages)
    assert figures, "the single-page book shows no figure"
    assert embedded >= len(figures), f"{embedded} images in the PDF, {len(figures)} figures in the book"
