"""Frozen nearest-shrunken-centroid models as scoring tools: the paper's published 14-gene model
(Table 1) or a model saved from a :mod:`helpers.methods.pam` fit.

A model holds, per signature gene i, the shrunken centroid of every class ``xbar'_ik``, the
scale ``s_i + s0`` and the class priors ``pi_k``. A sample x is scored with the paper's
discriminant (Methods, "Prediction model construction"; Fig. 4):

    delta_k(x) = sum_i (x_i - xbar'_ik)^2 / (s_i + s0)^2 - 2 log(pi_k)

and called the class with the smallest ``delta_k``; for two classes exactly the paper's rule
"class CR if delta_CR(x) < delta_NR(x), otherwise NR" (so an exact tie goes to the second
class). The class probability is pamr's posterior ``softmax(-delta_k / 2)``.

Model JSON (``save_model`` / ``load_model``)::

    {"format": "helpers.pam-model/1", "name": ..., "classes": ["CR", "NR"],
     "genes": [...], "centroids": {"CR": [...], "NR": [...]}, "sd": [...],
     "priors": {"CR": 0.71, "NR": 0.29}, "scale": "logcpm",
     "provenance": {...}}

Every field but ``name``, ``format`` and ``provenance`` is required. A model file is checked
before use: centroids and SDs finite, every SD positive, priors positive and summing to 1, and
``scale`` one of :data:`SCALES` (the log2 expression scales this project produces). Every known
scale is a log2 scale, so :func:`helpers.analysis.scoring.score_file` (files and the command line,
in their own module because they match genes through :mod:`helpers.analysis.signature`, which
builds on this one) also checks that the table it scores looks like log2
expression and not raw counts (see :func:`check_log2_scale` for the criterion).
"""

from __future__ import annotations

import io as _io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError
from helpers.engine.io import read_input, write_json
from helpers.engine.paths import PAPER
from helpers.methods import pam

__all__ = [
    "Model",
    "PUBLISHED_PRIORS",
    "load_model",
    "published_model",
    "save_model",
    "model_from_fit",
    "score",
    "read_expression",
    "check_log2_scale",
    "check_output_path",
    "SCALES",
]

FORMAT = "helpers.pam-model/1"
REQUIRED = ("classes", "genes", "centroids", "sd", "priors", "scale")

#: The paper does not print its priors. pamr and BRB-ArrayTools' PAM default to the class
#: proportions of the training set, which for the paper's cohort are 22 CR and 9 NR of 31.
PUBLISHED_PRIORS = {"CR": 22 / 31, "NR": 9 / 31}

#: The expression scales a model may declare (its ``scale`` field), all log2 scales. The first
#: three are :func:`helpers.analysis.expression.log_expression`'s; ``log2`` is any other log2
#: expression (arrays, log2 normalised counts).
SCALES = {
    "logcpm": "edgeR log2-CPM (TMM library sizes, prior count 2)",
    "voom": "voom log2-CPM (TMM library sizes)",
    "log2_counts": "log2(count + 1)",
    "log2": "log2 expression of another normalisation (arrays, log2 normalised counts)",
}

#: What the published model's ``log2`` means (kept in its provenance).
PUBLISHED_SCALE = (
    "log2 expression on the scale of the paper's BRB-ArrayTools analysis (Methods: 'log intensities'); "
    "centroids near 4-7, so a log2 normalized-count scale; scores are only meaningful on that scale"
)

#: The plausible range of log2 expression (see :func:`check_log2_scale`).
LOG2_RANGE = (-30.0, 30.0)

PUBLISHED_PROVENANCE = {
    "source": "Shao, Iyer et al. Identification of genomic signatures in bone marrow associated with "
    "clinical response of CD19 CAR T-cell therapy. Sci Rep 12, 2830 (2022). "
    "doi:10.1038/s41598-022-06830-3",
    "table": "Table 1 (shrunken centroids in class CR and NR, standard deviation s_i + s0), as printed "
    "(2 decimals); file data/paper/table1.tsv",
    "equation": "Methods 'Prediction model construction' and Fig. 4: delta_k(x) = sum_i (x_i - xbar'_ik)^2 "
    "/ (s_i + s0)^2 - 2 log(pi_k); CR if delta_CR < delta_NR",
    "priors": "not printed in the paper; assumed the training class proportions 22/31 (CR) and 9/31 (NR), "
    "the pamr / BRB-ArrayTools default",
    "reported_performance": "LOOCV accuracy 90.3% (28/31), sensitivity 100% (22/22), specificity 66.7% (6/9)",
    "scale": PUBLISHED_SCALE,
}


