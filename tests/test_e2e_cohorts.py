"""Real-format cohorts build the whole book (issue 16): every chapter on the `test` profile and the
HTML book, in one private copy of the project, one cohort after another.

- (a) ``geo``: ``dataset: real`` on a GEO-style count matrix (sample titles as columns, Ensembl IDs
  with version suffixes) with its series matrix, plus PRJCA000750 as the workflow's merged counts;
- (b) ``htseq``: ``dataset: custom`` with a folder of HTSeq-count files as the table;
- (c) ``array``: a log2 array table (``kind: logexpr``) that lacks 7 of the 14 signature genes and
  names three of the rest by previous symbols; it is run with the README's own commands, taken
  from README.md ("Run on your own data"), through ``make``: first ``make book PARAMS=my.yml``,
  then the ``SET=...`` form, which must give the same parameters (nothing re-runs);
- (d) ``null``: a count cohort whose labels carry no signal (no classifier beats the null).

The fixtures are in tests/data/formats/ (README there; made by scripts/make_format_fixtures.py
and scripts/make_e2e_fixtures.py). Chapters 00, 12 and 13 do not read the cohort, so the runner
executes them once, for the first cohort, and skips them afterwards. The ``make`` commands get
``READY= JOBS=1 PROFILE=test`` appended: no set-up of the virtual environment (the test's own is
linked into the copy), one chapter at a time, and the small profile.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_project, project_env

from helpers.data import cohort as C
from helpers.engine.config import Params, parse_set
from helpers.engine.registry import steps as registry_steps

sys.path.insert(0, str(ROOT / "scripts"))  # make_e2e_fixtures.FILES

FMT = "tests/data/formats"
STEMS = [s.stem for s in registry_steps()]
MAKE_EXTRA = "READY= JOBS=1 PROFILE=test"


# ----------------------------------------------------------------------------- fast checks


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Run on your own data\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Run on your own data' section"
    return m.group(1)


def readme_commands() -> tuple[dict, list[str]]:
    """The parameters file and the ``make book`` command lines of the README's section."""
    sec = readme_section()
    blocks = re.findall(r"```(\w+)\n(.*?)```", sec, re.S)
    files = [yaml.safe_load(b) for lang, b in blocks if lang == "yaml"]
    cmds = [ln.strip() for lang, b in blocks if lang == "bash" for ln in b.splitlines() if ln.startswith("make ")]
    assert len(files) == 1, "one parameters file in the section"
    return files[0], cmds


def test_readme_section_has_the_two_make_forms():
    params, cmds = readme_commands()
    assert params["global"]["dataset"] == "custom"
    assert [c.split()[1] for c in cmds] == ["book", "book"]
    assert "PARAMS=my.yml" in cmds[0]
    assert cmds[1].startswith("make book SET='") and "01_cohort.custom.table=" in cmds[1]


def test_readme_set_form_passes_through_make_as_the_params_file():
    """``make -n`` shows the runner command make would run; its --set values, parsed as the runner
    parses them, give chapter 01 the same parameters as the README's file."""
    params, cmds = readme_commands()
    P = Params(ROOT / "config" / "params.yml")
    from_file = P.effective("01_cohort", "default", P.read_overrides(_write_yaml(params), "default"))
    argv = _make_n(cmds[1])
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    from_set = P.effective("01_cohort", "default", parse_set(sets))
    assert from_set == from_file
    assert from_set["custom"]["kind"] == params["notebooks"]["01_cohort"]["custom"]["kind"]


def test_a_mapping_in_set_does_not_survive_make():
    """What the README says: make splits SET on spaces, so the mapping form falls apart."""
    argv = _make_n("make book SET='01_cohort.custom={table: a.tsv, kind: logexpr}'")
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets != ["01_cohort.custom={table: a.tsv, kind: logexpr}"] and len(sets) > 1


