"""The upstream workflow (workflow/Snakefile) end to end on a tiny genome, with real tools.

``workflow/scripts/make_tiny_genome.py`` writes a ~100 kb random genome, a GTF with 36 genes on
both strands (multi-exon genes, two antisense pairs with overlapping 3' ends), and stranded reads
for 3 paired-end and 1 single-end sample drawn from known per-gene fragment counts, plus
intergenic and unalignable fragments, with sequencing errors. The workflow then runs with
``--cores 2`` and its merged counts are compared with the truth.

STAR, FastQC and samtools come from Debian (``apt-get install rna-star fastqc samtools``, or
``scripts/install_system_deps.sh``); Snakemake, HTSeq and MultiQC from PyPI
(requirements/upstream.txt). Without them the tests skip with the line to run, except when
``CI=true``: then they fail. tests/test_slurm.py runs the same workflow on a SLURM cluster.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.upstream, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflow"
SNAKEFILE = WORKFLOW / "Snakefile"
GENERATOR = WORKFLOW / "scripts" / "make_tiny_genome.py"
BIN = Path(sys.executable).parent
SPECIAL = ["__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned", "__alignment_not_unique"]


def _skip_or_fail(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _need_python_tools():
    missing = [m for m in ("snakemake", "HTSeq", "multiqc") if importlib.util.find_spec(m) is None]
    if missing or not (BIN / "snakemake").exists():
        _skip_or_fail(
            f"Python package(s) {', '.join(missing) or 'snakemake'} missing in {sys.executable}: "
            "pip install -r requirements/upstream.txt"
        )


def _need_system_tools():
    from slurm_cluster import WORKFLOW_TOOLS, apt_line

    missing = [t for t in WORKFLOW_TOOLS if shutil.which(t) is None]
    if missing:
        _skip_or_fail(f"{', '.join(missing)} not installed; run: {apt_line(missing)}")


def _env():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the venv's snakemake on workflow/Snakefile in ``workdir``."""
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), "--directory", str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The generated tiny genome, annotation, reads, sample sheet, config and truth."""
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out), "--seed", "7"], check=True, capture_output=True, text=True
    )
    return out


@pytest.fixture(scope="module")
def run(tiny):
    """The whole workflow, run once with --cores 2; returns (outdir, seconds)."""
    _need_python_tools()
    _need_system_tools()
    t0 = time.perf_counter()
    proc = snakemake(tiny, "--configfile", str(tiny / "config.yaml"), "--cores", "2")
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted((tiny / "results" / "logs").rglob("*.log"))
        )
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-4000:]}\n{logs}")
    print(f"\nupstream workflow: {seconds:.1f} s wall")
    return tiny / "results", seconds


def test_generator_is_deterministic(tmp_path, tiny):
    """Same seed -> byte-identical genome, annotation, reads and truth."""
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(again), "--seed", "7"], check=True, capture_output=True
    )
    for name in ["genome.fa", "genes.gtf", "truth_counts.tsv", "reads/S1_R1.fastq.gz", "reads/S4_R1.fastq.gz"]:
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    gtf = pd.read_csv(tiny / "genes.gtf", sep="\t", header=None)
    genes = gtf[gtf[2] == "gene"]
    assert set(genes[6]) == {"+", "-"} and len(genes) == 36
    exons_per_gene = gtf[gtf[2] == "exon"][8].str.extract(r'gene_id "(\w+)"')[0].value_counts()
    assert (exons_per_gene > 1).sum() >= 12
    assert 80_000 <= sum(len(l) - 1 for l in open(tiny / "genome.fa") if not l.startswith(">")) <= 130_000


def test_counts_match_truth(run, tiny):
    """Merged counts: gene_id + one integer column per sample; Pearson >= 0.999, |diff| <= 3 fragments."""
    outdir, _ = run
    path = outdir / "counts" / "counts.tsv"
    header = path.read_text().splitlines()[0].split("\t")
    assert header == ["gene_id", "S1", "S2", "S3", "S4"]
    counts = pd.read_csv(path, sep="\t", index_col="gene_id")
    assert all(dt == np.int64 for dt in counts.dtypes)
    truth = pd.read_csv(tiny / "truth_counts.tsv", sep="\t", index_col="gene_id")
    assert list(counts.index) == list(truth.index)
    assert list(counts.columns) == list(truth.columns)
    diff = (counts - truth).abs()
    r_all = np.corrcoef(counts.to_numpy().ravel(), truth.to_numpy().ravel())[0, 1]
    r_min = min(np.corrcoef(counts[s], truth[s])[0, 1] for s in truth.columns)
    print(
        f"\nPearson all cells {r_all:.6f}, worst sample {r_min:.6f}; max |diff| {diff.to_numpy().max()} "
        f"fragments; {int((diff > 0).to_numpy().sum())} of {diff.size} cells differ"
    )
    assert r_all >= 0.999 and r_min >= 0.999
    assert diff.to_numpy().max() <= 3, diff[diff.max(axis=1) > 3]
    # silent genes stay silent; the antisense pairs are separated by the stranded count
    assert (counts[truth.sum(axis=1) == 0] == 0).all().all()


def test_summary_accounts_for_every_fragment(run, tiny):
    """htseq_summary.tsv: every fragment lands in exactly one row; special rows match the design."""
    outdir, _ = run
    summary = pd.read_csv(outdir / "counts" / "htseq_summary.tsv", sep="\t", index_col="sample")
    assert list(summary.columns) == ["assigned", *SPECIAL, "total", "assigned_fraction"]
    truth = pd.read_csv(tiny / "truth_summary.tsv", sep="\t", index_col="sample")
    counts = pd.read_csv(outdir / "counts" / "counts.tsv", sep="\t", index_col="gene_id")
    expected_total = truth["genic_fragments"] + truth["intergenic_fragments"] + truth["random_fragments"]
    assert (summary["total"] == expected_total).all()
    assert (summary["assigned"] == counts.sum()).all()
    assert (summary[["assigned", *SPECIAL]].sum(axis=1) == summary["total"]).all()
    assert (summary["__no_feature"] - truth["intergenic_fragments"]).abs().max() <= 3
    assert (summary["__ambiguous"] == 0).all()  # stranded counting resolves the antisense overlaps
    assert (summary["__not_aligned"] >= truth["random_fragments"]).all()
    assert (summary["__not_aligned"] - truth["random_fragments"]).max() <= 0.002 * expected_total.min()


def test_outputs_load_into_cohort_layer(run):
    """counts.tsv and the per-sample HTSeq files load with the cohort loaders as they are."""
    from helpers.data.loaders import read_count_matrix, read_htseq_dir

    outdir, _ = run
    m = read_count_matrix(outdir / "counts" / "counts.tsv")
    assert list(m.columns) == ["S1", "S2", "S3", "S4"] and m.shape[0] == 36
    h, special = read_htseq_dir(outdir / "htseq")
    pd.testing.assert_frame_equal(h.loc[m.index, m.columns], m, check_names=False, check_like=False)


def test_counts_build_a_custom_cohort(run, tmp_path):
    """counts.tsv plus a sample sheet is a cohort as it is: the ``custom`` dataset of the cohort
    layer (what ``SET='dataset=custom'`` builds) keeps every gene, sample and count, and the
    saved cohort reads back the same. (4 samples and 36 genes are below the book's minimums,
    which are lowered here; with the defaults the up-front checks refuse the toy cohort.)"""
    from helpers.data import cohort, loaders
    from helpers.engine.errors import InputError

    outdir, _ = run
    table = outdir / "counts" / "counts.tsv"
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tresponse\tage\nS1\tCR\t34\nS2\tNR\t51\nS3\tCR\t8\nS4\tNR\t27\n")
    params = {"dataset": "custom", "custom": {"table": str(table), "sample_sheet": str(sheet), "cohort_name": "tiny"}}
    with pytest.raises(InputError):
        cohort.build_cohort(params)
    c = cohort.build_cohort(params, min_genes=30, min_per_class=2)
    raw = pd.read_csv(table, sep="\t", index_col=0)  # the file itself, without the project's readers
    assert c.kind == "counts" and c.meta["dataset"] == "custom" and c.counts.shape == raw.shape == (36, 4)
    assert list(c.counts.columns) == ["S1", "S2", "S3", "S4"] and list(c.counts.index) == list(raw.index)
    assert (c.counts.to_numpy() == raw.to_numpy()).all() and all(dt == np.int64 for dt in c.counts.dtypes)
    assert c.meta["harmonize"]["n_unmapped_dropped"] == 0 and c.meta["harmonize"]["n_duplicates_merged"] == 0
    assert list(c.samples.index) == list(c.counts.columns)
    assert list(c.samples["response"]) == ["CR", "NR", "CR", "NR"] and set(c.samples["cohort"]) == {"tiny"}
    pd.testing.assert_frame_equal(c.counts, loaders.read_count_matrix(table), check_names=False)
    cohort.save_cohort(c, tmp_path / "saved")
    again = cohort.load_cohort(tmp_path / "saved")
    pd.testing.assert_frame_equal(again.counts, c.counts, check_names=False)
    assert list(again.samples["response"]) == list(c.samples["response"])


def test_multiqc_logs_and_benchmarks(run):
    """MultiQC report over FastQC, STAR and HTSeq; a log and a benchmark per job."""
    outdir, seconds = run
    report = outdir / "multiqc" / "multiqc_report.html"
    assert report.exists() and report.stat().st_size > 10_000
    data = outdir / "multiqc" / "multiqc_report_data"
    for module in ("fastqc", "star", "htseq"):
        table = pd.read_csv(data / f"multiqc_{module}.txt", sep="\t")
        assert len(table) == (7 if module == "fastqc" else 4), module
    for rule, n in {
        "fastqc": 4,
        "star_index": 1,
        "star_align": 4,
        "bam_index": 4,
        "htseq_count": 4,
        "merge_counts": 1,
        "multiqc": 1,
    }.items():
        assert len(list((outdir / "logs" / rule).glob("*.log"))) == n, rule
        assert len(list((outdir / "benchmarks" / rule).glob("*.tsv"))) == n, rule
    assert all((outdir / "star" / f"S{i}.Aligned.sortedByCoord.out.bam.bai").exists() for i in range(1, 5))


def test_slurm_profile_dry_run(tiny):
    """The SLURM profile parses and plans every job with the profile's and the config's resources."""
    _need_python_tools()
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        _skip_or_fail("snakemake-executor-plugin-slurm not installed: pip install -r requirements/upstream.txt")
    proc = snakemake(
        tiny,
        "--configfile",
        str(tiny / "config.yaml"),
        "-n",
        "--forceall",
        "--profile",
        str(WORKFLOW / "profiles" / "slurm"),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Using profile" in out and "profiles/slurm" in out
    assert "This was a dry-run" in out
    for rule, n in {"star_index": 1, "star_align": 4, "htseq_count": 4, "fastqc_paired": 3, "fastqc_single": 1}.items():
        assert any(line.split() == [rule, str(n)] for line in out.splitlines()), rule
    # runtime from the profile's set-resources, memory from the workflow config
    assert "mem_mb=2000" in out and "runtime=180" in out


def _common():
    """The workflow's start-up checks (rules/common.smk is plain Python) as a namespace."""
    _need_python_tools()
    import runpy

    return runpy.run_path(str(WORKFLOW / "rules" / "common.smk"))


