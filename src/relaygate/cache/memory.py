"""The per-worker response cache: an LRU bounded in bytes, each entry with its own expiry.

What it owns: keeping answers (bytes) under keys for a TTL, within a byte budget, per worker. Invariants:

- The sum of stored values' sizes (plus a fixed per-entry overhead) never exceeds ``max_bytes``; storing
  evicts least-recently-used entries first, and a value larger than ``max_item_bytes`` is not stored at all
  (one huge answer must not flush the whole cache).
- An entry is never served after its expiry: :meth:`get` checks it and drops an expired entry; expired
  entries not asked for are dropped as the LRU end reaches them, by :meth:`sweep` (all at once) and by
  :meth:`sweep_step` (at most a slice of due entries per call, from an expiry heap: the worker's timer,
  ``sweep_forever``, calls it every :data:`SWEEP_EVERY` seconds, so no call holds the event loop for long).
- Every operation is O(1) amortised (``OrderedDict``), with no await and no lock: one worker, one event loop.

The clock is injected (``time.monotonic`` by default) so expiry is testable without sleeping.

:data:`MemoryCache` is the compiled twin (``relaygate.core._memcache_c``, built from ``ext/_memcache_c.pyx``) when
the extension is built, else :class:`PureMemoryCache`: the same operations with the same answers, evictions and
expiries (``tests/cache/test_memory.py`` runs every test on both and compares them op by op). The compiled one
chains its entries itself instead of an ``OrderedDict`` and keeps the expiry heap in a C array. Timed per call
in the serving worker (``bench.scenarios_cache`` misses), the pure class's probe and store took ~1.2 and ~3.3 µs
of a miss; in a tight loop over ~96,000 entries of 1 KB the compiled store takes ~0.45 µs against ~1.5-2.1 and
the probe ~0.16 against ~0.40. ``relaygate.core._ext.LOADED["memcache"]`` says which runs.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from relaygate.core import _ext

ENTRY_OVERHEAD = 160
"""Bytes counted per entry beyond its value: the key string, the tuple and the dict slot, roughly."""


class PureMemoryCache:
    """Answers by key, LRU within ``max_bytes``, each with an expiry (see the module docstring)."""

    __slots__ = ("max_bytes", "max_item_bytes", "default_ttl", "_clock", "_data", "used", "hits", "misses",
                 "evictions", "_expiry")

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, *, default_ttl: float = 600.0,
                 max_item_bytes: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes if max_item_bytes is not None else max(max_bytes // 16, 1)
        self.default_ttl = default_ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._expiry: list[tuple[float, str]] = []
        """A heap of ``(expiry, key)``, one per store: :meth:`sweep_step`'s queue."""

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        value, expires = entry
        if expires <= self._clock():
            self._drop(key, value)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` for ``ttl`` seconds (the default TTL when None); False when it is not stored (too
        large, or a TTL of zero or less)."""
        ttl = self.default_ttl if ttl is None else ttl
        size = len(value) + ENTRY_OVERHEAD
        if ttl <= 0 or len(value) > self.max_item_bytes or size > self.max_bytes:
            self.delete(key)
            return False
        old = self._data.pop(key, None)
        if old is not None:
            self.used -= len(old[0]) + ENTRY_OVERHEAD
        data = self._data
        while data and self.used + size > self.max_bytes:
            _, (evicted, _) = data.popitem(last=False)
            self.used -= len(evicted) + ENTRY_OVERHEAD
            self.evictions += 1
        expires = self._clock() + ttl
        data[key] = (value, expires)
        heapq.heappush(self._expiry, (expires, key))
        self.used += size
        return True

    def delete(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self.used -= len(entry[0]) + ENTRY_OVERHEAD
        return True

    def clear(self) -> None:
        self._data.clear()
        self._expiry.clear()
        self.used = 0

    def sweep(self) -> int:
        """Drop every expired entry; returns how many. For a periodic task, never per request."""
        now = self._clock()
        dead = [k for k, (_, exp) in self._data.items() if exp <= now]
        for k in dead:
            self.delete(k)
        return len(dead)

    def sweep_step(self, budget: int = 2000) -> int:
        """Drop up to ``budget`` entries whose expiry has passed, soonest first; how many were dropped. Each
        store pushes ``(expiry, key)`` onto a heap, so the due entries are found without walking the rest (an
        entry stored again, evicted or deleted leaves a stale item, skipped when popped). The heap is rebuilt
        from the live entries when stale items outnumber them, which bounds it to twice the entries."""
        heap, data = self._expiry, self._data
        if len(heap) > 2 * len(data) + 1024:
            heap[:] = [(exp, k) for k, (_, exp) in data.items()]
            heapq.heapify(heap)
        now = self._clock()
        dropped = 0
        for _ in range(budget):
            if not heap or heap[0][0] > now:
                break
            exp, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is not None and entry[1] == exp:
                self._drop(key, entry[0])
                dropped += 1
        return dropped

    def _drop(self, key: str, value: bytes) -> None:
        del self._data[key]
        self.used -= len(value) + ENTRY_OVERHEAD


SWEEP_EVERY = 0.25
"""Seconds between two slices of the sweep of the worker's memory level for expired entries."""
SWEEP_SLICE = 500
"""Due entries dropped per slice at most (a few hundred µs): up to 2,000 expiries a second."""


async def sweep_forever(current: Callable[[], Any], every: float = SWEEP_EVERY,
                        budget: int = SWEEP_SLICE) -> None:
    """Drop the memory level's expired entries, a slice every ``every`` seconds, in whichever cache
    ``current()`` returns then (a reload may add, change or remove it). Without it an answer nobody asks for
    again stays until the byte budget pushes it out: under a stream of distinct prompts each worker grew
    towards ``max_bytes`` (64 MiB by default) whatever the TTL (2.5-4.5 MiB/min in the bench soak). A whole
    sweep at once held the loop ~40 ms per 100k entries; a slice pops at most ``budget`` due entries off the
    cache's expiry heap. Expiries beyond the slices' rate wait for the next slices (or the LRU), still within
    ``max_bytes``."""
    while True:
        await asyncio.sleep(every)
        cache = current()
        if cache is not None:
            cache.memory.sweep_step(budget)


COMPONENT = "memcache"
_compiled = _ext.compiled(COMPONENT)
CompiledMemoryCache: Any = _compiled.MemoryCache if _compiled is not None else None
"""The compiled class, or None (``RELAYGATE_NO_EXTENSIONS``, or not built: recorded in ``_ext.FAILED``)."""
MemoryCache: type[PureMemoryCache] = CompiledMemoryCache if CompiledMemoryCache is not None else PureMemoryCache
"""The class the cache uses: compiled when built (see the module docstring); typed as its pure twin, whose
operations and attributes it has."""

__all__ = ["COMPONENT", "SWEEP_EVERY", "SWEEP_SLICE", "CompiledMemoryCache", "ENTRY_OVERHEAD", "MemoryCache",
           "PureMemoryCache", "sweep_forever"]