@dataclass(frozen=True)
class Model:
    """A frozen shrunken-centroid classifier: per gene the class centroids and ``s_i + s0``."""

    classes: tuple
    centroids: pd.DataFrame  # genes x classes
    sd: pd.Series  # genes
    priors: pd.Series  # classes
    scale: str
    name: str = "model"
    provenance: dict = field(default_factory=dict)

    @property
    def genes(self) -> list:
        return self.centroids.index.tolist()

    def to_dict(self) -> dict:
        """The JSON-ready dict written by :func:`save_model`."""
        return {
            "format": FORMAT,
            "name": self.name,
            "classes": list(self.classes),
            "genes": self.genes,
            "centroids": {c: [float(v) for v in self.centroids[c]] for c in self.classes},
            "sd": [float(v) for v in self.sd],
            "priors": {c: float(self.priors[c]) for c in self.classes},
            "scale": self.scale,
            "provenance": self.provenance,
        }


# ----------------------------------------------------------------------------------------
# building and validating models


def _build(d: dict, source) -> Model:
    """Validate a model dict (JSON layout) and build a Model; errors name ``source`` and the field."""
    if not isinstance(d, dict):
        raise InputError("model must be a JSON object", path=source)
    for key in REQUIRED:
        if key not in d:
            raise InputError(f"missing required field {key!r}", path=source, where=key)
    classes = d["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise InputError("must be a list of at least two class names", path=source, where="classes")
    if len(set(classes)) != len(classes):
        raise InputError(f"duplicated class names {classes}", path=source, where="classes")
    genes = d["genes"]
    if not isinstance(genes, list) or not genes or not all(isinstance(g, str) and g for g in genes):
        raise InputError("must be a non-empty list of gene ids", path=source, where="genes")
    dup = sorted({g for g in genes if genes.count(g) > 1})
    if dup:
        raise InputError(f"duplicated genes {dup}", path=source, where="genes")
    p = len(genes)

    def numbers(value, where, n):
        if not isinstance(value, list) or len(value) != n:
            raise InputError(f"must be a list of {n} numbers (one per gene)", path=source, where=where)
        try:
            arr = np.array([float(v) for v in value])
        except (TypeError, ValueError):
            raise InputError("contains a value that is not a number", path=source, where=where) from None
        if not np.all(np.isfinite(arr)):
            raise InputError("contains a missing or infinite value", path=source, where=where)
        return arr

    cen = d["centroids"]
    if not isinstance(cen, dict):
        raise InputError("must be an object {class: [centroid per gene]}", path=source, where="centroids")
    for c in classes:
        if c not in cen:
            raise InputError(f"no centroids for class {c!r}", path=source, where="centroids")
    extra = sorted(set(cen) - set(classes))
    if extra:
        raise InputError(f"classes {extra} are not listed in 'classes'", path=source, where="centroids")
    centroids = pd.DataFrame(
        {c: numbers(cen[c], f"centroids.{c}", p) for c in classes}, index=pd.Index(genes, name="gene")
    )
    sd = numbers(d["sd"], "sd", p)
    if np.any(sd <= 0):
        raise InputError(f"must be positive (gene {genes[int(np.argmax(sd <= 0))]!r})", path=source, where="sd")
    pri = d["priors"]
    if not isinstance(pri, dict):
        raise InputError("must be an object {class: prior}", path=source, where="priors")
    for c in classes:
        if c not in pri:
            raise InputError(f"no prior for class {c!r}", path=source, where="priors")
    try:
        pv = np.array([float(pri[c]) for c in classes])
    except (TypeError, ValueError):
        raise InputError("contains a value that is not a number", path=source, where="priors") from None
    if not np.all(np.isfinite(pv)) or np.any(pv <= 0) or abs(pv.sum() - 1) > 1e-6:
        raise InputError(f"must be positive and sum to 1, got {pv.tolist()}", path=source, where="priors")
    scale = d["scale"]
    if not isinstance(scale, str) or scale not in SCALES:
        shown = scale if isinstance(scale, str) and len(scale) <= 40 else f"{str(scale)[:40]}..."
        raise InputError(
            f"unknown expression scale {shown!r}; expected one of {', '.join(SCALES)}", path=source, where="scale"
        )
    prov = d.get("provenance", {})
    if not isinstance(prov, dict):
        prov = {"note": str(prov)}
    return Model(
        classes=tuple(classes),
        centroids=centroids,
        sd=pd.Series(sd, index=centroids.index, name="sd"),
        priors=pd.Series(pv, index=list(classes), name="prior"),
        scale=scale,
        name=str(d.get("name", "model")),
        provenance=prov,
    )


def published_model(table_path=None) -> Model:
    """The paper's 14-gene model from ``data/paper/table1.tsv`` with priors 22/31 and 9/31."""
    path = Path(table_path) if table_path is not None else PAPER / "table1.tsv"
    if not path.exists():
        raise InputError("published model table not found", path=path)
    t = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    need = ["gene", "centroid_CR", "centroid_NR", "sd"]
    for col in need:
        if col not in t.columns:
            raise InputError(f"missing column {col!r}", path=path, where="header")
    d = {
        "name": "published",
        "classes": ["CR", "NR"],
        "genes": t["gene"].str.strip().tolist(),
        "centroids": {"CR": t["centroid_CR"].tolist(), "NR": t["centroid_NR"].tolist()},
        "sd": t["sd"].tolist(),
        "priors": dict(PUBLISHED_PRIORS),
        "scale": "log2",
        "provenance": dict(PUBLISHED_PROVENANCE),
    }
    return _build(d, path)


def load_model(name_or_path) -> Model:
    """``"published"`` (the paper's Table 1 model) or the path of a model JSON (see module doc)."""
    if isinstance(name_or_path, Model):
        return name_or_path
    if str(name_or_path) == "published":
        return published_model()
    path = Path(name_or_path)
    if not path.exists():
        raise InputError("model file not found (use 'published' or the path of a model JSON)", path=path)
    if path.is_dir():
        raise InputError("expected a model JSON file, found a folder", path=path)
    try:
        d = json.loads(read_input(path).data.decode("utf-8-sig"))  # capped: helpers.engine.io.MAX_INPUT_BYTES
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); expected a model JSON file", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path=path) from None
    return _build(d, path)


