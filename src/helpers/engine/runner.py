"""Execute the notebooks in order with papermill, incrementally, and build the book.

A notebook is skipped when its fingerprint is unchanged since its last successful run. The
fingerprint (:func:`fingerprint`) covers the notebook's source, its effective parameters, every
file or folder those parameters name (any string, at any depth, that is an existing path relative
to the project or absolute, anywhere on disk: files by content, folders by their tree; a
path-like string that names nothing yet counts as "missing"), the results of the notebooks it
reads, the registry's ``files`` (``data/raw`` for the cohort chapter, by size and time), the helper
package's source, the shipped ``data/`` files (without ``data/raw``) and the run-kind banner its
page shows.

A notebook reads the chapters of its registry ``reads`` and every chapter whose results a
parameter names (a path into ``results/<item>/`` or ``$HELPERS_RESULTS/<item>/``, such as
``09_published_model.model_name=results/pam/pam_model.json``): it runs after them, also with
``--jobs 2``, and re-runs when their results change; a cycle is a one-line error.

A failed run is never a silent mix. ``results/run_status.json`` records the latest run (id,
times, profile, overrides, state, the chapter that failed and why, and the ``stale`` chapters:
those it did not complete whose stamp does not match its parameters, that failed, or that read a
stale chapter). Every book or PDF build marks each stale page with a "Stale" admonition under its
title and puts a summary on the scorecard; a run that completes clears them (:func:`mark_pages`).

Safe to share and safe to interrupt:

- **One run at a time per checkout.** :func:`run` and :func:`build_book` hold an exclusive
  ``fcntl.flock`` on ``<checkout>/.helpers-run.lock`` (the kernel releases it when the process
  dies, however it dies). A second run exits at once with a one-line :class:`RunLocked` error
  naming the running process (pid, start time, command); it does not wait.
- **Names unique per run.** Staging folders, backups, journals and half-written notebooks carry
  the run's id (``<pid>-<process start time>``); the leftovers a run removes are only those of
  runs that are no longer alive. One folder has a fixed name, the book build's Sphinx cache
  ``_build/.book-cache`` (the doctrees name their images by path), used only under the run lock
  and valid only with its mark file, which a build writes last (see "the book: Sphinx's cache").
- **Promotion survives a kill at any instant.** A chapter's new results (with its
  ``numbers.json`` and its fingerprint stamp) and its executed notebook are staged completely,
  then a small journal is written atomically, then they are renamed into place. A kill before
  the journal leaves the last good results, notebook and stamp; a kill after it is finished by
  the next run (or book build), which rolls the promotion forward from the journal. The book's
  ``_build/html`` is swapped the same way. ``HELPERS_KILL_AT=<step>`` (see :data:`KILL_STEPS`)
  kills the process at one of these steps, for the tests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.engine import paths, registry, zygote
from helpers.engine.config import Params, check_paths, params_hash
from helpers.engine.errors import InputError
from helpers.engine.io import atomic_path, write_json
from helpers.engine.registry import Step

PEAK_FILE = ".peak_rss_mb"
PEAK_CELL = (
    "import resource as _r, os as _o, pathlib as _p\n"
    "_d = _o.environ.get('HELPERS_STAGE_DIR')\n"
    "if _d:\n"
    f"    _p.Path(_d, '{PEAK_FILE}').write_text(str(round(_r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024, 1)))\n"
)
KERNEL_ENV = {"OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
STAMP = ".stamp.json"
KERNEL_START_TRIES = 3
KERNEL_START_ERRORS = ("Kernel died before replying to kernel_info", "Kernel didn't respond")


LOCK_NAME = ".helpers-run.lock"
#: The steps of a promotion (chapter, then book) at which ``HELPERS_KILL_AT`` kills the process.
KILL_STEPS = (
    "staged",
    "journal-written",
    "results-moved-aside",
    "results-promoted",
    "notebook-promoted",
    "backup-removed",
    "book-built",
    "book-journal-written",
    "book-moved-aside",
    "book-promoted",
    "book-backup-removed",
)


class NotebookFailed(RuntimeError):
    """A cell raised; the message names the notebook, the cell and the exception's last line."""


class RunLocked(RuntimeError):
    """Another run (or book build) holds this checkout's lock; the message names it in one line."""


# ----------------------------------------------------------------------------- runs: ids, liveness, lock


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc/<pid>/stat field 22), or
    None if there is no such process. With the pid it identifies a process even after pid reuse."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc (not Linux): the pid alone
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"
    return data[data.rindex(")") + 2 :].split()[19]


def run_id() -> str:
    """This process's run id, ``<pid>-<start time>``: part of every temporary name it creates."""
    return f"{os.getpid()}-{_proc_start(os.getpid()) or 0}"


def run_alive(rid: str) -> bool:
    """True if the process of run id ``rid`` (see :func:`run_id`) is still running."""
    m = re.fullmatch(r"(\d+)-(\d+)", rid or "")
    if not m:
        return False
    return _proc_start(int(m.group(1))) == m.group(2)


def _kill_point(step: str) -> None:
    """Test hook: die here, as a kill would, if ``HELPERS_KILL_AT`` names this step."""
    if os.environ.get("HELPERS_KILL_AT") == step:
        os._exit(137)


_HELD: dict = {}  # lock path -> [fd, depth]: the lock is re-entrant within one process


def _lock_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that has not written its name yet"
    return f"pid {info.get('pid')}, started {info.get('started')}, command: {info.get('command')}"


