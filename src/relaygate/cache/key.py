"""The response cache's key: a stable hash over the model group and the request fields that change the answer.

Two requests get the same key exactly when an upstream would give them the same answer, as far as the
request can tell:

- **Fields hashed**: every top-level field of the body except those in :data:`IGNORED` — so a field OpenAI
  adds tomorrow that changes the answer (a new sampling parameter, a new tool kind) splits the key instead of
  serving one request's answer to another. LiteLLM hashes an allow-list of known parameters instead
  (``Cache._get_relevant_args_to_use_for_cache_key``), so an unknown answer-changing field does not split
  its key; that is the wrong way round for a cache and relaygate does not copy it.
- **Fields not hashed** (:data:`IGNORED`): who asks and how the answer is framed, never what it says —
  ``user``, ``metadata``, ``stream`` and ``stream_options`` (a stream hit is rendered from the stored answer),
  ``store``, ``service_tier``, OpenAI's prompt-cache hints, LiteLLM's control fields (retries, timeouts,
  fallbacks, tags, the per-request ``cache`` object itself ...) and the model name in the body (the model
  *group* the router resolved is hashed instead, so an alias and its target share entries).
- **Canonical form**: the kept fields are re-encoded with sorted keys at every depth (``orjson``
  ``OPT_SORT_KEYS``) and top-level numbers normalised (``1`` and ``1.0`` are the same temperature), so key
  order and whitespace in the client's JSON never split a key (``1.0`` inside a tool's schema still does:
  rare, and only a miss).
- **Scope**: the route (a chat answer is never served to ``/v1/completions``) and, when the cache is scoped
  per team, the caller's team are hashed in front; the namespace (config or per request) prefixes the key:
  ``<namespace>:<sha256 hex>``, LiteLLM's Redis key shape (the bare hex without one).
Sans IO. A request whose key material is its JSON body alone (chat, completions, rerank) is keyed from the
body's bytes (:func:`body_key`): ``relaygate.core._cachekey_c`` writes the canonical form in one pass over
them, byte for byte what the pure path makes (``orjson.loads`` of the body, then :func:`canonical`). A float
written in plain decimals with at most 15 significant digits (``0.7``) it writes itself; any other float goes
to the pure module's formatter (:func:`_number`); a key with an escape, a duplicate key, an integer of more than
18 digits, nesting past 200 levels or a body orjson refuses sends the whole body to the pure path, so the two
can only agree (``tests/cache/test_key_twins.py``). In the serving worker (``bench.scenarios_cache`` misses,
timed per call) the pure path's decode, sorted encode and hash took ~7.2 µs of a 1 KB chat body, the compiled
pass and the hash ~3.9. ``relaygate.core._ext.LOADED["cachekey"]`` says which path runs.
The digest is ``relaygate.core.sha``'s SHA-256 (the CPU's SHA instructions where the extension is built and
the CPU has them, else CPython's own rather than OpenSSL's: see ``core._sha_py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson

from relaygate.core import _ext
from relaygate.core.sha import sha256, sha256_hex
from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL

IGNORED: frozenset[str] = frozenset({
    "model", "user", "metadata", "stream", "stream_options", "store", "service_tier", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "extra_headers",
    *CONTROL_KEYS, *TYPED_CONTROL,
    "cache_control_headers", "no-cache", "no-store", "s-maxage", "use-cache", "namespace",
})
"""Top-level request fields that never change the answer (see the module docstring)."""

_SORTED = orjson.OPT_SORT_KEYS


def _norm(value: Any) -> Any:
    """An integral float becomes an int (``1.0`` -> ``1``)."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def canonical(body: dict[str, Any]) -> bytes:
    """The kept fields of a decoded request body, as canonical JSON bytes (``orjson.JSONEncodeError`` for a
    body nested deeper than orjson encodes, 255 levels: such a request is not cached). Numbers are normalised at the top
    level, where the sampling parameters are (a recursive walk cost ~8 µs of a 1 KB body's ~12)."""
    kept = {k: (_norm(v) if type(v) is float else v) for k, v in body.items() if k not in IGNORED}
    return orjson.dumps(kept, option=_SORTED)


