"""Lint the code of the MyST text notebooks (notebooks/*.md) with ruff, and check the house rules
that ruff cannot: no function defined and no matplotlib drawing in a notebook cell (figures and
rules live in ``helpers``).

Each notebook is converted by jupytext to a percent-format script in a temporary folder; ruff's
messages name the notebook and the line of its cell. Exit status 1 on any finding.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
DRAWING = {
    "subplots",
    "figure",
    "plot",
    "scatter",
    "bar",
    "barh",
    "hist",
    "imshow",
    "axhline",
    "axvline",
    "annotate",
    "legend",
    "set_xlabel",
    "set_ylabel",
    "set_title",
    "text",
}
IGNORE = "E402,F704,E501"  # imports after the parameters cell; top-level await is not used but harmless


def house_rules(name: str, code: str) -> list[str]:
    """Findings of the notebook house rules in ``code`` (the notebook as one script)."""
    out = []
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(f"{name}:{node.lineno}: defines '{node.name}': move it into helpers/ (with a test)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            base_name = base.id if isinstance(base, ast.Name) else None
            if node.func.attr in DRAWING and base_name in {"plt", "ax", "axes", "fig"}:
                out.append(
                    f"{name}:{node.lineno}: draws with {base_name}.{node.func.attr}(): figures live in helpers.viz"
                )
    return out


def main(argv=None) -> int:
    notebooks = [Path(p) for p in (argv or sys.argv[1:])] or sorted((ROOT / "notebooks").glob("*.md"))
    findings = []
    with tempfile.TemporaryDirectory() as tmp:
        scripts = []
        for nb in notebooks:
            text = jupytext.writes(jupytext.read(nb, fmt="md:myst"), fmt="py:percent")
            script = Path(tmp) / f"{nb.stem}.py"
            script.write_text(text)
            scripts.append(script)
            findings += house_rules(nb.name, text)
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ruff"),
                "check",
                "--no-cache",
                "--quiet",
                "--extend-ignore",
                IGNORE,
                "--config",
                str(ROOT / "pyproject.toml"),
                *map(str, scripts),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            findings.append(
                proc.stdout.replace(tmp + "/", "notebooks/").replace(".py:", ".md (as py:percent):").strip()
            )
    for f in findings:
        print(f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