@contextlib.contextmanager
def run_lock(project: Project | None = None):
    """Hold this checkout's run lock (re-entrant in one process); raise :class:`RunLocked` at once
    if another process holds it. The lock file names the holder (pid, start time, command)."""
    import fcntl

    project = project or Project()
    path = (project.root / LOCK_NAME).resolve()
    key = str(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(
            f"cannot create the run lock ({exc.strerror or exc}); is the checkout writable?", path=path
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunLocked(
            f"{path}: another run is in progress in this checkout ({_lock_holder(path)}); "
            "wait for it to finish, or stop that process"
        ) from None
    prog = "python -m helpers" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    info = {
        "pid": os.getpid(),
        "run": run_id(),
        "command": " ".join([prog, shlex.join(sys.argv[1:])]).strip(),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        del _HELD[key]
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _sha_file(p: Path, h) -> None:
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def tree_hash(
    root: Path, pattern: str = "**/*", skip=(STAMP,), cheap_under: Path | None = None, exclude=(), cheap=False
) -> str:
    """Content hash of the files under ``root`` (names and bytes). Files below ``cheap_under``
    (large raw data), or all of them with ``cheap``, are fingerprinted by size and modification
    time instead of content; ``exclude``: folders left out entirely."""
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    exclude = tuple(Path(e) for e in exclude)
    for p in sorted(root.glob(pattern)):
        if not p.is_file() or p.name in skip or "__pycache__" in p.parts:
            continue
        if any(e == p or e in p.parents for e in exclude):
            continue
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        if cheap or (cheap_under is not None and cheap_under in p.parents):
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


def _select(steps: list[Step], only: list[str] | None, reads: dict | None = None):
    """The steps to consider and the ones to force: ``only`` (prefixes such as "03") and what
    depends on them, plus their upstream (run only if stale). ``reads``: {stem: stems it reads}
    (default: the registry's)."""
    reads = reads or {s.stem: s.reads for s in steps}
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
            if s.stem not in chosen and any(r in chosen for r in reads[s.stem]):
                chosen.add(s.stem)
                changed = True
    # upstream (transitively)
    need = set(chosen)
    changed = True
    while changed:
        changed = False
        for s in steps:
            if s.stem in need and not set(reads[s.stem]) <= need:
                need.update(reads[s.stem])
                changed = True
    return [s for s in steps if s.stem in need], forced


# ----------------------------------------------------------------------------- what a chapter reads

_FILE_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,5}$")


def _path_like(text: str) -> bool:
    """A string that is meant as a path even when nothing exists there yet."""
    return "/" in text or text.startswith(("~", "./", "../")) or bool(_FILE_SUFFIX.search(text) and " " not in text)


def _strings(value, key: str = ""):
    """(dotted key, text) of every string under ``value`` (mappings and lists, any depth)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")
    elif isinstance(value, str) and value.strip():
        yield key, value


def _resolve(root: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else root / p))


def named_paths(root: Path, params: dict) -> list:
    """``(key, path, exists)`` for every string in ``params`` that names a file or folder: an
    existing path (relative to the project ``root`` or absolute, anywhere on disk), or a
    path-like string (a ``/``, ``~`` or a file suffix) that names nothing yet."""
    root = Path(root)
    out = []
    for key, text in _strings(params):
        try:
            p = _resolve(root, text)
            exists = p.exists()
        except (OSError, ValueError):
            continue
        if exists or _path_like(text):
            out.append((key, p, exists))
    return out


def _results_roots(project: Project) -> list:
    return list(
        dict.fromkeys([Path(os.path.abspath(project.results)), Path(os.path.abspath(project.root / "results"))])
    )


def param_reads(project: Project, step: Step, params: dict) -> dict:
    """{stem: key} of the chapters whose results the parameters of ``step`` name (a path into
    ``results/<item>/``, or into ``$HELPERS_RESULTS``, whether it exists yet or not)."""
    items = {s.item: s.stem for s in project.steps}
    found: dict = {}
    roots = _results_roots(project)
    for key, text in _strings(params):
        if not _path_like(text) and not Path(text).is_absolute():
            continue
        p = _resolve(project.root, text)
        for r in roots:
            try:
                rel = p.relative_to(r)
            except ValueError:
                continue
            if rel.parts and rel.parts[0] in items:
                found.setdefault(items[rel.parts[0]], key)
    return found


def chapter_reads(project: Project, steps, params_of) -> tuple[dict, dict]:
    """``({stem: stems it reads}, {stem: {stem read: parameter key}})``: the registry's ``reads``
    plus the chapters whose results its effective parameters (``params_of(step)``) name."""
    reads, why = {}, {}
    for s in steps:
        why[s.stem] = param_reads(project, s, params_of(s))
        reads[s.stem] = tuple(dict.fromkeys([*s.reads, *why[s.stem]]))
    return reads, why


def run_order(steps, reads: dict, why: dict | None = None) -> list:
    """``steps`` in an order where every chapter comes after the chapters it reads (registry
    order otherwise); a cycle is a one-line :class:`InputError` naming it and, where a
    parameter made the edge, that parameter (``why`` from :func:`chapter_reads`)."""
    by = {s.stem: s for s in steps}
    order, state = [], {}

    def visit(stem, trail):
        if state.get(stem) == "done":
            return
        if state.get(stem) == "open":
            cyc = trail[trail.index(stem) :] + [stem]
            made = []
            for a, b in zip(cyc, cyc[1:]):
                k = ((why or {}).get(a) or {}).get(b)
                if k:
                    made.append(f"{a}.{k} names the results of {b}")
            raise InputError(
                "the chapters read each other in a cycle ("
                + " reads ".join(cyc)
                + ")"
                + (f": {'; '.join(made)}; point that parameter elsewhere" if made else ""),
                where="parameters",
            )
        state[stem] = "open"
        for r in reads.get(stem, by[stem].reads):
            if r in by:
                visit(r, trail + [stem])
        state[stem] = "done"
        order.append(by[stem])

    for s in steps:
        visit(s.stem, [])
    return order


def _static_hash(project: Project) -> str:
    """The helper package's source and the shipped ``data/`` by content. ``data/raw/`` (a user's
    downloads) is not in it: only the chapters that declare it in their registry ``files`` read it
    (see :func:`fingerprint`), so a new sample sheet there does not re-run the whole book."""
    h = hashlib.sha256()
    pinned = os.environ.get("HELPERS_TEST_CODE_HASH")  # test hook: see the docstring of tests/test_runner.freeze_code
    h.update(pinned.encode() if pinned else tree_hash(Path(__file__).resolve().parents[1], "**/*.py").encode())
    data = project.root / "data"
    h.update(tree_hash(data, exclude=[data / "raw"]).encode())
    return h.hexdigest()


def fingerprint(project: Project, step: Step, params: dict, extra: str = "", static: str | None = None) -> str:
    """What a chapter's results depend on: its source, its effective parameters, the results of
    the chapters it reads, every file or folder its parameters name (by content; a named path
    that does not exist counts as "missing"), the registry's ``files`` (a file by content, a folder
    such as ``data/raw`` by size and time of its files), the helper package and ``data/`` without
    ``data/raw``; ``extra`` is anything else the page shows (the run-kind banner)."""
    h = hashlib.sha256()
    h.update(project.source(step).read_bytes())
    h.update(params_hash(params).encode())
    for r in step.reads:
        dep = next((s for s in project.steps if s.stem == r), None)
        if dep is not None:
            h.update(tree_hash(project.results / dep.item).encode())
    root = Path(os.path.abspath(project.root))
    named = named_paths(project.root, params)
    for key, p, exists in named:
        h.update(f"{key}\0{p}\0".encode())
        if not exists:
            h.update(b"missing")
        elif p == root or p in root.parents:
            h.update(b"contains-the-project")  # its tree would include these very results
        elif p.is_dir():
            h.update(b"tree:" + tree_hash(p).encode())
        else:
            h.update(b"file:")
            _sha_file(p, h)
    for rel in step.files:
        f = project.root / rel
        h.update(rel.encode() + b"\0")
        if f.is_file():
            _sha_file(f, h)
        elif f.is_dir():  # a folder of raw data (data/raw): by size and time, except what a parameter names
            h.update(tree_hash(f, cheap=True, exclude=[p for _, p, e in named if e]).encode())
    h.update(extra.encode())
    h.update((static or _static_hash(project)).encode())
    return h.hexdigest()


def _read_stamp(d: Path) -> dict:
    try:
        return json.loads((d / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _fence(text: str, at_least: int = 3) -> str:
    """A backtick fence longer than any backtick run in ``text`` (so ``text`` cannot close it)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(at_least, longest + 1)


#: A default value whose JSON is longer than this is summarised in the "Reproduce this page" box.
SHORT_DEFAULT = 80
_SAME = "(as in config/params.yml{what})"
_MISSING = object()


def shown_params(params, defaults, depth: int = 0):
    """``params`` for the "Reproduce this page" box: every value that differs from the
    defaults of ``config/params.yml`` in full; a default that is long (JSON over
    :data:`SHORT_DEFAULT` characters, such as the twin's ``simulate`` design) replaced by a short
    marker; inside a mapping that differs in part, the keys that differ and one marker for the
    rest."""
    if defaults is _MISSING:
        return params
    if params == defaults:
        if len(json.dumps(params, default=str)) <= SHORT_DEFAULT:
            return params
        if isinstance(params, dict):
            return _SAME.format(what=f": {len(params)} keys")
        return _SAME.format(what=f": {len(params)} items" if isinstance(params, list) else "")
    if isinstance(params, dict) and isinstance(defaults, dict):
        out = {}
        for k, v in params.items():
            d = defaults.get(k, _MISSING)
            if depth == 0 or v != d:  # the top level names every parameter
                out[k] = shown_params(v, d, depth + 1)
        same = len(params) - len(out)
        if same:
            out["..."] = _SAME.format(what=f": {same} more key{'s' if same > 1 else ''}")
        return out
    return params


