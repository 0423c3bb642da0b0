"""limma-compatible linear models for expression data: voom, lmFit, eBayes, topTable.

numpy/scipy re-implementations of limma 3.54 (R 4.2), checked against R output in
``tests/data/reference``. Expression matrices are genes x samples. The pieces:

* :func:`lowess` - R's ``lowess`` (Cleveland's clowess, same ``delta`` skipping and robustness
  iterations), used by :func:`voom` for the mean-variance trend.
* :func:`ns_basis` - a basis of R's ``splines::ns(x, df, intercept=TRUE)`` space, used by
  :func:`fit_f_dist` for the ``trend=TRUE`` prior.
* :func:`voom`, :func:`lm_fit`, :func:`ebayes`, :func:`top_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.interpolate import BSpline

from helpers.engine.errors import InputError

__all__ = [
    "LimmaFit",
    "VoomResult",
    "lowess",
    "ns_basis",
    "voom",
    "lm_fit",
    "trigamma_inverse",
    "fit_f_dist",
    "squeeze_var",
    "ebayes",
    "top_table",
    "p_adjust_bh",
]


# --------------------------------------------------------------------------------------------
# lowess (R's clowess)
# --------------------------------------------------------------------------------------------
def _lowest(x, y, xs, nleft, nright, rw):
    """One local weighted linear fit at ``xs`` (port of the logic of R's C ``lowest``)."""
    n = x.size
    rng = x[n - 1] - x[0]
    h = max(xs - x[nleft], x[nright] - xs)
    h9 = 0.999 * h
    h1 = 0.001 * h
    # points from nleft onwards, stopping at the first one right of xs and farther than h9;
    # every point beyond xs + h qualifies, so a window up to there is enough
    hi = int(np.searchsorted(x, xs + h, side="right")) + 1
    seg = x[nleft : min(hi, n)]
    r = np.abs(seg - xs)
    stop = (r > h9) & (seg > xs)
    m = int(np.argmax(stop)) if stop.any() else seg.size
    seg, r = seg[:m], r[:m]
    w = np.zeros(m)
    inside = r <= h9
    ri = r[inside]
    w[inside] = np.where(ri <= h1, 1.0, (1.0 - (ri / h) ** 3) ** 3)
    if rw is not None:
        w *= rw[nleft : nleft + m]
    a = w.sum()
    if a <= 0:
        return 0.0, False
    w = w / a
    if h > 0:
        a = np.sum(w * seg)
        b = xs - a
        c = np.sum(w * (seg - a) ** 2)
        if np.sqrt(c) > 0.001 * rng:
            b = b / c
            w = w * (b * (seg - a) + 1.0)
    return float(np.sum(w * y[nleft : nleft + m])), True


def _clowess(x, y, f, nsteps, delta):
    n = x.size
    if n < 2:
        return y.copy()
    ns = max(2, min(n, int(f * n + 1e-7)))
    ys = np.empty(n)
    rw = None
    for it in range(1, nsteps + 2):
        nleft, nright, last, i = 0, ns - 1, -1, 0
        while True:
            if nright < n - 1:
                d1 = x[i] - x[nleft]
                d2 = x[nright + 1] - x[i]
                if d1 > d2:
                    nleft += 1
                    nright += 1
                    continue
            val, ok = _lowest(x, y, x[i], nleft, nright, rw if it > 1 else None)
            ys[i] = val if ok else y[i]
            if last < i - 1:
                denom = x[i] - x[last]
                j = np.arange(last + 1, i)
                alpha = (x[j] - x[last]) / denom
                ys[j] = alpha * ys[i] + (1.0 - alpha) * ys[last]
            last = i
            cut = x[last] + delta
            i = last + 1
            while i < n:
                if x[i] > cut:
                    break
                if x[i] == x[last]:
                    ys[i] = ys[last]
                    last = i
                i += 1
            i = max(last + 1, i - 1)
            if last >= n - 1:
                break
        res = y - ys
        sc = np.sum(np.abs(res)) / n
        if it > nsteps:
            break
        ar = np.abs(res)
        srt = np.sort(ar)
        m1 = n // 2
        cmad = 3.0 * (srt[m1] + srt[n - m1 - 1]) if n % 2 == 0 else 6.0 * srt[m1]
        if cmad < 1e-7 * sc:
            break
        c9, c1 = 0.999 * cmad, 0.001 * cmad
        rw = np.where(ar <= c1, 1.0, np.where(ar <= c9, (1.0 - (ar / cmad) ** 2) ** 2, 0.0))
    return ys


def lowess(x, y, f: float = 2 / 3, iter: int = 3, delta: float | None = None):
    """R's ``lowess(x, y, f, iter, delta)``: returns ``(sorted x, fitted y)``.

    ``delta`` defaults to ``0.01 * diff(range(x))`` as in R; fits are computed only at points
    more than ``delta`` apart and linearly interpolated in between, exactly like clowess.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError("x and y must be 1-d and of the same length", where="lowess")
    o = np.argsort(x, kind="stable")
    xs, yy = x[o], y[o]
    if delta is None:
        delta = 0.01 * (xs[-1] - xs[0]) if xs.size else 0.0
    return xs, _clowess(xs, yy, f, int(iter), float(delta))


def _approxfun(x, y):
    """``approxfun(x, y, rule=2, ties=list("ordered", mean))`` for sorted x."""
    ux, inv = np.unique(x, return_inverse=True)
    if ux.size < x.size:
        y = np.bincount(inv, weights=y) / np.bincount(inv)
    return lambda v: np.interp(v, ux, y)


# --------------------------------------------------------------------------------------------
# natural spline basis (splines::ns)
# --------------------------------------------------------------------------------------------
def ns_basis(x, df: int, intercept: bool = True) -> np.ndarray:
    """Natural cubic spline basis spanning the same space as R's ``splines::ns(x, df, intercept)``.

    Interior knots are the type-7 quantiles of ``x`` at ``1/(K+1), ..., K/(K+1)`` with
    ``K = df - 1 - intercept``; boundary knots are ``range(x)``. The B-spline basis is projected
    onto the null space of the second derivatives at the boundary knots (via a QR, like R), so
    least-squares fits on it give the same fitted values as R's.
    """
    x = np.asarray(x, dtype=float)
    n_iknots = df - 1 - int(intercept)
    if n_iknots < 0:
        raise InputError(f"df={df} is too small for a natural spline", where="ns_basis")
    lo, hi = float(x.min()), float(x.max())
    probs = np.linspace(0, 1, n_iknots + 2)[1:-1]
    knots = np.quantile(x, probs) if n_iknots > 0 else np.array([])
    t = np.concatenate([[lo] * 4, np.sort(knots), [hi] * 4])
    nb = t.size - 4
    spl = BSpline(t, np.eye(nb), 3, extrapolate=True)
    basis = spl(x)
    const = spl.derivative(2)(np.array([lo, hi]))
    if not intercept:
        basis, const = basis[:, 1:], const[:, 1:]
    q, _ = np.linalg.qr(const.T, mode="complete")
    return basis @ q[:, 2:]


# --------------------------------------------------------------------------------------------
# linear model fits
# --------------------------------------------------------------------------------------------
@dataclass
class LimmaFit:
    """Result of :func:`lm_fit`, extended in place by :func:`ebayes` (limma's MArrayLM)."""

    coefficients: np.ndarray  # genes x coefs
    stdev_unscaled: np.ndarray  # genes x coefs
    sigma: np.ndarray  # genes
    df_residual: np.ndarray  # genes
    amean: np.ndarray  # genes, unweighted row means of the expression
    design: np.ndarray
    genes: pd.Index
    coef_names: list
    # filled by ebayes
    df_prior: float | np.ndarray | None = None
    s2_prior: float | np.ndarray | None = None
    s2_post: np.ndarray | None = None
    df_total: np.ndarray | None = None
    t: np.ndarray | None = None
    p_value: np.ndarray | None = None
    lods: np.ndarray | None = None
    var_prior: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def coef_index(self, coef) -> int:
        """Column number of ``coef`` (a name or an integer position)."""
        if isinstance(coef, (int, np.integer)):
            if not -len(self.coef_names) <= coef < len(self.coef_names):
                raise InputError(f"coefficient {coef} out of range", where="coef")
            return int(coef) % len(self.coef_names)
        if coef not in self.coef_names:
            raise InputError(f"unknown coefficient {coef!r}; have {self.coef_names}", where="coef")
        return self.coef_names.index(coef)


def _as_matrix(E):
    if isinstance(E, pd.DataFrame):
        return E.to_numpy(dtype=float), E.index, list(E.columns)
    arr = np.asarray(E, dtype=float)
    if arr.ndim != 2:
        raise InputError(f"expected a genes x samples matrix, got {arr.ndim} dimension(s)", where="expression")
    return arr, pd.RangeIndex(arr.shape[0]), list(range(arr.shape[1]))


def _as_design(design, n_samples):
    if isinstance(design, pd.DataFrame):
        names = [str(c) for c in design.columns]
        X = design.to_numpy(dtype=float)
    else:
        X = np.asarray(design, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        names = [f"x{j}" for j in range(X.shape[1])]
    if X.shape[0] != n_samples:
        raise InputError(f"design has {X.shape[0]} rows but there are {n_samples} samples", where="design")
    if not np.isfinite(X).all():
        raise InputError("design contains missing or infinite values", where="design")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise InputError("design matrix is not of full column rank (confounded covariates?)", where="design")
    if X.shape[0] <= X.shape[1]:
        raise InputError("no residual degrees of freedom: need more samples than coefficients", where="design")
    return X, names


def lm_fit(E, design, weights=None) -> LimmaFit:
    """Gene-wise (weighted) least squares, like ``limma::lmFit`` for complete data.

    ``E`` is genes x samples (DataFrame or array); ``design`` samples x coefficients (full column
    rank). ``weights`` (genes x samples, positive) gives weighted fits, solved for all genes at
    once through batched normal equations. Returns a :class:`LimmaFit` with coefficients,
    ``stdev_unscaled`` (sqrt of the diagonal of ``(X'WX)^-1``), ``sigma`` (residual SD) and
    ``df_residual = n - p``. Missing values are not supported.
    """
    Y, genes, _ = _as_matrix(E)
    X, names = _as_design(design, Y.shape[1])
    if not np.isfinite(Y).all():
        raise InputError("expression contains missing or infinite values", where="expression")
    n, p = X.shape
    if weights is None:
        q, r = np.linalg.qr(X)
        coef = np.linalg.solve(r, q.T @ Y.T).T
        rinv = np.linalg.inv(r)
        su = np.broadcast_to(np.sqrt((rinv**2).sum(axis=1)), coef.shape).copy()
        resid = Y - coef @ X.T
        rss = (resid**2).sum(axis=1)
    else:
        W = np.asarray(weights, dtype=float)
        if W.shape != Y.shape:
            raise InputError(f"weights shape {W.shape} differs from expression {Y.shape}", where="weights")
        if not (np.isfinite(W).all() and (W > 0).all()):
            raise InputError("weights must be positive and finite", where="weights")
        A = np.einsum("gn,np,nq->gpq", W, X, X)
        b = np.einsum("gn,np->gp", W * Y, X)
        coef = np.linalg.solve(A, b[..., None])[..., 0]
        ainv = np.linalg.inv(A)
        su = np.sqrt(np.einsum("gpp->gp", ainv))
        resid = Y - coef @ X.T
        rss = (W * resid**2).sum(axis=1)
    df = np.full(Y.shape[0], n - p, dtype=float)
    sigma = np.sqrt(rss / df)
    return LimmaFit(
        coefficients=coef,
        stdev_unscaled=su,
        sigma=sigma,
        df_residual=df,
        amean=Y.mean(axis=1),
        design=X,
        genes=genes,
        coef_names=names,
    )


@dataclass
class VoomResult:
    """Output of :func:`voom`: log2-CPM ``E`` and precision ``weights`` (genes x samples)."""

    E: pd.DataFrame
    weights: np.ndarray
    lib_size: np.ndarray
    trend_x: np.ndarray = None  # lowess x (sorted mean log2 count)
    trend_y: np.ndarray = None  # lowess fit of sqrt(residual SD)


def voom(counts, design, lib_size=None, span: float = 0.5) -> VoomResult:
    """limma's ``voom``: log2-CPM with observation-level precision weights.

    ``E = log2((y + 0.5) / (lib_size + 1) * 1e6)``; ``lib_size`` should be the effective library
    sizes (``colSums * TMM factors``), default plain column sums. A lowess trend (``f=span``,
    3 robustness iterations, ``delta = 1%`` of the range) of sqrt(residual SD) against mean
    log2 count is interpolated (linearly, constant beyond the ends) at each fitted log2 count;
    ``weights = trend^-4``. Genes with zero total count are left out of the trend fit.
    """
    Y, genes, samples = _as_matrix(counts)
    if Y.shape[0] < 2:
        raise InputError("need at least two genes to fit a mean-variance trend", where="counts")
    if np.isnan(Y).any() or (Y < 0).any():
        raise InputError("counts must be non-negative and not missing", where="counts")
    if lib_size is None:
        lib_size = Y.sum(axis=0)
    lib_size = np.asarray(lib_size, dtype=float)
    E = np.log2((Y + 0.5) / (lib_size + 1) * 1e6)
    fit = lm_fit(E, design)
    sx = fit.amean + np.mean(np.log2(lib_size + 1)) - np.log2(1e6)
    sy = np.sqrt(fit.sigma)
    nonzero = Y.sum(axis=1) != 0
    lx, ly = lowess(sx[nonzero], sy[nonzero], f=span)
    trend = _approxfun(lx, ly)
    fitted = fit.coefficients @ fit.design.T
    fitted_logcount = np.log2(2.0**fitted * 1e-6 * (lib_size + 1))
    w = 1.0 / trend(fitted_logcount) ** 4
    return VoomResult(
        E=pd.DataFrame(E, index=genes, columns=samples), weights=w, lib_size=lib_size, trend_x=lx, trend_y=ly
    )


# --------------------------------------------------------------------------------------------
# empirical Bayes
# --------------------------------------------------------------------------------------------
def trigamma_inverse(x):
    """Solve ``trigamma(y) = x`` by limma's Newton iteration (``limma::trigammaInverse``)."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.full_like(x, np.nan)
    big = x > 1e7
    small = (x < 1e-6) & (x >= 0)
    mid = (x >= 1e-6) & ~big
    y[big] = 1 / np.sqrt(x[big])
    y[small] = 1 / x[small]
    if mid.any():
        xm = x[mid]
        ym = 0.5 + 1 / xm
        for _ in range(51):
            tri = special.polygamma(1, ym)
            dif = tri * (1 - tri / xm) / special.polygamma(2, ym)
            ym = ym + dif
            if np.max(-dif / ym) < 1e-8:
                break
        y[mid] = ym
    return y


def fit_f_dist(x, df1, covariate=None):
    """Moment estimation of a scaled F prior, like ``limma::fitFDist`` (limma 3.54).

    Returns ``(scale, df2)``; ``scale`` is a vector when ``covariate`` is given (trend fitted by
    least squares on a natural-spline basis with ``1 + (n>=3) + (n>=6) + (n>=30)`` df, capped at
    the number of unique covariate values).
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    df1 = np.broadcast_to(np.asarray(df1, dtype=float), x.shape)
    if n == 0:
        return np.nan, np.nan
    if n == 1:
        return x.copy(), 0.0
    ok = np.isfinite(df1) & (df1 > 1e-15) & np.isfinite(x) & (x > -1e-15)
    nok = int(ok.sum())
    if nok == 1:
        return x[ok], 0.0
    if covariate is not None:
        covariate = np.asarray(covariate, dtype=float)
        if covariate.shape != x.shape or not np.isfinite(covariate).all():
            raise InputError("covariate must be finite and of the same length as x", where="fit_f_dist")
    if not ok.all():
        if covariate is not None:
            raise InputError("variances must be finite and non-negative when a covariate is used", where="fit_f_dist")
        x, df1 = x[ok], df1[ok]
    if covariate is not None:
        splinedf = 1 + (nok >= 3) + (nok >= 6) + (nok >= 30)
        splinedf = min(splinedf, np.unique(covariate).size)
        if splinedf < 2:
            s, d = fit_f_dist(x, df1)
            return np.full(n, s), d
    x = np.maximum(x, 0)
    m = np.median(x)
    if m == 0:
        m = 1.0
    x = np.maximum(x, 1e-5 * m)
    z = np.log(x)
    e = z - special.digamma(df1 / 2) + np.log(df1 / 2)
    if covariate is None:
        emean = e.mean()
        evar = np.sum((e - emean) ** 2) / (nok - 1)
    else:
        B = ns_basis(covariate, splinedf, intercept=True)
        coef, *_ = np.linalg.lstsq(B, e, rcond=None)
        emean = B @ coef
        rank = np.linalg.matrix_rank(B)
        evar = np.sum((e - emean) ** 2) / (nok - rank)
    evar = evar - np.mean(special.polygamma(1, df1 / 2))
    if evar > 0:
        df2 = 2 * trigamma_inverse(evar)[0]
        s20 = np.exp(emean + special.digamma(df2 / 2) - np.log(df2 / 2))
    else:
        df2 = np.inf
        s20 = np.mean(x) if covariate is None else np.exp(emean)
    return s20, df2


def squeeze_var(var, df, covariate=None):
    """Empirical Bayes posterior variances, like ``limma::squeezeVar`` (non-robust).

    Returns ``(var_post, var_prior, df_prior)``.
    """
    var = np.asarray(var, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), var.shape)
    if var.size == 1:
        return var.copy(), var.copy(), 0.0
    var_prior, df_prior = fit_f_dist(var, df, covariate=covariate)
    if np.isfinite(df_prior):
        var_post = (df * var + df_prior * var_prior) / (df + df_prior)
    else:
        var_post = np.broadcast_to(var_prior, var.shape).astype(float).copy()
    return var_post, var_prior, df_prior


def _tmixture_vector(tstat, stdev_unscaled, df, proportion, v0_lim):
    ngenes = tstat.size
    ntarget = int(np.ceil(proportion / 2 * ngenes))
    if ntarget < 1:
        return np.nan
    p = max(ntarget / ngenes, proportion)
    tstat = np.abs(tstat)
    df = np.asarray(df, dtype=float).copy()
    max_df = df.max()
    lower = df < max_df
    if lower.any():
        tail = stats.t.logsf(tstat[lower], df[lower])
        tstat = tstat.copy()
        tstat[lower] = stats.t.isf(np.exp(tail), max_df)
    o = np.argsort(-tstat, kind="stable")[:ntarget]
    tstat = tstat[o]
    v1 = stdev_unscaled[o] ** 2
    r = np.arange(1, ntarget + 1)
    p0 = 2 * stats.t.sf(tstat, max_df)
    ptarget = ((r - 0.5) / ngenes - (1 - p) * p0) / p
    v0 = np.zeros(ntarget)
    pos = ptarget > p0
    if pos.any():
        qtarget = stats.t.isf(ptarget[pos] / 2, max_df)
        v0[pos] = v1[pos] * ((tstat[pos] / qtarget) ** 2 - 1)
    if v0_lim is not None:
        v0 = np.minimum(np.maximum(v0, v0_lim[0]), v0_lim[1])
    return float(np.mean(v0))


def ebayes(
    fit: LimmaFit, trend: bool = False, robust: bool = False, proportion: float = 0.01, stdev_coef_lim=(0.1, 4.0)
) -> LimmaFit:
    """Empirical Bayes moderation, like ``limma::eBayes`` (limma 3.54); returns ``fit`` updated.

    Adds ``s2_prior``, ``df_prior``, ``s2_post``, moderated ``t``, ``df_total`` (capped at the
    pooled residual df), two-sided ``p_value`` and the log-odds ``lods`` (B statistic; the prior
    variance of non-zero coefficients from limma's t-mixture estimate with ``proportion`` and
    ``stdev_coef_lim``). ``trend=True`` lets the prior variance follow ``AveExpr`` (limma-trend).
    ``robust=True`` (fitFDistRobustly) is not implemented.
    """
    if robust:
        raise NotImplementedError("robust=True (fitFDistRobustly) is not implemented")
    covariate = fit.amean if trend else None
    s2_post, s2_prior, df_prior = squeeze_var(fit.sigma**2, fit.df_residual, covariate=covariate)
    t = fit.coefficients / fit.stdev_unscaled / np.sqrt(s2_post)[:, None]
    df_total = np.minimum(fit.df_residual + df_prior, np.sum(fit.df_residual))
    p_value = 2 * stats.t.sf(np.abs(t), df_total[:, None])
    # B statistic
    var_prior_lim = np.asarray(stdev_coef_lim, dtype=float) ** 2 / np.median(s2_prior)
    var_prior = np.array(
        [
            _tmixture_vector(t[:, j], fit.stdev_unscaled[:, j], df_total, proportion, var_prior_lim)
            for j in range(t.shape[1])
        ]
    )
    if np.isnan(var_prior).any():
        var_prior[np.isnan(var_prior)] = 1 / np.median(s2_prior)
    su2 = fit.stdev_unscaled**2
    r = (su2 + var_prior[None, :]) / su2
    t2 = t**2
    dft = df_total[:, None]
    if np.isinf(df_prior) or df_prior > 1e6:
        kernel = t2 * (1 - 1 / r) / 2
    else:
        kernel = (1 + dft) / 2 * np.log((t2 + dft) / (t2 / r + dft))
    lods = np.log(proportion / (1 - proportion)) - np.log(r) / 2 + kernel
    fit.df_prior = df_prior
    fit.s2_prior = s2_prior
    fit.s2_post = s2_post
    fit.t = t
    fit.df_total = df_total
    fit.p_value = p_value
    fit.lods = lods
    fit.var_prior = var_prior
    return fit


def p_adjust_bh(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, like ``p.adjust(p, "BH")`` (NaN kept as NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if n == 0:
        return out
    o = np.argsort(-q, kind="stable")
    i = np.arange(n, 0, -1)
    adj = np.minimum(1.0, np.minimum.accumulate(n / i * q[o]))
    res = np.empty(n)
    res[o] = adj
    out[ok] = res
    return out


def top_table(fit: LimmaFit, coef=-1, sort_by: str = "none") -> pd.DataFrame:
    """Per-gene table for one coefficient, like ``limma::topTable(number=Inf)``.

    Columns: logFC, AveExpr, t, P.Value, adj.P.Val (BH over all genes), B. ``sort_by`` is
    ``"none"`` (input gene order), ``"B"``, ``"P"`` or ``"t"`` (absolute t, decreasing).
    """
    if fit.t is None:
        raise InputError("fit has no moderated statistics; run ebayes() first", where="top_table")
    j = fit.coef_index(coef)
    tab = pd.DataFrame(
        {
            "logFC": fit.coefficients[:, j],
            "AveExpr": fit.amean,
            "t": fit.t[:, j],
            "P.Value": fit.p_value[:, j],
            "adj.P.Val": p_adjust_bh(fit.p_value[:, j]),
            "B": fit.lods[:, j],
        },
        index=fit.genes,
    )
    if sort_by == "none":
        return tab
    if sort_by == "B":
        o = np.argsort(-tab["B"].to_numpy(), kind="stable")
    elif sort_by == "P":
        o = np.argsort(tab["P.Value"].to_numpy(), kind="stable")
    elif sort_by == "t":
        o = np.argsort(-np.abs(tab["t"].to_numpy()), kind="stable")
    else:
        raise InputError(f"unknown sort_by {sort_by!r}; use none, B, P or t", where="top_table")
    return tab.iloc[o]
