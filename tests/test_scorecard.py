import json
import re

import pytest

from helpers.analysis.scorecard import (
    STATUS_COLORS,
    STATUSES,
    format_value,
    judge,
    legend_html,
    load_claims,
    read_numbers,
    rule_text,
    scorecard,
    section_id,
    section_links,
    styled,
    summary,
    view,
)
from helpers.engine.errors import InputError
from helpers.engine.paths import PAPER


def c(compare, published, tol=None, **extra):
    d = {"id": "x", "item": "Fig", "result": "r", "statement": "s", "published": published, "compare": compare}
    if tol is not None:
        d["tolerance"] = tol
    if compare == "qualitative":
        d.setdefault("rule", "share at least {min_share}")
    d.update(extra)
    return d


@pytest.mark.parametrize(
    "claim, measured, status",
    [
        (c("exact", 31), 31, "reproduced"),
        (c("exact", 31), 30, "differs"),
        (c("tolerance", 359, 36), 359, "reproduced"),
        (c("tolerance", 359, 36), 330, "within tolerance"),
        (c("tolerance", 359, 36), 322, "differs"),
        (c("tolerance", 0.903, 0.05), 0.9032, "within tolerance"),
        (c("proportion", "28/31", 0.05), "28/31", "reproduced"),  # an exact count is reproduced ...
        (c("proportion", "28/31", 0.05), "27/31", "within tolerance"),  # ... one patient off is within 0.05
        (c("proportion", "28/31", 0.05), "26/31", "differs"),
        (
            c("proportion", "28/31", 0.05),
            "56/62",
            "within tolerance",
        ),  # same share, other cohort: not the paper's count
        (c("proportion", "6/9", 0.12), "5/9", "within tolerance"),
        (c("proportion", "6/9", 0.12), "4/9", "differs"),
        (c("proportion", "22/22", 0.05), "not measured: no CR sample", "not measured"),
        (c("direction", 1), 2.1, "same direction"),
        (c("direction", -1), 2.1, "differs"),
        (c("direction", 1), 0.0, "differs"),
        (c("qualitative", True), True, "reproduced"),
        (c("qualitative", True), False, "differs"),
        (c("qualitative", True), "not measured: no term enriched", "not measured"),
        (c("exact", 2), None, "not measured"),
        (c("tolerance", 14, 3), "none", "differs"),
    ],
)
def test_judge(claim, measured, status):
    assert judge(claim, measured) == status


@pytest.mark.parametrize(
    "claim, measured, match",
    [
        (c("qualitative", True), 1, "true/false"),  # a number is not a verdict: a bug, not "differs"
        (c("qualitative", True), "yes", "true/false"),
        (c("proportion", "28/31", 0.05), 0.903, "k/n"),  # a proportion must come as counts
        (c("proportion", "28/31", 0.05), "32/31", "k/n"),
    ],
)
def test_judge_refuses_what_it_cannot_judge(claim, measured, match):
    with pytest.raises(InputError, match=match):
        judge(claim, measured)


def test_shipped_claims_are_valid_and_cover_the_design():
    claims = load_claims(PAPER / "claims.yml")
    by_id = {x["id"]: x for x in claims}
    for needed in (
        "n_patients",
        "n_cr",
        "n_nr",
        "n_deg",
        "n_up",
        "n_down",
        "pam_loocv_accuracy",
        "pam_loocv_sensitivity",
        "pam_loocv_specificity",
        "gsea_chemokine_nes",
        "gsva_early_memory",
    ):
        assert needed in by_id
    # the paper's proportions are its counts, so that an exact 28/31 can be "reproduced"
    assert {
        i: by_id[i]["published"]
        for i in ("pam_loocv_accuracy", "pam_loocv_sensitivity", "pam_loocv_specificity", "published_model_accuracy")
    } == {
        "pam_loocv_accuracy": "28/31",
        "pam_loocv_sensitivity": "22/22",
        "pam_loocv_specificity": "6/9",
        "published_model_accuracy": "28/31",
    }
    assert all(x["compare"] == "proportion" for x in claims if re.search(r"\(\d+/\d+\)", x["statement"]))
    assert "published_model_rule" not in by_id  # the scorer's own rule is not a claim about the data


