#!/usr/bin/env python
"""Build the shipped GO gene sets (BP, CC, MF) as GMT files of gene symbols.

Source: the SQLite files of Debian's ``r-bioc-org.hs.eg.db`` and ``r-bioc-go.db``
(no R needed). Membership follows org.Hs.eg.db's ``GOALL`` mapping, which is what
clusterProfiler's ``enrichGO`` uses: a gene belongs to a term if it is annotated to
the term or to any of its descendants (is_a, part_of, regulates, positively/negatively
regulates, as in GO.db's OFFSPRING tables), with every evidence code (IEA and ND
included). org.Hs.eg.db stores this propagation in its ``go_{bp,cc,mf}_all`` tables; the
script reads them and, with ``--check-propagation``, verifies them against direct
annotation + GO.db's offspring tables. Term names come from GO.db's ``go_term``.

Entrez Gene IDs become symbols through ``gene_info.symbol``; a few symbols are shared by
several Entrez IDs and are then merged (sets are sets of symbols). Terms and the genes
within a term are sorted; sets of every size (>= 1 gene) are kept because ORA cuts sets
to the tested genes before applying its size rule. Output is gzip with mtime 0, so the
same inputs give byte-identical files. ``PROVENANCE.json`` and ``PROVENANCE.md`` record
package versions, source release dates, set counts and sha256 sums.

Usage (from the project root)::

    .venv/bin/python scripts/build_genesets.py            # writes data/genesets/
    .venv/bin/python scripts/build_genesets.py --check-propagation
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from helpers.data.genesets import GeneSets, write_gmt  # noqa: E402
from helpers.engine.io import write_json, write_text  # noqa: E402

SITE = Path("/usr/lib/R/site-library")
ORG_SQLITE = SITE / "org.Hs.eg.db" / "extdata" / "org.Hs.eg.sqlite"
GO_SQLITE = SITE / "GO.db" / "extdata" / "GO.sqlite"
DEBIAN_PACKAGES = ("r-bioc-org.hs.eg.db", "r-bioc-go.db")
ONTOLOGIES = {"bp": "BP", "cc": "CC", "mf": "MF"}


def connect_ro(path: Path) -> sqlite3.Connection:
    """Open a SQLite file read-only (the package files are never modified)."""
    if not path.exists():
        sys.exit(f"error: {path}: not found (apt-get install {' '.join(DEBIAN_PACKAGES)})")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def metadata(con: sqlite3.Connection) -> dict[str, str]:
    """The ``metadata`` name/value table of an AnnotationDbi SQLite file."""
    return dict(con.execute("SELECT name, value FROM metadata"))


def debian_versions() -> dict[str, str]:
    """Installed Debian versions of the source packages (``dpkg-query``)."""
    out = {}
    for pkg in DEBIAN_PACKAGES:
        try:
            res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True)
            out[pkg] = res.stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            out[pkg] = "unknown"
    return out


def term_names(go: sqlite3.Connection, ont: str) -> dict[str, str]:
    """GO id -> term name for one ontology."""
    return dict(go.execute("SELECT go_id, term FROM go_term WHERE ontology = ?", (ont,)))


def propagated_sets(org: sqlite3.Connection, key: str) -> dict[str, set[str]]:
    """GO id -> symbols from org.Hs.eg.db's ``go_<key>_all`` (GOALL; all evidence codes)."""
    sets: dict[str, set[str]] = collections.defaultdict(set)
    query = f"SELECT a.go_id, g.symbol FROM go_{key}_all a JOIN gene_info g ON g._id = a._id"
    for go_id, symbol in org.execute(query):
        sets[go_id].add(symbol)
    return sets


