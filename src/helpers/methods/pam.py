"""Nearest shrunken centroids (PAM), written to give the same numbers as R's ``pamr`` 1.57.

The method is Tibshirani, Hastie, Narasimhan & Chu, PNAS 2002 (the paper's ref. 18). What
``pamr.train`` / ``nsc`` compute, and what this module reproduces (checked against R golden
files in ``tests/data/reference``):

* class centroids ``xbar_ik`` and the overall centroid ``xbar_i``;
* pooled within-class SD ``s_i`` (divisor ``n - K``) and ``s0`` = a percentile of the ``s_i``
  (pamr's ``offset.percent``, median by default); every gene is scaled by ``s_i + s0``;
* ``m_k = sqrt(1/n_k - 1/n)`` and standardized deviations
  ``d_ik = (xbar_ik - xbar_i) / (m_k (s_i + s0))``;
* soft thresholding ``d'_ik = sign(d_ik) (|d_ik| - t)_+`` and shrunken centroids
  ``xbar'_ik = xbar_i + m_k (s_i + s0) d'_ik``;
* a threshold grid of ``n_threshold`` (30) equally spaced values from 0 to ``max |d_ik|``;
* the discriminant used by pamr's ``diag.disc`` (a log posterior up to a constant)
  ``dd_k(x) = sum_i z_i c_ik - sum_i c_ik^2 / 2 + log(pi_k)`` with ``z_i = (x_i - xbar_i)/(s_i+s0)``
  and ``c_ik = (xbar'_ik - xbar_i)/(s_i+s0)``, over the genes that survive the threshold.
  It equals ``-delta_k(x)/2 + const`` with the paper's
  ``delta_k(x) = sum_i (x_i - xbar'_ik)^2/(s_i+s0)^2 - 2 log(pi_k)``;
* class = the largest ``dd_k`` (the smallest ``delta_k``; the first class wins an exact tie);
  posterior = ``safe.exp(dd_k) / sum_j safe.exp(dd_j)`` with pamr's ``safe.exp`` (exponent clipped
  to +-500);
* ``pamr.cv``: every fold refits ``nsc`` on the training samples with the *full fit's*
  threshold grid, priors and ``m_k`` (``se.scale``), recomputing centroids, ``s_i`` and ``s0``;
  the reported number of genes per threshold is the full fit's.

Speed: the fits, ``pamr.cv`` refits and the nested/permutation loops run on a fast path that
evaluates the whole threshold grid at once by binning genes between grid points, and refits
leave-one-out folds from running class statistics (notes above ``_grid``); a direct transcription
of pamr (``_nsc_reference``) is kept and the tests hold the fast path to it.

Folds: leave-one-out (the paper's evaluation, the default), or k folds balanced per class as
pamr's ``balanced.folds`` draws them (:func:`balanced_folds`, a port drawn with a numpy Generator
seeded from ``seed``, not with R's RNG), or "auto" (:func:`cv_scheme`: leave-one-out up to 100
samples, 10 folds above). k-fold refits merge per-fold class statistics (:func:`_kfold`).

Beyond pamr (classifier honesty): :func:`nested_cv` (:func:`nested_loocv`) selects the threshold
(and so the genes) inside every outer fold, :func:`permutation_pvalue` tests the CV accuracy
against label permutations, :func:`clopper_pearson` gives exact binomial intervals and :func:`performance`
summarizes calls as accuracy / sensitivity / specificity with counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from helpers.engine.errors import InputError

__all__ = [
    "PamFit",
    "CvResult",
    "NestedResult",
    "train",
    "predict",
    "predict_proba",
    "discriminants",
    "shrunken_centroids",
    "surviving_genes",
    "gene_scores",
    "cv",
    "cv_scheme",
    "cv_description",
    "balanced_folds",
    "choose_threshold",
    "threshold_for_n_genes",
    "clopper_pearson",
    "nested_cv",
    "nested_loocv",
    "permutation_pvalue",
    "performance",
]


# ----------------------------------------------------------------------------------------
# data structures


@dataclass(frozen=True)
class PamFit:
    """A trained nearest-shrunken-centroid classifier (the analogue of a ``pamr.train`` fit).

    Arrays are indexed genes x classes. ``sd`` already includes ``s0`` (``s_i + s0``), as in
    pamr. ``n_genes`` and ``train_errors`` are per threshold of ``thresholds``.
    """

    genes: pd.Index
    classes: tuple
    centroids: np.ndarray  # p x K unshrunken class centroids
    centroid_overall: np.ndarray  # p
    sd: np.ndarray  # p, s_i + s0
    s0: float
    se_scale: np.ndarray  # K, m_k
    prior: np.ndarray  # K
    d: np.ndarray  # p x K standardized deviations d_ik
    thresholds: np.ndarray
    n_genes: np.ndarray
    train_errors: np.ndarray
    n_per_class: np.ndarray
    s0_percentile: float = 50.0
    samples: pd.Index = field(default_factory=lambda: pd.Index([]))

    def table(self) -> pd.DataFrame:
        """Threshold grid as a table: threshold, n_genes, train_errors."""
        return pd.DataFrame({"threshold": self.thresholds, "n_genes": self.n_genes, "train_errors": self.train_errors})


@dataclass(frozen=True)
class CvResult:
    """Cross-validation over the threshold grid (the analogue of ``pamr.cv``).

    ``pred`` is samples x thresholds (labels); ``prob`` is samples x classes x thresholds.
    ``errors`` are counts of misclassified held-out samples per threshold.
    """

    thresholds: np.ndarray
    n_genes: np.ndarray
    errors: np.ndarray
    pred: pd.DataFrame
    prob: np.ndarray
    truth: pd.Series
    classes: tuple
    folds: list

    @property
    def error_rate(self) -> np.ndarray:
        return self.errors / len(self.truth)

    def table(self) -> pd.DataFrame:
        """Per-threshold table: threshold, n_genes, cv_errors, cv_error_rate."""
        return pd.DataFrame(
            {
                "threshold": self.thresholds,
                "n_genes": self.n_genes,
                "cv_errors": self.errors,
                "cv_error_rate": self.error_rate,
            }
        )

    def predictions(self, threshold_index: int) -> pd.DataFrame:
        """Held-out calls and class probabilities at one grid index (sample, truth, pred, prob_<class>)."""
        df = pd.DataFrame(
            {"truth": self.truth.values, "pred": self.pred.iloc[:, threshold_index].values}, index=self.truth.index
        )
        for k, c in enumerate(self.classes):
            df[f"prob_{c}"] = self.prob[:, k, threshold_index]
        df.index.name = "sample"
        return df


@dataclass(frozen=True)
class NestedResult:
    """Nested CV: per held-out sample the call, the threshold chosen without it and its gene count."""

    predictions: pd.DataFrame  # sample, truth, pred, prob_<class>, threshold, n_genes
    accuracy: float
    n_correct: int
    n: int
    folds: object = "loo"  # "loo" or the number of folds (cv_scheme)


# ----------------------------------------------------------------------------------------
# validation


def _as_arrays(X, y, classes=None):
    """Validate a genes x samples DataFrame and labels; return (x float array, codes, classes, genes, samples)."""
    if not isinstance(X, pd.DataFrame):
        raise InputError("expression must be a pandas DataFrame (genes x samples)", where="X")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"expression matrix is empty ({X.shape[0]} genes x {X.shape[1]} samples)", where="X")
    if X.index.has_duplicates:
        dup = X.index[X.index.duplicated()].unique()[:5].tolist()
        raise InputError(f"duplicated gene ids: {dup}", where="X rows")
    try:
        x = X.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expression matrix is not all numeric ({exc})", where="X") from None
    if not np.all(np.isfinite(x)):
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"missing or infinite value (gene {X.index[r]!r}, sample {X.columns[c]!r})", where="X")
    if isinstance(y, pd.Series):
        cols = set(X.columns)
        if cols <= set(y.index):
            y = y.loc[X.columns]
        elif cols & set(y.index):
            miss = [c for c in X.columns if c not in set(y.index)][:5]
            raise InputError(f"no class label for samples {miss}", where="y")
    yv = np.asarray(y, dtype=object)
    if yv.ndim != 1 or len(yv) != X.shape[1]:
        raise InputError(f"{len(yv)} labels for {X.shape[1]} samples", where="y")
    if pd.isna(yv).any():
        raise InputError(f"missing class label for sample {X.columns[np.flatnonzero(pd.isna(yv))[0]]!r}", where="y")
    yv = yv.astype(str)
    if classes is None:
        classes = tuple(sorted(set(yv)))
    else:
        classes = tuple(str(c) for c in classes)
        extra = sorted(set(yv) - set(classes))
        if extra:
            raise InputError(f"labels {extra} are not among the classes {list(classes)}", where="y")
    if len(classes) < 2:
        raise InputError(f"need at least two classes, got {list(classes)}", where="y")
    codes = np.array([classes.index(v) for v in yv])
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < 2:
        raise InputError(
            f"each class needs at least 2 samples, counts {dict(zip(classes, counts.tolist()))}", where="y"
        )
    return x, codes, classes, X.index, X.columns


# ----------------------------------------------------------------------------------------
# the nsc core (arrays only)


def _safe_exp(a):
    return np.exp(np.sign(a) * np.minimum(np.abs(a), 500.0))


def _fit_stats(x, codes, K, s0_percentile):
    """Centroids, overall centroid, sd (s_i + s0), s0 and class sizes, as in pamr's nsc."""
    n = x.shape[1]
    Y = np.zeros((n, K))
    Y[np.arange(n), codes] = 1.0
    nk = Y.sum(axis=0)
    centroids = (x @ Y) / nk
    xdif = x - centroids @ Y.T
    s = np.sqrt((xdif**2).sum(axis=1) / (n - K))
    s0 = float(np.percentile(s, s0_percentile))  # R quantile type 7 == numpy "linear"
    overall = x.mean(axis=1)
    return centroids, overall, s + s0, s0, nk


