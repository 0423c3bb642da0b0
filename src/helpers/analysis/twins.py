"""Claims over many twins: draw K twins of one design, measure on each what the paper's claims
need, and report per claim the share of twins that reproduce it.

Every twin ``i`` is :func:`helpers.data.twin.simulate_cohort` with ``seed + i``; the
measurements go through the package, the same code the chapters call, on the same scales, but
only what the claims need and each step once per twin:

- one ``filterByExpr`` and one TMM per twin (:func:`prepare`): the DE and the log-CPM of the
  classifier share them, as chapters 03 and 08 compute them separately from the same counts
  (a test holds both paths to :func:`helpers.analysis.de.run_de` and
  :func:`helpers.analysis.expression.log_expression`);
- DE by limma-voom (the paper's rule: p <= ``p_max``, |FC| >= ``fc_min``), :func:`deg_measures`;
  with the planted truth, the recall of the planted DE genes (:func:`deg_recall`);
- the classifier as chapter 08 runs it (:func:`pam_measures`): pamr's fit, leave-one-out CV over
  the threshold grid, the largest threshold with the fewest errors; kept genes, overlap with
  the paper's 14, LOOCV accuracy, sensitivity and specificity; optionally nested LOOCV (the
  threshold chosen inside every fold; the expensive part, about n pamr cross-validations);
- Table 1's frozen model applied to the twin (:func:`published_model_measures`);
- the PCA and DEG-structure verdicts of chapters 02 and 04, with their rules of
  :mod:`helpers.analysis.claims` (:func:`structure_measures`), and the down/up ratio rule.

GO, GSEA and GSVA are not recomputed here (each needs a gene-set scan and, for GSEA, a
permutation null per twin: minutes for K = 20); the chapter says so.

:func:`claim_shares` judges each claim on every twin with the scorecard's own rule
(:func:`helpers.analysis.scorecard.judge`) and the claim's threshold from
``data/paper/claims.yml``; :func:`power_view` repeats the DEG recall and PAM overlap at several
``n_scale``.

Speed, without changing a row: the twins of a process run in one pool of worker processes
(:func:`worker_pool`: forked from a server that imported the package once, reused by every call),
and what does not depend on the DEG rule (``p_max``, ``fc_min``, ``use_fdr``) is kept in the cache
of :mod:`helpers.engine.memo`, keyed by its inputs' content: limma's statistics
(:func:`_de_rule_inputs`), the filter and TMM (:func:`_prepare`), the classifier with its nested
LOOCV and Table 1's model (:func:`_classifier_measures`). A re-run after ``fc_min=2`` repeats
only the simulation, the log-CPM, the DEG calls, the recall and the structure verdicts.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.analysis.de import LIMMA_COLUMNS, RESPONSE_COEF, call_degs, make_design
from helpers.engine.errors import InputError
from helpers.methods import pam
from helpers.methods.edger import calc_norm_factors, cpm, filter_by_expr
from helpers.methods.limma import ebayes, lm_fit, top_table, voom

__all__ = [
    "Prepared",
    "prepare",
    "deg_table",
    "deg_measures",
    "deg_recall",
    "pam_measures",
    "published_model_measures",
    "structure_measures",
    "chapter_settings",
    "run_twins",
    "claim_values",
    "claim_shares",
    "power_view",
    "MEASURED_CLAIMS",
    "signature_genes",
]


def signature_genes() -> list[str]:
    """The paper's 14 genes (Table 1, ``data/paper/table1.tsv``) in its order."""
    from helpers.analysis.model import published_model

    return list(published_model().genes)


# ------------------------------------------------------------------------------------ one twin


@dataclass(frozen=True)
class Prepared:
    """A twin after the one filter and TMM: kept counts, effective library sizes, the design
    ``~ response`` and the log-CPM (prior count 2) of the kept genes."""

    counts: pd.DataFrame
    eff_lib: np.ndarray
    design: pd.DataFrame
    logcpm: pd.DataFrame
    labels: np.ndarray


def prepare(counts: pd.DataFrame, samples: pd.DataFrame, cr: str = "CR", nr: str = "NR") -> Prepared:
    """``filterByExpr`` (by the design ``~ response``, as chapter 03; for two groups it keeps
    the same genes as chapter 08's filter by group) and TMM, once; then the log-CPM."""
    return _prepare(counts, samples, cr, nr)


def _filter_tmm(y: np.ndarray, design: pd.DataFrame) -> dict:
    """The genes ``filterByExpr`` keeps and the kept genes' effective library sizes (TMM)."""
    keep = filter_by_expr(y, design=design.to_numpy())
    if keep.sum() < 2:
        raise InputError(f"only {int(keep.sum())} gene(s) left after filterByExpr", where="counts")
    yk = y[keep]
    return {"keep": np.asarray(keep, dtype=bool), "eff_lib": yk.sum(axis=0) * calc_norm_factors(yk)}


def _prepare(counts: pd.DataFrame, samples: pd.DataFrame, cr: str, nr: str, key: dict | None = None) -> Prepared:
    """:func:`prepare`; with a ``key`` (:func:`_twin_key`) the filter and TMM come from the cache
    (step ``twin_prepare``) when the counts and the labels are unchanged."""
    s = samples.loc[counts.columns]
    design = make_design(s, None, cr, nr)
    y = counts.to_numpy(dtype=float)
    if key is None:
        ft = _filter_tmm(y, design)
    else:
        from helpers.engine import memo

        ft = memo.cached("twin_prepare", key, lambda: _filter_tmm(y, design))
    keep, eff = ft["keep"], ft["eff_lib"]
    kept = counts.loc[keep]
    lc = pd.DataFrame(cpm(y[keep], lib_size=eff, log=True, prior_count=2), index=kept.index, columns=kept.columns)
    return Prepared(kept, eff, design, lc, s["response"].astype(str).to_numpy())


