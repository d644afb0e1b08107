"""The response cache as a pipeline stage: look up before routing, serve a hit whole, store what a miss got.

What it owns, per request (``Pipeline.run`` calls :meth:`ResponseCache.lookup` after the ``before_route``
hooks, only for the routes the config caches):

- **Controls**: the body's ``cache`` object (LiteLLM's per-request controls, a control field the upstream
  never sees): ``no-cache`` (do not serve from the cache; the fresh answer is still stored), ``no-store``
  (do not store this answer), ``ttl`` (seconds to keep this answer), ``s-maxage`` or ``s-max-age`` (serve
  only an answer stored at most this many seconds ago; LiteLLM reads both, the second first), ``namespace``
  (a separate key space), ``use-cache`` (with ``mode: default_off``, true opts in; false always opts out).
  Outside the object, as LiteLLM: a ``Cache-Control: s-maxage=<seconds>`` request header, else a top-level
  ``ttl``, is the TTL the answer is stored for, unless the config sets ``ttl`` (which wins, as in LiteLLM) or
  the ``cache`` object does.
  Other names are ignored, as LiteLLM ignores them; a known name of the wrong type is a 400 naming it. A key
  whose ``allowed_cache_controls`` is set may send only those names, known or not (403 otherwise: LiteLLM's
  ``cache_control_check`` hook and wording). The top-level ``caching`` field (LiteLLM's): any value but
  absent, null or true is ``no-cache`` (LiteLLM's ``caching_handler`` skips the lookup and still stores the
  answer); true does not opt in under ``default_off`` (LiteLLM reads only ``use-cache`` there). A key whose
  ``metadata.cache`` is set has those controls (``ttl``, ``s-maxage``, ``no-cache``, ``no-store``; others
  dropped) in place of every request's own (LiteLLM's ``add_key_level_controls``).
- **Call types**: chat, completions, embeddings, transcriptions and rerank (LiteLLM's default list), and
  ``/v1/messages`` and ``/v1/responses`` when ``supported_call_types`` lists them; what differs between them
  (the key's material, the stream assembly, the hit's shape and fresh id) is ``cache.calls``.
- **Lookup**: the key (``cache.key``), this worker's memory first, then Redis when configured (a Redis hit
  is copied into memory); an entry older than ``s-maxage`` is a miss. A lookup never fails a request. After
  an exact hit, the key of the same body bytes on the same route, model group, team and namespace is remembered
  (within :data:`MEMO_BYTES`): repeating a request skips decoding and hashing its body, and a request that
  never hit pays one dictionary probe.
- **Embeddings** are looked up per input (``cache.embeddings``): every input found is a hit assembled from
  their entries; some found, the request is rewritten to send only the others, and :meth:`store` keeps an
  entry per input sent (the pipeline merges the found ones into the upstream's answer: ``Parts.merged``).
- **Semantic lookup** (only when a semantic type is configured, for chat and completions; ``cache.semantic``):
  after the exact key missed — the cheap test first — the prompt is embedded and the nearest stored prompt
  of the same scope is searched; at ``similarity_threshold`` or above its answer is the hit (read from the
  exact levels under its key, or from Qdrant's payload), sent with ``x-litellm-semantic-similarity``
  (LiteLLM's header) and the matched entry's ``x-litellm-cache-key``. The embedding is kept on the request
  so a miss's store indexes it without a second call. ``no-cache`` skips both lookups (and so the
  answer it gets is stored without a vector). Exact-only caches never reach this code.
- **Hit**: first the key's rate limits (``Pipeline.run`` with ``Router.admit_key``: rpm, max parallel
  requests, tpm settled with the hit's usage; LiteLLM's limiter runs before its cache lookup): a hit over them
  gets the routed request's 429 and counts as neither hit nor miss. Then the stored answer with a fresh ``id``
  and ``created`` and the model name the client asked for, as a body or, for a stream request, as a proper SSE
  stream of its API (``cache.calls``); headers ``x-litellm-cache-key`` (LiteLLM sends it only on hits: clients
  use its presence as the hit flag), ``x-litellm-response-cost: 0.0``, the response and overhead durations and
  the routed answer's key headers the pipeline passes (``Pipeline.hit_headers``); the completion record is
  marked ``cache_hit`` with the original usage and cost 0, so spend logs show the hit and budgets are not
  charged. No deployment (nor its limits) or upstream is touched.
- **Store**: after a miss's answer went out whole (unary) or its stream ended normally and assembled into a
  complete answer (``core.assemble``), :meth:`store` puts it in memory (O(1), no await) and queues it for
  Redis (``cache.redis``: a background writer), never delaying the request.

Stored values are ``<8-byte big-endian float: stored at (epoch s)><answer bytes>`` (a transcription's answer
bytes: ``<content type>\n<body>``).
"""

