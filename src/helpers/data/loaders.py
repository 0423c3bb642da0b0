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
import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError

MISSING_STRINGS = {"", "na", "nan", "null", "none", "n/a", "#n/a", "-"}
# Columns a count matrix may carry besides the samples (featureCounts, GEO tables).
ANNOTATION_COLUMNS = {"chr", "chrom", "chromosome", "start", "end", "strand", "length",
                      "gene_name", "genename", "gene_symbol", "symbol", "description",
                      "gene_biotype", "biotype", "gene_type", "entrez", "entrez_id"}


# ----------------------------------------------------------------------------- low level

def read_text(path) -> str:
    """Whole file as text; gzip detected by magic bytes. Missing, empty, truncated -> InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path)
    raw = path.read_bytes()
    if len(raw) == 0:
        raise InputError("file is empty", path=path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise InputError(f"truncated or corrupt gzip ({e.__class__.__name__}: {e})", path=path) from None
        if len(raw) == 0:
            raise InputError("file is empty (gzip holds no data)", path=path)
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
        raise InputError(f"only one column found (no tab or comma in {shown!r}); expected a "
                         "tab- or comma-separated table", path=path, where="line 1")
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
    rows = _split_rows(text, sep, path)
    if len(rows) < 2:
        raise InputError(f"{what} has a header but no data rows", path=path)
    _, header = rows[0]
    widths = {len(f) for _, f in rows[1:]}
    n_data = max(widths)
    if len(header) == n_data - 1:  # R write.table without a name for the ID column
        header = ["gene_id"] + header
    if len(header) != n_data:
        raise InputError(f"header has {len(header)} fields but data rows have {n_data}", path=path,
                         where="line 1")
    for lineno, f in rows[1:]:
        if len(f) != n_data:
            raise InputError(f"{len(f)} fields, expected {n_data} (wrong delimiter or a broken row?)",
                             path=path, where=f"line {lineno}")
    if n_data < 2:
        raise InputError("only one column found; expected gene IDs then one column per sample",
                         path=path)
    linenos = [ln for ln, _ in rows[1:]]
    ids = [f[0] for _, f in rows[1:]]
    values = np.array([f[1:] for _, f in rows[1:]], dtype=object)
    samples = header[1:]
    dropped = [s for s in samples if s.strip().lower() in ANNOTATION_COLUMNS]
    if dropped:
        keep = [i for i, s in enumerate(samples) if s.strip().lower() not in ANNOTATION_COLUMNS]
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
            raise InputError(f"negative count {values[r, c]!r}", path=path,
                             where=f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}")
        frac = nums != np.round(nums)
        if frac.any():
            r, c = map(int, np.argwhere(frac)[0])
            raise InputError(f"non-integer count {values[r, c]!r} where counts are expected "
                             "(log-expression? use read_logexpr / kind: logexpr)", path=path,
                             where=f"line {linenos[r]} (gene {ids[r]!r}), column {samples[c]!r}")
    return nums


# ----------------------------------------------------------------------------- public readers

def read_count_matrix(path, allow_duplicate_genes: bool = False) -> pd.DataFrame:
    """Read a genes x samples count matrix (GEO supplementary style).

    First column: gene IDs (Ensembl with or without version, Entrez, or symbols); header: sample
    names (a header one field short, as R's ``write.table`` writes it, is accepted). Columns named
    like annotation (Chr, Start, End, Strand, Length, gene_name, ...) are dropped. TSV or CSV,
    gzip or not. Returns an int64 DataFrame (index 'gene'); ``df.attrs['source']`` is the path and
    ``df.attrs['dropped_columns']`` lists dropped annotation columns.
    """
    samples, ids, values, linenos, dropped = _read_matrix_strings(path, "count matrix")
    _check_unique(samples, path, "sample ID")
    if not allow_duplicate_genes:
        _check_unique(ids, path, "gene ID", linenos)
    nums = _to_numbers(values, ids, samples, linenos, path, counts_expected=True)
    df = pd.DataFrame(nums.astype(np.int64), index=pd.Index(ids, name="gene"), columns=samples)
    df.attrs.update(source=str(path), dropped_columns=dropped)
    return df


def read_logexpr(path, allow_duplicate_genes: bool = False) -> pd.DataFrame:
    """Read a genes x samples log-expression table (arrays, or already normalised RNA-seq).

    Same layout rules as :func:`read_count_matrix`; floats and negative values are allowed, NaN
    and non-numeric cells are errors. Returns a float64 DataFrame (index 'gene').
    """
    samples, ids, values, linenos, dropped = _read_matrix_strings(path, "expression table")
    _check_unique(samples, path, "sample ID")
    if not allow_duplicate_genes:
        _check_unique(ids, path, "gene ID", linenos)
    nums = _to_numbers(values, ids, samples, linenos, path, counts_expected=False)
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
    for key, col in (("!Sample_title", "title"), ("!Sample_source_name_ch1", "source_name"),
                     ("!Sample_description", "description")):
        if key in fields:
            if len(fields[key]) != n:
                raise InputError(f"{len(fields[key])} values for {n} samples", path=path, where=key)
            out[col] = fields[key]
    for lineno, vals in chars:
        if len(vals) != n:
            raise InputError(f"{len(vals)} values for {n} samples", path=path,
                             where=f"line {lineno} (!Sample_characteristics_ch1)")
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


def read_htseq_dir(folder, pattern: str = "*.txt|*.counts|*.tsv|*.txt.gz|*.counts.gz|*.tsv.gz"
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
            raise InputError("only one column found; HTSeq-count files have two tab-separated columns "
                             "(gene_id, count)", path=f, where="line 1")
        rows = _split_rows(text, "\t", f)
        for lineno, r in rows:
            if len(r) != 2:
                raise InputError(f"{len(r)} fields, expected 2 (gene_id, count)", path=f, where=f"line {lineno}")
        # tolerate one header line (HTSeq writes none, other tools do)
        if rows and pd.to_numeric(pd.Series([rows[0][1][1]]), errors="coerce").isna().all() \
                and rows[0][1][1].strip().lower() not in MISSING_STRINGS:
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
            raise InputError(f"duplicated sample ID {name!r} (two files with the same name before the "
                             "first dot)", path=f)
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
            svals = _to_numbers(np.array([[r[1]] for _, r in summ_rows], dtype=object), sids, [name],
                                [ln for ln, _ in summ_rows], f, True)
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


def read_sample_sheet(path, response_col: str = "response", sample_col: str | None = "sample_id",
                      label_map: dict | None = None, labels=None) -> pd.DataFrame:
    """Read a sample sheet (TSV/CSV, gzip or not): one row per sample.

    ``sample_col`` names the sample-ID column (None: the first column); the result is indexed by
    it and keeps it as column ``sample_id``. ``label_map`` rewrites response values (e.g.
    ``{"complete remission": "CR"}``, matched case-insensitively); with ``labels`` given, any other
    response value is an error. Empty response cells are errors.
    """
    text = read_text(path)
    sep = detect_delimiter(_first_content_line(text), path)
    rows = _split_rows(text, sep, path)
    header = rows[0][1]
    if len(rows) < 2:
        raise InputError("sample sheet has a header but no rows", path=path)
    for lineno, f in rows[1:]:
        if len(f) != len(header):
            raise InputError(f"{len(f)} fields, expected {len(header)}", path=path, where=f"line {lineno}")
    _check_unique(header, path, "column name")
    df = pd.DataFrame([f for _, f in rows[1:]], columns=header, dtype=object)
    linenos = [ln for ln, _ in rows[1:]]
    scol = header[0] if sample_col is None else sample_col
    if scol not in df.columns:
        raise InputError(f"sample column {scol!r} not found; columns are {header}", path=path, where="line 1")
    if response_col not in df.columns:
        raise InputError(f"response column {response_col!r} not found; columns are {header}", path=path,
                         where="line 1")
    ids = [str(x) for x in df[scol]]
    _check_unique(ids, path, "sample ID", linenos)
    df = df.replace({v: pd.NA for v in ("", "NA", "na", "NaN", "nan")})
    resp = df[response_col]
    if resp.isna().any():
        i = int(np.flatnonzero(resp.isna().to_numpy())[0])
        raise InputError(f"empty response for sample {ids[i]!r}", path=path,
                         where=f"line {linenos[i]}, column {response_col!r}")
    if label_map:
        lm = {str(k).strip().lower(): v for k, v in label_map.items()}
        df[response_col] = [lm.get(str(v).strip().lower(), v) for v in resp]
    if labels is not None:
        bad = [(i, v) for i, v in enumerate(df[response_col]) if v not in set(labels)]
        if bad:
            i, v = bad[0]
            raise InputError(f"unknown response label {v!r} (expected one of {list(labels)}; "
                             "map others with label_map)", path=path,
                             where=f"line {linenos[i]}, column {response_col!r}")
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

def validate_cohort(counts: pd.DataFrame, samples: pd.DataFrame, labels=("CR", "NR"),
                    counts_expected: bool = True, response_col: str = "response",
                    counts_source: str | None = None, samples_source: str | None = None,
                    min_per_class: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check that an expression table and a sample sheet make a usable two-class cohort.

    Checks: numeric, finite values (non-negative integers when ``counts_expected``); unique gene and
    sample IDs; every matrix sample in the sheet and every sheet sample in the matrix; response
    labels in ``labels``; at least ``min_per_class`` samples per class; at least one gene.
    Returns (counts, samples) with the sheet ordered like the matrix columns.
    """
    csrc = counts_source or counts.attrs.get("source", "expression table")
    ssrc = samples_source or samples.attrs.get("source", "sample sheet")
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
        raise InputError("missing value (NaN)", path=csrc,
                         where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}")
    if counts_expected:
        neg = vals < 0
        if neg.any():
            r, c = map(int, np.argwhere(neg)[0])
            raise InputError(f"negative count {vals[r, c]:g}", path=csrc,
                             where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}")
        frac = vals != np.round(vals)
        if frac.any():
            r, c = map(int, np.argwhere(frac)[0])
            raise InputError(f"non-integer count {vals[r, c]:g} where counts are expected", path=csrc,
                             where=f"gene {counts.index[r]!r}, column {counts.columns[c]!r}")
    if samples.index.has_duplicates:
        s = samples.index[samples.index.duplicated()][0]
        raise InputError(f"duplicated sample ID {s!r}", path=ssrc)
    if response_col not in samples.columns:
        raise InputError(f"response column {response_col!r} not found", path=ssrc)
    in_matrix = [s for s in counts.columns if s not in samples.index]
    if in_matrix:
        raise InputError(f"{len(in_matrix)} sample(s) in the matrix but not in the sheet, e.g. "
                         f"{in_matrix[0]!r}", path=ssrc)
    in_sheet = [s for s in samples.index if s not in set(counts.columns)]
    if in_sheet:
        raise InputError(f"{len(in_sheet)} sample(s) in the sheet but not in the matrix, e.g. "
                         f"{in_sheet[0]!r}", path=csrc, where="header")
    samples = samples.loc[list(counts.columns)]
    resp = samples[response_col]
    unknown = [(s, v) for s, v in resp.items() if pd.isna(v) or v not in set(labels)]
    if unknown:
        s, v = unknown[0]
        raise InputError(f"unknown response label {v!r} for sample {s!r} (expected one of {list(labels)})",
                         path=ssrc, where=f"column {response_col!r}")
    for lab in labels:
        n = int((resp == lab).sum())
        if n < min_per_class:
            raise InputError(f"class {lab!r} has {n} sample(s); at least {min_per_class} are needed",
                             path=ssrc, where=f"column {response_col!r}")
    return counts, samples
