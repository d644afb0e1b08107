"""The figures of a lane, computed from raw measurements: pure functions, no processes, no clocks.

The lane runner (``bench.lanerun``) measures; this module turns what it measured into the published
figures, so the rules behind each figure live in one place and are tested on their own
(``tests/bench/test_figures.py``):

- :func:`frontier`: from one closed-loop concurrency sweep, the highest throughput whose p99 stays under
  each tail bound (1, 5, 10, 50, 100 ms) and the unbounded maximum; a step with an error rate of 0.1% or
  more never counts;
- :func:`stream_verdict` / :func:`streams_sustained`: a stream level passes when every frame of every
  stream arrived, no gap between frames exceeded 10× the mock's pacing and errors stayed under 0.1%; the
  figure is the highest concurrency of the ascending sweep below its first failure;
- :func:`growth_mib_per_min`: a least-squares slope over the last minutes of an RSS curve;
- :func:`added_us`: gateway minus direct, in microseconds;
- :func:`ceiling_flags`: every throughput figure within 10% of what the mock alone sustained (the mock,
  not the gateway, may have set it).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["P99_BOUNDS_MS", "MAX_ERROR_RATE", "STALL_FACTOR", "CEILING_MARGIN", "error_rate", "frontier",
           "stream_verdict", "streams_sustained", "growth_mib_per_min", "added_us", "ceiling_flags"]

P99_BOUNDS_MS = (1.0, 5.0, 10.0, 50.0, 100.0)
MAX_ERROR_RATE = 0.001  # 0.1%
STALL_FACTOR = 10.0  # a gap over 10x the pacing is a stall
CEILING_MARGIN = 0.10


def error_rate(step: dict[str, Any]) -> float:
    """Errors over attempts (answered + errors) of one measurement; 1.0 when nothing was attempted."""
    ok = int(step.get("ok", 0))
    errors = int(step.get("error_count", 0))
    return errors / (ok + errors) if ok + errors else 1.0


def _bound_key(bound: float) -> str:
    return f"p99<={bound:g}ms"


def frontier(sweep: list[dict[str, Any]], bounds: tuple[float, ...] = P99_BOUNDS_MS) -> dict[str, float | None]:
    """req/s at each p99 bound and unbounded, from sweep steps ``{"rps", "p99_ms", "ok", "error_count"}``.

    ``None`` when no step qualifies (say, every step's p99 is over 1 ms)."""
    good = [s for s in sweep if error_rate(s) < MAX_ERROR_RATE and s.get("p99_ms") is not None
            and not s.get("failed")]
    out: dict[str, float | None] = {}
    for b in bounds:
        rates = [float(s["rps"]) for s in good if float(s["p99_ms"]) <= b]
        out[_bound_key(b)] = max(rates) if rates else None
    out["unbounded"] = max((float(s["rps"]) for s in good), default=None)
    return out


def stream_verdict(step: dict[str, Any], frames: int, pacing_ms: float) -> list[str]:
    """Why a stream level fails (empty when it passes).

    ``step`` carries ``chunks_min`` (fewest frames any stream got), ``gap_max_ms`` (longest gap between two
    frames of one stream), ``ok`` and ``error_count``."""
    reasons = []
    if step.get("failed"):
        return [str(step["failed"])]
    if int(step.get("ok", 0)) == 0:
        reasons.append("no stream completed")
    got = step.get("chunks_min")
    if got is None or got < frames:
        reasons.append(f"frames lost: a stream got {got} of {frames}")
    gap = step.get("gap_max_ms")
    if gap is not None and gap > STALL_FACTOR * pacing_ms:
        reasons.append(f"stall: a {gap:.0f} ms gap (> {STALL_FACTOR:g}x {pacing_ms:g} ms)")
    rate = error_rate(step)
    if int(step.get("error_count", 0)) and rate >= MAX_ERROR_RATE:
        reasons.append(f"errors {rate:.2%}")
    return reasons


def streams_sustained(levels: list[dict[str, Any]], frames: int, pacing_ms: float) -> tuple[int | None, bool]:
    """(highest passing concurrency before the first failure, whether the sweep ended without a failure).

    ``levels`` ascend by ``concurrency``; a second element of ``True`` means the figure is a lower bound
    (the sweep stopped before the system did)."""
    best: int | None = None
    for lv in sorted(levels, key=lambda x: int(x["concurrency"])):
        if stream_verdict(lv, frames, pacing_ms):
            return best, False
        best = int(lv["concurrency"])
    return best, True


def growth_mib_per_min(samples: list[tuple[float, float]], last_s: float | None = None) -> float | None:
    """Least-squares slope of ``(t seconds, rss MiB)`` over the last ``last_s`` seconds, in MiB/min."""
    if last_s is not None and samples:
        t_end = samples[-1][0]
        samples = [s for s in samples if s[0] >= t_end - last_s]
    if len(samples) < 2:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return None
    slope = sum((t - mt) * (r - mr) for t, r in samples) / var
    return slope * 60.0


def added_us(system_ms: float | None, direct_ms: float | None) -> float | None:
    """Gateway minus direct, milliseconds in, microseconds out."""
    if system_ms is None or direct_ms is None or math.isnan(system_ms) or math.isnan(direct_ms):
        return None
    return (system_ms - direct_ms) * 1000.0


def ceiling_flags(figures: dict[str, float | None], ceiling: float | None,
                  margin: float = CEILING_MARGIN) -> list[str]:
    """Names of the throughput ``figures`` at or above ``(1 - margin)`` of the mock's own ``ceiling``."""
    if not ceiling:
        return []
    return [name for name, v in figures.items() if v is not None and v >= (1.0 - margin) * ceiling]
