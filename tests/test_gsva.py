"""GSVA (method "gsva") against R GSVA 1.46 golden scores, plus an independent re-implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data.genesets import read_gmt
from helpers.engine.errors import InputError
from helpers.methods import gsva as gsva_module
from helpers.methods.gsva import gsva, kcdf_log_odds, resolve_kcdf

REF = Path(__file__).parent / "data" / "reference"
OUT = REF / "r_outputs"


@pytest.fixture(scope="module")
def sets():
    return read_gmt(REF / "fixture" / "fixture.gmt")


@pytest.fixture(scope="module")
def counts():
    return pd.read_csv(REF / "fixture" / "counts.tsv.gz", sep="\t", index_col=0)


def _kept(folder):
    return (OUT / folder / "genes_kept.txt").read_text().split()


def _ref_scores(folder):
    return pd.read_csv(OUT / folder / "gsva_scores.tsv", sep="\t", index_col=0)


def _agreement(mine: pd.DataFrame, ref: pd.DataFrame):
    assert list(mine.index) == list(ref.index)  # same sets kept, same order
    assert list(mine.columns) == list(ref.columns)
    pearson = [np.corrcoef(mine.loc[s], ref.loc[s])[0, 1] for s in ref.index]
    return min(pearson), float(np.abs(mine.to_numpy() - ref.to_numpy()).max())


def test_counts_poisson_matches_r(counts, sets):
    # counts_batch: GSVA on the raw counts of the filterByExpr-kept genes, Poisson kernel.
    mine = gsva(counts.loc[_kept("counts_batch")], sets, kcdf="Poisson")
    min_r, max_diff = _agreement(mine, _ref_scores("counts_batch"))
    assert min_r >= 0.999999
    assert max_diff <= 1e-6  # R file is rounded to 6 decimals (measured 5.0e-7)


def test_auto_picks_poisson_for_counts(counts, sets):
    sub = counts.loc[_kept("counts_batch")]
    assert resolve_kcdf(sub.to_numpy(float), "auto") == "Poisson"
    pd.testing.assert_frame_equal(gsva(sub, sets, kcdf="auto"), gsva(sub, sets, kcdf="Poisson"))


def test_logexpr_gaussian_matches_r(sets):
    # logexpr_trend: GSVA on counts_nobatch/logcpm.tsv exactly as stored (Gaussian kernel).
    logcpm = pd.read_csv(OUT / "counts_nobatch" / "logcpm.tsv.gz", sep="\t", index_col=0)
    assert resolve_kcdf(logcpm.to_numpy(), "auto") == "Gaussian"
    mine = gsva(logcpm, sets, kcdf="auto")
    min_r, max_diff = _agreement(mine, _ref_scores("logexpr_trend"))
    assert min_r >= 0.999999
    assert max_diff <= 1e-6  # measured 5.0e-7 (the rounding of the golden file)


def _edger_logcpm(counts, folder):
    """edgeR cpm(log=TRUE, prior.count=2) with the reference TMM factors, full precision."""
    nf = pd.read_csv(OUT / folder / "norm_factors.tsv", sep="\t", index_col=0)
    lib = nf["lib.size"] * nf["norm.factors"]
    prior = 2.0 * lib / lib.mean()
    return np.log2((counts + prior) / (lib + 2.0 * prior) * 1e6)


def test_logcpm_gaussian_matches_r(counts, sets):
    # counts_nobatch: R ran GSVA on the full-precision log-CPM; logcpm.tsv holds it rounded to
    # 6 decimals, which moves a few table look-ups of the Gaussian kernel (max diff 2.8e-4).
    ref = _ref_scores("counts_nobatch")
    stored = pd.read_csv(OUT / "counts_nobatch" / "logcpm.tsv.gz", sep="\t", index_col=0)
    min_r, max_diff = _agreement(gsva(stored, sets, kcdf="Gaussian"), ref)
    assert min_r >= 0.9999 and max_diff <= 1e-3
    kept = counts.loc[_kept("counts_nobatch")]
    full = _edger_logcpm(kept, "counts_nobatch")
    assert np.abs(full - stored).to_numpy().max() <= 5.1e-7  # our recomputation is R's log-CPM
    min_r, max_diff = _agreement(gsva(full, sets, kcdf="Gaussian"), ref)
    assert min_r >= 0.999999 and max_diff <= 1e-6


# ------------------------------------------------------------------- ties (golden: gsva_ties/)
# 300 genes x 12 samples built to tie (identical, permuted, shifted and two-level rows; see
# scripts/gsva_ties.R). R ranks tied genes by the bits of their kernel log-odds, so matching R
# here needs the log-odds bit for bit, not to rounding error.
TIES = REF / "gsva_ties"


def _read_exact(name):
    # round_trip: Python's correctly rounded parser, so "%.17g" and "%.1f" come back bit-exact
    return pd.read_csv(TIES / name, sep="\t", index_col=0, float_precision="round_trip")


@pytest.fixture(scope="module")
def ties():
    logexpr = _read_exact("logexpr.tsv.gz")
    assert np.array_equal(logexpr * 10, np.round(logexpr * 10))  # one decimal, as written by R
    return {
        "logexpr": logexpr,
        "counts": _read_exact("counts.tsv.gz").astype(float),
        "sets": dict(read_gmt(TIES / "sets.gmt")),
    }


def _max_diff(mine: pd.DataFrame, ref: pd.DataFrame) -> float:
    assert list(mine.index) == list(ref.index) and list(mine.columns) == list(ref.columns)
    return float(np.abs(mine.to_numpy() - ref.to_numpy()).max())


def test_normal_cdf_table_is_rs_bit_for_bit():
    r_table = np.loadtxt(TIES / "pnorm_table.txt.gz")  # numpy's parser is correctly rounded
    signed = gsva_module._signed_cdf_table()
    assert np.array_equal(signed[10001:], r_table)
    assert np.array_equal(signed[:10001], 1.0 - r_table)
    # the check can fail: scipy's normal CDF differs from R's pnorm in the last bits
    from scipy import special

    assert np.sum(special.ndtr(10.0 * np.arange(10001) / 10000.0) != r_table) > 100


def test_normal_cdf_accuracy_both_signs():
    from scipy import special

    x = np.concatenate([np.linspace(-40, 40, 4001), [0.0, 1e-300, -1e-300, 0.67448975, 8.2924, -37.5193]])
    mine = np.array([gsva_module._normal_cdf(v) for v in x])
    ref = special.ndtr(x)
    assert np.max(np.abs(mine - ref)) < 2e-16
    big = ref > 1e-300
    assert np.max(np.abs(mine[big] - ref[big]) / ref[big]) < 1e-12  # measured 2.1e-13 (far tail)
    assert np.all(np.diff(mine[:4001]) >= 0)  # monotone on the grid


@pytest.mark.parametrize("kcdf,which", [("Gaussian", "logexpr"), ("Poisson", "counts")])
def test_ties_bandwidth_and_log_odds(ties, kcdf, which):
    ref = _read_exact(f"density_{kcdf.lower()}.tsv.gz")
    x = ties[which].loc[ref.index].to_numpy()
    mine = kcdf_log_odds(x, kcdf)
    assert np.array_equal(mine, ref.to_numpy())  # bit-identical (measured: all 3,588 values)


@pytest.mark.parametrize("mx_diff,golden", [(True, "gsva_gaussian"), (False, "gsva_gaussian_maxdev")])
def test_ties_gaussian_matches_r(ties, mx_diff, golden):
    mine = gsva(ties["logexpr"], ties["sets"], kcdf="Gaussian", mx_diff=mx_diff)
    assert _max_diff(mine, _read_exact(f"{golden}.tsv.gz")) <= 1e-8  # measured 5.3e-15 / 2.7e-15


def test_ties_other_summation_order_would_not_match_r(ties):
    """The fixture tells summation orders apart: the same kernel terms added in reverse sample
    order (or sorted, which would make ties in exact arithmetic bit-identical) give the same
    numbers to rounding error but other bits, and R orders tied genes by those bits."""
    ref_frame = _read_exact("density_gaussian.tsv.gz")
    ref = ref_frame.to_numpy()
    x = ties["logexpr"].loc[ref_frame.index].to_numpy()
    bw = gsva_module._gsva_sd(x) / 4.0
    v = (x[:, :, None] - x[:, None, :]) / bw[:, None, None]
    k = np.minimum(np.abs(v) / 10.0 * 10000.0, 10000.0).astype(np.int64) + 10001 * (v >= 0)
    terms = gsva_module._signed_cdf_table()[k]  # genes x test sample x density sample
    ranks = gsva_module._rank_positions
    for reordered in (terms[:, :, ::-1], np.sort(terms, axis=2)):
        left = np.cumsum(reordered, axis=2)[:, :, -1] / x.shape[1]  # sequential, other order
        other = -1.0 * gsva_module._c_log((1.0 - left) / left)
        assert np.abs(other - ref).max() < 1e-12  # the same numbers to rounding...
        assert np.sum(ranks(other) != ranks(ref)) > 100  # ...not R's order (measured 477, 434)
    left = np.cumsum(terms, axis=2)[:, :, -1] / x.shape[1]  # GSVA's order: R's bits
    assert np.array_equal(-1.0 * gsva_module._c_log((1.0 - left) / left), ref)


def test_ties_break_by_gene_index():
    # R's order(decreasing = TRUE) keeps tied genes in input order; -0.0 ties with 0.0
    density = np.array([[1.0, 0.0], [2.0, -0.0], [1.0, 0.0], [2.0, 5.0], [1.0, 0.0]])
    pos = gsva_module._rank_positions(density)
    assert pos[:, 0].tolist() == [2, 0, 3, 1, 4]
    assert pos[:, 1].tolist() == [1, 2, 3, 0, 4]


def _near_tie_blocks_respected(mine: np.ndarray, ref: np.ndarray, rel: float) -> bool:
    """True when, in every sample, genes whose R values differ by more than ``rel`` (relative)
    come out in R's order; genes closer than that may be permuted among themselves."""
    for j in range(ref.shape[1]):
        order = np.argsort(-ref[:, j], kind="stable")
        r, m = ref[order, j], mine[order, j]
        gap = np.abs(np.diff(r)) > rel * np.maximum(np.abs(r[1:]), 1e-300)
        block = np.concatenate([[0], np.cumsum(gap)])
        lowest = pd.Series(m).groupby(block).min().to_numpy()
        highest = pd.Series(m).groupby(block).max().to_numpy()
        if np.any(highest[1:] >= lowest[:-1]):
            return False
    return True