def test_cohort_defaults_are_read_from_params_yml(tmp_path, monkeypatch):
    """DEFAULT_BUILD is params.yml's (global + chapter 01), not a copy: change the file, and the
    defaults change; gse_htseq_dir is a declared parameter."""
    P = Params(ROOT / "config" / "params.yml")
    eff = P.effective("01_cohort", "default", {})
    d = C.DEFAULT_BUILD
    assert d["real"] == eff["real"] and d["custom"] == eff["custom"]
    assert (d["dataset"], d["seed"], d["labels"]) == (eff["dataset"], eff["seed"], [eff["cr_label"], eff["nr_label"]])
    assert (d["id_type"], d["update_symbols"]) == (eff["id_type"], eff["update_symbols"])
    assert "gse_htseq_dir" in eff["real"]
    text = (ROOT / "config" / "params.yml").read_text()
    changed = text.replace("      gse_htseq_dir: GSE153670/htseq", "      gse_htseq_dir: GSE153670/RAW", 1)
    assert changed != text
    (tmp_path / "params.yml").write_text(changed)
    monkeypatch.setattr("helpers.engine.paths.CONFIG", tmp_path / "params.yml")
    assert C._config_defaults()["real"]["gse_htseq_dir"] == "GSE153670/RAW"


def test_an_htseq_folder_is_a_custom_table():
    coh = C.build_cohort(
        {
            "dataset": "custom",
            "custom": {
                "table": str(ROOT / FMT / "htseq_cohort"),
                "sample_sheet": str(ROOT / FMT / "htseq_cohort_samples.tsv"),
            },
        }
    )
    assert coh.counts.shape == (1200, 16) and coh.meta["checks"]["n_per_class"] == {"CR": 10, "NR": 6}
    assert set(coh.meta["htseq_summary"]["S01"]) >= {"__no_feature", "__ambiguous", "assigned_to_genes"}
    assert "KASH5" in coh.counts.index  # CCDC155's Ensembl ID, mapped to today's symbol


def test_an_htseq_folder_as_logexpr_is_refused_in_one_line():
    from helpers.engine.errors import InputError

    with pytest.raises(InputError, match="set custom.kind to counts") as info:
        C.build_cohort(
            {
                "dataset": "custom",
                "custom": {
                    "table": str(ROOT / FMT / "htseq_cohort"),
                    "sample_sheet": str(ROOT / FMT / "htseq_cohort_samples.tsv"),
                    "kind": "logexpr",
                },
            }
        )
    assert "\n" not in str(info.value) and "htseq_cohort" in str(info.value)


def test_e2e_fixtures_are_small():
    from make_e2e_fixtures import FILES  # noqa: PLC0415

    assert sum((ROOT / FMT / f).stat().st_size for f in FILES) < 300_000


@pytest.mark.slow
def test_e2e_fixtures_regenerate_identically(tmp_path):
    from make_e2e_fixtures import FILES  # noqa: PLC0415

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_e2e_fixtures.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for f in FILES:
        assert filecmp.cmp(tmp_path / f, ROOT / FMT / f, shallow=False), f


# ----------------------------------------------------------------------------- helpers


