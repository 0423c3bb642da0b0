"""The benchmarks page's rules (helpers.analysis.benchmarks) and make bench's plumbing (benchmarks/run.py)."""

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers.analysis import benchmarks as bm
from helpers.engine.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench(**over):
    b = {
        "when": "2026-01-01 00:00 UTC",
        "revision": "abc123",
        "code_sha256": "x",
        "machine": {"load_average_at_start": "0.10 0.20 0.30"},
        "cold": {
            "seconds": 70.0,
            "notebook_seconds": {"01_cohort": 5.0, "08_pam": 20.0},
            "notebook_peak_rss_mb": {"01_cohort": 300.0, "08_pam": 400.0},
        },
        "warm": {"seconds": 2.5},
        "fc_min": {"seconds": 20.0},
        "scale": [
            {
                "n_samples": 31,
                "seconds": 60.0,
                "notebook_seconds": {"08_pam": 20.0, "05_go": 6.0},
                "notebook_peak_rss_mb": {"08_pam": 400.0},
            },
            {
                "n_samples": 310,
                "seconds": 110.0,
                "notebook_seconds": {"08_pam": 95.0, "05_go": 6.5},
                "notebook_peak_rss_mb": {"08_pam": 900.0},
            },
            {
                "n_samples": 1000,
                "seconds": 290.0,
                "notebook_seconds": {"08_pam": 905.0, "05_go": 7.0},
                "notebook_peak_rss_mb": {"08_pam": 2000.0},
            },
        ],
        "methods": {
            "deseq2": {
                "ours": {"wall_seconds": 4.0},
                "pydeseq2": {"wall_seconds": 60.0},
                "speedup_vs_pydeseq2_wall": 15.0,
            }
        },
    }
    b.update(over)
    return b


def test_all_goals_met():
    v = bm.verdicts(_bench())
    assert v == {k: "yes" for k in ("cold", "warm", "fc_min", "scale_310", "scale_1000", "memory", "deseq2")}


@pytest.mark.parametrize(
    "over, key",
    [
        ({"cold": {"seconds": 75.1, "notebook_seconds": {}, "notebook_peak_rss_mb": {}}}, "cold"),
        ({"warm": {"seconds": 3.2}}, "warm"),
        ({"fc_min": {"seconds": 26.0}}, "fc_min"),
        ({"methods": {"deseq2": {"speedup_vs_pydeseq2_wall": 9.9}}}, "deseq2"),
    ],
)
def test_a_missed_goal_says_no(over, key):
    assert bm.verdicts(_bench(**over))[key] == "no"


def test_memory_over_the_goal_says_no():
    b = _bench()
    b["scale"][2]["notebook_peak_rss_mb"]["08_pam"] = 3100.0
    assert bm.verdicts(b)["memory"] == "no"


def test_interrupted_scale_run_is_a_miss_only_past_the_goal():
    b = _bench()
    b["scale"][2].update(timed_out=True, cap_seconds=360.0, seconds=361.0)
    assert bm.verdicts(b)["scale_1000"] == "no"
    row = bm.goals(b).set_index("goal").loc["scale_1000"]
    assert row["met"] == "no" and "interrupted at 360 s" in row["note"] and row["missed by"].startswith("more than")
    b["scale"][2].update(cap_seconds=250.0, seconds=250.0)  # stopped before the goal: nothing is known
    assert bm.verdicts(b)["scale_1000"] == "not measured"


def test_unmeasured_runs_are_not_measured():
    b = _bench()
    for k in ("warm", "fc_min", "scale", "methods"):
        b.pop(k)
    v = bm.verdicts(b)
    assert v["cold"] == "yes"
    assert {v[k] for k in ("warm", "fc_min", "scale_310", "scale_1000", "deseq2")} == {"not measured"}


def test_goals_table_says_by_how_much():
    g = bm.goals(_bench(warm={"seconds": 6.0})).set_index("goal")
    assert g.loc["warm", "missed by"] == "2.0x the goal"
    assert g.loc["cold", "missed by"] == ""


@pytest.mark.parametrize("k, n", [(1, 31), (4, 124), (10, 310), (1000 / 31, 1000), (0.5, 17)])
def test_twin_sizes(k, n):
    assert bm.n_samples(k) == n


def test_growth_exponent():
    assert bm.growth_exponent([10, 100, 1000], [1.0, 10.0, 1000.0]) == pytest.approx(2.0)
    assert bm.growth_exponent([10, 100], [6.0, 15.0], overhead=5.0) == pytest.approx(math.log10(10.0))
    assert bm.growth_exponent([10], [1.0]) is None
    assert bm.growth_exponent([10, 100], [4.0, 4.5], overhead=5.0) is None  # nothing left above the overhead


def test_complexity_agrees_and_disagrees():
    cx = bm.complexity(_bench(), overhead=5.0).set_index("notebook")
    assert cx.loc["08_pam", "agrees"] == "yes"  # 90 -> 900 s above the overhead over 310 -> 1000 samples: exponent 1.97
    assert cx.loc["05_go", "agrees"] == "yes"  # stated 0: 6 -> 7 s
    assert cx.loc["03_de", "agrees"] == "not measured"
    b = _bench()
    b["scale"][2]["notebook_seconds"]["05_go"] = 20.0  # grew more than twofold although stated O(S)
    b["scale"][2]["notebook_seconds"]["08_pam"] = 190.0  # 90 -> 185 above the overhead: exponent 0.6, stated 2
    cx = bm.complexity(b, overhead=5.0).set_index("notebook")
    assert cx.loc["05_go", "agrees"] == "no" and cx.loc["08_pam", "agrees"] == "no"


