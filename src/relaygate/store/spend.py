"""Spend logs and spend counters: the writes of the spend sink and the reads of the reporting routes.

What it owns: the two spend tables of migration step 2 and every SQL statement on them.

- ``rg_spend_logs``: one :class:`~relaygate.store.records.SpendLog` row per request (LiteLLM's
  ``LiteLLM_SpendLogs``), keyed by ``request_id`` (the call id).
- ``rg_spend_totals``: one counter row per ``(entity_type, entity_id)`` with the spend in integer nano-USD,
  prompt and completion tokens and the request count, for every entity kind of :data:`ENTITY_KINDS`
  (``global`` has the one id ``""``). The ``spend`` columns of keys, users, teams, team members,
  organizations, customers and tags (those with a ``rg_tags`` row) move with them (LiteLLM's float; what
  ``/key/info`` shows and budgets read).

Invariants:

- **Exact.** :func:`write_spend_values` inserts a batch (multi-row ``INSERT ... ON CONFLICT (request_id) DO
  NOTHING RETURNING request_id``, taken only after a savepoint's cheaper insert found a request id already
  stored) and adds exactly the rows it inserted to the counters, in the same
  transaction: a batch retried after a commit whose answer was lost adds nothing twice, and for every
  entity ``SUM(spend_nanos)`` of its rows equals its counter (as long as retention has not deleted rows).
- **No change bump.** These writes use the store's bare transaction, not :meth:`Store.write`: the change
  counter tells workers to drop their key caches, and spend moves every second (see ``auth.changes``).
- **Aggregated per batch.** One upsert for all counters of a batch, and one ``UPDATE ... FROM (VALUES ...)``
  per entity table (and slice of :data:`_CHUNK`) for their rows' ``spend``; on PostgreSQL the rows are
  locked in key order first (``SELECT ... ORDER BY ... FOR UPDATE``) so concurrent writers do not deadlock.
- **PostgreSQL takes a batch as JSON.** Rows, counters and entity amounts go as one JSON text parameter
  per statement (:func:`json_rows`), taken apart by the server (``jsonb_array_elements``, each element cast
  to its column's type): the worker encodes a batch in one msgspec call instead of binding it value by
  value, and no statement's shape depends on the batch size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from relaygate.store import tables as t
from relaygate.store.daily import DAILY_COLUMNS, DAILY_UPSERT, ID_MAX, Daily, bounded_id
from relaygate.store.migrations import postgres_casts
from relaygate.store.records import SpendLog
from relaygate.store.rollups import Totals, rollups_of

if TYPE_CHECKING:
    from relaygate.store.base import Conn, Store

__all__ = ["ENTITY_KINDS", "ID_MAX", "NANOS", "SAMPLE_ROWS", "Totals", "add_daily", "bounded_id", "count_spend_logs",
           "count_spend_logs_before", "daily_spend", "delete_daily_before", "delete_spend_logs_before",
           "entity_totals", "key_owners", "nanos", "read_spend_logs", "spend_log_cutoff", "spend_logs_storage",
           "spend_report", "spend_since", "top_keys", "write_spend", "write_spend_values"]

NANOS = 1_000_000_000
"""Integer units per USD in ``spend_nanos`` and the counters (nano-USD: a 10-token request to a cheap
model costs about 1e-6 USD, which micro-units would round away)."""

ENTITY_KINDS = ("key", "user", "team", "organization", "customer", "tag", "deployment", "global")

_ROWS = {"key": ("rg_keys", "token"), "user": ("rg_users", "user_id"), "team": ("rg_teams", "team_id"),
         "organization": ("rg_organizations", "organization_id"), "customer": ("rg_customers", "user_id"),
         "tag": ("rg_tags", "tag_name")}
"""Entity kinds whose own row has a ``spend`` column kept with the counter."""

_CHUNK = 64
"""Rows per statement at most: the driver binds a statement's parameters holding the GIL, and 512 rows (15k
parameters) at a time held the worker's requests back (p99 32-49 ms against 26-35 ms with 64, in the spend
bench); a batch of a second is still one transaction."""


T = TypeVar("T")


def _parts(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices whose lengths are powers of two (at most ``_CHUNK``): every statement built for a
    slice has one of ten shapes, so the drivers' prepared-statement caches (128 per SQLite connection, 100
    per asyncpg one) hold ten statements, not one per batch size; one per size grew a worker by ~1 KB a
    request until the caches were full (tens of MB for the large multi-row INSERTs)."""
    i, n = 0, len(items)
    while i < n:
        size = min(_CHUNK, 1 << ((n - i).bit_length() - 1))
        yield items[i:i + size]
        i += size


def nanos(cost: float) -> int:
    """``cost`` USD as integer nano-USD (rounded half to even)."""
    return round(cost * NANOS)


