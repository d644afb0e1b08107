"""CompletionQueue on real asyncio loops: drop-oldest, batching, drain on close, slow and failing sinks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from relaygate.sinks import DROPPED_EVENT, CompletionQueue, CompletionRecord, Outcome


def rec(i: int, **kw: object) -> CompletionRecord:
    fields: dict[str, object] = dict(
        call_id=f"c{i}", route="chat", stream=False, model="m", model_group="m", deployment_id="d",
        provider="openai", upstream_model="gpt", key_hash=None, key_alias=None, team_id=None, user_id=None,
        status=200, outcome=Outcome.OK, prompt_tokens=1, completion_tokens=2, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=0.0, cache_hit=False, retries=0,
        fallbacks=0)
    fields.update(kw)
    return CompletionRecord(**fields)  # type: ignore[arg-type]


def ids(batches: Sequence[Sequence[CompletionRecord]]) -> list[str]:
    return [r.call_id for b in batches for r in b]


class ListSink:
    def __init__(self, name: str = "list") -> None:
        self.name = name
        self.batches: list[list[CompletionRecord]] = []
        self.closed = False

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        self.batches.append(list(batch))

    def close(self) -> None:
        self.closed = True


class AsyncListSink:
    def __init__(self, name: str = "alist", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.batches: list[list[CompletionRecord]] = []
        self.closed = False

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.batches.append(list(batch))

    async def aclose(self) -> None:
        self.closed = True


class HungSink:
    """An exporter that never answers (a hanging webhook)."""

    name = "hung"

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = False

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        self.calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def test_put_outside_a_loop_is_kept_and_delivered_on_start() -> None:
    q = CompletionQueue(delay=0)
    sink = ListSink()
    q.add_sink(sink)
    for i in range(3):
        q.put(rec(i))  # no running loop: nothing can drain yet
    assert q.stats()["queued"] == 3

    async def main() -> None:
        q.start()
        await asyncio.sleep(0)
        assert ids(sink.batches) == ["c0", "c1", "c2"]
        await q.aclose()

    asyncio.run(main())
    assert sink.closed


def test_first_put_inside_a_loop_starts_a_queue_nobody_started() -> None:
    async def main() -> ListSink:
        q = CompletionQueue(delay=0)
        sink = ListSink()
        q.add_sink(sink)
        q.put(rec(0))  # an app driven without its lifespan
        await asyncio.sleep(0)
        assert ids(sink.batches) == ["c0"]
        q.start()  # a later explicit start is a no-op
        q.put(rec(1))
        await asyncio.sleep(0)
        await q.aclose()
        return sink

    assert ids(asyncio.run(main()).batches) == ["c0", "c1"]


def test_full_queue_drops_oldest_and_counts() -> None:
    events: list[tuple[str, int]] = []

    async def main() -> tuple[CompletionQueue, ListSink]:
        q = CompletionQueue(3, delay=0, on_event=lambda e, n: events.append((e, n)))
        sink = ListSink()
        q.add_sink(sink)
        for i in range(5):
            q.put(rec(i))  # not started: nothing drains, the bound holds
        assert q.dropped == 2
        assert q.stats()["queued"] == 3
        q.start()
        await asyncio.sleep(0)
        await q.aclose()
        return q, sink

    q, sink = asyncio.run(main())
    assert ids(sink.batches) == ["c2", "c3", "c4"]
    assert q.dropped == 2
    assert events == [(DROPPED_EVENT, 2)]


def test_drop_oldest_within_one_loop_iteration() -> None:
    async def main() -> tuple[CompletionQueue, ListSink]:
        q = CompletionQueue(4, delay=0)
        sink = ListSink()
        q.add_sink(sink)
        q.start()
        for i in range(10):  # one iteration: the drain has not run yet
            q.put(rec(i))
        await asyncio.sleep(0)
        await q.aclose()
        return q, sink

    q, sink = asyncio.run(main())
    assert ids(sink.batches) == ["c6", "c7", "c8", "c9"]
    assert q.dropped == 6


def test_one_wakeup_one_batch_and_fresh_after_one_iteration() -> None:
    async def main() -> list[list[CompletionRecord]]:
        q = CompletionQueue(delay=0)
        sink = ListSink()
        q.add_sink(sink)
        q.start()
        for i in range(5):
            q.put(rec(i))
        await asyncio.sleep(0)
        assert ids(sink.batches) == [f"c{i}" for i in range(5)]  # delivered one loop iteration later
        q.put(rec(5))
        await asyncio.sleep(0)
        await q.aclose()
        return sink.batches

    batches = asyncio.run(main())
    assert [len(b) for b in batches] == [5, 1]


def test_delay_batches_records_until_the_timer_fires() -> None:
    async def main() -> list[list[CompletionRecord]]:
        q = CompletionQueue(delay=0.02)
        sink = ListSink()
        q.add_sink(sink)
        q.start()
        for i in range(3):
            q.put(rec(i))
            await asyncio.sleep(0)
        assert sink.batches == []  # waiting for the timer armed by the first record
        for _ in range(200):
            if sink.batches:
                break
            await asyncio.sleep(0.005)
        q.put(rec(3))  # the queue was empty again: a new timer
        for _ in range(200):
            if len(sink.batches) == 2:
                break
            await asyncio.sleep(0.005)
        await q.aclose()
        return sink.batches

    batches = asyncio.run(main())
    assert [ids([b]) for b in batches] == [["c0", "c1", "c2"], ["c3"]]


def test_batch_size_splits_a_backlog_across_iterations() -> None:
    async def main() -> list[list[CompletionRecord]]:
        q = CompletionQueue(delay=0, batch_size=2)
        sink = ListSink()
        q.add_sink(sink)
        q.start()
        for i in range(5):
            q.put(rec(i))
        await asyncio.sleep(0)
        assert len(sink.batches) == 1  # the rest waits for the next iteration: the loop is not held
        for _ in range(3):
            await asyncio.sleep(0)
        await q.aclose()
        return sink.batches

    batches = asyncio.run(main())
    assert [len(b) for b in batches] == [2, 2, 1]
    assert ids(batches) == [f"c{i}" for i in range(5)]


def test_aclose_drains_everything_to_sync_and_async_sinks() -> None:
    async def main() -> tuple[CompletionQueue, ListSink, AsyncListSink]:
        q = CompletionQueue(delay=0, batch_size=3)
        sync, slow = ListSink(), AsyncListSink(delay=0.01)
        q.add_sink(sync)
        q.add_sink(slow)
        q.start()
        for i in range(10):
            q.put(rec(i))
        await q.aclose()  # no iteration in between: close must deliver it all
        return q, sync, slow

    q, sync, slow = asyncio.run(main())
    want = [f"c{i}" for i in range(10)]
    assert ids(sync.batches) == want
    assert ids(slow.batches) == want
    assert sync.closed and slow.closed
    assert q.dropped == 0


def test_put_after_close_is_counted_as_dropped() -> None:
    async def main() -> tuple[CompletionQueue, ListSink]:
        q = CompletionQueue(delay=0)
        sink = ListSink()
        q.add_sink(sink)
        q.start()
        await q.aclose()
        q.put(rec(1))
        q.put(rec(2))
        await asyncio.sleep(0)
        return q, sink

    q, sink = asyncio.run(main())
    assert q.dropped == 2
    assert sink.batches == []


def test_put_without_a_loop_never_raises() -> None:
    q = CompletionQueue(2, delay=0)
    for i in range(5):
        q.put(rec(i))
    assert q.dropped == 3


def test_hung_async_sink_delays_neither_others_nor_the_loop() -> None:
    events: list[tuple[str, int]] = []

    async def main() -> tuple[CompletionQueue, HungSink]:
        q = CompletionQueue(delay=0, on_event=lambda e, n: events.append((e, n)), sink_buffer=4)
        hung, sync, fast = HungSink(), ListSink(), AsyncListSink("fast")
        q.add_sink(hung, batch_size=1)
        q.add_sink(sync)
        q.add_sink(fast)
        q.start()
        for i in range(20):
            q.put(rec(i))
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        # the other sinks have everything while the hung one is stuck on its first batch
        assert ids(sync.batches) == [f"c{i}" for i in range(20)]
        assert ids(fast.batches) == [f"c{i}" for i in range(20)]
        assert hung.calls == 1
        stats = q.stats()
        assert stats["sink_buffered:hung"] == 4  # bounded
        assert stats["sink_dropped:hung"] == 20 - 1 - 4
        await q.aclose(timeout=0.05)
        return q, hung

    q, hung = asyncio.run(main())
    assert hung.cancelled
    # + the 4 still buffered and the 1 it was stuck on at the shutdown deadline: every record is accounted for
    assert q.stats()["sink_dropped:hung"] == 20
    assert sum(n for e, n in events if e == "sink_dropped:hung") == 20
    assert q.dropped == 0


def test_slow_async_sink_gets_batches_in_order() -> None:
    async def main() -> AsyncListSink:
        q = CompletionQueue(delay=0, batch_size=4)
        slow = AsyncListSink(delay=0.005)
        q.add_sink(slow)
        q.start()
        for i in range(10):
            q.put(rec(i))
            await asyncio.sleep(0)
        await q.aclose()
        return slow

    slow = asyncio.run(main())
    assert ids(slow.batches) == [f"c{i}" for i in range(10)]
    assert all(len(b) <= 4 for b in slow.batches)


def test_linger_gathers_the_records_of_its_window_into_one_batch() -> None:
    async def main() -> tuple[AsyncListSink, ListSink, float]:
        q = CompletionQueue(delay=0, linger=0.5)  # long enough that no stall of a busy machine outlasts it
        slow, sync = AsyncListSink(), ListSink()
        q.add_sink(slow)
        q.add_sink(sync)
        q.start()
        t0 = asyncio.get_running_loop().time()
        for i in range(6):  # six records over ~30 ms: all within the first one's linger
            q.put(rec(i))
            await asyncio.sleep(0.005)
        assert slow.batches == []  # the async sink waits out its linger
        assert ids(sync.batches) == [f"c{i}" for i in range(6)]  # the sync sinks are not delayed
        while not slow.batches:
            await asyncio.sleep(0.005)
        waited = asyncio.get_running_loop().time() - t0
        await q.aclose()
        return slow, sync, waited

    slow, sync, waited = asyncio.run(main())
    assert [len(b) for b in slow.batches] == [6] and len(sync.batches) >= 1
    assert waited >= 0.5


def test_linger_never_holds_a_full_batch_nor_a_closing_queue() -> None:
    async def main() -> tuple[AsyncListSink, float, float]:
        q = CompletionQueue(delay=0, batch_size=4, linger=10.0)  # a linger no test would wait out
        sink = AsyncListSink()
        q.add_sink(sink)
        q.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(4):  # a full batch: taken at once
            q.put(rec(i))
        while not sink.batches:
            await asyncio.sleep(0.001)
        full = loop.time() - t0
        q.put(rec(4))  # one record lingering ...
        await asyncio.sleep(0.01)
        assert len(sink.batches) == 1
        for i in range(5, 8):  # ... until three more make a full batch: taken then
            q.put(rec(i))
        while len(sink.batches) < 2:
            await asyncio.sleep(0.001)
        q.put(rec(8))  # and one more lingering when the queue closes: closing ends the linger
        await asyncio.sleep(0.01)
        t1 = loop.time()
        await q.aclose(timeout=30.0)
        return sink, full, loop.time() - t1

    sink, full, closing = asyncio.run(main())
    assert ids(sink.batches) == [f"c{i}" for i in range(9)]
    assert [len(b) for b in sink.batches] == [4, 4, 1]
    assert full < 1.0 and closing < 1.0


def test_half_a_buffer_is_taken_without_lingering() -> None:
    async def main() -> tuple[AsyncListSink, bool]:
        q = CompletionQueue(delay=0, batch_size=512, sink_buffer=8, linger=10.0)
        sink = AsyncListSink()
        q.add_sink(sink)
        q.start()
        for i in range(4):  # half of the sink's buffer of 8
            q.put(rec(i))
        for _ in range(2000):
            if sink.batches:
                break
            await asyncio.sleep(0.001)
        before_close = bool(sink.batches)
        await q.aclose()
        return sink, before_close

    sink, before_close = asyncio.run(main())
    assert before_close and ids(sink.batches[:1]) == [f"c{i}" for i in range(4)]


def test_a_sink_that_gathers_its_own_batches_does_not_linger() -> None:
    class Gathering(AsyncListSink):
        linger = 0.0

    async def main() -> tuple[Gathering, bool]:
        q = CompletionQueue(delay=0, linger=10.0)
        own, other = Gathering("own"), AsyncListSink("other")
        q.add_sink(own)
        q.add_sink(other)
        q.start()
        q.put(rec(0))
        for _ in range(2000):
            if own.batches:
                break
            await asyncio.sleep(0.001)
        lingering = not other.batches
        await q.aclose()
        return own, lingering

    own, lingering = asyncio.run(main())
    assert ids(own.batches) == ["c0"] and lingering


class Boom(ListSink):
    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        raise ValueError("sink bug")


class AsyncBoom:
    name = "aboom"

    def __init__(self) -> None:
        self.calls = 0

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        self.calls += 1
        raise RuntimeError("exporter down")


def test_failing_sinks_are_counted_logged_once_and_never_stop_the_drain(caplog: pytest.LogCaptureFixture) -> None:
    events: list[tuple[str, int]] = []

    async def main() -> tuple[CompletionQueue, ListSink, AsyncBoom]:
        q = CompletionQueue(delay=0, on_event=lambda e, n: events.append((e, n)), log_interval=3600.0)
        good, boom, aboom = ListSink(), Boom("boom"), AsyncBoom()
        q.add_sink(boom)
        q.add_sink(aboom)
        q.add_sink(good)
        q.start()
        for i in range(5):
            q.put(rec(i))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await q.aclose()
        return q, good, aboom

    with caplog.at_level(logging.ERROR, logger="relaygate.sinks"):
        q, good, aboom = asyncio.run(main())
    assert ids(good.batches) == [f"c{i}" for i in range(5)]
    stats = q.stats()
    assert stats["sink_error:boom"] == 5
    assert stats["sink_error:aboom"] == aboom.calls == 5
    failures = [r for r in caplog.records if "failed on a batch" in r.getMessage()]
    assert len(failures) == 2  # one per sink within the interval, with its traceback
    assert all(r.exc_info for r in failures)
    assert events.count(("sink_error:boom", 1)) == 5


def test_add_sink_after_start_and_sink_names() -> None:
    async def main() -> tuple[list[str], AsyncListSink]:
        q = CompletionQueue(delay=0)
        q.add_sink(ListSink())
        q.start()
        late = AsyncListSink()
        q.add_sink(late, name="late")
        q.put(rec(0))
        await asyncio.sleep(0)
        await q.aclose()
        return q.sinks, late

    names, late = asyncio.run(main())
    assert names == ["list", "late"]
    assert ids(late.batches) == ["c0"]


def test_start_is_idempotent_per_loop_and_bad_sizes_are_errors() -> None:
    with pytest.raises(ValueError):
        CompletionQueue(0)
    with pytest.raises(ValueError):
        CompletionQueue(delay=-1.0)
    with pytest.raises(ValueError):
        CompletionQueue(linger=-0.1)

    q = CompletionQueue(delay=0)

    async def first() -> None:
        q.start()
        q.start()  # idempotent on the same loop

    async def second() -> None:
        with pytest.raises(RuntimeError):
            q.start()  # another loop
        q._loop = asyncio.get_running_loop()  # rebind to close it here
        await q.aclose()
        await q.aclose()  # idempotent
        with pytest.raises(RuntimeError):
            q.start()  # closed

    asyncio.run(first())
    asyncio.run(second())


def test_record_encodes_with_msgspec() -> None:
    import msgspec

    r = rec(1, outcome=Outcome.STREAM_BROKEN, status=599, ttft=0.25)
    data = msgspec.json.decode(msgspec.json.encode(r))
    assert data["outcome"] == "stream_broken"
    assert data["ttft"] == 0.25
    assert msgspec.json.decode(msgspec.json.encode(r), type=CompletionRecord) == r
    assert r.total_tokens == 3


def test_a_queue_whose_loop_ended_binds_to_the_next_one() -> None:
    """``put`` never raises: an app driven by several ``asyncio.run`` calls (in-process tests) re-binds the
    queue to the running loop instead of scheduling on a closed one (found as a flaky 500 in test_app)."""
    got: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: Sequence[CompletionRecord]) -> None:
            got.extend(batch)

    q = CompletionQueue()
    q.add_sink(Sink())

    async def one() -> None:
        q.put(rec(1))
        q.put(rec(2))
        await asyncio.sleep(0.02)  # drained on this loop, which then closes

    for _ in range(3):
        asyncio.run(one())
    assert len(got) == 6


class GateSink:
    """A database that is down until ``up`` is set: the first batch waits for it."""

    name = "gate"

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.batches: list[list[CompletionRecord]] = []

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        await self.up.wait()
        self.batches.append(list(batch))


def test_records_dropped_while_behind_are_logged_with_their_number(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[CompletionQueue, GateSink]:
        q = CompletionQueue(delay=0, log_interval=3600.0)
        gate = GateSink()
        q.add_sink(gate, buffer=5, batch_size=5)
        q.start()
        for i in range(30):
            q.put(rec(i))
            await asyncio.sleep(0)
        gate.up.set()
        for _ in range(20):
            await asyncio.sleep(0)
        for i in range(30, 33):  # caught up: no summary again for these
            q.put(rec(i))
            await asyncio.sleep(0)
        await q.aclose()
        return q, gate

    with caplog.at_level(logging.WARNING, logger="relaygate.sinks"):
        q, gate = asyncio.run(main())
    dropped = q.stats()["sink_dropped:gate"]
    assert dropped == 30 - 1 - 5 and len(ids(gate.batches)) + dropped == 33
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "is behind: dropped 1 oldest" in m]) == 1  # the first drop, at once
    assert [m for m in messages if "while it was behind" in m] == [
        f"sink gate: {dropped} record(s) dropped while it was behind ({dropped} in total)"]
