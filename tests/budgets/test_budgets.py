"""Budgets through the gateway and its lifespan (store, spend sink, budget guard) on SQLite and a real
PostgreSQL, against a local upstream that answers with usage priced by ``model_info`` (3e-6 USD a request):
each entity kind over its budget gets LiteLLM's ``budget_exceeded`` 422 and nothing more reaches the
upstream; a soft budget logs once; a period ends at its boundary and the reset is written back."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relaygate.config import ConfigError, from_litellm
from relaygate.cost import pico_of
from relaygate.store import Budget, Customer, Key, Organization, Team, User
from tests.asgi.conftest import call
from tests.budgets.conftest import COST, MASTER, ask, gateway, token, upstream

BUDGET = 0.000005  # two requests fit under it (3e-6 each); the third finds 6e-6 spent
COST_PICO = pico_of(COST)


def refused(r: Any, needle: str) -> None:
    assert r.status == 422, (r.status, r.body)
    err = r.json()["error"]
    assert err["type"] == "budget_exceeded" and err["code"] == "422", err
    assert needle in err["message"], err["message"]


def test_key_budget_refuses_before_the_upstream(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_key(Key(token=token("sk-budget"), key_alias="capped", key_name="sk-...dget",
                                          max_budget=BUDGET))
            await gw.store.create_key(Key(token=token("sk-free")))
            await gw.budgets.refresh()  # as the store's change poll does within a second
            first = await ask(gw, "sk-budget")
            # LiteLLM's headers: the key's spend including this answer's cost, and its max budget
            assert first.status == 200 and first.headers["x-litellm-key-spend"] == str(COST), first.headers
            assert first.headers["x-litellm-key-max-budget"] == str(BUDGET)
            second = await ask(gw, "sk-budget")
            assert second.status == 200 and float(second.headers["x-litellm-key-spend"]) == 2 * COST
            for _ in range(3):
                r = await ask(gw, "sk-budget")
                refused(r, "Budget has been exceeded! Key=capped (sk-...dget) Current cost: 6e-06, Max budget: 5e-06")
            assert up.hits == 2  # nothing reached the upstream once over
            assert (await ask(gw, "sk-free")).status == 200  # a key without a budget is untouched
            assert gw.metrics.events.get("budget_exceeded") == 3

    asyncio.run(main())


async def _two_then_refused(gw: Any, up: Any, key: str, needle: str, **body: Any) -> None:
    up.hits = 0
    assert (await ask(gw, key, **body)).status == 200
    assert (await ask(gw, key, **body)).status == 200
    refused(await ask(gw, key, **body), needle)
    assert up.hits == 2


def test_team_budget(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t1", max_budget=BUDGET))
            await gw.store.create_key(Key(token=token("sk-t"), team_id="t1"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-t", "Budget has been exceeded! Team=t1 Current cost: 6e-06")

    asyncio.run(main())


def test_team_refused_only_past_its_budget_as_litellm(db_url: str) -> None:
    """LiteLLM refuses a team at ``spend > max_budget`` (a key, user or member at ``>=``): a team whose spend
    equals its budget still answers, and a team with ``max_budget: 0`` answers until it has spent something."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_team(Team(team_id="t-at", max_budget=2 * COST))  # two requests reach it exactly
            await gw.store.create_key(Key(token=token("sk-at"), team_id="t-at"))
            await gw.store.create_team(Team(team_id="t-zero", max_budget=0.0))
            await gw.store.create_key(Key(token=token("sk-zero"), team_id="t-zero"))
            await gw.store.create_key(Key(token=token("sk-key0"), max_budget=0.0))  # a key: refused at 0 >= 0
            await gw.budgets.refresh()
            up.hits = 0
            for _ in range(3):  # 0, 3e-6, then 6e-6 == the budget: not past it
                assert (await ask(gw, "sk-at")).status == 200
            refused(await ask(gw, "sk-at"), "Budget has been exceeded! Team=t-at Current cost: 9e-06")
            assert (await ask(gw, "sk-zero")).status == 200
            refused(await ask(gw, "sk-zero"), "Budget has been exceeded! Team=t-zero Current cost: 3e-06, "
                                              "Max budget: 0.0")
            refused(await ask(gw, "sk-key0"), "Current cost: 0.0, Max budget: 0.0")
            assert up.hits == 4

    asyncio.run(main())


