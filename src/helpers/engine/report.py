"""What a notebook page reports: glued numbers (also written to ``numbers.json``), tables
(TSV, optionally XLSX), figures (SVG + PNG) and a download list for the page.

    page = Page("de")
    page.number("n_up", 57)                  # {glue:text}`n_up` in the prose
    page.table(df, "table_s2", xlsx=True)
    page.figure(fig, "fig2a_volcano")
    page.downloads()                         # links to every file this page wrote
    page.save()                              # numbers.json

One escaping rule for everything the book renders from data or parameters (gene, sample and
cohort names, model fields, paths): a value is shown as text, never as markup.

- tables: :func:`show` (cells, index and column labels and their names are HTML-escaped);
- Markdown built from values: :func:`md_text` (text) and :func:`md_code` (a code span), which
  neutralise Markdown, MyST (roles, directives, substitutions, math) and raw HTML;
- spreadsheets: :func:`write_xlsx` writes every text cell as text, never as a formula;
- figures: the book's matplotlib style turns mathtext off, so a ``$`` in a label is a ``$``.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import io as _io
import math
import os
import re
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.engine import paths
from helpers.engine.io import atomic_path, save_figure, write_json, write_tsv

_FIXED_TIME = _dt.datetime(2022, 2, 18)  # the paper's publication date: XLSX metadata stays constant
_ZIP_TIME = (2022, 2, 18, 0, 0, 0)  # the same date for every member of a zip (results.zip, XLSX)


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


# ----------------------------------------------------------------------------- escaping

# CommonMark lets any ASCII punctuation be escaped with a backslash; escaping all of it turns
# off every inline and block construct (emphasis, links, raw HTML, entities, tables' pipes,
# MyST roles and substitutions, dollar math) whatever the context.
_MD_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def one_line(value) -> str:
    """``str(value)`` on one line: line breaks, tabs and other control characters become spaces."""
    text = str(value)
    return "".join(" " if (unicodedata.category(ch) in ("Cc", "Zl", "Zp")) else ch for ch in text)


def md_text(value) -> str:
    """``value`` as literal text inside Markdown (prose, a list item or a table cell): every
    ASCII punctuation character is backslash-escaped and line breaks become spaces, so the text
    can open no tag, link, code span, role, directive, math or table cell."""
    return "".join("\\" + ch if ch in _MD_PUNCT else ch for ch in one_line(value))


def md_code(value) -> str:
    """``value`` as one inline code span, whatever backticks it holds (the fence is one backtick
    longer than the longest run inside; CommonMark's padding rule keeps edge spaces and
    backticks). Not for table cells: there a ``|`` still ends the cell; use :func:`md_text`."""
    text = one_line(value)
    if not text:
        return "` `"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if (text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " " and text.strip())) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def tex_label(value) -> str | None:
    """``value`` itself if it can stand inside ``$...$`` math unchanged (letters and digits only),
    else None: a ``$``, backslash or brace in a label could end the math or run a TeX command."""
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z0-9]+", text) else None


def _html_label(v):
    """An index or column label for an HTML table: text escaped, numbers kept as they are."""
    if isinstance(v, tuple):
        return tuple(_html_label(x) for x in v)
    if v is None or isinstance(v, (bool, int, float, np.number)):
        return v
    return _html.escape(str(v))


def _html_index(ix: pd.Index) -> pd.Index:
    names = [_html_label(n) for n in ix.names]
    if isinstance(ix, pd.MultiIndex):
        return pd.MultiIndex.from_tuples([_html_label(t) for t in ix], names=names)
    if pd.api.types.is_numeric_dtype(ix.dtype) or pd.api.types.is_bool_dtype(ix.dtype):
        return ix.rename(names[0])
    return pd.Index([_html_label(v) for v in ix], name=names[0], dtype=object)


def _is_missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists, arrays: not a single missing value
        return False


#: what a link in a table may point to: a page of the book (relative, optionally with an anchor)
_SAFE_HREF = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*(\.html)?(#[A-Za-z0-9_-]+)?|#[A-Za-z0-9_-]+")


class Link:
    """A table cell that links to another page of the book: ``Link("Fig. 2A", "03_de.html#the-deg-call")``.

    :func:`show` renders it as ``<a href=...>text</a>``, the text escaped; the address must be a
    relative path made of letters, digits, ``._-/`` with an optional ``#anchor`` (no scheme, no
    ``..``, no query), so a value from data can never become a script or leave the book."""

    __slots__ = ("text", "href")

    def __init__(self, text, href: str):
        href = str(href)
        if not _SAFE_HREF.fullmatch(href) or ".." in href.split("#")[0].split("/"):
            raise ValueError(f"not a link inside the book: {href!r}")
        self.text, self.href = one_line(text), href

    def html(self) -> str:
        return f'<a class="reference internal" href="{_html.escape(self.href)}">{_html.escape(self.text)}</a>'

    def __str__(self) -> str:  # TSV, search and sort see the text
        return self.text

    def __repr__(self) -> str:
        return f"Link({self.text!r}, {self.href!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Link) and (self.text, self.href) == (other.text, other.href)

    def __hash__(self) -> int:
        return hash((self.text, self.href))


def _html_cell(v) -> str:
    if isinstance(v, Link):
        return v.html()
    return "" if _is_missing(v) else _html.escape(str(v))


def fmt_int(v) -> str:
    """A whole number as a reader reads it: ``22875306`` -> ``22,875,306`` (``1234`` too; under
    1,000 unchanged)."""
    return f"{int(v):,}"


class Page:
    """Collects the outputs of one notebook under ``results/<item>/``."""

    def __init__(self, item: str):
        self.item = item
        self.dir = paths.results_dir(item)
        self.numbers: dict = {}
        self.files: list[str] = []

    # -- numbers --------------------------------------------------------------------------
    def number(self, key: str, value, glue_value=None):
        """Record ``value`` under ``key`` (numbers.json) and glue it for the prose."""
        from myst_nb import glue

        self.numbers[key] = _clean(value)
        glue(key, value if glue_value is None else glue_value, display=False)

    def numbers_from(self, mapping: dict, prefix: str = ""):
        for k, v in mapping.items():
            self.number(prefix + k, v)

    # -- files ----------------------------------------------------------------------------
    def _add(self, name: str):
        if name not in self.files:
            self.files.append(name)

    def table(self, df: pd.DataFrame, name: str, index: bool = False, xlsx: bool = False) -> pd.DataFrame:
        """Write ``<name>.tsv`` (and ``<name>.xlsx``) and return the frame for display."""
        write_tsv(df, self.dir / f"{name}.tsv", index=index)
        self._add(f"{name}.tsv")
        if xlsx:
            write_xlsx({name[:31]: df}, self.dir / f"{name}.xlsx", index=index)
            self._add(f"{name}.xlsx")
        return df

    def figure(self, fig, name: str):
        """Save ``fig`` as SVG and PNG, close it, glue the PNG under ``name`` and return it.

        A page shows it as a numbered figure with a caption and alt text through MyST::

            ```{glue:figure} fig2a_volcano
            :name: fig-volcano
            :alt: Volcano plot: one point per gene, ...

            The caption.
            ```

        (``display(page.figure(...))`` still shows it bare, without number or caption.)
        """
        import matplotlib.pyplot as plt
        from IPython.display import Image
        from myst_nb import glue

        out = save_figure(fig, self.dir / name)
        plt.close(fig)
        self._add(f"{name}.svg")
        self._add(f"{name}.png")
        img = Image(filename=str(out["png"]))
        glue(name, img, display=False)
        return img

    def no_figure(self, name: str, reason: str):
        """When a figure cannot be drawn on these data (a data limitation, not a bug): glue the
        reason, as text, under the figure's name, so the page's numbered figure says "not drawn:
        <reason>" instead of failing the build on a missing glue key. Returns the Markdown."""
        from IPython.display import Markdown
        from myst_nb import glue

        shown = Markdown(f"*Not drawn: {md_text(reason)}*")
        glue(name, shown, display=False)
        return shown

    def file(self, name: str) -> Path:
        """A path for another output file of this page (listed in the downloads)."""
        self._add(name)
        return self.dir / name

    def link(self, name: str) -> str:
        """A MyST download link to one of this page's files (plain name if results/ is outside the book)."""
        final = paths.RESULTS / self.item / name
        try:
            rel = final.resolve().relative_to(paths.ROOT).as_posix()
        except ValueError:
            return md_code(name)
        if not re.fullmatch(r"[A-Za-z0-9_.+/-]+", rel):  # a name made from data: shown, not linked
            return md_code(name)
        return f"{{download}}`{name} </{rel}>`"

    def downloads(self):
        """Markdown list of this page's files, for display at the end of a page."""
        from IPython.display import Markdown

        items = " · ".join(self.link(n) for n in self.files)
        return Markdown(f"**Downloads (source data and figures):** {items}" if items else "")

    def save(self) -> Path:
        return write_json(self.numbers, self.dir / "numbers.json")