def _limma_table(prep: Prepared) -> pd.DataFrame:
    """limma-voom on the prepared twin (chapter 03's default engine), before any DEG rule."""
    v = voom(prep.counts, prep.design.to_numpy(), lib_size=prep.eff_lib)
    fit = ebayes(lm_fit(v.E, prep.design, weights=v.weights), trend=False)
    return top_table(fit, coef=RESPONSE_COEF, sort_by="none").rename(columns={"t": "stat"})[LIMMA_COLUMNS]


def deg_table(prep: Prepared, p_max: float = 0.01, fc_min: float = 1.5, use_fdr: bool = False) -> pd.DataFrame:
    """limma-voom on the prepared twin (chapter 03's default engine) with the DEG calls."""
    return call_degs(_limma_table(prep), p_max=p_max, lfc_min=float(np.log2(fc_min)), use_fdr=use_fdr)


def deg_measures(table: pd.DataFrame) -> dict:
    """Counts of DEGs up and down in CR (``n_up``, ``n_down``, ``n_deg``) from a called table."""
    d = table["direction"].astype(str)
    n_up, n_down = int((d == "up").sum()), int((d == "down").sum())
    return {"n_up": n_up, "n_down": n_down, "n_deg": n_up + n_down}


def deg_recall(table: pd.DataFrame, truth: pd.DataFrame, fc_min: float = 1.5) -> dict:
    """Recall of the planted truth: of the genes planted with |log2 FC| >= log2(fc_min) (the genes
    the DEG rule could call), the share called in the planted direction (genes removed by the
    filter count as missed); and the share of called DEGs that were planted at all (precision)."""
    t = truth.set_index("gene")["log2fc_cr_vs_nr"] if "gene" in truth.columns else truth["log2fc_cr_vs_nr"]
    lfc = t.astype(float)
    planted = lfc[np.abs(lfc) >= np.log2(fc_min) - 1e-12]
    d = table["direction"].astype(str).reindex(planted.index).fillna("ns")
    hit = ((planted > 0) & (d == "up")) | ((planted < 0) & (d == "down"))
    called = table.index[table["direction"].astype(str) != "ns"]
    true_de = lfc.reindex(called).fillna(0.0) != 0
    return {
        "n_planted": int(len(planted)),
        "deg_recall": float(hit.mean()) if len(planted) else float("nan"),
        "deg_precision": float(true_de.mean()) if len(called) else float("nan"),
    }


def pam_measures(
    X: pd.DataFrame,
    labels,
    *,
    cr: str = "CR",
    nr: str = "NR",
    signature=None,
    n_threshold: int = 30,
    s0_percentile: float = 50.0,
    prior=None,
    nested: bool = False,
) -> dict:
    """Chapter 08's classifier on log-expression ``X`` (genes x samples): pamr fit, LOOCV over
    the grid, the largest threshold with the fewest errors (pamr's rule); the kept genes
    (``pam_n_genes``), how many are the paper's 14 (``pam_signature_overlap``), the LOOCV
    accuracy / sensitivity / specificity at that threshold as k and n, and, with ``nested``,
    the nested LOOCV accuracy."""
    y = np.asarray(labels).astype(str)
    sig = set(signature_genes() if signature is None else signature)
    fit = pam.train(X, y, n_threshold=n_threshold, s0_percentile=s0_percentile, prior=prior, classes=[cr, nr])
    cvres = pam.cv(X, y, fit)
    idx, thr = pam.choose_threshold(cvres)
    genes = pam.surviving_genes(fit, thr)
    pred = cvres.pred.iloc[:, idx].to_numpy().astype(str)
    perf = pam.performance(y, pred, positive=cr, negative=nr)
    out = {
        "pam_threshold": float(thr),
        "pam_n_genes": len(genes),
        "pam_signature_overlap": len(sig & set(genes)),
        "pam_s0": float(fit.s0),
    }
    for k in ("accuracy", "sensitivity", "specificity"):
        kk, nn = perf[f"{k}_text"].split("/")
        out[f"pam_loocv_{k}_k"] = int(kk)
        out[f"pam_loocv_{k}_n"] = int(nn)
    if nested:
        res = pam.nested_loocv(
            X, y, n_threshold=n_threshold, s0_percentile=s0_percentile, prior=prior, classes=[cr, nr]
        )
        out["nested_accuracy_k"] = int(res.n_correct)
        out["nested_accuracy_n"] = int(res.n)
    return out


def published_model_measures(X: pd.DataFrame, labels, cr: str = "CR", nr: str = "NR") -> dict:
    """Table 1's frozen model (:func:`helpers.analysis.model.published_model`, the cohort's class
    proportions as priors) scored on ``X``: correct calls overall and per class."""
    from helpers.analysis.model import published_model, score

    y = np.asarray(labels).astype(str)
    calls = score(published_model(), X)["call"].to_numpy().astype(str)
    perf = pam.performance(y, calls, positive=cr, negative=nr)
    out = {}
    for k, name in (
        ("accuracy", "published_model_accuracy"),
        ("sensitivity", "published_model_sensitivity"),
        ("specificity", "published_model_specificity"),
    ):
        kk, nn = perf[f"{k}_text"].split("/")
        out[f"{name}_k"] = int(kk)
        out[f"{name}_n"] = int(nn)
    return out


# ------------------------------------------------------------------------------------ structure claims


