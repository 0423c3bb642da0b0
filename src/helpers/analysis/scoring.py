"""Scoring expression files with a frozen model: ``python -m helpers score`` and the function it
calls. Split from :mod:`helpers.analysis.model` because a file's genes are matched to the model's
through the annotation (:mod:`helpers.analysis.signature`), which itself builds on the model module;
here both are imported, and neither imports this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from helpers.analysis.model import (
    _numeric_signature,
    check_log2_scale,
    check_output_path,
    load_model,
    read_expression,
    score,
)
from helpers.analysis.signature import map_model
from helpers.engine.errors import InputError
from helpers.engine.io import write_tsv

__all__ = ["score_file", "score_cli"]


def score_file(model, expression_path, out_path=None) -> pd.DataFrame:
    """Read an expression table (see :func:`read_expression`), find the model's genes in it
    through the cohort's symbol mapping, validate those rows (duplicated gene, empty/NA/
    non-numeric/infinite cell -> InputError naming the line, gene and sample), check that they
    are log2 expression (:func:`check_log2_scale`), score every sample and, if ``out_path`` is
    given, write the scores as TSV atomically (never onto the input or a file that is not a
    regular file: :func:`check_output_path`). Returns the scores.

    The model's genes are matched as chapter 09 matches them
    (:func:`helpers.analysis.signature.map_model`): by name, by the annotation's current
    symbol (the model's ``CCDC155`` is a table's ``KASH5``), or by an unambiguous previous
    symbol (a table's ``C20orf58`` is ``NKAIN4``). With genes absent, the samples are scored on
    the genes present when they pass chapter 09's partial-answer rule (at least 10 of the
    published 14, carrying at least half of the class separation; every gene of a smaller
    model); otherwise the table is refused with one line naming the absent genes. The answer
    (status, reason, which model gene was read from which row) is in ``scores.attrs["signature"]``
    and the command line prints its reason."""
    source_model = model
    model = load_model(model)
    path = Path(expression_path)
    if out_path is not None:
        inputs = [path] + (
            [Path(source_model)] if isinstance(source_model, (str, Path)) and str(source_model) != "published" else []
        )
        check_output_path(out_path, inputs, require_folder=False)
    df = read_expression(path)
    match = map_model(model, df.index)
    if not match.measured:
        raise InputError(match.reason.replace("not measured: ", "cannot score: ", 1), path=path, where="genes")
    mapped = match.model
    x = _numeric_signature(df, mapped.genes, path)
    check_log2_scale(x, path, mapped.scale)
    res = score(mapped, x, source=path)
    res.attrs["signature"] = {
        "status": match.status,
        "reason": match.reason,
        "n_present": int(match.n_present),
        "n_total": int(match.n_total),
        "genes": {r.model_gene: r.cohort_gene for r in match.table.itertuples() if r.how != "absent"},
    }
    if out_path is not None:
        write_tsv(res, out_path, index=False)
    return res


def score_cli(model: str, expression: str, out: str | None) -> int:
    """Entry point of ``python -m helpers score --model published|PATH expression.tsv [-o out.tsv]``.

    Prints the score table (TSV) to stdout, or writes it to ``out``: never onto the expression
    table or the model file, never through a symbolic link or onto a special file, and only into
    a folder that exists (:func:`check_output_path`). Returns 0; on bad input prints
    ``error: <message>`` to stderr and returns 2.
    """
    try:
        if out is not None:
            inputs = [Path(expression)] + ([Path(model)] if model != "published" else [])
            check_output_path(out, inputs, require_folder=True)
        m = load_model(model)
        res = score_file(m, expression, out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sig = res.attrs.get("signature", {})
    if sig.get("status") == "partial" or any(a != b for a, b in sig.get("genes", {}).items()):
        print(f"note: {sig['reason']}", file=sys.stderr)
    if out is None:
        sys.stdout.write(res.to_csv(sep="\t", index=False, float_format="%.10g", lineterminator="\n"))
    else:
        n_first = int((res["call"] == m.classes[0]).sum())
        print(
            f"scored {len(res)} samples with model '{m.name}' ({sig.get('n_present', len(m.genes))} of "
            f"{len(m.genes)} genes): "
            f"{n_first} {m.classes[0]}, {len(res) - n_first} other; wrote {out}",
            file=sys.stderr,
        )
    return 0