def save_model(model: Model, path) -> Path:
    """Write ``model`` as JSON (atomically, sorted keys, so reruns are byte-identical)."""
    return write_json(model.to_dict(), path)


def model_from_fit(
    fit: pam.PamFit, threshold: float, scale: str, name: str = "pam", provenance: dict | None = None
) -> Model:
    """Freeze a :class:`helpers.methods.pam.PamFit` at ``threshold``: the surviving genes (pamr.listgenes
    order), their shrunken centroids, ``s_i + s0`` and the fit's priors. ``scale`` names the
    expression scale the model expects, one of :data:`SCALES` (e.g. ``"voom"``)."""
    genes = pam.surviving_genes(fit, threshold)
    if not genes:
        raise InputError(f"threshold {threshold} keeps no gene; nothing to freeze", where="threshold")
    cen = pam.shrunken_centroids(fit, threshold).loc[genes]
    sd = pd.Series(fit.sd, index=fit.genes).loc[genes]
    prov = {
        "method": "nearest shrunken centroids (helpers.methods.pam, pamr 1.57 compatible)",
        "threshold": float(threshold),
        "n_genes": len(genes),
        "s0": float(fit.s0),
        "s0_percentile": float(fit.s0_percentile),
        "class_counts": {c: int(k) for c, k in zip(fit.classes, fit.n_per_class)},
    }
    prov.update(provenance or {})
    d = {
        "name": name,
        "classes": list(fit.classes),
        "genes": [str(g) for g in genes],
        "centroids": {c: cen[c].tolist() for c in fit.classes},
        "sd": sd.tolist(),
        "priors": {c: float(p) for c, p in zip(fit.classes, fit.prior)},
        "scale": scale,
        "provenance": prov,
    }
    return _build(d, f"model {name!r}")


# ----------------------------------------------------------------------------------------
# scoring