def _reproduce_cell(
    step: Step, profile: str, sets: dict, params: dict, defaults: dict | None = None
) -> nbformat.NotebookNode:
    """The "Reproduce this page" box. Parameters and overrides are values, shown as text: the
    command is shell-quoted on one line, the parameters are JSON (no raw line breaks), and every
    fence is longer than any backtick run inside it, so no value can end a block or open markup.
    With ``defaults`` (the chapter's parameters as ``config/params.yml`` sets them), long values
    equal to their default are summarised (:func:`shown_params`)."""
    from helpers.engine.report import md_code, one_line

    cmd = f"make run NB={step.stem.split('_', 1)[0]}"
    if profile != "default":
        cmd += f" PROFILE={shlex.quote(one_line(profile))}"
    if sets:
        pairs = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(sets.items()))
        cmd += " SET=" + shlex.quote(one_line(pairs))
    shown = {k: v for k, v in sorted(params.items())}
    if defaults is not None:  # key by key: the box always shows every parameter's name
        shown = {k: shown_params(v, defaults.get(k, _MISSING), 1) for k, v in shown.items()}
    body = json.dumps(shown, indent=2, sort_keys=True, default=str)
    inner = _fence(cmd + "\n" + body)
    outer = "`" * (len(inner) + 1)
    note = (
        "; long values equal to config/params.yml's defaults are shortened"
        if defaults is not None
        and body != json.dumps(dict(sorted(params.items())), indent=2, sort_keys=True, default=str)
        else ""
    )
    text = (
        f"{outer}{{admonition}} Reproduce this page\n:class: tip, dropdown\n"
        f"From the project folder:\n\n{inner}bash\n{cmd}\n{inner}\n\n"
        f"Effective parameters (profile {md_code(profile)}{note}):\n\n{inner}json\n{body}\n{inner}\n{outer}"
    )
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["reproduce"]
    cell["id"] = "reproduce-this-page"
    return cell


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


def _split_title(nb) -> None:
    """Split a first Markdown cell after its ``# Title`` line when more text follows, so what the
    runner inserts under the title sits right under it."""
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return
    first = nb.cells[0]
    lines = first.source.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if at is None or not "\n".join(lines[at + 1 :]).strip():
        return
    rest = nbformat.v4.new_markdown_cell("\n".join(lines[at + 1 :]).strip("\n"))
    rest.metadata = json.loads(json.dumps(first.metadata))
    rest["id"] = f"{first.get('id', 'title')}-body"
    first.source = "\n".join(lines[: at + 1])
    nb.cells.insert(1, rest)


def _postprocess(
    nb_path: Path,
    step: Step,
    profile: str,
    sets: dict,
    params: dict,
    banner: str | None = None,
    defaults: dict | None = None,
) -> nbformat.NotebookNode:
    """The executed copy as the book shows it: parameters cells hidden, the run-kind ``banner``
    and the "Reproduce this page" box under the title, nothing that differs run to run."""
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells = [c for c in nb.cells if "helpers-peak-memory" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    # right under the title: a first cell that holds the title and more text is split after the title
    _split_title(nb)
    pos = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(pos, _reproduce_cell(step, profile, sets, params, defaults))
    if banner:
        cell = nbformat.v4.new_markdown_cell(banner)
        cell.metadata["tags"] = ["run-kind"]
        cell["id"] = "run-kind"
        nb.cells.insert(pos, cell)
    # what differs run to run and says nothing: papermill's per-cell timing metadata, the random
    # id of its injected cell, memory addresses in object reprs ("<... Styler at 0x7f...>")
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if isinstance(data.get("text/plain"), str):
                data["text/plain"] = _ADDRESS.sub(">", data["text/plain"])
    nb.metadata.pop("papermill", None)
    return nb


def numbers_link(project: Project, step: Step) -> str:
    """The page's ``numbers.json`` as a MyST download link when ``results/`` is inside the
    project (the book can serve it), else its path as text (the rule of ``report.Page.link``)."""
    from helpers.engine.report import md_code

    final = Path(os.path.abspath(project.results / step.item / "numbers.json"))
    try:
        rel = final.relative_to(Path(os.path.abspath(project.root))).as_posix()
    except ValueError:
        return md_code(str(final))
    if not re.fullmatch(r"[A-Za-z0-9_.+/-]+", rel):
        return md_code(rel)
    return f"{{download}}`numbers.json </{rel}>`"


def page_banner(project: Project, step: Step, kind, stage: Path | None = None) -> str:
    """The run-kind banner of one chapter page: ``kind`` is ``(kind, name)`` from
    :func:`helpers.engine.runkind.run_kind`, or None for a chapter that does not read the cohort;
    the page's ``numbers.json`` (if the chapter wrote one into ``stage``) is linked on the same line."""
    from helpers.engine import runkind

    has_numbers = stage is None or (Path(stage) / "numbers.json").exists()
    numbers = numbers_link(project, step) if has_numbers else None
    if kind is None:
        return runkind.banner("any", "", numbers=numbers)
    return runkind.banner(kind[0], kind[1], numbers=numbers)


def _cell_of(exc) -> str:
    n = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    return f"cell {n}" if n is not None else "a cell"


def _names(project: Project, step: Step, rid: str) -> dict:
    """Every path one promotion of ``step`` by run ``rid`` touches."""
    return {
        "stage": project.results / f".staging-{step.item}.{rid}",
        "final": project.results / step.item,
        "backup": project.results / f".old-{step.item}.{rid}",
        "nb_running": project.executed / f".{step.stem}.{rid}.running.ipynb",
        "nb_next": project.executed / f".{step.stem}.{rid}.next.ipynb",
        "nb_final": project.executed / f"{step.stem}.ipynb",
        "journal": project.results / f".promote-{step.item}.{rid}.json",
    }


def _finish_promotion(j: dict) -> None:
    """Roll a journaled promotion forward; safe to repeat from wherever a kill stopped it."""
    stage, final, backup = Path(j["stage"]), Path(j["final"]), Path(j["backup"])
    nb_next, nb_final = Path(j["nb_next"]), Path(j["nb_final"])
    if stage.exists():
        if final.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(final, backup)
            _kill_point("results-moved-aside")
        os.replace(stage, final)
        _kill_point("results-promoted")
    if nb_next.exists():
        os.replace(nb_next, nb_final)
        _kill_point("notebook-promoted")
    shutil.rmtree(backup, ignore_errors=True)
    _kill_point("backup-removed")


def _promote(names: dict, step: Step) -> None:
    """Staged results and notebook -> their places, all or nothing (journal first)."""
    shutil.rmtree(names["backup"], ignore_errors=True)
    _kill_point("staged")
    j = {
        "what": "chapter",
        "stem": step.stem,
        "item": step.item,
        **{k: str(v) for k, v in names.items() if k != "journal"},
    }
    write_json(j, names["journal"])
    _kill_point("journal-written")
    _finish_promotion(j)
    names["journal"].unlink(missing_ok=True)


def execute_step(
    project: Project,
    step: Step,
    params: dict,
    profile: str,
    sets: dict,
    key: str | None = None,
    rid: str | None = None,
    page: dict | None = None,
    kernel_env: dict | None = None,
) -> tuple:
    """Run one notebook into a staging folder; promote results, stamp and executed copy together
    on success (see the module docstring). ``key`` (the fingerprint) goes into the stamp.
    ``page``: what the runner adds to the executed copy, ``{"kind": (kind, name) or None,
    "defaults": the chapter's params.yml defaults}`` (see :func:`page_banner`). ``kernel_env``:
    :meth:`helpers.engine.zygote.Zygote.kernel_env` of the run's fork server, for a warm
    kernel; None starts papermill's standard ``python3`` kernel."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    rid = rid or run_id()
    names = _names(project, step, rid)
    project.results.mkdir(parents=True, exist_ok=True)
    project.executed.mkdir(parents=True, exist_ok=True)
    stage = names["stage"]
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    tmp_nb = names["nb_running"]
    env = dict(KERNEL_ENV)
    env.update(
        HELPERS_ROOT=str(project.root),
        HELPERS_RESULTS=str(project.results),
        HELPERS_STAGE_ITEM=step.item,
        HELPERS_STAGE_DIR=str(stage),
    )
    env.update(kernel_env or {})
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
                pm.execute_notebook(
                    nb_in,
                    str(tmp_nb),
                    parameters=params,
                    kernel_name=zygote.KERNEL_NAME if kernel_env else "python3",
                    cwd=str(project.root),
                    progress_bar=False,
                    log_output=False,
                    request_save_on_cell_execute=False,
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                )
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
        raise NotebookFailed(
            f"{step.stem}: {_cell_of(exc)} raised {exc.ename}: {last} "
            f"(executed copy kept in {os.path.relpath(failed / (step.stem + '.ipynb'), project.root)})"
        ) from None
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
    try:
        page = page or {}
        banner = page_banner(project, step, page.get("kind"), stage) if "kind" in page else None
        nb = _postprocess(tmp_nb, step, profile, sets, params, banner=banner, defaults=page.get("defaults"))
        with atomic_path(names["nb_next"]) as t:
            nbformat.write(nb, str(t))
        tmp_nb.unlink(missing_ok=True)
        peak = stage / PEAK_FILE
        peak_mb = float(peak.read_text()) if peak.exists() else None
        peak.unlink(missing_ok=True)
        if key is not None:  # the fingerprint travels with the results it describes
            write_json(
                {
                    "key": key,
                    "profile": profile,
                    "params": params,
                    "seconds": round(seconds, 2),
                    "peak_rss_mb": peak_mb,
                },
                stage / STAMP,
            )
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for f in (tmp_nb, names["nb_next"]):
            f.unlink(missing_ok=True)
        raise
    _promote(names, step)
    return seconds, peak_mb


def _worker_init() -> None:
    """A worker dies with the runner (Linux): a killed run leaves no worker promoting behind it."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _worker(
    project: Project, step: Step, params: dict, profile: str, sets: dict, key=None, rid=None, page=None, kernel_env=None
):
    """Run one notebook in a worker process (its own environment for the kernel)."""
    return execute_step(project, step, params, profile, sets, key=key, rid=rid, page=page, kernel_env=kernel_env)


