"""Differential expression CR vs NR: one entry point for limma-voom, limma-trend and DESeq2.

Model: ``~ [covariate +] response`` with an intercept and ``NR`` as the reference level, so
``logFC`` is always CR - NR. Every method returns a table with the same schema, indexed by gene
in input order:

=============  =================================================================================
logFC          log2 fold change CR - NR (DESeq2: MLE ``log2FoldChange``, no shrinkage)
AveExpr        limma: mean log2-CPM (voom E / the log-expression); DESeq2: ``log2(baseMean)``
stat           limma moderated t; DESeq2 Wald statistic
P.Value        nominal two-sided p-value
adj.P.Val      Benjamini-Hochberg (DESeq2: its ``padj``, NaN where independent filtering drops
               a gene)
B              limma only: log-odds of differential expression
baseMean,      DESeq2 only
lfcSE
=============  =================================================================================

Genes: with ``filter=True`` (default) genes are kept by ``edgeR::filterByExpr(design)``, which
always removes genes with zero counts in every sample. With ``filter=False`` only those all-zero
genes are dropped (they carry no information and break the variance prior); the number dropped
is reported in ``table.attrs["n_zero_genes_dropped"]``. Bad input raises
:class:`helpers.engine.errors.InputError`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.methods.edger import calc_norm_factors, cpm, filter_by_expr
from helpers.engine.errors import InputError
from helpers.methods.limma import ebayes, lm_fit, top_table, voom

__all__ = ["METHODS", "make_design", "run_de", "run_de_logexpr", "call_degs", "deg_counts"]

METHODS = ("limma-voom", "limma-trend", "deseq2")
RESPONSE_COEF = "response"
LIMMA_COLUMNS = ["logFC", "AveExpr", "stat", "P.Value", "adj.P.Val", "B"]


# --------------------------------------------------------------------------------------------
# input checks and design
# --------------------------------------------------------------------------------------------
def _check_samples(samples: pd.DataFrame, sample_ids, covariate, cr, nr, what: str) -> pd.DataFrame:
    """Return ``samples`` aligned to ``sample_ids`` after validating classes and covariate."""
    if not isinstance(samples, pd.DataFrame):
        raise InputError("samples must be a DataFrame indexed by sample_id", where="samples")
    if "response" not in samples.columns:
        raise InputError("missing column 'response'", where="samples")
    if samples.index.has_duplicates:
        dup = samples.index[samples.index.duplicated()][0]
        raise InputError(f"duplicated sample id {dup!r}", where="samples")
    ids = pd.Index(sample_ids)
    if ids.has_duplicates:
        raise InputError(f"duplicated sample column {ids[ids.duplicated()][0]!r}", where=what)
    missing = [s for s in ids if s not in samples.index]
    if missing:
        raise InputError(f"{len(missing)} sample(s) not in the sample sheet, e.g. {missing[0]!r}", where=f"{what} columns")
    id_set = set(ids)
    extra = [s for s in samples.index if s not in id_set]
    if extra:
        raise InputError(f"{len(extra)} sample(s) of the sample sheet not in the data, e.g. {extra[0]!r}", where="samples")
    s = samples.loc[ids]
    resp = s["response"]
    if resp.isna().any():
        raise InputError(f"missing response for sample {resp.index[resp.isna()][0]!r}", where="samples: response")
    bad = sorted(set(resp.astype(str)) - {cr, nr})
    if bad:
        raise InputError(f"unexpected response value(s) {bad}; expected {cr!r} or {nr!r}", where="samples: response")
    n_cr = int((resp.astype(str) == cr).sum())
    n_nr = int((resp.astype(str) == nr).sum())
    if n_cr == 0 or n_nr == 0:
        raise InputError(f"only one class present ({cr}: {n_cr}, {nr}: {n_nr}); need both", where="samples: response")
    if min(n_cr, n_nr) < 2:
        raise InputError(f"fewer than 2 samples in a class ({cr}: {n_cr}, {nr}: {n_nr})", where="samples: response")
    if covariate is not None:
        if covariate not in s.columns:
            raise InputError(f"missing covariate column {covariate!r}", where="samples")
        if s[covariate].isna().any():
            raise InputError(f"missing value for sample {s.index[s[covariate].isna()][0]!r}", where=f"samples: {covariate}")
    return s


def make_design(samples: pd.DataFrame, covariate: str | None = None, cr: str = "CR", nr: str = "NR") -> pd.DataFrame:
    """Design matrix ``~ [covariate +] response``: intercept, covariate dummies, then response.

    The covariate is categorical with treatment coding (first sorted level is the reference);
    the last column ``response`` is 1 for ``cr`` and 0 for ``nr``. Raises InputError if the
    covariate is confounded with response (design not of full rank).
    """
    cols = {"(Intercept)": np.ones(len(samples))}
    if covariate is not None:
        values = samples[covariate].astype(str)
        levels = sorted(values.unique())
        for lev in levels[1:]:
            cols[f"{covariate}{lev}"] = (values == lev).to_numpy(dtype=float)
    cols[RESPONSE_COEF] = (samples["response"].astype(str) == cr).to_numpy(dtype=float)
    X = pd.DataFrame(cols, index=samples.index)
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        raise InputError(f"covariate {covariate!r} is confounded with response (design not of full rank)", where="samples")
    if X.shape[0] <= X.shape[1]:
        raise InputError("no residual degrees of freedom: too few samples for the design", where="samples")
    return X


def _check_table(df: pd.DataFrame, what: str, value: str) -> np.ndarray:
    """Shared checks of a genes x samples table (``what`` names it in messages, ``value`` names
    one entry): a DataFrame, >= 2 genes, unique genes and samples, numeric, finite."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} must be a DataFrame (genes x samples)", where=what)
    if df.shape[0] < 2:
        raise InputError(f"need at least 2 genes, got {df.shape[0]}", where=what)
    if df.index.has_duplicates:
        raise InputError(f"duplicated gene {df.index[df.index.duplicated()][0]!r}", where=what)
    if df.columns.has_duplicates:
        raise InputError(f"duplicated sample column {df.columns[df.columns.duplicated()][0]!r}", where=what)
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise InputError("non-numeric values", where=f"{what}: column {non_numeric[0]!r}")
    y = df.to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        g, c = np.argwhere(bad)[0]
        raise InputError(f"missing or infinite {value}", where=f"{what}: row {df.index[g]!r}, column {df.columns[c]!r}")
    return y


