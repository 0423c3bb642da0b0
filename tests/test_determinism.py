"""Determinism (issue 9): the same inputs and seed give byte-identical files.

Each step runs twice and the files it writes are compared byte for byte; where a seed matters, a
different seed must change the result (so the test can fail). One test repeats the chain in two
fresh interpreters with different ``PYTHONHASHSEED`` values, which catches output that depends on
set or dict-of-set iteration order (notebook kernels do not share the test's hash seed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers.analysis import de, expression
from helpers.data import cohort as C  # noqa: E402
from helpers.data import genesets
from helpers.engine import io
from helpers.methods import gsea, gsva
from helpers.viz import style  # noqa: E402

TWIN = {"dataset": "twin", "simulate_preset": "test", "seed": 7}


@pytest.fixture(scope="module")
def twin():
    return C.build_cohort(TWIN)


@pytest.fixture(scope="module")
def tcell():
    return genesets.load_collection("tcell")


def _same_files(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), f"{n} differs between the two runs"
    return names


def test_twin_build_and_save_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    C.save_cohort(C.build_cohort(TWIN), a)
    C.save_cohort(C.build_cohort(TWIN), b)
    names = _same_files(a, b)  # TSVs, meta.json and the .h5ad
    assert {"counts.tsv.gz", "samples.tsv", "truth.tsv", "meta.json", "cohort.h5ad"} <= set(names)
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    # the seed matters
    c = tmp_path / "c"
    C.save_cohort(C.build_cohort({**TWIN, "seed": 8}), c)
    assert (c / "counts.tsv.gz").read_bytes() != (a / "counts.tsv.gz").read_bytes()


@pytest.mark.parametrize("method", ["limma-voom", "limma-trend"])
def test_de_table_is_byte_identical(twin, tmp_path, method):
    # DESeq2 (pydeseq2) is byte-identical too, but takes ~20 s on the test twin: checked by hand.
    paths = []
    for i in range(2):
        res = de.run_de(twin.counts.copy(), twin.samples.copy(), method=method)
        paths.append(io.write_tsv(res, tmp_path / f"de_{i}.tsv"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert len(pd.read_csv(paths[0], sep="\t")) > 100


def test_gsea_prerank_is_byte_identical_for_a_seed(twin, tcell, tmp_path):
    ranking = de.run_de(twin.counts, twin.samples)["stat"]
    out = []
    for i, seed in enumerate([11, 11, 12]):
        res = gsea.prerank(ranking, tcell, min_size=5, n_perm=200, seed=seed)
        out.append(io.write_tsv(res, tmp_path / f"gsea_{i}.tsv", index=False).read_bytes())
    assert out[0] == out[1]
    assert out[0] != out[2], "a different seed should change the permutation p-values"


def test_gsva_is_byte_identical(twin, tcell, tmp_path):
    le = expression.log_expression(twin)
    out = []
    for i in range(2):
        res = gsva.gsva(le.copy(), tcell, kcdf="Gaussian", min_size=5)
        out.append(io.write_tsv(res, tmp_path / f"gsva_{i}.tsv").read_bytes())
    assert out[0] == out[1]
    assert len(out[0]) > 1000


def _figure():
    style.use_style()
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(4, 3))
    x = rng.normal(size=50)
    ax.scatter(x, x + rng.normal(scale=0.5, size=50), c=[style.CR_COLOR] * 25 + [style.NR_COLOR] * 25, label="samples")
    ax.plot([-2, 2], [-2, 2], color=style.NS_COLOR, label="y = x")
    ax.set(xlabel="PC1 (23.4%)", ylabel="PC2 (11.0%)", title="determinism")
    ax.legend()
    return fig


def test_save_figure_svg_and_png_are_byte_identical(tmp_path):
    fig = _figure()
    a = io.save_figure(fig, tmp_path / "a" / "fig")
    b = io.save_figure(fig, tmp_path / "b" / "fig")
    plt.close(fig)
    assert a["svg"].read_bytes() == b["svg"].read_bytes()
    assert a["png"].read_bytes() == b["png"].read_bytes()
    # a freshly drawn, identical figure gives the same bytes too
    fig2 = _figure()
    c = io.save_figure(fig2, tmp_path / "c" / "fig")
    plt.close(fig2)
    assert c["svg"].read_bytes() == a["svg"].read_bytes()
    assert c["png"].read_bytes() == a["png"].read_bytes()
    svg = a["svg"].read_text()
    assert "<dc:date>" not in svg  # no timestamp in the metadata


CHAIN = r"""
import sys
from pathlib import Path
from helpers.analysis import de, expression
from helpers.data import cohort as C, genesets
from helpers.engine import io
from helpers.methods import gsea, gsva
out = Path(sys.argv[1])
coh = C.build_cohort({"dataset": "twin", "simulate_preset": "test", "seed": 7})
C.save_cohort(coh, out / "cohort")
res = de.run_de(coh.counts, coh.samples)
io.write_tsv(res, out / "de.tsv")
sets = genesets.load_collection("tcell")
io.write_tsv(gsea.prerank(res["stat"], sets, min_size=5, n_perm=200, seed=3), out / "gsea.tsv", index=False)
io.write_tsv(gsva.gsva(expression.log_expression(coh), sets, min_size=5), out / "gsva.tsv")
"""


def test_chain_is_identical_across_processes_and_hash_seeds(tmp_path):
    outs = []
    for hs in ("1", "2"):
        out = tmp_path / f"run{hs}"
        env = dict(os.environ, PYTHONHASHSEED=hs, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
        subprocess.run([sys.executable, "-c", CHAIN, str(out)], env=env, check=True, timeout=120, capture_output=True)
        outs.append(out)
    for name in ("de.tsv", "gsea.tsv", "gsva.tsv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    _same_files(outs[0] / "cohort", outs[1] / "cohort")


# ----------------------------------------------------------------------------- every download, twice

#: Result files that describe the run itself, not its inputs: they differ between two runs by design.
RUN_DESCRIPTIONS = {
    "run_log.json": "seconds and peak memory per notebook",
    "run_status.json": "the latest run's id and its start and end times (what a failed run left stale)",
    "reproducibility/execution.tsv": "seconds and peak memory per notebook",
    "reproducibility/numbers.json": "the total execution time is one of its numbers",
}


@pytest.mark.slow
def test_every_download_is_byte_identical_across_two_builds(tmp_path_factory):
    """The whole project run twice, in two fresh copies, on the hostile custom cohort of
    tests/test_hostile_book.py (the first run is the one that test builds its book from): every file a page offers
    for download (results/<item>/: tables, workbooks, figures, numbers, the cohort, models,
    results.zip) has the same bytes, and so has every executed notebook but the one that reports
    timings. Exceptions are listed in RUN_DESCRIPTIONS with the reason."""
    from test_hostile_book import hostile_run

    base = tmp_path_factory.getbasetemp()
    (a, pa), (b, pb) = hostile_run(base, "hostile"), hostile_run(base, "hostile2")
    assert pa.returncode == 0 and pb.returncode == 0, (pa.stderr[-2000:], pb.stderr[-2000:])

    def files(root: Path) -> dict:
        res = root / "results"
        return {
            p.relative_to(res).as_posix(): p
            for p in res.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(res).parts)
        }

    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    kinds = {Path(n).suffix for n in fa}
    assert {".tsv", ".xlsx", ".svg", ".png", ".json", ".zip", ".h5ad"} <= kinds, kinds
    differ = [n for n in sorted(fa) if n not in RUN_DESCRIPTIONS and fa[n].read_bytes() != fb[n].read_bytes()]
    assert not differ, differ
    assert "reproducibility/results.zip" in fa and "reproducibility/supplementary_tables.xlsx" in fa
    timed = {"11_reproducibility.ipynb"}  # its execution table
    nbs = sorted(p.name for p in (a / "executed").glob("*.ipynb"))
    assert len(nbs) >= 12
    differ = [
        n for n in nbs if n not in timed and (a / "executed" / n).read_bytes() != (b / "executed" / n).read_bytes()
    ]
    assert not differ, differ
