"""PCA as FactoMineR 2.7 computes it with ``PCA(t(data), scale.unit = TRUE)``, the call in the
paper's public code for Fig. 1B and 2C (drawn there with factoextra's ``fviz_pca_ind``).

FactoMineR centres each gene and, with ``scale.unit = TRUE``, divides it by its standard deviation
computed with divisor ``n`` (uniform row weights ``1/n``), not ``n - 1`` as R's ``sd``. The
individuals' coordinates are the projections of the standardised samples on the eigenvectors of
that gene-by-gene correlation matrix; the eigenvalues are the variances along them (divisor n),
and with every gene scaled they sum to the number of genes with non-zero variance. Signs are
arbitrary in any PCA; :func:`pca_scaled` fixes each component so that its largest-magnitude
loading is positive, and the golden test compares up to sign. Genes with zero variance are
dropped (FactoMineR would divide by zero).

Golden data: ``tests/data/reference/r_outputs/factominer/`` (made by
``tests/data/reference/scripts/factominer_pca.R`` on ``counts_nobatch/voom_E.tsv.gz``).

Also here: the group ellipses that ``fviz_pca_ind(..., addEllipses = TRUE)`` draws, a normal
confidence ellipse of each group's points (``ellipse.type = "norm"``, level 0.95, as ggplot2's
``stat_ellipse``: the t-scaled covariance ellipse with radius sqrt(2 F(0.95; 2, n - 1))).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from helpers.engine.errors import InputError


def pca_scaled(expr: pd.DataFrame, n_components: int = 5, scale: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Sample scores (samples x components) and the share of variance of each component.

    ``expr`` is genes x samples (log scale). ``scale=False`` gives the centred, unscaled PCA
    (FactoMineR's ``scale.unit = FALSE``, equal to ``prcomp``'s up to the n vs n - 1 divisor of
    the variances, which does not change the shares).
    """
    X = np.asarray(expr, dtype=float).T  # samples x genes
    if X.ndim != 2 or X.shape[0] < 3:
        raise InputError("PCA needs a genes x samples table with at least 3 samples", where="PCA")
    if not np.isfinite(X).all():
        raise InputError("PCA input has missing or infinite values", where="PCA")
    X = X - X.mean(axis=0)
    sd = np.sqrt((X**2).mean(axis=0))  # divisor n, as FactoMineR's weighted SD
    keep = sd > 1e-12
    X = X[:, keep]
    if scale:
        X = X / sd[keep]
    n = X.shape[0]
    u, s, vt = np.linalg.svd(X / np.sqrt(n), full_matrices=False)
    eig = s**2
    k = min(n_components, len(s))
    for j in range(k):  # sign convention: the largest-magnitude loading is positive
        i = np.argmax(np.abs(vt[j]))
        if vt[j, i] < 0:
            vt[j] *= -1
            u[:, j] *= -1
    scores = u[:, :k] * s[:k] * np.sqrt(n)
    cols = [f"PC{j + 1}" for j in range(k)]
    share = pd.Series(eig[:k] / eig.sum(), index=cols, name="variance_ratio")
    return pd.DataFrame(scores, index=list(expr.columns), columns=cols), share


def group_ellipse(points: np.ndarray, level: float = 0.95, n_points: int = 100) -> np.ndarray:
    """Outline (n_points x 2) of the normal confidence ellipse of 2-D ``points``, as ggplot2's
    ``stat_ellipse(type = "norm")`` draws it for factoextra; None for fewer than 3 points."""
    pts = np.asarray(points, dtype=float)
    if pts.shape[0] < 3:
        return None
    centre = pts.mean(axis=0)
    cov = np.cov(pts, rowvar=False)
    radius = np.sqrt(2 * stats.f.ppf(level, 2, pts.shape[0] - 1))
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0, None)
    t = np.linspace(0, 2 * np.pi, n_points)
    circle = np.column_stack([np.cos(t), np.sin(t)])
    return centre + radius * circle @ (vecs * np.sqrt(vals)).T