def structure_measures(X: pd.DataFrame, table: pd.DataFrame, samples: pd.DataFrame, rules: dict, seed: int) -> dict:
    """The PCA and DEG-structure verdicts (chapters 02 and 04) with their own rules of
    :mod:`helpers.analysis.claims`: no grouping by cohort or response on all genes (PC1-PC2), and
    the DEG heatmap's two-cluster cut and the DEG PCA separating CR from NR (label-permutation
    nulls seeded from ``seed``). Returns claim id -> :class:`helpers.analysis.claims.Verdict`."""
    from helpers.analysis import claims
    from helpers.analysis import structure as st
    from helpers.methods import pca as pc

    out = {}
    s = samples.loc[X.columns]
    # the chapters' own PCA reading (02's and 04's pca_scale; FactoMineR's scaled PCA by default)
    scores, _ = st.sample_pca(X, n_components=int(rules["n_components"]), scale=rules.get("pca_scale", True))
    diag = pc.batch_diagnostics(scores, s, factors=("cohort", "response"), n_pcs=2)
    out["no_batch_effect"] = claims.no_batch_effect(
        diag.loc["cohort", "r2_pooled"],
        diag.loc["cohort", "silhouette"],
        n_datasets=int(diag.loc["cohort", "n_levels"]),
        max_r2=rules["max_r2"],
        max_silhouette=rules["max_silhouette"],
    )
    out["no_response_separation_all_genes"] = claims.no_grouping(
        diag.loc["response", "r2_pooled"], diag.loc["response", "silhouette"], rules["max_r2"], rules["max_silhouette"]
    )
    z = st.deg_matrix(table, X)
    response = s.loc[z.columns, "response"].astype(str)
    if len(z) >= 2:
        Z = st.cluster_samples(z, method=rules["linkage_method"], metric=rules["distance"])
        agree = st.cluster_agreement(Z, response, k=2)
        out["heatmap_separates"] = claims.cluster_separation(
            agree["clusters"], response, n_perm=rules["n_perm"], alpha=rules["alpha"], seed=seed
        )
        dsc, _ = st.sample_pca(X.loc[z.index], n_components=min(5, len(z)), scale=rules.get("deg_pca_scale", True))
        out["deg_pca_separates"] = claims.pca_separation(
            dsc[["PC1", "PC2"]], response, n_perm=rules["n_perm"], alpha=rules["alpha"], seed=seed
        )
    else:
        params = {"n_perm": int(rules["n_perm"]), "alpha": rules["alpha"], "seed": int(seed)}
        out["heatmap_separates"] = out["deg_pca_separates"] = claims.not_measured("fewer than two DEGs", params)
    return out


def _record_verdicts(row: dict, verdicts: dict) -> None:
    """Per verdict: its value under the claim id and the claim's rule in words (the scorecard's
    template filled with the verdict's parameters; a seed reads as each twin's own)."""
    from helpers.analysis.scorecard import claim_by_id, rule_text

    for cid, v in verdicts.items():
        row[cid] = v.value
        params = dict(v.params)
        if "seed" in params:
            params["seed"] = "seed + i for twin i"
        row[f"{cid}_rule"] = rule_text(claim_by_id(cid, list(_claims())), params)


# ------------------------------------------------------------------------------------ the design and the rules


@functools.lru_cache(maxsize=4)
def _params(path: str, mtime_ns: int):
    """The validated parameter file, read once per content version."""
    from helpers.engine.config import Params

    return Params(path)


def chapter_settings(profile: str = "default", simulate: dict | None = None, **globals_) -> dict:
    """What the claims' chapters use, read from ``config/params.yml`` for ``profile``: the twin's
    design (``01_cohort.simulate``, with ``simulate`` merged over it), the DEG rule (globals
    ``p_max``, ``fc_min``, ``use_fdr``), the PCA and structure rules (02, 04), the down/up ratio
    level (03) and the classifier's settings (08). ``globals_`` (``cr``, ``nr``, ``p_max``,
    ``fc_min``, ``use_fdr``) replace the file's values: the calling chapter's own globals.
    ``--set`` values given to the other chapters do not reach here."""
    from helpers.data import twin
    from helpers.engine import paths

    P = _params(str(paths.CONFIG), paths.CONFIG.stat().st_mtime_ns)
    c01, c02, c03 = P.effective("01_cohort", profile), P.effective("02_pca", profile), P.effective("03_de", profile)
    c04, c08 = P.effective("04_deg_structure", profile), P.effective("08_pam", profile)
    design = twin.merge_params(twin.preset("default"), c01["simulate"])
    design = twin.merge_params(design, simulate or {})
    design["labels"] = [c01["cr_label"], c01["nr_label"]]
    unknown = sorted(set(globals_) - {"cr", "nr", "p_max", "fc_min", "use_fdr"})
    if unknown:
        raise InputError(f"unknown setting(s) {unknown}", where="chapter_settings")
    g = {
        "cr": c01["cr_label"],
        "nr": c01["nr_label"],
        "p_max": float(c03["p_max"]),
        "fc_min": float(c03["fc_min"]),
        "use_fdr": bool(c03["use_fdr"]),
        **globals_,
    }
    design["labels"] = [g["cr"], g["nr"]]
    return {
        "simulate": twin.check_params(design),
        "cr": g["cr"],
        "nr": g["nr"],
        "p_max": float(g["p_max"]),
        "fc_min": float(g["fc_min"]),
        "use_fdr": bool(g["use_fdr"]),
        "ratio_level": float(c03["ratio_level"]),
        "rules": {
            "n_components": int(c02["n_components"]),
            "max_r2": float(c02["max_r2"]),
            "max_silhouette": float(c02["max_silhouette"]),
            "pca_scale": bool(c02["pca_scale"]),
            "deg_pca_scale": bool(c04["pca_scale"]),
            "linkage_method": c04["linkage_method"],
            "distance": c04["distance"],
            "n_perm": int(c04["n_perm"]),
            "alpha": float(c04["alpha"]),
        },
        "pam": {
            "n_threshold": int(c08["n_threshold"]),
            "s0_percentile": float(c08["s0_percentile"]),
            "prior": None if c08["priors"] == "proportions" else [0.5, 0.5],
        },
    }


