"""Write the real-format cohorts of ``tests/data/formats/`` used by end-to-end tests (issue 16).

Two cohorts, each a table plus a sample sheet, in the layouts tools and repositories write:

- ``array_logexpr.tsv.gz`` + ``array_samples.tsv``: a log2 expression table of a microarray
  study (``kind: logexpr``): about 2,000 genes by symbol, with duplicated probes, some genes
  under previous symbols, and only 7 of the paper's 14 signature genes, three of them under
  previous names (CCDC155, C20orf58 for NKAIN4, RNF91 for TRIM9); 24 samples (16 CR, 8 NR)
  with a planted CR/NR difference in 40 genes.
- ``null_counts_featurecounts.tsv.gz`` + ``null_samples.tsv``: a featureCounts count table
  (``kind: counts``): a ``#`` program line, the Chr/Start/End/Strand/Length annotation
  columns, versioned Ensembl IDs, 1,200 genes including all 14 signature genes (CCDC155 as its
  Ensembl ID, today KASH5); 20 samples (12 CR, 8 NR) whose labels are drawn independently of
  the expression. The script checks, with the book's own code (chapter 01's cohort build and
  edgeR log-CPM, chapter 08's PAM cross-validation), that no threshold keeping a gene has fewer
  leave-one-out errors than the null classifier (so pamr's rule picks the null classifier),
  trying seeds from ``--seed`` upwards, and prints the seed used.

Values are random; gene symbols and Ensembl IDs are real (the shipped annotation), the
featureCounts coordinates are placeholders, not the genes' positions. Output is deterministic
(gzip with mtime 0): ``python scripts/make_format_fixtures.py`` rewrites identical bytes.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from helpers.analysis import model as mdl  # noqa: E402
from helpers.data import annotation, genesets  # noqa: E402

OUT = ROOT / "tests" / "data" / "formats"
SIGNATURE = mdl.published_model().genes
#: The signature genes the array cohort has, and the names it uses for them.
ARRAY_SIGNATURE = {
    "IGF2BP1": "IGF2BP1",
    "GREB1": "GREB1",
    "ADAMTS7": "ADAMTS7",
    "TYRO3": "TYRO3",
    "NKAIN4": "C20orf58",
    "TRIM9": "RNF91",
    "CCDC155": "CCDC155",
}


def _write_gz(text: str, path: Path) -> None:
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(text.encode("utf-8"))


def _candidates(rng) -> pd.DataFrame:
    """Protein-coding genes with one Ensembl ID that maps to them only, other than the signature
    genes and KASH5, in a seeded random order, the genes of the shipped T-cell pathways first
    (so that chapter 07's GSVA has its gene sets on a small cohort)."""
    ann = annotation.load_annotation()
    pc = ann[(ann["gene_type"] == "protein-coding") & (ann["ensembl_id"] != "")]
    pc = pc[~pc["ensembl_id"].duplicated(keep=False) & ~pc["symbol"].duplicated(keep=False)]
    pc = pc[~pc["symbol"].isin(SIGNATURE + ["KASH5"])]
    pc = pc.iloc[rng.permutation(len(pc))].reset_index(drop=True)
    tcell = set().union(*genesets.load_collection("tcell").values())
    first = pc["symbol"].isin(tcell).to_numpy()
    return pd.concat([pc[first], pc[~first]]).reset_index(drop=True)


def _previous_symbols(symbols, n, rng) -> dict:
    """Up to n of ``symbols`` -> an unambiguous previous/alternative symbol (alias of that gene
    only, no gene's official symbol), which harmonisation maps back."""
    ann = annotation.load_annotation()
    al = annotation.load_aliases()
    official = set(ann["symbol"])
    n_genes = al.groupby("alias_symbol")["entrez_id"].nunique()
    unique = set(n_genes.index[n_genes == 1]) - official
    eg = dict(zip(ann["symbol"], ann["entrez_id"]))
    by_eg = al[al["alias_symbol"].isin(unique)].groupby("entrez_id")["alias_symbol"].apply(sorted).to_dict()
    out = {}
    for s in rng.permutation(sorted(symbols)):
        a = [x for x in by_eg.get(eg.get(s), []) if x.isupper() and x.isalnum() and x not in symbols]
        if a:
            out[s] = a[0]
        if len(out) == n:
            break
    return out


def make_array(seed: int = 16, out: Path = OUT) -> dict:
    """The log2 array cohort (module docstring). Returns facts for the README."""
    rng = np.random.default_rng(seed)
    n_cr, n_nr, n_other = 16, 8, 1993
    genes = _candidates(rng)["symbol"].tolist()[:n_other]
    renamed = _previous_symbols(genes, 30, rng)
    symbols = [renamed.get(g, g) for g in genes] + list(ARRAY_SIGNATURE.values())
    n = len(symbols)
    samples = [f"GSM90000{i:02d}" for i in range(1, n_cr + n_nr + 1)]
    response = np.array(["CR"] * n_cr + ["NR"] * n_nr)[rng.permutation(n_cr + n_nr)]
    base = np.clip(rng.normal(7.0, 2.0, n), 2.5, 14.0)
    noise = rng.normal(0.0, 1.0, (n, len(samples))) * rng.uniform(0.2, 0.6, n)[:, None]
    scan = rng.normal(0.0, 0.1, len(samples))  # per-array intensity offset
    x = base[:, None] + noise + scan[None, :]
    de = rng.choice(n_other, 40, replace=False)  # planted CR/NR differences
    shift = rng.choice([-1.0, 1.0], 40) * rng.uniform(0.6, 1.2, 40)
    x[de] += np.outer(shift, (response == "NR").astype(float))
    # the signature genes present, with Table 1's direction (NR higher than CR where it is)
    cen = mdl.published_model().centroids
    for gene, name in ARRAY_SIGNATURE.items():
        i = symbols.index(name)
        x[i] = base[i] + noise[i] + np.where(response == "NR", cen.loc[gene, "NR"] - cen.loc[gene, "CR"], 0.0)
    # duplicated probes: 12 genes measured twice (collapsed to the highest mean by chapter 01)
    dup = rng.choice(n_other, 12, replace=False)
    symbols += [symbols[i] for i in dup]
    x = np.vstack([x, x[dup] - rng.uniform(0.5, 2.0, (12, 1)) + rng.normal(0, 0.2, (12, len(samples)))])
    table = pd.DataFrame(np.round(x, 3), index=pd.Index(symbols, name="Gene Symbol"), columns=samples)
    _write_gz(table.to_csv(sep="\t", lineterminator="\n", float_format="%.3f"), out / "array_logexpr.tsv.gz")
    sheet = pd.DataFrame(
        {
            "sample_id": samples,
            "response": response,
            "age": rng.integers(4, 70, len(samples)),
            "sex": rng.choice(["F", "M"], len(samples)),
        }
    )
    sheet.to_csv(out / "array_samples.tsv", sep="\t", index=False, lineterminator="\n")
    return {
        "rows": len(symbols),
        "genes": len(set(symbols)),
        "samples": len(samples),
        "renamed": len(renamed),
        "duplicated": len(dup),
        "signature": ", ".join(f"{g} as {s}" if g != s else g for g, s in ARRAY_SIGNATURE.items()),
    }


def _null_cohort(seed: int):
    rng = np.random.default_rng(seed)
    n_cr, n_nr, n_other = 12, 8, 1186
    ann = annotation.load_annotation()
    cand = _candidates(rng).iloc[:n_other]
    sig = ann[ann["symbol"].isin(SIGNATURE + ["KASH5"]) & (ann["ensembl_id"] != "")].drop_duplicates("symbol")
    ens = cand["ensembl_id"].tolist() + sig["ensembl_id"].tolist()
    n = len(ens)
    ids = [f"{e}.{v}" for e, v in zip(ens, rng.integers(1, 20, n))]
    samples = [f"P{i:02d}" for i in range(1, n_cr + n_nr + 1)]
    mu = np.exp(rng.normal(5.5, 2.0, n))
    lib = rng.lognormal(0.0, 0.3, len(samples))
    disp = 0.05 + 0.5 / np.sqrt(mu)  # edgeR-like trend, biological floor 0.05
    size = 1.0 / disp
    counts = rng.negative_binomial(size[:, None], size[:, None] / (size[:, None] + mu[:, None] * lib[None, :]))
    response = np.array(["CR"] * n_cr + ["NR"] * n_nr)[rng.permutation(n_cr + n_nr)]  # independent of counts
    return ids, samples, counts, response, rng


def _null_wins(table: Path, sheet: Path) -> tuple[bool, dict]:
    """Chapter 01's build and chapter 08's PAM CV on the files: does no threshold that keeps a
    gene make fewer leave-one-out errors than the null classifier (no gene)? Then pamr's rule
    (the largest threshold with the fewest errors) lands on the null classifier."""
    from helpers.analysis.expression import log_expression
    from helpers.data import cohort as ch
    from helpers.methods import pam

    coh = ch.build_cohort({"dataset": "custom", "custom": {"table": str(table), "sample_sheet": str(sheet)}})
    X = log_expression(coh, scale="logcpm")
    y = coh.samples.loc[X.columns, "response"].astype(str).to_numpy()
    fit = pam.train(X, y, classes=["CR", "NR"])
    cv = pam.cv(X, y, fit).table()
    null = cv.loc[cv["n_genes"] == 0, "cv_errors"]
    some = cv.loc[cv["n_genes"] > 0, "cv_errors"]
    facts = {
        "null_errors": int(null.min()) if len(null) else None,
        "best_errors_with_genes": int(some.min()),
        "genes_after_filter": int(X.shape[0]),
    }
    return bool(len(null) and some.min() >= null.min()), facts


def make_null(seed: int = 16, tries: int = 200, out: Path = OUT) -> dict:
    """The featureCounts count cohort whose labels carry no signal (module docstring)."""
    for s in range(seed, seed + tries):
        ids, samples, counts, response, rng = _null_cohort(s)
        n = len(ids)
        start = rng.integers(10_000, 200_000_000, n)
        length = rng.integers(300, 12_000, n)
        ann = pd.DataFrame(
            {
                "Geneid": ids,
                "Chr": [f"chr{c}" for c in rng.integers(1, 23, n)],
                "Start": start,
                "End": start + length * 3,
                "Strand": rng.choice(["+", "-"], n),
                "Length": length,
            }
        )
        body = pd.concat([ann, pd.DataFrame(counts, columns=samples)], axis=1)
        head = (
            '# Program:featureCounts v2.0.3; Command:"featureCounts" "-T" "8" "-p" "-a" '
            '"gencode.v38.annotation.gtf" "-o" "counts.txt" ' + " ".join(f'"{x}.bam"' for x in samples) + "\n"
        )
        _write_gz(
            head + body.to_csv(sep="\t", index=False, lineterminator="\n"), out / "null_counts_featurecounts.tsv.gz"
        )
        pd.DataFrame(
            {
                "sample_id": samples,
                "response": response,
                "age": rng.integers(4, 70, len(samples)),
                "sex": rng.choice(["F", "M"], len(samples)),
            }
        ).to_csv(out / "null_samples.tsv", sep="\t", index=False, lineterminator="\n")
        ok, facts = _null_wins(out / "null_counts_featurecounts.tsv.gz", out / "null_samples.tsv")
        if ok:
            return {"seed": s, "genes": n, "samples": len(samples), **facts}
    raise SystemExit(f"no seed in {seed}..{seed + tries - 1} gives a cohort where the null classifier wins")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", type=Path, default=OUT, help="folder to write to (default: tests/data/formats)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    a = make_array(args.seed, args.out)
    print(
        f"array_logexpr.tsv.gz: {a['rows']} rows, {a['genes']} distinct symbols ({a['duplicated']} duplicated "
        f"probes, {a['renamed']} under previous symbols), {a['samples']} samples; signature: {a['signature']}"
    )
    b = make_null(args.seed, out=args.out)
    print(
        f"null_counts_featurecounts.tsv.gz: seed {b['seed']}, {b['genes']} genes x {b['samples']} samples; "
        f"{b['genes_after_filter']} genes after filterByExpr; LOOCV errors: null {b['null_errors']}, best with "
        f"genes {b['best_errors_with_genes']}"
    )
    for f in ("array_logexpr.tsv.gz", "array_samples.tsv", "null_counts_featurecounts.tsv.gz", "null_samples.tsv"):
        print(f"  {f}: {(args.out / f).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
