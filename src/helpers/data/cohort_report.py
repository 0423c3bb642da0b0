"""What chapter 01 reports about a built cohort: per-sample QC and the gene-ID mapping report.

:func:`id_mapping_report` reads the report that :func:`helpers.data.annotation.harmonize_ids`
leaves in a cohort's metadata, wherever the build put it: ``meta["harmonize"]`` for a single
table (``dataset: custom``), ``meta["parts"][i]["harmonize"]`` plus ``meta["combine_report"]``
for cohorts joined by :func:`helpers.data.cohort.combine_cohorts` (``dataset: real``: GSE153670
and PRJCA000750). The simulated twin is generated with current symbols and has no report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: harmonize_ids report keys -> the step as the chapter prints it (in this order)
MAPPING_STEPS = {
    "id_type": "identifier type",
    "n_input": "rows in the table",
    "n_version_stripped": "Ensembl version suffixes removed",
    "n_ambiguous_ensembl": "Ensembl IDs naming more than one gene",
    "n_symbols_updated": "outdated symbols updated to the current HGNC symbol",
    "n_unknown_symbols": "symbols not in the annotation (kept)",
    "n_unmapped_dropped": "identifiers without a symbol (dropped)",
    "duplicate_rule": "duplicated symbols merged by",
    "n_duplicates_merged": "duplicated symbols merged",
    "n_output": "genes after mapping",
}
SHARED_STEP = "genes shared by every cohort (kept)"
DROPPED_STEP = "genes not shared by every cohort (dropped)"


def id_mapping_report(meta: dict) -> pd.DataFrame | None:
    """The ID-mapping report of a cohort as a table: one row per step (:data:`MAPPING_STEPS`,
    then, for combined cohorts, the genes kept and dropped by the join), one column per source
    table (named as the cohort names it). None when no table was mapped (the twin)."""
    meta = meta or {}
    parts = []
    if isinstance(meta.get("parts"), list):
        for i, part in enumerate(meta["parts"]):
            if isinstance(part, dict) and isinstance(part.get("harmonize"), dict):
                parts.append((str(part.get("name") or f"cohort {i + 1}"), part["harmonize"]))
    elif isinstance(meta.get("harmonize"), dict):
        parts.append((str(meta.get("name") or meta.get("dataset") or "cohort"), meta["harmonize"]))
    if not parts:
        return None
    keys = [k for k in MAPPING_STEPS if any(k in rep for _, rep in parts)]
    extra = sorted({k for _, rep in parts for k in rep} - set(MAPPING_STEPS))
    table = pd.DataFrame(
        {name: [_cell(rep.get(k)) for k in keys + extra] for name, rep in parts},
        index=pd.Index([MAPPING_STEPS.get(k, k) for k in keys + extra], name="step"),
    )
    comb = meta.get("combine_report")
    if isinstance(comb, dict) and len(parts) > 1:
        dropped = comb.get("dropped") or {}
        table.loc[SHARED_STEP] = [_cell(comb.get("n_shared_genes"))] * len(parts)
        table.loc[DROPPED_STEP] = [_cell(dropped.get(name)) for name, _ in parts]
    return table.reset_index()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


def sample_qc(counts: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per sample (in the counts' column order): cohort, response, library size in millions of
    reads and the number of genes with at least one read."""
    s = samples.loc[counts.columns]
    return pd.DataFrame(
        {
            "sample_id": list(counts.columns),
            "cohort": s["cohort"].astype(str).to_numpy() if "cohort" in s.columns else "",
            "response": s["response"].astype(str).to_numpy(),
            "library_size_millions": counts.sum(axis=0).to_numpy(dtype=float) / 1e6,
            "genes_detected": (counts > 0).sum(axis=0).to_numpy(dtype=int),
        }
    )