def _write_yaml(doc, path: Path | None = None) -> Path:
    import tempfile

    path = path or Path(tempfile.mkdtemp()) / "my.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _make_n(cmd: str) -> list[str]:
    """The runner's argv as make would run it: ``make -n`` of ``cmd`` with the project's Makefile
    (through bash, so the README's quoting is the shell's; in an empty folder, so nothing of the
    checkout is touched), split as the shell splits the recipe line."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run(
            ["bash", "-c", f"{cmd} -n -f {shlex.quote(str(ROOT / 'Makefile'))} {MAKE_EXTRA}"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert p.returncode == 0, p.stderr
    line = [ln for ln in p.stdout.splitlines() if " -m helpers run " in ln][-1]
    return shlex.split(line)


def _snapshot(dest: Path, proc, name: str) -> dict:
    """What a reader and the closing note need from a finished build, read before the next
    cohort replaces it."""
    html = dest / "_build" / "html"
    pages = {s: (html / "executed" / f"{s}.html") for s in STEMS}
    glue = sorted(str(p.relative_to(html)) for p in html.rglob("*.html") if "{glue" in p.read_text())
    tsv = dest / "results" / "scorecard" / "scorecard.tsv"
    if proc.returncode != 0 and "jupyter-book build failed" not in proc.stdout + proc.stderr:
        # a chapter failed: the results are the previous run's, nothing to read
        pytest.fail(f"a chapter failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    card = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    numbers = {p.parent.name: json.loads(p.read_text()) for p in (dest / "results").glob("*/numbers.json")}
    if os.environ.get("E2E_REPORT"):  # the rows left not measured, for the closing note
        nm = card[card["status"] == "not measured"]
        with open(os.environ["E2E_REPORT"], "a") as fh:
            fh.write(f"{name}:\n")
            for r in nm.itertuples():
                fh.write(f"  {r.id}: {r.measured} | {r.detail}\n")
    return {
        "proc": proc,
        "log": proc.stdout + proc.stderr,
        "missing_pages": [s for s, p in pages.items() if not p.exists()],
        "tracebacks": [s for s, p in pages.items() if p.exists() and "Traceback" in p.read_text()],
        "glue_leaks": glue,
        "card": card.set_index("id"),
        "numbers": numbers,
        "meta": json.loads((dest / "results" / "cohort" / "meta.json").read_text()),
        "stamps": {
            p.parent.name: json.loads(p.read_text()).get("params") for p in (dest / "results").glob("*/.stamp.json")
        },
    }


def _not_measured(card: pd.DataFrame) -> dict:
    nm = card[card["status"] == "not measured"]
    return {i: f"{r.measured} | {r.detail}" for i, r in nm.iterrows()}


def _assert_built(snap):
    assert snap["proc"].returncode == 0, snap["log"][-4000:]
    assert not snap["missing_pages"], snap["missing_pages"]
    assert not snap["tracebacks"], snap["tracebacks"]
    assert not snap["glue_leaks"], snap["glue_leaks"]


# ----------------------------------------------------------------------------- the builds

_RUNS: dict = {}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    (dest / ".venv").symlink_to(sys.prefix)  # make's $(BIN)/python: this virtual environment
    return dest


def _run(dest: Path, name: str, params: dict) -> dict:
    if name not in _RUNS:
        pfile = _write_yaml(params, dest / f"{name}.yml")
        cmd = [
            sys.executable,
            "-m",
            "helpers",
            "run",
            "--profile",
            "test",
            "--jobs",
            "1",
            "--params",
            str(pfile),
            "--book",
        ]
        proc = subprocess.run(cmd, cwd=dest, env=project_env(dest), capture_output=True, text=True, timeout=3600)
        _RUNS[name] = _snapshot(dest, proc, name)
    return _RUNS[name]


def _make(dest: Path, name: str, cmd: str) -> dict:
    if name not in _RUNS:
        proc = subprocess.run(
            ["bash", "-c", f"{cmd} {MAKE_EXTRA}"],
            cwd=dest,
            env=project_env(dest),
            capture_output=True,
            text=True,
            timeout=3600,
        )
        _RUNS[name] = _snapshot(dest, proc, name)
    return _RUNS[name]


@pytest.fixture(scope="module")
def array(project):
    """(c) through the README: its parameters file, its data paths (the array fixture copied
    there) and its first ``make book`` command."""
    params, cmds = readme_commands()
    custom = params["notebooks"]["01_cohort"]["custom"]
    for src, key in (("array_logexpr.tsv.gz", "table"), ("array_samples.tsv", "sample_sheet")):
        target = project / custom[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project / FMT / src, target)
    _write_yaml(params, project / "my.yml")
    return _make(project, "array", cmds[0])


@pytest.fixture(scope="module")
def array_set(project, array):
    """The README's ``SET=`` form right after the ``PARAMS`` build."""
    _, cmds = readme_commands()
    return _make(project, "array_set", cmds[1])


@pytest.fixture(scope="module")
def geo(project, array_set):
    raw = str(project / FMT / "geo_real")
    return _run(project, "geo", {"global": {"dataset": "real"}, "notebooks": {"01_cohort": {"real": {"raw_dir": raw}}}})


@pytest.fixture(scope="module")
def htseq(project, geo):
    custom = {
        "table": str(project / FMT / "htseq_cohort"),
        "sample_sheet": str(project / FMT / "htseq_cohort_samples.tsv"),
    }
    return _run(project, "htseq", {"global": {"dataset": "custom"}, "notebooks": {"01_cohort": {"custom": custom}}})


@pytest.fixture(scope="module")
def null(project, htseq):
    custom = {
        "table": str(project / FMT / "null_counts_featurecounts.tsv.gz"),
        "sample_sheet": str(project / FMT / "null_samples.tsv"),
    }
    return _run(project, "null", {"global": {"dataset": "custom"}, "notebooks": {"01_cohort": {"custom": custom}}})


ONE_DATASET = "not measured: one dataset"
NO_SIGNATURE = "no signature (the null classifier has the fewest CV errors)"
PAM_ROWS = [
    "pam_n_genes",
    "pam_signature_overlap",
    "pam_loocv_accuracy",
    "pam_loocv_sensitivity",
    "pam_loocv_specificity",
]


# ----------------------------------------------------------------------------- (c) array, the README's commands


