"""The run-kind banner: which kind of run made a page, worded once, escaped."""

import pytest

from helpers.engine.runkind import banner, run_kind


def test_twin_real_custom():
    twin = {"dataset": "twin", "seed": 7, "simulate": {"cohorts": [{"name": "A"}, {"name": "B"}]}}
    assert run_kind(twin) == ("twin", "A + B, seed 7")
    assert run_kind({"dataset": "real"})[0] == "real"
    assert run_kind({"dataset": "custom", "custom": {"cohort_name": "my arrays"}}) == ("custom", "my arrays")
    with pytest.raises(ValueError):
        run_kind({"dataset": "other"})


def test_banner_says_simulated_only_for_the_twin():
    assert "simulated twin" in banner("twin", "x")
    assert "simulated" not in banner("real", "GSE153670")
    assert "run-kind-custom" in banner("custom", "mine")


def test_banner_escapes_the_name():
    b = banner("custom", "<script>alert(1)</script> `x` **y**\n# heading")
    body = b.split("\n", 2)[2]
    assert "<script>" not in body and "`x`" not in body and "**y**" not in body
    assert "\n# heading" not in b
    assert b.count("\n") == 3  # fence, class line, one line of text, closing fence


def test_a_page_that_reads_no_cohort_says_so_and_every_banner_is_one_line():
    b = banner("any", "", numbers="{download}`numbers.json </results/workflow/numbers.json>`")
    assert "does not read the cohort" in b and "simulated" not in b and "run-kind-any" in b
    assert b.count("\n") == 3 and "{download}`numbers.json </results/workflow/numbers.json>`" in b
    with pytest.raises(ValueError):
        run_kind({"dataset": "any"})  # the runner's kind, never a dataset


def test_banner_escapes_math_links_and_roles():
    b = banner("custom", "$x$ [a](http://e.x) {glue}`n` a|b \\*")
    line = b.split("\n")[2]
    for raw in ("$x$", "[a]", "{glue}", "`n`", "|", "\\*"):
        assert raw not in line, raw
