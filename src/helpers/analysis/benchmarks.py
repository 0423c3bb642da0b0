"""The benchmarks page (chapter 12): the goals of ``benchmarks/results.json`` (written by
``make bench``) against the measured times, and the per-notebook times and memory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from helpers.engine.errors import InputError


def load(path) -> dict | None:
    """The benchmark results, or None when ``make bench`` has not run (no file, or no cold run)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        bench = json.loads(path.read_text())
    except ValueError:
        raise InputError("not valid JSON", path=path) from None
    return bench if isinstance(bench, dict) and "cold" in bench else None


def _met(seconds, goal) -> str:
    return "not measured" if seconds is None else "yes" if seconds < goal else "no"


def goals(bench: dict) -> pd.DataFrame:
    """One row per goal: the run, its seconds, the goal and whether it was met (a run that was
    not benchmarked is "not measured")."""
    g = bench["goals"]
    s310 = next((r["seconds"] for r in bench.get("scale", []) if r["n_samples"] == 310), None)
    rows = [
        ("cold full run, default profile (notebooks + book)", bench["cold"]["seconds"], g["cold_seconds"]),
        ("warm rerun, nothing changed", bench.get("warm", {}).get("seconds"), g["warm_seconds"]),
        ("rerun after one GSVA parameter", bench.get("one_param", {}).get("seconds"), g["one_param_seconds"]),
        ("310 samples (notebooks)", s310, g["scale_310_seconds"]),
    ]
    out = pd.DataFrame(rows, columns=["run", "seconds", "goal (s)"])
    out["met"] = [_met(v, goal) for _, v, goal in rows]
    return out


def per_notebook(bench: dict) -> pd.DataFrame:
    """Seconds and peak memory of each notebook in the cold run and in each scaled run."""
    per = pd.DataFrame(
        {"cold (s)": bench["cold"]["notebook_seconds"], "peak MB": bench["cold"]["notebook_peak_rss_mb"]}
    )
    for r in bench.get("scale", []):
        per[f"{r['n_samples']} samples (s)"] = pd.Series(r["notebook_seconds"])
        per[f"{r['n_samples']} samples peak MB"] = pd.Series(r["notebook_peak_rss_mb"])
    return per.rename_axis("notebook")
