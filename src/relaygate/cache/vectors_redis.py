"""``redis-semantic``: the semantic cache's vectors in Redis, with or without a vector-search module.

The answers themselves are the exact entries the Redis level already keeps (``<namespace>:<hash>``, stored
once); this module keeps, per semantic scope (``cache.semantic.semantic_scope``), which exact keys exist
and their prompt's vector, and finds the nearest. It talks over the Redis level's own connection
(:class:`~relaygate.cache.redis.RedisCache`: the same deadline, the same *down* pause, one warning per
outage), so Redis down is a miss like any other, never an error. Two ways, chosen once per worker:

- **Redis with a vector search module** (RediSearch 2.4+ / Redis Stack / Redis 8, seen in ``MODULE LIST``
  with its version): each entry
  is a hash ``<prefix>v:<exact key>`` with fields ``scope`` (a TAG) and ``v`` (FLOAT32 bytes), expiring
  with the exact entry (``PEXPIRE``); one ``FT.CREATE <prefix>idx ON HASH PREFIX 1 <prefix>v: SCHEMA scope
  TAG v VECTOR FLAT ... DISTANCE_METRIC COSINE`` is made on the first store, and a lookup is one
  ``FT.SEARCH "@scope:{S}=>[KNN 1 @v $q AS d]" ... DIALECT 2`` (similarity = 1 - d). The server does the
  work; a lookup costs one round trip whatever the number of entries.
- **Plain Redis** (Debian's ``redis-server``: no module; or a search module older than 2.4, without vector
  fields, such as Debian's ``redis-redisearch`` 1.2): one hash per scope,
  ``<prefix><scope>``, field = exact key, value = ``<8-byte big-endian float: expiry, epoch s><FLOAT32
  vector>``. A lookup is one ``HGETALL`` and a scan in the worker (numpy when importable, else pure Python):
  it moves and compares every entry of the scope, O(entries x dimensions) — about 1.6 KB and 30 µs (pure
  Python 3.11; ~0.2 µs with numpy) per 384-dimension entry — so a scope holds at most ``max_entries`` (default
  1000): past that a store removes random fields (``HRANDFIELD`` + ``HDEL``). Expired fields are skipped
  when read and removed off the request path; the hash itself expires with the latest store's TTL.

Stores never await on the request path: they are tasks (at most ``max_pending`` in flight; more are
dropped and counted), one at a time per worker (two trims racing would remove too much; across workers
they may, which only makes the cache forget a few entries). ``<prefix>`` is ``<namespace>:semantic:``
(``relaygate:semantic:`` without one): ``/cache/flushall`` removes a namespace's vectors with its answers;
without a namespace it removes the answers only, and the orphaned vectors are misses until they expire.

**On a Redis Cluster** the search module is never asked for (RediSearch's index is not supported on an OSS
cluster: ``FT.*`` would see one shard): the plain-Redis way is used, whose keys are one hash per scope (each
command names one key, routed to its slot's node). The config loader warns about it once at startup.
"""

from __future__ import annotations

import asyncio
import struct
import time
from array import array
from typing import Any

from relaygate.cache.redis import RedisCache
from relaygate.cache.semantic import Match, dot

_EXPIRY = struct.Struct(">d")


VECTOR_SEARCH_VERSION = 20400
"""RediSearch 2.4 added vector fields; older modules (Debian's ``redis-redisearch`` is 1.2) have ``FT.*``
without them, so they are scanned like plain Redis."""


def _has_search(reply: Any) -> bool:
    """Whether a ``MODULE LIST`` reply names a search module with vector fields."""
    if not isinstance(reply, list):
        return False
    for mod in reply:
        if isinstance(mod, list):
            info = {mod[i]: mod[i + 1] for i in range(0, len(mod) - 1, 2)}
            name = info.get(b"name", info.get("name"))
            ver = info.get(b"ver", info.get("ver"))
            if name in (b"search", "search", b"ft", "ft") and isinstance(ver, int) and ver >= VECTOR_SEARCH_VERSION:
                return True
    return False


