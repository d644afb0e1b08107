"""The overview's aggregates (``store.activity``, ``management.activity``): the pure parts (percentile
interpolation, buckets, date checks), and the SQL on both backends — a real SQLite file and a real PostgreSQL
server (tests/pg.py) — against sums and ``percentile_cont`` values computed here from the same rows."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relaygate.core.errors import GatewayError
from relaygate.management.activity import assemble, bucket_starts, date_range
from relaygate.store import Store, open_store
from relaygate.store.activity import Scope, interpolate, latency_percentiles, series, spend_since, top_groups
from relaygate.store.records import SpendLog
from relaygate.store.spend import NANOS, write_spend
from tests.pg import PostgresServer

T = TypeVar("T")


def percentile_cont(values: list[float], p: int) -> float:
    """PostgreSQL's ``percentile_cont(p / 100)``, the textbook way."""
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# -- pure -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 100, 101, 257])
def test_interpolate_matches_percentile_cont(n: int) -> None:
    rng = random.Random(n)
    values = [rng.uniform(1, 5000) for _ in range(n)]
    ranked = {i + 1: v for i, v in enumerate(sorted(values))}
    for p in (50, 95, 99):
        whole = p * (n - 1) // 100
        near = {r: ranked[r] for r in (1 + whole, 2 + whole) if r in ranked}  # only what the SQL returns
        got = interpolate(near, n, p)
        assert got == pytest.approx(percentile_cont(values, p), rel=1e-12)


def test_interpolate_without_rows() -> None:
    assert interpolate({}, 0, 50) is None
    assert interpolate({}, 5, 50) is None


def test_bucket_starts_cover_the_range() -> None:
    days = bucket_starts(date(2026, 2, 27), date(2026, 3, 2), "day")
    assert [k for k, _ in days] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    hours = bucket_starts(date(2026, 3, 1), date(2026, 3, 2), "hour")
    assert len(hours) == 48
    assert hours[0] == ("2026-03-01T00", datetime(2026, 3, 1, tzinfo=UTC))
    assert hours[-1][0] == "2026-03-02T23"


