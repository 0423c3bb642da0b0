"""High-level DE API: agreement with the R reference through run_de, DEG calls, bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.de import call_degs, deg_counts, make_design, run_de, run_de_logexpr
from helpers.engine.errors import InputError

REF = Path(__file__).parent / "data" / "reference"
CASES = {
    "counts_nobatch": ("fixture", "samples_nobatch.csv", None),
    "counts_batch": ("fixture", "samples.csv", "batch"),
    "weak_nobatch": ("fixture_weak", "samples_nobatch.csv", None),
}


def load(folder, sheet):
    counts = pd.read_csv(REF / folder / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / folder / sheet, index_col=0)
    return counts, samples


def r_calls(name):
    r = pd.read_csv(REF / "r_outputs" / name / "limma.tsv.gz", sep="\t", index_col=0)
    return call_degs(r)["direction"].astype(str)


@pytest.mark.parametrize("name", list(CASES))
def test_run_de_voom_reproduces_r_de_calls(name):
    folder, sheet, covariate = CASES[name]
    counts, samples = load(folder, sheet)
    tab = run_de(counts, samples.iloc[::-1], method="limma-voom", covariate=covariate)  # sheet order is irrelevant
    summary = json.loads((REF / "r_outputs" / name / "summary.json").read_text())
    assert list(tab.columns) == ["logFC", "AveExpr", "stat", "P.Value", "adj.P.Val", "B"]
    assert tab.attrs["n_genes_tested"] == summary["n_genes_tested"]
    assert tab.attrs["df_prior"] == pytest.approx(summary["limma"]["df_prior"], rel=1e-9)
    calls = call_degs(tab)["direction"].astype(str)
    pd.testing.assert_series_equal(calls, r_calls(name), check_names=False, check_index_type=False)
    n = deg_counts(tab)
    assert (n["n_de"], n["n_up"], n["n_down"]) == tuple(summary["limma"][k] for k in ("n_de", "n_up", "n_down"))


def test_run_de_logexpr_reproduces_r():
    le = pd.read_csv(REF / "r_outputs" / "counts_nobatch" / "logcpm.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / "fixture" / "samples_nobatch.csv", index_col=0)
    tab = run_de_logexpr(le, samples)
    r = pd.read_csv(REF / "r_outputs" / "logexpr_trend" / "limma.tsv.gz", sep="\t", index_col=0)
    np.testing.assert_allclose(tab["stat"], r["t"], rtol=1e-6)
    np.testing.assert_allclose(tab["P.Value"], r["P.Value"], rtol=1e-6)
    np.testing.assert_allclose(tab["logFC"], r["logFC"], rtol=1e-6)
    summary = json.loads((REF / "r_outputs" / "logexpr_trend" / "summary.json").read_text())["limma"]
    n = deg_counts(tab)
    assert (n["n_de"], n["n_up"], n["n_down"]) == (summary["n_de"], summary["n_up"], summary["n_down"])
    pd.testing.assert_series_equal(call_degs(tab)["direction"].astype(str), r_calls("logexpr_trend"), check_names=False)


def test_limma_trend_on_counts_close_to_voom():
    counts, samples = load("fixture", "samples_nobatch.csv")
    voom_tab = run_de(counts, samples, "limma-voom")
    trend_tab = run_de(counts, samples, "limma-trend")
    assert list(trend_tab.index) == list(voom_tab.index)
    assert np.corrcoef(trend_tab["stat"], voom_tab["stat"])[0, 1] > 0.97
    up_v = set(call_degs(voom_tab).query("direction != 'ns'").index)
    up_t = set(call_degs(trend_tab).query("direction != 'ns'").index)
    assert len(up_v & up_t) / len(up_v | up_t) > 0.8


def test_run_de_is_deterministic():
    counts, samples = load("fixture_weak", "samples_nobatch.csv")
    a = run_de(counts, samples).to_csv(float_format="%.17g")
    b = run_de(counts.copy(), samples.copy()).to_csv(float_format="%.17g")
    assert a == b


def test_zero_genes_removed_with_and_without_filter():
    counts, samples = load("fixture_weak", "samples_nobatch.csv")
    counts = counts.iloc[:400].copy()
    counts.iloc[5] = 0
    filtered = run_de(counts, samples)
    assert counts.index[5] not in filtered.index
    unfiltered = run_de(counts, samples, filter=False)
    assert counts.index[5] not in unfiltered.index
    assert len(unfiltered) == 399 and unfiltered.attrs["n_zero_genes_dropped"] == 1
    assert np.isfinite(unfiltered.to_numpy()).all()


def test_call_degs_rules():
    tab = pd.DataFrame(
        {
            "logFC": [1.0, -1.0, 0.1, 2.0, 1.0, np.log2(1.5)],
            "P.Value": [0.001, 0.01, 1e-9, 0.02, np.nan, 0.001],
            "adj.P.Val": [0.2, 0.01, 1e-8, 0.04, np.nan, 0.001],
        },
        index=list("abcdef"),
    )
    assert call_degs(tab)["direction"].astype(str).tolist() == ["up", "down", "ns", "ns", "ns", "up"]
    assert call_degs(tab, use_fdr=True)["direction"].astype(str).tolist() == ["ns", "down", "ns", "ns", "ns", "up"]
    assert call_degs(tab, p_max=0.05, lfc_min=0)["direction"].astype(str).tolist() == [
        "up",
        "down",
        "up",
        "up",
        "ns",
        "up",
    ]
    assert deg_counts(tab) == {"n_de": 3, "n_up": 2, "n_down": 1, "n_tested": 6}
    with pytest.raises(InputError):
        call_degs(tab.drop(columns="P.Value"))


def test_make_design_columns():
    s = pd.DataFrame({"response": ["CR", "NR", "CR", "NR", "CR"], "cohort": ["B", "A", "A", "B", "A"]})
    X = make_design(s, "cohort")
    assert list(X.columns) == ["(Intercept)", "cohortB", "response"]
    assert X["response"].tolist() == [1, 0, 1, 0, 1]
    assert X["cohortB"].tolist() == [1, 0, 0, 1, 0]


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    counts = pd.DataFrame(
        rng.poisson(50, size=(30, 6)), index=[f"g{i}" for i in range(30)], columns=[f"S{j}" for j in range(6)]
    )
    samples = pd.DataFrame(
        {"response": ["CR", "CR", "CR", "NR", "NR", "NR"], "cohort": list("AABABB")}, index=counts.columns
    )
    return counts, samples


def test_small_valid_input_runs(small):
    counts, samples = small
    assert len(run_de(counts, samples)) == 30
    assert len(run_de(counts, samples, covariate="cohort")) == 30


def _raises(match, *args, **kw):
    with pytest.raises(InputError, match=match) as e:
        run_de(*args, **kw)
    assert "\n" not in str(e.value)


def test_only_one_class(small):
    counts, samples = small
    samples = samples.assign(response="CR")
    _raises("only one class", counts, samples)


def test_fewer_than_two_in_a_class(small):
    counts, samples = small
    samples = samples.assign(response=["CR"] * 5 + ["NR"])
    _raises("fewer than 2 samples", counts, samples)


def test_sample_mismatch(small):
    counts, samples = small
    _raises("not in the sample sheet.*'S5'", counts, samples.drop(index="S5"))
    _raises("not in the data.*'S5'", counts.drop(columns="S5"), samples)
    _raises("duplicated sample", counts, pd.concat([samples, samples.iloc[:1]]))


def test_bad_response_and_columns(small):
    counts, samples = small
    _raises("missing column 'response'", counts, samples.drop(columns="response"))
    _raises(
        r"unexpected response value\(s\) \['PR'\]",
        counts,
        samples.assign(response=["CR", "PR", "CR", "NR", "NR", "NR"]),
    )
    _raises("missing response", counts, samples.assign(response=["CR", None, "CR", "NR", "NR", "NR"]))
    _raises("missing covariate column 'batch'", counts, samples, covariate="batch")
    _raises("confounded", counts, samples.assign(cohort=samples["response"]), covariate="cohort")
    _raises("unknown method", counts, samples, method="edgeR")


def test_all_zero_library(small):
    counts, samples = small
    counts = counts.copy()
    counts["S2"] = 0
    _raises("column 'S2': all-zero library", counts, samples)


def test_bad_counts(small):
    counts, samples = small
    c = counts.astype(float)
    c.iloc[3, 1] = np.nan
    _raises("row 'g3', column 'S1': missing or infinite count", c, samples)
    c = counts.copy()
    c.iloc[2, 4] = -1
    _raises("row 'g2', column 'S4': negative count", c, samples)
    _raises("non-integer", counts + 0.5, samples, method="deseq2")
    _raises("duplicated gene", counts.rename(index={"g1": "g0"}), samples)
    _raises("non-numeric", counts.assign(S0="x"), samples)


def test_nothing_left_after_filter(small):
    counts, samples = small
    _raises("left after filtering", counts // 50, samples)


def test_logexpr_bad_input(small):
    counts, samples = small
    le = np.log2(counts + 1.0)
    le.iloc[0, 0] = np.inf
    with pytest.raises(InputError, match="missing or infinite value"):
        run_de_logexpr(le, samples)
    with pytest.raises(InputError, match="column 'S1': constant sample"):
        run_de_logexpr(np.log2(counts + 1.0).assign(S1=3.0), samples)
    with pytest.raises(InputError, match="only one class"):
        run_de_logexpr(np.log2(counts + 1.0), samples.assign(response="NR"))


def test_deseq2_method_is_the_r_faithful_port(ref):
    """run_de(method='deseq2') runs helpers.methods.deseq2 and agrees with R's DESeq2 golden."""
    import pandas as pd

    from helpers.analysis.de import run_de

    counts = pd.read_csv(ref / "fixture" / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(ref / "fixture" / "samples_nobatch.csv", index_col=0)
    r = pd.read_csv(ref / "r_outputs" / "counts_nobatch" / "deseq2.tsv.gz", sep="\t", index_col=0)
    res = run_de(counts, samples, method="deseq2")
    common = r.index.intersection(res.index)
    assert len(common) == len(r)
    rel = (res.loc[common, "stat"] - r.loc[common, "stat"]).abs() / r.loc[common, "stat"].abs().clip(lower=1e-12)
    assert rel.max() < 1e-4
    assert res.attrs["method"] == "deseq2"
