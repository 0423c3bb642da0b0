"""Search the twin's design: under which settings do the paper's own procedures print the paper's
statistics (DEG counts 57 up / 302 down, PAM keeping the 14 genes, LOOCV 28/31 with all errors
among non-responders)? Writes ``data/twin/search.tsv`` (one row per setting x seed; see
``data/twin/README.md``), read by chapters 01 and 13.

Every setting is a set of overrides of the twin's defaults (``config/params.yml``,
``notebooks.01_cohort.simulate``), dotted keys (``signature.delta``); ``programs.KEY`` sets KEY
for every programme. Twin ``seed`` is drawn with ``simulate_cohort(..., seed=seed)``.

Stages (run in this order; each is cheap on 2 cores, about 3-7 s per twin):

  pam     the classifier only (chapter 08's steps: log-CPM, pamr fit, LOOCV over the grid, the
          largest threshold with the fewest errors), 4 seeds per setting: the threshold Delta x
          the signature's co-variation, then the activity spread x the NR heterogeneity.
  deg     DE only (limma-voom, p <= 0.01, |FC| >= 1.5), 3 seeds per setting: the background's
          variance quantile, size and effects against the DEG counts.
  verify  both, the defaults on 20 seeds and the main alternatives (the old twin with Delta = 0,
          independent signature genes, background among all genes, Delta one step either side)
          on 5 seeds.

  .venv/bin/python scripts/search_twin.py                 # all stages -> data/twin/search.tsv
  .venv/bin/python scripts/search_twin.py --stage verify  # one stage

A setting x seed already in the output is skipped, so a stopped run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
from pathlib import Path

import pandas as pd

from helpers.analysis import twins
from helpers.data import twin as T
from helpers.engine import paths

STAGES = ("pam", "deg", "verify")
SEEDS = {"pam": range(1, 5), "deg": range(1, 4), "verify": range(1, 6)}
VERIFY_DEFAULT_SEEDS = range(1, 21)


def grid(stage: str) -> list[dict]:
    """The settings of a stage (override dicts; ``{}`` is the defaults)."""
    if stage == "pam":
        out = [
            {"signature.delta": d, "signature.co_variation": r}
            for d, r in itertools.product([2.5, 2.75, 3.0, 3.25, 3.5], [0.0, 0.25, 0.4, 0.6])
        ]
        out += [
            {"activity.within_class_sd": k, "activity.nr_sd_ratio": q}
            for k, q in itertools.product([0.0, 0.25, 0.5, 0.75], [1.0, 1.5, 2.0, 2.5])
        ]
        return out
    if stage == "deg":
        out = [
            {"background.max_sd_quantile": q, "background.n_down": n}
            for q, n in itertools.product([0.25, 0.5, 1.0], [420, 520, 620])
        ]
        out += [{"background.n_up": n} for n in (0, 15)]
        out += [{"activity.within_class_sd": k} for k in (0.25, 0.75)]
        return out
    return [
        {},
        {"signature.delta": 0.0},
        {"signature.co_variation": 0.0},
        {"background.max_sd_quantile": 1.0},
        {"signature.delta": 2.75},
        {"signature.delta": 3.25},
        {"activity.nr_sd_ratio": 1.0},
    ]


def apply(base: dict, setting: dict) -> dict:
    """``base`` with the dotted overrides of ``setting``, checked."""
    p = copy.deepcopy(base)
    for key, v in setting.items():
        parts = key.split(".")
        if parts[0] == "programs" and len(parts) == 2:
            for prog in p["programs"].values():
                prog[parts[1]] = v
            continue
        node = p
        for part in parts[:-1]:
            node = node[part]
        if parts[-1] not in node:
            raise SystemExit(f"unknown key {key!r}")
        node[parts[-1]] = v
    return T.check_params(p)


def evaluate(params: dict, seed: int, stage: str, universe, programs) -> dict:
    """One twin through the chapters' steps (via helpers.analysis.twins)."""
    t0 = time.perf_counter()
    counts, samples, truth = T.simulate_cohort(params, universe, programs, seed=seed)
    prep = twins.prepare(counts, samples)
    row = {"s0_planted": round(float(truth.attrs["s0"]), 4)}
    if stage in ("deg", "verify"):
        tab = twins.deg_table(prep)
        row.update(twins.deg_measures(tab))
        row.update(twins.deg_recall(tab, truth))
    if stage in ("pam", "verify"):
        row.update(twins.pam_measures(prep.logcpm, prep.labels))
        row.update(twins.published_model_measures(prep.logcpm, prep.labels))
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def run(stage: str, out: Path, universe, programs, settings=None, seeds=None) -> None:
    done = set()
    if out.exists():
        old = pd.read_csv(out, sep="\t")
        done = set(zip(old["stage"], old["setting"], old["seed"]))
    base = T.preset("default")
    for s in settings if settings is not None else grid(stage):
        key = json.dumps(s, sort_keys=True)
        params = apply(base, s)
        use = seeds if seeds is not None else (VERIFY_DEFAULT_SEEDS if stage == "verify" and not s else SEEDS[stage])
        for seed in use:
            if (stage, key, seed) in done:
                continue
            row = {
                "stage": stage,
                "setting": key,
                "seed": seed,
                **s,
                **evaluate(params, seed, stage, universe, programs),
            }
            new = pd.DataFrame([row])
            if out.exists():
                allrows = pd.concat([pd.read_csv(out, sep="\t"), new], ignore_index=True)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                allrows = new
            lead = ["stage", "setting", "seed"]
            keys = sorted(c for c in allrows.columns if "." in c)
            rest = [c for c in allrows.columns if c not in lead and c not in keys]
            tmp = out.with_suffix(".tmp")
            allrows[lead + keys + rest].to_csv(tmp, sep="\t", index=False, lineterminator="\n")
            tmp.replace(out)
            print(json.dumps(row), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Search the twin's design (writes data/twin/search.tsv).")
    ap.add_argument("--stage", choices=STAGES, action="append", help="stage(s) to run (default: all, in order)")
    ap.add_argument("--out", default=str(paths.DATA / "twin" / "search.tsv"))
    ap.add_argument("--settings", help="JSON list of override dicts instead of the stage's grid")
    ap.add_argument("--seeds", help="comma-separated seeds instead of the stage's")
    a = ap.parse_args(argv)
    universe, programs = T.default_universe(), T.load_programs()
    settings = json.loads(a.settings) if a.settings else None
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else None
    for stage in a.stage or STAGES:
        run(stage, Path(a.out), universe, programs, settings, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
