"""Time and peak memory of helpers.methods.gsea.prerank on a synthetic GO-BP-sized problem.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_gsea.py [--n-signal 300] [--collection go_bp]``
-> prints JSON.
The reference point is R fgsea (fgseaMultilevel) on the full GO BP collection: 22 s on the
2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd


def synthetic(n_genes: int = 20000, n_sets: int = 6000, n_signal: int = 0, seed: int = 0):
    """A normal ranking and ``n_sets`` random sets with GO-BP-like sizes (log-uniform 15..500).

    The first ``n_signal`` sets get a shift of +0.5 (even index) or -0.5 (odd) on their genes,
    so some sets are truly enriched, as in real data, which exercises the adaptive permutations.
    """
    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    scores = rng.standard_normal(n_genes)
    sizes = np.rint(np.exp(rng.uniform(np.log(15), np.log(500), n_sets))).astype(int)
    sets = {}
    for i, k in enumerate(sizes):
        members = rng.choice(n_genes, size=k, replace=False)
        if i < n_signal:
            scores[members] += 0.5 if i % 2 == 0 else -0.5
        sets[f"SET{i:05d}"] = list(genes[members])
    return pd.Series(scores, index=genes), sets


def from_collection(name: str, n_genes: int = 20000, n_signal: int = 0, seed: int = 0):
    """A real collection (e.g. "go_bp" from data/genesets) with a synthetic normal ranking.

    The ranked genes are the collection's genes, padded with made-up names up to ``n_genes``;
    the first ``n_signal`` sets that pass 15..500 get the +-0.5 shift described in :func:`synthetic`.
    """
    from helpers.data.genesets import load_collection

    sets = dict(load_collection(name))
    genes = sorted({g for members in sets.values() for g in members})
    genes += [f"PAD{i:05d}" for i in range(max(0, n_genes - len(genes)))]
    rng = np.random.default_rng(seed)
    ranking = pd.Series(rng.standard_normal(len(genes)), index=genes)
    shifted = 0
    for members in sets.values():
        if shifted >= n_signal:
            break
        if 15 <= len(set(members)) <= 500:
            ranking.loc[list(set(members))] += 0.5 if shifted % 2 == 0 else -0.5
            shifted += 1
    return ranking, sets


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def bench(
    n_genes: int = 20000,
    n_sets: int = 6000,
    n_perm: int = 1000,
    max_perm: int = 10000,
    n_signal: int = 0,
    seed: int = 0,
    collection: str | None = None,
    trace: bool = True,
) -> dict:
    """Run prerank once on synthetic data; return wall time (s), peak RSS (MB) and a result summary.

    Peak RSS is the whole process's high-water mark (Python, numpy, pandas included); the
    baseline before the run is reported too. With ``trace=True`` a second, untimed run under
    ``tracemalloc`` reports the peak memory allocated by the run itself (numpy arrays included).
    """
    from helpers.methods.gsea import prerank

    if collection:
        ranking, sets = from_collection(collection, n_genes, n_signal, seed)
    else:
        ranking, sets = synthetic(n_genes, n_sets, n_signal, seed)
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    res = prerank(ranking, sets, min_size=15, max_size=500, n_perm=n_perm, max_perm=max_perm, seed=seed)
    wall = time.perf_counter() - t0
    rss_after = _peak_rss_mb()
    traced = None
    if trace:
        tracemalloc.start()
        prerank(ranking, sets, min_size=15, max_size=500, n_perm=n_perm, max_perm=max_perm, seed=seed)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {
        "collection": collection or "synthetic",
        "n_genes": len(ranking),
        "n_sets": len(sets),
        "n_sets_tested": int(len(res)),
        "n_distinct_sizes": int(res["size"].nunique()),
        "n_perm": n_perm,
        "max_perm": max_perm,
        "n_signal": n_signal,
        "n_sets_refined": int((res["n_perm"] > n_perm).sum()),
        "n_padj_0.05": int((res["padj"] < 0.05).sum()),
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(rss_after, 1),
        "peak_rss_before_mb": round(rss_before, 1),
        "tracemalloc_peak_mb": None if traced is None else round(traced, 1),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def versus_gseapy(
    n_genes: int = 20000, n_sets: int = 1000, n_perm: int = 1000, n_signal: int = 50, seed: int = 0
) -> dict:
    """Ours against gseapy's ``prerank`` on the same ranking and sets, both with ``n_perm``
    permutations per set and one thread (ours without the adaptive refinement, ``max_perm =
    n_perm``, so both do the same number of permutations). Wall and CPU seconds, the ratio, and
    how the two NES agree (Pearson over the sets both tested)."""
    import contextlib
    import io
    import logging
    import warnings

    import gseapy

    from helpers.methods.gsea import prerank

    ranking, sets = synthetic(n_genes, n_sets, n_signal, seed)

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return time.perf_counter() - w0, time.process_time() - c0, out

    w_ours, c_ours, ours = timed(
        lambda: prerank(ranking, sets, min_size=15, max_size=500, n_perm=n_perm, max_perm=n_perm, seed=seed)
    )
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.getLogger("gseapy").setLevel(logging.ERROR)
        w_gp, c_gp, gp = timed(
            lambda: gseapy.prerank(
                rnk=ranking.sort_values(ascending=False),
                gene_sets=sets,
                min_size=15,
                max_size=500,
                permutation_num=n_perm,
                threads=1,
                seed=seed,
                no_plot=True,
                outdir=None,
                verbose=False,
            )
        )
    res = gp.res2d.set_index("Term")
    both = ours.set_index("pathway").join(res["NES"].astype(float).rename("NES_gseapy"), how="inner")
    return {
        "problem": f"synthetic: {n_genes} genes, {n_sets} sets (15-500 genes), {n_signal} shifted",
        "n_perm": n_perm,
        "ours": {"wall_seconds": round(w_ours, 3), "cpu_seconds": round(c_ours, 3)},
        "gseapy": {"wall_seconds": round(w_gp, 3), "cpu_seconds": round(c_gp, 3), "version": gseapy.__version__},
        "speedup_vs_gseapy_wall": round(w_gp / w_ours, 2),
        "speedup_vs_gseapy_cpu": round(c_gp / c_ours, 2),
        "n_sets_compared": int(len(both)),
        "pearson_nes": round(float(np.corrcoef(both["NES"], both["NES_gseapy"])[0, 1]), 4),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-genes", type=int, default=20000)
    ap.add_argument("--n-sets", type=int, default=6000)
    ap.add_argument("--n-perm", type=int, default=1000)
    ap.add_argument("--max-perm", type=int, default=10000)
    ap.add_argument("--n-signal", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--collection", default=None, help="use a shipped collection (e.g. go_bp) instead of random sets")
    ap.add_argument("--gseapy", action="store_true", help="time ours against gseapy.prerank on the same input")
    a = ap.parse_args(argv)
    if a.gseapy:
        print(
            json.dumps(versus_gseapy(a.n_genes, min(a.n_sets, 1000), a.n_perm, max(a.n_signal, 50), a.seed), indent=2)
        )
        return
    print(json.dumps(bench(a.n_genes, a.n_sets, a.n_perm, a.max_perm, a.n_signal, a.seed, a.collection), indent=2))


if __name__ == "__main__":
    main()