CASES = {
    "bad_name": ["row 2", "sample 'bad name'", "column sample", "does not match"],
    "missing_file": ["row 1", "column fq2", "file not found", "nope_R2.fastq.gz"],
    "bad_extension": ["row 1", "column fq1", "reads.bam", "does not match"],
    "duplicate": ["column sample", "duplicated sample name(s): S1"],
    "no_fq1_column": ["header", "missing column 'fq1'"],
    "mixed_gzip": ["row 1", "must both be gzipped or both plain"],
    "empty": ["no samples listed"],
}


def _bad_sheet(path: Path, tiny: Path, case: str) -> Path:
    r1, r2 = str(tiny / "reads" / "S1_R1.fastq.gz"), str(tiny / "reads" / "S1_R2.fastq.gz")
    rows, header = {
        "bad_name": ([["S1", r1, r2], ["bad name", r1, ""]], None),
        "missing_file": ([["S1", r1, str(tiny / "reads" / "nope_R2.fastq.gz")]], None),
        "bad_extension": ([["S1", str(tiny / "reads.bam"), ""]], None),
        "duplicate": ([["S1", r1, r2], ["S1", r1, ""]], None),
        "no_fq1_column": ([["S1", r1]], ("sample", "fastq")),
        "mixed_gzip": ([["S1", r1, str(path.parent / "plain_R2.fastq")]], None),
        "empty": ([], None),
    }[case]
    if case == "mixed_gzip":
        Path(rows[0][2]).write_text("@r\nACGT\n+\nFFFF\n")
    path.write_text("\n".join("\t".join(r) for r in [list(header or ("sample", "fq1", "fq2")), *rows]) + "\n")
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_sample_sheet_is_a_clear_error(tmp_path, tiny, case):
    """A bad sample sheet is a one-line message naming the file, row and column."""
    common = _common()
    sheet = _bad_sheet(tmp_path / "samples.tsv", tiny, case)
    with pytest.raises(Exception) as info:
        common["load_samples"](str(sheet), str(WORKFLOW / "schemas" / "samples.schema.yaml"))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"invalid input: {sheet}")
    for piece in CASES[case]:
        assert piece in msg, (piece, msg)