Values = Sequence[Any]
"""One spend row as the driver takes it: every column of ``rg_spend_logs`` in table order, encoded for the
store's dialect (:meth:`~relaygate.store.tables.Table.row_encoder`; the spend sink builds them directly)."""

_ID = t.SPEND_LOGS.columns.index("request_id")


async def key_owners(store: Store, key_hashes: Iterable[str], team_ids: Iterable[str]
                     ) -> tuple[dict[str, tuple[str | None, list[str]]], dict[str, str | None]]:
    """``{key hash: (organization_id, tags)}`` and ``{team_id: organization_id}`` of the keys and teams that
    exist (what the spend rows of their requests carry when the completion record does not)."""
    keys, teams = sorted(set(key_hashes)), sorted(set(team_ids))
    by_key: dict[str, tuple[str | None, list[str]]] = {}
    by_team: dict[str, str | None] = {}
    async with store._read() as c:
        for part in _parts(keys):
            for row in await c.fetch(f"SELECT token, organization_id, tags FROM rg_keys WHERE token IN "
                                     f"({', '.join('?' * len(part))})", part):
                tags = t.KEYS.from_db({"token": row["token"], "tags": row["tags"]}).tags
                by_key[row["token"]] = (row["organization_id"], tags)
        for part in _parts(teams):
            for row in await c.fetch(f"SELECT team_id, organization_id FROM rg_teams WHERE team_id IN "
                                     f"({', '.join('?' * len(part))})", part):
                by_team[row["team_id"]] = row["organization_id"]
    return by_key, by_team


async def write_spend(store: Store, rows: Sequence[SpendLog], *, log_rows: bool = True,
                      entity_spend: bool = True) -> int:
    """:func:`write_spend_values` of ``rows`` (encoded for the store's dialect)."""
    encode = t.SPEND_LOGS.row_encoder(store.dialect)
    return await write_spend_values(store, [encode(r) for r in rows], log_rows=log_rows, entity_spend=entity_spend)


async def write_spend_values(store: Store, rows: Sequence[Values], *, log_rows: bool = True,
                             entity_spend: bool = True) -> int:
    """Insert ``rows`` and add the ones inserted (not already stored) to the counters, in one transaction
    that does not move the change counter; the number inserted. Without ``log_rows`` (LiteLLM's
    ``disable_spend_logs``) only the counters and the entities' ``spend`` move: every row of the batch is
    added (nothing keyed by request id to tell a retried batch apart).

    A batch is nearly always new: :func:`_insert_new` writes it without ``RETURNING`` and finds out; only a
    batch with a request id already stored (sent again after a lost commit answer) is written again with
    ``ON CONFLICT DO NOTHING RETURNING request_id``, so that only the rows inserted count.

    ``entity_spend`` False leaves the entities' own ``spend`` columns alone (rows imported from LiteLLM,
    whose keys, teams and users came with their spend)."""
    if not rows:
        return 0
    unique = list({r[_ID]: r for r in rows}.values())
    dialect = store.dialect
    if not log_rows:
        totals, members, daily = rollups_of(unique)
        async with store._transaction() as c:
            await _add_rollups(c, dialect, totals, members, daily, True)
        return len(unique)
    async with store._transaction() as c:
        if await _insert_new(c, dialect, unique):
            added: Sequence[Values] = unique
        else:
            inserted: set[str] = set()
            statements = ([(_PG_INSERT, [param]) for param in _log_params(unique)] if dialect == "postgres" else
                          [(_insert_sql(len(part)), list(chain.from_iterable(part))) for part in _parts(unique)])
            for sql, args in statements:
                found = await c.fetch(f"{sql} ON CONFLICT (request_id) DO NOTHING RETURNING request_id", args)
                inserted.update(r["request_id"] for r in found)
            added = [r for r in unique if r[_ID] in inserted]
        totals, members, daily = rollups_of(added)
        await _add_rollups(c, dialect, totals, members, daily, entity_spend)
    return len(added)


async def _add_rollups(c: Conn, dialect: str, totals: Totals, members: dict[tuple[str, str], int], daily: Daily,
                       entity_spend: bool) -> None:
    """A batch's counters, daily sums and (with ``entity_spend``) entities' ``spend``. SQLite: every statement
    in one trip to the connection's thread (built and run there), not a trip each (~40 for a second's batch
    over 500 keys, each handing the GIL over and back): the transaction, and so SQLite's one write lock that
    every worker shares, is held ~17% less long (a 1,200-row batch alone on one core: 20.1 -> 16.7 µs a row).
    The gateway's CPU per request did not move measurably with it: the statements' own work is the cost."""
    if dialect != "postgres":
        await c.execute_each(chain(_totals_sqlite(totals), _daily_sqlite(daily),
                                   _entity_sqlite(totals, members) if entity_spend else ()))
        return
    await _add_totals_pg(c, totals)
    await add_daily(c, daily, dialect)
    if entity_spend:
        await _add_entity_spend_pg(c, totals, members)


