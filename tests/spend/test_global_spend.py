"""``/global/spend`` as LiteLLM answers it: the spend of the last 30 days of spend logs (its
``MonthlyGlobalSpend`` view) and ``litellm_settings.max_budget``, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store.spend import write_spend_values
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, gateway, upstream
from tests.store.conftest import db_url  # noqa: F401  (both backends)

DAY = 86400.0


def _record(call_id: str, cost: float, start: float) -> CompletionRecord:
    return CompletionRecord(
        call_id=call_id, route="chat", stream=False, model="m", model_group="m", deployment_id="d0",
        provider="openai", upstream_model="m", key_hash=None, key_alias=None, team_id=None, user_id=None,
        status=200, outcome=Outcome.OK, prompt_tokens=10, completion_tokens=5, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=cost, cache_hit=False, retries=0,
        fallbacks=0, start_time=start)


def test_global_spend_is_the_last_30_days_and_the_proxy_budget(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_budget": 12.5}) as gw:
            now = time.time()
            rows = [spend_values(_record(f"old-{i}", 1.0, now - 40 * DAY), gw.store.dialect) for i in range(3)]
            rows += [spend_values(_record("recent-1", 0.25, now - 29 * DAY), gw.store.dialect),
                     spend_values(_record("recent-2", 0.5, now - 60.0), gw.store.dialect)]
            assert await write_spend_values(gw.store, rows) == 5
            r = await call(gw, "GET", "/global/spend", headers={"authorization": f"Bearer {MASTER}"})
            assert r.status == 200, r.body
            assert r.json() == {"spend": 0.75, "max_budget": 12.5}

        async with upstream() as up, gateway(db_url, up) as gw:  # no proxy budget: LiteLLM's 0.0
            r = await call(gw, "GET", "/global/spend", headers={"authorization": f"Bearer {MASTER}"})
            assert r.json()["max_budget"] == 0.0

    asyncio.run(main())