def _shrunk(d, thresholds):
    """Soft-threshold d (p x K) at each threshold -> T x K x p; and genes surviving per threshold."""
    dt = np.ascontiguousarray(d.T)  # K x p: reductions over genes run on contiguous memory
    dif = np.abs(dt)[None, :, :] - np.asarray(thresholds, dtype=float)[:, None, None]
    pos = dif > 0
    np.maximum(dif, 0.0, out=dif)
    ds = np.sign(dt)[None, :, :] * dif
    alive = pos[:, 0, :].copy()
    for k in range(1, dt.shape[0]):
        alive |= pos[:, k, :]
    return ds, alive.sum(axis=1)


def _dd(xtest, overall, sd, cs, prior):
    """pamr diag.disc for all thresholds: xtest p x m, cs T x K x p (scaled shrunken centroids) -> T x m x K.

    Genes shrunk to zero in every class contribute exactly 0, which is pamr's restriction of the
    sums to the surviving genes; with no surviving gene the result is log(prior), as in pamr.
    """
    z = (xtest - overall[:, None]) / sd[:, None]
    lin = np.matmul(cs, z)  # T x K x m
    quad = 0.5 * np.einsum("tkp,tkp->tk", cs, cs)
    dd = lin - quad[:, :, None] + np.log(prior)[None, :, None]
    return np.transpose(dd, (0, 2, 1))


def _nsc_reference(x, codes, K, xtest, thresholds=None, n_threshold=30, prior=None, se_scale=None, s0_percentile=50.0):
    """Reference (direct, T x K x p) version of :func:`_nsc`, on genes x samples arrays.

    Kept as the plain transcription of pamr that the fast path is tested against.
    """
    n = x.shape[1]
    centroids, overall, sd, s0, nk = _fit_stats(x, codes, K, s0_percentile)
    if prior is None:
        prior = nk / n
    if se_scale is None:
        se_scale = np.sqrt(1.0 / nk - 1.0 / n)
    d = (centroids - overall[:, None]) / sd[:, None] / se_scale[None, :]
    if thresholds is None:
        thresholds = np.linspace(0.0, float(np.abs(d).max()), n_threshold)
    thresholds = np.asarray(thresholds, dtype=float)
    ds, nonzero = _shrunk(d, thresholds)
    cs = ds * se_scale[None, :, None]
    dd = _dd(xtest, overall, sd, cs, prior)
    yhat = dd.argmax(axis=2)  # T x m, first class wins ties (pamr softmax uses a strict '>')
    e = _safe_exp(dd)
    prob = e / e.sum(axis=2, keepdims=True)
    return dict(
        centroids=centroids,
        overall=overall,
        sd=sd,
        s0=s0,
        nk=nk,
        prior=np.asarray(prior, float),
        se_scale=np.asarray(se_scale, float),
        d=d,
        thresholds=thresholds,
        nonzero=nonzero,
        yhat=yhat,
        prob=prob,
    )


# --- fast path -------------------------------------------------------------------------
#
# The reference path above materialises T x K x p arrays per fit. The fast path gives the same
# numbers up to floating-point rounding in O(K p m + T^2) per fit, and refits leave-one-out folds
# from running statistics in O(K p) each:
#
# * thresholds t_0 <= ... <= t_{T-1}; gene i of class k (a = |d_ik|) survives exactly the
#   thresholds t_j < a (pamr's ``abs(d) - t > 0``: for floats ``a - t > 0`` iff ``a > t``, so a
#   tie a == t contributes 0). With c = #{j: t_j < a} the gene falls in bin c (bin 0: shrunk to
#   zero everywhere) and, for j < c, ``a - t_j = e + (t_{c-1} - t_j)`` with ``e = a - t_{c-1}``,
#   both parts >= 0. Per bin we accumulate N = count, Q1 = sum e, Q2 = sum e^2, W = sum sign(d) z
#   and R = sum e sign(d) z, and then for every threshold
#     lin_k(t_j)  = m_k sum_{b>j} [R_b + (t_{b-1} - t_j) W_b]
#     quad_k(t_j) = m_k^2/2 sum_{b>j} [Q2_b + 2 (t_{b-1} - t_j) Q1_b + (t_{b-1} - t_j)^2 N_b]
#   (sums of non-negative multiples of each gene's term: no cancellation beyond the reference's
#   own). A gene shrunk to zero at t_j is in no bin b > j and contributes exactly 0, as in pamr.
# * a leave-one-out fold changes one class: its mean and within-class sum of squares come from
#   Welford running statistics of the class members before and after the held-out sample, merged
#   with Chan et al.'s formula, and the overall mean from the fold's class means (only sums of
#   the remaining samples' terms: nothing is "downdated" by subtracting the held-out sample, which
#   would cancel catastrophically when that sample dominates a gene); s0 (a percentile) is
#   recomputed in every fold.

_MAGIC = 2.0**52
_MAGIC_BITS = int(np.array(_MAGIC).view(np.int64))


def _as_index(f):
    """Integer-valued floats in [0, 2^52) -> int64, exactly (avoids numpy's slow float->int cast)."""
    return (f + _MAGIC).view(np.int64) - _MAGIC_BITS


def _n_below(a, t, out=None, work=None):
    """#{j: t_j < a} for every element of ``a`` (t sorted ascending and finite), as floats.

    For a (nearly) equally spaced grid the count is ceil((a - t_0)/h), trusted only where that
    quotient is not within 1e-6 of a grid index (the grid points themselves are checked to sit
    within 1e-9 of their index, so the order of a and every t_j is unambiguous); the rest,
    including exact ties a == t_j, goes through ``searchsorted`` (strict '<': a tie is not below).
    ``out``/``work``: optional buffers shaped like ``a``.
    """
    T = len(t)
    if out is None:
        out = np.empty_like(a)
    if T >= 2 and t[-1] > t[0]:
        h = (t[-1] - t[0]) / (T - 1)
        if np.all(np.abs((t - t[0]) / h - np.arange(T)) < 1e-9):
            y = np.empty_like(a) if work is None else work
            np.subtract(a, t[0], out=y)
            np.divide(y, h, out=y)
            np.ceil(y, out=out)
            np.subtract(out, y, out=y)  # distance up to the next integer, in [0, 1)
            amb = (y < 1e-6) | (y > 1.0 - 1e-6)
            np.clip(out, 0.0, float(T), out=out)
            if amb.any():
                out[amb] = np.searchsorted(t, a[amb], side="left")
            return out
    out[...] = np.searchsorted(t, a, side="left")
    return out


