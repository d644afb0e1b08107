"""Keys through Redis (auth.shared): a worker's cache, then Redis, then the database, with a real
redis-server and two gateways on one database file: a key read from the database by one worker is served to
the other from Redis; a key blocked on one is never served from Redis by the other; entries of an older
change version are refused; Redis down means the database, not an error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.auth.shared import PREFIX
from relaygate.config import from_litellm
from relaygate.store import Budget, Key, Team, TeamMember, hash_token, key_name
from tests.asgi.conftest import Reply, call
from tests.conftest import RedisServer

pytestmark = pytest.mark.redis

MASTER = "sk-master-shared-keys"


def gateway(db: Path, redis: RedisServer) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{db}"},
        "router_settings": {"redis_host": "127.0.0.1", "redis_port": redis.port},
    }, "<test>"))


async def chat(gw: Gateway, key: str) -> Reply:
    return await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                      headers={"authorization": f"Bearer {key}"})


def store_keys(gw: Gateway) -> Any:
    """The gateway's StoreKeys (the resolver's lookup, or the store part of a chain)."""
    found = gw.principals.lookup
    for part in getattr(found, "lookups", (found,)):
        if hasattr(part, "shared"):
            return part
    raise AssertionError("no store lookup")


async def eventually(check: Any, within: float = 3.0) -> None:
    t0 = time.monotonic()
    while not await check():
        assert time.monotonic() - t0 < within, "not within the bound"
        await asyncio.sleep(0.05)


def test_keys_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> None:
        a, b = gateway(tmp_path / "k.db", redis_server), gateway(tmp_path / "k.db", redis_server)
        await a.startup()
        await b.startup()
        try:
            assert a.store is not None and a.shared_keys is not None and b.shared_keys is not None
            clear = "sk-shared-through-redis-1"
            await a.store.create_key(Key(token=hash_token(clear), key_name=key_name(clear)))
            sa, sb = store_keys(a), store_keys(b)
            assert (await chat(a, clear)).status == 200 and sa.queries == 1  # from the database ...
            await eventually(lambda: _exists(a, hash_token(clear)))  # ... kept in Redis in the background
            assert (await chat(b, clear)).status == 200
            assert sb.queries == 0 and b.shared_keys.hits == 1  # the other worker: from Redis, no query

            # blocked on A: B forgets it at once (Redis pub/sub) and never reads the old rows back from Redis
            r = await call(a, "POST", "/key/block", {"key": clear}, headers={"authorization": f"Bearer {MASTER}"})
            assert r.status == 200, r.body

            async def refused() -> bool:
                return (await chat(b, clear)).status == 401
            await eventually(refused, within=1.5)
            assert (await chat(a, clear)).status == 401

            # an entry written under an older change version is refused once the worker knows the new one:
            # a blocked copy of version 0 in Redis is not what B serves for a key the database has unblocked
            other = "sk-shared-through-redis-2"
            await a.store.create_key(Key(token=hash_token(other), key_name=key_name(other)))
            assert b.key_changes is not None
            await b.key_changes.poll_once()
            assert b.shared_keys.version() > 0
            stale = Key(token=hash_token(other), key_name=key_name(other), blocked=True)
            b.shared_keys.put(hash_token(other), 0, (stale, None, None, None, None))
            await eventually(lambda: _exists(b, hash_token(other)))
            b.principals.clear()
            before = sb.queries
            assert (await chat(b, other)).status == 200 and sb.queries == before + 1

            # a team member's rate limits travel with the rows: the other worker, reading them from Redis,
            # builds the same member buckets
            await a.store.create_team(Team(team_id="t"))
            await a.store.add_team_members("t", [TeamMember(team_id="t", user_id="ann")])
            await a.store.create_budget(Budget(budget_id="ann-own", rpm_limit=7))
            await a.store.update_team_member("t", "ann", budget_id="ann-own")
            member = "sk-shared-member"
            await a.store.create_key(Key(token=hash_token(member), key_name=key_name(member), team_id="t",
                                         user_id="ann"))
            assert a.key_changes is not None
            await a.key_changes.poll_once()  # both know the version of these writes: A's entry is current for B
            await b.key_changes.poll_once()
            assert (await chat(a, member)).status == 200
            await eventually(lambda: _exists(a, hash_token(member)))
            before, hits = sb.queries, b.shared_keys.hits
            r = await chat(b, member)
            assert r.status == 200 and sb.queries == before and b.shared_keys.hits == hits + 1
            assert r.headers["x-ratelimit-team_member-limit-requests"] == "7"

            # Redis down: lookups go to the database, answers are unchanged
            redis_server.stop()
            third = "sk-shared-through-redis-3"
            await a.store.create_key(Key(token=hash_token(third), key_name=key_name(third)))
            before = sb.queries
            assert (await chat(b, third)).status == 200 and sb.queries == before + 1
        finally:
            await a.shutdown()
            await b.shutdown()

    asyncio.run(main())


async def _exists(gw: Gateway, token_hash: str) -> bool:
    assert gw.shared_keys is not None
    return bool(await gw.shared_keys.redis.exists(PREFIX + token_hash))
