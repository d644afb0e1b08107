"""Exponentially weighted moving averages for per-deployment latency and time to first token.

Sans-IO and allocation-free: the state is two numbers on the caller's stats struct (the average and a
sample count), updated in place by plain arithmetic. The first sample seeds the average (no bias towards
zero), later samples move it by ``alpha`` of the difference. One event loop owns each worker's stats, so
no locking is needed.
"""

from __future__ import annotations


def update(avg: float, n: int, sample: float, alpha: float) -> float:
    """The new average after ``sample`` (``n`` = samples seen before this one)."""
    if n == 0:
        return sample
    return avg + alpha * (sample - avg)


class Ewma:
    """A standalone EWMA (the router keeps the same two fields inline on its stats structs)."""

    __slots__ = ("alpha", "value", "n")

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.value = 0.0
        self.n = 0

    def add(self, sample: float) -> float:
        self.value = update(self.value, self.n, sample, self.alpha)
        self.n += 1
        return self.value
