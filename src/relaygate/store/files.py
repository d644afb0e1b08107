"""Files and batches the gateway relayed to an upstream: the rows of ``rg_files`` (migration step 5).

What it owns: every SQL statement on ``rg_files`` and the record it maps to (:class:`FileObject`). One row
per object a client got an id for: an uploaded file, a batch, or a batch's output / error file (added when
the batch first shows it). ``object_id`` is the id the client holds (``relaygate.files.ids``), ``kind`` is
``file`` or ``batch``, ``upstream_id`` the upstream's own id on ``deployment_id``; ``api_key`` / ``team_id``
/ ``user_id`` say who owns it; ``metadata`` keeps the last object the upstream returned (a batch's state, as
the client last saw it, mapped to our ids), so listing needs no upstream call.

Invariants:

- **Ownership is a filter in SQL.** :func:`list_objects` and :func:`get_owned` take an :class:`Owner`;
  an owner that is not the admin sees only the rows whose ``api_key`` is its key or whose ``team_id`` is its
  team. A row of someone else is never returned, so the caller cannot tell it from a missing one.
- **Idempotent inserts.** :func:`put_object` is ``INSERT ... ON CONFLICT (object_id) DO NOTHING``: ids are
  a function of (deployment, upstream id), so a batch's output file seen twice is one row, owned by whoever
  inserted it first.
- **No change bump.** These writes use the store's bare transaction, not ``Store.write``: the change counter
  tells workers to drop their key caches, which files never affect (as ``store.spend``).
- Values only ever travel as parameters; times are the table's kinds (ISO text in SQLite, ``timestamptz``).
- **Bounded.** A row whose upstream object has an ``expires_at`` (a file uploaded with ``expires_after``, a
  batch's output files) carries it, and :func:`delete_expired` removes it once past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.store import tables as t

if TYPE_CHECKING:
    from relaygate.store.base import Store

__all__ = ["FILES", "FileObject", "Owner", "claim_cost", "delete_expired", "delete_object", "get_owned",
           "list_objects", "put_object", "release_cost", "update_object"]


class FileObject(msgspec.Struct, kw_only=True):
    """One ``rg_files`` row."""

    object_id: str
    kind: str
    """``file`` or ``batch``."""
    api_key: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    upstream_id: str = ""
    deployment_id: str = ""
    model: str | None = None
    """The model group the deployment serves (what the key's allow-list is checked against)."""
    custom_llm_provider: str | None = None
    purpose: str | None = None
    filename: str | None = None
    bytes: int | None = None
    status: str | None = None
    metadata: dict[str, Any] = {}
    """The last object the upstream returned for it, with our ids (what a listing shows); ``{}`` when none."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    costed_at: datetime | None = None
    """A batch: when a worker claimed logging its cost (:func:`claim_cost`); None: not yet (or released)."""


FILES = t.Table("file", "rg_files", FileObject, ("object_id",), immutable=())


@dataclass(frozen=True, slots=True)
class Owner:
    """Who asks: ``admin`` sees every row; otherwise rows of ``key_hash``, or of ``team_id`` when set."""

    key_hash: str | None
    team_id: str | None
    admin: bool = False

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (with its parameters) selecting this owner's rows."""
        if self.admin:
            return "1 = 1", []
        if self.team_id:
            return "(api_key = ? OR team_id = ?)", [self.key_hash, self.team_id]
        if self.key_hash is None:
            return "1 = 0", []
        return "api_key = ?", [self.key_hash]

    def owns(self, row: FileObject) -> bool:
        if self.admin:
            return True
        if self.key_hash is not None and row.api_key == self.key_hash:
            return True
        return bool(self.team_id) and row.team_id == self.team_id


async def put_object(store: Store, rec: FileObject) -> bool:
    """Insert ``rec`` (``created_at`` / ``updated_at`` now when unset); False when the id already had a row."""
    now = t.utcnow()
    rec = msgspec.structs.replace(rec, created_at=rec.created_at or now, updated_at=now)
    cols = ", ".join(FILES.columns)
    marks = ", ".join("?" * len(FILES.columns))
    async with store._transaction() as c:
        n = await c.execute(f"INSERT INTO rg_files ({cols}) VALUES ({marks}) ON CONFLICT (object_id) DO NOTHING",
                            FILES.row(rec, store.dialect))
    return bool(n)


async def get_owned(store: Store, object_id: str, kind: str, owner: Owner) -> FileObject | None:
    """The row of ``object_id`` of ``kind`` if ``owner`` may see it, else None (missing or someone else's)."""
    cond, args = owner.where()
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM rg_files WHERE object_id = ? AND kind = ? AND {cond}",
                             [object_id, kind, *args])
    return FILES.from_db(rows[0]) if rows else None


