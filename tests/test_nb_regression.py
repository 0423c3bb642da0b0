"""Regression test of what readers get: every executed test-profile notebook of a full run
(the shared ``built_book`` session fixture) against a stored copy in ``tests/data/executed/``.

pytest-notebook does the comparison: the notebooks are diffed cell by cell with its nbdime-based
diff, after its regex replacements, and filtered by its ``diff_ignore`` paths, all configured on
one :class:`pytest_notebook.nb_regression.NBRegressionFixture`. We do not call
``NBRegressionFixture.check``, which *re-executes* the stored notebook and compares it with
itself: that would cost a second run of the book and miss changes of the notebook sources. Here
the runner's own output (injected parameters, "Reproduce this page" cell, stable cell ids) is
compared with the stored output of the same chapter.

What is compared (stable on one platform and lock file): the cells and their order, cell ids
and tags, every source, every text output (glued numbers, tables as text and HTML, Markdown),
execution counts, notebook metadata. What is ignored (volatile):

- images (PNG and SVG), shown or glued (a glued figure is stored under
  ``application/papermill.record/image/png``): font rendering varies with the freetype build and
  anti-aliased pixels with the last bit of a coordinate; the figures' numbers are checked through
  their source tables and the figure tests (tests/test_viz.py);
- digits of a float beyond the 10th decimal in text outputs: another CPU (its SIMD code paths in
  BLAS and libm) changes the last bit of a silhouette or a p-value, ``0.512993228838598`` on one
  machine and ``0.5129932288385978`` on another; both sides are cut after 10 decimals before
  diffing, so a change of 1e-10 or more is still seen;
- the Python patch version in the notebook metadata;
- a pandas Styler's random table id (``T_xxxxx`` in HTML tables not made by ``show``) and an
  object's memory address in a text repr (``<... Styler at 0x7f...>``): replaced before diffing;
- all outputs of the pages that describe the run itself: 11_reproducibility (git revision,
  timings, checksums, versions) and 12_benchmarks (``benchmarks/results.json`` of this machine);
- the id of papermill's injected-parameters cell, which papermill draws at random each run
  (the cell's source, the effective parameters, is compared).

The stored copies omit what is ignored (images, those two pages' outputs), which keeps them small.

Refreshing the stored copies after an intended change (then review ``git diff tests/data/executed``)::

    NB_REGRESSION_UPDATE=1 .venv/bin/python -m pytest tests/test_nb_regression.py -m slow
"""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import ROOT
from pytest_notebook.diffing import diff_notebooks, diff_to_string, filter_diff
from pytest_notebook.nb_regression import NBRegressionError, NBRegressionFixture, regex_replace_nb

from helpers.engine.registry import steps

STORED = ROOT / "tests" / "data" / "executed"
UPDATE = os.environ.get("NB_REGRESSION_UPDATE") == "1"
STEMS = [s.stem for s in steps()]

IMAGES = ("image/png", "image/svg+xml", "image/jpeg")
IMAGES = IMAGES + tuple(f"application/papermill.record/{m}" for m in IMAGES)  # glued figures
IGNORE = tuple(f"/cells/*/outputs/*/data/{m}" for m in IMAGES) + (
    "/cells/*/outputs/*/traceback",
    "/metadata/language_info/version",
)
REPLACE = (
    ("/cells/*/outputs", r"\bT_[0-9a-f]{5}(?=[_\s\"'])", "T_styler"),  # a Styler's random table id
    ("/cells/*/outputs", r" at 0x[0-9a-f]+>", " at 0x...>"),  # an object's address in its repr
    ("/cells/*/outputs", r"(?<![\w.])(\d+\.\d{10})\d+", r"\1"),  # a float's last bits (see above)
)
#: pages about the run itself: their outputs are not compared (nor stored)
RUN_PAGES = ("11_reproducibility", "12_benchmarks")
PLACEHOLDER = "(volatile: not stored, not compared; see tests/test_nb_regression.py)"


def fixture_for(stem: str) -> NBRegressionFixture:
    """The pytest-notebook configuration of one chapter's comparison."""
    ignore = IGNORE + (("/cells/*/outputs",) if stem in RUN_PAGES else ())
    return NBRegressionFixture(
        exec_notebook=False, diff_ignore=ignore, diff_replace=REPLACE, diff_use_color=False, force_regen=UPDATE
    )


