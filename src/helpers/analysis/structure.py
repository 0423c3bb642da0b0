"""The structure of the DEGs (Fig. 2B, 2C): the z-scored DEG matrix, the hierarchical
clustering of samples and genes behind the heatmap, and how a cut of the sample tree matches
response. The verdicts ("separates CR from NR") are rules of :mod:`helpers.analysis.claims`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from helpers.analysis.expression import zscore_rows
from helpers.engine.errors import InputError


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
