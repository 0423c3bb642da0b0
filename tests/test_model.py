"""helpers.analysis.model: the paper's published 14-gene model and saved PAM models as scoring tools."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import model, scoring
from helpers.engine.errors import InputError
from helpers.methods import pam

FIG4_GENES = [
    "IGF2BP1",
    "KCNK3",
    "NKAIN4",
    "GREB1",
    "LAMB4",
    "ADAMTS7",
    "KIF26B",
    "NETO1",
    "TRIM9",
    "RAB6C",
    "TYRO3",
    "KCNN1",
    "HAP1",
    "CCDC155",
]

# Table 1 of the paper, typed in again here (independently of data/paper/table1.tsv)
TABLE1 = {
    "IGF2BP1": (4.44, 6.43, 3.62),
    "KCNK3": (4.92, 6.23, 3.28),
    "NKAIN4": (5.25, 6.62, 3.66),
    "GREB1": (4.9, 5.51, 2.79),
    "LAMB4": (4.15, 4.57, 2.18),
    "ADAMTS7": (5.52, 5.87, 2.94),
    "KIF26B": (4.55, 4.79, 2.54),
    "NETO1": (5.32, 5.6, 3.47),
    "TRIM9": (5.57, 5.69, 2.21),
    "RAB6C": (4.7, 4.84, 2.8),
    "TYRO3": (5.25, 5.36, 2.31),
    "KCNN1": (5.3, 5.46, 3.62),
    "HAP1": (6.29, 6.39, 3.38),
    "CCDC155": (4.55, 4.56, 2.53),
}


def made_up_samples():
    """Two made-up samples plus an unrelated gene: A sits near the CR centroids, B well above NR."""
    a = [4.5, 5.0, 5.1, 4.8, 4.2, 5.5, 4.6, 5.3, 5.6, 4.7, 5.2, 5.3, 6.3, 4.5]
    b = [7.9, 7.5, 8.0, 6.6, 5.2, 6.4, 5.3, 6.1, 6.0, 5.2, 5.8, 6.0, 6.9, 4.9]
    df = pd.DataFrame({"A": a, "B": b}, index=FIG4_GENES)
    df.loc["GAPDH"] = [10.0, 11.0]
    return df


def hand_delta(x, k):
    """delta_k(x) of the paper's Methods, written out with plain floats."""
    prior = {0: 22 / 31, 1: 9 / 31}[k]
    total = 0.0
    for g, v in x.items():
        if g in TABLE1:
            c, sd = TABLE1[g][k], TABLE1[g][2]
            total += (v - c) ** 2 / sd**2
    return total - 2 * math.log(prior)


def test_published_model_is_table_1():
    m = model.load_model("published")
    assert m.genes == FIG4_GENES
    assert m.classes == ("CR", "NR")
    for g, (cr, nr, sd) in TABLE1.items():
        assert m.centroids.loc[g, "CR"] == cr and m.centroids.loc[g, "NR"] == nr and m.sd[g] == sd
    assert m.priors["CR"] == pytest.approx(22 / 31) and m.priors["NR"] == pytest.approx(9 / 31)
    assert "10.1038/s41598-022-06830-3" in m.provenance["source"]
    assert "not printed" in m.provenance["priors"]
    assert m.scale == "log2" and "BRB-ArrayTools" in m.provenance["scale"]  # a known scale, described


def test_hand_computed_delta_matches_scorer():
    x = made_up_samples()
    res = model.score("published", x).set_index("sample")
    for s in ("A", "B"):
        dcr, dnr = hand_delta(x[s], 0), hand_delta(x[s], 1)
        assert res.loc[s, "delta_CR"] == pytest.approx(dcr, abs=1e-9)
        assert res.loc[s, "delta_NR"] == pytest.approx(dnr, abs=1e-9)
        assert res.loc[s, "call"] == ("CR" if dcr < dnr else "NR")
        assert res.loc[s, "prob_CR"] == pytest.approx(1 / (1 + math.exp((dcr - dnr) / 2)), abs=1e-12)
    assert res.loc["A", "call"] == "CR" and res.loc["B", "call"] == "NR"
    assert list(res.reset_index().columns) == ["sample", "delta_CR", "delta_NR", "call", "prob_CR"]


