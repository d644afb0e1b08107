"""Response caching (issue 15): LiteLLM's ``cache`` / ``cache_params`` served by the gateway.

The parts built so far, each sans IO and tested on its own:

- ``key``: the cache key — a stable hash over the route, the model group and exactly the request fields
  that change the answer, equal for the same request whatever its JSON key order or spelling;
- ``memory``: the per-worker cache, an LRU bounded in bytes with a per-entry expiry;
- ``replay``: a finished stream assembled into one answer to store, and a stored answer rendered again as a
  unary body (fresh ``id`` / ``created``) or as a proper SSE stream.

Not yet built (issue 15 stays open): the pipeline stage that serves hits before routing and the completion
sink that stores misses, the Redis and semantic backends, the per-request controls and the ``/cache/*``
routes.
"""

from __future__ import annotations

from relaygate.cache.key import IGNORED, cache_key, canonical
from relaygate.cache.memory import MemoryCache
from relaygate.cache.replay import StreamAssembler, chat_stream, completion_stream, fresh

__all__ = ["IGNORED", "MemoryCache", "StreamAssembler", "cache_key", "canonical", "chat_stream",
           "completion_stream", "fresh"]
