"""Which kind of run produced a page: the simulated twin, the public data, or a user's cohort.

One place decides it (from the effective parameters of the cohort chapter) and one function
words it, so every chapter page carries the same banner (the runner adds it under the title):
a reader who lands on the volcano plot of a twin run sees that its genes are simulated. A
chapter that does not read the cohort (the workflow figure, the benchmarks) says so instead
(kind ``any``), since its page is the same whatever the dataset. The banner's line also links the
page's ``numbers.json``.
"""

from __future__ import annotations

import string

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
    "any": (
        "Any dataset",
        "note",
        "This page does not read the cohort: it is the same whichever dataset the run uses.",
    ),
}
#: Characters of a name that could open markup (HTML, code, emphasis, math, roles, links, tables):
#: written as numeric character references. Line breaks are folded to spaces first, so no name can
#: start a new Markdown block.
_MARKUP = set(string.punctuation) - set(".,-+()'")
#: The kinds :func:`run_kind` can return (``any`` is the runner's, for pages that read no cohort).
DATASETS = ("twin", "real", "custom")


def run_kind(cohort_params: dict) -> tuple[str, str]:
    """(kind, dataset name) from the cohort chapter's effective parameters."""
    kind = cohort_params.get("dataset", "twin")
    if kind not in DATASETS:
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


def banner(kind: str, name: str, numbers: str | None = None) -> str:
    """The MyST admonition shown under every chapter's title (``name`` escaped: it may come from
    a user's parameters). ``numbers``: Markdown (made by the runner, not from data) for the
    page's ``numbers.json``, added to the same line."""
    title, cls, text = KINDS[kind]
    safe = "".join(f"&#{ord(ch)};" if ch in _MARKUP else ch for ch in " ".join(name.split()))
    line = text.format(name=safe)
    if numbers:
        line += f" Every number on this page, machine-readable: {' '.join(numbers.split())}."
    return f"```{{admonition}} Run: {title}\n:class: {cls} run-kind run-kind-{kind}\n{line}\n```"
