"""GSVA (method "gsva") against R GSVA 1.46 golden scores, plus an independent re-implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.engine.errors import InputError
from helpers.data.genesets import read_gmt
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
    x = np.array([[0.0, 1.0, 2.0, 3.0]])
    d = kcdf_log_odds(x, "Gaussian")
    assert d[0, 0] < d[0, 1] < d[0, 2] < d[0, 3]


@pytest.mark.parametrize("bad,msg", [
    (pd.DataFrame([[1.0, np.nan], [2.0, 3.0]], index=["a", "b"]), "non-finite"),
    (pd.DataFrame([[1.0, 2.0], [2.0, 3.0]], index=["a", "a"]), "duplicated gene"),
    (pd.DataFrame([["x", 2.0], [2.0, 3.0]], index=["a", "b"]), "numeric"),
])
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
