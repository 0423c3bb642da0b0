"""Gene Set Variation Analysis (method "gsva"), matching R GSVA 1.46 ``gsva()`` (old API).

The algorithm, step by step, as GSVA 1.46 computes it:

1. Drop genes whose standard deviation across samples is below 1e-10 (GSVA's
   ``.filterFeatures``); this happens *before* gene sets are mapped and size-filtered.
2. Per gene, estimate each sample's value on a kernel CDF built from all samples of that gene
   and turn it into log-odds ``-log((1 - F) / F)``:

   * ``"Gaussian"`` (continuous log-expression): bandwidth ``sd(x) / 4`` (sample SD, n - 1),
     and the normal CDF is read from GSVA's pre-computed table of 10,001 points on [0, 10]
     (index = truncation of ``|v| / 10 * 10000``), exactly as GSVA's C code does, so the
     scores agree with R to rounding error instead of to the table's 1e-3 resolution.
   * ``"Poisson"`` (integer counts): ``F(y) = mean_i ppois(y, x_i + 0.5)`` (as R, a non-integer
     ``y`` is floored).
3. Per sample, order genes by decreasing log-odds (ties keep input order, like R's ``order``)
   and give the gene at 0-based position ``p`` the symmetric rank score ``|N/2 - p|``.
4. Per gene set and sample, walk down that order: a set gene adds ``score^tau / sum(set
   scores^tau)``, any other gene subtracts ``1 / (N - size)``. With ``mx_diff=True`` the
   score is ``max positive + min negative`` deviation of the walk; with ``mx_diff=False``
   it is the deviation of larger magnitude.

``kcdf="auto"`` is this project's addition (GSVA 1.46 has no "auto"): Poisson when every
value is a non-negative integer (raw counts), Gaussian otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from helpers.engine.errors import InputError

_SIGMA_FACTOR = 4.0
_PRECOMPUTE_RESOLUTION = 10000
_MAX_PRECOMPUTE = 10.0
_POISSON_BW = 0.5
_CDF_TABLE = special.ndtr(_MAX_PRECOMPUTE * np.arange(_PRECOMPUTE_RESOLUTION + 1) / float(_PRECOMPUTE_RESOLUTION))

__all__ = ["gsva", "kcdf_log_odds", "resolve_kcdf"]


def resolve_kcdf(values: np.ndarray, kcdf: str) -> str:
    """Return "Gaussian" or "Poisson"; ``"auto"`` picks Poisson only for non-negative integer data."""
    if kcdf not in ("Gaussian", "Poisson", "auto"):
        raise InputError(f"kcdf must be 'Gaussian', 'Poisson' or 'auto', not {kcdf!r}", where="gsva")
    if kcdf != "auto":
        return kcdf
    is_counts = bool(np.all(values >= 0) and np.all(values == np.floor(values)))
    return "Poisson" if is_counts else "Gaussian"


def _gaussian_cdf_table(v: np.ndarray) -> np.ndarray:
    """GSVA's ``precomputedCdf``: table look-up of the standard normal CDF at ``v``."""
    out = np.empty_like(v)
    idx = np.abs(v) / _MAX_PRECOMPUTE * _PRECOMPUTE_RESOLUTION
    inside = idx <= _PRECOMPUTE_RESOLUTION  # |v| <= 10
    cdf = _CDF_TABLE[np.where(inside, idx, 0).astype(np.int64)]
    out[:] = np.where(v < 0, 1.0 - cdf, cdf)
    out[~inside & (v < 0)] = 0.0
    out[~inside & (v > 0)] = 1.0
    return out


