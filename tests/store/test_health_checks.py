"""The health check history table (``store.health_checks``) on SQLite and a real PostgreSQL server: rows as
LiteLLM's ``LiteLLM_HealthCheckTable`` shows them, a background round's rows written only on a change or an
hour later (decided in the insert), the filters and paging of ``/health/history``, the newest row per model,
and the retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaygate.store import Store
from relaygate.store.health_checks import ERROR_CHARS, RETENTION, CheckRow, history, latest, prune, save_checks
from tests.store.conftest import run

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _row(name: str, dep: str | None, ok: bool, error: str | None = None, by: str = "background_health_check") -> CheckRow:
    return CheckRow(name, dep, 1 if ok else 0, 0 if ok else 1, error, 12.5, by)


def test_rows_round_trip_in_litellm_shape(db_url: str) -> None:
    async def body(store: Store) -> None:
        hostile = "mo'del \"x\" \u00e9\u4e2d; DROP TABLE rg_health_checks; --"
        n = await save_checks(store, [_row(hostile, None, False, "e" * 900, "user-1"), _row("b", "b-1", True)],
                              now=T0)
        assert n == 2
        rows = await history(store)
        assert [r["model_name"] for r in rows] == ["b", hostile] or [r["model_name"] for r in rows] == [hostile, "b"]
        bad = next(r for r in rows if r["model_name"] == hostile)
        assert bad["status"] == "unhealthy" and bad["healthy_count"] == 0 and bad["unhealthy_count"] == 1
        assert bad["model_id"] is None and bad["checked_by"] == "user-1" and bad["response_time_ms"] == 12.5
        assert len(bad["error_message"]) == ERROR_CHARS and bad["details"] is None
        assert datetime.fromisoformat(bad["checked_at"]) == T0 and bad["created_at"] == bad["checked_at"]
        assert len(bad["health_check_id"]) == 36
        assert set(bad) == {"health_check_id", "model_name", "model_id", "status", "healthy_count",
                            "unhealthy_count", "error_message", "response_time_ms", "details", "checked_by",
                            "checked_at", "created_at"}

    run(db_url, body)


def test_only_changes_writes_a_change_or_an_hourly_refresh(db_url: str) -> None:
    async def body(store: Store) -> None:
        assert await save_checks(store, [_row("m", "d1", True), _row("m", "d2", True)], only_changes=True,
                                 now=T0) == 2
        # the same statuses ten minutes later: nothing new
        assert await save_checks(store, [_row("m", "d1", True), _row("m", "d2", True)], only_changes=True,
                                 now=T0 + timedelta(minutes=10)) == 0
        # d2 fails: only its row
        assert await save_checks(store, [_row("m", "d1", True), _row("m", "d2", False, "boom")], only_changes=True,
                                 now=T0 + timedelta(minutes=20)) == 1
        # an hour after d1's row: refreshed; d2 unchanged since 40 minutes
        assert await save_checks(store, [_row("m", "d1", True), _row("m", "d2", False, "boom")], only_changes=True,
                                 now=T0 + timedelta(minutes=61)) == 1
        # a check by name (no model id) is its own series, and without only_changes every row is written
        assert await save_checks(store, [_row("m", None, True), _row("m", None, True)],
                                 now=T0 + timedelta(minutes=62)) == 2
        rows = await history(store, model="m")
        assert len(rows) == 6
        assert [r["checked_at"] for r in rows] == sorted((r["checked_at"] for r in rows), reverse=True)
        newest = {r["model_id"] or r["model_name"]: r for r in await latest(store)}
        assert set(newest) == {"d1", "d2", "m"}
        assert newest["d2"]["status"] == "unhealthy" and newest["d2"]["error_message"] == "boom"
        assert datetime.fromisoformat(newest["d1"]["checked_at"]) == T0 + timedelta(minutes=61)

    run(db_url, body)


def test_filters_paging_and_retention(db_url: str) -> None:
    async def body(store: Store) -> None:
        for i in range(5):
            await save_checks(store, [_row("a", "a-1", i % 2 == 0), _row("b", "b-1", True)],
                              now=T0 + timedelta(minutes=i))
        assert len(await history(store)) == 10
        assert len(await history(store, model="a")) == 5
        assert len(await history(store, model="a", status="unhealthy")) == 2
        assert await history(store, model="nope") == []
        page = await history(store, limit=3, offset=0)
        rest = await history(store, limit=100, offset=3)
        assert len(page) == 3 and len(rest) == 7
        assert {r["health_check_id"] for r in page}.isdisjoint(r["health_check_id"] for r in rest)
        old = T0 - RETENTION - timedelta(days=1)
        await save_checks(store, [_row("old", "o-1", True)], now=old)
        assert await prune(store, now=T0) == 1
        assert await history(store, model="old") == [] and len(await history(store)) == 10

    run(db_url, body)
