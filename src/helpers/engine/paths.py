"""The one place that knows where things live. Nothing depends on the working directory."""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("HELPERS_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[3]  # src/helpers/engine/paths.py -> project root (editable install)
    if (here / "config" / "params.yml").exists():
        return here
    cur = Path.cwd().resolve()
    for cand in (cur, *cur.parents):
        if (cand / "config" / "params.yml").exists():
            return cand
    return here


ROOT = _find_root()
CONFIG = ROOT / "config" / "params.yml"
NOTEBOOKS = ROOT / "notebooks"
DATA = ROOT / "data"
RAW = DATA / "raw"
PAPER = DATA / "paper"
GENESETS = DATA / "genesets"
ANNOTATION = DATA / "annotation"
BOOK = ROOT / "book"
# Generated outputs may be redirected (tests run the book in a scratch folder).
RESULTS = Path(os.environ.get("HELPERS_RESULTS", ROOT / "results")).resolve()
EXECUTED = Path(os.environ.get("HELPERS_EXECUTED", ROOT / "executed")).resolve()


def results_dir(item: str) -> Path:
    """Where a notebook writes its own results: ``results/<item>/``, created on demand.

    Under the runner this is a staging folder that replaces ``results/<item>/`` only when the
    notebook succeeds, so a failed run never leaves half-written results.
    """
    if os.environ.get("HELPERS_STAGE_ITEM") == item and os.environ.get("HELPERS_STAGE_DIR"):
        d = Path(os.environ["HELPERS_STAGE_DIR"])
    else:
        d = RESULTS / item
    d.mkdir(parents=True, exist_ok=True)
    return d


def results_of(item: str) -> Path:
    """The results of an earlier notebook (read-only use); a clear error if it has not run."""
    d = RESULTS / item
    if not d.is_dir():
        from helpers.engine.errors import InputError

        raise InputError(f"results of '{item}' are missing: run its notebook first (make book)", path=d)
    return d


def inside_project(p, allowed=(None,)) -> bool:
    """True if ``p`` resolves inside the project folder."""
    p = Path(p)
    p = (p if p.is_absolute() else ROOT / p).resolve()
    return p == ROOT or ROOT in p.parents
