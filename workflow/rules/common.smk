# Config and sample sheet: loaded and validated at start-up, with one-line messages.

import math
import os
import re
import sys
from pathlib import Path

import jsonschema
import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

FASTQ_EXT = re.compile(r"\.(fastq|fq)(\.gz)?$")


def fail(message):
    """Stop the workflow before any job runs, with a single-line message."""
    raise WorkflowError("invalid input: " + " ".join(str(message).split()))


def _schema_error(err):
    """The jsonschema error inside a WorkflowError raised by snakemake's validate, if any."""
    for arg in getattr(err, "args", ()):
        if isinstance(arg, jsonschema.exceptions.ValidationError):
            return arg
    cause = err.__cause__ or err.__context__
    return cause if isinstance(cause, jsonschema.exceptions.ValidationError) else None


def _describe(verr):
    """Turn a jsonschema ValidationError into 'key.path: what is wrong (what is expected)'."""
    where = ".".join(str(p) for p in verr.absolute_path) or "(top level)"
    what = verr.message
    if verr.validator == "additionalProperties":
        what = f"{verr.message}; allowed keys: {', '.join(sorted(verr.schema.get('properties', {})))}"
    hint = verr.schema.get("description") if isinstance(verr.schema, dict) else None
    return where, f"{what}" + (f" (expected: {hint})" if hint else "")


def _yaml_booleans(cfg):
    """YAML reads unquoted yes/no as booleans; htseq's --stranded wants the words back."""
    htseq = cfg.get("htseq")
    if isinstance(htseq, dict) and isinstance(htseq.get("stranded"), bool):
        htseq["stranded"] = "yes" if htseq["stranded"] else "no"


def load_config(cfg, schema):
    """Validate the config against the schema (filling defaults) or stop with a clear message."""
    if not cfg:
        fail("no config: pass --configfile workflow/config.yaml (or CONFIG=... to make upstream)")
    _yaml_booleans(cfg)
    try:
        validate(cfg, schema)
    except WorkflowError as e:
        verr = _schema_error(e)
        if verr is None:
            raise
        where, what = _describe(verr)
        fail(f"config: {where}: {what}")
    for key in ("fasta", "gtf"):
        path = cfg["reference"][key]
        if not os.path.isfile(path):
            fail(f"config: reference.{key}: file not found: {path} (relative paths start at {os.getcwd()})")
    if not os.path.isfile(cfg["samples"]):
        fail(f"config: samples: sample sheet not found: {cfg['samples']} (relative paths start at {os.getcwd()})")
    return cfg


def load_samples(path, schema):
    """Read and validate the sample sheet; return a DataFrame indexed by sample with fq1, fq2."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False,
                         na_values=[""], skip_blank_lines=True)
    except Exception as e:  # pandas' parser errors already name the line
        fail(f"{path}: cannot read as a tab-separated table: {e}")
    df.columns = [str(c).strip() for c in df.columns]
    for col in ("sample", "fq1"):
        if col not in df.columns:
            fail(f"{path}: header: missing column '{col}' (found: {', '.join(df.columns)}; "
                 "the sheet must be tab-separated with columns sample, fq1 and optional fq2)")
    if df.empty:
        fail(f"{path}: no samples listed")
    if "fq2" not in df.columns:
        df["fq2"] = None
    df = df.apply(lambda col: col.str.strip() if col.dtype == object else col)
    for i, row in enumerate(df.to_dict("records")):
        line = f"row {i + 1} (sample {row.get('sample')!r})"
        record = {k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and math.isnan(v)))}
        try:
            validate(pd.DataFrame([record]), schema)
        except WorkflowError as e:
            verr = _schema_error(e)
            if verr is None:
                raise
            column, what = _describe(verr)
            fail(f"{path}: {line}: column {column}: {what}")
    dup = df["sample"][df["sample"].duplicated()].unique()
    if len(dup):
        fail(f"{path}: column sample: duplicated sample name(s): {', '.join(dup)}")
    base = Path(path).parent
    out = {}
    for i, row in enumerate(df.to_dict("records")):
        line = f"row {i + 1} (sample {row['sample']!r})"
        fqs = [row["fq1"]] + ([row["fq2"]] if isinstance(row["fq2"], str) and row["fq2"] else [])
        for col, fq in zip(("fq1", "fq2"), fqs):
            if not os.path.isfile(fq):
                fail(f"{path}: {line}: column {col}: file not found: {fq} "
                     f"(relative paths start at {os.getcwd()})")
        if len(fqs) == 2:
            if os.path.abspath(fqs[0]) == os.path.abspath(fqs[1]):
                fail(f"{path}: {line}: fq1 and fq2 are the same file: {fqs[0]}")
            if fqs[0].endswith(".gz") != fqs[1].endswith(".gz"):
                fail(f"{path}: {line}: fq1 and fq2 must both be gzipped or both plain")
        out[row["sample"]] = fqs
    return out


def fastq_ext(path):
    """'.fastq.gz', '.fq', ... as written on the input file (FastQC strips these)."""
    return FASTQ_EXT.search(path).group(0)


def star_sa_index_nbases(setting, fasta):
    """STAR's --genomeSAindexNbases: the configured value, or min(14, log2(L)/2 - 1) from the FASTA size."""
    if setting != "auto":
        return int(setting)
    size = max(os.path.getsize(fasta), 16) if os.path.exists(fasta) else 3_000_000_000
    return int(min(14, math.floor(math.log2(size) / 2 - 1)))
