"""Execute the notebooks in order with papermill, incrementally, and build the book.

A notebook is skipped when its fingerprint is unchanged since its last successful run. The
fingerprint covers the notebook's source, its effective parameters, the results of the
notebooks it reads, the helper package's source and the shipped ``data/`` files. A notebook
writes into a staging folder that replaces ``results/<item>/`` only when it succeeds, so a
failure (or a kill) leaves the last good results and book in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.engine import paths
from helpers.engine.config import Params, check_paths, params_hash
from helpers.engine.errors import InputError
from helpers.engine.io import atomic_path, write_json
from helpers.engine import registry
from helpers.engine.registry import Step

PEAK_FILE = ".peak_rss_mb"
PEAK_CELL = (
    "import resource as _r, os as _o, pathlib as _p\n"
    "_d = _o.environ.get('HELPERS_STAGE_DIR')\n"
    "if _d:\n"
    "    _p.Path(_d, '%s').write_text(str(round(_r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024, 1)))\n" % PEAK_FILE
)
KERNEL_ENV = {"OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
STAMP = ".stamp.json"
KERNEL_START_TRIES = 3
KERNEL_START_ERRORS = ("Kernel died before replying to kernel_info", "Kernel didn't respond")


class NotebookFailed(RuntimeError):
    """A cell raised; the message names the notebook, the cell and the exception's last line."""


def _sha_file(p: Path, h) -> None:
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def tree_hash(root: Path, pattern: str = "**/*", skip=(STAMP,), cheap_under: Path | None = None) -> str:
    """Content hash of the files under ``root`` (names and bytes). Files below ``cheap_under``
    (large raw data) are fingerprinted by size and modification time instead of content."""
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    for p in sorted(root.glob(pattern)):
        if not p.is_file() or p.name in skip or "__pycache__" in p.parts:
            continue
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        if cheap_under is not None and cheap_under in p.parents:
            st = p.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            _sha_file(p, h)
    return h.hexdigest()


@dataclass
class Project:
    """Where a run reads and writes; defaults to this checkout."""

    root: Path = paths.ROOT
    results: Path = paths.RESULTS
    executed: Path = paths.EXECUTED
    steps: tuple | None = None  # default: the chapter registry, config/book.yml under root

    def __post_init__(self):
        self.root = Path(self.root)
        self.results = Path(self.results)
        self.executed = Path(self.executed)
        self.notebooks = self.root / "notebooks"
        self.config = self.root / "config" / "params.yml"
        self.build = self.root / "_build"
        if self.steps is None:
            self.steps = tuple(registry.steps(self.root / "config" / "book.yml"))

    def source(self, step: Step) -> Path:
        """The chapter's MyST text notebook (``notebooks/<stem>.md``)."""
        return self.notebooks / f"{step.stem}.md"

    def available_steps(self):
        return [s for s in self.steps if self.source(s).exists()]


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """A MyST text notebook as an nbformat notebook, with stable cell ids.

    jupytext gives cells no lasting identity, so each id is derived from the cell's type and
    text (plus a counter for identical cells): inserting or editing one cell leaves every other
    cell's id alone, and the executed copy stays byte-deterministic.
    """
    import jupytext

    nb = jupytext.read(path, fmt="md:myst")
    seen: dict = {}
    for cell in nb.cells:
        digest = hashlib.sha1((cell.cell_type + "\0" + cell.source).encode()).hexdigest()[:10]
        k = seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = f"c{digest}" + (f"-{k}" if k > 1 else "")
    nb.metadata.pop("jupytext", None)
    return nb


def _select(steps: list[Step], only: list[str] | None):
    """The steps to consider and the ones to force: ``only`` (prefixes such as "03") and what
    depends on them, plus their upstream (run only if stale)."""
    if not only:
        return steps, set()
    stems = [s.stem for s in steps]
    chosen = set()
    for o in only:
        match = [s for s in stems if s == o or s.startswith(f"{o}_") or s.split("_", 1)[0] == o]
        if not match:
            raise InputError(f"no notebook matches '{o}' (known: {', '.join(stems)})", where="NB")
        chosen.update(match)
    forced = set(chosen)
    # dependents (transitively)
    changed = True
    while changed:
        changed = False
        for s in steps:
            if s.stem not in chosen and any(r in chosen for r in s.reads):
                chosen.add(s.stem)
                changed = True
    # upstream (transitively)
    need = set(chosen)
    for s in reversed(steps):
        if s.stem in need:
            need.update(s.reads)
    return [s for s in steps if s.stem in need], forced


