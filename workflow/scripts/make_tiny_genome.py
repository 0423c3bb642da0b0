#!/usr/bin/env python3
"""Write a tiny random genome, a GTF, and fastq reads drawn from known per-gene counts.

The output is a complete, self-checking input for the upstream workflow::

    OUT/genome.fa            2-3 random chromosomes, about 100 kb in all
    OUT/genes.gtf            a few dozen genes on both strands, many multi-exon, two antisense
                             pairs whose 3' ends overlap (only a stranded count separates them)
    OUT/reads/<s>_R1.fastq.gz (and _R2 for paired-end samples)
    OUT/samples.tsv          the sample sheet the workflow reads
    OUT/config.yaml          a workflow config for this genome (small STAR index, small memory)
    OUT/truth_counts.tsv     gene_id x samples: the fragments drawn from each gene
    OUT/truth_summary.tsv    per sample: fragments drawn from intergenic space and random
                             (unalignable) fragments, i.e. the expected __no_feature and
                             __not_aligned

Fragments come from the spliced transcript, so reads that cross an exon junction are spliced.
The library is stranded like dUTP/TruSeq ("reverse": read 1 on the opposite strand of the gene).
Reads carry substitution errors at ``--error-rate`` per base. Same ``--seed`` gives byte-identical
files (gzip headers carry no name and no time).

Usage::

    python workflow/scripts/make_tiny_genome.py --out /tmp/tiny
    snakemake -s workflow/Snakefile --configfile /tmp/tiny/config.yaml --cores 2
"""

from __future__ import annotations

import argparse
import gzip
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASES = np.array(list("ACGT"))
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass
class Gene:
    """One gene with a single transcript: 1-based inclusive exon coordinates, sorted by start."""

    gene_id: str
    chrom: str
    strand: str
    exons: list[tuple[int, int]] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]

    def transcript(self, genome: dict[str, str]) -> str:
        """Spliced mRNA sequence 5'->3' (reverse-complemented for minus-strand genes)."""
        seq = "".join(genome[self.chrom][s - 1 : e] for s, e in self.exons)
        return revcomp(seq) if self.strand == "-" else seq


def revcomp(seq: str) -> str:
    """Reverse complement of an ACGTN string."""
    return seq.translate(COMPLEMENT)[::-1]


def _random_exons(rng: np.random.Generator, start: int, n_exons: int) -> list[tuple[int, int]]:
    exons, pos = [], start
    for i in range(n_exons):
        length = int(rng.integers(150, 600))
        exons.append((pos, pos + length - 1))
        pos += length
        if i < n_exons - 1:
            pos += int(rng.integers(80, 600))  # intron
    return exons


def make_annotation(rng: np.random.Generator, n_chrom: int, genes_per_chrom: int, min_transcript: int):
    """Lay genes along each chromosome; return (chromosome lengths, genes, intergenic intervals).

    Intergenic intervals are 1-based inclusive stretches that touch no exon or intron of any gene.
    Every chromosome carries one antisense pair: a minus-strand gene whose last exon overlaps the
    last exon of the plus-strand gene before it by about 150 bp.
    """
    chrom_lengths, genes, intergenic = {}, [], []
    gid = 0
    for c in range(n_chrom):
        chrom = f"chr{c + 1}"
        pos = 1
        pair_at = int(rng.integers(2, genes_per_chrom - 2))
        for g in range(genes_per_chrom):
            gap = int(rng.integers(700, 1500))
            if not (g == pair_at + 1):
                intergenic.append((chrom, pos, pos + gap - 1))
                pos += gap
            n_exons = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.3, 0.3, 0.15]))
            while True:
                exons = _random_exons(rng, pos, n_exons)
                if sum(e - s + 1 for s, e in exons) >= min_transcript:
                    break
            strand = "+" if rng.random() < 0.5 else "-"
            if g == pair_at:
                strand = "+"
            if g == pair_at + 1:
                # antisense partner: starts 150 bp before the end of the previous gene
                strand = "-"
                prev = genes[-1]
                overlap_start = prev.end - 149
                exons = [(s - pos + overlap_start, e - pos + overlap_start) for s, e in exons]
            gid += 1
            genes.append(Gene(f"GENE{gid:03d}", chrom, strand, exons))
            pos = exons[-1][1] + 1
        tail = int(rng.integers(700, 1500))
        intergenic.append((chrom, pos, pos + tail - 1))
        chrom_lengths[chrom] = pos + tail - 1
    return chrom_lengths, genes, intergenic


