"""Database down: a real PostgreSQL server (its own cluster) stopped for some seconds while records keep
coming. The sink retries with backoff, keeps them in its bounded buffer, and writes them all when the
server is back; the counters still equal the rows' sums."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator

import pytest

from relaygate.sinks import CompletionQueue
from relaygate.sinks.spend import SpendSink
from relaygate.store import open_store
from tests.pg import PostgresServer, _as_postgres, pg_binary, postgres_server
from tests.spend.helpers import check_counters, record


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own: stopping it must not disturb the session's server."""
    gen = postgres_server.__wrapped__()  # type: ignore[attr-defined]
    server = next(gen)
    try:
        yield server
    finally:
        try:
            start(server)  # pg_ctl stop in the fixture's teardown needs it running (or at least not half-way)
        except Exception:
            pass
        for _ in gen:
            pass


def _ctl(server: PostgresServer, *args: str) -> None:
    pg_ctl = pg_binary("pg_ctl")
    assert pg_ctl is not None
    subprocess.run(_as_postgres([pg_ctl, "-D", str(server.datadir), *args]), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(server: PostgresServer) -> None:
    _ctl(server, "-m", "fast", "-w", "stop")


def start(server: PostgresServer) -> None:
    sock = server.datadir.parent / "sock"
    opts = f"-p {server.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    _ctl(server, "-o", opts, "-l", str(server.datadir.parent / "log"), "-w", "-t", "30", "start")


def test_postgres_stopped_then_back_loses_nothing(own_postgres: PostgresServer) -> None:
    url = own_postgres.new_database()

    async def main() -> None:
        store = await open_store(url)
        events: dict[str, int] = {}

        def count(e: str, n: int = 1) -> None:
            events[e] = events.get(e, 0) + n

        q = CompletionQueue(on_event=count, batch_size=100)
        sink = SpendSink(store, on_event=count, backoff=0.05, max_backoff=0.5)
        q.add_sink(sink, buffer=10_000)
        q.start()
        for i in range(100):
            q.put(record(i, cost=0.001, key=f"k{i % 3}"))
        for _ in range(100):
            if sink.written == 100:
                break
            await asyncio.sleep(0.05)
        assert sink.written == 100
        await asyncio.to_thread(stop, own_postgres)
        t0 = time.monotonic()
        i = 100
        while time.monotonic() - t0 < 4.0:  # 4 s down, records still arriving
            for _ in range(50):
                q.put(record(i, cost=0.002, key=f"k{i % 3}"))
                i += 1
            await asyncio.sleep(0.1)
        assert sink.written == 100 and sink.failures >= 2 and events["spend_write_failed"] >= 2
        await asyncio.to_thread(start, own_postgres)
        deadline = time.monotonic() + 30
        while sink.written < i and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert sink.written == i and q.stats()["sink_dropped:spend"] == 0
        await q.aclose()
        sums = await check_counters(store)
        assert sums[("global", "")] == 100 * 1_000_000 + (i - 100) * 2_000_000
        await store.close()

    asyncio.run(main())
