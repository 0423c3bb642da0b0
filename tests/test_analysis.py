"""What the chapters do with the methods (helpers.analysis.de/structure/enrichment/classifier/
provenance/benchmarks): the helpers that used to be inline notebook code."""

import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import REF

from helpers.analysis import benchmarks as bm
from helpers.analysis import classifier as clf
from helpers.analysis import de as dea
from helpers.analysis import enrichment as en
from helpers.analysis import provenance as pv
from helpers.analysis import structure as st
from helpers.analysis.model import load_model, model_from_fit, published_model, save_model
from helpers.engine.errors import InputError
from helpers.methods import pam


def _de(directions, logfc=None, p=None):
    idx = [f"g{i}" for i in range(len(directions))]
    t = pd.DataFrame(
        {
            "logFC": logfc
            if logfc is not None
            else [1.0 if d == "up" else -1.0 if d == "down" else 0.0 for d in directions],
            "P.Value": p if p is not None else [0.001 if d != "ns" else 0.5 for d in directions],
        },
        index=idx,
    )
    t["adj.P.Val"] = t["P.Value"] * 10
    t["direction"] = directions
    return t


# --------------------------------------------------------------------------- de


def test_multiverse_and_its_cells():
    t = _de(["up", "down", "ns"], logfc=[1.0, -0.7, 0.1], p=[0.001, 0.005, 0.5]).drop(columns="direction")
    mv = dea.multiverse({"m": t}, [1.5, 2.0], 0.01, paper={"n_de": 359, "n_up": 57, "n_down": 302})
    assert len(mv) == 2 * 2 + 1 and mv["method"].iloc[-1].startswith("paper")
    assert dea.multiverse_count(mv, "m", 1.5) == 2  # |logFC| >= 0.585
    assert dea.multiverse_count(mv, "m", 2.0) == 1  # |logFC| >= 1
    assert dea.multiverse_count(mv, "m", 1.5, "FDR") == 1  # adjusted p 0.01 and 0.05: only the first passes 0.01
    assert dea.multiverse_count(mv, "other", 2.0) is None


def test_method_overlap_is_jaccard():
    a = _de(["up", "down", "ns", "ns"]).drop(columns="direction")
    b = _de(["up", "ns", "down", "ns"]).drop(columns="direction")
    jac = dea.method_overlap({"a": a, "b": b}, p_max=0.01, lfc_min=0.5)
    assert jac.loc["a", "b"] == pytest.approx(1 / 3) and jac.loc["a", "a"] == 1.0
    none = _de(["ns", "ns"]).drop(columns="direction")
    assert dea.method_overlap({"x": none, "y": none}, 0.01, 0.5).loc["x", "y"] == 0.0


def test_recovery_counts_direction():
    t = _de(["up", "down", "down", "ns"])
    truth = pd.DataFrame({"gene": ["g0", "g1", "g2", "g3"], "log2fc_cr_vs_nr": [1.0, 1.0, -1.0, -1.0]})
    r = dea.recovery(t, truth)
    assert r == {"true_positives": 2, "n_called": 3, "n_planted_tested": 4, "precision": 2 / 3, "recall": 0.5}
    rec = dea.recovery_table({"m": t.drop(columns="direction")}, truth, p_max=0.01, lfc_min=0.5)
    assert rec.loc["m", "true_positives"] == 2 and rec["n_called"].dtype.kind == "i"


