"""A spend an admin sets back (``/key/{key}/reset_spend``, ``/global/spend/reset``, ``/key/update`` with
``spend``) frees the budget at once: in the worker that served the call, in another gateway on the same store,
and through the budget counters shared in a real Redis, which would otherwise go on holding the period's old
total (for a budget without ``budget_duration``, for 400 days). Redis failing is a 503 that says what happened."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from relaygate.asgi import Gateway
from relaygate.budgets.shared import PREFIX, UNIT
from relaygate.store import Key, Team
from tests.asgi.conftest import Reply, call
from tests.budgets.conftest import COST, MASTER, ask, gateway, token, upstream
from tests.budgets.test_budgets import BUDGET, refused
from tests.conftest import RedisServer

WRITE_NOW = {"general_settings": {"proxy_batch_write_at": 0}}


async def admin(gw: Gateway, path: str, body: dict[str, Any] | None = None) -> Reply:
    return await call(gw, "POST", path, body, headers={"authorization": f"Bearer {MASTER}"})


async def written(gw: Gateway, kind: str, ident: str) -> None:
    """Until the spend sink has written the entity's spend to its row (nothing pending in the guard's tally)."""
    assert gw.budgets is not None
    deadline = time.monotonic() + 5
    while gw.budgets.tallies[(kind, ident)].pending:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def answered(gw: Gateway, key: str) -> Reply:
    """The key's next answer once it is no longer refused (another worker reads its rows again within ~1 s)."""
    deadline = time.monotonic() + 5
    while True:
        r = await ask(gw, key)
        if r.status != 422 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.1)


def test_reset_key_spend_frees_its_budget(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **WRITE_NOW) as gw:
            assert gw.budgets is not None and gw.store is not None
            await gw.store.create_key(Key(token=token("sk-r"), max_budget=BUDGET))  # two requests fit
            await gw.budgets.refresh()
            for _ in range(2):
                assert (await ask(gw, "sk-r")).status == 200
            refused(await ask(gw, "sk-r"), "Current cost: 6e-06")
            await written(gw, "key", token("sk-r"))
            r = await admin(gw, "/key/sk-r/reset_spend", {"reset_to": 0})
            assert r.status == 200 and r.json()["previous_spend"] == 2 * COST, r.body
            assert (await ask(gw, "sk-r")).status == 200  # counted from 0 again
            assert (await ask(gw, "sk-r")).status == 200
            refused(await ask(gw, "sk-r"), "Current cost: 6e-06")
            await written(gw, "key", token("sk-r"))
            r = await admin(gw, "/key/update", {"key": "sk-r", "spend": 0})  # the other way an admin sets it
            assert r.status == 200, r.body
            assert (await ask(gw, "sk-r")).status == 200
            assert up.hits == 5

    asyncio.run(main())


def test_global_reset_frees_team_budgets(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **WRITE_NOW) as gw:
            assert gw.budgets is not None and gw.store is not None
            await gw.store.create_team(Team(team_id="tr", max_budget=BUDGET))  # two requests fit, a third too
            await gw.store.create_key(Key(token=token("sk-tr"), team_id="tr"))  # (a team is refused past it)
            await gw.budgets.refresh()
            for _ in range(2):
                assert (await ask(gw, "sk-tr")).status == 200
            refused(await ask(gw, "sk-tr"), "Team=tr Current cost: 6e-06")
            await written(gw, "team", "tr")
            r = await admin(gw, "/global/spend/reset")
            assert r.status == 200 and r.json()["status"] == "success", r.body
            assert (await gw.store.get_team("tr")).spend == 0.0
            assert (await ask(gw, "sk-tr")).status == 200

    asyncio.run(main())


def test_a_reset_reaches_the_counters_shared_in_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    """Two gateways on one store and one Redis: the key's spend reaches the shared counter and both refuse it;
    after the reset through one of them, the counter holds the new spend and the other answers again (it
    reads the key's rows again within a second, and the counter no longer says otherwise)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings: dict[str, Any] = {"router_settings": {"redis_url": redis_server.url},
                                "general_settings": {"proxy_batch_write_at": 0}}

    async def main() -> None:
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_server.url)
        async with upstream() as up, gateway(url, up, **settings) as a, gateway(url, up, **settings) as b:
            assert a.budgets is not None and b.budgets is not None and a.store is not None
            await a.store.create_key(Key(token=token("sk-sh"), max_budget=BUDGET))
            await a.store.create_key(Key(token=token("sk-other"), max_budget=BUDGET))
            await a.budgets.refresh()
            await b.budgets.refresh()
            assert (await ask(a, "sk-sh")).status == 200
            assert (await ask(b, "sk-sh")).status == 200
            assert (await ask(b, "sk-other")).status == 200
            names = {"sk-sh": [], "sk-other": []}
            deadline = time.monotonic() + 5
            while True:  # the increments reach Redis off the request path
                for k in names:
                    names[k] = await r.keys(f"{PREFIX}key:{token(k)}:*")
                values = [int(v or 0) for v in await r.mget(names["sk-sh"])] if names["sk-sh"] else [0]
                if sum(values) >= 2 * 3_000_000 // UNIT and names["sk-other"]:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            refused(await ask(b, "sk-sh"), "Current cost: 6e-06")
            await written(a, "key", token("sk-sh"))
            await written(b, "key", token("sk-sh"))
            other_before = await r.get(names["sk-other"][0])
            reply = await admin(a, "/key/sk-sh/reset_spend", {"reset_to": 0})
            assert reply.status == 200, reply.body
            assert [await r.get(n) for n in names["sk-sh"]] == [b"0"] * len(names["sk-sh"])
            assert await r.ttl(names["sk-sh"][0]) > 0  # the counter keeps its expiry
            assert await r.get(names["sk-other"][0]) == other_before  # another key's counter is left alone
            assert (await answered(b, "sk-sh")).status == 200
            assert (await ask(a, "sk-sh")).status == 200
            await admin(a, "/global/spend/reset")
            for n in names["sk-other"]:
                assert await r.get(n) == b"0"
        await r.aclose()

    asyncio.run(main())


def test_redis_failing_during_a_reset_is_a_503_saying_what_happened(tmp_path: Path,
                                                                     redis_server: RedisServer) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    settings: dict[str, Any] = {"router_settings": {"redis_url": redis_server.url}}

    async def main() -> None:
        async with upstream() as up, gateway(url, up, **settings) as gw:
            assert gw.store is not None and gw.budgets is not None and gw.budgets.shared is not None
            await gw.store.create_key(Key(token=token("sk-down"), max_budget=1.0, spend=0.5))
            redis_server.stop()
            r = await admin(gw, "/key/sk-down/reset_spend", {"reset_to": 0.25})
            assert r.status == 503, r.body
            err = r.json()["error"]
            assert err["type"] == "service_unavailable" and err["code"] == "503", err
            assert "set in the database" in err["message"] and "Repeat the call" in err["message"], err
            assert (await gw.store.get_key(token("sk-down"))).spend == 0.25  # the database holds it
            assert (await ask(gw, "sk-down")).status == 200  # requests are unaffected

    asyncio.run(main())
