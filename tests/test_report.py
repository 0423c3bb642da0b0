"""helpers.engine.report: numbers, tables, figures, the workbook and the results archive."""

import json
import zipfile

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")


@pytest.fixture
def page(tmp_path, monkeypatch):
    import helpers.engine.paths as paths
    from helpers.engine.report import Page

    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.delenv("HELPERS_STAGE_ITEM", raising=False)
    return Page("demo")


def test_page_writes_numbers_tables_figures(page):
    import matplotlib.pyplot as plt

    page.number("n", 3)
    page.number("x", float("nan"))
    page.table(pd.DataFrame({"a": [1.5, 2.25]}), "t", xlsx=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    img = page.figure(fig, "f")
    page.save()
    d = page.dir
    assert json.loads((d / "numbers.json").read_text()) == {"n": 3, "x": None}
    assert (d / "t.tsv").read_text() == "a\n1.5\n2.25\n"
    assert (d / "t.xlsx").exists() and (d / "f.svg").exists() and (d / "f.png").exists()
    assert img.data[:4] == b"\x89PNG"
    assert page.files == ["t.tsv", "t.xlsx", "f.svg", "f.png"]


def test_xlsx_and_zip_are_reproducible(tmp_path):
    from helpers.engine.report import bundle_results, supplementary_workbook, write_xlsx

    res = tmp_path / "results"
    (res / "cohort").mkdir(parents=True)
    (res / "cohort" / "table_s1.tsv").write_text("cohort\tn\nA\t27\n")
    (res / "cohort" / ".stamp.json").write_text("{}")
    used = supplementary_workbook(res, tmp_path / "a.xlsx")
    supplementary_workbook(res, tmp_path / "b.xlsx")
    assert used == {"Table S1 cohort": "cohort/table_s1.tsv"}
    assert pd.read_excel(tmp_path / "a.xlsx", sheet_name="Table S1 cohort")["n"].tolist() == [27]
    bundle_results(res, tmp_path / "a.zip")
    bundle_results(res, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert zipfile.ZipFile(tmp_path / "a.zip").namelist() == ["cohort/table_s1.tsv"]  # hidden files left out
    write_xlsx({"s": pd.DataFrame({"v": [1]})}, tmp_path / "c.xlsx")
    assert pd.read_excel(tmp_path / "c.xlsx")["v"].tolist() == [1]


def test_show_formats_p_values():
    from helpers.engine.report import show

    html = show(pd.DataFrame({"P.Value": [1.234e-8], "logFC": [1.23456], "n": [3.0]})).to_html()
    assert "1.23e-08" in html and "1.235" in html and ">3<" in html


def test_show_counts_get_thousands_separators_and_one_format_per_column():
    from helpers.engine.report import show

    df = pd.DataFrame(
        {
            "library_size_median": [22875306.5, 19890878.0],  # a median of counts: a count
            "n_genes": [17885, 3],  # integers
            "logFC": [0.5, 2.0],  # a real fraction column: all to 3 decimals, "2.000" not "2"
        }
    )
    html = show(df, index=False).to_html()
    assert ">22,875,306<" in html and ">19,890,878<" in html and "22875306.500" not in html
    assert ">17,885<" in html and ">3<" in html
    assert ">0.500<" in html and ">2.000<" in html
    assert ">2<" not in html


def test_show_interactive_marks_the_table_and_hides_the_index_on_request():
    from helpers.engine.report import show

    df = pd.DataFrame({"gene": ["KCNK3"], "logFC": [1.0]}, index=[7])
    plain = show(df, index=False).to_html()
    marked = show(df, index=False, interactive=True, classes='helpers-scorecard bad"class').to_html()
    assert "helpers-interactive" not in plain
    assert 'class="helpers-interactive helpers-scorecard"' in marked  # an unsafe class name is dropped
    assert "row_heading" not in marked and "row_heading" in show(df).to_html()


@pytest.mark.parametrize(
    "href, ok",
    [
        ("03_de.html#the-deg-call", True),
        ("03_de.html", True),
        ("#fig-volcano", True),
        ("javascript:alert(1)", False),
        ("https://example.org/x.html", False),
        ("../../etc/passwd", False),
        ('03_de.html" onmouseover="x', False),
        ("03_de.html#a b", False),
    ],
)
def test_link_cells_stay_inside_the_book(href, ok):
    from helpers.engine.report import Link, show

    if not ok:
        with pytest.raises(ValueError, match="not a link inside the book"):
            Link("x", href)
        return
    html = show(pd.DataFrame({"item": [Link("Fig. <2A>", href)]}), index=False).to_html()
    assert f'<a class="reference internal" href="{href}">Fig. &lt;2A&gt;</a>' in html


def test_no_figure_glues_the_reason_as_text(page, monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: value}))
    shown = page.no_figure("delta_margin", "only 3 of 14 genes present <b>")
    assert glued["delta_margin"] is shown
    assert shown.data.startswith("*Not drawn: only 3 of 14 genes present \\<b\\>")  # text, never markup
    assert page.files == []  # nothing was written