from __future__ import annotations

import logging
import re
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from relaygate.cache import calls
from relaygate.cache.embeddings import Parts, inputs_of, split_entry
from relaygate.cache.fast import GENERAL, fast_path
from relaygate.cache.key import body_key, cache_key, input_keys
from relaygate.cache.memory import MemoryCache
from relaygate.cache.semantic import (
    SEMANTIC_ROUTES,
    Embedder,
    LocalIndex,
    Semantic,
    VectorIndex,
    prompt_text,
    semantic_scope,
)
from relaygate.config.cache import REDIS_TYPES, CacheSettings
from relaygate.core import errors, tokens
from relaygate.core.views import decode_view
from relaygate.http.respond import send_body

if TYPE_CHECKING:
    from relaygate.cache.bucket import BucketCache
    from relaygate.cache.redis import RedisCache
    from relaygate.pipeline.exchange import Exchange

log = logging.getLogger("relaygate.cache")
_STAMP = struct.Struct(">d")
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
CACHE_HIT = "cache_hit"
CACHE_MISS = "cache_miss"
_CONTROLS = frozenset({"no-cache", "no-store", "ttl", "s-maxage", "s-max-age", "namespace", "use-cache"})
_NO_CONTROLS: dict[str, Any] = {}
"""A request's controls when it sends none (read, never written)."""
KEY_CONTROLS = frozenset({"ttl", "s-maxage", "no-cache", "no-store"})
"""The controls a key's ``metadata.cache`` may set for every request made with it (LiteLLM's
``SupportedCacheControls``; its ``add_key_level_controls`` puts them in place of the request's own)."""
MEMO_BODY = 16 * 1024
"""Largest body whose key is remembered after a hit (bytes)."""
MEMO_BYTES = 4 * 1024 * 1024
"""Bytes the key memo holds at most per worker (bodies, and :data:`MEMO_ENTRY` each); past it, it starts
again empty."""
MEMO_ENTRY = 320
"""Bytes counted per memo entry beyond its body: the tuple, the dict slot, the key's text."""


class CacheState(msgspec.Struct):
    """One request's cache decisions (``Exchange.cache``): a struct, made in C (a miss makes one)."""

    key: str
    ttl: float | None
    no_store: bool
    hit: bool = False
    header_ttl: bool = False
    """A ``Cache-Control: s-maxage`` request header may set the TTL when the answer is stored (neither the
    config nor the ``cache`` object set one)."""
    assembler: Any = None
    """A miss's stream assembler (``core.assemble``: chat, Messages, Responses); None: not stored."""
    vector: Any = None
    """The prompt's embedding (``array('f')``) when the semantic lookup made one: indexed on store."""
    scope: str = ""
    similarity: float | None = None
    """A semantic hit's similarity (None: an exact hit)."""
    namespace: str | None = None
    """The request's own ``cache.namespace`` when it is not the configured one (None otherwise): a store
    marks it in Redis (:func:`~relaygate.cache.redis.namespace_marker`) so that ``/cache/flushall`` finds it."""
    parts: Parts | None = None
    """An embeddings request's inputs, looked up one by one (``cache.embeddings``); None on other routes."""


