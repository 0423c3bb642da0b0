import os
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


@pytest.fixture
def ref():
    return REF