def test_invalid_sample_sheet_stops_snakemake(tmp_path, tiny):
    """Through snakemake: non-zero exit before any job, the one-line message on stderr."""
    _need_python_tools()
    sheet = _bad_sheet(tmp_path / "samples.tsv", tiny, "bad_name")
    proc = snakemake(tmp_path, "--configfile", str(tiny / "config.yaml"), "--config", f"samples={sheet}", "-n")
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = next((l for l in err.splitlines() if l.startswith("invalid input:")), None)
    assert line is not None, err[-2000:]
    assert line.startswith(f"invalid input: {sheet}: row 2 (sample 'bad name'): column sample:")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            ("stranded: reverse", "stranded: maybe"),
            "config: htseq.stranded: 'maybe' is not one of ['yes', 'no', 'reverse']",
        ),
        (
            ("  threads: 2\n", "  threads: 2\n  thread: 4\n"),
            "config: star: Additional properties are not allowed ('thread' was unexpected)",
        ),
        (("genome_sa_index_nbases: 7", "genome_sa_index_nbases: 30"), "config: star.genome_sa_index_nbases:"),
        (("genes.gtf", "genes.gff3"), "config: reference.gtf: "),
    ],
)
def test_invalid_config_is_a_clear_error(tiny, edit, expected):
    """A config value outside the schema names the key and what is allowed."""
    import yaml

    common = _common()
    cfg = yaml.safe_load((tiny / "config.yaml").read_text().replace(*edit))
    with pytest.raises(Exception) as info:
        common["load_config"](cfg, str(WORKFLOW / "schemas" / "config.schema.yaml"))
    assert str(info.value).startswith("invalid input: " + expected), str(info.value)


