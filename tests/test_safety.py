"""Safe to share and safe to interrupt (issue 13): escaping, spreadsheet cells, the run lock,
promotion under kills, the scorer's output and model checks, the decompression cap.

Every rule here has a case where it must say no, and the escaping and formula tests first show
that the unprotected path does produce markup or a formula (so they can fail).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import nbformat
import numpy as np
import openpyxl
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from helpers.analysis import model, scoring
from helpers.data import genesets, loaders
from helpers.engine import io as hio
from helpers.engine import report, runner
from helpers.engine.errors import InputError

TESTS = Path(__file__).resolve().parent

# Strings that become markup (or formulas) if pasted raw. The marker "zqx" lands in a tag or
# attribute name, an attribute value or a script body if any of them is rendered.
HOSTILE = [
    "<script>zqx_script()</script>",
    '<img src=x onerror="zqx_img()">',
    "<zqxtag>bold</zqxtag>",
    '" onmouseover="zqx_attr()" x="',
    "`code` ``` ```` {glue}`zqx_role`",
    "**zqx** [link](javascript:zqx_link()) ![i](x.png)",
    "$\\zqx{math}$ | table | cell |",
    "line one\nline two\r\n# zqx heading",
    "&lt;zqxentity&gt; &amp;",
    '=HYPERLINK("http://zqx.invalid","click")',
    "+zqx",
    "-zqx",
    "@zqx",
    "{{ zqx_substitution }}",
    "<" * 3 + "zqx" + "x" * 5000,
]


def _md_html(text: str) -> str:
    """Render Markdown the way the book does (MyST parser, the book's extensions) to HTML."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    cfg = MdParserConfig(enable_extensions={"colon_fence", "dollarmath", "amsmath", "deflist", "substitution"})
    return create_md_parser(cfg, RendererHTML).render(text)


_FORMATTING = {"strong", "em", "a", "img", "del", "s", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr"}


_JS_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _data_only_in_js_strings(body: str) -> bool:
    """A script may carry data (the interactive volcano's points) only as JSON string literals
    in a body with no "<" at all: then no value can close the element, change the HTML parser's
    state or become code."""
    if "<" in body:
        return False
    return "zqx" not in _JS_STRING.sub('""', body).lower()


def _markup_from_data(html: str, code_ok: bool = False) -> list[str]:
    """Everything in ``html`` that data (the marker ``zqx``) turned into markup: an element or
    attribute named after it, an attribute value, a script or style body, formatting, math or a
    code span or role holding it."""
    soup = BeautifulSoup(html, "html.parser")
    found = []
    for el in soup.find_all(True):
        if "zqx" in el.name.lower():
            found.append(f"element <{el.name}>")
        for k, v in el.attrs.items():
            v = " ".join(v) if isinstance(v, list) else str(v)
            if "zqx" in k.lower() or "zqx" in v.lower():
                found.append(f"attribute {k}={v[:40]!r} on <{el.name}>")
        inside = "zqx" in el.get_text().lower()
        if inside and el.name == "style":
            found.append(f"<{el.name}> body")
        if inside and el.name == "script" and not _data_only_in_js_strings(el.get_text()):
            found.append(f"<{el.name}> body")
        if inside and el.name in _FORMATTING:
            found.append(f"<{el.name}> made from data")
        if inside and el.name == "span" and "math" in (el.get("class") or []):
            found.append("math made from data")
        if inside and el.name == "code" and not code_ok:
            found.append("code span or role made from data")
    return found


# ----------------------------------------------------------------------------- Markdown from values


def test_raw_values_do_make_markup():
    """The control: pasted raw, the hostile values turn into elements (so the next test can fail)."""
    html = _md_html("Genes: " + ", ".join(HOSTILE[:6]))
    assert _markup_from_data(html)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_md_text_and_md_code_make_no_markup(value):
    for context in ("Genes: {v}.", "| a | b |\n|---|---|\n| **Gene list** | {v} |", "- item {v}"):
        html = _md_html(context.format(v=report.md_text(value)))
        assert not _markup_from_data(html), (context, html[:300])
        text = BeautifulSoup(html, "html.parser").get_text()
        assert report.one_line(value) in text, "the value must still be shown, in full, as text"
    html = _md_html("Scale: " + report.md_code(value) + ".")
    soup = BeautifulSoup(html, "html.parser")
    assert not _markup_from_data(html, code_ok=True), html[:300]
    codes = soup.find_all("code")
    assert len(codes) == 1 and codes[0].get_text() == report.one_line(value)


def test_md_code_fence_is_longer_than_any_backtick_run():
    assert report.md_code("a``b") == "```a``b```"
    assert report.md_code("`x`") == "`` `x` ``"
    assert report.md_code("") == "` `"


def test_fig4_box_and_priors_line_make_no_markup():
    """The Markdown that chapters 08 and 09 build from genes, labels, classes and the model."""
    from helpers.analysis import classifier as clf

    perf = {m: 0.5 for m in clf.METRICS} | {f"{m}_text": "1/2" for m in clf.METRICS}
    for cr, nr in (("CR", "NR"), ("C$R\\href{javascript:zqx()}{x}", "N`zqx`R")):
        md = clf.fig4_markdown(HOSTILE, perf, cr=cr, nr=nr)
        html = _md_html(md)
        assert not _markup_from_data(html), _markup_from_data(html)[:3]
        soup = BeautifulSoup(html, "html.parser")
        assert len(soup.find_all("tr")) == 4, "a value broke the table"
        maths = [m.get_text() for m in soup.find_all("span", class_="math")]
        assert maths and not any("zqx" in m or "href" in m for m in maths), maths
        assert HOSTILE[0] in soup.get_text()
    assert "\\delta_{CR}(x^*) < \\delta_{NR}(x^*)" in clf.fig4_markdown(["G"], perf)  # plain labels: the equation
    m = model.published_model()
    hostile = model.Model(
        classes=("<b>zqx</b>", "NR"),
        centroids=m.centroids.set_axis(["<b>zqx</b>", "NR"], axis=1),
        sd=m.sd,
        priors=m.priors.set_axis(["<b>zqx</b>", "NR"]),
        scale="logcpm`<i>zqx</i>`",
    )
    html = _md_html("Priors: " + clf.priors_text(hostile))
    assert not _markup_from_data(html, code_ok=True) and "<b>zqx</b>" in BeautifulSoup(html, "html.parser").get_text()


def test_download_links_of_names_made_from_data_are_plain_code(tmp_path, monkeypatch):
    import helpers.engine.paths as paths

    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.delenv("HELPERS_STAGE_ITEM", raising=False)
    page = report.Page("go")
    assert page.link("fig2d_go_bp_up.svg") == "{download}`fig2d_go_bp_up.svg </results/go/fig2d_go_bp_up.svg>`"
    hostile = "fig_<img src=x onerror=zqx()>`x` <y>.svg"
    html = _md_html(page.link(hostile))
    assert not _markup_from_data(html, code_ok=True) and "download" not in html


# ----------------------------------------------------------------------------- tables


def hostile_frame() -> pd.DataFrame:
    n = len(HOSTILE)
    df = pd.DataFrame(
        {
            "gene": HOSTILE,
            "logFC": np.linspace(-1, 1, n),
            "P.Value": np.linspace(1e-5, 0.5, n),
            HOSTILE[0]: HOSTILE[::-1],
            "obj": [(h,) for h in HOSTILE],
        },
        index=pd.Index(HOSTILE, name=HOSTILE[1]),
    )
    df.columns.name = HOSTILE[2]
    return df


def test_show_escapes_cells_labels_and_names():
    df = hostile_frame()
    raw = df.style.format(escape=None).to_html()  # control: an unescaped Styler makes elements
    assert _markup_from_data(raw)
    for index in (True, False):
        html = report.show(df, index=index).to_html()
        assert not _markup_from_data(html), _markup_from_data(html)[:5]
        text = BeautifulSoup(html, "html.parser").get_text()
        assert HOSTILE[0] in text and "=HYPERLINK" in text
    html = report.show(df.set_index("gene", append=True)).to_html()  # a MultiIndex too
    assert not _markup_from_data(html)
    html = report.show(df.T).to_html()  # and hostile column labels
    assert not _markup_from_data(html)


def test_show_still_formats_numbers():
    html = report.show(pd.DataFrame({"P.Value": [1.234e-8], "logFC": [1.23456], "n": [3.0], "g": ["<b>"]})).to_html()
    assert "1.23e-08" in html and "1.235" in html and ">3<" in html and "&lt;b&gt;" in html


# ----------------------------------------------------------------------------- spreadsheets


def _cells(path):
    wb = openpyxl.load_workbook(path)
    return [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]


def test_xlsx_cells_from_data_are_text_never_formulas(tmp_path):
    df = hostile_frame().drop(columns=["obj"]).reset_index(drop=True)
    ctrl = tmp_path / "plain.xlsx"  # control: pandas + openpyxl alone write a live formula
    df.to_excel(ctrl, index=False)
    assert any(c.data_type == "f" for c in _cells(ctrl))
    out = report.write_xlsx({"s": df, "t": df.T.reset_index()}, tmp_path / "safe.xlsx")
    cells = _cells(out)
    assert not [c.coordinate for c in cells if c.data_type == "f"], "a formula cell"
    values = {c.value for c in cells if isinstance(c.value, str)}
    for h in ('=HYPERLINK("http://zqx.invalid","click")', "+zqx", "-zqx", "@zqx", HOSTILE[0]):
        assert h in values, f"{h!r} not kept verbatim"
    starts = [c for c in cells if isinstance(c.value, str) and c.value.startswith(report.FORMULA_START)]
    assert starts and all(c.quotePrefix for c in starts), "the leading character must stay visible text"
    assert not any(c.quotePrefix for c in cells if isinstance(c.value, str) and c.value == "gene")
    # numbers stay numbers
    assert any(c.data_type == "n" and isinstance(c.value, float) for c in cells)
    # characters XML cannot hold do not break the workbook
    odd = report.write_xlsx({"s": pd.DataFrame({"g\x01": ["a\x02b", "ok"]})}, tmp_path / "odd.xlsx")
    assert [c.value for c in _cells(odd)] == ["g\ufffd", "a\ufffdb", "ok"]


def test_xlsx_and_zip_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    df = pd.DataFrame({"gene": ["A", "=B"], "x": [1.5, 2.0]})
    res = tmp_path / "results"
    (res / "de").mkdir(parents=True)
    (res / "de" / "t.tsv").write_text("a\n1\n")
    (res / "run_log.json").write_text('{"seconds": 1}')
    import datetime as dt
    import types

    import openpyxl.writer.excel as ox

    outs = []
    for i, t in enumerate((1_000_000_000, 1_700_000_000)):  # 2001 and 2023
        monkeypatch.setattr(time, "time", lambda t=t: float(t))  # zip member dates
        monkeypatch.setattr(time, "localtime", lambda secs=None, t=t: time.gmtime(t))
        clock = type(
            "Clock", (dt.datetime,), {"now": classmethod(lambda cls, tz=None, t=t: dt.datetime.fromtimestamp(t, tz))}
        )
        monkeypatch.setattr(ox, "datetime", types.SimpleNamespace(datetime=clock, timezone=dt.timezone))  # "modified"
        outs.append(
            (
                report.write_xlsx({"s": df}, tmp_path / f"w{i}.xlsx").read_bytes(),
                report.bundle_results(res, tmp_path / f"r{i}.zip").read_bytes(),
            )
        )
    assert outs[0][0] == outs[1][0], "XLSX bytes depend on the time of saving"
    assert outs[0][1] == outs[1][1]
    for member in zipfile.ZipFile(io.BytesIO(outs[0][0])).infolist():
        assert member.date_time == (2022, 2, 18, 0, 0, 0)
    names = zipfile.ZipFile(io.BytesIO(outs[0][1])).namelist()
    assert names == ["de/t.tsv"], "run_log.json (timings) must stay out of the archive"
    # a different table gives different bytes (the comparison can fail)
    assert report.write_xlsx({"s": df.assign(x=[1.5, 2.5])}, tmp_path / "w2.xlsx").read_bytes() != outs[0][0]


def test_results_zip_under_the_runner_holds_only_what_the_chapter_reads(tmp_path, monkeypatch):
    """A chapter that zips the results reads only the chapters the registry lists (its
    fingerprint covers those), not one that happens to finish beside it."""
    import helpers.engine.paths as paths

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "book.yml").write_text(
        "chapters:\n  - {stem: 01_a, results: a, title: A}\n  - {stem: 02_b, results: b, title: B}\n"
        "  - {stem: 03_c, results: c, title: C, reads: [01_a]}\n"
    )
    res = tmp_path / "results"
    for item in ("a", "b", "c"):
        (res / item).mkdir(parents=True)
        (res / item / "t.tsv").write_text(item)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setenv("HELPERS_STAGE_ITEM", "c")
    monkeypatch.setenv("HELPERS_STAGE_DIR", str(res / ".staging-c.1-1"))
    out = report.bundle_results(res, tmp_path / "r.zip")
    assert zipfile.ZipFile(out).namelist() == ["a/t.tsv"]
    monkeypatch.delenv("HELPERS_STAGE_ITEM")
    out = report.bundle_results(res, tmp_path / "r.zip", skip=("c",))
    assert zipfile.ZipFile(out).namelist() == ["a/t.tsv", "b/t.tsv"]


# ----------------------------------------------------------------------------- decompression cap


def _gzip_of_zeros(path: Path, n_bytes: int) -> Path:
    """A gzip file inflating to ``n_bytes`` of a TSV-looking text, written in chunks."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        fh.write(c.compress(b"gene\ta\tb\n"))
        chunk = b"G\t1\t2\n" * (1 << 17)
        left = n_bytes
        while left > 0:
            piece = chunk[:left]
            fh.write(c.compress(piece))
            left -= len(piece)
        fh.write(c.flush())
    return path


def test_gzip_bomb_stops_at_the_cap_without_inflating_it(tmp_path, monkeypatch):
    import tracemalloc

    bomb = _gzip_of_zeros(tmp_path / "bomb.tsv.gz", 300 << 20)  # 300 MiB inflated
    assert bomb.stat().st_size < 2 << 20
    monkeypatch.setenv("HELPERS_MAX_INPUT_MB", "8")
    for read in (loaders.read_count_matrix, model.read_expression, genesets.read_gmt):
        tracemalloc.start()
        with pytest.raises(InputError, match="inflate to more than 8 MiB") as e:
            read(bomb)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        msg = str(e.value)
        assert "\n" not in msg and str(bomb) in msg and "HELPERS_MAX_INPUT_MB" in msg
        assert peak < 64 << 20, f"{read.__name__} held {peak >> 20} MiB: the bomb was inflated"


def test_capped_reader_accepts_members_and_padding_refuses_garbage(tmp_path):
    import gzip

    two = gzip.compress(b"gene\ta\n", mtime=0) + gzip.compress(b"G\t1\n", mtime=0)
    p = tmp_path / "two.gz"
    p.write_bytes(two)
    assert hio.read_input(p) == (b"gene\ta\nG\t1\n", True)
    p.write_bytes(two + b"\0" * 1000)  # tape-style zero padding, as gzip(1) accepts
    assert hio.read_input(p).data == b"gene\ta\nG\t1\n"
    p.write_bytes(two + b"garbage")
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        hio.read_input(p)
    p.write_bytes(two[:-9])
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        hio.read_input(p)
    plain = tmp_path / "plain.tsv"
    plain.write_bytes(b"x" * 5000)
    assert hio.read_input(plain, limit=5000).data == b"x" * 5000
    with pytest.raises(InputError, match="more than"):
        hio.read_input(plain, limit=4999)
    with pytest.raises(InputError, match="more than"):  # an endless special file
        hio.read_input("/dev/zero", limit=1 << 20)
    assert hio.max_input_bytes() == hio.MAX_INPUT_BYTES


def test_cap_setting_must_be_a_positive_number(monkeypatch):
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("HELPERS_MAX_INPUT_MB", bad)
        with pytest.raises(InputError, match="HELPERS_MAX_INPUT_MB: must be a positive number"):
            hio.max_input_bytes()
    monkeypatch.setenv("HELPERS_MAX_INPUT_MB", "0.5")
    assert hio.max_input_bytes() == 1 << 19


# ----------------------------------------------------------------------------- the reproduce box


def test_reproduce_box_shows_hostile_parameters_as_text():
    """Values in the box stay inside its two code blocks: the box is one admonition whose body is
    prose, a bash block, prose and a JSON block, whatever backticks or lines the values hold."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    from helpers.engine.registry import Step

    md = create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath"}), RendererHTML)
    value = "x\n````\n<script>zqx()</script>\n```` `y` ~~~"
    cell = runner._reproduce_cell(
        Step("03_de", "de", "DE"), "te`st", {"01_cohort.custom.cohort_name": value}, {"cohort_name": value, "seed": 1}
    )
    top = [t for t in md.parse(cell.source) if t.level == 0]
    assert [t.type for t in top] == ["fence"] and top[0].info.startswith("{admonition} Reproduce this page")
    body = top[0].content.split("\n", 1)[1]  # after the :class: option line
    blocks = [t for t in md.parse(body) if t.level == 0]
    fences = [t for t in blocks if t.type == "fence"]
    assert [t.info for t in fences] == ["bash", "json"], [(t.type, t.info) for t in blocks]
    assert "zqx" in fences[0].content and "zqx" in fences[1].content
    prose = "".join(t.content for t in md.parse(body) if t.type == "inline")
    assert "zqx" not in prose and "script" not in prose
    assert "\n" not in fences[0].content.strip(), "the command must stay on one line"
    assert json.loads(fences[1].content)["cohort_name"] == value
    # the shell command quotes the value: a shell would see it as one word
    import shlex

    words = shlex.split(fences[0].content)
    assert words[-1] == "SET=01_cohort.custom.cohort_name=" + report.one_line(value)


# ----------------------------------------------------------------------------- the scorer


def _expr(tmp_path, scale=1.0, name="e.tsv") -> Path:
    from test_model import made_up_samples

    p = tmp_path / name
    p.write_text((made_up_samples() * scale).to_csv(sep="\t", index_label="gene"))
    return p


def test_scorer_refuses_to_write_onto_its_input(tmp_path, capsys):
    p = _expr(tmp_path)
    before = p.read_bytes()
    link = tmp_path / "hard.tsv"
    os.link(p, link)
    m = tmp_path / "m.json"
    model.save_model(model.published_model(), m)
    cases = [
        (p, "published", "is the input file"),
        (link, "published", "is the input file"),
        (tmp_path / "." / "e.tsv", "published", "is the input file"),
        (m, str(m), "is the input file"),
    ]
    for out, mdl, msg in cases:
        assert scoring.score_cli(mdl, str(p), str(out)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err, err
    assert p.read_bytes() == before
    json.loads(m.read_text())  # the model file intact


def test_scorer_refuses_special_files_links_and_missing_folders(tmp_path, capsys):
    p = _expr(tmp_path)
    target = tmp_path / "target.tsv"
    target.write_text("keep")
    sym = tmp_path / "sym.tsv"
    sym.symlink_to(target)
    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/dev/stdout")
    for out, msg in [
        (sym, "symbolic link"),
        (stdout_link, "symbolic link"),
        ("/dev/null", "device"),
        (tmp_path, "folder"),
        (tmp_path / "no" / "such" / "s.tsv", "folder does not exist"),
    ]:
        assert scoring.score_cli("published", str(p), str(out)) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and "\n" not in err, err
    assert sym.is_symlink() and target.read_text() == "keep"
    assert not (tmp_path / "no").exists()
    # and a plain new file in an existing folder is fine
    assert scoring.score_cli("published", str(p), str(tmp_path / "scores.tsv")) == 0
    assert (tmp_path / "scores.tsv").read_text().startswith("sample\tdelta_CR")


@pytest.mark.parametrize(
    "over, match",
    [
        ({"scale": "toy units"}, "unknown expression scale 'toy units'"),
        ({"scale": "logcpm`<b>"}, "unknown expression scale"),
        ({"scale": 3}, "unknown expression scale"),
        ({"sd": [1.0, float("nan")]}, "sd: contains a missing or infinite value"),
        ({"sd": [1.0, float("inf")]}, "sd: contains a missing or infinite value"),
        ({"sd": [1.0, -2.0]}, "sd: must be positive"),
        ({"priors": {"CR": 0.5, "NR": 0.4}}, "priors: must be positive and sum to 1"),
        ({"priors": {"CR": 1.5, "NR": -0.5}}, "priors: must be positive and sum to 1"),
        ({"priors": {"CR": float("nan"), "NR": 0.5}}, "priors: must be positive and sum to 1"),
        ({"centroids": {"CR": [0.0, float("nan")], "NR": [1.0, 1.0]}}, "missing or infinite"),
    ],
)
def test_model_file_is_validated(tmp_path, over, match):
    d = {
        "name": "toy",
        "classes": ["CR", "NR"],
        "genes": ["G1", "G2"],
        "centroids": {"CR": [0.0, 0.0], "NR": [2.0, 2.0]},
        "sd": [1.0, 1.0],
        "priors": {"CR": 0.5, "NR": 0.5},
        "scale": "logcpm",
    }
    model._build(dict(d), "ok")  # the unchanged model is accepted
    d.update(over)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))  # NaN and Infinity as Python's json writes them
    with pytest.raises(InputError, match=match) as e:
        model.load_model(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_scorer_checks_the_input_is_log2_expression(tmp_path, capsys):
    ok = _expr(tmp_path, 1.0, "log2.tsv")
    assert scoring.score_cli("published", str(ok), None) == 0
    capsys.readouterr()
    counts = tmp_path / "counts.tsv"
    from test_model import made_up_samples

    x = made_up_samples()
    (2**x).round().astype(int).to_csv(counts, sep="\t", index_label="gene")
    big = _expr(tmp_path, 10.3, "linear.tsv")  # values up to 82: not log2
    neg = tmp_path / "neg.tsv"
    x.assign(A=x["A"] - 40).to_csv(neg, sep="\t", index_label="gene")
    for path, msg in [
        (counts, "non-negative whole number"),
        (big, "outside the plausible log2 range"),
        (neg, "outside the plausible log2 range"),
    ]:
        out = tmp_path / f"{path.stem}.scores.tsv"
        assert scoring.score_cli("published", str(path), str(out)) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and str(path) in err and "\n" not in err, err
        assert not out.exists()
    # whole numbers are fine when some are negative (log2 of rounded values), and within range
    model.check_log2_scale(pd.DataFrame({"a": [-1.0, 3.0], "b": [2.0, 5.0]}), "t")


# ----------------------------------------------------------------------------- run lock and promotion

sys.path.insert(0, str(TESTS))
from test_runner import make_project, nb, write_md  # noqa: E402


@pytest.fixture
def proj(tmp_path, monkeypatch):
    p = make_project(tmp_path)
    monkeypatch.setenv("HELPERS_ROOT", str(tmp_path))
    monkeypatch.setenv("HELPERS_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("HELPERS_KILL_AT", raising=False)
    # pin the helper-code part of the fingerprint (see test_runner.freeze_code): an edit of src/
    # while these tests run must not make an unchanged chapter look changed
    monkeypatch.setenv("HELPERS_TEST_CODE_HASH", "frozen")
    return p


def quiet(*a, **k):
    pass


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from helpers.engine.runner import run, Project
from test_runner import STEPS
root = Path({root!r})
proj = Project(root=root, results=root / "results", executed=root / "executed", steps=STEPS)
run(proj, sets={sets!r}, only={only!r}, log=lambda *a, **k: None)
"""


def _driver(proj, sets, only=None, kill_at=None):
    code = DRIVER.format(tests=str(TESTS), root=str(proj.root), sets=sets, only=only)
    env = dict(os.environ, HELPERS_ROOT=str(proj.root), HELPERS_RESULTS=str(proj.results))
    env.pop("HELPERS_KILL_AT", None)
    if kill_at:
        env["HELPERS_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lock_is_exclusive_reentrant_and_names_the_holder(tmp_path):
    proj = runner.Project(root=tmp_path, results=tmp_path / "r", executed=tmp_path / "e", steps=())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from helpers.engine import runner\n"
                f"p = runner.Project(root=Path({str(tmp_path)!r}), steps=())\n"
                "with runner.run_lock(p):\n    print('locked', flush=True)\n    time.sleep(60)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runner.RunLocked) as e:
            with runner.run_lock(proj):
                pass
        msg = str(e.value)
        assert f"pid {holder.pid}" in msg and "started 20" in msg and "command:" in msg and "\n" not in msg, msg
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: this process takes it, twice (re-entrant)
    with runner.run_lock(proj) as path:
        with runner.run_lock(proj):
            assert json.loads(path.read_text())["pid"] == os.getpid()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from pathlib import Path; from helpers.engine import runner\n"
                    f"p = runner.Project(root=Path({str(tmp_path)!r}), steps=())\n"
                    "try:\n    runner.run_lock(p).__enter__()\nexcept runner.RunLocked:\n    print('refused')\n"
                ),
            ],
            capture_output=True,
            text=True,
        )
        assert child.stdout.strip() == "refused", "the lock must still be held after the inner release"


def test_leftovers_of_live_runs_are_kept_and_of_dead_runs_removed(proj):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = f"{sleeper.pid}-{runner._proc_start(sleeper.pid)}"
        assert runner.run_alive(live) and runner.run_alive(runner.run_id())
        dead = f"{sleeper.pid}-{int(runner._proc_start(sleeper.pid)) + 1}"  # same pid, other start: pid reuse
        assert not runner.run_alive(dead) and not runner.run_alive("99999999-1") and not runner.run_alive("x")
        proj.results.mkdir()
        proj.executed.mkdir()
        made = []
        for rid in (live, dead):
            for p in (proj.results / f".staging-c.{rid}", proj.results / f".old-a.{rid}"):
                p.mkdir()
                (p / "out.tsv").write_text(rid)
                made.append(p)
            nb = proj.executed / f".03_c.{rid}.running.ipynb"
            nb.write_text("{}")
            made.append(nb)
        runner.recover(proj, log=quiet)
        assert all(p.exists() for p in made if live in p.name), "a live run's files were removed"
        assert not any(p.exists() for p in made if dead in p.name), "a dead run's leftovers were kept"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_legacy_lone_backup_is_restored(proj):
    """A kill of the old runner between moving results/X aside and moving the new one in."""
    (proj.results / ".old-a").mkdir(parents=True)
    (proj.results / ".old-a" / "out.tsv").write_text("1")
    (proj.results / ".staging-a").mkdir()
    runner.recover(proj, log=quiet)
    assert (proj.results / "a" / "out.tsv").read_text() == "1"
    assert sorted(p.name for p in proj.results.iterdir()) == ["a"]


@pytest.mark.slow
def test_two_runs_at_once(proj):
    """While one run executes, a second run (same or another notebook) is refused at once with
    one line naming the first; the first completes, and nothing it wrote is lost."""
    (proj.root / "config" / "book.yml").write_text(  # the command line reads the chapter registry
        "chapters:\n  - {stem: 01_a, results: a, title: A}\n  - {stem: 02_b, results: b, title: B, reads: [01_a]}\n"
        "  - {stem: 03_c, results: c, title: C}\n"
    )
    run = runner.run
    assert run(proj, log=quiet) == {"01_a": "ran", "02_b": "ran", "03_c": "ran"}
    # 03_c now waits (after writing its result) until the test releases it
    release = proj.root / "release"
    write_md(
        nb(
            "seed = 1\ny = 1\nfail = False\nnap = 0\nprofile = 'default'",
            "import time\nfrom pathlib import Path\nfrom helpers.engine.paths import results_dir\n"
            "(results_dir('c') / 'out.tsv').write_text(str(y))\nt0 = time.time()\n"
            f"while not Path({str(release)!r}).exists() and time.time() - t0 < 600:\n    time.sleep(0.2)",
        ),
        proj.notebooks / "03_c.ipynb",
    )
    first = _driver(proj, {"03_c.y": 4}, only=["03"])
    try:
        deadline = time.time() + 120
        while not list(proj.results.glob(".staging-c.*/out.tsv")) and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert list(proj.results.glob(".staging-c.*/out.tsv")), "the first run never started its notebook"
        for only in (["03"], ["01"], None):
            with pytest.raises(runner.RunLocked) as e:
                run(proj, sets={"03_c.y": 5}, only=only, log=quiet)
            assert f"pid {first.pid}" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(runner.RunLocked):
            runner.build_book(proj, log=quiet)
        # the command line (`make book` runs it): exit status 1, one line naming the first run
        env = dict(
            os.environ,
            HELPERS_ROOT=str(proj.root),
            HELPERS_RESULTS=str(proj.results),
            HELPERS_EXECUTED=str(proj.executed),
        )
        for args in (["run", "--only", "01"], ["run", "--book"], ["book"]):
            cli = subprocess.run([sys.executable, "-m", "helpers", *args], env=env, capture_output=True, text=True)
            err = cli.stderr.strip()
            assert cli.returncode == 1 and "\n" not in err, (args, cli.stderr)
            assert err.startswith("error: ") and "another run is in progress" in err and f"pid {first.pid}" in err, err
        assert first.poll() is None, "the first run ended before the checks were done"
        release.write_text("go")
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert (proj.results / "c" / "out.tsv").read_text() == "4"
    assert (proj.results / "a" / "out.tsv").read_text() == "1" and (proj.results / "b" / "out.tsv").read_text() == "10"
    assert _state(proj) == ("4", "4", "4"), "results, executed notebook and stamp of the first run disagree"


def _state(proj, stem="03_c", item="c"):
    """What results, executed notebook and stamp of a chapter say its y was (they must agree)."""
    out = (proj.results / item / "out.tsv").read_text()
    stamp = json.loads((proj.results / item / runner.STAMP).read_text())
    nb = nbformat.read(proj.executed / f"{stem}.ipynb", as_version=4)
    injected = [c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    m = re.search(r"^y = (\d+)$", injected[0], re.M)
    return out, str(stamp["params"]["y"]), m.group(1) if m else None


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in runner.KILL_STEPS if not s.startswith("book")])
def test_kill_at_each_step_of_a_promotion(proj, step):
    """Kill the runner at each step of promoting 03_c; recovery leaves results, executed notebook
    and fingerprint stamp agreeing (old or new, never mixed), and the next run completes."""
    run = runner.run
    run(proj, log=quiet)
    assert _state(proj) == ("1", "1", "1")
    p = _driver(proj, {"03_c.y": 7}, only=["03"], kill_at=step)
    assert p.wait(timeout=300) == 137, p.stderr.read()
    runner.recover(proj, log=quiet)
    state = _state(proj)
    expected = ("1",) * 3 if step == "staged" else ("7",) * 3  # before the journal: old; after: new
    assert state == expected, (step, state)
    leftovers = [f.name for d in (proj.results, proj.executed) for f in d.iterdir() if f.name.startswith(".")]
    assert leftovers == [], leftovers
    # the fingerprint agrees: a run with y=7 skips 03_c exactly when the promotion was finished
    st = run(proj, sets={"03_c.y": 7}, log=quiet)
    assert st["03_c"] == ("ran" if step == "staged" else "skipped"), (step, st)
    assert _state(proj) == ("7",) * 3
    assert st["01_a"] == st["02_b"] == "skipped"


BOOK_DRIVER = """
import sys
from pathlib import Path
from helpers.engine import runner
root = Path({root!r})
def fake(project, out):
    html = out / "_build" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text("{tag}")
    (html / "page.html").write_text("{tag}")
runner._jupyter_book = fake
runner._install_mathjax = lambda project: None
runner.build_book(runner.Project(root=root, results=root / "results", executed=root / "executed", steps=()))
"""


@pytest.mark.parametrize("step", [s for s in runner.KILL_STEPS if s.startswith("book")])
def test_kill_at_each_step_of_the_book_swap(tmp_path, step):
    (tmp_path / "config").mkdir()

    def build(tag, kill_at=None):
        env = dict(os.environ)
        env.pop("HELPERS_KILL_AT", None)
        if kill_at:
            env["HELPERS_KILL_AT"] = kill_at
        return subprocess.run(
            [sys.executable, "-c", BOOK_DRIVER.format(root=str(tmp_path), tag=tag)],
            env=env,
            capture_output=True,
            text=True,
        )

    assert build("old").returncode == 0
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").read_text() == "old"
    assert build("new", kill_at=step).returncode == 137
    proj = runner.Project(root=tmp_path, results=tmp_path / "results", executed=tmp_path / "executed", steps=())
    runner.recover(proj, log=quiet)
    pages = {(html / "index.html").read_text(), (html / "page.html").read_text()}
    assert pages == ({"old"} if step == "book-built" else {"new"}), (step, pages)
    assert [f.name for f in (tmp_path / "_build").iterdir()] == ["html"]
    assert build("newer").returncode == 0 and (html / "page.html").read_text() == "newer"


def test_script_data_rule_says_no_to_code_and_angle_brackets():
    assert _data_only_in_js_strings('var f={"gene":"zqx1"};plot(f);')
    assert not _data_only_in_js_strings("var f=zqx1;")  # data as code
    assert not _data_only_in_js_strings('var f={"gene":"zqx</script>"};')  # can close the element
    assert not _data_only_in_js_strings('var f={"a":"x"};zqx();"y"')


def test_interactive_volcano_keeps_data_inside_json_strings():
    """Gene names that try to close the script, open a comment or a new script stay JSON
    string data: the script body has no "<", ">" or "&" at all."""
    from bs4 import BeautifulSoup

    from helpers.viz.interactive import volcano_html

    genes = ["zqx</script><b>x</b>", "zqx<!--<script>", "zqx&amp;\u2028", "KCNK3"]
    t = pd.DataFrame(
        {"logFC": [2.0, -1.5, 0.1, 1.0], "P.Value": [1e-6, 1e-4, 0.5, 1e-3], "direction": ["up", "down", "ns", "up"]},
        index=genes,
    )
    html = volcano_html(t, 0.01, 0.58)
    soup = BeautifulSoup(html, "html.parser")
    scripts = [s for s in soup.find_all("script") if not s.get("src")]
    assert len(scripts) == 1 and not soup.find_all("b")
    body = scripts[0].get_text()
    assert not set("<>&") & set(body)
    assert _data_only_in_js_strings(body)
    assert _markup_from_data(html) == []
