"""Log-scale expression for the analyses that need it (PCA, heatmaps, GSVA, PAM).

For counts the default is edgeR's log-CPM (TMM-normalised library sizes, prior count 2) of the
genes kept by ``filterByExpr``; ``voom`` gives voom's E instead. A log-expression cohort (arrays)
is returned unchanged. The PAM and the published model use the same scale, so the Table 1
centroids (log2 units) can be compared with the cohort's values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError
from helpers.methods.edger import calc_norm_factors, cpm, filter_by_expr

SCALES = ("logcpm", "voom", "log2_counts")


def filtered_counts(counts: pd.DataFrame, group) -> pd.DataFrame:
    """The genes ``edgeR::filterByExpr`` keeps (group = response labels)."""
    keep = filter_by_expr(counts.to_numpy(), group=np.asarray(group))
    if not keep.any():
        raise InputError("no genes left after filterByExpr (are the counts very shallow?)", where="counts")
    return counts.loc[keep]


def log_expression(cohort, scale: str = "logcpm", filter: bool = True, response_col: str = "response") -> pd.DataFrame:
    """Genes x samples log2 expression of a cohort (see the module docstring)."""
    if scale not in SCALES:
        raise InputError(f"unknown expression scale {scale!r}; use one of {', '.join(SCALES)}", where="scale")
    if getattr(cohort, "kind", "counts") == "logexpr":
        return cohort.counts.astype(float)
    counts = cohort.counts
    if filter:
        counts = filtered_counts(counts, cohort.samples.loc[counts.columns, response_col])
    y = counts.to_numpy(dtype=float)
    lib = y.sum(axis=0)
    if scale == "log2_counts":
        return pd.DataFrame(np.log2(y + 1.0), index=counts.index, columns=counts.columns)
    eff = lib * calc_norm_factors(y)
    if scale == "logcpm":
        return pd.DataFrame(cpm(y, lib_size=eff, log=True, prior_count=2), index=counts.index, columns=counts.columns)
    from helpers.analysis.de import make_design
    from helpers.methods.limma import voom

    design = make_design(cohort.samples.loc[counts.columns])
    v = voom(counts, design, lib_size=eff)
    return pd.DataFrame(np.asarray(v.E), index=counts.index, columns=counts.columns)


def zscore_rows(x: pd.DataFrame) -> pd.DataFrame:
    """Centre and scale each gene (row) to mean 0, SD 1 (constant rows become 0)."""
    m = x.mean(axis=1)
    s = x.std(axis=1, ddof=1).replace(0, np.nan)
    return x.sub(m, axis=0).div(s, axis=0).fillna(0.0)
