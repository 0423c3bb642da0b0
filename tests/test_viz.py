"""The book's figures (helpers.viz.figures): each returns a Figure that shows what its chapter
says it shows (the right points, bars, order and colours), and saves as SVG."""

from math import log2
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from scipy.cluster.hierarchy import leaves_list  # noqa: E402

from helpers.analysis import structure as st  # noqa: E402
from helpers.data.genesets import read_gmt  # noqa: E402
from helpers.engine.errors import InputError  # noqa: E402
from helpers.methods import pca as P  # noqa: E402
from helpers.methods.gsea import prerank  # noqa: E402
from helpers.methods.ora import ora  # noqa: E402
from helpers.viz import figures  # noqa: E402
from helpers.viz.style import (  # noqa: E402
    CR_COLOR,
    HIGHER_IN_CR,
    HIGHER_IN_NR,
    NR_COLOR,
    mark_response,
    style_problems,
)

REF = Path(__file__).parent / "data" / "reference"
OUT = REF / "r_outputs"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fixture_sets():
    return read_gmt(REF / "fixture" / "fixture.gmt")


@pytest.fixture(scope="module")
def samples():
    s = pd.read_csv(REF / "fixture" / "samples.csv").set_index("sample_id", drop=False)
    return s.rename(columns={"batch": "cohort"})


@pytest.fixture(scope="module")
def expr():
    return pd.read_csv(OUT / "counts_batch" / "voom_E.tsv.gz", sep="\t", index_col=0)


def _svg(fig, tmp_path):
    fig.savefig(tmp_path / "f.svg")
    assert (tmp_path / "f.svg").stat().st_size > 1000


def test_pca_scatter(expr, samples, tmp_path):
    scores, var, _ = P.pca(expr)
    fig = figures.pca_scatter(scores, var, samples, title="t")
    ax = fig.axes[0]
    assert "PC1 (" in ax.get_xlabel() and "% of variance" in ax.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"CR, A", "NR, A", "CR, B", "NR, B"}
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == len(samples)
    cr = [c for c in ax.collections if to_hex(c.get_facecolor()[0]) == CR_COLOR.lower()]
    assert sum(len(c.get_offsets()) for c in cr) == int((samples["response"] == "CR").sum())
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend.x0 >= ax.get_window_extent(fig.canvas.get_renderer()).x1  # beside the points
    assert style_problems(fig) == []
    _svg(fig, tmp_path)


def test_volcano_counts_in_legend():
    t = pd.DataFrame({"logFC": [2.0, -2.0, 0.1, -1.5], "P.Value": [1e-5, 1e-4, 0.5, 1e-3]}, index=list("abcd"))
    t["direction"] = ["up", "down", "ns", "down"]
    fig = figures.volcano(t, p_max=0.01, lfc_min=log2(1.5), top_n=2)
    labels = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert labels == ["not significant (1)", "higher in NR (2)", "higher in CR (1)"]
    assert sorted(a.get_text() for a in fig.axes[0].texts) == ["a", "b"]  # the two most significant DEGs


def test_deg_heatmap_draws_the_given_clustering(expr, samples, tmp_path):
    z = st.deg_matrix(pd.DataFrame({"direction": ["up"] * 40}, index=expr.index[:40]), expr)
    Z = st.cluster_samples(z)
    Zg = st.cluster_genes(z)
    fig = figures.deg_heatmap(z, samples, Z_samples=Z, Z_genes=Zg)
    heat = next(a for a in fig.axes if len(a.get_xticklabels()) == z.shape[1])
    assert [t.get_text() for t in heat.get_xticklabels()] == list(z.columns[leaves_list(Z)])
    assert [t.get_text() for t in heat.get_yticklabels()] == list(z.index[leaves_list(Zg)])
    legend = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert legend == ["CR", "NR", "A", "B"]
    _svg(fig, tmp_path)
    # without a gene tree the genes keep their order; many genes: no gene labels
    big = st.deg_matrix(pd.DataFrame({"direction": ["down"] * 80}, index=expr.index[:80]), expr)
    fig = figures.deg_heatmap(big, samples, Z_samples=st.cluster_samples(big), Z_genes=None)
    heat = next(a for a in fig.axes if len(a.get_xticklabels()) == big.shape[1])
    assert heat.get_yticklabels() == [] or all(t.get_text() == "" for t in heat.get_yticklabels())
    assert heat.get_ylabel() == "80 genes"
    assert style_problems(fig) == []


