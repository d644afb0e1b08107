"""``qdrant-semantic``: the semantic cache in Qdrant, through the official ``qdrant-client`` (the ``semantic``
extra; imported only when this cache type is configured).

Where it runs: with ``qdrant_api_base`` (or ``QDRANT_API_BASE``), a Qdrant server, shared by every worker and
instance (``qdrant_api_key`` / ``QDRANT_API_KEY`` sent as its API key); without one, the client's **local
mode**, no server: in memory per worker, or in the directory ``qdrant_path`` (relaygate's option; the
client locks it, so one process only). One collection, ``qdrant_collection_name``, made on the first store
with the embedding's size, cosine distance and LiteLLM's ``qdrant_quantization_config`` (``binary``,
``scalar``: int8, ``product``: x16; applied by servers, ignored by local mode).

What a point is: id = a UUID of the exact key (a store of the same key replaces its point), vector = the
prompt's unit vector, payload = ``scope`` (``cache.semantic.semantic_scope``: searched as a filter, so a
match never crosses scopes), ``key`` (the exact key, sent back as ``x-litellm-cache-key``), ``stored_at``,
``expires`` (epoch seconds: Qdrant has no TTL, so searches filter on it and every 64th store deletes the
expired points) and ``answer`` (the stored answer: Qdrant is the shared level of this cache type, so the
answer is kept once, there, and a hit needs no second read). A lookup is one ``query_points`` with the
scope filter, ``limit=1`` and ``score_threshold``.

Every call is bounded by ``timeout``; any failure (server down, a timeout, a refused request) is a miss,
counted (``failures``) and logged once until a call succeeds again; after a failure Qdrant is skipped for
``retry_after`` seconds (5), so an unreachable server costs no connection attempt per request. Stores
are tasks off the request path.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from array import array
from typing import Any

from relaygate.cache.semantic import Match

log = logging.getLogger("relaygate.cache")
_STAMP = struct.Struct(">d")
QUANTIZATIONS = ("binary", "scalar", "product")


def _quantization(models: Any, kind: str | None) -> Any:
    if kind == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    if kind == "scalar":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    if kind == "product":
        return models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=True))
    return None


class QdrantVectors:
    """The vectors and answers of ``qdrant-semantic`` (see the module docstring)."""

    def __init__(self, collection: str, *, url: str | None = None, api_key: str | None = None,
                 path: str | None = None, quantization: str | None = None, timeout: float = 1.0,
                 max_pending: int = 1000, retry_after: float = 5.0, metrics: Any = None,
                 wall: Any = time.time) -> None:
        from qdrant_client import AsyncQdrantClient, models

        self.models = models
        self.collection = collection
        self.server = url is not None
        if url is not None:
            # no version check at start: it is a blocking request in a thread, and a server down then is a
            # miss like any other, not a failure at startup
            self.client = AsyncQdrantClient(url=url, api_key=api_key, timeout=max(1, int(timeout + 0.999)),
                                            check_compatibility=False)
        elif path is not None:
            self.client = AsyncQdrantClient(path=path)
        else:
            self.client = AsyncQdrantClient(location=":memory:")
        self.quantization = quantization
        self.timeout = timeout
        self.max_pending = max_pending
        self._wall = wall
        self._count = metrics.count if metrics is not None else None
        self._ready = False
        self._failing = False
        self._down_until = 0.0
        self.retry_after = retry_after
        self._stores = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0
        self.dropped = 0

    def _down(self) -> bool:
        """Within the pause after a failure: calls are skipped (a miss at once, counted)."""
        if self._down_until and time.monotonic() < self._down_until:
            self.failures += 1
            return True
        return False

    def _failed(self, what: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after
        self.failures += 1
        if self._count is not None:
            self._count("cache_semantic_error")
        if not self._failing:
            self._failing = True
            log.warning("semantic cache: qdrant %s failed (%s: %s); requests are cache misses until it answers",
                        what, type(exc).__name__, str(exc)[:200])

    async def _exists(self) -> bool:
        if not self._ready:
            self._ready = await self.client.collection_exists(self.collection)
        return self._ready

    async def search(self, scope: str, vector: array[float], threshold: float) -> Match | None:
        if self._down():
            return None
        m = self.models
        try:
            if not await asyncio.wait_for(self._exists(), self.timeout):
                return None
            flt = m.Filter(must=[m.FieldCondition(key="scope", match=m.MatchValue(value=scope)),
                                 m.FieldCondition(key="expires", range=m.Range(gt=self._wall()))])
            res = await asyncio.wait_for(self.client.query_points(
                self.collection, query=vector.tolist(), query_filter=flt, limit=1, with_payload=True,
                score_threshold=threshold), self.timeout)
        except Exception as exc:  # the client raises many kinds (HTTP, gRPC, local mode): all are a miss
            self._failed("search", exc)
            return None
        self._failing = False
        self._down_until = 0.0
        if not res.points:
            return None
        p = res.points[0]
        payload = p.payload or {}
        answer, stored_at, key = payload.get("answer"), payload.get("stored_at"), payload.get("key")
        if not isinstance(answer, str) or not isinstance(key, str) or not isinstance(stored_at, (int, float)):
            return None
        return Match(key, float(p.score), _STAMP.pack(float(stored_at)) + answer.encode())

    def add(self, scope: str, key: str, vector: array[float], ttl: float, value: bytes) -> None:
        if self._down():
            return
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._store(scope, key, vector, ttl, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, scope: str, key: str, vector: array[float], ttl: float, value: bytes) -> None:
        m = self.models
        try:
            if not await asyncio.wait_for(self._exists(), self.timeout):
                await asyncio.wait_for(self.client.create_collection(
                    self.collection, vectors_config=m.VectorParams(size=len(vector), distance=m.Distance.COSINE),
                    quantization_config=_quantization(m, self.quantization) if self.server else None), self.timeout)
                if self.server:
                    await asyncio.wait_for(self.client.create_payload_index(
                        self.collection, "scope", m.PayloadSchemaType.KEYWORD), self.timeout)
                self._ready = True
            stored_at = _STAMP.unpack_from(value)[0]
            point = m.PointStruct(id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)), vector=vector.tolist(), payload={
                "scope": scope, "key": key, "stored_at": stored_at, "expires": self._wall() + ttl,
                "answer": value[_STAMP.size:].decode("utf-8", "replace")})
            await asyncio.wait_for(self.client.upsert(self.collection, points=[point]), self.timeout)
            self._stores += 1
            if self._stores % 64 == 0:
                await asyncio.wait_for(self.client.delete(self.collection, points_selector=m.FilterSelector(
                    filter=m.Filter(must=[m.FieldCondition(key="expires", range=m.Range(lte=self._wall()))]))),
                    self.timeout)
        except Exception as exc:  # as in search: a cache may forget
            self._ready = False
            self._failed("store", exc)

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self.client.get_collections(), self.timeout)
            return True
        except Exception:
            return False

    def clear(self) -> None:
        if self._ready:
            self._ready = False
            task = asyncio.get_running_loop().create_task(self._drop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drop(self) -> None:
        try:
            await asyncio.wait_for(self.client.delete_collection(self.collection), self.timeout)
        except Exception as exc:
            self._failed("delete", exc)

    async def aclose(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()


__all__ = ["QUANTIZATIONS", "QdrantVectors"]
