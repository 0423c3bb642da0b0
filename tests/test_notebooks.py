"""Notebook hygiene, and the whole project executed on the `test` profile with the book built.

The end-to-end run copies the project as a fresh clone has it into a scratch folder, runs every
notebook with the runner (papermill), builds the book, and checks what a reader gets.
"""

import re
import subprocess
import sys
from html import escape as html_escape

import pytest
import yaml
from conftest import ROOT, copy_project, project_env

from helpers.engine.registry import steps as _steps

STEPS = _steps()

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))


def test_every_step_has_a_notebook_and_a_toc_entry():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems == [s.stem for s in STEPS if s.stem in stems]
    from helpers.engine.registry import toc_yaml

    assert sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.suffix == ".ipynb") == [], "no .ipynb sources"
    assert (ROOT / "_toc.yml").read_text() == toc_yaml(), "_toc.yml is stale: run `python -m helpers toc`"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for stem in stems:
        assert f"executed/{stem}" in files, f"{stem} missing from _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    from helpers.engine.runner import read_notebook

    nb = read_notebook(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs must be stripped"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one 'parameters' cell"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "starts with a title"


@pytest.mark.slow
def test_runner_prints_one_line_per_notebook(built_book):
    dest, out = built_book
    lines = [l for l in out.splitlines() if l.startswith("[")]
    assert len(lines) == len(NOTEBOOKS)
    # notebooks may finish out of order (two run side by side); each keeps its position number
    by_stem = {l.split()[1]: l for l in lines}
    for i, nb in enumerate(NOTEBOOKS, 1):
        assert re.fullmatch(rf"\[{i}/{len(NOTEBOOKS)}\] {nb.stem} \.\.\. \d+\.\d s", by_stem[nb.stem]), by_stem[nb.stem]
    assert "book:" in out and "index.html" in out


@pytest.mark.slow
def test_every_page_built(built_book):
    dest, _ = built_book
    html = dest / "_build" / "html"
    for nb in NOTEBOOKS:
        page = html / "executed" / f"{nb.stem}.html"
        assert page.exists(), page
        text = page.read_text()
        assert "Reproduce this page" in text
        assert "Traceback" not in text, f"{page.name} shows a traceback"


@pytest.mark.slow
def test_every_figure_is_numbered_with_alt_text(built_book):
    """A chapter's figures are numbered MyST figures with written alt text: no image of a
    chapter page is shown bare (myst-nb's fallback alt text is the image's own file name)."""
    dest, _ = built_book
    html = dest / "_build" / "html" / "executed"
    bare, numbered = [], 0
    for page in sorted(html.glob("*.html")):
        text = page.read_text()
        numbered += len(re.findall(r'class="caption-number">Book figure \d+', text))
        for m in re.finditer(r'<img\b[^>]*\balt="([^"]*)"', text):
            if m.group(1).endswith((".png", ".svg", ".jpg")) or not m.group(1).strip():
                bare.append(f"{page.name}: {m.group(1)[:40]}")
    assert not bare, bare
    assert numbered >= 15


@pytest.mark.slow
def test_book_is_offline(built_book):
    dest, _ = built_book
    html = dest / "_build" / "html"
    bad = []
    for page in html.rglob("*.html"):
        for m in re.finditer(
            r'<(script|link|img|iframe|source)\b[^>]*\b(src|href)="((?:https?:)?//[^"]+)"', page.read_text()
        ):
            bad.append(f"{page.relative_to(html)}: {m.group(3)}")
        if "THEBE_JS_URL" in page.read_text():
            bad.append(f"{page.relative_to(html)}: thebe CDN constant")
    assert not bad, bad[:10]
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()


@pytest.mark.slow
def test_no_glued_value_is_empty_or_nan(built_book):
    dest, _ = built_book
    html = dest / "_build" / "html"
    for page in (html / "book").rglob("*.html"):
        for m in re.finditer(r'<span class="pasted-text">(.*?)</span>', page.read_text(), re.S):
            v = m.group(1).strip()
            assert v and v.lower() not in {"nan", "none", "'nan'", "<na>"}, f"{page.name}: glued value {v!r}"


@pytest.mark.slow
def test_built_pages_hold_no_machine_paths(built_book):
    dest, _ = built_book
    html = dest / "_build" / "html"
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert str(dest) not in text, f"{page.relative_to(html)} holds the build folder's absolute path"
        assert str(ROOT) not in text, f"{page.relative_to(html)} holds the project's absolute path"


@pytest.mark.slow
def test_second_run_executes_nothing(built_book):
    dest, _ = built_book
    p = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--profile", "test"],
        cwd=dest,
        env=project_env(dest),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("unchanged, skipped") == len(NOTEBOOKS)


@pytest.mark.slow
def test_scorecard_has_every_claim(built_book):
    from helpers.analysis.scorecard import load_claims

    dest, _ = built_book
    claims = load_claims(dest / "data" / "paper" / "claims.yml")
    card = (dest / "results" / "scorecard" / "scorecard.tsv").read_text().splitlines()
    ids = [line.split("\t")[0] for line in card[1:]]
    assert ids == [c["id"] for c in claims]
    page = (dest / "_build" / "html" / "executed" / "10_scorecard.html").read_text()
    for c in claims:
        shown = html_escape(c["statement"])  # the escaping report.show applies (quotes as &#x27;)
        assert shown in page or shown.replace("&#x27;", "&#39;") in page, c["id"]
    # every claim is written by its chapter; "not measured" only as a verdict with its reason
    import pandas as pd

    table = pd.read_csv(dest / "results" / "scorecard" / "scorecard.tsv", sep="\t", keep_default_na=False)
    assert not table["detail"].str.startswith("no value for").any(), table.loc[
        table["detail"].str.startswith("no value")
    ]
    nm = table[table["status"] == "not measured"]
    assert nm["measured"].str.startswith("not measured: ").all(), nm
    assert (table["rule"] != "").all()


@pytest.mark.slow
def test_failing_notebook_keeps_last_good_results_and_book(built_book):
    """A cell that raises: exit 1, one line naming notebook and cell, nothing good overwritten."""
    dest, _ = built_book
    html = dest / "_build" / "html"
    index_before = (html / "index.html").read_bytes()
    page_before = (html / "executed" / "09_published_model.html").read_bytes()
    res = dest / "results" / "published_model" / "scores.tsv"
    res_before = res.read_bytes()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers",
            "run",
            "--profile",
            "test",
            "--book",
            "--set",
            "09_published_model.model_name=data/no_such_model.json",
        ],
        cwd=dest,
        env=project_env(dest),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 09_published_model: cell"), p.stderr
    assert "no_such_model.json" in err[0]
    assert (html / "index.html").read_bytes() == index_before
    assert (html / "executed" / "09_published_model.html").read_bytes() == page_before
    assert res.read_bytes() == res_before
    assert (dest / "_build" / "failed" / "09_published_model.ipynb").exists()


@pytest.mark.slow
def test_two_full_runs_give_identical_tables(built_book, tmp_path_factory):
    """Determinism: a second fresh copy run on the same profile writes byte-identical TSV tables."""
    dest, _ = built_book
    other = copy_project(tmp_path_factory.mktemp("clone2"))
    p = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--profile", "test"],
        cwd=other,
        env=project_env(other),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    skip = {"reproducibility", "benchmarks"}  # these describe the run itself (timings, paths of the copy)
    a = {f.relative_to(dest / "results") for f in (dest / "results").rglob("*.tsv") if f.parts[-2] not in skip}
    b = {f.relative_to(other / "results") for f in (other / "results").rglob("*.tsv") if f.parts[-2] not in skip}
    assert a == b and len(a) > 30
    differ = [str(f) for f in sorted(a) if (dest / "results" / f).read_bytes() != (other / "results" / f).read_bytes()]
    assert not differ, differ
