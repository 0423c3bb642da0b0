"""Gene Set Variation Analysis (method "gsva"), matching R GSVA 1.46 ``gsva()`` (old API).

The algorithm, step by step, as GSVA 1.46 computes it:

1. Drop genes whose standard deviation across samples is below 1e-10 (GSVA's
   ``.filterFeatures``); this happens *before* gene sets are mapped and size-filtered.
2. Per gene, estimate each sample's value on a CDF built from all samples of that gene and
   turn it into log-odds:

   * ``"Gaussian"`` (continuous log-expression): a kernel CDF with bandwidth ``sd(x) / 4``; the
     normal CDF is read from GSVA's pre-computed table of 10,001 points on [0, 10] (index =
     truncation of ``|v| / 10 * 10000``), exactly as GSVA's C code does; log-odds
     ``-log((1 - F) / F)``.
   * ``"Poisson"`` (integer counts): ``F(y) = mean_i ppois(y, x_i + 0.5)`` (as R, a non-integer
     ``y`` is floored), with R's own ``ppois`` (:mod:`helpers.methods.rmath`); log-odds as above.
   * ``"none"``: the empirical CDF, ``F(y) = #{i: x_i <= y} / n`` (R's ``ecdf``), log-odds
     ``log(F / (1 - F))`` (+inf at the gene's largest value), as GSVA 1.46's ``kernel = FALSE``.
3. Per sample, order genes by decreasing log-odds (ties keep input order, like R's ``order``)
   and give the gene at 0-based position ``p`` GSVA's rank score ``|(N - p) - N/2|``.
4. Per gene set and sample, walk down that order: a set gene adds ``score^tau / sum(set
   scores^tau)``, any other gene subtracts ``1 / (N - size)``. With ``mx_diff=True`` the
   score is ``max positive + min negative`` deviation of the walk; with ``mx_diff=False``
   it is the deviation of larger magnitude.

Ties. On real data many genes tie (array values at a floor, rounded values, low counts), and
the order of tied genes moves scores by up to ~1/N. R's order of two genes is decided by the
bits of their log-odds, so step 2 reproduces GSVA's C code operation by operation, not only to
rounding error: the bandwidth is its two-pass ``sd`` accumulated in ``long double``; the
kernel terms are added one sample at a time in sample order (GSVA's loop; numpy's pairwise
``sum`` would round differently, and differently again for a Fortran-ordered input); the
normal CDF table is R's ``pnorm`` (Cody's rational approximations, evaluated as R does, so
all 10,001 entries equal R's bit for bit; ``scipy.special.ndtr`` differs in 393 of them); the
Poisson terms are R 4.2.2's ``ppois`` bit for bit (a port of R's nmath, because
``scipy.special.pdtr`` differs from it in the last bits, up to 5e-13 relative, which reorders
genes that R orders by rounding noise and moved scores by up to 1.9e-2 on tied counts); and
the logarithm is the C library's (``np.log`` where it calls libm, else ``math.log``). Every
step is elementwise over genes, so the result does not depend on the memory layout or on
``chunk``. Then step 3 is a stable sort. (Making ties in exact arithmetic bit-identical, for
example by adding the terms in sorted order, would *not* agree with R: GSVA's own sum leaves
such genes a few bits apart and R orders them by those bits.) With both kernels the log-odds
are bit-identical to R's and the scores agree to rounding error even on data full of ties
(golden folders ``gsva_ties`` and ``gsva_poisson_ties``). A Poisson term depends only on the
pair (count, count), so each distinct pair in a block of genes is evaluated once.

``kcdf="auto"`` follows GSVA 2.0's ``gsvaParam(kcdf = "auto")`` (GSVA 1.46 has no "auto"):
with at least ``none_min_samples`` samples (GSVA's ``kcdfNoneMinSampleSize``, default 200)
the empirical CDF (``"none"``), whose cost grows as ``n log n`` per gene instead of the
kernels' ``n^2``; below that, Poisson when every value is a non-negative integer (GSVA 2.0 asks
for R integer storage, which a table read into Python does not keep) and Gaussian otherwise.
The ECDF itself (and everything after it) is GSVA 1.46's ``kcdf = "none"``; GSVA 2.0 ranks the
ECDF values themselves instead of their log-odds, the same order since log-odds are monotone.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError
from helpers.methods.rmath import _CODY_A, _CODY_B, _CODY_C, _CODY_D, _CODY_P, _CODY_Q, ppois

_SIGMA_FACTOR = 4.0
_PRECOMPUTE_RESOLUTION = 10000
_MAX_PRECOMPUTE = 10.0
_POISSON_BW = 0.5
_NONE_MIN_SAMPLES = 200  # GSVA 2.0 kcdfNoneMinSampleSize
_POISSON_PAIRS = 1 << 22  # kernel terms per block of genes (bounds memory)

__all__ = ["gsva", "kcdf_log_odds", "resolve_kcdf"]

# ----------------------------------------------------------------------------- normal CDF table
_SQRT_32 = 5.656854249492380195206754896838
_INV_SQRT_2PI = 0.398942280401432677939946059934


def _normal_cdf(x: float) -> float:
    """Lower-tail standard normal CDF at ``x``, computed operation by operation as R's pnorm.

    Three regions: ``|x| <= 0.67448975`` (a rational function of x^2), ``|x| <= sqrt(32)``
    (a rational function of |x| times the Gaussian density, itself split as
    ``exp(-z^2/2) * exp(-(x^2 - z^2)/2)`` with ``z = trunc(16 x) / 16`` for accuracy) and
    beyond (an asymptotic rational function of 1/x^2); 1 or 0 past R's cut-offs.
    """
    y = abs(x)
    if y <= 0.67448975:
        xsq = x * x if y > 0.5 * np.finfo(float).eps else 0.0
        num, den = _CODY_A[4] * xsq, xsq
        for a, b in zip(_CODY_A[:3], _CODY_B[:3]):
            num = (num + a) * xsq
            den = (den + b) * xsq
        return 0.5 + x * (num + _CODY_A[3]) / (den + _CODY_B[3])
    if y <= _SQRT_32:
        num, den = _CODY_C[8] * y, y
        for c, d in zip(_CODY_C[:7], _CODY_D[:7]):
            num = (num + c) * y
            den = (den + d) * y
        tail, z = (num + _CODY_C[7]) / (den + _CODY_D[7]), y
    elif -37.5193 < x < 8.2924:
        xsq = 1.0 / (x * x)
        num, den = _CODY_P[5] * xsq, xsq
        for p, q in zip(_CODY_P[:4], _CODY_Q[:4]):
            num = (num + p) * xsq
            den = (den + q) * xsq
        tail = xsq * (num + _CODY_P[4]) / (den + _CODY_Q[4])
        tail, z = (_INV_SQRT_2PI - tail) / y, x
    else:
        return 1.0 if x > 0 else 0.0
    head = math.trunc(z * 16) / 16
    rest = (z - head) * (z + head)
    tail = math.exp(-head * head * 0.5) * math.exp(-rest * 0.5) * tail  # = upper tail for x > 0
    return 1.0 - tail if x > 0 else tail


@functools.lru_cache(maxsize=1)
def _signed_cdf_table() -> np.ndarray:
    """GSVA's ``precomputed_cdf`` (pnorm at ``10 * i / 10000``), preceded by ``1 - cdf``.

    Entry ``k`` (k <= 10000) is ``1 - table[k]`` (used for v < 0), entry ``10001 + k`` is
    ``table[k]`` (v >= 0), so one look-up replaces GSVA's branch with the same bits.
    """
    res = float(_PRECOMPUTE_RESOLUTION)
    table = np.array([_normal_cdf(_MAX_PRECOMPUTE * i / res) for i in range(_PRECOMPUTE_RESOLUTION + 1)])
    # beyond |v| = 10 GSVA returns exactly 0 or 1: the last entry gives the same values
    assert table[-1] == 1.0
    return np.concatenate([1.0 - table, table])


# ------------------------------------------------------------------------- kernel statistics
def resolve_kcdf(values: np.ndarray, kcdf: str, none_min_samples: int = _NONE_MIN_SAMPLES) -> str:
    """Return "Gaussian", "Poisson" or "none" for genes x samples ``values``.

    ``"auto"`` (GSVA 2.0's rule): "none" (empirical CDF) when there are at least
    ``none_min_samples`` samples (columns), else Poisson for non-negative integer data, else
    Gaussian. Any other choice is returned as given.
    """
    if kcdf not in ("Gaussian", "Poisson", "none", "auto"):
        raise InputError(f"kcdf must be 'Gaussian', 'Poisson', 'none' or 'auto', not {kcdf!r}", where="gsva")
    if kcdf != "auto":
        return kcdf
    if isinstance(none_min_samples, bool) or not isinstance(none_min_samples, (int, np.integer)):
        raise InputError(f"none_min_samples must be an integer, not {none_min_samples!r}", where="gsva")
    if values.shape[1] >= none_min_samples:
        return "none"
    is_counts = bool(np.all(values >= 0) and np.all(values == np.floor(values)))
    return "Poisson" if is_counts else "Gaussian"


def _gsva_sd(x: np.ndarray) -> np.ndarray:
    """Per-row sample SD as GSVA's C ``sd()``: two-pass mean and sum of squares in long double.

    Sums run over the columns in order (one vectorised step per column), so each row's result
    depends only on that row's values. (Where ``long double`` is plain double, as on some
    platforms, R's C code gets the same simplification.)
    """
    ld = np.longdouble
    n = x.shape[1]
    total = np.zeros(x.shape[0], dtype=ld)
    for i in range(n):
        total += x[:, i].astype(ld)
    mean = total / ld(n)
    finite = np.isfinite(mean.astype(np.float64))
    total[:] = 0
    for i in range(n):
        total += x[:, i].astype(ld) - mean  # correction pass, as R's cov.c
    mean = np.where(finite, mean + total / ld(n), mean).astype(np.float64)
    total[:] = 0
    for i in range(n):
        dev = x[:, i] - mean  # double, as in the C code
        total += (dev * dev).astype(ld)
    return np.sqrt((total / ld(n - 1)).astype(np.float64))


@functools.lru_cache(maxsize=1)
def _numpy_log_is_libm() -> bool:
    """Whether ``np.log`` gives the C library's ``log`` bits (it does where numpy calls libm).

    Checked once on 20,000 fixed arguments over [1e-4, 1e4]; a different implementation (for
    example a SIMD one) disagrees on a sizeable fraction of arguments, so it cannot pass.
    """
    probe = np.exp(np.random.default_rng(20220214).uniform(-9.2, 9.2, 20000))
    libm = np.fromiter(map(math.log, probe.tolist()), dtype=np.float64, count=probe.size)
    return bool(np.array_equal(np.log(probe), libm))


def _c_log(r: np.ndarray) -> np.ndarray:
    """Natural log with the C library's ``log`` bits (what R calls); log(0) = -inf."""
    r = np.asarray(r, dtype=np.float64)
    if _numpy_log_is_libm():
        with np.errstate(divide="ignore"):
            return np.log(r)
    flat = r.ravel()
    out = np.full(flat.shape, -np.inf)
    pos = flat > 0
    out[pos] = np.fromiter(map(math.log, flat[pos].tolist()), dtype=np.float64, count=int(pos.sum()))
    return out.reshape(r.shape)


def _poisson_left_tails(xs: np.ndarray) -> np.ndarray:
    """``left[g, j] = sum_i ppois(xs[g, j], xs[g, i] + 0.5)``, added over i in sample order.

    Each distinct (value, value) pair of the block is evaluated once (R's ppois, bit for bit).
    """
    n = xs.shape[1]
    uniq, code = np.unique(xs, return_inverse=True)
    code = code.reshape(xs.shape).astype(np.int64)
    nu = uniq.size
    key = code[:, :, None] * nu + code[:, None, :]  # [g, j, i]: (y_j, x_i)
    if nu * nu <= 4 * key.size:  # few distinct values: mark the used pairs of a dense table
        used = np.zeros(nu * nu, dtype=bool)
        used[key.ravel()] = True
        pairs = np.flatnonzero(used)
        table = np.empty(nu * nu)
        table[pairs] = ppois(uniq[pairs // nu], uniq[pairs % nu] + _POISSON_BW)
        terms = table[key]
    else:
        pairs, inverse = np.unique(key, return_inverse=True)
        terms = ppois(uniq[pairs // nu], uniq[pairs % nu] + _POISSON_BW)[inverse].reshape(key.shape)
    left = np.zeros(xs.shape)
    for i in range(n):
        left += terms[:, :, i]
    return left


def _ecdf_log_odds(x: np.ndarray) -> np.ndarray:
    """GSVA 1.46 ``kcdf = "none"``: ``log(F / (1 - F))`` of each gene's ECDF at its own values."""
    n = x.shape[1]
    order = np.argsort(x, axis=1, kind="stable")
    srt = np.take_along_axis(x, order, axis=1)
    last = np.ones(srt.shape, dtype=bool)  # last position of each run of equal values
    last[:, :-1] = srt[:, 1:] != srt[:, :-1]
    end = np.where(last, np.arange(n), n)
    end = np.minimum.accumulate(end[:, ::-1], axis=1)[:, ::-1]  # run end at or after each position
    count = np.empty_like(end)
    np.put_along_axis(count, order, end + 1, axis=1)  # #{i: x_i <= x_j}
    f = count / float(n)  # R: cumsum(tabulate(...)) / n, an integer over n
    with np.errstate(divide="ignore"):
        odds = f / (1.0 - f)  # +inf at the largest value
        return _c_log(odds)


def kcdf_log_odds(x: np.ndarray, kcdf: str, chunk: int = 4096) -> np.ndarray:
    """Per-gene CDF log-odds (genes = rows, samples = columns), as GSVA's ``compute.gene.density``.

    ``x`` is genes x samples; ``kcdf`` is "Gaussian", "Poisson" or "none". Returns an array of
    the same shape (may hold +/-inf where the estimated CDF is exactly 1 or 0, as in R). Every
    value is computed with GSVA's operations in GSVA's order (see the module docstring), so it
    does not depend on the memory layout of ``x`` or on ``chunk`` (genes per block, bounds
    memory; Poisson blocks also hold at most ~4 million kernel terms).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n_genes, n = x.shape
    if kcdf == "none":
        return _ecdf_log_odds(x)
    out = np.empty_like(x)
    step = max(1, int(chunk))
    if kcdf == "Gaussian":
        signed = _signed_cdf_table()
        bw = _gsva_sd(x) / _SIGMA_FACTOR
        # a constant gene (gsva() drops them first) would give 0/0; an infinite bandwidth
        # turns every difference into v = 0 instead, so its log-odds are 0
        bw[~(bw > 0)] = np.inf
    else:
        step = max(1, min(step, _POISSON_PAIRS // (n * n)))
    for start in range(0, n_genes, step):
        xs = x[start : start + step]
        if kcdf == "Gaussian":
            left = np.zeros_like(xs)  # left[g, j] = sum_i K(y_j - x_i), summed over i in order
            bws = bw[start : start + step, None]
            for i in range(n):
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = (xs - xs[:, i : i + 1]) / bws
                k = np.minimum(
                    np.abs(v) / _MAX_PRECOMPUTE * _PRECOMPUTE_RESOLUTION, float(_PRECOMPUTE_RESOLUTION)
                ).astype(np.int64)  # C's (int) truncation
                k += (_PRECOMPUTE_RESOLUTION + 1) * (v >= 0)
                left += signed[k]
        else:
            left = _poisson_left_tails(xs)
        left /= n
        with np.errstate(divide="ignore"):
            out[start : start + step] = -1.0 * _c_log((1.0 - left) / left)
    return out


def _rank_positions(density: np.ndarray) -> np.ndarray:
    """0-based position of each gene in each sample's decreasing order.

    R's ``order(decreasing=TRUE)`` keeps tied values in index order; a stable sort of the
    negated values does the same (negation is exact, and -0.0 ties with 0.0 in both).
    """
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
    # GSVA's rank score: abs(seq(from = N, to = 1) - N/2) at 1-based position p + 1
    w = np.abs((n_genes - p) - n_genes / 2.0) ** tau
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


def gsva(
    expr: pd.DataFrame,
    gene_sets: dict,
    kcdf: str = "Gaussian",
    min_size: int = 1,
    max_size: float = math.inf,
    mx_diff: bool = True,
    tau: float = 1.0,
    chunk: int = 4096,
    none_min_samples: int = _NONE_MIN_SAMPLES,
) -> pd.DataFrame:
    """GSVA enrichment scores (method "gsva" of R GSVA 1.46), gene sets x samples.

    Parameters
    ----------
    expr : DataFrame, genes (unique index) x samples. Log-expression for ``kcdf="Gaussian"``,
        raw integer counts for ``"Poisson"``, either for ``"none"`` (empirical CDF).
    kcdf : "Gaussian", "Poisson", "none" or "auto" (GSVA 2.0's rule): "none" with at least
        ``none_min_samples`` samples (default 200, GSVA's ``kcdfNoneMinSampleSize``), else
        Poisson when all values are non-negative integers, else Gaussian.
    gene_sets : dict name -> list of gene names. Genes absent from ``expr`` are ignored and
        duplicated names count once.
    min_size, max_size : keep sets whose number of genes present in ``expr`` (after dropping
        zero-variance genes) lies in ``[max(1, min_size), max_size]``.
    mx_diff, tau : as in GSVA.
    chunk : genes per block of the kernel computation (memory only; results do not depend on it).

    Returns a DataFrame (index "set" in the input order of kept sets, columns = samples).
    Raises InputError for bad input or when no gene set passes the size filter.
    """
    expr = _check_expr(expr)
    if not isinstance(gene_sets, dict) or not gene_sets:
        raise InputError("gene_sets must be a non-empty dict name -> list of genes", where="gsva")
    values = np.ascontiguousarray(expr.to_numpy(dtype=float))  # one layout, whatever the input's
    kcdf = resolve_kcdf(values, kcdf, none_min_samples)
    if kcdf == "Poisson" and (np.any(values < 0)):
        raise InputError("kcdf='Poisson' needs non-negative counts; found negative values", where="gsva")

    keep = ~(_gsva_sd(values) < 1e-10)
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
    scores = _scores_from_density(density, list(mapped.values()), tau, mx_diff)
    return pd.DataFrame(scores, index=pd.Index(list(mapped), name="set"), columns=expr.columns)


def _scores_from_density(density: np.ndarray, sets: list, tau: float = 1.0, mx_diff: bool = True) -> np.ndarray:
    """Steps 3-4: sets x samples scores from genes x samples log-odds; ``sets`` = row indices."""
    pos = _rank_positions(density)
    n_genes = density.shape[0]
    return np.vstack([_ks_scores(pos[idx], n_genes, tau, mx_diff) for idx in sets])
