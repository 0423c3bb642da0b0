"""Readers for expression data as public repositories and tools write it, with validation.

Formats: a GEO supplementary count matrix (genes x samples), a GEO series-matrix file (sample
characteristics -> sample sheet), a folder of HTSeq-count outputs, a log-expression table
(arrays), a sample sheet. Any file may be gzip-compressed (detected from its first bytes, not its
name); tab vs comma is detected from the header line.

Every problem raises :class:`helpers.engine.errors.InputError` with a one-line message
``<file>: <row/column>: <what is wrong>``; row numbers are 1-based line numbers of the file.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import scale
from helpers.engine.errors import InputError
from helpers.engine.io import read_input

MISSING_STRINGS = {"", "na", "nan", "null", "none", "n/a", "#n/a", "-"}
#: Largest count accepted: above 2^53 a float no longer holds every integer, and no sequencing
#: run yields that many reads on one gene; larger values are corrupt cells or not counts.
MAX_COUNT = 2**53
# Columns a count matrix may carry besides the samples (featureCounts, GEO tables).
ANNOTATION_COLUMNS = {
    "chr",
    "chrom",
    "chromosome",
    "start",
    "end",
    "strand",
    "length",
    "gene_name",
    "genename",
    "gene_symbol",
    "symbol",
    "description",
    "gene_biotype",
    "biotype",
    "gene_type",
    "entrez",
    "entrez_id",
}


# ----------------------------------------------------------------------------- low level


def _refuse_binary(raw: bytes, path) -> bytes:
    """Name the file types people hand over instead of a text table (an Excel workbook, a zip
    archive) in one line with the fix; re-encode UTF-16 text (Excel's "Unicode text") as UTF-8."""
    if raw[:4] == b"PK\x03\x04":
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            names = []
        if any(n.startswith("xl/") for n in names):
            raise InputError(
                "this is an Excel workbook (.xlsx), not a text table: in Excel use "
                "File > Save As > 'Text (Tab delimited)' or 'CSV', and give that file",
                path=path,
            )
        if any(n.startswith(("word/", "ppt/")) for n in names) or "content.xml" in names:
            raise InputError("this is an office document, not a text table: export it as TSV or CSV", path=path)
        raise InputError(
            "this is a zip archive, not a text table: unzip it and give the table inside "
            "(gzip-compressed tables are read directly)",
            path=path,
        )
    if raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InputError(
            "this is an Excel 97-2003 workbook (.xls), not a text table: save it as "
            "'Text (Tab delimited)' or 'CSV' and give that file",
            path=path,
        )
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise InputError("UTF-16 text that cannot be decoded; save the table as UTF-8", path=path) from None
    if b"\x00" in raw[:4096]:
        raise InputError(
            "binary data (NUL bytes), not a text table; expected a TSV or CSV file (gzip is fine)", path=path
        )
    return raw


def read_text(path) -> str:
    """Whole file as text; gzip detected by magic bytes. Missing, empty, truncated, or larger than
    the input cap (:data:`helpers.engine.io.MAX_INPUT_BYTES`, after decompression) -> InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path)
    raw, compressed = read_input(path)  # capped: helpers.engine.io.MAX_INPUT_BYTES
    if len(raw) == 0:
        raise InputError("file is empty (gzip holds no data)" if compressed else "file is empty", path=path)
    raw = _refuse_binary(raw, path)  # Excel workbooks, zip archives; UTF-16 text -> UTF-8
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise InputError("file is empty (only blank lines)", path=path)
    return text


def detect_delimiter(first_line: str, path=None) -> str:
    """Tab or comma, from the header line; a single column is an error."""
    n_tab, n_comma = first_line.count("\t"), first_line.count(",")
    if n_tab == 0 and n_comma == 0:
        shown = first_line[:60] + ("..." if len(first_line) > 60 else "")
        hint = (
            "; semicolons: an Excel CSV export of a locale with decimal commas? save as 'Text (Tab delimited)' instead"
            if ";" in first_line
            else ""
        )
        raise InputError(
            f"only one column found (no tab or comma in {shown!r}); expected a tab- or comma-separated table{hint}",
            path=path,
            where="line 1",
        )
    return "\t" if n_tab >= n_comma else ","


def _split_rows(text: str, sep: str, path) -> list[tuple[int, list[str]]]:
    """Parse delimited text into (line number, fields) for non-blank, non-# lines; quotes honoured."""
    out = []
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"')
    for fields in reader:
        lineno = reader.line_num
        if not fields or all(f.strip() == "" for f in fields):
            continue
        if fields[0].startswith("#"):
            continue
        out.append((lineno, [f.strip() for f in fields]))
    return out


def _table_rows(text: str, sep: str, path, looks_like_data) -> list[tuple[int, list[str]]]:
    """Rows of a table whose first row is its header, as (line number, fields).

    Blank lines and lines of empty fields are skipped. ``#`` lines are comments (featureCounts
    writes one before its header), except one that comes just before the first other row, has
    at least two fields, has as many fields as that row (or one fewer) and is followed by a row
    that ``looks_like_data``: that is the header with a ``#`` prefix (``#gene_id<TAB>S1...``)
    and becomes the header without it. Trailing empty fields beyond the header's last named
    column are dropped from every row when they are empty (Excel exports cells that were once
    formatted). A file with no row at all is an error.
    """
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"')
    rows, last_comment, started = [], None, False
    for fields in reader:
        lineno = reader.line_num
        if not fields or all(f.strip() == "" for f in fields):
            continue
        fields = [f.strip() for f in fields]
        if fields[0].startswith("#"):
            if not started:
                last_comment = (lineno, fields)
            continue
        if not started:
            started = True
            if last_comment is not None:
                cl, cf = last_comment
                cf = [cf[0].lstrip("#").strip()] + cf[1:]
                if len(cf) >= 2 and cf[0] and len(cf) in (len(fields), len(fields) - 1) and looks_like_data(fields):
                    rows.append((cl, cf))
        rows.append((lineno, fields))
    if not rows:
        raise InputError(
            "no table: every line is blank, holds only separators or is a '#' comment "
            "(an empty sheet exported from Excel?)",
            path=path,
        )
    if (
        last_comment is not None
        and rows[0][0] != last_comment[0]
        and len(last_comment[1]) >= 2
        and looks_like_data(rows[0][1])
    ):
        cl, cf = last_comment
        raise InputError(
            f"line {rows[0][0]} looks like data, not a header, and line {cl} starts with '#' (read as a "
            f"comment): if line {cl} is the header, remove the '#' and give it {len(rows[0][1])} fields "
            f"like the rows (it has {len(cf)})",
            path=path,
            where=f"line {cl}",
        )
    header = rows[0][1]
    width = len(header)
    while width > 1 and header[width - 1] == "":
        width -= 1
    if width == len(header):
        return rows
    out = [(rows[0][0], header[:width])]
    for lineno, f in rows[1:]:
        if len(f) > width:
            extra = [(k, x) for k, x in enumerate(f[width:], start=width + 1) if x != ""]
            if extra:
                k, x = extra[0]
                raise InputError(
                    f"value {x!r} in column {k}, which has no name in the header (line "
                    f"{rows[0][0]}); name the column or delete the value",
                    path=path,
                    where=f"line {lineno}",
                )
            f = f[:width]
        out.append((lineno, f))
    return out


def _numeric_cell(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return s.strip().lower() in MISSING_STRINGS
    return True


def _first_content_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            return line
    return ""


def _read_matrix_strings(path, what: str):
    """Header (sample names), gene IDs, string values (2-D), file line numbers, and any
    annotation columns that were dropped."""
    text = read_text(path)
    sep = detect_delimiter(_first_content_line(text), path)
    rows = _table_rows(text, sep, path, lambda f: len(f) > 1 and all(_numeric_cell(x) for x in f[1:]))
    if len(rows) < 2:
        raise InputError(f"{what} has a header but no data rows", path=path)
    _, header = rows[0]
    widths = {len(f) for _, f in rows[1:]}
    n_data = max(widths)
    if len(header) == n_data - 1:  # R write.table without a name for the ID column
        header = ["gene_id"] + header
    if len(header) != n_data:
        raise InputError(f"header has {len(header)} fields but data rows have {n_data}", path=path, where="line 1")
    for lineno, f in rows[1:]:
        if len(f) != n_data:
            raise InputError(
                f"{len(f)} fields, expected {n_data} (wrong delimiter or a broken row?)",
                path=path,
                where=f"line {lineno}",
            )
    if n_data < 2:
        raise InputError("only one column found; expected gene IDs then one column per sample", path=path)
    linenos = [ln for ln, _ in rows[1:]]
    ids = [f[0] for _, f in rows[1:]]
    values = np.array([f[1:] for _, f in rows[1:]], dtype=object)
    samples = header[1:]
    # Annotation columns (featureCounts' Chr..Length, GEO's gene_name, ...) are dropped when they
    # come right after the ID column, or anywhere when they hold text; a numeric column named
    # like one among the samples stays a sample (the sample sheet then decides).
    is_ann = [s.strip().lower() in ANNOTATION_COLUMNS for s in samples]
    lead = 0
    while lead < len(samples) and is_ann[lead]:
        lead += 1
    drop = [
        i < lead or (is_ann[i] and not all(_numeric_cell(str(x)) for x in values[:, i])) for i in range(len(samples))
    ]
    dropped = [s for s, d in zip(samples, drop) if d]
    if dropped:
        keep = [i for i, d in enumerate(drop) if not d]
        values = values[:, keep]
        samples = [samples[i] for i in keep]
    if not samples:
        raise InputError("no sample columns found", path=path, where="line 1")
    return samples, ids, values, linenos, dropped


def _check_unique(names, path, kind: str, linenos=None):
    seen = {}
    for i, n in enumerate(names):
        if n in seen:
            if linenos is not None:
                where = f"lines {linenos[seen[n]]} and {linenos[i]}"
            else:
                where = "header"
            raise InputError(f"duplicated {kind} {n!r}", path=path, where=where)
        seen[n] = i
    if any(n == "" for n in names):
        i = names.index("")
        where = f"line {linenos[i]}" if linenos is not None else "header"
        raise InputError(f"empty {kind}", path=path, where=where)


def _to_numbers(values: np.ndarray, ids, samples, linenos, path, counts_expected: bool) -> np.ndarray:
    """Convert strings to float with one-line errors naming row and column."""
    flat = values.ravel()
    nums = pd.to_numeric(pd.Series(flat), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(nums)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        r, c = divmod(k, values.shape[1])
        s = str(flat[k])
        where = f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}"
        if s.strip().lower() in MISSING_STRINGS or s.strip().lower() in {"nan", "-nan"}:
            raise InputError(f"missing value (NaN) {s!r}", path=path, where=where)
        if s.strip().lower().lstrip("+-") in {"inf", "infinity"}:
            raise InputError(f"infinite value {s!r}", path=path, where=where)
        raise InputError(f"non-numeric value {s!r}", path=path, where=where)
    nums = nums.reshape(values.shape)
    if counts_expected:
        neg = nums < 0
        if neg.any():
            r, c = map(int, np.argwhere(neg)[0])
            raise InputError(
                f"negative count {values[r, c]!r}",
                path=path,
                where=f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}",
            )
        big = nums > MAX_COUNT
        if big.any():
            r, c = map(int, np.argwhere(big)[0])
            raise InputError(
                f"count {values[r, c]!r} is too large to be a read count (above 2^53 = "
                f"{MAX_COUNT}, beyond exact 64-bit storage); a corrupted cell, or not a count table?",
                path=path,
                where=f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}",
            )
        frac = nums != np.round(nums)
        if frac.any():
            r, c = map(int, np.argwhere(frac)[0])
            share = float(frac.mean())
            hint = (
                "log-expression? set kind: logexpr (read_logexpr)"
                if share >= 0.5
                else "log-expression? set kind: logexpr; estimated counts (RSEM, salmon)? round them first"
            )
            raise InputError(
                f"non-integer count {values[r, c]!r} where counts are expected ({100 * share:.0f}% "
                f"of the values are not integers; {hint})",
                path=path,
                where=f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}",
            )
    return nums


