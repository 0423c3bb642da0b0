"""A cache, kept between runs, for a chapter's costly steps that are deterministic functions
of their inputs (GSEA's permutation null on a ranking that did not change, a twin's classifier).

Why: changing one parameter (``SET='fc_min=2'``) re-runs every chapter that reads it, but
much of their work does not depend on it: chapter 06's GSEA ranks all genes by the DE
statistic, whatever the DEG rule; chapter 13's classifier and its nested cross-validation run
on all genes. The runner decides *which chapters* re-run (by fingerprints); this module lets a
re-run chapter skip the *steps* whose inputs are unchanged. Nothing the page shows depends on
whether a value came from the cache: a hit returns exactly what the computation returned
(floats round-trip bit for bit), and a test holds every cached step to that.

Design, and why not ``joblib.Memory`` or ``functools.cache``:

- **Keyed by content, never by name or time**: the key is the SHA-256 of the step's name, the
  source of the whole ``helpers`` package (any code change invalidates everything: no stale
  value can survive an edit of the function or of anything it calls) and the caller's
  description of the inputs (:func:`fingerprint` of arrays, frames and plain values, in a
  canonical form: a C- and an F-ordered copy of one matrix give one key).
- **Plain JSON on disk, never pickle**: a cache folder is data, and loading it must not run code.
  Values are what chapters compute: numbers, strings, lists, mappings, numpy scalars and arrays,
  pandas Series and DataFrames of numeric, boolean or plain-object columns. Anything else is a
  ``TypeError`` when it is stored (a caller's bug, loud), not a silent miss.
- **Atomic**: an entry is written to a temporary file and renamed into place; a killed run leaves
  at most a stray ``*.tmp``. An unreadable entry is a miss and is rewritten.
- **Bounded**: at most :data:`MAX_ENTRIES` entries per step, the least recently used going
  first, and only the current package source's (entries live in ``<step>/<code>/``; a write
  removes the folders of other code versions).
- Where: ``results/.cache/<step>/`` (``HELPERS_CACHE_DIR`` moves it; ``HELPERS_CACHE=off`` turns
  it off, which the tests use to compare cached and computed values). ``make clean`` removes it
  with the results; the run lock already serialises runs of one checkout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: entries kept per step (a twin's classifier: one per twin and setting)
MAX_ENTRIES = 256
_FORMAT = 1  # bump when the encoding changes
_code: str | None = None
stats = {"hits": 0, "misses": 0}  # this process's counts (logged, never shown on a page)


def enabled() -> bool:
    return os.environ.get("HELPERS_CACHE", "").strip().lower() not in ("off", "0", "no", "false")


def cache_dir() -> Path:
    env = os.environ.get("HELPERS_CACHE_DIR", "").strip()
    if env:
        return Path(env)
    from helpers.engine import paths

    return paths.RESULTS / ".cache"


def code_hash() -> str:
    """The helpers package's source (every ``.py`` file's name and bytes), once per process."""
    global _code
    if _code is None:
        # the runner's HELPERS_TEST_CODE_HASH hook is ignored on purpose: a cache must never outlive an edit
        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256()
        for p in sorted(root.rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        _code = h.hexdigest()
    return _code


# ----------------------------------------------------------------------------- fingerprints of inputs


def _feed(h, obj) -> None:
    if obj is None or isinstance(obj, (bool, int, str)):
        h.update(json.dumps(obj).encode())
    elif isinstance(obj, float):
        h.update(b"f" + np.float64(obj).tobytes())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            h.update(b"O" + json.dumps(list(map(str, obj.shape))).encode())
            for v in obj.ravel(order="C"):
                _feed(h, v)
        else:
            a = np.ascontiguousarray(obj)
            h.update(f"a{a.dtype.str}{a.shape}".encode() + a.tobytes())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"DF")
        _feed(h, list(map(str, obj.columns)))
        _feed(h, obj.index.to_numpy())
        for c in obj.columns:
            h.update(str(obj[c].dtype).encode())
            _feed(h, obj[c].to_numpy())
    elif isinstance(obj, pd.Series):
        h.update(b"S" + str(obj.dtype).encode())
        _feed(h, obj.index.to_numpy())
        _feed(h, obj.to_numpy())
    elif isinstance(obj, pd.Index):
        _feed(h, obj.to_numpy())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, (set, frozenset)):
        _feed(h, sorted(obj, key=str))
    elif isinstance(obj, Path):
        _feed(h, str(obj))
    else:
        raise TypeError(f"memo: cannot fingerprint a {type(obj).__name__}")


def fingerprint(*parts) -> str:
    """SHA-256 of values in a canonical form: equal values (whatever their memory layout) give
    one fingerprint; a float differing in its last bit gives another."""
    h = hashlib.sha256()
    for p in parts:
        _feed(h, p)
    return h.hexdigest()


# ----------------------------------------------------------------------------- the JSON codec


def _float(x: float):
    x = float(x)
    return x if math.isfinite(x) else {"__float__": repr(x)}


def _enc_list(values) -> list:
    return [_enc(v) for v in values]


def _enc(o):
    if o is None or isinstance(o, (bool, str)):
        return o
    if isinstance(o, int):
        return o
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, np.generic):
        return _enc(o.item())
    if isinstance(o, np.ndarray):
        if o.dtype.kind not in "biuf":
            return {"__array__": _enc_list(o.tolist()), "dtype": "object"}
        return {"__array__": _enc_list(o.ravel(order="C").tolist()), "dtype": o.dtype.str, "shape": list(o.shape)}
    if isinstance(o, pd.DataFrame):
        if not all(isinstance(c, str) for c in o.columns):
            raise TypeError("memo: a DataFrame's column names must be strings")
        return {"__frame__": {c: _enc_col(o[c]) for c in o.columns}, "index": _enc_index(o.index)}
    if isinstance(o, pd.Series):
        return {"__series__": _enc_col(o), "index": _enc_index(o.index), "name": _enc(o.name)}
    if isinstance(o, dict):
        if not all(isinstance(k, str) for k in o):
            raise TypeError("memo: mapping keys must be strings")
        return {"__dict__": {k: _enc(v) for k, v in o.items()}}
    if isinstance(o, tuple):
        return {"__tuple__": _enc_list(o)}
    if isinstance(o, list):
        return _enc_list(o)
    raise TypeError(f"memo: cannot store a {type(o).__name__}")


def _enc_col(s: pd.Series) -> dict:
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "biuf":
        return {"dtype": dt.str, "values": _enc_list(s.to_numpy().tolist())}
    if isinstance(dt, np.dtype) and dt.kind == "O":
        return {"dtype": "object", "values": _enc_list(s.tolist())}
    raise TypeError(f"memo: cannot store a column of dtype {dt}")


def _enc_index(ix: pd.Index) -> dict:
    if isinstance(ix, pd.RangeIndex):
        return {"range": [ix.start, ix.stop, ix.step], "name": _enc(ix.name)}
    if isinstance(ix, pd.MultiIndex):
        raise TypeError("memo: cannot store a MultiIndex")
    return {"values": _enc_col(pd.Series(ix.to_numpy(), dtype=ix.dtype)), "name": _enc(ix.name)}


def _dec(o):
    if isinstance(o, list):
        return [_dec(v) for v in o]
    if not isinstance(o, dict):
        return o
    if "__float__" in o:
        return float(o["__float__"])
    if "__dict__" in o:
        return {k: _dec(v) for k, v in o["__dict__"].items()}
    if "__tuple__" in o:
        return tuple(_dec(v) for v in o["__tuple__"])
    if "__array__" in o:
        vals = _dec(o["__array__"])
        if o["dtype"] == "object":
            return _objects(vals)
        return np.array(vals, dtype=np.dtype(o["dtype"])).reshape(o["shape"])
    if "__frame__" in o:
        cols = {c: _dec_col(v) for c, v in o["__frame__"].items()}
        return pd.DataFrame(cols, index=_dec_index(o["index"]), columns=list(cols))
    if "__series__" in o:
        s = _dec_col(o["__series__"])
        return pd.Series(s, index=_dec_index(o["index"]), name=_dec(o["name"]))
    raise ValueError("memo: unknown entry")


def _objects(vals: list) -> np.ndarray:
    a = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):  # element by element: a list of equal-length lists stays 1-D
        a[i] = v
    return a


def _dec_col(c: dict) -> np.ndarray:
    vals = _dec(c["values"])
    if c["dtype"] == "object":
        return _objects(vals)
    return np.array(vals, dtype=np.dtype(c["dtype"]))


def _dec_index(d: dict) -> pd.Index:
    name = _dec(d.get("name"))
    if "range" in d:
        return pd.RangeIndex(*d["range"], name=name)
    return pd.Index(_dec_col(d["values"]), name=name)


def encode(value) -> str:
    return json.dumps({"format": _FORMAT, "value": _enc(value)}, allow_nan=False, separators=(",", ":"))


def decode(text: str):
    d = json.loads(text)
    if not isinstance(d, dict) or d.get("format") != _FORMAT:
        raise ValueError("memo: entry of another format")
    return _dec(d["value"])


# ----------------------------------------------------------------------------- the cache


def _entry(step: str, key) -> Path:
    if not step.replace("_", "").isalnum():
        raise ValueError(f"memo: step names are letters, digits and '_', not {step!r}")
    return cache_dir() / step / code_hash()[:16] / f"{fingerprint(step, code_hash(), key)}.json"


def cached(step: str, key, compute: Callable[[], Any]):
    """``compute()``, or the value it returned for the same ``step``, ``key`` and package source.

    ``key`` describes every input the value depends on (arrays, frames, parameters, seeds:
    anything :func:`fingerprint` takes); leaving one out is the caller's bug, and the tests of
    each caller change every input in turn to catch it."""
    if not enabled():
        return compute()
    path = _entry(step, key)
    try:
        value = decode(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        value = _MISS
    if value is not _MISS:
        stats["hits"] += 1
        try:
            os.utime(path)
        except OSError:
            pass
        return value
    stats["misses"] += 1
    value = compute()
    text = encode(value)  # a TypeError here names what cannot be stored
    _write(path, text)
    return value


_MISS = object()
_UMASK = os.umask(0)
os.umask(_UMASK)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
        os.replace(tmp, path)
    except OSError:  # a read-only or full disk costs speed, never a result
        return
    _prune(path.parent)


def _prune(folder: Path) -> None:
    """Keep the newest :data:`MAX_ENTRIES` of this code version; drop other versions' folders
    (after an edit of the package their keys can never be asked for again)."""
    import shutil

    try:
        for other in folder.parent.iterdir():
            if other.is_dir() and other.name != folder.name:
                shutil.rmtree(other, ignore_errors=True)
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    except OSError:
        return
    for p in entries[: max(0, len(entries) - MAX_ENTRIES)]:
        p.unlink(missing_ok=True)