def _canonical_body_py(body: bytes) -> bytes | None:
    """The pure path of :func:`canonical_body`."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    try:
        return canonical(decoded)
    except orjson.JSONEncodeError:  # nested deeper than orjson encodes (255): not cached, never an error
        return None


def _number(token: bytes, top: bool) -> bytes | None:
    """A float token's canonical bytes, as :func:`canonical` writes the float orjson decodes it to (at the top
    level, normalised); None for one orjson refuses (infinite)."""
    value = float(token)
    if value - value != 0.0:  # inf or nan
        return None
    return orjson.dumps(_norm(value) if top else value)


COMPONENT = "cachekey"


def _load() -> Callable[[bytes], bytes | None]:
    mod = _ext.compiled(COMPONENT)
    if mod is None:
        return _canonical_body_py
    mod.configure([name.encode() for name in IGNORED], _number, _canonical_body_py)
    return cast("Callable[[bytes], bytes | None]", mod.canonical_body)


canonical_body: Callable[[bytes], bytes | None] = _load()
"""``canonical_body(body)``: :func:`canonical` of the decoded JSON body, from its bytes; None when the body is not
an object orjson decodes and encodes (such a request is not cached). Compiled when the extension is built (see
the module docstring)."""


def _head(route: str, model_group: str, team: str | None) -> bytes:
    return (f"{route}\0{model_group}\0" if team is None else f"{route}\0{model_group}\0team\0{team}\0").encode()


_HEADS: dict[tuple[str, str, str | None], bytes] = {}
"""(route, model group, team) -> :func:`_head`, for :func:`body_key` (every request's; emptied past
:data:`HEADS_MAX`)."""
HEADS_MAX = 4096


def body_key(route: str, model_group: str, body: bytes, namespace: str | None = None,
             team: str | None = None) -> str | None:
    """:func:`cache_key` of the JSON ``body`` given as bytes; None: not cached (see :data:`canonical_body`)."""
    canon = canonical_body(body)
    if canon is None:
        return None
    head = _HEADS.get(scope := (route, model_group, team))
    if head is None:
        if len(_HEADS) >= HEADS_MAX:
            _HEADS.clear()
        head = _HEADS[scope] = _head(route, model_group, team)
    digest = sha256_hex(canon, head)
    return f"{namespace}:{digest}" if namespace else digest


def _key(canon: bytes, route: str, model_group: str, namespace: str | None, team: str | None) -> str:
    """The key of a canonical body: the SHA-256 hex of the scope and the body, behind the namespace."""
    digest = sha256_hex(canon, _head(route, model_group, team))
    return f"{namespace}:{digest}" if namespace else digest


def cache_key(route: str, model_group: str, body: dict[str, Any], *, namespace: str | None = None,
              team: str | None = None) -> str:
    """The cache key of a request to ``route`` for ``model_group`` (see the module docstring)."""
    return _key(canonical(body), route, model_group, namespace, team)


def input_keys(route: str, model_group: str, body: dict[str, Any], inputs: list[Any], *,
               namespace: str | None = None, team: str | None = None) -> list[str]:
    """The key of each of an embeddings request's ``inputs`` (``cache.embeddings``): the request's own key
    with ``input`` replaced by that one input, so an input's entry serves any later request that asks for it
    with the same other fields, alone or in a list (LiteLLM caches embeddings per input, likewise). The
    other fields are hashed once and the digest copied per input."""
    rest = canonical({k: v for k, v in body.items() if k != "input"})
    base = sha256(_head(route, model_group, team) + rest + b"\0input\0")
    keys = []
    for item in inputs:
        h = base.copy()
        h.update(orjson.dumps(item, option=_SORTED))
        keys.append(f"{namespace}:{h.hexdigest()}" if namespace else h.hexdigest())
    return keys


__all__ = ["COMPONENT", "IGNORED", "body_key", "cache_key", "canonical", "canonical_body", "input_keys"]
