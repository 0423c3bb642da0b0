"""Command line: ``python -m helpers run|book|pdf|toc|score``.

python -m helpers run [--profile test] [--params my.yml] [--set key=value ...] [--only 03] [--force]
python -m helpers book
python -m helpers score --model published|PATH expression.tsv [-o out.tsv]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from helpers.engine.errors import InputError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebooks in order (incremental)")
    r.add_argument("--profile", default="default", help="default | test | real (see config/params.yml)")
    r.add_argument(
        "--params",
        metavar="FILE",
        default=None,
        help="a YAML file of overrides shaped like a profile (global: / notebooks:), applied after "
        "--profile and before --set; its paths may point outside the project",
    )
    r.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter: global key, or NOTEBOOK.key (repeatable)",
    )
    r.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NB",
        help="run this notebook (number or stem) and what depends on it",
    )
    r.add_argument("--force", action="store_true", help="re-execute even if nothing changed")
    r.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="notebooks run side by side when their inputs are ready (default: 2 or the CPU count)",
    )
    r.add_argument("--book", action="store_true", help="build the HTML book afterwards")
    sub.add_parser("book", help="build the HTML book from the executed notebooks")
    sub.add_parser("toc", help="write _toc.yml from the chapter registry (config/book.yml)")
    sub.add_parser("pdf", help="print the whole book to _build/pdf/book.pdf (headless Chromium)")
    s = sub.add_parser("score", help="score samples with a shrunken-centroid model")
    s.add_argument("--model", default="published", help="'published' (Table 1) or a model JSON from notebook 08")
    s.add_argument("expression", help="genes x samples table of log2 expression (TSV/CSV, gzip ok)")
    s.add_argument("-o", "--out", default=None, help="write the scores here (TSV) instead of printing them")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "run":
            from helpers.engine.config import Params, parse_set
            from helpers.engine.runner import NotebookFailed, Project, build_book, run, run_lock

            sets = parse_set(args.sets)
            if args.params:  # the file's overrides go first, so a --set of the same key wins
                sets = {**Params(Project().config).read_overrides(args.params, args.profile), **sets}
            # with --book one lock covers the run and the book: no other run slips in between
            with run_lock() if args.book else contextlib.nullcontext():
                try:
                    run(
                        profile=args.profile,
                        sets=sets,
                        only=args.only or None,
                        force=args.force,
                        jobs=max(1, args.jobs),
                    )
                except NotebookFailed as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                if args.book:
                    html = build_book()
                    print(f"book: {html}/index.html (open it in a browser: xdg-open {html}/index.html)")
        elif args.cmd == "book":
            from helpers.engine.runner import build_book

            html = build_book()
            print(f"book: {html}/index.html (open it in a browser: xdg-open {html}/index.html)")
        elif args.cmd == "pdf":
            from helpers.engine.paths import ROOT
            from helpers.engine.pdf import build_pdf
            from helpers.engine.registry import write_toc

            write_toc(ROOT)
            print(f"pdf: {build_pdf(ROOT)}")
        elif args.cmd == "toc":
            from helpers.engine.registry import write_toc

            print("_toc.yml " + ("written" if write_toc() else "already up to date"))
        elif args.cmd == "score":
            from helpers.analysis.scoring import score_cli

            return score_cli(args.model, args.expression, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
