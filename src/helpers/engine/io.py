"""Atomic, deterministic writers: tables, JSON, figures. Nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_tsv(df: pd.DataFrame, path, index: bool = True, float_format: str = "%.10g") -> Path:
    """Write a TSV atomically with a fixed float format so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, float_format=float_format, lineterminator="\n")
    return Path(path)


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(obj, path) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n"
    return write_text(path, text)


def update_numbers(path, **values) -> dict:
    """Merge ``values`` into a results ``numbers.json`` (created if missing) and return the whole dict."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    write_json(data, path)
    return data


def save_figure(fig, stem) -> dict:
    """Save a matplotlib figure as SVG and PNG (``stem`` without suffix), deterministically."""
    stem = Path(stem)
    out = {}
    for ext, kw in (("svg", {"metadata": {"Date": None}}), ("png", {"dpi": 150, "metadata": {"Software": None}})):
        target = stem.with_suffix("." + ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **kw)
        out[ext] = target
    return out
