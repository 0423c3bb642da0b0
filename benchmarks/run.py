"""`make bench`: how long the book takes and how cost grows with the cohort.

Measures, each in a fresh copy of the project (as a clone has it) so nothing cached is reused:

1. cold full run of the default profile (every notebook + the book build), per-notebook seconds
   and peak memory (the runner records the kernel's peak RSS);
2. a warm rerun with nothing changed;
3. a rerun after changing one GSVA parameter;
4. the twin at 31, 124 and 310 samples (``n_scale`` 1, 4, 10; notebooks only).

Writes ``benchmarks/results.json`` (the book's benchmark page reads it). Goals (2-core machine):
cold run < 120 s, warm < 10 s, one parameter < 25 s, 310 samples < 5 min, peak memory < 4 GB.
Usage: ``python -m benchmarks.run [--quick] [--scales 1,4,10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from helpers.engine.io import write_json  # noqa: E402
from helpers.engine.runner import copy_checkout  # noqa: E402

GOALS = {
    "cold_seconds": 120,
    "warm_seconds": 10,
    "one_param_seconds": 25,
    "scale_310_seconds": 300,
    "peak_rss_mb": 4096,
}


def clone(dest: Path) -> Path:
    return copy_checkout(dest, ROOT)


def run(dest: Path, *args) -> tuple[float, dict, str]:
    env = dict(
        os.environ,
        HELPERS_ROOT=str(dest),
        HELPERS_RESULTS=str(dest / "results"),
        HELPERS_EXECUTED=str(dest / "book" / "executed"),
        OPENBLAS_NUM_THREADS="1",
        PYTHONHASHSEED="0",
    )
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "helpers", "run", *args], cwd=dest, env=env, capture_output=True, text=True
    )
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"run {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    log = json.loads((dest / "results" / "run_log.json").read_text())
    return secs, log, p.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="1,4,10", help="n_scale values for the scale runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    ap.add_argument(
        "--scale-only",
        action="store_true",
        help="keep the cold/warm/one-parameter results in --out and redo only the scale runs",
    )
    args = ap.parse_args(argv)
    if args.scale_only:
        return _scale_only(args)
    out = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "goals": GOALS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        dest = clone(Path(tmp) / "cold")
        secs, log, _ = run(dest, "--book")
        out["cold"] = {
            "seconds": round(secs, 1),
            "notebook_seconds": log["seconds"],
            "notebook_peak_rss_mb": log.get("peak_rss_mb", {}),
        }
        print(f"cold full run + book: {secs:.1f} s", flush=True)
        write_json(out, args.out)  # partial results survive an interrupted benchmark
        secs, log, stdout = run(dest)
        out["warm"] = {
            "seconds": round(secs, 1),
            "executed": sum(1 for l in stdout.splitlines() if l.startswith("[") and "skipped" not in l),
        }
        print(f"warm rerun (nothing changed): {secs:.1f} s", flush=True)
        write_json(out, args.out)
        secs, log, stdout = run(dest, "--set", "07_gsva.min_size=6", "--book")
        ran = [l.split()[1] for l in stdout.splitlines() if l.startswith("[") and "skipped" not in l]
        out["one_param"] = {"seconds": round(secs, 1), "change": "07_gsva.min_size=6", "re_executed": ran}
        print(f"one GSVA parameter changed: {secs:.1f} s ({', '.join(ran)})", flush=True)
        write_json(out, args.out)
        _scales(out, args, Path(tmp))
    _finish(out, args)
    return 0


def _scales(out: dict, args, tmp: Path) -> None:
    out["scale"] = []
    for k in [int(x) for x in args.scales.split(",") if x]:
        d = clone(tmp / f"scale{k}")
        secs, log, _ = run(d, "--set", f"01_cohort.simulate={{n_scale: {k}}}")
        out["scale"].append(
            {
                "n_scale": k,
                "n_samples": 31 * k,
                "seconds": round(secs, 1),
                "notebook_seconds": log["seconds"],
                "notebook_peak_rss_mb": log.get("peak_rss_mb", {}),
            }
        )
        print(f"scale {31 * k} samples: {secs:.1f} s", flush=True)
        write_json(out, args.out)
        shutil.rmtree(d, ignore_errors=True)


def _scale_only(args) -> int:
    out = json.loads(Path(args.out).read_text())
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        _scales(out, args, Path(tmp))
    _finish(out, args)
    return 0


def _finish(out: dict, args) -> None:
    peaks = [v for r in [out["cold"], *out["scale"]] for v in r["notebook_peak_rss_mb"].values() if v]
    out["max_peak_rss_mb"] = max(peaks) if peaks else None
    s310 = next((r["seconds"] for r in out["scale"] if r["n_samples"] == 310), None)
    out["verdict"] = {
        "cold": out["cold"]["seconds"] < GOALS["cold_seconds"],
        "warm": out["warm"]["seconds"] < GOALS["warm_seconds"],
        "one_param": out["one_param"]["seconds"] < GOALS["one_param_seconds"],
        "scale_310": None if s310 is None else s310 < GOALS["scale_310_seconds"],
        "memory": None if out["max_peak_rss_mb"] is None else out["max_peak_rss_mb"] < GOALS["peak_rss_mb"],
    }
    write_json(out, args.out)
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
