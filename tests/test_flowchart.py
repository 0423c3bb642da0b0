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
