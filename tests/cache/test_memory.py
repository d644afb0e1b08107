"""The per-worker cache: bounded in bytes, LRU, every entry expiring on time. Every test runs on both twins (the
pure ``PureMemoryCache`` and the compiled one, which must have loaded unless ``RELAYGATE_NO_EXTENSIONS`` is set),
and a hypothesis run drives both with the same operations and compares every answer and their whole state."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.cache import memory
from relaygate.cache.memory import ENTRY_OVERHEAD, PureMemoryCache
from relaygate.core import _ext
from tests.core.compiled_only import check_loaded


@pytest.fixture(params=["py", "c"])
def MemoryCache(request: pytest.FixtureRequest) -> Any:
    if request.param == "py":
        return PureMemoryCache
    check_loaded(memory.COMPONENT, memory.CompiledMemoryCache)
    return memory.CompiledMemoryCache


def test_the_selected_class_is_the_compiled_one_when_built() -> None:
    want = PureMemoryCache if _ext.NO_EXTENSIONS else memory.CompiledMemoryCache
    assert memory.MemoryCache is want and want is not None
    if not _ext.NO_EXTENSIONS:
        from relaygate.core import _memcache_c
        assert _memcache_c.ENTRY_OVERHEAD == ENTRY_OVERHEAD


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_get_set_and_expiry(MemoryCache: Any) -> None:
    clock = Clock()
    c = MemoryCache(10_000, default_ttl=60, clock=clock)
    assert c.get("k") is None
    assert c.set("k", b"answer")
    assert c.get("k") == b"answer"
    clock.t += 59.9
    assert c.get("k") == b"answer"
    clock.t += 0.1
    assert c.get("k") is None and len(c) == 0 and c.used == 0
    assert c.set("short", b"x", ttl=1)
    clock.t += 1
    assert c.get("short") is None
    assert (c.hits, c.misses) == (2, 3)


def test_lru_eviction_keeps_within_the_byte_budget(MemoryCache: Any) -> None:
    size = 100 + ENTRY_OVERHEAD
    c = MemoryCache(size * 3, max_item_bytes=1000, clock=Clock())
    for k in "abc":
        c.set(k, b"v" * 100)
    assert c.get("a") is not None  # a is now the most recent
    c.set("d", b"v" * 100)
    assert c.get("b") is None and c.get("a") is not None and c.get("c") is not None and c.get("d") is not None
    assert c.used == size * 3 and c.evictions == 1


def test_too_large_zero_ttl_and_overwrite(MemoryCache: Any) -> None:
    c = MemoryCache(10_000, max_item_bytes=500, clock=Clock())
    assert not c.set("big", b"x" * 501)
    assert c.set("k", b"x" * 100)
    assert not c.set("k", b"x", ttl=0)  # a zero TTL drops what was there
    assert c.get("k") is None and c.used == 0
    c.set("k", b"x" * 100)
    c.set("k", b"y" * 50)
    assert c.get("k") == b"y" * 50 and c.used == 50 + ENTRY_OVERHEAD


def test_sweep_drops_only_expired(MemoryCache: Any) -> None:
    clock = Clock()
    c = MemoryCache(10_000, clock=clock)
    c.set("old", b"1", ttl=5)
    c.set("new", b"2", ttl=50)
    clock.t += 10
    assert c.sweep() == 1 and c.get("new") == b"2" and len(c) == 1


def test_sweep_step_drops_due_entries_soonest_first_within_its_budget(MemoryCache: Any) -> None:
    clock = Clock()
    c = MemoryCache(10_000_000, clock=clock)
    for i in range(100):  # mixed TTLs, interleaved: a long one ahead never hides shorter ones behind it
        c.set(f"k{i}", b"v", ttl=5 if i % 2 else 500)
    c.set("k1", b"again", ttl=500)  # stored again: its first expiry is stale
    clock.t += 10
    assert c.sweep_step(10) == 9 and len(c) == 91  # ten popped: nine due entries, and k1's stale item first
    assert c.sweep_step(1000) == 40 and len(c) == 51
    assert c.get("k1") == b"again" and c.get("k0") == b"v"
    assert c.sweep_step(1000) == 0
    clock.t += 1000
    assert c.sweep_step(1000) == 51 and len(c) == 0 and c.used == 0 and not c._expiry


def test_expiry_heap_stays_bounded_under_churn(MemoryCache: Any) -> None:
    clock = Clock()
    c = MemoryCache(2_000, clock=clock, default_ttl=3600)
    for i in range(50_000):  # the same few keys stored again and again, and LRU evictions
        c.set(f"k{i % 40}", bytes(i % 50))
        if i % 1000 == 0:
            c.sweep_step(1)
    c.sweep_step(1)
    assert len(c._expiry) <= 2 * len(c) + 1024 + 1000


def test_sweep_forever_follows_the_current_cache(MemoryCache: Any) -> None:
    import asyncio
    from types import SimpleNamespace

    from relaygate.cache.memory import sweep_forever

    clock = Clock()
    caches = [SimpleNamespace(memory=MemoryCache(10_000, clock=clock)) for _ in range(2)]
    for cache in caches:
        cache.memory.set("gone", b"1", ttl=1)
        cache.memory.set("kept", b"2", ttl=100)
    clock.t += 5
    current: list[object] = [caches[0]]

    async def main() -> None:
        task = asyncio.ensure_future(sweep_forever(lambda: current[0], every=0.001))  # type: ignore[arg-type]
        while len(caches[0].memory) != 1:
            await asyncio.sleep(0.001)
        current[0] = None  # no cache after a reload: nothing to do
        await asyncio.sleep(0.01)
        current[0] = caches[1]
        while len(caches[1].memory) != 1:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 10))
    assert [c.memory.get("kept") for c in caches] == [b"2", b"2"]


ops = st.lists(st.tuples(st.sampled_from(["set", "get", "del", "tick"]), st.integers(0, 7),
                         st.integers(0, 400)), max_size=80)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture is a class, no state
@given(ops)
def test_accounting_holds_under_any_sequence(MemoryCache: Any, seq: list[tuple[str, int, int]]) -> None:
    clock = Clock()
    c = MemoryCache(1500, max_item_bytes=600, default_ttl=30, clock=clock)
    stored: dict[str, int] = {}
    for op, k, n in seq:
        key = f"k{k}"
        if op == "set":
            if c.set(key, bytes(n)):
                stored[key] = n
        elif op == "get":
            got = c.get(key)
            if got is not None:  # whatever is served is the last value stored under that key
                assert len(got) == stored[key]
        elif op == "del":
            c.delete(key)
        else:
            clock.t += n / 10
        if op == "tick":
            c.sweep_step(3)
        assert c.used <= c.max_bytes
        assert c.used == sum(len(v) + ENTRY_OVERHEAD for v, _ in c._data.values())


twin_ops = st.lists(st.tuples(st.sampled_from(["set", "set", "get", "del", "tick", "sweep", "step", "clear"]),
                              st.integers(0, 11), st.integers(0, 700), st.sampled_from([None, 0, 1, 5, 30, 2.5, -1])),
                    max_size=150)


@settings(max_examples=300, deadline=None)
@given(twin_ops)
def test_the_twins_answer_alike_under_any_sequence(seq: list[tuple[str, int, int, float | None]]) -> None:
    """The same operations on both twins: every answer equal, and after each one the same entries in the same
    order with the same expiries, the same counts and the same expiry items."""
    check_loaded(memory.COMPONENT, memory.CompiledMemoryCache)
    clock = Clock()
    a = PureMemoryCache(2000, max_item_bytes=700, default_ttl=30, clock=clock)
    b = memory.CompiledMemoryCache(2000, max_item_bytes=700, default_ttl=30, clock=clock)
    for op, k, n, ttl in seq:
        key = f"k{k}"
        if op == "set":
            got = [c.set(key, bytes([k]) * n, ttl) for c in (a, b)]
        elif op == "get":
            got = [c.get(key) for c in (a, b)]
        elif op == "del":
            got = [c.delete(key) for c in (a, b)]
        elif op == "tick":
            clock.t += n / 20
            got = []
        elif op == "sweep":
            got = [a.sweep(), b.sweep()]
        elif op == "step":
            got = [a.sweep_step(n % 7), b.sweep_step(n % 7)]
        else:
            a.clear()
            b.clear()
            got = []
        assert got[:1] == got[1:], (op, key, got)
        assert list(a._data.items()) == list(b._data.items())
        assert len(a) == len(b)
        assert (a.used, a.hits, a.misses, a.evictions) == (b.used, b.hits, b.misses, b.evictions)
        assert sorted(a._expiry) == sorted(b._expiry)


def test_the_compiled_heap_pops_in_the_pure_order_with_ties() -> None:
    """Many entries expiring at the same instant (one clock reading, one TTL): both pop them key by key."""
    check_loaded(memory.COMPONENT, memory.CompiledMemoryCache)
    clock = Clock()
    a = PureMemoryCache(10_000_000, clock=clock)
    b = memory.CompiledMemoryCache(10_000_000, clock=clock)
    keys = [f"k{(i * 7919) % 500}" for i in range(500)]
    for c in (a, b):
        for key in keys:
            c.set(key, b"v", ttl=5)
    clock.t += 10
    for budget in (1, 2, 3, 50, 1000):
        assert a.sweep_step(budget) == b.sweep_step(budget)
        assert list(a._data) == list(b._data)
    assert len(a) == len(b) == 0