# ------------------------------------------------------------------------------------ many twins

#: the claims of data/paper/claims.yml measured on every twin (the others need GO / GSEA / GSVA scans)
MEASURED_CLAIMS = (
    "no_batch_effect",
    "no_response_separation_all_genes",
    "n_deg",
    "n_up",
    "n_down",
    "more_down_than_up",
    "heatmap_separates",
    "deg_pca_separates",
    "pam_n_genes",
    "pam_signature_overlap",
    "pam_loocv_accuracy",
    "pam_loocv_sensitivity",
    "pam_loocv_specificity",
    "published_model_accuracy",
)
#: what power_view measures
POWER_COLUMNS = (
    "n_samples",
    "n_up",
    "n_down",
    "n_planted",
    "deg_recall",
    "deg_precision",
    "pam_n_genes",
    "pam_signature_overlap",
    "pam_loocv_accuracy_k",
    "pam_loocv_accuracy_n",
)


@functools.lru_cache(maxsize=1)
def _universe_and_programs():
    from helpers.data import twin

    return tuple(twin.default_universe()), twin.load_programs()


@functools.lru_cache(maxsize=1)
def _claims() -> tuple:
    """data/paper/claims.yml, read once per process."""
    from helpers.analysis.scorecard import load_claims
    from helpers.engine import paths

    return tuple(load_claims(paths.PAPER / "claims.yml"))


def _paper_counts() -> tuple[int, int]:
    by_id = {c["id"]: c["published"] for c in _claims()}
    return int(by_id["n_up"]), int(by_id["n_down"])


WHAT = ("all", "power", "pam")


# ------------------------------------------------------------------------------------ the rule-free parts, cached

#: the limma-voom columns the DEG rule reads (all a twin's row needs of the table is its calls)
DE_RULE_INPUTS = ("logFC", "P.Value", "adj.P.Val")


def _twin_key(counts: pd.DataFrame, samples: pd.DataFrame, cr: str, nr: str) -> dict:
    """What every cached step of a twin depends on beyond its own settings: the raw counts (by
    content: the design, the seed and ``n_scale`` act through them), each sample's response and
    the class labels. The filter, TMM, log-CPM, limma and the classifier's inputs are computed
    from these by the package, whose source is in every key already.

    The counts' gene and sample names enter as one JSON string each, their values as one array:
    :func:`helpers.engine.memo.fingerprint` walks an object index label by label (two indexes of
    15,000 genes cost more than a twin's whole cache lookup otherwise)."""
    import json

    from helpers.engine import memo

    digest = memo.fingerprint(
        json.dumps([str(g) for g in counts.index]),
        json.dumps([str(c) for c in counts.columns]),
        [str(t) for t in counts.dtypes],
        counts.to_numpy(),
    )
    response = samples.loc[counts.columns, "response"].astype(str).tolist()
    return {"counts": digest, "response": response, "cr": cr, "nr": nr}


def _de_rule_inputs(prep: Prepared, key: dict) -> pd.DataFrame:
    """The twin's limma-voom statistics that the DEG rule reads (:data:`DE_RULE_INPUTS`), which
    do not depend on the rule (``p_max``, ``fc_min``, ``use_fdr``): kept in the cache
    (:mod:`helpers.engine.memo`, step ``twin_limma``) under the twin's ``key``
    (:func:`_twin_key`: limma's inputs, the kept counts, the library sizes and the design, are
    computed from it). Only these three columns are kept (about 1 MB a twin instead of 2 for
    the full table); :func:`deg_table` computes the full table."""
    from helpers.engine import memo

    return memo.cached("twin_limma", key, lambda: _limma_table(prep)[list(DE_RULE_INPUTS)])


def _table1_digest() -> str:
    """SHA-256 of ``data/paper/table1.tsv``: the paper's 14 genes and the frozen model come from it."""
    import hashlib

    from helpers.engine import paths

    return hashlib.sha256((paths.PAPER / "table1.tsv").read_bytes()).hexdigest()


def _classifier_measures(prep: Prepared, key: dict, settings: dict, nested: bool, published: bool) -> dict:
    """:func:`pam_measures` (with the nested LOOCV if ``nested``) and, if ``published``,
    :func:`published_model_measures` of a prepared twin. Neither depends on the DEG rule, so a
    re-run after ``fc_min=2`` takes them from the cache (steps ``twin_pam`` and
    ``twin_published_model``), keyed by everything they read: the twin (``key``,
    :func:`_twin_key`: the log-CPM and the labels are computed from it), Table 1's file (the 14
    genes, the frozen model), and for PAM its settings and ``nested``; the package source is in
    every key already."""
    from helpers.engine import memo

    cr, nr = settings["cr"], settings["nr"]
    X, y = prep.logcpm, prep.labels
    base = {**key, "table1": _table1_digest()}
    out = dict(
        memo.cached(
            "twin_pam",
            {**base, "pam": settings["pam"], "nested": bool(nested)},
            lambda: pam_measures(X, y, cr=cr, nr=nr, nested=bool(nested), **settings["pam"]),
        )
    )
    if published:
        out.update(memo.cached("twin_published_model", base, lambda: published_model_measures(X, y, cr=cr, nr=nr)))
    return out


# ------------------------------------------------------------------------------------ one twin in a worker