def test_ties_poisson_matches_r(ties):
    """Poisson on gsva_ties: R's ppois bits give R's log-odds, order and scores; scipy's pdtr
    (the earlier implementation) gives the same numbers to ~1e-12 but not R's order of the genes
    R orders by rounding noise (it missed R's scores by 4.3e-3 here)."""
    from scipy import special

    ref_density = _read_exact("density_poisson.tsv.gz")
    ref = _read_exact("gsva_poisson.tsv.gz")
    assert _max_diff(gsva(ties["counts"], ties["sets"], kcdf="Poisson"), ref) <= 1e-12  # measured 5.9e-15
    x = ties["counts"].loc[ref_density.index].to_numpy()
    left = np.zeros_like(x)
    for i in range(x.shape[1]):
        left += special.pdtr(np.floor(x + 1e-7), x[:, i : i + 1] + 0.5)
    left /= x.shape[1]
    scipy_density = -1.0 * gsva_module._c_log((1.0 - left) / left)
    rel = np.abs(scipy_density - ref_density.to_numpy()) / np.abs(ref_density.to_numpy())
    assert rel.max() < 1e-11  # the same numbers...
    ranks = gsva_module._rank_positions
    assert np.sum(ranks(scipy_density) != ranks(ref_density.to_numpy())) > 100  # ...not R's order


