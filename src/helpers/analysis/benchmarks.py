"""The benchmarks page (chapter 12): what ``make bench`` measured (``benchmarks/results.json``,
written by ``benchmarks/run.py``) against the goals of issue 14, the method ports against the
Python packages they replace and against R (timed on another day, shipped with the golden
files), the cost of each chapter in samples n and genes g, and whether the file describes the
code of the book it is shown in."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.engine.errors import InputError

#: issue 14's goals on a 2-core machine (seconds, MB, ratio)
GOALS = {
    "cold_seconds": 75,
    "warm_seconds": 3,
    "fc_min_seconds": 25,
    "scale_310_seconds": 120,
    "scale_1000_seconds": 300,
    "peak_rss_mb": 3072,
    "deseq2_speedup_vs_pydeseq2": 10,
}

#: the files whose content :func:`code_fingerprint` covers (relative to the project root)
CODE_PATTERNS = ("src/helpers/**/*.py", "notebooks/*.md", "config/*.yml", "benchmarks/*.py")

#: the default twin's cohorts at n_scale 1: (CR, NR) per cohort (data/twin.py's design)
DESIGN = ((19, 8), (3, 1))

#: each chapter's cost in samples n and genes g (T thresholds, B permutations, S gene sets), as
#: the code computes it: (time, what dominates, exponent of n). Checked against the scale runs by
#: :func:`complexity`.
COMPLEXITY = {
    "01_cohort": ("O(n g log g)", "simulation O(n g); TMM sorts each sample's log-ratios", 1),
    "02_pca": ("O(n² g)", "SVD of the n x g matrix (n < g)", 2),
    "03_de": ("O(n g)", "DESeq2's per-gene IRLS and dispersion fits, limma-voom", 1),
    "04_deg_structure": ("O(n² g_DEG + B n²)", "clustering on the DEGs; silhouette permutations", 2),
    "05_go": ("O(S)", "ORA on the DEG lists: no n", 0),
    "06_gsea": ("O(B S)", "gene permutations of the ranking: no n", 0),
    "07_gsva": (
        "O(n² g); O(g n log n) from 200 samples",
        "kernel CDF, every sample against every sample per gene; from 200 samples kcdf auto takes the "
        "empirical CDF (GSVA 2.0's rule): a sort per gene. The scale runs' two largest sizes are above 200",
        1,
    ),
    "08_pam": ("O(n² g T + B n g T)", "nested LOOCV (n fits of an n-fold CV) and B permuted LOOCVs", 2),
    "09_published_model": ("O(n)", "scoring n samples on 14 genes", 1),
    "10_scorecard": ("O(1)", "tables of the other chapters' numbers", 0),
    "11_reproducibility": ("O(files)", "checksums of the shipped data", 0),
}


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


def code_fingerprint(root) -> str:
    """SHA-256 over the names and bytes of the files of :data:`CODE_PATTERNS` under ``root``: the
    same in a copy without git, so a page can compare the code it runs with the benchmarked code."""
    root = Path(root)
    h = hashlib.sha256()
    files = sorted({p for pat in CODE_PATTERNS for p in root.glob(pat) if p.is_file() and "__pycache__" not in p.parts})
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def n_samples(n_scale: float, design=DESIGN) -> int:
    """Samples of the twin at ``n_scale`` (each class of each cohort rounded half up, at least 1,
    as :func:`helpers.data.twin.class_size`)."""
    from helpers.data.twin import class_size

    return sum(class_size(k, n_scale) for cohort in design for k in cohort)


def _scale_run(bench: dict, n: int) -> dict | None:
    return next((r for r in bench.get("scale", []) if r.get("n_samples") == n), None)


def _peak(bench: dict) -> float | None:
    peaks = [
        v
        for r in [bench.get("cold", {}), *bench.get("scale", [])]
        for v in (r.get("notebook_peak_rss_mb") or {}).values()
        if v is not None
    ]
    return max(peaks) if peaks else None


def _speedup(bench: dict) -> float | None:
    return ((bench.get("methods") or {}).get("deseq2") or {}).get("speedup_vs_pydeseq2_wall")


def _measures(bench: dict) -> list:
    """(key, run, measured, goal, lower is better, note) for every goal of :data:`GOALS`."""
    g = GOALS  # today's goals, whatever the file's run was judged against
    rows = []

    def sec(run):
        return None if run is None or run.get("failed") else run.get("seconds")

    def why(run):
        return f"failed: {run['failed']}" if run and run.get("failed") else ""

    for key, what in (
        ("cold", "cold run, default profile, every chapter + HTML book"),
        ("warm", "warm rerun, nothing changed"),
        ("fc_min", "rerun after SET='fc_min=2' (with the book)"),
    ):
        run = bench.get(key)
        rows.append((key, what, sec(run), g[f"{key}_seconds"], True, why(run)))
    for n, key in ((310, "scale_310"), (1000, "scale_1000")):
        r = _scale_run(bench, n)
        note = why(r)
        if r is not None and r.get("timed_out"):
            note = (
                f"interrupted at {r.get('cap_seconds'):.0f} s; finished: {len(r.get('notebook_seconds', {}))} chapters"
            )
        rows.append((key, f"twin of {n} samples, chapters 01-11 (no book)", sec(r), g[f"{key}_seconds"], True, note))
    rows.append(("memory", "highest kernel peak memory (MB), any run", _peak(bench), g["peak_rss_mb"], True, ""))
    rows.append(
        (
            "deseq2",
            "DESeq2: ours vs pydeseq2 (times faster, wall)",
            _speedup(bench),
            g["deseq2_speedup_vs_pydeseq2"],
            False,
            "",
        )
    )
    return rows


def _met(value, goal, lower: bool, timed_out: bool = False) -> str:
    """A run interrupted at its cap missed the goal only if the cap was not below the goal."""
    if timed_out:
        return "no" if value is not None and value >= goal else "not measured"
    if value is None:
        return "not measured"
    return "yes" if (value <= goal if lower else value >= goal) else "no"


def verdicts(bench: dict) -> dict:
    """Goal key -> "yes" / "no" / "not measured" (a scale run interrupted at its cap is "no")."""
    out = {}
    for key, _, value, goal, lower, note in _measures(bench):
        out[key] = _met(value, goal, lower, timed_out=note.startswith("interrupted"))
    return out


def goals(bench: dict) -> pd.DataFrame:
    """One row per goal: what was run, the measured value, the goal, whether it was met and by how
    much it was missed (a run that was not benchmarked is "not measured")."""
    rows = []
    for key, what, value, goal, lower, note in _measures(bench):
        met = _met(value, goal, lower, timed_out=note.startswith("interrupted"))
        miss = ""
        if met == "no" and value is not None:
            miss = f"{value / goal:.1f}x the goal" if lower else f"{goal / value:.1f}x short"
            if note.startswith("interrupted"):
                miss = f"more than {value / goal:.1f}x the goal"
        rows.append(
            {
                "goal": key,
                "run": what,
                "measured": value,
                "goal value": goal,
                "met": met,
                "missed by": miss,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def phases(bench: dict) -> pd.DataFrame:
    """One row per run of the benchmark: wall and CPU seconds (the run and its child processes),
    the load average (1, 5, 15 min) before and after, the chapters it executed and how it ended.
    CPU seconds barely move with other load on the machine; wall seconds do."""
    runs = [(k, bench.get(k)) for k in ("cold", "book", "warm", "fc_min")]
    runs += [(f"kernels: {m}", (bench.get("kernels") or {}).get(m)) for m in ("fresh", "warm")]
    runs += [(f"scale n={r.get('n_samples')}", r) for r in bench.get("scale", [])]
    rows = []
    for name, r in runs:
        if not r:
            continue
        end = (
            "failed: " + r["failed"]
            if r.get("failed")
            else "interrupted at the cap"
            if r.get("timed_out")
            else "completed"
        )
        rows.append(
            {
                "run": name,
                "wall (s)": r.get("seconds"),
                "CPU (s)": r.get("cpu_seconds"),
                "load before": r.get("load_before"),
                "load after": r.get("load_after"),
                "chapters executed": len(r.get("executed") or []),
                "ended": end,
            }
        )
    return pd.DataFrame(
        rows, columns=["run", "wall (s)", "CPU (s)", "load before", "load after", "chapters executed", "ended"]
    )


def kernel_speedup(bench: dict | None) -> float | None:
    """How many times faster the ``kernels`` phase ran with warm kernels (forked from the run's
    server, :mod:`helpers.engine.zygote`) than with fresh ones, wall seconds. None without both
    runs, when one failed, or when they did not execute the same chapters (no like for like)."""
    k = (bench or {}).get("kernels") or {}
    fresh, warm = (k.get(m) or {} for m in ("fresh", "warm"))
    if fresh.get("failed") or warm.get("failed") or not fresh.get("seconds") or not warm.get("seconds"):
        return None
    if sorted(fresh.get("executed") or []) != sorted(warm.get("executed") or []):
        return None
    return round(float(fresh["seconds"]) / float(warm["seconds"]), 2)


def kernel_text(bench: dict | None) -> str:
    """The sentence the benchmarks page shows under the ``kernels`` rows (see :func:`kernel_speedup`)."""
    speedup = kernel_speedup(bench)
    if speedup is None:
        return "Not measured: this benchmark has no like-for-like pair of kernels runs (`make bench`)."
    k = bench["kernels"]
    chapters = ", ".join(sorted(k["warm"]["executed"]))
    return (
        f"They re-ran {chapters}: {k['fresh']['seconds']:.1f} s with fresh kernels, "
        f"{k['warm']['seconds']:.1f} s with warm ones ({speedup:.1f} times faster)."
    )


def per_notebook(bench: dict) -> pd.DataFrame:
    """Seconds and peak memory of each notebook in the cold run and in each scaled run."""
    cold = bench["cold"]
    per = pd.DataFrame(
        {"cold (s)": pd.Series(cold["notebook_seconds"]), "peak MB": pd.Series(cold["notebook_peak_rss_mb"])}
    )
    for r in bench.get("scale", []):
        per[f"n={r['n_samples']} (s)"] = pd.Series(r["notebook_seconds"])
        per[f"n={r['n_samples']} peak MB"] = pd.Series(r["notebook_peak_rss_mb"])
    return per.rename_axis("notebook").sort_index()


def scaling(bench: dict) -> pd.DataFrame:
    """Long table of the scale runs: n_samples, notebook, seconds (what :func:`complexity` fits
    and the page plots)."""
    rows = [
        {"n_samples": r["n_samples"], "notebook": nb, "seconds": s}
        for r in bench.get("scale", [])
        for nb, s in r.get("notebook_seconds", {}).items()
        if s is not None
    ]
    return pd.DataFrame(rows, columns=["n_samples", "notebook", "seconds"])


def growth_exponent(ns, secs, overhead: float = 0.0) -> float | None:
    """The slope of log(seconds - overhead) against log(n) between the two largest sizes (where
    the fixed cost of a chapter matters least), or None with fewer than two usable sizes."""
    pts = sorted((n, s - overhead) for n, s in zip(ns, secs, strict=True) if s is not None and s - overhead > 0)
    if len(pts) < 2 or pts[-1][0] == pts[-2][0]:
        return None
    (n1, s1), (n2, s2) = pts[-2], pts[-1]
    return math.log(s2 / s1) / math.log(n2 / n1)


def bare_chapter_seconds(bench: dict | None) -> float | None:
    """The fixed cost of a chapter (kernel start, imports, saving): the fastest notebook of the
    cold run, or None without one."""
    secs = [v for v in ((bench or {}).get("cold") or {}).get("notebook_seconds", {}).values() if v is not None]
    return float(min(secs)) if secs else None


def complexity(bench: dict | None, overhead: float | None = 0.0) -> pd.DataFrame:
    """:data:`COMPLEXITY` beside the exponent of n measured between the two largest scale runs
    (``overhead``: a bare chapter's seconds, subtracted first), and whether they agree: within
    0.6 of the stated exponent, or, for a stated 0, seconds that grew less than 2x over the sizes.
    "not measured" without two scale runs."""
    long = scaling(bench) if bench else pd.DataFrame(columns=["n_samples", "notebook", "seconds"])
    overhead = overhead or 0.0
    rows = []
    for nb, (cost, why, k) in COMPLEXITY.items():
        sub = long[long["notebook"] == nb]
        e = growth_exponent(sub["n_samples"], sub["seconds"], overhead) if len(sub) else None
        if e is None:
            agrees = "not measured"
        elif k == 0:
            lo, hi = sub["seconds"].iloc[sub["n_samples"].argmin()], sub["seconds"].iloc[sub["n_samples"].argmax()]
            agrees = "yes" if hi < 2 * lo else "no"
        else:
            agrees = "yes" if abs(e - k) <= 0.6 else "no"
        rows.append(
            {
                "notebook": nb,
                "time": cost,
                "dominated by": why,
                "stated exponent of n": k,
                "measured exponent": None if e is None else round(e, 2),
                "agrees": agrees,
            }
        )
    return pd.DataFrame(rows)


#: R timings of the same steps, taken on the 2-core machine on another day (issue 14's table;
#: DESeq2's is read from the golden folder's timing.json when present)
R_SECONDS = {"limma-voom": 2.3, "GSVA (GO BP, Gaussian)": 58.0, "ORA (up and down)": 6.8, "GSEA (fgsea, GO BP)": 22.0}


def method_ratios(bench: dict, r_timing: dict | None = None) -> pd.DataFrame:
    """Our method ports against the Python package each replaces (same input, same run) and
    against R (``r_timing``: tests/data/reference/twin_full/timing.json for DESeq2; the others
    from :data:`R_SECONDS`; R measured on another day, so its ratio is indicative only)."""
    m = bench.get("methods") or {}
    rows = []
    d = m.get("deseq2") or {}
    r_deseq = (r_timing or {}).get("elapsed_min")
    ours = (d.get("ours") or {}).get("wall_seconds")
    rows.append(
        {
            "step": "DESeq2 Wald, 20,000 genes x 31 samples",
            "ours (s)": ours,
            "Python package": "pydeseq2",
            "package (s)": (d.get("pydeseq2") or {}).get("wall_seconds"),
            "times faster than the package": d.get("speedup_vs_pydeseq2_wall"),
            "R, measured on another day (s)": r_deseq,
            "times faster than R": None if not (ours and r_deseq) else round(r_deseq / ours, 1),
        }
    )
    gs = m.get("gsea") or {}
    ours = (gs.get("ours") or {}).get("wall_seconds")
    rows.append(
        {
            "step": f"GSEA prerank ({gs.get('problem', 'not measured')})",
            "ours (s)": ours,
            "Python package": "gseapy prerank",
            "package (s)": (gs.get("gseapy") or {}).get("wall_seconds"),
            "times faster than the package": gs.get("speedup_vs_gseapy_wall"),
            "R, measured on another day (s)": None,
            "times faster than R": None,
        }
    )
    gv = m.get("gsva") or {}
    ours = gv.get("best_s")
    r = R_SECONDS["GSVA (GO BP, Gaussian)"]
    rows.append(
        {
            "step": f"GSVA, {gv.get('genes', 20000)} genes x {gv.get('samples', 31)} samples, GO BP",
            "ours (s)": ours,
            "Python package": "none (R only)",
            "package (s)": None,
            "times faster than the package": None,
            "R, measured on another day (s)": r,
            "times faster than R": None if not ours else round(r / ours, 1),
        }
    )
    return pd.DataFrame(rows)


def freshness(bench: dict, root, book_revision: str) -> dict:
    """Whether the benchmark file describes the code of the book it is shown in: the same content
    hash (:func:`code_fingerprint`) is "current"; otherwise "older" (or "other code"), with a
    sentence giving the bench's date and revision beside the book's revision. (Not the book's
    build time: the page's numbers are the same for the same code and parameters.)"""
    same = bench.get("code_sha256") == code_fingerprint(root)
    b_when, b_rev = bench.get("when", "an unrecorded date"), bench.get("revision", "not recorded")
    if same:
        text = (
            f"The benchmark ran on {b_when} (revision {b_rev}) on the same code as this book "
            f"(revision {book_revision})."
        )
    else:
        text = (
            f"The benchmark is older than this book: it measured the code of {b_when} (revision "
            f"{b_rev}), and this book is built from revision {book_revision}, whose code differs; "
            "rerun `make bench` to measure this code."
        )
    return {"current": bool(same), "text": text}


def load_r_timing(path) -> dict | None:
    """R's DESeq2 timing shipped with the golden folder, or None when it is not there."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError("not valid JSON", path=path) from None


def time_against_n(bench: dict | None) -> pd.DataFrame:
    """Wide table n_samples x notebook of seconds (NaN where a chapter did not finish; empty
    without scale runs)."""
    long = scaling(bench or {})
    if long.empty:
        return long
    return (
        long.pivot(index="n_samples", columns="notebook", values="seconds")
        .sort_index()
        .astype(float)
        .replace({None: np.nan})
    )
