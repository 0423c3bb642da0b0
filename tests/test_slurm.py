"""The upstream workflow for real on SLURM: a one-node cluster started by the test, jobs via sbatch.

The ``slurm_cluster`` fixture configures Debian's slurm-wlm and munge for localhost in a
temporary folder (tests/slurm_cluster.py: own slurm.conf, munge key, ports, state, spool and
logs; nothing system-wide is touched) and starts munged, slurmctld and slurmd. The workflow then
runs on the tiny genome with ``--profile workflow/profiles/slurm``: snakemake submits one
``sbatch`` job per rule instance through snakemake-executor-plugin-slurm, each job runs its rule
through ``srun``. The tests check

- the cluster's job records: one finished job per rule instance, named after the run, the rule
  and the sample in the comment, with the CPUs, memory, time limit and partition the profile and
  the workflow config ask for;
- that the merged counts and the HTSeq summary equal, byte for byte, those of a local
  ``--cores 2`` run of the same workflow on the same inputs.

Needs root (slurmd), slurm-wlm, munge, STAR, FastQC, samtools and requirements/upstream.txt.
Without them the tests skip with the apt-get line to run, except with ``CI=true``: then they
fail. About 6 minutes on 2 idle cores (17 on busy ones): each SLURM job starts snakemake twice
(batch script and job step). ``SLURM_TEST_KEEP=1`` keeps the cluster's folder (logs, jobcomp.txt) for inspection.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import CLIENTS, DAEMONS, WORKFLOW_TOOLS, SlurmCluster, SlurmError, apt_line, missing_tools
from test_upstream import BIN, GENERATOR, SNAKEFILE, WORKFLOW, _common, _need_python_tools, _skip_or_fail

pytestmark = [pytest.mark.upstream, pytest.mark.slurm, pytest.mark.slow]

PROFILE = WORKFLOW / "profiles" / "slurm"
PARTITION = "tests"  # the test cluster's second partition; "debug" is its default
# rules that run as SLURM jobs, and how many instances the tiny genome's 4 samples make
RULE_JOBS = {
    "fastqc_paired": 3,
    "fastqc_single": 1,
    "star_index": 1,
    "star_align": 4,
    "bam_index": 4,
    "htseq_count": 4,
    "multiqc": 1,
}


def _need_slurm():
    """Skip (fail with CI=true) unless this machine can run a SLURM test cluster."""
    missing = missing_tools(DAEMONS + CLIENTS + WORKFLOW_TOOLS)
    if missing:
        _skip_or_fail(f"{', '.join(missing)} not installed; run: {apt_line(missing)}")
    if os.geteuid() != 0:
        _skip_or_fail("the SLURM test cluster needs root (slurmd starts the jobs); run the tests as root")
    _need_python_tools()
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        _skip_or_fail("snakemake-executor-plugin-slurm not installed: pip install -r requirements/upstream.txt")


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster (munged, slurmctld, slurmd), stopped and deleted afterwards."""
    _need_slurm()
    cluster = SlurmCluster(keep=os.environ.get("SLURM_TEST_KEEP") == "1")
    try:
        cluster.start()
    except SlurmError as e:
        cluster.stop()
        pytest.fail(f"could not start the SLURM test cluster: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The tiny genome and reads, with one config per run (same inputs, own outdir)."""
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out), "--seed", "7"], check=True, capture_output=True, text=True
    )
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    for run in ("local", "slurm"):
        (out / run).mkdir()
        cfg["outdir"] = str(out / run / "results")
        (out / f"config_{run}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def _snakemake(workdir: Path, env: dict, *args: str, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), "--directory", str(workdir), *args]
    env = dict(env, PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


def _failure(proc: subprocess.CompletedProcess, workdir: Path, extra: str = "") -> str:
    logs = sorted((workdir / "results" / "logs").rglob("*.log")) + sorted(
        (workdir / ".snakemake" / "slurm_logs").rglob("*.log")
    )
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-1200:]}" for p in logs)
    return f"snakemake failed ({proc.returncode}):\n{proc.stderr[-5000:]}\n{tails}\n{extra}"


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tiny):
    """The whole workflow through the SLURM profile; returns (outdir, run id, job table, seconds)."""
    workdir = tiny / "slurm"
    defaults = [f"{k}={v}" for k, v in _profile()["default-resources"].items()]
    proc, seconds = _snakemake(
        workdir,
        slurm_cluster.env,
        "--configfile",
        str(tiny / "config_slurm.yaml"),
        "--profile",
        str(PROFILE),
        # account and partition as workflow/README.md says to give them on the command line (the
        # profile's defaults repeated, as --default-resources replaces the profile's list); no
        # account: without slurmdbd the plugin cannot check one
        "--default-resources",
        *defaults,
        f"slurm_partition={PARTITION}",
        # the test cluster has no slurmdbd, so sacct cannot answer the plugin's status queries;
        # slurmctld keeps finished jobs for an hour (MinJobAge), which makes squeue reliable
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        "--retries",
        "0",  # a job that fails once fails the test
        timeout=1800,
    )
    if proc.returncode != 0:
        pytest.fail(_failure(proc, workdir, slurm_cluster.logs()))
    run_id = next(
        (line.split("SLURM run ID:")[1].strip() for line in proc.stderr.splitlines() if "SLURM run ID:" in line), None
    )
    table = slurm_cluster.job_table()
    print(
        f"\nSLURM run {run_id}: {seconds:.1f} s wall, {len(table)} jobs\n{pd.DataFrame(table).to_string(index=False)}"
    )
    return workdir / "results", run_id, table, seconds