# ----------------------------------------------------------------------------- recovery and leftovers

_RID = r"(?P<rid>\d+-\d+)"
_LEFTOVERS = {  # folder attribute -> patterns of temporary names that carry a run id
    "results": [
        re.compile(rf"^\.staging-.+\.{_RID}$"),
        re.compile(rf"^\.old-.+\.{_RID}$"),
        re.compile(rf"^\.promote-.+\.{_RID}\.json$"),
    ],
    "executed": [re.compile(rf"^\..+\.{_RID}\.(running|next)\.ipynb$")],
    "build": [
        re.compile(rf"^\.next-{_RID}$"),
        re.compile(rf"^\.old-html-{_RID}$"),
        re.compile(rf"^\.book-promote\.{_RID}\.json$"),
    ],
}


def _rid_of(name: str, where: str) -> str | None:
    for pat in _LEFTOVERS[where]:
        m = pat.match(name)
        if m:
            return m.group("rid")
    return None


def recover(project: Project | None = None, log=print) -> list:
    """Finish what killed runs left half done, then remove their leftovers (call it holding the
    run lock; :func:`run` and :func:`build_book` do). Returns one line per action.

    A journal of a run that is no longer alive is rolled forward: its chapter's (or book's) new
    files are complete, only the renames were interrupted. Staging folders, backups and
    half-written notebooks of dead runs without a journal are removed: the last good state is
    still in place. Anything of a live run is left alone. Names from before run ids existed
    (``.staging-<item>``, ``.old-<item>``, ``_build/.next``) are treated as dead, and a lone
    ``.old-<item>`` whose ``<item>`` is missing is moved back."""
    project = project or Project()
    done = []
    # 1. journals of dead runs: finish their promotions
    for d, where, prefix in ((project.results, "results", ".promote-"), (project.build, "build", ".book-promote.")):
        for jpath in sorted(d.glob(prefix + "*.json")) if d.is_dir() else []:
            rid = _rid_of(jpath.name, where)
            if rid is None or run_alive(rid):
                continue
            try:
                j = json.loads(jpath.read_text())
            except (OSError, ValueError):
                j = None
            if isinstance(j, dict) and j.get("what") == "chapter":
                _finish_promotion(j)
                done.append(f"finished the interrupted promotion of {j.get('stem')} (run {rid})")
            elif isinstance(j, dict) and j.get("what") == "book":
                _finish_book(j)
                done.append(f"finished the interrupted swap of the book (run {rid})")
            jpath.unlink(missing_ok=True)
    if _drop_unmarked_book_cache(project):
        done.append("removed the book cache of a build that did not finish")
    # 2. legacy names (no run id): restore a lone backup, drop the rest
    if project.results.is_dir():
        for old in sorted(project.results.glob(".old-*")):
            if _rid_of(old.name, "results") is not None:
                continue
            final = project.results / old.name[len(".old-") :]
            if not final.exists() and old.is_dir():
                os.replace(old, final)
                done.append(f"restored {final.name} from {old.name}")
            else:
                shutil.rmtree(old, ignore_errors=True)
        for st in project.results.glob(".staging-*"):
            if _rid_of(st.name, "results") is None:
                shutil.rmtree(st, ignore_errors=True)
    if project.executed.is_dir():
        for f in project.executed.glob(".*.running.ipynb"):
            if _rid_of(f.name, "executed") is None:
                f.unlink(missing_ok=True)
    for legacy in (project.build / ".next", project.build / ".old-html"):
        shutil.rmtree(legacy, ignore_errors=True)
    # 3. leftovers of dead runs
    for where, d in (("results", project.results), ("executed", project.executed), ("build", project.build)):
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            rid = _rid_of(f.name, where)
            if rid is None or run_alive(rid):
                continue
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f, ignore_errors=True)
            else:
                f.unlink(missing_ok=True)
    for line in done:
        log(f"recovered: {line}", flush=True)
    return done


def _clean_leftovers(project: Project) -> None:
    """Remove what interrupted runs left behind (see :func:`recover`, which it calls)."""
    recover(project, log=lambda *a, **k: None)


#: The chapter whose effective parameters say which kind of run this is (twin, public data, a
#: user's cohort); every chapter that reads its results (directly or not) carries that banner.
COHORT_STEM = "01_cohort"
#: Results folders of the pages that get the run-status summary when pages are stale.
SUMMARY_ITEMS = ("scorecard",)
STATUS = "run_status.json"


@dataclass
class Plan:
    """Everything the runner derives from the parameters before running: each chapter's
    effective parameters, what it reads (registry + parameters), the run order, the run kind
    its page shows and its ``config/params.yml`` defaults."""

    project: Project
    params: dict
    reads: dict
    why: dict
    order: list
    kinds: dict  # stem -> (kind, name), or None for a page that does not read the cohort; absent: no banner
    defaults: dict
    static: str | None = None

    def extra(self, step: Step) -> str:
        """The part of the page that is not computed by the notebook but depends on the run."""
        if step.stem not in self.kinds:
            return ""
        return json.dumps(["run-kind", self.kinds[step.stem]])

    def page(self, step: Step) -> dict:
        out = {"defaults": self.defaults.get(step.stem)}
        if step.stem in self.kinds:
            out["kind"] = self.kinds[step.stem]
        return out

    def key(self, step: Step) -> str:
        if self.static is None:
            self.static = _static_hash(self.project)
        return fingerprint(self.project, step, self.params[step.stem], self.extra(step), self.static)