#: A cell that starts with one of these is read as a formula by spreadsheet programs.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters XML 1.0 cannot hold


def _xlsx_safe(v):
    return _XLSX_ILLEGAL.sub("\ufffd", v) if isinstance(v, str) else v


def _xlsx_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text (cells and labels) holds no character an XLSX file cannot store."""
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            out.isetitem(i, col.map(_xlsx_safe))

    def labels(ix):
        if isinstance(ix, pd.MultiIndex):
            return pd.MultiIndex.from_tuples(
                [tuple(_xlsx_safe(x) for x in t) for t in ix], names=[_xlsx_safe(n) for n in ix.names]
            )
        if ix.dtype == object:
            return pd.Index([_xlsx_safe(x) for x in ix], name=_xlsx_safe(ix.name), dtype=object)
        return ix

    out.columns = labels(out.columns)
    out.index = labels(out.index)
    return out


def text_cells(book) -> int:
    """Make every text cell of an openpyxl workbook plain text: a string that starts with ``=``
    (which openpyxl stores as a formula) is stored as a string again, and every string that
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets Excel's quote prefix,
    so it stays visible text when the cell is edited. Returns how many cells were changed."""
    n = 0
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
                if cell.data_type == "s" and isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    cell.quotePrefix = True
                    n += 1
    return n


def _write_zip(members, out: Path) -> Path:
    """Write ``members`` ((name, bytes) pairs, in the given order) as a zip with fixed metadata."""
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.create_system = 3
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    return Path(out)


def _stamped(members: list) -> list:
    """openpyxl stamps the document's "modified" date with the time of saving: the fixed date instead."""
    stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    pat = rb"(<dcterms:modified\b[^>]*>)[^<]*(</dcterms:modified>)"
    return [(n, re.sub(pat, rb"\g<1>" + stamp + rb"\g<2>", d) if n == "docProps/core.xml" else d) for n, d in members]


