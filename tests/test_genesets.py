"""Tests for helpers.data.genesets and the shipped gene-set collections in data/genesets/."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from helpers.data import genesets as gs
from helpers.engine.errors import InputError
from helpers.engine.paths import GENESETS

REF = Path(__file__).parent / "data" / "reference"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- reading and writing -------------------------------------------------------------------


def test_read_gmt_plain_and_gzip_roundtrip(tmp_path):
    sets = gs.GeneSets({"A": ["g1", "g2", "g3"], "B": ["g2", "g4"]}, {"A": "set a", "B": ""})
    plain = gs.write_gmt(sets, tmp_path / "x.gmt")
    zipped = gs.write_gmt(sets, tmp_path / "x.gmt.gz")
    assert zipped.read_bytes()[:2] == b"\x1f\x8b"
    for p in (plain, zipped):
        got = gs.read_gmt(p)
        assert dict(got) == dict(sets)
        assert got.descriptions == {"A": "set a", "B": ""}
        assert got.source == p
        assert got.genes() == {"g1", "g2", "g3", "g4"}
    assert gzip.decompress(zipped.read_bytes()) == plain.read_bytes()


def test_write_gmt_gzip_is_byte_deterministic(tmp_path):
    sets = {"S": ["a", "b"]}
    a = gs.write_gmt(sets, tmp_path / "a.gmt.gz").read_bytes()
    b = gs.write_gmt(sets, tmp_path / "b.gmt.gz").read_bytes()
    assert a == b


def test_gzip_detected_by_content_not_name(tmp_path):
    p = tmp_path / "sets.txt"
    p.write_bytes(gzip.compress(b"S\tdesc\tA\tB\n"))
    assert gs.read_gmt(p) == {"S": ["A", "B"]}


def test_read_gmt_tolerates_trailing_tabs_blank_lines_and_duplicates(tmp_path):
    p = _write(tmp_path / "s.gmt", "S1\td\tA\tB\tA\t\t\n\n\r\nS2\t\t C \r\n")
    got = gs.read_gmt(p)
    assert got == {"S1": ["A", "B"], "S2": ["C"]}


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("", None, "empty GMT file"),
        ("\n\n", None, "empty GMT file"),
        ("S1\tdesc\tA\nS2\tonly-two\n", "line 2", "at least 3 tab-separated fields"),
        ("S1\tdesc\t\t\n", "line 1", "has no genes"),
        ("S1\td\tA\nS2\td\tB\nS1\td\tC\n", "line 3", "duplicate gene-set name 'S1' (first on line 1)"),
        ("\tdesc\tA\n", "line 1", "empty gene-set name"),
    ],
)
def test_read_gmt_errors_name_file_and_line(tmp_path, text, where, what):
    p = _write(tmp_path / "bad.gmt", text)
    with pytest.raises(InputError) as exc:
        gs.read_gmt(p)
    msg = str(exc.value)
    assert str(p) in msg and what in msg and "\n" not in msg
    if where:
        assert f": {where}: " in msg


def test_read_gmt_missing_and_binary(tmp_path):
    with pytest.raises(InputError, match="not found"):
        gs.read_gmt(tmp_path / "nope.gmt")
    bad = tmp_path / "bin.gmt"
    bad.write_bytes(b"S\td\t\xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        gs.read_gmt(bad)
    broken = tmp_path / "broken.gmt.gz"
    broken.write_bytes(gzip.compress(b"S\td\tA\n")[:12])
    with pytest.raises(InputError, match="corrupt gzip"):
        gs.read_gmt(broken)


def test_write_gmt_rejects_tabs_in_names(tmp_path):
    with pytest.raises(ValueError):
        gs.write_gmt({"a\tb": ["x"]}, tmp_path / "x.gmt")
    assert not (tmp_path / "x.gmt").exists()


# --- filtering, loading, overlap -----------------------------------------------------------


def test_filter_sets_cuts_then_applies_size_rule():
    sets = gs.GeneSets({"A": ["a", "b", "c", "d"], "B": ["a", "x"], "C": ["x", "y"]}, {"A": "da", "B": "db", "C": "dc"})
    got = gs.filter_sets(sets, universe={"a", "b", "c", "x"}, min_size=2, max_size=3)
    assert dict(got) == {"A": ["a", "b", "c"], "B": ["a", "x"]}
    assert got.descriptions == {"A": "da", "B": "db"}
    assert dict(gs.filter_sets(sets, None, 3)) == {"A": ["a", "b", "c", "d"]}
    assert dict(gs.filter_sets(sets, {"a", "b", "c", "x"}, 1, 2)) == {"B": ["a", "x"], "C": ["x"]}


def test_load_collection_names_and_paths(tmp_path):
    for name, fname in gs.COLLECTIONS.items():
        assert gs.collection_path(name) == GENESETS / fname
    tcell = gs.load_collection("tcell")
    assert "EARLY_MEMORY_TSCM" in tcell
    p = _write(tmp_path / "mine.gmt", "MY\tmine\tCD3E\tCD4\n")
    assert gs.load_collection(str(p)) == {"MY": ["CD3E", "CD4"]}
    with pytest.raises(InputError, match="not a shipped collection"):
        gs.load_collection("go_xx")


def test_overlap_check():
    sets = gs.GeneSets({"A": ["CD3E", "CD4"], "B": ["CD8A"]}, source="s.gmt")
    assert gs.overlap_check(sets, ["CD4", "CD8A", "ACTB"]) == 2
    with pytest.raises(InputError, match=r"^s.gmt: GMT has no overlap with the expression genes"):
        gs.overlap_check(sets, ["ENSG00000167286", "ENSG00000010610"])
    assert gs.overlap_check({"A": ["x"]}, ["x"]) == 1


# --- shipped collections -------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_bp():
    return gs.load_collection("go_bp")


def test_shipped_go_matches_r_fixture(go_bp):
    """The 50 fixture terms were written by R from org.Hs.eg.db GOALL: membership must agree."""
    fixture = gs.read_gmt(REF / "fixture" / "fixture.gmt")
    jaccards = {}
    for term, genes in fixture.items():
        a, b = set(genes), set(go_bp.get(term, ()))
        jaccards[term] = len(a & b) / len(a | b)
        assert go_bp.description(term) == fixture.description(term)
    assert min(jaccards.values()) == 1.0, {t: j for t, j in jaccards.items() if j < 1}
    assert len(go_bp["GO:0042110"]) == 548


def test_shipped_go_checksums_match_provenance():
    prov = json.loads((GENESETS / "PROVENANCE.json").read_text())
    for name in ("go_bp", "go_cc", "go_mf"):
        entry = prov["collections"][name]
        data = (GENESETS / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["propagation_mismatches_vs_GO.db_offspring"] == 0
    assert prov["sources"]["GO.db"]["go_date"] == "2022-07-01"


def test_shipped_go_is_sorted_and_propagated(go_bp):
    names = list(go_bp)
    assert names == sorted(names)
    assert all(g == sorted(g) for g in list(go_bp.values())[:500])
    # propagation: a parent holds every gene of its child (T cell activation > alpha-beta T cell activation)
    assert set(go_bp["GO:0046631"]) <= set(go_bp["GO:0042110"])
    assert len(go_bp["GO:0008150"]) > 18000  # root term: every annotated gene


def test_tcell_collection_and_sources(go_bp):
    tcell = gs.load_collection("tcell")
    with open(GENESETS / "tcell_pathways_sources.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["set"] for r in rows] == list(tcell)
    go_all = gs.GeneSets(go_bp)
    for other in ("go_cc", "go_mf"):
        go_all.update(gs.load_collection(other))
    known = go_all.genes()
    for r in rows:
        genes = tcell[r["set"]]
        assert int(r["n_genes"]) == len(genes) >= 10
        assert r["source"].strip() and r["description"] == tcell.description(r["set"])
        assert set(genes) <= known, (r["set"], set(genes) - known)  # current symbols
        if r["go_id"]:
            assert set(genes) <= set(go_all[r["go_id"]]), (r["set"], set(genes) - set(go_all[r["go_id"]]))
    for key in (
        "EARLY_MEMORY_TSCM",
        "EXHAUSTION",
        "T_CELL_ACTIVATION",
        "CHEMOKINE_SIGNALING",
        "INTERLEUKIN_SIGNALING",
        "CELL_CYCLE_CHECKPOINT",
    ):
        assert key in tcell
