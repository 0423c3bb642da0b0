#!/usr/bin/env python3
"""Build the shipped gene annotation table from Debian's ``r-bioc-org.hs.eg.db`` SQLite file.

Writes ``data/annotation/genes.tsv.gz``, ``data/annotation/aliases.tsv.gz`` and
``data/annotation/PROVENANCE.md``. No R is needed:
the org.Hs.eg.db package is an SQLite database that Python's ``sqlite3`` reads directly.

Table layout (tab-separated, gzip with mtime 0, rows sorted, so reruns are byte-identical):

    entrez_id   symbol   ensembl_id   gene_type

One row per (Entrez gene, Ensembl gene) pair from the package's ``ENSEMBL`` map (NCBI's
gene2ensembl, via Entrez Gene); genes without an Ensembl ID get one row with an empty
``ensembl_id`` so that symbol and Entrez look-ups cover every gene. ``gene_type`` is NCBI's
gene type (protein-coding, ncRNA, pseudo, ...).

``aliases.tsv.gz`` (``alias_symbol``, ``entrez_id``) lists the package's ``ALIAS2EG`` map minus each
gene's own official symbol: previous and alternative symbols (for example the paper's CCDC155,
today's KASH5), so that symbol tables made with an older annotation can be brought up to date.

``programs.tsv`` (``program``, ``source``, ``symbol``) lists the gene programs that the simulated
twin plants (``helpers.data.twin``): GO BP terms with all their descendants (the package's
``GO2ALLEGS`` map, GO 2022-07-01, any evidence code, protein-coding genes) and the interleukin
genes (official symbols ``IL<number>...``: interleukins and their receptors).

Usage::

    python scripts/build_annotation.py [--sqlite PATH] [--outdir data/annotation]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

DEFAULT_SQLITE = "/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
DEBIAN_PACKAGE = "r-bioc-org.hs.eg.db"
ROOT = Path(__file__).resolve().parents[1]

QUERY = """
SELECT g.gene_id, i.symbol, COALESCE(e.ensembl_id, ''), COALESCE(t.gene_type, '')
FROM genes g
JOIN gene_info i ON i._id = g._id
LEFT JOIN ensembl e ON e._id = g._id
LEFT JOIN genetype t ON t._id = g._id
"""


def _package_version(package: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown (dpkg-query not available)"


ALIAS_QUERY = """
SELECT a.alias_symbol, g.gene_id
FROM alias a
JOIN genes g ON g._id = a._id
JOIN gene_info i ON i._id = a._id
WHERE a.alias_symbol != i.symbol
"""


def read_aliases(sqlite_path: Path) -> list[tuple[str, int]]:
    """Return sorted (alias_symbol, entrez_id) pairs, excluding each gene's official symbol."""
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        rows = {(alias, int(eg)) for alias, eg in con.execute(ALIAS_QUERY)}
    finally:
        con.close()
    return sorted(rows)


PROGRAMS = {  # program -> GO BP term (with descendants)
    "tcell_activation": "GO:0042110",  # T cell activation
    "chemokine": "GO:0070098",  # chemokine-mediated signaling pathway
    "cell_cycle_checkpoint": "GO:0000075",  # cell cycle checkpoint signaling
}
INTERLEUKIN_RE = r"^IL[0-9]+"
# programs taken from a curated set of the shipped T-cell pathways (data/genesets/tcell_pathways.gmt)
CURATED = {"early_memory": "EARLY_MEMORY_TSCM"}  # Tscm/Tcm markers (sources: tcell_pathways_sources.tsv)


def read_programs(sqlite_path: Path) -> list[tuple[str, str, str]]:
    """Return sorted (program, source, symbol) rows for the twin's planted programs."""
    import re

    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    rows = set()
    try:
        for program, go in PROGRAMS.items():
            q = (
                "SELECT DISTINCT i.symbol FROM go_bp_all g JOIN gene_info i ON i._id = g._id "
                "JOIN genetype t ON t._id = g._id WHERE g.go_id = ? AND t.gene_type = 'protein-coding'"
            )
            rows |= {(program, go, sym) for (sym,) in con.execute(q, (go,))}
        q = "SELECT i.symbol FROM gene_info i JOIN genetype t ON t._id = i._id WHERE t.gene_type = 'protein-coding'"
        rows |= {
            ("interleukin", "symbol ~ " + INTERLEUKIN_RE, sym)
            for (sym,) in con.execute(q)
            if re.match(INTERLEUKIN_RE, sym)
        }
    finally:
        con.close()
    gmt = Path(__file__).resolve().parents[1] / "data" / "genesets" / "tcell_pathways.gmt"
    for line in gmt.read_text().splitlines():
        fields = line.split("\t")
        for program, set_name in CURATED.items():
            if fields and fields[0] == set_name:
                rows |= {(program, f"tcell_pathways.gmt:{set_name}", g) for g in fields[2:] if g}
    return sorted(rows)


def read_rows(sqlite_path: Path) -> tuple[list[tuple[int, str, str, str]], dict[str, str]]:
    """Return sorted annotation rows and the package's ``metadata`` table as a dict."""
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        rows = [(int(eg), sym, ens, gtype) for eg, sym, ens, gtype in con.execute(QUERY)]
        meta = dict(con.execute("SELECT name, value FROM metadata"))
    finally:
        con.close()
    rows = sorted(set(rows), key=lambda r: (r[0], r[2], r[1]))
    return rows, meta


