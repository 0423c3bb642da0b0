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
