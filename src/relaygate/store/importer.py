"""Moving from LiteLLM: copy a LiteLLM proxy's PostgreSQL database into relaygate's store
(``relaygate db import-litellm``).

What it reads: the tables of LiteLLM's Prisma schema that hold identity and access —
``LiteLLM_BudgetTable``, ``LiteLLM_OrganizationTable``, ``LiteLLM_OrganizationMembership``,
``LiteLLM_UserTable``, ``LiteLLM_TeamTable`` (with its model aliases from ``LiteLLM_ModelTable`` when that
table exists), ``LiteLLM_TeamMembership``, ``LiteLLM_EndUserTable``, ``LiteLLM_TagTable`` and
``LiteLLM_VerificationToken`` —
with ``SELECT *``, keeping the columns whose names relaygate's records share (they are LiteLLM's names)
and leaving the others (``password``, ``object_permission_id``, rotation bookkeeping ...). A table the
database does not have is counted as empty, so older LiteLLM versions import too.

Keys keep their hash: LiteLLM stores a key as the SHA-256 hex of the key (``token``), exactly as relaygate
does, so every key works unchanged after the move and no key in clear ever passes through here.
Team roles come from the team's ``members_with_roles`` (LiteLLM's ``LiteLLM_TeamMembership`` has none);
a member listed there without a membership row gets one.

Idempotent and atomic: everything is written in one transaction of the target store; each row is
inserted, or updated in place when its id is already there (re-running updates, never duplicates). A key
alias or team alias another row already holds (LiteLLM does not make them unique, relaygate does) is
dropped from the later row and reported. Nothing is printed or returned but counts and those notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from relaygate.store import tables as t
from relaygate.store.base import Conn, Store
from relaygate.store.errors import StoreUnavailable, redact_url
from relaygate.store.pgurl import pg_options

ORDER = ("budgets", "organizations", "users", "organization_members", "teams", "team_members", "customers", "tags",
         "keys")
"""The entities, in the order they are written (referenced rows first)."""

_SOURCES: dict[str, tuple[str, t.Table[Any]]] = {
    "budgets": ("LiteLLM_BudgetTable", t.BUDGETS),
    "organizations": ("LiteLLM_OrganizationTable", t.ORGANIZATIONS),
    "users": ("LiteLLM_UserTable", t.USERS),
    "organization_members": ("LiteLLM_OrganizationMembership", t.ORG_MEMBERS),
    "teams": ("LiteLLM_TeamTable", t.TEAMS),
    "team_members": ("LiteLLM_TeamMembership", t.TEAM_MEMBERS),
    "customers": ("LiteLLM_EndUserTable", t.CUSTOMERS),
    "tags": ("LiteLLM_TagTable", t.TAGS),
    "keys": ("LiteLLM_VerificationToken", t.KEYS),
}


@dataclass
class Counts:
    """Rows read per entity, how many were new and how many updated, and notes (never a secret)."""

    read: dict[str, int] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{name}: {self.read.get(name, 0)} read, {self.created.get(name, 0)} new, "
                f"{self.updated.get(name, 0)} updated" for name in ORDER]


async def read_litellm(url: str, *, connect_timeout: float = 10.0
                       ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every row of LiteLLM's tables at ``url`` (PostgreSQL), by entity; notes on missing tables."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        opts = pg_options(url)  # LiteLLM's URL may carry Prisma's options (?schema=...): store.pgurl
    except ValueError as exc:
        raise StoreUnavailable(f"{exc} ({redact_url(url)})") from None
    settings = {"search_path": opts.search_path} if opts.search_path else None
    try:
        conn = await asyncpg.connect(opts.dsn, timeout=opts.connect_timeout or connect_timeout,
                                     server_settings=settings,
                                     **({"statement_cache_size": 0} if opts.statement_cache_size == 0 else {}))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot connect to the LiteLLM database {redact_url(url)}: "
                               f"{type(exc).__name__}") from None
    rows: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            for name in ORDER:
                table = _SOURCES[name][0]
                if await conn.fetchval("SELECT to_regclass($1)", f'"{table}"') is None:
                    notes.append(f"{table}: not in this database (nothing to import)")
                    rows[name] = []
                    continue
                rows[name] = [dict(r) for r in await conn.fetch(f'SELECT * FROM "{table}"')]
            aliases: dict[int, Any] = {}
            if await conn.fetchval("SELECT to_regclass($1)", '"LiteLLM_ModelTable"') is not None:
                found = await conn.fetch('SELECT id, aliases FROM "LiteLLM_ModelTable"')
                aliases = {r["id"]: r["aliases"] for r in found}
            for team in rows["teams"]:
                if team.get("model_id") in aliases:
                    team["model_aliases"] = aliases[team["model_id"]]
    finally:
        await conn.close()
    return rows, notes


def _record(table: t.Table[Any], row: dict[str, Any]) -> Any:
    """A LiteLLM row as relaygate's record: shared columns only, JSON text decoded, nulls as defaults."""
    data: dict[str, Any] = {}
    for name, value in row.items():
        if name not in table.kinds or value is None:
            continue
        if table.kinds[name] == t.JSON and isinstance(value, str):
            value = msgspec.json.decode(value)
        if name == "members_with_roles" and isinstance(value, dict):
            value = []  # LiteLLM's column default is {}
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        data[name] = value
    return msgspec.convert(data, table.record, strict=False)