def _class_stats(xs, codes, K):
    """Class sizes, class means (K x p), within-class sums of squares (K x p) and column sums (p)
    of a samples x genes array (two-pass, as the reference)."""
    n, p = xs.shape
    Y = np.zeros((n, K))
    Y[np.arange(n), codes] = 1.0
    nk = Y.sum(axis=0)
    cen = (Y.T @ xs) / nk[:, None]
    m2 = np.zeros((K, p))
    r = np.empty(p)
    for i in range(n):
        np.subtract(xs[i], cen[codes[i]], out=r)
        np.multiply(r, r, out=r)
        m2[codes[i]] += r
    return nk, cen, m2, xs.sum(axis=0)


def _grid_reference(d, se_scale, z, thresholds, prior):
    """Reference discriminants over a threshold grid: d K x p, z m x p -> (T x m x K, n surviving)."""
    ds, nonzero = _shrunk(d.T, thresholds)
    cs = ds * np.asarray(se_scale, float)[None, :, None]
    lin = np.matmul(cs, z.T)  # T x K x m
    quad = 0.5 * np.einsum("tkp,tkp->tk", cs, cs)
    dd = lin - quad[:, :, None] + np.log(prior)[None, :, None]
    return np.transpose(dd, (0, 2, 1)), nonzero


def _grid(d, se_scale, z, thresholds, prior, counts=True, work=None):
    """pamr's soft thresholding + ``diag.disc`` at every threshold, by binning genes between grid
    points (see the notes above).

    d: K x p standardized deviations; z: m x p standardized test samples ``(x - xbar)/(s + s0)``.
    Returns (dd T x m x K, genes surviving per threshold or None). ``work``: optional list of five
    K x p float buffers, reused across calls (leave-one-out folds) to avoid fresh allocations.
    """
    t = np.asarray(thresholds, dtype=float)
    prior = np.asarray(prior, dtype=float)
    se = np.asarray(se_scale, dtype=float)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(d))):  # keep the reference's NaN/inf handling
        dd, nonzero = _grid_reference(d, se, z, t, prior)
        return dd, (nonzero if counts else None)
    K, p = d.shape
    m = z.shape[0]
    T = len(t)
    T1 = T + 1
    order = None
    if T > 1 and np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        t = t[order]
    a, c, e, w, tmp = [np.empty((K, p)) for _ in range(5)] if work is None else work
    np.abs(d, out=a)
    _n_below(a, t, out=c, work=tmp)  # bin per gene and class: #{j: t_j < |d|} (integer-valued floats)
    if t[0] < 0:
        c[d == 0] = 0.0  # d == 0 survives a negative threshold but has sign 0: contributes nothing
    # flat bin index k * (T + 1) + c, as int64 in tmp's memory
    np.add(c, (np.arange(K, dtype=float) * T1 + _MAGIC)[:, None], out=tmp)
    iq = tmp.view(np.int64).reshape(-1)
    iq -= _MAGIC_BITS
    tq = np.tile(np.concatenate(([0.0], t)), K)  # tq[k * (T + 1) + c] = t_{c-1}; bin 0 is dropped
    np.take(tq, iq, out=e.reshape(-1))
    np.subtract(a, e, out=e)  # e = |d| - t_{c-1} >= 0
    size = K * T1
    N = np.bincount(iq, minlength=size).astype(float).reshape(K, T1)[:, 1:]
    Q1 = np.bincount(iq, weights=e.reshape(-1), minlength=size).reshape(K, T1)[:, 1:]
    np.multiply(e, e, out=w)
    Q2 = np.bincount(iq, weights=w.reshape(-1), minlength=size).reshape(K, T1)[:, 1:]
    D = np.triu(t[None, :] - t[:, None])  # D[j, b] = t_b - t_j for b >= j
    U = np.triu(np.ones((T, T)))
    quad = (0.5 * se**2)[:, None] * (Q2 @ U.T + 2.0 * (Q1 @ D.T) + N @ (D * D).T)  # K x T
    if m == 1:
        np.sign(d, out=w)
        w *= z
        W = np.bincount(iq, weights=w.reshape(-1), minlength=size).reshape(K, 1, T1)[:, :, 1:]
        w *= e
        R = np.bincount(iq, weights=w.reshape(-1), minlength=size).reshape(K, 1, T1)[:, :, 1:]
    elif m > 1:
        ww = np.sign(d)[:, None, :] * z[None, :, :]  # K x m x p
        il = (
            iq.reshape(K, 1, p) - (np.arange(K) * T1)[:, None, None] + (np.arange(K * m) * T1).reshape(K, m, 1)
        ).reshape(-1)  # (k * m + row) * (T + 1) + c
        size = K * m * T1
        W = np.bincount(il, weights=ww.reshape(-1), minlength=size).reshape(K, m, T1)[:, :, 1:]
        ww *= e[:, None, :]
        R = np.bincount(il, weights=ww.reshape(-1), minlength=size).reshape(K, m, T1)[:, :, 1:]
    if m:
        lin = se[:, None, None] * (R @ U.T + W @ D.T)  # K x m x T
    else:
        lin = np.zeros((K, 0, T))
    dd = lin - quad[:, None, :] + np.log(prior)[:, None, None]
    dd = np.transpose(dd, (2, 1, 0))  # T x m x K
    nonzero = None
    if counts:
        cm = _n_below(a.max(axis=0), t)  # a gene survives where its largest |d| is above t
        cnt = np.bincount(_as_index(cm), minlength=T1)
        nonzero = np.cumsum(cnt[::-1])[::-1][1:]  # #{genes: cm > j}
    if order is not None:
        out = np.empty_like(dd)
        out[order] = dd
        dd = out
        if nonzero is not None:
            nz = np.empty_like(nonzero)
            nz[order] = nonzero
            nonzero = nz
    return dd, nonzero


def _calls(dd):
    """Class calls (first class wins ties, pamr's strict '>') and safe.exp posteriors (class axis last)."""
    yhat = dd.argmax(axis=-1)
    e = _safe_exp(dd)
    return yhat, e / e.sum(axis=-1, keepdims=True)


def _nsc(
    xs, codes, K, xs_test, thresholds=None, n_threshold=30, prior=None, se_scale=None, s0_percentile=50.0, stats=None
):
    """One pamr ``nsc`` call on samples x genes arrays (fast path); returns the fitted pieces
    (centroids and d as genes x classes), per-threshold test results (yhat T x m, prob T x m x K)
    and the class statistics that :func:`_loo` reuses. ``stats``: :func:`_class_stats` of xs
    (or the same from merged fold statistics), if already known."""
    n = xs.shape[0]
    nk, cen, m2, total = _class_stats(xs, codes, K) if stats is None else stats
    overall = total / n
    s = np.sqrt(m2.sum(axis=0) / (n - K))
    s0 = float(np.percentile(s, s0_percentile))  # R quantile type 7 == numpy "linear"
    sd = s + s0
    if prior is None:
        prior = nk / n
    if se_scale is None:
        se_scale = np.sqrt(1.0 / nk - 1.0 / n)
    prior = np.asarray(prior, float)
    se_scale = np.asarray(se_scale, float)
    d = (cen - overall[None, :]) / sd[None, :] / se_scale[:, None]
    if thresholds is None:
        thresholds = np.linspace(0.0, float(np.abs(d).max()), n_threshold)
    thresholds = np.asarray(thresholds, dtype=float)
    dd, nonzero = _grid(d, se_scale, (xs_test - overall[None, :]) / sd[None, :], thresholds, prior)
    yhat, prob = _calls(dd)
    return dict(
        centroids=np.ascontiguousarray(cen.T),
        overall=overall,
        sd=sd,
        s0=s0,
        nk=nk,
        prior=prior,
        se_scale=se_scale,
        d=np.ascontiguousarray(d.T),
        thresholds=thresholds,
        nonzero=nonzero,
        yhat=yhat,
        prob=prob,
        stats=(nk, cen, m2, total),
    )


def _welford(rows):
    """Running (mean, M2) of rows[:l] for l = 0..len(rows)-1 (Welford's update)."""
    q, p = rows.shape
    mean = np.zeros((q, p))
    m2 = np.zeros((q, p))
    delta = np.empty(p)
    for l in range(1, q):
        np.subtract(rows[l - 1], mean[l - 1], out=delta)
        np.add(mean[l - 1], delta / l, out=mean[l])
        np.add(m2[l - 1], delta * (rows[l - 1] - mean[l]), out=m2[l])
    return mean, m2