@pytest.mark.parametrize(
    "kcdf,which", [("Gaussian", "logexpr"), ("Poisson", "counts"), ("Poisson", "tied_counts"), ("none", "tied_counts")]
)
def test_scores_do_not_depend_on_memory_layout_or_chunk(ties, poisson_ties, kcdf, which):
    expr, sets = (
        (poisson_ties["counts"], poisson_ties["sets"]) if which == "tied_counts" else (ties[which], ties["sets"])
    )
    ties = {"sets": sets}
    c_order = gsva(expr, ties["sets"], kcdf=kcdf)
    values = expr.to_numpy()
    f_order = pd.DataFrame(np.asfortranarray(values), index=expr.index, columns=expr.columns)
    assert f_order.to_numpy().flags.f_contiguous
    wide = np.zeros((values.shape[0], 2 * values.shape[1]))
    wide[:, ::2] = values  # a strided, non-contiguous view of the same values
    strided = pd.DataFrame(wide[:, ::2], index=expr.index, columns=expr.columns)
    for other in (
        gsva(f_order, ties["sets"], kcdf=kcdf),
        gsva(strided, ties["sets"], kcdf=kcdf),
        gsva(expr, ties["sets"], kcdf=kcdf, chunk=7),
    ):
        assert np.array_equal(other.to_numpy(), c_order.to_numpy())  # bit-identical