def test_scorecard_from_numbers(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "numbers.json").write_text(
        json.dumps(
            {
                "x": 31,
                "q": False,
                "q_rule": "share at least 0.5 [05_go.up_min_share]",
                "q_detail": "2 of 10 top terms",
                "nm": "not measured: no term enriched",
                "nm_rule": "r",
                "nm_detail": "no term enriched",
            }
        )
    )
    claims = [
        c("exact", 31),
        {**c("exact", 1), "id": "y"},
        {**c("qualitative", True), "id": "q"},
        {**c("qualitative", True), "id": "nm"},
    ]
    card = scorecard(claims, read_numbers(tmp_path))
    assert list(card["status"]) == ["reproduced", "not measured", "differs", "not measured"]
    assert summary(card)["reproduced"] == 1 and summary(card)["differs"] == 1 and summary(card)["not measured"] == 2
    assert card.loc[2, "rule"] == "share at least 0.5 [05_go.up_min_share]"  # the chapter's filled rule
    assert card.loc[1, "rule"] == "measured = 1" and "no value for 'y'" in card.loc[1, "detail"]
    shown = view(card)
    assert list(shown.columns) == ["status", "item", "statement", "published", "measured", "rule"]
    assert shown.loc[2, "measured"] == "does not hold (2 of 10 top terms)"
    assert shown.loc[3, "measured"] == "not measured: no term enriched"


def test_rule_text_per_compare():
    assert rule_text(c("exact", 31)) == "measured = 31"
    assert "|measured − 359| ≤ 36" in rule_text(c("tolerance", 359, 36))
    assert rule_text(c("proportion", "28/31", 0.05)).startswith(
        "28/31: reproduced; |measured − 0.903| ≤ 0.05 (up to 1 of 31"
    )
    assert rule_text(c("direction", -1)) == "sign of measured is −"
    q = c("qualitative", True, rule="share at least {min_share:.0%}", params={"min_share": "05_go.up_min_share"})
    assert rule_text(q, {"min_share": 0.5}) == "share at least 50% [05_go.up_min_share]"
    assert rule_text(q) == "share at least {min_share:.0%} [05_go.up_min_share]"
    with pytest.raises(InputError, match="cannot be filled"):
        rule_text(q, {"other": 1})


@pytest.mark.parametrize(
    "text, needle",
    [
        ("claims: []", "non-empty list"),
        ("claims: [{id: a, item: b, result: c, statement: d, published: 1}]", "missing field 'compare'"),
        ("claims: [{id: a, item: b, result: c, statement: d, published: 1, compare: fuzzy}]", "compare must be one of"),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: 1, compare: tolerance}]",
            "numeric 'tolerance'",
        ),
        ("claims: [{id: a, item: b, result: c, statement: d, published: 2, compare: direction}]", "must be 1 or -1"),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: 0.903, compare: proportion, tolerance: 0.05}]",
            "proportion 'k/n'",
        ),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: true, compare: qualitative}]",
            "'rule' in words",
        ),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: false, compare: qualitative, rule: r}]",
            "must be true",
        ),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: true, compare: qualitative, rule: 'x {a}',"
            " params: {b: 02_pca.b}}]",
            "rule does not use",
        ),
        (
            "claims: [{id: a, item: b, result: c, statement: d, published: true, compare: qualitative, rule: 'x {a}',"
            " params: {a: nodot}}]",
            "chapter.key",
        ),
    ],
)
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


def test_styled_scorecard_escapes_and_colours():
    card = scorecard([{**c("qualitative", True), "statement": "<b>bold</b> & co"}], {"r": {"x": True}})
    html = styled(card).to_html()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html and "<b>bold</b>" not in html
    assert "background-color: #cfe8f7" in html  # reproduced


@pytest.mark.parametrize(
    "kind, value, published, shown",
    [
        ("exact", 31, True, "31"),
        ("tolerance", 1359, False, "1,359"),  # thousands separated
        ("tolerance", 359.0, False, "359"),  # a whole float is a count, not "359.0"
        ("tolerance", 0.9032, False, "0.903"),
        ("proportion", "28/31", True, "28/31 (90.3%)"),  # counts where the paper gives counts ...
        ("proportion", "27/31", False, "27/31 (87.1%)"),  # ... and the same format measured
        ("proportion", "22/22", False, "22/22 (100.0%)"),
        ("direction", 1, True, "positive"),
        ("direction", -1, True, "negative"),
        ("direction", 2.254, False, "+2.25"),
        ("direction", -0.3951, False, "-0.395"),
        ("qualitative", True, True, "holds"),  # never "True"
        ("qualitative", False, False, "does not hold"),
        ("proportion", "not measured: no CR sample", False, "not measured"),
        ("exact", None, False, "not measured"),
        ("tolerance", "none", False, "none"),  # text that is no number is shown as it is
    ],
)
def test_format_value_one_format_per_kind(kind, value, published, shown):
    assert format_value(kind, value, published=published) == shown