def test_config_defaults_and_yaml_booleans(tiny):
    """Schema defaults fill missing keys; an unquoted `stranded: no` (a YAML boolean) means "no"."""
    import yaml

    common = _common()
    cfg = yaml.safe_load((tiny / "config.yaml").read_text().replace("stranded: reverse", "stranded: no"))
    del cfg["fastqc"]
    cfg = common["load_config"](cfg, str(WORKFLOW / "schemas" / "config.schema.yaml"))
    assert cfg["htseq"]["stranded"] == "no" and cfg["htseq"]["mode"] == "union"
    assert cfg["htseq"]["min_aqual"] == 10 and cfg["fastqc"]["threads"] == 2
    assert common["star_sa_index_nbases"]("auto", str(tiny / "genome.fa")) == 7
    assert common["star_sa_index_nbases"]("auto", "/no/such/human.fa") == 14


def test_merge_counts_rejects_mismatched_genes(tmp_path):
    """merge_counts.py: files listing different genes are an error naming the file and row."""
    sys.path.insert(0, str(WORKFLOW / "scripts"))
    try:
        import merge_counts
    finally:
        sys.path.pop(0)
    tail = "".join(f"{s}\t0\n" for s in SPECIAL)
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("G1\t5\nG2\t7\n" + tail)
    b.write_text("G1\t5\nG3\t7\n" + tail)
    counts, summary = merge_counts.merge(["A", "A2"], [str(a), str(a)])
    assert counts == "gene_id\tA\tA2\nG1\t5\t5\nG2\t7\t7\n"
    assert summary.splitlines()[1].split("\t")[:2] == ["A", "12"]
    with pytest.raises(ValueError, match=r"b.txt: gene row 2: genes differ"):
        merge_counts.merge(["A", "B"], [str(a), str(b)])
    b.write_text("G1\t5\nG2\tx\n" + tail)
    with pytest.raises(ValueError, match=r"b.txt: line 2: count 'x'"):
        merge_counts.merge(["A", "B"], [str(a), str(b)])
    b.write_text("G1\t5\nG2\t7\n")
    with pytest.raises(ValueError, match=r"missing htseq-count summary row"):
        merge_counts.merge(["A", "B"], [str(a), str(b)])
