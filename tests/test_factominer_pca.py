"""Scaled PCA against R's FactoMineR::PCA(scale.unit = TRUE) (and FALSE), and the group ellipse of
factoextra's fviz_pca_ind(addEllipses = TRUE) against ggplot2's stat_ellipse(type = "norm", 0.95)."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path

from helpers.engine.errors import InputError
from helpers.methods.factominer_pca import group_ellipse, group_ellipses, pca_scaled

GOLD = "r_outputs/factominer"


def _voom(ref):
    return pd.read_csv(ref / "r_outputs" / "counts_nobatch" / "voom_E.tsv.gz", sep="\t", index_col=0)


def _read(ref, name):
    return pd.read_csv(ref / GOLD / name, sep="\t", index_col=0)


@pytest.mark.parametrize(
    "scale,coord,eig", [(True, "ind_coord.tsv", "eig.tsv"), (False, "ind_coord_unscaled.tsv", "eig_unscaled.tsv")]
)
def test_matches_factominer(ref, scale, coord, eig):
    scores, share = pca_scaled(_voom(ref), n_components=5, scale=scale)
    r_coord, r_eig = _read(ref, coord), _read(ref, eig)
    assert list(scores.index) == list(r_coord.index)
    for j in range(5):
        ours, theirs = scores.iloc[:, j].to_numpy(), r_coord.iloc[:, j].to_numpy()
        sign = np.sign(ours @ theirs)
        np.testing.assert_allclose(sign * ours, theirs, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(100 * share.to_numpy(), r_eig["percentage of variance"].to_numpy()[:5], rtol=1e-8)


def test_scaling_changes_the_answer(ref):
    """scale=False is a different PCA (the unscaled one of prcomp): the scaled golden must not match it."""
    _, share = pca_scaled(_voom(ref), n_components=5, scale=False)
    r_eig = _read(ref, "eig.tsv")
    assert abs(100 * share.iloc[0] - r_eig["percentage of variance"].iloc[0]) > 0.5


def test_bad_input():
    with pytest.raises(InputError, match="at least 3 samples"):
        pca_scaled(pd.DataFrame(np.ones((5, 2))))
    with pytest.raises(InputError, match="missing"):
        pca_scaled(pd.DataFrame([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]]))


def test_ellipse_matches_ggplot2(ref):
    """On R's own scores (no sign question), point for point: 52 points per group, CR and NR."""
    coord = _read(ref, "ind_coord.tsv")
    groups = pd.read_csv(ref / "fixture" / "samples_nobatch.csv", index_col=0).loc[coord.index, "response"]
    gold = pd.read_csv(ref / GOLD / "ellipse_norm95.tsv", sep="\t")
    rings = group_ellipses(coord.rename(columns={"Dim.1": "PC1", "Dim.2": "PC2"}), groups)
    assert set(rings) == set(gold["group"]) == {"CR", "NR"}
    for g, ring in rings.items():
        theirs = gold[gold["group"] == g].sort_values("point")[["x", "y"]].to_numpy()
        assert ring.shape == theirs.shape == (52, 2)
        np.testing.assert_allclose(ring, theirs, rtol=1e-10, atol=1e-10)


def test_ellipse_is_not_a_confidence_ellipse_of_the_mean(ref):
    """The golden is a concentration ellipse: shrinking it by sqrt(n) (a confidence ellipse of the
    mean, factoextra's "confidence" type) or using level 0.68 must not match it."""
    coord = _read(ref, "ind_coord.tsv")
    groups = pd.read_csv(ref / "fixture" / "samples_nobatch.csv", index_col=0).loc[coord.index, "response"]
    gold = pd.read_csv(ref / GOLD / "ellipse_norm95.tsv", sep="\t")
    pts = coord.loc[groups == "CR", ["Dim.1", "Dim.2"]].to_numpy()
    theirs = gold[gold["group"] == "CR"].sort_values("point")[["x", "y"]].to_numpy()
    centre = pts.mean(axis=0)
    shrunk = centre + (group_ellipse(pts) - centre) / np.sqrt(len(pts))
    assert np.abs(shrunk - theirs).max() > 1.0
    assert np.abs(group_ellipse(pts, level=0.68) - theirs).max() > 1.0


def test_group_ellipse_holds_about_95_percent_over_seeds():
    """A property in expectation: over 200 seeds of 30 normal points, the 95% ellipse holds on
    average 91-99% of fresh points from the same distribution (not one hand-picked seed)."""
    shares = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        mix = np.array([[3.0, 0.0], [1.2, 1.0]])
        pts = rng.normal(size=(30, 2)) @ mix + [5.0, -2.0]
        fresh = rng.normal(size=(400, 2)) @ mix + [5.0, -2.0]
        ring = group_ellipse(pts)
        np.testing.assert_allclose(ring[0], ring[-1], atol=1e-12)  # closed
        shares.append(Path(ring).contains_points(fresh).mean())
    assert 0.91 < np.mean(shares) < 0.99


def test_no_ellipse_where_ggplot2_draws_none():
    rng = np.random.default_rng(3)
    assert group_ellipse(rng.normal(size=(3, 2))) is None  # ggplot2: "Too few points"
    assert group_ellipse(rng.normal(size=(4, 2))) is not None
    line = np.column_stack([np.arange(6.0), 2 * np.arange(6.0)])
    assert group_ellipse(line) is None  # singular covariance
    with pytest.raises(InputError, match="n x 2"):
        group_ellipse(np.ones((5, 3)))
    with pytest.raises(InputError, match="level"):
        group_ellipse(rng.normal(size=(5, 2)), level=95)


@pytest.mark.parametrize("scale", [True, False])
def test_many_samples_gram_path_equals_the_svd_path(monkeypatch, scale):
    """At 150 samples pca_scaled goes through the Gram matrix; scores, shares and signs equal the SVD's."""
    from helpers.methods import pca as P

    rng = np.random.default_rng(11)
    latent = rng.normal(size=(150, 4)) * np.array([9.0, 6.0, 4.0, 2.5])
    E = pd.DataFrame((latent @ rng.normal(size=(4, 700)) + rng.normal(size=(150, 700))).T + 5.0)
    fast_scores, fast_share = pca_scaled(E, n_components=5, scale=scale)
    monkeypatch.setattr(P, "GRAM_MIN_SAMPLES", 10**9)
    ref_scores, ref_share = pca_scaled(E, n_components=5, scale=scale)
    np.testing.assert_allclose(fast_scores.to_numpy(), ref_scores.to_numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fast_share.to_numpy(), ref_share.to_numpy(), rtol=1e-10)