def test_run_cohort_de_dispatches_by_kind(monkeypatch):
    calls = []
    monkeypatch.setattr(dea, "run_de", lambda *a, **k: calls.append(("counts", k["method"])) or "t")
    monkeypatch.setattr(dea, "run_de_logexpr", lambda *a, **k: calls.append(("logexpr", None)) or "t")
    counts = SimpleNamespace(kind="counts", counts=None, samples=None)
    logexpr = SimpleNamespace(kind="logexpr", counts=None, samples=None)
    dea.run_cohort_de(counts, "deseq2")
    dea.run_cohort_de(logexpr, "deseq2")
    assert calls == [("counts", "deseq2"), ("logexpr", None)]
    tables = dea.de_tables(logexpr, "limma-voom", ["limma-trend", "deseq2"], first="t0")
    assert tables == {"limma-voom": "t0"}  # one method for arrays
    tables = dea.de_tables(counts, "limma-voom", ["limma-voom", "deseq2"], first="t0")
    assert list(tables) == ["limma-voom", "deseq2"]
    assert dea.planted_truth(SimpleNamespace(truth=None)) is None
    assert dea.planted_truth(SimpleNamespace(truth=pd.DataFrame({"gene": []}))) is None


# --------------------------------------------------------------------------- structure


def test_deg_matrix_cluster_agreement_and_majority():
    expr = pd.DataFrame(
        np.random.default_rng(0).normal(size=(5, 6)), index=[f"g{i}" for i in range(5)], columns=list("abcdef")
    )
    de = _de(["up", "ns", "down", "up", "down"]).rename(index={"g4": "absent"})
    z = st.deg_matrix(de, expr)
    assert list(z.index) == ["g0", "g2", "g3"]
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
    with pytest.raises(InputError, match="direction"):
        st.deg_matrix(de.drop(columns="direction"), expr)
    # two clean groups of samples: the 2-cluster cut matches them
    x = pd.DataFrame(
        np.r_[np.c_[np.ones((3, 3)), -np.ones((3, 3))]] + np.random.default_rng(1).normal(0, 0.1, (3, 6)),
        columns=list("abcdef"),
    )
    agree = st.cluster_agreement(st.cluster_samples(x, metric="euclidean"), list("CCCNNN"))
    assert agree["purity"] == 1.0 and agree["ari"] == pytest.approx(1.0)
    assert st.cluster_genes(x.iloc[:2]) is None
    assert st.majority_share(["CR"] * 22 + ["NR"] * 9) == pytest.approx(22 / 31)


def _voom_fixture():
    E = pd.read_csv(REF / "r_outputs" / "counts_nobatch" / "voom_E.tsv.gz", sep="\t", index_col=0)
    return E


def test_sample_pca_scaled_is_factominer_and_unscaled_is_prcomp():
    E = _voom_fixture()
    fm_eig = pd.read_csv(REF / "r_outputs" / "factominer" / "eig.tsv", sep="\t", index_col=0)
    r_var = pd.read_csv(REF / "r_outputs" / "counts_nobatch" / "pca_variance.tsv", sep="\t", index_col=0)
    _, scaled = st.sample_pca(E, n_components=5, scale=True)
    _, unscaled = st.sample_pca(E, n_components=5, scale=False)
    np.testing.assert_allclose(100 * scaled.to_numpy(), fm_eig["percentage of variance"].to_numpy()[:5], rtol=1e-8)
    np.testing.assert_allclose(unscaled.to_numpy(), r_var["var_explained"].to_numpy()[:5], atol=1e-6)
    assert abs(scaled.iloc[0] - unscaled.iloc[0]) > 0.005  # the two readings differ on this fixture
    assert set(st.PCA_METHODS) == {True, False}


def _two_scale_cohort(seed: int):
    """A cohort where the two readings must disagree: 20 high-variance genes carry response, 400
    low-variance genes carry a dataset shift of 3 of their own SDs. Unscaled, the loud genes
    dominate PC1-PC2; scaled, every gene weighs the same and the many shifted genes dominate."""
    rng = np.random.default_rng(seed)
    n = 24
    samples = pd.DataFrame(
        {"cohort": ["A"] * 12 + ["B"] * 12, "response": (["CR"] * 8 + ["NR"] * 4) * 2},
        index=[f"s{i}" for i in range(n)],
    )
    loud = rng.normal(0, 1, (20, n)) + 6.0 * (samples["response"] == "CR").to_numpy()
    quiet = 0.05 * (rng.normal(0, 1, (400, n)) + 3.0 * (samples["cohort"] == "B").to_numpy())
    E = pd.DataFrame(np.vstack([loud, quiet]), columns=samples.index)
    return E, samples


