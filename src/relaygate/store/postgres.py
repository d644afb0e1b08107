"""The shared backend: PostgreSQL through an asyncpg connection pool, for several instances.

The shared SQL's ``?`` placeholders become ``$1 ... $n`` (memoised per statement, so asyncpg's prepared
statement cache sees the same text); JSON columns are JSONB, sent and read as JSON text. Read-modify-write
takes row locks (``FOR UPDATE``), and schema upgrades take a transaction-level advisory lock (see
``migrations``). Connection failures while opening are :class:`StoreUnavailable` naming the URL with its
password redacted; the driver's own message is scrubbed of the password too. A LiteLLM ``DATABASE_URL``'s
Prisma options (``schema``, ``connection_limit``, ``pool_timeout``, ``pgbouncer`` ...) are read by
``store.pgurl`` and given to asyncpg as their meaning, never sent to the server as settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from relaygate.service_metrics import timed
from relaygate.store.base import Store
from relaygate.store.errors import InvalidText, StoreError, StoreUnavailable, redact_url
from relaygate.store.pgurl import pg_options, quote_ident


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
            return [dict(r) for r in await timed("postgres", "fetch", self.conn.fetch(numbered(sql), *args))]
        except _BAD_TEXT:
            raise InvalidText() from None

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        try:
            status = await timed("postgres", "execute", self.conn.execute(numbered(sql), *args) if args else
                                 self.conn.execute(sql))
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
                 command_timeout: float = 30.0, pool_timeout: float | None = None) -> None:
        self.url = redact_url(dsn)
        try:
            opts = pg_options(dsn)  # LiteLLM's (Prisma's) options in the URL: store.pgurl
        except ValueError as exc:
            raise StoreError(f"{exc} ({self.url})") from None
        self._dsn = opts.dsn
        self._options = opts
        self._password = unquote(urlsplit(dsn).password or "")
        max_size = opts.max_size or max_size
        self._sizes = (min(min_size, max_size), max_size)
        self._connect_timeout = opts.connect_timeout or connect_timeout
        self._command_timeout = opts.command_timeout or command_timeout
        self._pool_timeout = opts.pool_timeout if opts.pool_timeout is not None else pool_timeout
        self._pool: asyncpg.Pool | None = None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    async def connect(self) -> None:
        opts = self._options
        extra: dict[str, Any] = {}
        if opts.statement_cache_size is not None:
            extra["statement_cache_size"] = opts.statement_cache_size
        try:
            if opts.schema is not None:
                await asyncio.wait_for(self._create_schema(opts.schema), self._connect_timeout + 1)
                extra["server_settings"] = {"search_path": opts.search_path}
            self._pool = await asyncio.wait_for(asyncpg.create_pool(
                self._dsn, min_size=self._sizes[0], max_size=self._sizes[1], timeout=self._connect_timeout,
                command_timeout=self._command_timeout, **extra), self._connect_timeout + 1)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            why = self._scrub(str(exc)) or "timed out"
            raise StoreUnavailable(f"cannot connect to the database {self.url}: {type(exc).__name__}: {why}") from None

    async def _create_schema(self, schema: str) -> None:
        """The URL's ``schema`` (Prisma's option), created when missing, as ``prisma migrate`` does."""
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        finally:
            await conn.close()

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
            async with self._need().acquire(timeout=self._pool_timeout) as conn:
                yield _Conn(conn)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise self._unavailable(exc) from None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Conn]:
        try:
            async with self._need().acquire(timeout=self._pool_timeout) as conn, conn.transaction():
                yield _Conn(conn)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise self._unavailable(exc) from None

    @asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        """A session advisory lock (``pg_try_advisory_lock``) keyed by ``name``, on a pool connection held for
        the block (the server drops it with a session that dies holding it)."""
        key = int.from_bytes(hashlib.sha256(f"relaygate:{name}".encode()).digest()[:8], "big", signed=True)
        try:
            async with self._need().acquire(timeout=self._pool_timeout) as conn:
                got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
                try:
                    yield got
                finally:
                    if got:
                        with contextlib.suppress(Exception):  # a lost session released it already
                            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        """A connection lost, refused, or not freed within ``pool_timeout``, as the store's error."""
        why = self._scrub(str(exc)) or type(exc).__name__
        return StoreUnavailable(f"the database {self.url} is unavailable: {why}")

    def _unique_column(self, exc: BaseException) -> str | None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            name = exc.constraint_name or ""
            if name.endswith("__uniq"):
                return name.split("__")[1]
            return "pkey"
        return None
