"""A failed run is never a silent mix: the runner records which pages are stale, the book marks
them (and only them), and a run that completes removes the marks. Every page says which kind of
run made it and links its numbers.json; the "Reproduce this page" box stays short; the PDF takes
the run lock."""

import fcntl
import json
import os

import nbformat
import pytest
from mini_project import make_mini_project
from test_runner import nb, quiet

from helpers.engine import runner
from helpers.engine.registry import Step
from helpers.engine.runner import NotebookFailed, Project, RunLocked, build_book, run

HOSTILE = "<img src=x onerror=zqx()> `code` **bold** $x$ {glue}`n` [l](http://e.x)\n# heading"

STEPS = (
    Step("01_cohort", "cohort", "Cohort"),
    Step("02_b", "b", "B", ("01_cohort",)),
    Step("03_c", "c", "C", ("02_b",)),
    Step("04_d", "scorecard", "D"),
)

PARAMS = """
global:
  seed: 1
  dataset: custom
notebooks:
  01_cohort:
    x: 1
    custom: {cohort_name: mine, table: none}
  02_b: {fail: false}
  03_c: {}
  04_d: {z: 1}
"""

W = "import json\nfrom helpers.engine.paths import results_dir, results_of\n"
SOURCES = {
    "01_cohort": (
        "seed = 1\ndataset = 'custom'\nx = 1\ncustom = {}\nprofile = 'default'",
        W + "(results_dir('cohort') / 'numbers.json').write_text(json.dumps({'x': x}))",
    ),
    "02_b": (
        "seed = 1\nfail = False\nprofile = 'default'",
        W + "if fail:\n    raise ValueError('bad parameter')\n"
        "(results_dir('b') / 'out.tsv').write_text((results_of('cohort') / 'numbers.json').read_text())",
    ),
    "03_c": (
        "seed = 1\nprofile = 'default'",
        W + "(results_dir('c') / 'out.tsv').write_text((results_of('b') / 'out.tsv').read_text())",
    ),
    "04_d": ("seed = 1\nz = 1\nprofile = 'default'", W + "(results_dir('scorecard') / 'out.tsv').write_text(str(z))"),
}


@pytest.fixture
def proj(tmp_path, monkeypatch):
    return make_mini_project(tmp_path, PARAMS, SOURCES, STEPS, monkeypatch)


@pytest.fixture(autouse=True)
def file_order(monkeypatch):
    """The run starts chapters in file order. The runner's critical-path order puts first the
    chain its last run's timings say is longest; on a loaded machine 04_d's single kernel start
    can outlast 01-02-03 and 04_d would run before 02_b fails, so what "not reached" means here
    would depend on the machine's load (CI failed so once). ``test_runner`` tests that order."""
    monkeypatch.setattr(runner, "critical_path_order", lambda todo, reads, stamps: list(todo))


@pytest.fixture
def fake_book(monkeypatch):
    """build_book without jupyter-book: everything before and after the Sphinx build is real."""
    built = []

    def jb(project, out):
        (out / "_build" / "html").mkdir(parents=True)
        built.append(out)

    monkeypatch.setattr(runner, "_jupyter_book", jb)
    monkeypatch.setattr(runner, "_install_mathjax", lambda project: None)
    return built


def cells(proj, stem, tag):
    ex = nbformat.read(proj.executed / f"{stem}.ipynb", as_version=4)
    return [c for c in ex.cells if tag in c.metadata.get("tags", [])]


def marked(proj):
    return sorted(
        s.stem for s in STEPS if any("run-status-stale" in c.source for c in cells(proj, s.stem, "run-status"))
    )