def test_scaling_comparison_shows_what_scaling_changes_over_seeds():
    for seed in range(20):
        E, samples = _two_scale_cohort(seed)
        c = st.scaling_comparison(E, samples, factors=("cohort", "response"), n_components=5)
        assert list(c.columns) == ["pca", "factor", "n_levels", "r2_pooled", "silhouette", "pc1_percent", "pc2_percent"]
        r2 = c.set_index(["pca", "factor"])["r2_pooled"]
        assert r2["scaled", "cohort"] > 0.4 > r2["unscaled", "cohort"], seed
        assert r2["unscaled", "response"] > 0.4 > r2["scaled", "response"], seed


def test_scaling_comparison_one_dataset_gives_no_cohort_numbers():
    E, samples = _two_scale_cohort(0)
    samples = samples.assign(cohort="only")
    c = st.scaling_comparison(E, samples, factors=("cohort", "response"))
    cohort_rows = c[c["factor"] == "cohort"]
    assert (cohort_rows["n_levels"] == 1).all() and cohort_rows["r2_pooled"].isna().all()
    assert c[c["factor"] == "response"]["r2_pooled"].notna().all()


def test_shown_rounds_or_says_why_not():
    assert st.shown(0.123456) == 0.123
    assert st.shown(0.123456, digits=1) == 0.1
    assert st.shown(float("nan"), n_levels=1, one_level="not measured (one dataset)") == "not measured (one dataset)"
    assert st.shown(0.5, n_levels=1) == "not measured (one level)"  # one level: never a number
    assert st.shown(float("nan"), n_levels=2) == "not measured (no spread)"


def test_batch_claim_measured_with_two_datasets_not_measured_with_one():
    from helpers.analysis import claims
    from helpers.methods import pca as pc

    E, samples = _two_scale_cohort(1)
    scores, _ = st.sample_pca(E, scale=True)
    two = pc.batch_diagnostics(scores, samples, factors=("cohort",)).loc["cohort"]
    v = claims.no_batch_effect(
        two["r2_pooled"], two["silhouette"], n_datasets=two["n_levels"], max_r2=0.2, max_silhouette=0.25
    )
    assert v.holds is False and v.reason is None  # two datasets: measured (and here a batch is seen)
    v = claims.no_batch_effect(0.01, -0.1, n_datasets=2, max_r2=0.2, max_silhouette=0.25)
    assert v.holds is True and v.value is True
    one = pc.batch_diagnostics(scores, samples.assign(cohort="only"), factors=("cohort",)).loc["cohort"]
    v = claims.no_batch_effect(
        one["r2_pooled"], one["silhouette"], n_datasets=one["n_levels"], max_r2=0.2, max_silhouette=0.25
    )
    assert v.holds is None and v.value == "not measured: one dataset"
    # one dataset is not measured even if numbers are passed (they cannot describe a batch)
    assert claims.no_batch_effect(0.01, -0.1, n_datasets=1, max_r2=0.2, max_silhouette=0.25).holds is None
    assert v.params == {"max_r2": 0.2, "max_silhouette": 0.25}  # the rule template still fills
    with pytest.raises(InputError, match="at least one dataset"):
        claims.no_batch_effect(0.01, -0.1, n_datasets=0, max_r2=0.2, max_silhouette=0.25)


# --------------------------------------------------------------------------- enrichment


