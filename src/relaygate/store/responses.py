"""Stored Responses API responses (conversation state): the SQL on ``rg_responses`` (migration step 5).

What it owns: the :class:`StoredResponse` record, one row per response the gateway stored (``store``, true
by default as OpenAI's), and every statement on its table, written once for SQLite and PostgreSQL (``?``
placeholders, values only as parameters; the JSON columns are text in SQLite and JSONB in PostgreSQL, both
converted by the generic :class:`~relaygate.store.tables.Table`).

A row holds what one turn added to a conversation: ``input`` (the turn's input normalised to an item list;
the request's ``instructions`` are not part of it, as OpenAI does not carry them to the next turn),
``response`` (the Response object as the client got it, usage included), the model group and the deployment
that answered, the upstream's own id when a native upstream stored the response too (``upstream_id``), the
``previous_response_id`` it continued, its owner (key hash, team, user) and ``expires_at``.

Invariants:

- **Expired rows do not exist.** Every read filters ``expires_at`` against the caller's clock, so a row past
  its retention is invisible before the purge (:func:`purge_expired`) deletes it.
- **One write per batch, idempotent.** :func:`write_responses` upserts by ``response_id`` in one transaction:
  a background response first stored ``queued`` is updated in place by its result, and a batch written again
  after a lost commit answer changes nothing. These writes never bump the store's change counter (nothing
  cached depends on them).
- **Chains are read in one statement** (:func:`read_chain`: a recursive query bounded by depth), newest
  first, so the caller can check ownership and size without a query per turn.
- Ownership is the caller's business (``frontends.responses_state``): rows come back with their owner
  columns, and nothing here decides who may read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.store import tables as t

if TYPE_CHECKING:
    from relaygate.store.base import Store

__all__ = ["RESPONSES", "StoredResponse", "delete_response", "purge_expired", "read_chain", "read_response",
           "read_statuses", "write_responses"]


class StoredResponse(msgspec.Struct, kw_only=True):
    """One row of ``rg_responses`` (the columns of migration step 5, in order)."""

    response_id: str
    api_key: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    deployment_id: str | None = None
    upstream_id: str | None = None
    previous_response_id: str | None = None
    status: str | None = None
    background: bool = False
    input: list[Any] = []
    response: dict[str, Any] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None


RESPONSES = t.Table("response", "rg_responses", StoredResponse, ("response_id",), immutable=())

_COLS = ", ".join(RESPONSES.columns)
_JSON = frozenset(i for i, c in enumerate(RESPONSES.columns) if RESPONSES.kinds[c] == t.JSON)
_MARKS = ", ".join("?" * len(RESPONSES.columns))
_UPDATED = ("api_key", "team_id", "user_id", "model", "deployment_id", "upstream_id", "status", "background",
            "response", "updated_at", "expires_at")
"""What a second write of one id changes (a background response's result over its ``queued`` row); its
``input``, ``previous_response_id`` and ``created_at`` stay the first write's."""
_UPSERT = (f"INSERT INTO rg_responses ({_COLS}) VALUES ({_MARKS}) ON CONFLICT (response_id) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED))
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _ts(store: Store, value: datetime) -> Any:
    return RESPONSES.to_db("created_at", value, store.dialect)


async def write_responses(store: Store, rows: Sequence[StoredResponse]) -> int:
    """Upsert ``rows`` in one transaction (no change-counter bump); how many statements ran."""
    if not rows:
        return 0
    now = t.utcnow()
    encode = RESPONSES.row_encoder(store.dialect)
    values = []
    for rec in rows:
        if rec.created_at is None or rec.updated_at is None:
            rec = msgspec.structs.replace(rec, created_at=rec.created_at or now, updated_at=now)
        row = encode(rec)
        if store.dialect == "postgres" and any(type(v) is str and ("\x00" in v or "u0000" in v) for v in row):
            # a U+0000 in a client's input: PostgreSQL would refuse the row, and the response be lost
            row = [t.without_nul(v, i in _JSON) for i, v in enumerate(row)]
        values.append(row)
    async with store._transaction() as c:
        await c.execute_each((_UPSERT, v) for v in values)
    return len(values)


async def read_response(store: Store, response_id: str, now: datetime) -> StoredResponse | None:
    """The live (not expired at ``now``) row of ``response_id``, or None."""
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM rg_responses WHERE response_id = ? AND {_LIVE}",
                             [response_id, _ts(store, now)])
    return RESPONSES.from_db(rows[0]) if rows else None


_CHAIN = (
    "WITH RECURSIVE chain(response_id, depth) AS ("
    " SELECT response_id, 0 FROM rg_responses WHERE response_id = ?"
    " UNION ALL"
    " SELECT r.previous_response_id, chain.depth + 1 FROM rg_responses r JOIN chain"
    " ON r.response_id = chain.response_id WHERE r.previous_response_id IS NOT NULL AND chain.depth < ?)"
    f" SELECT rg_responses.*, chain.depth AS depth FROM chain JOIN rg_responses"
    f" ON rg_responses.response_id = chain.response_id WHERE {_LIVE.replace('expires_at', 'rg_responses.expires_at')}"
    " ORDER BY chain.depth")


async def read_chain(store: Store, response_id: str, now: datetime, max_depth: int) -> list[StoredResponse]:
    """``response_id``'s row and the rows it continues (through ``previous_response_id``), newest first, at
    most ``max_depth + 1`` of them; the walk stops at a missing or expired row (the list is then shorter than
    the chain: the caller tells a gap from the chain's start by the last row's ``previous_response_id``)."""
    async with store._read() as c:
        rows = await c.fetch(_CHAIN, [response_id, max_depth, _ts(store, now)])
    out: list[StoredResponse] = []
    for i, row in enumerate(rows):
        if int(row.pop("depth")) != i:
            break  # an expired row in the middle: what lies beyond it is not reachable
        out.append(RESPONSES.from_db(row))
    return out


async def read_statuses(store: Store, response_ids: Sequence[str]) -> dict[str, str]:
    """The ``status`` of each of ``response_ids`` that has a row (a worker's background runs: a few dozen)."""
    if not response_ids:
        return {}
    marks = ", ".join("?" * len(response_ids))
    async with store._read() as c:
        rows = await c.fetch(f"SELECT response_id, status FROM rg_responses WHERE response_id IN ({marks})",
                             list(response_ids))
    return {str(r["response_id"]): str(r["status"]) for r in rows}


async def delete_response(store: Store, response_id: str) -> bool:
    """Delete the row of ``response_id``; whether there was one."""
    async with store._transaction() as c:
        return bool(await c.execute("DELETE FROM rg_responses WHERE response_id = ?", [response_id]))


async def purge_expired(store: Store, now: datetime, limit: int | None = None) -> int:
    """Delete the rows expired at ``now`` (retention), at most ``limit`` of them, the earliest expired first
    (None: all), in one transaction; how many."""
    async with store._transaction() as c:
        if limit is None:
            return int(await c.execute("DELETE FROM rg_responses WHERE expires_at <= ?", [_ts(store, now)]))
        return int(await c.execute(
            "DELETE FROM rg_responses WHERE response_id IN (SELECT response_id FROM rg_responses "
            "WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)", [_ts(store, now), limit]))