def test_gsva_sd_matches_exact_arithmetic():
    import statistics
    from fractions import Fraction

    rng = np.random.default_rng(11)
    x = np.round(rng.normal(5, 2, (400, 9)), 1) + rng.choice([0.0, 1e6], (400, 1))
    mine = gsva_module._gsva_sd(x)
    exact = np.array([float(statistics.stdev([Fraction(v) for v in row])) for row in x])
    assert np.all(np.abs(mine - exact) <= 2 * np.spacing(exact))
    assert np.array_equal(mine, gsva_module._gsva_sd(np.asfortranarray(x)))


# ---------------------------------------------------- Poisson on tied counts (gsva_poisson_ties/)
# 300 genes x 12 samples of counts 0..20 built to tie (identical, permuted, two-level and
# mostly-zero rows; see scripts/gsva_poisson_ties.R), and R's ppois on ~11,700 arguments.
PTIES = REF / "gsva_poisson_ties"


def _read_ptie(name, **kw):
    return pd.read_csv(PTIES / name, sep="\t", float_precision="round_trip", **kw)


@pytest.fixture(scope="module")
def poisson_ties():
    counts = _read_ptie("counts.tsv.gz", index_col=0)
    assert counts.to_numpy().min() >= 0 and counts.to_numpy().max() <= 20
    return {"counts": counts.astype(float), "sets": dict(read_gmt(PTIES / "sets.gmt"))}


def test_ppois_is_rs_bit_for_bit():
    from scipy import special

    from helpers.methods.rmath import ppois

    ref = _read_ptie("ppois.tsv.gz")
    q, lam, r = ref["q"].to_numpy(), ref["lambda"].to_numpy(), ref["p"].to_numpy()
    # the grid visits every branch of R's pgamma_raw (x = lambda, alph = q + 1)
    alph = np.floor(q + 1e-7) + 1
    small = lam < 1
    upper = ~small & (lam <= alph - 1) & (lam < 0.8 * (alph + 50))
    lower = ~small & ~upper & (alph - 1 < lam) & (alph < 0.8 * (lam + 50))
    asymp = ~small & ~upper & ~lower
    assert min(small.sum(), upper.sum(), lower.sum(), asymp.sum(), (lower & (alph == 1)).sum()) >= 50
    mine = ppois(q, lam)
    ok = r >= 1e-292  # below, R recomputes in log space (documented; no effect on GSVA's sums)
    assert ok.sum() > 9000
    assert np.array_equal(mine[ok], r[ok])  # bit for bit (measured: all 9,830)
    assert np.all((mine[~ok] >= 0) & (mine[~ok] < 1e-280))
    # the check can fail: scipy's Poisson CDF differs from R's in the last bits
    assert np.sum(special.pdtr(np.floor(q + 1e-7), lam)[ok] != r[ok]) > 1000  # measured 4,322