def _check_scale(nums: np.ndarray, ids, samples, linenos, path, kind: str) -> None:
    """The stated scale rules of :mod:`helpers.data.scale`, as a one-line error naming the cell
    with the largest value and the fix."""
    if kind == "counts":
        why = scale.counts_problem(nums)
        fix = "set kind: logexpr (for log values; unrounded if you have them)"
    else:
        why = scale.logexpr_problem(nums)
        fix = "set kind: counts for read counts, or log2-transform the table first (e.g. log2(x + 1))"
    if why is None:
        return
    r, c = np.unravel_index(int(np.argmax(nums)), nums.shape)
    raise InputError(
        f"{why}; {fix}", path=path, where=f"largest value at line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}"
    )


# ----------------------------------------------------------------------------- public readers


def read_count_matrix(path, allow_duplicate_genes: bool = False, check_scale: bool = True) -> pd.DataFrame:
    """Read a genes x samples count matrix (GEO supplementary style).

    First column: gene IDs (Ensembl with or without version, Entrez, or symbols); header: sample
    names (a header one field short, as R's ``write.table`` writes it, or one with a ``#``
    prefix, is accepted). Columns named like annotation (Chr, Start, End, Strand, Length,
    gene_name, ...) are dropped when they follow the ID column or hold text. TSV or CSV, gzip or
    not. Counts must be non-negative integers up to :data:`MAX_COUNT`; with ``check_scale`` a
    table that looks like integer-rounded log values is refused (:func:`helpers.data.scale.counts_problem`).
    Returns an int64 DataFrame (index 'gene'); ``df.attrs['source']`` is the path and
    ``df.attrs['dropped_columns']`` lists dropped annotation columns.
    """
    samples, ids, values, linenos, dropped = _read_matrix_strings(path, "count matrix")
    _check_unique(samples, path, "sample ID")
    if not allow_duplicate_genes:
        _check_unique(ids, path, "gene ID", linenos)
    nums = _to_numbers(values, ids, samples, linenos, path, counts_expected=True)
    if check_scale:
        _check_scale(nums, ids, samples, linenos, path, "counts")
    df = pd.DataFrame(nums.astype(np.int64), index=pd.Index(ids, name="gene"), columns=samples)
    df.attrs.update(source=str(path), dropped_columns=dropped)
    return df


