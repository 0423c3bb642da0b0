"""PCA of samples on log-expression and batch diagnostics in numbers. This is the unscaled
reading (``pca_scale: false`` of chapters 02 and 04); the paper's scaled call is
:mod:`helpers.methods.factominer_pca`, the choice between them
:func:`helpers.analysis.structure.sample_pca`, the figure :func:`helpers.viz.figures_pca.pca_ellipses`.

:func:`pca` matches R's ``prcomp(t(E), center = TRUE, scale. = FALSE)``: scores are ``x`` and the
variance ratio is ``sdev^2 / sum(sdev^2)`` (over all components), up to the sign of each
component, which we fix so that each loading vector's largest-magnitude entry is positive.

ComBat-seq batch correction is not implemented here (out of scope: no cheap, tested Python port;
the diagnostics below quantify whether it would be needed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from helpers.engine.errors import InputError


def log_cpm(counts: pd.DataFrame, prior_count: float = 2.0, norm_factors=None) -> pd.DataFrame:
    """edgeR's ``cpm(y, log = TRUE, prior.count)`` on a DataFrame (effective library sizes
    L_j = colsum * norm factor); the arithmetic is :func:`helpers.methods.edger.cpm`."""
    from helpers.methods.edger import cpm

    x = counts.to_numpy(dtype=float)
    lib = x.sum(axis=0)
    if norm_factors is not None:
        lib = lib * np.asarray(
            pd.Series(norm_factors).reindex(counts.columns)
            if isinstance(norm_factors, (pd.Series, dict))
            else norm_factors,
            dtype=float,
        )
    if np.any(lib <= 0):
        j = int(np.flatnonzero(lib <= 0)[0])
        raise InputError("library size is zero", path="counts", where=f"column {counts.columns[j]!r}")
    return pd.DataFrame(
        cpm(x, lib_size=lib, log=True, prior_count=prior_count), index=counts.index, columns=counts.columns
    )


def pca(
    log_expr: pd.DataFrame, n_components: int = 5, center: bool = True, scale: bool = False
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Principal components of the samples of a genes x samples log-expression table.

    Genes are centred (and scaled to unit variance if ``scale``; zero-variance genes are then
    dropped). Returns (scores: samples x PC1..PCk, variance ratio: Series PC1..PCk as a share of
    the total variance, loadings: genes x PC1..PCk).
    """
    X = log_expr.to_numpy(dtype=float).T  # samples x genes
    if not np.all(np.isfinite(X)):
        raise InputError("non-finite values in the expression table", path="pca input")
    genes = log_expr.index
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    if scale:
        sd = X.std(axis=0, ddof=1)
        keep = sd > 0
        X, genes, sd = X[:, keep], genes[keep], sd[keep]
        X = X / sd
    n, p = X.shape
    k = int(min(n_components, min(n, p)))
    U, S, Vt, total_ss = leading_svd(X, k)
    # sign: largest |loading| positive in each component (deterministic across BLAS builds)
    idx = np.argmax(np.abs(Vt), axis=1)
    signs = np.sign(Vt[np.arange(Vt.shape[0]), idx])
    signs[signs == 0] = 1
    U, Vt = U * signs, Vt * signs[:, None]
    var = S**2 / max(n - 1, 1)
    total = var.sum() if total_ss is None else total_ss / max(n - 1, 1)
    names = [f"PC{i + 1}" for i in range(k)]
    scores = pd.DataFrame(U[:, :k] * S[:k], index=log_expr.columns, columns=names)
    ratio = pd.Series(var[:k] / total if total > 0 else np.zeros(k), index=names, name="var_explained")
    loadings = pd.DataFrame(Vt[:k].T, index=genes, columns=names)
    return scores, ratio, loadings


#: from this many samples on (with more genes than samples), :func:`leading_svd` works on the
#: samples' n x n Gram matrix; below it the full thin SVD is cheap and stays the reference path
GRAM_MIN_SAMPLES = 100


