"""LiteLLM's cache configuration (``litellm_settings.cache`` / ``cache_params``), read and checked once.

What it owns: turning the YAML into a :class:`CacheSettings` the runtime builds its cache from, with a
:class:`CacheConfigError` naming the field for anything invalid (the loader turns it into a ``ConfigError``
with the file), and one warning per option relaygate reads but does not act on. LiteLLM's spellings are
kept: ``type`` (``local``, ``redis``, ``redis-semantic``, ``qdrant-semantic``, ``s3`` (``cache.s3``), ``gcs``
(``cache.gcs``), ``azure-blob`` (``cache.azure_blob``), ``valkey-semantic``; ``disk``, which LiteLLM removed,
is refused with a clear error rather than silently serving without a cache), ``host`` /
``port`` / ``password`` / ``url`` (or ``REDIS_URL`` / ``REDIS_HOST`` ... from the environment, as LiteLLM),
``namespace``, ``ttl``, ``default_in_memory_ttl``, ``default_in_redis_ttl``, ``supported_call_types``
(LiteLLM's call-type names, sync or async spelling), ``mode`` (``default_on`` / ``default_off``). Without a
``type``: ``redis`` when ``cache_params`` or the environment names a Redis (LiteLLM's default type), else
``local`` with a warning (:func:`_default_type`). relaygate adds ``max_bytes`` (the per-worker
memory budget: LiteLLM's ``max_size_in_memory`` counts entries, whatever their size) and ``scope``
(``team``, the default: keys of different teams never share entries; ``global``: every caller shares them,
as LiteLLM does).

**Redis Cluster and Sentinel** (LiteLLM's keys; ``limits.topology`` does the addressing):
``redis_startup_nodes: [{host, port}, ...]`` (or ``REDIS_CLUSTER_NODES`` as JSON) is a cluster;
``service_name`` + ``sentinel_nodes: [[host, port], ...]`` (or ``REDIS_SERVICE_NAME`` /
``REDIS_SENTINEL_NODES``), with ``sentinel_password`` (``REDIS_SENTINEL_PASSWORD``) for the sentinels, is a
sentinel-managed master; ``password`` / ``username`` (``REDIS_PASSWORD`` / ``REDIS_USERNAME``) authenticate
the cluster's nodes or the master, ``db`` selects a database (0 only on a cluster). A ``url`` wins over both,
a cluster over sentinels (LiteLLM's order). A malformed node list, or ``service_name`` without
``sentinel_nodes`` (or the reverse), is a config error.

**TLS** (``config.redis_tls``): a ``rediss://`` ``url``, or ``ssl: true`` with ``ssl_cert_reqs``,
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname`` (redis-py's arguments, which
LiteLLM passes on), else LiteLLM's ``REDIS_SSL`` / ``REDIS_SSL_*`` variables; for the cluster's nodes and
the sentinels' master too.

**Semantic caching** (``cache.semantic``): a stored answer also serves a prompt whose embedding is at least
``similarity_threshold`` (0..1, cosine) close to the stored prompt's, embedded by a model group of the
``model_list``. Where the vectors live:

- ``type: redis-semantic`` (LiteLLM's): in Redis next to the exact entries (``cache.vectors_redis``), the
  model in ``redis_semantic_cache_embedding_model`` (LiteLLM's default: ``text-embedding-ada-002``); Redis
  settings as ``redis``; ``similarity_threshold`` required, as in LiteLLM;
- ``type: valkey-semantic`` (LiteLLM's): the same on a Valkey server, the model in
  ``valkey_semantic_cache_embedding_model``, the server from ``host`` / ``port`` / ``password`` / ``url`` else
  ``VALKEY_HOST`` / ``VALKEY_PORT`` / ``VALKEY_PASSWORD`` (then the ``REDIS_*`` ones), as LiteLLM's
  ``ValkeySemanticCache`` reads them. LiteLLM needs Valkey's search module (``valkey-search``) for it; here a
  plain Valkey serves (the vectors compared in the worker, as on plain Redis), and a cluster too;
  ``valkey_semantic_cache_index_name`` is accepted and unneeded (the vectors live under the namespace);
- ``type: qdrant-semantic`` (LiteLLM's): in Qdrant (``cache.vectors_qdrant``): ``qdrant_collection_name``
  (required), ``qdrant_api_base`` / ``qdrant_api_key`` (or ``QDRANT_API_BASE`` / ``QDRANT_API_KEY``;
  without a base: the client's local mode, in memory or in ``qdrant_path``), ``qdrant_quantization_config``
  (``binary``, ``scalar``, ``product``), ``qdrant_semantic_cache_embedding_model``;
  ``qdrant_semantic_cache_vector_size`` is accepted and unneeded (the first embedding's size is used);
- relaygate's default, **the embedded index** (no server): ``type: local`` with a ``similarity_threshold``
  (or ``type: semantic``, the same thing spelled out, threshold required), the model in
  ``embedding_model``; per worker, bounded by ``semantic_max_entries`` and a quarter of ``max_bytes``.

Every semantic type also takes ``embedding_model`` (the type-specific LiteLLM spellings win),
``embedding_timeout`` (seconds the embedding call may take on a lookup; default 2),
``semantic_cache_embedding_max_input_tokens`` (LiteLLM's: a prompt is cut to this many tokens before it is
embedded; by default to the embedding model's ``max_input_tokens``, so a long conversation is not refused by
the embedding model) and ``semantic_max_entries`` (the embedded index's entries; a Redis scope's without a
search module).

Why ``team`` by default: a shared cache answers one tenant's prompt with what another tenant's identical
prompt produced, which leaks nothing only when the prompt carries no tenant data; a gateway cannot know
that, so sharing across teams is an explicit choice (``scope: global``). Keys without a team share the
entries of the no-team scope.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import FieldError
from relaygate.config.gcs import split_bucket
from relaygate.config.redis_tls import OPTIONS as TLS_OPTIONS
from relaygate.config.redis_tls import RedisTls, RedisTlsError, tls_for_url, tls_from_params

CALL_TYPES: dict[str, str] = {
    "completion": "chat", "acompletion": "chat",
    "text_completion": "completions", "atext_completion": "completions",
    "embedding": "embeddings", "aembedding": "embeddings",
    "anthropic_messages": "messages", "aanthropic_messages": "messages",
    "responses": "responses", "aresponses": "responses",
    "transcription": "transcriptions", "atranscription": "transcriptions",
    "rerank": "rerank", "arerank": "rerank",
}
"""LiteLLM's call types -> the routes relaygate caches. Without ``supported_call_types``, LiteLLM 1.110's default
list: chat, completions, embeddings, transcriptions, rerank, ``/v1/responses`` and ``/v1/messages``
(:data:`DEFAULT_ROUTES`). LiteLLM's others (``speech``, ``image_generation``, ``moderation``) are accepted in
the list and not cached (one warning)."""
DEFAULT_ROUTES = frozenset({"chat", "completions", "embeddings", "transcriptions", "rerank", "responses", "messages"})
_KNOWN_LATER = frozenset({"speech", "aspeech", "image_generation", "aimage_generation",
                          "moderation", "amoderation"})
_TYPES = frozenset({"local", "redis", "semantic", "redis-semantic", "qdrant-semantic", "s3", "gcs",
                     "azure-blob", "valkey-semantic"})
REDIS_TYPES = frozenset({"redis", "redis-semantic", "valkey-semantic"})
"""The types whose shared level is a Redis (or Valkey) server."""
_BUCKETS = frozenset({"s3", "gcs", "azure-blob"})
"""The object-store types: a year's TTL by default, a 2 s lookup deadline."""
_LATER_TYPES = frozenset({"disk"})
_S3_KNOWN = frozenset({"s3_bucket_name", "s3_region_name", "s3_use_ssl", "s3_endpoint_url", "s3_aws_access_key_id",
                       "s3_aws_secret_access_key", "s3_aws_session_token", "s3_path", "s3_aws_role_name",
                       "s3_aws_session_name", "s3_aws_web_identity_token", "s3_aws_profile_name",
                       "s3_aws_sts_endpoint", "s3_use_virtual_hosted_style"})