def test_team_budget_spent_by_another_key_stops_a_key_checked_before(db_url: str) -> None:
    """Two keys of one team, each worker-local view exact:

    - a key whose last check found room under its team's budget is not checked in full again until that much
      has been spent by anyone (``Plan.room``): the other key's spend uses the room up, and the first key's
      next request is refused before the upstream;
    - the second key's limits are built while the first key's cost is still on its way to the team's row
      (``Tally.pending``): they count it (before, the team row read without it and the tally taken as
      already in it, the second key saw 6e-06 and was let through)."""
    async def main() -> None:
        # the sink writes its first batch at once, then holds small batches for an hour: sk-a's second cost
        # is still on its way when sk-b's rows are read, whatever the machine's speed
        async with upstream() as up, gateway(db_url, up, general_settings={
                "proxy_batch_write_at": 3600, "disable_budget_reservation": True}) as gw:  # holds: test_holds.py
            assert gw.budgets is not None
            await gw.store.create_team(Team(team_id="t2", max_budget=2 * BUDGET))  # three requests fit, not four
            await gw.store.create_key(Key(token=token("sk-a"), team_id="t2"))
            await gw.store.create_key(Key(token=token("sk-b"), team_id="t2"))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-a")).status == 200  # room measured: 1e-5 before the team's budget
            deadline = time.monotonic() + 5
            while gw.budgets.tallies[("team", "t2")].pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gw.budgets.tallies[("team", "t2")].pending == 0  # the first batch: in the team's row
            full = gw.budgets._check
            full_checks: list[str] = []

            async def counted(ex: Any, r: int = -1) -> None:
                full_checks.append(ex.who.key.token)
                await full(ex, r)

            gw.budgets._check = counted  # type: ignore[method-assign]
            assert (await ask(gw, "sk-a")).status == 200  # within the room: no full check; held by the sink
            assert full_checks == []  # decided at once by the hook: no coroutine made
            assert gw.budgets.tallies[("team", "t2")].pending == COST_PICO
            for _ in range(2):
                assert (await ask(gw, "sk-b")).status == 200
            assert full_checks[0] == token("sk-b")  # a key without a plan yet is checked in full
            up.hits = 0
            refused(await ask(gw, "sk-a"), "Budget has been exceeded! Team=t2 Current cost: 1.2e-05")
            refused(await ask(gw, "sk-b"), "Budget has been exceeded! Team=t2 Current cost: 1.2e-05")
            assert up.hits == 0

    asyncio.run(main())


def test_team_spend_written_to_its_row_is_counted_once(db_url: str) -> None:
    """Once the spend sink has written a team's spend to its row, a key whose limits are built from that row
    counts it from the row alone (the tally's part is no longer pending): no double count refuses it early,
    and the next request over the budget is still refused."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"proxy_batch_write_at": 0}) as gw:
            assert gw.store is not None and gw.spend_sink is not None and gw.budgets is not None
            await gw.store.create_team(Team(team_id="t3", max_budget=2 * BUDGET))  # three requests fit
            await gw.store.create_key(Key(token=token("sk-c"), team_id="t3"))
            await gw.store.create_key(Key(token=token("sk-d"), team_id="t3"))
            await gw.budgets.refresh()
            for _ in range(2):
                assert (await ask(gw, "sk-c")).status == 200
            deadline = time.monotonic() + 5
            while gw.budgets.tallies[("team", "t3")].pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gw.budgets.tallies[("team", "t3")].pending == 0  # written to the team's row
            team = await gw.store.get_team("t3")
            assert team is not None and team.spend == pytest.approx(2 * COST)
            assert (await ask(gw, "sk-d")).status == 200  # 6e-06 from the row, not 1.2e-05 (row + tally)
            assert (await ask(gw, "sk-d")).status == 200  # 9e-06
            refused(await ask(gw, "sk-d"), "Budget has been exceeded! Team=t3 Current cost: 1.2e-05")

    asyncio.run(main())


def test_a_plan_rebuilt_from_rows_read_earlier_counts_what_was_written_since(db_url: str) -> None:
    """A key's plan rebuilt later from its cached rows (the guard drops its plans when member budgets come
    or go, or when it holds too many) counts the spend written to the team's row after those rows were
    read (``KeyInfo.read_at``, ``Tally.written_at``); before, it took the row as holding all of it."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"proxy_batch_write_at": 0}) as gw:
            assert gw.budgets is not None
            await gw.store.create_team(Team(team_id="t4", max_budget=2 * BUDGET))  # three requests fit
            await gw.store.create_key(Key(token=token("sk-e"), team_id="t4"))
            await gw.store.create_key(Key(token=token("sk-f"), team_id="t4"))
            await gw.budgets.refresh()

            async def written() -> None:
                deadline = time.monotonic() + 5
                while gw.budgets.tallies[("team", "t4")].pending and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert gw.budgets.tallies[("team", "t4")].pending == 0

            for key in ("sk-e", "sk-f", "sk-e"):  # sk-e's rows were read before any of it was written
                assert (await ask(gw, key)).status == 200
                await written()
            gw.budgets.plans.clear()
            assert (await ask(gw, "sk-e")).status == 200  # 9e-06 spent
            refused(await ask(gw, "sk-e"), "Budget has been exceeded! Team=t4 Current cost: 1.2e-05")

    asyncio.run(main())


