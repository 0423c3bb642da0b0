"""Fig. 1A: the flowchart is built from the Snakemake rule graph and the chapter registry."""

import shutil
import sys
from pathlib import Path

import pytest

from helpers.engine.errors import InputError
from helpers.engine.registry import Step, steps
from helpers.viz import flowchart as F

ROOT = Path(__file__).resolve().parents[1]

DOT = """digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
	0[label = "all", color = "0.00 0.6 0.85", style="rounded"];
	1[label = "merge_counts", color = "0.37 0.6 0.85", style="rounded"];
	2[label = "htseq_count", color = "0.30 0.6 0.85", style="rounded"];
	3[label = "star_align", color = "0.52 0.6 0.85", style="rounded"];
	4[label = "star_index", color = "0.59 0.6 0.85", style="rounded"];
	5[label = "fastqc_paired", color = "0.15 0.6 0.85", style="rounded"];
	6[label = "fastqc_single", color = "0.22 0.6 0.85", style="rounded"];
	1 -> 0
	2 -> 1
	3 -> 2
	4 -> 3
	5 -> 0
	6 -> 0
}"""


def test_parse_rulegraph_drops_the_target_rule():
    g = F.parse_rulegraph(DOT)
    assert set(g.labels.values()) == {
        "merge_counts",
        "htseq_count",
        "star_align",
        "star_index",
        "fastqc_paired",
        "fastqc_single",
    }
    assert ("rule:star_index", "rule:star_align") in g.edges
    assert not any("all" in e for edge in g.edges for e in edge)


def test_parse_rulegraph_rejects_text_without_rules():
    with pytest.raises(InputError, match="no rules"):
        F.parse_rulegraph("digraph snakemake_dag {\n}")


def test_flowchart_joins_data_rules_and_chapters():
    g = F.flowchart_graph(F.parse_rulegraph(DOT), steps())
    assert ("rule:merge_counts", "ch:01_cohort") in g.edges  # PRJCA000750's counts enter the cohort
    assert ("data:counts", "ch:01_cohort") in g.edges  # GSE153670's matrix too
    assert ("data:reads", "rule:star_align") in g.edges
    assert ("ch:03_de", "ch:05_go") in g.edges  # from config/book.yml's reads
    assert "ch:12_benchmarks" not in g.labels  # not part of the analysis
    layer = F.transitive_reduction(g).layers()
    assert layer["rule:star_index"] < layer["rule:star_align"] < layer["rule:merge_counts"] < layer["ch:01_cohort"]
    assert layer["ch:03_de"] < layer["ch:05_go"] < layer["ch:10_scorecard"]


def test_flowchart_fails_when_a_named_rule_is_gone():
    renamed = DOT.replace('"star_align"', '"align_reads"')
    with pytest.raises(InputError, match="star_align"):
        F.flowchart_graph(F.parse_rulegraph(renamed), steps())


def test_transitive_reduction_keeps_only_needed_arrows():
    g = F.Graph()
    for n in "abc":
        g.add(n, n, F.CHAPTER_KIND)
    g.connect("a", "b")
    g.connect("b", "c")
    g.connect("a", "c")  # implied by a -> b -> c
    assert F.transitive_reduction(g).edges == [("a", "b"), ("b", "c")]


def test_cycle_is_an_error():
    chapters = [Step("01_cohort", "cohort", "A"), Step("02_x", "x", "B", ("01_cohort",))]
    g = F.flowchart_graph(F.parse_rulegraph(DOT), chapters)
    g.connect("ch:02_x", "ch:01_cohort")
    with pytest.raises(InputError, match="cycle"):
        g.layers()


def test_draw_flowchart_has_a_box_per_node():
    import matplotlib

    matplotlib.use("Agg")
    g = F.flowchart_graph(F.parse_rulegraph(DOT), steps())
    fig = F.draw_flowchart(g)
    texts = {t.get_text().replace("\n", " ") for t in fig.axes[0].texts}
    assert "star align" in texts and any("Table S1" in t for t in texts)
    assert len(fig.axes[0].patches) == len(g.labels)