def _loo(xs, codes, K, thresholds, prior, se_scale, s0_percentile, stats=None, return_dd=False):
    """Leave-one-out over every sample with a fixed grid, priors and m_k (pamr.cv's refits).

    Returns held-out calls (n x T) and posteriors (n x K x T), each fold as ``_nsc`` on the other
    n - 1 samples gives them. ``stats``: :func:`_class_stats` of xs, if already known. Work
    buffers are allocated once and reused by every fold. ``return_dd``: also return the held-out
    discriminants (n x T x K), for tests.
    """
    n, p = xs.shape
    nk, cen, m2, total = _class_stats(xs, codes, K) if stats is None else stats
    thresholds = np.asarray(thresholds, float)
    prior = np.asarray(prior, float)
    se = np.asarray(se_scale, float)
    T = len(thresholds)
    yhat = np.zeros((n, T), dtype=int)
    prob = np.ones((n, K, T))
    dds = np.zeros((n, T, K)) if return_dd else None
    work = [np.empty((K, p)) for _ in range(5)]
    cf = cen.copy()  # fold centroids: only the held-out sample's class changes
    d = np.empty((K, p))
    z = np.empty((1, p))
    ov, sd, mc, qc, delta = (np.empty(p) for _ in range(5))
    for c in range(K):
        members = np.flatnonzero(codes == c)
        nc = len(members)
        rows = xs[members]
        pre_mean, pre_m2 = _welford(rows)  # members before position l
        suf_mean, suf_m2 = _welford(rows[::-1])  # members after position l, indexed by their count
        others = m2[np.arange(K) != c].sum(axis=0)  # other classes' sums of squares (no subtraction)
        nk_f = nk.copy()
        nk_f[c] -= 1
        for l, j in enumerate(members):
            na, nb = l, nc - 1 - l
            # Chan et al. merge of the two parts; na == 0 or nb == 0 reduces to the other part exactly
            np.subtract(suf_mean[nb], pre_mean[na], out=delta)
            np.multiply(delta, nb / (na + nb), out=mc)
            mc += pre_mean[na]
            np.multiply(delta, delta, out=qc)
            qc *= na * nb / (na + nb)
            qc += pre_m2[na]
            qc += suf_m2[nb]
            cf[c] = mc
            # overall mean from the fold's class means (not "total - x_j": that cancels when x_j
            # dominates a gene)
            np.dot(nk_f, cf, out=ov)
            ov /= n - 1
            np.add(others, qc, out=sd)
            sd /= n - 1 - K
            np.sqrt(sd, out=sd)
            sd += float(np.percentile(sd, s0_percentile))  # s + s0
            np.subtract(cf, ov, out=d)
            d /= sd
            d /= se[:, None]
            np.subtract(xs[j], ov, out=z[0])
            z /= sd
            dd, _ = _grid(d, se, z, thresholds, prior, counts=False, work=work)
            yh, pr = _calls(dd[:, 0, :])
            yhat[j] = yh
            prob[j] = pr.T
            if return_dd:
                dds[j] = dd[:, 0, :]
        cf[c] = cen[c]
    return (yhat, prob, dds) if return_dd else (yhat, prob)


def _merge(na, mean_a, m2_a, nb, mean_b, m2_b):
    """Chan et al.'s merge of two parts' (count, mean, M2), elementwise over counts na, nb (K) and
    K x p means and sums of squares; an empty part leaves the other exactly as it was."""
    n = na + nb
    w = np.divide(nb, n, out=np.zeros_like(n, dtype=float), where=n > 0)[:, None]
    f = np.divide(na * nb, n, out=np.zeros_like(n, dtype=float), where=n > 0)[:, None]
    delta = mean_b - mean_a
    return n, mean_a + delta * w, m2_a + m2_b + delta * delta * f


def _fold_stats(xs, codes, K, folds):
    """Per fold and class: count (F x K), mean and within sum of squares (F x K x p), two-pass."""
    p = xs.shape[1]
    F = len(folds)
    cnt = np.zeros((F, K))
    mean = np.zeros((F, K, p))
    m2 = np.zeros((F, K, p))
    for f, idx in enumerate(folds):
        for c in range(K):
            rows = xs[idx[codes[idx] == c]]
            if len(rows):
                cnt[f, c] = len(rows)
                mean[f, c] = rows.mean(axis=0)
                r = rows - mean[f, c]
                m2[f, c] = np.einsum("ij,ij->j", r, r)
    return cnt, mean, m2


def _merged_stats(fold_stats):
    """All folds' statistics merged: (class sizes, class means, within sums of squares, column
    sums), the shape of :func:`_class_stats`' result (equal to it up to rounding)."""
    cnt, mean, m2 = fold_stats
    K, p = mean.shape[1:]
    acc = (np.zeros(K), np.zeros((K, p)), np.zeros((K, p)))
    for f in range(len(cnt)):
        acc = _merge(*acc, cnt[f], mean[f], m2[f])
    nk, cen, ss = acc
    return nk, cen, ss, nk @ cen


def _kfold(xs, codes, K, thresholds, prior, se_scale, s0_percentile, folds, fold_stats=None):
    """pamr.cv's refits over multi-sample ``folds`` with a fixed grid, priors and m_k: held-out
    calls (n x T) and posteriors (n x K x T), as :func:`_nsc` on each training part gives them.

    Every sample's contribution to class means and sums of squares is computed once, per fold
    (two-pass); a training part's statistics are the Chan merge of the other folds' (prefix and
    suffix merges, as :func:`_loo` does for single samples: only sums of non-negative terms, no
    subtraction of the held-out fold). A fold costs O(K p) plus its test samples, instead of a
    pass over the whole training part. ``fold_stats``: :func:`_fold_stats` of these folds, if known.
    """
    n, p = xs.shape
    thresholds = np.asarray(thresholds, float)
    prior = np.asarray(prior, float)
    se = np.asarray(se_scale, float)
    T, F = len(thresholds), len(folds)
    cnt, mean, m2 = _fold_stats(xs, codes, K, folds) if fold_stats is None else fold_stats
    # pre[f] = folds 0..f-1 merged, suf[f] = folds f+1..F-1 merged
    pre = [(np.zeros(K), np.zeros((K, p)), np.zeros((K, p)))]
    for f in range(F - 1):
        pre.append(_merge(*pre[-1], cnt[f], mean[f], m2[f]))
    suf = [(np.zeros(K), np.zeros((K, p)), np.zeros((K, p)))]
    for f in range(F - 1, 0, -1):
        suf.append(_merge(cnt[f], mean[f], m2[f], *suf[-1]))
    suf = suf[::-1]
    yhat = np.zeros((n, T), dtype=int)
    prob = np.ones((n, K, T))
    for f, idx in enumerate(folds):
        nk, cen, ss = _merge(*pre[f], *suf[f])
        ntr = nk.sum()
        ov = (nk @ cen) / ntr  # overall mean from the class means, as _loo
        sd = np.sqrt(ss.sum(axis=0) / (ntr - K))
        sd += float(np.percentile(sd, s0_percentile))  # s + s0
        d = (cen - ov[None, :]) / sd[None, :] / se[:, None]
        dd, _ = _grid(d, se, (xs[idx] - ov[None, :]) / sd[None, :], thresholds, prior, counts=False)
        yh, pr = _calls(dd)  # T x m, T x m x K
        yhat[idx] = yh.T
        prob[idx] = np.transpose(pr, (1, 2, 0))
    return yhat, prob


# ----------------------------------------------------------------------------------------
# public API: training and prediction


