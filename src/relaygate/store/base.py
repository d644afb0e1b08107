"""The store's one async interface (:class:`Store`) and everything the two backends share.

A backend (``sqlite.SQLiteStore``, ``postgres.PostgresStore``) supplies connections: :meth:`Store._read`
(a pooled connection, autocommit) and :meth:`Store._transaction` (one transaction: ``BEGIN IMMEDIATE`` in
SQLite, a pooled connection's transaction in PostgreSQL), both yielding a :class:`Conn`, and tells a unique
violation apart (:meth:`Store._unique_column`). The SQL here is written once with ``?`` placeholders
(PostgreSQL's backend numbers them) and only ever carries values as parameters; identifiers come from the
table specs (:mod:`relaygate.store.tables`), never from input.

Invariants:

- every write goes through :meth:`Store.write`, which bumps ``rg_changes.version`` in the same transaction:
  :meth:`change_version` moves whenever anything changed and never otherwise, so instances poll one row
  to know that their caches are stale;
- a multi-row write (members added with a team, a team deleted with its memberships and keys) is one
  transaction: it is all written or, on any error, nothing;
- records in, records out: callers never see rows or SQL.

The management API maps :class:`~relaygate.store.errors.NotFound` to 404 and ``Duplicate`` / ``InvalidField``
to 400; :class:`~relaygate.store.errors.StoreUnavailable` is a 503.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

import msgspec

from relaygate.store import migrations
from relaygate.store import tables as t
from relaygate.store.errors import Duplicate, InvalidField, NotFound
from relaygate.store.records import (
    Budget,
    Customer,
    Key,
    ModelRow,
    Organization,
    OrganizationMember,
    Page,
    Tag,
    Team,
    TeamMember,
    User,
)

R = TypeVar("R", bound=msgspec.Struct)
MAX_PAGE_SIZE = 1000


class Conn(Protocol):
    """A connection as the shared code uses it: ``?`` placeholders, rows as dicts."""

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]: ...

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run ``sql``; the number of rows it changed."""
        ...

    async def execute_each(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """Run ``statements`` in order (SQLite: in one trip to the connection's thread); the number of rows
        they changed."""
        ...


class Store(abc.ABC):
    """Keys, users, teams, organizations, customers, budgets, tags and models, on SQLite or PostgreSQL."""

    dialect: str
    url: str
    """The database, as safe to print (password redacted)."""
    for_update = ""
    """Row lock clause for read-modify-write (PostgreSQL ``FOR UPDATE``; SQLite's write lock covers it)."""

    # -- backend ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the pool; :class:`StoreUnavailable` naming :attr:`url` when the database cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """The pool is open (says nothing of the database answering now: see :meth:`ping`)."""

    @abc.abstractmethod
    def _read(self) -> Any:
        """Async context manager: a :class:`Conn` outside any transaction."""

    @abc.abstractmethod
    def _transaction(self) -> Any:
        """Async context manager: a :class:`Conn` in a transaction, committed on success, else rolled back."""

    @abc.abstractmethod
    def _unique_column(self, exc: BaseException) -> str | None:
        """The column of a unique violation (``key_alias``, ``token`` ...), or None for any other error."""

    @abc.abstractmethod
    def job_lock(self, name: str) -> Any:
        """Async context manager: a lock named ``name`` that one process at a time holds among all on this
        database (every worker of every instance), for a background job one of them is enough to run. Yields
        True when this process holds it for the block, False (at once, never waiting) when another does."""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> Store:
        """Connect and bring the schema to :data:`migrations.LATEST` (``migrate``), else only check it."""
        await self.connect()
        try:
            if migrate:
                await self.migrate()
            else:
                migrations.check_version(await self.schema_version(), need_latest=True)
        except BaseException:
            await self.close()
            raise
        return self

    async def migrate(self) -> tuple[int, int]:
        """Apply the missing migration steps under the upgrade lock; (version before, version after)."""
        async with self._transaction() as c:
            return await migrations.upgrade(self.dialect, c.execute, c.fetch)

    async def schema_version(self) -> int:
        async with self._read() as c:
            if not await self._has_version_table(c):
                return 0
            return await migrations.current_version(c.fetch)

    async def _has_version_table(self, c: Conn) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'rg_schema_version'"
        else:
            sql = "SELECT 1 AS x FROM pg_catalog.pg_tables WHERE tablename = 'rg_schema_version'"
        return bool(await c.fetch(sql, []))

    async def change_version(self) -> int:
        """The change counter: it moves with every write, in that write's transaction (one row read)."""
        async with self._read() as c:
            rows = await c.fetch("SELECT version FROM rg_changes WHERE id = 1", [])
        return int(rows[0]["version"])

    async def ping(self) -> bool:
        """True when a trivial query answers."""
        try:
            async with self._read() as c:
                await c.fetch("SELECT 1 AS x", [])
            return True
        except Exception:
            return False

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """A write transaction that bumps the change counter when it commits."""
        async with self._transaction() as c:
            yield c
            await c.execute("UPDATE rg_changes SET version = version + 1 WHERE id = 1", [])

    # -- generic CRUD -------------------------------------------------------------------------------

    async def _insert(self, c: Conn, table: t.Table[R], rec: R) -> R:
        now = t.utcnow()
        rec = msgspec.structs.replace(rec, **{f: now for f in ("created_at", "updated_at") if f in table.kinds})
        cols = ", ".join(table.columns)
        marks = ", ".join("?" * len(table.columns))
        try:
            await c.execute(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", table.row(rec, self.dialect))
        except Exception as exc:
            self._raise_duplicate(exc, table, rec)
            raise
        return rec

    def _raise_duplicate(self, exc: BaseException, table: t.Table[Any], rec: Any) -> None:
        col = self._unique_column(exc)
        if col is not None:
            name = col if col in table.kinds else table.pk[-1]
            raise Duplicate(table.entity, name, getattr(rec, name, None)) from None

    def _where(self, table: t.Table[Any], key: Sequence[Any]) -> str:
        return " AND ".join(f"{col} = ?" for col in table.pk[: len(key)])

    async def _fetch_one(self, c: Conn, table: t.Table[R], key: Sequence[Any], *, lock: bool = False) -> R:
        rows = await c.fetch(f"SELECT * FROM {table.name} WHERE {self._where(table, key)}"
                             f"{self.for_update if lock else ''}", list(key))
        if not rows:
            raise NotFound(table.entity, "/".join(str(k) for k in key))
        return table.from_db(rows[0])

    async def _get(self, table: t.Table[R], *key: Any) -> R:
        async with self._read() as c:
            return await self._fetch_one(c, table, key)

    async def _get_by(self, table: t.Table[R], column: str, value: Any) -> R:
        async with self._read() as c:
            rows = await c.fetch(f"SELECT * FROM {table.name} WHERE {column} = ?", [value])
        if not rows:
            raise NotFound(table.entity, f"{column}={value}")
        return table.from_db(rows[0])

    def _checked(self, table: t.Table[R], old: R, fields: dict[str, Any]) -> R:
        for name in fields:
            if name not in table.kinds:
                raise InvalidField(table.entity, name)
            if name in table.pk or name in table.immutable or name == "updated_at":
                raise InvalidField(table.entity, name, "cannot be changed")
        merged = {**msgspec.structs.asdict(old), **fields, "updated_at": t.utcnow()}
        merged = {k: v for k, v in merged.items() if v is not None}
        try:
            return msgspec.convert(merged, table.record, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidField(table.entity, str(exc).rsplit("$.", 1)[-1].rstrip("`"), str(exc)) from None

    async def _update_in(self, c: Conn, table: t.Table[R], key: Sequence[Any], fields: dict[str, Any]) -> R:
        old = await self._fetch_one(c, table, key, lock=True)
        new = self._checked(table, old, fields)
        cols = [*fields, "updated_at"] if "updated_at" in table.kinds else list(fields)
        sets = ", ".join(f"{col} = ?" for col in cols)
        args = [table.to_db(col, getattr(new, col), self.dialect) for col in cols]
        try:
            await c.execute(f"UPDATE {table.name} SET {sets} WHERE {self._where(table, key)}", [*args, *key])
        except Exception as exc:
            self._raise_duplicate(exc, table, new)
            raise
        return new

    async def _update(self, table: t.Table[R], key: Sequence[Any], fields: dict[str, Any]) -> R:
        async with self.write() as c:
            return await self._update_in(c, table, key, fields)

    async def _delete_in(self, c: Conn, table: t.Table[R], key: Sequence[Any]) -> R:
        old = await self._fetch_one(c, table, key, lock=True)
        await c.execute(f"DELETE FROM {table.name} WHERE {self._where(table, key)}", list(key))
        return old

    async def _create(self, table: t.Table[R], rec: R) -> R:
        async with self.write() as c:
            return await self._insert(c, table, rec)

    async def _delete(self, table: t.Table[R], *key: Any) -> R:
        async with self.write() as c:
            return await self._delete_in(c, table, key)

    async def _list(self, table: t.Table[R], filters: dict[str, Any], page: int, page_size: int) -> Page[R]:
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidField(table.entity, "page" if page < 1 else "page_size",
                               f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")
        conds, args = [], []
        for col, value in filters.items():
            if value is not None:
                conds.append(f"{col} = ?")
                args.append(table.to_db(col, value, self.dialect))
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        order = ", ".join(table.pk)
        async with self._read() as c:
            total = (await c.fetch(f"SELECT COUNT(*) AS n FROM {table.name}{where}", args))[0]["n"]
            rows = await c.fetch(f"SELECT * FROM {table.name}{where} ORDER BY created_at DESC, {order} "
                                 "LIMIT ? OFFSET ?", [*args, page_size, (page - 1) * page_size])
        return Page([table.from_db(row) for row in rows], int(total), page, page_size)

    # -- keys ---------------------------------------------------------------------------------------

    async def create_key(self, key: Key) -> Key:
        """Insert ``key`` (``token`` already hashed); :class:`Duplicate` for a taken token or alias."""
        return await self._create(t.KEYS, key)

    async def get_key(self, token: str) -> Key:
        """The key whose SHA-256 hex is ``token``."""
        return await self._get(t.KEYS, token)

    async def get_key_by_alias(self, key_alias: str) -> Key:
        return await self._get_by(t.KEYS, "key_alias", key_alias)

    async def update_key(self, token: str, /, **fields: Any) -> Key:
        return await self._update(t.KEYS, (token,), fields)

    async def delete_key(self, token: str) -> Key:
        return await self._delete(t.KEYS, token)

    async def delete_keys(self, tokens: Sequence[str]) -> list[Key]:
        """Delete every key of ``tokens`` in one transaction; :class:`NotFound` (nothing deleted) if one is missing."""
        async with self.write() as c:
            return [await self._delete_in(c, t.KEYS, (tok,)) for tok in tokens]

    async def regenerate_key(self, token: str, new: Key, /, also: Any = None, **fields: Any) -> Key:
        """Replace the key ``token`` by ``new.token`` / ``new.key_name`` keeping everything else (and applying
        ``fields``), in one transaction: the old key stops working when the new one starts, unless ``also``
        (awaited with the transaction's connection: ``store.deprecated_keys.keep_old``) keeps it a while."""
        async with self.write() as c:
            old = await self._delete_in(c, t.KEYS, (token,))
            merged = self._checked(t.KEYS, old, fields)
            rec = msgspec.structs.replace(merged, token=new.token, key_name=new.key_name)
            created = await self._insert(c, t.KEYS, rec)
            if also is not None:
                await also(c)
            return msgspec.structs.replace(created, created_at=old.created_at)

    async def list_keys(self, *, team_id: str | None = None, user_id: str | None = None,
                        organization_id: str | None = None, key_alias: str | None = None,
                        page: int = 1, page_size: int = 50) -> Page[Key]:
        return await self._list(t.KEYS, {"team_id": team_id, "user_id": user_id, "organization_id": organization_id,
                                         "key_alias": key_alias}, page, page_size)

    async def key_aliases(self, *, search: str | None = None, user_id: str | None = None,
                          team_ids: Sequence[str] | None = None, page: int = 1,
                          page_size: int = 50) -> Page[str]:
        """Keys' non-empty aliases in alphabetical order (LiteLLM's ``/key/aliases``): those containing ``search``
        (any case), and with ``user_id`` or ``team_ids`` given, only the keys of that user or of those teams."""
        conds, args = ["key_alias IS NOT NULL", "key_alias <> ''"], []
        if search:
            conds.append(_CONTAINS.format(column="key_alias"))
            args.append(contains_pattern(search))
        if user_id is not None or team_ids is not None:
            mine = ["user_id = ?"] if user_id is not None else []
            teams = list(team_ids or [])
            if teams:
                mine.append(f"team_id IN ({', '.join('?' * len(teams))})")
            conds.append(f"({' OR '.join(mine)})" if mine else "1 = 0")
            args.extend([*([user_id] if user_id is not None else []), *teams])
        where = " AND ".join(conds)
        async with self._read() as c:
            total = (await c.fetch(f"SELECT COUNT(*) AS n FROM rg_keys WHERE {where}", args))[0]["n"]
            rows = await c.fetch(f"SELECT key_alias FROM rg_keys WHERE {where} ORDER BY key_alias LIMIT ? OFFSET ?",
                                 [*args, page_size, (page - 1) * page_size])
        return Page([r["key_alias"] for r in rows], int(total), page, page_size)

    # -- users --------------------------------------------------------------------------------------

    async def create_user(self, user: User) -> User:
        return await self._create(t.USERS, user)

    async def get_user(self, user_id: str) -> User:
        return await self._get(t.USERS, user_id)

    async def update_user(self, user_id: str, /, **fields: Any) -> User:
        return await self._update(t.USERS, (user_id,), fields)

    async def delete_user(self, user_id: str) -> User:
        """Delete the user and its team and organization memberships (its teams' member lists follow)."""
        async with self.write() as c:
            return await self._delete_user_in(c, user_id, with_keys=False)

    async def _delete_user_in(self, c: Conn, user_id: str, *, with_keys: bool) -> User:
        user = await self._delete_in(c, t.USERS, (user_id,))
        if with_keys:
            await c.execute("DELETE FROM rg_keys WHERE user_id = ?", [user_id])
        for row in await c.fetch("SELECT team_id FROM rg_team_members WHERE user_id = ?", [user_id]):
            await self._remove_team_member_in(c, row["team_id"], user_id)
        await c.execute("DELETE FROM rg_organization_members WHERE user_id = ?", [user_id])
        return user

    async def list_users(self, *, user_role: str | None = None, team_id: str | None = None,
                         organization_id: str | None = None, page: int = 1, page_size: int = 50) -> Page[User]:
        return await self._list(t.USERS, {"user_role": user_role, "team_id": team_id,
                                          "organization_id": organization_id}, page, page_size)

    # -- teams and their members --------------------------------------------------------------------

    async def create_team(self, team: Team, members: Sequence[TeamMember] = ()) -> Team:
        """Insert the team and its first members in one transaction."""
        async with self.write() as c:
            created = await self._insert(c, t.TEAMS, msgspec.structs.replace(team, members_with_roles=[]))
            if members:
                return await self._add_team_members_in(c, team.team_id, members)
            return created

    async def get_team(self, team_id: str) -> Team:
        return await self._get(t.TEAMS, team_id)

    async def update_team(self, team_id: str, /, **fields: Any) -> Team:
        if "members_with_roles" in fields:
            raise InvalidField("team", "members_with_roles", "changed by the member methods only")
        return await self._update(t.TEAMS, (team_id,), fields)

    async def delete_team(self, team_id: str, *, with_keys: bool = False) -> Team:
        """Delete the team, its memberships (users' ``teams`` follow) and, with ``with_keys``, its keys."""
        async with self.write() as c:
            return await self._delete_team_in(c, team_id, with_keys=with_keys)

    async def _delete_team_in(self, c: Conn, team_id: str, *, with_keys: bool) -> Team:
        team = await self._fetch_one(c, t.TEAMS, (team_id,), lock=True)
        for row in await c.fetch("SELECT user_id FROM rg_team_members WHERE team_id = ?", [team_id]):
            await self._user_teams(c, row["user_id"], team_id, add=False)
        await c.execute("DELETE FROM rg_team_members WHERE team_id = ?", [team_id])
        if with_keys:
            await c.execute("DELETE FROM rg_keys WHERE team_id = ?", [team_id])
        await c.execute("DELETE FROM rg_teams WHERE team_id = ?", [team_id])
        return team

    async def list_teams(self, *, organization_id: str | None = None, team_alias: str | None = None,
                         page: int = 1, page_size: int = 50) -> Page[Team]:
        return await self._list(t.TEAMS, {"organization_id": organization_id, "team_alias": team_alias},
                                page, page_size)

    async def search_teams(self, *, team_ids: Sequence[str] | None = None, team_id: str | None = None,
                           organization_id: str | None = None, alias_part: str | None = None,
                           sort_by: str = "created_at", descending: bool = True, page: int = 1,
                           page_size: int = 10) -> Page[Team]:
        """Teams (LiteLLM's ``/v2/team/list``): among ``team_ids`` when given, with that ``team_id`` and
        ``organization_id``, whose alias contains ``alias_part`` (any case), ordered by ``sort_by``
        (``team_id``, ``team_alias`` or ``created_at``), a page of them."""
        if sort_by not in ("team_id", "team_alias", "created_at"):
            raise InvalidField("team", "sort_by", "team_id, team_alias or created_at")
        conds: list[str] = []
        args: list[Any] = []
        if team_ids is not None:
            ids = list(team_ids)
            conds.append(f"team_id IN ({', '.join('?' * len(ids))})" if ids else "1 = 0")
            args.extend(ids)
        for col, value in (("team_id", team_id), ("organization_id", organization_id)):
            if value is not None:
                conds.append(f"{col} = ?")
                args.append(value)
        if alias_part:
            conds.append(_CONTAINS.format(column="team_alias"))
            args.append(contains_pattern(alias_part))
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        order = f"{sort_by} {'DESC' if descending else 'ASC'}, team_id"
        async with self._read() as c:
            total = (await c.fetch(f"SELECT COUNT(*) AS n FROM rg_teams{where}", args))[0]["n"]
            rows = await c.fetch(f"SELECT * FROM rg_teams{where} ORDER BY {order} LIMIT ? OFFSET ?",
                                 [*args, page_size, (page - 1) * page_size])
        return Page([t.TEAMS.from_db(row) for row in rows], int(total), page, page_size)

    async def add_team_members(self, team_id: str, members: Sequence[TeamMember]) -> Team:
        """Add members (all or none: a member already in the team is a :class:`Duplicate`)."""
        async with self.write() as c:
            return await self._add_team_members_in(c, team_id, members)

    async def remove_team_member(self, team_id: str, user_id: str) -> Team:
        async with self.write() as c:
            return await self._remove_team_member_in(c, team_id, user_id)

    async def update_team_member(self, team_id: str, user_id: str, /, **fields: Any) -> TeamMember:
        """Change a member's ``role``, ``budget_id`` or ``user_email`` (the team's ``members_with_roles`` too)."""
        async with self.write() as c:
            member = await self._update_in(c, t.TEAM_MEMBERS, (team_id, user_id), fields)
            team = await self._fetch_one(c, t.TEAMS, (team_id,), lock=True)
            roles = [_member_entry(member) if m.get("user_id") == user_id else m for m in team.members_with_roles]
            await self._set_team_roles(c, team_id, roles)
            return member

    async def get_team_member(self, team_id: str, user_id: str) -> TeamMember:
        return await self._get(t.TEAM_MEMBERS, team_id, user_id)

    async def reset_member_spend(self, team_id: str, user_id: str, reset_to: float) -> bool:
        """Set a team member's spend to ``reset_to`` if it is still at least that (LiteLLM's compare-and-set of
        ``/team/{team_id}/member/{user_id}/reset_spend``): whether it was."""
        now = t.TEAM_MEMBERS.to_db("updated_at", t.utcnow(), self.dialect)
        async with self.write() as c:
            return bool(await c.execute("UPDATE rg_team_members SET spend = ?, updated_at = ? WHERE team_id = ? AND "
                                        "user_id = ? AND spend >= ?", [reset_to, now, team_id, user_id, reset_to]))

    async def member_limits(self, team_id: str, user_id: str) -> tuple[int | None, int | None] | None:
        """A team member's ``(rpm_limit, tpm_limit)`` (LiteLLM's team member rate limits), each its own budget
        row's (``/team/member_update``), else its team's default member budget's (``team_member_rpm_limit`` /
        ``team_member_tpm_limit``, ``metadata.team_member_budget_id``); None when ``user_id`` is not a member of
        ``team_id``. One read."""
        default = ("json_extract(t.metadata, '$.team_member_budget_id')" if self.dialect == "sqlite"
                   else "t.metadata->>'team_member_budget_id'")
        async with self._read() as c:
            rows = await c.fetch("SELECT b.rpm_limit AS rpm, b.tpm_limit AS tpm, d.rpm_limit AS d_rpm, "
                                 "d.tpm_limit AS d_tpm FROM rg_team_members m JOIN rg_teams t ON t.team_id = m.team_id "
                                 "LEFT JOIN rg_budgets b ON b.budget_id = m.budget_id "
                                 f"LEFT JOIN rg_budgets d ON d.budget_id = {default} "
                                 "WHERE m.team_id = ? AND m.user_id = ?", [team_id, user_id])
        if not rows:
            return None
        r = rows[0]
        return (r["rpm"] if r["rpm"] is not None else r["d_rpm"], r["tpm"] if r["tpm"] is not None else r["d_tpm"])

    async def list_team_members(self, team_id: str) -> list[TeamMember]:
        async with self._read() as c:
            rows = await c.fetch("SELECT * FROM rg_team_members WHERE team_id = ? ORDER BY created_at, user_id",
                                 [team_id])
        return [t.TEAM_MEMBERS.from_db(row) for row in rows]

    async def _add_team_members_in(self, c: Conn, team_id: str, members: Sequence[TeamMember]) -> Team:
        team = await self._fetch_one(c, t.TEAMS, (team_id,), lock=True)
        roles = list(team.members_with_roles)
        for m in members:
            m = msgspec.structs.replace(m, team_id=team_id)
            await self._insert(c, t.TEAM_MEMBERS, m)
            roles.append(_member_entry(m))
            await self._user_teams(c, m.user_id, team_id, add=True)
        return await self._set_team_roles(c, team_id, roles, team)

    async def _remove_team_member_in(self, c: Conn, team_id: str, user_id: str) -> Team:
        await self._delete_in(c, t.TEAM_MEMBERS, (team_id, user_id))
        team = await self._fetch_one(c, t.TEAMS, (team_id,), lock=True)
        await self._user_teams(c, user_id, team_id, add=False)
        roles = [m for m in team.members_with_roles if m.get("user_id") != user_id]
        return await self._set_team_roles(c, team_id, roles, team)

    async def _set_team_roles(self, c: Conn, team_id: str, roles: list[dict[str, Any]],
                              team: Team | None = None) -> Team:
        now = t.utcnow()
        await c.execute("UPDATE rg_teams SET members_with_roles = ?, updated_at = ? WHERE team_id = ?",
                        [t.TEAMS.to_db("members_with_roles", roles, self.dialect),
                         t.TEAMS.to_db("updated_at", now, self.dialect), team_id])
        team = team if team is not None else await self._fetch_one(c, t.TEAMS, (team_id,))
        return msgspec.structs.replace(team, members_with_roles=roles, updated_at=now)

    async def _user_teams(self, c: Conn, user_id: str, team_id: str, *, add: bool) -> None:
        """Keep a user's ``teams`` list in step with its memberships (when the user has a row)."""
        rows = await c.fetch(f"SELECT teams FROM rg_users WHERE user_id = ?{self.for_update}", [user_id])
        if not rows:
            return
        teams = t.USERS.from_db({"user_id": user_id, "teams": rows[0]["teams"]}).teams
        new = [*teams, team_id] if add and team_id not in teams else [x for x in teams if x != team_id or add]
        if new != teams:
            await c.execute("UPDATE rg_users SET teams = ? WHERE user_id = ?",
                            [t.USERS.to_db("teams", new, self.dialect), user_id])

    # -- organizations and their members ------------------------------------------------------------

    async def create_organization(self, org: Organization) -> Organization:
        return await self._create(t.ORGANIZATIONS, org)

    async def get_organization(self, organization_id: str) -> Organization:
        return await self._get(t.ORGANIZATIONS, organization_id)

    async def update_organization(self, organization_id: str, /, **fields: Any) -> Organization:
        return await self._update(t.ORGANIZATIONS, (organization_id,), fields)

    async def delete_organization(self, organization_id: str) -> Organization:
        """Delete the organization and its memberships."""
        async with self.write() as c:
            org = await self._delete_in(c, t.ORGANIZATIONS, (organization_id,))
            await c.execute("DELETE FROM rg_organization_members WHERE organization_id = ?", [organization_id])
            return org

    async def list_organizations(self, *, organization_alias: str | None = None, page: int = 1,
                                 page_size: int = 50) -> Page[Organization]:
        return await self._list(t.ORGANIZATIONS, {"organization_alias": organization_alias}, page, page_size)

    async def add_organization_members(self, organization_id: str,
                                       members: Sequence[OrganizationMember]) -> list[OrganizationMember]:
        """Add members (all or none)."""
        async with self.write() as c:
            await self._fetch_one(c, t.ORGANIZATIONS, (organization_id,), lock=True)
            return [await self._insert(c, t.ORG_MEMBERS, msgspec.structs.replace(m, organization_id=organization_id))
                    for m in members]

    async def remove_organization_member(self, organization_id: str, user_id: str) -> OrganizationMember:
        return await self._delete(t.ORG_MEMBERS, organization_id, user_id)

    async def update_organization_member(self, organization_id: str, user_id: str,
                                         **fields: Any) -> OrganizationMember:
        return await self._update(t.ORG_MEMBERS, (organization_id, user_id), fields)

    async def list_organization_members(self, organization_id: str) -> list[OrganizationMember]:
        async with self._read() as c:
            rows = await c.fetch("SELECT * FROM rg_organization_members WHERE organization_id = ? "
                                 "ORDER BY created_at, user_id", [organization_id])
        return [t.ORG_MEMBERS.from_db(row) for row in rows]

    # -- customers, budgets, models -----------------------------------------------------------------

    async def create_customer(self, customer: Customer) -> Customer:
        return await self._create(t.CUSTOMERS, customer)

    async def get_customer(self, user_id: str) -> Customer:
        return await self._get(t.CUSTOMERS, user_id)

    async def update_customer(self, user_id: str, /, **fields: Any) -> Customer:
        return await self._update(t.CUSTOMERS, (user_id,), fields)

    async def delete_customer(self, user_id: str) -> Customer:
        return await self._delete(t.CUSTOMERS, user_id)

    async def list_customers(self, *, blocked: bool | None = None, budget_id: str | None = None, page: int = 1,
                             page_size: int = 50) -> Page[Customer]:
        return await self._list(t.CUSTOMERS, {"blocked": blocked, "budget_id": budget_id}, page, page_size)

    async def create_budget(self, budget: Budget) -> Budget:
        return await self._create(t.BUDGETS, budget)

    async def get_budget(self, budget_id: str) -> Budget:
        return await self._get(t.BUDGETS, budget_id)

    async def update_budget(self, budget_id: str, /, **fields: Any) -> Budget:
        return await self._update(t.BUDGETS, (budget_id,), fields)

    async def delete_budget(self, budget_id: str) -> Budget:
        return await self._delete(t.BUDGETS, budget_id)

    async def list_budgets(self, *, page: int = 1, page_size: int = 50) -> Page[Budget]:
        return await self._list(t.BUDGETS, {}, page, page_size)

    async def create_tag(self, tag: Tag) -> Tag:
        return await self._create(t.TAGS, tag)

    async def get_tag(self, tag_name: str) -> Tag:
        return await self._get(t.TAGS, tag_name)

    async def get_tags(self, names: Sequence[str]) -> list[Tag]:
        """The tags of ``names`` that exist (in no particular order; missing names are left out)."""
        names = list(dict.fromkeys(names))
        if not names:
            return []
        async with self._read() as c:
            rows = await c.fetch(f"SELECT * FROM rg_tags WHERE tag_name IN ({', '.join('?' * len(names))})", names)
        return [t.TAGS.from_db(row) for row in rows]

    async def update_tag(self, tag_name: str, /, **fields: Any) -> Tag:
        return await self._update(t.TAGS, (tag_name,), fields)

    async def delete_tag(self, tag_name: str) -> Tag:
        return await self._delete(t.TAGS, tag_name)

    async def list_tags(self, *, budget_id: str | None = None, page: int = 1, page_size: int = 50) -> Page[Tag]:
        return await self._list(t.TAGS, {"budget_id": budget_id}, page, page_size)

    # -- budget periods -----------------------------------------------------------------------------

    async def reset_period(self, entity: str, ident: str, next_reset_at: datetime) -> bool:
        """Start an entity's next budget period: ``spend`` 0 and ``budget_reset_at`` ``next_reset_at``, only
        while the row's ``budget_reset_at`` is still before ``next_reset_at`` (or unset): a compare-and-set,
        so when several workers reset the same row for the same boundary one writes and the others change
        nothing (spend added between them is kept). ``entity`` is ``key``, ``team`` or ``user``; True when
        this call reset the row."""
        tables: dict[str, t.Table[Any]] = {"key": t.KEYS, "team": t.TEAMS, "user": t.USERS}
        table = tables[entity]
        at = table.to_db("budget_reset_at", next_reset_at, self.dialect)
        async with self.write() as c:
            changed = await c.execute(
                f"UPDATE {table.name} SET spend = 0, budget_reset_at = ?, updated_at = ? WHERE {table.pk[0]} = ? "
                "AND (budget_reset_at IS NULL OR budget_reset_at < ?)",
                [at, table.to_db("updated_at", t.utcnow(), self.dialect), ident, at])
        return bool(changed)

    async def reset_all_spend(self) -> tuple[int, int]:
        """Every key's and every team's ``spend`` to 0 in one transaction (LiteLLM's ``/global/spend/reset``;
        spend logs, spend counters, users and budget rows are left as they are); how many keys and teams had
        some spend."""
        async with self.write() as c:
            keys = await c.execute("UPDATE rg_keys SET spend = 0, updated_at = ? WHERE spend <> 0",
                                   [t.KEYS.to_db("updated_at", t.utcnow(), self.dialect)])
            teams = await c.execute("UPDATE rg_teams SET spend = 0, updated_at = ? WHERE spend <> 0",
                                    [t.TEAMS.to_db("updated_at", t.utcnow(), self.dialect)])
        return keys, teams

    async def reset_budget_period(self, budget_id: str, next_reset_at: datetime) -> bool:
        """Start a budget row's next period (compare-and-set as :meth:`reset_period`) and, in the same
        transaction, zero the spend of everything that budget counts for: organizations, customers, tags and
        team members pointing at it, and the members without a budget of their own in teams whose default
        member budget it is (``metadata.team_member_budget_id``). True when this call reset it."""
        at = t.BUDGETS.to_db("budget_reset_at", next_reset_at, self.dialect)
        now = t.BUDGETS.to_db("updated_at", t.utcnow(), self.dialect)
        async with self.write() as c:
            if not await c.execute("UPDATE rg_budgets SET budget_reset_at = ?, updated_at = ? WHERE budget_id = ? "
                                   "AND (budget_reset_at IS NULL OR budget_reset_at < ?)", [at, now, budget_id, at]):
                return False
            for table in ("rg_organizations", "rg_customers", "rg_tags", "rg_team_members"):
                await c.execute(f"UPDATE {table} SET spend = 0 WHERE budget_id = ?", [budget_id])
            default = ("json_extract(metadata, '$.team_member_budget_id')" if self.dialect == "sqlite"
                       else "metadata->>'team_member_budget_id'")
            await c.execute("UPDATE rg_team_members SET spend = 0 WHERE budget_id IS NULL AND team_id IN "
                            f"(SELECT team_id FROM rg_teams WHERE {default} = ?)", [budget_id])
        return True

    async def create_model(self, model: ModelRow) -> ModelRow:
        return await self._create(t.MODELS, model)

    async def get_model(self, model_id: str) -> ModelRow:
        return await self._get(t.MODELS, model_id)

    async def update_model(self, model_id: str, /, **fields: Any) -> ModelRow:
        return await self._update(t.MODELS, (model_id,), fields)

    async def delete_model(self, model_id: str) -> ModelRow:
        return await self._delete(t.MODELS, model_id)

    async def list_models(self, *, model_name: str | None = None, page: int = 1,
                          page_size: int = 50) -> Page[ModelRow]:
        return await self._list(t.MODELS, {"model_name": model_name}, page, page_size)


_CONTAINS = "LOWER({column}) LIKE ? ESCAPE '\\'"
"""A column containing :func:`contains_pattern`'s text, in any case (SQLite and PostgreSQL alike)."""


def contains_pattern(text: str) -> str:
    """The ``LIKE`` pattern of a value containing ``text`` (lower-cased; ``%``, ``_`` and ``\\`` taken literally)."""
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _member_entry(m: TeamMember) -> dict[str, Any]:
    """A member as LiteLLM's ``members_with_roles`` lists it."""
    return {"user_id": m.user_id, "user_email": m.user_email, "role": m.role}