def _controls(value: Any, allowed: list[str] | None) -> dict[str, Any]:
    """The request's ``cache`` controls, checked: every name against the key's ``allowed_cache_controls``
    (LiteLLM's hook tests each one, known or not), then the known names' types; unknown names pass unread."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.BadRequest("cache: expected an object of cache controls", param="cache")
    for name, v in value.items():
        if allowed and name not in allowed:
            raise errors.GatewayError(f"Not allowed to set {name} as a cache control. Contact admin to change "
                                      "permissions.", status=403, type="auth_error", param="cache")
        if name not in _CONTROLS:
            continue
        if name in ("no-cache", "no-store", "use-cache") and not isinstance(v, bool):
            raise errors.BadRequest(f"cache.{name}: expected true or false", param="cache")
        if name in ("ttl", "s-maxage", "s-max-age") and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise errors.BadRequest(f"cache.{name}: expected a number of seconds", param="cache")
        if name == "namespace" and (not isinstance(v, str) or not v or len(v) > 200):
            raise errors.BadRequest("cache.namespace: expected a non-empty string", param="cache")
    return value


_S_MAXAGE = re.compile(rb"(?:^|[,\s])s-maxage\s*=\s*([0-9]{1,9}(?:\.[0-9]+)?)", re.IGNORECASE)


def _body_ttl(ctl: Any) -> float | None:
    """The body's top-level ``ttl`` (LiteLLM's request ``ttl``): seconds to store the answer for; a 400 when it
    is not a number of seconds."""
    v = ctl.get("ttl")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise errors.BadRequest("ttl: expected a number of seconds", param="ttl")
    return float(v)


def _header_ttl(ex: Exchange) -> float | None:
    """A ``Cache-Control: s-maxage=<seconds>`` request header's seconds (LiteLLM makes it the request's ``ttl``),
    read when a miss is stored; None without one."""
    scope = ex.scope
    if scope is not None:
        for k, v in scope["headers"]:
            if k == b"cache-control":
                m = _S_MAXAGE.search(bytes(v))
                if m is not None:
                    return float(m.group(1))
    return None


KeyRules = tuple[()] | tuple[list[str] | None, dict[str, Any] | None]
"""A key's cache rules (:func:`rules_of`): ``()`` when it has none."""


def rules_of(row: Any) -> KeyRules:
    """The cache rules of a key's stored row: its ``allowed_cache_controls`` (None: any) and the controls its
    ``metadata.cache`` sets for every request (None: none; LiteLLM's ``add_key_level_controls``), or ``()`` when it
    has neither. Kept on the key (``KeyInfo.cache_rules``) from its first cached request: the row a key was resolved
    from does not change under it (an update resolves the key again)."""
    allowed = getattr(row, "allowed_cache_controls", None) or None
    meta = getattr(row, "metadata", None)
    controls = None
    if isinstance(meta, dict) and "cache" in meta:
        kc = meta["cache"]
        controls = {k: v for k, v in kc.items() if k in KEY_CONTROLS} if isinstance(kc, dict) else {}
    return () if allowed is None and controls is None else (allowed, controls)


