"""Timing of limma-voom end to end (filterByExpr + TMM + voom + lmFit + eBayes) on simulated counts.

Run as a script to print JSON: ``python benchmarks/bench_de.py [n_genes] [n_samples] [seed]``.
Reference: R 4.2 / limma 3.54 takes about 2 s for ~19,000 genes x 31 samples on a 2-core machine.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd

from helpers.methods.edger import calc_norm_factors, filter_by_expr
from helpers.methods.limma import ebayes, lm_fit, top_table, voom


def simulate_counts(n_genes: int = 20000, n_samples: int = 31, seed: int = 0):
    """Negative-binomial counts (genes x samples) and a CR/NR sample sheet, 1% of genes DE."""
    rng = np.random.default_rng(seed)
    n_nr = max(2, round(n_samples * 9 / 31))
    response = np.array(["CR"] * (n_samples - n_nr) + ["NR"] * n_nr)
    base = np.exp(rng.normal(3.0, 2.0, n_genes))  # mean counts, wide dynamic range
    lfc = np.zeros(n_genes)
    de = rng.choice(n_genes, size=n_genes // 100, replace=False)
    lfc[de] = rng.choice([-1.0, 1.0], size=de.size) * rng.uniform(0.6, 1.5, de.size)
    lib = rng.uniform(0.6, 1.6, n_samples)
    mu = base[:, None] * lib[None, :] * np.where(response == "CR", 2.0 ** lfc[:, None], 1.0)
    disp = 0.05 + 1.0 / np.sqrt(base + 1)
    shape = 1.0 / disp[:, None]
    counts = rng.poisson(rng.gamma(shape, mu / shape))
    genes = [f"G{i:05d}" for i in range(n_genes)]
    samples = pd.DataFrame(
        {"response": response}, index=pd.Index([f"S{j:02d}" for j in range(n_samples)], name="sample_id")
    )
    return pd.DataFrame(counts, index=genes, columns=samples.index), samples


def bench(n_genes: int = 20000, n_samples: int = 31, seed: int = 0) -> dict:
    """Seconds per step of limma-voom on simulated NB counts (``total`` = sum of the steps)."""
    counts, samples = simulate_counts(n_genes, n_samples, seed)
    X = np.column_stack([np.ones(n_samples), (samples["response"] == "CR").to_numpy(float)])
    t = {}
    t0 = time.perf_counter()
    keep = filter_by_expr(counts.to_numpy(), design=X)
    kept = counts.loc[keep]
    t["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nf = calc_norm_factors(kept.to_numpy())
    t["tmm"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = voom(kept, X, lib_size=kept.to_numpy().sum(axis=0) * nf)
    t["voom"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = lm_fit(v.E, X, weights=v.weights)
    t["lm_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = ebayes(fit)
    top_table(fit, coef=-1)
    t["ebayes"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    print(json.dumps({k: round(v, 4) for k, v in bench(*args).items()}, indent=2))
