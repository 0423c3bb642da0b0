"""Warm kernels: one fork server per run starts every chapter's Jupyter kernel with the
scientific stack already imported.

Why: papermill starts a fresh ``python -m ipykernel_launcher`` for every chapter. On this 2-core
machine an empty kernel costs 0.85 s and one that imports numpy, pandas, scipy.stats and
matplotlib 3.0 s, so a run of seven light chapters spent about 15 s of its 42 CPU-s on start-up.
jupyter_client has no fork server, so this module is one. The server (the "zygote") imports the
stack once per run; each kernel is a ``fork()`` of it, which takes milliseconds and shares the
imported pages. Nothing a chapter computes changes: a kernel still starts from a clean
``IPKernelApp`` in its own process, with the chapter's own environment and working directory, and
runs the notebook's imports itself (they find the modules loaded).

The three pieces:

- :class:`Zygote` (the runner's side): starts ``python -m helpers.engine.zygote serve SOCKET``
  with the kernels' environment (without waiting: the first kernel's launcher waits for the
  socket, so the server's imports overlap the runner's own start-up), and writes a kernelspec
  (``helpers-warm``) whose command is the launcher below. :meth:`Zygote.kernel_env` gives what a
  kernel needs to find both; :meth:`Zygote.close` stops the server and the kernels it started.
- ``serve``: imports :data:`PRELOAD`, then listens on a Unix socket. For each launcher it receives
  the kernel's arguments, working directory and environment, and the launcher's stdin, stdout and
  stderr (as file descriptors), and forks. The child becomes the kernel: its own session, those
  descriptors, that environment and directory, ``JPY_PARENT_PID`` the server (a kernel whose
  server dies exits), the random module reseeded, then ``IPKernelApp.launch_instance``. The server
  reaps its children and sends each exit status to its launcher. When a launcher disconnects
  without one (it was killed), its kernel is killed. When the server's parent dies, the server
  kills its kernels and exits.
- ``attach`` (the kernelspec's command, what jupyter_client sees as the kernel process): sends
  the request and its descriptors, forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the kernel,
  and exits with the kernel's status. If the server cannot be reached it becomes an ordinary
  kernel (``exec`` of ``python -m ipykernel_launcher`` with the same arguments), so a missing
  server costs time, never a run.

The socket and the kernelspec live in a private temporary folder (mode 0700, removed with the
server), so only the run's own user can ask the server for a kernel. A server killed with
SIGKILL cannot remove it; the next run does (:func:`sweep_stale`).

``HELPERS_KERNELS=fresh`` turns warm kernels off (the runner then starts papermill's standard
``python3`` kernel for every chapter). ``make bench`` measures both in one run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL_NAME = "helpers-warm"
SOCKET_ENV = "HELPERS_ZYGOTE"
PID_ENV = "HELPERS_ZYGOTE_PID"
SWITCH_ENV = "HELPERS_KERNELS"
#: what the server imports before it forks kernels: what nearly every chapter imports. The package
#: itself first: it keeps jsonschema from building a grammar no schema uses (helpers/__init__.py).
PRELOAD = (
    "helpers",
    "numpy",
    "pandas",
    "scipy.stats",
    "matplotlib.pyplot",
    "seaborn",
    "jsonschema",
    "nbformat",
    "IPython.display",
    "ipykernel.kernelapp",
)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_HEADER = struct.Struct("!I")


def enabled() -> bool:
    """Warm kernels unless ``HELPERS_KERNELS=fresh``."""
    value = os.environ.get(SWITCH_ENV, "warm").strip().lower()
    if value not in ("warm", "fresh"):
        from helpers.engine.errors import InputError

        raise InputError(f"{SWITCH_ENV} must be 'warm' or 'fresh', got {value!r}", where=SWITCH_ENV)
    return value == "warm"


# ----------------------------------------------------------------------------- the runner's side


class Zygote:
    """A running fork server and its kernelspec (see the module docstring)."""

    def __init__(self, env: dict, cwd: Path, tmpdir: str | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="helpers-zygote-", dir=tmpdir))
        self.socket = str(self.dir / "zygote.sock")
        spec = self.dir / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "helpers.engine.zygote", "attach", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps(
                {"argv": argv, "display_name": "Python 3 (ipykernel)", "language": "python"},
                indent=1,
            )
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helpers.engine.zygote", "serve", self.socket, str(os.getpid())],
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def wait(self, timeout: float = 60.0) -> bool:
        """Whether the server listens (waiting up to ``timeout`` seconds while it starts)."""
        return _wait_for(self.socket, self.proc.pid, timeout)

    def kernel_env(self) -> dict:
        """What a kernel started by papermill needs: the kernelspec folder first on JUPYTER_PATH,
        the server's socket and its process id (its launcher waits while the server starts)."""
        path = os.environ.get("JUPYTER_PATH", "")
        return {
            "JUPYTER_PATH": os.pathsep.join(p for p in (str(self.dir), path) if p),
            SOCKET_ENV: self.socket,
            PID_ENV: str(self.proc.pid),
        }

    def close(self) -> None:
        """Stop the server (it kills the kernels it started and removes its folder)."""
        import shutil

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, which has exited, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: signal 0 tells whether the process exists
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _wait_for(path: str, pid: int | None, timeout: float) -> bool:
    """Wait until the server's socket exists, while the server (``pid``) runs, up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if pid is None or not _running(pid) or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def sweep_stale(tmpdir: str | None = None, min_age: float = 3600.0) -> list:
    """Remove the folders of servers that died without cleaning up (killed with SIGKILL, as a
    killed run's whole process group is): a folder whose socket no server answers, or one older
    than ``min_age`` seconds that never got a socket. A live server's folder, and a young one
    whose server is still importing, are kept. Returns the folders removed."""
    import shutil

    removed = []
    for d in Path(tmpdir or tempfile.gettempdir()).glob("helpers-zygote-*"):
        try:
            sock = d / "zygote.sock"
            if sock.exists():
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(str(sock))
                    continue  # a server answers: keep
                except ConnectionRefusedError:
                    pass
                finally:
                    probe.close()
            elif time.time() - d.stat().st_mtime < min_age:
                continue
            shutil.rmtree(d)
            removed.append(d)
        except OSError:  # another user's folder, or one going away meanwhile
            continue
    return removed


# ----------------------------------------------------------------------------- messages


def _send(sock: socket.socket, payload: dict, fds: list | None = None) -> None:
    data = json.dumps(payload).encode()
    head = _HEADER.pack(len(data))
    if fds:
        socket.send_fds(sock, [head], fds)
    else:
        sock.sendall(head)
    sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def _recv(sock: socket.socket, maxfds: int = 0) -> tuple:
    if maxfds:
        head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, maxfds)
        if not head:
            raise EOFError("connection closed")
        if len(head) < _HEADER.size:
            head += _recv_exact(sock, _HEADER.size - len(head))
    else:
        head, fds = _recv_exact(sock, _HEADER.size), []
    (n,) = _HEADER.unpack(head)
    return json.loads(_recv_exact(sock, n)), list(fds)


# ----------------------------------------------------------------------------- the server


def serve(path: str, parent: int) -> None:
    """The fork server's main loop (``python -m helpers.engine.zygote serve SOCKET PARENT-PID``):
    it ends when the process ``parent`` is no longer its parent (given, not read at start: a
    runner killed while the server starts must not leave it running under init)."""
    import builtins
    import importlib
    import selectors

    # pandas decides at import whether it runs in a Jupyter kernel (display.max_columns 20) or in
    # a terminal (0: as wide as the terminal) by asking get_ipython() for a kernel. The kernels
    # forked from here are Jupyter kernels, so the import is told so, and nothing else.
    builtins.get_ipython = _JupyterKernelMark
    try:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except ImportError:  # an optional package: the kernel imports what it needs itself
                pass
    finally:
        del builtins.get_ipython
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".tmp"
    listener.bind(tmp)
    listener.listen(16)
    os.replace(tmp, path)  # the socket appears only once the server listens
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    kernels: dict = {}  # pid -> connection
    conns: dict = {}  # connection -> pid

    def kill_all():
        for pid in list(kernels):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    try:
        while not stop and os.getppid() == parent:
            for key, _ in sel.select(timeout=0.1):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    try:
                        request, fds = _recv(conn, maxfds=3)
                    except (EOFError, OSError, ValueError):
                        conn.close()
                        continue
                    pid = os.fork()
                    if pid == 0:  # the kernel
                        sel.close()
                        listener.close()
                        for c in conns:
                            c.close()
                        conn.close()
                        _become_kernel(request, fds)  # never returns
                    for fd in fds:
                        os.close(fd)
                    kernels[pid] = conn
                    conns[conn] = pid
                    sel.register(conn, selectors.EVENT_READ)
                    _send(conn, {"pid": pid})
                else:  # a launcher says nothing after its request: readable means it is gone
                    conn = key.fileobj
                    try:
                        gone = conn.recv(1) == b""
                    except OSError:
                        gone = True
                    if gone:
                        sel.unregister(conn)
                        pid = conns.pop(conn)
                        conn.close()
                        if pid in kernels:
                            kernels[pid] = None
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
            while kernels:  # reap, and tell each launcher how its kernel ended
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = kernels.pop(pid, None)
                if conn is not None:
                    try:
                        _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                    except OSError:
                        pass
    finally:
        kill_all()
        folder = os.path.dirname(path)
        if os.path.basename(folder).startswith("helpers-zygote-"):  # the socket and kernelspec
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


class _JupyterKernelMark:
    """What ``get_ipython()`` returns while the server imports :data:`PRELOAD`: an object with a
    ``kernel``, which is all pandas' ``is_terminal`` looks at."""

    kernel = True


def _become_kernel(request: dict, fds: list) -> None:
    """In the forked child: set up the process as a fresh kernel would be, then run it."""
    import atexit
    import importlib.util
    import random

    code = 1
    try:
        os.setsid()
        for target, fd in zip((0, 1, 2), fds, strict=False):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        env = dict(request["env"])
        env["JPY_PARENT_PID"] = str(os.getppid())  # the kernel exits if the server goes away
        os.environ.clear()
        os.environ.update(env)
        os.chdir(request["cwd"])
        # ipykernel reads JPY_PARENT_PID when it is imported (here: in the server), so the kernel
        # is told its parent on the command line; it exits when the server goes, as a fresh one
        # exits when papermill's process goes
        argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        # (IPython makes the user namespace ``__main__``, in a fresh kernel as here)
        sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin, *argv]
        random.seed()
        from ipykernel.kernelapp import IPKernelApp

        try:
            IPKernelApp.launch_instance(argv=argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - reported on the kernel's stderr, then the child ends
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


# ----------------------------------------------------------------------------- the launcher


def attach(argv: list) -> int:
    """The kernel command of the ``helpers-warm`` kernelspec (see the module docstring)."""
    path = os.environ.get(SOCKET_ENV)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid_text = os.environ.get(PID_ENV, "")
        if not path or not _wait_for(path, int(pid_text) if pid_text.isdigit() else None, 60.0):
            raise OSError("no fork server")
        sock.connect(path)
        _send(sock, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}, fds=[0, 1, 2])
        reply, _ = _recv(sock)
        pid = int(reply["pid"])
    except (OSError, EOFError, ValueError, KeyError):
        sock.close()
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        signal.signal(s, forward)
    try:
        reply, _ = _recv(sock)
    except (EOFError, OSError, ValueError):
        return 1  # the server went away: it killed the kernel
    code = int(reply.get("exit", 1))
    return code if code >= 0 else 128 - code


def main(args: list) -> int:
    if args[:1] == ["serve"] and len(args) == 3:
        serve(args[1], int(args[2]))
        return 0
    if args[:1] == ["attach"]:
        return attach(args[1:])
    print("usage: python -m helpers.engine.zygote serve SOCKET PARENT-PID | attach KERNEL-ARGS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
