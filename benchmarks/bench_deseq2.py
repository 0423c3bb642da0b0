"""Timing of DESeq2 on the full-size twin: helpers.methods.deseq2 vs pydeseq2 (vs R, recorded).

Data: ``tests/data/reference/twin_full`` (20,000 genes x 31 samples, 22 CR / 9 NR, all genes,
design ``~ response``), the input of the R golden. Both Python engines run in this process, one
after the other, single-threaded (``OPENBLAS_NUM_THREADS=1``; pydeseq2 with ``n_cpus=1``), each
the full ``DESeq()`` + ``results()`` equivalent (size factors, dispersions, Wald test, Cook's
refit, independent filtering). R's elapsed time for ``DESeq()`` + ``results()`` on the same data
is read from ``twin_full/timing.json`` (written by ``scripts/deseq2_twin.R``).

Run as a script to print JSON: ``python benchmarks/bench_deseq2.py [--reps N] [--no-pydeseq2]``.
Wall time is what a user waits; CPU time (``process_time``) is less sensitive to other load on a
shared machine, and the ratio is reported for both. Goal: ours >= 10x faster than pydeseq2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TWIN = ROOT / "tests" / "data" / "reference" / "twin_full"


def load_twin() -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = pd.read_csv(TWIN / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(TWIN / "samples.csv", index_col=0)
    return counts, samples


def run_ours(counts: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    from helpers.methods.deseq2 import deseq2

    return deseq2(counts, samples)


def run_pydeseq2(counts: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """pydeseq2 0.5 with the settings of the project's wrapper (one CPU, Cook's refit, quiet)."""
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    meta = pd.DataFrame(
        {"response": pd.Categorical(samples.loc[counts.columns, "response"].astype(str), categories=["NR", "CR"])},
        index=pd.Index([str(s) for s in counts.columns], name="sample"),
    )
    X = pd.DataFrame(counts.to_numpy().T.astype(np.int64), index=meta.index, columns=[str(g) for g in counts.index])
    inference = DefaultInference(n_cpus=1)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.getLogger("pydeseq2").setLevel(logging.ERROR)
        dds = DeseqDataSet(
            counts=X, metadata=meta, design="~response", refit_cooks=True, inference=inference, quiet=True
        )
        dds.deseq2()
        st = DeseqStats(dds, contrast=["response", "CR", "NR"], alpha=0.1, inference=inference, quiet=True)
        st.summary()
    return st.results_df


def _timed(fn, *args) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0, out


def bench(reps: int = 1, pydeseq2: bool = True) -> dict:
    """Seconds (best of ``reps``, wall and CPU) of each engine on the twin, and the ratios."""
    counts, samples = load_twin()
    out: dict = {
        "data": "tests/data/reference/twin_full",
        "n_genes": int(counts.shape[0]),
        "n_samples": int(counts.shape[1]),
        "cpus": os.cpu_count(),
        "reps": reps,
    }
    engines = [("ours", run_ours)] + ([("pydeseq2", run_pydeseq2)] if pydeseq2 else [])
    results = {}
    for name, fn in engines:
        walls, cpus = [], []
        for _ in range(reps):
            w, c, res = _timed(fn, counts, samples)
            walls.append(w)
            cpus.append(c)
        results[name] = res
        out[name] = {
            "wall_seconds": round(min(walls), 3),
            "cpu_seconds": round(min(cpus), 3),
            "wall_all": [round(x, 3) for x in walls],
        }
    timing = TWIN / "timing.json"
    if timing.exists():
        r = json.loads(timing.read_text())
        out["R"] = {
            "wall_seconds": r.get("elapsed_min"),
            "cpu_seconds": r.get("cpu_min"),
            "load_average_at_start": r.get("load_average_at_start"),
            "what": r.get("what"),
            "DESeq2": r.get("DESeq2"),
        }
        out["speedup_vs_R_wall"] = round(r["elapsed_min"] / out["ours"]["wall_seconds"], 1)
        if r.get("cpu_min"):
            out["speedup_vs_R_cpu"] = round(r["cpu_min"] / out["ours"]["cpu_seconds"], 1)
    if pydeseq2:
        out["speedup_vs_pydeseq2_wall"] = round(out["pydeseq2"]["wall_seconds"] / out["ours"]["wall_seconds"], 1)
        out["speedup_vs_pydeseq2_cpu"] = round(out["pydeseq2"]["cpu_seconds"] / out["ours"]["cpu_seconds"], 1)
        a, b = results["ours"], results["pydeseq2"]
        b = b.loc[[str(g) for g in a.index]]
        ok = np.isfinite(a["stat"].to_numpy()) & np.isfinite(b["stat"].to_numpy())
        out["agreement_with_pydeseq2"] = {
            "pearson_stat": round(float(np.corrcoef(a["stat"].to_numpy()[ok], b["stat"].to_numpy()[ok])[0, 1]), 6),
            "median_rel_diff_stat": float(
                np.median(
                    np.abs(a["stat"].to_numpy()[ok] - b["stat"].to_numpy()[ok]) / np.abs(b["stat"].to_numpy()[ok])
                )
            ),
        }
    out["goal"] = "ours >= 10x faster than pydeseq2"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=1, help="repetitions per engine (best is reported)")
    ap.add_argument("--no-pydeseq2", action="store_true", help="time only helpers.methods.deseq2")
    args = ap.parse_args(argv)
    res = bench(reps=args.reps, pydeseq2=not args.no_pydeseq2)
    print(json.dumps(res, indent=2))
    if not args.no_pydeseq2:
        print(
            f"ours {res['ours']['wall_seconds']:.2f} s, pydeseq2 {res['pydeseq2']['wall_seconds']:.2f} s: "
            f"{res['speedup_vs_pydeseq2_wall']:.1f}x faster (CPU time {res['speedup_vs_pydeseq2_cpu']:.1f}x)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
