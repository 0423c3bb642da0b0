"""The notebooks in run order, the results folder each writes, and whose results each reads.

A notebook reads only ``data/`` and the results of the notebooks named in ``reads``; the runner
uses this to decide what a change invalidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    stem: str                 # notebook file stem, e.g. "03_de"
    item: str                 # results/<item>/
    title: str                # paper item it reproduces
    reads: tuple = field(default_factory=tuple)  # stems whose results it reads
    files: tuple = field(default_factory=tuple)  # other project files it reads (besides data/)


STEPS = [
    Step("01_cohort", "cohort", "Table S1: the cohort"),
    Step("02_pca", "pca", "Fig. 1B: PCA of all genes", ("01_cohort",)),
    Step("03_de", "de", "Fig. 2A, Table S2: differential expression", ("01_cohort",)),
    Step("04_deg_structure", "deg_structure", "Fig. 2B, 2C: DEG heatmap and PCA", ("01_cohort", "03_de")),
    Step("05_go", "go", "Fig. 2D, S1: GO enrichment", ("03_de",)),
    Step("06_gsea", "gsea", "Fig. 3A: GSEA", ("03_de",)),
    Step("07_gsva", "gsva", "Fig. 3B: GSVA of T-cell pathways", ("01_cohort",)),
    Step("08_pam", "pam", "Fig. 4, Table 1: shrunken-centroid classifier", ("01_cohort",)),
    Step("09_published_model", "published_model", "Table 1: the published 14-gene model", ("01_cohort",)),
    Step("10_scorecard", "scorecard", "Scorecard: every claim vs this run",
         ("01_cohort", "02_pca", "03_de", "04_deg_structure", "05_go", "06_gsea", "07_gsva", "08_pam", "09_published_model")),
    Step("11_reproducibility", "reproducibility", "Reproducibility: code, parameters, data, versions, timings",
         ("01_cohort", "02_pca", "03_de", "04_deg_structure", "05_go", "06_gsea", "07_gsva", "08_pam", "09_published_model",
          "10_scorecard")),
    Step("12_benchmarks", "benchmarks", "Benchmarks: time and memory", files=("benchmarks/results.json",)),
]


def steps(available=None):
    """Steps whose notebooks exist (``available``: iterable of stems), in order."""
    if available is None:
        return list(STEPS)
    have = set(available)
    return [s for s in STEPS if s.stem in have]


def by_stem(stem: str) -> Step:
    for s in STEPS:
        if s.stem == stem:
            return s
    raise KeyError(stem)
