"""LiteLLM's budget gauges from the budget check, through a gateway with a store (SQLite and a real
PostgreSQL): labelled with the key's and the team's own aliases, with the hours left in the period, and a
renamed key's series moved to its new alias rather than left behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from relaygate.store import Budget, Key, Organization, Team, User
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.observe.collector_server import Collector
from tests.observe.test_prometheus_dashboard import parse_exposition
from tests.store.conftest import db_url  # noqa: F401  (both backends)


async def _gauges(gw: object, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    r = await call(gw, "GET", "/metrics", headers={"authorization": f"Bearer {MASTER}"})  # type: ignore[arg-type]
    assert r.status == 200, r.body
    scrape = parse_exposition(r.body.decode())
    return {tuple(sorted(labels.items())): value
            for labels, value in zip(scrape.samples.get(name, []), scrape.values.get(name, []), strict=True)}


def test_budget_gauges_carry_the_aliases_and_the_hours_left(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["prometheus"]}) as gw:
            await gw.store.create_team(Team(team_id="t1", team_alias="Red Team", max_budget=1.0,
                                            budget_duration="1d"))
            await gw.store.create_key(Key(token=token("sk-g"), key_alias="my-key", team_id="t1", max_budget=2.0,
                                          budget_duration="1h"))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-g")).status == 200
            keys = await _gauges(gw, "litellm_remaining_api_key_budget_metric")
            assert list(keys) == [(("api_key_alias", "my-key"), ("hashed_api_key", token("sk-g")))], keys
            hours = await _gauges(gw, "litellm_api_key_budget_remaining_hours_metric")
            assert len(hours) == 1 and 0.9 < next(iter(hours.values())) <= 1.0, hours
            teams = await _gauges(gw, "litellm_remaining_team_budget_metric")
            assert list(teams) == [(("team", "t1"), ("team_alias", "Red Team"))], teams
            team_hours = await _gauges(gw, "litellm_team_budget_remaining_hours_metric")
            assert len(team_hours) == 1 and 23.0 < next(iter(team_hours.values())) <= 24.0, team_hours

            await gw.store.update_key(token("sk-g"), key_alias="renamed")
            gw.principals.clear()
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-g")).status == 200
            keys = await _gauges(gw, "litellm_remaining_api_key_budget_metric")
            assert list(keys) == [(("api_key_alias", "renamed"), ("hashed_api_key", token("sk-g")))], keys

    asyncio.run(main())


def test_organization_budget_gauges_carry_the_org_alias(db_url: str) -> None:  # noqa: F811
    """LiteLLM 1.110's organization gauges (``litellm_remaining_org_budget_metric``, ``_org_max_budget_metric``,
    ``_org_budget_remaining_hours_metric``, labels ``org_id`` / ``org_alias``) from an organization's budget
    row, as the budget check reads it for a key of that organization."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["prometheus"]}) as gw:
            await gw.store.create_budget(Budget(budget_id="b-org", max_budget=5.0, budget_duration="1d"))
            await gw.store.create_organization(Organization(organization_id="o1", organization_alias="Acme",
                                                            budget_id="b-org"))
            await gw.store.create_key(Key(token=token("sk-org"), organization_id="o1"))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-org")).status == 200
            assert (await ask(gw, "sk-org")).status == 200
            want = (("org_alias", "Acme"), ("org_id", "o1"))
            assert list(await _gauges(gw, "litellm_org_max_budget_metric")) == [want]
            left = await _gauges(gw, "litellm_remaining_org_budget_metric")
            assert list(left) == [want] and 4.99 < left[want] < 5.0, left  # the first answer's cost counted
            hours = await _gauges(gw, "litellm_org_budget_remaining_hours_metric")
            assert list(hours) == [want] and 0.0 < hours[want] <= 24.0, hours

    asyncio.run(main())


