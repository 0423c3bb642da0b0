"""A cohort = expression table + sample sheet + metadata; building, combining, saving, Table S1.

``build_cohort(params)`` makes the cohort the book analyses, from one of three sources:

- ``twin``: the simulated twin (:mod:`helpers.data.twin`), deterministic from the seed;
- ``real``: GSE153670 (GEO count matrix + series matrix) and PRJCA000750 (HTSeq folder or a
  merged count table from ``workflow/``, plus a sample sheet), harmonized to gene symbols and
  combined on their shared genes (file names: ``data/raw/README.md``);
- ``custom``: any genes x samples table (counts, or log-expression) plus a sample sheet; a
  folder given as the table is read as HTSeq-count files, one per sample.

Every built cohort then passes :func:`cohort_checks`, which checks up front what the later
chapters need and states what they will do (the rules, once):

- each response label occurs, and every class has at least :data:`MIN_PER_CLASS` (3) samples:
  PAM's leave-one-out CV (chapter 08) refits on n - 1 samples and needs at least 2 per class in
  every training fold; fewer is a one-line error naming the sample sheet and its response column;
- with at least :data:`NESTED_MIN_PER_CLASS` (4) per class chapter 08 also runs the nested
  LOOCV (each inner training fold again needs 2 per class); with exactly 3 in a class it
  reports the naive LOOCV only, with a note saying so (``checks["loocv"] == "naive"``);
- at least :data:`MIN_GENES` (1,000) genes after harmonisation: GSEA, GO over-representation and
  PAM's s0 (the median gene SD) assume a transcriptome-wide table, not a panel; fewer is an
  error naming the table;
- no empty library (counts) and no constant sample (log-expression): errors naming the file and
  the sample column (:func:`helpers.data.loaders.validate_cohort`).

``save_cohort`` writes ``cohort.h5ad`` (AnnData: samples x genes, obs = sample sheet, var = genes)
and, for people, ``counts.tsv.gz`` (genes x samples), ``samples.tsv``, ``truth.tsv`` (twin only)
and ``meta.json``, each written to a temporary file and renamed, byte-identical on reruns.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import annotation, loaders, twin
from helpers.engine.errors import InputError
from helpers.engine.io import _jsonable, atomic_path, write_text
from helpers.engine.paths import RAW


@dataclasses.dataclass
class Cohort:
    """Expression (genes x samples), sample sheet (indexed by sample_id, same order as the
    columns), metadata dict (JSON-able) and, for the twin, the planted truth per gene."""

    counts: pd.DataFrame
    samples: pd.DataFrame
    meta: dict = dataclasses.field(default_factory=dict)
    truth: pd.DataFrame | None = None

    @property
    def kind(self) -> str:
        """'counts' or 'logexpr'."""
        return self.meta.get("kind", "counts")

    def __repr__(self) -> str:  # short, for notebooks
        n_g, n_s = self.counts.shape
        return f"Cohort({self.meta.get('dataset', '?')}, {n_g} genes x {n_s} samples, kind={self.kind})"


# ----------------------------------------------------------------------------- save / load

SAMPLE_COLUMNS_FIRST = ["sample_id", "cohort", "response"]


def _order_samples(samples: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in SAMPLE_COLUMNS_FIRST if c in samples.columns]
    return samples[first + [c for c in samples.columns if c not in first]]


#: text up to this size is gzipped at level 9; larger text at level 1
GZIP_BEST_MAX_BYTES = 16_000_000


def _write_gz_tsv(df: pd.DataFrame, path: Path, index: bool = True) -> None:
    """A gzipped TSV, deterministic (no name, mtime 0). Level 9 for text up to
    :data:`GZIP_BEST_MAX_BYTES` (the 31-sample twin's 2.3 MB: a fraction of a second), level 1
    above it: on the 1,000-sample twin's 71 MB of counts, level 9 took 33 s (level 6: 21 s) and
    level 1 2 s, for a file 12% larger (33 vs 29 MB)."""
    data = df.to_csv(sep="\t", index=index, lineterminator="\n", float_format="%.10g").encode("utf-8")
    level = 9 if len(data) <= GZIP_BEST_MAX_BYTES else 1
    with atomic_path(path) as tmp:
        with (
            open(tmp, "wb") as fh,
            gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=level) as gz,
        ):
            gz.write(data)


def _write_tsv(df: pd.DataFrame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, lineterminator="\n", float_format="%.10g", na_rep="NA")


def _obs_for_anndata(samples: pd.DataFrame) -> pd.DataFrame:
    obs = samples.copy()
    obs.index = obs.index.astype(str)
    for c in obs.columns:
        s = obs[c]
        if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        obs[c] = pd.Categorical(s.astype("string").astype(object).where(s.notna(), None))
    return obs


def save_cohort(cohort: Cohort, outdir) -> dict:
    """Write the cohort to ``outdir`` (created): cohort.h5ad, counts.tsv.gz, samples.tsv, meta.json,
    truth.tsv (if any). Each file is written to a temporary name and renamed; returns the paths.

    Everything that can fail on the cohort's content (sample order, JSON-able metadata, the
    AnnData object) is checked before the first file is written, so a bad cohort raises
    :class:`InputError` and leaves ``outdir`` untouched (not even created).
    """
    import anndata as ad

    outdir = Path(outdir)
    samples = _order_samples(cohort.samples)
    counts = cohort.counts
    if list(samples.index) != list(counts.columns):
        diff = next(
            (i for i, (a, b) in enumerate(zip(samples.index, counts.columns)) if a != b),
            min(len(samples), counts.shape[1]),
        )
        raise InputError(
            f"sample sheet ({len(samples)} rows) does not match the expression columns "
            f"({counts.shape[1]}) in order, first difference at position {diff + 1}; "
            "run loaders.validate_cohort first",
            path=outdir,
            where="cohort.samples",
        )
    try:
        meta_text = json.dumps(cohort.meta, indent=2, sort_keys=True, default=_jsonable) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"metadata cannot be written as JSON ({exc})", path=outdir, where="cohort.meta") from None
    paths = {}
    X = counts.to_numpy().T.copy()
    var = pd.DataFrame(index=pd.Index(counts.index.astype(str), name=None))
    if cohort.truth is not None:
        t = cohort.truth.set_index("gene").reindex(counts.index)
        for c in t.columns:
            var[c] = t[c].to_numpy() if t[c].dtype != object else t[c].fillna("").astype(str).to_numpy()
    adata = ad.AnnData(X=X, obs=_obs_for_anndata(samples), var=var)
    adata.uns["meta_json"] = json.dumps(cohort.meta, sort_keys=True, default=str)
    outdir.mkdir(parents=True, exist_ok=True)
    p = outdir / "cohort.h5ad"
    with atomic_path(p) as tmp:
        adata.write_h5ad(tmp)
    paths["h5ad"] = p
    p = outdir / "counts.tsv.gz"
    _write_gz_tsv(counts.rename_axis("gene"), p)
    paths["counts"] = p
    p = outdir / "samples.tsv"
    _write_tsv(samples, p, index=False)
    paths["samples"] = p
    if cohort.truth is not None:
        p = outdir / "truth.tsv"
        _write_tsv(cohort.truth, p, index=False)
        paths["truth"] = p
    p = outdir / "meta.json"
    write_text(p, meta_text)
    paths["meta"] = p
    return paths


def load_cohort(outdir) -> Cohort:
    """Read a cohort written by :func:`save_cohort` (from its cohort.h5ad)."""
    import anndata as ad

    p = Path(outdir) / "cohort.h5ad"
    if not p.exists():
        raise InputError("no saved cohort here (run notebook 01 cohort first)", path=p)
    adata = ad.read_h5ad(p)
    meta = json.loads(adata.uns.get("meta_json", "{}"))
    kind = meta.get("kind", "counts")
    X = np.asarray(adata.X)
    counts = pd.DataFrame(
        X.T.astype(np.int64) if kind == "counts" else X.T.astype(float),
        index=pd.Index(list(adata.var_names), name="gene"),
        columns=list(adata.obs_names),
    )
    obs = adata.obs.copy()
    for c in obs.columns:
        if isinstance(obs[c].dtype, pd.CategoricalDtype):
            obs[c] = obs[c].astype(object).where(obs[c].notna(), pd.NA)
    obs.index = list(obs.index)
    truth = None
    if adata.var.shape[1]:
        truth = adata.var.reset_index(names="gene")
        for c in truth.columns:
            if isinstance(truth[c].dtype, pd.CategoricalDtype):
                truth[c] = truth[c].astype(str)
    counts.attrs["source"] = str(p)
    obs.attrs["source"] = str(p)
    return Cohort(counts=counts, samples=obs, meta=meta, truth=truth)


# ----------------------------------------------------------------------------- combine / table


def combine_cohorts(cohorts: list[Cohort], names: list[str] | None = None) -> tuple[Cohort, dict]:
    """Join cohorts on their shared genes (inner join); sample sheets are stacked (missing columns
    become NA, a missing 'cohort' column is filled with the cohort's name). Returns the combined
    cohort and a report of genes dropped per cohort."""
    if not cohorts:
        raise ValueError("no cohorts to combine")
    kinds = {c.kind for c in cohorts}
    if len(kinds) > 1:
        raise InputError(f"cannot combine counts with log-expression ({sorted(kinds)})", path="cohorts")
    names = names or [c.meta.get("name", f"cohort{i + 1}") for i, c in enumerate(cohorts)]
    shared = set(cohorts[0].counts.index)
    for c in cohorts[1:]:
        shared &= set(c.counts.index)
    genes = [g for g in cohorts[0].counts.index if g in shared]
    report = {"n_shared_genes": len(genes), "dropped": {}}
    parts, sheets = [], []
    for name, c in zip(names, cohorts):
        report["dropped"][name] = int(c.counts.shape[0] - len(genes))
        parts.append(c.counts.loc[genes])
        s = c.samples.copy()
        if "cohort" not in s.columns:
            s["cohort"] = name
        sheets.append(s)
    counts = pd.concat(parts, axis=1)
    if counts.columns.has_duplicates:
        dup = counts.columns[counts.columns.duplicated()][0]
        raise InputError(f"sample ID {dup!r} occurs in more than one cohort", path="cohorts")
    if not genes:
        raise InputError("no genes left after filtering: the cohorts share no gene", path="cohorts")
    samples = _order_samples(pd.concat(sheets, axis=0))
    meta = {
        "kind": cohorts[0].kind,
        "combined_from": names,
        "combine_report": report,
        "parts": [c.meta for c in cohorts],
    }
    return Cohort(counts=counts, samples=samples, meta=meta), report


def cohort_table(cohort: Cohort, response_col: str = "response", cohort_col: str = "cohort") -> pd.DataFrame:
    """Table S1 analogue: one row per cohort x response (and totals per cohort and overall).

    Columns: n_samples, library size (median, min, max; counts only: column sums), genes detected
    per sample (median; count >= 1 for counts), age (median, and how many samples have it),
    female/male counts where a 'sex' column exists.
    """
    s = cohort.samples
    counts = cohort.counts
    is_counts = cohort.kind == "counts"
    lib = counts.sum(axis=0) if is_counts else pd.Series(np.nan, index=counts.columns)
    detected = (counts > 0).sum(axis=0) if is_counts else counts.notna().sum(axis=0)
    coh = s[cohort_col] if cohort_col in s.columns else pd.Series("all", index=s.index)
    groups = []
    for c in sorted(coh.unique(), key=str):
        for r in sorted(s[response_col].unique(), key=str):
            groups.append((c, r, s.index[(coh == c) & (s[response_col] == r)]))
        groups.append((c, "all", s.index[coh == c]))
    if coh.nunique() > 1:
        for r in sorted(s[response_col].unique(), key=str):
            groups.append(("all", r, s.index[s[response_col] == r]))
    groups.append(("all", "all", s.index))
    rows = []
    for c, r, idx in groups:
        if len(idx) == 0:
            continue
        row = {"cohort": c, "response": r, "n_samples": len(idx)}
        if is_counts:
            row.update(
                library_size_median=float(lib[idx].median()),
                library_size_min=int(lib[idx].min()),
                library_size_max=int(lib[idx].max()),
            )
        row["genes_detected_median"] = float(detected[idx].median())
        if "age" in s.columns:
            age = pd.to_numeric(s.loc[idx, "age"], errors="coerce")
            row["age_n"] = int(age.notna().sum())
            row["age_median"] = float(age.median()) if age.notna().any() else np.nan
        if "sex" in s.columns:
            sex = s.loc[idx, "sex"].astype("string").str.upper().str[0]
            row["female"] = int((sex == "F").sum())
            row["male"] = int((sex == "M").sum())
            row["sex_unknown"] = int(sex.isna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- up-front checks

#: Fewest samples per class chapter 01 accepts (a stated parameter of :func:`build_cohort`):
#: below it chapter 08 could not cross-validate PAM at all.
MIN_PER_CLASS = 3
#: Fewest samples per class for any leave-one-out CV of PAM (2 per class in every training fold).
LOOCV_MIN_PER_CLASS = 3
#: Fewest samples per class for the nested LOOCV (2 per class in every inner training fold).
NESTED_MIN_PER_CLASS = 4
#: Fewest genes after harmonisation (a transcriptome-wide table, not a panel).
MIN_GENES = 1000


def _sources(cohort: Cohort) -> tuple[str, str]:
    """(expression table(s), sample sheet(s)) the cohort came from, for messages."""
    meta = cohort.meta or {}
    files = [meta.get("files")] if meta.get("files") else [p.get("files") for p in meta.get("parts", [])]
    files = [f for f in files if f]
    if files:
        return " + ".join(str(f[0]) for f in files), " + ".join(str(f[-1]) for f in files)
    return (
        str(cohort.counts.attrs.get("source", "expression table")),
        str(cohort.samples.attrs.get("source", "sample sheet")),
    )


def cohort_checks(
    cohort: Cohort,
    labels=("CR", "NR"),
    *,
    min_genes: int = MIN_GENES,
    min_per_class: int = MIN_PER_CLASS,
    response_col: str = "response",
    response_name: str | None = None,
) -> dict:
    """Check up front what the later chapters need (module docstring) and say what they will do.

    Raises :class:`InputError` (one line naming the file, the column and the fix) when a label
    does not occur, a class has fewer than ``min_per_class`` samples, fewer than ``min_genes``
    genes are left, or a library is empty. Otherwise returns a JSON-able dict: ``n_per_class``,
    ``n_genes``, ``kind``, ``loocv`` ('nested', 'naive', or 'none' when ``min_per_class`` was
    lowered below 3), ``nested_loocv`` (bool), ``note`` (why chapter 08 does less; '' when it
    does everything), the minimums, library sizes (counts) and
    ``rows`` (check, required, found, result) for the chapter to print (:func:`checks_table`).
    ``response_name`` is the column's name in the user's sheet, for messages (default ``response_col``).
    """
    table_src, sheet_src = _sources(cohort)
    labels = list(labels)
    s = cohort.samples
    if response_col not in s.columns:
        raise InputError(f"response column {response_col!r} not found", path=sheet_src)
    resp = s[response_col]
    found = loaders.label_counts(resp)
    response_col = response_name or response_col  # from here on only used in messages
    if len(set(labels)) != len(labels):
        raise InputError(
            f"the response labels {labels} are not distinct (cr_label and nr_label must name the two "
            f"groups; column {response_col!r} holds {found})",
            path=sheet_src,
            where=f"column {response_col!r}",
        )
    n_per = {lab: int((resp == lab).sum()) for lab in labels}
    rows = []
    for lab, n in n_per.items():
        if n == 0:
            raise InputError(
                f"no sample has the label {lab!r} (column {response_col!r} holds {found}); set "
                "cr_label/nr_label to the labels used, or map them with label_map",
                path=sheet_src,
                where=f"column {response_col!r}",
            )
        if n < min_per_class:
            raise InputError(
                f"class {lab!r} has {n} sample(s) (column {response_col!r} holds {found}); at least "
                f"{min_per_class} per class are needed: PAM's leave-one-out CV (chapter 08) keeps >= 2 "
                "per class in every training fold; add samples, or map other labels onto it with label_map",
                path=sheet_src,
                where=f"column {response_col!r}",
            )
        rows.append(
            {"check": f"samples in class {lab}", "required": f">= {min_per_class}", "found": str(n), "result": "ok"}
        )
    smallest = min(n_per.values())
    nested = smallest >= NESTED_MIN_PER_CLASS
    loocv = "nested" if nested else ("naive" if smallest >= LOOCV_MIN_PER_CLASS else "none")
    small = ", ".join(f"{lab} has {n}" for lab, n in n_per.items() if n < NESTED_MIN_PER_CLASS)
    note = {
        "nested": "",
        "naive": f"nested LOOCV needs >= {NESTED_MIN_PER_CLASS} samples per class (each inner training fold keeps "
        f">= 2); {small}, so chapter 08 reports the naive LOOCV only (threshold chosen on the same errors "
        "it reports: optimistic)",
        "none": f"leave-one-out CV needs >= {LOOCV_MIN_PER_CLASS} samples per class (each training fold keeps "
        f">= 2); {small}, so chapter 08 cannot cross-validate PAM",
    }[loocv]
    rows.append(
        {
            "check": "LOOCV of PAM (chapter 08)",
            "required": f">= {NESTED_MIN_PER_CLASS} per class (nested), >= {LOOCV_MIN_PER_CLASS} (naive)",
            "found": f"{smallest} in the smallest class",
            "result": {
                "nested": "nested and naive LOOCV",
                "naive": "naive LOOCV only (see note)",
                "none": "no LOOCV (see note)",
            }[loocv],
        }
    )
    n_genes = int(cohort.counts.shape[0])
    if n_genes < min_genes:
        joined = " and joining the datasets on their shared genes" if "combine_report" in (cohort.meta or {}) else ""
        raise InputError(
            f"only {n_genes} genes after mapping IDs to symbols{joined}; at least {min_genes} are needed "
            "(GSEA, GO and PAM's s0 assume a transcriptome-wide table, not a gene panel); check id_type "
            "and the annotation report of chapter 01",
            path=table_src,
        )
    rows.append(
        {"check": "genes after harmonisation", "required": f">= {min_genes}", "found": str(n_genes), "result": "ok"}
    )
    out = {
        "labels": labels,
        "n_samples": int(len(s)),
        "n_per_class": n_per,
        "n_genes": n_genes,
        "kind": cohort.kind,
        "min_per_class": int(min_per_class),
        "nested_min_per_class": NESTED_MIN_PER_CLASS,
        "min_genes": int(min_genes),
        "loocv": loocv,
        "nested_loocv": bool(nested),
        "note": note,
    }
    if cohort.kind == "counts":
        lib = cohort.counts.sum(axis=0)
        if (lib == 0).any():
            c = lib.index[lib.to_numpy() == 0][0]
            raise InputError(
                f"sample column {c!r} has no reads: every count is 0; remove the sample from the table "
                "and the sample sheet",
                path=table_src,
                where=f"column {c!r}",
            )
        out["library_size_min"] = int(lib.min())
        out["library_size_median"] = float(lib.median())
        rows.append(
            {
                "check": "reads per library",
                "required": "> 0",
                "found": f"{int(lib.min())} in the smallest",
                "result": "ok",
            }
        )
    out["rows"] = rows
    return out


def checks_table(checks: dict) -> pd.DataFrame:
    """The checks of :func:`cohort_checks` as a table (check, required, found, result)."""
    return pd.DataFrame(checks["rows"], columns=["check", "required", "found", "result"])


# ----------------------------------------------------------------------------- build


def _config_defaults() -> dict:
    """:func:`build_cohort`'s defaults, read from ``config/params.yml`` (the one place they are
    written down, with their comments and schema): the globals ``dataset``, ``seed``,
    ``cr_label`` / ``nr_label`` and chapter 01's ``id_type``, ``update_symbols``, ``real`` and
    ``custom`` blocks. ``simulate`` stays ``{}`` here: overrides of the twin's own defaults,
    which :mod:`helpers.data.twin` reads from the same file."""
    import yaml

    from helpers.engine.paths import CONFIG

    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    g, nb = cfg["global"], cfg["notebooks"]["01_cohort"]
    return {
        "dataset": g["dataset"],
        "seed": g["seed"],
        "labels": [g["cr_label"], g["nr_label"]],
        "simulate_preset": "default",
        "simulate": {},  # overrides of helpers.data.twin.DEFAULT_PARAMS
        "real": copy.deepcopy(nb["real"]),
        "custom": copy.deepcopy(nb["custom"]),
        "id_type": nb["id_type"],
        "update_symbols": nb["update_symbols"],
    }


#: The defaults :func:`build_cohort` merges ``params`` over (from ``config/params.yml``).
DEFAULT_BUILD = _config_defaults()


def _glob_one(base: Path, pattern: str, what: str, required: bool = True):
    hits = sorted(base.glob(pattern))
    hits = [h for h in hits if h.is_file()]
    if not hits:
        if required:
            raise InputError(f"no file matching {pattern!r} for {what}; see data/raw/README.md", path=base)
        return None
    if len(hits) > 1:
        raise InputError(
            f"{len(hits)} files match {pattern!r} for {what}: {[h.name for h in hits]}; set the exact name in params",
            path=base,
        )
    return hits[0]


def align_sample_ids(
    counts: pd.DataFrame, samples: pd.DataFrame, candidates=("sample_id", "title", "description", "source_name")
) -> pd.DataFrame:
    """Re-index ``samples`` by whichever of its columns holds all the matrix's column names
    (GEO matrices often use sample titles rather than GSM accessions)."""
    cols = set(map(str, counts.columns))
    for c in candidates:
        if c in samples.columns and cols <= set(samples[c].astype(str)) and samples[c].is_unique:
            out = samples.copy()
            out.index = out[c].astype(str).to_list()
            if c != "sample_id":
                out["geo_accession"] = samples["sample_id"].to_numpy()
                out["sample_id"] = out.index
            return out
    # GEO RAW tarballs name files <GSM>_<title>...: match on the accession prefix
    import re

    gsm = {c: re.match(r"^(GSM\d+)", str(c)) for c in counts.columns}
    if "sample_id" in samples.columns and all(gsm.values()):
        acc = {c: m.group(1) for c, m in gsm.items()}
        if set(acc.values()) <= set(samples["sample_id"].astype(str)) and len(set(acc.values())) == len(acc):
            inv = {a: c for c, a in acc.items()}
            out = samples[samples["sample_id"].astype(str).isin(inv)].copy()
            out["geo_accession"] = out["sample_id"].to_numpy()
            out.index = [inv[a] for a in out["sample_id"].astype(str)]
            out["sample_id"] = out.index
            return out
    return samples


def _harmonize(counts, kind, p, source):
    out, rep = annotation.harmonize_ids(
        counts, id_type=p["id_type"], kind=kind, update_symbols=p["update_symbols"], source=source
    )
    return out, rep


def build_cohort(
    params: dict | None = None, *, min_genes: int = MIN_GENES, min_per_class: int = MIN_PER_CLASS
) -> Cohort:
    """Build the cohort named by ``params['dataset']`` ('twin', 'real' or 'custom'), validated and
    with gene IDs harmonized to symbols. ``params`` is merged over :data:`DEFAULT_BUILD`.
    The result has passed :func:`cohort_checks` (with these minimums), whose answer is in
    ``cohort.meta["checks"]``. Nothing is written; call :func:`save_cohort`."""
    p = _merge_params(params)
    labels = list(p["labels"])
    coh = _build_dataset(p, labels)
    response_name = p["custom"]["response_col"] if p["dataset"] == "custom" else "response"
    coh.meta["checks"] = cohort_checks(
        coh, labels, min_genes=min_genes, min_per_class=min_per_class, response_name=response_name
    )
    return coh


def _merge_params(params: dict | None) -> dict:
    p = copy.deepcopy(DEFAULT_BUILD)
    for k, v in (params or {}).items():
        if k not in p:
            raise InputError(f"unknown parameter {k!r}", path="params", where="cohort")
        if isinstance(v, dict) and isinstance(p[k], dict) and k != "simulate":
            unknown = sorted(set(v) - set(p[k]), key=str)
            if unknown:
                raise InputError(
                    f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(p[k]))})", path="params", where=k
                )
            p[k].update(v)
        else:
            p[k] = v
    return p


def _build_dataset(p: dict, labels: list) -> Cohort:
    ds = p["dataset"]
    if len(labels) != 2:
        raise InputError(
            f"expected two response labels (cr_label, nr_label), got {labels}", path="params", where="labels"
        )
    if ds == "twin":
        if labels[0] == labels[1]:  # the twin would label every sample alike
            raise InputError(
                f"cr_label and nr_label are both {labels[0]!r}; they must name the two response groups",
                path="params",
                where="global.cr_label, global.nr_label",
            )
        sp = twin.preset(p["simulate_preset"])
        sp = twin.merge_params(sp, p["simulate"])
        sp["labels"] = labels
        counts, samples, truth = twin.simulate_cohort(sp, seed=int(p["seed"]))
        counts.attrs["source"] = "simulated twin"
        samples.attrs["source"] = "simulated twin"
        counts, samples = loaders.validate_cohort(counts, samples, labels=labels)
        meta = {
            "dataset": "twin",
            "kind": "counts",
            "seed": int(p["seed"]),
            "simulate_params": sp,
            "simulate_preset": p["simulate_preset"],
        }
        return Cohort(counts=counts, samples=samples, meta=meta, truth=truth)
    if ds == "real":
        return _build_real(p, labels)
    if ds == "custom":
        return _build_custom(p, labels)
    raise InputError(f"dataset must be twin, real or custom, not {ds!r}", path="params", where="global.dataset")


def _build_real(p, labels) -> Cohort:
    r = p["real"]
    raw = Path(r["raw_dir"]) if r["raw_dir"] else RAW
    # GSE153670: count matrix + series matrix
    gse_counts_path = _glob_one(
        raw, r["gse_counts"], "the GSE153670 count matrix", required=not (raw / r["gse_htseq_dir"]).is_dir()
    )
    gse_sm_path = _glob_one(raw, r["gse_series_matrix"], "the GSE153670 series matrix")
    gse_summary = None
    if gse_counts_path is not None:
        gse_counts = loaders.read_count_matrix(gse_counts_path)
    else:
        gse_counts_path = raw / r["gse_htseq_dir"]
        gse_counts, gse_summary = loaders.read_htseq_dir(gse_counts_path)
    sm = loaders.read_series_matrix(gse_sm_path)
    rc = r["gse_response_col"]
    if rc not in sm.columns:
        chars = [c for c in sm.columns if c not in ("sample_id", "title", "source_name", "description")]
        raise InputError(
            f"response column {rc!r} not among the characteristics {chars}; set real.gse_response_col", path=gse_sm_path
        )
    lm = {str(k).lower(): v for k, v in r["label_map"].items()}
    sm["response"] = [lm.get(str(v).strip().lower(), v) for v in sm[rc]]
    sm["cohort"] = "GSE153670"
    sm = align_sample_ids(gse_counts, sm)
    excluded = []
    if r["exclude_other_labels"]:
        excluded = [s for s, v in sm["response"].items() if v not in set(labels)]
        sm = sm.drop(index=excluded)
        gse_counts = gse_counts.drop(columns=[s for s in excluded if s in gse_counts.columns])
    sm = sm[sm.index.isin(gse_counts.columns)] if set(gse_counts.columns) <= set(sm.index) else sm
    gse_counts, rep_gse = _harmonize(gse_counts, "counts", p, str(gse_counts_path))
    gse_counts.attrs["source"] = str(gse_counts_path)
    sm.attrs["source"] = str(gse_sm_path)
    gse_counts, sm = loaders.validate_cohort(gse_counts, sm, labels=labels)
    # PRJCA000750: merged counts or HTSeq folder + sample sheet
    prj_counts_path = _glob_one(raw, r["prj_counts"], "PRJCA000750 counts", required=False)
    htseq_summary = None
    if prj_counts_path is not None:
        prj_counts = loaders.read_count_matrix(prj_counts_path)
        prj_src = str(prj_counts_path)
    else:
        prj_counts, htseq_summary = loaders.read_htseq_dir(raw / r["prj_htseq_dir"])
        prj_src = str(raw / r["prj_htseq_dir"])
    prj_sheet = loaders.read_sample_sheet(raw / r["prj_samples"], label_map=r["label_map"], labels=labels)
    if "cohort" not in prj_sheet.columns:
        prj_sheet["cohort"] = "PRJCA000750"
    prj_counts, rep_prj = _harmonize(prj_counts, "counts", p, prj_src)
    prj_counts.attrs["source"] = prj_src
    prj_counts, prj_sheet = loaders.validate_cohort(prj_counts, prj_sheet, labels=labels, min_per_class=1)
    a = Cohort(
        gse_counts,
        sm,
        {
            "name": "GSE153670",
            "kind": "counts",
            "harmonize": rep_gse,
            "excluded_samples": excluded,
            "files": [str(gse_counts_path), str(gse_sm_path)],
        },
    )
    b = Cohort(
        prj_counts,
        prj_sheet,
        {
            "name": "PRJCA000750",
            "kind": "counts",
            "harmonize": rep_prj,
            "files": [prj_src, str(raw / r["prj_samples"])],
        },
    )
    if gse_summary is not None:
        a.meta["htseq_summary"] = {k: {i: int(v) for i, v in col.items()} for k, col in gse_summary.items()}
    if htseq_summary is not None:
        b.meta["htseq_summary"] = {k: {i: int(v) for i, v in col.items()} for k, col in htseq_summary.items()}
    combined, rep = combine_cohorts([a, b], names=["GSE153670", "PRJCA000750"])
    combined.counts.attrs["source"] = "combined GSE153670 + PRJCA000750"
    combined.counts, combined.samples = loaders.validate_cohort(combined.counts, combined.samples, labels=labels)
    combined.meta.update(dataset="real", seed=int(p["seed"]))
    return combined


def _build_custom(p, labels) -> Cohort:
    c = p["custom"]
    if not c["table"] or not c["sample_sheet"]:
        raise InputError(
            "custom dataset needs custom.table and custom.sample_sheet paths", path="params", where="custom"
        )
    kind = c["kind"]
    if kind not in ("counts", "logexpr"):
        raise InputError(f"custom.kind must be counts or logexpr, not {kind!r}", path="params", where="custom.kind")
    # arrays measure many genes with several probes: duplicated symbols in a log-expression table
    # are expected and collapsed by harmonisation (highest mean); in a count table they are an error
    # a folder is read as HTSeq-count outputs, one file per sample (the '__' rows kept aside)
    htseq_summary = None
    if Path(c["table"]).is_dir():
        if kind != "counts":
            raise InputError(
                "a folder is read as HTSeq-count files (one per sample), which hold counts: set custom.kind "
                "to counts, or give the log-expression table's file",
                path=c["table"],
                where="custom.kind",
            )
        table, htseq_summary = loaders.read_htseq_dir(c["table"])
    elif kind == "counts":
        table = loaders.read_count_matrix(c["table"])
    else:
        table = loaders.read_logexpr(c["table"], allow_duplicate_genes=True)
    dropped = list(table.attrs.get("dropped_columns", []))
    sheet = loaders.read_sample_sheet(
        c["sample_sheet"], response_col=c["response_col"], sample_col=c["sample_col"], label_map=c["label_map"] or None
    )
    if "cohort" not in sheet.columns:
        sheet["cohort"] = c["cohort_name"]
    table, rep = _harmonize(table, kind, p, str(c["table"]))
    table.attrs.update(source=str(c["table"]), dropped_columns=dropped)
    table, sheet = loaders.validate_cohort(
        table, sheet, labels=labels, counts_expected=(kind == "counts"), response_col=c["response_col"]
    )
    meta = {
        "dataset": "custom",
        "kind": kind,
        "name": c["cohort_name"],
        "harmonize": rep,
        "dropped_columns": dropped,
        "files": [str(c["table"]), str(c["sample_sheet"])],
        "seed": int(p["seed"]),
    }
    if htseq_summary is not None:
        kept = [x for x in htseq_summary.columns if x in set(table.columns)]
        meta["htseq_summary"] = {k: {i: int(v) for i, v in htseq_summary[k].items()} for k in kept}
    return Cohort(counts=table, samples=sheet, meta=meta)
