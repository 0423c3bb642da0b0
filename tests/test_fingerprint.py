"""What a chapter reads is in its fingerprint, by content, and in the run order: files and folders
its parameters name (anywhere on disk), and other chapters' results its parameters name."""

import json
import os
from pathlib import Path

import pytest
from mini_project import make_mini_project
from test_runner import quiet

from helpers.engine import runner
from helpers.engine.errors import InputError
from helpers.engine.registry import Step
from helpers.engine.runner import Project, param_reads, run, run_order

REAL_STATIC = runner._static_hash

STEPS = (
    Step("01_a", "a", "A"),
    Step("02_b", "b", "B", ("01_a",)),
    Step("03_c", "c", "C"),
    Step("04_m", "m", "M"),
    Step("05_p", "p", "P"),
)

PARAMS = """
global:
  seed: 1
  cr_label: CR
  nr_label: NR
notebooks:
  01_a: {x: 1, sheet: none}
  02_b: {k: 10}
  03_c: {extra: none}
  04_m: {v: 1, nap: 0, extra: none}
  05_p: {model_name: published}
"""

W = "from pathlib import Path\nfrom helpers.engine.paths import results_dir, results_of\n"
SOURCES = {
    # 01_a copies the sheet it is given (a file, or a folder's file names and contents) into its result
    "01_a": (
        "seed = 1\nx = 1\nsheet = 'none'\nprofile = 'default'",
        W + "p = Path(sheet)\n"
        "text = '' if sheet == 'none' else (''.join(f.name + f.read_text() for f in sorted(p.iterdir())) "
        "if p.is_dir() else p.read_text())\n"
        "(results_dir('a') / 'out.tsv').write_text(str(x) + text)",
    ),
    "02_b": (
        "seed = 1\nk = 10\nprofile = 'default'",
        W + "(results_dir('b') / 'out.tsv').write_text((results_of('a') / 'out.tsv').read_text() * 2)",
    ),
    "03_c": ("seed = 1\nextra = 'none'\nprofile = 'default'", W + "(results_dir('c') / 'out.tsv').write_text('c')"),
    "04_m": (
        "seed = 1\nv = 1\nnap = 0\nextra = 'none'\nprofile = 'default'",
        W + "import time\ntime.sleep(nap)\n(results_dir('m') / 'model.txt').write_text(str(v))",
    ),
    # 05_p reads the model its parameter names (as chapter 09 reads results/pam/pam_model.json)
    "05_p": (
        "seed = 1\nmodel_name = 'published'\nprofile = 'default'",
        W + "m = 'paper' if model_name == 'published' else Path(model_name).read_text()\n"
        "(results_dir('p') / 'out.tsv').write_text(m)",
    ),
}


@pytest.fixture
def proj(tmp_path, monkeypatch):
    return make_mini_project(tmp_path / "project", PARAMS, SOURCES, STEPS, monkeypatch)


def ran(status):
    return sorted(k for k, v in status.items() if v == "ran")


