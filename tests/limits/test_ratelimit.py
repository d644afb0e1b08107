"""Rate-limit arithmetic: core.ratelimit (in-process) and the Redis limiter, run against the same cases.

The Redis cases use a real ``redis-server`` (``redis_server`` fixture of tests/conftest.py: a missing binary
fails the test). Refill over a test's few milliseconds is below one token for the limits used, and the
limits of the shared scenario are small enough that a lease is one unit (``Lmax = max(1, 5%)``), so the two
implementations must agree exactly on admissions and (floored) remaining levels. The lease tolerance itself
is tested in tests/limits/test_leases.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from relaygate.core.ratelimit import Bucket, LocalBuckets, Verdict
from relaygate.limits import Limiter
from relaygate.limits.redis import RedisLimiter
from relaygate.limits.resp import RedisAddress, encode, parse

Acquire = Callable[[tuple[Bucket, ...], tuple[float, ...]], Awaitable[Verdict]]
Adjust = Callable[[tuple[Bucket, ...], tuple[float, ...]], Awaitable[None]]

RPM = Bucket.per_minute("{relaygate}:t:rpm", 5, "key", "requests")
SMALL = Bucket.per_minute("{relaygate}:t:small", 2, "deployment", "requests")
TPM = Bucket.per_minute("{relaygate}:t:tpm", 100, "key", "tokens")
PAR = Bucket.parallel("{relaygate}:t:par", 2, "key")


async def scenario(acquire: Acquire, adjust: Adjust) -> list[Any]:
    """A fixed sequence; returns what an implementation answered at each step."""
    out: list[Any] = []
    for _ in range(7):  # burst of 7 against rpm=5
        v = await acquire((RPM,), (1.0,))
        out.append((v.fail, int(v.remaining[0] // 1)))
    for _ in range(3):  # all or nothing: SMALL refuses the third, BIG must not be charged
        big = Bucket.per_minute("{relaygate}:t:big", 50, "key", "requests")
        v = await acquire((big, SMALL), (1.0, 1.0))
        out.append((v.fail, int(v.remaining[0] // 1), int(v.remaining[1] // 1)))
    v = await acquire((TPM,), (150.0,))  # a big prompt is admitted while budget is left: debt
    out.append((v.fail, int(v.remaining[0] // 1)))
    v = await acquire((TPM,), (1.0,))
    out.append((v.fail, v.reset[0] > 0))
    await adjust((TPM,), (120.0,))  # reconciliation: the call used 30 tokens, not 150
    v = await acquire((TPM,), (10.0,))
    out.append((v.fail, int(v.remaining[0] // 1)))
    for _ in range(3):
        v = await acquire((PAR,), (1.0,))
        out.append((v.fail, v.remaining[0]))
    await adjust((PAR,), (-1.0,))
    v = await acquire((PAR,), (1.0,))
    out.append((v.fail, v.remaining[0]))
    return out


EXPECTED = [
    (-1, 4), (-1, 3), (-1, 2), (-1, 1), (-1, 0), (0, 0), (0, 0),
    (-1, 49, 1), (-1, 48, 0), (1, 48, 0),
    (-1, -50),
    (0, True),
    (-1, 60),
    (-1, 1.0), (-1, 0.0), (0, 0.0),
    (-1, 0.0),
]


def test_local_buckets() -> None:
    b = LocalBuckets()
    clock = [1000.0]

    async def acquire(bs: tuple[Bucket, ...], cs: tuple[float, ...]) -> Verdict:
        return b.acquire(bs, cs, clock[0])

    async def adjust(bs: tuple[Bucket, ...], ds: tuple[float, ...]) -> None:
        b.adjust(bs, ds, clock[0])

    assert asyncio.run(scenario(acquire, adjust)) == EXPECTED


def test_local_refill_and_reset() -> None:
    b = LocalBuckets()
    bucket = Bucket.per_minute("k", 60, "key", "requests")  # one per second
    for _ in range(60):
        assert b.acquire((bucket,), (1.0,), 0.0).ok
    v = b.acquire((bucket,), (1.0,), 0.0)
    assert not v.ok and v.reset[0] == pytest.approx(1.0)
    assert b.acquire((bucket,), (1.0,), 1.0).ok
    v = b.acquire((bucket,), (1.0,), 31.0)
    assert v.ok and v.remaining[0] == pytest.approx(29.0) and v.reset[0] == pytest.approx(31.0)
    assert b.acquire((bucket,), (1.0,), 10_000.0).remaining[0] == 59.0  # never above capacity


def test_bucket_validation() -> None:
    with pytest.raises(ValueError):
        Bucket("k", "x", 1, 1, "key", "requests")
    with pytest.raises(ValueError):
        Bucket("k", "t", 0, 1, "key", "requests")


def test_resp_codec() -> None:
    assert encode(("GET", b"k", 3, 1.5)) == b"*4\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n3\r\n$3\r\n1.5\r\n"
    data = b"*3\r\n:1\r\n$-1\r\n*2\r\n$2\r\nab\r\n-ERR no\r\n"
    value, pos = parse(data, 0)
    assert value[:2] == [1, None] and value[2][0] == b"ab" and str(value[2][1]) == "ERR no"
    assert pos == len(data)


@pytest.mark.redis
def test_redis_matches_local(redis_server: Any) -> None:
    async def main() -> list[Any]:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=2.0)
        try:
            async def adjust(bs: tuple[Bucket, ...], ds: tuple[float, ...]) -> None:
                lim.adjust(bs, ds)
                await lim.sync()  # reports and returns ride on the next call

            out = await scenario(lim.acquire, adjust)
            assert not lim.down
            return out
        finally:
            await lim.aclose()

    assert asyncio.run(main()) == EXPECTED


@pytest.mark.redis
def test_redis_batches_concurrent_requests_exactly(redis_server: Any) -> None:
    bucket = Bucket.per_minute("{relaygate}:t:batch", 100, "key", "requests")

    async def main() -> tuple[int, int, int]:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=2.0)
        try:
            verdicts = await asyncio.gather(*(lim.acquire((bucket,), (1.0,)) for _ in range(250)))
            return sum(v.ok for v in verdicts), lim.calls, lim.batched
        finally:
            await lim.aclose()

    admitted, calls, batched = asyncio.run(main())
    assert admitted == 100  # refill in the run is far below one token (100/min)
    assert batched == 250 and calls < 250


@pytest.mark.redis
def test_redis_down_serves_locally_then_recovers(redis_server: Any) -> None:
    bucket = Bucket.per_minute("{relaygate}:t:down", 3, "key", "requests")

    class Metrics:
        def __init__(self) -> None:
            self.events: dict[str, int] = {}

        def count(self, event: str, n: int = 1) -> None:
            self.events[event] = self.events.get(event, 0) + n

    metrics = Metrics()

    async def main() -> None:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=0.5, metrics=metrics)
        try:
            assert (await lim.acquire((bucket,), (1.0,))).ok
            redis_server.stop()
            await lim.sync()  # the next call finds Redis gone (requests meanwhile spend their lease)
            assert lim.down
            results = [await lim.acquire((bucket,), (1.0,)) for _ in range(4)]
            assert all(r.degraded for r in results)
            assert [r.ok for r in results] == [True, True, True, False]  # in-process bucket of 3
            redis_server.start()
            for _ in range(200):
                if not lim.down:
                    break
                await asyncio.sleep(0.05)
            assert not lim.down
            v = await lim.acquire((bucket,), (1.0,))
            assert not v.degraded and v.fail == -1  # shared bucket again (fresh server: full)
        finally:
            await lim.aclose()

    asyncio.run(main())
    assert metrics.events == {"redis_limiter_down": 1, "redis_limiter_recovered": 1}


@pytest.mark.redis
def test_redis_reject_mode(redis_server: Any) -> None:
    from relaygate.limits.redis import RedisDown

    async def main() -> None:
        lim = RedisLimiter(RedisAddress("127.0.0.1", redis_server.port), timeout=0.5, on_failure="reject")
        try:
            redis_server.stop()
            with pytest.raises(RedisDown):
                await lim.acquire((RPM,), (1.0,))
            with pytest.raises(RedisDown):
                await lim.acquire((RPM,), (1.0,))
        finally:
            await lim.aclose()

    asyncio.run(main())


def test_base_limiter_is_in_process() -> None:
    async def main() -> list[bool]:
        lim = Limiter()
        await lim.start()
        out = [(await lim.acquire((SMALL,), (1.0,))).ok for _ in range(3)]
        lim.adjust((SMALL,), (0.0,))
        await lim.aclose()
        return out

    assert asyncio.run(main()) == [True, True, False]