def fingerprint(project: Project, step: Step, params: dict) -> str:
    h = hashlib.sha256()
    h.update(project.source(step).read_bytes())
    h.update(params_hash(params).encode())
    for r in step.reads:
        dep = next((s for s in project.steps if s.stem == r), None)
        if dep is not None:
            h.update(tree_hash(project.results / dep.item).encode())
    for rel in step.files:
        f = project.root / rel
        h.update(rel.encode() + b"\0")
        if f.is_file():
            _sha_file(f, h)
    h.update(tree_hash(Path(__file__).resolve().parents[1], "**/*.py").encode())
    data = project.root / "data"
    h.update(tree_hash(data, cheap_under=data / "raw").encode())
    return h.hexdigest()


def _read_stamp(d: Path) -> dict:
    try:
        return json.loads((d / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _reproduce_cell(step: Step, profile: str, sets: dict, params: dict) -> nbformat.NotebookNode:
    cmd = f"make run NB={step.stem.split('_', 1)[0]}"
    if profile != "default":
        cmd += f" PROFILE={profile}"
    if sets:
        cmd += " SET='" + " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(sets.items())) + "'"
    shown = {k: v for k, v in sorted(params.items())}
    body = json.dumps(shown, indent=2, sort_keys=True, default=str)
    text = (
        "````{admonition} Reproduce this page\n:class: tip, dropdown\n"
        f"From the project folder:\n\n```bash\n{cmd}\n```\n\n"
        f"Effective parameters (profile `{profile}`):\n\n```json\n{body}\n```\n````"
    )
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["reproduce"]
    cell["id"] = "reproduce-this-page"
    return cell


def _postprocess(nb_path: Path, step: Step, profile: str, sets: dict, params: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells = [c for c in nb.cells if "helpers-peak-memory" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    # after the title cell
    pos = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(pos, _reproduce_cell(step, profile, sets, params))
    # papermill's per-cell timing metadata differs run to run; the book does not need it
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    return nb


def _cell_of(exc) -> str:
    n = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    return f"cell {n}" if n is not None else "a cell"


def execute_step(project: Project, step: Step, params: dict, profile: str, sets: dict) -> tuple:
    """Run one notebook into a staging folder; promote results and executed copy on success."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    project.results.mkdir(parents=True, exist_ok=True)
    project.executed.mkdir(parents=True, exist_ok=True)
    stage = project.results / f".staging-{step.item}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    tmp_nb = project.executed / f".{step.stem}.running.ipynb"
    env = dict(KERNEL_ENV)
    env.update(HELPERS_ROOT=str(project.root), HELPERS_RESULTS=str(project.results),
               HELPERS_STAGE_ITEM=step.item, HELPERS_STAGE_DIR=str(stage))
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    nb_in = read_notebook(project.source(step))
    probe = nbformat.v4.new_code_cell(PEAK_CELL)  # records the kernel's peak memory; removed afterwards
    probe.metadata["tags"] = ["helpers-peak-memory"]
    probe["id"] = "helpers-peak-memory"
    nb_in.cells.append(probe)
    t0 = time.perf_counter()
    try:
        for attempt in range(1, KERNEL_START_TRIES + 1):
            try:
                pm.execute_notebook(nb_in, str(tmp_nb), parameters=params, kernel_name="python3",
                                    cwd=str(project.root), progress_bar=False, log_output=False,
                                    request_save_on_cell_execute=False,
                                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
                break
            except RuntimeError as exc:
                # two kernels starting at once can race for the same free TCP port; the kernel
                # then dies before running anything, and starting it again is safe
                if attempt == KERNEL_START_TRIES or not any(m in str(exc) for m in KERNEL_START_ERRORS):
                    raise
                time.sleep(0.5 * attempt)
    except PapermillExecutionError as exc:
        failed = project.build / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        if tmp_nb.exists():
            os.replace(tmp_nb, failed / f"{step.stem}.ipynb")
        shutil.rmtree(stage, ignore_errors=True)
        last = (str(exc.evalue).strip().splitlines() or [""])[-1]
        raise NotebookFailed(f"{step.stem}: {_cell_of(exc)} raised {exc.ename}: {last} "
                             f"(executed copy kept in {os.path.relpath(failed / (step.stem + '.ipynb'), project.root)})") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        tmp_nb.unlink(missing_ok=True)
        raise
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    nb = _postprocess(tmp_nb, step, profile, sets, params)
    with atomic_path(project.executed / f"{step.stem}.ipynb") as t:
        nbformat.write(nb, str(t))
    tmp_nb.unlink(missing_ok=True)
    peak = stage / PEAK_FILE
    peak_mb = float(peak.read_text()) if peak.exists() else None
    peak.unlink(missing_ok=True)
    # promote staging -> results/<item>
    final = project.results / step.item
    old = project.results / f".old-{step.item}"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(stage, final)
    shutil.rmtree(old, ignore_errors=True)
    return seconds, peak_mb


def _worker(project: Project, step: Step, params: dict, profile: str, sets: dict):
    """Run one notebook in a worker process (its own environment for the kernel)."""
    return execute_step(project, step, params, profile, sets)


def run(project: Project | None = None, profile: str = "default", sets: dict | None = None,
        only: list[str] | None = None, force: bool = False, log=print, jobs: int = 1) -> dict:
    """Run the pipeline; returns {stem: "ran"|"skipped"} and writes results/run_log.json.

    With ``jobs > 1`` notebooks whose inputs are ready run side by side in worker processes (a
    notebook starts only when every notebook it reads has finished). A failure lets the running
    notebooks finish, starts nothing new, and raises :class:`NotebookFailed`.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    project = project or Project()
    sets = sets or {}
    params_file = Params(project.config)
    check_paths(params_file, project.root)
    params_file.check_sets(sets)
    steps = project.available_steps()
    if not steps:
        raise InputError("no notebooks found", path=project.notebooks)
    for s in steps:  # every notebook needs its block, validated before anything runs
        params_file.effective(s.stem, profile, sets, uses=s.globals)
    todo, forced = _select(steps, only)
    _clean_leftovers(project)
    index = {s.stem: i for i, s in enumerate(todo, 1)}
    n = len(todo)
    status, times, peaks = {}, {}, {}
    pending = list(todo)
    finished: set = set()
    running: dict = {}
    failure = None
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) if jobs > 1 else None

    def done(step, key, params, secs, peak_mb):
        # the key must describe the inputs as they were when this notebook ran
        write_json({"key": key, "profile": profile, "params": params, "seconds": round(secs, 2),
                    "peak_rss_mb": peak_mb}, project.results / step.item / STAMP)
        status[step.stem] = "ran"
        times[step.stem] = round(secs, 2)
        peaks[step.stem] = peak_mb
        finished.add(step.stem)

    try:
        while pending or running:
            for step in list(pending):
                if failure is not None or (pool is not None and len(running) >= jobs):
                    break
                if any(r in index and r not in finished for r in step.reads):
                    continue  # an input is still being computed
                pending.remove(step)
                params = params_file.effective(step.stem, profile, sets, uses=step.globals)
                key = fingerprint(project, step, params)
                stamp = _read_stamp(project.results / step.item)
                label = f"[{index[step.stem]}/{n}] {step.stem} ..."
                if (not force and step.stem not in forced and stamp.get("key") == key
                        and (project.executed / f"{step.stem}.ipynb").exists()):
                    log(f"{label} unchanged, skipped", flush=True)
                    status[step.stem] = "skipped"
                    times[step.stem] = stamp.get("seconds")
                    peaks[step.stem] = stamp.get("peak_rss_mb")
                    finished.add(step.stem)
                    continue
                if pool is None:
                    log(label, end=" ", flush=True)
                    try:
                        secs, peak_mb = execute_step(project, step, params, profile, sets)
                    except NotebookFailed:
                        log("FAILED", flush=True)
                        raise
                    done(step, key, params, secs, peak_mb)
                    log(f"{secs:.1f} s", flush=True)
                else:
                    running[pool.submit(_worker, project, step, params, profile, sets)] = (step, key, params)
            if not running:
                if pending and failure is None and pool is not None:
                    continue
                break
            completed, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in completed:
                step, key, params = running.pop(fut)
                label = f"[{index[step.stem]}/{n}] {step.stem} ..."
                try:
                    secs, peak_mb = fut.result()
                except NotebookFailed as exc:
                    log(f"{label} FAILED", flush=True)
                    failure = failure or exc
                    continue
                done(step, key, params, secs, peak_mb)
                log(f"{label} {secs:.1f} s", flush=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _write_run_log(project, profile, sets, times, peaks)
    if failure is not None:
        raise failure
    return status


def _clean_leftovers(project: Project) -> None:
    """Remove what an interrupted run left behind (staging folders, half-written notebooks)."""
    for d in list(project.results.glob(".staging-*")) + list(project.results.glob(".old-*")):
        shutil.rmtree(d, ignore_errors=True)
    for f in project.executed.glob(".*.running.ipynb"):
        f.unlink(missing_ok=True)


def _write_run_log(project: Project, profile: str, sets: dict, times: dict, peaks: dict) -> None:
    log_path = project.results / "run_log.json"
    prev = {}
    if log_path.exists():
        try:
            prev = json.loads(log_path.read_text())
        except ValueError:
            prev = {}
    prev.update({"profile": profile, "sets": sets})
    prev.setdefault("seconds", {}).update({k: v for k, v in times.items() if v is not None})
    prev.setdefault("peak_rss_mb", {}).update({k: v for k, v in peaks.items() if v is not None})
    if times or peaks or log_path.exists():
        write_json(prev, log_path)


def build_book(project: Project | None = None, log=print) -> Path:
    """Build the HTML book into ``_build/html`` (warnings are errors); the old book stays until the new one is complete."""
    project = project or Project()
    _install_mathjax(project)
    from helpers.engine.registry import write_toc

    if (project.root / "config" / "book.yml").exists():
        write_toc(project.root)  # the chapter list of _toc.yml follows config/book.yml
    nxt = project.build / ".next"
    shutil.rmtree(nxt, ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(project.root), "--path-output", str(nxt),
           "--warningiserror", "--keep-going", "--quiet"]
    env = dict(os.environ, HELPERS_ROOT=str(project.root), HELPERS_RESULTS=str(project.results))
    proc = subprocess.run(cmd, cwd=project.root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"jupyter-book build failed:\n{tail}")
    html = project.build / "html"
    old = project.build / ".old-html"
    shutil.rmtree(old, ignore_errors=True)
    if html.exists():
        os.replace(html, old)
    os.replace(nxt / "_build" / "html", html)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(nxt, ignore_errors=True)
    return html


def copy_checkout(dest, root=None) -> Path:
    """Copy the project as a fresh clone has it (git's tracked and not-ignored files) into
    ``dest``, linking ``node_modules``; used by the tests and the benchmarks."""
    root = Path(root or paths.ROOT)
    dest = Path(dest)
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for f in files:
        if f and (root / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, dest / f)
    if (root / "node_modules").exists() and not (dest / "node_modules").exists():
        (dest / "node_modules").symlink_to(root / "node_modules")
    return dest


def _install_mathjax(project: Project) -> None:
    """Copy MathJax 3 from the npm package installed by the set-up into the book's static folder."""
    target = project.root / "book" / "_static" / "mathjax"
    if (target / "tex-chtml.js").exists():
        return
    for cand in (project.root / "node_modules" / "mathjax" / "es5", paths.ROOT / "node_modules" / "mathjax" / "es5"):
        if (cand / "tex-chtml.js").exists():
            shutil.copytree(cand, target, dirs_exist_ok=True)
            return
    raise InputError("MathJax is not installed (run `make setup`, which runs `npm install mathjax@3`)",
                     path=project.root / "node_modules" / "mathjax")
