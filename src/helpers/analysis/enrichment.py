"""What the enrichment chapters do with the methods: GO over-representation of the up and down
DEGs (Fig. 2D, S1; :mod:`helpers.methods.ora`), preranked GSEA of every gene (Fig. 3A;
:mod:`helpers.methods.gsea`) and the per-pathway rows of the paper's named sets (GSEA, GSVA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import genesets as gs
from helpers.engine.errors import InputError
from helpers.methods import ora

RANKING_COLUMNS = {"logFC": "logFC", "t": "stat", "stat": "stat"}


def collection_name(coll: str) -> str:
    """The shipped collection's short name, or "custom" for a GMT path."""
    return coll if coll in gs.COLLECTIONS else "custom"


def ora_by_direction(de_table: pd.DataFrame, collections, min_size: int = 10, max_size: int = 500) -> dict:
    """clusterProfiler-style ORA of the up and of the down DEGs (``direction`` column) against
    the tested genes, per collection: ``{(collection name, "up"|"down"): ORA table}``."""
    if "direction" not in de_table.columns:
        raise InputError("missing column 'direction'", where="DE table")
    tested = list(de_table.index)
    direction = de_table["direction"].astype(str)
    genes = {d: list(de_table.index[direction == d]) for d in ("up", "down")}
    out = {}
    for coll in collections:
        sets = gs.load_collection(coll)
        gs.overlap_check(sets, tested)
        tables = ora.ora_many(genes, tested, sets, descriptions=sets.descriptions, min_size=min_size, max_size=max_size)
        for d in ("up", "down"):
            out[(collection_name(coll), d)] = tables[d]
    return out


def ora_summary(results: dict, p_cutoff: float = 0.05) -> pd.DataFrame:
    """One row per (collection, direction): sets tested, sets at p < ``p_cutoff``, sets at
    BH-adjusted p < 0.05, and the top term."""
    return pd.DataFrame(
        [
            {
                "collection": c,
                "genes": d,
                "sets_tested": len(t),
                f"sets_p<{p_cutoff:g}": int((t["pvalue"] < p_cutoff).sum()),
                "sets_padj<0.05": int((t["p.adjust"] < 0.05).sum()),
                "top_term": (t["description"].iloc[0] if len(t) else ""),
            }
            for (c, d), t in results.items()
        ]
    )


def claim_collection(results: dict) -> str:
    """The collection the T-cell claims read: GO BP if it ran, else the first one."""
    return "go_bp" if ("go_bp", "up") in results else next(iter(results))[0]


def side_by_side(up: pd.DataFrame, down: pd.DataFrame, column: str = "description") -> pd.DataFrame:
    """Two term lists next to each other (shorter one padded with blanks)."""
    return pd.DataFrame(
        {"top terms, up": up[column].reset_index(drop=True), "top terms, down": down[column].reset_index(drop=True)}
    ).fillna("")


def merged_sets(collections, genes) -> tuple[dict, dict]:
    """The gene sets of several collections in one dict, and their descriptions (later
    collections win on a shared name); each collection must overlap ``genes``."""
    sets, descriptions = {}, {}
    for coll in collections:
        s = gs.load_collection(coll)
        gs.overlap_check(s, genes)
        sets.update(s)
        descriptions.update(s.descriptions)
    return sets, descriptions


def ranking(de_table: pd.DataFrame, metric: str = "logFC") -> pd.Series:
    """The GSEA ranking of the genes of a DE table: log2 fold change (the paper) or the
    moderated t / Wald statistic (``t``)."""
    if metric not in RANKING_COLUMNS:
        raise InputError(f"unknown ranking metric {metric!r}; use one of logFC, t", where="ranking_metric")
    return de_table[RANKING_COLUMNS[metric]].astype(float)


def gsea_counts(res: pd.DataFrame, fdr: float = 0.05) -> dict:
    """Sets tested and significant (BH-adjusted p < ``fdr``), split by the sign of the NES."""
    sig = res["padj"] < fdr
    return {
        "n_sets": int(len(res)),
        "n_sig": int(sig.sum()),
        "n_sig_up": int((sig & (res["NES"] > 0)).sum()),
        "n_sig_down": int((sig & (res["NES"] < 0)).sum()),
    }


def gsea_claim_rows(res: pd.DataFrame, claim_sets: dict) -> pd.DataFrame:
    """The GSEA result of each set named for a claim (``claim_sets``: claim -> set id); a set
    that was not tested (size filter or absent) gets a row saying so and no NES."""
    rows = []
    for claim, pid in claim_sets.items():
        r = res[res["pathway"] == pid]
        if len(r):
            r = r.iloc[0]
            rows.append(
                {
                    "claim": claim,
                    "set": pid,
                    "description": r.get("description", ""),
                    "size": int(r["size"]),
                    "NES": float(r["NES"]),
                    "pval": float(r["pval"]),
                    "padj": float(r["padj"]),
                }
            )
        else:
            rows.append(
                {
                    "claim": claim,
                    "set": pid,
                    "description": "not tested (size filter or absent)",
                    "size": np.nan,
                    "NES": np.nan,
                    "pval": np.nan,
                    "padj": np.nan,
                }
            )
    return pd.DataFrame(rows)