@pytest.mark.slow
def test_array_readme_params_file_builds_the_book(array):
    _assert_built(array)
    assert "book:" in array["log"]
    custom = readme_commands()[0]["notebooks"]["01_cohort"]["custom"]
    assert array["meta"]["kind"] == custom["kind"] == "logexpr"
    assert array["meta"]["files"][0].endswith(custom["table"])


@pytest.mark.slow
def test_array_scorecard_not_measured_rows(array):
    nm = _not_measured(array["card"])
    assert set(nm) == {"no_batch_effect", "published_model_accuracy"}, nm
    assert nm["no_batch_effect"].startswith(ONE_DATASET)
    assert nm["published_model_accuracy"].startswith(
        "not measured: 7 of 14 signature genes absent (KCNK3, LAMB4, KIF26B, NETO1, RAB6C, KCNN1, HAP1); "
        "fewer than 10 present"
    )


@pytest.mark.slow
def test_array_methods_are_named_for_what_ran(array):
    assert array["numbers"]["de"]["de_method"] == "limma-trend"
    assert array["numbers"]["cohort"]["n_genes"] == 2000
    pm = array["numbers"]["published_model"]
    assert pm["signature_status"] == "not measured" and pm["signature_n_present"] == 7


@pytest.mark.slow
def test_array_readme_set_form_gives_the_same_book(array, array_set):
    """Through make, the SET form hands every chapter the PARAMS file's parameters (the ones each
    chapter's stamp records) and gives the same scorecard. In a clean clone the second build
    re-executes nothing; here the runner's fingerprint also covers the live helper package, which
    other work may change between the two builds, so the test compares parameters, not timings."""
    _assert_built(array_set)
    assert set(array_set["stamps"]) == set(array["stamps"]) and len(array["stamps"]) == len(STEMS)
    assert array_set["stamps"] == array["stamps"]
    readme_table = readme_commands()[0]["notebooks"]["01_cohort"]["custom"]["table"]
    assert array_set["stamps"]["cohort"]["custom"]["table"] == readme_table
    cols = ["measured", "detail", "status"]
    a, b = array["card"][cols], array_set["card"][cols]
    assert a.equals(b), a.compare(b).to_string()


# ----------------------------------------------------------------------------- (a) GEO + series matrix


@pytest.mark.slow
def test_geo_builds_the_book(geo):
    _assert_built(geo)
    h = geo["meta"]["parts"][0]["harmonize"]
    assert h["n_version_stripped"] == 1200  # every GEO ID had a version suffix
    assert geo["meta"]["combine_report"]["dropped"] == {"GSE153670": 40, "PRJCA000750": 0}
    n = geo["numbers"]["cohort"]
    assert (n["n_patients"], n["n_cr"], n["n_nr"], n["n_datasets"]) == (24, 17, 7, 2)


@pytest.mark.slow
def test_geo_scorecard_not_measured_rows(geo):
    nm = _not_measured(geo["card"])
    assert set(nm) == set(), nm  # two datasets: the batch claim is judged; all 14 genes present
    assert geo["numbers"]["de"]["de_method"] == "limma-voom"
    pm = geo["numbers"]["published_model"]
    assert pm["signature_status"] == "complete" and "CCDC155 as KASH5" in pm["signature_reason"]


# ----------------------------------------------------------------------------- (b) HTSeq folder


@pytest.mark.slow
def test_htseq_builds_the_book(htseq):
    _assert_built(htseq)
    assert set(htseq["meta"]["htseq_summary"]) == {f"S{i:02d}" for i in range(1, 17)}
    assert htseq["numbers"]["cohort"]["n_patients"] == 16


@pytest.mark.slow
def test_htseq_scorecard_not_measured_rows(htseq):
    nm = _not_measured(htseq["card"])
    assert set(nm) == {"no_batch_effect"}, nm
    assert nm["no_batch_effect"].startswith(ONE_DATASET)
    assert htseq["numbers"]["de"]["de_method"] == "limma-voom"


# ----------------------------------------------------------------------------- (d) the null cohort


@pytest.mark.slow
def test_null_builds_the_book(null):
    _assert_built(null)


@pytest.mark.slow
def test_null_scorecard_not_measured_rows(null):
    nm = _not_measured(null["card"])
    assert set(nm) == {"no_batch_effect", *PAM_ROWS}, nm
    for row in PAM_ROWS:
        assert NO_SIGNATURE in nm[row], nm[row]
    pm = null["numbers"]["published_model"]
    assert pm["signature_status"] == "complete"