def test_ora_by_direction_and_summary(monkeypatch):
    from helpers.data.genesets import GeneSets

    sets = GeneSets(
        {"S1": [f"g{i}" for i in range(12)], "S2": [f"g{i}" for i in range(10, 30)]},
        descriptions={"S1": "first", "S2": "second"},
    )
    monkeypatch.setattr(en.gs, "load_collection", lambda c: sets)
    de = _de(["up"] * 8 + ["ns"] * 22 + ["down"] * 5)
    res = en.ora_by_direction(de, ["go_bp", "/x/my.gmt"], min_size=5, max_size=500)
    assert list(res) == [("go_bp", "up"), ("go_bp", "down"), ("custom", "up"), ("custom", "down")]
    assert res[("go_bp", "up")]["set"].iloc[0] == "S1"
    summ = en.ora_summary(res, 0.05)
    assert list(summ.columns) == ["collection", "genes", "sets_tested", "sets_p<0.05", "sets_padj<0.05", "top_term"]
    assert en.claim_collection(res) == "go_bp"
    assert en.claim_collection({("custom", "up"): None}) == "custom"
    side = en.side_by_side(pd.DataFrame({"description": ["a", "b"]}), pd.DataFrame({"description": ["c"]}))
    assert side.values.tolist() == [["a", "c"], ["b", ""]]


def test_ranking_and_gsea_claim_rows():
    de = pd.DataFrame({"logFC": [1.0, -2.0], "stat": [3.0, -1.0]}, index=["a", "b"])
    assert en.ranking(de, "t").tolist() == [3.0, -1.0] and en.ranking(de).tolist() == [1.0, -2.0]
    with pytest.raises(InputError, match="ranking metric"):
        en.ranking(de, "pvalue")
    res = pd.DataFrame(
        {
            "pathway": ["P1", "P2"],
            "description": ["d1", "d2"],
            "size": [20, 30],
            "NES": [1.5, -2.0],
            "pval": [0.01, 0.001],
            "padj": [0.02, 0.002],
        }
    )
    assert en.gsea_counts(res, 0.05) == {"n_sets": 2, "n_sig": 2, "n_sig_up": 1, "n_sig_down": 1}
    rows = en.gsea_claim_rows(res, {"chemokine": "P1", "missing": "P9"})
    assert rows["NES"].tolist()[0] == 1.5 and np.isnan(rows["NES"].iloc[1])
    nums = en.claim_numbers(rows, "NES", "gsea_{claim}_nes")
    assert nums == {
        "gsea_chemokine_nes": 1.5,
        "gsea_missing_nes": "not measured: set P9 not tested (size filter or absent)",
    }


def test_gsva_claim_rows_and_significant_digits():
    test = pd.DataFrame({"logFC": [0.123456], "P.Value": [0.000123456], "adj.P.Val": [0.01]}, index=["EM"])
    rows = en.gsva_claim_rows(test, {"early_memory": "EM", "x": "NONE"})
    assert en.claim_numbers(rows, "p", "gsva_{claim}_p", significant=3)["gsva_early_memory_p"] == 0.000123
    assert en.claim_numbers(rows, "logFC (CR-NR)", "gsva_{claim}", digits=4)["gsva_early_memory"] == 0.1235
    assert en.pathway_sources("go_bp") is None
    assert list(en.pathway_sources("tcell").columns) == ["set", "n_genes", "description", "source"]


# --------------------------------------------------------------------------- classifier (Fig. 4, Table 1)


def _toy(p=60, n_cr=12, n_nr=7, shift=2.0, n_shift=5, seed=3):
    rng = np.random.default_rng(seed)
    n = n_cr + n_nr
    x = rng.normal(5, 1, size=(p, n)) * rng.uniform(0.5, 2, size=(p, 1))
    x[:n_shift, n_cr:] += shift
    X = pd.DataFrame(x, index=[f"G{i}" for i in range(p)], columns=[f"S{j}" for j in range(n)])
    return X, np.array(["CR"] * n_cr + ["NR"] * n_nr)


