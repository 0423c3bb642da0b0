"""The runner on a miniature project: incremental runs, dependents, failures, book safety."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.engine.errors import InputError
from helpers.engine.registry import Step
from helpers.engine.runner import NotebookFailed, Project, run

ROOT = Path(__file__).resolve().parents[1]

STEPS = (Step("01_a", "a", "A"), Step("02_b", "b", "B", ("01_a",)), Step("03_c", "c", "C"))

PARAMS = """
global:
  seed: 1
  cr_label: CR   # the parameter rules (helpers.engine.config.RULES) compare the two labels
  nr_label: NR
notebooks:
  01_a: {x: 1}
  02_b: {k: 10}
  03_c: {y: 1, fail: false, nap: 0}
"""


# The miniature project's own parameter schema (config/params.schema.yml beside its params.yml)
SCHEMA = """
$schema: "https://json-schema.org/draft/2020-12/schema"
type: object
additionalProperties: false
required: [global, notebooks]
properties:
  global: {$ref: "#/$defs/global"}
  notebooks:
    type: object
    additionalProperties: false
    required: [01_a, 02_b, 03_c]
    properties:
      01_a: {$ref: "#/$defs/01_a"}
      02_b: {$ref: "#/$defs/02_b"}
      03_c: {$ref: "#/$defs/03_c"}
  profiles:
    type: object
    additionalProperties: {$ref: "#/$defs/override"}
$defs:
  global:
    type: object
    additionalProperties: false
    required: [seed, cr_label, nr_label]
    properties: {seed: {type: integer}, cr_label: {type: string}, nr_label: {type: string}}
  01_a:
    type: object
    additionalProperties: false
    required: [x]
    properties: {x: {type: integer}}
  02_b:
    type: object
    additionalProperties: false
    required: [k]
    properties: {k: {type: integer}}
  03_c:
    type: object
    additionalProperties: false
    required: [y, fail, nap]
    properties: {y: {type: integer}, fail: {type: boolean}, nap: {type: number}}
  override:
    type: object
    additionalProperties: false
    properties:
      global: {type: object}
      notebooks: {type: object}
