"""A frozen model's genes on a cohort's genes: the same symbol mapping as the cohort, a table of
what matched, and a stated rule for when a partial answer is still an answer.

Chapter 01 maps every cohort's gene IDs to today's HGNC symbols (:mod:`helpers.data.annotation`),
so the paper's ``CCDC155`` arrives as ``KASH5``. :func:`map_model` applies the same annotation to
the model's genes, gene by gene, in three passes (a cohort gene is used at most once, and an
earlier pass wins):

1. ``exact``: the model's name is a cohort gene;
2. ``current symbol``: the annotation's current symbol of the model's name is a cohort gene
   (``CCDC155`` -> ``KASH5``; the rule of :func:`helpers.data.annotation.current_symbols`);
3. ``alias``: a cohort gene is a previous or alternative symbol of the same Entrez gene, one
   that names exactly one gene and is no gene's official symbol (a cohort harmonised with
   ``update_symbols: false`` may carry ``C20orf58`` for ``NKAIN4``). An alias shared by several
   genes (``IMP1``) is never used; the table says so.

The partial-answer rule (:data:`MIN_GENES`, :data:`MIN_SEPARATION`): with every gene found the
model is scored as published (``complete``); with some absent it is scored on the genes present
and labelled ``partial`` when **at least 10 of the 14 genes are present and they carry at least
half of the model's class separation**; otherwise the answer is ``not measured: k of 14
signature genes absent``. Why these two numbers:

- The discriminant is a sum over genes; dropping genes does not bias it towards one class, it
  changes which classifier is applied. At least 10 of 14 (over 70% of the terms; at most 4
  absent) keeps it recognisably the published model: a published signature applied with half
  of its genes is a new signature, and the paper's performance says nothing about it.
- Table 1's genes are far from equal: the class separation of gene i, the squared
  standardised distance between its centroids ``sum_k (xbar'_ik - mean_k xbar'_ik)^2 /
  (s_i + s0)^2``, is 42% IGF2BP1, 22% KCNK3, 19% NKAIN4 and under 1% for each of the last six
  (as printed, to 2 decimals). A count alone would call the 12 genes left without IGF2BP1 and
  KCNK3 "partial" although 64% of the separation is gone; requiring half of it keeps the label
  honest. The share kept is reported with every answer.

The priors (``-2 log pi_k``) are kept as they are; with fewer distance terms they weigh
slightly more, which the label "partial" covers.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from helpers.analysis.model import Model, check_log2_scale, load_model, score
from helpers.data import annotation

__all__ = [
    "MIN_GENES",
    "MIN_SEPARATION",
    "SignatureMatch",
    "separation_shares",
    "match_genes",
    "map_model",
    "score_cohort",
]

#: Fewest model genes present for a partial answer (of the published model's 14).
MIN_GENES = 10
#: Smallest share of the model's class separation the present genes must carry.
MIN_SEPARATION = 0.5

STATUSES = ("complete", "partial", "not measured")


@dataclasses.dataclass(frozen=True)
class SignatureMatch:
    """The result of :func:`map_model`.

    ``status``: 'complete', 'partial' or 'not measured'; ``reason``: one line for the page,
    ``numbers.json`` and the scorecard; ``table``: one row per model gene (``model_gene``,
    ``cohort_gene`` ('' if absent), ``how`` (exact | current symbol | alias | absent), ``note``,
    ``separation_share``); ``model``: the model on the cohort's gene names restricted to the
    genes present (None when not measured).
    """

    status: str
    reason: str
    table: pd.DataFrame
    model: Model | None
    n_total: int
    n_present: int
    separation_kept: float
    min_genes: int
    min_separation: float

    @property
    def measured(self) -> bool:
        return self.status != "not measured"

    @property
    def absent(self) -> list:
        return self.table.loc[self.table["how"] == "absent", "model_gene"].tolist()

    @property
    def renamed(self) -> dict:
        """Model genes found under another name: {model name: cohort name}."""
        t = self.table[(self.table["how"] != "absent") & (self.table["cohort_gene"] != self.table["model_gene"])]
        return dict(zip(t["model_gene"], t["cohort_gene"]))

    def numbers(self, prefix: str = "signature") -> dict:
        """JSON-able numbers for ``Page.number``: status, reason, genes present/total, share kept."""
        return {
            f"{prefix}_status": self.status,
            f"{prefix}_reason": self.reason,
            f"{prefix}_n_present": int(self.n_present),
            f"{prefix}_n_total": int(self.n_total),
            f"{prefix}_n_absent": int(self.n_total - self.n_present),
            f"{prefix}_separation_kept": round(float(self.separation_kept), 4),
        }


def separation_shares(model: Model) -> pd.Series:
    """Per gene, its share of the model's class separation: ``sum_k (c_ik - mean_k c_ik)^2 / sd_i^2``
    normalised to sum 1 (for two classes proportional to ``((c_i1 - c_i2) / sd_i)^2``)."""
    c = model.centroids.to_numpy(dtype=float)
    w = ((c - c.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / model.sd.to_numpy(dtype=float) ** 2
    tot = w.sum()
    share = w / tot if tot > 0 else np.full(len(w), 1.0 / len(w))
    return pd.Series(share, index=model.centroids.index, name="separation_share")


_DEFAULT_TABLES: list = []


def _alias_tables(ann: pd.DataFrame | None, al: pd.DataFrame | None):
    """(official symbols, symbol -> Entrez IDs, alias -> Entrez IDs, Entrez ID -> aliases,
    Entrez ID -> symbol); built once for the shipped annotation."""
    if ann is None and al is None:
        if not _DEFAULT_TABLES:
            _DEFAULT_TABLES.append(_alias_tables(annotation.load_annotation(), annotation.load_aliases()))
        return _DEFAULT_TABLES[0]
    ann = annotation.load_annotation() if ann is None else ann
    al = annotation.load_aliases() if al is None else al
    official = set(ann["symbol"])
    sym2eg: dict[str, set] = {}
    for e, sym in zip(ann["entrez_id"], ann["symbol"]):
        sym2eg.setdefault(sym, set()).add(e)
    alias2eg: dict[str, set] = {}
    for a, e in zip(al["alias_symbol"], al["entrez_id"]):
        alias2eg.setdefault(a, set()).add(e)
    eg2alias: dict[str, set] = {}
    for a, e in zip(al["alias_symbol"], al["entrez_id"]):
        eg2alias.setdefault(e, set()).add(a)
    eg2sym = dict(zip(ann["entrez_id"], ann["symbol"]))
    return official, sym2eg, alias2eg, eg2alias, eg2sym


def _current_symbol(g: str, tables) -> str:
    """The rule of :func:`helpers.data.annotation.current_symbols` for one symbol: itself if
    official, else the gene it is an alias of when it is an alias of exactly one gene."""
    official, _, alias2eg, _, eg2sym = tables
    if g in official:
        return g
    egs = alias2eg.get(g, set())
    if len(egs) == 1:
        return eg2sym.get(next(iter(egs)), g)
    return g


def match_genes(
    model_genes, cohort_genes, annotation_table: pd.DataFrame | None = None, aliases: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Match model gene names to cohort gene names in three passes (module docstring).

    Returns one row per model gene, in model order: ``model_gene``, ``cohort_gene`` ('' if
    absent), ``how`` and ``note``.
    """
    tables = _alias_tables(annotation_table, aliases)
    official, sym2eg, alias2eg, eg2alias, _ = tables
    model_genes = [str(g) for g in model_genes]
    cohort = set(map(str, cohort_genes))
    current = {g: _current_symbol(g, tables) for g in model_genes}
    found: dict[str, tuple[str, str, str]] = {}
    used: set[str] = set()
    # pass 1: exact
    for g in model_genes:
        if g in cohort and g not in used:
            found[g] = (g, "exact", "")
            used.add(g)
    # pass 2: the annotation's current symbol of the model's name
    for g in model_genes:
        if g in found:
            continue
        cur = current[g]
        if cur != g and cur in cohort and cur not in used:
            found[g] = (cur, "current symbol", f"{g} is a previous symbol of {cur}")
            used.add(cur)
    # pass 3: unambiguous aliases of the same Entrez gene
    notes: dict[str, str] = {}
    for g in model_genes:
        if g in found:
            continue
        egs = sym2eg.get(g) or (alias2eg.get(g) if len(alias2eg.get(g, ())) == 1 else None) or set()
        cands, skipped = [], []
        for e in sorted(egs):
            for a in sorted(eg2alias.get(e, ())):
                if a not in cohort or a in used or a == g:
                    continue
                if len(alias2eg.get(a, ())) == 1 and a not in official:
                    cands.append(a)
                else:
                    skipped.append(a)
        if cands:
            a = cands[0]
            more = f" (also present: {', '.join(cands[1:])})" if len(cands) > 1 else ""
            found[g] = (a, "alias", f"{a} is an alias of {g}{more}")
            used.add(a)
        elif skipped:
            notes[g] = (
                f"the cohort has {', '.join(skipped)}, a symbol shared by several genes (or another gene's "
                "official symbol): not used"
            )
    rows = []
    for g in model_genes:
        if g in found:
            cg, how, note = found[g]
        else:
            cur = current[g]
            tried = f"nor its current symbol {cur}" if cur != g else "nor an unambiguous alias"
            cg, how, note = "", "absent", notes.get(g, f"{g} is not among the cohort's genes, {tried}")
        rows.append({"model_gene": g, "cohort_gene": cg, "how": how, "note": note})
    return pd.DataFrame(rows, columns=["model_gene", "cohort_gene", "how", "note"])


