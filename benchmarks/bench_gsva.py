"""Time of helpers.methods.gsva.gsva on a 20,000-gene x 31-sample matrix with the GO BP sets.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gsva.py [--repeat 3] [--kcdf Gaussian]``
-> prints JSON (best and median wall seconds over the repeats).
The expression is synthetic (normal log-expression rounded to 2 decimals, so ties occur as in
array data); the genes are the collection's genes, padded with made-up names up to 20,000.
The reference point is R GSVA 1.46 on the same problem size: 58 s on the 2-core machine (issue 14).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd


def problem(n_genes: int = 20000, n_samples: int = 31, kcdf: str = "Gaussian", seed: int = 0):
    from helpers.data.genesets import load_collection

    sets = dict(load_collection("go_bp"))
    genes = sorted({g for members in sets.values() for g in members})[:n_genes]
    genes += [f"PAD{i:05d}" for i in range(max(0, n_genes - len(genes)))]
    rng = np.random.default_rng(seed)
    if kcdf == "Poisson":
        values = rng.poisson(rng.gamma(0.8, 200.0, (n_genes, 1)), (n_genes, n_samples)).astype(float)
    else:
        values = np.round(rng.normal(6.0, 2.0, (n_genes, 1)) + rng.normal(0.0, 0.7, (n_genes, n_samples)), 2)
    expr = pd.DataFrame(values, index=genes, columns=[f"S{j:02d}" for j in range(n_samples)])
    return expr, sets


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kcdf", default="Gaussian", choices=["Gaussian", "Poisson"])
    args = ap.parse_args(argv)
    from helpers.methods.gsva import gsva

    expr, sets = problem(kcdf=args.kcdf)
    secs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = gsva(expr, sets, kcdf=args.kcdf, min_size=10, max_size=500)
        secs.append(time.perf_counter() - t0)
    result = {
        "kcdf": args.kcdf,
        "genes": expr.shape[0],
        "samples": expr.shape[1],
        "sets": out.shape[0],
        "best_s": round(min(secs), 3),
        "median_s": round(statistics.median(secs), 3),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
