"""A key regenerated with a grace period (LiteLLM's ``grace_period`` / ``LITELLM_KEY_ROTATION_GRACE_PERIOD``) on
SQLite and a real PostgreSQL server: the old key keeps working as the new one until its end, through a second
regeneration too, and stops at its end, at once (with its whole chain) on a regeneration without a grace
period, and when the key it stands for is gone; a malformed grace period is a 400 (from the body) or no grace at all (from the environment)."""

from __future__ import annotations

import asyncio

import pytest

from relaygate.store import hash_token
from tests.management.conftest import Env, api_error, run

CHAT = {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}


async def _works(env: Env, key: str) -> bool:
    r = await env.call("POST", "/v1/chat/completions", CHAT, key=key)
    assert r.status in (200, 401), (r.status, r.body)
    return r.status == 200


async def _regenerate(env: Env, key: str, **body: object) -> str:
    return str((await env.ok("POST", f"/key/{key}/regenerate", body))["key"])


def test_grace_period(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_KEY_ROTATION_GRACE_PERIOD", raising=False)

    async def body(env: Env) -> None:
        k1 = await env.user("u1", key_alias="rotating")
        assert await _works(env, k1)
        k2 = await _regenerate(env, k1, grace_period="1h")
        assert await _works(env, k1) and await _works(env, k2)
        info = await env.ok("GET", f"/key/info?key={k2}")
        assert info["info"]["key_alias"] == "rotating"
        k3 = await _regenerate(env, k2, grace_period="1h")  # the first key follows the chain to the newest
        assert await _works(env, k1) and await _works(env, k2) and await _works(env, k3)
        k4 = await _regenerate(env, k3, grace_period="1h", key_alias="renamed")
        env.gw.runtime.principals.clear()
        assert await _works(env, k1) and await _works(env, k4)  # still keys of the chain, now standing for the fourth
        k5 = await _regenerate(env, k4)  # no grace period: a revocation, of the whole chain
        env.gw.runtime.principals.clear()  # (the old keys are read again within seconds anyway)
        assert not await _works(env, k4) and not await _works(env, k1) and not await _works(env, k2)
        assert await _works(env, k5)

        short = await env.user("u2")
        k6 = await _regenerate(env, short, grace_period="3s")
        assert await _works(env, short) and await _works(env, k6)
        await asyncio.sleep(3.2)  # its end: not cached past it
        assert not await _works(env, short) and await _works(env, k6)

        other = await env.user("u3")
        k8 = await _regenerate(env, other, grace_period="1d")
        await env.ok("POST", "/key/delete", {"keys": [k8]})
        env.gw.runtime.principals.clear()  # the old key is read again within seconds anyway
        assert not await _works(env, other)

        api_error(await env.call("POST", f"/key/{k6}/regenerate", {"grace_period": "forever"}), 400, "grace_period")
        api_error(await env.call("POST", f"/key/{k6}/regenerate", {"grace_period": "99999999999d"}), 400,
                  "grace_period is at most")
        async with env.store._read() as c:
            rows = await c.fetch("SELECT token, active_token FROM rg_deprecated_keys", [])
        assert {r["token"] for r in rows}.isdisjoint({hash_token(k) for k in (k1, k2, k3, k4)})  # revoked
        assert hash_token(short) not in {r["token"] for r in rows}  # expired rows go at the next regeneration

        monkeypatch.setenv("LITELLM_KEY_ROTATION_GRACE_PERIOD", "2h")
        k9 = await _regenerate(env, k6)
        assert await _works(env, k6) and await _works(env, k9)
        monkeypatch.setenv("LITELLM_KEY_ROTATION_GRACE_PERIOD", "soon")  # malformed: logged, no grace
        k10 = await _regenerate(env, k9)
        assert not await _works(env, k9) and await _works(env, k10)
        k11 = await _regenerate(env, k10, grace_period="")  # the body's empty value: none, whatever the environment
        assert not await _works(env, k10) and await _works(env, k11)

    run(db_url, body)