def test_signature_table_sd_is_s_i_plus_s0_once(tmp_path):
    """Table 1's SD column is s_i + s0 (written out here), the same numbers as pam_model.json;
    chapter 08 once printed PamFit.sd + s0, which adds s0 twice."""
    X, y = _toy()
    sel = clf.select(X, y)
    model = model_from_fit(sel.fit, sel.threshold, scale="log2")
    table = clf.signature_table(model, sort_by_difference=True).set_index("gene")
    x = X.to_numpy()
    cen = np.column_stack([x[:, y == c].mean(axis=1) for c in ("CR", "NR")])
    resid = x - cen[:, (y == "NR").astype(int)]
    s = np.sqrt((resid**2).sum(axis=1) / (x.shape[1] - 2))
    s0 = np.median(s)
    want = pd.Series(s + s0, index=X.index).loc[table.index]
    np.testing.assert_allclose(table["sd_si_plus_s0"], want, rtol=1e-12)
    assert not np.allclose(table["sd_si_plus_s0"], want + s0)
    saved = load_model(save_model(model, tmp_path / "pam_model.json"))
    np.testing.assert_allclose(table["sd_si_plus_s0"], saved.sd.loc[table.index], rtol=1e-15)
    cent = pam.shrunken_centroids(sel.fit, sel.threshold).loc[table.index]
    np.testing.assert_allclose(table[["centroid_CR", "centroid_NR"]], cent[["CR", "NR"]], rtol=1e-12)
    diff = (table["centroid_CR"] - table["centroid_NR"]).abs().to_numpy()
    assert np.all(np.diff(diff) <= 0)  # largest centroid difference first, as the paper's Table 1
    assert set(table.index) == set(sel.genes)


def test_select_with_target_n_genes():
    X, y = _toy()
    sel = clf.select(X, y, target_n_genes=3)
    assert len(sel.genes) == 3 and len(sel.loo) == len(y)
    assert {"threshold", "n_genes", "cv_errors", "train_errors"} <= set(sel.curve.columns)


def test_null_cv_errors_calls_the_majority_by_the_priors():
    y = np.array(["CR"] * 12 + ["NR"] * 8)
    assert clf.null_cv_errors(y, ["CR", "NR"]) == 8  # everyone CR
    assert clf.null_cv_errors(y, ["CR", "NR"], prior=[0.4, 0.6]) == 12  # everyone NR
    # 5 vs 5: holding out a CR leaves NR the larger class, and the other way round: all wrong
    assert clf.null_cv_errors(np.array(["CR"] * 5 + ["NR"] * 5), ["CR", "NR"]) == 10


def test_nonempty_threshold_rule():
    curve = pd.DataFrame(
        {"threshold": [0.0, 1.0, 2.0, 3.0, 4.0], "n_genes": [50, 10, 3, 1, 0], "cv_errors": [4, 2, 2, 3, 0]}
    )
    assert clf.nonempty_threshold(curve, null_errors=8) == 2  # largest of the fewest (2) with a gene
    assert clf.nonempty_threshold(curve, null_errors=2) is None  # ties the null: no signature
    assert clf.nonempty_threshold(curve.assign(n_genes=0), null_errors=8) is None


def test_select_when_pamr_rule_keeps_no_gene():
    """Pure-noise labels: pamr's rule lands on an empty model on some seeds; then either a
    stated non-empty choice that beats the null or no signature, never a crash. Over seeds."""
    seen = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        X = pd.DataFrame(
            rng.normal(size=(40, 16)), index=[f"G{i}" for i in range(40)], columns=[f"S{j}" for j in range(16)]
        )
        y = np.array(["CR"] * 10 + ["NR"] * 6)
        sel = clf.select(X, y)
        assert sel.null_errors == 6
        if not pam.surviving_genes(sel.fit, sel.rule_threshold):
            assert "keeps no gene" in sel.note
            if sel.has_signature:
                seen.add("alt")
                row = sel.curve.loc[sel.curve["threshold"] == sel.threshold].iloc[0]
                assert row["n_genes"] > 0 and row["cv_errors"] < sel.null_errors
                assert "chosen instead" in sel.note
            else:
                seen.add("none")
                assert sel.threshold is None and sel.genes == [] and "no signature" in sel.note
        else:
            assert sel.note == "" and sel.threshold == sel.rule_threshold
    assert "none" in seen