def test_assemble_fills_empty_buckets() -> None:
    rows = [{"bucket": "2026-03-02", "requests": 3, "errors": 1, "spend_nanos": 1_500_000_000,
             "prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}]
    pct = {"2026-03-02": {50: 10.0, 95: 20.0, 99: 21.5}}
    out = assemble(date(2026, 3, 1), date(2026, 3, 3), "day", rows, pct, {50: 10.0, 95: 20.0, 99: 21.5})
    assert [p["t"] for p in out["series"]] == ["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z",
                                               "2026-03-03T00:00:00Z"]
    assert out["series"][0] == {"t": "2026-03-01T00:00:00Z", "requests": 0, "errors": 0, "spend": 0.0,
                                "prompt_tokens": 0, "completion_tokens": 0, "p50_ms": None, "p95_ms": None,
                                "p99_ms": None}
    assert out["series"][1]["spend"] == 1.5
    assert out["series"][1]["p99_ms"] == 21.5
    assert out["totals"] == {"requests": 3, "errors": 1, "spend": 1.5, "prompt_tokens": 30, "completion_tokens": 6,
                             "p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 21.5}


@pytest.mark.parametrize(("query", "param"), [
    ({"start_date": "2026-13-01"}, "start_date"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"end_date": "2026-03-01T10:00"}, "end_date"),
    ({"start_date": "2026-03-05", "end_date": "2026-03-01"}, "start_date"),
    ({"start_date": "2024-01-01", "end_date": "2026-03-01"}, "start_date"),
])
def test_date_range_refuses(query: dict[str, str], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        date_range(query, today=date(2026, 3, 10))
    assert info.value.status == 400
    assert info.value.param == param


def test_date_range_defaults_and_caps() -> None:
    assert date_range({}, today=date(2026, 3, 10)) == (date(2026, 3, 4), date(2026, 3, 10))
    assert date_range({"start_date": "2025-03-10", "end_date": "2026-03-10"})[0] == date(2025, 3, 10)  # 366 days
    with pytest.raises(GatewayError):
        date_range({"start_date": "2026-03-01", "end_date": "2026-03-15"}, bucket="hour")  # 15 days of hours
    assert date_range({"start_date": "2026-03-01", "end_date": "2026-03-14"}, bucket="hour")[1] == date(2026, 3, 14)
    with pytest.raises(GatewayError) as info:
        date_range({"start_date": "2026-03-01"}, required=True)
    assert info.value.param == "end_date"


# -- the SQL on both backends ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'activity.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def run(url: str, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = await open_store(url)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def _rows() -> list[SpendLog]:
    """Three days of rows: two keys (one a user's), two teams, three models, failures among them, and a row
    outside the range on each side."""
    rng = random.Random(7)
    rows = []
    for i in range(240):
        start = DAY0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60), seconds=rng.random())
        ms = round(rng.uniform(5, 900), 3)
        model = ("gpt-a", "gpt-b", "gpt-c")[i % 3]
        key, user, team = (("k1", "u1", "t1") if i % 4 == 0 else ("k2", None, "t2") if i % 4 == 1
                           else ("k3", "u3", None))
        cost = rng.randrange(0, 5_000) / 1e6
        rows.append(SpendLog(request_id=f"r{i}", api_key=key, user_id=user, team_id=team, model=model,
                             model_group=model, spend=cost, spend_nanos=round(cost * NANOS),
                             prompt_tokens=10 + i % 7, completion_tokens=i % 5, total_tokens=10 + i % 7 + i % 5,
                             start_time=start, end_time=start + timedelta(milliseconds=ms),
                             status="failure" if i % 9 == 0 else "success"))
    for j, at in enumerate((DAY0 - timedelta(seconds=1), DAY0 + timedelta(days=3))):
        rows.append(SpendLog(request_id=f"out{j}", api_key="k1", user_id="u1", model="gpt-a", model_group="gpt-a",
                             spend=1.0, spend_nanos=NANOS, start_time=at, end_time=at + timedelta(seconds=1)))
    return rows


def _latency(r: SpendLog) -> float:
    assert r.end_time is not None and r.start_time is not None
    return (r.end_time - r.start_time).total_seconds() * 1000


def test_aggregates_match_the_rows(db_url: str) -> None:
    rows = _rows()
    inside = [r for r in rows if r.request_id.startswith("r")]

    async def body(store: Store) -> dict[str, Any]:
        await write_spend(store, rows)
        scope = Scope(DAY0, DAY0 + timedelta(days=3))
        mine = Scope(DAY0, DAY0 + timedelta(days=3), user_id="u1")
        return {"days": await series(store, scope, "day"), "hours": await series(store, scope, "hour"),
                "pct": await latency_percentiles(store, scope, "day"),
                "all": await latency_percentiles(store, scope, None),
                "models": await top_groups(store, scope, "model", 10), "keys": await top_groups(store, scope, "key", 2),
                "teams": await top_groups(store, scope, "team", 10), "mine": await series(store, mine, "day"),
                "since": await spend_since(store, scope, [DAY0, DAY0 + timedelta(days=2)])}

    got = run(db_url, body)
    by_day: dict[str, list[SpendLog]] = {}
    for r in inside:
        assert r.start_time is not None
        by_day.setdefault(r.start_time.strftime("%Y-%m-%d"), []).append(r)
    assert [d["bucket"] for d in got["days"]] == sorted(by_day)
    for d in got["days"]:
        day_rows = by_day[d["bucket"]]
        assert d["requests"] == len(day_rows)
        assert d["errors"] == sum(r.status == "failure" for r in day_rows)
        assert d["spend_nanos"] == sum(r.spend_nanos for r in day_rows)
        assert d["prompt_tokens"] == sum(r.prompt_tokens for r in day_rows)
        assert d["completion_tokens"] == sum(r.completion_tokens for r in day_rows)
        for p in (50, 95, 99):  # exact percentile_cont (the latency is computed from the stored times)
            assert got["pct"][d["bucket"]][p] == pytest.approx(percentile_cont([_latency(r) for r in day_rows], p),
                                                               abs=0.01)
    assert sum(h["requests"] for h in got["hours"]) == len(inside)
    assert all(len(h["bucket"]) == 13 and h["bucket"][10] == "T" for h in got["hours"])
    for p in (50, 95, 99):
        assert got["all"][""][p] == pytest.approx(percentile_cont([_latency(r) for r in inside], p), abs=0.01)
    models = {m["id"]: m for m in got["models"]}
    for name in ("gpt-a", "gpt-b", "gpt-c"):
        mine_rows = [r for r in inside if r.model_group == name]
        assert models[name]["requests"] == len(mine_rows)
        assert models[name]["spend_nanos"] == sum(r.spend_nanos for r in mine_rows)
    spend_by_key = {k: sum(r.spend_nanos for r in inside if r.api_key == k) for k in ("k1", "k2", "k3")}
    assert [k["id"] for k in got["keys"]] == sorted(spend_by_key, key=lambda k: -spend_by_key[k])[:2]
    assert {g["id"] for g in got["teams"]} == {"t1", "t2"}  # rows without a team are not a team
    assert sum(d["requests"] for d in got["mine"]) == sum(r.user_id == "u1" for r in inside)
    assert got["since"] == [sum(r.spend_nanos for r in inside),
                            sum(r.spend_nanos for r in inside if r.start_time and r.start_time >= DAY0 + timedelta(days=2))]


def test_empty_range(db_url: str) -> None:
    async def body(store: Store) -> tuple[Any, ...]:
        scope = Scope(DAY0, DAY0 + timedelta(days=1))
        return (await series(store, scope, "day"), await latency_percentiles(store, scope, None),
                await top_groups(store, scope, "key", 5), await spend_since(store, scope, [DAY0]))

    assert run(db_url, body) == ([], {}, [], [0])