_COLUMNS = ", ".join(t.SPEND_LOGS.columns)
_MARKS = f"({', '.join('?' * len(t.SPEND_LOGS.columns))})"


@functools.cache
def _insert_sql(n: int) -> str:
    return f"INSERT INTO rg_spend_logs ({_COLUMNS}) VALUES {', '.join([_MARKS] * n)}"


_encode_json = msgspec.json.Encoder().encode


def json_rows(rows: Sequence[Sequence[Any]], json_columns: frozenset[int] = frozenset()) -> str:
    """``rows`` as one JSON array of arrays: PostgreSQL's one parameter for a whole batch (:func:`_pg_rows`).

    A batch of 3,000 spend rows bound column by column (a binary ``COPY``, or multi-row ``VALUES``) cost the
    worker ~4.6 µs a row in asyncpg's codecs; encoded by msgspec in one call it costs ~1 µs, and the
    database server (a process of its own, on its own core) takes the rows apart.

    PostgreSQL's text and ``jsonb`` hold no U+0000, and one in a client's field (an end user, a tag,
    metadata) would fail the whole batch again and again: where the encoded batch shows one, every U+0000
    (and, in the ``json_columns`` holding JSON text, every escape of one) becomes U+FFFD, as a JSON
    decoder does with what it cannot represent, and the rest of the batch is written unchanged."""
    data = _encode_json(rows)
    if b"u0000" in data:  # rare: the batch again, cleaned
        data = _encode_json([[t.without_nul(v, i in json_columns) for i, v in enumerate(row)] for row in rows])
    return data.decode()


def _pg_rows(table: str, columns: Sequence[str]) -> str:
    """A ``SELECT`` of ``columns`` from the rows of a :func:`json_rows` parameter (``?``), each element cast to
    its column's type (JSON ``null`` is SQL ``NULL``), in the parameter's order."""
    casts = postgres_casts(table)
    cols = [f"e.v->>{i}" if casts[c] == "TEXT" else f"(e.v->>{i})::{casts[c]}" for i, c in enumerate(columns)]
    return f"SELECT {', '.join(cols)} FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY e.n"


_PG_INSERT = f"INSERT INTO rg_spend_logs ({_COLUMNS}) {_pg_rows('rg_spend_logs', t.SPEND_LOGS.columns)}"
PARAM_BYTES = 16 << 20
"""A JSON parameter's size past which a batch of spend rows is split (rows kept with ``store_prompts`` can be
large, and one ``jsonb`` value holds at most 256 MiB)."""


def _log_params(rows: Sequence[Values]) -> list[str]:
    """The spend rows as :func:`json_rows` parameters of at most :data:`PARAM_BYTES` each (nearly always one;
    a single row larger than that goes alone)."""
    text = json_rows(rows, _JSON_COLUMNS)
    if len(text) <= PARAM_BYTES or len(rows) == 1:
        return [text]
    half = len(rows) // 2
    return [*_log_params(rows[:half]), *_log_params(rows[half:])]


_LOG_CASTS = postgres_casts("rg_spend_logs")
_JSON_COLUMNS = frozenset(i for i, c in enumerate(t.SPEND_LOGS.columns) if _LOG_CASTS[c] == "JSONB")
_TOTALS_COLUMNS = ("entity_type", "entity_id", "spend_nanos", "prompt_tokens", "completion_tokens", "requests",
                   "updated_at")
_PG_TOTALS = (f"INSERT INTO rg_spend_totals ({', '.join(_TOTALS_COLUMNS)}) "
              f"{_pg_rows('rg_spend_totals', _TOTALS_COLUMNS)}")
_ADD_TOTALS = ("ON CONFLICT (entity_type, entity_id) DO UPDATE SET "
               "spend_nanos = rg_spend_totals.spend_nanos + excluded.spend_nanos, "
               "prompt_tokens = rg_spend_totals.prompt_tokens + excluded.prompt_tokens, "
               "completion_tokens = rg_spend_totals.completion_tokens + excluded.completion_tokens, "
               "requests = rg_spend_totals.requests + excluded.requests, updated_at = excluded.updated_at")


