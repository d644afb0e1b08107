"""Several store writes in one transaction, for callers that change more than one entity at once.

The :class:`~relaygate.store.base.Store` methods each commit on their own. The management API's routes that
touch several rows (a user with its first key and memberships, a key moved between teams, an organization
with its teams) need all or nothing: they open ``async with tx() as c:`` and call these methods with ``c``.
Every write bumps the change counter inside that one transaction, as the single-entity methods do.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from relaygate.store import tables as tbl
from relaygate.store.base import Conn, Store
from relaygate.store.records import Team


class Transaction:
    """``tx = Transaction(store)``; ``async with tx() as c:`` then ``await tx.insert(c, record)`` ..."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self) -> AbstractAsyncContextManager[Conn]:
        return self.store.write()

    async def insert(self, c: Conn, rec: msgspec.Struct) -> Any:
        return await self.store._insert(c, _table_of(rec), rec)

    async def get(self, c: Conn, table: tbl.Table[Any], *key: Any, lock: bool = True) -> Any:
        """The row of ``table`` at ``key`` read inside the transaction (locked); NotFound when missing."""
        return await self.store._fetch_one(c, table, key, lock=lock)

    async def update(self, c: Conn, table: tbl.Table[Any], key: Sequence[Any], fields: dict[str, Any]) -> Any:
        return await self.store._update_in(c, table, key, fields)

    async def delete(self, c: Conn, table: tbl.Table[Any], *key: Any) -> Any:
        return await self.store._delete_in(c, table, key)

    async def add_members(self, c: Conn, team_id: str, members: Sequence[Any]) -> Team:
        return await self.store._add_team_members_in(c, team_id, members)

    async def remove_member(self, c: Conn, team_id: str, user_id: str) -> Team:
        return await self.store._remove_team_member_in(c, team_id, user_id)

    async def delete_user(self, c: Conn, user_id: str) -> None:
        """The user, its keys, team memberships (teams' member lists follow) and organization memberships."""
        await self.store._delete_user_in(c, user_id, with_keys=True)

    async def delete_team(self, c: Conn, team_id: str) -> Team:
        """The team, its memberships (users' ``teams`` follow) and its keys."""
        return await self.store._delete_team_in(c, team_id, with_keys=True)

    async def find_by(self, table: tbl.Table[Any], column: str, value: Any) -> Any:
        """The first row of ``table`` whose ``column`` is ``value`` (NotFound when none)."""
        return await self.store._get_by(table, column, value)


def _table_of(rec: msgspec.Struct) -> tbl.Table[Any]:
    for table in tbl.ALL:
        if type(rec) is table.record:
            return table
    raise TypeError(f"no table for {type(rec).__name__}")
