"""The shared backend: PostgreSQL through an asyncpg connection pool, for several instances.

The shared SQL's ``?`` placeholders become ``$1 ... $n`` (memoised per statement, so asyncpg's prepared
statement cache sees the same text); JSON columns are JSONB, sent and read as JSON text. Read-modify-write
takes row locks (``FOR UPDATE``), and schema upgrades take a transaction-level advisory lock (see
``migrations``). Connection failures while opening are :class:`StoreUnavailable` naming the URL with its
password redacted; the driver's own message is scrubbed of the password too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from relaygate.store.base import Store
from relaygate.store.errors import InvalidText, StoreUnavailable, redact_url


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$n`` (the shared SQL has no ``?`` anywhere else)."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], 1):
        out.append(f"${i}{part}")
    return "".join(out)


_BAD_TEXT = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)
"""A U+0000 in a parameter (text, or a ``jsonb`` escape): what the server cannot store."""


class _Conn:
    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in await self.conn.fetch(numbered(sql), *args)]
        except _BAD_TEXT:
            raise InvalidText() from None

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        try:
            status = await self.conn.execute(numbered(sql), *args) if args else await self.conn.execute(sql)
        except _BAD_TEXT:
            raise InvalidText() from None
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def execute_each(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """Run ``statements`` in order; the number of rows they changed."""
        n = 0
        for sql, args in statements:
            n += await self.execute(sql, args)
        return n


class PostgresStore(Store):
    dialect = "postgres"
    for_update = " FOR UPDATE"

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 5, connect_timeout: float = 5.0,
                 command_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self.url = redact_url(dsn)
        self._password = unquote(urlsplit(dsn).password or "")
        self._sizes = (min_size, max(min_size, max_size))
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    async def connect(self) -> None:
        try:
            self._pool = await asyncio.wait_for(asyncpg.create_pool(
                self._dsn, min_size=self._sizes[0], max_size=self._sizes[1], timeout=self._connect_timeout,
                command_timeout=self._command_timeout), self._connect_timeout + 1)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            why = self._scrub(str(exc)) or "timed out"
            raise StoreUnavailable(f"cannot connect to the database {self.url}: {type(exc).__name__}: {why}") from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:  # pragma: no cover - a stuck connection
                pool.terminate()

    @property
    def connected(self) -> bool:
        return self._pool is not None

    def _need(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable(f"the database {self.url} is not open")
        return self._pool

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Conn]:
        try:
            async with self._need().acquire() as conn:
                yield _Conn(conn)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise StoreUnavailable(f"the database {self.url} is unavailable: {self._scrub(str(exc))}") from None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Conn]:
        try:
            async with self._need().acquire() as conn, conn.transaction():
                yield _Conn(conn)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise StoreUnavailable(f"the database {self.url} is unavailable: {self._scrub(str(exc))}") from None

    def _unique_column(self, exc: BaseException) -> str | None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            name = exc.constraint_name or ""
            if name.endswith("__uniq"):
                return name.split("__")[1]
            return "pkey"
        return None
