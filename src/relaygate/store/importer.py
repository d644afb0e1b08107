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

Also what LiteLLM's UI stores with ``STORE_MODEL_IN_DB``: the models of ``LiteLLM_ProxyModelTable`` (served
by relaygate with ``general_settings.store_model_in_db: true``) and, from ``LiteLLM_Config``'s
``litellm_settings``, the cost tracking settings relaygate stores too (``store.settings``: discounts,
margins, blocking unpriced models; checked as the API checks them, an invalid one left out with a note), and
from its ``general_settings`` the fields relaygate takes from the database (``config.stored_general``; the
others, read at start by relaygate, are listed in the notes to be set in the config file).
LiteLLM encrypts every string of a model's ``litellm_params`` under its ``LITELLM_SALT_KEY`` (else its
master key): the import opens them with ``secret`` (``sealing.open_litellm``; a value that is no ciphertext
is kept, as LiteLLM keeps it) and seals the credentials again in relaygate's format under the same secret
(relaygate picks its sealing key as LiteLLM does). A model whose ``model`` does not open (no secret given,
or another one) is left out with a note: imported, it could only fail.

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

from relaygate.config.cost_settings import STORED, check_stored
from relaygate.config.errors import ConfigError
from relaygate.config.loader import from_litellm, validate
from relaygate.config.stored_general import FIELDS
from relaygate.config.stored_general import SECTION as GENERAL
from relaygate.store import tables as t
from relaygate.store.base import Conn, Store
from relaygate.store.errors import StoreUnavailable, redact_url
from relaygate.store.pgurl import pg_options
from relaygate.store.records import ModelRow
from relaygate.store.sealing import LITELLM_GCM, Sealer, open_litellm, seal_credentials
from relaygate.store.settings import upsert_setting

ORDER = ("budgets", "organizations", "users", "organization_members", "teams", "team_members", "customers", "tags",
         "keys", "models")
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
    "models": ("LiteLLM_ProxyModelTable", t.MODELS),
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


async def connect_litellm(url: str, connect_timeout: float = 10.0) -> Any:
    """An asyncpg connection to the LiteLLM database at ``url`` (Prisma's URL options understood);
    :class:`StoreUnavailable` naming the URL without its password when it cannot be reached."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        opts = pg_options(url)  # LiteLLM's URL may carry Prisma's options (?schema=...): store.pgurl
    except ValueError as exc:
        raise StoreUnavailable(f"{exc} ({redact_url(url)})") from None
    settings = {"search_path": opts.search_path} if opts.search_path else None
    try:
        return await asyncpg.connect(opts.dsn, timeout=opts.connect_timeout or connect_timeout,
                                     server_settings=settings,
                                     **({"statement_cache_size": 0} if opts.statement_cache_size == 0 else {}))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot connect to the LiteLLM database {redact_url(url)}: "
                               f"{type(exc).__name__}") from None


async def read_litellm(url: str, *, connect_timeout: float = 10.0
                       ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every row of LiteLLM's tables at ``url`` (PostgreSQL), by entity; notes on missing tables."""
    conn = await connect_litellm(url, connect_timeout)
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
            rows["settings"] = []
            if await conn.fetchval("SELECT to_regclass($1)", '"LiteLLM_Config"') is not None:
                rows["settings"] = [dict(r) for r in await conn.fetch(
                    'SELECT param_name, param_value FROM "LiteLLM_Config" WHERE param_name = ANY($1)',
                    ["litellm_settings", GENERAL])]
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


def open_models(rows: list[ModelRow], secret: str | None, counts: Counts) -> list[ModelRow]:
    """LiteLLM's model rows with their ``litellm_params`` opened (see the module docstring) and their
    credentials sealed in relaygate's format; the rows that cannot be opened left out, each with a note."""
    sealer = Sealer(secret)
    out = []
    for row in rows:
        params: dict[str, Any] = {}
        for name, value in row.litellm_params.items():
            opened = open_litellm(value, secret) if isinstance(value, str) and secret else None
            params[name] = value if opened is None else opened
        model = params.get("model")
        if not isinstance(model, str) or not model or (model == row.litellm_params.get("model") and _sealed(model)):
            why = ("no LITELLM_SALT_KEY or master key to open it with" if not secret else
                   "it does not open with this LITELLM_SALT_KEY or master key: did it change?")
            counts.notes.append(f"model {row.model_id} ({row.model_name}) left out: its litellm_params are "
                                f"encrypted and {why}")
            continue
        info = {k: v for k, v in row.model_info.items() if k not in ("id", "db_model")}
        out.append(msgspec.structs.replace(row, litellm_params=seal_credentials(params, sealer), model_info=info))
    if out:
        counts.notes.append(f"{len(out)} model(s) imported: relaygate serves them with general_settings."
                            "store_model_in_db: true (LiteLLM's STORE_MODEL_IN_DB)")
    return out