async def _insert_new(c: Conn, dialect: str, rows: Sequence[Values]) -> bool:
    """Insert ``rows`` if none of their request ids is stored yet: whether they went in (else nothing did).

    The common case costs no ``RETURNING`` (9 µs a row on SQLite, and a result row each to decode): inside
    a savepoint the rows go in with ``ON CONFLICT DO NOTHING``, and when the count inserted is the count
    given, every row is new. Otherwise the savepoint is rolled back and the caller inserts them again with
    ``RETURNING``, to count only the rows that were new. SQLite: multi-row INSERTs, built and run on the
    connection's thread in one trip. PostgreSQL: one ``INSERT ... SELECT`` from the rows as one JSON
    parameter (:func:`json_rows`)."""
    await c.execute("SAVEPOINT spend_rows", [])
    if dialect == "postgres":
        n = 0
        for param in _log_params(rows):
            n += await c.execute(f"{_PG_INSERT} ON CONFLICT (request_id) DO NOTHING", [param])
    else:
        n = await c.execute_each((f"{_insert_sql(len(part))} ON CONFLICT (request_id) DO NOTHING",
                                  list(chain.from_iterable(part))) for part in _parts(rows))
    if n == len(rows):
        await c.execute("RELEASE spend_rows", [])
        return True
    await c.execute("ROLLBACK TO spend_rows", [])
    await c.execute("RELEASE spend_rows", [])
    return False


async def _add_totals_pg(c: Conn, totals: Totals) -> None:
    """PostgreSQL: ``totals`` added to the counters, one JSON parameter, in key order."""
    now = t.SPEND_LOGS.to_db("start_time", t.utcnow(), "postgres")
    await c.execute(f"{_PG_TOTALS} {_ADD_TOTALS}", [json_rows(
        [(kind, ident, n, p, comp, reqs, now) for (kind, ident), (n, p, comp, reqs) in sorted(totals.items())])])


def _totals_sqlite(totals: Totals) -> Iterator[tuple[str, list[Any]]]:
    """The SQLite statements adding ``totals`` to the counters, in key order (every writer upserts in key order:
    no deadlock between two of them)."""
    now = t.SPEND_LOGS.to_db("start_time", t.utcnow(), "sqlite")
    for part in _parts(sorted(totals.items())):
        args: list[Any] = []
        for (kind, ident), (n, p, comp, reqs) in part:
            args.extend((kind, ident, n, p, comp, reqs, now))
        yield (f"INSERT INTO rg_spend_totals ({', '.join(_TOTALS_COLUMNS)}) "
               f"VALUES {', '.join(['(?, ?, ?, ?, ?, ?, ?)'] * len(part))} {_ADD_TOTALS}", args)


_PG_DAILY = (f"INSERT INTO rg_daily_spend ({', '.join(DAILY_COLUMNS)}) {_pg_rows('rg_daily_spend', DAILY_COLUMNS)} "
             f"{DAILY_UPSERT}")
_DAILY_MARKS = f"({', '.join('?' * len(DAILY_COLUMNS))})"


async def add_daily(c: Conn, daily: Daily, dialect: str) -> None:
    """Add a batch's daily sums to the rollup (``store.daily``), in key order (no deadlock between writers)."""
    if not daily:
        return
    if dialect == "postgres":
        now = t.SPEND_LOGS.to_db("start_time", t.utcnow(), dialect)
        await c.execute(_PG_DAILY, [json_rows([(*k, *v, now) for k, v in sorted(daily.items())])])
        return
    await c.execute_each(_daily_sqlite(daily))


def _daily_sqlite(daily: Daily) -> Iterator[tuple[str, list[Any]]]:
    """The SQLite statements of :func:`add_daily`."""
    if not daily:
        return
    now = t.SPEND_LOGS.to_db("start_time", t.utcnow(), "sqlite")
    for part in _parts(sorted(daily.items())):
        args: list[Any] = []
        for k, v in part:
            args.extend((*k, *v, now))
        yield (f"INSERT INTO rg_daily_spend ({', '.join(DAILY_COLUMNS)}) VALUES "
               f"{', '.join([_DAILY_MARKS] * len(part))} {DAILY_UPSERT}", args)


def _entity_updates(totals: Totals, members: dict[tuple[str, str], int]
                    ) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """``(table, key columns, [(*key, spend in USD), ...])`` per table whose rows get an entity's spend added to
    their ``spend``, tables and rows in key order."""
    by_table: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for (kind, ident), acc in sorted(totals.items()):
        target = _ROWS.get(kind)
        if target is not None and acc[0]:
            by_table.setdefault((target[0], (target[1],)), []).append((ident, acc[0] / NANOS))
    for (team_id, user_id), n in sorted(members.items()):
        if n:
            by_table.setdefault(("rg_team_members", ("team_id", "user_id")), []).append((team_id, user_id, n / NANOS))
    return [(table, cols, items) for (table, cols), items in sorted(by_table.items())]