def test_user_budget_for_keys_without_a_team(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_user(User(user_id="u1", max_budget=BUDGET))
            await gw.store.create_key(Key(token=token("sk-u"), user_id="u1"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-u", "ExceededBudget: User=u1 over budget. Spend=6e-06, Budget=5e-06")

    asyncio.run(main())


def test_a_users_budget_binds_its_team_keys_only_when_asked(db_url: str) -> None:
    """LiteLLM's ``general_settings.apply_user_budget_to_team_keys``: without it a team key spends past its user's
    own budget (the team's binds it); with it the user's budget refuses the team key too."""
    async def main() -> None:
        for on in (False, True):
            async with upstream() as up, gateway(db_url, up, general_settings={
                    "apply_user_budget_to_team_keys": on}) as gw:
                await gw.store.create_user(User(user_id="u1", max_budget=BUDGET))
                await gw.store.create_team(Team(team_id="t1"))
                await gw.store.create_key(Key(token=token("sk-ut"), user_id="u1", team_id="t1"))
                await gw.budgets.refresh()
                if on:
                    await _two_then_refused(gw, up, "sk-ut", "ExceededBudget: User=u1 over budget. Spend=6e-06")
                else:
                    for _ in range(3):
                        assert (await ask(gw, "sk-ut")).status == 200
                # both runs share the database: the second starts from the first's spend
                await gw.store.delete_key(token("sk-ut"))
                await gw.store.delete_team("t1")
                await gw.store.delete_user("u1")

    asyncio.run(main())


def test_organization_budget_through_its_budget_row(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_budget(Budget(budget_id="b1", max_budget=BUDGET))
            await gw.store.create_organization(Organization(organization_id="o1", budget_id="b1"))
            await gw.store.create_key(Key(token=token("sk-o"), organization_id="o1"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-o", "Budget has been exceeded! Organization=o1 Current cost: 6e-06")

    asyncio.run(main())


def test_customer_budget_when_the_request_names_one(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_budget(Budget(budget_id="b1", max_budget=BUDGET))
            await gw.store.create_customer(Customer(user_id="c1", budget_id="b1"))
            await gw.store.create_key(Key(token=token("sk-c")))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-c", "ExceededBudget: End User=c1 over budget. Spend=6e-06",
                                    user="c1")
            assert (await ask(gw, "sk-c", user="c2")).status == 200  # another customer, same key

    asyncio.run(main())


def test_max_end_user_budget_for_every_customer_without_a_budget(db_url: str) -> None:
    """``litellm_settings.max_end_user_budget`` (LiteLLM's "budget for every `user` passed to /chat/completions"):
    each customer the request names — by ``user``, ``x-litellm-end-user-id`` — is held to it over its whole
    spend, a customer with a budget row of its own to that one; requests naming no customer are not checked."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_end_user_budget": BUDGET}) as gw:
            assert gw.budgets is not None and gw.budgets.active
            await gw.store.create_key(Key(token=token("sk-e")))
            await gw.store.create_budget(Budget(budget_id="big", max_budget=1.0))
            await gw.store.create_customer(Customer(user_id="vip", budget_id="big"))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-e", "ExceededBudget: End User=ishaan3 over budget. Spend=6e-06, "
                                    "Budget=5e-06", user="ishaan3")
            up.hits = 0
            for _ in range(3):  # its own budget row wins over the default
                assert (await ask(gw, "sk-e", user="vip")).status == 200
            assert (await ask(gw, "sk-e")).status == 200  # no customer named: nothing to hold
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                           headers={"authorization": "Bearer sk-e", "x-litellm-end-user-id": "ishaan3"})
            refused(r, "End User=ishaan3 over budget")

    asyncio.run(main())


def test_a_missing_default_end_user_budget_row_is_said(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_end_user_budget_id": "gone"}) as gw:
            assert gw.budgets is not None
            with caplog.at_level(logging.WARNING, logger="relaygate"):
                await gw.budgets.refresh()
            assert "max_end_user_budget_id names budget 'gone', which does not exist" in caplog.text

    asyncio.run(main())


def test_max_end_user_budget_id_puts_customers_on_that_budget_row(db_url: str) -> None:
    """``litellm_settings.max_end_user_budget_id``: a customer without a budget row of its own is put on that
    row at its first request (its customer row created, as LiteLLM persists it), and held to it."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_end_user_budget_id": "dflt"}) as gw:
            assert gw.budgets is not None and gw.budgets.active
            await gw.store.create_budget(Budget(budget_id="dflt", max_budget=BUDGET, budget_duration="30d"))
            await gw.store.create_key(Key(token=token("sk-d")))
            await gw.store.create_customer(Customer(user_id="known"))  # a row without a budget
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-d", "ExceededBudget: End User=fresh over budget. Spend=6e-06",
                                    user="fresh")
            assert (await gw.store.get_customer("fresh")).budget_id == "dflt"
            assert (await ask(gw, "sk-d", user="known")).status == 200
            assert (await gw.store.get_customer("known")).budget_id == "dflt"

    asyncio.run(main())


def test_max_end_user_budget_reads_the_customers_spend_so_far(db_url: str) -> None:
    """A customer's spend before this worker saw it — its row's ``spend``, else its spend counter (what every
    worker's sink wrote) — counts against the default budget."""
    async def main() -> None:
        general = {"proxy_batch_write_at": 0}
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_end_user_budget": BUDGET},
                                             general_settings=general) as gw:
            await gw.store.create_key(Key(token=token("sk-s")))
            await gw.store.create_customer(Customer(user_id="old", spend=1.0))  # a row, spent, no budget row
            await gw.budgets.refresh()
            refused(await ask(gw, "sk-s", user="old"), "End User=old over budget. Spend=1.0")
            assert (await ask(gw, "sk-s", user="new")).status == 200
            assert (await ask(gw, "sk-s", user="new")).status == 200
            deadline = time.monotonic() + 5
            while gw.budgets.tallies[("customer", "new")].pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            gw.budgets._customer_limits.clear()  # as after user_api_key_cache_ttl: read from the store again
            gw.budgets.tallies.clear()
            refused(await ask(gw, "sk-s", user="new"), "End User=new over budget. Spend=6e-06")

    asyncio.run(main())


def test_model_max_budget_within_a_key(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_key(Key(token=token("sk-m"), key_alias="mm",
                                          model_max_budget={"m": {"budget_limit": BUDGET, "time_period": "1d"}}))
            await gw.budgets.refresh()
            await _two_then_refused(gw, up, "sk-m", f"LiteLLM Virtual Key: {token('sk-m')}, key_alias: mm, "
                                    "exceeded budget for model=m")
            assert (await ask(gw, "sk-m", model="m2")).status == 200  # other models of the key are not capped

    asyncio.run(main())


def test_proxy_wide_budget_without_a_store() -> None:
    async def main() -> None:
        async with upstream() as up, gateway(None, up, litellm_settings={"max_budget": BUDGET,
                                                                        "budget_duration": "30d"}) as gw:
            await _two_then_refused(gw, up, MASTER, "Budget has been exceeded! Current cost: 6e-06, Max budget: 5e-06")

    asyncio.run(main())


@pytest.mark.parametrize("logs", [True, False], ids=["spend-logs", "disable_spend_logs"])
def test_proxy_wide_budget_with_a_store_outlives_a_refresh(db_url: str, logs: bool) -> None:
    """The proxy's spend is read again from the store every TTL (``BudgetGuard.refresh``): from the spend logs,
    or with ``disable_spend_logs`` (no rows) from the global spend counter. Before, the refresh found no rows
    and the spend already written counted as 0: a proxy-wide budget never bound for longer than a TTL."""
    async def main() -> None:
        general = {"proxy_batch_write_at": 0, **({} if logs else {"disable_spend_logs": True})}
        async with upstream() as up, gateway(db_url, up, litellm_settings={"max_budget": BUDGET},
                                             general_settings=general) as gw:
            assert gw.budgets is not None and gw.budgets.proxy is not None
            for _ in range(2):
                assert (await ask(gw, MASTER)).status == 200
            deadline = time.monotonic() + 5
            while gw.budgets.proxy.tally.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gw.budgets.proxy.tally.pending == 0  # written to the store
            await gw.budgets.refresh()  # what every worker does every user_api_key_cache_ttl
            up.hits = 0
            refused(await ask(gw, MASTER), "Budget has been exceeded! Current cost: 6e-06, Max budget: 5e-06")
            assert up.hits == 0

    asyncio.run(main())


def test_proxy_max_budget_zero_is_no_budget_and_the_refusal_status_is_configurable() -> None:
    """``litellm_settings.max_budget: 0`` is LiteLLM's default, "no proxy budget" (it checks only above 0), not a
    budget that refuses everything; ``budget_exceeded_status_code`` sets the refusal's status (LiteLLM's 422
    by default; 429 restores its older answer)."""
    async def main() -> None:
        async with upstream() as up, gateway(None, up, litellm_settings={"max_budget": 0}) as gw:
            assert gw.budgets is None and gw.runtime.before_route == ()
            for _ in range(3):
                assert (await ask(gw, MASTER)).status == 200
        settings = {"max_budget": BUDGET, "budget_exceeded_status_code": 429}
        async with upstream() as up, gateway(None, up, litellm_settings=settings) as gw:
            for _ in range(2):
                assert (await ask(gw, MASTER)).status == 200
            r = await ask(gw, MASTER)
            assert r.status == 429 and r.json()["error"]["code"] == "429", (r.status, r.body)
            assert r.json()["error"]["type"] == "budget_exceeded"
    asyncio.run(main())


@pytest.mark.parametrize("bad", [200, 600, True, "many"])
def test_budget_exceeded_status_code_must_be_an_error_status(bad: Any) -> None:
    with pytest.raises(ConfigError, match="budget_exceeded_status_code"):
        from_litellm({"model_list": [], "litellm_settings": {"budget_exceeded_status_code": bad}}, "<test>")


def test_no_budget_installs_nothing() -> None:
    async def main() -> None:
        async with upstream() as up, gateway(None, up) as gw:
            assert gw.budgets is None and gw.runtime.before_route == ()
            assert (await ask(gw, MASTER)).status == 200

    asyncio.run(main())


def test_soft_budget_logs_once_and_never_blocks(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_key(Key(token=token("sk-s"), soft_budget=0.000004))
            await gw.budgets.refresh()
            for _ in range(5):
                assert (await ask(gw, "sk-s")).status == 200
            assert up.hits == 5
            assert gw.metrics.events.get("budget_soft_crossed") == 1

    with caplog.at_level(logging.WARNING, logger="relaygate.budgets"):
        asyncio.run(main())
    assert len([r for r in caplog.records if "soft budget crossed" in r.getMessage()]) == 1


async def _spent_period(gw: Any, key: str, seconds: int) -> datetime:
    """A key whose budget period of ``seconds`` ends then, spent by two requests (the third refused); the end."""
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    await gw.store.create_key(Key(token=token(key), max_budget=BUDGET, budget_duration=f"{seconds}s",
                                  budget_reset_at=end))
    await gw.budgets.refresh()
    assert (await ask(gw, key)).status == 200
    assert (await ask(gw, key)).status == 200
    refused(await ask(gw, key), "Budget has been exceeded!")
    return end


def test_period_resets_at_its_boundary_and_is_written_back(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"user_api_key_cache_ttl": 0.5}) as gw:
            first_end = await _spent_period(gw, "sk-r", 2)
            deadline = time.monotonic() + 15
            while (r := await ask(gw, "sk-r")).status != 200:  # the next period starts at the boundary
                assert r.status == 422 and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            while True:  # the reset is written back to the row (off the request path)
                row = await gw.store.get_key(token("sk-r"))
                assert row.budget_reset_at is not None
                if row.budget_reset_at.replace(tzinfo=UTC) > first_end:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
                await ask(gw, "sk-r")

    asyncio.run(main())


def test_disable_reset_budget_keeps_the_period(db_url: str) -> None:
    """LiteLLM's ``general_settings.disable_reset_budget``: a period that ended starts no new one; the key stays
    over its budget and its row is never reset (the sweep does not run)."""
    async def main() -> None:
        settings = {"user_api_key_cache_ttl": 0.5, "disable_reset_budget": True}
        async with upstream() as up, gateway(db_url, up, general_settings=settings) as gw:
            assert gw.budgets.resets is False
            end = await _spent_period(gw, "sk-k", 1)
            await asyncio.sleep(2.5)  # past the boundary: still refused, nothing written back
            refused(await ask(gw, "sk-k"), "Budget has been exceeded!")
            row = await gw.store.get_key(token("sk-k"))
            assert row.budget_reset_at is not None and row.budget_reset_at.replace(tzinfo=UTC) == end
            assert row.spend > 0

    asyncio.run(main())


def test_check_installed_only_while_a_budget_exists(db_url: str) -> None:
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            await gw.store.create_key(Key(token=token("sk-plain")))
            await gw.budgets.refresh()
            assert gw.runtime.before_route == ()  # a store without budgets: requests pay nothing
            assert (await ask(gw, "sk-plain")).status == 200
            await gw.store.create_key(Key(token=token("sk-later"), max_budget=BUDGET))
            deadline = time.monotonic() + 10
            while gw.runtime.before_route == ():  # the store's change poll finds the budget
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await _two_then_refused(gw, up, "sk-later", "Budget has been exceeded! Key=key Current cost")
            await gw.store.update_key(token("sk-later"), max_budget=None)
            while gw.runtime.before_route != ():  # and removes the check once none is left
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)

    asyncio.run(main())


def test_spend_tracking_off_has_no_spend_sink_and_disable_spend_logs_keeps_counting(db_url: str) -> None:
    """``relaygate_settings.spend_tracking: false``: no spend sink (nothing written); LiteLLM's
    ``disable_spend_logs``: the sink without rows, the key's spend still moves."""

    async def main() -> None:
        async with upstream() as up:
            async with gateway(db_url, up, relaygate_settings={"spend_tracking": False}) as gw:
                assert "spend" not in gw.completions.sinks
                await gw.store.create_key(Key(token=token("sk-off")))
                assert (await ask(gw, "sk-off")).status == 200
                await gw.completions.aclose(timeout=10)
                assert (await gw.store.get_key(token("sk-off"))).spend == 0.0
            async with gateway(db_url, up, general_settings={"disable_spend_logs": True}) as gw:
                assert "spend" in gw.completions.sinks
                assert (await ask(gw, "sk-off")).status == 200
                await gw.completions.aclose(timeout=10)
                assert (await gw.store.get_key(token("sk-off"))).spend == COST

    asyncio.run(main())


def test_litellms_spend_switches(db_url: str) -> None:
    """``general_settings.disable_spend_updates``: no spend sink, as ``spend_tracking: false``;
    ``litellm_settings.disable_end_user_cost_tracking``: rows and counters never name the customer."""
    from relaygate.store.spend import entity_totals, read_spend_logs

    async def main() -> None:
        async with upstream() as up:
            async with gateway(db_url, up, general_settings={"disable_spend_updates": True}) as gw:
                assert "spend" not in gw.completions.sinks
            for tracked in (True, False):
                settings = {} if tracked else {"disable_end_user_cost_tracking": True}
                async with gateway(db_url, up, litellm_settings=settings) as gw:
                    await gw.store.create_key(Key(token=token(f"sk-t{tracked}")))
                    assert (await ask(gw, f"sk-t{tracked}", user=f"cust-{tracked}")).status == 200
                    await gw.completions.aclose(timeout=10)
                    rows = [r for r in await read_spend_logs(gw.store) if r.api_key == token(f"sk-t{tracked}")]
                    assert len(rows) == 1 and rows[0].end_user == (f"cust-{tracked}" if tracked else None)
                    counted = await entity_totals(gw.store, "customer", [f"cust-{tracked}"])
                    assert bool(counted) is tracked

    asyncio.run(main())
