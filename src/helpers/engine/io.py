"""Atomic, deterministic writers (tables, JSON, figures; nothing half-written is ever left
behind) and the one reader of input files that may be gzip-compressed, with a size cap.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)

# ----------------------------------------------------------------------------- reading input files

GZIP_MAGIC = b"\x1f\x8b"
#: The most bytes one input file may hold, after decompression (and before it, for plain files):
#: 1 GiB, far above any expression table or sample sheet of this kind of study (GSE153670's count
#: matrix inflates to about 10 MB), far below what would exhaust the memory of a laptop once
#: parsed. ``HELPERS_MAX_INPUT_MB`` raises or lowers it.
MAX_INPUT_BYTES = 1 << 30
_CHUNK = 1 << 20


def max_input_bytes() -> int:
    """The cap in force: ``HELPERS_MAX_INPUT_MB`` (MiB) if set, else :data:`MAX_INPUT_BYTES`."""
    env = os.environ.get("HELPERS_MAX_INPUT_MB", "").strip()
    if not env:
        return MAX_INPUT_BYTES
    try:
        mb = float(env)
    except ValueError:
        mb = float("nan")
    if not mb > 0:
        from helpers.engine.errors import InputError

        raise InputError(
            f"must be a positive number of MiB, not {env!r}", path="environment", where="HELPERS_MAX_INPUT_MB"
        )
    return int(mb * (1 << 20))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


class InputBytes(NamedTuple):
    data: bytes
    gzip: bool  # the file was gzip-compressed (detected from its first bytes, not its name)


def read_input(path, limit: int | None = None) -> InputBytes:
    """The bytes of an input file, gunzipped when it starts with the gzip magic bytes.

    Reads at most ``limit`` bytes (default :func:`max_input_bytes`) from the file and inflates
    at most ``limit`` bytes, streaming, so a small file that inflates to gigabytes (or an endless
    special file such as ``/dev/zero``) stops with a one-line :class:`InputError` instead of
    exhausting memory. Concatenated gzip members are joined, zero padding after the last member
    is ignored, a truncated or corrupt stream is an error.
    """
    from helpers.engine.errors import InputError

    path = Path(path)
    limit = max_input_bytes() if limit is None else int(limit)
    hint = "the limit for one input file; set HELPERS_MAX_INPUT_MB to change it"
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("expected a file, found a folder", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path=path) from None
    with fh:
        head = fh.read(2)
        if head != GZIP_MAGIC:
            data = head + fh.read(max(limit + 1 - len(head), 0))
            if len(data) > limit:
                raise InputError(f"file holds more than {_mib(limit)} ({hint})", path=path)
            return InputBytes(data, False)
        out = bytearray()
        n_read = len(head)
        d = zlib.decompressobj(wbits=31)
        pending = head
        while True:
            if not pending:
                pending = fh.read(_CHUNK)
                n_read += len(pending)
                if n_read > limit:
                    raise InputError(f"file holds more than {_mib(limit)} ({hint})", path=path)
                if not pending:
                    break
            try:
                out += d.decompress(pending, limit + 1 - len(out))
            except zlib.error as exc:
                raise InputError(f"truncated or corrupt gzip ({exc})", path=path) from None
            if len(out) > limit:
                raise InputError(f"gzip data inflate to more than {_mib(limit)} ({hint})", path=path)
            if not d.eof:
                pending = d.unconsumed_tail
                continue
            # one member complete: another may follow; zero padding may end the file
            pending = d.unused_data
            while len(pending) < 2:
                more = fh.read(_CHUNK)
                n_read += len(more)
                if not more:
                    break
                pending += more
            if not pending.strip(b"\0"):
                while True:  # only zeros so far: the rest must be zeros too
                    more = fh.read(_CHUNK)
                    n_read += len(more)
                    if n_read > limit:
                        raise InputError(f"file holds more than {_mib(limit)} ({hint})", path=path)
                    if not more:
                        return InputBytes(bytes(out), True)
                    if more.strip(b"\0"):
                        pending = more
                        break
            if pending[:2] != GZIP_MAGIC:
                raise InputError("truncated or corrupt gzip (unexpected bytes after the compressed data)", path=path)
            d = zlib.decompressobj(wbits=31)
        raise InputError("truncated or corrupt gzip (the file ends inside the compressed data)", path=path)


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
