"""The DEG heatmap (Fig. 2B) at many samples: above MAX_SAMPLE_LABELS columns the sample labels
give way to a count (1,000 overprinted labels took most of chapter 04's figure time)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.cluster.hierarchy import leaves_list  # noqa: E402

from helpers.analysis import structure as st  # noqa: E402
from helpers.viz import figures  # noqa: E402


def _z_and_samples(n_samples, n_genes=30, seed=0):
    rng = np.random.default_rng(seed)
    cols = [f"S{j:04d}" for j in range(n_samples)]
    resp = np.where(np.arange(n_samples) % 3 == 0, "NR", "CR")
    x = rng.normal(size=(n_genes, n_samples)) + np.where(resp == "CR", 1.0, 0.0)
    z = st.zscore_rows(pd.DataFrame(x, index=[f"g{i}" for i in range(n_genes)], columns=cols))
    samples = pd.DataFrame({"response": resp, "cohort": np.where(np.arange(n_samples) % 5 == 0, "B", "A")}, index=cols)
    return z, samples


def _heat(fig, z):
    """The heatmap's axes: x over the samples, y over the genes (the colour bars span 2 rows)."""
    return next(a for a in fig.axes if a.get_xlim() == (0.0, z.shape[1]) and sorted(a.get_ylim()) == [0.0, len(z)])


@pytest.mark.parametrize("n", [figures.MAX_SAMPLE_LABELS, figures.MAX_SAMPLE_LABELS + 1, 300])
def test_sample_labels_up_to_the_limit_then_a_count(n):
    z, samples = _z_and_samples(n)
    Z = st.cluster_samples(z)
    fig = figures.deg_heatmap(z, samples, Z_samples=Z, Z_genes=st.cluster_genes(z))
    heat = _heat(fig, z)
    labels = [t.get_text() for t in heat.get_xticklabels()]
    if n <= figures.MAX_SAMPLE_LABELS:
        assert labels == list(z.columns[leaves_list(Z)])
        assert heat.get_xlabel() == ""
    else:
        assert all(t == "" for t in labels)  # no sample labels
        assert heat.get_xlabel() == f"{n} samples (too many to label)"
    plt.close(fig)