@pytest.mark.slow
def test_failed_run_marks_stale_pages_and_a_good_run_clears_them(proj, fake_book):
    run(proj, log=quiet)
    build_book(proj, log=quiet)
    assert marked(proj) == []
    st = json.loads((proj.results / "run_status.json").read_text())
    assert st["state"] == "ok" and st["stale"] == []
    # a bad parameter makes the middle chapter raise; 01 re-runs with new parameters first
    with pytest.raises(NotebookFailed):
        run(proj, sets={"01_cohort.x": 2, "02_b.fail": True}, log=quiet)
    st = json.loads((proj.results / "run_status.json").read_text())
    assert st["state"] == "failed" and st["failed"] == "02_b" and "bad parameter" in st["cause"]
    assert st["done"] == ["01_cohort"]
    # 02_b failed; 03_c reads it; 04_d was not reached but its inputs are those of its last run
    assert st["stale"] == ["02_b", "03_c"]
    build_book(proj, log=quiet)
    assert marked(proj) == ["02_b", "03_c"]
    mark = cells(proj, "02_b", "run-status")[0]
    assert "failed at" in mark.source and "02_b" in mark.source and "bad parameter" in mark.source
    assert "This is the chapter that failed" in mark.source
    ex = nbformat.read(proj.executed / "02_b.ipynb", as_version=4)
    assert ex.cells[1] is not None and "run-status" in ex.cells[1].metadata["tags"], "the mark sits under the title"
    # the summary page lists the stale pages, although it is itself up to date
    summary = [c for c in cells(proj, "04_d", "run-status") if "run-status-summary" in c.source]
    assert len(summary) == 1 and "{doc}`02_b`" in summary[0].source and "{doc}`03_c`" in summary[0].source
    assert "run-status-stale" not in "".join(c.source for c in cells(proj, "04_d", "run-status"))
    # marking twice changes nothing
    before = {s.stem: (proj.executed / f"{s.stem}.ipynb").read_bytes() for s in STEPS}
    build_book(proj, log=quiet)
    assert before == {s.stem: (proj.executed / f"{s.stem}.ipynb").read_bytes() for s in STEPS}
    # the cause fixed: a good run re-runs what is stale, and the book has no mark left
    st = run(proj, sets={"01_cohort.x": 2}, log=quiet)
    assert st == {"01_cohort": "skipped", "02_b": "ran", "03_c": "ran", "04_d": "skipped"}
    build_book(proj, log=quiet)
    assert marked(proj) == [] and not any(cells(proj, s.stem, "run-status") for s in STEPS)
    assert json.loads((proj.results / "run_status.json").read_text())["stale"] == []


@pytest.mark.slow
def test_an_independent_page_with_changed_parameters_is_stale_too(proj, fake_book):
    run(proj, log=quiet)
    with pytest.raises(NotebookFailed):
        run(proj, sets={"02_b.fail": True, "04_d.z": 5}, log=quiet)
    build_book(proj, log=quiet)
    assert marked(proj) == ["02_b", "03_c", "04_d"]


def test_a_killed_run_is_reported_as_interrupted(proj, fake_book):
    """A run that died (kill -9) left status "running" under a dead run id: the book build works
    out its stale pages from its parameters."""
    proj.results.mkdir()
    status = {"run": "1-1", "started": "t", "profile": "default", "sets": {}, "state": "running", "done": []}
    (proj.results / "run_status.json").write_text(json.dumps(status))
    st = runner.read_status(proj)
    assert st["state"] == "interrupted"
    assert st["stale"] == ["01_cohort", "02_b", "03_c", "04_d"]  # nothing was ever run


# ----------------------------------------------------------------------------- the page header


@pytest.mark.slow
def test_every_page_says_which_run_made_it_and_links_its_numbers(proj):
    sets = {"01_cohort.custom.cohort_name": HOSTILE}
    run(proj, sets=sets, log=quiet)
    for stem in ("01_cohort", "02_b", "03_c"):
        (banner,) = cells(proj, stem, "run-kind")
        assert "Run: Your cohort" in banner.source
        assert "onerror" in banner.source and "<img" not in banner.source and "`code`" not in banner.source
    (b01,) = cells(proj, "01_cohort", "run-kind")
    assert "{download}`numbers.json </results/cohort/numbers.json>`" in b01.source
    (b02,) = cells(proj, "02_b", "run-kind")
    assert "numbers.json" not in b02.source, "02_b writes no numbers.json: nothing to link"
    (b04,) = cells(proj, "04_d", "run-kind")
    assert "Any dataset" in b04.source and "does not read the cohort" in b04.source
    ex = nbformat.read(proj.executed / "02_b.ipynb", as_version=4)
    assert [c.metadata.get("tags") for c in ex.cells[1:3]] == [["run-kind"], ["reproduce"]]
    # only the name changes: 01's results are byte-identical, yet the pages that show it re-run
    st = run(proj, sets={"01_cohort.custom.cohort_name": "other"}, log=quiet)
    assert st == {"01_cohort": "ran", "02_b": "ran", "03_c": "ran", "04_d": "skipped"}
    (b03,) = cells(proj, "03_c", "run-kind")
    assert "(other)" in b03.source