async def list_objects(store: Store, kind: str, owner: Owner, *, limit: int, after: str | None = None,
                       purpose: str | None = None, ascending: bool = False) -> tuple[list[FileObject], bool]:
    """``owner``'s objects of ``kind``, newest first (``ascending``: oldest first), at most ``limit``, starting
    after the object ``after`` (OpenAI's cursor; an id the owner cannot see starts from the top); and
    whether more follow."""
    cond, args = owner.where()
    where = [f"kind = ? AND {cond}"]
    params: list[Any] = [kind, *args]
    if purpose:
        where.append("purpose = ?")
        params.append(purpose)
    if after:
        cursor = await get_owned(store, after, kind, owner)
        if cursor is not None and cursor.created_at is not None:
            at = FILES.to_db("created_at", cursor.created_at, store.dialect)
            op = ">" if ascending else "<"
            where.append(f"(created_at {op} ? OR (created_at = ? AND object_id {op} ?))")
            params.extend([at, at, cursor.object_id])
    order = "ASC" if ascending else "DESC"
    async with store._read() as c:
        rows = await c.fetch(f"SELECT * FROM rg_files WHERE {' AND '.join(where)} "
                             f"ORDER BY created_at {order}, object_id {order} LIMIT ?", [*params, limit + 1])
    return [FILES.from_db(r) for r in rows[:limit]], len(rows) > limit


async def update_object(store: Store, object_id: str, *, status: str | None = None,
                        metadata: dict[str, Any] | None = None, nbytes: int | None = None) -> None:
    """Record what the upstream last said of ``object_id`` (only the fields given)."""
    sets, args = ["updated_at = ?"], [FILES.to_db("updated_at", t.utcnow(), store.dialect)]
    for col, value in (("status", status), ("metadata", metadata), ("bytes", nbytes)):
        if value is not None:
            sets.append(f"{col} = ?")
            args.append(FILES.to_db(col, value, store.dialect))
    async with store._transaction() as c:
        await c.execute(f"UPDATE rg_files SET {', '.join(sets)} WHERE object_id = ?", [*args, object_id])


async def claim_cost(store: Store, object_id: str) -> bool:
    """Claim logging the cost of batch ``object_id``: True for the one caller (of any worker or instance) that
    set ``costed_at``, False when it was set already."""
    async with store._transaction() as c:
        n = await c.execute("UPDATE rg_files SET costed_at = ? WHERE object_id = ? AND kind = 'batch' "
                            "AND costed_at IS NULL", [FILES.to_db("costed_at", t.utcnow(), store.dialect), object_id])
    return bool(n)


async def release_cost(store: Store, object_id: str) -> None:
    """Give a claim back (the cost could not be read): a later retrieve claims it again."""
    async with store._transaction() as c:
        await c.execute("UPDATE rg_files SET costed_at = NULL WHERE object_id = ?", [object_id])


async def delete_object(store: Store, object_id: str) -> bool:
    async with store._transaction() as c:
        return bool(await c.execute("DELETE FROM rg_files WHERE object_id = ?", [object_id]))


async def delete_expired(store: Store, now: datetime) -> int:
    """Forget the objects whose upstream said they expire before ``now`` (``expires_at``); how many."""
    async with store._transaction() as c:
        return int(await c.execute("DELETE FROM rg_files WHERE expires_at IS NOT NULL AND expires_at < ?",
                                   [FILES.to_db("expires_at", now, store.dialect)]))
