"""The parameter file and its schema: YAML 1.2 reading, schema checks, merging, profiles,
``--set``, ``--params``."""

import math

import numpy as np
import pytest
import yaml

from helpers.engine import config
from helpers.engine.config import Params, parse_set, yaml_value
from helpers.engine.errors import InputError
from helpers.engine.paths import CONFIG

ROOT_DIR = CONFIG.parents[1]
SCHEMA = ROOT_DIR / "config" / "params.schema.yml"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def shipped() -> dict:
    """The shipped params.yml as a dict (a fresh copy)."""
    return config.load_yaml(CONFIG)


def write(tmp_path, data, name="params.yml", extra: str = ""):
    """Write ``data`` (a dict, or YAML text) as a parameter file; ``extra`` is appended verbatim."""
    text = data if isinstance(data, str) else yaml.dump(data, Dumper=_NoAliases, sort_keys=False)
    p = tmp_path / name
    p.write_text(text + extra)
    return p


def with_profile(tmp_path, profile: dict, name="evil"):
    d = shipped()
    d.setdefault("profiles", {})[name] = profile
    return write(tmp_path, d)


@pytest.fixture(scope="module")
def P():
    return Params(CONFIG)


def message(call) -> str:
    with pytest.raises(InputError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# =============================================================================== YAML 1.2 reading


@pytest.mark.parametrize(
    "text, value",
    [
        ("010", 10),  # YAML 1.1: octal 8
        ("12:30", "12:30"),  # YAML 1.1: sexagesimal 750
        ("1e-3", 0.001),  # YAML 1.1: the string '1e-3'
        ("-2E+2", -200.0),
        (".5", 0.5),
        ("0x1F", 31),
        ("0o17", 15),
        ("yes", "yes"),  # YAML 1.1: True
        ("off", "off"),  # YAML 1.1: False
        ("True", True),
        ("2022-02-18", "2022-02-18"),  # YAML 1.1: a date
        ("~", None),
        ("1_000", "1_000"),  # YAML 1.1: 1000
        ("'010'", "010"),
    ],
)
def test_yaml_12_scalars(text, value):
    assert yaml_value(f"a: {text}") == {"a": value}
    got = yaml_value(text)
    assert got == value and type(got) is type(value)


def test_yaml_nan_and_inf_are_floats():
    assert math.isnan(yaml_value(".nan")) and yaml_value("-.inf") == -math.inf


@pytest.mark.parametrize(
    "text, needle",
    [
        ("a: 1\nb: 2\na: 3\n", "duplicated key 'a' (first at line 1)"),
        ("a: {b: 1, b: 2}\n", "duplicated key 'b'"),
        ("a: &x 1\nb: *x\n", "anchors and aliases are not allowed (found &x)"),
        ("a: *x\n", "anchors and aliases are not allowed (found *x)"),
        ("!!merge <<: {a: 1}\n", "merge keys (<<) are not allowed"),
        ("1: x\n", "keys must be text, found 1"),
        ("true: x\n", "keys must be text, found true"),
        ("a: !!binary aGk=\n", "could not determine a constructor"),
        ("a: !!timestamp 2020-01-01\n", "could not determine a constructor"),
    ],
)
def test_yaml_refusals(tmp_path, text, needle):
    p = write(tmp_path, text, name="x.yml")
    msg = message(lambda: config.load_yaml(p))
    assert needle in msg and str(p) in msg and "line" in msg, msg


def test_billion_laughs_is_refused_at_the_first_anchor(tmp_path):
    """Nine levels of nine aliases would expand to 9**9 strings; the loader stops at line 1."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = write(tmp_path, "\n".join(lines) + "\n")
    msg = message(lambda: Params(p))
    assert (
        msg == f"{p}: line 1: YAML anchors and aliases are not allowed (found &a); write each value out "
        "(quote a value that starts with * or &)"
    )


def test_yaml_is_not_evaluated(tmp_path):
    flag = tmp_path / "pwned"
    p = write(tmp_path, f"global: !!python/object/apply:os.system ['touch {flag}']\nnotebooks: {{}}\n")
    msg = message(lambda: Params(p))
    assert "not valid YAML" in msg and "python/object" in msg and "line 1" in msg
    assert not flag.exists()


def test_registry_uses_the_same_loader(tmp_path):
    from helpers.engine import registry

    text = (ROOT_DIR / "config" / "book.yml").read_text()
    p = write(tmp_path, text + "root: book/other\n", name="book.yml")
    assert "duplicated key 'root'" in message(lambda: registry.load(p))
    p = write(tmp_path, text.replace("root: book/intro", "root: &r book/intro\nother: *r"), name="book.yml")
    assert "anchors and aliases are not allowed" in message(lambda: registry.load(p))


# =============================================================================== the shipped file


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
    assert "DEFAULT_PARAMS = {" not in (ROOT_DIR / "src" / "helpers" / "data" / "twin.py").read_text(), (
        "the twin's design is written in params.yml only"
    )


def _objects(schema, node, where):
    """Every object schema reachable from ``node`` (local $refs followed), with where it is."""
    if "$ref" in node:
        yield from _objects(schema, schema["$defs"][node["$ref"].split("/")[-1]], where)
    if "properties" in node:
        yield where, node
        for k, sub in node["properties"].items():
            yield from _objects(schema, sub, f"{where}.{k}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _objects(schema, node[key], f"{where}[{key}]")


def test_schema_describes_every_key_and_requires_it():
    """Every block is closed (additionalProperties: false, or a free-form map), and every key the
    schema describes is required, so params.yml holds a default for each."""
    schema = config.load_yaml(SCHEMA)
    seen = 0
    for where, node in _objects(schema, schema, "params"):
        seen += 1
        if where.startswith("params.profiles"):  # a profile is partial by design
            continue
        assert node.get("additionalProperties") is False, f"{where} is not closed"
        optional = set(node["properties"]) - set(node.get("required", []))
        assert optional <= {"profiles", "13_many_twins"}, (
            f"{where}: keys described but not required: {sorted(optional)}"
        )
    assert seen > 20


def test_schema_choices_match_the_code():
    """The schema's choices are the ones the code accepts."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    from helpers.analysis.de import METHODS
    from helpers.analysis.expression import SCALES
    from helpers.data.genesets import COLLECTIONS
    from helpers.methods.gsva import resolve_kcdf

    d = config.load_yaml(SCHEMA)["$defs"]
    assert d["global"]["properties"]["de_method"]["enum"] == list(METHODS)
    assert d["03_de"]["properties"]["multiverse_methods"]["items"]["enum"] == list(METHODS)
    assert d["global"]["properties"]["expr_scale"]["enum"] == list(SCALES)
    assert d["collection"]["anyOf"][0]["enum"] == list(COLLECTIONS)
    x = np.random.default_rng(1).normal(size=(6, 4))
    for metric in d["04_deg_structure"]["properties"]["distance"]["enum"]:
        linkage(pdist(x, metric=metric), method="average")
    for method in d["04_deg_structure"]["properties"]["linkage_method"]["enum"]:
        linkage(pdist(x, metric="euclidean"), method=method)
    for kcdf in d["07_gsva"]["properties"]["kcdf"]["enum"]:
        resolve_kcdf(np.ones((3, 3)), kcdf)
    with pytest.raises(InputError):
        resolve_kcdf(np.ones((3, 3)), "gaussian")


# =============================================================================== merging


def test_merge_order(P):
    assert P.effective("03_de")["p_max"] == 0.01
    e = P.effective("06_gsea", "test")
    assert (e["n_perm"], e["profile"], e["min_size"]) == (200, "test", 15)
    sim = P.effective("01_cohort", "test")["simulate"]  # the profile changes two keys of the mapping
    default_sd = P.defaults_for("01_cohort")["simulate"]["background"]["log2fc_sd"]
    assert sim["n_genes"] == 2000 and sim["background"]["n_up"] == 4 and sim["background"]["log2fc_sd"] == default_sd
    assert sim["n_scale"] == 1
    assert P.effective("06_gsea", "test", {"06_gsea.n_perm": 50})["n_perm"] == 50  # --set after the profile
    assert P.effective("06_gsea", "test", {"seed": 7})["seed"] == 7


def test_a_global_set_for_one_chapter_stays_there(P):
    sets = {"03_de.p_max": 0.05}
    assert P.effective("03_de", sets=sets)["p_max"] == 0.05
    assert P.effective("02_pca", sets=sets)["p_max"] == 0.01
    # the chapter's own value wins over the global one, whatever the order
    sets = {"03_de.p_max": 0.05, "p_max": 0.2}
    assert P.effective("03_de", sets=sets)["p_max"] == 0.05 and P.effective("08_pam", sets=sets)["p_max"] == 0.2


def test_an_unscoped_chapter_key_sets_every_chapter_that_has_it(P):
    sets = {"min_size": 20}
    assert [P.effective(s, sets=sets)["min_size"] for s in ("05_go", "06_gsea", "07_gsva")] == [20, 20, 20]


def test_uses_filters_globals(P):
    e = P.effective("05_go", uses=("cr_label",))
    assert "seed" not in e and "profile" not in e and e["cr_label"] == "CR" and "top_n" in e
    assert P.effective("11_reproducibility", "test", uses=("profile",)) == {"profile": "test"}


def test_dotted_set_reaches_into_a_mapping(P):
    e = P.effective("01_cohort", sets={"01_cohort.custom.table": "/data/t.tsv"})
    assert e["custom"]["table"] == "/data/t.tsv" and e["custom"]["kind"] == "counts"
    e = P.effective("01_cohort", sets={"01_cohort.custom": {"kind": "logexpr"}, "01_cohort.custom.table": "t.tsv"})
    assert (e["custom"]["kind"], e["custom"]["table"], e["custom"]["sample_col"]) == ("logexpr", "t.tsv", "sample_id")
    e = P.effective("01_cohort", sets={"01_cohort.custom.label_map.responder": "CR"})  # a free-form map takes new keys
    assert e["custom"]["label_map"] == {"responder": "CR"}
    e = P.effective("01_cohort", sets={"01_cohort.simulate.background.n_up": 3})
    assert e["simulate"]["background"] == {**shipped()["notebooks"]["01_cohort"]["simulate"]["background"], "n_up": 3}
    # the README's custom cohort: dataset plus both files, through parse_set as `make SET=` passes them
    sets = parse_set(
        ["dataset=custom", "01_cohort.custom.table=/d/counts.tsv", "01_cohort.custom.sample_sheet=/d/s.tsv"]
    )
    e = P.effective("01_cohort", sets=sets)
    assert (e["dataset"], e["custom"]["table"], e["custom"]["sample_sheet"]) == ("custom", "/d/counts.tsv", "/d/s.tsv")


def test_sets_do_not_leak_into_the_defaults(P):
    P.effective("01_cohort", sets={"01_cohort.custom.table": "x.tsv", "seed": 3})
    assert P.effective("01_cohort")["custom"]["table"] is None and P.effective("01_cohort")["seed"] == 20220218


def test_parse_set_types():
    assert parse_set(["a=3", "b=0.5", "c=true", "d=hello", "e=[1, 2]", "f=010", "g=1e-3", "h=12:30", "i=", "j=[a"]) == {
        "a": 3,
        "b": 0.5,
        "c": True,
        "d": "hello",
        "e": [1, 2],
        "f": 10,
        "g": 0.001,
        "h": "12:30",
        "i": "",
        "j": "[a",
    }
    assert parse_set(["m={table: x, kind: logexpr}"]) == {"m": {"table": "x", "kind": "logexpr"}}
    with pytest.raises(InputError, match="expected key=value"):
        parse_set(["novalue"])
    with pytest.raises(InputError, match=r"--set: m: duplicated key 'a'"):
        parse_set(["m={a: 1, a: 2}"])
    with pytest.raises(InputError, match=r"--set: g: YAML anchors and aliases are not allowed \(found \*name\)"):
        parse_set(["g=*name"])
    assert parse_set(["g=*.tsv"]) == {"g": "*.tsv"}  # not even YAML: a glob stays text


# =============================================================================== what the schema refuses

SET_CASES = [
    # (--set items, the one-line message) -- every rule of the schema and of RULES says no here
    (["03_de.p_max=-0.5"], "--set: 03_de.p_max: must be > 0 and <= 1, got -0.5"),
    (["p_max=0"], "--set: p_max: must be > 0 and <= 1, got 0"),
    (["p_max=1.5"], "--set: p_max: must be > 0 and <= 1, got 1.5"),
    (["p_max=.nan"], "--set: p_max: must be a number > 0 and <= 1, got nan"),
    (["p_max=nan"], "--set: p_max: must be a number > 0 and <= 1, got text 'nan'"),
    (["fc_min=0.5"], "--set: fc_min: must be >= 1, got 0.5"),
    (["seed=12:30"], "--set: seed: must be an integer >= 0, got text '12:30'"),
    (["seed=-1"], "--set: seed: must be >= 0, got -1"),
    (["seed=7.0"], "--set: seed: must be an integer >= 0, got 7.0"),
    (["use_fdr=yes"], "--set: use_fdr: must be true or false, got text 'yes'"),
    (["dataset=gse"], "--set: dataset: must be one of twin, real, custom, got 'gse'"),
    (
        ["de_method=limma"],
        "--set: de_method: must be one of limma-voom, limma-trend, deseq2, deseq2-pydeseq2, got 'limma' (did you mean 'limma-voom'?)",
    ),
    (
        ["expr_scale=logCPM"],
        "--set: expr_scale: must be one of logcpm, voom, log2_counts, got 'logCPM' (did you mean 'logcpm'?)",
    ),
    (
        ["08_pam.priors=proportion"],
        "--set: 08_pam.priors: must be one of proportions, equal, got 'proportion' (did you mean 'proportions'?)",
    ),
    (["08_pam.target_n_genes=0"], "--set: 08_pam.target_n_genes: must be >= 1, got 0"),
    (["08_pam.target_n_genes=many"], "--set: 08_pam.target_n_genes: must be an integer >= 1 or null, got text 'many'"),
    (["08_pam.s0_percentile=101"], "--set: 08_pam.s0_percentile: must be >= 0 and <= 100, got 101"),
    (["08_pam.n_threshold=1"], "--set: 08_pam.n_threshold: must be >= 2, got 1"),
    (["n_perm=0"], "--set: n_perm: must be >= 1, got 0"),
    (
        ["03_de.covariate=cohrt"],
        "--set: 03_de.covariate: must be one of null, cohort, got 'cohrt' (did you mean 'cohort'?)",
    ),
    (["03_de.multiverse_fc=[]"], "--set: 03_de.multiverse_fc: must list at least 1 item(s), got []"),
    (["03_de.multiverse_fc=[2, 2]"], "--set: 03_de.multiverse_fc: must not repeat an item, got [2, 2]"),
    (["03_de.multiverse_fc=[1.5, 0.5]"], "--set: 03_de.multiverse_fc[1]: must be >= 1, got 0.5"),
    (["03_de.ratio_level=1"], "--set: 03_de.ratio_level: must be > 0 and < 1, got 1"),
    (["01_cohort.id_type=hgnc"], "--set: 01_cohort.id_type: must be one of auto, ensembl, entrez, symbol, got 'hgnc'"),
    (
        ["01_cohort.custom.kind=log"],
        "--set: 01_cohort.custom.kind: must be one of counts, logexpr, got 'log' (did you mean 'logexpr'?)",
    ),
    (["06_gsea.ranking_metric=T"], "--set: 06_gsea.ranking_metric: must be one of logFC, t, got 'T'"),
    (
        ["07_gsva.kcdf=gaussian"],
        "--set: 07_gsva.kcdf: must be one of auto, Gaussian, Poisson, none, got 'gaussian' (did you mean 'Gaussian'?)",
    ),
    (["04_deg_structure.distance=pearson"], "--set: 04_deg_structure.distance: must be one of correlation, "),
    (
        ["04_deg_structure.linkage_method=ward"],
        "--set: 04_deg_structure.distance: must be euclidean with centroid, median or ward linkage, got 'correlation'",
    ),
    (
        ["05_go.collections=[go_bp, go_xx]"],
        "--set: 05_go.collections[1]: must be a shipped collection (go_bp, go_cc, go_mf, tcell) or the path of a GMT file",
    ),
    (["07_gsva.collection=tcells"], "--set: 07_gsva.collection: must be a shipped collection"),
    (
        ["05_go.tcell_pattern=(T cell"],
        "--set: 05_go.tcell_pattern: must be a valid regular expression (missing ), unterminated subpattern",
    ),
    (
        ["09_published_model.model_name=publshed"],
        "--set: 09_published_model.model_name: must be 'published' or the path of a model JSON (with a / or ending in .json), got 'publshed' (did you mean 'published'?)",
    ),
    (
        ["06_gsea.claim_sets={chemokin: X}"],
        "--set: 06_gsea.claim_sets.chemokin: unknown key 'chemokin' (did you mean 'chemokine'?)",
    ),
    (["cr_label=NR"], "--set: cr_label: must differ from nr_label (both are 'NR')"),
    (["nr_label=CR"], "--set: nr_label: must differ from cr_label (both are 'CR')"),
    (["03_de.cr_label=NR"], "--set: 03_de.cr_label: must differ from nr_label (both are 'NR')"),
    (["cr_label=' CR'"], "--set: cr_label: must be a non-empty label without leading or trailing spaces, got ' CR'"),
    (["06_gsea.min_size=600"], "--set: 06_gsea.min_size: must be <= max_size (500), got 600"),
    (["07_gsva.max_size=4"], "--set: 07_gsva.max_size: must be >= min_size (5), got 4"),
    (
        ["01_cohort.simulate.clinical.age_min=80"],
        "--set: 01_cohort.simulate.clinical.age_min: must be <= age_max (75), got 80",
    ),
    (
        ["01_cohort.simulate.n_scale=0"],
        "--set: 01_cohort.simulate.n_scale: must be > 0, got 0",
    ),  # 0.5 halves the design
    (
        ["01_cohort.simulate.cohorts=[{name: a, n_CR: 3, n_NR: 1}]"],
        "--set: 01_cohort.simulate.cohorts[0].clinical: missing key 'clinical'",
    ),
    (
        ["01_cohort.simulate.programs.chemokine.higher_in=cr"],
        "--set: 01_cohort.simulate.programs.chemokine.higher_in: must be one of CR, NR, got 'cr'",
    ),
    (
        ["01_cohort.simulate.signature.genes={CD3E: [1, 2]}"],
        "--set: 01_cohort.simulate.signature.genes.CD3E: must list exactly 3 item(s), got [1, 2]",
    ),
    (
        ["01_cohort.simulate.signature.genes={CD3E: [1, 2, 0]}"],
        "--set: 01_cohort.simulate.signature.genes.CD3E[2]: must be > 0, got 0",
    ),
    (
        ["dataset=custom"],
        "--set: 01_cohort.custom.table: must be the path of the genes x samples table when dataset is custom, got null",
    ),
    (
        ["dataset=custom", "01_cohort.custom.table=t.tsv"],
        "--set: 01_cohort.custom.sample_sheet: must be the path of the sample sheet when dataset is custom",
    ),
    (["01_cohort.custom.table="], "--set: 01_cohort.custom.table: must not be empty"),
    # keys
    (["sed=3"], "--set: sed: unknown key 'sed' (did you mean 'seed'?)"),
    (["03_de.p_maxx=0.05"], "--set: 03_de.p_maxx: unknown key 'p_maxx' for 03_de (did you mean 'p_max'?)"),
    (["09_x.n=1"], "--set: 09_x.n: unknown notebook '09_x' (known: "),
    (["03_dee.covariate=cohort"], "--set: 03_dee.covariate: unknown notebook '03_dee' (did you mean '03_de'?)"),
    (["03_de=1"], "--set: 03_de: name a key of the chapter: 03_de.KEY=VALUE"),
    (["01_cohort.custom.tabel=x"], "--set: 01_cohort.custom.tabel: unknown key 'tabel' (did you mean 'table'?)"),
    (["01_cohort.custom={tabel: x}"], "--set: 01_cohort.custom.tabel: unknown key 'tabel' (did you mean 'table'?)"),
    (["03_de.p_max.x=1"], "--set: 03_de.p_max.x: 'p_max' is not a mapping, so it has no key 'x'"),
    (["01_cohort..table=x"], "--set: 01_cohort..table: empty name in a dotted key"),
    (["profile=test"], "--set: profile: unknown key 'profile'"),
]


@pytest.mark.parametrize("items, expected", SET_CASES, ids=[" ".join(i) for i, _ in SET_CASES])
def test_set_refused(P, items, expected):
    msg = message(lambda: P.check_sets(parse_set(items)))
    assert msg.startswith(expected), msg


SET_ACCEPTED = [
    (["p_max=1e-3"], "03_de", "p_max", 0.001),
    (["p_max=1"], "03_de", "p_max", 1),
    (["seed=010"], "01_cohort", "seed", 10),
    (["seed=0"], "01_cohort", "seed", 0),
    (["fc_min=1"], "03_de", "fc_min", 1),
    (["08_pam.target_n_genes=14"], "08_pam", "target_n_genes", 14),
    (["08_pam.priors=equal"], "08_pam", "priors", "equal"),
    (["08_pam.s0_percentile=0"], "08_pam", "s0_percentile", 0),
    (["03_de.covariate=cohort"], "03_de", "covariate", "cohort"),
    (["03_de.covariate=null"], "03_de", "covariate", None),
    (
        ["05_go.collections=[go_bp, my.gmt, /x/msigdb.txt]"],
        "05_go",
        "collections",
        ["go_bp", "my.gmt", "/x/msigdb.txt"],
    ),
    (
        ["04_deg_structure.linkage_method=ward", "04_deg_structure.distance=euclidean"],
        "04_deg_structure",
        "linkage_method",
        "ward",
    ),
    (
        ["09_published_model.model_name=results/pam/pam_model.json"],
        "09_published_model",
        "model_name",
        "results/pam/pam_model.json",
    ),
    (["06_gsea.min_size=500"], "06_gsea", "min_size", 500),
    (["cr_label=Responder", "nr_label=Non-responder"], "02_pca", "nr_label", "Non-responder"),
]


@pytest.mark.parametrize("items, stem, key, value", SET_ACCEPTED, ids=[" ".join(i) for i, *_ in SET_ACCEPTED])
def test_set_accepted(P, items, stem, key, value):
    got = P.effective(stem, sets=parse_set(items))[key]
    assert got == value and type(got) is type(value)


def _leaves(schema, node, doc_value, path):
    """(path, resolved leaf schema, default) for every scalar default with a range or choices."""
    while "$ref" in node:
        node = {**schema["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if isinstance(doc_value, dict):
        for k, v in doc_value.items():
            sub = node.get("properties", {}).get(k) or node.get("additionalProperties")
            if isinstance(sub, dict):
                yield from _leaves(schema, sub, v, path + (k,))
    elif not isinstance(doc_value, list) and (
        {"enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(node)
    ):
        yield path, node, doc_value


def _bad_values(leaf):
    if "enum" in leaf:
        yield "no_such_choice"
    integer = "integer" in (leaf.get("type") if isinstance(leaf.get("type"), list) else [leaf.get("type")])
    step = 1 if integer else 0.5
    if "minimum" in leaf:
        yield leaf["minimum"] - step
    if "exclusiveMinimum" in leaf:
        yield leaf["exclusiveMinimum"]
    if "maximum" in leaf:
        yield leaf["maximum"] + step
    if "exclusiveMaximum" in leaf:
        yield leaf["exclusiveMaximum"]


def test_every_choice_and_range_in_the_schema_says_no(P):
    """Walk every default that has choices or a range: a value just outside is refused, with a
    message naming the key; a value at an inclusive bound is accepted (unless a RULES pairing
    forbids it)."""
    schema = config.load_yaml(SCHEMA)
    doc = {"global": P.global_, "notebooks": P.notebooks}
    leaves = list(_leaves(schema, schema, doc, ()))
    assert len(leaves) >= 40, len(leaves)
    paired = {"min_size", "max_size", "age_min", "age_max"}
    for path, leaf, _default in leaves:
        key = ".".join(path[1:])  # global.seed -> seed, notebooks.03_de.top_labels -> 03_de.top_labels
        for bad in _bad_values(leaf):
            msg = message(lambda key=key, bad=bad: P.check_sets({key: bad}))
            assert msg.startswith(f"--set: {key}: must be"), msg
        for bound in ("minimum", "maximum"):
            if bound in leaf and path[-1] not in paired:
                P.check_sets({key: leaf[bound]})


# =============================================================================== the file and its profiles


def _edit(fn):
    d = shipped()
    fn(d)
    return d


FILE_CASES = [
    (
        lambda d: d["notebooks"]["03_de"].update(covariat=None),
        "notebooks.03_de.covariat: unknown key 'covariat' (did you mean 'covariate'?)",
    ),
    (
        lambda d: d["notebooks"]["03_de"].update(p_maxx=0.05),
        "notebooks.03_de.p_maxx: unknown key 'p_maxx' (did you mean 'p_max'? it is a global key: set it under global)",
    ),
    (
        lambda d: d["notebooks"]["03_de"].update(top=1),
        "notebooks.03_de.top: unknown key 'top' (known: covariate, top_labels,",
    ),
    (
        lambda d: d["notebooks"]["10_scorecard"].update(x=1),
        "notebooks.10_scorecard.x: unknown key 'x' (this block takes no keys)",
    ),
    (
        lambda d: d["notebooks"].update({"03_dee": {}}),
        "notebooks.03_dee: unknown chapter '03_dee' (did you mean '03_de'?)",
    ),
    (lambda d: d["global"].pop("fc_min"), "global.fc_min: missing key 'fc_min'"),
    (lambda d: d["global"].update(p_max=-0.5), "global.p_max: must be > 0 and <= 1, got -0.5"),
    (lambda d: d["global"].update(nr_label="CR"), "global.nr_label: must differ from cr_label (both are 'CR')"),
    (
        lambda d: d["notebooks"]["08_pam"].update(priors="proportion"),
        "notebooks.08_pam.priors: must be one of proportions, equal, got 'proportion'",
    ),
    (lambda d: d.update(extra=1), "extra: unknown key 'extra' (known: global, notebooks, profiles)"),
    (
        lambda d: d["profiles"]["test"].update(other={}),
        "profiles.test.other: unknown key 'other' (known: global, notebooks)",
    ),
    (
        lambda d: d["profiles"].update(default={"global": {"seed": 1}}),
        "profiles.default: 'default' is the run without a profile",
    ),
    (
        lambda d: d["profiles"]["test"].update({"global": {"seed": "two"}}),
        "profiles.test.global.seed: must be an integer >= 0, got text 'two'",
    ),
    (
        lambda d: d["profiles"]["test"].update({"global": {"sed": 2}}),
        "profiles.test.global.sed: unknown key 'sed' (did you mean 'seed'?)",
    ),
    (
        lambda d: d["profiles"]["test"]["notebooks"].update({"01_z": {"n": 3}}),
        "profiles.test.notebooks.01_z: unknown chapter '01_z'",
    ),
    (
        lambda d: d["profiles"]["test"]["notebooks"]["06_gsea"].update(min_size=600),
        "profiles.test.notebooks.06_gsea.min_size: must be <= max_size (500), got 600",
    ),
    (
        lambda d: d["profiles"]["real"]["global"].update(cr_label="NR"),
        "profiles.real.global.cr_label: must differ from nr_label",
    ),
    (
        lambda d: d["profiles"]["real"]["global"].update(dataset="custom"),
        "profiles.real.notebooks.01_cohort.custom.table: must be the path",
    ),
    (
        lambda d: d["profiles"]["test"]["notebooks"]["01_cohort"]["simulate"].update(n_genes=0),
        "profiles.test.notebooks.01_cohort.simulate.n_genes: must be >= 1, got 0",
    ),
]


@pytest.mark.parametrize("edit, needle", FILE_CASES, ids=[n.split(":")[0] for _, n in FILE_CASES])
def test_bad_file_one_line(tmp_path, edit, needle):
    p = write(tmp_path, _edit(edit))
    msg = message(lambda: Params(p))
    assert msg.startswith(f"{p}: {needle}"), msg


def test_yaml_12_in_the_file(tmp_path):
    text = CONFIG.read_text()
    assert "  seed: 20220218" in text and "  p_max: 0.01 " in text
    P = Params(
        write(tmp_path, text.replace("  seed: 20220218", "  seed: 010").replace("  p_max: 0.01 ", "  p_max: 1e-3 "))
    )
    assert P.effective("01_cohort")["seed"] == 10 and P.effective("03_de")["p_max"] == 0.001
    p = write(tmp_path, text.replace("  seed: 20220218", "  seed: 12:30"))
    assert message(lambda: Params(p)) == f"{p}: global.seed: must be an integer >= 0, got text '12:30'"
    p = write(tmp_path, text.replace("  seed: 20220218", "  seed: 1\n  seed: 2"))
    assert "duplicated key 'seed'" in message(lambda: Params(p))


def test_bad_top_level(tmp_path):
    assert "top level must be a mapping" in message(lambda: Params(write(tmp_path, "- 1\n")))
    assert "not valid YAML" in message(lambda: Params(write(tmp_path, "global: [1, 2\n")))
    assert "global.dataset: missing key 'dataset'" in message(lambda: Params(write(tmp_path, "global: {seed: 1}\n")))


def test_schema_beside_the_file_is_used(tmp_path):
    """A project's own schema (here: one that knows no `seed`) wins over the checkout's."""
    schema = config.load_yaml(SCHEMA)
    del schema["$defs"]["global"]["properties"]["seed"]
    schema["$defs"]["global"]["required"].remove("seed")
    write(tmp_path, schema, name="params.schema.yml")
    p = write(tmp_path, shipped())
    assert "global.seed: unknown key 'seed'" in message(lambda: Params(p))


def test_rules_compare_only_keys_that_exist():
    """A project whose schema has no labels is not told its (absent) labels are equal."""
    assert not list(config._rule_labels({"global": {"seed": 1}}))
    assert [p.path for p in config._rule_labels({"global": {"cr_label": "A", "nr_label": "A"}})] == [
        ("global", "nr_label")
    ]
    order = config._rule_order("min_size", "max_size", ())
    assert not list(order({"notebooks": {"05_go": {"min_size": 5}}}))
    assert not list(order({"notebooks": {"05_go": {"min_size": 5, "max_size": 5}}}))
    assert len(list(order({"notebooks": {"05_go": {"min_size": 6, "max_size": 5}}}))) == 1


def test_unknown_profile(P):
    assert "unknown profile 'tset' (known: default, real, test) (did you mean 'test'?)" in message(
        lambda: P.effective("03_de", "tset")
    )


def test_sets_over_a_profile_are_checked_in_it(tmp_path):
    """A --set that is fine over the defaults but not over the profile is refused with the profile."""
    p = with_profile(tmp_path, {"notebooks": {"07_gsva": {"max_size": 50}}}, name="small")
    P = Params(p)
    P.check_sets({"07_gsva.min_size": 60})  # fine over the defaults (max 500)
    msg = message(lambda: P.effective("07_gsva", "small", {"07_gsva.min_size": 60}))
    assert msg == "--set: 07_gsva.min_size: must be <= max_size (50), got 60"


def test_profile_path_outside_the_project(tmp_path):
    p = with_profile(tmp_path, {"notebooks": {"09_published_model": {"model_name": "/etc/model.json"}}})
    with pytest.raises(
        InputError, match="'profiles.evil.notebooks.09_published_model.model_name' names a path outside"
    ):
        config.check_paths(Params(p), tmp_path)


# =============================================================================== --params files


def test_params_file_gives_sets(tmp_path, P):
    f = write(
        tmp_path,
        {
            "global": {"dataset": "custom", "seed": 7},
            "notebooks": {
                "01_cohort": {
                    "custom": {"table": "/elsewhere/t.tsv", "sample_sheet": "/elsewhere/s.tsv", "kind": "logexpr"}
                },
                "08_pam": {"n_perm": 5},
            },
        },
        name="my.yml",
    )
    sets = P.read_overrides(f)
    assert sets == {
        "dataset": "custom",
        "seed": 7,
        "01_cohort.custom": {"table": "/elsewhere/t.tsv", "sample_sheet": "/elsewhere/s.tsv", "kind": "logexpr"},
        "08_pam.n_perm": 5,
    }
    e = P.effective("01_cohort", sets=sets)
    assert e["custom"]["table"] == "/elsewhere/t.tsv" and e["custom"]["cohort_name"] == "custom" and e["seed"] == 7
    assert P.effective("08_pam", "test", sets)["n_perm"] == 5  # the file wins over the profile
    assert P.read_overrides(write(tmp_path, "", name="empty.yml")) == {}


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            "notebooks:\n  03_de: {covariate: batch}\n",
            "notebooks.03_de.covariate: must be one of null, cohort, got 'batch'",
        ),
        ("global: {p_max: -0.5}\n", "global.p_max: must be > 0 and <= 1, got -0.5"),
        (
            "notebooks:\n  03_de: {p_maxx: 1}\n",
            "notebooks.03_de.p_maxx: unknown key 'p_maxx' (did you mean 'p_max'? it is a global key",
        ),
        ("profiles: {}\n", "profiles: unknown key 'profiles' (known: global, notebooks)"),
        ("global: {dataset: custom}\n", "notebooks.01_cohort.custom.table: must be the path"),
        ("global: {seed: 1}\nglobal: {seed: 2}\n", "line 2: duplicated key 'global'"),
        ("- 1\n", "must be a mapping or null, got a list [1]"),
    ],
)
def test_bad_params_file(tmp_path, P, text, needle):
    f = write(tmp_path, text, name="my.yml")
    msg = message(lambda: P.read_overrides(f))
    assert msg.startswith(f"{f}: {needle}"), msg


def test_params_file_missing(tmp_path, P):
    assert (
        message(lambda: P.read_overrides(tmp_path / "nope.yml"))
        == f"{tmp_path / 'nope.yml'}: parameters file not found"
    )


def test_cli_params_flag_reaches_the_run(tmp_path, monkeypatch):
    """``run --params FILE``: the file's values, then --set, reach run(); a bad file exits 2."""
    from helpers import __main__ as cli
    from helpers.engine import runner

    seen = {}
    monkeypatch.setattr(runner, "run", lambda **kw: seen.update(kw))
    f = write(tmp_path, {"global": {"seed": 7}, "notebooks": {"08_pam": {"n_perm": 5}}}, name="my.yml")
    assert cli.main(["run", "--params", str(f), "--set", "seed=8"]) == 0
    assert seen["sets"] == {"seed": 8, "08_pam.n_perm": 5}
    bad = write(tmp_path, "global: {fc_min: 0.5}\n", name="bad.yml")
    assert cli.main(["run", "--params", str(bad)]) == 2


def test_environment_and_lock_pin_the_same_versions():
    """environment.yml installs the pip lock itself, and the lock pins jupyter-book 1.x."""
    from helpers.engine.paths import ROOT

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements/lock.txt" in pip
    lock = {
        l.split("==")[0].lower().replace("_", "-"): l.split("==")[1].strip()
        for l in (ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if "==" in l and not l.startswith("#")
    }
    assert lock["jupyter-book"].startswith("1.")
    for pkg in (
        "papermill",
        "nbclient",
        "pandas",
        "numpy",
        "scipy",
        "gseapy",
        "scikit-learn",
        "seaborn",
        "pytest-notebook",
        "jsonschema",
    ):
        assert pkg in lock, pkg