def test_not_measured_numbers():
    got = clf.not_measured_numbers(["a", "b"], clf.NO_SIGNATURE)
    assert got == {"a": clf.NO_SIGNATURE, "b": clf.NO_SIGNATURE}
    with pytest.raises(ValueError):
        clf.not_measured_numbers(["a"], "no signature")


def test_performance_numbers_paper_comparison_and_honesty():
    truth = np.array(["CR"] * 22 + ["NR"] * 9)
    pred = truth.copy()
    pred[[22, 23, 24]] = "CR"  # the paper's Fig. 4: 28/31, 22/22, 6/9
    perf = pam.performance(truth, pred)
    nums = clf.performance_numbers(perf, "pam_loocv")
    assert (nums["pam_loocv_accuracy"], nums["pam_loocv_sensitivity"], nums["pam_loocv_specificity"]) == (
        "28/31",
        "22/22",
        "6/9",
    )
    assert nums["pam_loocv_accuracy_value"] == 0.9032 and nums["majority_baseline_text"] == "22/31"
    assert "majority_baseline" not in clf.performance_numbers(perf, "x", baseline=False)
    cmp = clf.paper_comparison(perf, {"accuracy": "28/31", "sensitivity": "22/22", "specificity": "6/9"})
    assert cmp.loc["specificity", "paper"] == "66.7% (6/9)" == cmp.loc["specificity", "this run"]
    with pytest.raises(InputError, match="published"):
        clf.paper_comparison(perf, {"accuracy": "28/31"})
    h = clf.honesty_table(perf, None)
    assert h["evaluation"].tolist()[-1] == "majority class (everyone CR)" and len(h) == 2
    assert clf.percent_view(h)["accuracy"].tolist() == ["90.3%", "71.0%"]
    md = clf.fig4_markdown(["A", "B"], perf)
    assert "Model (2 genes): A, B" in md and "Specificity: 66.7% (6/9)" in md


def test_published_model_pages():
    model = published_model()
    spec = clf.signature_table(model)
    assert spec["gene"].iloc[0] == "IGF2BP1" and spec["sd_si_plus_s0"].iloc[0] == 3.62
    assert clf.priors_text(model).startswith("CR 0.710, NR 0.290; expression scale:")
    assert clf.overlap(["KCNK3", "X", "IGF2BP1"], model.genes) == (2, "shared: IGF2BP1, KCNK3")
    assert clf.overlap(["X"], model.genes) == (0, "no gene in common")
    scores = pd.DataFrame({"response": ["CR", "NR", "NR"], "call": ["CR", "CR", "NR"]})
    assert clf.confusion(scores).loc["NR", "CR"] == 1


# --------------------------------------------------------------------------- provenance and benchmarks


def test_sha256_git_revision_and_files(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "a.txt").write_text("abc")
    (tmp_path / "data" / "raw" / "README.md").write_text("x")
    (tmp_path / "data" / "raw" / "mine.tsv").write_text("y")
    assert pv.sha256(tmp_path / "data" / "a.txt") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    files = pv.data_files(tmp_path / "data", tmp_path / "data" / "raw", tmp_path)
    assert files["file"].tolist() == ["data/a.txt", "data/raw/mine.tsv"]
    assert pv.short_hashes(files)["sha256"].str.len().tolist() == [17, 17]
    assert pv.git_revision(tmp_path) == pv.NOT_A_CHECKOUT
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "add", "data/a.txt"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"], cwd=tmp_path, check=True)
    rev = pv.git_revision(tmp_path)
    assert len(rev) == 12
    (tmp_path / "data" / "a.txt").write_text("changed")
    assert pv.git_revision(tmp_path) == rev + " (with uncommitted changes)"


