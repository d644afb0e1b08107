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


def _rec(call_id: str, cost: float, start: float, **kw: object) -> CompletionRecord:
    r = _record(call_id, cost, start)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_spend_report_and_logs_in_litellms_shapes(db_url: str) -> None:  # noqa: F811
    """``/global/spend/report`` named and broken down as LiteLLM's (team alias, per model and key, its token field
    names), and ``/spend/logs`` capped with LiteLLM's ``x-litellm-spend-logs-truncated`` header."""
    from relaygate.store import Team

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t-red", team_alias="Red Team"))
            await gw.store.create_team(Team(team_id="t-bare"))
            now = time.time()
            d = gw.store.dialect
            rows = [spend_values(_rec("a1", 0.5, now, team_id="t-red", key_hash="k1", upstream_model="gpt-4o-x",
                                      end_user_id="cust-1"), d),
                    spend_values(_rec("a2", 0.25, now, team_id="t-red", key_hash="k2", upstream_model="gpt-4o-x"), d),
                    spend_values(_rec("a3", 0.125, now, team_id="t-bare", key_hash="k1"), d),
                    spend_values(_rec("a4", 1.0, now, key_hash="k3"), d)]
            assert await write_spend_values(gw.store, rows) == 4
            auth = {"authorization": f"Bearer {MASTER}"}
            day = time.strftime("%Y-%m-%d", time.gmtime(now))
            span = f"start_date={day}&end_date={day}"

            async def get(path: str) -> object:
                r = await call(gw, "GET", path, headers=auth)
                assert r.status == 200, r.body
                return r.json()

            (entry,) = await get(f"/global/spend/report?{span}&group_by=team")  # type: ignore[misc]
            teams = {t["team_name"]: t for t in entry["teams"]}
            assert set(teams) == {"Red Team", "t-bare", "Unassigned Team"}
            red = teams["Red Team"]
            assert red["team_id"] == "t-red" and red["total_spend"] == 0.75
            assert sorted((m["model"], m["api_key"], m["spend"]) for m in red["metadata"]) == [
                ("gpt-4o-x", "k1", 0.5), ("gpt-4o-x", "k2", 0.25)]
            (entry,) = await get(f"/global/spend/report?{span}&group_by=customer")  # type: ignore[misc]
            assert {c["customer"] for c in entry["customers"]} == {"cust-1", None}
            by_key = {k["api_key"]: k for k in await get(f"/global/spend/report?{span}&group_by=api_key")}  # type: ignore[union-attr]
            assert set(by_key["k1"]["model_details"][0]) == {"model", "total_cost", "total_input_tokens",
                                                            "total_output_tokens"}
            r = await call(gw, "GET", "/spend/logs?limit=3", headers=auth)
            assert len(r.json()) == 3 and r.headers["x-litellm-spend-logs-truncated"] == "true"
            r = await call(gw, "GET", "/spend/logs", headers=auth)
            assert len(r.json()) == 4 and "x-litellm-spend-logs-truncated" not in r.headers

    asyncio.run(main())


def test_a_keys_spend_logs_metadata_joins_its_requests(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``add_key_level_controls``: a key's ``metadata.spend_logs_metadata`` is in every spend row of
    its requests, merged under what a request sends itself (the request's values win)."""
    from relaygate.store import Key, hash_token
    from relaygate.store.spend import read_spend_logs
    from tests.budgets.conftest import ask

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"proxy_batch_write_at": 0}) as gw:
            await gw.store.create_key(Key(token=hash_token("sk-meta"), metadata={
                "spend_logs_metadata": {"cost_center": "cc-7", "env": "prod"}}))
            assert (await ask(gw, "sk-meta")).status == 200
            assert (await ask(gw, "sk-meta", metadata={"spend_logs_metadata": {"env": "dev", "run": 3}})).status == 200
            for _ in range(200):
                rows = await read_spend_logs(gw.store, api_key=hash_token("sk-meta"))
                if len(rows) == 2:
                    break
                await asyncio.sleep(0.02)
            metas = sorted((r.metadata["spend_logs_metadata"] for r in rows), key=len)
            assert metas == [{"cost_center": "cc-7", "env": "prod"},
                             {"cost_center": "cc-7", "env": "dev", "run": 3}], metas

    asyncio.run(main())
