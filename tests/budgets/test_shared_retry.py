"""Budget counters in Redis (``budgets.shared.SharedSpend``) across a Redis that is not there yet: increments that
could not be sent (no connection) are kept and sent once a real redis-server listens, with what was added
meanwhile; nothing is counted twice; a failure that may have reached Redis is not sent again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from relaygate.budgets import shared
from relaygate.budgets.shared import FOREVER, UNIT, SharedSpend, counter, unsent
from tests.conftest import RedisServer, _spawn_redis, free_port


def test_increments_wait_for_redis_and_count_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "RETRY_FIRST", 0.2)  # retries within the test's seconds
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def main() -> None:
        spend = SharedSpend(url)
        spend.add("key", "k1", 0.0, FOREVER, 5 * UNIT)
        await asyncio.sleep(0.5)  # the first flush found nothing listening
        spend.add("key", "k1", 0.0, FOREVER, 2 * UNIT)  # added while Redis is away: sent with the rest
        server = RedisServer(_spawn_redis(port, tmp_path), port, tmp_path)
        try:
            probe = aioredis.from_url(url)
            deadline = time.monotonic() + 20
            got = None
            while time.monotonic() < deadline:
                try:
                    got = await probe.get(counter("key", "k1", 0.0))
                except Exception:
                    got = None
                if got is not None and int(got) == 7:
                    break
                await asyncio.sleep(0.1)
            assert got is not None and int(got) == 7, got
            spend.add("key", "k1", 0.0, FOREVER, 1 * UNIT)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if int(await probe.get(counter("key", "k1", 0.0)) or 0) == 8:
                    break
            assert int(await probe.get(counter("key", "k1", 0.0)) or 0) == 8  # counted once each
            await probe.aclose()
            await spend.aclose()
        finally:
            server.stop()

    asyncio.run(main())


def test_what_may_have_been_sent_is_not_sent_again() -> None:
    import redis.exceptions as rex

    assert unsent(rex.ConnectionError("Error 111 connecting to 127.0.0.1:9. Connection refused."))
    assert unsent(rex.TimeoutError("Timeout connecting to server"))
    assert unsent(ConnectionRefusedError(111, "Connection refused"))
    assert not unsent(rex.TimeoutError("Timeout reading from 127.0.0.1:6379"))
    assert not unsent(TimeoutError())
    assert not unsent(rex.ResponseError("WRONGTYPE"))
