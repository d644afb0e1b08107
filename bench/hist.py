"""Fixed-memory log-linear latency histogram (HDR-style) that merges across processes.

Values are non-negative integers (the bench records microseconds). Below ``2**SUB_BITS`` every value has
its own bucket; above, each power-of-two range is split into ``2**(SUB_BITS-1)`` equal buckets, so a
bucket's width is at most 1/64 of its lower bound with the default ``SUB_BITS = 7``: a reported percentile
is within 0.8% of the true sample (we report the bucket's midpoint, clamped to the exact min and max).

Memory is fixed: ``2**SUB_BITS + MAX_SHIFT * 2**(SUB_BITS-1)`` counters (2,304 by default), covering values
up to 2**41 (25 days in microseconds); larger values land in the last bucket. Recording does not allocate.
Two histograms merge by adding counters, so per-process histograms serialised with ``to_dict`` combine
exactly into the histogram of the union of their samples.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

__all__ = ["Histogram"]

SUB_BITS = 7
_SUB = 1 << SUB_BITS  # exact values below this
_HALF = _SUB >> 1
MAX_SHIFT = 34
_SIZE = _SUB + MAX_SHIFT * _HALF


def _index(v: int) -> int:
    if v < _SUB:
        return v if v > 0 else 0
    shift = v.bit_length() - SUB_BITS
    if shift > MAX_SHIFT:
        return _SIZE - 1
    return _SUB + (shift - 1) * _HALF + ((v >> shift) - _HALF)


def _bounds(idx: int) -> tuple[int, int]:
    """Inclusive (lowest, highest) value of bucket ``idx``."""
    if idx < _SUB:
        return idx, idx
    shift, m = divmod(idx - _SUB, _HALF)
    shift += 1
    m += _HALF
    return m << shift, ((m + 1) << shift) - 1


class Histogram:
    """Counts of integer values in log-linear buckets plus exact count, sum, min and max."""

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts = [0] * _SIZE
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int | float, n: int = 1) -> None:
        v = int(value) if value > 0 else 0
        self.counts[_index(v)] += n
        if self.count == 0 or v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        self.count += n
        self.total += v * n

    def record_many(self, values: Iterable[int | float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: Histogram) -> Histogram:
        if other.count == 0:
            return self
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        return self

    def value_at(self, percentile: float) -> float:
        """The value at ``percentile`` (0..100): the smallest recorded value with at least that share at or below it."""
        if self.count == 0:
            return math.nan
        if percentile <= 0:
            return float(self.min)
        if percentile >= 100:
            return float(self.max)
        rank = max(1, math.ceil(percentile / 100.0 * self.count))
        seen = 0
        for idx, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= rank:
                    lo, hi = _bounds(idx)
                    mid = (lo + hi) / 2 if hi > lo else float(lo)
                    return float(min(max(mid, self.min), self.max))
        return float(self.max)  # pragma: no cover - counts and count disagree only if mutated by hand

    def percentiles(self, ps: Iterable[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
        return {_pkey(p): self.value_at(p) for p in ps}

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def buckets(self) -> list[tuple[int, int, int]]:
        """Non-empty buckets as (lowest, highest, count), for plots."""
        return [(*_bounds(i), c) for i, c in enumerate(self.counts) if c]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, sparse form; ``from_dict(to_dict())`` round-trips exactly."""
        return {
            "sub_bits": SUB_BITS,
            "count": self.count,
            "sum": self.total,
            "min": self.min,
            "max": self.max,
            "buckets": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        if data.get("sub_bits", SUB_BITS) != SUB_BITS:
            raise ValueError("histogram precision differs")
        h = cls()
        for k, c in data.get("buckets", {}).items():
            h.counts[int(k)] += int(c)
        h.count = int(data["count"])
        h.total = int(data["sum"])
        h.min = int(data["min"])
        h.max = int(data["max"])
        return h

    def summary(self, scale: float = 1.0) -> dict[str, float]:
        """count, mean, min, max and p50/p90/p99/p99.9, values multiplied by ``scale`` (e.g. 1e-3 for ms)."""
        out: dict[str, float] = {"count": self.count}
        if self.count:
            out.update(mean=self.mean * scale, min=self.min * scale, max=self.max * scale)
            out.update({k: v * scale for k, v in self.percentiles().items()})
        return out


def _pkey(p: float) -> str:
    return "p" + (f"{p:g}".replace(".", "_") if p != int(p) else str(int(p)))
