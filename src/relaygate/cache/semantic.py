"""The semantic level of the response cache: a prompt close enough in meaning to a stored one gets its answer.

LiteLLM's semantic caching (``redis-semantic``, ``qdrant-semantic``) embeds the request's prompt with an
embedding model from the ``model_list`` and serves the stored answer of the nearest stored prompt when their
cosine similarity reaches ``similarity_threshold``. relaygate does the same, in three places a vector can
live (``cache.vectors_*``): an **embedded index in the worker** (this module, :class:`LocalIndex`: the
default, no server), Redis (``vectors_redis``) and Qdrant (``vectors_qdrant``). What this module owns:

- **What is embedded** (:func:`prompt_text`): the text of a chat request's messages (string contents and
  ``text`` parts, one message a line, as LiteLLM joins the messages' contents) or a completion's prompt;
  nothing else. Embeddings requests are never matched semantically (their exact key only). The text is cut
  at :data:`MAX_TEXT` characters, so one huge prompt cannot make a huge embedding request, and then to
  ``semantic_cache_embedding_max_input_tokens`` tokens (else the embedding model's ``max_input_tokens``, when
  known), as LiteLLM cuts it (:func:`cut_to_tokens`), so the embedding model does not refuse it.
- **Where a match may come from** (:func:`semantic_scope`): a hash over exactly what the exact key is
  scoped by — the route, the model group, the team (``scope: team``), the namespace — the caller's key (as
  LiteLLM's semantic-cache tenant scope: a key belongs to one team and organization), with
  ``semantic_cache_scope: end_user`` its end user too (``ResponseCache._tenant``; ``scope: global`` shares
  every caller's), and, unlike LiteLLM, every other answer-changing field of the request (tools, sampling
  parameters, response format ... as ``cache.key`` keeps them, less the prompt). A semantic hit never
  crosses keys, models or request shapes: only the wording of the prompt may differ.
- **The embedding call** (:class:`Embedder`): an ``embeddings`` exchange for the configured model group,
  run by the gateway's own router with the pipeline's attempt function, so the deployment's keys, retries,
  cooldowns and rate limits apply as to any request, bounded by ``embedding_timeout``. Any failure (an
  unknown group, an upstream error, a timeout, an answer without a vector) is a **miss**: counted
  (``failures``, the ``cache_semantic_error`` event), logged once per outage (again after a success), never
  the request's error. The call's usage settles its lease; its cost is not a spend record of its own.
- **Vectors**: normalised float32 (``array('f')``); similarity is their dot product. An entry maps a scope
  and a vector to the exact entry's key; the answer itself is stored once, under that key, in the exact
  levels (Qdrant keeps it in the point's payload instead, being the shared level there).

:class:`LocalIndex` is per worker, bounded in entries and bytes (least recently stored first out), and
expires its entries with the exact entries' TTL. A search scans the scope's vectors: with numpy importable
(it is when ``qdrant-client`` or the test extra is installed) as one matrix-vector product over a matrix
rebuilt after changes (~0.2 µs per 384-dimension row), else in pure Python (~30 µs per row on Python 3.11,
less with 3.12's ``math.sumprod``). Either way a search costs
O(entries in the scope x dimensions), which the bound keeps small; the embedding call dominates a lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import operator
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import orjson

from relaygate.cache.key import canonical
from relaygate.catalog import default_catalog
from relaygate.core.tokens import estimate_tokens

log = logging.getLogger("relaygate.cache")

MAX_TEXT = 32_768
"""Characters of prompt text embedded at most."""
SEMANTIC_ROUTES = frozenset({"chat", "completions"})
ENTRY_OVERHEAD = 200
"""Bytes counted per index entry beyond its vector (key, scope, bookkeeping), roughly."""


class Match(NamedTuple):
    """A stored prompt near enough: its exact key, the similarity and, where the index keeps it, the answer."""

    key: str
    similarity: float
    value: bytes | None = None


class VectorIndex(Protocol):
    """Where vectors live: the embedded index, Redis or Qdrant."""

    async def search(self, scope: str, vector: array[float], threshold: float) -> Match | None: ...

    def add(self, scope: str, key: str, vector: array[float], ttl: float, value: bytes) -> None: ...

    def clear(self) -> None: ...

    async def aclose(self) -> None: ...


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content
                        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def prompt_text(route: str, body: dict[str, Any]) -> str | None:
    """The text to embed for a request (see the module docstring); None when there is none."""
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        text = "\n".join(t for t in (_text_of(m.get("content")) for m in messages if isinstance(m, dict)) if t)
    elif route == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            prompt = "\n".join(prompt)
        text = prompt if isinstance(prompt, str) else ""
    else:
        return None
    text = text.strip()
    return text[:MAX_TEXT] if text else None


def semantic_scope(route: str, model_group: str, body: dict[str, Any], *, namespace: str | None = None,
                   team: str | None = None, tenant: str | None = None) -> str:
    """The key space a semantic match may come from (see the module docstring), as 32 hex characters;
    ``tenant``: the caller's key (and end user) whose prompts alone may match (None: every caller's)."""
    rest = {k: v for k, v in body.items() if k not in ("messages", "prompt")}
    head = f"{route}\0{model_group}\0{'' if team is None else 'team' + chr(0) + team}\0{namespace or ''}\0"
    if tenant is not None:
        head += f"tenant\0{tenant}\0"
    return hashlib.sha256(head.encode() + canonical(rest)).hexdigest()[:32]


def normalised(values: Any) -> array[float] | None:
    """A float32 unit vector of ``values`` (a list of numbers); None when it is not one."""
    if not isinstance(values, list) or not values or len(values) > 65_536:
        return None
    try:
        vec = array("f", values)
    except TypeError:
        return None
    norm = math.sqrt(math.fsum(v * v for v in vec))
    if not norm or not math.isfinite(norm):
        return None
    return array("f", [v / norm for v in vec])


_sumprod: Callable[[array[float], array[float]], float] = getattr(
    math, "sumprod", lambda a, b: sum(map(operator.mul, a, b)))
"""``math.sumprod`` (Python 3.12+), else the same sum in a ``map`` (~30 µs for 384 dimensions on 3.11)."""


def dot(a: array[float], b: array[float]) -> float:
    """The cosine similarity of two unit vectors (0 when their sizes differ)."""
    if len(a) != len(b):
        return 0.0
    return float(_sumprod(a, b))


# -- the embedding call ------------------------------------------------------------------------------------

def cut_to_tokens(text: str, limit: int) -> str:
    """``text`` cut to its longest beginning of at most ``limit`` tokens by the gateway's estimate
    (``core.tokens.estimate_tokens``: LiteLLM cuts with the model's own tokenizer, which relaygate does not ship;
    the estimate errs on the side of more tokens for prose)."""
    if estimate_tokens(text) <= limit:
        return text
    lo, hi = 0, min(len(text), limit * 8)  # at most ~8 characters a token
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


class Embedder:
    """Embeds prompt text with a model group of the ``model_list``, through the gateway's router."""

    def __init__(self, model: str, timeout: float, *, transport: Any = None, metrics: Any = None,
                 max_input_tokens: int | None = None) -> None:
        self.model = model
        self.timeout = timeout
        self.max_input_tokens = max_input_tokens
        """The configured cut (``semantic_cache_embedding_max_input_tokens``); None: the model's own window."""
        self._windows: dict[Any, int | None] = {}
        """The smallest ``max_input_tokens`` of each group's deployments (None: unknown), per group object."""
        self.transport = transport
        """The upstream transport (the pipeline's; one of its own is made on first use when none is given)."""
        self._own_transport = False
        self._count = metrics.count if metrics is not None else None
        self.failures = 0
        self.calls = 0
        self._failing = False

    def _window(self, group: Any) -> int | None:
        """The smallest known ``max_input_tokens`` of ``group``'s deployments (catalog and ``model_info``)."""
        windows = self._windows
        if group in windows:
            return windows[group]
        catalog = default_catalog()
        known = [e.max_input_tokens for t in group.targets
                 if (e := catalog.for_deployment(t.dep)) is not None and e.max_input_tokens]
        if len(windows) >= 64:
            windows.clear()
        found = windows[group] = min(known) if known else None
        return found

    def _failed(self, why: str) -> None:
        self.failures += 1
        if self._count is not None:
            self._count("cache_semantic_error")
        if not self._failing:
            self._failing = True
            log.warning("semantic cache: embedding model %r failed (%s); requests are cache misses until it "
                        "answers", self.model, why)

    async def embed(self, rt: Any, text: str) -> array[float] | None:
        """The unit vector of ``text``, or None (a miss; see the module docstring)."""
        from relaygate.core.errors import GatewayError
        from relaygate.core.views import decode_view
        from relaygate.pipeline.exchange import Exchange
        from relaygate.pipeline.frontend import unary
        from relaygate.route_context import RouteContext

        self.calls += 1
        if self.transport is None:
            from relaygate.upstream.factory import make_transport

            self.transport, self._own_transport = make_transport(rt.config), True
        try:
            group = rt.router.resolve(self.model, "/embeddings")
            limit = self.max_input_tokens if self.max_input_tokens is not None else self._window(group)
            if limit is not None:
                text = cut_to_tokens(text, limit)
            body = orjson.dumps({"model": self.model, "input": [text]})
            ex = Exchange("embeddings", time.perf_counter(), rt)
            ex.body, ex.model, ex.group = body, self.model, group
            ex.view = decode_view("embeddings", body)
            ex.ctx = ctx = RouteContext(timeout=self.timeout)
            (data, _headers), lease = await asyncio.wait_for(rt.router.run(group, ctx, unary(self.transport, ex)),
                                                             self.timeout)
        except GatewayError as exc:
            self._failed(f"{exc.status} {exc.message[:200]}")
            return None
        except TimeoutError:
            self._failed(f"no answer within {self.timeout:g} s")
            return None
        except (OSError, ValueError) as exc:
            self._failed(type(exc).__name__)
            return None
        try:
            answer = orjson.loads(data)
            usage = answer.get("usage") or {}
            used = int(usage.get("total_tokens") or 0)
            lease.finish(True, used, prompt=used)  # an embedding's tokens are all input
            vec = normalised(answer["data"][0]["embedding"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError):
            vec = None
        if vec is None:
            self._failed("an answer without an embedding vector")
            return None
        self._failing = False
        return vec

    async def aclose(self) -> None:
        if self._own_transport and self.transport is not None:
            await self.transport.aclose()
            self.transport = None


# -- the embedded index -----------------------------------------------------------------------------------

class _Scope:
    __slots__ = ("entries", "matrix", "keys")

    def __init__(self) -> None:
        self.entries: dict[str, tuple[array[float], float]] = {}
        self.matrix: Any = None
        self.keys: list[str] = []


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


class LocalIndex:
    """The embedded in-process vector index (see the module docstring)."""

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 16 * 1024 * 1024, *,
                 clock: Callable[[], float] = time.monotonic, use_numpy: bool = True) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._np = _numpy() if use_numpy else None
        self._scopes: dict[str, _Scope] = {}
        self._order: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.used = 0

    def __len__(self) -> int:
        return len(self._order)

    def add(self, scope: str, key: str, vector: array[float], ttl: float, value: bytes = b"") -> None:
        if ttl <= 0:
            return
        size = len(vector) * 4 + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self._drop(scope, key)
        while self._order and (len(self._order) >= self.max_entries or self.used + size > self.max_bytes):
            (s, k), _ = self._order.popitem(last=False)
            self._drop(s, k, ordered=False)
        sc = self._scopes.get(scope)
        if sc is None:
            sc = self._scopes[scope] = _Scope()
        sc.entries[key] = (vector, self._clock() + ttl)
        sc.matrix = None
        self._order[(scope, key)] = size
        self.used += size

    def _drop(self, scope: str, key: str, ordered: bool = True) -> None:
        size = self._order.pop((scope, key), None) if ordered else len(self._scopes[scope].entries[key][0]) * 4 \
            + ENTRY_OVERHEAD
        if size is None:
            return
        self.used -= size
        sc = self._scopes[scope]
        del sc.entries[key]
        sc.matrix = None
        if not sc.entries:
            del self._scopes[scope]

    def delete(self, scope: str, key: str) -> None:
        self._drop(scope, key)

    async def search(self, scope: str, vector: array[float], threshold: float) -> Match | None:
        return self.nearest(scope, vector, threshold)

    def nearest(self, scope: str, vector: array[float], threshold: float) -> Match | None:
        """The nearest live entry of ``scope`` at ``threshold`` or above (expired entries met are dropped)."""
        sc = self._scopes.get(scope)
        if sc is None:
            return None
        now = self._clock()
        dead = [k for k, (_, exp) in sc.entries.items() if exp <= now]
        for k in dead:
            self._drop(scope, k)
        if dead and scope not in self._scopes:
            return None
        np = self._np
        best_key, best = "", -2.0
        if np is not None:
            if sc.matrix is None or len(sc.keys) != len(sc.entries):
                sc.keys = list(sc.entries)
                rows = [sc.entries[k][0] for k in sc.keys]
                if any(len(r) != len(vector) for r in rows):
                    return self._scan(sc, vector, threshold)
                sc.matrix = np.frombuffer(b"".join(r.tobytes() for r in rows), dtype=np.float32).reshape(
                    len(rows), len(vector))
            if sc.matrix.shape[1] != len(vector):
                return None
            sims = sc.matrix @ np.frombuffer(vector.tobytes(), dtype=np.float32)
            i = int(sims.argmax())
            best_key, best = sc.keys[i], float(sims[i])
        else:
            return self._scan(sc, vector, threshold)
        return Match(best_key, best) if best >= threshold else None

    @staticmethod
    def _scan(sc: _Scope, vector: array[float], threshold: float) -> Match | None:
        best_key, best = "", -2.0
        for k, (v, _) in sc.entries.items():
            s = dot(v, vector)
            if s > best:
                best_key, best = k, s
        return Match(best_key, best) if best >= threshold else None

    def clear(self) -> None:
        self._scopes.clear()
        self._order.clear()
        self.used = 0

    async def aclose(self) -> None:
        self.clear()


class Semantic:
    """The semantic level of one worker's cache: the embedder, the index and the threshold."""

    __slots__ = ("embedder", "index", "threshold")

    def __init__(self, embedder: Embedder, index: VectorIndex, threshold: float) -> None:
        self.embedder = embedder
        self.index = index
        self.threshold = threshold

    async def aclose(self) -> None:
        await self.index.aclose()
        await self.embedder.aclose()


__all__ = ["MAX_TEXT", "SEMANTIC_ROUTES", "Embedder", "LocalIndex", "Match", "Semantic", "VectorIndex", "cut_to_tokens",
           "dot", "normalised", "prompt_text", "semantic_scope"]
