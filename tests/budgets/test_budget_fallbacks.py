"""LiteLLM 1.110's ``budget_fallbacks`` of a key: when the key's own budget for the model asked for is spent,
the request is served by the first model of its chain still within its own budget, if the key may call it;
else the refusal stands. On SQLite and a real PostgreSQL, through the management API."""

from __future__ import annotations

import asyncio
from typing import Any

from relaygate.asgi import Gateway
from relaygate.store import Key
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.budgets.test_budgets import BUDGET, refused
from tests.store.conftest import db_url  # noqa: F401  (both backends)

CAPPED = {"budget_limit": BUDGET, "time_period": "1d"}  # two requests fit, the third finds 6e-06 spent


async def admin(gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = await call(gw, method, path, body, headers={"authorization": f"Bearer {MASTER}"})
    assert r.status == 200, (path, r.status, r.body)
    return r.json()


def test_a_spent_model_budget_falls_back_along_the_keys_chain(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            assert gw.budgets is not None
            made = await admin(gw, "POST", "/key/generate", {
                "key_alias": "fb", "model_max_budget": {"m": CAPPED},
                "budget_fallbacks": {"m": ["m2"]}})
            key = made["key"]
            assert made["budget_fallbacks"] == {"m": ["m2"]}
            info = await admin(gw, "GET", f"/key/info?key={key}")
            assert info["info"]["budget_fallbacks"] == {"m": ["m2"]}
            await gw.budgets.refresh()  # the guard learns that a budget exists (else within a refresh period)
            for _ in range(2):
                r = await ask(gw, key, model="m")
                assert r.status == 200 and r.json()["model"] == "m", r.body
            r = await ask(gw, key, model="m")  # the budget for m is spent: m2 serves the request
            assert r.status == 200, r.body
            assert r.json()["model"] == "m2" and up.hits == 3
            assert (await ask(gw, key, model="m2")).status == 200  # m2 has no budget of its own here

    asyncio.run(main())


def test_the_refusal_stands_without_an_allowed_fallback_within_budget(db_url: str) -> None:  # noqa: F811
    """A fallback the key may not call, one no model group has (the chain's first within budget is the one
    tried, as LiteLLM's), or one whose own budget is spent too, leaves LiteLLM's refusal; a key whose update
    clears its chain (null) is refused as before."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            assert gw.budgets is not None and gw.store is not None
            await gw.store.create_key(Key(token=token("sk-only-m"), key_alias="only", models=["m"],
                                          model_max_budget={"m": CAPPED}, budget_fallbacks={"m": ["m2"]}))
            await gw.store.create_key(Key(token=token("sk-unknown"), model_max_budget={"m": CAPPED},
                                          budget_fallbacks={"m": ["m-unknown", "m2"]}))
            await gw.store.create_key(Key(token=token("sk-both"), key_alias="both",
                                          model_max_budget={"m": CAPPED, "m2": CAPPED},
                                          budget_fallbacks={"m": ["m2"]}))
            await gw.budgets.refresh()
            for key in ("sk-only-m", "sk-unknown", "sk-both"):
                for _ in range(2):
                    assert (await ask(gw, key, model="m")).status == 200
            refused(await ask(gw, "sk-only-m", model="m"), "exceeded budget for model=m")  # m2 not allowed
            refused(await ask(gw, "sk-unknown", model="m"), "exceeded budget for model=m")  # no group m-unknown
            for _ in range(2):
                assert (await ask(gw, "sk-both", model="m2")).status == 200
            refused(await ask(gw, "sk-both", model="m"), "exceeded budget for model=m")  # m2's spent too

            await admin(gw, "POST", "/key/update", {"key": "sk-both", "model_max_budget": {"m": CAPPED},
                                                    "budget_fallbacks": {"m": ["m2"]}})
            r = await ask(gw, "sk-both", model="m")  # m2 within budget again (its cap removed): served by it
            assert r.status == 200 and r.json()["model"] == "m2", r.body
            await admin(gw, "POST", "/key/update", {"key": "sk-both", "budget_fallbacks": None})
            assert (await gw.store.get_key(token("sk-both"))).budget_fallbacks == {}
            refused(await ask(gw, "sk-both", model="m"), "exceeded budget for model=m")

    asyncio.run(main())
