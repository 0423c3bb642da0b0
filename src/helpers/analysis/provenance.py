"""What produced a run (chapter 11, Reproducibility): the code revision, file checksums, package
versions and the per-chapter execution records the runner leaves in ``results/<item>/.stamp.json``."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

#: The packages whose versions the reproducibility page lists.
PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "statsmodels",
    "pydeseq2",
    "anndata",
    "matplotlib",
    "seaborn",
    "gseapy",
    "papermill",
    "nbclient",
    "myst-nb",
    "jupyter-book",
    "sphinx",
    "openpyxl",
    "pyyaml",
)

NOT_A_CHECKOUT = "not a git checkout"


def sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(root: Path, *args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_revision(root) -> str:
    """The short (12-character) commit of ``root``, marked when tracked files have uncommitted
    changes; "not a git checkout" outside a repository (or without git)."""
    rev = _git(Path(root), "rev-parse", "--short=12", "HEAD")
    if not rev:
        return NOT_A_CHECKOUT
    dirty = bool(_git(Path(root), "status", "--porcelain", "--untracked-files=no"))
    return rev + (" (with uncommitted changes)" if dirty else "")


def execution_table(steps, results) -> pd.DataFrame:
    """One row per chapter that has run (its ``.stamp.json`` under ``results/<item>/``):
    seconds, peak memory and the profile."""
    rows = []
    for s in steps:
        stamp = Path(results) / s.item / ".stamp.json"
        if stamp.exists():
            st = json.loads(stamp.read_text())
            rows.append(
                {
                    "notebook": s.stem,
                    "paper item": s.title,
                    "seconds": st.get("seconds"),
                    "peak memory (MB)": st.get("peak_rss_mb"),
                    "profile": st.get("profile"),
                }
            )
    return pd.DataFrame(rows, columns=["notebook", "paper item", "seconds", "peak memory (MB)", "profile"])


def data_files(data, raw, root) -> pd.DataFrame:
    """Every shipped data file under ``data`` (``raw`` excluded) and then every user file under
    ``raw`` (its README excluded), with size and SHA-256, paths relative to ``root``."""
    data, raw, root = Path(data), Path(raw), Path(root)
    files = [p for p in sorted(data.rglob("*")) if p.is_file() and raw not in p.parents]
    files += [p for p in sorted(raw.rglob("*")) if p.is_file() and p.name != "README.md"]
    return pd.DataFrame(
        {
            "file": [p.relative_to(root).as_posix() for p in files],
            "bytes": [p.stat().st_size for p in files],
            "sha256": [sha256(p) for p in files],
        }
    )


def package_versions(packages=PACKAGES) -> pd.DataFrame:
    """The installed version of each package ("not installed" when absent)."""
    rows = []
    for p in packages:
        try:
            rows.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            rows.append((p, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def short_hashes(table: pd.DataFrame, column: str = "sha256", n: int = 16) -> pd.DataFrame:
    """``table`` with the hashes in ``column`` cut to ``n`` characters (for display)."""
    return table.assign(**{column: table[column].str[:n] + "…"})


def rebuild_commands(profile: str) -> str:
    """The shell commands that rebuild this book from a clean checkout, as a Markdown code block
    (a glue role would stay literal inside a code block, so the profile is written in)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(profile)):
        raise ValueError(f"profile name {profile!r} is not a plain name")
    first = "make book" if profile == "default" else f"make book PROFILE={profile}"
    return f"```bash\n{first}\nmake test\n```"
