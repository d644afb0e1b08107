"""LiteLLM 1.110's concurrent budget windows (``budget_limits``) of keys and teams, over SQLite and a real
PostgreSQL: set through the management routes (checked, stored with each window's first reset), enforced
before any upstream call with LiteLLM's wording, each window on its own (a daily one refusing while the weekly
one has room), a new period freeing a window, only the proxy admin changing a key's or a team's windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.store import Key
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, gateway, token, upstream
from tests.budgets.test_budgets import refused
from tests.store.conftest import db_url  # noqa: F401  (both backends)

ADMIN = {"authorization": f"Bearer {MASTER}"}


async def _admin(gw: Any, path: str, body: dict[str, Any]) -> Any:
    r = await call(gw, "POST", path, body, headers=ADMIN)
    return r


def test_key_windows_set_checked_and_enforced(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            r = await _admin(gw, "/key/generate", {"budget_limits": [
                {"budget_duration": "1d", "max_budget": 0.000005}, {"time_period": "7d", "budget_limit": 1.0}]})
            assert r.status == 200, r.body
            out = r.json()
            windows = out["budget_limits"]
            assert [(w["budget_duration"], w["max_budget"]) for w in windows] == [("1d", 0.000005), ("7d", 1.0)]
            day = datetime.fromisoformat(windows[0]["reset_at"])
            assert (day.hour, day.minute) == (0, 0) and day > datetime.now(UTC)  # the next midnight (UTC)
            assert datetime.fromisoformat(windows[1]["reset_at"]).weekday() == 0  # the next Monday
            key = out["key"]
            await gw.budgets.refresh()
            up.hits = 0
            assert (await ask(gw, key)).status == 200
            assert (await ask(gw, key)).status == 200
            refused(await ask(gw, key), "ExceededBudget: Key over 1d budget. Spend=$0.0000, Limit=$0.00")
            assert up.hits == 2  # refused before any upstream call; the 7d window had room

            for bad, needle in (([{"budget_duration": "1d"}], "max_budget must be a non-negative number"),
                                ([{"max_budget": 1}], "budget_duration is required"),
                                ([{"budget_duration": "1y", "max_budget": 1}], "invalid budget_duration"),
                                ([{"budget_duration": "1d", "max_budget": 1}, {"budget_duration": "1d", "max_budget": 2}],
                                 "two windows of budget_duration '1d'"),
                                ({"budget_duration": "1d"}, "Expected `array | null`"),
                                ([{"budget_duration": f"{n}s", "max_budget": 1} for n in range(1, 18)],
                                 "at most 16 windows, got 17")):
                r = await _admin(gw, "/key/generate", {"budget_limits": bad})
                assert r.status == 400 and needle in r.json()["error"]["message"], (bad, r.body)
                assert r.json()["error"]["param"] == "budget_limits"

    asyncio.run(main())


def test_a_window_past_its_reset_counts_from_zero(db_url: str) -> None:  # noqa: F811
    """A window whose stored first reset is behind: its periods follow from it, the spend of the worker's
    earlier period no longer counts."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
            await gw.store.create_key(Key(token=token("sk-w"), budget_limits=[
                {"budget_duration": "2s", "max_budget": 0.000005, "reset_at": ended}]))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-w")).status == 200
            assert (await ask(gw, "sk-w")).status == 200
            refused(await ask(gw, "sk-w"), "Key over 2s budget")
            deadline = asyncio.get_running_loop().time() + 10
            while (r := await ask(gw, "sk-w")).status != 200:  # the next 2-second period
                assert r.status == 422 and asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)

    asyncio.run(main())


def test_team_windows_hold_every_key_of_the_team(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            r = await _admin(gw, "/team/new", {"team_id": "t-win", "budget_limits": [
                {"budget_duration": "30d", "max_budget": 0.000005}]})
            assert r.status == 200, r.body
            reset = datetime.fromisoformat(r.json()["budget_limits"][0]["reset_at"])
            assert reset.day == 1 and (reset.hour, reset.minute) == (0, 0)  # 30d: the 1st of the next month
            await gw.store.create_key(Key(token=token("sk-t1"), team_id="t-win"))
            await gw.store.create_key(Key(token=token("sk-t2"), team_id="t-win"))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-t1")).status == 200
            assert (await ask(gw, "sk-t2")).status == 200
            refused(await ask(gw, "sk-t1"), "ExceededBudget: Team=t-win over 30d budget. Spend=$0.0000, Limit=$0.00")
            refused(await ask(gw, "sk-t2"), "ExceededBudget: Team=t-win over 30d budget.")

    asyncio.run(main())


def test_only_the_proxy_admin_changes_windows(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            r = await _admin(gw, "/team/new", {"team_id": "t-own", "members_with_roles": [
                {"user_id": "boss", "role": "admin"}]})
            assert r.status == 200, r.body
            await gw.store.create_key(Key(token=token("sk-boss"), user_id="boss", team_id="t-own"))
            owned = await call(gw, "POST", "/key/generate", {"team_id": "t-own", "budget_limits": [
                {"budget_duration": "1d", "max_budget": 1.0}]}, headers={"authorization": "Bearer sk-boss"})
            assert owned.status == 200, owned.body  # a new key's windows only hold it in
            key = owned.json()["key"]
            r = await call(gw, "POST", "/key/update", {"key": key, "budget_limits": []},
                           headers={"authorization": "Bearer sk-boss"})
            assert r.status == 403 and "budget_limits" in r.json()["error"]["message"], r.body
            same = await call(gw, "POST", "/key/update", {"key": key, "budget_limits": [
                {"budget_duration": "1d", "max_budget": 1.0}]}, headers={"authorization": "Bearer sk-boss"})
            assert same.status == 200, same.body  # the same windows sent back: no change
            r = await call(gw, "POST", "/team/update", {"team_id": "t-own", "budget_limits": [
                {"budget_duration": "1d", "max_budget": 100.0}]}, headers={"authorization": "Bearer sk-boss"})
            assert r.status == 403, r.body
            r = await _admin(gw, "/key/update", {"key": key, "budget_limits": []})
            assert r.status == 200 and r.json()["budget_limits"] == [], r.body

    asyncio.run(main())
