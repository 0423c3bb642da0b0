"""Warm kernels (helpers.engine.zygote): a kernel forked from the run's server behaves as a fresh
one (same outputs of a probe notebook, its own environment and directory), has the stack already
imported, dies with its launcher, and a missing server falls back to a fresh kernel."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from unittest import mock

import nbformat
import pytest

from helpers.engine import zygote
from helpers.engine.errors import InputError
from helpers.engine.runner import KERNEL_ENV

PROBE = """\
import json, os, sys
print(json.dumps({
    "preloaded": "pandas" in sys.modules,
    "cwd": os.getcwd(),
    "stage": os.environ.get("PROBE_STAGE"),
    "main": repr(getattr(sys.modules["__main__"], "__spec__", None)),
    "user_ns": sys.modules["__main__"].__dict__ is get_ipython().user_ns,
    "hashseed": os.environ.get("PYTHONHASHSEED"),
    "poller": getattr(get_ipython().kernel.parent.poller, "parent_pid", None) == os.getppid(),
}))
"""
SAME = """\
import pandas as pd, numpy as np, matplotlib
df = pd.DataFrame(np.arange(60).reshape(2, 30) / 7)
print(pd.get_option("display.max_columns"), pd.get_option("display.width"), matplotlib.get_backend())
print(hash("abc"))
df
"""


def _notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _execute(nb, tmp_path, kernel_env: dict | None, extra: dict | None = None):
    """Run ``nb`` through papermill as the runner does; ``kernel_env`` None: a fresh kernel."""
    import papermill as pm

    with mock.patch.dict(os.environ, {**KERNEL_ENV, **(kernel_env or {}), **(extra or {})}):
        return pm.execute_notebook(
            nb,
            str(tmp_path / "out.ipynb"),
            kernel_name=zygote.KERNEL_NAME if kernel_env else "python3",
            cwd=str(tmp_path),
            progress_bar=False,
        )


def _texts(nb) -> list:
    return [o.get("text") or o.get("data", {}).get("text/plain") for c in nb.cells for o in c.get("outputs", [])]


@pytest.fixture
def server(tmp_path):
    z = zygote.Zygote({**os.environ, **KERNEL_ENV}, tmp_path)
    yield z
    z.close()


def test_a_warm_kernel_is_a_fresh_kernel_with_the_stack_loaded(server, tmp_path):
    warm = json.loads(_texts(_execute(_notebook(PROBE), tmp_path, server.kernel_env(), {"PROBE_STAGE": "s1"}))[0])
    fresh = json.loads(_texts(_execute(_notebook(PROBE), tmp_path, None, {"PROBE_STAGE": "s1"}))[0])
    assert warm["preloaded"] and not fresh["preloaded"], "the warm kernel must find pandas imported"
    for k in ("cwd", "stage", "main", "user_ns", "hashseed"):
        assert warm[k] == fresh[k], k
    assert warm["cwd"] == str(tmp_path) and warm["stage"] == "s1" and warm["user_ns"]
    assert warm["poller"] and fresh["poller"], "a kernel polls its parent (the server, or papermill's process)"
    # a second kernel gets its own environment, not the first one's
    again = json.loads(_texts(_execute(_notebook(PROBE), tmp_path, server.kernel_env(), {"PROBE_STAGE": "s2"}))[0])
    assert again["stage"] == "s2"


def test_outputs_of_a_warm_kernel_equal_a_fresh_ones(server, tmp_path):
    """pandas' display options (decided at import: kernel or terminal), the backend and the hash
    seed are those of a fresh kernel, so a page's text outputs do not depend on the kernel."""
    warm = _texts(_execute(_notebook(SAME), tmp_path, server.kernel_env()))
    fresh = _texts(_execute(_notebook(SAME), tmp_path, None))
    assert warm == fresh
    assert warm[0].split()[:3] == ["20", "80", "Agg"]


def _warm_kernel(z: zygote.Zygote, tmp_path, monkeypatch):
    """A warm kernel started through jupyter_client directly: (its manager, the kernel's pid)."""
    from jupyter_client import KernelManager

    for k, v in z.kernel_env().items():
        monkeypatch.setenv(k, v)
    km = KernelManager(kernel_name=zygote.KERNEL_NAME)
    km.start_kernel(cwd=str(tmp_path), env={**os.environ, **KERNEL_ENV})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    seen = []
    kc.execute_interactive("import os; print(os.getpid())", output_hook=seen.append, timeout=60)
    kc.stop_channels()
    return km, int(next(m["content"]["text"] for m in seen if m["msg_type"] == "stream"))


