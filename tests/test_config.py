"""The parameter file: schema checks, merging, profiles, --set."""

import textwrap

import yaml

import pytest

from helpers.engine.config import Params, parse_set
from helpers.engine.errors import InputError
from helpers.engine.paths import CONFIG
ROOT_DIR = CONFIG.parents[1]

YAML = """
global:
  seed: 1
  p_max: 0.01
  dataset: twin
  labels: {cr: CR, nr: NR}
notebooks:
  01_a: {n: 10, name: null}
  02_b: {p_max: 0.05, methods: [x, y]}
profiles:
  test:
    global: {seed: 2}
    notebooks:
      01_a: {n: 3}
"""


def write(tmp_path, text):
    p = tmp_path / "params.yml"
    p.write_text(textwrap.dedent(text))
    return p


def test_merge_order(tmp_path):
    P = Params(write(tmp_path, YAML))
    assert P.effective("01_a")["n"] == 10
    assert P.effective("02_b")["p_max"] == 0.05          # notebook block wins over global
    e = P.effective("01_a", "test", {"seed": 7})
    assert (e["n"], e["seed"], e["profile"]) == (3, 7, "test")
    assert P.effective("02_b", sets={"01_a.n": 5})["p_max"] == 0.05
    assert P.effective("01_a", sets={"01_a.n": 5})["n"] == 5


def test_int_accepted_for_float_and_null_accepts_any(tmp_path):
    P = Params(write(tmp_path, YAML))
    assert P.effective("02_b", sets={"p_max": 1})["p_max"] == 1
    assert P.effective("01_a", sets={"name": "x"})["name"] == "x"


@pytest.mark.parametrize("bad, needle", [
    ("global: {seed: 1}\nnotebooks: {}\nextra: 1\n", "unknown top-level key 'extra'"),
    (YAML + "    other: {}\n", "unknown key 'profiles.test.other'"),
    (YAML.replace("global: {seed: 2}", "global: {seed: two}"), "'profiles.test.global.seed' must be int"),
    (YAML.replace("global: {seed: 2}", "global: {sed: 2}"), "unknown key 'profiles.test.global.sed'"),
    (YAML.replace("01_a: {n: 3}", "01_z: {n: 3}"), "unknown notebook 'profiles.test.notebooks.01_z'"),
    ("global: [1, 2\n", "not valid YAML"),
    ("- 1\n", "top level must be a mapping"),
    ("global: {labels: {cr: CR}}\nnotebooks: {}\nprofiles: {p: {global: {labels: {xx: 1}}}}\n", "unknown key 'profiles.p.global.labels.xx'"),
])
def test_bad_config_one_line(tmp_path, bad, needle):
    with pytest.raises(InputError) as e:
        Params(write(tmp_path, bad))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)
    assert "params.yml" in str(e.value)


def test_bad_set(tmp_path):
    P = Params(write(tmp_path, YAML))
    with pytest.raises(InputError, match="unknown key 'nope'"):
        P.check_sets({"nope": 1})
    with pytest.raises(InputError, match="'01_a.n' must be int"):
        P.check_sets({"01_a.n": "ten"})
    with pytest.raises(InputError, match="unknown notebook '09_x'"):
        P.check_sets({"09_x.n": 1})
    with pytest.raises(InputError, match="'seed' must be int"):
        P.check_sets({"seed": 0.5})


def test_parse_set_types():
    assert parse_set(["a=3", "b=0.5", "c=true", "d=hello", "e=[1, 2]"]) == {"a": 3, "b": 0.5, "c": True, "d": "hello", "e": [1, 2]}
    with pytest.raises(InputError, match="expected key=value"):
        parse_set(["novalue"])


def test_yaml_is_not_evaluated(tmp_path):
    p = write(tmp_path, "global: !!python/object/apply:os.system ['echo pwned']\nnotebooks: {}\n")
    with pytest.raises(InputError, match="not valid YAML"):
        Params(p)


def test_project_config_is_valid_and_complete():
    """The shipped params.yml validates, and each notebook's parameters cell holds its defaults."""
    from helpers.engine.runner import Project, read_notebook

    P = Params(CONFIG)
    proj = Project()
    assert proj.available_steps(), "no notebooks found"
    for step in proj.available_steps():
        nb = read_notebook(proj.source(step))
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1, step.stem
        ns = {}
        exec(cells[0].source, ns)  # the parameters cell is plain assignments
        ns = {k: v for k, v in ns.items() if not k.startswith("__")}
        defaults = P.effective(step.stem, uses=step.globals)
        assert set(ns) == set(defaults), f"{step.stem}: parameters cell keys {sorted(ns)} != {sorted(defaults)}"
        for k, v in defaults.items():
            if k == "simulate":  # {} = the twin's defaults, written once in params.yml
                assert ns[k] == {}, f"{step.stem}: the simulate cell must be {{}} (defaults live in params.yml)"
                continue
            assert ns[k] == v, f"{step.stem}: parameters cell has {k}={ns[k]!r}, params.yml {v!r}"
        for p in P.profiles:
            P.effective(step.stem, p)


def test_twin_defaults_match_the_simulator():
    """config/params.yml spells out every choice of the twin; it must equal helpers.data.twin's defaults."""
    from helpers.data.twin import DEFAULT_PARAMS

    block = Params(CONFIG).defaults_for("01_cohort")["simulate"]
    expected = {k: v for k, v in DEFAULT_PARAMS.items() if k != "labels"}
    assert block == expected
    assert "DEFAULT_PARAMS = {" not in (ROOT_DIR / "src" / "helpers" / "data" / "twin.py").read_text(), \
        "the twin's design is written in params.yml only"


def test_set_on_a_mapping_merges(tmp_path):
    P = Params(write(tmp_path, YAML))
    e = P.effective("01_a", sets={"labels": {"cr": "R"}})
    assert e["labels"] == {"cr": "R", "nr": "NR"}


def test_environment_and_lock_pin_the_same_versions():
    """environment.yml installs the pip lock itself, and the lock pins jupyter-book 1.x."""
    from helpers.engine.paths import ROOT

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements/lock.txt" in pip
    lock = {l.split("==")[0].lower().replace("_", "-"): l.split("==")[1].strip() for l in (ROOT / "requirements" / "lock.txt").read_text().splitlines()
            if "==" in l and not l.startswith("#")}
    assert lock["jupyter-book"].startswith("1.")
    for pkg in ("papermill", "nbclient", "pandas", "numpy", "scipy", "gseapy", "scikit-learn", "seaborn", "pytest-notebook"):
        assert pkg in lock, pkg