"""``type: s3``'s parameters (LiteLLM's ``S3Cache`` and the credential sources its boto3 client reads)."""
_S3_IGNORED = frozenset({"s3_api_version", "s3_verify", "s3_config"})
_GCS_KNOWN = frozenset({"gcs_bucket_name", "gcs_path_service_account", "gcs_path"})
"""``type: gcs``'s parameters (LiteLLM's ``GCSCache``)."""
_AZURE_KNOWN = frozenset({"azure_account_url", "azure_blob_container"})
"""``type: azure-blob``'s parameters (LiteLLM's ``AzureBlobCache``)."""
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
"""An Azure container name: 3-63 of a-z 0-9 and single hyphens, starting and ending with a letter or digit."""
S3_DEFAULT_TTL = 365 * 86400.0
"""Seconds an S3 entry lives when no TTL is configured (LiteLLM's ``max-age`` for an entry without one)."""
_WHY_IGNORED = {
    "redis_flush_size": "relaygate's Redis writer sends each store as it comes, pipelined; nothing waits for a batch",
    "disk_cache_dir": "LiteLLM 1.110 removed the disk cache",
    "gcp_service_account": "Memorystore IAM authentication is not supported: the Redis level authenticates with "
                           "password / url only, so a server that requires IAM refuses it (lookups are misses)",
    "gcp_ssl_ca_certs": "Memorystore IAM authentication is not supported (use ssl_ca_certs for the server's CA)",
}
"""``cache_params`` LiteLLM reads that relaygate does not act on, and why (each warned about once)."""
_IGNORED = frozenset({"max_connections", "max_size_in_memory",
                      "qdrant_semantic_cache_vector_size", "valkey_semantic_cache_index_name",
                      "redis_semantic_cache_index_name"})