def gsva_kcdf_sentence(expr: pd.DataFrame, kcdf: str) -> str:
    """Which cumulative distribution GSVA estimates per gene on ``expr`` (genes x samples) with
    the chapter's ``kcdf``, and why, in one sentence for the page."""
    from helpers.methods import gsva as gv

    values = expr.to_numpy(dtype=float)
    chosen = gv.resolve_kcdf(values, kcdf)
    n, limit = values.shape[1], gv._NONE_MIN_SAMPLES
    what = {
        "Gaussian": "a Gaussian kernel estimate",
        "Poisson": "a Poisson kernel estimate",
        "none": "the empirical distribution (no kernel)",
    }[chosen]
    if kcdf != "auto":
        return f"The cumulative distribution of each gene is {what}, as kcdf = {kcdf} asks."
    if chosen == "none":
        why = f"with {n:,} samples, at least {limit}, kcdf = auto takes it, as GSVA 2.0 does"
    elif chosen == "Poisson":
        why = f"the input is whole non-negative numbers (counts) and there are {n:,} samples, fewer than {limit}"
    else:
        why = f"the input is log expression and there are {n:,} samples, fewer than {limit}"
    return f"The cumulative distribution of each gene is {what}: {why}."


def gsva_claim_rows(test: pd.DataFrame, claim_sets: dict) -> pd.DataFrame:
    """The limma comparison of the GSVA scores (CR - NR) for each set named for a claim; NaN
    for a set that was not scored."""
    rows = []
    for claim, pid in claim_sets.items():
        if pid in test.index:
            r = test.loc[pid]
            rows.append(
                {
                    "claim": claim,
                    "set": pid,
                    "logFC (CR-NR)": float(r["logFC"]),
                    "p": float(r["P.Value"]),
                    "FDR": float(r["adj.P.Val"]),
                }
            )
        else:
            rows.append({"claim": claim, "set": pid, "logFC (CR-NR)": np.nan, "p": np.nan, "FDR": np.nan})
    return pd.DataFrame(rows)


def pathway_sources(collection: str) -> pd.DataFrame | None:
    """The curated T-cell pathways' sources (``data/genesets/tcell_pathways_sources.tsv``) when
    ``collection`` is the shipped ``tcell``; None otherwise."""
    from helpers.engine.paths import GENESETS

    src = GENESETS / "tcell_pathways_sources.tsv"
    if collection != "tcell" or not src.exists():
        return None
    return pd.read_csv(src, sep="\t")[["set", "n_genes", "description", "source"]]


def claim_numbers(rows: pd.DataFrame, column: str, key: str, digits: int = 3, significant: int | None = None) -> dict:
    """The value of ``column`` for each claim row (:func:`gsea_claim_rows`, :func:`gsva_claim_rows`)
    under the key ``key.format(claim=...)``, rounded to ``digits`` decimals (or to ``significant``
    significant digits); a set that was not tested is recorded as "not measured: ..." (the
    scorecard shows the reason)."""
    out = {}
    for _, r in rows.iterrows():
        v = r[column]
        if pd.isna(v):
            out[key.format(claim=r["claim"])] = f"not measured: set {r['set']} not tested (size filter or absent)"
        else:
            out[key.format(claim=r["claim"])] = (
                float(f"{float(v):.{significant}g}") if significant else round(float(v), digits)
            )
    return out


def fig3a_rows(res: pd.DataFrame, claim_sets: dict, top: int = 10, fdr: float = 0.05) -> pd.DataFrame:
    """The sets Fig. 3A shows, in drawing order (top to bottom).

    As the paper's figure: the sets named for a claim (``claim_sets``: claim -> set id) are always
    shown, whatever their FDR; beside them, the ``top`` sets with the largest NES among those at
    BH-adjusted p < ``fdr`` (NES > 0: higher in CR, the top half) and the ``top`` with the most
    negative NES (higher in NR, the bottom half). Within each half rows run by decreasing NES.
    Columns: pathway, description, NES, padj, half ("up"/"down"), claim (the claim's name, or
    "" for a set chosen by NES). A claim set that was not tested has no row."""
    need = {"pathway", "NES", "padj"}
    if not need <= set(res.columns):
        raise InputError(f"GSEA table needs columns {sorted(need)}", where="fig3a_rows")
    if top < 0:
        raise InputError(f"top must be >= 0, got {top}", where="fig3a_rows")
    claim_of = {pid: claim for claim, pid in claim_sets.items()}
    tab = res.assign(claim=res["pathway"].map(claim_of).fillna(""))
    if "description" not in tab.columns:
        tab["description"] = ""
    tab = tab[np.isfinite(tab["NES"])]
    pool = tab[(tab["claim"] == "") & (tab["padj"] < fdr)]
    up = pool[pool["NES"] > 0].sort_values(["NES", "pathway"], ascending=[False, True], kind="mergesort").head(top)
    down = pool[pool["NES"] < 0].sort_values(["NES", "pathway"], ascending=[True, True], kind="mergesort").head(top)
    rows = pd.concat([tab[tab["claim"] != ""], up, down])
    rows = rows.assign(half=np.where(rows["NES"] > 0, "up", "down"))
    rows = rows.sort_values(["half", "NES", "pathway"], ascending=[False, False, True], kind="mergesort")
    return rows[["pathway", "description", "NES", "padj", "half", "claim"]].reset_index(drop=True)


