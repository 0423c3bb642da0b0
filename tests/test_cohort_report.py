"""Chapter 01's reports: the ID-mapping table of every kind of cohort, sample QC, the library-size figure."""

import shutil
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from helpers.data import cohort as C  # noqa: E402
from helpers.data.cohort_report import DROPPED_STEP, SHARED_STEP, id_mapping_report, sample_qc  # noqa: E402
from helpers.viz.figures_cohort import library_sizes  # noqa: E402
from helpers.viz.style import CR_COLOR, NR_COLOR  # noqa: E402

FMT = Path(__file__).resolve().parent / "data" / "formats"
SMALL = {"min_genes": 1, "min_per_class": 2}


def _raw_dir(tmp_path):
    raw = tmp_path / "raw"
    (raw / "GSE153670").mkdir(parents=True)
    shutil.copy(FMT / "GSE000001_raw_counts.txt.gz", raw / "GSE153670" / "GSE153670_raw_counts.txt.gz")
    shutil.copy(FMT / "GSE000001_series_matrix.txt.gz", raw / "GSE153670" / "GSE153670_series_matrix.txt.gz")
    shutil.copytree(FMT / "htseq", raw / "PRJCA000750" / "htseq")
    shutil.copy(FMT / "htseq_samples.tsv", raw / "PRJCA000750" / "samples.tsv")
    return raw


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    raw = _raw_dir(tmp_path_factory.mktemp("real"))
    return C.build_cohort(
        {"dataset": "real", "real": {"raw_dir": str(raw), "gse_response_col": "best_response"}}, **SMALL
    )


def test_real_cohort_has_a_mapping_report_per_dataset(real):
    """The defect: chapter 01 looked for meta['harmonize'], which a combined cohort does not have,
    and printed 'nothing to map' on real data. The report lives in the parts and the join."""
    assert "harmonize" not in real.meta  # what the old chapter read: absent for combined cohorts
    rep = id_mapping_report(real.meta)
    assert rep is not None
    assert list(rep.columns) == ["step", "GSE153670", "PRJCA000750"]
    steps = rep.set_index("step")
    assert steps.loc["identifiers without a symbol (dropped)", "GSE153670"] == "1"
    assert steps.loc["duplicated symbols merged", "GSE153670"] == "1"
    assert steps.loc[SHARED_STEP, "GSE153670"] == "28" == steps.loc[SHARED_STEP, "PRJCA000750"]
    parts = {p["name"]: p for p in real.meta["parts"]}
    for name in ("GSE153670", "PRJCA000750"):
        n_out = parts[name]["harmonize"]["n_output"]
        assert steps.loc["genes after mapping", name] == f"{n_out:,}"
        assert steps.loc[DROPPED_STEP, name] == f"{n_out - 28:,}"


def test_single_table_and_twin():
    rep = id_mapping_report(
        {"name": "mine", "harmonize": {"id_type": "symbol", "n_input": 1200, "n_symbols_updated": 3, "n_output": 1190}}
    )
    assert list(rep.columns) == ["step", "mine"]
    assert rep.set_index("step").loc["rows in the table", "mine"] == "1,200"
    assert SHARED_STEP not in set(rep["step"])  # one table: no join
    assert id_mapping_report({"dataset": "twin", "seed": 1}) is None
    assert id_mapping_report({}) is None


def test_sample_qc_and_library_figure():
    counts = pd.DataFrame({"a": [10, 0, 5], "b": [1, 1, 1], "c": [100, 50, 0]}, index=["g1", "g2", "g3"])
    samples = pd.DataFrame({"cohort": ["x", "x", "y"], "response": ["NR", "CR", "CR"]}, index=["a", "b", "c"])
    qc = sample_qc(counts, samples)
    assert qc["sample_id"].tolist() == ["a", "b", "c"]
    assert qc["library_size_millions"].tolist() == pytest.approx([15e-6, 3e-6, 150e-6])
    assert qc["genes_detected"].tolist() == [2, 3, 2]
    fig = library_sizes(qc)
    ax_lib, ax_det = fig.axes[:2]
    for ax, col in ((ax_lib, "library_size_millions"), (ax_det, "genes_detected")):
        bars = ax.patches
        assert len(bars) == 3
        # sorted by response (CR first), then size: b (CR, 3), c (CR, 150), a (NR, 15)
        assert [b.get_height() for b in bars] == pytest.approx(
            qc.set_index("sample_id").loc[["b", "c", "a"], col].tolist()
        )
        assert [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars] == [
            CR_COLOR.lower(),
            CR_COLOR.lower(),
            NR_COLOR.lower(),
        ]
    assert [t.get_text() for t in ax_det.get_legend().get_texts()] == ["CR", "NR"]
    matplotlib.pyplot.close(fig)