def read_logexpr(path, allow_duplicate_genes: bool = False, check_scale: bool = True) -> pd.DataFrame:
    """Read a genes x samples log-expression table (arrays, or already normalised RNA-seq).

    Same layout rules as :func:`read_count_matrix`; floats and negative values are allowed, NaN
    and non-numeric cells are errors; with ``check_scale`` a table that looks like counts or
    linear intensities is refused (:func:`helpers.data.scale.logexpr_problem`). Returns a
    float64 DataFrame (index 'gene').
    """
    samples, ids, values, linenos, dropped = _read_matrix_strings(path, "expression table")
    _check_unique(samples, path, "sample ID")
    if not allow_duplicate_genes:
        _check_unique(ids, path, "gene ID", linenos)
    nums = _to_numbers(values, ids, samples, linenos, path, counts_expected=False)
    if check_scale:
        _check_scale(nums, ids, samples, linenos, path, "logexpr")
    df = pd.DataFrame(nums, index=pd.Index(ids, name="gene"), columns=samples)
    df.attrs.update(source=str(path), dropped_columns=dropped)
    return df


def _clean_key(key: str) -> str:
    key = re.sub(r"[^0-9a-zA-Z]+", "_", key.strip().lower()).strip("_")
    return key or "characteristic"


def read_series_matrix(path) -> pd.DataFrame:
    """Read the sample part of a GEO series-matrix file (``GSExxx_series_matrix.txt(.gz)``).

    Uses ``!Sample_geo_accession`` (-> ``sample_id``), ``!Sample_title`` (-> ``title``),
    ``!Sample_source_name_ch1`` (-> ``source_name``), ``!Sample_description`` (-> ``description``)
    and every ``!Sample_characteristics_ch1`` row, whose cells are ``key: value`` (a row may mix
    keys; each becomes a column named by the cleaned key, e.g. 'best response' -> best_response).
    Returns one row per sample, indexed by GSM accession.
    """
    text = read_text(path)
    fields: dict[str, list[str]] = {}
    chars: list[tuple[int, list[str]]] = []
    n = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("!Sample_"):
            continue
        parts = next(csv.reader([line], delimiter="\t", quotechar='"'))
        key, vals = parts[0], [v.strip() for v in parts[1:]]
        if key == "!Sample_geo_accession":
            n = len(vals)
        if key == "!Sample_characteristics_ch1":
            chars.append((lineno, vals))
        elif key not in fields:
            fields[key] = vals
    if "!Sample_geo_accession" not in fields:
        raise InputError("no '!Sample_geo_accession' line: not a GEO series-matrix file", path=path)
    gsm = fields["!Sample_geo_accession"]
    _check_unique(gsm, path, "sample accession")
    out = pd.DataFrame({"sample_id": gsm}, index=gsm)
    for key, col in (
        ("!Sample_title", "title"),
        ("!Sample_source_name_ch1", "source_name"),
        ("!Sample_description", "description"),
    ):
        if key in fields:
            if len(fields[key]) != n:
                raise InputError(f"{len(fields[key])} values for {n} samples", path=path, where=key)
            out[col] = fields[key]
    for lineno, vals in chars:
        if len(vals) != n:
            raise InputError(
                f"{len(vals)} values for {n} samples", path=path, where=f"line {lineno} (!Sample_characteristics_ch1)"
            )
        for sid, cell in zip(gsm, vals):
            if not cell:
                continue
            if ":" in cell:
                k, v = cell.split(":", 1)
                k = _clean_key(k)
            else:
                k, v = f"characteristics_line{lineno}", cell
            if k not in out.columns:
                out[k] = pd.Series(pd.NA, index=out.index, dtype="object")
            out.loc[sid, k] = v.strip()
    out.index.name = None
    out.attrs["source"] = str(path)
    return out