def _run_one(job: dict) -> dict:
    """One twin: simulate with ``job['seed']`` and measure (runs in a worker process).

    ``job['what']``: ``all`` (every measured claim), ``power`` (DEG counts and recall, the
    classifier) or ``pam`` (the classifier and Table 1's model, no DE). ``job['memo_env']``: the
    caller's cache settings (a worker's environment is the fork server's, fixed when it started)."""
    with _environment(job.get("memo_env")):
        return _measure(job)


def _measure(job: dict) -> dict:
    from helpers.analysis import claims
    from helpers.data import twin

    t0 = time.perf_counter()
    st, what = job["settings"], job["what"]
    universe, programs = _universe_and_programs()
    counts, samples, truth = twin.simulate_cohort(job["design"], list(universe), programs, seed=job["seed"])
    cr, nr = st["cr"], st["nr"]
    key = _twin_key(counts, samples, cr, nr)
    prep = _prepare(counts, samples, cr, nr, key)
    row = {
        "twin": job["twin"],
        "seed": job["seed"],
        "n_scale": float(job["design"]["n_scale"]),
        "n_samples": int(counts.shape[1]),
        "n_genes_tested": int(prep.counts.shape[0]),
        "s0_planted": float(truth.attrs.get("s0", float("nan"))),
    }
    if what in ("all", "power"):
        tab = call_degs(
            _de_rule_inputs(prep, key), p_max=st["p_max"], lfc_min=float(np.log2(st["fc_min"])), use_fdr=st["use_fdr"]
        )
        row.update(deg_measures(tab))
        row.update(deg_recall(tab, truth, fc_min=st["fc_min"]))
    row.update(_classifier_measures(prep, key, st, nested=job["nested"], published=what in ("all", "pam")))
    if what == "all":
        paper_up, paper_down = _paper_counts()
        verdicts = {
            "more_down_than_up": claims.down_up_ratio(
                row["n_up"], row["n_down"], paper_up, paper_down, st["ratio_level"]
            )
        }
        verdicts.update(structure_measures(prep.logcpm, tab, samples, st["rules"], seed=job["seed"]))
        _record_verdicts(row, verdicts)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_MEMO_ENV = ("HELPERS_CACHE", "HELPERS_CACHE_DIR")


def _set_environment(values: dict) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextlib.contextmanager
def _environment(values: dict | None):
    """``values`` (name -> value, None: unset) in ``os.environ`` inside; the old values after."""
    values = dict(values or {})
    old = {k: os.environ.get(k) for k in values}
    _set_environment(values)
    try:
        yield
    finally:
        _set_environment(old)


def _single_threaded_children():
    """Processes started inside get one BLAS/OpenMP thread each (n_jobs processes on n_jobs
    cores, not n_jobs x cores threads); the parent's environment is restored after."""
    return _environment(dict.fromkeys(_BLAS_THREADS, "1"))


def _memo_env() -> dict:
    """This process's cache settings, the folder resolved, for the workers to use."""
    from helpers.engine import memo

    return {"HELPERS_CACHE": os.environ.get("HELPERS_CACHE"), "HELPERS_CACHE_DIR": str(memo.cache_dir())}


# ------------------------------------------------------------------------------------ the worker pool

#: what the twin workers run, imported once by the fork server (every worker forks from it)
WORKER_MODULES = (
    "helpers.analysis.twins",
    "helpers.analysis.claims",
    "helpers.analysis.model",
    "helpers.analysis.scorecard",
    "helpers.analysis.structure",
    "helpers.data.twin",
    "helpers.engine.memo",
    "helpers.methods.pca",
)
_POOL: dict = {}


