"""Where budget periods fall, as LiteLLM 1.110 puts them (``get_next_standardized_reset_time``): the first reset
of a budget set now, in ``litellm_settings.timezone`` at ``budget_reset_time``, and the periods after it (``30d``
a calendar month, days in the zone's wall clock). The expected instants below are worked out by hand from
LiteLLM's rules, not by the code under test; the management routes are driven over both backends."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relaygate.budgets.periods import Calendar, parse, period_at
from relaygate.config import ConfigError, from_litellm
from relaygate.store import Key
from tests.budgets.conftest import ask, gateway, token, upstream
from tests.management.conftest import Env, run

NY = ZoneInfo("America/New_York")
THURSDAY = datetime(2026, 12, 3, 15, 37, 10, tzinfo=UTC)


def at(*args: int, tz: object = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(("text", "expected"), [
    ("1d", at(2026, 12, 4)),              # the next midnight
    ("7d", at(2026, 12, 7)),              # the next Monday
    ("1w", at(2026, 12, 7)),
    ("30d", at(2027, 1, 1)),              # LiteLLM 1.110: monthly, on the 1st
    ("1mo", at(2027, 1, 1)),
    ("2d", at(2026, 12, 5)),              # N days from today's midnight
    ("14d", at(2026, 12, 17)),
    ("1h", at(2026, 12, 3, 16)),          # the next whole hour
    ("6h", at(2026, 12, 3, 18)),          # the next multiple of 6 in the day
    ("5h", at(2026, 12, 3, 20)),
    ("15m", at(2026, 12, 3, 15, 45)),
    ("30s", at(2026, 12, 3, 15, 37, 30)),
])
def test_first_reset_in_utc(text: str, expected: float) -> None:
    assert Calendar().next_reset(text, THURSDAY.timestamp()) == expected


def test_first_reset_wraps_past_midnight_and_the_month_end() -> None:
    late = at(2026, 12, 31, 22, 10)
    assert Calendar().next_reset("5h", late) == at(2027, 1, 1, 1)  # 20 + 5 = 25: 01:00 the next day
    assert Calendar().next_reset("1mo", late) == at(2027, 1, 1)
    assert Calendar().next_reset("45m", at(2026, 12, 3, 23, 50)) == at(2026, 12, 4, 0, 30)
    assert Calendar().next_reset("1d", at(2026, 12, 3)) == at(2026, 12, 4)  # exactly at midnight: the next one
    assert Calendar().next_reset("1mo", at(2026, 12, 1)) == at(2027, 1, 1)


def test_first_reset_in_a_time_zone_at_a_time_of_day() -> None:
    cal = Calendar("America/New_York", "09:30")
    now = THURSDAY.timestamp()  # 10:37 in New York: today's 09:30 has passed
    assert cal.next_reset("1d", now) == at(2026, 12, 4, 9, 30, tz=NY)
    assert cal.next_reset("1d", at(2026, 12, 3, 8, 0, tz=NY)) == at(2026, 12, 3, 9, 30, tz=NY)  # not yet today
    assert cal.next_reset("7d", now) == at(2026, 12, 7, 9, 30, tz=NY)
    assert cal.next_reset("1mo", now) == at(2027, 1, 1, 9, 30, tz=NY)
    assert cal.next_reset("1h", now) == at(2026, 12, 3, 11, 0, tz=NY)  # sub-day periods ignore the time of day
    assert Calendar(None, "12:00:30").next_reset("1d", now) == at(2026, 12, 4, 12, 0, 30)  # 15:37 UTC: tomorrow


def test_periods_after_the_first() -> None:
    # 30d steps by calendar months from the 1st, as LiteLLM's reset job moves it
    month = parse("30d", Calendar())
    assert period_at(month, at(2027, 1, 1), at(2027, 2, 20)) == (at(2027, 2, 1), at(2027, 3, 1))
    assert parse("30d").seconds == 30 * 86400  # without a calendar (provider budgets): 30 days
    # days in a zone keep their wall-clock hour across a daylight-saving change (US: 14 March 2027)
    daily = parse("1d", Calendar("America/New_York"))
    start, end = period_at(daily, at(2027, 3, 10, tz=NY), at(2027, 3, 20, 12, tz=NY))
    assert (start, end) == (at(2027, 3, 20, tz=NY), at(2027, 3, 21, tz=NY))
    assert end - start == 86400 and at(2027, 3, 15, tz=NY) - at(2027, 3, 14, tz=NY) == 23 * 3600
    start, end = period_at(daily, at(2027, 3, 10, tz=NY), at(2027, 3, 14, 12, tz=NY))
    assert (start, end) == (at(2027, 3, 14, tz=NY), at(2027, 3, 15, tz=NY))  # the 23-hour day
    weekly = parse("1w", Calendar("America/New_York"))
    assert period_at(weekly, at(2027, 3, 8, tz=NY), at(2027, 3, 16, tz=NY)) == (
        at(2027, 3, 15, tz=NY), at(2027, 3, 22, tz=NY))


@pytest.mark.parametrize(("settings", "needle"), [
    ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"budget_reset_time": "25:00"}, "budget_reset_time: expected a 24-hour"),
    ({"budget_reset_time": "noon"}, "budget_reset_time: expected a 24-hour"),
])
def test_bad_settings_stop_startup(settings: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                      "litellm_settings": settings}, "cfg.yaml")


def test_settings_are_read() -> None:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "litellm_settings": {"timezone": "Asia/Kolkata", "budget_reset_time": "06:00"}}, "cfg.yaml")
    assert (cfg.general.timezone, cfg.general.budget_reset_time) == ("Asia/Kolkata", "06:00")


def _parsed(value: str) -> datetime:
    out = datetime.fromisoformat(value)
    return out if out.tzinfo is not None else out.replace(tzinfo=UTC)


def test_management_routes_set_litellms_first_reset(db_url: str) -> None:
    """``budget_reset_at`` of a key, team, user and budget row set with ``budget_duration``: the next midnight in
    the configured zone for ``1d``, the 1st of the next month for ``30d`` (LiteLLM's, where relaygate used to
    count a whole period from the call)."""
    kolkata = ZoneInfo("Asia/Kolkata")

    async def body(env: Env) -> None:
        before = datetime.now(UTC)
        key = (await env.ok("POST", "/key/generate", {"max_budget": 5, "budget_duration": "1d"}))["key"]
        info = (await env.ok("GET", f"/key/info?key={key}"))["info"]
        local = before.astimezone(kolkata)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        after = datetime.now(UTC).astimezone(kolkata)
        if after.date() != local.date():  # the test straddled midnight there: either is right
            assert _parsed(info["budget_reset_at"]) in (midnight, midnight + timedelta(days=1))
        else:
            assert _parsed(info["budget_reset_at"]) == midnight
        team = await env.ok("POST", "/team/new", {"team_alias": "t", "max_budget": 9, "budget_duration": "30d"})
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_first = (first + timedelta(days=32)).replace(day=1)
        assert _parsed(team["budget_reset_at"]) in (next_first, (next_first + timedelta(days=32)).replace(day=1))
        user = await env.ok("POST", "/user/new", {"user_id": "u-cal", "max_budget": 3, "budget_duration": "1h"})
        reset = _parsed(user["budget_reset_at"])  # a whole hour in Kolkata: half past one in UTC (+05:30)
        assert reset.astimezone(kolkata).minute == 0 and reset.minute == 30 and reset.second == 0
        assert 0 < (reset - before).total_seconds() <= 3600 + 5
        row = await env.ok("POST", "/budget/new", {"budget_id": "b-cal", "max_budget": 1, "budget_duration": "7d"})
        monday = _parsed(row["budget_reset_at"]).astimezone(kolkata)
        assert monday.weekday() == 0 and (monday.hour, monday.minute) == (0, 0)
        updated = await env.ok("POST", "/key/update", {"key": key, "budget_duration": "1mo"})
        assert _parsed(updated["budget_reset_at"]).astimezone(kolkata).day == 1

    run(db_url, body, litellm_settings={"timezone": "Asia/Kolkata"})


def test_a_30d_budget_past_its_reset_rolls_to_the_first_of_the_month(db_url: str) -> None:
    """A key whose ``30d`` period ended (its ``budget_reset_at`` two months back, on a 1st): the first request
    starts the current period and the row is written back with the 1st of the next month, as LiteLLM 1.110's
    reset job moves a ``30d`` budget (fixed 30-day steps would drift off the 1st)."""
    now = datetime.now(UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    anchor = (first - timedelta(days=40)).replace(day=1)  # the 1st two months back (one when near a month's end)
    expected = (first + timedelta(days=32)).replace(day=1)

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, general_settings={"user_api_key_cache_ttl": 0.5}) as gw:
            await gw.store.create_key(Key(token=token("sk-30d"), max_budget=0.00001, spend=0.00001,
                                          budget_duration="30d", budget_reset_at=anchor))
            await gw.budgets.refresh()
            assert (await ask(gw, "sk-30d")).status == 200  # last period's spend no longer counts
            deadline = time.monotonic() + 15
            while True:  # written back off the request path
                row = await gw.store.get_key(token("sk-30d"))
                assert row.budget_reset_at is not None
                if row.budget_reset_at.replace(tzinfo=UTC) > now:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert row.budget_reset_at.replace(tzinfo=UTC) == expected

    asyncio.run(main())


def test_the_proxy_budget_periods_are_aligned_too() -> None:
    """``litellm_settings.max_budget`` with ``budget_duration``: its periods are anchored at the calendar's first
    reset after the epoch, so a ``7d`` proxy budget runs Monday to Monday in the configured zone (the epoch was
    a Thursday) and a ``1d`` one from midnight there."""
    from relaygate.budgets import BudgetGuard

    weekly = BudgetGuard(max_budget=10.0, budget_duration="7d")
    assert weekly.proxy is not None
    start = datetime.fromtimestamp(weekly.proxy.tally.start, UTC)
    assert start.weekday() == 0 and (start.hour, start.minute) == (0, 0)
    daily = BudgetGuard(max_budget=10.0, budget_duration="1d", cal=Calendar("Asia/Kolkata", "06:00"))
    assert daily.proxy is not None
    local = datetime.fromtimestamp(daily.proxy.tally.start, ZoneInfo("Asia/Kolkata"))
    assert (local.hour, local.minute) == (6, 0) and daily.proxy.tally.end - daily.proxy.tally.start == 86400