def _htseq_sample_name(path: Path) -> str:
    return path.name.split(".")[0]


def read_htseq_dir(
    folder, pattern: str = "*.txt|*.counts|*.tsv|*.txt.gz|*.counts.gz|*.tsv.gz"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a folder of HTSeq-count outputs (one file per sample: gene_id <TAB> count).

    The sample ID is the file name up to its first dot. Rows starting with ``__`` (HTSeq's
    ``__no_feature``, ``__ambiguous``, ``__too_low_aQual``, ``__not_aligned``,
    ``__alignment_not_unique``) are removed from the counts and returned separately.
    Every file must list the same genes. Returns (counts genes x samples int64, summary rows x samples).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("HTSeq folder not found", path=folder)
    pats = [p for p in pattern.split("|") if p]
    files = sorted({f for f in folder.iterdir() if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in pats)})
    if not files:
        raise InputError(f"no files matching {pattern!r}", path=folder)
    cols, summaries, gene_order, names = {}, {}, None, []
    for f in files:
        text = read_text(f)
        first = _first_content_line(text)
        if "\t" not in first:
            raise InputError(
                "only one column found; HTSeq-count files have two tab-separated columns (gene_id, count)",
                path=f,
                where="line 1",
            )
        rows = _split_rows(text, "\t", f)
        for lineno, r in rows:
            if len(r) != 2:
                raise InputError(f"{len(r)} fields, expected 2 (gene_id, count)", path=f, where=f"line {lineno}")
        # tolerate one header line (HTSeq writes none, other tools do)
        if (
            rows
            and pd.to_numeric(pd.Series([rows[0][1][1]]), errors="coerce").isna().all()
            and rows[0][1][1].strip().lower() not in MISSING_STRINGS
        ):
            rows = rows[1:]
        gene_rows = [(ln, r) for ln, r in rows if not r[0].startswith("__")]
        summ_rows = [(ln, r) for ln, r in rows if r[0].startswith("__")]
        if not gene_rows:
            raise InputError("no gene rows (only '__' summary rows or nothing)", path=f)
        ids = [r[0] for _, r in gene_rows]
        lns = [ln for ln, _ in gene_rows]
        _check_unique(ids, f, "gene ID", lns)
        name = _htseq_sample_name(f)
        vals = _to_numbers(np.array([[r[1]] for _, r in gene_rows], dtype=object), ids, [name], lns, f, True)
        if name in cols:
            raise InputError(
                f"duplicated sample ID {name!r} (two files with the same name before the first dot)", path=f
            )
        if gene_order is None:
            gene_order, first_file = ids, f
        elif ids != gene_order:
            missing = sorted(set(gene_order) - set(ids))
            extra = sorted(set(ids) - set(gene_order))
            if missing or extra:
                detail = f"{len(missing)} genes missing (e.g. {missing[:1]}), {len(extra)} extra (e.g. {extra[:1]})"
                raise InputError(f"gene list differs from {first_file.name}: {detail}", path=f)
            vals = pd.Series(vals[:, 0], index=ids).reindex(gene_order).to_numpy()[:, None]
        cols[name] = vals[:, 0].astype(np.int64)
        if summ_rows:
            sids = [r[0] for _, r in summ_rows]
            svals = _to_numbers(
                np.array([[r[1]] for _, r in summ_rows], dtype=object),
                sids,
                [name],
                [ln for ln, _ in summ_rows],
                f,
                True,
            )
            summaries[name] = pd.Series(svals[:, 0].astype(np.int64), index=sids)
        else:
            summaries[name] = pd.Series(dtype=np.int64)
        names.append(name)
    counts = pd.DataFrame(cols, index=pd.Index(gene_order, name="gene"))[names]
    summary = pd.DataFrame(summaries).reindex(columns=names).fillna(0).astype(np.int64)
    summary.index.name = "htseq_summary"
    summary.loc["assigned_to_genes"] = counts.sum(axis=0)
    counts.attrs.update(source=str(folder), files=[str(f) for f in files])
    return counts, summary


