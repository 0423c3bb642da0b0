import json

import pytest

from helpers.engine.errors import InputError
from helpers.engine.paths import PAPER
from helpers.analysis.scorecard import judge, load_claims, read_numbers, scorecard, summary


def c(compare, published, tol=None):
    d = {"id": "x", "item": "Fig", "result": "r", "statement": "s", "published": published, "compare": compare}
    if tol is not None:
        d["tolerance"] = tol
    return d


@pytest.mark.parametrize("claim, measured, status", [
    (c("exact", 31), 31, "reproduced"),
    (c("exact", 31), 30, "differs"),
    (c("tolerance", 359, 36), 359, "reproduced"),
    (c("tolerance", 359, 36), 330, "within tolerance"),
    (c("tolerance", 359, 36), 322, "differs"),
    (c("tolerance", 0.903, 0.05), 0.9032, "within tolerance"),
    (c("direction", 1), 2.1, "same direction"),
    (c("direction", -1), 2.1, "differs"),
    (c("direction", 1), 0.0, "differs"),
    (c("qualitative", True), True, "reproduced"),
    (c("qualitative", True), False, "differs"),
    (c("exact", 2), None, "not measured"),
    (c("tolerance", 14, 3), "none", "differs"),
])
def test_judge(claim, measured, status):
    assert judge(claim, measured) == status


def test_shipped_claims_are_valid_and_cover_the_design():
    claims = load_claims(PAPER / "claims.yml")
    ids = {x["id"] for x in claims}
    for needed in ("n_patients", "n_cr", "n_nr", "n_deg", "n_up", "n_down", "pam_loocv_accuracy",
                   "pam_loocv_sensitivity", "pam_loocv_specificity", "gsea_chemokine_nes", "gsva_early_memory"):
        assert needed in ids


def test_scorecard_from_numbers(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "numbers.json").write_text(json.dumps({"x": 31}))
    card = scorecard([c("exact", 31), {**c("exact", 1), "id": "y"}], read_numbers(tmp_path))
    assert list(card["status"]) == ["reproduced", "not measured"]
    assert summary(card)["reproduced"] == 1 and summary(card)["differs"] == 0


@pytest.mark.parametrize("text, needle", [
    ("claims: []", "non-empty list"),
    ("claims: [{id: a, item: b, result: c, statement: d, published: 1}]", "missing field 'compare'"),
    ("claims: [{id: a, item: b, result: c, statement: d, published: 1, compare: fuzzy}]", "compare must be one of"),
    ("claims: [{id: a, item: b, result: c, statement: d, published: 1, compare: tolerance}]", "numeric 'tolerance'"),
    ("claims: [{id: a, item: b, result: c, statement: d, published: 2, compare: direction}]", "must be 1 or -1"),
])
def test_bad_claims(tmp_path, text, needle):
    p = tmp_path / "claims.yml"
    p.write_text(text)
    with pytest.raises(InputError, match=needle) as e:
        load_claims(p)
    assert "claims.yml" in str(e.value) and "\n" not in str(e.value)


def test_published_values_come_from_the_claims_file():
    from helpers.analysis.scorecard import published

    assert published(["n_deg", "n_up", "n_down"]) == {"n_deg": 359, "n_up": 57, "n_down": 302}
    with pytest.raises(InputError, match="no claim with id 'nope'"):
        published(["nope"])