def storable(nb: nbformat.NotebookNode, stem: str) -> nbformat.NotebookNode:
    """``nb`` without what the comparison ignores (images; all outputs of the run pages), and
    with the random id of papermill's injected-parameters cell replaced by a fixed one."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives the injected cell a random id
        if cell.cell_type != "code":
            continue
        if stem in RUN_PAGES:
            cell.outputs = []
            continue
        for out in cell.get("outputs", []):
            for m in IMAGES:
                if m in out.get("data", {}):
                    out["data"][m] = PLACEHOLDER
    return nb


def compare(fixture: NBRegressionFixture, stored: nbformat.NotebookNode, fresh: nbformat.NotebookNode) -> str:
    """The filtered pytest-notebook diff of two notebooks, as text ("" when they agree). Both
    sides should be :func:`storable`: a cell whose image differs entirely may be diffed as a
    removed and an inserted cell, which no ignore path can filter."""
    a = regex_replace_nb(stored, fixture.diff_replace)
    b = regex_replace_nb(fresh, fixture.diff_replace)
    diff = filter_diff(diff_notebooks(a, b), list(fixture.diff_ignore))
    return diff_to_string(a, diff, use_color=fixture.diff_use_color) if diff else ""


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_executed_notebook_matches_stored_copy(built_book, stem):
    dest, _ = built_book
    fresh = nbformat.read(dest / "executed" / f"{stem}.ipynb", as_version=4)
    path = STORED / f"{stem}.ipynb"
    fixture = fixture_for(stem)
    if fixture.force_regen:
        STORED.mkdir(parents=True, exist_ok=True)
        nbformat.write(storable(fresh, stem), path)
    if not path.exists():
        pytest.fail(f"no stored copy {path.relative_to(ROOT)}: run NB_REGRESSION_UPDATE=1 pytest {__file__} -m slow")
    diff = compare(fixture, nbformat.read(path, as_version=4), storable(fresh, stem))
    if diff:
        raise NBRegressionError(
            f"{stem}: the executed notebook differs from {path.relative_to(ROOT)} "
            f"(refresh with NB_REGRESSION_UPDATE=1 if intended):\n{diff}"
        )


def test_no_stored_copy_of_a_chapter_that_is_gone():
    stored = sorted(p.stem for p in STORED.glob("*.ipynb"))
    assert set(stored) <= set(STEMS), sorted(set(stored) - set(STEMS))


def test_comparison_sees_a_changed_number_and_ignores_what_is_volatile():
    """The comparison must fail on a changed value and pass on the volatile fields."""

    def nb(value, png="AAAA", uid="T_1a2b3", version="3.11.4", address="0x7fd5b8191f90"):
        cell = nbformat.v4.new_code_cell(
            "x",
            id="code",
            execution_count=1,
            outputs=[
                nbformat.v4.new_output("display_data", data={"text/plain": value, "image/png": png}),
                nbformat.v4.new_output(
                    "display_data", data={"text/plain": f"<pandas.io.formats.style.Styler at {address}>"}
                ),
                nbformat.v4.new_output(
                    "execute_result",
                    data={"text/html": f'<table id="{uid}_"><td>{value}</td></table>'},
                    execution_count=1,
                ),
            ],
        )
        out = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t", id="title"), cell])
        out.metadata["language_info"] = {"name": "python", "version": version}
        return out

    fx = fixture_for("05_go")
    assert (
        compare(fx, nb("359"), nb("359", png="BBBB", uid="T_9f8e7", version="3.11.9", address="0x7f6716df7b90")) == ""
    )
    assert "358" in compare(fx, nb("359"), nb("358"))
    assert compare(fx, storable(nb("359"), "05_go"), nb("359")) == ""  # stored copies omit images
    run_page = fixture_for("11_reproducibility")
    assert compare(run_page, nb("run 1"), nb("run 2")) == ""
    assert compare(run_page, storable(nb("run 1"), "11_reproducibility"), nb("run 2")) == ""
    injected = nb("359")
    injected.cells[1].metadata["tags"] = ["injected-parameters"]
    other = nbformat.from_dict(injected)
    other.cells[1].id = "a1b2c3d4"
    assert compare(fx, storable(injected, "05_go"), storable(other, "05_go")) == ""
    assert compare(fx, injected, other) != ""  # the id is normalised by storable(), not ignored
    # a glued figure's bytes are volatile too; the float's last bits are, a change >= 1e-10 is not
    glued = nb("359")
    glued.cells[1].outputs[0]["data"] = {"application/papermill.record/image/png": "AAAA", "text/plain": "f"}
    other = nbformat.from_dict(glued)
    other.cells[1].outputs[0]["data"]["application/papermill.record/image/png"] = "BBBB"
    assert compare(fx, glued, other) == ""
    assert compare(fx, storable(glued, "05_go"), other) == ""
    assert compare(fx, nb("p 0.512993228838598"), nb("p 0.5129932288385978")) == ""
    assert "0.5129932289" in compare(fx, nb("p 0.512993228838598"), nb("p 0.512993228938598"))
    assert "1.5" in compare(fx, nb("s 1.5"), nb("s 1.25"))  # short floats are compared as they are
    changed = nb("359")
    changed.cells[1].source = "y"
    assert compare(run_page, nb("359"), changed) != ""  # sources of the run pages are still compared