def read_sample_sheet(
    path,
    response_col: str = "response",
    sample_col: str | None = "sample_id",
    label_map: dict | None = None,
    labels=None,
) -> pd.DataFrame:
    """Read a sample sheet (TSV/CSV, gzip or not): one row per sample.

    ``sample_col`` names the sample-ID column (None: the first column); the result is indexed by
    it and keeps it as column ``sample_id``. ``label_map`` rewrites response values (e.g.
    ``{"complete remission": "CR"}``, matched case-insensitively); with ``labels`` given, any other
    response value is an error. Empty response cells are errors.
    """
    text = read_text(path)
    sep = detect_delimiter(_first_content_line(text), path)
    names = {response_col} | ({sample_col} if sample_col else set())
    rows = _table_rows(text, sep, path, lambda f: not names & set(f))
    header = rows[0][1]
    if len(rows) < 2:
        raise InputError("sample sheet has a header but no rows", path=path, where=f"line {rows[0][0]}")
    for lineno, f in rows[1:]:
        if len(f) != len(header):
            raise InputError(
                f"{len(f)} fields, expected {len(header)} like the header", path=path, where=f"line {lineno}"
            )
    _check_unique(header, path, "column name")
    df = pd.DataFrame([f for _, f in rows[1:]], columns=header, dtype=object)
    linenos = [ln for ln, _ in rows[1:]]
    scol = header[0] if sample_col is None else sample_col
    if scol not in df.columns:
        raise InputError(f"sample column {scol!r} not found; columns are {header}", path=path, where="line 1")
    if response_col not in df.columns:
        raise InputError(f"response column {response_col!r} not found; columns are {header}", path=path, where="line 1")
    ids = [str(x) for x in df[scol]]
    _check_unique(ids, path, "sample ID", linenos)
    df = df.replace({v: pd.NA for v in ("", "NA", "na", "NaN", "nan")})
    resp = df[response_col]
    if resp.isna().any():
        i = int(np.flatnonzero(resp.isna().to_numpy())[0])
        raise InputError(
            f"empty response for sample {ids[i]!r}", path=path, where=f"line {linenos[i]}, column {response_col!r}"
        )
    if label_map:
        lm = {str(k).strip().lower(): v for k, v in label_map.items()}
        df[response_col] = [lm.get(str(v).strip().lower(), v) for v in resp]
    if labels is not None:
        bad = [(i, v) for i, v in enumerate(df[response_col]) if v not in set(labels)]
        if bad:
            i, v = bad[0]
            raise InputError(
                f"unknown response label {v!r} (expected one of {list(labels)}; map others with label_map)",
                path=path,
                where=f"line {linenos[i]}, column {response_col!r}",
            )
    if response_col != "response":
        df["response"] = df[response_col]
    df.index = ids
    df["sample_id"] = ids
    df = df[["sample_id"] + [c for c in df.columns if c != "sample_id"]]
    for c in df.columns:  # numeric-looking columns (age, library size) become numbers
        if c in ("sample_id", "response"):
            continue
        conv = pd.to_numeric(df[c], errors="coerce")
        if conv.notna().sum() == df[c].notna().sum() and df[c].notna().any():
            df[c] = conv
    df.attrs["source"] = str(path)
    return df


