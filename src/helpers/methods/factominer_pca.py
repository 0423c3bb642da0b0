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
``tests/data/reference/scripts/factominer_pca.R`` on ``counts_nobatch/voom_E.tsv.gz``; the
unscaled ``scale.unit = FALSE`` scores and the ellipses by ``scripts/factominer_ellipse.R``).

Also here: the group ellipses that ``fviz_pca_ind(res, habillage = group, addEllipses = TRUE)``
draws. factoextra's ``fviz`` defaults are ``ellipse.type = "norm"`` and ``ellipse.level = 0.95``,
which ggpubr passes to ggplot2's ``stat_ellipse(type = "norm", level = 0.95)`` (ggplot2 3.4
``calculate_ellipse``): a *concentration* ellipse of the group's points, not a confidence ellipse of
the group mean (that would be ``ellipse.type = "confidence"``). Its shape is the group's sample
covariance (``cov.wt``, divisor n - 1), its radius ``sqrt(2 F(0.95; 2, n - 1))``, its outline
``centre + radius * (cos t, sin t) R`` with R the upper Cholesky factor of the covariance and t on
``segments + 1 = 52`` equally spaced angles; a group of fewer than 4 points has no ellipse
(ggplot2: "Too few points to calculate an ellipse"). factoextra is not in Debian, so the golden
``ellipse_norm95.tsv`` calls ``stat_ellipse`` on FactoMineR's scores directly
(``tests/data/reference/scripts/factominer_ellipse.R``); :func:`group_ellipse` reproduces its points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from helpers.engine.errors import InputError
from helpers.methods.pca import leading_svd


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
    k = min(n_components, min(X.shape))
    u, s, vt, total = leading_svd(X / np.sqrt(n), k)  # the first k only (see its docstring)
    eig = s**2
    for j in range(k):  # sign convention: the largest-magnitude loading is positive
        i = np.argmax(np.abs(vt[j]))
        if vt[j, i] < 0:
            vt[j] *= -1
            u[:, j] *= -1
    scores = u[:, :k] * s[:k] * np.sqrt(n)
    cols = [f"PC{j + 1}" for j in range(k)]
    share = pd.Series(eig[:k] / (eig.sum() if total is None else total), index=cols, name="variance_ratio")
    return pd.DataFrame(scores, index=list(expr.columns), columns=cols), share


def group_ellipse(points, level: float = 0.95, segments: int = 51) -> np.ndarray | None:
    """Outline ((segments + 1) x 2, first point = last) of the normal concentration ellipse of 2-D
    ``points``, point for point as ggplot2's ``stat_ellipse(type = "norm", level, segments)`` draws
    it for factoextra. None when ggplot2 draws nothing: fewer than 4 points, or points on a line
    (a singular covariance, whose Cholesky factor does not exist)."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"an ellipse needs n x 2 points, got shape {pts.shape}", where="group_ellipse")
    if not 0 < level < 1:
        raise InputError(f"ellipse level must be between 0 and 1, got {level}", where="group_ellipse")
    if not np.isfinite(pts).all():
        raise InputError("ellipse points have missing or infinite values", where="group_ellipse")
    n = pts.shape[0]
    if n - 1 < 3:
        return None
    cov = np.cov(pts, rowvar=False)
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    radius = np.sqrt(2 * stats.f.ppf(level, 2, n - 1))
    angles = np.arange(segments + 1) * 2 * np.pi / segments
    circle = np.column_stack([np.cos(angles), np.sin(angles)])
    return pts.mean(axis=0) + radius * circle @ lower.T


def group_ellipses(scores: pd.DataFrame, groups, pcs=("PC1", "PC2"), level: float = 0.95) -> dict:
    """:func:`group_ellipse` of each group's points in the plane of ``pcs``: level -> outline
    (None where ggplot2 would draw none), in the order the levels first appear."""
    groups = pd.Series(np.asarray(groups).astype(str), index=scores.index)
    pts = scores.loc[:, list(pcs)]
    return {g: group_ellipse(pts[groups == g].to_numpy(), level=level) for g in pd.unique(groups)}


def ellipse_frame(ellipses: dict, pcs=("PC1", "PC2")) -> pd.DataFrame:
    """The outlines of :func:`group_ellipses` as one table (the figure's source data): ``group``,
    ``point`` (1..), and the two coordinates; groups without an ellipse are left out."""
    parts = [
        pd.DataFrame({"group": g, "point": np.arange(1, len(r) + 1), pcs[0]: r[:, 0], pcs[1]: r[:, 1]})
        for g, r in ellipses.items()
        if r is not None
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["group", "point", *pcs])