@pytest.mark.slow
def test_rulegraph_of_the_real_workflow():
    """snakemake itself reports the rule graph of workflow/Snakefile; every rule the flowchart
    names as taking external input is in it."""
    if shutil.which("snakemake", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("snakemake not installed (requirements/upstream.txt)")
    g = F.parse_rulegraph(F.snakemake_rulegraph(ROOT / "workflow" / "Snakefile"))
    for _, names in F.EXTERNAL_INPUTS.values():
        for n in names:
            assert f"rule:{n}" in g.labels
    assert ("rule:htseq_count", "rule:merge_counts") in g.edges


# ----------------------------------------------------------------------------- the cached rule graph


def _workflow(tmp_path: Path) -> Path:
    wf = tmp_path / "workflow"
    (wf / "rules").mkdir(parents=True)
    (wf / "scripts").mkdir()
    (wf / "Snakefile").write_text('include: "rules/common.smk"\n')
    (wf / "rules" / "common.smk").write_text("# helpers\n")
    (wf / "scripts" / "make_tiny_genome.py").write_text("# generator\n")
    (wf / "scripts" / "merge_counts.py").write_text("# not part of the graph\n")
    return wf


def _never(_snakefile):
    raise AssertionError("snakemake was asked although the cache is current")


def test_rulegraph_uses_a_current_cache_without_asking_snakemake(tmp_path):
    wf = _workflow(tmp_path)
    F.write_rulegraph_cache(wf, generate=lambda _: DOT)
    dot, source = F.rulegraph(wf, generate=_never)
    assert (dot, source) == (DOT, "cache")


@pytest.mark.parametrize(
    "edit",
    [
        lambda wf: (wf / "Snakefile").write_text('include: "rules/common.smk"\nrule extra:\n'),
        lambda wf: (wf / "rules" / "common.smk").write_text("# changed\n"),
        lambda wf: (wf / "rules" / "more.smk").write_text("# a new rule file\n"),
        lambda wf: (wf / "scripts" / "make_tiny_genome.py").write_text("# another generator\n"),
    ],
)
def test_rulegraph_asks_snakemake_when_the_cache_is_stale(tmp_path, edit):
    wf = _workflow(tmp_path)
    F.write_rulegraph_cache(wf, generate=lambda _: DOT)
    edit(wf)
    asked = []
    dot, source = F.rulegraph(wf, generate=lambda sf: asked.append(sf) or DOT.replace("star_align", "align"))
    assert source == "snakemake" and asked == [wf / "Snakefile"] and "align" in dot


def test_rulegraph_cache_ignores_files_outside_the_graph(tmp_path):
    wf = _workflow(tmp_path)
    F.write_rulegraph_cache(wf, generate=lambda _: DOT)
    (wf / "scripts" / "merge_counts.py").write_text("# edited: the graph does not change\n")
    assert F.rulegraph(wf, generate=_never)[1] == "cache"


def test_rulegraph_without_cache_asks_snakemake(tmp_path):
    wf = _workflow(tmp_path)
    assert F.rulegraph(wf, generate=lambda _: DOT) == (DOT, "snakemake")


@pytest.mark.parametrize("text", ["{not json", '{"dot": "digraph {}"}', '{"sources_sha256": "x", "dot": "nope"}'])
def test_broken_rulegraph_cache_is_an_input_error(tmp_path, text):
    wf = _workflow(tmp_path)
    (wf / F.RULEGRAPH_CACHE).write_text(text)
    with pytest.raises(InputError, match="rulegraph.json"):
        F.rulegraph(wf, generate=lambda _: DOT)


def test_rulegraph_source_sentences():
    assert "cached" in F.rulegraph_source_text("cache")
    assert "Snakemake" in F.rulegraph_source_text("snakemake")
    with pytest.raises(InputError):
        F.rulegraph_source_text("elsewhere")


def test_shipped_rulegraph_cache_matches_the_workflow_files():
    """workflow/rulegraph.json was written for the workflow as it is (else: python -m helpers.viz.flowchart)."""
    cache = F.read_rulegraph_cache(ROOT / "workflow")
    assert cache is not None
    assert cache["sources_sha256"] == F.workflow_hash(ROOT / "workflow")


@pytest.mark.slow
def test_shipped_rulegraph_cache_is_what_snakemake_says():
    if shutil.which("snakemake", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("snakemake not installed (requirements/upstream.txt)")
    fresh = F.parse_rulegraph(F.snakemake_rulegraph(ROOT / "workflow" / "Snakefile"))
    shipped = F.parse_rulegraph(F.read_rulegraph_cache(ROOT / "workflow")["dot"])
    assert fresh.labels == shipped.labels and sorted(fresh.edges) == sorted(shipped.edges)
