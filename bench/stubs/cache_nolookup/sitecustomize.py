"""The cache bench's ``miss-nolookup`` gateway: the cache configured, every lookup a miss that does nothing.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_cache`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch).
``ResponseCache.lookup`` returns None at once (no controls read, no key, no cache state, so nothing is
stored either): ``miss-nolookup`` against ``off`` is what having the cache configured costs a request
before the cache does anything. Never used outside the bench.
"""

from __future__ import annotations

from typing import Any

from relaygate.cache.stage import ResponseCache


def _no_lookup(self: ResponseCache, ex: Any) -> bytes | None:
    return None


ResponseCache.lookup = _no_lookup  # type: ignore[method-assign]