_TOPOLOGY_KNOWN = frozenset({"redis_startup_nodes", "service_name", "sentinel_nodes", "sentinel_password",
                             "username", "db"})
_SEMANTIC_KNOWN = frozenset({"similarity_threshold", "embedding_model", "redis_semantic_cache_embedding_model",
                             "semantic_cache_scope", "semantic_cache_embedding_timeout",
                             "qdrant_semantic_cache_embedding_model", "embedding_timeout", "semantic_max_entries",
                             "qdrant_api_base", "qdrant_api_key", "qdrant_collection_name",
                             "qdrant_quantization_config", "qdrant_path",
                             "valkey_semantic_cache_embedding_model", "semantic_cache_embedding_max_input_tokens"})
DEFAULT_EMBEDDING_MODEL = "text-embedding-ada-002"
"""LiteLLM's default embedding model for its semantic caches."""


REDIS_DEFAULT_TTL = 60.0
"""LiteLLM's ``RedisCache`` default TTL (``BaseCache(default_ttl=60)``), used when no TTL is configured."""


class CacheConfigError(FieldError):
    """An invalid cache option: ``field`` is its path from the config's top (the loader adds the file)."""


class CacheSettings(msgspec.Struct, kw_only=True, frozen=True):
    type: str = "local"
    namespace: str | None = None
    ttl: float | None = None
    """Seconds an answer stays in every level. When neither this nor the level's own TTL is set, LiteLLM's
    defaults: 600 s in memory (``InMemoryCache``) and 60 s in Redis (``RedisCache``: ``BaseCache``'s
    ``default_ttl``); ``litellm_settings.default_redis_ttl`` is not read (see :attr:`redis_ttl`)."""
    default_in_memory_ttl: float | None = None
    default_in_redis_ttl: float | None = None
    routes: frozenset[str] = DEFAULT_ROUTES
    default_off: bool = False
    """``mode: default_off``: only requests that send ``cache: {"use-cache": true}`` use the cache."""
    max_bytes: int = 64 * 1024 * 1024
    scope: str = "team"
    max_messages: int | None = 4
    """LiteLLM's ``max_messages``: a request with more messages than this (chat and Messages ``messages``,
    Responses ``input`` items) is neither looked up nor stored (long agent conversations never hit); None: no
    limit (``max_messages: null``). LiteLLM's default, 4."""
    redis_timeout: float = 0.05
    """Seconds a Redis read or write may take before the cache goes on without it (``socket_timeout``)."""
    semantic_end_user: bool = False
    """``semantic_cache_scope: end_user``: a semantic match comes only from the same end user's prompts (within
    the key's, as always)."""
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None
    redis_username: str | None = None
    redis_db: int = 0
    redis_startup_nodes: tuple[tuple[str, int], ...] = ()
    """A Redis Cluster's startup nodes (``redis_startup_nodes`` / ``REDIS_CLUSTER_NODES``); empty: no cluster."""
    redis_sentinel_nodes: tuple[tuple[str, int], ...] = ()
    """Sentinels to ask for ``redis_service_name``'s master (``sentinel_nodes`` / ``REDIS_SENTINEL_NODES``)."""
    redis_service_name: str | None = None
    redis_sentinel_password: str | None = None
    redis_tls: RedisTls | None = None
    """TLS to the Redis level (``ssl`` and ``ssl_*`` of ``cache_params``, a ``rediss://`` URL, or LiteLLM's
    ``REDIS_SSL*`` variables: ``config.redis_tls``); None: plaintext."""
    semantic: str | None = None
    """Where the semantic level's vectors live: ``local`` (the embedded index), ``redis``, ``qdrant``; None:
    exact caching only."""
    similarity_threshold: float = 0.0
    embedding_model: str | None = None
    embedding_timeout: float = 2.0
    embedding_max_input_tokens: int | None = None
    """``semantic_cache_embedding_max_input_tokens``: a prompt is cut to this many tokens before it is embedded
    (None: to the embedding model's ``max_input_tokens`` when the catalog or its ``model_info`` knows it)."""
    semantic_max_entries: int | None = None
    qdrant_api_base: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection_name: str | None = None
    qdrant_quantization_config: str | None = None
    qdrant_path: str | None = None
    s3_params: dict[str, Any] | None = None
    """``type: s3``: the ``s3_*`` parameters of ``cache_params`` (``cache.s3``)."""
    gcs_params: dict[str, Any] | None = None
    """``type: gcs``: ``bucket``, ``prefix`` (the objects' folder, ``""`` or ending in ``/``) and
    ``service_account`` (a file or inline JSON; None: the environment's) (``cache.gcs``)."""
    azure_params: dict[str, Any] | None = None
    """``type: azure-blob``: ``account_url`` and ``container`` (``cache.azure_blob``)."""

    @property
    def memory_ttl(self) -> float:
        """Seconds a worker keeps an answer in memory: ``default_in_memory_ttl``, else ``ttl``, else 600; with a
        Redis level never longer than the configured Redis TTL (LiteLLM's Redis caches have no memory copy at
        all: a copy outliving the shared entry would serve what every other worker already forgot)."""
        own = self.default_in_memory_ttl or self.ttl or 600.0
        return min(own, self.redis_ttl) if self.type in (*REDIS_TYPES, *_BUCKETS) else own

    @property
    def redis_ttl(self) -> float:
        """Seconds an answer stays in the shared level: ``default_in_redis_ttl``, else ``ttl``, else LiteLLM's 60 s
        in Redis and a year in an object store (:data:`S3_DEFAULT_TTL`)."""
        return self.default_in_redis_ttl or self.ttl or (
            S3_DEFAULT_TTL if self.type in _BUCKETS else REDIS_DEFAULT_TTL)


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
    kind = params.get("type")
    if kind is None:
        kind = _default_type(params, env, warnings)
    if kind in _LATER_TYPES:
        raise CacheConfigError("litellm_settings.cache_params.type",
                          f"{kind!r} caches are not supported yet (use 'local', 'redis', 's3', 'gcs' or 'azure-blob')")
    if kind not in _TYPES:
        raise CacheConfigError("litellm_settings.cache_params.type", f"unknown cache type {kind!r}")
    routes: set[str] = set()
    call_types = params.get("supported_call_types")
    if call_types is None:
        routes = set(DEFAULT_ROUTES)
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
    max_messages = params.get("max_messages", 4)
    if max_messages is not None and (isinstance(max_messages, bool) or not isinstance(max_messages, int)
                                     or max_messages < 0):
        raise CacheConfigError("litellm_settings.cache_params.max_messages",
                               "expected a number of messages (0 or more), or null for no limit")
    redis_timeout = params.get("socket_timeout")
    if redis_timeout is not None and (isinstance(redis_timeout, bool) or not isinstance(redis_timeout, (int, float))
                                      or not 0 < redis_timeout <= 30):
        raise CacheConfigError("litellm_settings.cache_params.socket_timeout",
                               "expected seconds, above 0 and at most 30")
    known = {"type", "namespace", "ttl", "default_in_memory_ttl", "default_in_redis_ttl", "supported_call_types",
             "mode", "scope", "max_bytes", "host", "port", "password", "url", "redis_url", "max_messages",
             "socket_timeout"} | _TOPOLOGY_KNOWN
    semantic = _semantic(kind, params, env)
    if semantic:
        known |= _SEMANTIC_KNOWN
    if kind in REDIS_TYPES:
        known |= set(TLS_OPTIONS)
    s3_params = _s3(params, warnings) if kind == "s3" else None
    if s3_params is not None:
        known |= _S3_KNOWN | _S3_IGNORED
    gcs_params = _gcs(params, env) if kind == "gcs" else None
    if gcs_params is not None:
        known |= _GCS_KNOWN
    azure_params = _azure(params) if kind == "azure-blob" else None
    if azure_params is not None:
        known |= _AZURE_KNOWN
    for k in params:
        if k in _SEMANTIC_KNOWN and not semantic:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored (type {kind!r} without a "
                            "similarity_threshold is not a semantic cache)")
        elif k in _IGNORED:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored")
        elif k in _WHY_IGNORED:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored ({_WHY_IGNORED[k]})")
        elif (k in _TOPOLOGY_KNOWN or k in TLS_OPTIONS) and kind not in REDIS_TYPES:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored (type {kind!r} uses no Redis)")
        elif k not in known:
            warnings.append(f"litellm_settings.cache_params.{k}: ignored (unknown)")
    url = params.get("url") or params.get("redis_url") or None
    host = params.get("host")
    port = params.get("port")
    password = params.get("password")
    topology = _topology(kind, params, env, warnings) if kind in REDIS_TYPES else {}
    if topology.get("redis_startup_nodes") or topology.get("redis_sentinel_nodes"):
        host = port = None
        password = topology.pop("password")
    elif kind in REDIS_TYPES:
        topology.pop("password", None)
        if url is None and host is None and kind == "valkey-semantic":  # LiteLLM's ValkeySemanticCache reads these
            host = env.get("VALKEY_HOST") or env.get("REDIS_HOST") or None
            port = port or env.get("VALKEY_PORT") or env.get("REDIS_PORT") or None
            password = password or env.get("VALKEY_PASSWORD") or env.get("REDIS_PASSWORD") or None
        if url is None and host is None:  # LiteLLM's environment fallbacks
            url = env.get("REDIS_URL") or None
            host = env.get("REDIS_HOST") or None
            port = port or env.get("REDIS_PORT") or None
            password = password or env.get("REDIS_PASSWORD") or None
        if url is None and host is None:
            raise CacheConfigError("litellm_settings.cache_params",
                                   f"type {kind!r} needs host (and port) or url, or "
                                   f"{'VALKEY_HOST / ' if kind == 'valkey-semantic' else ''}REDIS_HOST / REDIS_URL")
        try:
            port = int(port) if port is not None else None
        except (TypeError, ValueError):
            raise CacheConfigError("litellm_settings.cache_params.port", "expected a port number") from None
    tls = _tls(kind, params, env, url, warnings)
    return CacheSettings(
        type=kind, namespace=namespace, ttl=_number(params, "ttl"),
        default_in_memory_ttl=_number(params, "default_in_memory_ttl"),
        default_in_redis_ttl=_number(params, "default_in_redis_ttl"), routes=frozenset(routes),
        default_off=mode == "default_off", max_bytes=max_bytes, scope=scope, max_messages=max_messages,
        redis_timeout=float(redis_timeout) if redis_timeout is not None else 2.0 if kind in _BUCKETS else 0.05,
        s3_params=s3_params, gcs_params=gcs_params, azure_params=azure_params,
        redis_url=url if isinstance(url, str) else None, redis_host=host if isinstance(host, str) else None,
        redis_port=port if isinstance(port, int) else None,
        redis_password=str(password) if password is not None else None, redis_tls=tls, **topology, **semantic)


