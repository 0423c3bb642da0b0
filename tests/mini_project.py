"""A miniature project for the runner's tests: a params file, a permissive schema and one MyST
notebook per step, each a parameters cell and a body; shared by test_fingerprint.py and
test_run_status.py."""

from __future__ import annotations

from test_runner import freeze_code, nb, write_md

from helpers.engine.runner import Project

#: the schema of a mini project: the three blocks, anything inside
SCHEMA = """
$schema: "https://json-schema.org/draft/2020-12/schema"
type: object
properties:
  global: {type: object}
  notebooks: {type: object}
  profiles: {type: object}
"""


def make_mini_project(root, params: str, sources: dict, steps, monkeypatch) -> Project:
    """Write ``config/params.yml`` (``params``), the schema, ``data/`` and one notebook per
    ``sources[stem] = (parameters cell, body)`` under ``root``; point the helpers at it (with the
    code part of the fingerprint frozen) and return its :class:`Project` of ``steps``."""
    freeze_code(monkeypatch)
    (root / "config").mkdir(parents=True)
    (root / "config" / "params.yml").write_text(params)
    (root / "config" / "params.schema.yml").write_text(SCHEMA)
    (root / "notebooks").mkdir()
    (root / "data").mkdir()
    for stem, (params_src, body) in sources.items():
        write_md(nb(params_src, body), root / "notebooks" / f"{stem}.md")
    monkeypatch.setenv("HELPERS_ROOT", str(root))
    monkeypatch.setenv("HELPERS_RESULTS", str(root / "results"))
    return Project(root=root, results=root / "results", executed=root / "executed", steps=steps)