def small_model_dict(**over):
    d = {
        "name": "toy",
        "classes": ["CR", "NR"],
        "genes": ["G1", "G2"],
        "centroids": {"CR": [0.0, 0.0], "NR": [2.0, 2.0]},
        "sd": [1.0, 1.0],
        "priors": {"CR": 0.5, "NR": 0.5},
        "scale": "log2",
    }
    d.update(over)
    return d


def test_exact_tie_goes_to_nr_as_in_the_paper(tmp_path):
    p = tmp_path / "toy.json"
    p.write_text(json.dumps(small_model_dict()))
    res = model.score(str(p), pd.DataFrame({"S": [1.0, 1.0]}, index=["G1", "G2"]))
    assert res.loc[0, "delta_CR"] == res.loc[0, "delta_NR"]
    assert res.loc[0, "call"] == "NR"
    assert res.loc[0, "prob_CR"] == 0.5


def test_missing_signature_genes_named():
    x = made_up_samples().drop(index=["KCNK3", "HAP1"])
    with pytest.raises(InputError, match="2 of 14 signature genes missing: KCNK3, HAP1"):
        model.score("published", x)


@pytest.mark.parametrize("field", model.REQUIRED)
def test_model_json_missing_field_named(tmp_path, field):
    d = small_model_dict()
    del d[field]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match=f"{field}.*missing required field '{field}'"):
        model.load_model(str(p))


@pytest.mark.parametrize(
    "over, match",
    [
        ({"sd": [1.0]}, "sd: must be a list of 2 numbers"),
        ({"sd": [1.0, 0.0]}, "must be positive"),
        ({"priors": {"CR": 0.5, "NR": 0.6}}, "sum to 1"),
        ({"centroids": {"CR": [0.0, 0.0]}}, "no centroids for class 'NR'"),
        ({"centroids": {"CR": [0.0, "x"], "NR": [1.0, 1.0]}}, "not a number"),
        ({"genes": ["G1", "G1"]}, "duplicated genes"),
        ({"classes": ["CR"]}, "at least two"),
    ],
)
def test_model_json_bad_values(tmp_path, over, match):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(small_model_dict(**over)))
    with pytest.raises(InputError, match=match):
        model.load_model(str(p))


