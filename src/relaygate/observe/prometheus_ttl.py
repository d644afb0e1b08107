"""LiteLLM's ``prometheus_metrics_ttl_seconds``: series that stopped moving leave ``/metrics``.

What it owns: :class:`SeriesTtl`, which a worker's ``LiteLLMMetrics`` asks at snapshot time (never on the
request path) to sweep its counters and histograms every ``prometheus_metrics_cleanup_interval_seconds``
(LiteLLM's default, 60): a series whose value has not changed for ``ttl`` seconds is removed, as LiteLLM
removes a series not emitted for that long. A key used once a month, a model taken out of the config, a
custom label's old value: each stops costing a line per scrape (and the scraper's storage) once it is idle.

How "idle" is seen: the sweep keeps each series' last value and when it last changed, so the request path
does nothing it did not do before (no timestamp per series per record). The difference from LiteLLM: a
counter that only ever adds 0 (the spend of a model without a price) never changes, so it is removed after
``ttl`` even while requests add 0 to it; its next request creates it again at once, at the same value 0.
A removed counter that comes back starts from 0, which Prometheus reads as a counter reset, as with LiteLLM.

The latest-reading gauges (an upstream's remaining requests and tokens, a key's and team's limiter
readings) carry the time of their reading and are removed when it is older than ``ttl``. Budget gauges
are not: they are the store's figures, refreshed by the gateway, not readings of traffic. Each worker sweeps
its own part; a series leaves the merged ``/metrics`` when no worker holds it any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["SeriesTtl"]


class SeriesTtl:
    """One worker's record of when each counter and histogram series last changed (see the module essay)."""

    __slots__ = ("ttl", "interval", "seen", "next_sweep", "clock", "wall")

    def __init__(self, ttl: float, interval: float = 60.0) -> None:
        self.ttl = ttl
        self.interval = interval
        self.seen: dict[tuple[str, tuple[str, ...]], tuple[float, float]] = {}
        """(family, label values) -> (the series' fingerprint at the last sweep, when it last changed)."""
        self.next_sweep = 0.0
        self.clock = time.monotonic
        """When series changed and sweeps are due."""
        self.wall = time.time
        """What the readings' times are compared with (they are epoch seconds)."""

    def due(self, now: float | None = None) -> bool:
        """Whether a sweep is due at ``now`` (default: :attr:`clock`'s)."""
        return (self.clock() if now is None else now) >= self.next_sweep

    def sweep(self, families: Iterable[tuple[str, MutableMapping[tuple[str, ...], list[float]]]],
              now: float | None = None) -> int:
        """Remove from ``families`` (name, label values -> cells) every series unchanged for ``ttl`` seconds;
        the number removed. A series is first seen at its first sweep and counts as changed then."""
        now = self.clock() if now is None else now
        self.next_sweep = now + self.interval
        cutoff = now - self.ttl
        seen, fresh = self.seen, {}
        removed = 0
        for name, series in families:
            dead = []
            for key, cell in series.items():
                mark = sum(cell)  # any observation adds 1 to a bucket; a counter adds its increment
                slot = (name, key)
                was = seen.get(slot)
                if was is None or was[0] != mark:
                    fresh[slot] = (mark, now)
                elif was[1] <= cutoff:
                    dead.append(key)
                else:
                    fresh[slot] = was
            for key in dead:
                del series[key]
            removed += len(dead)
        self.seen = fresh
        return removed

    def stale(self, readings: MutableMapping[Any, Any], wall: float | None = None) -> int:
        """Remove the readings (their last item: when read, epoch seconds) older than ``ttl``; how many."""
        cutoff = (self.wall() if wall is None else wall) - self.ttl
        old = [k for k, v in readings.items() if v[-1] <= cutoff]
        for k in old:
            del readings[k]
        return len(old)