def check_propagation(org, go, key: str, sets: dict[str, set[str]]) -> int:
    """Recompute GOALL from direct annotation + GO.db offspring; return the number of differing terms."""
    direct: dict[str, set[str]] = collections.defaultdict(set)
    for go_id, symbol in org.execute(f"SELECT a.go_id, g.symbol FROM go_{key} a JOIN gene_info g ON g._id = a._id"):
        direct[go_id].add(symbol)
    rid = dict(go.execute("SELECT _id, go_id FROM go_term"))
    offspring: dict[str, set[str]] = collections.defaultdict(set)
    for a, b in go.execute(f"SELECT _id, _offspring_id FROM go_{key}_offspring"):
        offspring[rid[a]].add(rid[b])
    recomputed = {}
    for term in set(direct) | set(offspring):
        genes = set(direct.get(term, ()))
        for child in offspring.get(term, ()):
            genes |= direct.get(child, set())
        if genes and term != "all":
            recomputed[term] = genes
    return sum(recomputed.get(t, set()) != sets.get(t, set()) for t in set(recomputed) | set(sets))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out_dir: Path, org_path: Path, go_path: Path, check: bool, command: str) -> dict:
    """Write go_{bp,cc,mf}.gmt.gz and the provenance files into ``out_dir``; return the provenance."""
    org, go = connect_ro(org_path), connect_ro(go_path)
    org_meta, go_meta = metadata(org), metadata(go)
    prov = {
        "command": command,
        "script": "scripts/build_genesets.py",
        "debian_packages": debian_versions(),
        "sources": {
            "org.Hs.eg.db": {
                "file": str(org_path),
                "sha256": sha256(org_path),
                "entrez_gene_date": org_meta.get("EGSOURCEDATE"),
                "go_date": org_meta.get("GOSOURCEDATE"),
                "go_annotation_entrez_date": org_meta.get("GOEGSOURCEDATE"),
                "go_url": org_meta.get("GOSOURCEURL"),
            },
            "GO.db": {
                "file": str(go_path),
                "sha256": sha256(go_path),
                "go_date": go_meta.get("GOSOURCEDATE"),
                "go_url": go_meta.get("GOSOURCEURL"),
            },
        },
        "membership": "org.Hs.eg.db GOALL (go_{bp,cc,mf}_all): annotation propagated to all ancestor "
        "terms via is_a/part_of/regulates relations; all evidence codes",
        "identifiers": "HGNC-style gene symbols from org.Hs.eg.db gene_info.symbol",
        "size_filter": "none (every term with >= 1 gene); ORA applies its own size rule after "
        "cutting sets to the tested genes",
        "collections": {},
    }
    for key, ont in ONTOLOGIES.items():
        names = term_names(go, ont)
        sets = propagated_sets(org, key)
        missing = sorted(t for t in sets if t not in names)
        entry = {}
        if check:
            entry["propagation_mismatches_vs_GO.db_offspring"] = check_propagation(org, go, key, sets)
        ordered = GeneSets({t: sorted(sets[t]) for t in sorted(sets)}, {t: names.get(t, "") for t in sets})
        path = out_dir / f"go_{key}.gmt.gz"
        write_gmt(ordered, path)
        sizes = sorted(len(g) for g in ordered.values())
        entry.update(
            {
                "file": path.name,
                "ontology": ont,
                "n_sets": len(ordered),
                "n_genes": len(ordered.genes()),
                "n_memberships": sum(sizes),
                "size_min": sizes[0],
                "size_median": sizes[len(sizes) // 2],
                "size_max": sizes[-1],
                "n_sets_size_10_500": sum(10 <= s <= 500 for s in sizes),
                "terms_without_name_in_GO.db": missing,
                "bytes": path.stat().st_size,
                "sha256": sha256(path),
            }
        )
        prov["collections"][f"go_{key}"] = entry
    org.close()
    go.close()
    curated = {}
    for fname in ("tcell_pathways.gmt", "tcell_pathways_sources.tsv"):
        f = out_dir / fname
        if f.exists():
            curated[fname] = sha256(f)
    prov["hand_curated"] = curated
    write_json(prov, out_dir / "PROVENANCE.json")
    write_text(out_dir / "PROVENANCE.md", provenance_markdown(prov))
    return prov


def provenance_markdown(prov: dict) -> str:
    """Human-readable version of the provenance record."""
    src = prov["sources"]
    lines = [
        "# Provenance of the shipped gene sets",
        "",
        "Built by `scripts/build_genesets.py` (Python + sqlite3, no R) from the SQLite files of",
        "Debian bookworm's Bioconductor annotation packages. Nothing is downloaded at run time.",
        "",
        "| item | value |",
        "| --- | --- |",
    ]
    for pkg, ver in prov["debian_packages"].items():
        lines.append(f"| Debian package `{pkg}` | {ver} |")
    lines += [
        f"| Gene Ontology release (go-basic.obo) | {src['GO.db']['go_date']} |",
        f"| GO release used by org.Hs.eg.db | {src['org.Hs.eg.db']['go_date']} |",
        f"| Entrez Gene release (genes, symbols) | {src['org.Hs.eg.db']['entrez_gene_date']} |",
        f"| Entrez gene2go release (annotation) | {src['org.Hs.eg.db']['go_annotation_entrez_date']} |",
        f"| org.Hs.eg.sqlite sha256 | `{src['org.Hs.eg.db']['sha256']}` |",
        f"| GO.sqlite sha256 | `{src['GO.db']['sha256']}` |",
        "",
        f"Membership: {prov['membership']}. Identifiers: {prov['identifiers']}.",
        f"Size filter: {prov['size_filter']}. Terms and genes are sorted; files are gzip with mtime 0",
        "(byte-identical on rebuild).",
        "",
        "| collection | file | sets | genes | sets of 10..500 | size min/median/max | bytes | sha256 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in prov["collections"].items():
        lines.append(
            f"| {name} | `{c['file']}` | {c['n_sets']} | {c['n_genes']} | {c['n_sets_size_10_500']} | "
            f"{c['size_min']}/{c['size_median']}/{c['size_max']} | {c['bytes']} | `{c['sha256']}` |"
        )
    checks = {n: c.get("propagation_mismatches_vs_GO.db_offspring") for n, c in prov["collections"].items()}
    if all(v is not None for v in checks.values()):
        lines += [
            "",
            "Propagation check (GOALL vs direct annotation + GO.db offspring), terms differing: "
            + ", ".join(f"{n} {v}" for n, v in checks.items())
            + ".",
        ]
    lines += ["", "Command:", "", "```", prov["command"], "```", ""]
    if prov.get("hand_curated"):
        lines += [
            "## Hand-curated T-cell pathways",
            "",
            "`tcell_pathways.gmt` is written by hand; every set's source (GO term id or",
            "publication) is in `tcell_pathways_sources.tsv`. sha256 at the time of this build:",
            "",
        ]
        lines += [f"- `{f}`: `{h}`" for f, h in prov["hand_curated"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "genesets")
    parser.add_argument("--org-sqlite", type=Path, default=ORG_SQLITE)
    parser.add_argument("--go-sqlite", type=Path, default=GO_SQLITE)
    parser.add_argument(
        "--check-propagation",
        action="store_true",
        help="verify GOALL against direct annotation + GO.db offspring tables",
    )
    args = parser.parse_args(argv)
    command = "python scripts/build_genesets.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    prov = build(args.out, args.org_sqlite, args.go_sqlite, args.check_propagation, command)
    for name, c in prov["collections"].items():
        print(f"{name}: {c['n_sets']} sets, {c['n_genes']} genes, {c['bytes']} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