async def _add_entity_spend_pg(c: Conn, totals: Totals, members: dict[tuple[str, str], int]) -> None:
    """PostgreSQL: each entity's spend added to its own row's ``spend``, one ``UPDATE ... FROM`` a JSON parameter
    per table (not one statement per row: a batch of 500 requests on 500 keys was 500 round trips)."""
    for table, cols, items in _entity_updates(totals, members):
        keys = ", ".join(f"e.v->>{i}" for i in range(len(cols)))
        # one JSON parameter per table (json_rows); the rows locked in key order first: two writers
        # updating overlapping rows in the join's own order could deadlock
        values = f"SELECT {keys}, (e.v->>{len(cols)})::DOUBLE PRECISION FROM jsonb_array_elements(?::jsonb) AS e(v)"
        param = [json_rows(items)]
        await c.fetch(f"SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE ({', '.join(cols)}) IN "
                      f"(SELECT {keys} FROM jsonb_array_elements(?::jsonb) AS e(v)) "
                      f"ORDER BY {', '.join(cols)} FOR UPDATE) AS locked", param)
        await c.execute(f"WITH v({_names(cols)}, s) AS ({values}) UPDATE {table} "
                        f"SET spend = COALESCE({table}.spend, 0) + v.s FROM v WHERE {_match(table, cols)}", param)


def _names(cols: tuple[str, ...]) -> str:
    return ", ".join(f"k{i}" for i in range(len(cols)))


def _match(table: str, cols: tuple[str, ...]) -> str:
    return " AND ".join(f"{table}.{col} = v.k{i}" for i, col in enumerate(cols))


def _entity_sqlite(totals: Totals, members: dict[tuple[str, str], int]) -> Iterator[tuple[str, list[Any]]]:
    """SQLite: each entity's spend added to its own row's ``spend``, one ``UPDATE ... FROM (VALUES ...)`` per
    table and slice."""
    for table, cols, items in _entity_updates(totals, members):
        one = f"({', '.join('?' * len(cols))}, CAST(? AS DOUBLE PRECISION))"
        for part in _parts(items):
            yield (f"WITH v({_names(cols)}, s) AS (VALUES {', '.join([one] * len(part))}) UPDATE {table} "
                   f"SET spend = COALESCE({table}.spend, 0) + v.s FROM v WHERE {_match(table, cols)}",
                   [x for item in part for x in item])


async def delete_spend_logs_before(store: Store, cutoff: datetime, limit: int | None = None,
                                   timeout: float | None = None) -> int:
    """Delete the spend rows that started before ``cutoff`` (retention; counters stay), at most ``limit`` of
    them, oldest first (None: all), in one transaction; how many. Retention deletes in batches
    (``sinks.retention``): one statement over a day of rows held SQLite's only write lock, and so the spend
    sink's writes, for as long as it ran. ``timeout`` (seconds; PostgreSQL): the transaction's
    ``statement_timeout`` and ``lock_timeout``, so a batch stuck behind a lock gives up (an error) instead of
    holding its connection and the row locks it took (LiteLLM's ``maximum_spend_logs_cleanup_batch_timeout``)."""
    ts = t.SPEND_LOGS.to_db("start_time", cutoff, store.dialect)
    async with store._transaction() as c:
        await _bounded(store, c, timeout)
        if limit is None:
            return int(await c.execute("DELETE FROM rg_spend_logs WHERE start_time < ?", [ts]))
        return int(await c.execute(
            "DELETE FROM rg_spend_logs WHERE request_id IN (SELECT request_id FROM rg_spend_logs "
            "WHERE start_time < ? ORDER BY start_time LIMIT ?)", [ts, limit]))


async def delete_daily_before(store: Store, kind: str, day: str, limit: int, timeout: float | None = None) -> int:
    """Delete at most ``limit`` of the daily rollup's ``kind`` rows (``store.daily``) of days before ``day``
    (``YYYY-MM-DD``), oldest first, in one transaction; how many (LiteLLM's
    ``maximum_daily_tag_spend_retention_period``, for ``tag``). The counters and the spend logs stay."""
    cols = "day, entity_type, entity_id, api_key, model_group, model, provider"
    async with store._transaction() as c:
        await _bounded(store, c, timeout)
        return int(await c.execute(
            f"DELETE FROM rg_daily_spend WHERE ({cols}) IN (SELECT {cols} FROM rg_daily_spend WHERE day < ? AND "
            "entity_type = ? ORDER BY day LIMIT ?)", [day, kind, limit]))


async def _bounded(store: Store, c: Any, timeout: float | None) -> None:
    """PostgreSQL: the transaction's statements give up after ``timeout`` seconds, waiting on a lock included."""
    if timeout is not None and store.dialect == "postgres":
        ms = max(1, int(timeout * 1000))
        await c.execute(f"SET LOCAL statement_timeout = {ms}", [])
        await c.execute(f"SET LOCAL lock_timeout = {ms}", [])