def test_ppois_edges_and_domain():
    from helpers.methods.rmath import ppois

    assert ppois(-1.0, 3.5) == 0.0 and ppois(4.0, 0.0) == 1.0
    # R floors q + 1e-7: 2.9999999 counts as 3, 2.9999 as 2
    assert ppois(2.9999999, 3.5) == ppois(3.0, 3.5) != ppois(2.9999, 3.5) == ppois(2.0, 3.5)
    assert ppois(np.array([[1.0], [2.0]]), np.array([0.5, 1.5, 2.5])).shape == (2, 3)  # broadcasts
    with pytest.raises(ValueError, match="finite"):
        ppois(np.inf, 2.0)
    with pytest.raises(ValueError, match="lambda"):
        ppois(2.0, -1.0)


def test_bd0_table_is_log_of_its_ratios():
    """The four 24-bit parts of each row of ebd0's table add up to log(p / 1024)."""
    from decimal import Decimal, getcontext

    from helpers.methods import rmath

    getcontext().prec = 50
    table = rmath._bd0_scale()
    assert table.shape == (129, 4)
    assert np.array_equal(table.astype(np.float32).astype(np.float64), table)  # floats, as in C
    for i, row in enumerate(table):
        p = int(np.floor(1024 / (0.5 + i / 256.0) + 0.5))
        exact = (Decimal(p) / Decimal(1024)).ln()
        total = sum(Decimal(float(v)) for v in row)
        assert abs(total - exact) < Decimal("1e-28"), i  # measured 5.6e-30
    table_wrong = table.copy()
    table_wrong[5, 3] *= 2  # the check can fail: a changed last part is seen
    p5 = int(np.floor(1024 / (0.5 + 5 / 256.0) + 0.5))
    assert abs(sum(Decimal(float(v)) for v in table_wrong[5]) - (Decimal(p5) / Decimal(1024)).ln()) > Decimal("1e-28")


def test_poisson_ties_log_odds_are_rs(poisson_ties):
    ref = _read_ptie("density_poisson.tsv.gz", index_col=0)
    mine = kcdf_log_odds(poisson_ties["counts"].loc[ref.index].to_numpy(), "Poisson")
    assert np.array_equal(mine, ref.to_numpy())  # bit-identical (measured: all 3,588)


@pytest.mark.parametrize(
    "kcdf,mx_diff,golden",
    [("Poisson", True, "gsva_poisson"), ("Poisson", False, "gsva_poisson_maxdev"), ("none", True, "gsva_none")],
)
def test_poisson_ties_scores_match_r(poisson_ties, kcdf, mx_diff, golden):
    # scipy's pdtr (the earlier implementation) missed these by 1.9e-2 / 7.4e-3 (Poisson)
    mine = gsva(poisson_ties["counts"], poisson_ties["sets"], kcdf=kcdf, mx_diff=mx_diff)
    ref = _read_ptie(f"{golden}.tsv.gz", index_col=0)
    assert _max_diff(mine, ref) <= 1e-12  # measured 3.7e-15 / 1.8e-15 / 4.6e-15


def _naive_poisson_left(x):
    from helpers.methods.rmath import ppois

    left = np.zeros_like(x)
    for i in range(x.shape[1]):
        left += ppois(x, x[:, i : i + 1] + 0.5)  # every term computed, no sharing of pairs
    return left


@pytest.mark.parametrize("spread", ["narrow", "wide"])
def test_poisson_pair_sharing_gives_the_same_bits(spread):
    # narrow: few distinct counts (dense table of pairs); wide: many (sorted unique pairs)
    rng = np.random.default_rng(5)
    means = rng.uniform(0.5, 8, (40, 1)) if spread == "narrow" else 10 ** rng.uniform(0, 5, (40, 1))
    x = rng.poisson(means, (40, 9)).astype(float)
    uniq = np.unique(x).size
    assert (uniq * uniq <= 4 * x.size * 9) == (spread == "narrow")  # each case takes its path
    assert np.array_equal(gsva_module._poisson_left_tails(x), _naive_poisson_left(x))


