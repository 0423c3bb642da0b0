"""The cache of costly steps (helpers.engine.memo): exact round trips, content keys, misses
where an input or the code changed, atomic and bounded storage."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from helpers.engine import memo


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HELPERS_CACHE", raising=False)
    monkeypatch.setattr(memo, "_code", "code-A")
    return tmp_path / "cache"


def counted(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def awkward_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1 / 3, np.nan, np.inf, -0.0, 5e-324],
            "n": np.array([1, -2, 3, 2**40, 0], dtype=np.int64),
            "k": np.array([1, 2, 3, 4, 5], dtype=np.int32),
            "ok": [True, False, True, True, False],
            "gene": ["A", "B;C", "<b>", "", "é"],
            "edge": [["A", "B"], ["C", "D"], [], ["E"], ["F", "G"]],
        },
        index=pd.Index(["g1", "g2", "g3", "g4", "g5"], name="pathway"),
    )


def test_values_round_trip_bit_for_bit(cache):
    df = awkward_frame()
    value = {
        "table": df,
        "ranged": df.reset_index(),
        "series": pd.Series([0.1, 0.2], index=["a", "b"], name="stat"),
        "matrix": np.arange(6, dtype=float).reshape(2, 3) / 7,
        "nested": ({"a": [1, 2.5, None]}, "s", np.float64(-np.inf), np.int64(7)),
    }
    compute, calls = counted(value)
    first = memo.cached("step", {"k": 1}, compute)
    again = memo.cached("step", {"k": 1}, compute)
    assert calls == [1]  # the second call is a hit
    assert first is value
    pd.testing.assert_frame_equal(again["table"], df, check_exact=True)
    pd.testing.assert_frame_equal(again["ranged"], df.reset_index(), check_exact=True)
    assert isinstance(again["ranged"].index, pd.RangeIndex)
    pd.testing.assert_series_equal(again["series"], value["series"], check_exact=True)
    assert again["matrix"].shape == (2, 3) and again["matrix"].tobytes() == value["matrix"].tobytes()
    assert np.signbit(again["table"]["x"].iloc[3])  # -0.0 keeps its sign
    assert again["table"]["x"].iloc[4] == 5e-324
    assert again["table"]["edge"].iloc[0] == ["A", "B"] and again["table"]["edge"].iloc[2] == []
    assert again["nested"][0] == {"a": [1, 2.5, None]} and again["nested"][2] == -np.inf


def test_a_changed_input_or_code_is_a_miss(cache, monkeypatch):
    x = np.linspace(0, 1, 50)
    compute, calls = counted(1.0)
    memo.cached("step", {"x": x, "seed": 1}, compute)
    memo.cached("step", {"x": x.copy(), "seed": 1}, compute)  # equal content: a hit
    assert len(calls) == 1
    y = x.copy()
    y[7] = np.nextafter(y[7], 2)  # one bit
    memo.cached("step", {"x": y, "seed": 1}, compute)
    memo.cached("step", {"x": x, "seed": 2}, compute)
    memo.cached("other_step", {"x": x, "seed": 1}, compute)
    assert len(calls) == 4
    monkeypatch.setattr(memo, "_code", "code-B")  # an edit of the package
    memo.cached("step", {"x": x, "seed": 1}, compute)
    assert len(calls) == 5
    # the old version's entries are gone from this step (never asked for again), the other step's stay
    assert [p.name for p in (cache / "step").iterdir()] == ["code-B"[:16]]
    assert (cache / "other_step" / "code-A").is_dir()


def test_fingerprint_ignores_memory_layout_not_values():
    a = np.random.default_rng(0).normal(size=(30, 7))
    assert memo.fingerprint(a) == memo.fingerprint(np.asfortranarray(a))
    assert memo.fingerprint(a) != memo.fingerprint(a.T)
    df = pd.DataFrame(a, columns=[f"c{i}" for i in range(7)])
    assert memo.fingerprint(df) == memo.fingerprint(df.copy())
    assert memo.fingerprint(df) != memo.fingerprint(df.rename(columns={"c0": "z"}))
    assert memo.fingerprint({"a": 1, "b": 2}) == memo.fingerprint({"b": 2, "a": 1})
    assert memo.fingerprint(1) != memo.fingerprint(1.0) != memo.fingerprint("1")
    with pytest.raises(TypeError, match="cannot fingerprint"):
        memo.fingerprint(object())


def test_off_computes_every_time_and_writes_nothing(cache, monkeypatch):
    monkeypatch.setenv("HELPERS_CACHE", "off")
    compute, calls = counted(2)
    memo.cached("step", 1, compute)
    memo.cached("step", 1, compute)
    assert len(calls) == 2 and not cache.exists()


def test_what_cannot_be_stored_fails_loudly_and_leaves_nothing(cache):
    with pytest.raises(TypeError, match="cannot store a object"):
        memo.cached("step", 1, lambda: {"x": object()})
    with pytest.raises(TypeError, match="dtype category"):
        memo.cached("step", 2, lambda: pd.DataFrame({"c": pd.Categorical(["a"])}))
    assert not list(cache.rglob("*.json"))
    with pytest.raises(ValueError, match="step names"):
        memo.cached("../escape", 1, lambda: 1)


def test_a_damaged_entry_is_recomputed_and_rewritten(cache):
    compute, calls = counted([1, 2])
    memo.cached("step", "k", compute)
    (entry,) = (cache / "step").rglob("*.json")
    entry.write_text('{"format": 1, "value": [1, ')  # as if cut short by hand
    assert memo.cached("step", "k", compute) == [1, 2] and len(calls) == 2
    assert memo.cached("step", "k", compute) == [1, 2] and len(calls) == 2
    assert not list((cache / "step").rglob("*.tmp"))


def test_bounded_least_recently_used_go_first(cache, monkeypatch):
    monkeypatch.setattr(memo, "MAX_ENTRIES", 3)
    for i in range(3):
        memo.cached("step", i, lambda i=i: i)
    for i in range(3):  # distinct, increasing times whatever the clock's resolution
        os.utime(memo._entry("step", i), ns=(time.time_ns() - 10**9 * (10 - i),) * 2)
    compute0, calls0 = counted(0)
    memo.cached("step", 0, compute0)  # a hit: entry 0 becomes the most recent
    assert calls0 == []
    memo.cached("step", 3, lambda: 3)  # a fourth entry pushes out the least recently used (1)
    assert len(list((cache / "step").rglob("*.json"))) == 3
    compute1, calls1 = counted(1)
    memo.cached("step", 1, compute1)
    assert calls1 == [1]
    compute0b, calls0b = counted(0)
    memo.cached("step", 0, compute0b)
    assert calls0b == []  # still there
