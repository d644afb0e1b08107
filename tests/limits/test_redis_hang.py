"""Redis hung by SIGSTOP, then resumed by SIGCONT: the limiter's timeout bounds every request, and the return
to Redis refuses nothing the in-process limiter would admit.

A real ``redis-server`` is stopped with ``os.kill(pid, SIGSTOP)``: the kernel still completes TCP handshakes
(its listen backlog), so connecting succeeds and every reply simply never comes, the nastiest outage for a
client. Every test resumes Redis in a ``finally``. Durations are hang guards only (``BOUND`` is several
times the 0.5 s timeout; the bug made requests wait 14.5 s), never latency asserts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from relaygate.core.ratelimit import Bucket, Verdict
from relaygate.limits.redis import RedisDown, RedisLimiter
from relaygate.limits.resp import RedisAddress, connect, encode

pytestmark = pytest.mark.redis

TIMEOUT = 0.5
BOUND = 1.5
"""A request waits at most the timeout (0.5 s) for Redis; this guard leaves room for a loaded machine."""
BIG = Bucket.per_minute("{relaygate}:h:big", 1_000_000, "key", "requests")


@contextmanager
def hung(redis_server: Any) -> Iterator[None]:
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def fresh(i: int) -> Bucket:
    """A bucket never seen before: admitting it must wait for a call to Redis."""
    return Bucket.per_minute(f"{{relaygate}}:h:fresh:{i}:{time.monotonic_ns()}", 100, "key", "requests")


async def timed(lim: RedisLimiter, buckets: tuple[Bucket, ...]) -> tuple[str, float]:
    t = time.monotonic()
    try:
        v = await asyncio.wait_for(lim.acquire(buckets, (1.0,) * len(buckets)), 2 * BOUND)
        out = "ok" if v.ok else "429"
    except RedisDown:
        out = "503"
    except TimeoutError:  # the hang guard fired: recorded so the test fails instead of hanging
        out = "hang"
    return out, time.monotonic() - t


async def during_hang(lim: RedisLimiter) -> list[tuple[str, float]]:
    """Requests that issue a call, join the one in flight and queue behind it, over the first second."""
    tasks = []
    for i in range(40):
        tasks.append(asyncio.ensure_future(timed(lim, (fresh(i), BIG))))
        await asyncio.sleep(0.025)
    return list(await asyncio.gather(*tasks))


async def wait_back(lim: RedisLimiter) -> None:
    deadline = time.monotonic() + 15
    while lim.down and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not lim.down


@pytest.mark.parametrize("mode", ["local", "reject"])
def test_every_wait_is_bounded_by_the_timeout_while_redis_hangs(redis_server: Any, mode: str) -> None:
    async def main() -> list[tuple[str, float]]:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=TIMEOUT, on_failure=mode)
        try:
            assert (await lim.acquire((BIG,), (1.0,))).ok
            with hung(redis_server):
                return await during_hang(lim) + await during_hang(lim)
        finally:
            await lim.aclose()

    results = asyncio.run(main())
    assert max(d for _, d in results) < BOUND, results
    # nothing here could be served from a lease: local mode admits in-process, reject mode refuses
    assert {r for r, _ in results} == ({"ok"} if mode == "local" else {"503"}), results


def test_hung_connection_is_discarded_and_later_commands_do_not_wait_behind_it(redis_server: Any) -> None:
    async def main() -> tuple[type[BaseException], type[BaseException], bool, float]:
        loop = asyncio.get_running_loop()
        conn = await connect(RedisAddress("127.0.0.1", redis_server.port), TIMEOUT)
        with hung(redis_server):
            t = time.monotonic()
            first = asyncio.ensure_future(conn.request(encode(("PING",)), loop.time() + TIMEOUT))
            later = asyncio.ensure_future(conn.request(encode(("PING",)), loop.time() + 60))  # pipelined
            done = await asyncio.gather(first, later, return_exceptions=True)
            waited = time.monotonic() - t
        assert isinstance(done[0], BaseException) and isinstance(done[1], BaseException)
        return type(done[0]), type(done[1]), conn.closed, waited

    first, later, closed, waited = asyncio.run(main())
    assert first is TimeoutError
    assert later is ConnectionError  # failed with the discarded connection, not after its own 60 s
    assert closed and waited < BOUND


def test_after_resume_nothing_the_in_process_limiter_admits_is_refused(redis_server: Any) -> None:
    """Requests abandoned while they waited for the hung Redis (deadline passed, or the client went away) are
    never charged, so after SIGCONT a key with a huge rpm and a parallel limit admits a full burst, as the
    in-process limiter would."""
    par = Bucket.parallel("{relaygate}:h:par", 20, "key")

    async def one(lim: RedisLimiter, i: int) -> Verdict | None:
        bs = (fresh(i), BIG, par)
        try:
            v = await asyncio.wait_for(lim.acquire(bs, (1.0, 1.0, 1.0)), 2 * BOUND)
        except TimeoutError:  # the hang guard (the bug: queued requests waited until Redis was back)
            return None
        if v.ok:
            lim.adjust(bs, (0.0, 0.0, -1.0))
        return v

    async def main() -> tuple[list[Verdict | BaseException | None], list[Verdict]]:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=TIMEOUT)
        try:
            assert (await one(lim, -1)) is not None
            with hung(redis_server):
                first = asyncio.ensure_future(one(lim, -2))  # its call hangs
                await asyncio.sleep(0.05)
                queued = [asyncio.ensure_future(one(lim, i)) for i in range(30)]  # queued behind that call
                await asyncio.sleep(0.05)
                for t in queued[::2]:
                    t.cancel()  # clients that went away while their request waited for Redis
                during = await asyncio.gather(first, *queued, return_exceptions=True)
            await wait_back(lim)
            burst = await asyncio.gather(*(lim.acquire((BIG, par), (1.0, 1.0)) for _ in range(20)))
            for v in burst:
                if v.ok:
                    lim.adjust((BIG, par), (0.0, -1.0))
            burst += await asyncio.gather(*(lim.acquire((BIG, par), (1.0, 1.0)) for _ in range(20)))
            more = await asyncio.gather(*(lim.acquire((BIG,), (1.0,)) for _ in range(2000)))
            await lim.sync()
            last = await lim.acquire((BIG,), (1.0,))
            assert not lim.down and last.ok and not last.degraded  # shared limits again
            return list(during), list(burst) + list(more)
        finally:
            await lim.aclose()

    during, back = asyncio.run(main())
    assert [v.fail for v in back] == [-1] * len(back)
    answered = [v for v in during if not isinstance(v, BaseException)]
    assert len(answered) == 16 and all(isinstance(v, Verdict) and v.ok and v.degraded for v in answered)


def test_reject_mode_serves_again_soon_after_redis_is_back(redis_server: Any) -> None:
    """The reconnect backoff is capped (``PROBE_MAX``): after a long hang, ``reject`` stops refusing within
    about ``PROBE_MAX + timeout`` of Redis' return (it was up to 5 s more)."""
    async def main() -> float:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=TIMEOUT, on_failure="reject")
        try:
            assert (await lim.acquire((BIG,), (1.0,))).ok
            with hung(redis_server):
                results = [await timed(lim, (fresh(i),)) for i in range(3)]
                assert [r for r, _ in results] == ["503"] * 3
                await asyncio.sleep(5.3)  # attempts (each 0.5 s) after 0.2, 0.4, 0.8, 1.6, then 3.2 s (old cap 5 s)
            t = time.monotonic()
            for i in range(400):
                if (await timed(lim, (fresh(i),)))[0] == "ok":
                    break
                await asyncio.sleep(0.01)
            return time.monotonic() - t
        finally:
            await lim.aclose()

    assert asyncio.run(main()) < 2.5  # PROBE_MAX (1 s) + the timeout, with room for a loaded machine