def make_plan(project: Project, params_file: Params, profile: str, sets: dict) -> Plan:
    """The :class:`Plan` of a run (validates every chapter's parameters; a cycle of reads is an
    :class:`InputError`)."""
    from helpers.engine import runkind

    steps = project.available_steps()
    params = {s.stem: params_file.effective(s.stem, profile, sets, uses=s.globals) for s in steps}
    defaults = {}
    for s in steps:
        d = params_file.effective(s.stem, "default", {}, uses=s.globals)
        d.pop("profile", None)
        defaults[s.stem] = d
    reads, why = chapter_reads(project, steps, lambda st: params[st.stem])
    order = run_order(steps, reads, why)
    kinds: dict = {}
    if COHORT_STEM in params:
        kind = runkind.run_kind(params[COHORT_STEM])
        readers = {COHORT_STEM}
        for st in order:  # dependencies come first, so one pass finds every transitive reader
            if any(r in readers for r in reads[st.stem]):
                readers.add(st.stem)
        kinds = {st.stem: (kind if st.stem in readers else None) for st in steps}
    return Plan(project, params, reads, why, order, kinds, defaults)


def run(
    project: Project | None = None,
    profile: str = "default",
    sets: dict | None = None,
    only: list[str] | None = None,
    force: bool = False,
    log=print,
    jobs: int = 1,
) -> dict:
    """Run the pipeline; returns {stem: "ran"|"skipped"} and writes results/run_log.json and
    results/run_status.json (see :func:`write_status`).

    Chapters run in an order where each comes after every chapter it reads: the registry's
    ``reads`` and the chapters whose results its parameters name (``results/<item>/...``). With
    ``jobs > 1`` notebooks whose inputs are ready run side by side in worker processes (a
    notebook starts only when every notebook it reads has finished). A failure lets the running
    notebooks finish, starts nothing new, records which pages are now stale, and raises
    :class:`NotebookFailed`.

    The parameters are validated first; then the run takes the checkout's lock (another run
    holding it raises :class:`RunLocked`), finishes or cleans up what killed runs left
    (:func:`recover`), and runs.
    """
    project = project or Project()
    sets = sets or {}
    params_file = Params(project.config)
    check_paths(params_file, project.root)
    params_file.check_sets(sets)
    steps = project.available_steps()
    if not steps:
        raise InputError("no notebooks found", path=project.notebooks)
    plan = make_plan(project, params_file, profile, sets)  # every block validated before anything runs
    zygote.enabled()  # a bad HELPERS_KERNELS is a one-line error before anything runs
    todo, forced = _select(plan.order, only, plan.reads)
    with run_lock(project):
        recover(project, log=log)
        return _run_locked(project, plan, todo, forced, profile, sets, force, log, jobs)


def critical_path_order(todo: list, reads: dict, stamps: dict) -> list:
    """``todo`` sorted longest critical path first (stable): a step's path is its expected
    seconds (its last run's, else the registry's ``seconds`` hint) plus the longest path among
    the steps that read it. The run starts, among the steps whose inputs are ready, the first in
    this order, so with two jobs a long chapter that nothing waits on (13) no longer starts last.
    Order changes no result: each chapter reads only finished results."""
    expected = {}
    for s in todo:
        last = (stamps.get(s.stem) or {}).get("seconds")
        expected[s.stem] = float(last) if isinstance(last, (int, float)) and last >= 0 else s.seconds
    path: dict = {}
    for s in reversed(todo):  # todo is in dependency order: readers come later
        readers = [t.stem for t in todo if s.stem in reads.get(t.stem, ())]
        path[s.stem] = expected[s.stem] + max((path[r] for r in readers), default=0.0)
    return sorted(todo, key=lambda s: -path[s.stem])


def _start_zygote(project: Project, log):
    """The run's kernel fork server (:mod:`helpers.engine.zygote`), or None when
    ``HELPERS_KERNELS=fresh`` or when it cannot start (then every chapter gets a fresh kernel)."""
    if not zygote.enabled():
        return None
    zygote.sweep_stale()
    try:
        return zygote.Zygote({**os.environ, **KERNEL_ENV}, project.root)
    except OSError as exc:
        log(f"warm kernels off for this run: {exc}", flush=True)
        return None


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _run_locked(project, plan, todo, forced, profile, sets, force, log, jobs) -> dict:
    import concurrent.futures as cf
    import multiprocessing as mp

    rid = run_id()
    index = {s.stem: i for i, s in enumerate(todo, 1)}
    n = len(todo)
    status, times, peaks = {}, {}, {}
    pending = critical_path_order(todo, plan.reads, {s.stem: _read_stamp(project.results / s.item) for s in todo})
    finished: set = set()
    failed: dict = {}  # stem -> cause (one line)
    running: dict = {}
    failure = None
    record = {"run": rid, "started": _now(), "profile": profile, "sets": sets}
    write_status(project, {**record, "state": "running", "done": []})
    pool = (
        cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)
        if jobs > 1
        else None
    )
    server: list = []  # the run's kernel fork server, started when the first chapter runs

    def kernel_env():
        if not server:
            server.append(_start_zygote(project, log))
        return server[0].kernel_env() if server[0] is not None else None

    def done(step, secs, peak_mb, how="ran"):
        # the stamp (key = the inputs as they were when this notebook ran) was promoted with the results
        status[step.stem] = how
        times[step.stem] = round(secs, 2) if how == "ran" else secs
        peaks[step.stem] = peak_mb
        finished.add(step.stem)
        write_status(project, {**record, "state": "running", "done": sorted(finished)})

    state = "interrupted"
    try:
        while pending or running:
            for step in list(pending):
                if failure is not None or (pool is not None and len(running) >= jobs):
                    break
                if any(r in index and r not in finished for r in plan.reads[step.stem]):
                    continue  # an input is still being computed
                pending.remove(step)
                params = plan.params[step.stem]
                key = plan.key(step)
                stamp = _read_stamp(project.results / step.item)
                label = f"[{index[step.stem]}/{n}] {step.stem} ..."
                if (
                    not force
                    and step.stem not in forced
                    and stamp.get("key") == key
                    and (project.executed / f"{step.stem}.ipynb").exists()
                ):
                    log(f"{label} unchanged, skipped", flush=True)
                    done(step, stamp.get("seconds"), stamp.get("peak_rss_mb"), how="skipped")
                    continue
                if pool is None:
                    log(label, end=" ", flush=True)
                    try:
                        secs, peak_mb = execute_step(
                            project,
                            step,
                            params,
                            profile,
                            sets,
                            key=key,
                            rid=rid,
                            page=plan.page(step),
                            kernel_env=kernel_env(),
                        )
                    except NotebookFailed as exc:
                        log("FAILED", flush=True)
                        failed[step.stem] = str(exc)
                        failure = exc
                        break
                    done(step, secs, peak_mb)
                    log(f"{secs:.1f} s", flush=True)
                else:
                    fut = pool.submit(
                        _worker, project, step, params, profile, sets, key, rid, plan.page(step), kernel_env()
                    )
                    running[fut] = step
            if failure is not None and pool is None:
                break
            if not running:
                if pending and failure is None and pool is not None:
                    continue
                break
            completed, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in completed:
                step = running.pop(fut)
                label = f"[{index[step.stem]}/{n}] {step.stem} ..."
                try:
                    secs, peak_mb = fut.result()
                except NotebookFailed as exc:
                    log(f"{label} FAILED", flush=True)
                    failed[step.stem] = str(exc)
                    failure = failure or exc
                    continue
                done(step, secs, peak_mb)
                log(f"{label} {secs:.1f} s", flush=True)
        state = "failed" if failure is not None else "ok"
    except BaseException as exc:
        record["cause"] = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if server and server[0] is not None:
            server[0].close()
        _write_run_log(project, profile, sets, times, peaks)
        if failed:
            first = next(iter(failed))
            record.update(failed=first, cause=failed[first], failed_all=sorted(failed))
        try:
            stale = stale_pages(plan, finished, set(failed))
        except Exception as exc:  # the status must still be written; every page not done is stale
            stale = [s.stem for s in plan.order if s.stem not in finished]
            record.setdefault("cause", f"staleness not computed: {type(exc).__name__}: {exc}")
        write_status(project, {**record, "state": state, "finished": _now(), "done": sorted(finished), "stale": stale})
    if failure is not None:
        raise failure
    return status


