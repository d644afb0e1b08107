"""The Redis layer of key lookups: a worker's cache, then Redis, then the database (LiteLLM's order).

What it owns: the rows a key resolves from (key, team, user, organization, and its user's rate limits as a
member of its team) kept in Redis for every worker and instance sharing it, so a worker that starts, or whose
cache expired, costs Redis a GET instead of the database five row reads. Only found keys are kept
(unknown keys stay in each worker's negative cache: a flood of bad keys never writes to Redis).

Staying true to the database: an entry holds the store's change version its rows were read under (as this
worker knew it when the lookup started), and a worker accepts an entry only when that version is at least
the one it knows (``auth.changes`` polls it every second). Any write bumps the version, so within a second of
a change every worker refuses every older entry and reads the database again; the management API also
deletes the changed keys' entries before it announces them, so a key blocked on one instance is not served
from Redis by another. A lookup that raced a write can put an entry of the old version back: the version
check retires it within the poll's second, the same bound as without Redis.

Redis down or slow (``timeout`` 0.5 s): the lookup goes to the database, one warning a minute; nothing on
the request path waits longer. Entries expire after ``user_api_key_cache_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from relaygate.service_metrics import timed
from relaygate.store import Key, Organization, Team, User

__all__ = ["SharedKeys"]

log = logging.getLogger("relaygate.auth")

PREFIX = "relaygate:keyrows2:"
"""(``2``: entries carry the member's limits; an older release's entries, without them, are not read.)"""


class _Entry(msgspec.Struct, array_like=True):
    version: int
    key: Key
    team: Team | None
    user: User | None
    org: Organization | None
    member: tuple[int | None, int | None] | None = None
    """The user's rate limits as a member of the key's team (``Store.member_limits``)."""


Rows = tuple[Key, Team | None, User | None, Organization | None, tuple[int | None, int | None] | None]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Entry)


class SharedKeys:
    """Key rows in Redis, checked against the store's change version (``version()``: as this worker knows it)."""

    def __init__(self, url: str, ttl: float, version: Callable[[], int | None], *, timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self.redis: Any = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.ttl = max(1, int(ttl))
        self._version = version
        self.hits = 0
        self.misses = 0
        self._warned = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._bypass_at = -1
        self._bypass_all = False
        self._bypassed: set[str] = set()

    def version(self) -> int:
        return self._version() or 0

    def bypass(self, hashes: Iterable[str] | None) -> None:
        """Read these keys (None: every key) from the database, not Redis, until this worker's known version
        moves: an invalidation (this worker's write, or one announced on Redis) may arrive before the version
        does, and Redis may still hold the old rows until the writer's delete lands."""
        version = self.version()
        if self._bypass_at != version:
            self._bypass_at, self._bypass_all = version, False
            self._bypassed.clear()
        if hashes is None:
            self._bypass_all = True
        else:
            self._bypassed.update(hashes)
            if len(self._bypassed) > 10_000:
                self._bypass_all = True
                self._bypassed.clear()

    async def get(self, token_hash: str) -> tuple[int, Rows | None]:
        """(the version to write a database read back under, the rows when Redis has a current entry)."""
        version = self.version()
        if self._bypass_at == version and (self._bypass_all or token_hash in self._bypassed):
            self.misses += 1
            return version, None
        try:
            raw = await timed("redis", "get", self.redis.get(PREFIX + token_hash))
        except Exception as exc:
            self._warn(exc)
            return version, None
        if raw is not None:
            try:
                e = _decoder.decode(raw)
            except msgspec.DecodeError:
                e = None
            if e is not None and e.version >= version:
                self.hits += 1
                return version, (e.key, e.team, e.user, e.org, e.member)
        self.misses += 1
        return version, None

    def put(self, token_hash: str, version: int, rows: Rows) -> None:
        """Keep ``rows`` in Redis, in the background (the request does not wait for it)."""
        data = _encoder.encode(_Entry(version, *rows))
        self._spawn(self._set(PREFIX + token_hash, data))

    def forget(self, hashes: Iterable[str]) -> None:
        """Delete these keys' entries (a management write changed them), in the background."""
        names = [PREFIX + h for h in hashes]
        if names:
            self._spawn(self._delete(names))

    async def forget_now(self, hashes: Iterable[str]) -> None:
        names = [PREFIX + h for h in hashes]
        if names:
            await self._delete(names)

    async def _set(self, name: str, data: bytes) -> None:
        try:
            await timed("redis", "set", self.redis.set(name, data, ex=self.ttl))
        except Exception as exc:
            self._warn(exc)

    async def _delete(self, names: list[str]) -> None:
        try:
            await timed("redis", "del", self.redis.delete(*names))
        except Exception as exc:
            self._warn(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned >= 60.0:
            self._warned = now
            log.warning("keys in Redis unavailable, reading the database (%s: %s)", type(exc).__name__, exc)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        try:
            await self.redis.aclose()
        except Exception:  # pragma: no cover - closing is best effort
            pass
