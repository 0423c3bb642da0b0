"""The whole book on a hostile cohort (issue 13): gene, sample and cohort names and model fields
made of script tags, event attributes, backticks, quotes, line breaks, formulas and very long
strings. Every HTML page is parsed: no element or attribute came from the data, and the data are
still shown, as text. Every XLSX download is read back: no formula cell.

The cohort is the test twin written out as a custom count table (``dataset: custom``): the
genes that rank highest in differential expression (so they reach the tables, the volcano labels
and the classifier) and every sample get hostile names; the 14 genes of the published model keep
theirs, and chapter 09 scores a model file with hostile fields and three hostile genes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import copy_project
from test_safety import HOSTILE, _markup_from_data

from helpers.data.twin import SIGNATURE_TABLE1

SIGNATURE = list(SIGNATURE_TABLE1)  # the 14 genes of the paper's Table 1 (data/paper/table1.tsv)
GENE_NAMES = [h[:1500] for h in HOSTILE] + ["zqx'single\"double", "zqx\ttab"]
COHORTS = ["<script>zqx_cohort()</script>", '=HYPERLINK("http://zqx.invalid","cohort")']
COHORT_NAME = "custom `zqx` </script><b>zqx_name</b> ```` ```{raw} html <i>zqx</i>"


def _sample_names(n: int) -> list[str]:
    base = [h.replace("\n", " ").replace("\r", " ").strip()[:300] for h in HOSTILE]
    return [f"{base[i % len(base)]} #{i:02d}" for i in range(n)]


def write_hostile_inputs(dest: Path) -> Path:
    """The custom cohort, its sample sheet, a model file and the --params file; returns the last."""
    from helpers.analysis.de import run_de
    from helpers.analysis.model import published_model
    from helpers.data import cohort as C

    coh = C.build_cohort({"dataset": "twin", "simulate_preset": "test", "seed": 20220218})
    counts, samples = coh.counts, coh.samples
    ranked = run_de(counts, samples).sort_values("P.Value").index
    top = [g for g in ranked if g not in SIGNATURE][: len(GENE_NAMES)]
    rename = dict(zip(top, GENE_NAMES))
    snames = dict(zip(counts.columns, _sample_names(counts.shape[1])))
    folder = dest / "data" / "raw" / "hostile"
    folder.mkdir(parents=True)
    with open(folder / "counts.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(["gene"] + [snames[s] for s in counts.columns])
        for g, row in counts.iterrows():
            w.writerow([rename.get(g, g)] + [int(v) for v in row])
    with open(folder / "samples.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(["sample_id", "response", "cohort"])
        for s in counts.columns:
            w.writerow([snames[s], samples.loc[s, "response"], COHORTS[samples.loc[s, "cohort"] != "GSE153670-like"]])
    m = published_model().to_dict()
    extra = GENE_NAMES[:3]
    m.update(
        name="<script>zqx_model()</script> `name`",
        genes=m["genes"] + extra,
        centroids={c: v + [5.0, 5.5, 6.0] for c, v in m["centroids"].items()},
        sd=m["sd"] + [3.0, 3.0, 3.0],
        provenance={"source": "<img src=x onerror=zqx_prov()>", "note": "`zqx` ```"},
    )
    (folder / "model.json").write_text(json.dumps(m, indent=2))
    params = {
        "global": {"dataset": "custom"},
        "notebooks": {
            "01_cohort": {
                "id_type": "symbol",
                "update_symbols": False,
                "custom": {
                    "table": "data/raw/hostile/counts.tsv",
                    "sample_sheet": "data/raw/hostile/samples.tsv",
                    "cohort_name": COHORT_NAME,
                },
            },
            "09_published_model": {"model_name": "data/raw/hostile/model.json"},
        },
    }
    pfile = dest.parent / f"{dest.name}-params.yml"
    pfile.write_text(yaml.safe_dump(params, allow_unicode=True))
    return pfile


_BUILDS: dict = {}
_BOOKS: dict = {}


def _env(dest: Path) -> dict:
    return dict(
        os.environ,
        HELPERS_ROOT=str(dest),
        HELPERS_RESULTS=str(dest / "results"),
        HELPERS_EXECUTED=str(dest / "executed"),
    )


def hostile_run(base: Path, name: str = "hostile"):
    """Copy the project to ``base/name``, write the hostile inputs and run every chapter on the
    test profile; cached for the session. Returns (project folder, completed process)."""
    if name not in _BUILDS:
        dest = copy_project(base / name)
        pfile = write_hostile_inputs(dest)
        cmd = [sys.executable, "-m", "helpers", "run", "--profile", "test", "--params", str(pfile)]
        _BUILDS[name] = (dest, subprocess.run(cmd, cwd=dest, env=_env(dest), capture_output=True, text=True))
    return _BUILDS[name]


def hostile_book(base: Path, name: str = "hostile"):
    """:func:`hostile_run`, then the HTML book; returns (folder, run process, book process)."""
    dest, run = hostile_run(base, name)
    if name not in _BOOKS and run.returncode == 0:
        _BOOKS[name] = subprocess.run(
            [sys.executable, "-m", "helpers", "book"], cwd=dest, env=_env(dest), capture_output=True, text=True
        )
    return dest, run, _BOOKS.get(name)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    dest, run, book = hostile_book(tmp_path_factory.getbasetemp())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert book.returncode == 0, book.stdout[-3000:] + book.stderr[-3000:]
    return dest


def _pages(dest: Path) -> list[Path]:
    html = dest / "_build" / "html"
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)


def _reproduce_boxes(soup):
    return [
        div
        for div in soup.find_all("div", class_="admonition")
        if (t := div.find("p", class_="admonition-title")) is not None and t.get_text().strip() == "Reproduce this page"
    ]


@pytest.mark.slow
def test_no_element_or_attribute_came_from_data(hostile):
    pages = _pages(hostile)
    assert len(pages) > 12
    bad = {}
    n_boxes = 0
    for page in pages:
        soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
        for box in _reproduce_boxes(soup):
            # the box shows parameters as code: its body is two code blocks and prose without data
            n_boxes += 1
            pres = box.find_all("pre")
            assert len(pres) == 2, f"{page.name}: the reproduce box has {len(pres)} code blocks"
            for pre in pres:
                assert not _markup_from_data(str(pre), code_ok=True), f"{page.name}: markup in the reproduce box"
                pre.decompose()
            assert "zqx" not in box.get_text(), f"{page.name}: a parameter escaped the reproduce box's code blocks"
            box.decompose()
        found = _markup_from_data(str(soup))
        if found:
            bad[str(page.relative_to(hostile))] = found[:5]
    assert not bad, bad
    assert n_boxes >= 12, "every chapter page has a reproduce box"


@pytest.mark.slow
def test_hostile_values_are_shown_as_text(hostile):
    def text(stem):
        page = hostile / "_build" / "html" / "executed" / f"{stem}.html"
        return BeautifulSoup(page.read_text(), "html.parser").get_text()

    cohort = text("01_cohort")
    assert COHORTS[0] in cohort and COHORTS[1] in cohort, "Table S1 must show the cohort names"
    assert "zqx_name" in cohort, "the reproduce box must show the cohort_name parameter"
    de = text("03_de")
    assert "<script>zqx_script()</script>" in de and '<img src=x onerror="zqx_img()">' in de
    published = text("09_published_model")
    assert "<script>zqx_script()</script>" in published, "the model's hostile genes must be listed"
    assert "zqx" in text("08_pam"), "the classifier page shows no hostile gene"


@pytest.mark.slow
def test_no_downloaded_workbook_holds_a_formula(hostile):
    books = sorted((hostile / "results").rglob("*.xlsx"))
    assert len(books) >= 4, books
    seen = set()
    for path in books:
        wb = openpyxl.load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    assert c.data_type != "f", f"{path.name}!{ws.title}!{c.coordinate} is a formula: {c.value!r}"
                    if isinstance(c.value, str):
                        seen.add(c.value)
                        if c.value.startswith(("=", "+", "-", "@")):
                            assert c.quotePrefix, f"{path.name}!{c.coordinate} {c.value!r} lacks the quote prefix"
    assert '=HYPERLINK("http://zqx.invalid","click")' in seen and COHORTS[1] in seen
    assert "+zqx" in seen and "@zqx" in seen