@pytest.fixture(scope="module")
def local_run(tiny):
    """The same workflow on the same inputs with --cores 2 (no SLURM); returns (outdir, seconds)."""
    workdir = tiny / "local"
    proc, seconds = _snakemake(
        workdir, dict(os.environ), "--configfile", str(tiny / "config_local.yaml"), "--cores", "2", timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(_failure(proc, workdir))
    print(f"\nlocal run: {seconds:.1f} s wall")
    return workdir / "results", seconds


def test_cluster_runs_a_job_step(slurm_cluster, tmp_path):
    """The test cluster itself: sbatch + srun on the node, the job in the completion log."""
    out = tmp_path / "job.out"
    cmd = ["sbatch", "--parsable", "--comment", "smoke", "-t", "2", "--mem", "100", "-c", "1", "-o", str(out)]
    job = slurm_cluster.run(*cmd, "--wrap", "srun hostname").stdout.strip()
    deadline = time.monotonic() + 60
    while job not in slurm_cluster.completion_records() and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = [r for r in slurm_cluster.job_table() if r["JobID"] == job]
    assert len(rows) == 1, slurm_cluster.logs()
    row = rows[0]
    assert (row["State"], row["ExitCode"], row["Comment"]) == ("COMPLETED", "0:0", "smoke"), out.read_text()
    assert (row["Partition"], row["CPUs"], row["MemMB"], row["TimelimitMin"]) == ("debug", 1, 100, 2)
    assert out.read_text().strip() != ""  # srun ran hostname inside the job


def _expected_resources(tiny: Path) -> dict[str, tuple[int, int, int]]:
    """(CPUs, memory MB, time limit min) per rule: threads and memory from the workflow config
    (schema defaults filled in), time limits and the fallback memory from the profile."""
    cfg = _common()["load_config"](
        yaml.safe_load((tiny / "config_slurm.yaml").read_text()), str(WORKFLOW / "schemas" / "config.schema.yaml")
    )
    profile = _profile()
    default_mem = int(profile["default-resources"]["mem_mb"])
    star, fastqc = cfg["star"], cfg["fastqc"]
    cpus_mem = {
        "fastqc_paired": (fastqc["threads"], fastqc["mem_mb"]),
        "fastqc_single": (fastqc["threads"], fastqc["mem_mb"]),
        "star_index": (star["threads"], star["index_mem_mb"]),
        "star_align": (star["threads"], star["align_mem_mb"]),
        "bam_index": (1, default_mem),
        "htseq_count": (1, cfg["htseq"]["mem_mb"]),
        "multiqc": (1, default_mem),
    }
    runtime = {
        rule: int(
            profile.get("set-resources", {}).get(rule, {}).get("runtime", profile["default-resources"]["runtime"])
        )
        for rule in RULE_JOBS
    }
    return {rule: (int(c), int(m), runtime[rule]) for rule, (c, m) in cpus_mem.items()}


def test_every_rule_ran_as_a_slurm_job_with_its_resources(slurm_run, tiny):
    """One completed job per rule instance, named after the run, rule and sample in the comment,
    with the CPUs, memory, time limit and partition that the profile and the config set."""
    _, run_id, table, _ = slurm_run
    assert run_id, "snakemake did not report a SLURM run ID"
    jobs = pd.DataFrame(table)
    jobs = jobs[jobs["JobName"] == run_id].reset_index(drop=True)  # the plugin names every job after the run
    assert len(jobs) == sum(RULE_JOBS.values()), pd.DataFrame(table)
    assert (jobs["State"] == "COMPLETED").all() and (jobs["ExitCode"] == "0:0").all(), jobs
    assert (jobs["NodeList"] == "localhost").all()
    parsed = jobs["Comment"].str.extract(r"^rule_(?P<rule>[a-z_]+?)(?:_wildcards_(?P<sample>\w+))?$")
    assert parsed["rule"].notna().all(), jobs["Comment"]
    jobs = pd.concat([jobs, parsed], axis=1)
    assert jobs["rule"].value_counts().to_dict() == RULE_JOBS
    # merge_counts and all are local rules: they never go to the cluster
    for rule in ("star_align", "bam_index", "htseq_count"):
        assert sorted(jobs.loc[jobs["rule"] == rule, "sample"]) == ["S1", "S2", "S3", "S4"], rule
    assert sorted(jobs.loc[jobs["rule"].str.startswith("fastqc"), "sample"]) == ["S1", "S2", "S3", "S4"]
    expected = _expected_resources(tiny)
    for row in jobs.itertuples():
        got = (row.CPUs, row.MemMB, row.TimelimitMin)
        assert got == expected[row.rule], (row.Comment, got, expected[row.rule])
    assert (jobs["Partition"] == PARTITION).all()  # not the cluster's default partition
    # the settings differ between rules, so a resource that is dropped or swapped shows up
    assert len({v[1:] for v in expected.values()}) >= 3


def test_slurm_counts_equal_local_counts(slurm_run, local_run):
    """counts.tsv and htseq_summary.tsv from SLURM are byte-identical to a local --cores 2 run."""
    slurm_out, _, _, slurm_seconds = slurm_run
    local_out, local_seconds = local_run
    print(f"\nwall time: SLURM {slurm_seconds:.1f} s, local {local_seconds:.1f} s")
    for name in ("counts.tsv", "htseq_summary.tsv"):
        a, b = slurm_out / "counts" / name, local_out / "counts" / name
        assert a.read_bytes() == b.read_bytes(), name
    counts = pd.read_csv(slurm_out / "counts" / "counts.tsv", sep="\t", index_col="gene_id")
    assert counts.shape == (36, 4) and counts.to_numpy().sum() > 10_000  # real counts, not two empty files
    for rule in ("star_align", "htseq_count"):  # the SLURM run's own jobs wrote its outputs
        assert len(list((slurm_out / "logs" / rule).glob("*.log"))) == 4
