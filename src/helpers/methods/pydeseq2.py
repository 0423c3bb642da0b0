"""DESeq2 Wald test through pydeseq2 (0.5.x), quiet and deterministic.

The design is ``~ [covariate +] response`` with ``NR`` as the reference level, so
``log2FoldChange`` is CR - NR. Size factors use DESeq2's median-of-ratios; when every gene has a
zero count (no gene has a finite geometric mean) they fall back to ``"poscounts"``, as DESeq2 users
must do by hand in R.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError

__all__ = ["run_deseq2", "size_factor_type"]

RESULT_COLUMNS = ["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]


def size_factor_type(counts: pd.DataFrame) -> str:
    """``"ratio"`` if at least one gene is positive in every sample, else ``"poscounts"``."""
    return "ratio" if bool((counts.to_numpy() > 0).all(axis=1).any()) else "poscounts"


def run_deseq2(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    covariate: str | None = None,
    cr: str = "CR",
    nr: str = "NR",
    size_factors: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """DESeq2 Wald test of ``response`` (``cr`` vs ``nr``) with pydeseq2, one CPU, no output.

    ``counts`` is genes x samples (integers); ``samples`` is indexed by sample id in the same
    order and has a ``response`` column (and ``covariate`` if given, treated as categorical).
    ``size_factors`` is ``"ratio"``, ``"poscounts"`` or None (automatic, see
    :func:`size_factor_type`). Returns a gene-indexed DataFrame with baseMean, log2FoldChange,
    lfcSE, stat, pvalue, padj (NaN where independent filtering or Cook's outliers removed a
    gene), in the input gene order. Inputs are assumed validated (see :func:`helpers.analysis.de.run_de`).
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    if list(counts.columns) != list(samples.index):
        raise InputError("counts columns and sample ids differ", where="run_deseq2")
    if size_factors is None:
        size_factors = size_factor_type(counts)
    meta = pd.DataFrame(index=pd.Index([str(s) for s in samples.index], name="sample"))
    meta["response"] = pd.Categorical(samples["response"].astype(str).to_numpy(), categories=[nr, cr])
    design = "~response"
    if covariate is not None:
        meta["covar"] = pd.Categorical(samples[covariate].astype(str).to_numpy())
        design = "~covar + response"
    X = pd.DataFrame(
        np.asarray(counts.to_numpy(), dtype=np.int64).T,
        index=meta.index,
        columns=[str(g) for g in counts.index],
    )
    inference = DefaultInference(n_cpus=1)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.getLogger("pydeseq2").setLevel(logging.ERROR)
        dds = DeseqDataSet(
            counts=X,
            metadata=meta,
            design=design,
            size_factors_fit_type=size_factors,
            refit_cooks=True,
            inference=inference,
            quiet=True,
        )
        dds.deseq2()
        stat = DeseqStats(dds, contrast=["response", cr, nr], alpha=alpha, inference=inference, quiet=True)
        stat.summary()
    res = stat.results_df.loc[:, RESULT_COLUMNS].copy()
    res.index = counts.index
    res.index.name = counts.index.name
    return res