def train(
    X: pd.DataFrame,
    y,
    *,
    n_threshold: int = 30,
    thresholds=None,
    s0_percentile: float = 50.0,
    prior=None,
    classes=None,
    remove_zeros: bool = True,
) -> PamFit:
    """Fit nearest shrunken centroids like ``pamr.train`` (defaults are pamr's).

    X: genes x samples log-expression. y: one class label per column (a Series indexed by sample
    is aligned to the columns). ``prior``: class priors in ``classes`` order (default: class
    proportions). ``classes``: class order (default: sorted labels, as R's ``factor``).
    ``remove_zeros``: like pamr, drop grid points after the first one that keeps no gene.
    """
    x, codes, classes, genes, samples = _as_arrays(X, y, classes)
    K = len(classes)
    if prior is not None:
        prior = np.asarray(prior, dtype=float)
        if prior.shape != (K,) or np.any(prior <= 0):
            raise InputError(f"prior must be {K} positive numbers, got {prior.tolist()}", where="prior")
    if not 0 <= s0_percentile <= 100:
        raise InputError(f"s0_percentile must be within 0..100, got {s0_percentile}", where="s0_percentile")
    xs = np.ascontiguousarray(x.T)
    r = _nsc(xs, codes, K, xs, thresholds=thresholds, n_threshold=n_threshold, prior=prior, s0_percentile=s0_percentile)
    errors = (r["yhat"] != codes[None, :]).sum(axis=1)
    nt = len(r["thresholds"])
    if remove_zeros:
        zero = np.flatnonzero(r["nonzero"] == 0)
        nt = int(zero[0]) + 1 if len(zero) else nt
    return PamFit(
        genes=genes,
        classes=classes,
        centroids=r["centroids"],
        centroid_overall=r["overall"],
        sd=r["sd"],
        s0=r["s0"],
        se_scale=r["se_scale"],
        prior=r["prior"],
        d=r["d"],
        thresholds=r["thresholds"][:nt],
        n_genes=r["nonzero"][:nt],
        train_errors=errors[:nt],
        n_per_class=r["nk"].astype(int),
        s0_percentile=float(s0_percentile),
        samples=samples,
    )


def _shrunk_scaled(fit: PamFit, threshold: float) -> np.ndarray:
    """c_ik = (xbar'_ik - xbar_i) / (s_i + s0) at one threshold (p x K)."""
    ds, _ = _shrunk(fit.d, [threshold])
    return ds[0].T * fit.se_scale[None, :]


def _newx(fit: PamFit, X: pd.DataFrame) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        raise InputError("expression must be a pandas DataFrame (genes x samples)", where="X")
    missing = fit.genes.difference(X.index)
    if len(missing):
        raise InputError(f"{len(missing)} genes of the fit are missing, e.g. {missing[:5].tolist()}", where="X rows")
    sub = X.loc[fit.genes]
    if sub.index.has_duplicates:
        raise InputError("duplicated gene ids among the fit's genes", where="X rows")
    x = sub.to_numpy(dtype=float)
    if not np.all(np.isfinite(x)):
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"missing or infinite value (gene {sub.index[r]!r}, sample {sub.columns[c]!r})", where="X")
    return x


def _dd_one(fit: PamFit, X: pd.DataFrame, threshold: float, prior=None) -> np.ndarray:
    prior = fit.prior if prior is None else np.asarray(prior, dtype=float)
    cs = _shrunk_scaled(fit, threshold)
    return _dd(_newx(fit, X), fit.centroid_overall, fit.sd, cs.T[None], prior)[0]


def predict(fit: PamFit, X: pd.DataFrame, threshold: float, prior=None) -> pd.Series:
    """Class calls at ``threshold`` (``pamr.predict(type="class")``), a Series indexed by sample."""
    dd = _dd_one(fit, X, threshold, prior)
    return pd.Series(np.asarray(fit.classes, dtype=object)[dd.argmax(axis=1)], index=X.columns, name="pred")


def predict_proba(fit: PamFit, X: pd.DataFrame, threshold: float, prior=None) -> pd.DataFrame:
    """Class probabilities at ``threshold`` (``pamr.predict(type="posterior")``, with safe.exp)."""
    e = _safe_exp(_dd_one(fit, X, threshold, prior))
    return pd.DataFrame(e / e.sum(axis=1, keepdims=True), index=X.columns, columns=list(fit.classes))


def discriminants(fit: PamFit, X: pd.DataFrame, threshold: float, prior=None) -> pd.DataFrame:
    """The paper's discriminant scores ``delta_k(x)`` (samples x classes) at ``threshold``.

    ``delta_k(x) = sum_i (x_i - xbar'_ik)^2 / (s_i + s0)^2 - 2 log(pi_k)`` over the genes that
    survive the threshold; the call is the class with the smallest ``delta_k``.
    """
    prior = fit.prior if prior is None else np.asarray(prior, dtype=float)
    keep = surviving_mask(fit, threshold)
    cen = shrunken_centroids(fit, threshold).to_numpy()[keep]
    x = _newx(fit, X)[keep]
    sd = fit.sd[keep]
    z = (x[:, :, None] - cen[:, None, :]) / sd[:, None, None]
    delta = (z**2).sum(axis=0) - 2.0 * np.log(prior)[None, :]
    return pd.DataFrame(delta, index=X.columns, columns=list(fit.classes))


def shrunken_centroids(fit: PamFit, threshold: float) -> pd.DataFrame:
    """Shrunken centroids ``xbar'_ik`` (genes x classes) at ``threshold`` (``type="centroid"``)."""
    cen = fit.centroid_overall[:, None] + _shrunk_scaled(fit, threshold) * fit.sd[:, None]
    return pd.DataFrame(cen, index=fit.genes, columns=list(fit.classes))


def surviving_mask(fit: PamFit, threshold: float) -> np.ndarray:
    """Boolean mask over ``fit.genes``: a shrunken centroid differs from the overall one."""
    return (np.abs(fit.d) - threshold > 0).any(axis=1)


def surviving_genes(fit: PamFit, threshold: float) -> list:
    """Genes that survive ``threshold``, ordered like ``pamr.listgenes`` (largest |score| first)."""
    return gene_scores(fit, threshold).index.tolist()


def gene_scores(fit: PamFit, threshold: float) -> pd.DataFrame:
    """``pamr.listgenes``: per surviving gene ``(xbar'_ik - xbar_i)/(s_i+s0)`` for every class,
    ordered by the largest absolute score (stable order for ties), unrounded."""
    keep = surviving_mask(fit, threshold)
    cs = _shrunk_scaled(fit, threshold)[keep]
    df = pd.DataFrame(cs, index=fit.genes[keep], columns=[f"{c}-score" for c in fit.classes])
    order = np.argsort(-np.abs(cs).max(axis=1), kind="stable")
    df = df.iloc[order]
    df.index.name = "id"
    return df


# ----------------------------------------------------------------------------------------
# cross-validation


#: ``folds="auto"``: leave-one-out (the paper's evaluation) up to this many samples ...
AUTO_LOO_MAX_N = 100
#: ... and this many balanced folds above it (see :func:`cv_scheme`)
AUTO_K = 10

#: Generator streams of the fold draws, ``np.random.default_rng([seed, stream])``: the
#: threshold-choice CV (also the permutation test's observed statistic), the permutations' own
#: CVs, the nested CV. The label permutations themselves keep ``default_rng(seed)``.
STREAM_CV, STREAM_PERM, STREAM_NESTED = 0, 1, 2


def cv_scheme(folds, n: int, largest_class: int | None = None):
    """The cross-validation that ``folds`` asks for on ``n`` samples: ``"loo"`` or a fold count k.

    ``"loo"``: leave-one-out, one sample per fold (the paper's, and BRB ArrayTools', evaluation).
    An integer k: k folds balanced per class (:func:`balanced_folds`); 2 <= k <= the largest class
    size (``largest_class``; pamr's ``balanced.folds`` silently lowers a larger k to it, we refuse).
    ``"auto"``: leave-one-out for ``n <= AUTO_LOO_MAX_N`` (100), else ``AUTO_K``-fold (10): the
    nested and permutation loops cost O(n^2 p) and O(B n p) with leave-one-out, and above 100
    samples a 10-fold training part (90% of the samples) is large enough that 10-fold and
    leave-one-out estimate nearly the same error (Hastie, Tibshirani & Friedman, ESL 2nd ed. 7.10;
    Kohavi 1995), while the nested CV runs 10 outer folds instead of n.
    Anything else is a one-line InputError.
    """
    if isinstance(folds, str):
        if folds == "loo":
            return "loo"
        if folds == "auto":
            return "loo" if n <= AUTO_LOO_MAX_N else AUTO_K
        raise InputError(f"folds must be 'loo', 'auto' or a whole number of folds >= 2, got {folds!r}", where="folds")
    if isinstance(folds, (bool, np.bool_)) or not isinstance(folds, (int, np.integer)):
        raise InputError(
            f"folds must be 'loo', 'auto' or a whole number of folds >= 2, got {folds!r} ({type(folds).__name__})",
            where="folds",
        )
    k = int(folds)
    top = n if largest_class is None else int(largest_class)
    if not 2 <= k <= top:
        raise InputError(
            f"folds must be within 2..{top} (the largest class has {top} samples; 'loo' for one per fold), got {k}",
            where="folds",
        )
    return k