def write_gtf(path: Path, genes: list[Gene]) -> None:
    """GTF with gene, transcript and exon lines (gene_id, transcript_id, gene_name attributes)."""
    lines = []
    for g in sorted(genes, key=lambda x: (x.chrom, x.start)):
        attrs = f'gene_id "{g.gene_id}"; gene_name "{g.gene_id}";'
        tattrs = f'gene_id "{g.gene_id}"; transcript_id "{g.gene_id}.1"; gene_name "{g.gene_id}";'
        lines.append(f"{g.chrom}\ttiny\tgene\t{g.start}\t{g.end}\t.\t{g.strand}\t.\t{attrs}")
        lines.append(f"{g.chrom}\ttiny\ttranscript\t{g.start}\t{g.end}\t.\t{g.strand}\t.\t{tattrs}")
        order = g.exons if g.strand == "+" else g.exons[::-1]
        for k, (s, e) in enumerate(order, 1):
            lines.append(f'{g.chrom}\ttiny\texon\t{s}\t{e}\t.\t{g.strand}\t.\t{tattrs} exon_number "{k}";')
    path.write_text("\n".join(lines) + "\n")


def write_fasta(path: Path, genome: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as fh:
        for chrom, seq in genome.items():
            fh.write(f">{chrom}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")


_CODE = np.full(256, 255, dtype=np.uint8)
_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
_ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)


def add_errors(rng: np.random.Generator, reads: list[str], rate: float) -> tuple[list[bytes], list[bytes]]:
    """Substitute bases at ``rate`` per base; return (reads, Phred+33 qualities) as bytes.

    All reads have the same length. Substituted bases get quality 2 ('#'), one base in ten
    quality 25 (':'), the rest 37 ('F').
    """
    if not reads:
        return [], []
    length = len(reads[0])
    arr = np.frombuffer("".join(reads).encode(), dtype=np.uint8).reshape(len(reads), length).copy()
    qual = np.full(arr.shape, ord("F"), dtype=np.uint8)
    qual[rng.random(arr.shape) < 0.1] = ord(":")
    hit = rng.random(arr.shape) < rate
    shift = rng.integers(1, 4, size=arr.shape, dtype=np.uint8)
    arr[hit] = _ACGT[(_CODE[arr[hit]] + shift[hit]) % 4]
    qual[hit] = ord("#")
    return [r.tobytes() for r in arr], [q.tobytes() for q in qual]


def _gzip_writer(path: Path):
    raw = open(path, "wb")
    return raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)


