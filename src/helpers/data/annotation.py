"""Gene identifiers to official human gene symbols with the shipped annotation table.

The table (``data/annotation/genes.tsv.gz``, built by ``scripts/build_annotation.py`` from Debian's
``r-bioc-org.hs.eg.db``, Entrez Gene 2022-09-12) maps Entrez IDs, Ensembl gene IDs and symbols;
``aliases.tsv.gz`` holds previous and alternative symbols.

Rules used by :func:`harmonize_ids` (stated here once, reported in its report dict):

- Ensembl IDs lose their version suffix (``ENSG00000141510.17`` -> ``ENSG00000141510``); so do
  ``_PAR_Y`` suffixes of GENCODE pseudo-autosomal copies, whose rows then count as duplicates.
- An Ensembl ID that maps to several genes takes the protein-coding one, then the smallest Entrez ID.
- Rows whose ID has no symbol are dropped and counted.
- Symbols that are not official but are an unambiguous previous/alternative symbol are updated
  (``update_symbols=True``); unknown symbols are kept by default (they may be genes the NCBI
  table lacks) and counted.
- Several rows that end up with the same symbol: counts are summed (reads of one gene split over
  IDs); log-expression keeps the row with the highest mean (the usual probe-collapsing rule).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError
from helpers.engine.paths import ANNOTATION

ENSEMBL_RE = re.compile(r"^(ENS[A-Z]*G\d{11})(\.\d+)?(_PAR_Y)?$")
ENTREZ_RE = re.compile(r"^\d+$")


@functools.lru_cache(maxsize=2)
def _read_annotation(path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[])
    except FileNotFoundError:
        raise InputError("annotation table not found; run scripts/build_annotation.py", path=path) from None
    return df


def load_annotation(path=None) -> pd.DataFrame:
    """The shipped annotation: columns entrez_id, symbol, ensembl_id ('' if none), gene_type (all str)."""
    return _read_annotation(str(path or ANNOTATION / "genes.tsv.gz")).copy()


def load_aliases(path=None) -> pd.DataFrame:
    """Previous/alternative symbols: columns alias_symbol, entrez_id (str)."""
    return _read_annotation(str(path or ANNOTATION / "aliases.tsv.gz")).copy()


def protein_coding_symbols(annotation: pd.DataFrame | None = None) -> list[str]:
    """Sorted unique official symbols of NCBI protein-coding genes."""
    ann = load_annotation() if annotation is None else annotation
    return sorted(set(ann.loc[ann["gene_type"] == "protein-coding", "symbol"]))


def strip_version(ids) -> list[str]:
    """Remove Ensembl version (``.17``) and ``_PAR_Y`` suffixes; other IDs are returned unchanged."""
    out = []
    for x in ids:
        m = ENSEMBL_RE.match(str(x))
        out.append(m.group(1) if m else str(x))
    return out


def detect_id_type(ids) -> str:
    """'ensembl', 'entrez' or 'symbol' by majority of the IDs (Ensembl if >= 50% look like ENSG...)."""
    ids = [str(x) for x in ids]
    if not ids:
        return "symbol"
    n = len(ids)
    if sum(bool(ENSEMBL_RE.match(x)) for x in ids) >= 0.5 * n:
        return "ensembl"
    if sum(bool(ENTREZ_RE.match(x)) for x in ids) >= 0.5 * n:
        return "entrez"
    return "symbol"


def _ensembl_map(ann: pd.DataFrame) -> dict[str, str]:
    sub = ann[ann["ensembl_id"] != ""].copy()
    sub["_pc"] = (sub["gene_type"] != "protein-coding").astype(int)  # 0 = protein-coding first
    sub["_eg"] = sub["entrez_id"].astype(np.int64)
    sub = sub.sort_values(["ensembl_id", "_pc", "_eg"], kind="mergesort")
    first = sub.drop_duplicates("ensembl_id", keep="first")
    return dict(zip(first["ensembl_id"], first["symbol"]))


def current_symbols(
    symbols, annotation: pd.DataFrame | None = None, aliases: pd.DataFrame | None = None
) -> dict[str, str]:
    """Map each symbol to today's official symbol (itself if official or unknown).

    A non-official symbol is updated only when it is an alias of exactly one gene, e.g. the
    paper's CCDC155 -> KASH5.
    """
    ann = load_annotation() if annotation is None else annotation
    al = load_aliases() if aliases is None else aliases
    official = set(ann["symbol"])
    eg2sym = dict(zip(ann["entrez_id"], ann["symbol"]))
    uniq = al.groupby("alias_symbol")["entrez_id"].nunique()
    uniq = set(uniq.index[uniq == 1])
    al = al[al["alias_symbol"].isin(uniq)]
    alias2sym = {a: eg2sym[e] for a, e in zip(al["alias_symbol"], al["entrez_id"]) if e in eg2sym}
    out = {}
    for s in symbols:
        s = str(s)
        out[s] = s if s in official else alias2sym.get(s, s)
    return out


def collapse_duplicates(df: pd.DataFrame, kind: str = "counts") -> tuple[pd.DataFrame, int]:
    """Merge rows with the same index: 'counts' sums them, 'logexpr' keeps the highest-mean row.

    Returns the collapsed frame (index sorted in first-appearance order) and the number of rows removed.
    """
    if not df.index.has_duplicates:
        return df, 0
    if kind == "counts":
        out = df.groupby(level=0, sort=False).sum()
    elif kind == "logexpr":
        means = df.mean(axis=1).to_numpy()
        order = np.lexsort((np.arange(len(df)), -means))  # highest mean first, ties by position
        keep = ~df.index[order].duplicated(keep="first")
        chosen = np.sort(order[keep])
        out = df.iloc[chosen]
    else:
        raise ValueError(f"kind must be 'counts' or 'logexpr', not {kind!r}")
    return out, len(df) - len(out)


def harmonize_ids(
    counts: pd.DataFrame,
    id_type: str = "auto",
    kind: str = "counts",
    update_symbols: bool = True,
    keep_unknown_symbols: bool = True,
    annotation: pd.DataFrame | None = None,
    source: str = "expression table",
) -> tuple[pd.DataFrame, dict]:
    """Re-index a genes x samples table by official gene symbols.

    Parameters
    ----------
    counts : genes x samples table; the index holds Ensembl IDs (with or without version),
        Entrez IDs or symbols.
    id_type : 'auto' (detected), 'ensembl', 'entrez' or 'symbol'.
    kind : 'counts' (duplicates summed) or 'logexpr' (duplicate with highest mean kept).
    update_symbols : bring previous symbols up to date via unambiguous aliases.
    keep_unknown_symbols : keep symbols not in the annotation (True) or drop them.
    source : name used in error messages.

    Returns
    -------
    (table indexed by symbol, report dict) — the report counts every row dropped or merged.
    Raises InputError when no gene is left.
    """
    ann = load_annotation() if annotation is None else annotation
    ids = [str(x) for x in counts.index]
    detected = detect_id_type(ids) if id_type == "auto" else id_type
    if detected not in ("ensembl", "entrez", "symbol"):
        raise ValueError(f"id_type must be auto, ensembl, entrez or symbol, not {id_type!r}")
    report = {"id_type": detected, "n_input": len(ids), "duplicate_rule": "sum" if kind == "counts" else "highest mean"}
    if detected == "ensembl":
        stripped = strip_version(ids)
        report["n_version_stripped"] = int(sum(a != b for a, b in zip(ids, stripped)))
        emap = _ensembl_map(ann)
        n_multi = ann[ann["ensembl_id"] != ""].groupby("ensembl_id")["entrez_id"].nunique()
        multi = set(n_multi.index[n_multi > 1])
        report["n_ambiguous_ensembl"] = int(sum(s in multi for s in stripped))
        mapped = [emap.get(s) for s in stripped]
    elif detected == "entrez":
        emap = dict(zip(ann["entrez_id"], ann["symbol"]))
        mapped = [emap.get(s) for s in ids]
    else:
        official = set(ann["symbol"])
        upd = current_symbols(ids, annotation=ann) if update_symbols else {s: s for s in ids}
        mapped = [upd[s] for s in ids]
        report["n_symbols_updated"] = int(sum(a != b for a, b in zip(ids, mapped)))
        unknown = [m not in official for m in mapped]
        report["n_unknown_symbols"] = int(sum(unknown))
        if not keep_unknown_symbols:
            mapped = [None if u else m for m, u in zip(mapped, unknown)]
    keep = np.array([m is not None and m != "" for m in mapped])
    report["n_unmapped_dropped"] = int((~keep).sum())
    out = counts.loc[keep].copy()
    out.index = pd.Index([m for m, k in zip(mapped, keep) if k], name="gene")
    out, n_merged = collapse_duplicates(out, kind=kind)
    report["n_duplicates_merged"] = int(n_merged)
    report["n_output"] = int(len(out))
    if len(out) == 0:
        raise InputError(
            f"no genes left after mapping {detected} IDs to symbols "
            f"({report['n_unmapped_dropped']} of {len(ids)} unmapped)",
            path=source,
        )
    return out, report
