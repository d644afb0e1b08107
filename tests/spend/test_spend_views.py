"""LiteLLM's other spend views (``management.spend_views``) on SQLite and a real PostgreSQL: spend per tag (with
dates and a tag filter), the tag names, per provider, per team per day, per end user, and ``/spend/calculate``
before and after a call; who may see what."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import Key, Team, TeamMember, hash_token
from relaygate.store.spend import write_spend_values
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, gateway, upstream
from tests.store.conftest import db_url  # noqa: F401  (both backends)

DAY = 86400.0
AUTH = {"authorization": f"Bearer {MASTER}"}


def rec(call_id: str, cost: float, start: float, *, tags: list[str] | None = None, provider: str = "openai",
        **kw: Any) -> CompletionRecord:
    r = CompletionRecord(
        call_id=call_id, route="chat", stream=False, model="m", model_group="m", deployment_id="d0",
        provider=provider, upstream_model="m", key_hash=None, key_alias=None, team_id=None, user_id=None,
        status=200, outcome=Outcome.OK, prompt_tokens=10, completion_tokens=5, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001, cost=cost, cache_hit=False, retries=0,
        fallbacks=0, start_time=start, extra={"tags": tags} if tags else None)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


async def get(gw: Any, path: str, headers: dict[str, str] | None = None, status: int = 200) -> Any:
    r = await call(gw, "GET", path, headers=headers or AUTH)
    assert r.status == status, r.body
    return r.json()


def test_tags_providers_teams_and_end_users(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t-red", team_alias="Red Team"))
            await gw.store.create_team(Team(team_id="t-bare"))
            now = time.time()
            d = gw.store.dialect
            rows = [rec("a1", 0.5, now, tags=["prod", "chat"], team_id="t-red", end_user_id="cust-1",
                        key_hash="k1"),
                    rec("a2", 0.25, now, tags=["prod"], provider="anthropic", team_id="t-bare",
                        end_user_id="cust-2", key_hash="k2"),
                    rec("a3", 0.125, now, provider="", end_user_id="cust-1", key_hash="k1"),  # a cache hit, say
                    rec("a4", 0.0625, now - 3 * DAY, tags=["old"], team_id="t-red", key_hash="k1"),
                    rec("a5", 1.0, now - 40 * DAY, tags=["prod"], team_id="t-red", end_user_id="cust-3")]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 5
            today = time.strftime("%Y-%m-%d", time.gmtime(now))
            week = time.strftime("%Y-%m-%d", time.gmtime(now - 6 * DAY))
            span = f"start_date={today}&end_date={today}"

            # per tag: a request with two tags counts for each; the most spend first
            body = await get(gw, f"/global/spend/tags?{span}")
            assert body == {"spend_per_tag": [{"name": "prod", "spend": 0.75, "log_count": 2},
                                              {"name": "chat", "spend": 0.5, "log_count": 1}]}
            body = await get(gw, f"/global/spend/tags?start_date={week}&end_date={today}&tags=old,chat")
            assert body["spend_per_tag"] == [{"name": "chat", "spend": 0.5, "log_count": 1},
                                             {"name": "old", "spend": 0.0625, "log_count": 1}]
            assert len((await get(gw, f"/global/spend/tags?start_date={week}&end_date={today}&tags=all-tags"))[
                "spend_per_tag"]) == 3
            err = await get(gw, "/global/spend/tags", status=400)  # LiteLLM's: both dates required
            assert err["error"]["message"] == "Please provide start_date and end_date"
            await get(gw, f"/global/spend/tags?start_date={today}&end_date=2020-13-01", status=400)
            assert (await get(gw, "/global/spend/all_tag_names")) == {"tag_names": ["chat", "old", "prod"]}
            # /spend/tags: the days given, from the logs (LiteLLM ignores its dates); one date alone is a 400
            assert await get(gw, f"/spend/tags?{span}") == [
                {"individual_request_tag": "prod", "log_count": 2, "total_spend": 0.75},
                {"individual_request_tag": "chat", "log_count": 1, "total_spend": 0.5}]
            await get(gw, f"/spend/tags?start_date={today}", status=400)

            # per provider: rows no deployment answered are in none
            assert await get(gw, f"/global/spend/provider?{span}") == [{"provider": "openai", "spend": 0.5},
                                                                       {"provider": "anthropic", "spend": 0.25}]

            # per team and day over 30 days: named by alias, else id; rows of no team are Unassigned
            teams = await get(gw, "/global/spend/teams")
            assert teams["teams"] == ["Red Team", "Unassigned", "t-bare"]
            assert teams["total_spend_per_team"] == [{"team_id": "Red Team", "total_spend": 0.5625},
                                                     {"team_id": "t-bare", "total_spend": 0.25},
                                                     {"team_id": "Unassigned", "total_spend": 0.125}]
            assert teams["daily_spend"][-1] == {"date": today, "Red Team": 0.5, "t-bare": 0.25, "Unassigned": 0.125}
            assert len(teams["daily_spend"]) == 2

            # end users
            assert await get(gw, "/global/all_end_users") == {"end_users": ["cust-1", "cust-2", "cust-3"]}
            r = await call(gw, "POST", "/global/spend/end_users", b"", headers=AUTH)
            assert r.json() == [{"end_user": "cust-1", "total_count": 2, "total_spend": 0.625},
                                {"end_user": "cust-2", "total_count": 1, "total_spend": 0.25}]
            r = await call(gw, "POST", "/global/spend/end_users", {"api_key": "k2"}, headers=AUTH)
            assert r.json() == [{"end_user": "cust-2", "total_count": 1, "total_spend": 0.25}]
            old = time.strftime("%Y-%m-%d", time.gmtime(now - 41 * DAY))
            r = await call(gw, "POST", "/global/spend/end_users", {"startTime": old, "endTime": old}, headers=AUTH)
            assert r.status == 200 and r.json() == []
            r = await call(gw, "POST", "/global/spend/end_users", b"{not json", headers=AUTH)
            assert r.status == 400

    asyncio.run(main())


def test_who_sees_what(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            own = "sk-own-views-1"
            await gw.store.create_key(Key(token=hash_token(own), user_id="u-1"))
            now = time.time()
            d = gw.store.dialect
            rows = [rec("b1", 0.5, now, tags=["mine"], user_id="u-1", key_hash=hash_token(own)),
                    rec("b2", 0.25, now, tags=["theirs"], user_id="u-2", provider="anthropic")]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 2
            today = time.strftime("%Y-%m-%d", time.gmtime(now))
            span = f"start_date={today}&end_date={today}"
            mine = {"authorization": f"Bearer {own}"}
            assert [t["name"] for t in (await get(gw, f"/global/spend/tags?{span}", mine))["spend_per_tag"]] == [
                "mine"]
            assert await get(gw, "/global/spend/all_tag_names", mine) == {"tag_names": ["mine"]}
            assert await get(gw, f"/global/spend/provider?{span}", mine) == [{"provider": "openai", "spend": 0.5}]
            for path in ("/global/spend/teams", "/global/all_end_users"):  # the admin's: LiteLLM's 401 wording
                err = await get(gw, path, mine, status=401)
                assert "Only proxy admin" in err["error"]["message"]
            r = await call(gw, "POST", "/global/spend/end_users", b"", headers=mine)
            assert r.status == 401

    asyncio.run(main())


def test_spend_calculate(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            async def calc(body: Any, status: int = 200) -> Any:
                r = await call(gw, "POST", "/spend/calculate", body, headers=AUTH)
                assert r.status == status, r.body
                return r.json()

            # after a call: the answer's usage at the group's deployment prices (1e-6 in, 2e-6 out)
            answer = {"id": "c", "object": "chat.completion", "model": "m", "choices": [],
                      "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}
            assert (await calc({"completion_response": answer}))["cost"] == pytest.approx(1000e-6 + 500 * 2e-6)
            # a catalog model by its name (gpt-4o-mini: 0.15 / 0.60 USD per million tokens)
            mini = await calc({"completion_response": {**answer, "model": "gpt-4o-mini"}})
            assert mini["cost"] == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)
            # before a call: the prompt's estimated tokens at the input price
            before = await calc({"model": "m", "messages": [{"role": "user", "content": "hello there " * 50}]})
            assert 50e-6 < before["cost"] < 200e-6
            err = await calc({"model": "m"}, 400)
            assert err["error"]["message"] == "Bad Request - messages must be provided if 'model' is provided"
            err = await calc({}, 400)
            assert err["error"]["message"] == "Bad Request - Either 'model' or 'completion_response' must be provided"
            err = await calc({"model": "no-such-model-anywhere", "messages": []}, 400)
            assert "no-such-model-anywhere" in err["error"]["message"]
            await calc({"completion_response": {"model": "m"}}, 400)  # no usage
            await calc(b"[1, 2", 400)

    asyncio.run(main())


def test_cost_estimate(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/cost/estimate``: per request, day and month, the cache and reasoning shares, the rates
    billed (a tiered model's above its threshold), and what a bad body or an unpriced model gets."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            async def est(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
                r = await call(gw, "POST", "/cost/estimate", body, headers=headers or AUTH)
                assert r.status == status, r.body
                return r.json()

            # the group's deployment prices: 1e-6 in, 2e-6 out (cache and reasoning at the same rates)
            out = await est({"model": "m", "input_tokens": 1000, "output_tokens": 500,
                             "cache_read_input_tokens": 200, "reasoning_tokens": 100,
                             "num_requests_per_day": 100, "num_requests_per_month": 3000})
            assert out["model"] == "m" and out["input_tokens"] == 1000 and out["reasoning_tokens"] == 100
            assert out["cost_per_request"] == pytest.approx(1000e-6 + 500 * 2e-6)
            assert out["input_cost_per_request"] == pytest.approx(1000e-6)
            assert out["cache_read_cost_per_request"] == pytest.approx(200e-6)  # a share of the input cost
            assert out["reasoning_cost_per_request"] == pytest.approx(100 * 2e-6)
            assert out["output_cost_per_request"] == pytest.approx(500 * 2e-6)
            assert out["margin_cost_per_request"] == 0 and out["cache_creation_cost_per_request"] == 0
            assert out["daily_cost"] == pytest.approx(100 * out["cost_per_request"])
            assert out["monthly_input_cost"] == pytest.approx(3000 * 1000e-6)
            assert out["input_cost_per_token"] == pytest.approx(1e-6)
            assert out["output_cost_per_token"] == pytest.approx(2e-6)
            # no projection asked: null, as LiteLLM's
            bare = await est({"model": "m", "input_tokens": 10, "output_tokens": 0})
            assert bare["daily_cost"] is None and bare["monthly_margin_cost"] is None
            assert bare["num_requests_per_day"] is None
            # a cost-map model by name, priced above its 200k-token tier (gemini-2.5-pro doubles its input rate)
            tiered = gw.runtime.prices.catalog.lookup_name("gemini/gemini-2.5-pro")
            assert tiered is not None and [t.above for t in tiered.tiers] == [200_000]  # the bundled cost map's
            small = await est({"model": "gemini/gemini-2.5-pro", "input_tokens": 1000, "output_tokens": 0})
            big = await est({"model": "gemini/gemini-2.5-pro", "input_tokens": 300_000, "output_tokens": 0})
            assert big["input_cost_per_token"] > small["input_cost_per_token"] > 0
            assert big["cost_per_request"] == pytest.approx(300_000 * big["input_cost_per_token"])
            assert big["provider"] == "gemini"
            err = await est({"model": "no-such-model-anywhere", "input_tokens": 1, "output_tokens": 1}, 404)
            assert "no-such-model-anywhere" in err["error"]["message"] and err["error"]["param"] == "model"
            for body, param in (({"model": "m", "input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 6,
                                  "cache_creation_input_tokens": 6}, "cache_read_input_tokens"),
                                ({"model": "m", "input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6},
                                 "reasoning_tokens"),
                                ({"model": "m", "input_tokens": -1, "output_tokens": 5}, "input_tokens"),
                                ({"model": "m", "input_tokens": 1, "output_tokens": 5, "num_requests_per_day": -3},
                                 "num_requests_per_day"),
                                ({"model": "m", "input_tokens": 1.5, "output_tokens": 5}, "body"),
                                ({"model": "m", "output_tokens": 5}, "body"),
                                ({"model": "", "input_tokens": 1, "output_tokens": 5}, "model")):
                assert (await est(body, 400))["error"]["param"] == param, body
            await est(b"[1, 2", 400)
            await est({"model": "m", "input_tokens": 1, "output_tokens": 1}, 401, {"authorization": "Bearer sk-no"})

    asyncio.run(main())


def test_calculators_without_a_database() -> None:
    """A proxy without a database (a config-only LiteLLM proxy moved over) still answers LiteLLM's
    ``/spend/calculate`` and ``/cost/estimate`` from its configuration, after authenticating the caller; the
    routes that read the store still answer 503."""
    async def main() -> None:
        async with upstream() as up, gateway(None, up, relaygate_settings={"embedded_database": False}) as gw:
            assert gw.store is None
            r = await call(gw, "POST", "/spend/calculate",
                           {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}, headers=AUTH)
            assert r.status == 200, r.body
            assert r.json()["cost"] > 0
            answer = {"model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
            r = await call(gw, "POST", "/spend/calculate", {"completion_response": answer}, headers=AUTH)
            assert r.status == 200 and r.json()["cost"] == pytest.approx(10e-6 + 5 * 2e-6), r.body
            r = await call(gw, "POST", "/cost/estimate", {"model": "m", "input_tokens": 1000, "output_tokens": 10},
                           headers=AUTH)
            assert r.status == 200 and r.json()["cost_per_request"] == pytest.approx(1000e-6 + 20e-6), r.body
            r = await call(gw, "POST", "/cost/estimate", {"model": "nope", "input_tokens": 1, "output_tokens": 1},
                           headers=AUTH)
            assert r.status == 404, r.body
            r = await call(gw, "POST", "/cost/estimate", {"model": "m", "input_tokens": 1, "output_tokens": 1},
                           headers={"authorization": "Bearer sk-wrong"})
            assert r.status == 401, r.body
            r = await call(gw, "GET", "/spend/logs", headers=AUTH)
            assert r.status == 503 and "Database not connected" in r.json()["error"]["message"], r.body

    asyncio.run(main())


def test_rate_limit_exceptions_per_day_and_deployment(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/global/activity/exceptions`` (and ``/deployment``): the group's requests answered 429 per
    day, and per deployment's ``api_base`` (credentials and query left out)."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            dep = gw.runtime.router.groups["m"].targets[0].dep.id
            now = time.time()
            d = gw.store.dialect

            def limited(call_id: str, start: float, **kw: Any) -> CompletionRecord:
                return rec(call_id, 0.0, start, status=429, outcome=Outcome.ERROR, **kw)

            rows = [limited("e1", now, deployment_id=dep), limited("e2", now, deployment_id=dep),
                    limited("e3", now - DAY, deployment_id="gone-deployment"),
                    limited("e4", now, deployment_id=""),  # the gateway's own limiter: no deployment
                    limited("e5", now, deployment_id=dep, model_group="m2"),
                    rec("ok1", 0.1, now, deployment_id=dep),
                    rec("e6", 0.0, now, status=500, outcome=Outcome.ERROR, deployment_id=dep)]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == len(rows)
            today = time.strftime("%Y-%m-%d", time.gmtime(now))
            yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - DAY))
            label = lambda day: time.strftime("%b %d", time.gmtime(day))  # noqa: E731
            span = f"model_group=m&start_date={yesterday}&end_date={today}"
            assert await get(gw, f"/global/activity/exceptions?{span}") == {
                "daily_data": [{"date": label(now - DAY), "num_rate_limit_exceptions": 1},
                               {"date": label(now), "num_rate_limit_exceptions": 3}],
                "sum_num_rate_limit_exceptions": 4}
            per = await get(gw, f"/global/activity/exceptions/deployment?{span}")
            assert per == [{"api_base": up.url, "daily_data": [{"date": label(now), "num_rate_limit_exceptions": 2}],
                            "sum_num_rate_limit_exceptions": 2},
                           {"api_base": "gone-deployment", "sum_num_rate_limit_exceptions": 1,
                            "daily_data": [{"date": label(now - DAY), "num_rate_limit_exceptions": 1}]}]
            err = await get(gw, f"/global/activity/exceptions?start_date={today}&end_date={today}", status=400)
            assert err["error"]["param"] == "model_group"
            await get(gw, "/global/activity/exceptions?model_group=m", status=400)  # dates required

    asyncio.run(main())


def test_paged_logs_v2_and_ui(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/spend/logs/v2`` (and ``/spend/logs/ui``): both dates required (``YYYY-MM-DD HH:MM:SS``),
    pages of ``page_size`` with the total, filters, sorting; a non-admin sees its own rows only."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            own = "sk-own-paged-1"
            await gw.store.create_key(Key(token=hash_token(own), user_id="u-1"))
            now = time.time()
            d = gw.store.dialect
            rows = [rec(f"p{i:02d}", 0.001 * (i + 1), now - 60 * i, key_hash="k1" if i % 2 else hash_token(own),
                        user_id="u-1" if i % 2 == 0 else "u-2", key_alias="alias-a" if i < 5 else "alias-b",
                        end_user_id="cust-9" if i == 3 else None,
                        status=500 if i == 4 else 429 if i == 6 else 200,
                        outcome=Outcome.ERROR if i in (4, 6) else Outcome.OK,
                        error_type="api_error" if i == 4 else "rate_limit_error" if i == 6 else "",
                        error_message="upstream said 100%_broken" if i == 4 else "Rate limit reached for m" if i == 6
                        else "")
                    for i in range(12)]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 12
            fmt = "%Y-%m-%d %H:%M:%S"
            start = time.strftime(fmt, time.gmtime(now - 3600))
            end = time.strftime(fmt, time.gmtime(now))
            span = f"start_date={start.replace(' ', '%20')}&end_date={end.replace(' ', '%20')}"
            page = await get(gw, f"/spend/logs/v2?{span}&page_size=5")
            assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (12, 1, 5, 3)
            assert [r["request_id"] for r in page["data"]] == ["p00", "p01", "p02", "p03", "p04"]  # newest first
            last = await get(gw, f"/spend/logs/ui?{span}&page_size=5&page=3")
            assert [r["request_id"] for r in last["data"]] == ["p10", "p11"]
            assert (await get(gw, f"/spend/logs/v2?{span}&page_size=5&page=9"))["data"] == []
            by_spend = await get(gw, f"/spend/logs/v2?{span}&sort_by=spend&sort_order=asc&page_size=3")
            assert [r["request_id"] for r in by_spend["data"]] == ["p00", "p01", "p02"]
            failed = await get(gw, f"/spend/logs/v2?{span}&status_filter=failure")
            info = {r["request_id"]: r["metadata"]["error_information"] for r in failed["data"]}
            assert info["p04"] == {"error_class": "InternalServerError", "error_code": "500", "llm_provider": "openai",
                                   "error_message": "upstream said 100%_broken", "traceback": ""}
            # LiteLLM's error filters: a failure's status, a part of its message (wildcards are text)
            for query, want in (("error_code=429", ["p06"]), ("error_code=200", []), ("error_message=100%25_b", ["p04"]),
                                ("error_message=Rate%20limit", ["p06"]), ("error_message=%25", ["p04"]),
                                ("error_message=_", ["p04"])):
                got = await get(gw, f"/spend/logs/v2?{span}&{query}")
                assert [r["request_id"] for r in got["data"]] == want, query
            await get(gw, f"/spend/logs/v2?{span}&error_code=abc", status=400)
            for query, want in (("status_filter=failure", ["p04", "p06"]), ("key_alias=alias-b&page_size=2", ["p05", "p06"]),
                                ("end_user=cust-9", ["p03"]), ("api_key=k1&max_spend=0.0045", ["p01", "p03"]),
                                ("min_spend=0.0115", ["p11"]), ("request_id=p07", ["p07"]), ("user_id=u-2&page_size=2",
                                                                                             ["p01", "p03"])):
                got = await get(gw, f"/spend/logs/v2?{span}&{query}")
                assert [r["request_id"] for r in got["data"]] == want, query
            # the end's whole second is in; a missing date is LiteLLM's 400
            just = time.strftime(fmt, time.gmtime(now - 600)).replace(" ", "%20")
            assert (await get(gw, f"/spend/logs/v2?start_date={just}&end_date={just}"))["total"] == 1
            err = await get(gw, f"/spend/logs/v2?start_date={start.replace(' ', '%20')}", status=400)
            assert err["error"]["message"] == "Start date and end date are required"
            for bad in ("page=0", "page_size=101", "sort_by=model", "status_filter=ok", "min_spend=x"):
                await get(gw, f"/spend/logs/v2?{span}&{bad}", status=400)
            # one row by id; a non-admin's pages and rows are its own
            assert (await get(gw, "/spend/logs/ui/p05"))["request_id"] == "p05"
            mine = {"authorization": f"Bearer {own}"}
            assert (await get(gw, f"/spend/logs/v2?{span}", mine))["total"] == 6
            assert await get(gw, "/spend/logs/ui/p05", mine) is None  # u-2's row
            assert (await get(gw, "/spend/logs/ui/p04", mine))["request_id"] == "p04"
            await get(gw, f"/spend/logs/v2?{span}&user_id=u-2", mine, status=403)
            # a team's admin reads its team's rows (LiteLLM's paged logs); a plain member, or another team: 403
            await gw.store.create_team(Team(team_id="t-9"), [TeamMember(team_id="t-9", user_id="u-1", role="admin"),
                                                             TeamMember(team_id="t-9", user_id="u-2")])
            await gw.store.create_team(Team(team_id="t-8"))
            await gw.store.create_key(Key(token=hash_token("sk-member-paged"), user_id="u-2"))
            team_rows = [rec(f"q{i}", 0.001, now - 30 * i, key_hash="k-other", user_id="u-3", team_id="t-9")
                         for i in range(3)]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in team_rows]) == 3
            got = await get(gw, f"/spend/logs/ui?{span}&team_id=t-9", mine)
            assert [r["request_id"] for r in got["data"]] == ["q0", "q1", "q2"]
            member = {"authorization": "Bearer sk-member-paged"}
            for who, team in ((member, "t-9"), (mine, "t-8"), (mine, "nope")):
                err = await get(gw, f"/spend/logs/v2?{span}&team_id={team}", who, status=403)
                assert err["error"]["message"] == f"Not authorized to view team spend for team_id={team}"

    asyncio.run(main())


def test_daily_activity_in_litellms_shape(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/user/daily/activity`` (and team, tag): per day the metrics and the breakdown by model,
    model group, provider, key (with its alias and team) and entity; whole days per page; own rows only."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            own = "sk-own-daily-1"
            await gw.store.create_team(Team(team_id="t-red", team_alias="Red Team"))
            await gw.store.create_key(Key(token=hash_token(own), user_id="u-1", key_alias="alpha",
                                          team_id="t-red"))
            now = time.time()
            d = gw.store.dialect
            k1 = hash_token(own)
            rows = [rec("d1", 0.5, now, user_id="u-1", key_hash=k1, team_id="t-red", tags=["prod"],
                        upstream_model="gpt-x-1", cache_read_tokens=4),
                    rec("d2", 0.25, now, user_id="u-1", key_hash=k1, team_id="t-red", provider="anthropic",
                        status=500, outcome=Outcome.ERROR, tags=["prod", "eval"]),
                    rec("d3", 0.125, now - DAY, user_id="u-1", key_hash=k1, team_id="t-red"),
                    rec("d4", 1.0, now, user_id="u-2", key_hash="k2", model_group="m2", tags=["prod"])]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 4
            today = time.strftime("%Y-%m-%d", time.gmtime(now))
            yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - DAY))
            span = f"start_date={yesterday}&end_date={today}"

            body = await get(gw, f"/user/daily/activity?{span}&user_id=u-1")
            first, second = body["results"]
            assert (first["date"], second["date"]) == (today, yesterday)  # newest first
            assert first["metrics"] == {"spend": 0.75, "prompt_tokens": 20, "completion_tokens": 10,
                                        "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0,
                                        "total_tokens": 30, "successful_requests": 1, "failed_requests": 1,
                                        "api_requests": 2}
            b = first["breakdown"]
            assert set(b["models"]) == {"gpt-x-1", "m"} and set(b["providers"]) == {"openai", "anthropic"}
            assert b["model_groups"]["m"]["metrics"]["api_requests"] == 2
            assert b["api_keys"][k1]["metadata"] == {"key_alias": "alpha", "team_id": "t-red", "user_id": "u-1",
                                                     "user_email": None, "key_exists": True}
            assert b["entities"]["u-1"]["api_key_breakdown"][k1]["metrics"]["spend"] == 0.75
            assert set(b) >= {"mcp_servers", "endpoints"}
            meta = body["metadata"]
            assert (meta["total_spend"], meta["total_api_requests"], meta["total_failed_requests"]) == (0.875, 3, 1)
            assert (meta["page"], meta["total_pages"], meta["has_more"]) == (1, 1, False)
            paged = await get(gw, f"/user/daily/activity?{span}&page_size=1&page=2")
            assert [r["date"] for r in paged["results"]] == [yesterday]
            assert (paged["metadata"]["total_pages"], paged["metadata"]["has_more"]) == (2, False)
            only = await get(gw, f"/user/daily/activity?{span}&model=m2")
            assert [set(r["breakdown"]["entities"]) for r in only["results"]] == [{"u-2"}]

            team = await get(gw, f"/team/daily/activity?{span}&team_ids=t-red")
            assert team["results"][0]["breakdown"]["entities"]["t-red"]["metadata"] == {"team_alias": "Red Team"}
            tags = await get(gw, f"/tag/daily/activity?{span}")
            assert {n: e["metrics"]["api_requests"] for n, e in tags["results"][0]["breakdown"]["entities"].items()} \
                == {"prod": 3, "eval": 1}

            mine = {"authorization": f"Bearer {own}"}
            assert {e for r in (await get(gw, f"/user/daily/activity?{span}", mine))["results"]
                    for e in r["breakdown"]["entities"]} == {"u-1"}
            await get(gw, f"/user/daily/activity?{span}&user_id=u-2", mine, status=403)
            assert len((await get(gw, f"/team/daily/activity?{span}", mine))["results"]) == 2
            own_tags = (await get(gw, f"/tag/daily/activity?{span}", mine))["results"][0]["breakdown"]["entities"]
            assert {n: e["metrics"]["api_requests"] for n, e in own_tags.items()} == {"prod": 2, "eval": 1}
            assert (await get(gw, f"/organization/daily/activity?{span}", mine))["results"] == []  # no org_admin
            await get(gw, f"/organization/daily/activity?{span}&organization_ids=o-1", mine, status=403)
            await get(gw, f"/customer/daily/activity?{span}", mine, status=401)
            await get(gw, "/user/daily/activity", status=400)

    asyncio.run(main())


def test_daily_activity_outlives_the_spend_logs(db_url: str) -> None:  # noqa: F811
    """The daily views read the daily rollup (``store.daily``), as LiteLLM's read its daily spend tables: a day's
    activity is still there after retention deleted its spend logs, and ``disable_spend_logs`` (no rows written)
    still fills it; a batch sent again after a lost commit answer adds nothing twice."""
    from relaygate.store.spend import delete_spend_logs_before
    from tests.spend.helpers import check_daily

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            now = time.time()
            d = gw.store.dialect
            old = [rec("o1", 0.5, now - 3 * DAY, user_id="u-1", team_id="t-1", key_hash="k1", tags=["prod"]),
                   rec("o2", 0.25, now - 3 * DAY, user_id="u-1", team_id="t-1", key_hash="k1", status=429,
                       outcome=Outcome.ERROR)]
            rows = [spend_values(r, d) for r in old]
            assert await write_spend_values(gw.store, rows) == 2
            assert await write_spend_values(gw.store, rows) == 0  # sent again: nothing added twice
            await check_daily(gw.store)
            from datetime import UTC, datetime
            assert await delete_spend_logs_before(gw.store, datetime.fromtimestamp(now - DAY, UTC)) == 2
            unlogged = [rec("n1", 0.125, now, user_id="u-1", team_id="t-1", key_hash="k1", tags=["prod"])]
            assert await write_spend_values(gw.store, [spend_values(r, d) for r in unlogged], log_rows=False) == 1

            span = (f"start_date={time.strftime('%Y-%m-%d', time.gmtime(now - 5 * DAY))}"
                    f"&end_date={time.strftime('%Y-%m-%d', time.gmtime(now))}")
            body = await get(gw, f"/user/daily/activity?{span}&user_id=u-1")
            assert [(r["date"], r["metrics"]["spend"], r["metrics"]["api_requests"], r["metrics"]["failed_requests"])
                    for r in body["results"]] == [(time.strftime("%Y-%m-%d", time.gmtime(now)), 0.125, 1, 0),
                                                  (time.strftime("%Y-%m-%d", time.gmtime(now - 3 * DAY)), 0.75, 2, 1)]
            assert body["metadata"]["total_spend"] == 0.875
            team = await get(gw, f"/team/daily/activity?{span}&team_ids=t-1")
            assert team["metadata"]["total_api_requests"] == 3
            tags = await get(gw, f"/tag/daily/activity?{span}&tags=prod")
            assert [r["metrics"]["api_requests"] for r in tags["results"]] == [1, 1]
            async with gw.store._read() as c:  # none of those requests has a spend log left
                assert (await c.fetch("SELECT COUNT(*) AS n FROM rg_spend_logs", []))[0]["n"] == 0

    asyncio.run(main())


def test_a_kilobytes_long_end_user_id_loses_no_row(db_url: str) -> None:  # noqa: F811
    """A client's ``user`` of kilobytes (no limit in the API) is counted under its digest in the counters and the
    daily rollup: PostgreSQL refuses a B-tree entry over ~2.7 kB, and such an id used to fail the whole batch (its
    second's rows retried, then dropped). The row keeps the id as sent."""
    import hashlib
    import secrets

    from relaygate.store.spend import entity_totals, read_spend_logs
    from tests.spend.helpers import check_counters

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            long = secrets.token_hex(3000)
            now = time.time()
            rows = [rec("long-1", 0.5, now, end_user_id=long), rec("ok-1", 0.25, now, end_user_id="short")]
            assert await write_spend_values(gw.store, [spend_values(r, gw.store.dialect) for r in rows]) == 2
            assert (await read_spend_logs(gw.store, request_id="long-1"))[0].end_user == long
            digest = "sha256:" + hashlib.sha256(long.encode()).hexdigest()
            [got] = await entity_totals(gw.store, "customer", [digest])
            assert got["spend_nanos"] == 500_000_000
            day = time.strftime("%Y-%m-%d", time.gmtime(now))
            body = await get(gw, f"/customer/daily/activity?start_date={day}&end_date={day}")
            assert set(body["results"][0]["breakdown"]["entities"]) == {digest, "short"}
            async with gw.store._read() as c:
                assert (await c.fetch("SELECT COUNT(*) AS n FROM rg_daily_spend WHERE entity_id = ?", [long]))[0][
                    "n"] == 0
            await check_counters(gw.store)  # counters and rollup equal the rows, ids bounded as the writer does

    asyncio.run(main())