def simulate_sample(
    rng,
    name,
    genes,
    genome,
    intergenic,
    counts,
    n_intergenic,
    n_random,
    paired,
    read_length,
    frag_mean,
    frag_sd,
    error_rate,
    out_dir: Path,
):
    """Write one sample's fastq file(s); fragments in random order. Return the paths written."""
    frags = []  # (fragment sequence on the strand that read 1 comes from)
    transcripts = [g.transcript(genome) for g in genes]
    min_frag = read_length + 10
    for tx, n in zip(transcripts, counts):
        for _ in range(int(n)):
            flen = int(np.clip(round(rng.normal(frag_mean, frag_sd)), min_frag, len(tx)))
            start = int(rng.integers(0, len(tx) - flen + 1))
            frag = tx[start : start + flen]
            frags.append(revcomp(frag))  # dUTP: read 1 is antisense to the transcript
    inter_len = np.array([e - s + 1 for _, s, e in intergenic], dtype=float)
    for _ in range(n_intergenic):
        chrom, s, e = intergenic[int(rng.choice(len(intergenic), p=inter_len / inter_len.sum()))]
        flen = int(np.clip(round(rng.normal(frag_mean, frag_sd)), min_frag, e - s + 1))
        start = int(rng.integers(s, e - flen + 2))
        frag = genome[chrom][start - 1 : start - 1 + flen]
        frags.append(frag if rng.random() < 0.5 else revcomp(frag))
    for _ in range(n_random):
        flen = int(np.clip(round(rng.normal(frag_mean, frag_sd)), min_frag, 10 * frag_mean))
        frags.append("".join(BASES[rng.integers(0, 4, flen)]))
    order = rng.permutation(len(frags))

    paths = [out_dir / f"{name}_R1.fastq.gz"] + ([out_dir / f"{name}_R2.fastq.gz"] if paired else [])
    mates = [[frags[i][:read_length] for i in order]]
    if paired:
        mates.append([revcomp(frags[i])[:read_length] for i in order])
    for path, reads in zip(paths, mates):
        seqs, quals = add_errors(rng, reads, error_rate)
        raw, gz = _gzip_writer(path)
        try:
            for k, (seq, qual) in enumerate(zip(seqs, quals), 1):
                gz.write(b"@%s.%d\n%s\n+\n%s\n" % (name.encode(), k, seq, qual))
        finally:
            gz.close()
            raw.close()
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--chromosomes", type=int, default=3)
    p.add_argument("--genes-per-chromosome", type=int, default=12)
    p.add_argument("--samples", type=int, default=4, help="number of samples; the last one is single-end")
    p.add_argument("--read-length", type=int, default=75)
    p.add_argument("--mean-fragments", type=float, default=150.0, help="mean fragments per gene")
    p.add_argument("--error-rate", type=float, default=0.004, help="substitution errors per base")
    args = p.parse_args(argv)
    if args.samples < 1 or args.chromosomes < 1 or args.genes_per_chromosome < 5:
        p.error("need >= 1 sample, >= 1 chromosome and >= 5 genes per chromosome")

    rng = np.random.default_rng(args.seed)
    out = args.out
    (out / "reads").mkdir(parents=True, exist_ok=True)

    frag_mean, frag_sd = 2.7 * args.read_length, 0.4 * args.read_length
    chrom_lengths, genes, intergenic = make_annotation(
        rng, args.chromosomes, args.genes_per_chromosome, min_transcript=int(frag_mean + 4 * frag_sd)
    )
    genome = {c: "".join(BASES[rng.integers(0, 4, n)]) for c, n in chrom_lengths.items()}
    write_fasta(out / "genome.fa", genome)
    write_gtf(out / "genes.gtf", genes)

    # Per-gene expression: log-normal means, a few silent genes, Poisson-gamma noise per sample.
    n_genes = len(genes)
    base = rng.lognormal(np.log(args.mean_fragments), 1.0, n_genes)
    base[rng.choice(n_genes, size=max(1, n_genes // 12), replace=False)] = 0.0
    names = [f"S{i + 1}" for i in range(args.samples)]
    truth = {}
    summary = []
    sheet = ["sample\tfq1\tfq2"]
    for i, name in enumerate(names):
        mu = base * rng.gamma(10.0, 0.1, n_genes)
        counts = rng.poisson(mu)
        n_inter = int(rng.integers(100, 300))
        n_rand = int(rng.integers(20, 80))
        paired = i < args.samples - 1 or args.samples == 1
        paths = simulate_sample(
            rng,
            name,
            genes,
            genome,
            intergenic,
            counts,
            n_inter,
            n_rand,
            paired,
            args.read_length,
            frag_mean,
            frag_sd,
            args.error_rate,
            out / "reads",
        )
        truth[name] = counts
        summary.append(f"{name}\t{'paired' if paired else 'single'}\t{int(counts.sum())}\t{n_inter}\t{n_rand}")
        sheet.append("\t".join([name, str(paths[0].resolve()), str(paths[1].resolve()) if paired else ""]))

    order = sorted(range(n_genes), key=lambda j: genes[j].gene_id)
    lines = ["gene_id\t" + "\t".join(names)]
    for j in order:
        lines.append(genes[j].gene_id + "\t" + "\t".join(str(int(truth[n][j])) for n in names))
    (out / "truth_counts.tsv").write_text("\n".join(lines) + "\n")
    (out / "truth_summary.tsv").write_text(
        "sample\tlayout\tgenic_fragments\tintergenic_fragments\trandom_fragments\n" + "\n".join(summary) + "\n"
    )
    (out / "samples.tsv").write_text("\n".join(sheet) + "\n")

    genome_len = sum(chrom_lengths.values())
    sa_nbases = int(min(14, np.floor(np.log2(genome_len) / 2 - 1)))
    (out / "config.yaml").write_text(
        "# Written by workflow/scripts/make_tiny_genome.py: a tiny genome for the workflow's tests.\n"
        f"samples: {(out / 'samples.tsv').resolve()}\n"
        f"outdir: {(out / 'results').resolve()}\n"
        "reference:\n"
        f"  fasta: {(out / 'genome.fa').resolve()}\n"
        f"  gtf: {(out / 'genes.gtf').resolve()}\n"
        "star:\n"
        f"  sjdb_overhang: {args.read_length - 1}\n"
        f"  genome_sa_index_nbases: {sa_nbases}\n"
        "  genome_sa_sparse_d: 1\n"
        "  limit_genome_generate_ram: 2000000000\n"
        "  limit_bam_sort_ram: 200000000\n"
        "  threads: 2\n"
        "  index_mem_mb: 2000\n"
        "  align_mem_mb: 2000\n"
        "  # introns here are < 1 kb: forbid STAR's spurious long 'introns' (human: keep the default)\n"
        "  extra_align: --alignIntronMax 1000 --alignMatesGapMax 3000\n"
        "htseq:\n"
        "  stranded: reverse\n"
        "fastqc:\n"
        "  threads: 1\n"
    )
    print(
        f"wrote {n_genes} genes on {len(chrom_lengths)} chromosomes ({genome_len} bp), {len(names)} samples to {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