def score(model: Model, expression: pd.DataFrame, source="expression") -> pd.DataFrame:
    """Score samples (columns of a genes x samples DataFrame) with ``model``.

    Returns one row per sample: ``sample``, ``delta_<class>`` for every class, ``call`` and, for
    two classes, ``prob_<first class>`` (e.g. ``prob_CR``; more classes: one ``prob_`` column
    each). Genes not in the model are ignored; a missing signature gene, a duplicated one or a
    missing value in one raises InputError naming them.
    """
    model = load_model(model)
    if not isinstance(expression, pd.DataFrame):
        raise InputError("expression must be a genes x samples table", path=source)
    if expression.shape[1] == 0:
        raise InputError("no sample columns", path=source)
    genes = model.genes
    idx = expression.index.astype(str)
    missing = [g for g in genes if g not in set(idx)]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(genes)} signature genes missing: {', '.join(missing)}", path=source, where="genes"
        )
    present = idx.isin(genes)
    dup = sorted(set(idx[present][pd.Index(idx[present]).duplicated()]))
    if dup:
        raise InputError(f"duplicated signature genes: {', '.join(dup)}", path=source, where="genes")
    sub = expression.set_axis(idx, axis=0).loc[genes]
    try:
        x = sub.to_numpy(dtype=float)
    except (TypeError, ValueError):
        x = sub.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = np.argwhere(np.isnan(x) & sub.notna().to_numpy())
        r, c = bad[0] if len(bad) else np.argwhere(np.isnan(x))[0]
        raise InputError(
            f"not a number: {sub.iat[r, c]!r}", path=source, where=f"gene {genes[r]}, sample {sub.columns[c]}"
        ) from None
    if not np.all(np.isfinite(x)):
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise InputError("missing or infinite value", path=source, where=f"gene {genes[r]}, sample {sub.columns[c]}")
    cen = model.centroids.to_numpy()  # p x K
    sd = model.sd.to_numpy()
    z = (x[:, :, None] - cen[:, None, :]) / sd[:, None, None]
    delta = (z**2).sum(axis=0) - 2.0 * np.log(model.priors.to_numpy())[None, :]  # m x K
    K = len(model.classes)
    if K == 2:
        pick = np.where(delta[:, 0] < delta[:, 1], 0, 1)  # the paper's rule; a tie goes to the second class
    else:
        pick = delta.argmin(axis=1)
    a = -delta / 2.0
    a = a - a.max(axis=1, keepdims=True)
    prob = np.exp(a)
    prob /= prob.sum(axis=1, keepdims=True)
    out = pd.DataFrame({"sample": [str(s) for s in sub.columns]})
    for k, c in enumerate(model.classes):
        out[f"delta_{c}"] = delta[:, k]
    out["call"] = np.asarray(model.classes, dtype=object)[pick]
    for k, c in enumerate(model.classes[:1] if K == 2 else model.classes):
        out[f"prob_{c}"] = prob[:, k]
    return out


def _open_text(path: Path):
    raw = read_input(path).data  # gunzipped if compressed, capped (helpers.engine.io.MAX_INPUT_BYTES)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text table", path=path) from None


