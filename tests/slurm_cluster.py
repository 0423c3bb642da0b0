"""A throw-away one-node SLURM cluster (munged + slurmctld + slurmd) on localhost, for tests.

Everything lives in one temporary folder: its own ``slurm.conf`` (own cluster name, own ports),
its own munge key and munge socket, and its state, spool and log directories. Nothing under
``/etc``, ``/run`` or ``/var`` is read or written and no system-wide daemon is touched: the
daemons are started with ``-f <folder>/etc/slurm.conf``, and client commands (``sbatch``,
``srun``, ``squeue``, ``sacct``, ...) find the cluster through ``SLURM_CONF`` in
:attr:`SlurmCluster.env`.

Needs root (slurmd starts jobs as their owners) and Debian's ``slurm-wlm`` and ``munge``.
Written for Slurm 22.05 (Debian 12). That release has no file-based accounting storage
(``accounting_storage/filetxt`` was removed long ago) and ``slurmdbd`` needs a MySQL/MariaDB
server, so with ``AccountingStorageType=accounting_storage/none`` plain ``sacct`` only says
"Slurm accounting storage is disabled". What the cluster records instead:

- ``JobCompType=jobcomp/filetxt``: one line per finished job in ``<folder>/jobcomp.txt`` (job
  id, job name, state, partition, time limit, CPUs, TRES with the memory, work dir, exit code),
  which ``sacct --completion`` lists;
- ``MinJobAge=3600``: slurmctld keeps finished jobs for an hour, so ``squeue --states=all`` and
  ``scontrol show job`` still show them, with the fields the completion log lacks (the comment).

:meth:`SlurmCluster.job_table` joins the two. Usage (or the ``slurm_cluster`` fixture in
tests/test_slurm.py)::

    with SlurmCluster() as cluster:
        subprocess.run(["sbatch", "--wrap", "srun hostname"], env=cluster.env, check=True)

``python tests/slurm_cluster.py`` starts one to play with (Ctrl-C or SIGTERM stops it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sacct", "sinfo", "scontrol", "scancel")
# which Debian/Ubuntu package provides which executable (the SLURM tests need all of them)
PACKAGE_OF = {
    "munged": "munge",
    **{t: "slurm-wlm" for t in ("slurmctld", "slurmd", *CLIENTS)},
    "STAR": "rna-star",
    "fastqc": "fastqc",
    "samtools": "samtools",
}
WORKFLOW_TOOLS = ("STAR", "fastqc", "samtools")


def which(name: str) -> str | None:
    """``shutil.which``, also looking in /usr/sbin and /sbin (Debian's daemons; not on a user's PATH)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing_tools(tools=DAEMONS + CLIENTS + WORKFLOW_TOOLS) -> list[str]:
    """The executables among ``tools`` that are not installed."""
    return [t for t in tools if which(t) is None]