"""


def write_md(n, path):
    """Write a notebook as the MyST text notebook the runner reads."""
    import jupytext

    path = Path(str(path).replace(".ipynb", ".md"))
    jupytext.write(n, path, fmt="md:myst")


def nb(params_src, body):
    n = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params_src)
    p.metadata["tags"] = ["parameters"]
    n.cells = [nbformat.v4.new_markdown_cell("# Title"), p, nbformat.v4.new_code_cell(body)]
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return n


def make_project(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "params.yml").write_text(PARAMS)
    (tmp_path / "config" / "params.schema.yml").write_text(SCHEMA)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "data").mkdir()
    w = "from helpers.engine.paths import results_dir, results_of\n"
    write_md(
        nb("seed = 1\nx = 1\nprofile = 'default'", w + "(results_dir('a') / 'out.tsv').write_text(str(x))"),
        tmp_path / "notebooks" / "01_a.ipynb",
    )
    write_md(
        nb(
            "seed = 1\nk = 10\nprofile = 'default'",
            w
            + "v = int((results_of('a') / 'out.tsv').read_text())\n(results_dir('b') / 'out.tsv').write_text(str(v * k))",
        ),
        tmp_path / "notebooks" / "02_b.ipynb",
    )
    write_md(
        nb(
            "seed = 1\ny = 1\nfail = False\nnap = 0\nprofile = 'default'",
            w + "import time\n(results_dir('c') / 'out.tsv').write_text(str(y))\ntime.sleep(nap)\n"
            "if fail:\n    raise ValueError('boom at y=%d' % y)",
        ),
        tmp_path / "notebooks" / "03_c.ipynb",
    )
    return Project(root=tmp_path, results=tmp_path / "results", executed=tmp_path / "executed", steps=STEPS)


def freeze_code(monkeypatch):
    """Pin the helper-code part of the fingerprint (``HELPERS_TEST_CODE_HASH``, a test hook that
    child processes inherit): several people edit src/ while tests run, and an edit in the middle
    of a test would re-run chapters the test expects to be skipped (test_fingerprint.py checks
    that the code and data/ are in the fingerprint)."""
    monkeypatch.setenv("HELPERS_TEST_CODE_HASH", "helpers-code-as-of-this-test")


@pytest.fixture
def proj(tmp_path, monkeypatch):
    freeze_code(monkeypatch)
    p = make_project(tmp_path)
    monkeypatch.setenv("HELPERS_ROOT", str(tmp_path))
    monkeypatch.setenv("HELPERS_RESULTS", str(tmp_path / "results"))
    return p


def quiet(*a, **k):
    pass


@pytest.mark.slow
def test_incremental_and_dependents(proj):
    assert run(proj, log=quiet) == {"01_a": "ran", "02_b": "ran", "03_c": "ran"}
    assert (proj.results / "b" / "out.tsv").read_text() == "10"
    # nothing changed: nothing executes
    assert run(proj, log=quiet) == {"01_a": "skipped", "02_b": "skipped", "03_c": "skipped"}
    # one parameter of 01_a: 01_a and its dependent 02_b run, 03_c does not
    assert run(proj, sets={"01_a.x": 2}, log=quiet) == {"01_a": "ran", "02_b": "ran", "03_c": "skipped"}
    assert (proj.results / "b" / "out.tsv").read_text() == "20"
    # a parameter of 02_b only: 01_a untouched
    assert run(proj, sets={"01_a.x": 2, "02_b.k": 3}, log=quiet) == {
        "01_a": "skipped",
        "02_b": "ran",
        "03_c": "skipped",
    }
    # editing a notebook's source re-executes it
    p = proj.notebooks / "03_c.md"
    p.write_text(p.read_text() + "\n+++\n\nmore text\n")
    assert run(proj, sets={"01_a.x": 2, "02_b.k": 3}, log=quiet)["03_c"] == "ran"
    # --only forces that notebook and what reads it
    assert run(proj, sets={"01_a.x": 2, "02_b.k": 3}, only=["01"], log=quiet) == {"01_a": "ran", "02_b": "skipped"}
    # a global that a chapter does not declare does not re-run it
    scoped = tuple(Step(s.stem, s.item, s.title, s.reads, globals=("seed",) if s.stem == "01_a" else ()) for s in STEPS)
    sproj = Project(root=proj.root, results=proj.results, executed=proj.executed, steps=scoped)
    run(sproj, sets={"01_a.x": 2, "02_b.k": 3}, log=quiet)
    assert run(sproj, sets={"01_a.x": 2, "02_b.k": 3, "seed": 5}, log=quiet) == {
        "01_a": "ran",
        "02_b": "skipped",
        "03_c": "skipped",
    }  # 01_a's results came out byte-identical
    # executed copies: parameters cells hidden, a reproduce box, no timing metadata
    ex = nbformat.read(proj.executed / "02_b.ipynb", as_version=4)
    assert any("Reproduce this page" in c.source for c in ex.cells)
    assert all(
        "remove-cell" in c.metadata["tags"]
        for c in ex.cells
        if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))
    )
    log = json.loads((proj.results / "run_log.json").read_text())
    assert set(log["seconds"]) == {"01_a", "02_b", "03_c"}


@pytest.mark.slow
def test_failure_names_cell_and_keeps_last_good(proj):
    run(proj, log=quiet)
    good = (proj.results / "c" / "out.tsv").read_text()
    good_nb = (proj.executed / "03_c.ipynb").read_bytes()
    with pytest.raises(NotebookFailed) as e:
        run(proj, sets={"03_c.fail": True, "03_c.y": 5}, log=quiet)
    msg = str(e.value)
    assert "03_c" in msg and "cell" in msg and "ValueError: boom at y=5" in msg, msg
    assert "\n" not in msg, msg
    # last good results and executed notebook untouched; the failed copy kept for inspection
    assert (proj.results / "c" / "out.tsv").read_text() == good, "last good results were overwritten"
    assert (proj.executed / "03_c.ipynb").read_bytes() == good_nb, "last good executed notebook changed"
    assert (proj.root / "_build" / "failed" / "03_c.ipynb").exists(), "failed notebook not kept"
    assert not any(p.name.startswith(".staging") for p in proj.results.iterdir()), list(proj.results.iterdir())
    # and the next good run completes
    assert run(proj, log=quiet)["03_c"] == "skipped"


@pytest.mark.slow
def test_parallel_run_respects_dependencies_and_failures(proj):
    lines = []
    st = run(proj, jobs=2, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert st == {"01_a": "ran", "02_b": "ran", "03_c": "ran"}
    assert (proj.results / "b" / "out.tsv").read_text() == "10"  # 02_b saw 01_a's result
    assert sorted(l.split()[1] for l in lines) == ["01_a", "02_b", "03_c"]
    with pytest.raises(NotebookFailed, match="03_c: cell"):  # 03_c fails after a nap, beside 01_a -> 02_b
        run(proj, sets={"03_c.fail": True, "03_c.nap": 8, "01_a.x": 3}, jobs=2, log=quiet)
    # the notebooks running beside the failure finished and were recorded
    assert (proj.results / "a" / "out.tsv").read_text() == "3"
    assert (proj.results / "b" / "out.tsv").read_text() == "30"
    assert (proj.results / "c" / "out.tsv").read_text() == "1"
    assert run(proj, sets={"01_a.x": 3}, jobs=2, log=quiet) == {"01_a": "skipped", "02_b": "skipped", "03_c": "skipped"}


def test_unknown_notebook_selection(proj):
    with pytest.raises(InputError, match="no notebook matches '07'"):
        run(proj, only=["07"], log=quiet)


def test_bad_set_stops_before_running(proj):
    with pytest.raises(InputError, match="01_a.x: must be an integer"):
        run(proj, sets={"01_a.x": "big"}, log=quiet)
    assert not (proj.results / "a").exists()


@pytest.mark.slow
def test_cli_exit_codes(tmp_path):
    """The real project's CLI: a bad --set exits 2 with a one-line error naming the key."""
    env = dict(os.environ, HELPERS_ROOT=str(ROOT), HELPERS_RESULTS=str(tmp_path / "r"))
    p = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--set", "no_such_key=1"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and "no_such_key" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from helpers.engine.runner import run, Project
