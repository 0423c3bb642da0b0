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


def _variety():
    """Frames of every kind the fast XLSX path takes: text (formula-like, spaced, escaped,
    missing), floats (NaN, infinities, -0.0, tiny and huge), integers, booleans, objects."""
    import numpy as np

    text = ["KCNK3", "=SUM(A1)", "+1", "-x", "@me", "\tt", " lead", "trail ", "   ", "", None, "a<b>&c", "é ü 漢"]
    n = len(text)
    return {
        "mixed": pd.DataFrame(
            {
                "gene": text,
                "x": np.r_[
                    [1.5, np.nan, np.inf, -np.inf, -0.0, 1e-300, 1.7976931348623157e308], np.linspace(0, 1, n - 7)
                ],
                "n": np.arange(n, dtype="int64") * 10**12,
                "flag": [i % 2 == 0 for i in range(n)],
                "obj": [1, 2.5, True, "t", None, float("nan"), np.int64(3), np.float32(0.1), "x", "y", "z", "w", "v"],
            }
        ),
        "=header": pd.DataFrame({"=a": [1, 2], "-b": ["p", "q"], 3: [0.5, 0.25]}),
        "empty": pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}),
        "strings": pd.DataFrame({"s": pd.array(["u", None, "=w"], dtype="string")}),
    }


def test_fast_xlsx_writer_gives_openpyxls_bytes(tmp_path):
    """The fast path writes the rows itself; every byte must be what pandas + openpyxl write."""
    from helpers.engine import report

    def fast_members(frames):  # with the fixed "modified" date (openpyxl stamps the time of saving)
        got = report._fast_members(frames)
        return None if got is None else report._stamped(got)

    def slow_members(frames):
        return report._stamped(report._openpyxl_members(frames, False)[0])

    frames = _variety()
    fast = fast_members(frames)
    assert fast is not None, "the fast path refused frames it is meant to take"
    slow = slow_members(frames)
    assert [n for n, _ in fast] == [n for n, _ in slow]
    for (name, a), (_, b) in zip(fast, slow):
        assert a == b, f"{name} differs from openpyxl's"
    for sheet, df in frames.items():  # and one sheet at a time (style ids start afresh)
        fast1, slow1 = fast_members({sheet: df}), slow_members({sheet: df})
        assert fast1 == slow1, sheet
    # the comparison can fail: another value in one cell gives other bytes
    changed = dict(frames, mixed=frames["mixed"].assign(n=frames["mixed"]["n"] + 1))
    assert fast_members(changed) != slow


def test_fast_xlsx_writer_leaves_what_it_does_not_know_to_openpyxl(tmp_path):
    import datetime as dt

    from helpers.engine import report

    assert report._fast_members({"s": pd.DataFrame({"d": [dt.date(2022, 2, 18)]})}) is None
    assert report._fast_members({"s": pd.DataFrame({"t": pd.to_datetime(["2022-02-18"])})}) is None
    multi = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    assert report._fast_members({"s": multi}) is None
    named = pd.DataFrame({"a": [1]})
    named.columns.name = "label"
    assert report._fast_members({"s": named}) is None
    long = "x" * 31  # two names cut to one sheet: pandas writes both frames into it
    assert report._fast_members({long + "1": pd.DataFrame({"a": [1]}), long + "2": pd.DataFrame({"b": [2]})}) is None
    # and those still get written (by openpyxl), with the index when asked
    out = report.write_xlsx({"s": pd.DataFrame({"d": [dt.date(2022, 2, 18)]})}, tmp_path / "d.xlsx")
    assert pd.read_excel(out)["d"].iloc[0] == pd.Timestamp(2022, 2, 18)
    out = report.write_xlsx({"s": pd.DataFrame({"v": [1]}, index=["r"])}, tmp_path / "i.xlsx", index=True)
    assert pd.read_excel(out).iloc[0].tolist() == ["r", 1]