def test_execution_table_and_versions(tmp_path):
    (tmp_path / "pca").mkdir()
    (tmp_path / "pca" / ".stamp.json").write_text(json.dumps({"seconds": 3.5, "peak_rss_mb": 200, "profile": "test"}))
    steps = [
        SimpleNamespace(stem="02_pca", item="pca", title="Fig. 1B"),
        SimpleNamespace(stem="03_de", item="de", title="2A"),
    ]
    t = pv.execution_table(steps, tmp_path)
    assert t.to_dict("records") == [
        {"notebook": "02_pca", "paper item": "Fig. 1B", "seconds": 3.5, "peak memory (MB)": 200, "profile": "test"}
    ]
    assert pv.execution_table([], tmp_path).empty
    v = pv.package_versions(["numpy", "surely-not-a-package-xyz"]).set_index("package")["version"]
    assert v["numpy"] == np.__version__ and v["surely-not-a-package-xyz"] == "not installed"


def test_benchmark_goals(tmp_path):
    assert bm.load(tmp_path / "none.json") is None
    (tmp_path / "b.json").write_text(json.dumps({"when": "x"}))
    assert bm.load(tmp_path / "b.json") is None  # no cold run yet
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="JSON"):
        bm.load(tmp_path / "bad.json")
    bench = {
        "goals": {"cold_seconds": 100, "warm_seconds": 5, "one_param_seconds": 20, "scale_310_seconds": 300},
        "cold": {"seconds": 104, "notebook_seconds": {"a": 1.0}, "notebook_peak_rss_mb": {"a": 10}},
        "warm": {"seconds": 2.1},
        "scale": [
            {"n_samples": 310, "seconds": 277, "notebook_seconds": {"a": 9.0}, "notebook_peak_rss_mb": {"a": 50}}
        ],
    }
    g = bm.goals(bench).set_index("goal")["met"]  # the goals are issue 14's (tests/test_bench.py)
    assert g["cold"] == "no" and g["warm"] == "yes" and g["scale_310"] == "no"  # 104 > 75, 2.1 <= 3, 277 > 120
    assert g["fc_min"] == "not measured" and g["scale_1000"] == "not measured"
    per = bm.per_notebook(bench)
    assert per.loc["a", "n=310 (s)"] == 9.0 and per.index.name == "notebook"


def test_reference_fixture_available():
    assert (REF / "fixture" / "fixture.gmt").exists()


def test_rebuild_commands_name_the_profile():
    from helpers.analysis.provenance import rebuild_commands

    assert rebuild_commands("default") == "```bash\nmake book\nmake test\n```"
    assert "make book PROFILE=test\n" in rebuild_commands("test")
    assert "{glue" not in rebuild_commands("test")
    import pytest

    with pytest.raises(ValueError):
        rebuild_commands("x`\n```\n<script>")


def test_gsva_kcdf_sentence_names_the_choice_and_its_reason():
    rng = np.random.default_rng(3)
    logs = pd.DataFrame(rng.normal(5, 1, size=(20, 31)))
    counts = pd.DataFrame(rng.poisson(5, size=(20, 31)).astype(float))
    big = pd.DataFrame(rng.normal(5, 1, size=(20, 200)))
    s = en.gsva_kcdf_sentence(logs, "auto")
    assert "Gaussian kernel" in s and "31 samples, fewer than 200" in s
    assert "Poisson kernel" in en.gsva_kcdf_sentence(counts, "auto")
    s = en.gsva_kcdf_sentence(big, "auto")
    assert "empirical distribution" in s and "200 samples, at least 200" in s
    # asked for explicitly: the choice is the user's, not auto's, even on a large cohort
    s = en.gsva_kcdf_sentence(big, "Gaussian")
    assert "Gaussian kernel" in s and "asks" in s and "empirical" not in s