from test_runner import STEPS
proj = Project(root=Path({root!r}), results=Path({root!r}) / "results", executed=Path({root!r}) / "executed", steps=STEPS)
run(proj, sets={{"03_c.y": 9, "03_c.nap": 60}})
"""


@pytest.mark.slow
def test_killed_run_leaves_last_good_results(proj):
    """Crash safety: kill the runner (and its kernel) in the middle of a notebook."""
    import signal
    import time

    run(proj, log=quiet)
    good = (proj.results / "c" / "out.tsv").read_text()
    good_nb = (proj.executed / "03_c.ipynb").read_bytes()
    code = DRIVER.format(tests=str(Path(__file__).parent), root=str(proj.root))
    env = dict(os.environ, HELPERS_ROOT=str(proj.root), HELPERS_RESULTS=str(proj.results))
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def staged():
        return list(proj.results.glob(".staging-c.*/out.tsv"))

    deadline = time.time() + 120
    while not staged() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    assert staged(), "the notebook never started writing"
    os.killpg(p.pid, signal.SIGKILL)  # the runner and the kernel it started
    p.wait()
    # the half-written result never replaced the good one
    assert (proj.results / "c" / "out.tsv").read_text() == good
    assert (proj.executed / "03_c.ipynb").read_bytes() == good_nb
    # the next run completes (and cleans the leftover staging folder)
    assert run(proj, sets={"03_c.y": 9}, log=quiet)["03_c"] == "ran"
    assert (proj.results / "c" / "out.tsv").read_text() == "9"
    assert not list(proj.results.glob(".staging-*")), "the killed run's staging folder was left behind"


@pytest.mark.slow
def test_kernel_that_dies_at_start_is_retried(proj, monkeypatch):
    """Two kernels starting at once can race for a TCP port; the runner starts such a kernel again."""
    import papermill as pm

    real = pm.execute_notebook
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*a, **k)

    monkeypatch.setattr(pm, "execute_notebook", flaky)
    assert run(proj, only=["01"], log=quiet)["01_a"] == "ran"
    assert len(calls) >= 2

    def broken(*a, **k):
        raise RuntimeError("something else")

    monkeypatch.setattr(pm, "execute_notebook", broken)
    with pytest.raises(RuntimeError, match="something else"):
        run(proj, only=["01"], log=quiet)


def test_cell_ids_are_stable_under_insertion(tmp_path):
    """Inserting a cell leaves the ids of every other cell unchanged (ids are not positional)."""
    from helpers.engine.runner import read_notebook

    src = tmp_path / "n.md"
    cells = ["# Title", "```{code-cell}\nx = 1\n```", "Some text.", "```{code-cell}\ny = 2\n```"]
    src.write_text("\n\n+++\n\n".join(cells) + "\n")
    before = [c["id"] for c in read_notebook(src).cells]
    src.write_text("\n\n+++\n\n".join(cells[:2] + ["```{code-cell}\nz = 3\n```"] + cells[2:]) + "\n")
    after = [c["id"] for c in read_notebook(src).cells]
    assert len(after) == len(before) + 1
    assert [i for i in after if i in before] == before
    assert len(set(after)) == len(after)


def test_executed_copy_drops_what_differs_run_to_run(tmp_path):
    """Papermill's random id for its injected cell and memory addresses in object reprs would make
    two runs' executed notebooks differ; the runner's post-processing removes both."""
    from helpers.engine.runner import _postprocess

    def executed(cell_id, address):
        n = nb("x = 1", "show(t)")
        inj = nbformat.v4.new_code_cell("x = 2")
        inj.metadata["tags"] = ["injected-parameters"]
        inj["id"] = cell_id
        n.cells.insert(2, inj)
        for i, c in enumerate(n.cells):  # the runner gives source cells stable ids (read_notebook)
            if c is not inj:
                c["id"] = f"c{i}"
        n.cells[-1].outputs = [
            nbformat.v4.new_output(
                "execute_result",
                data={"text/plain": f"<pandas.io.formats.style.Styler at {address}>", "text/html": "<table></table>"},
                execution_count=1,
            )
        ]
        p = tmp_path / f"{cell_id}.ipynb"
        nbformat.write(n, str(p))
        return nbformat.writes(_postprocess(p, STEPS[0], "default", {}, {"x": 2}))

    a, b = executed("ac8a1b5b", "0x7f474111f050"), executed("af193508", "0x7f2ab90fe7d0")
    assert a == b
    assert "0x7f" not in a and "<pandas.io.formats.style.Styler>" in a


def test_critical_path_order_starts_the_longest_path_first():
    from helpers.engine.registry import Step
    from helpers.engine.runner import critical_path_order

    a = Step("01_a", "a", "a", seconds=5)
    b = Step("02_b", "b", "b", reads=("01_a",), seconds=5)
    c = Step("03_c", "c", "c", reads=("02_b",), seconds=5)
    long = Step("04_long", "long", "long", seconds=30)  # reads nothing, nothing reads it
    todo = [a, b, c, long]
    reads = {s.stem: s.reads for s in todo}
    assert [s.stem for s in critical_path_order(todo, reads, {})] == ["04_long", "01_a", "02_b", "03_c"]
    # a last run's seconds replace the hint: the chain is now the longer path
    stamps = {"01_a": {"seconds": 20.0}, "02_b": {"seconds": 20.0}}
    assert [s.stem for s in critical_path_order(todo, reads, stamps)] == ["01_a", "04_long", "02_b", "03_c"]
    # equal paths keep the registry order
    flat = [Step("01_x", "x", "x"), Step("02_y", "y", "y")]
    assert [s.stem for s in critical_path_order(flat, {}, {})] == ["01_x", "02_y"]


def test_registry_seconds_hint_is_checked(tmp_path):
    from helpers.engine import registry

    p = tmp_path / "book.yml"
    p.write_text("chapters:\n  - stem: 01_a\n    seconds: -3\n")
    with pytest.raises(InputError, match="'seconds' must be a number"):
        registry.load(p)
    p.write_text("chapters:\n  - stem: 01_a\n    seconds: 12\n")
    assert registry.load(p)["steps"][0].seconds == 12.0
