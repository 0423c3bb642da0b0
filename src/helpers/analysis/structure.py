"""The structure of the samples (Fig. 1B, 2B, 2C): the PCA of the samples as the paper computed
it or unscaled, what scaling changes in the batch diagnostics, the z-scored DEG matrix, the
hierarchical clustering of samples and genes behind the heatmap, and how a cut of the sample tree
matches response. The verdicts ("no batch effect", "separates CR from NR") are rules of
:mod:`helpers.analysis.claims`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from helpers.analysis.expression import zscore_rows
from helpers.engine.errors import InputError
from helpers.methods import factominer_pca, pca

#: how each reading of the PCA is computed (shown on the pages)
PCA_METHODS = {
    True: "FactoMineR PCA(scale.unit = TRUE): every gene centred and scaled to unit variance",
    False: "prcomp(center = TRUE, scale. = FALSE): every gene centred, not scaled",
}


def sample_pca(expr: pd.DataFrame, n_components: int = 5, scale: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """PCA of the samples of a genes x samples log-expression table: (scores samples x PC1..PCk,
    share of the total variance per component).

    ``scale=True`` is the paper's call, FactoMineR's ``PCA(t(data))`` with its default
    ``scale.unit = TRUE`` (:func:`helpers.methods.factominer_pca.pca_scaled`, every gene weighs the
    same); ``scale=False`` is R's unscaled ``prcomp`` (:func:`helpers.methods.pca.pca`, genes weigh
    by their variance). Both are golden-tested against R.
    """
    n_components = min(int(n_components), expr.shape[1], expr.shape[0])
    if scale:
        scores, share = factominer_pca.pca_scaled(expr, n_components=n_components, scale=True)
    else:
        scores, share, _ = pca.pca(expr, n_components=n_components)
    return scores, share.rename("variance_ratio")


def scaling_comparison(
    expr: pd.DataFrame, samples: pd.DataFrame, factors=("cohort", "response"), n_components: int = 5, n_pcs: int = 2
) -> pd.DataFrame:
    """The batch diagnostics of :func:`helpers.methods.pca.batch_diagnostics` under both readings
    of the PCA, one row per (reading, factor): ``pca`` ("scaled"/"unscaled"), ``factor``,
    ``n_levels``, ``r2_pooled``, ``silhouette``, and the PC1/PC2 shares of variance (percent) of
    that reading."""
    rows = []
    for scale in (True, False):
        scores, share = sample_pca(expr, n_components=n_components, scale=scale)
        diag = pca.batch_diagnostics(scores, samples, factors=factors, n_pcs=n_pcs)
        for f in factors:
            rows.append(
                {
                    "pca": "scaled" if scale else "unscaled",
                    "factor": f,
                    "n_levels": int(diag.loc[f, "n_levels"]),
                    "r2_pooled": float(diag.loc[f, "r2_pooled"]),
                    "silhouette": float(diag.loc[f, "silhouette"]),
                    "pc1_percent": 100 * float(share.iloc[0]),
                    "pc2_percent": 100 * float(share.iloc[1]),
                }
            )
    return pd.DataFrame(rows)


def shown(value, digits: int = 3, n_levels: int = 2, one_level: str = "not measured (one level)"):
    """A statistic as a page shows and stores it: rounded to ``digits``; the text ``one_level``
    when its factor has a single level (a grouping that cannot be measured); "not measured (no
    spread)" when it is undefined for another reason (e.g. every sample its own group). Never "nan"."""
    if int(n_levels) < 2:
        return one_level
    value = float(value)
    if not np.isfinite(value):
        return "not measured (no spread)"
    return round(value, digits)


def deg_matrix(de_table: pd.DataFrame, expr: pd.DataFrame) -> pd.DataFrame:
    """The DEGs of a DE table (``direction`` up/down) that ``expr`` holds, z-scored per gene,
    in the DE table's order."""
    if "direction" not in de_table.columns:
        raise InputError("missing column 'direction'", where="DE table")
    degs = [g for g in de_table.index[de_table["direction"].astype(str) != "ns"] if g in expr.index]
    return zscore_rows(expr.loc[degs])


def cluster_samples(z: pd.DataFrame, method: str = "average", metric: str = "correlation"):
    """Hierarchical clustering (scipy linkage matrix) of the columns (samples) of a genes x samples matrix."""
    return linkage(pdist(z.T.to_numpy(), metric=metric), method=method)


def cluster_genes(z: pd.DataFrame, method: str = "average", metric: str = "euclidean"):
    """Hierarchical clustering of the rows (genes); None when there are fewer than three genes
    (nothing to order)."""
    return linkage(pdist(z.to_numpy(), metric=metric), method=method) if len(z) > 2 else None


def cluster_agreement(Z, labels, k: int = 2) -> dict:
    """Cut the tree ``Z`` into ``k`` clusters and compare with ``labels``: ``clusters`` (one per
    sample, 1..k), adjusted Rand index ``ari``, ``purity`` (share of samples in their cluster's
    majority label) and the cross ``table`` (clusters x labels)."""
    labels = np.asarray(labels).astype(str)
    cl = fcluster(Z, t=k, criterion="maxclust")
    tab = pd.crosstab(cl, labels)
    purity = float(tab.max(axis=1).sum() / len(labels))
    return {"ari": float(adjusted_rand_score(labels, cl)), "purity": purity, "clusters": cl, "table": tab}


def majority_share(labels) -> float:
    """The share of the most common label: the purity of a "cut" that puts everyone together."""
    labels = pd.Series(np.asarray(labels).astype(str))
    if labels.empty:
        raise InputError("no labels", where="majority_share")
    return float(labels.value_counts(normalize=True).max())