def _s3(params: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """``type: s3``'s parameters: a bucket is required; boto3's client options relaygate has no use for are
    warned about."""
    bucket = params.get("s3_bucket_name")
    if not isinstance(bucket, str) or not bucket.strip():
        raise CacheConfigError("litellm_settings.cache_params.s3_bucket_name", "type 's3' needs a bucket name")
    endpoint = params.get("s3_endpoint_url")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))):
        raise CacheConfigError("litellm_settings.cache_params.s3_endpoint_url", "expected an http(s) URL")
    for k in sorted(_S3_IGNORED & params.keys()):
        warnings.append(f"litellm_settings.cache_params.{k}: ignored (boto3's client option)")
    return {k: v for k, v in params.items() if k in _S3_KNOWN and v is not None}


def _gcs(params: dict[str, Any], env: Any) -> dict[str, Any]:
    """``type: gcs``'s bucket, folder and credentials (``cache.gcs``): ``gcs_bucket_name`` else ``GCS_BUCKET_NAME``
    (``bucket/folder`` as the ``gcs_bucket`` callback reads it), ``gcs_path`` a folder inside it."""
    named = params.get("gcs_bucket_name")
    raw = named or env.get("GCS_BUCKET_NAME") or ""
    if not isinstance(raw, str) or not raw.strip():
        raise CacheConfigError("litellm_settings.cache_params.gcs_bucket_name",
                               "type 'gcs' needs a bucket: gcs_bucket_name, or GCS_BUCKET_NAME in the environment")
    try:
        bucket, folder = split_bucket(raw)
    except ValueError as exc:
        raise CacheConfigError("litellm_settings.cache_params.gcs_bucket_name" if named else "GCS_BUCKET_NAME",
                               str(exc)) from None
    path = params.get("gcs_path")
    if path is not None and not isinstance(path, str):
        raise CacheConfigError("litellm_settings.cache_params.gcs_path", "expected a folder name")
    if path and path.strip("/"):
        try:
            _, folder = split_bucket("/".join(p for p in (bucket, folder, path.strip("/")) if p))
        except ValueError as exc:
            raise CacheConfigError("litellm_settings.cache_params.gcs_path",
                                   str(exc).replace("the folder after the bucket", "the folder")) from None
    account = params.get("gcs_path_service_account")
    if account is not None and not isinstance(account, str):
        raise CacheConfigError("litellm_settings.cache_params.gcs_path_service_account",
                               "expected a service-account JSON file's path (or the JSON itself)")
    return {"bucket": bucket, "prefix": folder + "/" if folder else "", "service_account": account or None}


