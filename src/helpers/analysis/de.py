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

from helpers.engine.errors import InputError
from helpers.methods.edger import calc_norm_factors, cpm, filter_by_expr
from helpers.methods.limma import ebayes, lm_fit, top_table, voom

__all__ = [
    "METHODS",
    "make_design",
    "run_de",
    "run_de_logexpr",
    "run_cohort_de",
    "de_tables",
    "call_degs",
    "deg_counts",
    "multiverse",
    "multiverse_count",
    "method_overlap",
    "recovery",
    "recovery_table",
    "planted_truth",
]

METHODS = ("limma-voom", "limma-trend", "deseq2", "deseq2-pydeseq2")
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
        raise InputError(
            f"{len(missing)} sample(s) not in the sample sheet, e.g. {missing[0]!r}", where=f"{what} columns"
        )
    id_set = set(ids)
    extra = [s for s in samples.index if s not in id_set]
    if extra:
        raise InputError(
            f"{len(extra)} sample(s) of the sample sheet not in the data, e.g. {extra[0]!r}", where="samples"
        )
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
            raise InputError(
                f"missing value for sample {s.index[s[covariate].isna()][0]!r}", where=f"samples: {covariate}"
            )
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
        raise InputError(
            f"covariate {covariate!r} is confounded with response (design not of full rank)", where="samples"
        )
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
        raise InputError(
            "non-integer count (DESeq2 needs integers)",
            where=f"counts: row {counts.index[g]!r}, column {counts.columns[s]!r}",
        )
    lib = y.sum(axis=0)
    if (lib == 0).any():
        raise InputError(
            "all-zero library (sample with no counts)", where=f"counts: column {counts.columns[np.argmax(lib == 0)]!r}"
        )
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
    with prior count 2 + lmFit + eBayes(trend=TRUE)), ``"deseq2"`` (the project's port of R's
    DESeq2 1.38 Wald test, :mod:`helpers.methods.deseq2`) or ``"deseq2-pydeseq2"`` (the same test
    through pydeseq2 0.5, kept as a cross-check; about 15x slower and less close to R).
    ``samples`` is indexed by sample id, has ``response`` (values ``cr``/``nr``) and, if given,
    the ``covariate`` column; it must list exactly the samples of ``counts`` (any order).
    Returns the common schema described in the module docstring, genes in input order;
    ``attrs`` carries ``method``, ``n_genes_input``, ``n_genes_tested``,
    ``n_zero_genes_dropped`` and, for limma, ``df_prior`` and ``s2_prior_median``.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}", where="method")
    y = _check_counts(counts, integer=method.startswith("deseq2"))
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
    attrs = {
        "method": method,
        "covariate": covariate,
        "n_genes_input": int(y.shape[0]),
        "n_genes_tested": int(keep.sum()),
        "n_zero_genes_dropped": int((~nonzero).sum()),
        "filter": "filterByExpr" if filter else "none",
    }
    yk = None if method.startswith("deseq2") else y[keep]  # DESeq2 reads ``kept``
    del y  # a float copy of all counts: not kept alive through the fit
    if method.startswith("deseq2"):
        if method == "deseq2":
            from helpers.methods.deseq2 import DESeq2Error, run_deseq2

            try:
                res = run_deseq2(kept, s, covariate=covariate, cr=cr, nr=nr)
            except DESeq2Error as exc:
                raise InputError(f"DESeq2: {exc}", where="counts") from None
        else:
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
        raise InputError(
            "constant sample (all values identical)", where=f"logexpr: column {logexpr.columns[np.argmax(const)]!r}"
        )
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
def call_degs(
    table: pd.DataFrame, p_max: float = 0.01, lfc_min: float = float(np.log2(1.5)), use_fdr: bool = False
) -> pd.DataFrame:
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


def deg_counts(
    table: pd.DataFrame, p_max: float = 0.01, lfc_min: float = float(np.log2(1.5)), use_fdr: bool = False
) -> dict:
    """``{"n_de", "n_up", "n_down", "n_tested"}`` for a DE table (uses ``direction`` if present)."""
    if "direction" not in table.columns:
        table = call_degs(table, p_max=p_max, lfc_min=lfc_min, use_fdr=use_fdr)
    d = table["direction"].astype(str)
    n_up, n_down = int((d == "up").sum()), int((d == "down").sum())
    return {"n_de": n_up + n_down, "n_up": n_up, "n_down": n_down, "n_tested": int(len(table))}


# --------------------------------------------------------------------------------------------
# a cohort's DE, the multiverse of DE calls, and recovery of a planted truth
# --------------------------------------------------------------------------------------------
def run_cohort_de(
    cohort, method: str = "limma-voom", covariate: str | None = None, cr: str = "CR", nr: str = "NR"
) -> pd.DataFrame:
    """DE of a loaded cohort (:func:`helpers.data.cohort.load_cohort`): counts go to
    :func:`run_de` with ``method``; a log-expression cohort (arrays) to limma-trend
    (:func:`run_de_logexpr`), whatever ``method`` says (count models do not apply)."""
    if getattr(cohort, "kind", "counts") == "logexpr":
        return run_de_logexpr(cohort.counts, cohort.samples, covariate=covariate, cr=cr, nr=nr)
    return run_de(cohort.counts, cohort.samples, method=method, covariate=covariate, cr=cr, nr=nr)


