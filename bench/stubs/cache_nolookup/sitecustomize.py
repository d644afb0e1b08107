"""The cache bench's ``miss-nolookup`` gateway: the cache configured, every lookup a miss that does nothing.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_cache`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch).
``ResponseCache.lookup`` (and the cache's ``find``, which the pipeline calls) returns None at once (no
controls read, no key, no cache state, so nothing is stored either): ``miss-nolookup`` against ``off`` is what
having the cache configured costs a request before the cache does anything. Never used outside the bench.
"""

from __future__ import annotations

from typing import Any

from relaygate.cache.stage import ResponseCache


def _no_lookup(self: ResponseCache, ex: Any) -> bytes | None:
    return None


ResponseCache.lookup = _no_lookup  # type: ignore[method-assign]
_bind = ResponseCache._bind


def _bind_stub(self: ResponseCache, fp: Any) -> None:
    """The cache's ``find`` (what the pipeline calls: the compiled path's own where there is one) is the stub."""
    _bind(self, fp)
    self.find = self.lookup  # type: ignore[method-assign]


ResponseCache._bind = _bind_stub  # type: ignore[method-assign]