def _check_counts(counts: pd.DataFrame, integer: bool) -> np.ndarray:
    y = _check_table(counts, "counts", "count")
    if (y < 0).any():
        g, s = np.argwhere(y < 0)[0]
        raise InputError("negative count", where=f"counts: row {counts.index[g]!r}, column {counts.columns[s]!r}")
    if integer and (y != np.round(y)).any():
        g, s = np.argwhere(y != np.round(y))[0]
        raise InputError("non-integer count (DESeq2 needs integers)", where=f"counts: row {counts.index[g]!r}, column {counts.columns[s]!r}")
    lib = y.sum(axis=0)
    if (lib == 0).any():
        raise InputError("all-zero library (sample with no counts)", where=f"counts: column {counts.columns[np.argmax(lib == 0)]!r}")
    return y


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def run_de(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    method: str = "limma-voom",
    covariate: str | None = None,
    cr: str = "CR",
    nr: str = "NR",
    filter: bool = True,
) -> pd.DataFrame:
    """Differential expression CR vs NR on a genes x samples count table.

    ``method``: ``"limma-voom"`` (TMM + voom + lmFit + eBayes), ``"limma-trend"`` (TMM log-CPM
    with prior count 2 + lmFit + eBayes(trend=TRUE)) or ``"deseq2"`` (pydeseq2 Wald test).
    ``samples`` is indexed by sample id, has ``response`` (values ``cr``/``nr``) and, if given,
    the ``covariate`` column; it must list exactly the samples of ``counts`` (any order).
    Returns the common schema described in the module docstring, genes in input order;
    ``attrs`` carries ``method``, ``n_genes_input``, ``n_genes_tested``,
    ``n_zero_genes_dropped`` and, for limma, ``df_prior`` and ``s2_prior_median``.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}", where="method")
    y = _check_counts(counts, integer=(method == "deseq2"))
    s = _check_samples(samples, counts.columns, covariate, cr, nr, what="counts")
    X = make_design(s, covariate, cr, nr)
    nonzero = y.sum(axis=1) > 0
    if filter:
        keep = filter_by_expr(y, design=X.to_numpy())
    else:
        keep = nonzero
    if keep.sum() < 2:
        raise InputError(f"only {int(keep.sum())} gene(s) left after filtering", where="counts")
    kept = counts.loc[keep]
    yk = y[keep]
    attrs = {
        "method": method,
        "covariate": covariate,
        "n_genes_input": int(y.shape[0]),
        "n_genes_tested": int(keep.sum()),
        "n_zero_genes_dropped": int((~nonzero).sum()),
        "filter": "filterByExpr" if filter else "none",
    }
    if method == "deseq2":
        from helpers.methods.pydeseq2 import run_deseq2

        res = run_deseq2(kept, s, covariate=covariate, cr=cr, nr=nr)
        with np.errstate(divide="ignore"):
            ave = np.log2(res["baseMean"].to_numpy())
        out = pd.DataFrame(
            {
                "logFC": res["log2FoldChange"],
                "AveExpr": ave,
                "stat": res["stat"],
                "P.Value": res["pvalue"],
                "adj.P.Val": res["padj"],
                "baseMean": res["baseMean"],
                "lfcSE": res["lfcSE"],
            },
            index=kept.index,
        )
    else:
        nf = calc_norm_factors(yk)
        eff_lib = yk.sum(axis=0) * nf
        if method == "limma-voom":
            v = voom(kept, X.to_numpy(), lib_size=eff_lib)
            fit = lm_fit(v.E, X, weights=v.weights)
            fit = ebayes(fit, trend=False)
        else:
            logcpm = pd.DataFrame(cpm(yk, eff_lib, log=True, prior_count=2), index=kept.index, columns=kept.columns)
            fit = ebayes(lm_fit(logcpm, X), trend=True)
        out = _limma_table(fit)
        attrs.update(_limma_attrs(fit))
    out.index.name = counts.index.name or "gene"
    out.attrs.update(attrs)
    return out


def _limma_table(fit) -> pd.DataFrame:
    tab = top_table(fit, coef=RESPONSE_COEF, sort_by="none").rename(columns={"t": "stat"})
    return tab[LIMMA_COLUMNS]


def _limma_attrs(fit) -> dict:
    return {"df_prior": float(fit.df_prior), "s2_prior_median": float(np.median(fit.s2_prior))}


def run_de_logexpr(
    logexpr: pd.DataFrame,
    samples: pd.DataFrame,
    covariate: str | None = None,
    cr: str = "CR",
    nr: str = "NR",
    trend: bool = True,
) -> pd.DataFrame:
    """limma (``trend=True``: limma-trend) on a genes x samples log-expression table, no filtering.

    Same checks and output schema as :func:`run_de` (``AveExpr`` = row mean of ``logexpr``).
    Values must be finite; a sample whose values are all identical is rejected.
    """
    E = _check_table(logexpr, "logexpr", "value")
    const = np.ptp(E, axis=0) == 0
    if const.any():
        raise InputError("constant sample (all values identical)", where=f"logexpr: column {logexpr.columns[np.argmax(const)]!r}")
    s = _check_samples(samples, logexpr.columns, covariate, cr, nr, what="logexpr")
    X = make_design(s, covariate, cr, nr)
    fit = ebayes(lm_fit(logexpr, X), trend=trend)
    out = _limma_table(fit)
    out.index.name = logexpr.index.name or "gene"
    out.attrs.update(
        {
            "method": "limma-trend" if trend else "limma",
            "covariate": covariate,
            "n_genes_input": int(E.shape[0]),
            "n_genes_tested": int(E.shape[0]),
            "n_zero_genes_dropped": 0,
            "filter": "none",
            **_limma_attrs(fit),
        }
    )
    return out


# --------------------------------------------------------------------------------------------
# DEG calls
# --------------------------------------------------------------------------------------------
def call_degs(table: pd.DataFrame, p_max: float = 0.01, lfc_min: float = float(np.log2(1.5)), use_fdr: bool = False) -> pd.DataFrame:
    """Copy of ``table`` with a ``direction`` column: ``up`` / ``down`` / ``ns``.

    A gene is DE when its p-value (``adj.P.Val`` if ``use_fdr`` else ``P.Value``) is ``<= p_max``
    and ``|logFC| >= lfc_min`` (the paper's and the R reference's rule); ``up`` means higher in
    CR. Missing p-values count as not significant.
    """
    col = "adj.P.Val" if use_fdr else "P.Value"
    for c in (col, "logFC"):
        if c not in table.columns:
            raise InputError(f"missing column {c!r}", where="DE table")
    p = table[col].to_numpy(dtype=float)
    lfc = table["logFC"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        sig = (p <= p_max) & (np.abs(lfc) >= lfc_min)
    direction = np.where(sig & (lfc > 0), "up", np.where(sig & (lfc < 0), "down", "ns"))
    out = table.copy()
    out["direction"] = pd.Categorical(direction, categories=["up", "down", "ns"])
    return out


def deg_counts(table: pd.DataFrame, p_max: float = 0.01, lfc_min: float = float(np.log2(1.5)), use_fdr: bool = False) -> dict:
    """``{"n_de", "n_up", "n_down", "n_tested"}`` for a DE table (uses ``direction`` if present)."""
    if "direction" not in table.columns:
        table = call_degs(table, p_max=p_max, lfc_min=lfc_min, use_fdr=use_fdr)
    d = table["direction"].astype(str)
    n_up, n_down = int((d == "up").sum()), int((d == "down").sum())
    return {"n_de": n_up + n_down, "n_up": n_up, "n_down": n_down, "n_tested": int(len(table))}