def test_hostile_cohort_name_stays_text_in_the_banner():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    from helpers.engine.runkind import banner

    md = create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath", "linkify"}), RendererHTML)
    b = banner("custom", HOSTILE, numbers="{download}`numbers.json </results/cohort/numbers.json>`")
    top = [t for t in md.parse(b) if t.level == 0]
    assert [t.type for t in top] == ["fence"] and top[0].info.startswith("{admonition} Run: Your cohort")
    body = top[0].content.split("\n", 1)[1]
    kinds = {t.type for tok in md.parse(body) for t in ([tok] + list(tok.children or []))}
    # the only markup in the line is the runner's own: the bold "user-supplied cohort" and the link role
    assert not kinds & {"html_inline", "html_block", "link_open", "math_inline", "heading_open"}, kinds
    assert [t.content for tok in md.parse(body) for t in tok.children or [] if t.type == "myst_role"] == [
        "numbers.json </results/cohort/numbers.json>"
    ]
    assert sum(t.type == "code_inline" for tok in md.parse(body) for t in tok.children or []) == 0
    html = md.render(body)
    assert "zqx()" in html and "<img" not in html


def test_reproduce_box_summarises_long_defaults():
    from helpers.engine.config import Params

    params_file = Params(runner.paths.ROOT / "config" / "params.yml")
    step = Step("01_cohort", "cohort", "Cohort")
    uses = ("dataset", "seed", "cr_label", "nr_label")
    default = params_file.effective("01_cohort", "default", {}, uses=uses)
    defaults = {k: v for k, v in default.items() if k != "profile"}
    full = runner._reproduce_cell(step, "default", {}, default).source
    short = runner._reproduce_cell(step, "default", {}, default, defaults).source
    assert short.count("\n") * 3 < full.count("\n"), (short.count("\n"), full.count("\n"))
    body = json.loads(short.split("```json\n")[1].split("\n```")[0])
    assert set(body) == set(default)  # every parameter is named
    assert body["simulate"].startswith("(as in config/params.yml")
    # a value that differs is shown in full, inside a long mapping that is otherwise the default
    changed = json.loads(json.dumps(default))
    changed["simulate"]["cohorts"][0]["n_cr"] = 5
    changed["seed"] = 99
    body = json.loads(
        runner._reproduce_cell(step, "default", {}, changed, defaults).source.split("```json\n")[1].split("\n```")[0]
    )
    assert body["seed"] == 99
    assert body["simulate"]["cohorts"][0]["n_cr"] == 5
    n_same = len(default["simulate"]) - 1
    assert body["simulate"]["..."] == f"(as in config/params.yml: {n_same} more keys)"
    assert set(body["simulate"]) == {"cohorts", "..."}


def test_shown_params_keeps_short_defaults_and_differences():
    sp = runner.shown_params
    long = {f"k{i}": i for i in range(30)}
    assert sp({"a": 1, "b": long}, {"a": 2, "b": long}) == {"a": 1, "b": "(as in config/params.yml: 30 keys)"}
    assert sp(long, {**long, "k3": 0})["k3"] == 3
    assert sp([1] * 50, [1] * 50) == "(as in config/params.yml: 50 items)"
    assert sp([1] * 50, [2] * 50) == [1] * 50
    assert sp({"new": long}, {}) == {"new": long}  # a key params.yml does not have: in full


# ----------------------------------------------------------------------------- the PDF takes the lock