def test_model_file_not_json_or_absent(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        model.load_model(str(p))
    with pytest.raises(InputError, match="not found"):
        model.load_model(str(tmp_path / "nope.json"))


def fitted(ref):
    from test_pam import load_case

    X, y = load_case(ref, "weak_nobatch")
    fit = pam.train(X, y)
    idx, thr = pam.choose_threshold(pam.cv(X, y, fit))
    return X, y, fit, thr


def test_model_from_fit_scores_like_pamr_predict(ref, tmp_path):
    X, y, fit, thr = fitted(ref)
    m = model.model_from_fit(fit, thr, scale="voom")
    assert m.genes == pam.surviving_genes(fit, thr)
    res = model.score(m, X).set_index("sample")
    assert (res["call"] == pam.predict(fit, X, thr)).all()
    np.testing.assert_allclose(res["prob_CR"], pam.predict_proba(fit, X, thr)["CR"], rtol=1e-9, atol=1e-12)
    delta = pam.discriminants(fit, X, thr)
    np.testing.assert_allclose(res[["delta_CR", "delta_NR"]].to_numpy(), delta.to_numpy(), rtol=1e-10)
    # save -> load round trip, byte-identical re-save
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    model.save_model(m, p1)
    m2 = model.load_model(str(p1))
    model.save_model(m2, p2)
    assert p1.read_bytes() == p2.read_bytes()
    d = json.loads(p1.read_text())
    assert d["provenance"]["threshold"] == thr and d["scale"] == "voom"
    pd.testing.assert_frame_equal(model.score(m2, X), model.score(m, X))


def test_model_from_fit_with_no_gene(ref):
    X, y, fit, thr = fitted(ref)
    with pytest.raises(InputError, match="keeps no gene"):
        model.model_from_fit(fit, fit.thresholds[-1], scale="x")


# ---------------------------------------------------------------------------- files and CLI


def write_expr(path, df, sep="\t", gz=False):
    text = df.to_csv(sep=sep, index_label="gene")
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name, sep, gz", [("e.tsv", "\t", False), ("e.csv", ",", False), ("e.tsv.gz", "\t", True)])
def test_score_file_formats(tmp_path, name, sep, gz):
    x = made_up_samples()
    p = write_expr(tmp_path / name, x, sep, gz)
    out = tmp_path / "out" / "scores.tsv"
    res = scoring.score_file("published", p, out)
    pd.testing.assert_frame_equal(res, model.score("published", x))
    back = pd.read_csv(out, sep="\t")
    assert back["sample"].tolist() == ["A", "B"]
    np.testing.assert_allclose(back["delta_CR"], res["delta_CR"], rtol=1e-9)
    assert [f.name for f in out.parent.iterdir()] == ["scores.tsv"]  # no temporary files left


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.replace("KCNK3\t5.0\t", "KCNK3\tNA\t", 1), "line 3 \\(gene KCNK3\\), column A: missing value"),
        (lambda t: t.replace("KCNK3\t5.0\t", "KCNK3\t\t", 1), "line 3 \\(gene KCNK3\\), column A: missing value"),
        (lambda t: t.replace("KCNK3\t5.0\t", "KCNK3\tinf\t", 1), "not a finite number"),
        (
            lambda t: t.replace("HAP1\t6.3\t6.9", "HAP1\t6.3\tfoo", 1),
            "line 14 \\(gene HAP1\\), column B: not a number: 'foo'",
        ),
        (lambda t: t + "TRIM9\t1\t2\n", "duplicated signature genes: TRIM9 \\(lines 10, 17\\)"),
        (lambda t: t.replace("gene\tA\tB", "gene\tA\tA", 1), "duplicated sample names: A"),
        (
            lambda t: t.replace("IGF2BP1", "IGF2BP1_x", 1).replace("KCNK3", "KCNK3_x", 1),
            "cannot score: 2 of 14 signature genes absent \\(IGF2BP1, KCNK3\\)",
        ),
        (lambda t: "", "empty file"),
    ],
)
def test_score_file_bad_input(tmp_path, edit, match):
    p = tmp_path / "e.tsv"
    text = made_up_samples().to_csv(sep="\t", index_label="gene")
    new = edit(text)
    assert new != text or new == ""
    p.write_text(new)
    out = tmp_path / "scores.tsv"
    with pytest.raises(InputError, match=match) as info:
        scoring.score_file("published", p, out)
    assert str(p) in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()


def test_unrelated_bad_rows_are_ignored(tmp_path):
    x = made_up_samples().astype(object)
    x.loc["GAPDH", "A"] = "n/a"
    p = tmp_path / "e.tsv"
    p.write_text(x.to_csv(sep="\t", index_label="gene"))
    res = scoring.score_file("published", p)
    assert len(res) == 2


def test_score_cli(tmp_path, capsys):
    p = write_expr(tmp_path / "e.tsv", made_up_samples())
    assert scoring.score_cli("published", str(p), None) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "sample\tdelta_CR\tdelta_NR\tcall\tprob_CR"
    out = tmp_path / "s.tsv"
    assert scoring.score_cli("published", str(p), str(out)) == 0
    assert "wrote" in capsys.readouterr().err
    assert out.read_text() == scoring.score_file("published", p).to_csv(sep="\t", index=False, float_format="%.10g")
    assert scoring.score_cli(str(tmp_path / "none.json"), str(p), None) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_published_table_file_matches_paper_text():
    """data/paper/table1.tsv must hold exactly the 14 rows printed in the paper."""
    t = pd.read_csv(model.PAPER / "table1.tsv", sep="\t")
    assert t.columns.tolist() == ["gene", "centroid_CR", "centroid_NR", "sd"]
    assert t["gene"].tolist() == FIG4_GENES
    for row in t.itertuples():
        assert (row.centroid_CR, row.centroid_NR, row.sd) == TABLE1[row.gene]