# ----------------------------------------------------------------------------- run status: stale pages


def stale_pages(plan: Plan, done: set, failed: set) -> list:
    """The chapters whose page does not show what the latest run's parameters give: a chapter
    the run did not complete (``done``) is stale if it failed, if a chapter it reads is stale, or
    if its stamp's fingerprint differs from the one the run's inputs give (or it has none)."""
    stale: set = set()
    project = plan.project
    for s in plan.order:
        if s.stem in done:
            continue
        if (
            s.stem in failed
            or any(r in stale for r in plan.reads[s.stem])
            or not (project.executed / f"{s.stem}.ipynb").exists()
            or _read_stamp(project.results / s.item).get("key") != plan.key(s)
        ):
            stale.add(s.stem)
    return [s.stem for s in plan.order if s.stem in stale]


def write_status(project: Project, status: dict) -> None:
    """``results/run_status.json``: the latest run's id, start (and end) time, profile and
    overrides, state (``running``, ``ok``, ``failed``, ``interrupted``), the chapters it
    completed (``done``), the chapter that failed and why, and the ``stale`` pages."""
    project.results.mkdir(parents=True, exist_ok=True)
    write_json(status, project.results / STATUS)


def read_status(project: Project) -> dict:
    """The latest run's status; a run recorded as running whose process is gone was
    interrupted (killed): its stale pages are worked out now, from its parameters."""
    try:
        st = json.loads((project.results / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(st, dict):
        return {}
    if st.get("state") == "running" and not run_alive(str(st.get("run"))):
        st["state"] = "interrupted"
        st.setdefault("cause", "the process stopped before the run finished")
        try:
            plan = make_plan(project, Params(project.config), st.get("profile", "default"), st.get("sets") or {})
            st["stale"] = stale_pages(plan, set(st.get("done") or []), set())
        except (InputError, OSError, ValueError) as exc:
            st["stale"] = [s.stem for s in project.available_steps() if s.stem not in set(st.get("done") or [])]
            st["cause"] += f" (and its parameters no longer load: {exc})"
    return st


RUN_STATUS_TAG = "run-status"


def _status_cells(step: Step, st: dict, steps) -> list:
    """The marks one executed page gets from the latest run's status (none when it is fresh)."""
    from helpers.engine.report import md_code, md_text

    stale = [s for s in st.get("stale") or [] if any(x.stem == s for x in steps)]
    if not stale:
        return []
    when = f"run {md_text(st.get('run', '?'))}, started {md_text(st.get('started', '?'))}"
    state, failed = st.get("state"), st.get("failed")
    cause = str(st.get("cause") or "no cause recorded")
    if failed and cause.startswith(f"{failed}: "):
        cause = cause[len(failed) + 2 :]
    cause = md_text(cause)
    if state == "failed" and failed:
        what = f"the latest run ({when}) failed at {md_code(failed)}: {cause}"
    elif state == "interrupted":
        what = f"the latest run ({when}) was interrupted before it finished: {cause}"
    else:
        what = f"the latest run ({when}) did not re-run it although its inputs changed"
    cells = []
    if step.stem in stale:
        mine = " This is the chapter that failed." if step.stem == failed else ""
        text = (
            "```{admonition} Stale: computed by an earlier run\n:class: danger run-status run-status-stale\n"
            f"This page shows the results of an earlier run: {what}.{mine} Fix the cause and run "
            "`make book` again; a run that completes removes this mark.\n```"
        )
        cells.append(("run-status-stale", text))
    if step.item in SUMMARY_ITEMS:
        links = ", ".join(f"{{doc}}`{s}`" for s in stale)
        text = (
            "```{admonition} The book mixes runs: some pages are stale\n:class: danger run-status run-status-summary\n"
            f"Not every page comes from the latest run: {what}. Stale pages ({len(stale)}), "
            f"each marked at its top: {links}. The other pages are up to date.\n```"
        )
        cells.append(("run-status-summary", text))
    return cells


def mark_pages(project: Project | None = None, log=print) -> list:
    """Put (or take off) the stale marks of the latest run's status on the executed pages: a
    "Stale" admonition under the title of every stale page and a summary on the scorecard; a
    completed run leaves no mark. Rewrites only pages whose marks change; returns the stale stems."""
    project = project or Project()
    st = read_status(project)
    steps = project.available_steps()
    for step in steps:
        path = project.executed / f"{step.stem}.ipynb"
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        nb.cells = [c for c in nb.cells if RUN_STATUS_TAG not in c.metadata.get("tags", [])]
        pos = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        for cid, text in reversed(_status_cells(step, st, steps)):
            cell = nbformat.v4.new_markdown_cell(text)
            cell.metadata["tags"] = [RUN_STATUS_TAG]
            cell["id"] = cid
            nb.cells.insert(pos, cell)
        after = nbformat.writes(nb)
        if after != before:
            with atomic_path(path) as t:
                Path(t).write_text(after)
    stale = [s for s in st.get("stale") or [] if any(x.stem == s for x in steps)]
    if stale:
        log(f"stale pages (marked in the book): {', '.join(stale)}", flush=True)
    return stale


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


#: jupyter-book's own entry point, run after two things that spare the build CPU time: `import helpers`
#: (see helpers/__init__.py: no 2 s import of rfc3987_syntax through nbformat's jsonschema) and one
#: scan of the installed packages' entry points for the whole build. pybtex looks its plugins up
#: through ``importlib.metadata.entry_points(group=..., name=...)`` for every citation it formats,
#: and each call reads the metadata of every installed distribution again (about 35 ms, some 50
#: times a build); the packages do not change during a build, so the one scan gives the same answer.
_JB_MAIN = (
    "import sys, helpers, importlib.metadata as _m\n"
    "_eps = _m.entry_points()\n"
    "_m.entry_points = lambda **params: _eps.select(**params)\n"
    "from jupyter_book.cli.main import main\n"
    "sys.argv[0] = 'jupyter-book'\n"
    "sys.exit(main())\n"
)


def _jupyter_book(project: Project, out: Path) -> None:
    """``jupyter-book build`` of the project into ``out`` (warnings are errors)."""
    cmd = [
        sys.executable,
        "-c",
        _JB_MAIN,
        "build",
        str(project.root),
        "--path-output",
        str(out),
        "--warningiserror",
        "--keep-going",
        "--quiet",
    ]
    env = dict(os.environ, HELPERS_ROOT=str(project.root), HELPERS_RESULTS=str(project.results))
    proc = subprocess.run(cmd, cwd=project.root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"jupyter-book build failed:\n{tail}")


# ----------------------------------------------------------------------------- the book: Sphinx's cache
#
# A from-scratch build reads (parses) and writes every page. Sphinx can skip both for the pages
# whose source did not change if it finds, from the last build, its environment (``.doctrees``:
# the pickled environment and one pickled doctree per page), myst-nb's ``jupyter_execute``
# folder (the notebooks' output images the doctrees point at) and the HTML it wrote. The first
# two are kept in ``_build/.book-cache`` (the build's output folder: the doctrees name the images
# by their path, so the folder cannot move between builds); the HTML is copied in from the
# current ``_build/html`` before each build (a real copy: Sphinx rewrites files in place, and the
# old book must not change until the swap). What the copy leaves out or removes afterwards makes
# the result the same as a from-scratch build (tests/test_book_cache.py compares the bytes):
#
# - ``_static/mystnb.<hash>.css`` is left out: a from-scratch build writes it only after the
#   pages (myst-nb, at "build-finished"), and a page written while it exists would link it with a
#   ``?v=<checksum>`` that a from-scratch page does not have. Sphinx copies the rest of
#   ``_static`` anew whenever it writes a page (and the packages that provide it are in the key).
# - Images and downloads no page links any more (a figure's file is named by its content) are
#   deleted after the build (:func:`_prune_unlinked`).
# - The search index: Sphinx loads the old ``searchindex.js``, drops the pages it re-writes and
#   adds them again, which leaves a word no page has any more as an empty list, where a
#   from-scratch index has no entry (:func:`_clean_search_index` removes them). It does not load
#   the old index entries (``{index}``): if the old book has any, every page is written.
# - A page Sphinx skips shows other pages' titles (the navigation, previous/next, ``{doc}``
#   links), labels and figure numbers, and Sphinx does not re-write it when those change. So when
#   any notebook's outline (:func:`_book_outlines`: headings, targets, directives and their names,
#   in the text and in Markdown outputs) differs from the last build's, no HTML is copied: every
#   page is written, only the reading stays incremental. Pages in ``book/`` are in the key.
#
# The cache is used only when the mark ``.book-cache/cache.json`` exists and names the same key
# (:func:`_book_key`: everything Sphinx itself does not track). The mark is removed before a
# build touches the folder and written only after a build that succeeded with warnings as
# errors; a folder without the mark (a build that failed or was killed) is deleted by the next
# build or by :func:`recover`. So a kill at any instant leaves a valid cache or none. A failed
# build leaves none: it may have pickled pages whose warnings a later build would not repeat.

BOOK_CACHE = ".book-cache"
BOOK_CACHE_MARK = "cache.json"
_BOOK_CACHE_FORMAT = 1
#: Kill points inside the build itself (before the swap of :data:`KILL_STEPS`): after the cache
#: was opened (its mark removed) and before jupyter-book starts (tests/test_book_cache.py).
BOOK_CACHE_KILL_STEPS = ("book-cache-opened",)


def _installed_distributions() -> list:
    """The names (with versions) of the installed distributions' metadata folders: jupyter-book,
    Sphinx, its extensions and themes, and everything else in the environment's site-packages."""
    import sysconfig

    names = set()
    for key in ("purelib", "platlib"):
        d = Path(sysconfig.get_paths()[key])
        with contextlib.suppress(OSError):
            names.update(p.name for p in d.iterdir() if p.name.endswith((".dist-info", ".egg-info")))
    return sorted(names)


def _book_key(project: Project) -> str:
    """What the book depends on that Sphinx's incremental build does not track: ``_config.yml``,
    ``_toc.yml``, ``book/`` by content (pages, ``_ext``, templates, ``_static``, the
    bibliography), the helper package's source (the book's extension imports it), the installed
    distributions and their versions, the Python version and the folders the build reads."""
    h = hashlib.sha256(f"book-cache-{_BOOK_CACHE_FORMAT}\0{sys.version}\0".encode())
    for name in ("_config.yml", "_toc.yml"):
        f = project.root / name
        h.update(name.encode() + b"\0")
        if f.is_file():
            _sha_file(f, h)
        else:
            h.update(b"absent")
    h.update(tree_hash(project.root / "book", skip=()).encode())
    pinned = os.environ.get("HELPERS_TEST_CODE_HASH")  # test hook: see tests/test_runner.freeze_code
    h.update(pinned.encode() if pinned else tree_hash(Path(__file__).resolve().parents[1], "**/*.py").encode())
    h.update("\0".join(_installed_distributions()).encode())
    for p in (project.root, project.results):
        h.update(os.path.abspath(p).encode() + b"\0")
    return h.hexdigest()


def _book_sources(project: Project) -> dict:
    """The executed notebooks the book renders: relative path -> [sha256, mtime in ns]."""
    out = {}
    d = project.root / "executed"
    for p in sorted(d.glob("*.ipynb")) if d.is_dir() else []:
        if p.name.startswith("."):
            continue
        h = hashlib.sha256()
        _sha_file(p, h)
        out[p.relative_to(project.root).as_posix()] = [h.hexdigest(), p.stat().st_mtime_ns]
    return out


def _book_cache_mark(cache: Path) -> dict | None:
    try:
        mark = json.loads((cache / BOOK_CACHE_MARK).read_text())
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


_OUTLINE = re.compile(r"^ {0,3}(#{1,6}\s.*|\(.+\)=\s*|(`{3,}|~{3,}|:{3,})\s*\{.*|:[A-Za-z_-]+:.*|=+\s*|-+\s*)$")


def _book_outlines(project: Project) -> dict:
    """Per executed notebook, a hash of what other pages can show of it: its headings (ATX and
    setext), MyST targets, directive lines and directive options (names, labels, captions),
    from its Markdown cells and its Markdown outputs. Conservative: any such line changing
    counts, even one no other page uses."""
    out = {}
    d = project.root / "executed"
    for p in sorted(d.glob("*.ipynb")) if d.is_dir() else []:
        if p.name.startswith("."):
            continue
        try:
            nb = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[p.name] = "unreadable"
            continue
        h = hashlib.sha256()
        for cell in nb.get("cells") or []:
            texts = [cell.get("source")] if cell.get("cell_type") == "markdown" else []
            texts += [(o.get("data") or {}).get("text/markdown") for o in cell.get("outputs") or []]
            for t in texts:
                t = "".join(t) if isinstance(t, list) else (t or "")
                prev = ""
                for line in t.splitlines():
                    if _OUTLINE.match(line):
                        h.update(prev.encode() + b"\n" + line.encode() + b"\0")
                    prev = line
            h.update(b"\1")
        out[p.relative_to(project.root).as_posix()] = h.hexdigest()
    return out


#: Files of ``_static`` that a build writes after its pages (see the comment above :data:`BOOK_CACHE`).
_LATE_STATIC = ("mystnb.*.css",)


def _copy_html(src: Path, dest: Path) -> None:
    """A real copy (times kept: Sphinx compares them with the sources') of the built book,
    without the files of :data:`_LATE_STATIC`."""
    shutil.copytree(src, dest)
    for pattern in _LATE_STATIC:
        for f in (dest / "_static").glob(pattern):
            f.unlink()


_LINKED = re.compile(rb"""(?:src|href)=["']([^"'#?]*?(_images|_downloads)/[^"'#?]+)""")


def _prune_unlinked(html: Path) -> list:
    """Delete the files under ``_images`` and ``_downloads`` that no page of ``html`` links
    (those an earlier build left and this one did not write); returns their paths."""
    import html as _html
    from urllib.parse import unquote

    linked = set()
    for page in html.rglob("*.html"):
        for m in _LINKED.finditer(page.read_bytes()):
            link = unquote(_html.unescape(m.group(1).decode("utf-8", "replace")))
            linked.add(os.path.normpath(page.parent / link))
    gone = []
    for sub in ("_images", "_downloads"):
        d = html / sub
        for f in sorted(d.rglob("*")) if d.is_dir() else []:
            if f.is_file() and os.path.normpath(f) not in linked:
                f.unlink()
                gone.append(f)
        for sd in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True) if d.is_dir() else []:
            with contextlib.suppress(OSError):
                sd.rmdir()  # only if empty
    return gone


_SEARCH_PREFIX, _SEARCH_SUFFIX = "Search.setIndex(", ")"


def _read_search_index(html: Path) -> dict | None:
    try:
        text = (html / "searchindex.js").read_text(encoding="utf-8")
        if not (text.startswith(_SEARCH_PREFIX) and text.endswith(_SEARCH_SUFFIX)):
            return None
        return json.loads(text[len(_SEARCH_PREFIX) : -len(_SEARCH_SUFFIX)])
    except (OSError, ValueError):
        return None


def _clean_search_index(html: Path) -> int:
    """Remove the words that map to no page from ``searchindex.js`` (see the comment above
    :data:`BOOK_CACHE`), written as Sphinx writes it (``json.dumps`` with sorted keys); returns
    how many were removed."""
    data = _read_search_index(html)
    if data is None:
        return 0
    gone = 0
    for part in ("terms", "titleterms"):
        terms = data.get(part) or {}
        empty = [k for k, v in terms.items() if v == []]
        for k in empty:
            del terms[k]
        gone += len(empty)
    if gone:
        with atomic_path(html / "searchindex.js") as tmp:
            tmp.write_text(_SEARCH_PREFIX + json.dumps(data, sort_keys=True) + _SEARCH_SUFFIX, encoding="utf-8")
    return gone


def _open_book_cache(project: Project, key: str, sources: dict, outlines: dict) -> tuple[Path, str]:
    """Make ``_build/.book-cache`` ready for a build and say how much of it is reused. Its mark
    is removed first (from here on, a kill leaves an unmarked folder, which is deleted later) and
    its ``_build/html`` is removed. The whole folder goes too unless the mark names ``key`` and no
    notebook changed with a modification time before the end of the last build (Sphinx re-reads
    a page only when its file is newer than its last reading: a notebook put back with an old
    time, by ``cp -p`` say, or written on a file system with coarse times, must not be missed). If it stays and no notebook's outline changed, the current book is
    copied in (:func:`_copy_html`), so that Sphinx writes only the pages that changed. Returns
    the folder and what the build does: "incremental", or why it reads or writes everything."""
    cache = project.build / BOOK_CACHE
    mark = _book_cache_mark(cache)
    how = "incremental"
    if mark is None:
        how = "full: no cache"
    elif mark.get("key") != key:
        how = "full: configuration, book/, helpers or installed packages changed"
    elif not (cache / "_build" / ".doctrees" / "environment.pickle").is_file():
        how = "full: no Sphinx environment"
    else:
        seen, since = mark.get("sources") or {}, int(mark.get("built_ns") or 0)
        for rel, (sha, mtime) in sources.items():
            if rel in seen and seen[rel][0] != sha and mtime <= since:
                how = f"full: {rel} changed without a newer modification time"
                break
    (cache / BOOK_CACHE_MARK).unlink(missing_ok=True)
    if how != "incremental":
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(cache / "_build" / "html", ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    old = project.build / "html"
    if how == "incremental":
        if mark.get("outlines") != outlines:
            how = "every page written: a title, heading, label or figure changed"
        elif not (old / "index.html").is_file():
            how = "every page written: no book to start from"
        elif (_read_search_index(old) or {}).get("indexentries", {}) != {}:
            how = "every page written: the book has index entries (or no readable search index)"
        else:
            _copy_html(old, cache / "_build" / "html")
    _kill_point("book-cache-opened")
    return cache, how


def _drop_unmarked_book_cache(project: Project) -> bool:
    """Delete ``_build/.book-cache`` if it carries no mark (a build failed or was killed in it);
    called by :func:`recover` after the book's journal was rolled forward."""
    cache = project.build / BOOK_CACHE
    if cache.is_dir() and _book_cache_mark(cache) is None:
        shutil.rmtree(cache, ignore_errors=True)
        return True
    return False


def _finish_book(j: dict) -> None:
    """Roll a journaled swap of ``_build/html`` forward; safe to repeat."""
    new, html, backup = Path(j["new"]), Path(j["html"]), Path(j["backup"])
    if new.exists():
        if html.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(html, backup)
            _kill_point("book-moved-aside")
        os.replace(new, html)
        _kill_point("book-promoted")
    shutil.rmtree(backup, ignore_errors=True)
    if j.get("next"):  # the build folder of a journal from before the cache (``_build/.next-<rid>``)
        shutil.rmtree(j["next"], ignore_errors=True)
    _kill_point("book-backup-removed")


def build_book(project: Project | None = None, log=print) -> Path:
    """Build the HTML book into ``_build/html`` (warnings are errors). The new book is built
    beside the old one and swapped in through a journal, so the old book stays until the new one
    is complete and a kill during the swap is finished by the next build or run. Pages the
    latest run left stale are marked first (:func:`mark_pages`), so the book never mixes runs
    silently.

    Sphinx reads and writes only the pages whose notebook changed since the last successful
    build, from its environment kept in ``_build/.book-cache`` and a copy of the current book
    (see the comment above :data:`BOOK_CACHE`); the result has the bytes a from-scratch build
    would have. Anything Sphinx does not track (:func:`_book_key`) makes a full build."""
    project = project or Project()
    with run_lock(project):
        recover(project, log=log)
        mark_pages(project, log=log)
        _install_mathjax(project)
        from helpers.engine.registry import write_toc

        if (project.root / "config" / "book.yml").exists():
            write_toc(project.root)  # the chapter list of _toc.yml follows config/book.yml
        rid = run_id()
        key, sources, outlines = _book_key(project), _book_sources(project), _book_outlines(project)
        cache, how = _open_book_cache(project, key, sources, outlines)
        try:
            _jupyter_book(project, cache)
            _prune_unlinked(cache / "_build" / "html")
            _clean_search_index(cache / "_build" / "html")
        except BaseException:
            shutil.rmtree(cache, ignore_errors=True)
            raise
        built = time.time_ns()  # a notebook changed later but dated before this was not re-read
        keep = (cache / "_build" / ".doctrees" / "environment.pickle").is_file()
        if keep:
            mark = {"key": key, "built_ns": built, "sources": sources, "outlines": outlines, "build": how}
            write_json(mark, cache / BOOK_CACHE_MARK)
        html = project.build / "html"
        j = {
            "what": "book",
            "new": str(cache / "_build" / "html"),
            "html": str(html),
            "backup": str(project.build / f".old-html-{rid}"),
        }
        shutil.rmtree(j["backup"], ignore_errors=True)
        _kill_point("book-built")
        journal = project.build / f".book-promote.{rid}.json"
        write_json(j, journal)
        _kill_point("book-journal-written")
        _finish_book(j)
        journal.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(cache, ignore_errors=True)
    return html


def copy_checkout(dest, root=None) -> Path:
    """Copy the project as a fresh clone has it (git's tracked and not-ignored files) into
    ``dest``, linking ``node_modules``; used by the tests and the benchmarks."""
    root = Path(root or paths.ROOT)
    dest = Path(dest)
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
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
    raise InputError(
        "MathJax is not installed (run `make setup`, which runs `npm install mathjax@3`)",
        path=project.root / "node_modules" / "mathjax",
    )
