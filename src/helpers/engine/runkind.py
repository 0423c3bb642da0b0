"""Which kind of run produced a page: the simulated twin, the public data, or a user's cohort.

One place decides it (from the effective parameters of the cohort chapter) and one function
words it, so every chapter page carries the same banner (the runner adds it under the title):
a reader who lands on the volcano plot of a twin run sees that its genes are simulated.
"""

from __future__ import annotations

import html

KINDS = {
    "twin": (
        "Simulated twin",
        "warning",
        "This page was computed on the **simulated twin** of the paper's cohort ({name}): the genes "
        "and samples are generated, so its results check the analysis, not the paper's biology.",
    ),
    "real": ("Public data", "note", "This page was computed on the **public data** of the paper ({name})."),
    "custom": (
        "Your cohort",
        "note",
        "This page was computed on a **user-supplied cohort** ({name}), not on the paper's data.",
    ),
}


def run_kind(cohort_params: dict) -> tuple[str, str]:
    """(kind, dataset name) from the cohort chapter's effective parameters."""
    kind = cohort_params.get("dataset", "twin")
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}")
    if kind == "twin":
        design = cohort_params.get("simulate") or {}
        cohorts = design.get("cohorts") or []
        name = " + ".join(str(c.get("name")) for c in cohorts) if cohorts else "the paper's design"
        name += f", seed {cohort_params.get('seed')}"
    elif kind == "real":
        name = "GSE153670 + PRJCA000750"
    else:
        name = str((cohort_params.get("custom") or {}).get("cohort_name") or "custom")
    return kind, name


def banner(kind: str, name: str) -> str:
    """The MyST admonition shown under every chapter's title (``name`` escaped: it may come from
    a user's parameters)."""
    title, cls, text = KINDS[kind]
    safe = html.escape(name, quote=True).replace("`", "&#96;").replace("*", "&#42;").replace("_", "&#95;")
    safe = safe.replace("[", "&#91;").replace("]", "&#93;").replace("{", "&#123;").replace("}", "&#125;")
    safe = " ".join(safe.split())  # no newline can start a new Markdown block
    return f"```{{admonition}} Run: {title}\n:class: {cls} run-kind run-kind-{kind}\n{text.format(name=safe)}\n```"