def cv_description(scheme) -> str:
    """``"leave-one-out"`` or ``"10-fold (balanced per class)"`` for a :func:`cv_scheme` result."""
    return "leave-one-out" if scheme == "loo" else f"{int(scheme)}-fold (balanced per class)"


def balanced_folds(y, k: int, seed) -> list:
    """k folds in which every class is spread as evenly as possible: a port of pamr's
    ``balanced.folds`` (pamr 1.57, ``R/balanced.folds.R``), drawn with a numpy Generator.

    pamr shuffles each class's samples (``sample``), deals them round-robin over the folds (it
    fills an NA-padded matrix with ``ceiling(max class / k) * k`` rows and reshapes it to k rows,
    so the l-th shuffled member of a class lands in fold ``l mod k``), and then, with
    ``permute.rows``, randomly permutes which fold each group of k consecutive members (one
    "round") goes to, so that the short last round of each class does not always fill the first
    folds. This port does the same: per class (in code order) one permutation of its members,
    then per round of up to k members a random choice of distinct folds for them. So each fold
    holds ``floor(n_c / k)`` or ``ceil(n_c / k)`` members of class c; fold totals can differ by
    more than one (each class's remainder is placed independently), as in pamr. As in pamr, k is
    lowered to the largest class size (no fold would hold a sample otherwise) and raised to 2.

    The draws come from ``numpy.random.default_rng(seed)`` (``seed`` may also be a Generator,
    which is then advanced), not from R's RNG: the folds are pamr's in distribution, not R's
    exact folds for an R seed. They depend only on the labels' class sizes and order, k and the
    seed. Returns a list of sorted sample-index arrays.
    """
    codes = np.asarray(y)
    if codes.ndim != 1 or len(codes) == 0:
        raise InputError(f"labels must be a non-empty 1-d array, got shape {codes.shape}", where="y")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    labels, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    k = max(2, min(int(k), int(counts.max())))
    fold_of = np.empty(len(codes), dtype=int)
    for c in range(len(labels)):
        ids = rng.permutation(np.flatnonzero(inverse == c))
        for r in range(0, len(ids), k):
            chunk = ids[r : r + k]
            fold_of[chunk] = rng.permutation(k)[: len(chunk)]
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def _fold_rng(seed, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream)])


def _folds(folds, n, codes=None, seed=0, stream=STREAM_CV):
    """Folds as a list of index arrays: "loo", "auto", a fold count (balanced on ``codes``, drawn
    from stream ``stream`` of ``seed``) or explicit sample-index lists (checked to partition 0..n-1)."""
    if isinstance(folds, str) or isinstance(folds, (int, np.integer)) or isinstance(folds, (bool, np.bool_)):
        largest = None if codes is None else int(np.bincount(codes).max())
        scheme = cv_scheme(folds, n, largest)
        if scheme == "loo":
            return [np.array([i]) for i in range(n)]
        if codes is None:
            raise InputError("k-fold folds need the class labels", where="folds")
        return balanced_folds(codes, scheme, _fold_rng(seed, stream))
    out = [np.asarray(f, dtype=int) for f in folds]
    allidx = np.concatenate(out) if out else np.array([], int)
    if sorted(allidx.tolist()) != list(range(n)):
        raise InputError("folds must partition the samples 0..n-1 exactly once", where="folds")
    return out


def cv(X: pd.DataFrame, y, fit: PamFit | None = None, folds="loo", seed=0, **train_args) -> CvResult:
    """Cross-validate over the threshold grid like ``pamr.cv`` (default: one sample per fold).

    Every fold refits on the remaining samples with the full fit's thresholds, priors and
    ``m_k`` (pamr's ``se.scale``); centroids, ``s_i`` and ``s0`` are recomputed per fold. If
    ``fit`` is None it is trained first with ``train_args``. ``n_genes`` are the full fit's.
    ``folds``: "loo", "auto" or a fold count (:func:`cv_scheme`; a count draws
    :func:`balanced_folds` from stream ``STREAM_CV`` of ``seed``), or explicit sample-index lists.
    pamr's own default (balanced folds, ``min(smallest class, 10)`` of them) is not the default
    here: the paper used leave-one-out.
    """
    if fit is None:
        fit = train(X, y, **train_args)
    x, codes, classes, genes, samples = _as_arrays(X, y, fit.classes)
    if not genes.equals(fit.genes):
        x = _newx(fit, X)
    K = len(classes)
    n = x.shape[1]
    fl = _folds(folds, n, codes, seed, STREAM_CV)
    xs = np.ascontiguousarray(x.T)
    for f in fl:
        if np.bincount(np.delete(codes, f), minlength=K).min() < 2:
            raise InputError("a training fold leaves a class with fewer than 2 samples", where="folds")
    if all(len(f) == 1 for f in fl):  # leave-one-out: refit every fold from running statistics
        yhat, prob = _loo(xs, codes, K, fit.thresholds, fit.prior, fit.se_scale, fit.s0_percentile)
    else:
        yhat, prob = _kfold(xs, codes, K, fit.thresholds, fit.prior, fit.se_scale, fit.s0_percentile, fl)
    errors = (yhat != codes[:, None]).sum(axis=0)
    cls = np.asarray(classes, dtype=object)
    pred = pd.DataFrame(cls[yhat], index=samples, columns=range(len(fit.thresholds)))
    truth = pd.Series(cls[codes], index=samples, name="truth")
    return CvResult(
        thresholds=fit.thresholds,
        n_genes=fit.n_genes,
        errors=errors,
        pred=pred,
        prob=prob,
        truth=truth,
        classes=classes,
        folds=fl,
    )


def choose_threshold(cvres: CvResult) -> tuple[int, float]:
    """pamr convention: the largest threshold with the fewest CV errors -> (grid index, threshold)."""
    best = cvres.errors.min()
    idx = int(np.flatnonzero(cvres.errors == best).max())
    return idx, float(cvres.thresholds[idx])


def threshold_for_n_genes(fit: PamFit, n: int) -> float:
    """A threshold that keeps exactly ``n`` genes (the midpoint of the interval that does).

    Genes survive threshold t when ``max_k |d_ik| > t``; with the per-gene maxima sorted
    decreasingly m_1 >= m_2 >= ..., exactly n genes survive for t in [m_(n+1), m_n).
    Raises InputError if ties make exactly ``n`` impossible.
    """
    m = np.sort(np.abs(fit.d).max(axis=1))[::-1]
    p = len(m)
    if not 0 <= n <= p:
        raise InputError(f"n must be within 0..{p}, got {n}", where="n")
    if n == p:
        return 0.0 if m[-1] > 0 else float("nan")
    hi = m[n - 1] if n > 0 else m[0]
    lo = m[n]
    if n == 0:
        return float(m[0])
    if not hi > lo:
        raise InputError(f"no threshold keeps exactly {n} genes (tied scores)", where="n")
    return float((lo + hi) / 2.0)


# ----------------------------------------------------------------------------------------
# honesty: nested LOOCV, permutations, exact intervals, performance summary


