"""Budget periods (pure): LiteLLM's durations, boundaries computed from the period start, calendar months."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relaygate.budgets import exceeded, parse, period_at
from relaygate.budgets.limits import Limit, Tally
from relaygate.cost import to_pico


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("30m", 1800), ("1h", 3600), ("1d", 86400),
                                                ("7d", 7 * 86400), ("30d", 30 * 86400), ("2w", 14 * 86400)])
def test_fixed_units(text: str, seconds: int) -> None:
    assert parse(text).seconds == seconds


@pytest.mark.parametrize("bad", ["", "0d", "1y", "d", "-1d", "1.5h"])
def test_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_fixed_periods_follow_the_anchor_without_gaps() -> None:
    d = parse("1h")
    anchor = ts(2026, 1, 1, 0, 30)
    assert period_at(d, anchor, anchor) == (anchor, anchor + 3600)
    assert period_at(d, anchor, anchor + 3599.9) == (anchor, anchor + 3600)
    assert period_at(d, anchor, anchor + 3600) == (anchor + 3600, anchor + 7200)  # exactly at the boundary
    assert period_at(d, anchor, anchor + 10 * 3600 + 5) == (anchor + 36000, anchor + 39600)
    assert period_at(d, anchor, anchor - 1) == (anchor - 3600, anchor)


def test_calendar_months_clamp_and_come_back() -> None:
    d = parse("1mo")
    anchor = ts(2026, 1, 31)
    assert period_at(d, anchor, ts(2026, 2, 15)) == (anchor, ts(2026, 2, 28))
    assert period_at(d, anchor, ts(2026, 3, 1)) == (ts(2026, 2, 28), ts(2026, 3, 31))
    assert period_at(d, anchor, ts(2026, 3, 31)) == (ts(2026, 3, 31), ts(2026, 4, 30))
    assert period_at(parse("3mo"), ts(1970, 1, 1), ts(2026, 5, 2)) == (ts(2026, 4, 1), ts(2026, 7, 1))


def test_limit_counts_row_spend_only_in_its_period() -> None:
    d = parse("10s")
    t = Tally(d, 1000.0, 995.0)  # the row's period is [990, 1000)
    lim = Limit("key", "k", t, 1.0, None, to_pico(0.5), t.start, "k")
    t.add(to_pico(0.25), 996.0)
    assert lim.spent(997.0) == to_pico(0.75)
    assert not lim.over(to_pico(0.75)) and lim.over(to_pico(1.0))
    assert lim.spent(1000.0) == 0  # the next period: the row's spend no longer counts
    t.add(to_pico(0.1), 1001.0)
    assert lim.spent(1002.0) == to_pico(0.1)


def test_errors_are_litellms() -> None:
    t = Tally()
    body = exceeded(Limit("key", "abc", t, 5e-06, None, 0, 0.0, "my-key (sk-...abcd)"), 6e-06)
    assert (body.status, body.type, body.code) == (422, "budget_exceeded", "422")
    assert body.message == "Budget has been exceeded! Key=my-key (sk-...abcd) Current cost: 6e-06, Max budget: 5e-06"
    assert exceeded(Limit("team", "t1", t, 1.0, None, 0, 0.0), 2.0).message == (
        "Budget has been exceeded! Team=t1 Current cost: 2.0, Max budget: 1.0")
    assert exceeded(Limit("user", "u1", t, 1.0, None, 0, 0.0), 2.0).message == (
        "ExceededBudget: User=u1 over budget. Spend=2.0, Budget=1.0")
    assert exceeded(Limit("customer", "c1", t, 1.0, None, 0, 0.0), 2.0).message == (
        "ExceededBudget: End User=c1 over budget. Spend=2.0, Budget=1.0")
    assert exceeded(Limit("proxy", "", t, 1.0, None, 0, 0.0), 2.0).message == (
        "Budget has been exceeded! Current cost: 2.0, Max budget: 1.0")
