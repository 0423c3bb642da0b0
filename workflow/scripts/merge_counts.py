#!/usr/bin/env python3
"""Merge per-sample htseq-count outputs into one genes x samples matrix and a summary table.

Writes two tab-separated files:

* ``--out-counts``: header ``gene_id<TAB>sample1<TAB>...``, one row per gene in the order
  htseq-count wrote them (the GTF's gene_ids, sorted), integer counts. The cohort layer reads it
  as it is.
* ``--out-summary``: one row per sample with ``assigned`` (sum over genes), htseq-count's special
  rows (``__no_feature``, ``__ambiguous``, ``__too_low_aQual``, ``__not_aligned``,
  ``__alignment_not_unique``), ``total`` and ``assigned_fraction``.

Every file must list the same genes in the same order; anything else is an error naming the
file and line. Outputs are written to a temporary file and renamed, so a failure leaves nothing.
Only the standard library is used, so the script runs in any Python >= 3.8.

Usage::

    python merge_counts.py --samples A B --counts A.counts.txt B.counts.txt \\
        --out-counts counts.tsv --out-summary htseq_summary.tsv
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

try:  # the project's error type when available; a plain ValueError otherwise
    from helpers.engine.errors import InputError
except ImportError:  # pragma: no cover - standalone use

    class InputError(ValueError):
        pass


SPECIAL = ("__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned", "__alignment_not_unique")


def read_htseq(path: str) -> tuple[list[str], list[int], dict[str, int]]:
    """Read one htseq-count output: (gene ids, counts, special rows). Raises InputError on bad lines."""
    genes, counts, special = [], [], {}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise InputError(
                    f"{path}: line {lineno}: expected 2 tab-separated fields (gene, count), found {len(parts)}"
                )
            name, value = parts
            try:
                n = int(value)
            except ValueError:
                raise InputError(f"{path}: line {lineno}: count {value!r} for {name!r} is not an integer") from None
            if n < 0:
                raise InputError(f"{path}: line {lineno}: negative count {n} for {name!r}")
            if name.startswith("__"):
                if name not in SPECIAL:
                    raise InputError(f"{path}: line {lineno}: unknown htseq-count summary row {name!r}")
                special[name] = n
            else:
                if special:
                    raise InputError(f"{path}: line {lineno}: gene {name!r} after the __ summary rows")
                genes.append(name)
                counts.append(n)
    if not genes:
        raise InputError(f"{path}: no gene rows (is this an htseq-count output?)")
    missing = [s for s in SPECIAL if s not in special]
    if missing:
        raise InputError(f"{path}: missing htseq-count summary row(s) {', '.join(missing)} (truncated file?)")
    return genes, counts, special


def _atomic_write(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def merge(samples: list[str], count_files: list[str]) -> tuple[str, str]:
    """Return (counts table text, summary table text) for the given samples and htseq files."""
    if len(samples) != len(count_files):
        raise InputError(f"merge_counts: {len(samples)} sample names but {len(count_files)} count files")
    if len(set(samples)) != len(samples):
        raise InputError("merge_counts: sample names are not unique")
    ref_genes = None
    columns, summaries = [], []
    for sample, path in zip(samples, count_files):
        genes, counts, special = read_htseq(path)
        if ref_genes is None:
            ref_genes, ref_path = genes, path
        elif genes != ref_genes:
            first = next(
                (i for i, (a, b) in enumerate(zip(genes, ref_genes)) if a != b), min(len(genes), len(ref_genes))
            )
            raise InputError(
                f"{path}: gene row {first + 1}: genes differ from {ref_path} "
                f"({len(genes)} vs {len(ref_genes)} genes); were they counted with the same GTF?"
            )
        columns.append(counts)
        assigned = sum(counts)
        total = assigned + sum(special.values())
        frac = assigned / total if total else 0.0
        summaries.append([sample, str(assigned)] + [str(special[s]) for s in SPECIAL] + [str(total), f"{frac:.6f}"])

    out = ["gene_id\t" + "\t".join(samples)]
    for i, gene in enumerate(ref_genes):
        out.append(gene + "\t" + "\t".join(str(col[i]) for col in columns))
    summary = ["\t".join(["sample", "assigned", *SPECIAL, "total", "assigned_fraction"])]
    summary += ["\t".join(row) for row in summaries]
    return "\n".join(out) + "\n", "\n".join(summary) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", nargs="+", required=True)
    p.add_argument("--counts", nargs="+", required=True, help="htseq-count outputs, same order as --samples")
    p.add_argument("--out-counts", required=True)
    p.add_argument("--out-summary", required=True)
    args = p.parse_args(argv)
    try:
        counts, summary = merge(args.samples, args.counts)
    except (InputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _atomic_write(args.out_counts, counts)
    _atomic_write(args.out_summary, summary)
    print(f"merged {len(args.samples)} samples, {counts.count(chr(10)) - 1} genes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