def _openpyxl_members(sheets: dict, index: bool, extra=None) -> tuple[list, object]:
    """The workbook pandas and openpyxl write for ``sheets`` (text cells made text, fixed
    properties), as its zip members in order; ``extra(book)`` may add cells before the text pass."""
    buf = _io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        for sheet, df in sheets.items():
            _xlsx_frame(df).to_excel(xw, sheet_name=str(sheet)[:31], index=index)
        if extra is not None:
            extra(xw.book)
        text_cells(xw.book)
        props = xw.book.properties
        props.created = props.modified = _FIXED_TIME
        props.creator = props.lastModifiedBy = "helpers"
    with zipfile.ZipFile(_io.BytesIO(buf.getvalue())) as zin:
        return [(i.filename, zin.read(i)) for i in zin.infolist()], xw.book


def _excel_value(v):
    """A value as pandas' ``to_excel`` hands it to openpyxl (missing -> "", infinities -> "inf"
    and "-inf", numpy scalars -> Python, anything else -> ``str``), or ``_NOT_FAST`` for the
    values this module leaves to pandas (dates and times)."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (_dt.date, _dt.time, _dt.timedelta, np.datetime64, np.timedelta64)):
        return _NOT_FAST
    return str(v)


_NOT_FAST = object()


def _fast_columns(df: pd.DataFrame):
    """``df``'s header and columns as the values pandas would write (see :func:`_excel_value`),
    or None when the frame is outside what :func:`_sheet_xml` writes (labels that are not flat,
    named column labels, date or time values)."""
    if isinstance(df.columns, pd.MultiIndex) or df.columns.name is not None or df.shape[1] == 0:
        return None
    header = [_excel_value(c) for c in df.columns]
    cols = []
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        kind = col.dtype.kind
        if kind in "iu":
            cols.append([int(v) for v in col.to_numpy()])
        elif kind == "b":
            cols.append([bool(v) for v in col.to_numpy()])
        elif kind == "f":
            cols.append([_excel_value(v) for v in col.to_numpy().tolist()])
        elif kind == "O" or pd.api.types.is_string_dtype(col.dtype):
            cols.append([_excel_value(v) for v in col.to_numpy(dtype=object)])
        else:
            return None
    if any(v is _NOT_FAST for v in header) or any(v is _NOT_FAST for c in cols for v in c):
        return None
    return header, cols


def _col_letter(i: int) -> str:
    """Column ``i`` (1-based) as Excel names it: A..Z, AA.."""
    out = ""
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def _cell_xml(ref: str, v, style: int) -> str:
    """One ``<c>`` element exactly as openpyxl's writer serialises it (inline strings, numbers
    as ``%.16g``, booleans as 1/0, an empty string as an empty inline string)."""
    s = f' s="{style}"' if style else ""
    if isinstance(v, bool):
        return f'<c r="{ref}"{s} t="b"><v>{int(v)}</v></c>'
    if isinstance(v, (int, float)):
        return f'<c r="{ref}"{s} t="n"><v>{"%.16g" % v}</v></c>'  # noqa: UP031 (openpyxl's own format)
    if v == "":
        return f'<c r="{ref}"{s} t="inlineStr" />'
    text = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    stripped = v.strip()
    t = '<t xml:space="preserve">' if stripped and stripped != v else "<t>"
    return f'<c r="{ref}"{s} t="inlineStr"><is>{t}{text}</t></is></c>'


def _sheet_xml(header: list, cols: list, styles: dict) -> tuple[str, str]:
    """The ``<sheetData>`` of a sheet (header row, then one row per record) and its dimension;
    ``styles``: (row, column) -> style id of the cells that have one."""
    letters = [_col_letter(j + 1) for j in range(len(header))]
    n = len(cols[0]) if cols else 0
    rows = ["<sheetData>"]
    for r, values in enumerate([header, *zip(*cols)] if n else [header], start=1):
        cells = "".join(_cell_xml(f"{letters[j]}{r}", v, styles.get((r, j + 1), 0)) for j, v in enumerate(values))
        rows.append(f'<row r="{r}">{cells}</row>')
    rows.append("</sheetData>")
    return "".join(rows), f"A1:{letters[-1]}{n + 1}"


def _fast_members(sheets: dict) -> list | None:
    """The members of the workbook :func:`_openpyxl_members` writes for ``sheets`` (index
    left out), byte for byte, or None if a frame is outside the fast path.

    Why not openpyxl alone: it builds a Python object per cell and serialises each through an
    element tree (about 25 microseconds a cell; the supplementary workbook has some 90,000
    cells). Here openpyxl and pandas still write the workbook (styles, properties, every part)
    for the header rows and the few cells that need a style (text that starts like a formula
    gets Excel's quote prefix, :func:`text_cells`), so every style is registered in the order
    openpyxl's writer would; only the rows of the sheets are then written as text, in
    openpyxl's own serialisation. tests/test_report.py compares the bytes with openpyxl's."""
    frames, data = {}, []
    for sheet, df in sheets.items():
        safe = _xlsx_frame(df)
        got = _fast_columns(safe)
        if got is None:
            return None
        frames[sheet] = safe
        data.append(got)

    def quoted_cells(book):
        for ws, (_, cols) in zip(book.worksheets, data):
            for j, col in enumerate(cols, start=1):
                for i, v in enumerate(col, start=2):
                    if isinstance(v, str) and v.startswith(FORMULA_START):
                        ws.cell(row=i, column=j, value=v)

    skeleton = {s: df.iloc[:0] for s, df in frames.items()}
    members, book = _openpyxl_members(skeleton, False, extra=quoted_cells)
    if len(book.worksheets) != len(data):
        return None  # two frames' sheet names cut to the same 31 characters: openpyxl's behaviour, by openpyxl
    members = dict(members)
    for k, (ws, (header, cols)) in enumerate(zip(book.worksheets, data), start=1):
        styles = {(c.row, c.column): c.style_id for row in ws.iter_rows() for c in row if c.has_style}
        rows, dim = _sheet_xml(header, cols, styles)
        name = f"xl/worksheets/sheet{k}.xml"
        xml = members[name].decode("utf-8")
        xml, n_dim = re.subn(r'<dimension ref="[^"]*" />', f'<dimension ref="{dim}" />', xml, count=1)
        xml, n_data = re.subn(
            r"<sheetData>.*</sheetData>|<sheetData />", lambda m, rows=rows: rows, xml, count=1, flags=re.S
        )
        if n_dim != 1 or n_data != 1:
            return None  # an openpyxl whose sheets look different: let it write everything
        members[name] = xml.encode("utf-8")
    return list(members.items())


def write_xlsx(sheets: dict, path, index: bool = False) -> Path:
    """Write one or more frames to an XLSX workbook, deterministically: text cells are text
    (:func:`text_cells`), document properties and every zip member carry fixed dates, so the
    same frames give the same bytes. Frames of text and numbers without their index take the
    fast path (:func:`_fast_members`), which gives the bytes openpyxl gives."""
    members = None if index else _fast_members(sheets)
    if members is None:
        members, _ = _openpyxl_members(sheets, index)
    return _write_zip(_stamped(members), Path(path))


_CSS_CLASS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_N_SHOWN = 0  # tables shown so far in this process (their HTML ids)
_P_COLUMNS = ("P.Value", "adj.P.Val", "pval", "padj", "pvalue", "p.adjust", "p", "FDR", "p_value")


def _count_like(col: pd.Series) -> bool:
    """A float column shown as whole numbers: every value is whole, or 1,000 or more (a median
    of read counts, 22875306.5, is a count; its decimals are noise). One format per column."""
    v = col.dropna().to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return len(v) > 0 and bool(np.all((v == np.round(v)) | (np.abs(v) >= 1000))) and bool(np.all(np.abs(v) < 1e15))


def show(df: pd.DataFrame, index: bool = True, digits: int = 3, interactive: bool = False, classes: str = ""):
    """A display-ready table: p-values in scientific notation, other floats to ``digits``
    decimals, whole numbers as integers with thousands separators (``22,875,306``; a float
    column whose values are all whole or at least 1,000, such as medians of read counts, is
    rounded: its decimals are noise), one format per column, missing values blank. Every text (cells, index and column labels and their names) is HTML-escaped: a value
    from the data is shown, never rendered as markup; a :class:`Link` cell becomes a link.

    ``interactive=True`` marks the table ``helpers-interactive``: the book's own
    ``_static/tables.js`` makes it sortable and searchable in the browser (offline, no library).
    ``classes`` adds CSS classes to the table (letters, digits, ``-`` and ``_`` only).
    ``index=False`` hides the index: do so unless it carries meaning (a gene, a measure).
    """

    def fmt_float(v):
        return "" if pd.isna(v) else f"{v:,.{digits}f}"

    def fmt_round(v):
        return "" if pd.isna(v) else fmt_int(round(v))

    def fmt_p(v):
        return "" if pd.isna(v) else f"{v:.2e}"

    def fmt_whole(v):
        return "" if pd.isna(v) else fmt_int(v)

    disp = df.copy()
    disp.columns = _html_index(df.columns)
    disp.index = _html_index(df.index)
    formats, text = {}, []
    for i, c in enumerate(disp.columns):
        col = df.iloc[:, i]
        if pd.api.types.is_float_dtype(col):
            if str(df.columns[i]) in _P_COLUMNS:
                formats[c] = fmt_p
            else:
                formats[c] = fmt_round if _count_like(col) else fmt_float
        elif pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
            formats[c] = fmt_whole
        else:
            formats[c] = _html_cell
        if not pd.api.types.is_numeric_dtype(col):
            text.append(c)
    global _N_SHOWN
    _N_SHOWN += 1
    sty = disp.style.set_uuid(f"show{_N_SHOWN}")  # element ids numbered, not random: pages are byte-identical
    sty = sty.format(formats, na_rep="")
    names = (["helpers-interactive"] if interactive else []) + [
        c for c in str(classes).split() if _CSS_CLASS.fullmatch(c)
    ]
    if names:
        sty = sty.set_table_attributes(f'class="{" ".join(names)}"')
    if text:
        sty = sty.set_properties(subset=text, **{"text-align": "left"})
    return sty if index else sty.hide(axis="index")


# the supplementary tables of the paper, and ours beside them: sheet name -> results file
SUPPLEMENTARY = {
    "Table S1 cohort": "cohort/table_s1.tsv",
    "Table S2 DEGs": "de/table_s2.tsv",
    "DE multiverse": "de/multiverse.tsv",
    "GO BP up": "go/ora_go_bp_up.tsv",
    "GO BP down": "go/ora_go_bp_down.tsv",
    "GSEA": "gsea/gsea_results.tsv",
    "GSVA limma": "gsva/gsva_limma.tsv",
    "Table 1 signature": "pam/table1_signature.tsv",
    "PAM honesty": "pam/honesty.tsv",
    "Published model scores": "published_model/scores.tsv",
    "Scorecard": "scorecard/scorecard.tsv",
}


def supplementary_workbook(results: Path, out: Path) -> dict:
    """One XLSX with the supplementary tables that exist under ``results``; returns sheet -> file."""
    sheets, used = {}, {}
    for sheet, rel in SUPPLEMENTARY.items():
        f = Path(results) / rel
        if f.exists():
            sheets[sheet] = pd.read_csv(f, sep="\t")
            used[sheet] = rel
    if not sheets:
        from helpers.engine.errors import InputError

        raise InputError("no result tables to collect (run the chapters first)", path=results)
    write_xlsx(sheets, out)
    return used


def _declared_items(results: Path):
    """Under the runner: the results folders of the chapters the running chapter reads (the
    registry's ``reads``), so an archive holds only what the chapter's fingerprint covers and no
    chapter that happens to run beside it. Otherwise None (every folder)."""
    item = os.environ.get("HELPERS_STAGE_ITEM")
    if not item or not os.environ.get("HELPERS_STAGE_DIR"):
        return None
    from helpers.engine import registry

    try:
        steps = registry.steps(paths.ROOT / "config" / "book.yml")
    except Exception:  # a project without a registry (tests): no restriction
        return None
    me = next((s for s in steps if s.item == item), None)
    if me is None:
        return None
    return {s.item for s in steps if s.stem in me.reads}


def bundle_results(results: Path, out: Path, skip=(), items=None) -> Path:
    """A zip of every result file (tables, figures, numbers, models) of the chapters' folders,
    sorted by name, with fixed timestamps, so the same results give the same archive.

    Hidden files and folders (run stamps, staging folders) and the files beside the folders
    (``run_log.json``: timings of the run) are left out, as are the folders in ``skip``. With
    ``items`` only those folders are included; by default, under the runner, the folders of the
    chapters the running chapter reads (see :func:`_declared_items`)."""
    results = Path(results)
    if items is None:
        items = _declared_items(results)
    files = []
    for p in results.rglob("*"):
        rel = p.relative_to(results).parts
        if (
            not p.is_file()
            or len(rel) < 2
            or any(part.startswith(".") for part in rel)
            or rel[0] in skip
            or (items is not None and rel[0] not in items)
        ):
            continue
        files.append(p)
    files.sort(key=lambda p: p.relative_to(results).as_posix())
    return _write_zip([(p.relative_to(results).as_posix(), p.read_bytes()) for p in files], Path(out))
