"""Response caching (issue 15): LiteLLM's ``cache`` / ``cache_params`` served by the gateway.

- ``key``: the cache key — a stable hash over the route, the model group and exactly the request fields
  that change the answer, equal for the same request whatever its JSON key order or spelling;
- ``memory``: the per-worker cache, an LRU bounded in bytes with a per-entry expiry;
- ``redis``: the shared level (``type: redis``), misses when Redis is away, stores queued off the path;
- ``replay``: a finished stream assembled into one answer to store, and a stored answer rendered again as a
  unary body (fresh ``id`` / ``created``) or as a proper SSE stream;
- ``semantic`` (with ``vectors_redis``, ``vectors_qdrant``): answers for prompts that mean the same, found
  by embedding similarity in an in-process index, Redis or Qdrant, after the exact key missed;
- ``stage``: ``ResponseCache``, the pipeline stage (controls, lookup, serve, store) and ``make_cache``;
- ``routes``: ``/cache/ping``, ``/cache/delete``, ``/cache/flushall``, ``/cache/redis/info``.
"""

from __future__ import annotations

from relaygate.cache.key import IGNORED, cache_key, canonical
from relaygate.cache.memory import MemoryCache
from relaygate.cache.replay import StreamAssembler, chat_stream, completion_stream, fresh

__all__ = ["IGNORED", "MemoryCache", "StreamAssembler", "cache_key", "canonical", "chat_stream",
           "completion_stream", "fresh"]
