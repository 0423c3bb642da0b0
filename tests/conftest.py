import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "reference"

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def copy_project(dest: Path) -> Path:
    """Copy the project as a fresh clone would have it into ``dest``."""
    from helpers.engine.runner import copy_checkout

    return copy_checkout(dest, ROOT)


def project_env(dest: Path) -> dict:
    """The environment that points the runner (and helpers) at the project copy ``dest``."""
    return dict(
        os.environ,
        HELPERS_ROOT=str(dest),
        HELPERS_RESULTS=str(dest / "results"),
        HELPERS_EXECUTED=str(dest / "executed"),
    )


@pytest.fixture(autouse=True)
def _private_step_cache(request, tmp_path_factory, monkeypatch):
    """Cached steps (helpers.engine.memo) called in the test process write into a folder of the
    test's own, never into the checkout's results/.cache; a project copy the runner executes
    keeps its cache under its own results/ unless the test says otherwise."""
    if "HELPERS_CACHE_DIR" not in os.environ:
        name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
        monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "step-cache" / name))


@pytest.fixture
def ref():
    return REF


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The whole project run on the `test` profile in a fresh copy, with its book built:
    ``(copy, runner stdout)``. Shared by the notebook, regression, browser and PDF tests, so a
    test session runs the book once."""
    dest = copy_project(tmp_path_factory.mktemp("clone"))
    p = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--profile", "test", "--book"],
        cwd=dest,
        env=project_env(dest),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return dest, p.stdout