def leading_svd(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """The first ``k`` singular triplets of an n x p matrix and its total sum of squares:
    (U n x k', S k', Vt k' x p, sum of all squared singular values), k' >= k. From the full thin
    SVD, k' = min(n, p) and the sum is None: S holds every singular value and callers sum them
    as they always did (same floats as before this function existed).

    Below :data:`GRAM_MIN_SAMPLES` rows (or when p < n) this is ``numpy.linalg.svd``. For many
    samples the full SVD of a 1,000 x 15,000 matrix computes 1,000 components to show five:
    there the eigen-decomposition of the Gram matrix ``X X'`` (n x n, one BLAS product) gives
    U and S^2, and ``Vt = U' X / S`` the loadings; the sum of squares is the trace. Squaring
    costs accuracy only for components far below the first (relative error about
    ``eps * S_1^2 / gap``); when the k-th eigenvalue is below ``1e-8`` of the first the full SVD
    is used instead. Signs are the caller's (each caller fixes them by the loadings)."""
    n, p = X.shape
    if n < GRAM_MIN_SAMPLES or p < n or k < 1:
        U, S, Vt = np.linalg.svd(X, full_matrices=False)
        return U, S, Vt, None
    gram = X @ X.T
    lam, vec = np.linalg.eigh(gram)
    lam, vec = lam[::-1][:k], vec[:, ::-1][:, :k]
    if not lam[k - 1] > 1e-8 * lam[0]:
        U, S, Vt = np.linalg.svd(X, full_matrices=False)
        return U, S, Vt, None
    S = np.sqrt(lam)
    Vt = (vec.T @ X) / S[:, None]
    return vec, S, Vt, float(np.trace(gram))


def _anova_r2(y: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """One-way ANOVA of y on groups: (R^2 = SS_between / SS_total, F, p)."""
    levels = pd.unique(groups)
    if len(levels) < 2 or len(y) <= len(levels):
        return np.nan, np.nan, np.nan
    grand = y.mean()
    ss_tot = float(((y - grand) ** 2).sum())
    ss_b = float(sum((groups == g).sum() * (y[groups == g].mean() - grand) ** 2 for g in levels))
    if ss_tot == 0:
        return np.nan, np.nan, np.nan
    df_b, df_w = len(levels) - 1, len(y) - len(levels)
    ss_w = ss_tot - ss_b
    F = (ss_b / df_b) / (ss_w / df_w) if ss_w > 0 else np.inf
    p = float(stats.f.sf(F, df_b, df_w)) if np.isfinite(F) else 0.0
    return ss_b / ss_tot, F, p


def _silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    levels, counts = np.unique(labels, return_counts=True)
    if len(levels) < 2 or len(levels) >= len(labels):
        return np.nan
    return float(silhouette_score(points, labels, metric="euclidean"))


def batch_diagnostics(
    scores: pd.DataFrame, samples: pd.DataFrame, factors=("cohort", "response"), n_pcs: int = 2
) -> pd.DataFrame:
    """How much of the leading PCs each factor explains, in numbers.

    For each factor (a sample-sheet column): per PC, R^2 of a one-way ANOVA of the PC scores on the
    factor and its p-value; ``r2_pooled`` = the factor's share of the PC1..PCn variance (between-group
    sum of squares summed over the PCs / total sum of squares summed over them); ``silhouette`` =
    mean silhouette width of the samples grouped by the factor in PC1..PCn space (Euclidean; near 0
    or negative: no clustering by that factor; NaN if a factor has one level).
    """
    pcs = list(scores.columns[:n_pcs])
    samples = samples.loc[scores.index]
    rows = []
    for f in factors:
        if f not in samples.columns:
            raise InputError(f"column {f!r} not in the sample sheet", path="samples")
        g = samples[f].astype(str).to_numpy()
        row = {"factor": f, "n_levels": int(len(pd.unique(g)))}
        ssb_sum = sst_sum = 0.0
        for pc in pcs:
            y = scores[pc].to_numpy(dtype=float)
            r2, F, p = _anova_r2(y, g)
            row[f"r2_{pc}"] = r2
            row[f"p_{pc}"] = p
            sst = float(((y - y.mean()) ** 2).sum())
            sst_sum += sst
            ssb_sum += (r2 * sst) if np.isfinite(r2) else np.nan
        row["r2_pooled"] = ssb_sum / sst_sum if sst_sum > 0 else np.nan
        row["silhouette"] = _silhouette(scores[pcs].to_numpy(dtype=float), g)
        rows.append(row)
    return pd.DataFrame(rows).set_index("factor")
