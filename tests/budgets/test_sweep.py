"""The budget reset sweep over SQLite and a real PostgreSQL: entities nobody used since their period ended get
their reset written (``spend`` 0, the end of the period holding now), budget rows with everything on them,
rows still in their period or without a period left alone, once per boundary whoever writes it, one run at a
time among the processes on the database; and a gateway runs it by itself."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from relaygate.budgets import sweep
from relaygate.budgets.periods import Calendar
from relaygate.store import Budget, Key, Organization, Team, User, open_store
from tests.budgets.conftest import gateway, token, upstream
from tests.store.conftest import run

DAY = timedelta(days=1)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def test_due_rows_are_reset_to_the_period_holding_now(db_url: str) -> None:
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)

    async def body(store: object) -> None:
        s = store  # type: ignore[assignment]
        await s.create_key(Key(token=token("sk-idle"), spend=4.0, max_budget=5.0, budget_duration="1d",
                               budget_reset_at=datetime(2026, 11, 30, 9, tzinfo=UTC)))     # ended 3 days ago
        await s.create_key(Key(token=token("sk-live"), spend=2.0, max_budget=5.0, budget_duration="1d",
                               budget_reset_at=now + timedelta(hours=9)))                  # still in its period
        await s.create_key(Key(token=token("sk-none"), spend=7.0, max_budget=5.0))        # no period: never
        await s.create_team(Team(team_id="t-month", spend=3.0, max_budget=9.0, budget_duration="30d",
                                 budget_reset_at=datetime(2026, 10, 1, tzinfo=UTC)))
        await s.create_user(User(user_id="u-hour", spend=1.5, max_budget=2.0, budget_duration="1h",
                                 budget_reset_at=now - timedelta(minutes=90)))
        await s.create_budget(Budget(budget_id="b-week", max_budget=10.0, budget_duration="7d",
                                     budget_reset_at=datetime(2026, 11, 23, tzinfo=UTC)))  # a Monday
        await s.create_organization(Organization(organization_id="o1", budget_id="b-week", spend=6.0))

        assert await sweep.run(s, Calendar(), now.timestamp()) == 4
        idle = await s.get_key(token("sk-idle"))
        assert idle.spend == 0 and _utc(idle.budget_reset_at) == datetime(2026, 12, 4, 9, tzinfo=UTC)
        live = await s.get_key(token("sk-live"))
        assert live.spend == 2.0 and _utc(live.budget_reset_at) == now + timedelta(hours=9)
        assert (await s.get_key(token("sk-none"))).spend == 7.0
        team = await s.get_team("t-month")  # 30d: calendar months from the 1st
        assert team.spend == 0 and _utc(team.budget_reset_at) == datetime(2027, 1, 1, tzinfo=UTC)
        user = await s.get_user("u-hour")
        assert user.spend == 0 and _utc(user.budget_reset_at) == now + timedelta(minutes=30)
        row = await s.get_budget("b-week")
        assert _utc(row.budget_reset_at) == datetime(2026, 12, 7, tzinfo=UTC)
        assert (await s.get_organization("o1")).spend == 0
        # a second run (another worker, the same boundary) writes nothing
        assert await sweep.run(s, Calendar(), now.timestamp()) == 0

    run(db_url, body)


def test_one_sweep_at_a_time_among_processes(db_url: str) -> None:
    async def main() -> None:
        a, b = await open_store(db_url), await open_store(db_url)
        try:
            async with a.job_lock(sweep.LOCK) as mine:
                assert mine
                assert await sweep.run(b, Calendar()) is None  # skipped at once, never waiting
            assert await sweep.run(b, Calendar()) == 0
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_a_gateway_sweeps_by_itself(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a store, a gateway resets a key nobody calls once its period has ended (here every half second)."""
    monkeypatch.setattr(sweep, "EVERY", 0.5)

    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            ended = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
            await gw.store.create_key(Key(token=token("sk-quiet"), spend=3.0, max_budget=5.0, budget_duration="1h",
                                          budget_reset_at=ended))
            deadline = time.monotonic() + 15
            while (row := await gw.store.get_key(token("sk-quiet"))).spend != 0:
                assert time.monotonic() < deadline, "the sweep did not run"
                await asyncio.sleep(0.2)
            assert _utc(row.budget_reset_at) == ended + timedelta(hours=1)  # the period holding now

    asyncio.run(main())


def test_passed_budget_windows_move_to_their_next_reset(db_url: str) -> None:
    """A key's and a team's budget windows (``budget_limits``) whose ``reset_at`` has passed show the end of the
    period holding now; a window still in its period, and everything else on the row, is left as it was."""
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    windows = [{"budget_duration": "1d", "max_budget": 5.0, "reset_at": "2026-11-30T09:00:00+00:00"},
               {"budget_duration": "30d", "max_budget": 50.0, "reset_at": "2027-01-01T00:00:00+00:00"}]

    async def body(store: object) -> None:
        s = store  # type: ignore[assignment]
        await s.create_key(Key(token=token("sk-win"), spend=1.0, budget_limits=windows))
        await s.create_team(Team(team_id="t-win", budget_limits=[
            {"budget_duration": "1h", "max_budget": 1.0, "reset_at": "2026-12-03T12:00:00+00:00"}]))
        await s.create_key(Key(token=token("sk-none")))
        assert await sweep.run(s, Calendar(), now.timestamp()) == 2
        key = await s.get_key(token("sk-win"))
        assert key.spend == 1.0  # a window's reset moves its reset_at only
        assert key.budget_limits == [{**windows[0], "reset_at": "2026-12-04T09:00:00+00:00"}, windows[1]]
        team = await s.get_team("t-win")
        assert team.budget_limits[0]["reset_at"] == "2026-12-03T16:00:00+00:00"
        assert await sweep.run(s, Calendar(), now.timestamp()) == 0  # nothing passed any more

    run(db_url, body)