# ----------------------------------------------------------------------------- validation


def label_counts(resp) -> str:
    """'CR (22), NR (9)': the labels found in a response column with their counts (for messages)."""
    vc = pd.Series(resp).astype(object).where(pd.Series(resp).notna(), "<empty>").value_counts()
    return ", ".join(f"{k} ({int(v)})" for k, v in sorted(vc.items(), key=lambda kv: str(kv[0])))


def validate_cohort(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    labels=("CR", "NR"),
    counts_expected: bool = True,
    response_col: str = "response",
    counts_source: str | None = None,
    samples_source: str | None = None,
    min_per_class: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check that an expression table and a sample sheet make a usable two-class cohort.

    Checks: numeric, finite values (non-negative integers when ``counts_expected``); unique gene and
    sample IDs; no sample without reads (counts) and no constant sample (log-expression); every
    matrix sample in the sheet and every sheet sample in the matrix; distinct ``labels``, each
    response label among them; at least ``min_per_class`` samples per class; at least one gene.
    Messages about labels list the labels found in the response column. Returns (counts,
    samples) with the sheet ordered like the matrix columns.
    """
    csrc = counts_source or counts.attrs.get("source", "expression table")
    ssrc = samples_source or samples.attrs.get("source", "sample sheet")
    labels = list(labels)
    if len(set(labels)) != len(labels):
        found = label_counts(samples[response_col]) if response_col in samples.columns else "none"
        raise InputError(
            f"the response labels {labels} are not distinct (cr_label and nr_label must name the "
            f"two groups; column {response_col!r} holds {found})",
            path=ssrc,
            where=f"column {response_col!r}",
        )
    if counts.shape[0] == 0:
        raise InputError("no genes left after filtering", path=csrc)
    if counts.index.has_duplicates:
        g = counts.index[counts.index.duplicated()][0]
        raise InputError(f"duplicated gene ID {g!r}", path=csrc, where="rows")
    if counts.columns.has_duplicates:
        s = counts.columns[counts.columns.duplicated()][0]
        raise InputError(f"duplicated sample ID {s!r}", path=csrc, where="header")
    try:
        vals = counts.to_numpy(dtype=float)
    except (TypeError, ValueError):
        bad = [c for c in counts.columns if not pd.api.types.is_numeric_dtype(counts[c])]
        raise InputError("non-numeric values", path=csrc, where=f"column {bad[0]!r}") from None
    nan = ~np.isfinite(vals)
    if nan.any():
        r, c = map(int, np.argwhere(nan)[0])
        raise InputError(
            "missing value (NaN)", path=csrc, where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}"
        )
    if counts_expected:
        neg = vals < 0
        if neg.any():
            r, c = map(int, np.argwhere(neg)[0])
            raise InputError(
                f"negative count {vals[r, c]:g}",
                path=csrc,
                where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}",
            )
        frac = vals != np.round(vals)
        if frac.any():
            r, c = map(int, np.argwhere(frac)[0])
            raise InputError(
                f"non-integer count {vals[r, c]:g} where counts are expected",
                path=csrc,
                where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}",
            )
        empty = np.flatnonzero(vals.sum(axis=0) == 0)
        if len(empty):
            c = counts.columns[int(empty[0])]
            more = f" ({len(empty)} such samples)" if len(empty) > 1 else ""
            raise InputError(
                f"sample column {c!r} has no reads: every count is 0 (over the {counts.shape[0]} genes "
                f"kept after mapping IDs){more}; an empty library cannot be normalised: remove the "
                "sample from the table and the sample sheet",
                path=csrc,
                where=f"column {c!r}",
            )
    else:
        flat = np.flatnonzero(np.ptp(vals, axis=0) == 0) if vals.shape[0] > 1 else np.array([], int)
        if len(flat):
            c = counts.columns[int(flat[0])]
            raise InputError(
                f"sample column {c!r} is constant (every value {vals[0, int(flat[0])]:g}): an empty or "
                "failed array; remove the sample from the table and the sample sheet",
                path=csrc,
                where=f"column {c!r}",
            )
    if samples.index.has_duplicates:
        s = samples.index[samples.index.duplicated()][0]
        raise InputError(f"duplicated sample ID {s!r}", path=ssrc)
    if response_col not in samples.columns:
        raise InputError(f"response column {response_col!r} not found", path=ssrc)
    dropped = [str(d) for d in counts.attrs.get("dropped_columns", []) or []]
    in_matrix = [s for s in counts.columns if s not in samples.index]
    if in_matrix:
        hint = ""
        if str(in_matrix[0]).strip().lower() in ANNOTATION_COLUMNS:
            hint = (
                f" ({in_matrix[0]!r} is named like an annotation column; if it is one, remove it from "
                "the table or move it right after the gene-ID column)"
            )
        raise InputError(
            f"{len(in_matrix)} sample(s) in the matrix but not in the sheet, e.g. {in_matrix[0]!r}{hint}", path=ssrc
        )
    in_sheet = [s for s in samples.index if s not in set(counts.columns)]
    if in_sheet:
        hint = ""
        if str(in_sheet[0]) in dropped:
            hint = (
                f": the table has a column {in_sheet[0]!r}, but it was dropped as an annotation column "
                "(featureCounts' Chr, Start, End, Strand, Length, ...); rename that sample in both files"
            )
        raise InputError(
            f"{len(in_sheet)} sample(s) in the sheet but not in the matrix, e.g. {in_sheet[0]!r}{hint}",
            path=csrc,
            where="header",
        )
    samples = samples.loc[list(counts.columns)]
    resp = samples[response_col]
    unknown = [(s, v) for s, v in resp.items() if pd.isna(v) or v not in set(labels)]
    if unknown:
        s, v = unknown[0]
        raise InputError(
            f"unknown response label {v!r} for sample {s!r} (expected one of {labels}; column "
            f"{response_col!r} holds {label_counts(resp)}; set cr_label/nr_label or map the "
            "labels with label_map)",
            path=ssrc,
            where=f"column {response_col!r}",
        )
    for lab in labels:
        n = int((resp == lab).sum())
        if n < min_per_class:
            raise InputError(
                f"class {lab!r} has {n} sample(s); at least {min_per_class} are needed (column "
                f"{response_col!r} holds {label_counts(resp)})",
                path=ssrc,
                where=f"column {response_col!r}",
            )
    return counts, samples