_URLSAFE = frozenset("-_")
_STANDARD = frozenset("+/")


def _sealed(value: str) -> bool:
    """Whether a value LiteLLM would have written looks like one of its ciphertexts: ``v2:gcm:``, or base64
    (URL-safe, or standard as older LiteLLM wrote it) of at least a nonce and a tag. A model name never does:
    it is shorter, or mixes a ``/`` with ``-``, ``_`` or ``.``."""
    if value.startswith(LITELLM_GCM):
        return True
    body = value.rstrip("=")
    if len(body) < 54:
        return False
    other = {c for c in body if not c.isascii() or not c.isalnum()}
    return other <= _URLSAFE or other <= _STANDARD


def settings_of(rows: list[dict[str, Any]], counts: Counts) -> dict[str, Any]:
    """The settings relaygate stores found in LiteLLM's ``litellm_settings`` rows (``config.cost_settings.STORED``)
    and ``general_settings`` row (:func:`general_of`), each checked as the API checks it (an invalid one left
    out with a note)."""
    found: dict[str, Any] = {}
    for row in rows:
        section = row.get("param_name", "litellm_settings")
        value = row.get("param_value")
        if isinstance(value, str):
            try:
                value = msgspec.json.decode(value)
            except msgspec.DecodeError:
                counts.notes.append(f"LiteLLM_Config {section}: not JSON, left out")
                continue
        if not isinstance(value, dict):
            continue
        if section == GENERAL:
            general = general_of(value, counts)
            if general:
                found[GENERAL] = general
            continue
        for name in STORED:
            if name not in value:
                continue
            try:
                check_stored(name, value[name])
            except ValueError as exc:
                counts.notes.append(f"setting {name} left out: {exc}")
                continue
            found[name] = value[name]
    if found:
        counts.notes.append(f"settings imported from LiteLLM_Config: {', '.join(sorted(found))}")
    return found


def general_of(stored: dict[str, Any], counts: Counts) -> dict[str, Any]:
    """The fields of LiteLLM's stored ``general_settings`` relaygate stores (``config.stored_general.FIELDS``), each
    checked as ``/config/field/update`` checks it; the others left out with a note (a running gateway serves
    only those its config file does not set)."""
    kept: dict[str, Any] = {}
    for name, value in stored.items():
        if value is None:
            continue
        if name not in FIELDS:
            counts.notes.append(f"general_settings.{name} left out: set it in the config file")
            continue
        try:
            config = from_litellm({"model_list": [], GENERAL: {name: value}}, "LiteLLM_Config")
            problems = validate(config)
        except (ConfigError, ValueError, TypeError) as exc:
            problems = [str(exc)]
        if problems:
            counts.notes.append(f"general_settings.{name} left out: {'; '.join(problems)}")
            continue
        kept[name] = value
    return kept


async def import_records(store: Store, records: dict[str, list[Any]], settings: dict[str, Any] | None = None
                         ) -> Counts:
    """Write ``records`` (from :func:`to_records`) and ``settings`` into ``store`` in one transaction; the
    counts."""
    counts = Counts()
    async with store.write() as c:
        for name, value in (settings or {}).items():
            await upsert_setting(c, name, value, "litellm-import")
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


async def import_litellm(source_url: str, store: Store, secret: str | None = None) -> Counts:
    """Read the LiteLLM database at ``source_url`` and write it into ``store`` (see the module docstring);
    ``secret``: LiteLLM's ``LITELLM_SALT_KEY``, else its master key (what its models are encrypted with)."""
    rows, notes = await read_litellm(source_url)
    records = to_records(rows)
    found = Counts()
    read_models = len(records["models"])
    records["models"] = open_models(records["models"], secret, found)
    settings = settings_of(rows.get("settings", []), found)
    counts = await import_records(store, records, settings)
    counts.read["models"] = read_models
    counts.notes[:0] = [*notes, *found.notes]
    return counts


async def import_on_first_start(url: str, store: Store, secret: str | None = None) -> Counts | None:
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
    return await import_litellm(url, store, secret) if present else None
