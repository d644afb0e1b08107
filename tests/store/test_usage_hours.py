"""``store.usage_hours.hourly_usage``, on SQLite and PostgreSQL: the spend rows summed per hour, key, model and team
exactly (integer nano-USD), the window's bounds, failures counted, and the key, team and user labels read from
their rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import Key, Store, Team, User, hash_token, key_name
from relaygate.store.spend import write_spend_values
from relaygate.store.usage_hours import hourly_usage
from tests.store.conftest import run

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def rec(i: int, at: datetime, key: str, *, team: str | None = None, user: str | None = None, cost: float = 0.1,
        model: str = "gpt-4o", ok: bool = True) -> CompletionRecord:
    return CompletionRecord(
        call_id=f"uh-{i}", route="chat", stream=False, model=model, model_group="chat-main", deployment_id="d1",
        provider="openai", upstream_model=model, key_hash=key, key_alias=None, team_id=team, user_id=user,
        status=200 if ok else 500, outcome=Outcome.OK if ok else Outcome.ERROR, prompt_tokens=10,
        completion_tokens=5, cache_read_tokens=2, cache_write_tokens=0, latency=0.01, ttft=None, overhead=0.001,
        cost=cost, cache_hit=False, retries=0, fallbacks=0, start_time=at.timestamp())


def test_hourly_usage(db_url: str) -> None:
    async def body(store: Store) -> None:
        k1, k2 = hash_token("sk-uh-1"), hash_token("sk-uh-2")
        await store.create_team(Team(team_id="t1", team_alias="Search"))
        await store.create_user(User(user_id="u1", user_email="u1@example.com"))
        await store.create_key(Key(token=k1, key_name=key_name("sk-uh-1"), key_alias="search-prod", team_id="t1"))
        await store.create_key(Key(token=k2, key_name=key_name("sk-uh-2"), user_id="u1"))
        records = [rec(0, T0 + timedelta(minutes=1), k1, team="t1", cost=0.1),
                   rec(1, T0 + timedelta(minutes=59, seconds=59), k1, team="t1", cost=0.2),
                   rec(2, T0 + timedelta(minutes=30), k1, team="t1", cost=0.0, ok=False),
                   rec(3, T0 + timedelta(hours=1, minutes=5), k1, team="t1", cost=0.3),
                   rec(4, T0 + timedelta(minutes=2), k2, user="u1", cost=0.7, model="gpt-4o-mini"),
                   rec(5, T0 + timedelta(hours=2), k2, user="u1", cost=9.0),  # at the end: outside
                   rec(6, T0 - timedelta(seconds=1), k2, user="u1", cost=9.0)]  # before the start: outside
        await write_spend_values(store, [spend_values(r, store.dialect) for r in records])
        rows = await hourly_usage(store, T0, T0 + timedelta(hours=2))
        got = {(r["hour"], r["api_key"], r["model"]): r for r in rows}
        assert [(r["hour"], r["model"]) for r in rows][:1] == [("2026-11-03T11", "gpt-4o")]  # newest hour first
        assert set(got) == {("2026-11-03T10", k1, "gpt-4o"), ("2026-11-03T11", k1, "gpt-4o"),
                            ("2026-11-03T10", k2, "gpt-4o-mini")}
        a = got[("2026-11-03T10", k1, "gpt-4o")]
        assert a["spend"] == 0.3 and a["requests"] == 3 and a["failed"] == 1  # 0.1 + 0.2 exactly (nano-USD sums)
        assert (a["prompt_tokens"], a["completion_tokens"], a["cache_read_tokens"]) == (30, 15, 6)
        assert (a["key_alias"], a["team_id"], a["team_alias"], a["user_email"]) == ("search-prod", "t1", "Search", None)
        b = got[("2026-11-03T10", k2, "gpt-4o-mini")]
        assert (b["spend"], b["user_id"], b["user_email"], b["team_alias"]) == (0.7, "u1", "u1@example.com", None)
        assert (b["model_group"], b["provider"]) == ("chat-main", "openai")
        assert len(await hourly_usage(store, T0, T0 + timedelta(hours=2), limit=1)) == 1
        assert await hourly_usage(store, T0 + timedelta(hours=3), T0 + timedelta(hours=4)) == []

    run(db_url, body)
