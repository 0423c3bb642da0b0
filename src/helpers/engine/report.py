"""What a notebook page reports: glued numbers (also written to ``numbers.json``), tables
(TSV, optionally XLSX), figures (SVG + PNG) and a download list for the page.

    page = Page("de")
    page.number("n_up", 57)                  # {glue:text}`n_up` in the prose
    page.table(df, "table_s2", xlsx=True)
    page.figure(fig, "fig2a_volcano")
    page.downloads()                         # links to every file this page wrote
    page.save()                              # numbers.json
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import pandas as pd

from helpers.engine import paths
from helpers.engine.io import atomic_path, save_figure, write_json, write_tsv

_FIXED_TIME = _dt.datetime(2022, 2, 18)  # the paper's publication date: XLSX metadata stays constant


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


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
        """Save ``fig`` as SVG and PNG, close it, and return the PNG for display (``display(page.figure(...))``)."""
        import matplotlib.pyplot as plt
        from IPython.display import Image

        out = save_figure(fig, self.dir / name)
        plt.close(fig)
        self._add(f"{name}.svg")
        self._add(f"{name}.png")
        return Image(filename=str(out["png"]))

    def file(self, name: str) -> Path:
        """A path for another output file of this page (listed in the downloads)."""
        self._add(name)
        return self.dir / name

    def link(self, name: str) -> str:
        """A MyST download link to one of this page's files (plain name if results/ is outside the book)."""
        final = paths.RESULTS / self.item / name
        try:
            rel = final.resolve().relative_to(paths.ROOT)
        except ValueError:
            return f"`{name}`"
        return f"{{download}}`{name} </{rel.as_posix()}>`"

    def downloads(self):
        """Markdown list of this page's files, for display at the end of a page."""
        from IPython.display import Markdown

        items = " · ".join(self.link(n) for n in self.files)
        return Markdown(f"**Downloads (source data and figures):** {items}" if items else "")

    def save(self) -> Path:
        return write_json(self.numbers, self.dir / "numbers.json")


def write_xlsx(sheets: dict, path, index: bool = False) -> Path:
    """Write one or more frames to an XLSX workbook with constant metadata."""
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for sheet, df in sheets.items():
                df.to_excel(xw, sheet_name=str(sheet)[:31], index=index)
            props = xw.book.properties
            props.created = props.modified = _FIXED_TIME
            props.creator = props.lastModifiedBy = "helpers"
    return Path(path)


_P_COLUMNS = ("P.Value", "adj.P.Val", "pval", "padj", "pvalue", "p.adjust", "p", "FDR", "p_value")


def show(df: pd.DataFrame, index: bool = True, digits: int = 3):
    """A display-ready table: p-values in scientific notation, other floats rounded, whole-number
    floats as integers, missing values blank."""
    def fmt_float(v):
        if pd.isna(v):
            return ""
        if float(v).is_integer() and abs(v) < 1e15:
            return f"{int(v)}"
        return f"{v:.{digits}f}"

    def fmt_p(v):
        return "" if pd.isna(v) else f"{v:.2e}"

    formats = {}
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]):
            formats[c] = fmt_p if str(c) in _P_COLUMNS else fmt_float
    sty = df.style.format(na_rep="", escape="html").format(formats, na_rep="")
    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
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


def bundle_results(results: Path, out: Path, skip=()) -> Path:
    """A zip of every result file (tables, figures, numbers, models) with fixed timestamps, so
    the same results give the same archive."""
    import zipfile

    results = Path(results)
    files = sorted(p for p in results.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(results).parts)
                   and p.relative_to(results).parts[0] not in skip)
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                info = zipfile.ZipInfo(p.relative_to(results).as_posix(), date_time=(2022, 2, 18, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes())
    return Path(out)