def _gone_within(pid: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_a_kernel_dies_with_its_launcher(server, tmp_path, monkeypatch):
    km, pid = _warm_kernel(server, tmp_path, monkeypatch)
    launcher = km.provisioner.process.pid
    assert pid != launcher, "the kernel is the server's child, not the launcher"
    os.kill(launcher, signal.SIGKILL)
    km.provisioner.process.wait()
    assert _gone_within(pid), "the kernel outlived its killed launcher"
    km.cleanup_resources()


def test_a_kernel_exits_when_the_server_is_killed(tmp_path, monkeypatch):
    """SIGKILL leaves the server no time to kill its kernels: they notice their parent is gone."""
    z = zygote.Zygote({**os.environ, **KERNEL_ENV}, tmp_path)
    try:
        nb = _notebook("import os\nprint(os.getpid())")
        pid = int(_texts(_execute(nb, tmp_path, z.kernel_env()))[0])
        assert not _alive(pid), "papermill shut the kernel down"
        km, pid = _warm_kernel(z, tmp_path, monkeypatch)
        z.proc.kill()
        z.proc.wait()
        assert _gone_within(pid), "an orphaned kernel kept running"
        km.shutdown_kernel(now=True)
    finally:
        z.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_without_a_server_the_launcher_starts_a_fresh_kernel(server, tmp_path):
    """A server that died before it listened: the launcher does not wait for it."""
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**server.kernel_env(), zygote.SOCKET_ENV: str(tmp_path / "no-such.sock"), zygote.PID_ENV: str(gone.pid)}
    t0 = time.monotonic()
    out = json.loads(_texts(_execute(_notebook(PROBE), tmp_path, env))[0])
    assert not out["preloaded"] and out["user_ns"]
    assert time.monotonic() - t0 < 30, "the launcher waited for a server that is gone"


def test_the_first_kernel_waits_for_a_starting_server(tmp_path):
    """The runner does not wait for the server's imports; the first launcher does."""
    z = zygote.Zygote({**os.environ, **KERNEL_ENV}, tmp_path)
    try:
        assert not os.path.exists(z.socket), "the server cannot listen before its imports"
        out = json.loads(_texts(_execute(_notebook(PROBE), tmp_path, z.kernel_env()))[0])
        assert out["preloaded"], "the launcher gave up on the starting server"
    finally:
        z.close()


def test_close_stops_the_server_and_its_kernels(tmp_path):
    z = zygote.Zygote({**os.environ, **KERNEL_ENV}, tmp_path)
    assert z.wait() and os.path.exists(z.socket)
    z.close()
    assert z.proc.poll() is not None and not z.dir.exists()


def test_the_server_exits_when_its_parent_dies(tmp_path):
    """A runner killed with SIGKILL leaves no server behind."""
    import subprocess

    code = (
        "import os, sys, time; sys.path.insert(0, {!r})\n"
        "from helpers.engine import zygote\n"
        "z = zygote.Zygote(dict(os.environ), {!r})\n"
        "print(z.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    ).format(str(zygote.__file__).rsplit("/helpers/", 1)[0], str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    assert _gone_within(child)


@pytest.mark.parametrize(("value", "warm"), [(None, True), ("warm", True), ("fresh", False), (" Fresh ", False)])
def test_the_switch(monkeypatch, value, warm):
    if value is None:
        monkeypatch.delenv(zygote.SWITCH_ENV, raising=False)
    else:
        monkeypatch.setenv(zygote.SWITCH_ENV, value)
    assert zygote.enabled() is warm


def test_a_bad_switch_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(zygote.SWITCH_ENV, "tepid")
    with pytest.raises(InputError, match="HELPERS_KERNELS must be 'warm' or 'fresh'"):
        zygote.enabled()


def test_sweep_removes_only_the_folders_of_dead_servers(tmp_path):
    import socket as so

    live = zygote.Zygote({**os.environ, **KERNEL_ENV}, tmp_path, tmpdir=str(tmp_path))
    try:
        assert live.wait()
        dead = tmp_path / "helpers-zygote-dead"
        dead.mkdir()
        s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
        s.bind(str(dead / "zygote.sock"))  # bound, never listening: a server killed with SIGKILL
        s.close()
        young = tmp_path / "helpers-zygote-young"  # its server is still importing
        young.mkdir()
        old = tmp_path / "helpers-zygote-old"  # never got a socket, an hour ago
        old.mkdir()
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        other = tmp_path / "not-ours"
        other.mkdir()
        removed = zygote.sweep_stale(str(tmp_path))
        assert sorted(p.name for p in removed) == ["helpers-zygote-dead", "helpers-zygote-old"]
        assert young.exists() and other.exists() and live.dir.exists() and not dead.exists()
    finally:
        live.close()