def test_complexity_without_a_bench_is_not_measured():
    cx = bm.complexity(None)
    assert set(cx["agrees"]) == {"not measured"} and set(bm.COMPLEXITY) == set(cx["notebook"])


def test_freshness_current_and_older(tmp_path):
    (tmp_path / "src" / "helpers").mkdir(parents=True)
    (tmp_path / "src" / "helpers" / "a.py").write_text("x = 1\n")
    b = _bench(code_sha256=bm.code_fingerprint(tmp_path))
    f = bm.freshness(b, tmp_path, "def456")
    assert f["current"] and "same code" in f["text"] and "abc123" in f["text"] and "def456" in f["text"]
    (tmp_path / "src" / "helpers" / "a.py").write_text("x = 2\n")
    f = bm.freshness(b, tmp_path, "def456")
    assert not f["current"] and "older than this book" in f["text"] and "2026-01-01" in f["text"]


def test_code_fingerprint_ignores_results_and_caches(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "run.py").write_text("pass\n")
    h = bm.code_fingerprint(tmp_path)
    (tmp_path / "benchmarks" / "results.json").write_text("{}")
    (tmp_path / "src" / "helpers" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "helpers" / "__pycache__" / "x.py").write_text("")
    assert bm.code_fingerprint(tmp_path) == h


def test_load(tmp_path):
    assert bm.load(tmp_path / "none.json") is None
    (tmp_path / "b.json").write_text("{broken")
    with pytest.raises(InputError, match="b.json"):
        bm.load(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"when": "x"}))
    assert bm.load(tmp_path / "c.json") is None  # no cold run


def test_method_ratios():
    r = bm.method_ratios(_bench(), {"elapsed_min": 156.0}).set_index("Python package")
    assert r.loc["pydeseq2", "times faster than the package"] == 15.0
    assert r.loc["pydeseq2", "times faster than R"] == 39.0
    r = bm.method_ratios(_bench(methods={}), None)
    assert r["ours (s)"].isna().all()


def test_time_against_n_marks_unfinished_chapters():
    b = _bench()
    del b["scale"][2]["notebook_seconds"]["05_go"]
    wide = bm.time_against_n(b)
    assert list(wide.index) == [31, 310, 1000] and pd.isna(wide.loc[1000, "05_go"])


def test_time_against_n_figure():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.viz.bench import time_against_n

    fig = time_against_n(bm.time_against_n(_bench()))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 2 + 2  # two chapters, two guides


def test_bench_scale_values_and_phases():
    from benchmarks import run

    assert run._scale_value("1000/31") == pytest.approx(1000 / 31)
    assert run._scale_value("4") == 4.0
    assert [bm.n_samples(run._scale_value(s)) for s in run.SCALES] == [31, 124, 310, 1000]
    with pytest.raises(SystemExit):
        run.main(["--skip", "nothing_like_this"])


def test_a_failed_run_is_not_measured_and_says_why():
    b = _bench(warm={"seconds": 1.0, "failed": "06_gsea: cell 5 raised TypeError"})
    g = bm.goals(b).set_index("goal")
    assert g.loc["warm", "met"] == "not measured" and "06_gsea" in g.loc["warm", "note"]


def test_time_against_n_without_scale_runs():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.viz.bench import time_against_n

    assert bm.time_against_n(None).empty and bm.time_against_n({"cold": {}}).empty
    fig = time_against_n(bm.time_against_n(None))
    assert "make bench" in fig.axes[0].texts[0].get_text()


def test_phases_table():
    b = _bench()
    b["cold"].update(cpu_seconds=120.0, load_before="0.1 0.2 0.3", executed=["01_cohort", "08_pam"])
    b["scale"][2].update(timed_out=True)
    b["warm"]["failed"] = "boom"
    t = bm.phases(b).set_index("run")
    assert t.loc["cold", "CPU (s)"] == 120.0 and t.loc["cold", "chapters executed"] == 2
    assert t.loc["scale n=1000", "ended"] == "interrupted at the cap"
    assert t.loc["warm", "ended"] == "failed: boom" and t.loc["cold", "ended"] == "completed"
    assert "book" not in t.index  # not run, no row


def test_kernel_phase_rows_and_speedup():
    b = _bench()
    assert bm.kernel_speedup(b) is None and "kernels: warm" not in set(bm.phases(b)["run"])
    assert bm.kernel_text(b).startswith("Not measured")
    same = ["10_scorecard", "02_pca"]
    b["kernels"] = {
        "fresh": {"seconds": 6.0, "cpu_seconds": 7.0, "executed": same},
        "warm": {"seconds": 2.4, "cpu_seconds": 2.0, "executed": same[::-1]},
    }
    t = bm.phases(b).set_index("run")
    assert t.loc["kernels: fresh", "wall (s)"] == 6.0 and t.loc["kernels: warm", "CPU (s)"] == 2.0
    assert bm.kernel_speedup(b) == 2.5
    assert bm.kernel_text(b) == (
        "They re-ran 02_pca, 10_scorecard: 6.0 s with fresh kernels, 2.4 s with warm ones (2.5 times faster)."
    )
    b["kernels"]["fresh"]["executed"] = [*same, "03_de"]  # upstream re-ran in one of them: not like for like
    assert bm.kernel_speedup(b) is None and bm.kernel_text(b).startswith("Not measured")
    b["kernels"]["fresh"]["executed"] = same
    b["kernels"]["warm"]["failed"] = "10_scorecard: cell 3 raised KeyError"
    assert bm.kernel_speedup(b) is None  # a failed run measures nothing
    del b["kernels"]["warm"]
    assert bm.kernel_speedup(b) is None
