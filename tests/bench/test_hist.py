"""bench.hist: percentiles on known data, exact merging, fixed memory, serialisation."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hist import Histogram


def exact_percentile(values: list[int], p: float) -> int:
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s)))
    return s[rank - 1]


def test_small_values_are_exact() -> None:
    h = Histogram()
    h.record_many(range(1, 101))  # 1..100, each bucket exact below 128
    assert h.value_at(50) == 50
    assert h.value_at(90) == 90
    assert h.value_at(99) == 99
    assert h.value_at(100) == 100
    assert h.min == 1 and h.max == 100 and h.count == 100
    assert h.mean == 50.5


def test_percentiles_within_relative_error_on_wide_data() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(8, 1.5)) for _ in range(50_000)]
    h = Histogram()
    h.record_many(values)
    for p in (50, 90, 99, 99.9):
        true = exact_percentile(values, p)
        assert abs(h.value_at(p) - true) <= 0.008 * true + 1, p
    summary = h.percentiles()
    assert set(summary) == {"p50", "p90", "p99", "p99_9"}


def test_known_bimodal_distribution() -> None:
    h = Histogram()
    h.record(1000, n=990)  # 1 ms
    h.record(50_000, n=10)  # 50 ms
    assert abs(h.value_at(50) - 1000) <= 8
    assert abs(h.value_at(99) - 1000) <= 8
    assert abs(h.value_at(99.9) - 50_000) <= 400
    assert h.value_at(100) == 50_000


def test_empty_histogram() -> None:
    h = Histogram()
    assert math.isnan(h.value_at(50))
    assert h.summary() == {"count": 0}


def test_memory_is_fixed() -> None:
    h = Histogram()
    size = len(h.counts)
    for v in (0, 1, 10**3, 10**6, 10**9, 10**13, 10**18):
        h.record(v)
    assert len(h.counts) == size
    assert h.max == 10**18
    assert h.value_at(100) == 10**18


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=300),
       st.lists(st.integers(0, 10**9), min_size=1, max_size=300))
def test_merge_equals_histogram_of_union(a: list[int], b: list[int]) -> None:
    ha, hb, hu = Histogram(), Histogram(), Histogram()
    ha.record_many(a)
    hb.record_many(b)
    hu.record_many(a + b)
    merged = Histogram.from_dict(ha.to_dict()).merge(Histogram.from_dict(hb.to_dict()))
    assert merged.counts == hu.counts
    assert (merged.count, merged.min, merged.max, merged.total) == (hu.count, hu.min, hu.max, hu.total)
    for p in (50, 90, 99, 99.9):
        assert merged.value_at(p) == hu.value_at(p)


def test_merge_into_empty_and_roundtrip() -> None:
    h = Histogram()
    h.record_many([5, 500, 5_000_000])
    empty = Histogram()
    empty.merge(h)
    assert empty.to_dict() == h.to_dict()
    assert Histogram.from_dict(h.to_dict()).to_dict() == h.to_dict()