def _select_and_predict(xs, codes, K, xs_test, n_threshold, s0_percentile, prior, inner=None):
    """pamr workflow on one training set (samples x genes): fit, cross-validate over the grid
    (leave-one-out, or the sample-index folds ``inner``), pick the largest threshold with the
    fewest errors; return (chosen index, thresholds, n_genes, test calls and probs per threshold,
    CV errors per threshold)."""
    fs = None if inner is None else _fold_stats(xs, codes, K, inner)  # the full fit's statistics are their merge
    full = _nsc(
        xs,
        codes,
        K,
        xs_test,
        n_threshold=n_threshold,
        prior=prior,
        s0_percentile=s0_percentile,
        stats=None if fs is None else _merged_stats(fs),
    )
    nz = full["nonzero"]
    zero = np.flatnonzero(nz == 0)
    nt = int(zero[0]) + 1 if len(zero) else len(nz)  # pamr.train remove.zeros
    thr = full["thresholds"][:nt]
    if inner is None:
        if np.bincount(codes, minlength=K).min() < 3:
            raise InputError("an inner fold leaves a class with fewer than 2 samples", where="y")
        yhat, _ = _loo(xs, codes, K, thr, full["prior"], full["se_scale"], s0_percentile, stats=full["stats"])
    else:
        yhat, _ = _kfold(xs, codes, K, thr, full["prior"], full["se_scale"], s0_percentile, inner, fold_stats=fs)
    errors = (yhat != codes[:, None]).sum(axis=0)
    idx = int(np.flatnonzero(errors == errors.min()).max())
    return idx, thr, nz[:nt], full["yhat"][:nt], full["prob"][:nt], errors


def _check_training_parts(codes, folds, K, what):
    for f in folds:
        if np.bincount(np.delete(codes, f), minlength=K).min() < 2:
            raise InputError(f"{what} leaves a class with fewer than 2 samples in a training part", where="folds")


def _nested_plan(codes, K, k, rng):
    """Outer balanced folds of ``codes`` and, for each, the inner balanced folds of its training
    part (indices into that part), drawn in order from ``rng``; checked so that every training
    part keeps 2 samples per class."""
    n = len(codes)
    outer = balanced_folds(codes, k, rng)
    _check_training_parts(codes, outer, K, f"nested {k}-fold CV (outer folds)")
    plan = []
    for f in outer:
        tr = np.delete(np.arange(n), f)
        inner = balanced_folds(codes[tr], k, rng)
        _check_training_parts(codes[tr], inner, K, f"nested {k}-fold CV (inner folds)")
        plan.append((f, inner))
    return plan


def nested_cv(
    X: pd.DataFrame,
    y,
    *,
    folds="loo",
    seed: int = 0,
    n_threshold: int = 30,
    s0_percentile: float = 50.0,
    prior=None,
    classes=None,
    n_jobs: int | None = None,
) -> NestedResult:
    """Honest cross-validation: for every outer fold the whole pamr workflow (fit, inner CV over
    the threshold grid, choice of the largest threshold with the fewest inner errors, and so the
    gene selection) runs on the other samples only; the held-out samples are then called.

    ``folds`` (:func:`cv_scheme`): "loo" (leave-one-out outside and inside), "auto", or k: k
    balanced folds outside and k balanced folds of each training part inside, all drawn in order
    from stream ``STREAM_NESTED`` of ``seed`` (numpy, not R's RNG). ``prior``: fixed priors in
    class order, or None for the class proportions of each training part. ``n_jobs``: worker
    processes for the outer folds (None: :func:`parallel_jobs` decides from the problem's size);
    the result does not depend on it. Returns per-sample calls, class probabilities, the chosen
    threshold and its gene count.
    """
    x, codes, classes, genes, samples = _as_arrays(X, y, classes)
    xs = np.ascontiguousarray(x.T)
    K = len(classes)
    n = x.shape[1]
    scheme = cv_scheme(folds, n, int(np.bincount(codes).max()))
    pr = None if prior is None else np.asarray(prior, dtype=float)
    args = (codes, K, n_threshold, s0_percentile, pr)
    if scheme == "loo":
        for i in range(n):
            if np.bincount(np.delete(codes, i), minlength=K).min() < 3:
                raise InputError("nested LOOCV needs at least 4 samples per class", where="y")
        jobs = parallel_jobs(n_jobs, n * n * xs.shape[1])
        outer = _map_chunks(_nested_outer, xs, args, list(range(n)), jobs)
        per_sample = list(zip(range(n), outer, strict=True))
    else:
        plan = _nested_plan(codes, K, scheme, _fold_rng(seed, STREAM_NESTED))
        jobs = parallel_jobs(n_jobs, len(plan) * n * xs.shape[1])
        parts = _map_chunks(_nested_fold, xs, args, plan, jobs)
        per_sample = sorted(
            (
                (int(i), (pred[j], prob[j], thr, nz))
                for (f, _), (pred, prob, thr, nz) in zip(plan, parts, strict=True)
                for j, i in enumerate(f)
            ),
            key=lambda t: t[0],
        )
    rows = []
    for i, (pred, prob, thr, nz) in per_sample:
        row = {"sample": samples[i], "truth": classes[codes[i]], "pred": classes[int(pred)]}
        for k, c in enumerate(classes):
            row[f"prob_{c}"] = float(prob[k])
        row["threshold"] = float(thr)
        row["n_genes"] = int(nz)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("sample")
    k = int((df["pred"] == df["truth"]).sum())
    return NestedResult(predictions=df, accuracy=k / n, n_correct=k, n=n, folds=scheme)


def nested_loocv(
    X: pd.DataFrame,
    y,
    *,
    n_threshold: int = 30,
    s0_percentile: float = 50.0,
    prior=None,
    classes=None,
    n_jobs: int | None = None,
) -> NestedResult:
    """:func:`nested_cv` with leave-one-out outside and inside (the paper's evaluation, made honest)."""
    return nested_cv(
        X,
        y,
        folds="loo",
        n_threshold=n_threshold,
        s0_percentile=s0_percentile,
        prior=prior,
        classes=classes,
        n_jobs=n_jobs,
    )


#: below this much work (folds x samples x genes, about) the nested and permutation loops stay in
#: this process: starting workers (about a second each, and a copy of the data) would cost more
#: than it saves
PARALLEL_MIN_WORK = 2e8
_JOBS_ENV = "HELPERS_PAM_JOBS"


def _usable_cpus() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))  # the CPUs this process may run on (taskset, cpusets)
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parallel_jobs(n_jobs: int | None, work: float) -> int:
    """Worker processes for a loop of ``work`` (folds x samples x genes): ``n_jobs`` when given
    (>= 1); else the environment's ``HELPERS_PAM_JOBS``; else 1 inside a worker process of a
    parallel loop (chapter 13's twins: no workers of workers, which would put n_jobs^2 busy
    processes on n_jobs cores) and below :data:`PARALLEL_MIN_WORK`; otherwise up to 2 (the cores
    of the reference machine, never more than the CPUs this process may use)."""
    import multiprocessing as mp
    import os

    if n_jobs is None and os.environ.get(_JOBS_ENV):
        try:
            n_jobs = int(os.environ[_JOBS_ENV])
        except ValueError:
            raise InputError(
                f"{_JOBS_ENV} must be a whole number, got {os.environ[_JOBS_ENV]!r}", where=_JOBS_ENV
            ) from None
    if n_jobs is not None:
        if int(n_jobs) < 1:
            raise InputError(f"n_jobs must be >= 1, got {n_jobs}", where="n_jobs")
        return int(n_jobs)
    if mp.parent_process() is not None or work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(2, _usable_cpus()))


_SHARED: dict = {}


