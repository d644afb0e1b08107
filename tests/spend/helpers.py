"""Completion records for the spend tests, and the exactness check: every counter equals its rows' sum."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import UTC
from typing import Any

from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.store import Store
from relaygate.store.spend import NANOS, bounded_id


def record(i: int, *, cost: float = 0.0, key: str | None = "k0", team: str | None = None, user: str | None = None,
           customer: str | None = None, tags: list[str] | None = None, outcome: Outcome = Outcome.OK,
           deployment: str = "d0", start: float | None = None, prompt: int = 10, completion: int = 5,
           call_id: str | None = None) -> CompletionRecord:
    return CompletionRecord(
        call_id=call_id or f"call-{i}", route="chat", stream=bool(i % 2), model="gpt", model_group="gpt",
        deployment_id=deployment, provider="openai", upstream_model="gpt-4o", key_hash=key, key_alias=None,
        team_id=team, user_id=user, status=200 if outcome is Outcome.OK else 500, outcome=outcome,
        prompt_tokens=prompt, completion_tokens=completion, cache_read_tokens=0, cache_write_tokens=0, latency=0.2,
        ttft=0.05 if i % 2 else None, overhead=0.001, cost=cost, cache_hit=False, retries=0, fallbacks=0,
        start_time=start if start is not None else time.time(), end_user_id=customer,
        extra={"tags": tags} if tags else None)


def mixed(n: int, seed: int = 7) -> list[CompletionRecord]:
    """``n`` records over 20 keys, 5 teams, 8 users, 6 customers, 4 tags, 3 deployments; costs from 0 to
    dollars, failures at 0, some with no key."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ok = rnd.random() > 0.1
        cost = rnd.choice([0.0, 1.5e-7, 3.3e-6, 0.000123456789, 0.0421, 1.23456789, rnd.random() / 100]) if ok else 0.0
        out.append(record(
            i, cost=cost, key=None if rnd.random() < 0.05 else f"k{rnd.randrange(20)}",
            team=rnd.choice([None, "t0", "t1", "t2", "t3", "t4"]), user=rnd.choice([None, *(f"u{j}" for j in range(8))]),
            customer=rnd.choice([None, *(f"c{j}" for j in range(6))]),
            tags=rnd.sample(["a", "b", "c", "d"], rnd.randrange(3)), outcome=Outcome.OK if ok else Outcome.ERROR,
            deployment=f"d{rnd.randrange(3)}", prompt=rnd.randrange(1000), completion=rnd.randrange(500)))
    return out


async def check_counters(store: Store) -> dict[tuple[str, str], int]:
    """Sum the rows per entity in integer nano-USD and assert each counter equals it exactly (and the
    request and token counts); returns the sums."""
    async with store._read() as c:
        rows = await c.fetch("SELECT * FROM rg_spend_logs", [])
        counters = await c.fetch("SELECT * FROM rg_spend_totals", [])
    from relaygate.store import tables as t

    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for raw in rows:
        r = t.SPEND_LOGS.from_db(raw)
        ents = [("global", ""), *((k, bounded_id(v)) for k, v in (
            ("key", r.api_key), ("user", r.user_id), ("team", r.team_id), ("organization", r.organization_id),
            ("customer", r.end_user), ("deployment", r.model_id)) if v)]
        ents += [("tag", bounded_id(tag)) for tag in set(r.request_tags)]
        for e in ents:
            acc = sums[e]
            acc[0] += r.spend_nanos
            acc[1] += r.prompt_tokens
            acc[2] += r.completion_tokens
            acc[3] += 1
    got = {(c["entity_type"], c["entity_id"]): [int(c["spend_nanos"]), int(c["prompt_tokens"]),
                                                int(c["completion_tokens"]), int(c["requests"])] for c in counters}
    assert got == dict(sums)
    await check_daily(store, rows)
    return {e: v[0] for e, v in sums.items()}


async def check_daily(store: Store, raw_rows: list[dict[str, Any]] | None = None) -> None:
    """Assert the daily rollup (``store.daily``) equals the spend rows summed per day, entity, key, model group,
    model and provider, exactly (``raw_rows``: the rows as read, else read here)."""
    from relaygate.store import tables as t

    async with store._read() as c:
        if raw_rows is None:
            raw_rows = await c.fetch("SELECT * FROM rg_spend_logs", [])
        stored = await c.fetch("SELECT * FROM rg_daily_spend", [])
    want: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * 7)
    for raw in raw_rows:
        r = t.SPEND_LOGS.from_db(raw)
        day = r.start_time.astimezone(UTC).strftime("%Y-%m-%d")
        ents = [(k, bounded_id(v)) for k, v in (("user", r.user_id), ("team", r.team_id),
                                                ("organization", r.organization_id), ("customer", r.end_user)) if v]
        ents += [("tag", bounded_id(tag)) for tag in dict.fromkeys(r.request_tags)]
        for kind, ident in ents:
            acc = want[(day, kind, ident, r.api_key or "", r.model_group or "", r.model or "",
                        r.custom_llm_provider or "")]
            for i, v in enumerate((r.spend_nanos, r.prompt_tokens, r.completion_tokens, r.cache_read_tokens,
                                   r.cache_write_tokens, 1, int(r.status == "failure"))):
                acc[i] += v
    got = {(d["day"], d["entity_type"], d["entity_id"], d["api_key"], d["model_group"], d["model"], d["provider"]):
           [int(d[c]) for c in ("spend_nanos", "prompt_tokens", "completion_tokens", "cache_read_tokens",
                                "cache_write_tokens", "requests", "failed")] for d in stored}
    assert got == dict(want)


def dollars(n: int) -> float:
    return n / NANOS


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


__all__ = ["Any", "check_counters", "check_daily", "close", "dollars", "mixed", "record"]
