"""The embedded backend: one SQLite file in WAL mode, through aiosqlite (each connection has its thread).

A worker holds one writer connection, whose transactions (``BEGIN IMMEDIATE``, so the write lock is taken
up front and a conflicting writer waits ``busy_timeout`` instead of failing half-way) run one at a time, and
a small pool of reader connections: WAL lets them read the last committed state while a write is in
progress, in this worker or in another process on the same file. The file and its directory are created on
first start.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiosqlite

from relaygate.service_metrics import timed
from relaygate.store.base import Store
from relaygate.store.daily import bounded_id
from relaygate.store.errors import StoreUnavailable

T = TypeVar("T")

_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:\w+\.(\w+)(?:, )?)+")

_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)
"""``None`` binds as ``NULL`` through an adapter that gives ``None`` back (a C call). Without one, the
sqlite3 module (Python 3.11) looks for an adapter of each ``None`` parameter, fails twice and formats an
``AttributeError`` it then discards: ~0.8 µs a ``None`` against ~0.2 µs an integer, ~2.8 of the 10.6 µs of a
29-column spend row with five of them (``/tmp`` micro-benchmark, multi-row ``INSERT`` of 64 rows). The
adapter table is the module's, for the whole process; this one changes no value anyone binds."""


def _fetch(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    cur = db.execute(sql, args)
    try:
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or ()]
    finally:
        cur.close()
    return [dict(zip(names, row, strict=True)) for row in rows]


def _execute(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    cur = db.execute(sql, args)
    try:
        return cur.rowcount
    finally:
        cur.close()


def _execute_each(db: sqlite3.Connection, statements: Iterable[tuple[str, Sequence[Any]]]) -> int:
    n = 0
    for sql, args in statements:
        n += _execute(db, sql, args)
    return n



def _bounded_id(value: Any) -> Any:
    """SQL ``rg_bounded_id(x)``: :func:`~relaygate.store.daily.bounded_id` of a text, other values as they are."""
    return bounded_id(value) if isinstance(value, str) else value

class _Conn:
    """A connection as the store's SQL sees it. Each call is one trip to the connection's thread: the
    function runs there whole (``aiosqlite.Connection._execute``, the primitive its own ``execute`` is built
    on), where aiosqlite's cursor API takes two trips a statement (execute, then close) and wakes the event
    loop for each."""

    __slots__ = ("db",)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    def _run(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        run: Callable[..., Awaitable[T]] = self.db._execute
        return run(fn, self.db._conn, *args)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return await timed("postgres", "fetch", self._run(_fetch, sql, args))

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        return await timed("postgres", "execute", self._run(_execute, sql, args))

    async def execute_each(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """Run ``statements`` in order, in one trip (the iterable is consumed on the connection's thread); the
        number of rows they changed."""
        return await timed("postgres", "execute_each", self._run(_execute_each, statements))


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str, *, readers: int = 2, busy_timeout: float = 10.0) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._readers_n = max(1, readers)
        self._busy_ms = int(busy_timeout * 1000)
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []
        self._lock = asyncio.Lock()

    async def _open(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        self._all.append(db)
        await db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.create_function("rg_bounded_id", 1, _bounded_id, deterministic=True)  # store.daily.bounded_sql
        return db

    async def connect(self) -> None:
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._writer = await self._open()
            await self._wal(self._writer)
            for _ in range(self._readers_n):
                self._readers.put_nowait(await self._open())
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open the database {self.url}: {exc}") from None

    async def _wal(self, db: aiosqlite.Connection) -> None:
        """Put the file in WAL mode (persistent: later connections find it so). Switching needs the file to
        itself and SQLite answers "database is locked" at once, without its busy handler, when another
        process opens it at the same moment: so the mode is read first, and the switch retried until
        ``busy_timeout``."""
        deadline = asyncio.get_running_loop().time() + self._busy_ms / 1000
        delay = 0.01
        while True:
            try:
                async with db.execute("PRAGMA journal_mode") as cur:
                    mode = await cur.fetchone()
                if mode is not None and str(mode[0]).lower() == "wal":
                    return
                async with db.execute("PRAGMA journal_mode = WAL") as cur:
                    mode = await cur.fetchone()
                if mode is not None and str(mode[0]).lower() == "wal":
                    return
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def close(self) -> None:
        conns, self._all = self._all, []
        self._writer = None
        self._readers = asyncio.Queue()
        for db in conns:
            try:
                await db.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def _need(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreUnavailable(f"the database {self.url} is not open")
        return self._writer

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Conn]:
        self._need()
        db = await self._readers.get()
        try:
            yield _Conn(db)
        finally:
            if any(d is db for d in self._all):  # not a reader of a pool closed meanwhile
                self._readers.put_nowait(db)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Conn]:
        async with self._lock:
            db = self._need()
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield _Conn(db)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        """An advisory lock on ``<database file>.<name>.lock`` (``flock``: the processes sharing this file share
        one host; the kernel drops it with a process that dies holding it)."""
        if self.path in ("", ":memory:"):
            yield True  # a private database: no other process
            return
        try:
            fd = os.open(f"{self.path}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the lock file of {self.url}: {exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except BlockingIOError:  # another process holds it
                got = False
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _unique_column(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.IntegrityError):
            m = _UNIQUE.search(str(exc))
            if m:
                return m.group(1)
        return None
