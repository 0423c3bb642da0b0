"""edgeR re-implementation vs R (edgeR 3.40.2) golden output, plus unit checks."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.engine.errors import InputError
from helpers.methods.edger import calc_norm_factors, cpm, filter_by_expr, hat_values

REF = Path(__file__).parent / "data" / "reference"
CASES = {
    # name: (fixture folder, sample sheet)
    "counts_nobatch": ("fixture", "samples_nobatch.csv"),
    "counts_batch": ("fixture", "samples.csv"),
    "weak_nobatch": ("fixture_weak", "samples_nobatch.csv"),
}


def load_case(name):
    folder, sheet = CASES[name]
    counts = pd.read_csv(REF / folder / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(REF / folder / sheet, index_col=0)
    cols = [np.ones(len(samples))]
    if "batch" in samples.columns:
        cols.append((samples["batch"] == "B").to_numpy(float))
    cols.append((samples["response"] == "CR").to_numpy(float))
    return counts, samples, np.column_stack(cols)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    name = request.param
    counts, samples, X = load_case(name)
    out = REF / "r_outputs" / name
    return {
        "name": name,
        "counts": counts,
        "X": X,
        "kept": (out / "genes_kept.txt").read_text().split(),
        "nf": pd.read_csv(out / "norm_factors.tsv", sep="\t", index_col=0),
        "logcpm": pd.read_csv(out / "logcpm.tsv.gz", sep="\t", index_col=0),
    }


def test_filter_by_expr_matches_r(case):
    keep = filter_by_expr(case["counts"].to_numpy(), design=case["X"])
    assert list(case["counts"].index[keep]) == case["kept"]


def test_tmm_matches_r(case):
    y = case["counts"].loc[case["kept"]].to_numpy()
    ref = case["nf"]
    assert np.array_equal(y.sum(axis=0), ref["lib.size"].to_numpy())
    nf = calc_norm_factors(y)
    # R printed 15 significant digits; measured max abs diff ~5e-15
    np.testing.assert_allclose(nf, ref["norm.factors"].to_numpy(), rtol=0, atol=1e-12)


def test_log_cpm_matches_r(case):
    y = case["counts"].loc[case["kept"]].to_numpy()
    nf = calc_norm_factors(y)
    lc = cpm(y, y.sum(axis=0) * nf, log=True, prior_count=2)
    # the R file holds 6 decimals, so rounding alone gives up to 5e-7
    np.testing.assert_allclose(lc, case["logcpm"].to_numpy(), rtol=0, atol=1e-6)


def test_filter_by_group_and_large_n():
    # 12 samples in one group: min size = 10 + (12 - 10) * 0.7 = 11.4 -> needs 12 samples
    y = np.full((3, 12), 100.0)
    y[1, 0] = 0  # passes in only 11 samples
    y[2] = 1  # too low everywhere
    keep = filter_by_expr(y, group=["a"] * 12)
    assert keep.tolist() == [True, False, False]
    # two groups of 3 and 9: min size 3
    y = np.full((2, 12), 100.0)
    y[1, :10] = 0
    assert filter_by_expr(y, group=["a"] * 3 + ["b"] * 9).tolist() == [True, False]
    y[1, 9] = 100
    assert filter_by_expr(y, group=["a"] * 3 + ["b"] * 9).tolist() == [True, True]


def test_hat_values_two_groups():
    X = np.column_stack([np.ones(5), [0, 0, 1, 1, 1]])
    np.testing.assert_allclose(hat_values(X), [1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3])


def test_tmm_properties():
    rng = np.random.default_rng(3)
    y = rng.poisson(1000, size=(500, 6)).astype(float)
    nf = calc_norm_factors(y)
    assert np.isclose(np.exp(np.mean(np.log(nf))), 1.0)
    # identical samples -> all factors 1
    same = np.repeat(y[:, :1], 4, axis=1)
    np.testing.assert_allclose(calc_norm_factors(same), 1.0)
    # 20% of genes 4x higher in sample 2: TMM must undo the composition bias, so the effective
    # library size of sample 2 (relative to sample 0) returns to what it was before
    z = y.copy()
    z[:100, 2] *= 4
    f = calc_norm_factors(z)
    eff = z.sum(axis=0) * f
    before = y.sum(axis=0) * nf
    assert abs(eff[2] / eff[0] - before[2] / before[0]) < 0.03
    assert f[2] < 0.75 * np.delete(f, 2).min()
    # all-zero genes are ignored
    np.testing.assert_allclose(calc_norm_factors(np.vstack([y, np.zeros((50, 6))])), nf)
    np.testing.assert_allclose(calc_norm_factors(y, method="none"), 1.0)


def test_cpm_plain_and_log():
    y = np.array([[10.0, 0.0], [990.0, 500.0]])
    np.testing.assert_allclose(cpm(y).sum(axis=0), 1e6)
    lib = y.sum(axis=0)
    prior = 2 * lib / lib.mean()
    expect = np.log2((y + prior) / (lib + 2 * prior) * 1e6)
    np.testing.assert_allclose(cpm(y, log=True), expect)
    assert np.isfinite(cpm(y, log=True)).all()


@pytest.mark.parametrize(
    "bad", [np.array([[1.0, -1.0], [2.0, 3.0]]), np.array([[1.0, np.nan], [2.0, 3.0]]), np.ones(3)]
)
def test_bad_counts(bad):
    with pytest.raises(InputError):
        calc_norm_factors(bad)
    with pytest.raises(InputError):
        filter_by_expr(bad)


def _window_by_rankdata(x, lo, hi):
    from scipy.stats import rankdata

    r = rankdata(x)  # average ranks for ties, like R's rank()
    return (r >= lo) & (r <= hi)


def test_rank_window_equals_average_rank_rule():
    """TMM's trimming without ranking keeps exactly the elements R's average ranks keep, ties included."""
    from helpers.methods.edger import _rank_window

    rng = np.random.default_rng(3)
    n_ties = 0
    for _ in range(2000):
        n = int(rng.integers(1, 80))
        if rng.random() < 0.5:
            x = rng.integers(0, int(rng.integers(1, 12)), n).astype(float) * rng.choice([1.0, -0.5])
        else:
            x = rng.normal(size=n)
        n_ties += len(np.unique(x)) < n
        trim = rng.choice([0.05, 0.3, 0.45, 0.5])
        lo = np.floor(n * trim) + 1
        hi = n + 1 - lo
        np.testing.assert_array_equal(_rank_window(x, lo, hi), _window_by_rankdata(x, lo, hi))
    assert n_ties > 500  # the tie rule was exercised
    # a tie block straddling the boundary: its average rank decides, for all its members at once
    x = np.array([1.0, 2.0, 2.0, 2.0, 3.0])  # ranks 1, 3, 3, 3, 5
    assert _rank_window(x, 2, 4).tolist() == [False, True, True, True, False]
    assert _rank_window(x, 3.5, 4).tolist() == [False] * 5  # says no: no average rank in the window
    assert _rank_window(np.array([]), 1, 1).size == 0


def test_tmm_unchanged_by_the_window_rule():
    """calc_norm_factors with the sort-based window equals the rankdata-based computation."""
    from helpers.methods import edger

    rng = np.random.default_rng(5)
    y = rng.negative_binomial(2, 0.02, size=(3000, 9)).astype(float)
    y[:40] = 0.0
    y[40:80, 3] = 0.0
    fast = edger.calc_norm_factors(y)
    orig = edger._rank_window
    try:
        edger._rank_window = _window_by_rankdata
        slow = edger.calc_norm_factors(y)
    finally:
        edger._rank_window = orig
    np.testing.assert_array_equal(fast, slow)
    assert not np.allclose(fast, 1.0)  # a test of something: the factors are not all one