@pytest.mark.slow
def test_a_sample_sheet_outside_the_project_is_fingerprinted_by_content(proj, tmp_path):
    outside = tmp_path / "elsewhere"  # not under the project folder
    outside.mkdir()
    sheet = outside / "samples.tsv"
    sheet.write_text("s1\tCR\ns2\tNR\n")
    sets = {"01_a.sheet": str(sheet)}
    assert ran(run(proj, sets=sets, log=quiet)) == ["01_a", "02_b", "03_c", "04_m", "05_p"]
    # the same bytes with a new modification time, and a file beside it that no parameter names: nothing runs
    st = sheet.stat()
    os.utime(sheet, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    (outside / "notes.txt").write_text("not read by any chapter")
    assert ran(run(proj, sets=sets, log=quiet)) == []
    # new bytes (a sample relabelled): exactly 01_a and the chapter that reads its results
    sheet.write_text("s1\tCR\ns2\tCR\n")
    assert ran(run(proj, sets=sets, log=quiet)) == ["01_a", "02_b"]
    assert (proj.results / "b" / "out.tsv").read_text().count("s2\tCR") == 2


@pytest.mark.slow
def test_a_folder_by_its_tree_and_a_missing_path_by_a_marker(proj, tmp_path):
    htseq = tmp_path / "htseq"
    htseq.mkdir()
    (htseq / "S1.counts").write_text("G1\t5\n")
    later = tmp_path / "later.gmt"  # named before it exists
    sets = {"01_a.sheet": str(htseq), "03_c.extra": str(later)}
    run(proj, sets=sets, log=quiet)
    assert ran(run(proj, sets=sets, log=quiet)) == []
    (htseq / "S2.counts").write_text("G1\t7\n")  # a sample added to the folder
    assert ran(run(proj, sets=sets, log=quiet)) == ["01_a", "02_b"]
    (htseq / "S2.counts").write_text("G1\t8\n")  # a file of the folder edited
    assert ran(run(proj, sets=sets, log=quiet)) == ["01_a", "02_b"]
    later.write_text("SET\tdesc\tG1\n")  # the missing path appears
    assert ran(run(proj, sets=sets, log=quiet)) == ["03_c"]


def test_named_paths_finds_nested_strings_relative_and_absolute(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.tsv").write_text("x")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-out.tsv"
    elsewhere.write_text("y")
    try:
        params = {
            "custom": {"table": "data/x.tsv", "sheet": str(elsewhere), "labels": {"CR": "CR"}},
            "collections": ["go_bp", "gmt/none.gmt"],
            "dataset": "custom",
            "name": "my arrays",
        }
        found = {k: (p, e) for k, p, e in runner.named_paths(tmp_path, params)}
        assert set(found) == {"custom.table", "custom.sheet", "collections[1]"}
        assert found["custom.table"] == (tmp_path / "data" / "x.tsv", True)
        assert found["custom.sheet"] == (elsewhere, True)
        assert found["collections[1]"][1] is False  # path-like, names nothing yet: the "missing" marker
    finally:
        elsewhere.unlink()


def test_code_and_data_are_in_the_fingerprint(proj, monkeypatch):
    params = {"x": 1}
    step = STEPS[0]
    pinned = REAL_STATIC(proj)
    monkeypatch.delenv("HELPERS_TEST_CODE_HASH")
    assert REAL_STATIC(proj) != pinned  # without the test hook the package's source is hashed
    a = runner.fingerprint(proj, step, params, static=REAL_STATIC(proj))
    (proj.root / "data" / "annotation.tsv").write_text("HGNC:1\tA1BG\n")
    b = runner.fingerprint(proj, step, params, static=REAL_STATIC(proj))
    assert a != b
    assert runner.fingerprint(proj, step, params, static="code v1") != runner.fingerprint(
        proj, step, params, static="code v2"
    )
    assert runner.fingerprint(proj, step, params, extra="twin") != runner.fingerprint(proj, step, params, extra="")


# ----------------------------------------------------------------------------- other chapters' results


def test_a_parameter_into_results_is_a_dependency(proj, tmp_path):
    assert param_reads(proj, STEPS[4], {"model_name": "results/m/model.txt"}) == {"04_m": "model_name"}
    assert param_reads(proj, STEPS[4], {"model_name": str(proj.results / "m" / "model.txt")}) == {"04_m": "model_name"}
    assert param_reads(proj, STEPS[4], {"model_name": "published"}) == {}
    assert param_reads(proj, STEPS[4], {"model_name": "results/run_log.json"}) == {}  # no chapter's folder
    # results redirected outside the project ($HELPERS_RESULTS): a path into it, and still results/<item>
    moved = Project(root=proj.root, results=tmp_path / "r", executed=proj.executed, steps=STEPS)
    assert param_reads(moved, STEPS[4], {"m": {"n": [str(tmp_path / "r" / "m" / "model.txt")]}}) == {"04_m": "m.n[0]"}
    assert param_reads(moved, STEPS[4], {"m": "results/m/model.txt"}) == {"04_m": "m"}


def test_parameter_dependencies_order_and_select():
    reads = {"04_m": (), "05_p": ("04_m",), "01_a": ("05_p",)}
    steps = [Step("01_a", "a", "A"), Step("04_m", "m", "M"), Step("05_p", "p", "P")]
    assert [s.stem for s in run_order(steps, reads)] == ["04_m", "05_p", "01_a"]
    todo, forced = runner._select(steps, ["04"], reads)
    assert {s.stem for s in todo} == {"04_m", "05_p", "01_a"} and forced == {"04_m"}
    todo, _ = runner._select(steps, ["01"], reads)  # upstream through the parameter edge
    assert {s.stem for s in todo} == {"04_m", "05_p", "01_a"}
    # without the parameter edge 05_p is alone
    assert {s.stem for s in runner._select(steps, ["04"], {"04_m": (), "05_p": (), "01_a": ()})[0]} == {"04_m"}


def test_a_cycle_is_a_one_line_error(proj):
    sets = {"04_m.extra": "results/p/out.tsv", "05_p.model_name": "results/m/model.txt"}
    with pytest.raises(InputError) as e:
        run(proj, sets=sets, log=quiet)
    msg = str(e.value)
    assert "cycle" in msg and "04_m" in msg and "05_p" in msg and "05_p.model_name" in msg and "\n" not in msg, msg
    assert not (proj.results / "m").exists(), "nothing may run before the cycle is reported"


@pytest.mark.slow
def test_a_model_named_by_a_parameter_runs_after_its_chapter_and_follows_it(proj):
    sets = {"05_p.model_name": "results/m/model.txt", "04_m.nap": 4}
    # with two workers 05_p would start beside 04_m and find no model; it must wait
    st = run(proj, sets=sets, jobs=2, log=quiet)
    assert st["04_m"] == st["05_p"] == "ran"
    assert (proj.results / "p" / "out.tsv").read_text() == "1"
    # 04_m's results change: 05_p re-runs and reads the new model
    assert ran(run(proj, sets={**sets, "04_m.v": 2}, jobs=2, log=quiet)) == ["04_m", "05_p"]
    assert (proj.results / "p" / "out.tsv").read_text() == "2"
    # the published model (no parameter into results/): 05_p does not follow 04_m
    run(proj, sets={"04_m.v": 2}, log=quiet)
    assert ran(run(proj, sets={"04_m.v": 3}, log=quiet)) == ["04_m"]
    assert json.loads((proj.results / "p" / ".stamp.json").read_text())["params"]["model_name"] == "published"


def test_the_real_registry_orders_09_after_08_for_a_pam_model():
    root = Path(__file__).resolve().parents[1]
    from helpers.engine.config import Params

    project = Project(root=root, results=root / "results", executed=root / "executed")
    plan = runner.make_plan(
        project, Params(project.config), "test", {"09_published_model.model_name": "results/pam/pam_model.json"}
    )
    assert "08_pam" in plan.reads["09_published_model"]
    stems = [s.stem for s in plan.order]
    assert stems.index("08_pam") < stems.index("09_published_model")
    default = runner.make_plan(project, Params(project.config), "test", {})
    assert "08_pam" not in default.reads["09_published_model"]


@pytest.mark.slow
def test_a_sample_sheet_under_data_raw_reruns_only_the_cohort_chapter_and_its_readers(proj):
    """data/raw/ (where the README puts a user's files) is read by the chapter that declares it
    in ``files`` only: a sheet there re-runs 01 and its readers when its bytes change, nothing else."""
    steps = (Step("01_a", "a", "A", files=("data/raw",)), *STEPS[1:])
    p = Project(root=proj.root, results=proj.results, executed=proj.executed, steps=steps)
    raw = proj.root / "data" / "raw" / "mystudy"
    raw.mkdir(parents=True)
    sheet = raw / "samples.tsv"
    sheet.write_text("s1\tCR\n")
    sets = {"01_a.sheet": "data/raw/mystudy/samples.tsv"}
    run(p, sets=sets, log=quiet)
    st = sheet.stat()
    os.utime(sheet, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    assert ran(run(p, sets=sets, log=quiet)) == []
    sheet.write_text("s1\tNR\n")
    assert ran(run(p, sets=sets, log=quiet)) == ["01_a", "02_b"]
    # another download beside it: the chapter that declares data/raw looks again; its results are
    # unchanged, so no reader re-runs
    (raw / "counts.tsv").write_text("gene\ts1\n")
    assert ran(run(p, sets=sets, log=quiet)) == ["01_a"]
