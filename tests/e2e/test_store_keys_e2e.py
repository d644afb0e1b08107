"""Keys in the database in real gateways (``relaygate serve``): a key written into the store answers, and a
key blocked behind the gateway's back is refused by every worker within the change poll's second; the
Redis key-change channel invalidates exactly the hashes it names."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from relaygate.auth.changes import KeyChanges
from relaygate.store import Key, hash_token, key_name, open_store
from tests.conftest import RedisServer, start_gateway
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {MASTER}
"""


def chat(url: str, key: str) -> int:
    req = urllib.request.Request(f"{url}/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
                                 .encode(),
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


async def write_key(db: str, key: str, **fields: object) -> None:
    store = await open_store(db)
    try:
        await store.create_key(Key(token=hash_token(key), key_name=key_name(key), **fields))  # type: ignore[arg-type]
    finally:
        await store.close()


async def block_key(db: str, key: str) -> None:
    store = await open_store(db)
    try:
        await store.update_key(hash_token(key), blocked=True)
    finally:
        await store.close()


def refused_everywhere_within(url: str, key: str, bound: float, probes: int = 8) -> float:
    t0 = time.monotonic()
    while True:
        if all(chat(url, key) == 401 for _ in range(probes)):
            return time.monotonic() - t0
        assert time.monotonic() - t0 < bound, "a worker kept serving the blocked key"
        time.sleep(0.05)


def test_sqlite_key_written_into_the_store_answers_then_blocked() -> None:
    with start_gateway(CONFIG) as gw:
        cfg_dir = Path(gw.proc.args[gw.proc.args.index("--config") + 1]).parent  # type: ignore[union-attr, index]
        db = f"sqlite:///{cfg_dir / 'relaygate.db'}"
        key = "sk-e2e-sqlite-key"
        assert chat(gw.url, key) == 401
        asyncio.run(write_key(db, key, models=["chat"]))
        deadline = time.monotonic() + 3.0
        while chat(gw.url, key) != 200:  # its negative cache entry goes with the change poll
            assert time.monotonic() < deadline
            time.sleep(0.05)
        asyncio.run(block_key(db, key))
        assert refused_everywhere_within(gw.url, key, 3.0) < 3.0


def test_postgres_two_workers_and_redis(postgres_server: PostgresServer, redis_server: RedisServer) -> None:
    db = postgres_server.new_database()
    config = CONFIG + f"  database_url: {db}\nrouter_settings:\n  redis_host: 127.0.0.1\n  redis_port: {redis_server.port}\n"
    with start_gateway(config, workers=2) as gw:
        key = "sk-e2e-pg-key"
        asyncio.run(write_key(db, key, rpm_limit=1000))
        deadline = time.monotonic() + 3.0
        while chat(gw.url, key) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert all(chat(gw.url, key) == 200 for _ in range(8))  # both workers
        asyncio.run(block_key(db, key))
        assert refused_everywhere_within(gw.url, key, 3.0) < 3.0


@pytest.mark.redis
def test_redis_channel_invalidates_the_named_hashes(redis_server: RedisServer) -> None:
    async def main() -> None:
        seen: list[str] = []
        clears: list[int] = []
        changes = KeyChanges(None, invalidate=seen.append, clear=lambda: clears.append(1), customers=lambda ids: None,
                             redis_url=redis_server.url)
        task = asyncio.ensure_future(changes.subscribe())
        try:
            deadline = time.monotonic() + 5
            while await changes.publish(["h1", "h2"]) == 0:  # until the subscription is up
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            while seen[-2:] != ["h1", "h2"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await changes.publish(None)
            while not clears:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