def test_ecdf_log_odds_counts_values_at_or_below():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 6, (50, 13)).astype(float)
    x[3] = 2.0  # constant: F = 1 everywhere
    mine = gsva_module._ecdf_log_odds(x)
    f = (x[:, None, :] <= x[:, :, None]).sum(axis=2) / 13.0  # [g, j] = #{i: x_i <= x_j} / n
    with np.errstate(divide="ignore"):
        expected = np.log(f / (1 - f))
    np.testing.assert_allclose(mine, expected, rtol=1e-15)
    assert np.all(mine[x == x.max(axis=1, keepdims=True)] == np.inf)
    assert np.array_equal(mine, gsva_module._ecdf_log_odds(np.asfortranarray(x)))


def test_auto_chooses_none_from_200_samples():
    rng = np.random.default_rng(2)
    counts = rng.poisson(5.0, (30, 200)).astype(float)
    logexpr = rng.normal(5.0, 1.0, (30, 200))
    assert resolve_kcdf(counts, "auto") == "none" and resolve_kcdf(logexpr, "auto") == "none"
    # below the threshold auto must not choose none
    assert resolve_kcdf(counts[:, :199], "auto") == "Poisson"
    assert resolve_kcdf(logexpr[:, :199], "auto") == "Gaussian"
    assert resolve_kcdf(counts[:, :50], "auto", none_min_samples=50) == "none"
    assert resolve_kcdf(counts[:, :50], "auto", none_min_samples=51) == "Poisson"
    assert resolve_kcdf(counts, "Poisson") == "Poisson"  # an explicit choice is kept
    genes = [f"g{i}" for i in range(30)]
    expr = pd.DataFrame(logexpr, index=genes)
    sets = {"a": genes[:8], "b": genes[10:20]}
    pd.testing.assert_frame_equal(gsva(expr, sets, kcdf="auto"), gsva(expr, sets, kcdf="none"))
    few = expr.iloc[:, :199]
    pd.testing.assert_frame_equal(gsva(few, sets, kcdf="auto"), gsva(few, sets, kcdf="Gaussian"))
    assert not np.allclose(gsva(few, sets, kcdf="none").to_numpy(), gsva(few, sets, kcdf="Gaussian").to_numpy())
    with pytest.raises(InputError, match="none_min_samples"):
        gsva(expr, sets, kcdf="auto", none_min_samples=2.5)


# ----------------------------------------------------------------- independent re-implementation


def _slow_gsva(expr: pd.DataFrame, sets: dict, kcdf: str, mx_diff=True, tau=1.0):
    """Literal transcription of GSVA's loops (no vectorisation), for a few genes."""
    from scipy.stats import norm, poisson

    x = expr.to_numpy(float)
    keep = x.std(axis=1, ddof=1) >= 1e-10
    x, genes = x[keep], list(expr.index[keep])
    n_genes, n = x.shape
    dens = np.empty_like(x)
    for g in range(n_genes):
        bw = x[g].std(ddof=1) / 4.0
        for j in range(n):
            tail = 0.0
            for i in range(n):
                if kcdf == "Gaussian":
                    v = (x[g, j] - x[g, i]) / bw
                    c = norm.cdf(int(abs(v) / 10.0 * 10000) * 10.0 / 10000) if abs(v) <= 10 else 1.0
                    tail += (1.0 - c) if v < 0 else c
                else:
                    tail += poisson.cdf(x[g, j], x[g, i] + 0.5)
            tail /= n
            dens[g, j] = -np.log((1 - tail) / tail)
    out = {}
    for name, members in sets.items():
        idx = [genes.index(m) for m in dict.fromkeys(members) if m in genes]
        if not idx:
            continue
        row = []
        for s in range(n):
            order = sorted(range(n_genes), key=lambda g: -dens[g, s])
            score = np.empty(n_genes)
            for p, g in enumerate(order):
                score[g] = abs(n_genes - p - n_genes / 2)
            total = sum(score[g] ** tau for g in idx)
            cum, hi, lo = 0.0, 0.0, 0.0
            for g in order:
                cum += score[g] ** tau / total if g in idx else -1.0 / (n_genes - len(idx))
                hi, lo = max(hi, cum), min(lo, cum)
            row.append(hi + lo if mx_diff else (hi if hi > abs(lo) else lo))
        out[name] = row
    return pd.DataFrame(out, index=expr.columns).T