def test_pdf_takes_the_run_lock(proj):
    from helpers.engine.pdf import build_pdf

    (proj.root / "config" / "book.yml").write_text(
        "parts: [{caption: All}]\nroot: book/intro\nchapters:\n"
        + "".join(f"  - {{stem: {s.stem}, results: {s.item}, part: All}}\n" for s in STEPS)
    )
    fd = os.open(proj.root / runner.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the checkout
        with pytest.raises(RunLocked, match="another run is in progress"):
            build_pdf(proj.root, chromium="/bin/true")
        assert not (proj.root / "_build").exists(), "the PDF build started although the lock was held"
    finally:
        os.close(fd)


def test_banner_and_box_sit_right_under_the_title(tmp_path):
    n = nb("x = 1", "x")
    n.cells[0].source = "(label)=\n# Title\n\nThe chapter's first paragraph."
    n.cells[0]["id"] = "ctitle"
    p = tmp_path / "n.ipynb"
    nbformat.write(n, str(p))
    out = runner._postprocess(p, STEPS[1], "default", {}, {"x": 1}, banner="BANNER")
    assert out.cells[0].source == "(label)=\n# Title"
    assert [c.source for c in out.cells[1:2]] == ["BANNER"]
    assert "Reproduce this page" in out.cells[2].source
    assert out.cells[3].source == "The chapter's first paragraph." and out.cells[3]["id"] == "ctitle-body"
    # a title cell with nothing after the title is left whole
    n.cells[0].source = "# Title"
    nbformat.write(n, str(p))
    out = runner._postprocess(p, STEPS[1], "default", {}, {"x": 1}, banner="BANNER")
    assert [c.source for c in out.cells[:2]] == ["# Title", "BANNER"]


def test_numbers_link_is_a_download_inside_the_project_and_text_outside(tmp_path):
    inside = Project(root=tmp_path, results=tmp_path / "results", executed=tmp_path / "executed", steps=STEPS)
    assert runner.numbers_link(inside, STEPS[0]) == "{download}`numbers.json </results/cohort/numbers.json>`"
    outside = Project(root=tmp_path, results=tmp_path.parent / "elsewhere", executed=tmp_path, steps=STEPS)
    link = runner.numbers_link(outside, STEPS[0])
    assert "{download}" not in link and link.startswith("`") and link.endswith("elsewhere/cohort/numbers.json`")


MINI_CONFIG = """title: mini
only_build_toc_files: true
exclude_patterns: ["results/*", "notebooks/*", "config/*", "data/*", "_build/*"]
execute:
  execute_notebooks: "off"
parse:
  myst_enable_extensions: [colon_fence, dollarmath]
"""


@pytest.mark.slow
def test_the_real_book_build_shows_the_marks(proj):
    """jupyter-book itself (warnings are errors): the marks, the summary's links to the stale
    pages and the banner's numbers.json download build cleanly and land on the right pages."""
    (proj.root / "_config.yml").write_text(MINI_CONFIG)
    (proj.root / "intro.md").write_text("# Mini\n\nA miniature book.\n")
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: executed/{s.stem}\n" for s in STEPS)
    (proj.root / "_toc.yml").write_text(toc)
    (proj.root / "book" / "_static").mkdir(parents=True)
    run(proj, log=quiet)
    with pytest.raises(NotebookFailed):
        run(proj, sets={"01_cohort.x": 2, "02_b.fail": True}, log=quiet)
    html = build_book(proj, log=quiet) / "executed"

    def page(stem):
        return (html / f"{stem}.html").read_text()

    assert "run-status-stale" in page("02_b") and "run-status-stale" in page("03_c")
    assert "run-status" not in page("01_cohort")
    assert "run-status-summary" in page("04_d") and "run-status-stale" not in page("04_d")
    assert 'href="02_b.html"' in page("04_d") and 'href="03_c.html"' in page("04_d")
    assert "run-kind-custom" in page("02_b") and "run-kind-any" in page("04_d")
    assert 'class="reference download internal"' in page("01_cohort")  # numbers.json, served by the book
    run(proj, sets={"01_cohort.x": 2}, log=quiet)
    html = build_book(proj, log=quiet) / "executed"
    assert not any("run-status" in page(s.stem) for s in STEPS)
