"""LiteLLM's key fields it keeps in the key's metadata, sent at the top level of ``/key/generate`` and
``/key/update``: a temporary budget increase (``temp_budget_increase`` until ``temp_budget_expiry``) that lets a
key past its ``max_budget`` until it ends, and ``enforced_params``; on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.asgi import Gateway
from relaygate.store import Key
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.budgets.test_budgets import BUDGET, refused
from tests.budgets.test_reset_spend import WRITE_NOW, admin, written
from tests.store.conftest import db_url  # noqa: F401  (both backends)


async def key_info(gw: Gateway, key: str) -> dict[str, Any]:
    r = await call(gw, "GET", f"/key/info?key={key}", headers={"authorization": f"Bearer {MASTER}"})
    assert r.status == 200, r.body
    info: dict[str, Any] = r.json()["info"]
    return info


def test_a_temporary_increase_lets_a_key_past_its_budget_until_it_ends(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **WRITE_NOW) as gw:
            assert gw.budgets is not None and gw.store is not None
            await gw.store.create_key(Key(token=token("sk-t"), max_budget=BUDGET, metadata={"team": "a"}))
            await gw.budgets.refresh()
            for _ in range(2):
                assert (await ask(gw, "sk-t")).status == 200
            refused(await ask(gw, "sk-t"), "Current cost: 6e-06")
            await written(gw, "key", token("sk-t"))  # the update reads the key's row again: its spend is in it

            # sent together, a number >= 0
            for body, param in (({"temp_budget_increase": 1.0}, "temp_budget_expiry"),
                                ({"temp_budget_expiry": "2030-01-01T00:00:00Z"}, "temp_budget_increase"),
                                ({"temp_budget_increase": -1.0, "temp_budget_expiry": "2030-01-01T00:00:00Z"},
                                 "temp_budget_increase")):
                r = await admin(gw, "/key/update", {"key": "sk-t", **body})
                assert r.status == 400 and r.json()["error"]["param"] == param, r.body

            ends = time.time() + 3.0
            expiry = datetime.fromtimestamp(ends, UTC).replace(tzinfo=None)  # no zone: UTC, as LiteLLM reads it
            r = await admin(gw, "/key/update", {"key": "sk-t", "temp_budget_increase": 0.000006,
                                                "temp_budget_expiry": expiry.isoformat()})
            assert r.status == 200, r.body
            info = await key_info(gw, "sk-t")
            meta = info["metadata"]
            assert meta["temp_budget_increase"] == 0.000006 and meta["team"] == "a", meta  # the rest kept
            assert datetime.fromisoformat(meta["temp_budget_expiry"]) == expiry.replace(tzinfo=UTC)
            assert info["max_budget"] == BUDGET  # the budget itself is unchanged

            r = await ask(gw, "sk-t")  # 6e-06 spent, 1.1e-05 while the increase lasts
            assert r.status == 200 and float(r.headers["x-litellm-key-max-budget"]) == BUDGET + 0.000006  # LiteLLM's
            assert (await ask(gw, "sk-t")).status == 200
            refused(await ask(gw, "sk-t"), "Max budget: 1.1e-05")
            await asyncio.sleep(max(0.0, ends - time.time()) + 0.3)
            refused(await ask(gw, "sk-t"), "Max budget: 5e-06")  # ended: the key's own budget again
            info_after = (await gw.principals.resolve_hash(token("sk-t"))).key
            assert info_after is not None and (b"x-litellm-key-max-budget", b"5e-06") in info_after.headers
            assert up.hits == 4

            # an expiry already past changes nothing
            past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            r = await admin(gw, "/key/update", {"key": "sk-t", "temp_budget_increase": 1.0, "temp_budget_expiry": past})
            assert r.status == 200, r.body
            refused(await ask(gw, "sk-t"), "Max budget: 5e-06")

    asyncio.run(main())


def test_enforced_params_sent_at_the_top_level(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/key/generate`` and ``/key/update`` take ``enforced_params`` at the top level and keep it in the
    key's metadata, where the request path reads it: a request without the field is LiteLLM's 400."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            r = await admin(gw, "/key/generate", {"enforced_params": ["user"], "metadata": {"team": "a"}})
            assert r.status == 200, r.body
            key = r.json()["key"]
            assert r.json()["metadata"] == {"team": "a", "enforced_params": ["user"]}, r.json()
            r = await ask(gw, key)
            assert r.status == 400 and "param=user" in r.json()["error"]["message"], r.body
            assert (await ask(gw, key, user="u1")).status == 200
            r = await admin(gw, "/key/update", {"key": key, "enforced_params": ["metadata.trace"]})
            assert r.status == 200, r.body
            assert (await ask(gw, key, user="u1")).status == 400
            assert (await ask(gw, key, metadata={"trace": "t"})).status == 200
            info = await key_info(gw, key)
            assert info["metadata"] == {"team": "a", "enforced_params": ["metadata.trace"]}, info

    asyncio.run(main())
