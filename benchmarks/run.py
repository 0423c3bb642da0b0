"""`make bench`: how long the book takes, how cost grows with the cohort, and how the method
ports compare with the Python packages they replace, all in ONE run.

Each phase runs in a fresh copy of the project (as a clone has it), so nothing cached is reused:

1. ``cold``: the default profile from nothing, every notebook (chapter 13 included) and the HTML
   book (``--jobs 2 --book``); per-notebook seconds and kernel peak memory from the runner's log;
2. ``book``: the HTML book alone, rebuilt from the executed notebooks (how much of ``cold`` Sphinx is);
3. ``warm``: a rerun with nothing changed (every notebook skipped);
4. ``fc_min``: a rerun after ``--set fc_min=2`` with the book (03 and the chapters reading it);
   then ``kernels``: the six light chapters of :data:`KERNEL_PHASE` re-run (``--only``: the
   chapters named, their upstream kept; one job) with fresh kernels (``HELPERS_KERNELS=fresh``)
   and with warm ones from the fork server (:mod:`helpers.engine.zygote`), each twice in turns,
   the faster of each kept;
5. ``scale``: the twin at 31, 124, 310 and 1,000 samples (``01_cohort.simulate.n_scale``; the same
   design proportions), the chapters that depend on the cohort (``--only 01``: 01 to 11; 00, 12 and
   13 do not read the cohort), no book; a run longer than its cap is interrupted and recorded with
   the chapters it finished;
6. ``methods``: our DESeq2 against pydeseq2 (``bench_deseq2``), our GSEA against gseapy's prerank
   (``bench_gsea.versus_gseapy``) and GSVA (``bench_gsva``), each in its own process.

Every phase records the load average before and after (the machine may be shared; wall time then
overstates, CPU time much less). Writes ``benchmarks/results.json``, which chapter 12 reads, with
the revision and a content hash of the code that was measured (so the page can tell when the file
is older than the book it is in). Usage: ``python -m benchmarks.run [--scales 1,4,10,1000/31]
[--skip methods,scale] [--cap-1000 600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from helpers.analysis import benchmarks as bm  # noqa: E402
from helpers.analysis.provenance import git_revision  # noqa: E402
from helpers.engine.io import write_json  # noqa: E402
from helpers.engine.runner import copy_checkout  # noqa: E402

#: n_scale values: 31, 124, 310 and 1,000 samples (1000/31 gives class sizes 613 + 258 + 97 + 32)
SCALES = ("1", "4", "10", "1000/31")
#: the chapters the kernels phase re-runs: the light ones, where start-up is most of the time
KERNEL_PHASE = ("00", "02", "09", "10", "11", "12")
PHASES = ("cold", "book", "warm", "fc_min", "kernels", "scale", "methods")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env(dest: Path, extra: dict | None = None) -> dict:
    return dict(
        os.environ,
        **(extra or {}),
        HELPERS_ROOT=str(dest),
        HELPERS_RESULTS=str(dest / "results"),
        HELPERS_EXECUTED=str(dest / "executed"),
        OPENBLAS_NUM_THREADS="1",
        PYTHONHASHSEED="0",
        # the copy's own helpers package, not the editable install: the bench measures the code as
        # it was copied, and edits made meanwhile in the checkout do not re-run a warm phase
        PYTHONPATH=str(dest / "src"),
    )


def run(dest: Path, *args, cap: float | None = None, cmd: str = "run", env: dict | None = None) -> dict:
    """``python -m helpers <cmd> <args>`` in ``dest``; wall and CPU seconds (children included), the
    load before and after, the run log and the notebooks that executed. Past ``cap`` seconds the
    run is interrupted (SIGINT: the runner writes its log of the finished notebooks) and marked
    ``timed_out``."""
    load0 = _load()
    c0 = os.times()
    t0 = time.perf_counter()
    # output to files, not pipes: a process the run leaves behind cannot hold the benchmark up
    out_f = tempfile.TemporaryFile(mode="w+")
    err_f = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(
        [sys.executable, "-m", "helpers", cmd, *args],
        cwd=dest,
        env=_env(dest, env),
        stdout=out_f,
        stderr=err_f,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        p.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        _kill_kernels(dest)
    out_f.seek(0)
    err_f.seek(0)
    stdout, stderr = out_f.read(), err_f.read()
    secs = time.perf_counter() - t0
    c1 = os.times()
    failed = None
    if p.returncode != 0 and not timed_out:  # recorded, and the benchmark goes on with the next phase
        failed = ((stderr.strip() or stdout.strip()).splitlines() or ["failed"])[-1]
        print(f"  {cmd} {' '.join(args)} failed: {failed}", file=sys.stderr, flush=True)
    log_path = dest / "results" / "run_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    ran = [line.split()[1] for line in stdout.splitlines() if line.startswith("[") and "skipped" not in line]
    return {
        "seconds": round(secs, 1),
        "cpu_seconds": round((c1.children_user + c1.children_system) - (c0.children_user + c0.children_system), 1),
        "load_before": load0,
        "load_after": _load(),
        "timed_out": timed_out,
        "failed": failed,
        "cap_seconds": cap,
        "executed": ran,
        "log": log,
    }


def _kill_kernels(dest: Path) -> None:
    """Kernels run in sessions of their own, so the run's process group does not reach them:
    end those a run interrupted at its cap left behind (found by the copy's folder, which is in
    their environment)."""
    mark = f"HELPERS_ROOT={dest}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _notebooks(r: dict, dest: Path) -> dict:
    """Seconds and kernel peak memory of the notebooks this run executed, from the stamps the
    runner promoted with their results (complete also for a run interrupted at its cap)."""
    from helpers.engine.registry import steps

    r.pop("log")
    item = {s.stem: s.item for s in steps(dest / "config" / "book.yml")}
    secs, peaks = {}, {}
    for stem in r["executed"]:
        stamp = dest / "results" / item.get(stem, stem) / ".stamp.json"
        if stamp.exists():
            st = json.loads(stamp.read_text())
            secs[stem], peaks[stem] = st.get("seconds"), st.get("peak_rss_mb")
    r["notebook_seconds"] = dict(sorted(secs.items()))
    r["notebook_peak_rss_mb"] = dict(sorted(peaks.items()))
    return r


def _scale_value(text: str) -> float:
    num, _, den = str(text).partition("/")
    return float(num) / float(den or 1)


def _method(script: str, *args, timeout: float = 1200) -> dict:
    """A method benchmark in its own process (one BLAS thread); its JSON on stdout."""
    load0 = _load()
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1], "load_before": load0}
    text = p.stdout
    out = json.loads(text[text.index("{") : text.rindex("}") + 1])
    out.update(load_before=load0, load_after=_load())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default=",".join(SCALES), help="n_scale values (a/b allowed) for the scale runs")
    ap.add_argument("--skip", default="", help=f"comma-separated phases to skip ({', '.join(PHASES)})")
    ap.add_argument("--cap", type=float, default=300.0, help="seconds after which a scale run is interrupted")
    ap.add_argument("--cap-1000", type=float, default=360.0, help="the same for the 1,000-sample run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    ap.add_argument("--keep", action="store_true", help="keep the phases of --out that this run skips")
    args = ap.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(PHASES)}")
    out = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_revision(ROOT),
        "code_sha256": bm.code_fingerprint(ROOT),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": _load(),
        },
        "goals": bm.GOALS,
    }
    if args.keep and Path(args.out).exists():
        kept = json.loads(Path(args.out).read_text())
        out = {**kept, **{k: v for k, v in out.items() if k not in ("when", "revision", "code_sha256", "machine")}}
        out.setdefault("resumed", []).append(
            {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "load": _load()}
        )

    def save():
        out["load_average_at_end"] = _load()
        out["verdict"] = bm.verdicts(out)
        write_json(out, args.out)  # after every phase: partial results survive an interrupted benchmark

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        if "cold" not in skip:
            dest = copy_checkout(tmp / "cold", ROOT)
            out["cold"] = _notebooks(run(dest, "--jobs", "2", "--book"), dest)
            print(f"cold full run + book: {out['cold']['seconds']:.1f} s", flush=True)
            save()
            if "book" not in skip:
                out["book"] = run(dest, cmd="book")
                out["book"].pop("log")
                print(f"book alone: {out['book']['seconds']:.1f} s", flush=True)
                save()
            if "warm" not in skip:
                out["warm"] = _notebooks(run(dest, "--jobs", "2"), dest)
                print(f"warm rerun (nothing changed): {out['warm']['seconds']:.1f} s", flush=True)
                save()
            if "fc_min" not in skip:
                r = _notebooks(run(dest, "--jobs", "2", "--set", "fc_min=2", "--book"), dest)
                r["change"] = "fc_min=2"
                out["fc_min"] = r
                print(f"fc_min=2: {r['seconds']:.1f} s ({', '.join(r['executed'])})", flush=True)
                save()
            if "kernels" not in skip:
                best: dict = {}
                for mode in ("fresh", "warm", "fresh", "warm"):
                    only = [a for nb in KERNEL_PHASE for a in ("--only", nb)]
                    # fc_min=2 as the phase before left it: the chapters upstream are up to date
                    r = run(dest, *only, "--set", "fc_min=2", env={"HELPERS_KERNELS": mode})
                    r.pop("log")
                    if mode not in best or r["seconds"] < best[mode]["seconds"]:
                        best[mode] = r
                out["kernels"] = {
                    **best,
                    "what": f"--only {' --only '.join(KERNEL_PHASE)} (re-run, upstream kept), one job",
                }
                print(
                    f"kernels: fresh {best['fresh']['seconds']:.1f} s, warm {best['warm']['seconds']:.1f} s", flush=True
                )
                save()
            shutil.rmtree(dest, ignore_errors=True)
        if "scale" not in skip:
            wanted = {bm.n_samples(_scale_value(x)) for x in args.scales.split(",") if x}
            out["scale"] = [r for r in out.get("scale", []) if args.keep and r.get("n_samples") not in wanted]
            for text in [x for x in args.scales.split(",") if x]:
                k = _scale_value(text)
                d = copy_checkout(tmp / f"scale{bm.n_samples(k)}", ROOT)
                cap = args.cap_1000 if round(31 * k) >= 1000 else args.cap
                r = run(d, "--jobs", "2", "--only", "01", "--set", f"01_cohort.simulate={{n_scale: {k!r}}}", cap=cap)
                r = _notebooks(r, d)
                r.update(n_scale=round(k, 6), n_samples=bm.n_samples(k))
                out["scale"].append(r)
                out["scale"].sort(key=lambda x: x.get("n_samples", 0))
                late = " (interrupted at the cap)" if r["timed_out"] else ""
                print(f"scale {r['n_samples']} samples: {r['seconds']:.1f} s{late}", flush=True)
                save()
                shutil.rmtree(d, ignore_errors=True)
    if "methods" not in skip:
        out["methods"] = {
            "deseq2": _method("bench_deseq2.py"),
            "gsea": _method("bench_gsea.py", "--gseapy", "--n-sets", "200"),
            "gsva": _method("bench_gsva.py", "--repeat", "1"),
        }
        print("method benchmarks done", flush=True)
    save()
    print(f"wrote {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
