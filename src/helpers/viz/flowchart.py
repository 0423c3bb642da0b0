"""Fig. 1A, the study's workflow, drawn from the pipeline itself.

The paper's Fig. 1A is a hand-drawn flowchart: two datasets, FastQC/STAR/HTSeq for the raw reads,
merge, then PCA, DE, GO, GSEA, GSVA and PAM. Here the same picture is built from the two places
that define the pipeline, so it changes when they change:

* the upstream workflow's rule graph, as Snakemake itself reports it (``snakemake --rulegraph``,
  parsed from its DOT output by :func:`parse_rulegraph`), and
* the chapter registry (``config/book.yml``): each chapter and the chapters whose results it reads.

:func:`flowchart_graph` joins them into one layered graph (datasets -> upstream rules -> cohort ->
chapters) and :func:`draw_flowchart` draws it with matplotlib (no Graphviz needed). Layers are the
longest path from a source; within a layer nodes keep the workflow's and the registry's order.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from helpers.engine.errors import InputError

_NODE = re.compile(r'^\s*(\d+)\s*\[label\s*=\s*"([^"]+)"')
_EDGE = re.compile(r"^\s*(\d+)\s*->\s*(\d+)\s*$")
UPSTREAM_KIND, CHAPTER_KIND, DATA_KIND = "upstream", "chapter", "data"


@dataclass
class Graph:
    """Nodes (id -> label, kind) and directed edges (source id, target id)."""

    labels: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)

    def add(self, node: str, label: str, kind: str) -> None:
        self.labels.setdefault(node, label)
        self.kinds.setdefault(node, kind)

    def connect(self, a: str, b: str) -> None:
        if (a, b) not in self.edges:
            self.edges.append((a, b))

    def layers(self) -> dict:
        """node -> layer: the longest path from any source (the graph must be acyclic)."""
        preds: dict = {n: [] for n in self.labels}
        for a, b in self.edges:
            preds[b].append(a)
        layer: dict = {}

        def depth(n, seen=()):
            if n in seen:
                raise InputError(f"the pipeline graph has a cycle through '{self.labels[n]}'", where="flowchart")
            if n not in layer:
                layer[n] = 1 + max((depth(p, seen + (n,)) for p in preds[n]), default=-1)
            return layer[n]

        for n in self.labels:
            depth(n)
        return layer


def parse_rulegraph(dot: str) -> Graph:
    """The rules and their dependencies from ``snakemake --rulegraph`` output (DOT). The target rule
    ``all`` is dropped: it only gathers the final outputs."""
    g, ids = Graph(), {}
    for line in dot.splitlines():
        m = _NODE.match(line)
        if m:
            ids[m.group(1)] = m.group(2)
            continue
        m = _EDGE.match(line)
        if m:
            g.edges.append((m.group(1), m.group(2)))
    if not ids:
        raise InputError("no rules found in the Snakemake rule graph", where="flowchart")
    out = Graph()
    for _i, name in ids.items():
        if name != "all":
            out.add(f"rule:{name}", name, UPSTREAM_KIND)
    for a, b in g.edges:
        if ids.get(a) != "all" and ids.get(b) != "all":
            out.connect(f"rule:{ids[a]}", f"rule:{ids[b]}")
    return out


def snakemake_rulegraph(snakefile: Path, snakemake: str | None = None) -> str:
    """Ask Snakemake for the workflow's rule graph (DOT). The rule graph does not depend on the
    data, so a tiny generated genome and read set (``workflow/scripts/make_tiny_genome.py``) serve
    as its configuration; nothing is executed."""
    snakefile = Path(snakefile)
    exe = snakemake or str(Path(sys.executable).parent / "snakemake")
    gen = snakefile.parent / "scripts" / "make_tiny_genome.py"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, str(gen), "--out", tmp, "--samples", "2", "--mean-fragments", "2"],
            check=True,
            capture_output=True,
        )
        proc = subprocess.run(
            [
                exe,
                "-s",
                str(snakefile),
                "--configfile",
                str(Path(tmp) / "config.yaml"),
                "--rulegraph",
                "--forceall",
                "--quiet",
                "all",
            ],
            capture_output=True,
            text=True,
            cwd=snakefile.parent.parent,
        )
    if proc.returncode != 0 or "digraph" not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"snakemake --rulegraph failed: {last}", path=snakefile)
    return proc.stdout[proc.stdout.index("digraph") :]


# ----------------------------------------------------------------------------- the cached rule graph
#
# ``snakemake --rulegraph`` costs a few seconds of CPU (Snakemake's start-up and the tiny genome it
# is configured with) on every cold run of chapter 00, although the graph changes only when the
# workflow's files do. The graph is therefore shipped in ``workflow/rulegraph.json`` together with
# a hash of the files that define it; chapter 00 uses it while the hash matches and asks Snakemake
# again otherwise (saying so on the page). ``python -m helpers.viz.flowchart`` rewrites the cache,
# and a test regenerates the graph and compares it with the shipped one.

#: the files (relative to the workflow folder) that define the rule graph: the Snakefile, the rule
#: files it includes, and the generator of the configuration the graph is asked with
RULEGRAPH_SOURCES = ("Snakefile", "rules/*.smk", "scripts/make_tiny_genome.py")
RULEGRAPH_CACHE = "rulegraph.json"


def workflow_sources(workflow_dir: Path) -> list:
    """The files of :data:`RULEGRAPH_SOURCES` under ``workflow_dir``, sorted (a missing Snakefile
    is an error: there is no workflow to draw)."""
    workflow_dir = Path(workflow_dir)
    if not (workflow_dir / "Snakefile").is_file():
        raise InputError("no Snakefile", path=workflow_dir / "Snakefile")
    files = set()
    for pattern in RULEGRAPH_SOURCES:
        files.update(p for p in workflow_dir.glob(pattern) if p.is_file())
    return sorted(files)


def workflow_hash(workflow_dir: Path) -> str:
    """SHA-256 over the names (relative to ``workflow_dir``) and bytes of :func:`workflow_sources`."""
    import hashlib

    workflow_dir = Path(workflow_dir)
    h = hashlib.sha256()
    for p in workflow_sources(workflow_dir):
        h.update(p.relative_to(workflow_dir).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def read_rulegraph_cache(workflow_dir: Path) -> dict | None:
    """The shipped cache (``{"sources_sha256", "dot", ...}``), or None when there is none; a cache
    that is not a JSON object with those two strings is an error naming the file."""
    import json

    path = Path(workflow_dir) / RULEGRAPH_CACHE
    if not path.exists():
        return None
    try:
        cache = json.loads(path.read_text())
    except ValueError:
        raise InputError("not valid JSON", path=path) from None
    if not (
        isinstance(cache, dict)
        and isinstance(cache.get("sources_sha256"), str)
        and isinstance(cache.get("dot"), str)
        and "digraph" in cache["dot"]
    ):
        raise InputError("expected an object with 'sources_sha256' and a DOT 'dot'", path=path)
    return cache


def rulegraph(workflow_dir: Path, generate=None) -> tuple[str, str]:
    """The workflow's rule graph (DOT) and where it came from: ``"cache"`` when the shipped
    :data:`RULEGRAPH_CACHE` matches the workflow's files (:func:`workflow_hash`), else
    ``"snakemake"`` (the cache is missing or stale; ``generate(snakefile)`` asks Snakemake,
    default :func:`snakemake_rulegraph`). The cache is never written here."""
    workflow_dir = Path(workflow_dir)
    cache = read_rulegraph_cache(workflow_dir)
    if cache is not None and cache["sources_sha256"] == workflow_hash(workflow_dir):
        return cache["dot"], "cache"
    return (generate or snakemake_rulegraph)(workflow_dir / "Snakefile"), "snakemake"


def rulegraph_source_text(source: str) -> str:
    """The sentence ending chapter 00's introduction: where this run's rule graph came from."""
    if source == "cache":
        return (
            "came from `workflow/rulegraph.json`, Snakemake's answer cached with a hash of the "
            "workflow's files, which still match"
        )
    if source == "snakemake":
        return (
            "was asked from Snakemake, because `workflow/rulegraph.json` is missing or older than "
            "the workflow's files (`python -m helpers.viz.flowchart` refreshes it)"
        )
    raise InputError(f"unknown rule-graph source {source!r}", where="rulegraph_source_text")


def write_rulegraph_cache(workflow_dir: Path, generate=None) -> Path:
    """Ask Snakemake for the rule graph and write :data:`RULEGRAPH_CACHE` (atomically)."""
    from helpers.engine.io import write_json

    workflow_dir = Path(workflow_dir)
    dot = (generate or snakemake_rulegraph)(workflow_dir / "Snakefile")
    path = workflow_dir / RULEGRAPH_CACHE
    write_json(
        {
            "what": "snakemake --rulegraph of the Snakefile (python -m helpers.viz.flowchart rewrites this file)",
            "sources": [p.relative_to(workflow_dir).as_posix() for p in workflow_sources(workflow_dir)],
            "sources_sha256": workflow_hash(workflow_dir),
            "dot": dot,
        },
        path,
    )
    return path


# Which rules take which external input (the rule graph only knows rule-to-rule edges). A test
# checks that every rule named here is in the workflow, so renaming a rule fails loudly.
EXTERNAL_INPUTS = {
    "reads": ("PRJCA000750 fastq (NGDC)", ("fastqc_paired", "fastqc_single", "star_align")),
    "reference": ("genome FASTA + GTF", ("star_index", "htseq_count")),
}


def flowchart_graph(
    rules: Graph,
    steps,
    counts_label: str = "GSE153670 counts (GEO)",
    external=EXTERNAL_INPUTS,
    merge_rule: str = "merge_counts",
    cohort_stem: str = "01_cohort",
) -> Graph:
    """Datasets, upstream rules and chapters in one graph. The count matrix of GSE153670 enters
    the cohort chapter directly; PRJCA000750's reads and the reference enter the rules named in
    ``external``; ``merge_rule``'s counts enter the cohort chapter. Chapters that read no other
    chapter (other than the cohort itself, e.g. the benchmarks) are not part of the analysis and
    are left out."""
    g = Graph()
    d_counts = "data:counts"
    g.add(d_counts, counts_label, DATA_KIND)
    for key, (label, _) in external.items():
        g.add(f"data:{key}", label, DATA_KIND)
    for n, label in rules.labels.items():
        g.add(n, label, UPSTREAM_KIND)
    for a, b in rules.edges:
        g.connect(a, b)
    for key, (_, names) in external.items():
        for name in names:
            if f"rule:{name}" not in rules.labels:
                raise InputError(
                    f"rule '{name}' (input '{key}') is not in the workflow's rule graph", where="flowchart"
                )
            g.connect(f"data:{key}", f"rule:{name}")
    stems = {s.stem for s in steps}
    if cohort_stem not in stems:
        raise InputError(f"the registry has no chapter '{cohort_stem}'", where="flowchart")
    steps = [s for s in steps if s.stem == cohort_stem or s.reads]
    for s in steps:
        item, _, what = s.title.partition(":")
        g.add(f"ch:{s.stem}", f"{what.strip() or item} ({item})" if what else item, CHAPTER_KIND)
    for s in steps:
        for r in s.reads:
            g.connect(f"ch:{r}", f"ch:{s.stem}")
    g.connect(d_counts, f"ch:{cohort_stem}")
    if f"rule:{merge_rule}" in g.labels:
        g.connect(f"rule:{merge_rule}", f"ch:{cohort_stem}")
    return g


def transitive_reduction(g: Graph) -> Graph:
    """The same graph without edges implied by longer paths (the scorecard reads every chapter;
    drawing each arrow would hide the structure)."""
    succ: dict = {n: set() for n in g.labels}
    for a, b in g.edges:
        succ[a].add(b)

    def reach(a, skip):
        stack, seen = [x for x in succ[a] if (a, x) != skip], set()
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(succ[x])
        return seen

    out = Graph(dict(g.labels), dict(g.kinds))
    out.edges = [(a, b) for a, b in g.edges if b not in reach(a, (a, b))]
    return out


def _label(text: str, width: int = 18) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text.replace("_", " "), width)) or text


def _order_layers(g: Graph, layer: dict) -> dict:
    """Rows of nodes per layer, ordered to limit crossings: each node goes to the mean position of
    its predecessors in earlier layers (one barycentre sweep; ties keep insertion order)."""
    rows: dict = {}
    for n in g.labels:  # insertion order: data, rules (Snakemake's order), chapters (the registry's)
        rows.setdefault(layer[n], []).append(n)
    preds: dict = {n: [] for n in g.labels}
    for a, b in g.edges:
        preds[b].append(a)
    where: dict = {}
    for k in sorted(rows):
        nodes = rows[k]
        if k > 0:

            def key(n, nodes=nodes):
                ps = [where[p] for p in preds[n] if p in where]
                return (sum(ps) / len(ps) if ps else float(nodes.index(n)), nodes.index(n))

            nodes = sorted(nodes, key=key)
        width = len(nodes)
        for i, n in enumerate(nodes):
            where[n] = i - (width - 1) / 2
        rows[k] = nodes
    return rows


def draw_flowchart(g: Graph, title: str = "Fig. 1A (this reproduction): from public data to the verdict"):
    """Draw ``g`` top to bottom, one row per layer; returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Patch

    from helpers.viz.style import OKABE_ITO

    fill = {DATA_KIND: "#FFFFFF", UPSTREAM_KIND: "#E3EEF7", CHAPTER_KIND: "#EAF5EF"}
    line = {DATA_KIND: "#444444", UPSTREAM_KIND: OKABE_ITO[0], CHAPTER_KIND: OKABE_ITO[2]}
    red = transitive_reduction(g)
    rows = _order_layers(red, red.layers())
    n_rows, n_cols = max(rows) + 1, max(len(v) for v in rows.values())
    dx, dy, w, h = 2.3, 1.15, 2.0, 0.72
    fig, ax = plt.subplots(figsize=(max(7.5, dx * n_cols * 0.95), dy * n_rows * 0.85 + 1.2))
    pos = {}
    for k, nodes in rows.items():
        for i, n in enumerate(nodes):
            pos[n] = ((i - (len(nodes) - 1) / 2) * dx, -k * dy)
    for a, b in red.edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate(
            "",
            xy=(x1, y1 + h / 2),
            xytext=(x0, y0 - h / 2),
            arrowprops={"arrowstyle": "-|>", "color": line[red.kinds[a]], "lw": 1.0, "shrinkA": 0, "shrinkB": 1},
        )
    for n, (x, y) in pos.items():
        kind = red.kinds[n]
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.1",
                facecolor=fill[kind],
                edgecolor=line[kind],
                lw=1.3,
                zorder=3,
            )
        )
        ax.text(x, y, _label(red.labels[n]), ha="center", va="center", fontsize=9, zorder=4)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - w * 0.6, max(xs) + w * 0.6)
    ax.set_ylim(min(ys) - h, max(ys) + h)
    ax.axis("off")
    handles = [
        Patch(facecolor=fill[k], edgecolor=line[k], label=lab)
        for k, lab in [
            (DATA_KIND, "public data and reference"),
            (UPSTREAM_KIND, "upstream workflow (a Snakemake rule)"),
            (CHAPTER_KIND, "chapter of this book"),
        ]
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


if __name__ == "__main__":  # python -m helpers.viz.flowchart: refresh workflow/rulegraph.json
    from helpers.engine import paths

    print(write_rulegraph_cache(paths.ROOT / "workflow"))
