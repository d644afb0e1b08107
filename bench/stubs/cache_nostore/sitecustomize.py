"""The cache bench's ``miss-nostore`` gateway: a miss looked up as usual, its answer never stored.

Imported at interpreter start-up by the gateway process that ``bench.scenarios_cache`` starts with this
directory first on ``PYTHONPATH`` (its Granian worker is forked from it and inherits the patch).
``ResponseCache.store`` (and the cache's ``keep``, which the pipeline calls: the stamp, the memory level's entry
and its expiry) does nothing, so ``miss`` against ``miss-nostore`` is what storing a miss's answer costs inside
the serving gateway. Never used outside the bench.
"""

from __future__ import annotations

from typing import Any

from relaygate.cache.stage import ResponseCache


def _no_store(self: ResponseCache, ex: Any, answer: bytes, ctype: bytes | None = None) -> None:
    return None


ResponseCache.store = _no_store  # type: ignore[method-assign]
_bind = ResponseCache._bind


def _bind_stub(self: ResponseCache, fp: Any) -> None:
    """The cache's ``keep`` (what the pipeline calls: the compiled path's own where there is one) is the stub."""
    _bind(self, fp)
    self.keep = self.store  # type: ignore[method-assign]


ResponseCache._bind = _bind_stub  # type: ignore[method-assign]