def to_records(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """LiteLLM's rows as relaygate's records (team memberships completed from the teams' role lists)."""
    out = {name: [_record(_SOURCES[name][1], r) for r in rows.get(name, [])] for name in ORDER}
    emails = {u.user_id: u.user_email for u in out["users"]}
    roles: dict[tuple[str, str], str] = {}
    for team in out["teams"]:
        for m in team.members_with_roles:
            if isinstance(m, dict) and m.get("user_id"):
                roles[(team.team_id, str(m["user_id"]))] = str(m.get("role") or "user")
    members = {(m.team_id, m.user_id): m for m in out["team_members"]}
    for key in roles:
        if key not in members:
            members[key] = t.TEAM_MEMBERS.record(team_id=key[0], user_id=key[1])
    out["team_members"] = [msgspec.structs.replace(m, role=roles.get(k, m.role), user_email=emails.get(m.user_id))
                           for k, m in members.items()]
    out["organization_members"] = [msgspec.structs.replace(m, user_email=m.user_email or emails.get(m.user_id))
                                   for m in out["organization_members"]]
    return out


async def _upsert(store: Store, c: Conn, table: t.Table[Any], rec: Any) -> bool:
    """Insert ``rec`` or, when its id is there, overwrite every other column; True when it was new."""
    now = t.utcnow()
    if "created_at" in table.kinds and getattr(rec, "created_at", None) is None:
        rec = msgspec.structs.replace(rec, created_at=now)
    if "updated_at" in table.kinds and getattr(rec, "updated_at", None) is None:
        rec = msgspec.structs.replace(rec, updated_at=now)
    key = table.key_of(rec)
    where = " AND ".join(f"{col} = ?" for col in table.pk)
    found = await c.fetch(f"SELECT 1 AS x FROM {table.name} WHERE {where}{store.for_update}", list(key))
    if found:
        cols = [col for col in table.columns if col not in table.pk and col != "created_at"]
        sets = ", ".join(f"{col} = ?" for col in cols)
        args = [table.to_db(col, getattr(rec, col), store.dialect) for col in cols]
        await c.execute(f"UPDATE {table.name} SET {sets} WHERE {where}", [*args, *key])
        return False
    marks = ", ".join("?" * len(table.columns))
    await c.execute(f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})",
                    table.row(rec, store.dialect))
    return True


async def _free_alias(store: Store, c: Conn, table: t.Table[Any], rec: Any, column: str, seen: set[str],
                      counts: Counts) -> Any:
    """``rec`` without its ``column`` value when another row holds it (relaygate's unique alias)."""
    value = getattr(rec, column)
    if value is None:
        return rec
    pk = table.pk[0]
    rows = await c.fetch(f"SELECT {pk} AS id FROM {table.name} WHERE {column} = ?", [value])
    if value in seen or any(r["id"] != getattr(rec, pk) for r in rows):
        shown = "a key" if table is t.KEYS else f"{table.entity} {getattr(rec, pk)}"
        counts.notes.append(f"{column} {value!r} of {shown} is already taken: imported without it")
        return msgspec.structs.replace(rec, **{column: None})
    seen.add(value)
    return rec


async def import_records(store: Store, records: dict[str, list[Any]]) -> Counts:
    """Write ``records`` (from :func:`to_records`) into ``store`` in one transaction; the counts."""
    counts = Counts()
    async with store.write() as c:
        for name in ORDER:
            table = _SOURCES[name][1]
            aliases: set[str] = set()
            counts.read[name] = len(records.get(name, []))
            for rec in records.get(name, []):
                if table is t.KEYS:
                    rec = await _free_alias(store, c, table, rec, "key_alias", aliases, counts)
                elif table is t.TEAMS:
                    rec = await _free_alias(store, c, table, rec, "team_alias", aliases, counts)
                new = await _upsert(store, c, table, rec)
                bucket = counts.created if new else counts.updated
                bucket[name] = bucket.get(name, 0) + 1
    return counts


async def import_litellm(source_url: str, store: Store) -> Counts:
    """Read the LiteLLM database at ``source_url`` and write it into ``store`` (see the module docstring)."""
    rows, notes = await read_litellm(source_url)
    counts = await import_records(store, to_records(rows))
    counts.notes[:0] = notes
    return counts


async def import_on_first_start(url: str, store: Store) -> Counts | None:
    """A swap-in's first start on LiteLLM's own database (``DATABASE_URL`` unchanged): when the database holds
    LiteLLM's key table and relaygate's store has no key yet, LiteLLM's rows are imported, so every client
    key keeps working from the first request; None when there is nothing to do (no LiteLLM tables, or the
    store already has keys: a later import is ``relaygate db import-litellm``'s, at cut-over)."""
    import asyncpg

    if store.dialect != "postgres" or (await store.list_keys(page_size=1)).total:
        return None
    opts = pg_options(url)
    conn = await asyncpg.connect(opts.dsn, timeout=opts.connect_timeout or 10.0,
                                 server_settings={"search_path": opts.search_path} if opts.search_path else None)
    try:
        present = await conn.fetchval("SELECT to_regclass($1)", '"LiteLLM_VerificationToken"') is not None
    finally:
        await conn.close()
    return await import_litellm(url, store) if present else None
