"""The per-worker cache: bounded in bytes, LRU, every entry expiring on time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relaygate.cache.memory import ENTRY_OVERHEAD, MemoryCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_get_set_and_expiry() -> None:
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


def test_lru_eviction_keeps_within_the_byte_budget() -> None:
    size = 100 + ENTRY_OVERHEAD
    c = MemoryCache(size * 3, max_item_bytes=1000, clock=Clock())
    for k in "abc":
        c.set(k, b"v" * 100)
    assert c.get("a") is not None  # a is now the most recent
    c.set("d", b"v" * 100)
    assert c.get("b") is None and c.get("a") is not None and c.get("c") is not None and c.get("d") is not None
    assert c.used == size * 3 and c.evictions == 1


def test_too_large_zero_ttl_and_overwrite() -> None:
    c = MemoryCache(10_000, max_item_bytes=500, clock=Clock())
    assert not c.set("big", b"x" * 501)
    assert c.set("k", b"x" * 100)
    assert not c.set("k", b"x", ttl=0)  # a zero TTL drops what was there
    assert c.get("k") is None and c.used == 0
    c.set("k", b"x" * 100)
    c.set("k", b"y" * 50)
    assert c.get("k") == b"y" * 50 and c.used == 50 + ENTRY_OVERHEAD


def test_sweep_drops_only_expired() -> None:
    clock = Clock()
    c = MemoryCache(10_000, clock=clock)
    c.set("old", b"1", ttl=5)
    c.set("new", b"2", ttl=50)
    clock.t += 10
    assert c.sweep() == 1 and c.get("new") == b"2" and len(c) == 1


ops = st.lists(st.tuples(st.sampled_from(["set", "get", "del", "tick"]), st.integers(0, 7),
                         st.integers(0, 400)), max_size=80)


@given(ops)
def test_accounting_holds_under_any_sequence(seq: list[tuple[str, int, int]]) -> None:
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
        assert c.used <= c.max_bytes
        assert c.used == sum(len(v) + ENTRY_OVERHEAD for v, _ in c._data.values())