def map_model(
    model,
    cohort_genes,
    *,
    min_genes: int = MIN_GENES,
    min_separation: float = MIN_SEPARATION,
    annotation_table: pd.DataFrame | None = None,
    aliases: pd.DataFrame | None = None,
) -> SignatureMatch:
    """Map a frozen model (a :class:`~helpers.analysis.model.Model`, ``"published"`` or a model
    JSON path) onto a cohort's genes and apply the partial-answer rule (module docstring).

    ``min_genes`` is capped at the model's size, so a smaller model (e.g. one trained by chapter
    08) must have every gene unless ``min_genes`` is lowered.
    """
    model = load_model(model)
    table = match_genes(model.genes, cohort_genes, annotation_table, aliases)
    shares = separation_shares(model)
    table["separation_share"] = shares.reindex(table["model_gene"]).to_numpy()
    present = table[table["how"] != "absent"]
    n_total, n_present = len(table), len(present)
    kept = float(present["separation_share"].sum())
    need = min(int(min_genes), n_total)
    absent = table.loc[table["how"] == "absent", "model_gene"].tolist()
    k = n_total - n_present
    if k == 0:
        status, reason = "complete", f"all {n_total} signature genes present"
        if len(table[table["how"] != "exact"]):
            reason += (
                " ("
                + ", ".join(f"{a} as {b}" for a, b in zip(present["model_gene"], present["cohort_gene"]) if a != b)
                + ")"
            )
    elif n_present >= need and kept >= min_separation:
        status = "partial"
        reason = (
            f"partial: {k} of {n_total} signature genes absent ({', '.join(absent)}); scored on the "
            f"{n_present} present, which carry {100 * kept:.0f}% of the model's class separation"
        )
    else:
        why = (
            f"fewer than {need} present"
            if n_present < need
            else f"the {n_present} present carry {100 * kept:.0f}% of the model's class separation, "
            f"less than {100 * min_separation:.0f}%"
        )
        status = "not measured"
        reason = f"not measured: {k} of {n_total} signature genes absent ({', '.join(absent)}); {why}"
    mapped = None
    if status != "not measured":
        genes = present["model_gene"].tolist()
        names = present["cohort_gene"].tolist()
        prov = dict(model.provenance)
        prov["gene_mapping"] = {a: b for a, b in zip(genes, names)}
        prov["signature_status"] = reason
        mapped = Model(
            classes=model.classes,
            centroids=model.centroids.loc[genes].set_axis(pd.Index(names, name="gene"), axis=0),
            sd=model.sd.loc[genes].set_axis(pd.Index(names, name="gene")),
            priors=model.priors,
            scale=model.scale,
            name=model.name,
            provenance=prov,
        )
    return SignatureMatch(
        status=status,
        reason=reason,
        table=table,
        model=mapped,
        n_total=n_total,
        n_present=n_present,
        separation_kept=kept,
        min_genes=need,
        min_separation=float(min_separation),
    )


def score_cohort(match: SignatureMatch, expression: pd.DataFrame, source="expression") -> pd.DataFrame:
    """Score a cohort with a mapped model (complete or partial): the scorer's scale check on the
    signature rows (:func:`helpers.analysis.model.check_log2_scale`), then
    :func:`helpers.analysis.model.score`. Calling it on a 'not measured' match is a bug."""
    if not match.measured:
        raise ValueError(f"nothing to score: {match.reason}")
    genes = match.model.genes
    missing = [g for g in genes if g not in set(expression.index.astype(str))]
    if missing:  # the match was made on another gene list
        raise ValueError(f"the match was made on other genes: {', '.join(missing)} not in the expression table")
    sub = expression.set_axis(expression.index.astype(str), axis=0).loc[genes]
    check_log2_scale(sub.astype(float), source, match.model.scale)
    return score(match.model, expression, source=source)