@pytest.mark.parametrize("kcdf", ["Gaussian", "Poisson"])
@pytest.mark.parametrize("mx_diff,tau", [(True, 1.0), (False, 1.0), (True, 0.5)])
def test_matches_literal_algorithm(kcdf, mx_diff, tau):
    rng = np.random.default_rng(3)
    genes = [f"g{i}" for i in range(60)]
    if kcdf == "Poisson":
        values = rng.poisson(rng.uniform(1, 50, (60, 1)), (60, 7)).astype(float)
    else:
        values = rng.normal(0, 1, (60, 7)) + rng.normal(0, 2, (60, 1))
    values[5] = 3.0  # a zero-variance gene
    expr = pd.DataFrame(values, index=genes, columns=[f"s{j}" for j in range(7)])
    sets = {"a": genes[:10], "b": genes[3:8] + ["absent"], "c": genes[20:50:3], "d": genes[40:41]}
    mine = gsva(expr, sets, kcdf=kcdf, mx_diff=mx_diff, tau=tau)
    slow = _slow_gsva(expr, sets, kcdf, mx_diff=mx_diff, tau=tau)
    np.testing.assert_allclose(mine.to_numpy(), slow.loc[mine.index].to_numpy(), atol=1e-12)


def test_zero_variance_genes_dropped_before_size_filter():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(30)]
    expr = pd.DataFrame(rng.normal(size=(30, 6)), index=genes)
    expr.loc["g0"] = 1.0  # constant
    sets = {"two": ["g0", "g1"], "three": ["g2", "g3", "g4"]}
    out = gsva(expr, sets, min_size=2)
    assert list(out.index) == ["three"]  # "two" has 1 gene once g0 is dropped
    # and the constant gene has no influence on the scores at all
    pd.testing.assert_frame_equal(out, gsva(expr.drop(index="g0"), sets, min_size=2))


def test_scores_follow_planted_shift():
    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(200)]
    expr = pd.DataFrame(rng.normal(size=(200, 10)), index=genes)
    expr.iloc[:20, 5:] += 2.0  # set genes up in the last 5 samples
    out = gsva(expr, {"up": genes[:20], "null": genes[100:120]})
    assert (out.loc["up"].iloc[5:] > 0.3).all() and (out.loc["up"].iloc[:5] < 0).all()
    assert out.loc["null"].abs().max() < out.loc["up"].abs().max()


def test_kcdf_log_odds_gaussian_symmetry():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    d = kcdf_log_odds(x, "Gaussian")
    assert d[0, 0] < d[0, 1] < d[0, 2] < d[0, 3]
    np.testing.assert_allclose(d[0, :2], -d[0, :1:-1], atol=1e-15)  # symmetric values, log-odds
    assert np.array_equal(d[1], np.zeros(4))  # a constant gene: every sample at F = 1/2


@pytest.mark.parametrize(
    "bad,msg",
    [
        (pd.DataFrame([[1.0, np.nan], [2.0, 3.0]], index=["a", "b"]), "non-finite"),
        (pd.DataFrame([[1.0, 2.0], [2.0, 3.0]], index=["a", "a"]), "duplicated gene"),
        (pd.DataFrame([["x", 2.0], [2.0, 3.0]], index=["a", "b"]), "numeric"),
    ],
)
def test_bad_expression(bad, msg):
    with pytest.raises(InputError, match=msg):
        gsva(bad, {"s": ["a", "b"]})


def test_bad_sets_and_kcdf():
    expr = pd.DataFrame(np.arange(12.0).reshape(4, 3) ** 1.5, index=list("abcd"))
    with pytest.raises(InputError, match="no gene set"):
        gsva(expr, {"s": ["x", "y"]})
    with pytest.raises(InputError, match="kcdf"):
        gsva(expr, {"s": ["a"]}, kcdf="gauss")
    with pytest.raises(InputError, match="negative"):
        gsva(expr - 100, {"s": ["a"]}, kcdf="Poisson")
    with pytest.raises(InputError, match="list of genes"):
        gsva(expr, {"s": "abc"})