def test_ora_dotplot(fixture_sets):
    lim = pd.read_csv(OUT / "counts_nobatch" / "limma.tsv.gz", sep="\t", index_col=0)
    de = lim.index[(lim["P.Value"] <= 0.01) & (lim["logFC"].abs() >= log2(1.5))]
    tab = ora(de, lim.index, fixture_sets)
    fig = figures.ora_dotplot(tab, top=5, title="all DEGs")
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 5
    labels = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert set(labels) == set(tab.head(5)["description"])
    ratios = np.asarray(ax.collections[0].get_offsets())[:, 0]
    assert np.all(np.diff(ratios) >= 0)  # largest GeneRatio at the top
    assert style_problems(fig) == []
    fig, ax = plt.subplots()
    assert figures.ora_dotplot(tab.iloc[:0], ax=ax) is fig
    assert ax.texts[0].get_text() == "no enriched sets"


@pytest.fixture(scope="module")
def gsea_result(fixture_sets):
    lim = pd.read_csv(OUT / "counts_batch" / "limma.tsv.gz", sep="\t", index_col=0)
    return lim["t"], prerank(lim["t"], fixture_sets, min_size=15, max_size=500, seed=42)


def test_gsea_bars(gsea_result):
    from helpers.analysis.enrichment import fig3a_rows

    _, res = gsea_result
    claims = {"chemokine": "GO:0070098", "interleukin": "GO:0019221", "cell_cycle": "GO:0000075"}
    rows = fig3a_rows(res, claims, top=5)
    fig = figures.gsea_bars(rows)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(rows)
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1
    cut = dashed[0].get_ydata()[0]
    ys = ax.get_yticks()
    assert all((y > cut) == (v > 0) for y, v in zip(ys, rows["NES"]))
    # every claim set is drawn, outlined and named in bold, whatever its FDR
    for claim in claims:
        (tick,) = [t for t in ax.get_yticklabels() if f"[{claim}]" in t.get_text()]
        assert tick.get_fontweight() == "bold"
    assert "(n.s.)" in next(t for t in labels if "[interleukin]" in t)  # GO:0019221 has padj 0.32
    outlined = [b for b in ax.patches[: len(rows)] if b.get_linewidth() > 1]
    assert len(outlined) == len(claims)
    # bars use the direction palette, never the CR/NR colours
    colors = {to_hex(b.get_facecolor())[:7] for b in ax.patches[: len(rows)]}
    assert colors == {HIGHER_IN_CR.lower(), HIGHER_IN_NR.lower()}
    assert style_problems(fig) == []
    with pytest.raises(InputError, match="columns"):
        figures.gsea_bars(rows.drop(columns="NES"))


def test_fig3a_rows_claims_always_rest_by_nes_among_fdr_passing():
    from helpers.analysis.enrichment import fig3a_rows

    res = pd.DataFrame(
        {
            "pathway": list("abcdefg"),
            "description": [f"set {c}" for c in "abcdefg"],
            "NES": [2.5, 1.2, 2.0, -1.9, -2.2, 1.9, -1.1],
            "padj": [0.01, 0.001, 0.2, 0.01, 0.04, 0.03, 0.6],
        }
    )
    rows = fig3a_rows(res, {"claim_x": "g", "missing": "zz"}, top=2)
    # b has the smallest padj but a smaller NES than a and f; c does not pass FDR; g is a claim
    assert list(rows["pathway"]) == ["a", "f", "g", "d", "e"]
    assert list(rows["half"]) == ["up", "up", "down", "down", "down"]
    assert list(rows["claim"]) == ["", "", "claim_x", "", ""]
    assert list(fig3a_rows(res, {}, top=1)["pathway"]) == ["a", "e"]
    assert fig3a_rows(res, {}, top=0).empty
    with pytest.raises(InputError, match="columns"):
        fig3a_rows(res.drop(columns="padj"), {})


