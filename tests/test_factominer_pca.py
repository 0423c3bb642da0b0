"""Scaled PCA against R's FactoMineR::PCA(scale.unit = TRUE), and the factoextra group ellipse."""

import numpy as np
import pandas as pd
import pytest

from helpers.engine.errors import InputError
from helpers.methods.factominer_pca import group_ellipse, pca_scaled

GOLD = "r_outputs/factominer"


def test_matches_factominer(ref):
    E = pd.read_csv(ref / "r_outputs" / "counts_nobatch" / "voom_E.tsv.gz", sep="\t", index_col=0)
    scores, share = pca_scaled(E, n_components=5)
    r_coord = pd.read_csv(ref / GOLD / "ind_coord.tsv", sep="\t", index_col=0)
    r_eig = pd.read_csv(ref / GOLD / "eig.tsv", sep="\t", index_col=0)
    assert list(scores.index) == list(r_coord.index)
    for j in range(5):
        ours, theirs = scores.iloc[:, j].to_numpy(), r_coord.iloc[:, j].to_numpy()
        sign = np.sign(ours @ theirs)
        np.testing.assert_allclose(sign * ours, theirs, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(100 * share.to_numpy(), r_eig["percentage of variance"].to_numpy()[:5], rtol=1e-8)


def test_scaling_changes_the_answer(ref):
    """scale=False is a different PCA (the unscaled one of prcomp): the golden must not match it."""
    E = pd.read_csv(ref / "r_outputs" / "counts_nobatch" / "voom_E.tsv.gz", sep="\t", index_col=0)
    _, share = pca_scaled(E, n_components=5, scale=False)
    r_eig = pd.read_csv(ref / GOLD / "eig.tsv", sep="\t", index_col=0)
    assert abs(100 * share.iloc[0] - r_eig["percentage of variance"].iloc[0]) > 0.5


def test_bad_input():
    with pytest.raises(InputError, match="at least 3 samples"):
        pca_scaled(pd.DataFrame(np.ones((5, 2))))
    with pytest.raises(InputError, match="missing"):
        pca_scaled(pd.DataFrame([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]]))


def test_group_ellipse_covers_the_group():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(200, 2)) * [3.0, 1.0] + [5.0, -2.0]
    ring = group_ellipse(pts)
    assert ring.shape == (100, 2)
    np.testing.assert_allclose(ring[:-1].mean(axis=0), pts.mean(axis=0), atol=1e-9)  # centred on the group
    # a 95% normal ellipse holds about 95% of the points (bounded, not exact)
    from matplotlib.path import Path

    inside = Path(ring).contains_points(pts).mean()
    assert 0.9 < inside < 0.99
    assert group_ellipse(pts[:2]) is None
