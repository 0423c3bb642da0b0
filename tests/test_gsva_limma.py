"""limma on GSVA scores (notebook 07's CR-NR comparison) against R's gsva_limma.tsv.

R: lmFit + eBayes on the GSVA score matrix with the folder's design (response, plus batch for
counts_batch). Our scores are tested against R's in test_gsva.py; here R's own scores are the
input, so the comparison isolates the limma step.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.de import run_de_logexpr

REF = Path(__file__).resolve().parent / "data" / "reference"


@pytest.mark.parametrize(
    "folder, sheet, covariate",
    [
        ("counts_nobatch", "samples_nobatch.csv", None),
        ("counts_batch", "samples.csv", "batch"),
        ("logexpr_trend", "samples_nobatch.csv", None),
    ],
)
def test_limma_on_gsva_scores_matches_r(folder, sheet, covariate):
    out = REF / "r_outputs" / folder
    scores = pd.read_csv(out / "gsva_scores.tsv", sep="\t", index_col=0)
    scores = scores.select_dtypes("number")
    samples = pd.read_csv(REF / "fixture" / sheet, index_col="sample_id").loc[scores.columns]
    ref = pd.read_csv(out / "gsva_limma.tsv", sep="\t", index_col=0)
    mine = run_de_logexpr(scores, samples, covariate=covariate, trend=False).loc[ref.index]
    # gsva_scores.tsv holds the scores rounded to 6 decimals, which bounds the agreement (logFC
    # to ~3e-7 absolute); the test also fails if the trend or design choice were wrong (t off by %)
    np.testing.assert_allclose(mine["logFC"], ref["logFC"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(mine["stat"], ref["t"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mine["P.Value"], ref["P.Value"], rtol=1e-3)
    np.testing.assert_allclose(mine["adj.P.Val"], ref["adj.P.Val"], rtol=1e-3)