class RedisVectors:
    """The vectors of ``redis-semantic`` (see the module docstring)."""

    def __init__(self, redis: RedisCache, namespace: str | None, *, max_entries: int = 1000,
                 max_pending: int = 1000, wall: Any = time.time) -> None:
        self.redis = redis
        self.prefix = f"{namespace}:semantic:" if namespace else "relaygate:semantic:"
        self.max_entries = max_entries
        self.max_pending = max_pending
        self._wall = wall
        self.search_module: bool | None = False if redis.cluster else None
        """Whether the server has ``FT.SEARCH`` (None: not asked yet; a cluster: never used)."""
        self._index_dim = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.dropped = 0

    async def _module(self) -> bool:
        if self.search_module is None:
            try:
                self.search_module = _has_search(await self.redis._call("MODULE", "MODULE", "LIST"))
            except LookupError:
                return False
        return self.search_module

    # -- lookup -------------------------------------------------------------------------------------

    async def search(self, scope: str, vector: array[float], threshold: float) -> Match | None:
        if self.redis._down_until and self.redis.down:
            return None
        try:
            if await self._module():
                return await self._ft_search(scope, vector, threshold)
            reply = await self.redis._call("HGETALL", "HGETALL", self.prefix + scope)
        except LookupError:
            return None
        if not isinstance(reply, list) or not reply:
            return None
        now = self._wall()
        keys: list[str] = []
        rows: list[bytes] = []
        dead: list[bytes] = []
        width = _EXPIRY.size + 4 * len(vector)
        for i in range(0, len(reply) - 1, 2):
            field, value = reply[i], reply[i + 1]
            if not isinstance(field, bytes) or not isinstance(value, bytes) or len(value) != width:
                continue
            if _EXPIRY.unpack_from(value)[0] <= now:
                dead.append(field)
                continue
            keys.append(field.decode())
            rows.append(value[_EXPIRY.size:])
        if dead:
            self._spawn(self._hdel(scope, dead))
        if not keys:
            return None
        best_key, best = _nearest(keys, rows, vector)
        return Match(best_key, best) if best >= threshold else None

    async def _ft_search(self, scope: str, vector: array[float], threshold: float) -> Match | None:
        if not self._index_dim and not await self._index_exists():
            return None  # nothing stored yet: the index is made on the first store
        reply = await self.redis._call(
            "FT.SEARCH", "FT.SEARCH", self.prefix + "idx", f"@scope:{{{scope}}}=>[KNN 1 @v $q AS d]",
            "PARAMS", "2", "q", vector.tobytes(), "SORTBY", "d", "RETURN", "1", "d", "LIMIT", "0", "1",
            "DIALECT", "2")
        if not isinstance(reply, list) or len(reply) < 3 or not isinstance(reply[1], bytes):
            return None
        fields = reply[2] if isinstance(reply[2], list) else []
        distance = None
        for i in range(0, len(fields) - 1, 2):
            if fields[i] in (b"d", "d"):
                distance = float(fields[i + 1])
        if distance is None:
            return None
        similarity = 1.0 - distance
        key = reply[1].decode()[len(self.prefix) + 2:]
        return Match(key, similarity) if similarity >= threshold else None

    # -- store (off the request path) ------------------------------------------------------------------

    def add(self, scope: str, key: str, vector: array[float], ttl: float, value: bytes = b"") -> None:
        self._spawn(self._store(scope, key, vector, ttl))

    def _spawn(self, coro: Any) -> None:
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, scope: str, key: str, vector: array[float], ttl: float) -> None:
        async with self._lock:  # one store at a time: trims racing each other would remove too much
            await self._store_one(scope, key, vector, ttl)

    async def _store_one(self, scope: str, key: str, vector: array[float], ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        call = self.redis._call
        try:
            if await self._module():
                if self._index_dim not in (len(vector), -1) and not await self._index_exists():
                    await self._create_index(len(vector))
                name = f"{self.prefix}v:{key}"
                await call("HSET", "HSET", name, "scope", scope, "v", vector.tobytes())
                await call("PEXPIRE", "PEXPIRE", name, ms)
                return
            name = self.prefix + scope
            await call("HSET", "HSET", name, key, _EXPIRY.pack(self._wall() + ttl) + vector.tobytes())
            await call("PEXPIRE", "PEXPIRE", name, ms)
            n = await call("HLEN", "HLEN", name)
            if isinstance(n, int) and n > self.max_entries:
                extra = await call("HRANDFIELD", "HRANDFIELD", name, n - self.max_entries)
                if isinstance(extra, list) and extra:
                    await call("HDEL", "HDEL", name, *extra)
        except LookupError:
            pass  # counted and logged by the Redis level; a cache may forget

    async def _index_exists(self) -> bool:
        """Whether the index exists (made by any worker); asked until it does (an error reply would pause the
        Redis level, so ``FT.CREATE`` is sent only when ``FT._LIST`` does not name it)."""
        names = await self.redis._call("FT._LIST", "FT._LIST")
        if isinstance(names, list) and any(n in ((self.prefix + "idx").encode(), self.prefix + "idx") for n in names):
            self._index_dim = -1 if not self._index_dim else self._index_dim
            return True
        return False

    async def _create_index(self, dim: int) -> None:
        try:
            await self.redis._call("FT.CREATE", "FT.CREATE", self.prefix + "idx", "ON", "HASH", "PREFIX", "1",
                                   self.prefix + "v:", "SCHEMA", "scope", "TAG", "v", "VECTOR", "FLAT", "6",
                                   "TYPE", "FLOAT32", "DIM", str(dim), "DISTANCE_METRIC", "COSINE")
        finally:
            self._index_dim = dim

    async def _hdel(self, scope: str, fields: list[bytes]) -> None:
        try:
            await self.redis._call("HDEL", "HDEL", self.prefix + scope, *fields)
        except LookupError:
            pass

    def clear(self) -> None:
        """Nothing held here: ``/cache/flushall`` removes the namespace's keys in Redis."""

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _nearest(keys: list[str], rows: list[bytes], vector: array[float]) -> tuple[str, float]:
    try:
        import numpy as np
    except ImportError:
        best_key, best = "", -2.0
        for k, raw in zip(keys, rows):
            s = dot(array("f", raw), vector)
            if s > best:
                best_key, best = k, s
        return best_key, best
    sims = np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), len(vector)) @ np.frombuffer(
        vector.tobytes(), dtype=np.float32)
    i = int(sims.argmax())
    return keys[i], float(sims[i])


__all__ = ["RedisVectors"]
