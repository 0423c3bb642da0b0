"""The incremental book build (helpers.engine.runner, ``_build/.book-cache``): it gives the bytes a
from-scratch build gives, rebuilds everything when something Sphinx does not track changed, and a
kill at any instant leaves the old or the new book and a valid cache or none."""

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nbformat
import pytest

from helpers.engine import runner

MINI_CONFIG = """title: mini
only_build_toc_files: true
exclude_patterns: ["results/*", "_build/*"]
execute:
  execute_notebooks: "off"
parse:
  myst_enable_extensions: [colon_fence, dollarmath]
"""
TOC = "format: jb-book\nroot: intro\nchapters:\n  - file: executed/a\n  - file: executed/b\n  - file: executed/c\n"
INTRO = "# Mini\n\nA miniature book: {doc}`executed/a`, {ref}`the section of a <sec-a>`.\n"


def png(rgb) -> str:
    """A valid 2x2 PNG of one colour, base64 (a figure's bytes: a new colour is a new file name)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + bytes(rgb) * 2 for _ in range(2))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


def notebook(title, text, rgb=None, heading="Results", label=None):
    n = nbformat.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\n{text}"),
        nbformat.v4.new_markdown_cell(f"({label})=\n## {heading}" if label else f"## {heading}"),
    ]
    if rgb is not None:
        code = nbformat.v4.new_code_cell("show()")
        code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png(rgb), "text/plain": "<Figure>"})]
        cells.append(code)
    n.cells = cells
    return n


def write_nb(root: Path, stem: str, n) -> None:
    """Write an executed notebook as the runner does (atomically, so with a new modification time)."""
    path = root / "executed" / f"{stem}.ipynb"
    tmp = path.with_name(f".{stem}.tmp")
    nbformat.write(n, str(tmp))
    os.replace(tmp, path)


def make_book(root: Path) -> runner.Project:
    (root / "_config.yml").write_text(MINI_CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "intro.md").write_text(INTRO)
    (root / "book" / "_static" / "mathjax").mkdir(parents=True)
    (root / "book" / "_static" / "mathjax" / "tex-chtml.js").write_text("// placeholder\n")
    (root / "executed").mkdir()
    (root / "results" / "a").mkdir(parents=True)
    (root / "results" / "a" / "numbers.json").write_text('{"n": 1}\n')
    a = notebook("Page A", "Text of A. {download}`numbers <../results/a/numbers.json>`", (200, 10, 10), label="sec-a")
    write_nb(root, "a", a)
    write_nb(root, "b", notebook("Page B", "B links {doc}`a` and {ref}`sec-a`.", (10, 200, 10)))
    write_nb(root, "c", notebook("Page C", "Text of C, about zebrafish.", (10, 10, 200)))
    return runner.Project(root=root, results=root / "results", executed=root / "executed", steps=())


def tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def how(proj) -> str:
    return json.loads((proj.build / runner.BOOK_CACHE / runner.BOOK_CACHE_MARK).read_text())["build"]


def quiet(*a, **k):
    pass


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_TEST_CODE_HASH", "frozen")  # see test_runner.freeze_code
    monkeypatch.delenv("HELPERS_KILL_AT", raising=False)
    monkeypatch.setenv("HELPERS_ROOT", str(tmp_path))
    monkeypatch.setenv("HELPERS_RESULTS", str(tmp_path / "results"))
    return make_book(tmp_path)


def scratch(proj) -> dict:
    """The same inputs built from nothing: no cache, no old book."""
    shutil.rmtree(proj.build)
    html = runner.build_book(proj, log=quiet)
    assert how(proj) == "full: no cache"
    return tree(html)


@pytest.mark.slow
def test_incremental_build_gives_the_bytes_of_a_build_from_scratch(book):
    html = runner.build_book(book, log=quiet)
    assert how(book) == "full: no cache"
    first = tree(html)
    old_image = [n for n in first if n.startswith("_images/")]
    # nothing changed: nothing is read or written, the same bytes
    runner.build_book(book, log=quiet)
    assert how(book) == "incremental" and tree(html) == first
    # a run changed one page's numbers and figure (not its outline), and a download
    write_nb(book.root, "c", notebook("Page C", "Text of C, with new numbers: 42.", (90, 90, 10)))
    (book.root / "results" / "a" / "numbers.json").write_text('{"n": 2}\n')
    runner.build_book(book, log=quiet)
    assert how(book) == "incremental"
    incremental = tree(html)
    assert incremental != first and b"new numbers: 42" in incremental["executed/c.html"]
    assert b"zebrafish" not in incremental["searchindex.js"], "a word no page has is still in the search index"
    assert not set(old_image) <= set(incremental), "the old figure of page C is still in the book"
    assert incremental == scratch(book)


@pytest.mark.slow
def test_a_changed_outline_writes_every_page_and_still_matches_scratch(book):
    runner.build_book(book, log=quiet)
    # page A's title changes: page B's link text, every page's navigation show it
    write_nb(book.root, "a", notebook("Page A renamed", "Text of A.", (200, 10, 10), label="sec-a"))
    html = runner.build_book(book, log=quiet)
    assert how(book).startswith("every page written")
    built = tree(html)
    assert b"Page A renamed" in built["executed/b.html"] and b"Page A renamed" in built["executed/c.html"]
    assert built == scratch(book)


@pytest.mark.slow
def test_a_label_removed_from_one_page_still_fails_the_page_that_uses_it(book):
    """Warnings stay errors: page B (unchanged) refers to a label page A no longer has."""
    runner.build_book(book, log=quiet)
    good = tree(book.build / "html")
    write_nb(book.root, "a", notebook("Page A", "Text of A, no label.", (200, 10, 10)))
    with pytest.raises(RuntimeError, match="jupyter-book build failed"):
        runner.build_book(book, log=quiet)
    assert tree(book.build / "html") == good, "a failed build changed the book"
    assert not (book.build / runner.BOOK_CACHE).exists(), "a failed build left a cache"
    with pytest.raises(RuntimeError, match="jupyter-book build failed"):  # and again, from scratch
        runner.build_book(book, log=quiet)


@pytest.mark.slow
def test_what_sphinx_does_not_track_makes_a_full_build(book):
    runner.build_book(book, log=quiet)
    runner.build_book(book, log=quiet)
    assert how(book) == "incremental"
    (book.root / "_config.yml").write_text(MINI_CONFIG.replace("title: mini", "title: mini two"))
    html = runner.build_book(book, log=quiet)
    assert how(book).startswith("full: configuration")
    assert b"mini two" in tree(html)["executed/b.html"]
    (book.root / "book" / "_static" / "custom.css").write_text("p {}\n")  # anything under book/
    runner.build_book(book, log=quiet)
    assert how(book).startswith("full: configuration")
    # a notebook put back with an old modification time (cp -p): Sphinx would not re-read it
    nb = book.root / "executed" / "c.ipynb"
    st = nb.stat()
    nbformat.write(notebook("Page C", "Text of C, restored.", (10, 10, 200)), str(nb))
    os.utime(nb, ns=(st.st_atime_ns, st.st_mtime_ns))
    html = runner.build_book(book, log=quiet)
    assert how(book) == "full: executed/c.ipynb changed without a newer modification time"
    assert b"restored" in tree(html)["executed/c.html"]


def test_book_key_and_outlines_say_no_to_what_does_not_matter(tmp_path, monkeypatch):
    """No Sphinx: the key follows the configuration and book/, not the notebooks; the outline
    follows headings and targets, not the text or outputs of a page."""
    monkeypatch.setenv("HELPERS_TEST_CODE_HASH", "frozen")
    proj = make_book(tmp_path)
    key, outlines = runner._book_key(proj), runner._book_outlines(proj)
    write_nb(tmp_path, "c", notebook("Page C", "Other text, other numbers: 7.", (1, 2, 3)))
    assert runner._book_key(proj) == key and runner._book_outlines(proj) == outlines
    write_nb(tmp_path, "c", notebook("Page C", "Text.", (1, 2, 3), heading="Other results"))
    changed = runner._book_outlines(proj)
    assert changed != outlines and changed["executed/a.ipynb"] == outlines["executed/a.ipynb"]
    (tmp_path / "_toc.yml").write_text(TOC.replace("  - file: executed/c\n", ""))
    assert runner._book_key(proj) != key
    (tmp_path / "_toc.yml").write_text(TOC)
    assert runner._book_key(proj) == key
    monkeypatch.setenv("HELPERS_TEST_CODE_HASH", "other code")
    assert runner._book_key(proj) != key


def test_prune_keeps_what_pages_link_and_drops_the_rest(tmp_path):
    html = tmp_path / "html"
    files = ("_images/new.png", "_images/old.png", "_downloads/ab/numbers.json", "_downloads/cd/gone.json")
    for rel in (*files, "_downloads/ef/my table & co.tsv"):
        (html / rel).parent.mkdir(parents=True, exist_ok=True)
        (html / rel).write_text(rel)
    (html / "executed").mkdir()
    (html / "executed" / "a.html").write_text(
        '<img src="../_images/new.png" alt=""/><a href="../_downloads/ab/numbers.json?x=1">n</a>'
        '<a href="../_downloads/ef/my%20table%20&amp;%20co.tsv">t</a>'  # quoted and escaped as Sphinx writes it
    )
    gone = runner._prune_unlinked(html)
    assert sorted(p.relative_to(html).as_posix() for p in gone) == ["_downloads/cd/gone.json", "_images/old.png"]
    assert (html / "_images" / "new.png").exists() and (html / "_downloads" / "ab" / "numbers.json").exists()
    assert (html / "_downloads" / "ef" / "my table & co.tsv").exists()
    assert not (html / "_downloads" / "cd").exists()


KILL_DRIVER = """
import sys
from pathlib import Path
from helpers.engine import runner
root = Path({root!r})
runner.build_book(runner.Project(root=root, results=root / "results", executed=root / "executed", steps=()),
                  log=lambda *a, **k: None)
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", [*runner.BOOK_CACHE_KILL_STEPS, "book-built", "book-journal-written"])
def test_kill_during_an_incremental_build(book, step):
    """Killed with the cache open (its mark removed), after the build (mark written, no journal)
    or after the journal: the book is the old or the new one, the cache is valid or gone, and the
    next build gives the bytes of a from-scratch build."""
    runner.build_book(book, log=quiet)
    old = tree(book.build / "html")
    write_nb(book.root, "c", notebook("Page C", "Text of C, with new numbers: 43.", (90, 90, 10)))
    env = dict(os.environ, HELPERS_KILL_AT=step)
    p = subprocess.run([sys.executable, "-c", KILL_DRIVER.format(root=str(book.root))], env=env, capture_output=True)
    assert p.returncode == 137, p.stderr.decode()[-2000:]
    runner.recover(book, log=quiet)
    now = tree(book.build / "html")
    if step == "book-journal-written":
        assert b"new numbers: 43" in now["executed/c.html"]
    else:
        assert now == old, "the old book changed before the swap"
    cache = book.build / runner.BOOK_CACHE
    assert not cache.exists() or (cache / runner.BOOK_CACHE_MARK).exists()
    assert sorted(f.name for f in book.build.iterdir()) in (["html"], [runner.BOOK_CACHE, "html"])
    html = runner.build_book(book, log=quiet)
    assert how(book) == ("full: no cache" if step in runner.BOOK_CACHE_KILL_STEPS else "incremental")
    assert tree(html) == scratch(book)