def test_style_rules_say_no():
    """The style checker flags a CR/NR colour on something that is not CR/NR, a colour map
    holding one, and text below the minimum at display width; marked response artists pass."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1], [0, 1], color=NR_COLOR, label="a line")
    assert any("CR/NR colour" in p for p in style_problems(fig))
    fig, ax = plt.subplots(figsize=(5, 3))
    mark_response(*ax.bar([0, 1], [1, 2], color=[CR_COLOR, NR_COLOR]))
    assert style_problems(fig) == []
    ax.imshow([[0, 1]], cmap="PuOr_r")  # orange end ~ NR vermillion
    assert any("AxesImage" in p for p in style_problems(fig))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_title("small", fontsize=8)
    assert any("'small'" in p for p in style_problems(fig))
    fig, ax = plt.subplots(figsize=(15, 3))  # shown at half size: 12 pt becomes 6 pt
    ax.set_title("wide", fontsize=12)
    assert any("'wide'" in p for p in style_problems(fig))


def _overlaps(boxes):
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_volcano_labels_do_not_overlap_and_legend_is_outside():
    rng = np.random.default_rng(4)
    n = 400
    t = pd.DataFrame(
        {"logFC": rng.normal(0, 1.2, n), "P.Value": 10 ** -rng.uniform(0, 6, n)}, index=[f"GENE{i}" for i in range(n)]
    )
    t.iloc[:20, 0] = 2.0 + rng.normal(0, 0.05, 20)  # a crowd of DEGs at nearly one spot
    t.iloc[:20, 1] = 10 ** -(5 + rng.normal(0, 0.05, 20))
    sig = (t["P.Value"] <= 0.01) & (t["logFC"].abs() >= log2(1.5))
    t["direction"] = np.where(sig, np.where(t["logFC"] > 0, "up", "down"), "ns")
    fig = figures.volcano(t, p_max=0.01, lfc_min=log2(1.5), top_n=15)
    ax = fig.axes[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [x.get_window_extent(r) for x in ax.texts]
    assert len(boxes) == 15
    assert _overlaps(boxes) == []
    legend = ax.get_legend().get_window_extent(r)
    assert legend.y0 >= ax.get_window_extent(r).y1 - 1  # above the axes, not on the points
    assert not any(legend.overlaps(b) for b in boxes)
    assert style_problems(fig) == []


def test_enrichment_curves(gsea_result, fixture_sets):
    ranking, _ = gsea_result
    fig = figures.enrichment_curves(ranking, fixture_sets, {"chemokine": "GO:0070098", "absent": "NOPE"})
    a, b = fig.axes
    assert a.get_visible() and not b.get_visible()
    y = a.get_lines()[0].get_ydata()
    assert len(y) == len(ranking)
    assert style_problems(fig) == []
    with pytest.raises(InputError, match="no set"):
        figures.enrichment_curves(ranking, fixture_sets, {})


def test_gsva_heatmap_rows_in_test_order_samples_by_response(samples, tmp_path):
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(rng.normal(size=(4, len(samples))), index=list("wxyz"), columns=samples.index)
    test = pd.DataFrame({"logFC": [0.5, -0.3, 0.2, 0.0], "P.Value": [0.001, 0.02, 0.3, 0.9]}, index=list("zxwy"))
    fig = figures.gsva_heatmap(scores, test, samples)
    heat = next(a for a in fig.axes if len(a.get_yticklabels()) == 4 and len(a.get_xticklabels()) == len(samples))
    assert [t.get_text() for t in heat.get_yticklabels()] == list("zxwy")
    order = [t.get_text() for t in heat.get_xticklabels()]
    resp = samples.loc[order, "response"].tolist()
    assert resp == sorted(resp)  # CR first, then NR
    annot = [t.get_text() for a in fig.axes for t in a.texts]
    assert annot == ["0.001", "0.02", "0.3", "0.9"]
    # the p strip is on the direction palette: no CR/NR colour outside the response bar
    assert style_problems(fig) == []
    _svg(fig, tmp_path)


def test_cv_curve_marks_the_chosen_threshold():
    curve = pd.DataFrame(
        {
            "threshold": np.linspace(0, 3, 7),
            "n_genes": [100, 60, 30, 14, 8, 3, 0],
            "cv_errors": [9, 7, 4, 3, 3, 6, 9],
            "train_errors": [0, 0, 1, 2, 3, 5, 9],
        }
    )
    fig = figures.cv_curve(curve, threshold=2.0, n_genes=8)
    ax = fig.axes[0]
    vline = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert vline and vline[0].get_xdata()[0] == 2.0
    assert "chosen threshold (8 genes)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "LOOCV errors" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert style_problems(fig) == []
    # a k-fold run names its CV, not leave-one-out
    texts = [t.get_text() for t in figures.cv_curve(curve, 2.0, 8, "10-fold CV").axes[0].get_legend().get_texts()]
    assert "10-fold CV errors" in texts and "LOOCV errors" not in texts


def test_delta_margins_sorted_and_coloured():
    scores = pd.DataFrame(
        {
            "sample": ["s1", "s2", "s3"],
            "delta_CR": [1.0, 5.0, 2.0],
            "delta_NR": [4.0, 2.0, 2.5],
            "response": ["CR", "NR", "NR"],
        }
    )
    fig = figures.delta_margins(scores)
    ax = fig.axes[0]
    assert [round(b.get_height(), 6) for b in ax.patches] == [-3.0, -0.5, 3.0]
    assert [to_hex(b.get_facecolor()) for b in ax.patches] == [CR_COLOR.lower(), NR_COLOR.lower(), NR_COLOR.lower()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s1", "s3", "s2"]
    assert style_problems(fig) == []


def test_bench_scaling_one_line_per_notebook():
    scale = [
        {"n_samples": 31, "notebook_seconds": {"a": 1.0, "b": 2.0}},
        {"n_samples": 310, "notebook_seconds": {"a": 5.0, "b": 9.0}},
    ]
    fig = figures.bench_scaling(scale, ["a", "b"])
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["a", "b"]
    assert ax.get_yscale() == "log"
    assert style_problems(fig) == []


def test_library_sizes_legend_outside_and_style():
    from helpers.viz.figures_cohort import library_sizes

    qc = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(6)],
            "response": ["CR", "CR", "NR", "NR", "CR", "PD"],
            "library_size_millions": [20.0, 25.0, 18.0, 30.0, 22.0, 10.0],
            "genes_detected": [15000, 16000, 14000, 15500, 15200, 9000],
        }
    )
    fig = library_sizes(qc)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legend = next(a.get_legend() for a in fig.axes if a.get_legend())
    assert legend.get_window_extent(r).x0 >= fig.axes[1].get_window_extent(r).x1
    assert style_problems(fig) == []


def test_gsea_p_summary_counts_ties_among_significant_sets():
    from helpers.analysis.enrichment import gsea_p_summary

    res = pd.DataFrame(
        {
            "ES": [0.8, 0.7, 0.7, 0.6, 0.1],
            "size": [20, 30, 30, 25, 40],
            "pval": [1e-4, 1e-4, 1e-4, 2e-3, 0.5],
            "padj": [0.01, 0.01, 0.01, 0.04, 0.9],
            "p_method": ["simple"] * 5,
        }
    )
    # sets 0 and 1 (different ES) share p at the floor; set 2 is set 1 again (same ES and size)
    assert gsea_p_summary(res) == {"n_multilevel": 0, "min_pval": 1e-4, "n_sig_tied_p": 2}
    res.loc[0, ["pval", "p_method"]] = [3e-6, "multilevel"]
    assert gsea_p_summary(res) == {"n_multilevel": 1, "min_pval": 3e-6, "n_sig_tied_p": 0}