P_METHODS = ("multilevel", "simple")


def run_gsea(ranking: pd.Series, sets: dict, descriptions: dict, p_method: str = "multilevel", **kw) -> pd.DataFrame:
    """Chapter 06's GSEA: :func:`helpers.methods.gsea.prerank` and each set's description.

    ``p_method="multilevel"`` (the default) follows fgseaMultilevel: ``n_perm`` permutations per
    set size, and multilevel splitting for every set whose simple p-value is the less precise
    estimate (fgsea's error rule), so no p-value is tied at the permutation floor.
    ``"simple"`` is fgseaSimple's reading: permutations only (topped up to 10,000 for sizes
    with few extreme nulls), p tied at the floor where no null is as extreme.

    The prerank result is kept in the step cache (:mod:`helpers.engine.memo`, step
    ``gsea_prerank``), keyed by the ranking (gene names, values, order), the gene sets' content
    and every argument of ``prerank`` with its defaults filled in: a re-run whose ranking did
    not change (``SET='fc_min=2'`` changes the DEGs, not the ranking) returns the identical
    table without redoing the permutations."""
    from helpers.methods import gsea

    if p_method not in P_METHODS:
        raise InputError(f"unknown p_method {p_method!r}; use one of {', '.join(P_METHODS)}", where="p_method")
    if p_method == "multilevel":
        # as fgseaMultilevel: nPermSimple permutations for NES and the well-estimated p-values,
        # multilevel splitting wherever that estimate is the less precise one (no top-up)
        kw = {**kw, "max_perm": kw.get("n_perm", 1000), "multilevel_rule": "fgsea"}
    kw = {**kw, "multilevel": p_method == "multilevel"}
    res = _cached_prerank(gsea.prerank, ranking, sets, kw)
    res.insert(1, "description", [descriptions.get(p, "") for p in res["pathway"]])
    return res


def _cached_prerank(prerank, ranking, sets, kw: dict) -> pd.DataFrame:
    """``prerank(ranking, sets, **kw)`` through the step cache; inputs the key cannot describe
    (gene names that are not JSON values, a ranking that is not a Series) are computed uncached."""
    import hashlib
    import inspect
    import json

    from helpers.engine import memo

    def compute():
        return prerank(ranking, sets, **kw)

    params = inspect.signature(prerank).bind(ranking, sets, **kw)  # an unknown argument fails here, as in prerank
    params.apply_defaults()
    args = {k: v for k, v in params.arguments.items() if k not in ("ranking", "gene_sets")}
    if not memo.enabled() or not isinstance(ranking, pd.Series) or not isinstance(sets, dict):
        return compute()
    try:
        # one JSON text of the sets in their order (names and member lists), hashed: fingerprinting
        # ~1.5 million gene names one by one would cost seconds
        items = [(name, g if isinstance(g, (list, tuple)) else list(g)) for name, g in sets.items()]
        content = json.dumps(items, ensure_ascii=False)
        key = memo.fingerprint(
            {
                "ranking": ranking,
                "sets": hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest(),
                "args": args,
            }
        )
    except (TypeError, ValueError):
        return compute()
    return memo.cached("gsea_prerank", key, compute)


def gsea_p_summary(res: pd.DataFrame, fdr: float = 0.05) -> dict:
    """How the p-values were obtained: sets whose p came from multilevel splitting, the smallest
    p, and how many of the sets at BH-adjusted p < ``fdr`` share their p-value with a set of a
    different ES (ties; identical gene sets, with equal ES and size, count once)."""
    ml = res["p_method"] == "multilevel" if "p_method" in res.columns else pd.Series(False, index=res.index)
    sig = res[res["padj"] < fdr].drop_duplicates(["ES", "size"])
    tied = int(sig.duplicated("pval", keep=False).sum())
    return {"n_multilevel": int(ml.sum()), "min_pval": float(f"{res['pval'].min():.3g}"), "n_sig_tied_p": tied}


def copy_collection(collection: str, dest: Path) -> Path | None:
    """Copy a shipped gene-set collection (its GMT as shipped) to ``dest`` (atomically), so the
    page that uses it offers it as a download; None for a user's GMT path (not ours to copy)."""
    from helpers.engine.io import atomic_path

    if collection not in gs.COLLECTIONS:
        return None
    src = gs.collection_path(collection)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(src.read_bytes())
    return dest
