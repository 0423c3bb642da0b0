"""`python -m helpers score` / `scoring.score_file` find the model's genes through the cohort's symbol
mapping (helpers.analysis.signature.map_model), score a partial table like chapter 09, and refuse
one with too few genes in one line."""

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import model, scoring
from helpers.analysis import signature as S
from helpers.engine.errors import InputError


def table1_like(seed=0):
    """Two samples near the published centroids, plus two unrelated genes."""
    m = model.published_model()
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(m.centroids.to_numpy() + rng.normal(0, 0.3, (14, 2)), index=m.genes, columns=["A", "B"])
    extra = pd.DataFrame([[5.0, 5.5], [7.0, 6.5]], index=["GAPDH", "ACTB"], columns=["A", "B"])
    return pd.concat([x, extra])


def write(tmp_path, df, name="e.tsv"):
    p = tmp_path / name
    p.write_text(df.to_csv(sep="\t", index_label="gene"))
    return p


def test_previous_and_current_symbols_score_like_the_published_names(tmp_path, capsys):
    x = table1_like()
    ref = scoring.score_file("published", write(tmp_path, x, "ref.tsv"))
    # the table names CCDC155 by today's symbol and NKAIN4 by its previous symbol
    renamed = x.rename(index={"CCDC155": "KASH5", "NKAIN4": "C20orf58"})
    p = write(tmp_path, renamed)
    res = scoring.score_file("published", p)
    pd.testing.assert_frame_equal(res, ref)
    sig = res.attrs["signature"]
    assert sig["status"] == "complete" and sig["n_present"] == 14
    assert sig["genes"]["CCDC155"] == "KASH5" and sig["genes"]["NKAIN4"] == "C20orf58"
    assert scoring.score_cli("published", str(p), str(tmp_path / "s.tsv")) == 0
    err = capsys.readouterr().err
    assert "NKAIN4 as C20orf58, CCDC155 as KASH5" in err and "(14 of 14 genes)" in err


def test_exact_names_without_renames_print_no_note(tmp_path, capsys):
    p = write(tmp_path, table1_like())
    assert scoring.score_cli("published", str(p), str(tmp_path / "s.tsv")) == 0
    assert "note:" not in capsys.readouterr().err


def test_partial_table_is_scored_on_the_genes_present_and_says_so(tmp_path, capsys):
    x = table1_like()
    drop = ["HAP1", "TYRO3"]
    p = write(tmp_path, x.drop(index=drop))
    res = scoring.score_file("published", p)
    sig = res.attrs["signature"]
    assert sig["status"] == "partial" and sig["n_present"] == 12
    assert sig["reason"].startswith("partial: 2 of 14 signature genes absent (TYRO3, HAP1)")
    # the same numbers as the published model restricted to the 12 genes (chapter 09's answer)
    m = S.map_model("published", x.drop(index=drop).index)
    pd.testing.assert_frame_equal(res, model.score(m.model, x.drop(index=drop)))
    assert not res.equals(scoring.score_file("published", write(tmp_path, x, "full.tsv")))
    assert scoring.score_cli("published", str(p), None) == 0
    assert "note: partial: 2 of 14" in capsys.readouterr().err


@pytest.mark.parametrize(
    "drop, why",
    [
        (["IGF2BP1", "KCNK3"], "the 12 present carry 36% of the model's class separation, less than 50%"),
        (["GREB1", "LAMB4", "ADAMTS7", "KIF26B", "NETO1"], "fewer than 10 present"),
    ],
)
def test_too_few_genes_is_refused_in_one_line(tmp_path, capsys, drop, why):
    p = write(tmp_path, table1_like().drop(index=drop))
    out = tmp_path / "s.tsv"
    with pytest.raises(InputError) as info:
        scoring.score_file("published", p, out)
    msg = str(info.value)
    assert "\n" not in msg and str(p) in msg and why in msg
    assert f"cannot score: {len(drop)} of 14 signature genes absent" in msg
    assert not out.exists()
    assert scoring.score_cli("published", str(p), str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_model_json_genes_are_mapped_too(tmp_path):
    """A chapter-08 model trained under an old symbol scores a table that carries today's one;
    a smaller model needs every gene (min_genes is capped at its size)."""
    pub = model.published_model()
    genes = ["IGF2BP1", "KCNK3", "CCDC155"]
    small = model.Model(
        classes=pub.classes,
        centroids=pub.centroids.loc[genes],
        sd=pub.sd.loc[genes],
        priors=pub.priors,
        scale=pub.scale,
        name="small",
    )
    mp = model.save_model(small, tmp_path / "m.json")
    x = table1_like().rename(index={"CCDC155": "KASH5"})
    res = scoring.score_file(mp, write(tmp_path, x))
    assert res.attrs["signature"]["genes"]["CCDC155"] == "KASH5"
    with pytest.raises(InputError, match="cannot score: 1 of 3 signature genes absent \\(KCNK3\\); fewer than 3"):
        scoring.score_file(mp, write(tmp_path, x.drop(index="KCNK3"), "e2.tsv"))