def read_expression(path) -> pd.DataFrame:
    """Read a genes x samples table (TSV or CSV, gzip or not): first column gene ids, header row
    sample names. Cells are kept as text; :func:`score` checks the ones it uses.

    Raises InputError for a missing/empty file, duplicated or empty sample names, or a header
    that has no sample column.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("expression file not found", path=path)
    if path.is_dir():
        raise InputError("expected an expression table, found a folder", path=path)
    text = _open_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError("empty file", path=path)
    sep = "\t" if "\t" in lines[0] else ","
    header = [h.strip() for h in lines[0].split(sep)]
    if len(header) < 2:
        raise InputError(
            "header has no sample columns (need: gene id column, then one column per sample)", path=path, where="line 1"
        )
    samples = header[1:]
    if any(not s for s in samples):
        raise InputError(f"empty sample name in column {samples.index('') + 2}", path=path, where="line 1")
    dups = sorted({s for s in samples if samples.count(s) > 1})
    if dups:
        raise InputError(f"duplicated sample names: {', '.join(dups)}", path=path, where="line 1")
    try:
        df = pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, index_col=0)
    except pd.errors.ParserError as exc:
        raise InputError(f"cannot parse table ({' '.join(str(exc).split())})", path=path) from None
    df.columns = samples
    df.index = df.index.astype(str).str.strip()
    if len(df) == 0:
        raise InputError("no gene rows", path=path)
    return df


def _numeric_signature(df: pd.DataFrame, genes: list, path: Path) -> pd.DataFrame:
    """Convert the signature rows to floats, naming file line, gene and sample of any bad cell."""
    lines = {}
    for pos, g in enumerate(df.index):
        if g in genes:
            lines.setdefault(g, []).append(pos + 2)  # +1 header, +1 one-based
    missing = [g for g in genes if g not in lines]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(genes)} signature genes missing: {', '.join(missing)}", path=path, where="genes"
        )
    dup = [f"{g} (lines {', '.join(map(str, lines[g]))})" for g in genes if len(lines[g]) > 1]
    if dup:
        raise InputError(f"duplicated signature genes: {'; '.join(dup)}", path=path, where="genes")
    sub = df.loc[genes]
    out = np.empty(sub.shape)
    for r, g in enumerate(genes):
        for c, s in enumerate(sub.columns):
            cell = str(sub.iat[r, c]).strip()
            where = f"line {lines[g][0]} (gene {g}), column {s}"
            if cell == "" or cell.upper() in ("NA", "NAN", "N/A", "NULL", "NONE", "-"):
                raise InputError("missing value", path=path, where=where)
            try:
                v = float(cell)
            except ValueError:
                raise InputError(f"not a number: {cell!r}", path=path, where=where) from None
            if not np.isfinite(v):
                raise InputError(f"not a finite number: {cell!r}", path=path, where=where)
            out[r, c] = v
    return pd.DataFrame(out, index=pd.Index(genes, name="gene"), columns=sub.columns)


def check_log2_scale(x: pd.DataFrame, path, scale: str = "log2") -> None:
    """Refuse a table whose signature values cannot be log2 expression.

    The criterion: log2 expression lies within :data:`LOG2_RANGE` (-30 to 30: 2**30 is about a
    billion, more than any normalised count or CPM, and 2**-30 less than one read in a billion),
    and real log2 expression is not made of whole numbers only. So the table is refused if any
    signature value lies outside that range, or if every signature value is a non-negative whole
    number (what raw read counts look like). ``x`` is genes x samples (floats).
    """
    v = x.to_numpy(dtype=float)
    if v.size == 0:
        return
    lo, hi = LOG2_RANGE
    expects = f"the model expects log2 expression ({scale}: {SCALES.get(scale, scale)})"
    whole = bool(np.all(v >= 0) and np.all(v == np.round(v)))
    if whole:
        raise InputError(
            f"every signature value is a non-negative whole number (up to {v.max():g}): "
            f"raw counts? {expects}; log2-transform and normalise first",
            path=path,
            where="values",
        )
    out = (v < lo) | (v > hi)
    if out.any():
        r, c = map(int, np.argwhere(out)[0])
        raise InputError(
            f"value {v[r, c]:g} is outside the plausible log2 range [{lo:g}, {hi:g}]: raw counts "
            f"or linear scale? {expects}",
            path=path,
            where=f"gene {x.index[r]}, column {x.columns[c]}",
        )


def check_output_path(out, inputs=(), require_folder: bool = True) -> Path:
    """Where the scores may be written: refuse a path that is one of ``inputs`` (same file, also
    through a link), that exists but is not a regular file (a symbolic link, a device such as
    ``/dev/stdout``, a pipe, a folder), or whose folder does not exist (``require_folder``)."""
    out = Path(out)
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"cannot use as output ({exc.strerror or exc})", path=out) from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise InputError(
                "output is a symbolic link; give the path of a regular file (it would be replaced by the scores)",
                path=out,
            )
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
            raise InputError(f"output is {kind}, not a regular file", path=out)
        for inp in inputs:
            try:
                same = os.path.samefile(out, inp)
            except OSError:
                same = False
            if same:
                raise InputError(
                    f"output is the input file {str(inp)!r}; it would be overwritten: choose another output path",
                    path=out,
                )
    folder = out.parent
    if require_folder and not folder.is_dir():
        raise InputError("the output's folder does not exist", path=out, where=f"folder {folder}")
    return out
