"""LiteLLM's cache configuration (``litellm_settings.cache`` / ``cache_params``), read and checked once.

What it owns: turning the YAML into a :class:`CacheSettings` the runtime builds its cache from, with a
:class:`CacheConfigError` naming the field for anything invalid (the loader turns it into a ``ConfigError``
with the file), and one warning per
option relaygate reads but does not act on. LiteLLM's spellings are kept: ``type`` (``local``, ``redis``;
the semantic and object-store types are refused with a clear error until they exist, rather than silently
serving without a cache), ``host`` / ``port`` / ``password`` / ``url`` (or ``REDIS_URL`` / ``REDIS_HOST``
... from the environment, as LiteLLM), ``namespace``, ``ttl``, ``default_in_memory_ttl``,
``default_in_redis_ttl``, ``supported_call_types`` (LiteLLM's call-type names, sync or async spelling),
``mode`` (``default_on`` / ``default_off``). relaygate adds ``max_bytes`` (the per-worker memory budget:
LiteLLM's ``max_size_in_memory`` counts entries, whatever their size) and ``scope`` (``team``, the default:
keys of different teams never share entries; ``global``: every caller shares them, as LiteLLM does).

Why ``team`` by default: a shared cache answers one tenant's prompt with what another tenant's identical
prompt produced, which leaks nothing only when the prompt carries no tenant data; a gateway cannot know
that, so sharing across teams is an explicit choice (``scope: global``). Keys without a team share the
entries of the no-team scope.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

CALL_TYPES: dict[str, str] = {
    "completion": "chat", "acompletion": "chat",
    "text_completion": "completions", "atext_completion": "completions",
    "embedding": "embeddings", "aembedding": "embeddings",
}
"""LiteLLM's call types -> the routes relaygate caches. LiteLLM's others (``transcription``, ``rerank``,
``aresponses``, ``anthropic_messages``) are accepted in the list and not cached yet (one warning)."""
_KNOWN_LATER = frozenset({"transcription", "atranscription", "rerank", "arerank", "responses", "aresponses",
                          "anthropic_messages", "aanthropic_messages", "speech", "aspeech", "image_generation",
                          "aimage_generation", "moderation", "amoderation"})
_TYPES = frozenset({"local", "redis"})
_LATER_TYPES = frozenset({"redis-semantic", "qdrant-semantic", "valkey-semantic", "s3", "gcs", "disk",
                          "azure-blob"})
_IGNORED = frozenset({"max_connections", "socket_timeout", "ssl", "redis_startup_nodes", "service_name",
                      "sentinel_nodes", "max_size_in_memory", "similarity_threshold",
                      "redis_semantic_cache_embedding_model", "qdrant_semantic_cache_embedding_model"})


class CacheConfigError(ValueError):
    """An invalid cache option: ``field`` is its path from the config's top (the loader adds the file)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class CacheSettings(msgspec.Struct, kw_only=True, frozen=True):
    type: str = "local"
    namespace: str | None = None
    ttl: float | None = None
    """Seconds an answer stays in every level (LiteLLM: no default; relaygate's default is 600 s in memory
    and 3600 s in Redis when neither this nor the per-level TTL is set)."""
    default_in_memory_ttl: float | None = None
    default_in_redis_ttl: float | None = None
    routes: frozenset[str] = frozenset({"chat", "completions", "embeddings"})
    default_off: bool = False
    """``mode: default_off``: only requests that send ``cache: {"use-cache": true}`` use the cache."""
    max_bytes: int = 64 * 1024 * 1024
    scope: str = "team"
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None

    @property
    def memory_ttl(self) -> float:
        return self.default_in_memory_ttl or self.ttl or 600.0

    @property
    def redis_ttl(self) -> float:
        return self.default_in_redis_ttl or self.ttl or 3600.0


def _number(params: dict[str, Any], name: str) -> float | None:
    v = params.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise CacheConfigError(f"litellm_settings.cache_params.{name}", "expected a positive number of seconds")
    return float(v)