def _init_worker() -> None:
    """On Linux a worker dies with its parent, the fork server, which exits with the process
    that started it: a kernel killed mid-chapter leaves no twin computing on. A worker ignores
    SIGINT, which reaches the whole process group (a kernel's interrupt, and jupyter_client sends
    one before every shutdown): the caller's ``map`` gets the interrupt and cancels what is queued,
    and an idle worker stays quiet instead of printing a KeyboardInterrupt."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):
            pass


def worker_pool(n_jobs: int):
    """This process's one pool of ``n_jobs`` twin workers, reused by every :func:`run_twins` and
    :func:`power_view` call with that many (a chapter run starts it once; another ``n_jobs``
    replaces it; it is shut down at interpreter exit).

    Workers fork from a ``forkserver`` that imported :data:`WORKER_MODULES` once, instead of
    each spawned worker importing the package again (about 1.5 CPU-s a worker, a pool per call
    before). The server is started with one BLAS/OpenMP thread, which every worker inherits."""
    n_jobs = int(n_jobs)
    ex = _POOL.get("executor")
    if ex is not None and _POOL.get("n_jobs") == n_jobs and not getattr(ex, "_broken", False):
        return ex
    shutdown_pool()
    import atexit
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_MODULES))
    with _single_threaded_children():
        forkserver.ensure_running()  # a server already running keeps its environment and imports
    ex = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker)
    if not _POOL.get("atexit"):
        atexit.register(shutdown_pool)
    _POOL.update(executor=ex, n_jobs=n_jobs, atexit=True)
    return ex


def shutdown_pool() -> None:
    """Stop the worker pool, if one runs (the next parallel call starts another)."""
    ex = _POOL.pop("executor", None)
    _POOL.pop("n_jobs", None)
    if ex is not None:
        ex.shutdown(wait=True, cancel_futures=True)


def run_twins(
    settings: dict,
    n_twins: int,
    seed: int,
    *,
    n_scale: float | None = None,
    n_jobs: int = 1,
    nested_twins: int = 0,
    what: str = "all",
    first: int = 0,
) -> pd.DataFrame:
    """Twins ``first .. first + n_twins - 1`` of the design in ``settings`` (:func:`chapter_settings`),
    twin i drawn with ``seed + i``: one row per twin, in twin order.

    ``n_scale`` replaces the design's; ``nested_twins``: nested LOOCV on the first that many;
    ``what``: ``all`` (every claim of :data:`MEASURED_CLAIMS`), ``power`` (DEG recall and the
    classifier) or ``pam`` (the classifier and Table 1's model). ``n_jobs`` worker processes
    (:func:`worker_pool`; the rows do not depend on it). The parts that do not depend on the DEG
    rule come from the cache when their inputs are unchanged (:func:`_classifier_measures`,
    :func:`_de_rule_inputs`); the rows do not depend on that either."""
    if int(n_twins) < 1:
        raise InputError(f"n_twins must be >= 1, got {n_twins}", where="n_twins")
    if what not in WHAT:
        raise InputError(f"what must be one of {', '.join(WHAT)}, got {what!r}", where="what")
    return pd.DataFrame(_run_jobs(_twin_jobs(settings, n_twins, seed, n_scale, nested_twins, what, first), n_jobs))


def _twin_jobs(settings: dict, n_twins, seed, n_scale, nested_twins, what: str, first) -> list[dict]:
    design = copy.deepcopy(settings["simulate"])
    if n_scale is not None:
        design["n_scale"] = n_scale
    env = _memo_env()
    return [
        {
            "twin": i,
            "seed": int(seed) + i,
            "design": design,
            "settings": settings,
            "nested": i < int(first) + int(nested_twins),
            "what": what,
            "memo_env": env,
        }
        for i in range(int(first), int(first) + int(n_twins))
    ]


def _run_jobs(jobs: list[dict], n_jobs: int) -> list[dict]:
    """The rows of ``jobs``, in their order; in the pool with ``n_jobs > 1``, where the largest
    twins (``n_scale``) go first so that no worker is left with a large one at the end."""
    if int(n_jobs) < 1:
        raise InputError(f"n_jobs must be >= 1, got {n_jobs}", where="n_jobs")
    if int(n_jobs) == 1 or len(jobs) < 2:
        return [_run_one(j) for j in jobs]
    from concurrent.futures.process import BrokenProcessPool

    order = sorted(range(len(jobs)), key=lambda i: -float(jobs[i]["design"]["n_scale"]))  # stable
    try:
        done = list(worker_pool(int(n_jobs)).map(_run_one, [jobs[i] for i in order]))
    except BrokenProcessPool:
        shutdown_pool()  # a worker died: the next call starts a fresh pool
        raise
    rows = [None] * len(jobs)
    for i, r in zip(order, done, strict=True):
        rows[i] = r
    return rows


def _kn(row, prefix: str) -> str:
    return f"{int(row[prefix + '_k'])}/{int(row[prefix + '_n'])}"


def claim_values(row: dict | pd.Series) -> dict:
    """One twin's measured value per claim id, in the form the scorecard judges (counts as
    numbers, proportions as "k/n", verdicts as true/false or "not measured: ...")."""
    out = {}
    for cid in MEASURED_CLAIMS:
        if cid in ("pam_loocv_accuracy", "pam_loocv_sensitivity", "pam_loocv_specificity", "published_model_accuracy"):
            if f"{cid}_k" in row and not pd.isna(row[f"{cid}_k"]):
                out[cid] = _kn(row, cid)
        elif cid in row and not (isinstance(row[cid], float) and np.isnan(row[cid])):
            v = row[cid]
            out[cid] = (
                bool(v) if isinstance(v, (bool, np.bool_)) else (int(v) if isinstance(v, (int, np.integer)) else v)
            )
    return out


HOLDS = ("reproduced", "within tolerance", "same direction")


def share_margin(n_twins: int, share: float = 0.5, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95% interval of a share estimated on ``n_twins``
    twins (largest at ``share`` 0.5): how precisely the chapter's claim shares are known. It
    halves only with four times the twins, the reason the default count is modest."""
    if int(n_twins) < 1:
        raise InputError(f"n_twins must be >= 1, got {n_twins}", where="n_twins")
    if not 0.0 <= float(share) <= 1.0:
        raise InputError(f"share must be in [0, 1], got {share}", where="share")
    return float(z * math.sqrt(float(share) * (1.0 - float(share)) / int(n_twins)))


