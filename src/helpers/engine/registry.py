"""The chapter registry (``config/book.yml``): the chapters in run order, the results folder each
writes, whose results each reads, the global parameters each uses, and where each sits in the book.

It is the one place a chapter is declared. The runner's steps come from it, and so does the chapter
list of ``_toc.yml`` (:func:`toc_yaml`; ``python -m helpers toc`` writes the file and ``make book``
refreshes it). A notebook reads only ``data/`` (``data/raw/`` only if ``files`` names it), the
results of the chapters named in ``reads``, the files or folders named in ``files`` and the paths
its parameters name (a path into another chapter's results adds that chapter to ``reads`` for the
run); the runner uses this to decide what a change invalidates and in which order chapters run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from helpers.engine import paths
from helpers.engine.config import load_yaml
from helpers.engine.errors import InputError

REGISTRY = paths.ROOT / "config" / "book.yml"
EXECUTED_TOC_DIR = "executed"  # executed notebooks (git-ignored) as _toc.yml names them
_STEM = re.compile(r"^\d\d_[a-z0-9_]+$")
_KEYS = {"stem", "results", "title", "reads", "globals", "files", "part", "pages_after", "seconds"}


@dataclass(frozen=True)
class Step:
    stem: str  # notebook file stem, e.g. "03_de" (notebooks/03_de.md)
    item: str  # results/<item>/
    title: str  # paper item it reproduces
    reads: tuple = field(default_factory=tuple)  # stems whose results it reads
    files: tuple = field(default_factory=tuple)  # other project files or folders it reads (besides data/)
    globals: tuple | None = None  # global keys it uses (None: all of them)
    part: str = "The reproduction"
    pages_after: tuple = field(default_factory=tuple)  # hand-written pages that follow it in the book
    seconds: float = 5.0  # typical run time: orders a parallel run (longest path first), nothing else


def _seq(v, key, where):
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"'{key}' must be a list of names", path=REGISTRY, where=where)
    return tuple(v)


def load(path: Path | None = None) -> dict:
    """The registry as ``{"steps": [Step...], "parts": [...], "root": str}``, validated."""
    path = Path(path or REGISTRY)
    data = load_yaml(path, "chapter registry")  # the parameters' loader: YAML 1.2, no aliases or duplicated keys
    if not isinstance(data, dict) or not isinstance(data.get("chapters"), list):
        raise InputError("expected a mapping with a 'chapters' list", path=path)
    parts = data.get("parts") or []
    captions = [p.get("caption") for p in parts if isinstance(p, dict)]
    steps, seen = [], set()
    for i, ch in enumerate(data["chapters"], 1):
        where = f"chapter {i}"
        if not isinstance(ch, dict):
            raise InputError("each chapter must be a mapping", path=path, where=where)
        unknown = set(ch) - _KEYS
        if unknown:
            raise InputError(
                f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(_KEYS))})", path=path, where=where
            )
        stem = ch.get("stem")
        if not isinstance(stem, str) or not _STEM.match(stem):
            raise InputError(f"'stem' must look like 03_de, got {stem!r}", path=path, where=where)
        reads = _seq(ch.get("reads"), "reads", stem)
        for r in reads:
            if r not in seen:
                raise InputError(f"reads '{r}', which is not an earlier chapter", path=path, where=stem)
        part = ch.get("part", "The reproduction")
        if captions and part not in captions:
            raise InputError(f"part '{part}' is not one of the parts ({', '.join(captions)})", path=path, where=stem)
        g = ch.get("globals")
        secs = ch.get("seconds", 5.0)
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not 0 <= secs < 1e6:
            raise InputError(f"'seconds' must be a number of seconds >= 0, got {secs!r}", path=path, where=stem)
        steps.append(
            Step(
                stem,
                str(ch.get("results") or stem.split("_", 1)[1]),
                str(ch.get("title") or stem),
                reads,
                _seq(ch.get("files"), "files", stem),
                None if g is None else _seq(g, "globals", stem),
                part,
                _seq(ch.get("pages_after"), "pages_after", stem),
                float(secs),
            )
        )
        seen.add(stem)
    return {"steps": steps, "parts": parts, "root": data.get("root", "book/intro")}


def steps(path: Path | None = None) -> list:
    """The chapters of the registry at ``path`` (default: this checkout's ``config/book.yml``)."""
    return load(path)["steps"]


def by_stem(stem: str, steps_=None) -> Step:
    for s in steps_ or steps():
        if s.stem == stem:
            return s
    raise KeyError(stem)


def toc_yaml(registry: dict | None = None) -> str:
    """The text of ``_toc.yml`` for Jupyter Book 1, from the registry."""
    registry = registry or load()
    lines = [
        "# Generated from config/book.yml by `python -m helpers toc` (make book refreshes it): edit that file.",
        "format: jb-book",
        f"root: {registry['root']}",
        "parts:",
    ]
    for part in registry["parts"]:
        lines += [f"  - caption: {part['caption']}", "    chapters:"]
        entries = []
        for s in registry["steps"]:
            if s.part == part["caption"]:
                entries.append(f"{EXECUTED_TOC_DIR}/{s.stem}")
                entries.extend(s.pages_after)
        entries.extend(part.get("pages") or [])  # hand-written pages close their part
        lines += [f"      - file: {e}" for e in entries]
    return "\n".join(lines) + "\n"


def write_toc(root: Path | None = None) -> bool:
    """Write ``_toc.yml`` if it differs from the registry's; True if it changed."""
    root = Path(root or paths.ROOT)
    reg = load(root / "config" / "book.yml")
    text = toc_yaml(reg)
    toc = root / "_toc.yml"
    if toc.exists() and toc.read_text() == text:
        return False
    toc.write_text(text)
    return True