def _azure(params: dict[str, Any]) -> dict[str, Any]:
    """``type: azure-blob``'s account URL and container (``cache.azure_blob``), both required."""
    url = params.get("azure_account_url")
    url = url.strip().rstrip("/") if isinstance(url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise CacheConfigError("litellm_settings.cache_params.azure_account_url",
                               "type 'azure-blob' needs the account's blob endpoint, an http(s) URL without a query "
                               "(https://<account>.blob.core.windows.net)")
    container = params.get("azure_blob_container")
    if not isinstance(container, str) or not _CONTAINER.fullmatch(container):
        raise CacheConfigError("litellm_settings.cache_params.azure_blob_container",
                               "type 'azure-blob' needs a container name (3-63 of a-z 0-9 and single hyphens, "
                               "starting and ending with a letter or digit)")
    return {"account_url": url, "container": container}


def _default_type(params: dict[str, Any], env: Any, warnings: list[str]) -> str:
    """The cache type when ``cache_params`` names none: LiteLLM's load_config takes ``redis`` (its client
    reading ``host`` / ``url`` from ``cache_params``, else REDIS_HOST, REDIS_URL and the cluster and sentinel
    variables). relaygate does the same when ``cache_params`` or the environment names a Redis; with neither,
    the per-worker local cache (the embedded default runs without Redis), with a warning saying LiteLLM would
    have tried a Redis there."""
    named = any(params.get(k) for k in ("host", "url", "redis_url", "redis_startup_nodes",
                                        "sentinel_nodes", "service_name"))
    if named or env.get("REDIS_HOST") or env.get("REDIS_URL") or env.get("REDIS_CLUSTER_NODES") or (
            env.get("REDIS_SENTINEL_NODES") and env.get("REDIS_SERVICE_NAME")):
        return "redis"
    warnings.append("litellm_settings.cache_params.type: not set and no Redis named (cache_params host / url, "
                    "REDIS_HOST, REDIS_URL): a local cache per worker, where LiteLLM would try a Redis (set "
                    "type: local to keep this, or name a Redis)")
    return "local"


def _tls(kind: str, params: dict[str, Any], env: Any, url: Any, warnings: list[str]) -> RedisTls | None:
    """The Redis level's TLS (``config.redis_tls``): ``ssl*`` options, else ``REDIS_SSL*``, refined by a
    ``rediss://`` URL's query options; None for a cache without Redis or without TLS."""
    if kind not in REDIS_TYPES:
        return None
    field = "litellm_settings.cache_params."
    try:
        tls = tls_from_params(params, env, field)
        if isinstance(url, str) and url:
            tls = tls_for_url(url, tls, field + "url")
    except RedisTlsError as exc:
        raise CacheConfigError(exc.field, exc.detail) from None
    if tls is not None and tls.cert_reqs == "none":
        warnings.append(field + "ssl_cert_reqs: none: the Redis server's certificate is not verified (anyone "
                        "on the path can read and change the cache)")
    return tls


def _nodes(value: Any, field: str, env_name: str, shape: str) -> tuple[tuple[str, int], ...]:
    """``[{"host": h, "port": p}, ...]`` (cluster) or ``[[h, p], ...]`` (sentinels), or that list as JSON
    text (as LiteLLM reads ``REDIS_CLUSTER_NODES`` / ``REDIS_SENTINEL_NODES``), as ``((host, port), ...)``."""
    where = env_name if field == env_name else f"litellm_settings.cache_params.{field}"
    example = '[{"host": "10.0.0.1", "port": 7001}, ...]' if shape == "dict" else '[["10.0.0.1", 26379], ...]'
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError:
            raise CacheConfigError(where, f"expected a JSON list like {example}") from None
    if not isinstance(value, list) or not value:
        raise CacheConfigError(where, f"expected a non-empty list like {example}")
    out = []
    for item in value:
        if shape == "dict" and isinstance(item, dict) and set(item) <= {"host", "port"}:
            host, port = item.get("host"), item.get("port")
        elif shape == "pair" and isinstance(item, (list, tuple)) and len(item) == 2:
            host, port = item
        else:
            raise CacheConfigError(where, f"unexpected entry {item!r}: expected a list like {example}")
        try:
            number = int(port) if isinstance(port, (int, str)) else 0  # LiteLLM writes ports as strings
        except (TypeError, ValueError):
            number = 0
        if isinstance(port, bool) or not isinstance(host, str) or not host or not 0 < number < 65536:
            raise CacheConfigError(where, f"unexpected entry {item!r}: a host name and a port number")
        out.append((host, number))
    return tuple(out)


def env_topology(env: Any) -> tuple[str, tuple[tuple[str, int], ...], str | None] | None:
    """The Redis topology LiteLLM's variables name for a Redis client configured by host (the limiter's):
    ``("cluster", nodes, None)`` from ``REDIS_CLUSTER_NODES``, ``("sentinel", nodes, service)`` from
    ``REDIS_SENTINEL_NODES`` + ``REDIS_SERVICE_NAME``; None: neither. A malformed one is a
    :class:`CacheConfigError` naming the variable."""
    if env.get("REDIS_CLUSTER_NODES"):
        return "cluster", _nodes(env["REDIS_CLUSTER_NODES"], "REDIS_CLUSTER_NODES", "REDIS_CLUSTER_NODES", "dict"), None
    if env.get("REDIS_SENTINEL_NODES"):
        service = env.get("REDIS_SERVICE_NAME")
        if not service:
            raise CacheConfigError("REDIS_SERVICE_NAME", "REDIS_SENTINEL_NODES needs the name of the master the "
                                   "sentinels monitor")
        return "sentinel", _nodes(env["REDIS_SENTINEL_NODES"], "REDIS_SENTINEL_NODES", "REDIS_SENTINEL_NODES",
                                  "pair"), str(service)
    return None


def _topology(kind: str, params: dict[str, Any], env: Any, warnings: list[str]) -> dict[str, Any]:
    """LiteLLM's Redis Cluster and Sentinel settings (``redis_startup_nodes``; ``service_name`` +
    ``sentinel_nodes`` + ``sentinel_password``; their ``REDIS_*`` variables), ``username`` and ``db``, as
    ``CacheSettings`` fields plus ``password`` (the cluster's or master's: ``password`` or ``REDIS_PASSWORD``;
    a sentinel master without one uses ``sentinel_password``, as LiteLLM). Precedence as LiteLLM's: a ``url``
    wins, then a cluster, then sentinels, then ``host``; the variables only fill what the file does not set."""
    field = "litellm_settings.cache_params."
    out: dict[str, Any] = {}
    username = params.get("username") or env.get("REDIS_USERNAME") or None
    if username is not None and not isinstance(username, str):
        raise CacheConfigError(field + "username", "expected a string")
    db = params.get("db", 0)
    try:
        db = int(db)
    except (TypeError, ValueError):
        db = -1
    if isinstance(params.get("db"), bool) or db < 0:
        raise CacheConfigError(field + "db", "expected a database number")
    out.update(redis_username=username, redis_db=db)
    password = params.get("password") or env.get("REDIS_PASSWORD") or None
    out["password"] = str(password) if password is not None else None
    url = params.get("url") or params.get("redis_url")
    startup = params.get("redis_startup_nodes")
    if startup is None and env.get("REDIS_CLUSTER_NODES"):
        startup = _nodes(env["REDIS_CLUSTER_NODES"], "REDIS_CLUSTER_NODES", "REDIS_CLUSTER_NODES", "dict")
    sentinels = params.get("sentinel_nodes")
    if sentinels is None and env.get("REDIS_SENTINEL_NODES"):
        sentinels = _nodes(env["REDIS_SENTINEL_NODES"], "REDIS_SENTINEL_NODES", "REDIS_SENTINEL_NODES", "pair")
    service = params.get("service_name") or env.get("REDIS_SERVICE_NAME") or None
    sentinel_password = params.get("sentinel_password") or env.get("REDIS_SENTINEL_PASSWORD") or None
    if url and (params.get("redis_startup_nodes") is not None or params.get("sentinel_nodes") is not None):
        warnings.append(field + "url: set, so redis_startup_nodes / sentinel_nodes are not used (as LiteLLM)")
        return out
    if url:
        return out
    if startup is not None:
        nodes = startup if isinstance(startup, tuple) else _nodes(startup, "redis_startup_nodes",
                                                                  "REDIS_CLUSTER_NODES", "dict")
        if db:
            raise CacheConfigError(field + "db", "a Redis Cluster has only database 0")
        if params.get("sentinel_nodes") is not None:
            warnings.append(field + "sentinel_nodes: not used (redis_startup_nodes names a cluster, as LiteLLM)")
        if kind != "redis":
            warnings.append(field + f"type: {kind!r} on a Redis Cluster keeps its vectors without a search "
                            "index (RediSearch is not supported on an OSS cluster): one hash per scope, compared "
                            "in the worker, at most semantic_max_entries (default 1000) per scope")
        out["redis_startup_nodes"] = nodes
        return out
    if params.get("service_name") is not None and sentinels is None:
        raise CacheConfigError(field + "sentinel_nodes", "service_name needs sentinel_nodes (or REDIS_SENTINEL_NODES)")
    if params.get("sentinel_nodes") is not None and service is None:
        raise CacheConfigError(field + "service_name", "sentinel_nodes needs service_name (or REDIS_SERVICE_NAME)")
    if sentinels is not None and service is not None:
        if not isinstance(service, str):
            raise CacheConfigError(field + "service_name", "expected the name of the master the sentinels monitor")
        out["redis_sentinel_nodes"] = sentinels if isinstance(sentinels, tuple) else _nodes(
            sentinels, "sentinel_nodes", "REDIS_SENTINEL_NODES", "pair")
        out["redis_service_name"] = service
        out["redis_sentinel_password"] = str(sentinel_password) if sentinel_password is not None else None
    elif params.get("sentinel_password") is not None:
        warnings.append(field + "sentinel_password: ignored (no sentinel_nodes / service_name)")
    return out


def _semantic(kind: str, params: dict[str, Any], env: Any) -> dict[str, Any]:
    """The semantic settings of ``cache_params`` (see the module docstring); empty for an exact cache."""
    where = {"semantic": "local", "redis-semantic": "redis", "valkey-semantic": "redis",
             "qdrant-semantic": "qdrant"}.get(kind)
    threshold = params.get("similarity_threshold")
    if where is None:
        if kind != "local" or threshold is None:
            return {}
        where = "local"
    field = "litellm_settings.cache_params."
    if threshold is None:
        raise CacheConfigError(field + "similarity_threshold", f"type {kind!r} needs a similarity_threshold "
                               "(0 to 1: how close a prompt must be to a stored one, by cosine similarity)")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise CacheConfigError(field + "similarity_threshold", "expected a number above 0 and at most 1")
    own = {"redis-semantic": "redis_semantic_cache_embedding_model",
           "valkey-semantic": "valkey_semantic_cache_embedding_model",
           "qdrant-semantic": "qdrant_semantic_cache_embedding_model"}
    model = (params.get(own[kind]) if kind in own else None) or params.get("embedding_model") \
        or DEFAULT_EMBEDDING_MODEL
    if not isinstance(model, str):
        raise CacheConfigError(field + "embedding_model", "expected a model group name of the model_list")
    timeout = params.get("embedding_timeout", params.get("semantic_cache_embedding_timeout", 2.0))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise CacheConfigError(field + "embedding_timeout", "expected a positive number of seconds")
    max_in = params.get("semantic_cache_embedding_max_input_tokens")
    if max_in is not None and (isinstance(max_in, bool) or not isinstance(max_in, int) or max_in <= 0):
        raise CacheConfigError(field + "semantic_cache_embedding_max_input_tokens", "expected a positive integer")
    entries = params.get("semantic_max_entries")
    if entries is not None and (isinstance(entries, bool) or not isinstance(entries, int) or entries <= 0):
        raise CacheConfigError(field + "semantic_max_entries", "expected a positive integer")
    scope = params.get("semantic_cache_scope", "key")
    if scope not in ("key", "end_user"):
        raise CacheConfigError(field + "semantic_cache_scope", "expected 'key' or 'end_user'")
    out: dict[str, Any] = {"semantic": where, "similarity_threshold": float(threshold), "embedding_model": model,
                           "embedding_timeout": float(timeout), "semantic_max_entries": entries,
                           "embedding_max_input_tokens": max_in,
                           "semantic_end_user": scope == "end_user"}
    if where == "qdrant":
        collection = params.get("qdrant_collection_name")
        if not isinstance(collection, str) or not collection:
            raise CacheConfigError(field + "qdrant_collection_name", "type 'qdrant-semantic' needs a collection name")
        quant = params.get("qdrant_quantization_config")
        if quant is not None and quant not in ("binary", "scalar", "product"):
            raise CacheConfigError(field + "qdrant_quantization_config", "expected 'binary', 'scalar' or 'product'")
        for name in ("qdrant_api_base", "qdrant_api_key", "qdrant_path"):
            v = params.get(name)
            if v is not None and (not isinstance(v, str) or not v):
                raise CacheConfigError(field + name, "expected a non-empty string")
        out.update(qdrant_collection_name=collection, qdrant_quantization_config=quant,
                   qdrant_api_base=params.get("qdrant_api_base") or env.get("QDRANT_API_BASE") or None,
                   qdrant_api_key=params.get("qdrant_api_key") or env.get("QDRANT_API_KEY") or None,
                   qdrant_path=params.get("qdrant_path"))
    return out


__all__ = ["CALL_TYPES", "DEFAULT_ROUTES", "REDIS_DEFAULT_TTL", "CacheConfigError", "env_topology", "CacheSettings",
           "from_litellm"]
