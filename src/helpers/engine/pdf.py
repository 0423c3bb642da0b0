"""The whole book as one PDF, built offline: Sphinx's single-page HTML builder (through
``jupyter-book build --builder singlehtml``) renders every chapter into one page, and headless
Chromium prints it (``--print-to-pdf``), with the book's own CSS, MathJax and figures.

Jupyter Book's own PDF routes need LaTeX (``pdflatex``) or pyppeteer, which downloads its own
Chromium at run time; printing with the system's Chromium (Debian's ``chromium``) works offline
and keeps the HTML book's look. The print stylesheet (``book/_static/custom.css``, ``@media
print``) hides navigation and keeps tables whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.engine.errors import InputError

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=20000",
]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    raise InputError(
        "Chromium not found: install it (Debian: apt-get install chromium) to build the PDF", where="make pdf"
    )


def _root_doc(root: Path) -> str:
    """The book's root document (``_toc.yml``'s ``root``), where the single-page build puts everything."""
    from helpers.engine.registry import load

    return load(Path(root) / "config" / "book.yml")["root"]


def printed_page(root: Path, build: Path | None = None) -> Path:
    """The single-page HTML that :func:`build_pdf` printed."""
    return Path(build or Path(root) / "_build") / "singlehtml" / f"{_root_doc(root)}.html"


def _project(root: Path):
    from helpers.engine import paths
    from helpers.engine.runner import Project

    root = Path(root)
    same = root.resolve() == paths.ROOT
    return Project(
        root=root,
        results=paths.RESULTS if same else root / "results",
        executed=paths.EXECUTED if same else root / "executed",
    )


def build_pdf(root: Path, build: Path | None = None, chromium: str | None = None) -> Path:
    """Build ``_build/pdf/book.pdf`` from the executed notebooks and the hand-written pages.
    The previous PDF stays until the new one is complete. Like a run and a book build, it holds
    the checkout's run lock (another run holding it raises ``RunLocked`` at once), finishes what
    killed runs left, and marks the pages the latest run left stale before printing."""
    from helpers.engine.runner import mark_pages, recover, run_lock

    project = _project(root)
    exe = chromium or find_chromium()
    with run_lock(project):
        recover(project, log=lambda *a, **k: None)
        mark_pages(project)
        return _build_pdf(Path(root), Path(build or Path(root) / "_build"), exe)


def _build_pdf(root: Path, build: Path, exe: str) -> Path:
    nxt = build / ".pdf-next"
    shutil.rmtree(nxt, ignore_errors=True)
    cmd = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(root),
        "--builder",
        "singlehtml",
        "--path-output",
        str(nxt),
        "--quiet",
    ]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=dict(os.environ, HELPERS_ROOT=str(root)))
    page = nxt / "_build" / "singlehtml" / f"{_root_doc(root)}.html"  # index.html only redirects there
    if proc.returncode != 0 or not page.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"single-page HTML build failed:\n{tail}")
    # Sphinx's single-page builder writes image paths relative to the output root although the
    # page sits in the root document's folder (book/): give that folder a view of the images.
    single_root = nxt / "_build" / "singlehtml"
    if page.parent != single_root and (single_root / "_images").is_dir():
        link = page.parent / "_images"
        if not link.exists():
            link.symlink_to(os.path.relpath(single_root / "_images", page.parent), target_is_directory=True)
    out_dir = build / "pdf"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_pdf = out_dir / ".book.pdf.tmp"
    profile = nxt / "chromium-profile"
    proc = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={tmp_pdf}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 or not tmp_pdf.exists() or tmp_pdf.stat().st_size == 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"Chromium could not print the book: {tail}")
    final = out_dir / "book.pdf"
    os.replace(tmp_pdf, final)
    single = build / "singlehtml"  # kept beside the PDF: the page that was printed
    shutil.rmtree(single, ignore_errors=True)
    os.replace(nxt / "_build" / "singlehtml", single)
    shutil.rmtree(nxt, ignore_errors=True)
    return final