def test_team_alias_and_user_email_come_from_the_keys_rows(db_url: str) -> None:  # noqa: F811
    """With only the prometheus callback (no exporter capturing a Detail), the request families still carry the
    team's alias and the user's email, read from the stored key's rows as LiteLLM reads them from its key
    object."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["prometheus"]}) as gw:
            await gw.store.create_team(Team(team_id="t9", team_alias="Blue Team"))
            await gw.store.create_user(User(user_id="u9", user_email="ada@example.com"))
            await gw.store.create_key(Key(token=token("sk-u9"), team_id="t9", user_id="u9"))
            assert (await ask(gw, "sk-u9")).status == 200
            totals = await _gauges(gw, "litellm_proxy_total_requests_metric_total")
            (labels,) = [dict(k) for k in totals if dict(k).get("team") == "t9"]
            assert labels["team_alias"] == "Blue Team" and labels["user_email"] == "ada@example.com", labels
            spend = await _gauges(gw, "litellm_spend_metric_total")
            assert any(dict(k).get("user_email") == "ada@example.com" for k in spend), spend

    asyncio.run(main())


def test_request_families_carry_the_keys_organization_and_the_queue_time(db_url: str) -> None:  # noqa: F811
    """LiteLLM 1.110's ``org_id`` / ``org_alias`` on the request families: the key's own organization, else its
    team's (a key of neither has ``None``); and ``litellm_request_queue_time_seconds`` per answered request,
    with the same labels."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["prometheus"]}) as gw:
            await gw.store.create_organization(Organization(organization_id="o7", organization_alias="Initech"))
            await gw.store.create_team(Team(team_id="t7", organization_id="o7"))
            await gw.store.create_key(Key(token=token("sk-t7"), team_id="t7"))
            await gw.store.create_key(Key(token=token("sk-none")))
            for key in ("sk-t7", "sk-t7", "sk-none"):
                assert (await ask(gw, key)).status == 200
            totals = await _gauges(gw, "litellm_proxy_total_requests_metric_total")
            orgs = {dict(k)["hashed_api_key"]: (dict(k)["org_id"], dict(k)["org_alias"], v) for k, v in totals.items()}
            assert orgs == {token("sk-t7"): ("o7", "Initech", 2.0), token("sk-none"): ("None", "None", 1.0)}, orgs
            spend = await _gauges(gw, "litellm_spend_metric_total")
            assert {dict(k)["org_alias"] for k in spend} == {"Initech", "None"}, spend
            queued = await _gauges(gw, "litellm_request_queue_time_seconds_count")
            by_org = {dict(k)["org_id"]: v for k, v in queued.items()}
            assert by_org == {"o7": 2.0, "None": 1.0}, queued
            sums = await _gauges(gw, "litellm_request_queue_time_seconds_sum")
            assert all(0.0 <= v < 10.0 for v in sums.values()), sums

    asyncio.run(main())


def test_the_standard_payload_carries_the_keys_budgets(db_url: str,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM 1.110's ``user_api_key_{spend,max_budget,budget_reset_at,user_spend,user_max_budget,team_spend,
    team_max_budget}`` in the StandardLoggingPayload an exporter sends (generic_api here), from the request's key
    rows; the master key's request has none of them."""
    with Collector() as c:
        monkeypatch.setenv("GENERIC_LOGGER_ENDPOINT", c.url + "/log")

        async def main() -> None:
            async with upstream() as up, gateway(db_url, up, litellm_settings={"callbacks": ["generic_api"]}) as gw:
                await gw.store.create_team(Team(team_id="t5", max_budget=40.0, spend=4.0))
                await gw.store.create_user(User(user_id="u5", max_budget=30.0, spend=3.0))
                await gw.store.create_key(Key(token=token("sk-5"), team_id="t5", user_id="u5", max_budget=20.0,
                                              spend=2.0, budget_duration="1d",
                                              budget_reset_at=datetime(2030, 1, 2, tzinfo=UTC)))
                assert (await ask(gw, "sk-5")).status == 200
                assert (await ask(gw, MASTER)).status == 200
            # the gateway's shutdown sends what its exporter still held

        asyncio.run(main())
        entries = c.wait_entries(2)
    by_key = {e["metadata"]["user_api_key_hash"]: e["metadata"] for e in entries}
    meta = by_key[token("sk-5")]
    assert meta["user_api_key_max_budget"] == 20.0 and meta["user_api_key_spend"] == pytest.approx(2.0, abs=1e-4)
    assert meta["user_api_key_budget_reset_at"] == "2030-01-02T00:00:00+00:00"  # the key's period end, ISO
    assert (meta["user_api_key_user_spend"], meta["user_api_key_user_max_budget"]) == (3.0, 30.0)
    assert (meta["user_api_key_team_spend"], meta["user_api_key_team_max_budget"]) == (4.0, 40.0)
    (master,) = [m for h, m in by_key.items() if h != token("sk-5")]
    assert all(master[k] is None for k in ("user_api_key_spend", "user_api_key_max_budget", "user_api_key_team_spend",
                                           "user_api_key_user_max_budget"))
