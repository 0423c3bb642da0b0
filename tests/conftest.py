import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "reference"

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def tracked_files():
    """The files a fresh clone would have (tracked + new, not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def copy_project(dest: Path) -> Path:
    """Copy the project as a fresh clone would have it into ``dest``."""
    for f in tracked_files():
        t = dest / f
        t.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, t)
    if (ROOT / "node_modules").exists() and not (dest / "node_modules").exists():
        (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


@pytest.fixture
def ref():
    return REF