async def count_spend_logs_before(store: Store, cutoff: datetime, cap: int, timeout: float | None = None) -> int:
    """How many spend rows started before ``cutoff``, counted up to ``cap`` (the probe never scans a large
    table whole: ``cap`` means at least that many), giving up after ``timeout`` on PostgreSQL."""
    async with store._transaction() if timeout is not None and store.dialect == "postgres" else store._read() as c:
        await _bounded(store, c, timeout)
        rows = await c.fetch("SELECT COUNT(*) AS n FROM (SELECT 1 FROM rg_spend_logs WHERE start_time < ? "
                             "LIMIT ?) AS expired", [t.SPEND_LOGS.to_db("start_time", cutoff, store.dialect), cap])
    return int(rows[0]["n"])


SAMPLE_ROWS = 20_000
"""Rows the PostgreSQL size measure averages over (a ``TABLESAMPLE`` of the pages holding about this many)."""


async def spend_logs_storage(store: Store, timeout: float | None = None) -> tuple[int, int]:
    """``(live bytes, rows)`` of the spend logs, for the size rule (``sinks.retention.run_size``).

    PostgreSQL: the live rows (``pg_stat_user_tables``) times their average size (``pg_column_size`` of the
    rows of a ``TABLESAMPLE`` of about :data:`SAMPLE_ROWS`: the whole table, and its exact count, when it holds
    no more), plus the indexes in proportion (``pg_indexes_size`` over ``pg_relation_size``). Not the files'
    size: a ``DELETE`` frees space for reuse, not the files, so after a cleanup and a ``VACUUM`` the files stay
    as large and a measure of them would find the table over its limit again and again, down to nothing
    (LiteLLM keeps a running count of reclaimable bytes between checks for the same reason). SQLite: the bytes the
    table's and its indexes' pages hold (``dbstat``, a walk of their pages on the store's thread; a build
    without ``dbstat``: the whole file's pages in use) and ``COUNT(*)``."""
    if store.dialect == "postgres":
        async with store._transaction() as c:
            await _bounded(store, c, timeout)
            rows = await c.fetch(
                "SELECT pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes, "
                "COALESCE(s.n_live_tup, 0) AS live FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.oid = to_regclass('rg_spend_logs')", [])
            if not rows:
                return 0, 0
            heap, indexes, live = int(rows[0]["heap"]), int(rows[0]["indexes"]), int(rows[0]["live"])
            share = 100.0 if live <= SAMPLE_ROWS else max(0.01, 100.0 * SAMPLE_ROWS / live)
            sample = await c.fetch("SELECT COALESCE(AVG(pg_column_size(t.*)), 0) AS width, COUNT(*) AS n "
                                   f"FROM rg_spend_logs t TABLESAMPLE SYSTEM ({share:.4f})", [])
        width, n = float(sample[0]["width"]), int(sample[0]["n"])
        if share >= 100.0:  # a whole table read: its exact count
            live = n
        return int(width * live * (1.0 + indexes / heap)) if heap else 0, live
    async with store._read() as c:
        try:
            rows = await c.fetch("SELECT COALESCE(SUM(pgsize - unused), 0) AS size FROM dbstat WHERE name IN "
                                 "(SELECT name FROM sqlite_master WHERE tbl_name = 'rg_spend_logs')", [])
        except Exception as exc:
            if "dbstat" not in str(exc):
                raise
            rows = await c.fetch("SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count "
                                 "FROM pragma_freelist_count()) AS pages, (SELECT page_size FROM pragma_page_size()) "
                                 "AS page", [])
            rows = [{"size": int(rows[0]["pages"]) * int(rows[0]["page"])}]
        count = await c.fetch("SELECT COUNT(*) AS n FROM rg_spend_logs", [])
    return int(rows[0]["size"]), int(count[0]["n"])


