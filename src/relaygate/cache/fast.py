"""The response cache's common request in compiled code: which caches get it, and with what.

What it owns: :func:`fast_path`, the ``FastPath`` (``relaygate.core._cachefast_c``, built from
``ext/_cachefast_c.pyx``) a :class:`~relaygate.cache.stage.ResponseCache` hands its common requests to, or None
when the extension is not built (``RELAYGATE_NO_EXTENSIONS``) or the cache's configuration puts every request
on the Python path. ``relaygate.core._ext.LOADED["cachefast"]`` says which runs.

Invariants:

- **Same answers**: the compiled path does what ``ResponseCache.lookup`` and ``ResponseCache.store`` do for the
  requests it takes, with the same helpers, passed here (the canonical body and the scope prefixes of
  ``cache.key``, ``core.sha``'s SHA-256, the cache's key memo, memory level, event counts and clock, the stream
  assembler and the answer check of ``cache.calls``): the same key, the same ``CacheState``, the same entry
  stored, the same counts. Any other request it answers ``GENERAL``, and the Python path takes it whole; so the
  Python path is its pure twin, and ``tests/cache/test_fast.py`` runs the same requests through both.
- **Which caches**: only those whose every level is this worker's memory (no Redis, object store or semantic
  level: their lookups await) and that cache every request (no ``mode: default_off``). A cache built otherwise
  has no fast path; nothing is decided per request but the request's own terms.
- **Which requests**: no control field in the body (no ``cache`` object, ``caching``, ``ttl`` ...), a key without
  cache rules or no key, a route keyed by its JSON body alone except embeddings (chat, completions, rerank), a
  chat request's ``messages`` decoded as a list (``max_messages`` counts them). A store is left to the Python
  path when the request sent a ``Cache-Control`` header (its ``s-maxage``) or the answer is an embeddings' or a
  transcription's.
- **Which hits it serves** (``FastPath.serve``, from ``ResponseCache.serve``): a unary chat or completions hit
  found by exact key (:data:`SERVED`), whatever path looked it up: the counts, the usage read, the cost, the
  exporters' answer, the ``x-litellm-*`` headers and durations and the fresh body (``replay.fresh``'s splice) as
  the Python path has them; the caller sends them. A stream, a semantic hit, another route: ``GENERAL``.

- **How it is called**: the pipeline calls the cache's ``find`` and ``keep``, which are ``FastPath.find`` and
  ``FastPath.keep`` where there is a compiled path (the cache's ``lookup`` and ``store`` otherwise): they hand
  what the compiled path does not take to the cache's Python path (``ResponseCache._lookup``, ``_store``), so the
  common request runs no Python frame of the cache. Inside, the memory level (``_memcache_c``), the canonical body
  (``_cachekey_c``) and the digest (``_sha_c``) are called in C, through the C entry points those modules export
  as capsules, when they are those modules' own (a twin or a bench stub given instead is called as given); the
  canonical body is then hashed in its buffer, never made a bytes object. ``FastPath.c_calls`` says which.

Measured (``python -m bench.instructions --modes cache:off,cache:miss,cache:hit``), see README's Performance
section: the Python a miss ran was ~400 bytecodes of glue around compiled pieces; a hit's serve ~250 bytecodes
and a msgspec decode and encode of the answer (a hit −10% instructions compiled). The C calls, ``find`` /
``keep`` and the walk's kept buffers: a miss +24,580 → +21,119 instructions and +1,066 → +898 simulated L1i
misses over cache off.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from relaygate.cache import calls, key, replay
from relaygate.core import _ext, tokens, views
from relaygate.core.sha import sha256_hex
from relaygate.pipeline.exchange import Exchange

if TYPE_CHECKING:
    from relaygate.cache.stage import ResponseCache

COMPONENT = "cachefast"
_compiled = _ext.compiled(COMPONENT)
GENERAL: Any = _compiled.GENERAL if _compiled is not None else object()
"""What the compiled path answers for a request the Python path takes."""
ROUTES = calls.BODY_ROUTES - {"embeddings"}
"""The routes the compiled path takes: keyed by the JSON body alone, one entry a request."""
SERVED = ("chat", "completions")
"""The routes whose unary hits (found by exact key) the compiled path serves: the others' bodies are not a
``replay.fresh`` of the stored answer (a rerank's keeps its shape, an embeddings' has no id)."""


def fast_path(cache: ResponseCache, miss_name: str, hit_name: str, state: type, memo_body: int) -> Any:
    """``cache``'s compiled path (``miss_name``, ``hit_name``: the miss and hit counts' events, ``state``:
    ``CacheState``, ``memo_body``: the largest body whose key the memo keeps), or None (see the module
    docstring)."""
    s = cache.settings
    if _compiled is None or cache.shared is not None or cache.redis is not None or cache.semantic is not None \
            or s.default_off:
        return None
    return _compiled.FastPath(
        cache.memory, cache._wall, cache._events, cache._memo, miss_name, s.namespace, s.scope == "team",
        s.ttl is None, max_messages=s.max_messages, routes=ROUTES, counted=calls.COUNTED,
        canonical_body=key.canonical_body, sha256_hex=sha256_hex, heads=key._HEADS, head=key._head,
        heads_max=key.HEADS_MAX, memo_body=memo_body,
        state=state, assembler=calls.assembler, has_output=calls.has_output, remember=cache._remember,
        hit_name=hit_name, prefixes={r: calls.ID_PREFIX[r] for r in SERVED}, usage=tokens.extract_usage,
        fresh_py=replay.fresh_decoded, json=calls.JSON, perf_counter=time.perf_counter, exchange=Exchange,
        general_lookup=cache._lookup, general_store=cache._store, chat_view=views.ChatView)


__all__ = ["COMPONENT", "GENERAL", "ROUTES", "SERVED", "fast_path"]