def encode_table(rows, header=("entrez_id", "symbol", "ensembl_id", "gene_type")) -> bytes:
    """Gzip-compress the TSV with a fixed header time (mtime=0) and no file name: byte-stable."""
    text = io.StringIO()
    text.write("\t".join(header) + "\n")
    for row in rows:
        text.write("\t".join(str(v) for v in row) + "\n")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode("utf-8"))
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def provenance_text(
    rows, aliases, programs, meta, sqlite_path, version, sha_table, sha_alias, sha_sqlite, command
) -> str:
    n_genes = len({r[0] for r in rows})
    n_prog = len(programs)
    sizes = {}
    for prog, src, _ in programs:
        sizes.setdefault((prog, src), 0)
        sizes[(prog, src)] += 1
    prog_sizes = "; ".join(f"{p} ({s}) {n}" for (p, s), n in sorted(sizes.items()))
    n_ens = len({r[2] for r in rows if r[2]})
    n_pairs = sum(1 for r in rows if r[2])
    n_pc = len({r[0] for r in rows if r[3] == "protein-coding"})
    return f"""# Gene annotation: provenance

`genes.tsv.gz` maps NCBI Entrez Gene IDs to official gene symbols, Ensembl gene IDs and NCBI gene
types. It is built by `scripts/build_annotation.py` from the SQLite database of the Bioconductor
annotation package org.Hs.eg.db as shipped by Debian; nothing is fetched at run time.

| field | value |
| --- | --- |
| Debian package | `{DEBIAN_PACKAGE}` {version} |
| SQLite file | `{sqlite_path}` |
| SQLite sha256 | `{sha_sqlite}` |
| Entrez Gene source | {meta.get("EGSOURCENAME", "?")} {meta.get("EGSOURCEDATE", "?")} ({meta.get("EGSOURCEURL", "?")}) |
| Ensembl source (ENSEMBLPROT/TRANS maps) | {meta.get("ENSOURCENAME", "?")} {meta.get("ENSOURCEDATE", "?")} ({meta.get("ENSOURCEURL", "?")}) |
| Gene -> Ensembl gene map | the package's `ENSEMBL` map (table `ensembl`), sourced from Entrez Gene {meta.get("EGSOURCEDATE", "?")} |
| organism | {meta.get("ORGANISM", "?")} (taxon {meta.get("TAXID", "?")}) |
| `genes.tsv.gz` sha256 | `{sha_table}` |
| `aliases.tsv.gz` sha256 | `{sha_alias}` ({len(aliases)} alias-gene pairs, map `ALIAS2EG` minus official symbols) |
| `programs.tsv` | {n_prog} program-gene rows for the simulated twin: {prog_sizes} |
| rows | {len(rows)} ({n_genes} Entrez genes, {n_ens} Ensembl IDs in {n_pairs} gene-Ensembl pairs, {n_pc} protein-coding genes) |
| command | `{command}` |

Columns: `entrez_id`, `symbol`, `ensembl_id` (empty when the gene has none), `gene_type` (NCBI).
One row per (Entrez gene, Ensembl gene) pair; an Ensembl ID that maps to several genes appears in
several rows. `helpers.data.annotation.harmonize_ids` resolves that case by a stated rule (prefer a
protein-coding gene, then the smallest Entrez ID). The file is gzip with header mtime 0 and
sorted rows (entrez_id, ensembl_id), so rebuilding from the same package gives identical bytes.

`aliases.tsv.gz` columns: `alias_symbol`, `entrez_id`: previous and alternative symbols of each
gene (for example CCDC155, the paper's name for today's KASH5). An alias can point to several
genes; `helpers.data.annotation` only uses aliases that point to exactly one gene and are not an
official symbol themselves.

`programs.tsv` columns: `program`, `source` (GO ID, or the symbol pattern), `symbol`. GO terms
are taken with all descendant terms (GO release {meta.get("GOSOURCEDATE", "?")} as recorded in the package),
any evidence code, protein-coding genes only.

Licence: org.Hs.eg.db is distributed under the Artistic-2.0 licence; the underlying data come from
NCBI Entrez Gene (public domain) and Ensembl (no restrictions on use).
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sqlite", default=DEFAULT_SQLITE, help="path of org.Hs.eg.sqlite")
    ap.add_argument("--outdir", default=str(ROOT / "data" / "annotation"))
    args = ap.parse_args(argv)
    sqlite_path = Path(args.sqlite)
    if not sqlite_path.is_file():
        print(f"error: {sqlite_path}: not found; install Debian package {DEBIAN_PACKAGE}", file=sys.stderr)
        return 2
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows, meta = read_rows(sqlite_path)
    data = encode_table(rows)
    _atomic_write(outdir / "genes.tsv.gz", data)
    programs = read_programs(sqlite_path)
    prog_text = "program\tsource\tsymbol\n" + "".join("\t".join(r) + "\n" for r in programs)
    _atomic_write(outdir / "programs.tsv", prog_text.encode("utf-8"))
    aliases = read_aliases(sqlite_path)
    alias_data = encode_table(aliases, header=("alias_symbol", "entrez_id"))
    _atomic_write(outdir / "aliases.tsv.gz", alias_data)
    sha_sqlite = hashlib.sha256(sqlite_path.read_bytes()).hexdigest()
    command = "python scripts/build_annotation.py" + (
        f" --sqlite {sqlite_path}" if str(sqlite_path) != DEFAULT_SQLITE else ""
    )
    text = provenance_text(
        rows,
        aliases,
        programs,
        meta,
        sqlite_path,
        _package_version(DEBIAN_PACKAGE),
        hashlib.sha256(data).hexdigest(),
        hashlib.sha256(alias_data).hexdigest(),
        sha_sqlite,
        command,
    )
    _atomic_write(outdir / "PROVENANCE.md", text.encode("utf-8"))
    print(f"wrote {outdir / 'genes.tsv.gz'} ({len(rows)} rows), aliases.tsv.gz ({len(aliases)} rows) and PROVENANCE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