def from_litellm(cache: Any, params: Any, warnings: list[str],
                 environ: dict[str, str] | None = None) -> CacheSettings | None:
    """The cache settings of ``litellm_settings.cache`` / ``cache_params``; None when caching is off."""
    if cache is None or cache is False:
        return None
    if cache is not True:
        raise CacheConfigError("litellm_settings.cache", "expected true or false")
    env = os.environ if environ is None else environ
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CacheConfigError("litellm_settings.cache_params", "expected a mapping")
    kind = params.get("type", "local")
    if kind in _LATER_TYPES:
        raise CacheConfigError("litellm_settings.cache_params.type",
                          f"{kind!r} caches are not supported yet (use 'local' or 'redis')")
    if kind not in _TYPES:
        raise CacheConfigError("litellm_settings.cache_params.type", f"unknown cache type {kind!r}")
    routes: set[str] = set()
    call_types = params.get("supported_call_types")
    if call_types is None:
        routes = {"chat", "completions", "embeddings"}
    elif not isinstance(call_types, list) or not all(isinstance(c, str) for c in call_types):
        raise CacheConfigError("litellm_settings.cache_params.supported_call_types", "expected a list of names")
    else:
        for c in call_types:
            if c in CALL_TYPES:
                routes.add(CALL_TYPES[c])
            elif c in _KNOWN_LATER:
                warnings.append(f"litellm_settings.cache_params.supported_call_types: {c!r} is not cached yet")
            else:
                raise CacheConfigError("litellm_settings.cache_params.supported_call_types",
                                  f"unknown call type {c!r}")
    mode = params.get("mode", "default_on")
    if mode not in ("default_on", "default_off"):
        raise CacheConfigError("litellm_settings.cache_params.mode", "expected 'default_on' or 'default_off'")
    scope = params.get("scope", "team")
    if scope not in ("team", "global"):
        raise CacheConfigError("litellm_settings.cache_params.scope", "expected 'team' or 'global'")
    max_bytes = params.get("max_bytes", 64 * 1024 * 1024)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise CacheConfigError("litellm_settings.cache_params.max_bytes", "expected a positive integer")
    namespace = params.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise CacheConfigError("litellm_settings.cache_params.namespace", "expected a non-empty string")
    known = {"type", "namespace", "ttl", "default_in_memory_ttl", "default_in_redis_ttl", "supported_call_types",
             "mode", "scope", "max_bytes", "host", "port", "password", "url", "redis_url"}
    for k in params:
        if k in _IGNORED:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored")
        elif k not in known:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored (unknown)")
    url = params.get("url") or params.get("redis_url") or None
    host = params.get("host")
    port = params.get("port")
    password = params.get("password")
    if kind == "redis":
        if url is None and host is None:  # LiteLLM's environment fallbacks
            url = env.get("REDIS_URL") or None
            host = env.get("REDIS_HOST") or None
            port = port or env.get("REDIS_PORT") or None
            password = password or env.get("REDIS_PASSWORD") or None
        if url is None and host is None:
            raise CacheConfigError("litellm_settings.cache_params",
                              "type 'redis' needs host (and port) or url, or REDIS_HOST / REDIS_URL")
        try:
            port = int(port) if port is not None else None
        except (TypeError, ValueError):
            raise CacheConfigError("litellm_settings.cache_params.port", "expected a port number") from None
    return CacheSettings(
        type=kind, namespace=namespace, ttl=_number(params, "ttl"),
        default_in_memory_ttl=_number(params, "default_in_memory_ttl"),
        default_in_redis_ttl=_number(params, "default_in_redis_ttl"), routes=frozenset(routes),
        default_off=mode == "default_off", max_bytes=max_bytes, scope=scope,
        redis_url=url if isinstance(url, str) else None, redis_host=host if isinstance(host, str) else None,
        redis_port=port if isinstance(port, int) else None,
        redis_password=str(password) if password is not None else None)


__all__ = ["CALL_TYPES", "CacheConfigError", "CacheSettings", "from_litellm"]