def claim_shares(rows: pd.DataFrame, claims: list[dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge every measured claim on every twin with the scorecard's rule
    (:func:`helpers.analysis.scorecard.judge`, thresholds from ``claims.yml``).

    Returns (per-twin statuses: twin x claim; per claim: statement, published, compare, the
    number of twins, the share *reproduced* exactly, the share that holds (reproduced, within
    tolerance or same direction) and the share not measured)."""
    from helpers.analysis.scorecard import judge, load_claims, rule_text
    from helpers.engine import paths

    claims = claims if claims is not None else load_claims(paths.PAPER / "claims.yml")
    by_id = {c["id"]: c for c in claims}
    status = {}
    for _, r in rows.iterrows():
        vals = claim_values(r)
        status[int(r["twin"])] = {cid: judge(by_id[cid], v) for cid, v in vals.items() if cid in by_id}
    st = pd.DataFrame.from_dict(status, orient="index")
    st.index.name = "twin"
    out = []
    for cid in [c for c in MEASURED_CLAIMS if c in st.columns]:
        c = by_id[cid]
        s = st[cid].astype(str)
        col = f"{cid}_rule"
        filled = rows[col].dropna() if col in rows.columns else pd.Series(dtype=object)
        out.append(
            {
                "id": cid,
                "item": c["item"],
                "statement": c["statement"],
                "published": c["published"],
                "rule": filled.iloc[0] if len(filled) else rule_text(c),
                "n_twins": int(s.size),
                "share_reproduced": float((s == "reproduced").mean()),
                "share_holds": float(s.isin(HOLDS).mean()),
                "share_not_measured": float((s == "not measured").mean()),
            }
        )
    return st, pd.DataFrame(out)


def power_view(
    settings: dict, scales, n_twins: int, seed: int, *, n_jobs: int = 1, reuse: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DEG recall and PAM's overlap with the 14 at each ``n_scale`` of ``scales`` (``n_twins``
    twins each, seeds ``seed + i``). Rows of ``reuse`` (a :func:`run_twins` table) at an
    ``n_scale`` are used instead of drawing again. Returns (per twin, per scale: samples, mean
    DEG recall, the share of twins where the overlap claim holds, mean overlap, mean LOOCV accuracy).
    The twins of every scale still to draw run in one batch (``n_jobs`` workers, rows as
    :func:`run_twins` gives them)."""
    from helpers.analysis.scorecard import claim_by_id, judge

    if int(n_twins) < 1:
        raise InputError(f"n_twins must be >= 1, got {n_twins}", where="n_twins")
    parts, todo = [], []
    for sc in scales:
        sc = float(sc)
        have = reuse[reuse["n_scale"] == sc].head(int(n_twins)) if reuse is not None else pd.DataFrame()
        if len(have) >= int(n_twins):
            parts.append(have[[c for c in ("twin", "seed", "n_scale", *POWER_COLUMNS) if c in have.columns]])
        else:  # every scale still to draw goes to the workers in one batch
            jobs = _twin_jobs(settings, n_twins, seed, sc, 0, "power", 0)
            parts.append(slice(len(todo), len(todo) + len(jobs)))
            todo += jobs
    rows = _run_jobs(todo, n_jobs)
    parts = [pd.DataFrame(rows[p]) if isinstance(p, slice) else p for p in parts]
    per = pd.concat(parts, ignore_index=True)
    claim = claim_by_id("pam_signature_overlap")
    per["overlap_holds"] = [judge(claim, int(v)) in HOLDS for v in per["pam_signature_overlap"]]
    per["pam_loocv_accuracy"] = per["pam_loocv_accuracy_k"] / per["pam_loocv_accuracy_n"]
    per["n_deg"] = per["n_up"] + per["n_down"]
    summ = (
        per.groupby("n_scale", sort=True)
        .agg(
            n_samples=("n_samples", "first"),
            n_twins=("seed", "size"),
            n_deg=("n_deg", "mean"),
            deg_recall=("deg_recall", "mean"),
            deg_precision=("deg_precision", "mean"),
            share_overlap_holds=("overlap_holds", "mean"),
            mean_overlap=("pam_signature_overlap", "mean"),
            mean_pam_genes=("pam_n_genes", "mean"),
            loocv_accuracy=("pam_loocv_accuracy", "mean"),
        )
        .reset_index()
    )
    return per, summ


# ------------------------------------------------------------------------------------ the design search

#: a twin "keeps the signature" when PAM's CV-chosen genes hold at least this many of the 14
MIN_OVERLAP = 12


def _design_value(design: dict, key: str):
    node = design
    parts = key.split(".")
    if parts[0] == "programs" and len(parts) == 2:  # one value for every programme
        vals = {v[parts[1]] for v in design["programs"].values()}
        return vals.pop() if len(vals) == 1 else None
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def search_summary(path=None, design: dict | None = None) -> pd.DataFrame:
    """The design search of ``scripts/search_twin.py`` (``data/twin/search.tsv``), one row per
    stage and setting: the setting's values, twins run, mean DEG counts up and down, the share
    of twins where PAM keeps >= :data:`MIN_OVERLAP` of the 14, the median genes kept, the mean
    LOOCV correct calls and the mean NR and CR errors. ``is_default``: every value of the
    setting is the design's (default: the twin's defaults)."""
    from helpers.data import twin
    from helpers.engine import paths

    path = paths.DATA / "twin" / "search.tsv" if path is None else path
    try:
        d = pd.read_csv(path, sep="\t")
    except FileNotFoundError:
        raise InputError("the design search is missing (run scripts/search_twin.py)", path=path) from None
    design = twin.DEFAULT_PARAMS if design is None else design
    keys = [c for c in d.columns if "." in c]
    d = d.copy()
    if "pam_signature_overlap" in d.columns:
        d["ok12"] = (d["pam_signature_overlap"] >= MIN_OVERLAP).astype(float).where(d["pam_signature_overlap"].notna())
        d["nr_errors"] = d["pam_loocv_specificity_n"] - d["pam_loocv_specificity_k"]
        d["cr_errors"] = d["pam_loocv_sensitivity_n"] - d["pam_loocv_sensitivity_k"]
    agg = {"n_twins": ("seed", "size")}
    for name, col, how in (
        ("mean_up", "n_up", "mean"),
        ("mean_down", "n_down", "mean"),
        ("share_ok12", "ok12", "mean"),
        ("n_ok12", "ok12", lambda v: v.sum(min_count=1)),
        ("median_pam_genes", "pam_n_genes", "median"),
        ("mean_overlap", "pam_signature_overlap", "mean"),
        ("mean_correct", "pam_loocv_accuracy_k", "mean"),
        ("mean_nr_errors", "nr_errors", "mean"),
        ("mean_cr_errors", "cr_errors", "mean"),
    ):
        if col in d.columns:
            agg[name] = (col, how)
    out = d.groupby(["stage", "setting"], sort=False).agg(**agg).reset_index()
    first = d.groupby(["stage", "setting"], sort=False)[keys].first().reset_index(drop=True)
    out = pd.concat([out[["stage"]], first, out.drop(columns=["stage"])], axis=1)

    def is_default(r) -> bool:
        vals = {k: r[k] for k in keys if not pd.isna(r[k])}
        return all(
            _design_value(design, k) is not None and np.isclose(float(_design_value(design, k)), float(v))
            for k, v in vals.items()
        )

    out["is_default"] = [is_default(r) for _, r in out.iterrows()]

    def label(r) -> str:
        vals = [f"{k} = {r[k]:g}" for k in keys if not pd.isna(r[k])]
        return ", ".join(vals) if vals else "the defaults"

    out.insert(1, "design", [label(r) for _, r in out.iterrows()])
    out.attrs["min_overlap"] = MIN_OVERLAP
    return out


# ------------------------------------------------------------------------------------ chapter tables


def distribution_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per measure over the twins: mean, median, min and max (DEG counts, recall, PAM genes and
    overlap, LOOCV correct calls naive and nested, Table 1's model correct calls)."""
    cols = [
        ("n_up", "DEGs up"),
        ("n_down", "DEGs down"),
        ("deg_recall", "recall of the planted DEGs"),
        ("pam_n_genes", "genes PAM keeps"),
        ("pam_signature_overlap", "of them among the 14"),
        ("pam_loocv_accuracy_k", "LOOCV correct (naive)"),
        ("pam_loocv_sensitivity_k", "CR called CR"),
        ("pam_loocv_specificity_k", "NR called NR"),
        ("nested_accuracy_k", "LOOCV correct (nested)"),
        ("published_model_accuracy_k", "Table 1's model: correct"),
    ]
    out = []
    for col, name in cols:
        if col not in rows.columns or rows[col].isna().all():
            continue
        v = rows[col].dropna().astype(float)
        out.append(
            {
                "measure": name,
                "twins": int(v.size),
                "mean": float(v.mean()),
                "median": float(v.median()),
                "min": float(v.min()),
                "max": float(v.max()),
            }
        )
    return pd.DataFrame(out)


def nested_summary(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The twins with nested LOOCV: naive and nested correct calls side by side (None if none)."""
    if "nested_accuracy_k" not in rows.columns or rows["nested_accuracy_k"].isna().all():
        return None
    r = rows[rows["nested_accuracy_k"].notna()]
    return pd.DataFrame(
        {
            "twin": r["twin"].astype(int).to_numpy(),
            "seed": r["seed"].astype(int).to_numpy(),
            "naive_correct": r["pam_loocv_accuracy_k"].astype(int).to_numpy(),
            "nested_correct": r["nested_accuracy_k"].astype(int).to_numpy(),
            "n": r["pam_loocv_accuracy_n"].astype(int).to_numpy(),
        }
    )


def prior_term_check(settings: dict, s0: float | None = None) -> dict:
    """The discussion's prior-term argument on the twin's design. For Table 1's model, the
    position ``lambda`` of a profile x on the line from the printed CR centroid (0) through the
    printed NR centroid (1), ``lambda(x) = sum_i (c_NR - c_CR)(x - c_CR)/sd^2 / D`` with
    ``D = sum_i ((c_NR - c_CR)/sd)^2``; the model calls NR beyond ``1/2 + log(pi_CR/pi_NR)/D``.
    Returns that boundary, the lambda of the twin's class means before shrinking
    (:func:`helpers.data.twin.unshrink`, ``s0`` default: the design's, else the twin's median
    gene SD from one draw) and a table of the landmarks."""
    from helpers.analysis.model import published_model
    from helpers.data import twin

    m = published_model()
    cr, nr = m.classes
    c_cr, c_nr, sd = m.centroids[cr], m.centroids[nr], m.sd
    w = (c_nr - c_cr) / sd**2
    D = float(((c_nr - c_cr) ** 2 / sd**2).sum())

    def lam(x):
        return float((w * (x - c_cr)).sum() / D)

    design = settings["simulate"]
    if s0 is None:
        s0 = design["signature"]["s0"]
    if s0 is None:
        universe, programs = _universe_and_programs()
        _, _, truth = twin.simulate_cohort(design, list(universe), programs, seed=1)
        s0 = float(truth.attrs["s0"])
    n_cr, n_nr = twin.paper_class_sizes(design)
    un = twin.unshrink(twin.SIGNATURE_TABLE1, float(design["signature"]["delta"]), float(s0), n_cr, n_nr)
    un = un.loc[m.genes]
    boundary = 0.5 + float(np.log(m.priors[cr] / m.priors[nr])) / D
    table = pd.DataFrame(
        {
            "where": [
                "printed CR centroid",
                "printed NR centroid",
                "boundary, class-proportion priors",
                "boundary, equal priors",
                "twin: CR class mean before shrinking",
                "twin: NR class mean before shrinking",
            ],
            "lambda": [0.0, 1.0, boundary, 0.5, lam(un["mean_CR"]), lam(un["mean_NR"])],
        }
    )
    return {
        "D": D,
        "boundary": boundary,
        "cr_mean_lambda": lam(un["mean_CR"]),
        "nr_mean_lambda": lam(un["mean_NR"]),
        "s0": float(s0),
        "table": table,
    }


def power_sentence(power: pd.DataFrame) -> str:
    """One sentence on the power view: overlap share and DEG recall at the smallest and largest cohort."""
    lo, hi = power.iloc[0], power.iloc[-1]
    return (
        f"With {int(lo['n_samples'])} patients PAM's overlap with the 14 holds on {100 * lo['share_overlap_holds']:.0f}% "
        f"of twins and the DEG rule recalls {100 * lo['deg_recall']:.0f}% of the planted genes; with "
        f"{int(hi['n_samples'])} patients, {100 * hi['share_overlap_holds']:.0f}% and {100 * hi['deg_recall']:.0f}%."
    )
