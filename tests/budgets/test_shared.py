"""Two gateways sharing a store and a real Redis enforce one counter per budget: what one spends, the
other refuses on, before its key rows are read again (spend logs are off, so the rows never move: only
the Redis counter can carry the spend across)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from relaygate.budgets.shared import PREFIX, UNIT
from relaygate.cost import to_pico
from relaygate.store import Key
from tests.budgets.conftest import ask, gateway, token, upstream
from tests.budgets.test_budgets import BUDGET, refused
from tests.conftest import RedisServer


def test_two_gateways_share_one_counter(tmp_path: Path, redis_server: RedisServer) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = {"router_settings": {"redis_url": redis_server.url},
                "general_settings": {"disable_spend_logs": True, "user_api_key_cache_ttl": 600}}

    async def main() -> None:
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_server.url)
        async with upstream() as up, gateway(url, up, **settings) as a, gateway(url, up, **settings) as b:
            await a.store.create_key(Key(token=token("sk-shared"), max_budget=BUDGET))
            await a.budgets.refresh()
            await b.budgets.refresh()
            assert (await ask(b, "sk-shared")).status == 200  # b reads the rows (spend 0) and spends 3e-6
            assert (await ask(a, "sk-shared")).status == 200  # a: 3e-6 of its own, 6e-6 in Redis
            deadline = time.monotonic() + 10
            while True:  # the increments reach Redis off the request path
                vals = [int(v) for v in await r.mget(await r.keys(f"{PREFIX}key:*")) if v is not None]
                if sum(vals) >= to_pico(6e-6) // UNIT:  # nano-USD
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            refused(await ask(b, "sk-shared"), "Current cost: 6e-06")  # b saw only 3e-6 itself
            refused(await ask(a, "sk-shared"), "Current cost: 6e-06")
            assert up.hits == 2
            ttl = await r.ttl((await r.keys(f"{PREFIX}key:*"))[0])
            assert ttl > 0  # every counter expires
        await r.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("reserve", [False, True], ids=["no-holds", "holds"])
def test_two_hundred_concurrent_requests_overshoot_by_at_most_those_in_flight(tmp_path: Path, redis_server: RedisServer,
                                                                              reserve: bool) -> None:
    """200 requests, 20 at a time, alternating between two gateways sharing Redis, on a key whose budget
    holds 10 of them, and every request not let through is refused with ``budget_exceeded`` before the upstream.

    - Without reservations (``disable_budget_reservation``): the upstream sees the 10 plus at most the requests in
      flight when the budget was crossed (20; a second 20 of slack for the ~1 ms each gateway batches its
      completions for).
    - With them (the default; each request asks ``max_tokens: 1``, so it holds ~3x what it costs): a gateway
      lets through only what its own holds leave room for, so the overshoot is at most what the *other*
      gateway has in flight (20), and requests are refused while holds fill the budget, so fewer than 10 may pass.
    """
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = {"router_settings": {"redis_url": redis_server.url},
                "general_settings": {"disable_budget_reservation": not reserve}}
    concurrency, fits = 20, 10

    async def main() -> None:
        async with upstream(delay=0.01) as up, gateway(url, up, **settings) as a, gateway(url, up, **settings) as b:
            await a.store.create_key(Key(token=token("sk-many"), max_budget=fits * 3e-6 - 1e-7))
            await a.budgets.refresh()
            await b.budgets.refresh()
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int) -> int:
                async with sem:
                    return (await ask(a if i % 2 else b, "sk-many", max_tokens=1)).status

            statuses = await asyncio.gather(*(one(i) for i in range(200)))
            ok = statuses.count(200)
            assert ok == up.hits and statuses.count(422) == 200 - ok
            if reserve:
                assert 1 <= ok <= fits + concurrency, ok
                assert not a.budgets.holds.live and not b.budgets.holds.live  # every hold released
                assert all(t.held == 0 for g in (a, b) for t in g.budgets.tallies.values())
            else:
                assert fits <= ok <= fits + 2 * concurrency, ok

    asyncio.run(main())


def test_counters_pass_what_pico_usd_hold_in_64_bits(redis_server: RedisServer) -> None:
    """The counters hold nano-USD: 9.2 billion USD a period, where pico-USD stopped at 9.2 million (Redis refused
    every ``INCRBY`` past it, so a provider's or a team's monthly budget over that was no longer shared); the
    rest under a nano-USD is carried to the counter's next increment, so nothing is lost to rounding."""
    from types import SimpleNamespace

    from relaygate.budgets.limits import FOREVER
    from relaygate.budgets.shared import SharedSpend, counter

    async def main() -> None:
        shared = SharedSpend(redis_server.url)
        lim = SimpleNamespace(kind="provider", ident="openai", tally=SimpleNamespace(start=0.0))

        async def settled() -> None:
            while shared._flushing:
                await asyncio.sleep(0.01)

        try:
            await shared.redis.delete(counter("provider", "openai", 0.0))
            for _ in range(2):
                shared.add("provider", "openai", 0.0, FOREVER, to_pico(6_000_000.0))
                await settled()
            for _ in range(3):  # 0.4 nano-USD each: 1 sent, 0.2 carried
                shared.add("provider", "openai", 0.0, FOREVER, 400)
                await settled()
            raw = await shared.redis.get(counter("provider", "openai", 0.0))
            assert int(raw) == 12_000_000 * 10**9 + 1
            assert await shared.read([lim]) == [to_pico(12_000_000.0) + UNIT]  # type: ignore[list-item]
            shared.add("provider", "openai", 0.0, FOREVER, 800)  # with the 200 carried: one more nano-USD
            await settled()
            assert await shared.read([lim]) == [to_pico(12_000_000.0) + 2 * UNIT]  # type: ignore[list-item]
            assert await shared.set_spend("provider", "openai", to_pico(10_000_000.0)) == 1
            assert await shared.read([lim]) == [to_pico(10_000_000.0)]  # type: ignore[list-item]
        finally:
            await shared.aclose()

    asyncio.run(main())
