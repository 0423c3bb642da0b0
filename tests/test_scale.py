"""The stated scale rules (helpers.data.scale): each fires where it must and stays silent where it
must, over many simulated tables, and each of its conditions can say no on its own."""

import numpy as np
import pytest

from helpers.data import scale as SC


def nb_counts(rng, n_genes=2000, n=12, depth=1.0):
    """Negative-binomial counts with a wide spread of gene means and library sizes."""
    mu = np.exp(rng.normal(3.0, 2.0, n_genes)) * depth
    lib = rng.lognormal(0, 0.35, n)
    size = 1 / rng.uniform(0.05, 0.5)
    return rng.negative_binomial(size, size / (size + mu[:, None] * lib[None, :]))


def logcpm(c, prior=0.5):
    return np.log2((c + prior) / (c.sum(axis=0) + 2 * prior) * 1e6)


SEEDS = range(40)


# ------------------------------------------------------------------------------ counts that look like log


@pytest.mark.parametrize("depth", [0.05, 1.0, 20.0])
def test_real_looking_counts_are_never_called_log(depth):
    for seed in SEEDS:
        assert SC.counts_problem(nb_counts(np.random.default_rng(seed), depth=depth)) is None


def test_rounded_log_values_are_always_called_log():
    for seed in SEEDS:
        c = nb_counts(np.random.default_rng(seed))
        for rounded in (np.round(logcpm(c).clip(0)), np.round(np.log2(c + 1)), np.round(logcpm(c) + 3).clip(0)):
            why = SC.counts_problem(rounded)
            assert why is not None and "integer-rounded log values" in why


def test_counts_rule_conditions_each_say_no():
    rng = np.random.default_rng(0)
    x = np.round(logcpm(nb_counts(rng)).clip(0))
    assert SC.counts_problem(x) is not None
    assert SC.counts_problem(x[:50, :10]) is None  # 500 values < MIN_VALUES: too few to judge
    y = x.copy()
    y[0, 0] = SC.ROUNDED_LOG_MAX  # one value at the limit: not all below 25
    assert SC.counts_problem(y) is None
    z = np.where(x > 0, 1, 0)  # all integers, max 1 ... and max/median 1: still log-like
    assert SC.counts_problem(z) is not None
    w = np.zeros_like(x)
    w[x > 0] = 1
    w[0, 0] = 24  # max 24 but 24 times the median non-zero value: the ratio says no
    assert SC.counts_problem(w) is None
    assert SC.counts_problem(x + 0.5) is None  # non-integers are the reader's business


# ------------------------------------------------------------------------------ log values that look like counts


def test_log_tables_are_never_called_counts():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        c = nb_counts(rng)
        for x in (logcpm(c), np.log2(c + 1), rng.normal(7, 2, (2000, 12)), np.log(c + 1), np.log10(c + 1)):
            assert SC.logexpr_problem(x) is None


def test_counts_and_linear_values_are_always_called_counts():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        c = nb_counts(rng)
        fpkm = c / rng.uniform(0.5, 5, (c.shape[0], 1)) / c.sum(axis=0) * 1e6
        for x in (c, c * 1000, fpkm, 2 ** rng.normal(7, 2, (2000, 12))):
            assert SC.logexpr_problem(x) is not None


def test_logexpr_rule_conditions_each_say_no():
    rng = np.random.default_rng(1)
    sym = rng.normal(20, 4, (2000, 12))
    sym[0, 0] = 35.0  # above 30 but symmetric
    assert SC.logexpr_problem(sym) is None
    skewed = rng.exponential(2.0, (2000, 12))
    skewed[0, 0] = 35.0
    assert "right-skewed" in SC.logexpr_problem(skewed)
    assert SC.logexpr_problem(skewed[:20, :10]) is None  # 200 values: the soft rule needs 1000
    small = np.array([[1.0, 2.0], [3.0, 100.5]])
    assert "impossible on a log scale" in SC.logexpr_problem(small)  # the hard rule needs no minimum
    assert SC.logexpr_problem(np.array([[1.0, 2.0], [3.0, 100.0]])) is None


def test_describe():
    d = SC.describe(np.array([[0.0, 1.0], [2.0, np.nan], [8.0, 2.0]]))
    assert d["n"] == 5 and d["max"] == 8.0 and d["argmax"] == (2, 0)
    assert d["median_nonzero"] == 2.0 and d["max_over_median"] == 4.0 and d["integer_share"] == 1.0