def kcdf_log_odds(x: np.ndarray, kcdf: str, chunk: int = 200) -> np.ndarray:
    """Kernel-CDF log-odds per gene (rows) and sample (columns), as GSVA's ``matrix_density_R``.

    ``x`` is genes x samples; ``kcdf`` is "Gaussian" or "Poisson". Returns an array of the same
    shape (may hold +/-inf where the estimated CDF is exactly 1 or 0, as in R).
    """
    x = np.asarray(x, dtype=float)
    n_genes, n = x.shape
    out = np.empty_like(x)
    if kcdf == "Gaussian":
        bw = x.std(axis=1, ddof=1) / _SIGMA_FACTOR
    for start in range(0, n_genes, chunk):
        xs = x[start:start + chunk]
        # diff[g, j, i] = y_j - x_i (test sample j against density sample i)
        if kcdf == "Gaussian":
            diff = xs[:, :, None] - xs[:, None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                v = diff / bw[start:start + chunk, None, None]
            tail = _gaussian_cdf_table(v)
        else:
            # R's ppois(q, lambda) uses floor(q + 1e-7)
            tail = special.pdtr(np.floor(xs + 1e-7)[:, :, None], xs[:, None, :] + _POISSON_BW)
        left = tail.sum(axis=2) / n
        with np.errstate(divide="ignore"):
            out[start:start + chunk] = -1.0 * np.log((1.0 - left) / left)
    return out


def _rank_positions(density: np.ndarray) -> np.ndarray:
    """0-based position of each gene in each sample's decreasing order (stable, like R ``order``)."""
    n_genes, n_samples = density.shape
    order = np.argsort(-density, axis=0, kind="stable")
    pos = np.empty_like(order)
    cols = np.broadcast_to(np.arange(n_samples), order.shape)
    pos[order, cols] = np.arange(n_genes)[:, None]
    return pos


def _ks_scores(pos: np.ndarray, n_genes: int, tau: float, mx_diff: bool) -> np.ndarray:
    """Random-walk statistic for one gene set; ``pos`` = set genes x samples positions."""
    m = pos.shape[0]
    p = np.sort(pos, axis=0).astype(float)
    w = np.abs(n_genes / 2.0 - p) ** tau  # rank score of the gene sitting at position p
    total = w.sum(axis=0)
    k = np.arange(1, m + 1, dtype=float)[:, None]
    dec = 1.0 / (n_genes - m)
    tops = np.cumsum(w, axis=0) / total - (p + 1.0 - k) * dec  # walk right after each hit
    bottoms = tops - w / total  # walk right before each hit
    mx_pos = np.maximum(tops.max(axis=0), 0.0)
    mx_neg = np.minimum(bottoms.min(axis=0), 0.0)
    if mx_diff:
        return mx_pos + mx_neg
    return np.where(mx_pos > np.abs(mx_neg), mx_pos, mx_neg)


def _check_expr(expr) -> pd.DataFrame:
    if not isinstance(expr, pd.DataFrame):
        raise InputError("expression must be a pandas DataFrame (genes x samples)", where="gsva")
    if expr.shape[0] < 2 or expr.shape[1] < 2:
        raise InputError(f"expression needs at least 2 genes and 2 samples, got {expr.shape}", where="gsva")
    dup = expr.index[expr.index.duplicated()]
    if len(dup):
        raise InputError(f"duplicated gene name {dup[0]!r} in the expression rows", where="gsva")
    try:
        values = expr.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError("expression values must all be numeric", where="gsva") from None
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"non-finite value at gene {expr.index[r]!r}, sample {expr.columns[c]!r}", where="gsva")
    return expr


def gsva(expr: pd.DataFrame, gene_sets: dict, kcdf: str = "Gaussian", min_size: int = 1,
         max_size: float = math.inf, mx_diff: bool = True, tau: float = 1.0,
         chunk: int = 200) -> pd.DataFrame:
    """GSVA enrichment scores (method "gsva" of R GSVA 1.46), gene sets x samples.

    Parameters
    ----------
    expr : DataFrame, genes (unique index) x samples. Log-expression for ``kcdf="Gaussian"``,
        raw integer counts for ``"Poisson"``; ``"auto"`` chooses Poisson when all values are
        non-negative integers, else Gaussian.
    gene_sets : dict name -> list of gene names. Genes absent from ``expr`` are ignored and
        duplicated names count once.
    min_size, max_size : keep sets whose number of genes present in ``expr`` (after dropping
        zero-variance genes) lies in ``[max(1, min_size), max_size]``.
    mx_diff, tau : as in GSVA.

    Returns a DataFrame (index "set" in the input order of kept sets, columns = samples).
    Raises InputError for bad input or when no gene set passes the size filter.
    """
    expr = _check_expr(expr)
    if not isinstance(gene_sets, dict) or not gene_sets:
        raise InputError("gene_sets must be a non-empty dict name -> list of genes", where="gsva")
    values = expr.to_numpy(dtype=float)
    kcdf = resolve_kcdf(values, kcdf)
    if kcdf == "Poisson" and (np.any(values < 0)):
        raise InputError("kcdf='Poisson' needs non-negative counts; found negative values", where="gsva")

    sd = values.std(axis=1, ddof=1)
    keep = ~(sd < 1e-10)
    values = values[keep]
    genes = expr.index[keep]
    if values.shape[0] < 2:
        raise InputError("fewer than 2 genes with non-zero variance", where="gsva")
    n_genes = values.shape[0]

    lookup = {g: i for i, g in enumerate(genes)}
    mapped = {}
    lo = max(1, min_size)
    for name, members in gene_sets.items():
        if isinstance(members, str):
            raise InputError(f"gene set {name!r} must be a list of genes, not a string", where="gsva")
        idx = np.array(sorted({lookup[g] for g in members if g in lookup}), dtype=np.int64)
        if lo <= idx.size <= max_size:
            if idx.size >= n_genes:
                raise InputError(f"gene set {name!r} contains every gene; the walk is undefined", where="gsva")
            mapped[name] = idx
    if not mapped:
        raise InputError(f"no gene set has between {lo} and {max_size} genes in the data", where="gsva")

    density = kcdf_log_odds(values, kcdf, chunk=chunk)
    pos = _rank_positions(density)
    scores = np.vstack([_ks_scores(pos[idx], n_genes, tau, mx_diff) for idx in mapped.values()])
    return pd.DataFrame(scores, index=pd.Index(list(mapped), name="set"), columns=expr.columns)