def apt_line(tools) -> str:
    """The one command that installs ``tools`` on Debian/Ubuntu (what scripts/install_system_deps.sh does)."""
    packages = list(dict.fromkeys(PACKAGE_OF[t] for t in tools))
    return ("" if os.geteuid() == 0 else "sudo ") + "apt-get install -y " + " ".join(packages)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal:")))
    return kb // 1024


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """munged + slurmctld + slurmd for one node, ``localhost``, configured and kept in ``root``.

    ``root``: the folder (default: a new temporary one, deleted by :meth:`stop` unless ``keep``).
    ``cpus``, ``memory_mb``: what the node offers (default: the machine's CPUs, at least 2, and
    its memory less 512 MB). ``partitions``: partition names, all on the node; the first is the
    default partition.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        cpus: int | None = None,
        memory_mb: int | None = None,
        partitions: tuple[str, ...] = ("debug", "tests"),
        keep: bool = False,
    ):
        self.root = Path(tempfile.mkdtemp(prefix="slurm-") if root is None else root).resolve()
        self.cpus = cpus or max(2, os.cpu_count() or 1)
        self.memory_mb = memory_mb or max(1000, _mem_total_mb() - 512)
        self.partitions = tuple(partitions)
        self.cluster_name = f"test{os.getpid()}"
        self.keep = keep
        self.node = "localhost"
        self.conf = self.root / "etc" / "slurm.conf"
        self.log = self.root / "log"
        self.bin = self.root / "bin"
        self.jobcomp_file = self.root / "jobcomp.txt"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", ""), "/usr/sbin", "/sbin"])
        self.env = env  # for every process that talks to this cluster

    # ------------------------------------------------------------------ configuration

    def write_config(self) -> None:
        """The munge key, slurm.conf and the srun shim, all inside ``root``."""
        if len(str(self.munge_socket)) > 100:  # AF_UNIX paths are limited to 108 bytes
            raise SlurmError(f"folder path too long for a unix socket: {self.root}")
        for sub in ("etc", "log", "state", "spool", "munge", "run", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses key and socket folders that group or others can write to
        for p in (self.root, self.root / "munge", self.log, self.root / "run"):
            p.chmod(0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        settings = {
            "ClusterName": self.cluster_name,
            "SlurmctldHost": self.node,
            "SlurmctldPort": _free_port(),  # never the default 6817/6818 of a real installation
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            "StateSaveLocation": self.root / "state",
            "SlurmdSpoolDir": self.root / "spool",
            "SlurmctldPidFile": self.root / "run" / "slurmctld.pid",
            "SlurmdPidFile": self.root / "run" / "slurmd.pid",
            "SlurmctldLogFile": self.log / "slurmctld.log",
            "SlurmdLogFile": self.log / "slurmd.log",
            "PlugStackConfig": self.root / "etc" / "plugstack.conf",  # not /etc/slurm/plugstack.conf
            "ProctrackType": "proctrack/linuxproc",  # no cgroups needed (containers)
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",  # CPUs and memory are both consumed by jobs
            "SlurmdParameters": "config_overrides",  # the node may claim more CPUs than it has
            "SchedulerType": "sched/backfill",
            "SchedulerParameters": "sched_interval=2",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "JobAcctGatherType": "jobacct_gather/linux",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp_file,
            "MinJobAge": 3600,  # finished jobs stay in squeue/scontrol for an hour
            "KillWait": 5,
            "InactiveLimit": 0,
        }
        text = "# Written by tests/slurm_cluster.py for a one-node test cluster.\n"
        text += "".join(f"{k}={v}\n" for k, v in settings.items())
        text += f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN\n"
        for i, name in enumerate(self.partitions):
            default = "YES" if i == 0 else "NO"
            text += f"PartitionName={name} Nodes={self.node} Default={default} MaxTime=INFINITE State=UP\n"
        self.conf.write_text(text)
        (self.root / "etc" / "plugstack.conf").write_text("")
        self._write_srun_shim()

    def _write_srun_shim(self) -> None:
        """``bin/srun``: the real srun, with SLURM_CONF put back when a caller removed it.

        On a real cluster slurm.conf is where srun looks without being told (/etc/slurm, or
        slurmd's configless cache); this cluster's is found only through SLURM_CONF.
        snakemake-executor-plugin-slurm-jobstep 0.6.1 starts the job step's ``srun`` with every
        SLURM_* variable removed except the job's IDs, SLURM_CONF included, so without the shim
        srun would find no configuration inside a job. The shim stands in for /etc/slurm.
        """
        shim = self.bin / "srun"
        shim.write_text(
            "#!/bin/sh\n"
            "# tests/slurm_cluster.py: this test cluster's slurm.conf is not in /etc/slurm\n"
            f'SLURM_CONF="${{SLURM_CONF:-{self.conf}}}"\n'
            "export SLURM_CONF\n"
            f'exec {which("srun")} "$@"\n'
        )
        shim.chmod(0o755)

    # ------------------------------------------------------------------ processes

    def start(self, timeout: float = 90) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once ``sinfo`` shows the node idle."""
        if os.geteuid() != 0:
            raise SlurmError("starting slurmd needs root")
        missing = missing_tools(DAEMONS + CLIENTS)
        if missing:
            raise SlurmError(f"{', '.join(missing)} not found: {apt_line(missing)}")
        self.write_config()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                which("munged"),
                "--foreground",
                "--force",  # e.g. a world-writable /tmp in its path
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={self.log / 'munged.log'}",
            ],
        )
        self._wait(self.munge_socket.exists, 20, "the munge socket")
        # -D: stay in the foreground (we keep the process); -i: ignore saved state (a fresh cluster)
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: "is UP" in self.run("scontrol", "ping", check=False).stdout, 30, "slurmctld to answer")
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_idle, timeout, f"node {self.node} to be idle in sinfo")
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.log / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "--noheader", "--nodes", self.node, "--format=%T", check=False).stdout.split()
        return bool(out) and all(s.rstrip("*") == "idle" for s in out)

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with status {proc.returncode}\n{self.logs()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if ok():
                    return
            time.sleep(0.5)
        raise SlurmError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def stop(self) -> None:
        """Cancel the jobs, stop slurmd, slurmctld and munged, and (unless ``keep``) delete the folder.

        Every step runs even if an earlier one fails, so no daemon outlives a test.
        """
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", "--user", str(os.geteuid()), check=False, timeout=15)
                deadline = time.monotonic() + 20
                while (
                    time.monotonic() < deadline
                    and self.run(
                        "squeue", "--noheader", "--states=RUNNING,COMPLETING", check=False, timeout=10
                    ).stdout.strip()
                ):
                    time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the daemon and its helpers
                proc.wait(timeout=10)
        self._kill_stepds()
        self.procs.clear()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_stepds(self) -> None:
        """slurmstepd processes of this cluster that outlived slurmd (found by SLURM_CONF in
        their environment, inherited from our slurmd)."""
        marker = f"SLURM_CONF={self.conf}\0".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() == "slurmstepd" and marker in (entry / "environ").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        proc = subprocess.run(
            [which(cmd[0]) or cmd[0], *cmd[1:]], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def logs(self, tail: int = 3000) -> str:
        """The end of every daemon log, for error messages."""
        files = sorted(p for p in self.log.glob("*") if p.is_file()) if self.log.is_dir() else []
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in files)

    def completed_jobs(self) -> list[dict]:
        """``sacct --completion``: the job completion log, one dict per finished job."""
        fields = ["JobID", "JobName", "Partition", "AllocCPUS", "Timelimit", "State", "ExitCode", "NodeList"]
        out = self.run("sacct", "--completion", "--parsable2", "--noheader", f"--format={','.join(fields)}").stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    def completion_records(self) -> dict[str, dict]:
        """The job completion log's own lines (``key=value ...``), by job ID: has the TRES (memory)."""
        if not self.jobcomp_file.exists():
            return {}
        records = (dict(re.findall(r"(\w+)=(\S*)", line)) for line in self.jobcomp_file.read_text().splitlines())
        return {r["JobId"]: r for r in records if "JobId" in r}

    def controller_jobs(self) -> dict[str, dict]:
        """Jobs slurmctld still holds (every job of the last ``MinJobAge`` seconds), by job ID."""
        fields = {"JobID": "%i", "Comment": "%k", "MinMemory": "%m", "CPUs": "%C", "TimeLimit": "%l"}
        out = self.run("squeue", "--states=all", "--noheader", "--format=" + "|".join(fields.values())).stdout
        rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
        return {r["JobID"]: r for r in rows}

    def job_table(self) -> list[dict]:
        """Every finished job: the completion log (``sacct --completion``) with the memory from its
        TRES and the comment from slurmctld. Memory in MB, time limit in minutes."""
        records, live = self.completion_records(), self.controller_jobs()
        table = []
        for job in self.completed_jobs():
            tres = dict(
                kv.split("=", 1) for kv in records.get(job["JobID"], {}).get("Tres", "").split(",") if "=" in kv
            )
            table.append(
                {
                    "JobID": job["JobID"],
                    "JobName": job["JobName"],
                    "Comment": live.get(job["JobID"], {}).get("Comment", ""),
                    "Partition": job["Partition"],
                    "CPUs": int(job["AllocCPUS"]),
                    "MemMB": _mb(tres.get("mem", "")),
                    "TimelimitMin": int(job["Timelimit"]) if job["Timelimit"].isdigit() else job["Timelimit"],
                    "State": job["State"],
                    "ExitCode": job["ExitCode"],
                    "NodeList": job["NodeList"],
                }
            )
        return table


def _mb(value: str) -> int | None:
    """'2000M', '4G', '1.5G' -> megabytes."""
    m = re.fullmatch(r"([\d.]+)([KMGT]?)", value)
    if not m:
        return None
    return round(float(m.group(1)) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[m.group(2)])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    with SlurmCluster() as cluster:
        print(f"export SLURM_CONF={cluster.conf} PATH={cluster.bin}:$PATH   # Ctrl-C stops the cluster", flush=True)
        print(cluster.run("sinfo").stdout, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
