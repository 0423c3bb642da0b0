"""Gene-set collections: read, write, filter and load GMT files (gzip or not).

A GMT file has one set per line: ``name<TAB>description<TAB>gene1<TAB>gene2...``.
Sets are returned as a :class:`GeneSets`, a plain ``dict`` (set name -> list of genes)
that also carries each set's description and the file it came from.

The shipped collections live in ``data/genesets/`` (see ``PROVENANCE.md`` there):
``go_bp``, ``go_cc``, ``go_mf`` (Gene Ontology with annotation propagated to ancestor
terms, as org.Hs.eg.db's GOALL) and ``tcell`` (hand-curated T-cell pathways).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from helpers.engine.errors import InputError
from helpers.engine.io import atomic_path, read_input
from helpers.engine.paths import GENESETS

#: Short names of the collections that ship with the project -> file name in data/genesets/.
COLLECTIONS = {
    "go_bp": "go_bp.gmt.gz",
    "go_cc": "go_cc.gmt.gz",
    "go_mf": "go_mf.gmt.gz",
    "tcell": "tcell_pathways.gmt",
}

_GZIP_MAGIC = b"\x1f\x8b"


class GeneSets(dict):
    """``dict`` of set name -> list of gene symbols, plus ``descriptions`` and ``source``.

    Behaves exactly like a dict (iteration order = file order); ``descriptions`` maps
    each set name to its GMT description (second column) and ``source`` is the path it
    was read from (or ``None``).
    """

    def __init__(self, sets=(), descriptions: Mapping[str, str] | None = None, source=None):
        super().__init__(sets)
        descriptions = dict(descriptions or {})
        self.descriptions = {name: descriptions.get(name, "") for name in self}
        self.source = source

    def description(self, name: str) -> str:
        """Description of set ``name`` ('' if none was given)."""
        return self.descriptions.get(name, "")

    def genes(self) -> set[str]:
        """All distinct genes in any set."""
        out: set[str] = set()
        for members in self.values():
            out.update(members)
        return out


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError("gene-set file not found", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a GMT file", path=path)
    raw = read_input(path).data  # gunzipped if compressed, capped (helpers.engine.io.MAX_INPUT_BYTES)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=path) from None


def read_gmt(path) -> GeneSets:
    """Read a GMT file (plain or gzip, detected from the content) into a :class:`GeneSets`.

    Blank lines are skipped, empty gene fields (trailing tabs) are ignored, genes are
    stripped of surrounding whitespace and de-duplicated within a set (first occurrence
    kept). Raises :class:`~helpers.engine.errors.InputError` naming the file and line for: an
    empty file, a line with fewer than 3 tab-separated fields, an empty set name, a set
    without genes, and a set name used twice.
    """
    path = Path(path)
    text = _read_text(path)
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(io.StringIO(text), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"line {lineno}"
        if len(fields) < 3:
            raise InputError(
                f"expected at least 3 tab-separated fields (name, description, genes), found {len(fields)}",
                path=path,
                where=where,
            )
        name = fields[0].strip()
        if not name:
            raise InputError("empty gene-set name", path=path, where=where)
        if name in sets:
            raise InputError(
                f"duplicate gene-set name '{name}' (first on line {first_line[name]})", path=path, where=where
            )
        genes = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
        if not genes:
            raise InputError(f"gene set '{name}' has no genes", path=path, where=where)
        sets[name] = genes
        descriptions[name] = fields[1].strip()
        first_line[name] = lineno
    if not sets:
        raise InputError("empty GMT file: no gene sets", path=path)
    return GeneSets(sets, descriptions, source=path)


def _check_field(value: str, what: str) -> None:
    if any(c in value for c in "\t\r\n"):
        raise ValueError(f"{what} {value!r} contains a tab or newline; cannot be written to a GMT")


def write_gmt(sets: Mapping[str, Iterable[str]], path, descriptions: Mapping[str, str] | None = None) -> Path:
    """Write gene sets to a GMT file atomically, in the order given.

    ``descriptions`` defaults to ``sets.descriptions`` for a :class:`GeneSets`. A path
    ending in ``.gz`` is gzip-compressed with a zero timestamp and no file name in the
    header, so the same sets always give byte-identical files.
    """
    path = Path(path)
    if descriptions is None:
        descriptions = getattr(sets, "descriptions", {}) or {}
    lines = []
    for name, genes in sets.items():
        genes = list(genes)
        desc = descriptions.get(name, "") or ""
        _check_field(name, "set name")
        _check_field(desc, "description")
        for g in genes:
            _check_field(g, "gene")
        if not name or not genes:
            raise ValueError(f"gene set {name!r} has an empty name or no genes")
        lines.append("\t".join([name, desc, *genes]) + "\n")
    data = "".join(lines).encode("utf-8")
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with (
                open(tmp, "wb") as fh,
                gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
            ):
                gz.write(data)
        else:
            tmp.write_bytes(data)
    return path


def filter_sets(
    sets: Mapping[str, Iterable[str]],
    universe: Iterable[str] | None = None,
    min_size: int = 1,
    max_size: float = float("inf"),
) -> GeneSets:
    """Cut every set to ``universe`` (if given), then keep sets with ``min_size <= size <= max_size``.

    Gene order within a set is preserved; the result keeps the descriptions and source.
    """
    uni = None if universe is None else set(universe)
    out: dict[str, list[str]] = {}
    for name, genes in sets.items():
        members = list(genes) if uni is None else [g for g in genes if g in uni]
        if min_size <= len(members) <= max_size:
            out[name] = members
    descriptions = getattr(sets, "descriptions", None)
    return GeneSets(out, descriptions, source=getattr(sets, "source", None))


def collection_path(name_or_path) -> Path:
    """Path of a shipped collection (``go_bp``, ``go_cc``, ``go_mf``, ``tcell``) or of a user file."""
    key = str(name_or_path)
    if key in COLLECTIONS:
        return GENESETS / COLLECTIONS[key]
    path = Path(key).expanduser()
    if not path.exists():
        raise InputError(
            f"no such gene-set file, and not a shipped collection (known: {', '.join(COLLECTIONS)})", path=path
        )
    return path


def load_collection(name_or_path) -> GeneSets:
    """Load a shipped collection by name (``go_bp``, ``go_cc``, ``go_mf``, ``tcell``) or any GMT path."""
    return read_gmt(collection_path(name_or_path))


def overlap_check(sets: Mapping[str, Iterable[str]], genes: Iterable[str]) -> int:
    """Return how many distinct ``genes`` occur in any set; raise InputError if none do.

    Catches the usual mistake of gene sets in another identifier space (Entrez, Ensembl,
    mouse symbols) than the expression table.
    """
    in_sets = sets.genes() if isinstance(sets, GeneSets) else {g for m in sets.values() for g in m}
    n = len(in_sets & set(genes))
    if n == 0:
        src = getattr(sets, "source", None) or "gene sets"
        raise InputError(
            "GMT has no overlap with the expression genes (check the gene identifiers: symbols expected)", path=src
        )
    return n