def _init_worker(xs) -> None:
    """Keep the data for this worker's chunks; on Linux the worker dies with the process that
    started it (a kernel killed mid-loop leaves no worker computing on)."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):
            pass
    _SHARED["xs"] = xs


def _run_chunk(fn, args, items):
    return [fn(_SHARED["xs"], args, it) for it in items]


def _map_chunks(fn, xs, args, items, jobs: int) -> list:
    """``[fn(xs, args, it) for it in items]``, in order; with ``jobs > 1`` in that many spawned
    worker processes (one BLAS thread each), ``xs`` sent once per worker, items in contiguous
    chunks."""
    if jobs <= 1 or len(items) < 2:
        return [fn(xs, args, it) for it in items]
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = min(jobs, len(items))
    bounds = np.linspace(0, len(items), 4 * jobs + 1).round().astype(int)
    chunks = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(xs,)
        ) as ex:
            parts = list(ex.map(_run_chunk, [fn] * len(chunks), [args] * len(chunks), chunks))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [r for part in parts for r in part]


def _nested_outer(xs, args, i):
    """Outer fold ``i`` of nested leave-one-out: (call, class probabilities, threshold, genes)."""
    codes, K, n_threshold, s0_percentile, pr = args
    n = xs.shape[0]
    tr = np.r_[0:i, i + 1 : n]
    idx, thr, nz, yhat, prob, _ = _select_and_predict(xs[tr], codes[tr], K, xs[[i]], n_threshold, s0_percentile, pr)
    return int(yhat[idx, 0]), prob[idx, 0].copy(), float(thr[idx]), int(nz[idx])


def _nested_fold(xs, args, item):
    """Outer fold ``item = (test indices, inner folds)`` of nested k-fold CV: (calls, class
    probabilities m x K, threshold, genes)."""
    codes, K, n_threshold, s0_percentile, pr = args
    test, inner = item
    tr = np.delete(np.arange(xs.shape[0]), test)
    idx, thr, nz, yhat, prob, _ = _select_and_predict(
        xs[tr], codes[tr], K, xs[test], n_threshold, s0_percentile, pr, inner=inner
    )
    return yhat[idx].copy(), prob[idx].copy(), float(thr[idx]), int(nz[idx])


def _permuted_stat(xs, args, item):
    K, n_threshold, s0_percentile, pr, nested = args
    perm, plan = item
    stat = _nested_accuracy if nested else _naive_accuracy
    return stat(xs, perm, K, n_threshold, s0_percentile, pr, plan)


def _naive_accuracy(xs, codes, K, n_threshold, s0_percentile, prior, folds=None):
    """pamr's CV accuracy at the threshold chosen on the same errors (``folds`` None: leave-one-out)."""
    idx, _, _, _, _, errors = _select_and_predict(xs, codes, K, xs[:0], n_threshold, s0_percentile, prior, folds)
    return 1.0 - errors[idx] / xs.shape[0]


def _nested_accuracy(xs, codes, K, n_threshold, s0_percentile, prior, plan=None):
    """Nested CV accuracy (``plan`` None: leave-one-out; else :func:`_nested_plan`'s folds)."""
    n = xs.shape[0]
    ok = 0
    if plan is None:
        for i in range(n):
            tr = np.r_[0:i, i + 1 : n]
            idx, _, _, yhat, _, _ = _select_and_predict(
                xs[tr], codes[tr], K, xs[[i]], n_threshold, s0_percentile, prior
            )
            ok += int(yhat[idx, 0] == codes[i])
        return ok / n
    for test, inner in plan:
        tr = np.delete(np.arange(n), test)
        idx, _, _, yhat, _, _ = _select_and_predict(
            xs[tr], codes[tr], K, xs[test], n_threshold, s0_percentile, prior, inner=inner
        )
        ok += int((yhat[idx] == codes[test]).sum())
    return ok / n


def permutation_pvalue(
    X: pd.DataFrame,
    y,
    n_perm: int = 100,
    seed: int = 0,
    *,
    nested: bool = False,
    folds="loo",
    n_threshold: int = 30,
    s0_percentile: float = 50.0,
    prior=None,
    classes=None,
    n_jobs: int | None = None,
) -> dict:
    """Permutation test of the CV accuracy: labels are shuffled ``n_perm`` times (numpy
    Generator from ``seed``) and the same procedure is rerun on each shuffle.

    ``nested=False``: the statistic is pamr's CV accuracy at the threshold chosen on those
    same CV errors (optimistic); ``nested=True``: the nested CV accuracy (slow: about n
    pamr cross-validations per permutation with leave-one-out, k with k folds).
    ``folds`` (:func:`cv_scheme`): "loo", "auto" or k. With k folds every shuffle gets its own
    balanced folds, drawn on the shuffled labels in order from stream ``STREAM_PERM`` of ``seed``
    (the observed statistic uses :func:`cv`'s folds, stream ``STREAM_CV``; nested: stream
    ``STREAM_NESTED``, as :func:`nested_cv`), so the whole procedure, fold draw included, is what
    is permuted; the shuffles themselves are the same for every ``folds``.
    p = (1 + #{null >= observed}) / (1 + n_perm).
    ``n_jobs``: worker processes for the permutations (None: :func:`parallel_jobs` decides); the
    permutations and folds are drawn in order in this process, so the result does not depend on it.
    """
    x, codes, classes, genes, samples = _as_arrays(X, y, classes)
    if isinstance(n_perm, (bool, np.bool_)) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise InputError(f"n_perm must be a whole number >= 1, got {n_perm!r}", where="n_perm")
    K = len(classes)
    n = x.shape[1]
    scheme = cv_scheme(folds, n, int(np.bincount(codes).max()))
    pr = None if prior is None else np.asarray(prior, dtype=float)
    stat = _nested_accuracy if nested else _naive_accuracy
    x = np.ascontiguousarray(x.T)  # samples x genes for the fast path
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(codes) for _ in range(n_perm)]  # drawn in order: the same for any n_jobs

    def plan(labels, frng):
        if scheme == "loo":
            return None
        if nested:
            return _nested_plan(labels, K, scheme, frng)
        f = balanced_folds(labels, scheme, frng)
        _check_training_parts(labels, f, K, f"{scheme}-fold CV")
        return f

    observed = stat(
        x,
        codes,
        K,
        n_threshold,
        s0_percentile,
        pr,
        plan(codes, _fold_rng(seed, STREAM_NESTED if nested else STREAM_CV)),
    )
    frng = _fold_rng(seed, STREAM_PERM)
    items = [(p, plan(p, frng)) for p in perms]
    n_folds = n if scheme == "loo" else scheme
    jobs = parallel_jobs(n_jobs, n_perm * n * (n_folds if nested else 1) * x.shape[1])
    null = np.asarray(_map_chunks(_permuted_stat, x, (K, n_threshold, s0_percentile, pr, nested), items, jobs), float)
    p = (1 + int(np.sum(null >= observed - 1e-12))) / (n_perm + 1)
    return {
        "observed": float(observed),
        "null": null,
        "p_value": float(p),
        "n_perm": int(n_perm),
        "nested": bool(nested),
        "seed": int(seed),
        "folds": scheme,
    }


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided ``1 - alpha`` interval for a binomial proportion k/n."""
    if n <= 0 or not 0 <= k <= n:
        raise InputError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}", where="clopper_pearson")
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def performance(truth, pred, positive: str = "CR", negative: str = "NR", alpha: float = 0.05) -> dict:
    """Accuracy, sensitivity (calls of ``positive`` among true positives) and specificity (calls of
    ``negative`` among true negatives), each with counts ("28/31") and Clopper-Pearson intervals,
    plus the majority-class baseline accuracy."""
    t = np.asarray(truth, dtype=object).astype(str)
    p = np.asarray(pred, dtype=object).astype(str)
    if t.shape != p.shape or t.ndim != 1 or len(t) == 0:
        raise InputError(f"truth and pred must be equal-length 1-d, got {t.shape} and {p.shape}", where="performance")
    n = len(t)

    def part(mask):
        m = int(mask.sum())
        k = int((p[mask] == t[mask]).sum())
        lo, hi = clopper_pearson(k, m, alpha) if m else (float("nan"), float("nan"))
        return {"k": k, "n": m, "value": (k / m) if m else float("nan"), "ci": [lo, hi], "text": f"{k}/{m}"}

    acc = part(np.ones(n, bool))
    sens = part(t == positive)
    spec = part(t == negative)
    labels, counts = np.unique(t, return_counts=True)
    j = int(np.argmax(counts))
    levels = sorted(set(t.tolist()) | set(p.tolist()))
    confusion = {a: {b: int(((t == a) & (p == b)).sum()) for b in levels} for a in sorted(set(t.tolist()))}
    return {
        "n": n,
        "accuracy": acc["value"],
        "accuracy_k": acc["k"],
        "accuracy_text": acc["text"],
        "accuracy_ci": acc["ci"],
        "sensitivity": sens["value"],
        "sensitivity_text": sens["text"],
        "sensitivity_ci": sens["ci"],
        "specificity": spec["value"],
        "specificity_text": spec["text"],
        "specificity_ci": spec["ci"],
        "majority_class": str(labels[j]),
        "majority_baseline": float(counts[j] / n),
        "confusion": confusion,
        "positive": positive,
        "negative": negative,
    }
