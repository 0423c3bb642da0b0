"""Write the two RNA-seq cohorts of ``tests/data/formats/`` that ``tests/test_e2e_cohorts.py``
builds the whole book on, besides the array and null cohorts of ``make_format_fixtures.py``:

- ``geo_real/``: the paper's two public datasets as they arrive, for ``dataset: real`` with
  ``01_cohort.real.raw_dir`` pointing here. ``GSE153670/GSE153670_raw_counts.txt.gz`` is a GEO
  supplementary count matrix (gzip, tab, ``gene_id`` then the sample *titles*, GENCODE-style
  Ensembl IDs with version suffixes such as ``ENSG00000161609.12``);
  ``GSE153670/GSE153670_series_matrix.txt.gz`` the series matrix (titles, GSM accessions,
  ``response: complete remission`` / ``no response`` among the characteristics);
  ``PRJCA000750/counts.tsv.gz`` the merged table of the upstream workflow (Ensembl IDs without
  version, 40 genes fewer, so joining drops genes) and ``PRJCA000750/samples.tsv``.
  20 + 4 samples (14 CR + 6 NR, 3 CR + 1 NR).
- ``htseq_cohort/``: one HTSeq-count file per sample (``S01.counts.txt.gz`` ...; Ensembl IDs
  without version, the five ``__`` summary rows at the end), for ``dataset: custom`` with the
  folder as ``custom.table``, and ``htseq_cohort_samples.tsv`` (10 CR, 6 NR).

Both have 1,200 genes (the genes of the shipped T-cell pathways first, all 14 signature genes,
CCDC155 under its Ensembl ID), negative-binomial counts with an edgeR-like dispersion trend,
and 60 genes with a planted CR/NR difference besides the 14 signature genes (moved in Table 1's
direction), so chapter 08 finds a signature. Values are random, gene IDs real (the shipped
annotation). Output is deterministic (gzip with mtime 0): running the script again rewrites
identical bytes (``tests/test_e2e_cohorts.py`` checks it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from make_format_fixtures import SIGNATURE, _candidates, _write_gz  # noqa: E402

from helpers.analysis import model as mdl  # noqa: E402
from helpers.data import annotation  # noqa: E402

OUT = HERE.parent / "tests" / "data" / "formats"
N_GENES = 1200
N_DE = 60
HTSEQ_SUMMARY = ["__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned", "__alignment_not_unique"]
#: every file the script writes, relative to its output folder
FILES = [
    "geo_real/GSE153670/GSE153670_raw_counts.txt.gz",
    "geo_real/GSE153670/GSE153670_series_matrix.txt.gz",
    "geo_real/PRJCA000750/counts.tsv.gz",
    "geo_real/PRJCA000750/samples.tsv",
    *[f"htseq_cohort/S{i:02d}.counts.txt.gz" for i in range(1, 17)],
    "htseq_cohort_samples.tsv",
]


def _genes(rng) -> pd.DataFrame:
    """N_GENES protein-coding genes (symbol, Ensembl ID): the 14 signature genes (CCDC155 as the
    Ensembl ID of today's KASH5) and the first candidates (T-cell pathway genes first)."""
    ann = annotation.load_annotation()
    sig = ann[ann["symbol"].isin(SIGNATURE + ["KASH5"]) & (ann["ensembl_id"] != "")].drop_duplicates("symbol")
    cand = _candidates(rng).iloc[: N_GENES - len(sig)]
    out = pd.concat([cand[["symbol", "ensembl_id"]], sig[["symbol", "ensembl_id"]]]).reset_index(drop=True)
    return out


def _counts(rng, genes: pd.DataFrame, response: np.ndarray, de: np.ndarray, lfc: np.ndarray) -> np.ndarray:
    """Negative-binomial counts, genes x samples; genes ``de`` get log2 fold change ``lfc`` in NR."""
    n = len(genes)
    mu = np.exp(rng.normal(5.5, 2.0, n))
    lib = rng.lognormal(0.0, 0.3, len(response))
    shift = np.zeros((n, len(response)))
    shift[de] = np.outer(lfc, (response == "NR").astype(float))
    m = mu[:, None] * lib[None, :] * 2.0**shift
    disp = 0.05 + 0.5 / np.sqrt(mu)
    size = (1.0 / disp)[:, None]
    return rng.negative_binomial(size, size / (size + m))


def _plan(rng, genes: pd.DataFrame):
    """Which genes differ between CR and NR and by how much (log2, NR relative to CR)."""
    n_other = len(genes) - len(SIGNATURE)
    de = rng.choice(n_other, N_DE, replace=False)
    lfc = rng.choice([-1.0, 1.0], N_DE) * rng.uniform(0.8, 1.6, N_DE)
    cen = mdl.published_model().centroids
    sym = genes["symbol"].replace({"KASH5": "CCDC155"})
    sig = np.array([int(np.flatnonzero(sym.to_numpy() == g)[0]) for g in SIGNATURE])
    sig_lfc = np.sign((cen["NR"] - cen["CR"]).loc[SIGNATURE].to_numpy()) * 1.2
    return np.concatenate([de, sig]), np.concatenate([lfc, sig_lfc])


def _labels(rng, n_cr: int, n_nr: int) -> np.ndarray:
    return np.array(["CR"] * n_cr + ["NR"] * n_nr)[rng.permutation(n_cr + n_nr)]


def _series_matrix(titles, gsm, response, age) -> str:
    def row(key, vals):
        return key + "\t" + "\t".join(f'"{v}"' for v in vals) + "\n"

    words = {"CR": "complete remission", "NR": "no response"}
    n = len(titles)
    return (
        row("!Series_title", ["Bone marrow before CD19 CAR T cells (test fixture, random values)"])
        + row("!Series_geo_accession", ["GSE153670"])
        + "\n"
        + row("!Sample_title", titles)
        + row("!Sample_geo_accession", gsm)
        + row("!Sample_source_name_ch1", ["bone marrow"] * n)
        + row("!Sample_organism_ch1", ["Homo sapiens"] * n)
        + row("!Sample_characteristics_ch1", ["tissue: bone marrow"] * n)
        + row("!Sample_characteristics_ch1", [f"response: {words[r]}" for r in response])
        + row("!Sample_characteristics_ch1", [f"age: {a}" for a in age])
        + row("!Sample_data_processing", ["STAR, HTSeq-count"] * n)
        + "!series_matrix_table_begin\n"
        + row('"ID_REF"', gsm).replace('""ID_REF""', '"ID_REF"')
        + "!series_matrix_table_end\n"
    )


def make_geo(seed: int = 31, out: Path = OUT) -> dict:
    """``geo_real/`` (module docstring)."""
    rng = np.random.default_rng(seed)
    genes = _genes(rng)
    de, lfc = _plan(rng, genes)
    root = out / "geo_real"
    (root / "GSE153670").mkdir(parents=True, exist_ok=True)
    (root / "PRJCA000750").mkdir(parents=True, exist_ok=True)
    # GSE153670: titles as columns, versioned Ensembl IDs
    resp = _labels(rng, 14, 6)
    titles = [f"BM_pt{i:02d}" for i in range(1, len(resp) + 1)]
    gsm = [f"GSM46500{i:02d}" for i in range(1, len(resp) + 1)]
    c = _counts(rng, genes, resp, de, lfc)
    ids = [f"{e}.{v}" for e, v in zip(genes["ensembl_id"], rng.integers(1, 20, len(genes)))]
    ids[genes.index[genes["symbol"] == "KASH5"][0]] = "ENSG00000161609.12"
    gse = pd.DataFrame(c, index=pd.Index(ids, name="gene_id"), columns=titles)
    _write_gz(gse.to_csv(sep="\t", lineterminator="\n"), root / "GSE153670" / "GSE153670_raw_counts.txt.gz")
    age = rng.integers(4, 70, len(resp))
    _write_gz(_series_matrix(titles, gsm, resp, age), root / "GSE153670" / "GSE153670_series_matrix.txt.gz")
    # PRJCA000750: the workflow's merged counts (unversioned IDs, 40 genes fewer) + a sample sheet
    resp2 = _labels(rng, 3, 1)
    names = [f"CRR0{i:05d}" for i in range(1, 5)]
    c2 = _counts(rng, genes, resp2, de, lfc)
    keep = np.ones(len(genes), bool)
    keep[rng.choice(np.setdiff1d(np.arange(len(genes) - len(SIGNATURE)), de), 40, replace=False)] = False
    prj = pd.DataFrame(c2[keep], index=pd.Index(genes["ensembl_id"][keep], name="gene_id"), columns=names)
    _write_gz(prj.to_csv(sep="\t", lineterminator="\n"), root / "PRJCA000750" / "counts.tsv.gz")
    pd.DataFrame({"sample_id": names, "response": resp2, "age": rng.integers(4, 70, 4)}).to_csv(
        root / "PRJCA000750" / "samples.tsv", sep="\t", index=False, lineterminator="\n"
    )
    return {
        "gse": gse.shape,
        "prj": prj.shape,
        "gse_cr": int((resp == "CR").sum()),
        "prj_cr": int((resp2 == "CR").sum()),
    }


def make_htseq(seed: int = 32, out: Path = OUT) -> dict:
    """``htseq_cohort/`` and ``htseq_cohort_samples.tsv`` (module docstring)."""
    rng = np.random.default_rng(seed)
    genes = _genes(rng)
    de, lfc = _plan(rng, genes)
    resp = _labels(rng, 10, 6)
    names = [f"S{i:02d}" for i in range(1, len(resp) + 1)]
    c = _counts(rng, genes, resp, de, lfc)
    folder = out / "htseq_cohort"
    folder.mkdir(parents=True, exist_ok=True)
    for j, name in enumerate(names):
        summary = rng.integers(20_000, 900_000, len(HTSEQ_SUMMARY))
        lines = [f"{e}\t{v}" for e, v in zip(genes["ensembl_id"], c[:, j])]
        lines += [f"{k}\t{v}" for k, v in zip(HTSEQ_SUMMARY, summary)]
        _write_gz("\n".join(lines) + "\n", folder / f"{name}.counts.txt.gz")
    sheet = pd.DataFrame(
        {
            "sample_id": names,
            "response": resp,
            "age": rng.integers(4, 70, len(names)),
            "sex": rng.choice(["F", "M"], len(names)),
        }
    )
    sheet.to_csv(out / "htseq_cohort_samples.tsv", sep="\t", index=False, lineterminator="\n")
    return {"genes": len(genes), "samples": len(names), "cr": int((resp == "CR").sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help="folder to write to (default: tests/data/formats)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    g = make_geo(out=args.out)
    h = make_htseq(out=args.out)
    print(
        f"geo_real: GSE153670 {g['gse'][0]} genes x {g['gse'][1]} samples ({g['gse_cr']} CR), "
        f"PRJCA000750 {g['prj'][0]} x {g['prj'][1]} ({g['prj_cr']} CR)"
    )
    print(f"htseq_cohort: {h['genes']} genes x {h['samples']} files ({h['cr']} CR)")
    total = sum((args.out / f).stat().st_size for f in FILES)
    print(f"{len(FILES)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