def test_view_formats_every_kind_alike():
    """On the shipped claims with plausible measurements: proportions are k/n (p%) on both sides,
    no cell reads True/False/1.0, and a decimal proportion never appears."""
    claims = load_claims(PAPER / "claims.yml")
    numbers: dict = {}
    for x in claims:
        kind, pub = x["compare"], x["published"]
        if kind in ("exact", "tolerance"):
            value = pub + (kind == "tolerance")
        elif kind == "direction":
            value = 0.5 * pub
        else:
            value = "27/31" if kind == "proportion" else False
        numbers.setdefault(x["result"], {})[x["id"]] = value
    shown = view(scorecard(claims, numbers))
    kinds = [x["compare"] for x in claims]
    kn = re.compile(r"^\d+/\d+ \(\d+\.\d%\)$")
    for kind, pub, meas in zip(kinds, shown["published"], shown["measured"]):
        assert pub not in ("True", "False", "1", "-1", "1.0") and meas not in ("True", "False")
        if kind == "proportion":
            assert kn.match(pub) and kn.match(meas), (pub, meas)
        if kind == "qualitative":
            assert pub == "holds" and meas.startswith("does not hold")
        if kind == "direction":
            assert pub in ("positive", "negative") and meas[0] in "+-"
    # the check above can fail: the old display (a decimal accuracy, a raw boolean) does not pass it
    assert not kn.match("0.903") and not kn.match("28/31")


def _step(stem, item):
    from helpers.engine.registry import Step

    return Step(stem, item, stem)


def test_section_links_find_the_measuring_section(tmp_path):
    (tmp_path / "03_de.md").write_text(
        "# DE (Fig. 2A)\n\nTakeaway: {glue:text}`n_up` and `n_deg`.\n\n"
        "```{code-cell}\n# a comment, not a heading\npage.number('n_deg', 1)\n```\n\n"
        "## Library sizes\n\nn_upper is another key.\n\n"
        '## The DEG call\n\n```{code-cell}\npage.number("n_up", 2)\n```\n\n'
        "## Heatmap (Fig. 2B)\n\nNothing named here.\n\n"
        "## {glue:text}`n_x` genes\n\n`odd` is measured here.\n"
    )
    claims = [
        {"id": "n_up", "item": "Fig. 2A", "result": "de"},
        {"id": "n_deg", "item": "Fig. 2A", "result": "de"},  # only before the first section: page top
        {"id": "heat", "item": "Fig. 2B", "result": "de"},  # not named: the section of its paper item
        {"id": "odd", "item": "Fig. 9", "result": "de"},  # named under a title with markup: page top
        {"id": "gone", "item": "Fig. 1", "result": "elsewhere"},  # no chapter writes it: no link
    ]
    links = section_links(claims, [_step("03_de", "de")], tmp_path)
    assert links == {
        "n_up": "03_de.html#the-deg-call",  # not "library-sizes": n_upper is another word
        "n_deg": "03_de.html",
        "heat": "03_de.html#heatmap-fig-2b",
        "odd": "03_de.html",
    }


@pytest.mark.parametrize(
    "title, ident",
    [
        ("The DEG call", "the-deg-call"),
        ("The paper's reading, tested", "the-paper-s-reading-tested"),
        ("Fig. 4, recomputed", "fig-4-recomputed"),
        ("`pamr` and *PAM*", "pamr-and-pam"),
        ("2C: PCA", "c-pca"),  # an id starts with a letter, as docutils makes it
        ("{glue:text}`n` genes", None),  # rendered text unknown here: no anchor guessed
    ],
)
def test_section_id_is_docutils_make_id(title, ident):
    assert section_id(title) == ident
    if ident is not None:
        from docutils.nodes import make_id

        assert make_id(title.replace("`", "").replace("*", "")) == ident


def test_styled_scorecard_links_legend_and_classes():
    card = scorecard([c("exact", 31)], {"r": {"x": 31}})
    html = styled(card, {"x": "03_de.html#the-deg-call"}).to_html()
    assert '<a class="reference internal" href="03_de.html#the-deg-call">Fig</a>' in html
    assert 'class="helpers-interactive helpers-scorecard"' in html
    assert "<a " not in styled(card).to_html()  # no link without an address
    legend = legend_html(summary(card))
    for s in STATUSES:
        assert f"background-color: {STATUS_COLORS[s]}" in legend and s in legend
    assert "reproduced (1)" in legend and "differs (0)" in legend