async def spend_log_cutoff(store: Store, oldest: int, timeout: float | None = None) -> datetime | None:
    """The start time before which the ``oldest`` oldest spend rows lie (the start of the next one: rows of the
    same instant stay together); None when there are no more rows than that (all of them go)."""
    async with store._transaction() if timeout is not None and store.dialect == "postgres" else store._read() as c:
        await _bounded(store, c, timeout)
        rows = await c.fetch("SELECT start_time FROM rg_spend_logs ORDER BY start_time LIMIT 1 OFFSET ?",
                             [max(0, oldest)])
    if not rows:
        return None
    value = rows[0]["start_time"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# -- reading ------------------------------------------------------------------------------------------


def _ts(store: Store, value: datetime) -> Any:
    return t.SPEND_LOGS.to_db("start_time", value, store.dialect)


def _log_filters(store: Store, *, api_key: str | None = None, user_id: str | None = None, team_id: str | None = None,
                 request_id: str | None = None, start: datetime | None = None, end: datetime | None = None,
                 model: str | None = None, status: str | None = None, key_alias: str | None = None,
                 end_user: str | None = None, min_nanos: int | None = None,
                 max_nanos: int | None = None, error_code: int | None = None,
                 error_message: str | None = None) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (empty without filters) and its parameters of the spend rows matching every filter
    given (see :func:`read_spend_logs`)."""
    conds: list[str] = []
    args: list[Any] = []
    for col, value in (("api_key", api_key), ("user_id", user_id), ("team_id", team_id),
                       ("request_id", request_id), ("status", status), ("key_alias", key_alias),
                       ("end_user", end_user)):
        if value is not None:
            conds.append(f"{col} = ?")
            args.append(value)
    if model is not None:
        conds.append("(model_group = ? OR model = ?)")
        args.extend((model, model))
    if start is not None:
        conds.append("start_time >= ?")
        args.append(_ts(store, start))
    if end is not None:
        conds.append("start_time < ?")
        args.append(_ts(store, end))
    if min_nanos is not None:
        conds.append("spend_nanos >= ?")
        args.append(min_nanos)
    if max_nanos is not None:
        conds.append("spend_nanos <= ?")
        args.append(max_nanos)
    if error_code is not None:  # LiteLLM's error_information.error_code: a failure's status
        conds.append("status = 'failure' AND status_code = ?")
        args.append(error_code)
    if error_message is not None:  # a part of error_information.error_message, as written (LIKE, wildcards escaped)
        conds.append(("json_extract(metadata, '$.error_information.error_message')" if store.dialect == "sqlite"
                      else "metadata->'error_information'->>'error_message'") + " LIKE ? ESCAPE '\\'")
        args.append("%" + error_message.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return (f" WHERE {' AND '.join(conds)}" if conds else ""), args


async def read_spend_logs(store: Store, *, limit: int = 1000, offset: int = 0, order: str = "start_time DESC",
                          **filters: Any) -> list[SpendLog]:
    """Spend rows matching every filter given (``start`` inclusive, ``end`` exclusive), newest first (or in
    ``order``: ``start_time`` or ``spend_nanos``, ``ASC`` or ``DESC``), ``limit`` of them after ``offset``.
    ``model`` matches the requested model group or the upstream model; ``status`` is ``success`` or
    ``failure``; ``min_nanos`` / ``max_nanos`` bound the spend (nano-USD)."""
    if order not in _ORDERS:
        raise ValueError(f"unknown order {order!r}")
    where, args = _log_filters(store, **filters)
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM rg_spend_logs{where} ORDER BY {order}, request_id LIMIT ? OFFSET ?",
                             [*args, limit, offset])
    return [t.SPEND_LOGS.from_db(r) for r in rows]


_ORDERS = frozenset(f"{col} {way}" for col in ("start_time", "spend_nanos") for way in ("ASC", "DESC"))


async def count_spend_logs(store: Store, **filters: Any) -> int:
    """How many spend rows match the filters (as :func:`read_spend_logs` takes them)."""
    where, args = _log_filters(store, **filters)
    async with store._read() as c:
        rows = await c.fetch(f"SELECT COUNT(*) AS n FROM rg_spend_logs{where}", args)
    return int(rows[0]["n"]) if rows else 0


async def entity_totals(store: Store, kind: str, ids: Sequence[str] | None = None,
                        limit: int = 1000) -> list[dict[str, Any]]:
    """Counter rows of ``kind`` (all, or those of ``ids``), highest spend first: ``entity_id``,
    ``spend_nanos``, ``prompt_tokens``, ``completion_tokens``, ``requests``."""
    args: list[Any] = [kind]
    cond = ""
    if ids is not None:
        if not ids:
            return []
        cond = f" AND entity_id IN ({', '.join('?' * len(ids))})"
        args.extend(ids)
    async with store._read() as c:
        rows = await c.fetch("SELECT entity_id, spend_nanos, prompt_tokens, completion_tokens, requests FROM "
                             f"rg_spend_totals WHERE entity_type = ?{cond} ORDER BY spend_nanos DESC, entity_id "
                             "LIMIT ?", [*args, limit])
    return [{k: (int(v) if k != "entity_id" else v) for k, v in r.items()} for r in rows]


async def spend_since(store: Store, since: datetime) -> int:
    """nano-USD of the spend rows that started at ``since`` or later (LiteLLM's ``MonthlyGlobalSpend`` view,
    summed: one range read of the time index)."""
    async with store._read() as c:
        rows = await c.fetch("SELECT SUM(spend_nanos) AS n FROM rg_spend_logs WHERE start_time >= ?",
                             [_ts(store, since)])
    return int(rows[0]["n"] or 0)


async def top_keys(store: Store, since: datetime, limit: int, api_keys: Sequence[str] | None = None
                   ) -> list[dict[str, Any]]:
    """Keys by spend since ``since`` from the rows (LiteLLM's ``Last30dKeysBySpend``): ``api_key``,
    ``key_alias``, ``key_name``, ``total_spend``."""
    args: list[Any] = [_ts(store, since)]
    cond = ""
    if api_keys is not None:
        if not api_keys:
            return []
        cond = f" AND s.api_key IN ({', '.join('?' * len(api_keys))})"
        args.extend(api_keys)
    async with store._read() as c:
        rows = await c.fetch(
            "SELECT s.api_key AS api_key, MAX(k.key_alias) AS key_alias, MAX(k.key_name) AS key_name, "
            "SUM(s.spend_nanos) AS nanos FROM rg_spend_logs s LEFT JOIN rg_keys k ON k.token = s.api_key "
            f"WHERE s.start_time >= ? AND s.api_key IS NOT NULL{cond} GROUP BY s.api_key "
            "ORDER BY nanos DESC LIMIT ?", [*args, limit])
    return [{"api_key": r["api_key"], "key_alias": r["key_alias"], "key_name": r["key_name"],
             "total_spend": int(r["nanos"] or 0) / NANOS} for r in rows]


_GROUP_COLUMN = {"team": "team_id", "customer": "end_user", "api_key": "api_key"}


async def spend_report(store: Store, group_by: str, start: datetime, end: datetime,
                       api_key: str | None = None) -> list[dict[str, Any]]:
    """Spend per day, per ``group_by`` value (``team``, ``customer`` or ``api_key``), per model (the rows'
    ``model``, as LiteLLM's report) and per key between ``start`` (inclusive) and ``end`` (exclusive): ``day``,
    ``group``, ``alias`` (a team's ``team_alias``, else None), ``model``, ``api_key``, ``spend_nanos``,
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``requests``; ordered by day, group, model and
    key."""
    col = "s." + _GROUP_COLUMN[group_by]
    day = ("substr(s.start_time, 1, 10)" if store.dialect == "sqlite"
           else "to_char(s.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    args: list[Any] = [_ts(store, start), _ts(store, end)]
    cond = ""
    if api_key is not None:
        cond = " AND s.api_key = ?"
        args.append(api_key)
    alias, join = (("MAX(t.team_alias)", " LEFT JOIN rg_teams t ON t.team_id = s.team_id") if group_by == "team"
                   else ("NULL", ""))
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {day} AS day, {col} AS grp, s.model AS model, s.api_key AS k, {alias} AS alias, "
            "SUM(s.spend_nanos) AS nanos, SUM(s.prompt_tokens) AS p, SUM(s.completion_tokens) AS comp, "
            f"SUM(s.total_tokens) AS tot, COUNT(*) AS n FROM rg_spend_logs s{join} "
            f"WHERE s.start_time >= ? AND s.start_time < ?{cond} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4", args)
    return [{"day": r["day"], "group": r["grp"], "alias": r["alias"], "model": r["model"], "api_key": r["k"],
             "spend_nanos": int(r["nanos"] or 0), "prompt_tokens": int(r["p"] or 0),
             "completion_tokens": int(r["comp"] or 0), "total_tokens": int(r["tot"] or 0), "requests": int(r["n"])}
            for r in rows]


async def daily_spend(store: Store, start: datetime, end: datetime, *, api_key: str | None = None,
                      user_id: str | None = None, team_id: str | None = None,
                      request_id: str | None = None) -> list[dict[str, Any]]:
    """Spend per UTC day, key, user and model group between ``start`` (inclusive) and ``end`` (exclusive),
    with the same filters as :func:`read_spend_logs`: ``day`` (``YYYY-MM-DD``), ``api_key``, ``user``,
    ``model``, ``spend_nanos``; ordered by day. One grouped query: days of rows are summed by the database."""
    day = ("substr(start_time, 1, 10)" if store.dialect == "sqlite"
           else "to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    conds, args = ["start_time >= ?", "start_time < ?"], [_ts(store, start), _ts(store, end)]
    for col, value in (("api_key", api_key), ("user_id", user_id), ("team_id", team_id), ("request_id", request_id)):
        if value is not None:
            conds.append(f"{col} = ?")
            args.append(value)
    async with store._read() as c:
        rows = await c.fetch(
            f"SELECT {day} AS day, api_key, user_id, model_group AS model, SUM(spend_nanos) AS nanos FROM "
            f"rg_spend_logs WHERE {' AND '.join(conds)} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4", args)
    return [{"day": r["day"], "api_key": r["api_key"], "user": r["user_id"], "model": r["model"],
             "spend_nanos": int(r["nanos"] or 0)} for r in rows]
