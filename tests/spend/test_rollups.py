"""``store.rollups.rollups_of``: what a batch of spend rows adds to the counters, the memberships and the daily
rollup, against a direct per-row computation (the oracle below), for hypothesis' batches; with the plans it
remembers across batches (and starts again past ``PLANS_MAX``) giving the same answers as fresh ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.store import rollups, tables
from relaygate.store.daily import bounded_id

COLS = {c: i for i, c in enumerate(tables.SPEND_LOGS.columns)}
LONG = "x" * 600  # past ID_MAX: keyed by its digest


def _entities(row: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield ("global", "")
    for kind, col in (("key", "api_key"), ("user", "user_id"), ("team", "team_id"), ("organization", "organization_id"),
                      ("customer", "end_user"), ("deployment", "model_id")):
        ident = row[col]
        if ident:
            yield (kind, ident if kind == "key" else bounded_id(ident))
    yield from _tags(row)


def _tags(row: dict[str, Any]) -> Iterator[tuple[str, str]]:
    tags = row["request_tags"]
    if tags and tags != "[]":
        for tag in dict.fromkeys(json.loads(tags)):
            yield ("tag", bounded_id(tag))


def oracle(rows: list[tuple[Any, ...]]) -> tuple[dict[Any, list[int]], dict[Any, int], dict[Any, list[int]]]:
    """Each row added to each of its entities and daily keys, one at a time."""
    totals: dict[Any, list[int]] = {}
    members: dict[Any, int] = {}
    daily: dict[Any, list[int]] = {}
    for values in rows:
        row = {c: values[i] for c, i in COLS.items()}
        n, p, c = row["spend_nanos"], row["prompt_tokens"], row["completion_tokens"]
        for ent in _entities(row):
            tot = totals.setdefault(ent, [0, 0, 0, 0])
            for i, v in enumerate((n, p, c, 1)):
                tot[i] += v
        user = bounded_id(row["user_id"]) if row["user_id"] else row["user_id"]
        team = bounded_id(row["team_id"]) if row["team_id"] else row["team_id"]
        if team and user:
            members[(team, user)] = members.get((team, user), 0) + n
        day = row["start_time"][:10] if row["start_time"] else None
        if day:
            rest = (row["api_key"] or "", row["model_group"] or "", row["model"] or "", row["custom_llm_provider"] or "")
            owners = [("user", user), ("team", team),
                      ("organization", bounded_id(row["organization_id"]) if row["organization_id"] else None),
                      ("customer", bounded_id(row["end_user"]) if row["end_user"] else None), *_tags(row)]
            for kind, ident in owners:
                if ident:
                    d = daily.setdefault((day, kind, ident, *rest), [0] * 7)
                    for i, v in enumerate((n, p, c, row["cache_read_tokens"] or 0, row["cache_write_tokens"] or 0, 1,
                                           int(row["status"] == "failure"))):
                        d[i] += v
    return totals, members, daily


def _row(key: Any, user: Any, team: Any, org: Any, end: Any, dep: Any, tags: Any, start: Any, group: Any, n: int,
         p: int, c: int, cread: Any, cwrite: Any, failed: bool) -> tuple[Any, ...]:
    out: list[Any] = [None] * len(COLS)
    for col, v in (("request_id", "r"), ("api_key", key), ("user_id", user), ("team_id", team),
                   ("organization_id", org), ("end_user", end), ("model_id", dep), ("request_tags", tags),
                   ("start_time", start), ("model_group", group), ("model", "m"), ("custom_llm_provider", "openai"),
                   ("spend_nanos", n), ("prompt_tokens", p), ("completion_tokens", c), ("cache_read_tokens", cread),
                   ("cache_write_tokens", cwrite), ("status", "failure" if failed else "success")):
        out[COLS[col]] = v
    return tuple(out)


def _ids(*names: str) -> st.SearchStrategy[Any]:
    return st.sampled_from([None, "", *names, LONG])


rows = st.builds(_row, _ids("k1", "k2"), _ids("u1", "u2"), _ids("t1"), _ids("o1"), _ids("c1"), _ids("d1"),
                 st.sampled_from([None, "[]", '["a"]', '["a","b","a"]', json.dumps([LONG, "a"])]),
                 st.sampled_from([None, "2026-12-06T23:59:59.999999+00:00", "2026-12-07T00:00:00.000000+00:00"]),
                 st.sampled_from([None, "g"]), st.integers(0, 10**12), st.integers(0, 10**6), st.integers(0, 10**6),
                 st.sampled_from([None, 0, 7]), st.sampled_from([None, 0, 3]), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(rows, max_size=40), min_size=1, max_size=4))
def test_rollups_match_a_row_by_row_sum(batches: list[list[tuple[Any, ...]]]) -> None:
    for batch in batches:  # later batches reuse the plans the earlier ones made
        assert rollups.rollups_of(batch) == oracle(batch)


def test_the_plans_start_again_past_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollups, "PLANS_MAX", 3)
    rollups._plans.clear()
    batch = [_row(f"k{i}", "u", "t", None, None, "d", '["a"]', "2026-12-07T00:00:00+00:00", "g", i, 1, 1, None, None,
                  False) for i in range(10)]
    for _ in range(3):
        assert rollups.rollups_of(batch) == oracle(batch)
        assert len(rollups._plans) <= 3