def de_tables(
    cohort,
    method: str,
    others=(),
    covariate: str | None = None,
    cr: str = "CR",
    nr: str = "NR",
    first: pd.DataFrame | None = None,
) -> dict:
    """``{method: table}`` for the chosen method (``first`` if already computed) and, on a count
    cohort, for every method of ``others`` too (a log-expression cohort has one method only)."""
    tables = {method: first if first is not None else run_cohort_de(cohort, method, covariate, cr, nr)}
    if getattr(cohort, "kind", "counts") == "counts":
        for m in others:
            if m not in tables:
                tables[m] = run_cohort_de(cohort, m, covariate, cr, nr)
    return tables


def multiverse(tables: dict, fc_values, p_max: float, paper: dict | None = None) -> pd.DataFrame:
    """DEG counts for every DE method (``tables``: name -> DE table) x fold-change cut-off x
    nominal p vs FDR. ``paper`` (n_de, n_up, n_down) is added as a last row for comparison."""
    rows = []
    for method, t in tables.items():
        for fc in fc_values:
            for use_fdr in (False, True):
                c = deg_counts(call_degs(t, p_max=p_max, lfc_min=float(np.log2(fc)), use_fdr=use_fdr))
                rows.append(
                    {
                        "method": method,
                        "fold_change_min": fc,
                        "p_type": "FDR" if use_fdr else "nominal p",
                        "p_max": p_max,
                        "n_de": c["n_de"],
                        "n_up": c["n_up"],
                        "n_down": c["n_down"],
                        "n_tested": c["n_tested"],
                    }
                )
    out = pd.DataFrame(rows)
    if paper:
        out = pd.concat(
            [
                out,
                pd.DataFrame(
                    [
                        {
                            "method": "paper (Shao et al. 2022)",
                            "fold_change_min": 1.5,
                            "p_type": "nominal p",
                            "p_max": 0.01,
                            **paper,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    return out


def multiverse_count(mv: pd.DataFrame, method: str, fc: float, p_type: str = "nominal p") -> int | None:
    """The DEG count of one cell of a :func:`multiverse` table (None if that cell was not run)."""
    sel = mv[(mv["method"] == method) & np.isclose(mv["fold_change_min"].astype(float), fc) & (mv["p_type"] == p_type)]
    return int(sel["n_de"].iloc[0]) if len(sel) else None


def method_overlap(tables: dict, p_max: float, lfc_min: float, use_fdr: bool = False) -> pd.DataFrame:
    """Jaccard index of the DEG sets of every pair of methods (``tables``: name -> DE table)
    under one DEG rule; two empty sets count as 0 (nothing shared)."""
    called = {
        m: set(call_degs(t, p_max=p_max, lfc_min=lfc_min, use_fdr=use_fdr).query("direction != 'ns'").index)
        for m, t in tables.items()
    }
    names = list(called)
    return pd.DataFrame(
        [[len(called[a] & called[b]) / max(1, len(called[a] | called[b])) for b in names] for a in names],
        index=pd.Index(names, name="method"),
        columns=names,
    )


def recovery(table: pd.DataFrame, truth: pd.DataFrame, min_abs_lfc: float = 0.0) -> dict:
    """Precision and recall of a DEG call (a table with ``direction``) against a planted truth
    (``gene``, ``log2fc_cr_vs_nr``; genes with ``|log2fc| > min_abs_lfc`` are planted; the
    direction must match for a true positive)."""
    t = truth.set_index("gene")["log2fc_cr_vs_nr"].reindex(table.index).fillna(0.0)
    planted = np.sign(t.where(t.abs() > min_abs_lfc, 0.0))
    called = table["direction"].astype(str).map({"up": 1, "down": -1, "ns": 0}).astype(int)
    tp = int(((called != 0) & (called == planted)).sum())
    n_called = int((called != 0).sum())
    n_planted = int((planted != 0).sum())
    return {
        "true_positives": tp,
        "n_called": n_called,
        "n_planted_tested": n_planted,
        "precision": tp / n_called if n_called else float("nan"),
        "recall": tp / n_planted if n_planted else float("nan"),
    }


def recovery_table(
    tables: dict, truth: pd.DataFrame, p_max: float, lfc_min: float, use_fdr: bool = False
) -> pd.DataFrame:
    """:func:`recovery` of every method's DEG call under one rule, one row per method."""
    rec = {m: recovery(call_degs(t, p_max=p_max, lfc_min=lfc_min, use_fdr=use_fdr), truth) for m, t in tables.items()}
    cols = ["n_called", "true_positives", "n_planted_tested", "precision", "recall"]
    out = pd.DataFrame(rec).T[cols].rename_axis("method")
    return out.astype({c: int for c in cols[:3]}).astype({"precision": float, "recall": float})


def planted_truth(cohort) -> pd.DataFrame | None:
    """The twin's planted per-gene effects (``gene``, ``log2fc_cr_vs_nr``), or None for real data."""
    truth = getattr(cohort, "truth", None)
    return truth if truth is not None and "log2fc_cr_vs_nr" in truth.columns else None