class ResponseCache:
    """One worker's response cache (see the module docstring)."""

    def __init__(self, settings: CacheSettings, redis: RedisCache | None = None,
                 wall: Any = time.time, metrics: Any = None, semantic: Semantic | None = None,
                 shared: RedisCache | BucketCache | None = None) -> None:
        self.settings = settings
        self.routes = settings.routes
        self.memory = MemoryCache(settings.max_bytes, default_ttl=settings.memory_ttl)
        self.redis = redis
        """The Redis level (``type: redis`` / ``redis-semantic``), for what only Redis does (routes, vectors, marks)."""
        self.shared: RedisCache | BucketCache | None = shared if shared is not None else redis
        """The level all workers share: the Redis level or an object store's (``cache.s3``, ``gcs``, ``azure_blob``)."""
        self.semantic = semantic
        """The semantic level (``cache.semantic.Semantic``); None: exact caching only."""
        self._clock: Callable[[], float] = wall
        self._events: dict[str, int] = metrics.events if metrics is not None else {}
        """``Metrics.events``, where hits and misses are counted as ``cache_hit`` / ``cache_miss`` (LiteLLM's
        ``litellm_cache_hits_metric`` and ``litellm_cache_misses_metric``): both present from the start, so a
        request adds one in place (``Metrics.count``'s call and bound are for names not known in advance)."""
        for name in (CACHE_HIT, CACHE_MISS):
            self._events.setdefault(name, 0)
        self._by_team = settings.scope == "team"
        self._hits = self._misses = 0
        self._memo: dict[tuple[str, str, str | None, str | None, bytes], str] = {}
        """(route, model group, team, namespace, the body's bytes as forwarded, without control fields) -> its
        key (``cache_key``'s inputs, all of them), for bodies that hit: an identical request
        (the same bytes) skips decoding the body and hashing it again (~8 µs of a ~45 µs hit)."""
        self._memo_bytes = 0
        self._bind(fast_path(self, CACHE_MISS, CACHE_HIT, CacheState, MEMO_BODY))

    def _bind(self, fp: Any) -> None:
        """``fp``: the compiled path (``cache.fast``) or None. ``find`` / ``keep``, what the pipeline calls, are
        :meth:`lookup` / :meth:`store` or the compiled path's own, handing the rest to :meth:`_lookup` / ``_store``."""
        self._fast = fp
        self.find: Callable[[Exchange], bytes | Awaitable[bytes | None] | None] = \
            fp.find if fp is not None else self.lookup
        self.keep: Callable[[Exchange, bytes, bytes | None], None] = fp.keep if fp is not None else self.store

    @property
    def _wall(self) -> Callable[[], float]:
        """The clock stamped on stored entries (epoch seconds; replaceable, as tests do)."""
        return self._clock

    @_wall.setter
    def _wall(self, wall: Callable[[], float]) -> None:
        self._clock = wall
        if self._fast is not None:
            self._fast.wall = wall

    @property
    def misses(self) -> int:
        return self._misses + (self._fast.misses if self._fast is not None else 0)

    @property
    def hits(self) -> int:
        return self._hits + (self._fast.hits if self._fast is not None else 0)

    def _copy(self, key: str, stored: bytes) -> None:
        """Keep a Redis hit in this worker's memory no longer than the configured Redis TTL counted from when it
        was stored (its stamp), so a copy does not serve what the shared level let go (an entry stored with a
        shorter per-request ``ttl`` can still outlive it here: Redis is not asked for its time left)."""
        s = self.settings
        left = s.redis_ttl - (self._clock() - _STAMP.unpack_from(stored)[0])
        if left > 0:
            self.memory.set(key, stored, min(s.memory_ttl, left))

    def _missed(self) -> None:
        self._misses += 1
        self._events[CACHE_MISS] += 1

    def lookup(self, ex: Exchange) -> bytes | Awaitable[bytes | None] | None:
        """The stored answer for this request (with its stamp), or None; decides ``ex.cache``.

        Returned at once when this worker's memory decides it (a memory hit; a miss without a shared or semantic
        level to ask): no coroutine is made for what never waits. Otherwise (the shared level, the semantic
        level, an embeddings request's inputs) an awaitable of the same; the caller awaits what is not bytes.
        The common request is looked up by the compiled path (``cache.fast``) where there is one."""
        if self._fast is not None and (found := self._fast.lookup(ex)) is not GENERAL:
            return found  # type: ignore[no-any-return]
        return self._lookup(ex)

    def _lookup(self, ex: Exchange) -> bytes | Awaitable[bytes | None] | None:
        s = self.settings
        ctl = ex.control
        who = ex.who
        key_info = who.key if who is not None else None
        rules: KeyRules = ()
        if key_info is not None and key_info.records:
            rules = key_info.cache_rules
            if rules is None:
                rules = key_info.cache_rules = rules_of(key_info.records[0])
        if ctl is None and not rules:  # nothing to read (no control fields, no key-level rules): the common request
            if s.default_off:
                return None
            c, no_cache = _NO_CONTROLS, False
        else:
            asked = self._asked(ctl, rules)
            if asked is None:
                return None
            c, no_cache = asked
        route = ex.route
        limit = s.max_messages  # LiteLLM's max_messages: a long conversation is neither looked up nor stored
        if limit is not None and route in calls.COUNTED and (
                len(m) if type(m := getattr(ex.view, "messages", None)) is list and route == "chat"
                else calls.message_count(ex)) > limit:
            return None
        group = ex.group
        group_name = group.name if group is not None else ex.model
        team = (who.team_id or "") if self._by_team and who is not None else None
        namespace = (c.get("namespace") or s.namespace) if c else s.namespace
        if route == "embeddings":
            return self._lookup_inputs(ex, c, no_cache, group_name, team, namespace)
        raw = ex.body  # without the control fields: the key's inputs are these five
        key = None
        from_bytes = type(raw) is bytes and route in calls.BODY_ROUTES
        memoable = from_bytes and len(raw) <= MEMO_BODY
        if memoable and self._memo:  # (empty while nothing hit: a miss neither builds nor hashes a memo entry)
            key = self._memo.get((route, group_name, team, namespace, raw))
            memoable = key is None  # known already
        body: dict[str, Any] | None = None
        if key is None:
            if from_bytes:
                key = body_key(route, group_name, raw, namespace, team)
                if key is None:
                    return None
            else:
                body = calls.material(ex)
                if body is None:
                    return None
                try:
                    key = cache_key(route, group_name, body, namespace=namespace, team=team)
                except orjson.JSONEncodeError:  # nested deeper than orjson encodes (255): not cached, no error
                    return None
        if c:
            ttl = c.get("ttl")
            st = CacheState(key, ttl, bool(c.get("no-store")))
            max_age = c.get("s-max-age", c.get("s-maxage"))  # LiteLLM's: the hyphenated one first
        else:
            ttl = max_age = None
            st = CacheState(key, None, False)
        if ttl is None and s.ttl is None:  # LiteLLM: the configured ttl wins over the request's own
            st.header_ttl = True
            if ctl is not None:
                st.ttl = _body_ttl(ctl)
        ex.cache = st
        if namespace != s.namespace:
            st.namespace = namespace
        if ex.stream:
            st.assembler = calls.assembler(route)
        if no_cache:  # looked up: no; stored: yes
            self._missed()
            return None
        stored = self.memory.get(key)
        if stored is None or len(stored) <= _STAMP.size or (
                max_age is not None and self._clock() - _STAMP.unpack_from(stored)[0] > max_age):
            if (stored is None and self.shared is not None) or (
                    self.semantic is not None and route in SEMANTIC_ROUTES):
                return self._lookup_further(ex, st, stored is None and self.shared is not None, body, team,
                                            namespace, max_age,
                                            (route, group_name, team, namespace, raw) if memoable else None)
            self._misses += 1  # (_missed, inline: every miss passes here)
            self._events[CACHE_MISS] += 1
            return None
        if memoable:  # an exact hit: the next identical request skips the key
            self._remember((route, group_name, team, namespace, raw), key)
        st.hit = True  # counted as served by :meth:`serve`: the key's limits may still refuse it
        return stored

    def _asked(self, ctl: dict[str, Any] | None, rules: KeyRules) -> tuple[dict[str, Any], bool] | None:
        """The cache controls that apply to a request with control fields or key-level rules (:func:`rules_of`), and
        whether it asks not to be served from the cache (``no-cache``, or a top-level ``caching`` other than true);
        None: the cache is not used for it (``use-cache: false``, or ``mode: default_off`` without
        ``use-cache: true``)."""
        allowed = None
        requested = ctl.get("cache") if ctl is not None else None
        if rules:
            allowed, key_controls = rules
            if key_controls is not None:  # the key's own controls replace the request's
                requested = key_controls
        c = _controls(requested, allowed) if requested is not None else _NO_CONTROLS
        use = c.get("use-cache") if c else None
        if use is False or (self.settings.default_off and use is not True):
            return None
        caching = ctl.get("caching") if ctl is not None else None
        return c, bool(c and c.get("no-cache")) or (caching is not None and caching is not True)

    async def _lookup_further(self, ex: Exchange, st: CacheState, shared: bool, body: dict[str, Any] | None,
                              team: str | None, namespace: str | None, max_age: float | None,
                              memo: tuple[str, str, str | None, str | None, bytes] | None) -> bytes | None:
        """The rest of :meth:`lookup` once this worker's memory had no usable entry: the shared level (when
        ``shared``: memory had none at all), then the semantic level."""
        stored = None
        if shared:
            assert self.shared is not None
            stored = await self.shared.get(st.key)
            if stored is not None and len(stored) > _STAMP.size:
                self._copy(st.key, stored)
        if stored is None or len(stored) <= _STAMP.size or (
                max_age is not None and self._clock() - _STAMP.unpack_from(stored)[0] > max_age):
            stored = None
            if self.semantic is not None and ex.route in SEMANTIC_ROUTES:
                if body is None:
                    body = calls.material(ex)
                if body is not None:
                    stored = await self._semantic_lookup(ex, st, body, team, namespace, max_age)
            if stored is None:
                self._missed()
                return None
        if memo is not None and st.similarity is None:  # an exact hit
            self._remember(memo, st.key)
        st.hit = True
        return stored

    def _remember(self, memo: tuple[str, str, str | None, str | None, bytes], key: str) -> None:
        """An exact hit's key, by its request's bytes (:attr:`_memo`, bounded by :data:`MEMO_BYTES`)."""
        size = len(memo[4]) + MEMO_ENTRY
        if self._memo_bytes + size > MEMO_BYTES:
            self._memo.clear()
            self._memo_bytes = 0
        self._memo[memo] = key
        self._memo_bytes += size

    async def _lookup_inputs(self, ex: Exchange, c: dict[str, Any], no_cache: bool, group_name: str,
                             team: str | None, namespace: str | None) -> bytes | None:
        """An embeddings request's lookup, input by input (``cache.embeddings``): the whole answer when every
        input was found; else None, the request rewritten to send only the inputs not found."""
        body = calls.material(ex)
        inputs = inputs_of(body) if body is not None else None
        if body is None or inputs is None:
            return None
        try:
            keys = input_keys(ex.route, group_name, body, inputs, namespace=namespace, team=team)
        except orjson.JSONEncodeError:  # nested deeper than orjson encodes: not cached
            return None
        parts = Parts(keys, inputs)
        st = ex.cache = CacheState(parts.header_key(), c.get("ttl"), bool(c.get("no-store")))
        st.parts = parts
        if namespace != self.settings.namespace:
            st.namespace = namespace
        if c.get("no-cache") or no_cache:
            parts.missing = list(range(len(keys)))
            self._missed()
            return None
        values = [self.memory.get(k) for k in keys]
        if self.shared is not None and None in values:
            want = [i for i, v in enumerate(values) if v is None]
            for i, v in zip(want, await self.shared.get_many([keys[i] for i in want]), strict=True):
                if v is not None and len(v) > _STAMP.size:
                    values[i] = v
                    self._copy(keys[i], v)
        max_age = c.get("s-max-age", c.get("s-maxage"))
        now = self._clock() if max_age is not None else 0.0
        for i, v in enumerate(values):
            entry = None
            if v is not None and len(v) > _STAMP.size and (
                    max_age is None or now - _STAMP.unpack_from(v)[0] <= max_age):
                entry = split_entry(v[_STAMP.size:])
            if entry is None:
                parts.missing.append(i)
            else:
                parts.found_tokens += entry[0]
                parts.found[i] = entry[1]
        if not parts.missing:
            st.hit = True
            return _STAMP.pack(self._clock()) + parts.answer(ex.model)
        self._missed()
        if len(parts.missing) < len(keys):  # only the inputs not found go upstream
            raw = orjson.dumps({**body, "input": [inputs[i] for i in parts.missing]})
            ex.body = raw
            ex.view = decode_view(ex.route, raw)
        return None

    async def _semantic_lookup(self, ex: Exchange, st: CacheState, body: dict[str, Any], team: str | None,
                               namespace: str | None, max_age: float | None) -> bytes | None:
        """The answer of the nearest stored prompt of this request's scope, or None (see the module docstring)."""
        sem = self.semantic
        assert sem is not None
        text = prompt_text(ex.route, body)
        if text is None:
            return None
        group = ex.group
        st.scope = semantic_scope(ex.route, group.name if group is not None else ex.model, body,
                                  namespace=namespace, team=team, tenant=self._tenant(ex))
        vector = st.vector = await sem.embedder.embed(ex.rt, text)
        if vector is None:
            return None
        match = await sem.index.search(st.scope, vector, sem.threshold)
        if match is None:
            return None
        stored = match.value
        if stored is None:
            stored = self.memory.get(match.key)
            if stored is None and self.shared is not None:
                stored = await self.shared.get(match.key)
                if stored is not None and len(stored) > _STAMP.size:
                    self._copy(match.key, stored)
        if stored is None or len(stored) <= _STAMP.size:
            if isinstance(sem.index, LocalIndex):
                sem.index.delete(st.scope, match.key)  # its exact entry is gone (evicted, deleted, flushed)
            return None
        if max_age is not None and self._clock() - _STAMP.unpack_from(stored)[0] > max_age:
            return None
        st.key, st.similarity = match.key, match.similarity
        return stored

    def _tenant(self, ex: Exchange) -> str | None:
        """Whose prompts a semantic match may come from (LiteLLM's semantic-cache tenant scope): the caller's key
        (so its team and organization), with ``semantic_cache_scope: end_user`` also its end user; None with
        ``scope: global`` (every caller's, the operator's explicit choice)."""
        s = self.settings
        if s.scope == "global":
            return None
        who = ex.who
        tenant = (who.key_hash or "") if who is not None else ""
        if s.semantic_end_user:
            over = ex.over
            end_user = (over.end_user if over is not None else None) or getattr(ex.view, "user", None)
            if isinstance(end_user, str) and end_user:
                tenant += "\0" + end_user
        return tenant

    def flush_semantic(self) -> None:
        """Forget the semantic level's entries held by this worker (``/cache/flushall``)."""
        if self.semantic is not None:
            self.semantic.index.clear()

    async def aclose(self) -> None:
        """Close the Redis level and the semantic level (their connections, tasks and own transport)."""
        if self.semantic is not None:
            await self.semantic.aclose()
        if self.shared is not None:
            await self.shared.aclose()

    def store(self, ex: Exchange, answer: bytes, ctype: bytes | None = None) -> None:
        """Keep a miss's complete answer (never awaits); ``ctype``: a unary answer's content type (kept
        with a transcription's)."""
        if self._fast is None or not self._fast.store(ex, answer):
            self._store(ex, answer, ctype)

    def _store(self, ex: Exchange, answer: bytes, ctype: bytes | None) -> None:
        st = ex.cache
        if st is None or st.hit or st.no_store:
            return
        ttl = st.ttl
        if st.header_ttl and (asked := _header_ttl(ex)) is not None:
            ttl = asked
        if ttl == 0:
            return
        if st.parts is not None:  # an embeddings answer: an entry per input sent upstream
            stamp = _STAMP.pack(self._clock())
            entries = st.parts.entries(answer)
            memory_ttl = ttl if ttl is not None else self.settings.memory_ttl
            for i, (key, entry) in enumerate(entries, 1):
                value = stamp + entry
                self.memory.set(key, value, memory_ttl)
                self._put_redis(st, key, value, ttl, i == len(entries))
            return
        route = ex.route
        if route in calls.COUNTED and not calls.has_output(route, answer):
            return  # an answer that says nothing (LiteLLM's is_response_without_output): asked again, not replayed
        value = _STAMP.pack(self._clock()) + (answer if route != "transcriptions" else
                                             calls.stored_value(ex, answer, ctype))
        self.memory.set(st.key, value, ttl)  # (None: the memory level's default, the configured memory TTL)
        if self.shared is not None:
            self._put_redis(st, st.key, value, ttl, True)
        if st.vector is not None and self.semantic is not None:
            s = self.settings
            self.semantic.index.add(st.scope, st.key, st.vector, ttl if ttl is not None else (
                s.redis_ttl if self.shared is not None else s.memory_ttl), value)

    def _put_redis(self, st: CacheState, key: str, value: bytes, ttl: float | None, last: bool) -> None:
        """One entry queued for the shared level; with ``last`` (Redis), the request's namespace marked too."""
        shared = self.shared
        if shared is not None:
            redis_ttl = ttl if ttl is not None else self.settings.redis_ttl
            shared.set(key, value, redis_ttl)
            redis = self.redis
            if last and st.namespace is not None and redis is not None:  # renewed with every entry (it outlives
                from relaygate.cache.redis import namespace_marker  # the namespace's last one); S3 lists instead
                redis.set(namespace_marker(self.settings.namespace, st.namespace), b"1", redis_ttl)

    def store_stream(self, ex: Exchange, frames: bytes) -> None:
        """Feed a stream's outgoing frames to its assembler (a miss's chat, Messages or Responses stream)."""
        st = ex.cache
        asm = st.assembler if st is not None else None
        if asm is not None:
            asm.feed_frames(frames)

    def end_stream(self, ex: Exchange, ok: bool) -> None:
        """A miss's stream ended: store its answer when it ended normally and assembled completely."""
        st = ex.cache
        asm = st.assembler if st is not None else None
        if asm is not None and ok and asm.complete:
            self.store(ex, asm.answer(int(self._clock())))

    async def serve(self, ex: Exchange, send: Any, stored: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """Send a hit (unary or stream) and fill the exchange's usage; the caller completes it. ``headers``: the
        pipeline's for it (``Pipeline.hit_headers``: ``x-litellm-version``, the key's), extended here."""
        if self._fast is not None and (body := self._fast.serve(ex, stored, headers)) is not GENERAL:
            await send_body(send, 200, body, headers)  # a unary chat or completions hit, served by compiled code
            return
        st = ex.cache
        assert st is not None
        self._hits += 1
        self._events[CACHE_HIT] += 1
        answer, ctype = calls.answer_of(ex, stored[_STAMP.size:])
        created = int(self._clock())
        rid = calls.hit_id(ex)
        usage = tokens.extract_usage(answer)
        if usage:
            ex.prompt_tokens, ex.completion_tokens = usage[0], usage[1]
        ex.cost = 0.0
        obs = ex.obs
        if obs is not None:  # exporters show the answer served (a stream hit's, in its unary shape)
            obs.output = answer
            obs.assembler = None
        headers += ((b"x-litellm-call-id", ex.call_id), (b"x-litellm-cache-key", st.key.encode()),
                    (b"x-litellm-response-cost", b"0.0"),
                    (b"x-litellm-model-group", (ex.group.name if ex.group is not None else ex.model).encode()))
        if st.similarity is not None:
            headers.append((b"x-litellm-semantic-similarity", repr(round(st.similarity, 6)).encode()))
        if not ex.stream:
            body = calls.unary(ex, answer, rid, created)
            _durations(headers, ex)
            headers.append((b"content-type", ctype))
            await send_body(send, 200, body, headers)
            return
        so = getattr(ex.view, "stream_options", None)
        include_usage = so is not None and so.include_usage
        body = b"".join(calls.stream(ex, answer, rid, created, include_usage))
        _durations(headers, ex)
        headers.extend(_SSE)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _durations(headers: list[tuple[bytes, bytes]], ex: Exchange) -> None:
    """A hit's ``x-litellm-response-duration-ms`` and ``-overhead-duration-ms`` (as ``Pipeline.headers``)."""
    total = time.perf_counter() - ex.t0
    overhead = total - ex.wait
    headers.append((b"x-litellm-response-duration-ms", b"%.3f" % (total * 1000.0)))
    headers.append((b"x-litellm-overhead-duration-ms", b"%.3f" % ((overhead if overhead > 0.0 else 0.0) * 1000.0)))


def make_cache(settings: CacheSettings, metrics: Any = None, transport: Any = None) -> ResponseCache:
    """A worker's cache for ``settings``: memory, the Redis level when ``type`` is ``redis`` or
    ``redis-semantic``, and the semantic level when one is configured (its embedding calls go through
    ``transport``, the pipeline's; without one the embedder makes its own on first use)."""
    redis = None
    shared: BucketCache | None = None
    if settings.type in REDIS_TYPES:
        from relaygate.cache.redis import RedisCache

        redis = RedisCache.from_settings(settings)  # one server, a sentinel-managed master or a cluster
    elif settings.type == "s3":
        from relaygate.cache.s3 import S3Cache

        shared = S3Cache.from_settings(settings)
    elif settings.type == "gcs":
        from relaygate.cache.gcs import GcsCache

        shared = GcsCache.from_settings(settings)
    elif settings.type == "azure-blob":
        from relaygate.cache.azure_blob import AzureBlobCache

        shared = AzureBlobCache.from_settings(settings)
    return ResponseCache(settings, redis, metrics=metrics, semantic=_make_semantic(settings, redis, metrics,
                                                                                   transport), shared=shared)


def _make_semantic(settings: CacheSettings, redis: RedisCache | None, metrics: Any,
                   transport: Any) -> Semantic | None:
    if settings.semantic is None or settings.embedding_model is None:
        return None
    index: VectorIndex
    if settings.semantic == "redis" and redis is not None:
        from relaygate.cache.vectors_redis import RedisVectors

        index = RedisVectors(redis, settings.namespace, max_entries=settings.semantic_max_entries or 1000)
    elif settings.semantic == "qdrant":
        from relaygate.cache.vectors_qdrant import QdrantVectors

        index = QdrantVectors(settings.qdrant_collection_name or "relaygate", url=settings.qdrant_api_base,
                              api_key=settings.qdrant_api_key, path=settings.qdrant_path,
                              quantization=settings.qdrant_quantization_config, timeout=settings.embedding_timeout,
                              metrics=metrics)
    else:
        index = LocalIndex(settings.semantic_max_entries or 10_000, max(settings.max_bytes // 4, 1))
    log.info("response cache: semantic level %s (embedding model %r, similarity_threshold %g)",
             type(index).__name__, settings.embedding_model, settings.similarity_threshold)
    embedder = Embedder(settings.embedding_model, settings.embedding_timeout, transport=transport, metrics=metrics,
                        max_input_tokens=settings.embedding_max_input_tokens)
    return Semantic(embedder, index, settings.similarity_threshold)


__all__ = ["CACHE_HIT", "CACHE_MISS", "CacheState", "ResponseCache", "make_cache"]
