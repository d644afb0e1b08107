"""LiteLLM's cache management routes: ``GET /cache/ping``, ``POST /cache/delete``, ``POST /cache/flushall``,
``GET /cache/redis/info``. Proxy admin only (the viewer may ping and read info), as LiteLLM's.

- ``/cache/ping``: ``{"status": "healthy", "cache_type": ..., "ping_response": true, "set_cache_response":
  "success", "litellm_cache_params": "{...}", "health_check_cache_params": {...}}`` after a real write and
  read of a probe key (Redis: through the shared level; local: this worker's memory). As LiteLLM's
  ``CachePingResponse``: ``litellm_cache_params`` is a JSON *string* (the cache's settings), and
  ``health_check_cache_params`` is, for a Redis cache, ``{"host", "port", "redis_kwargs", "namespace",
  "redis_version"}`` (LiteLLM's ``HealthCheckCacheParams``; never a password, where LiteLLM masks it), else
  null. 503 ``Service Unhealthy (...)`` when Redis does not answer; 503 ``Cache not initialized.
  litellm.cache is None`` without a cache (LiteLLM's wording). With an object store (``type: s3`` or ``gcs``)
  the bucket is probed instead and ``litellm_cache_params`` names it under ``"s3"`` or ``"gcs"``.
- ``/cache/delete`` ``{"keys": [...]}`` (the values of ``x-litellm-cache-key``): removed from this worker's
  memory and from Redis; other workers' memory copies expire by their TTL (``default_in_memory_ttl`` bounds
  how long; keep it short when deletes must bite at once).
- ``/cache/flushall``: this worker's memory, and in Redis only this cache's keys (its namespace, or
  64-hex keys without one, and the namespaces its requests named, ``RedisCache.flush``) — never Redis
  ``FLUSHALL``, which LiteLLM sends and which also wipes the rate limiter's counters and anything else
  sharing that Redis.
- ``/cache/redis/info``: ``{"num_clients": ..., "clients": [...], "info": {...}}`` (LiteLLM's): ``clients``
  from ``CLIENT LIST`` parsed as redis-py's ``client_list()`` (one dict of strings per connection),
  ``num_clients`` its length, ``info`` from ``INFO`` (400 without Redis). Where ``CLIENT LIST`` is refused (an
  ACL; managed Redis often restricts it) LiteLLM's ``-1`` and ``[CLIENT_LIST_UNAVAILABLE]``, and the refusal
  does not pause the cache's Redis. With sentinels also ``"master": "host:port"``; on a Redis Cluster ``info``
  is ``{"host:port": {...}}`` per primary (redis-py's cluster shape) and ``clients`` every primary's.
- On a cluster or with sentinels ``/cache/ping`` adds ``"redis_nodes": {"host:port": true, ...}`` (every
  primary, or the master) and is a 503 naming the nodes that did not answer; ``/cache/delete`` and
  ``/cache/flushall`` reach every primary.
- ``/cache/stats`` (admin and viewer; the admin UI's cache page): ``{"enabled", "type", "hits", "misses",
  "hit_rate", "entries", "bytes", "max_bytes"}``. The counters are this worker's (workers share nothing):
  lookups it answered from the cache (memory, Redis or semantic) and those that missed since it started;
  ``entries`` / ``bytes`` are its memory level. Without a cache: ``enabled`` false and zeros (not a 503,
  so the page can say the cache is off).
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.cache import settings_api
from relaygate.core.errors import GatewayError
from relaygate.http.body import read_body
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.limits.resp import encode
from relaygate.management.common import Gateway, check_admin

NOT_INITIALIZED = "Cache not initialized. litellm.cache is None"
CLIENT_LIST_UNAVAILABLE = "CLIENT LIST command not available on this Redis instance"
"""``/cache/redis/info``'s ``clients`` when Redis refuses ``CLIENT LIST`` (LiteLLM's wording; ``num_clients``
is then -1)."""
_PROBE = "relaygate:cache:ping"
_CLIENT_LIST = encode(("CLIENT", "LIST"))


def _cache(gw: Gateway) -> Any:
    cache = getattr(gw.runtime, "cache", None)
    if cache is None:
        raise GatewayError(NOT_INITIALIZED, status=503, type="service_unavailable", param="None")
    return cache


def _params(cache: Any) -> dict[str, Any]:
    s = cache.settings
    out = {"type": s.type, "namespace": s.namespace, "ttl": s.ttl, "default_in_memory_ttl": s.memory_ttl,
           "supported_call_types": sorted(s.routes), "mode": "default_off" if s.default_off else "default_on",
           "scope": s.scope, "max_bytes": s.max_bytes}
    if cache.redis is not None:
        out["default_in_redis_ttl"] = s.redis_ttl
        out["redis"] = cache.redis.describe()  # addresses and db; never a password
    elif cache.shared is not None:  # an object store: bucket, endpoint, prefix; never a credential
        out["default_in_redis_ttl"] = s.redis_ttl
        out[cache.shared.kind] = cache.shared.describe()
    return out


async def _health_params(cache: Any) -> dict[str, Any]:
    """LiteLLM's ``health_check_cache_params`` for a Redis cache: where it is, its namespace and the server's
    version (``INFO``; ``"Unknown"`` if it does not answer, LiteLLM's placeholder). Never a password."""
    s = cache.settings
    redis = cache.redis
    topology = redis.topology
    host: str | None = None
    port: int | None = None
    if topology.kind == "cluster":
        kwargs: dict[str, Any] = {"startup_nodes": [{"host": h, "port": p} for h, p in s.redis_startup_nodes]}
    else:
        addr = topology.node.addr  # one server, or the master the sentinels named (port 0 before the first)
        host, port = addr.host, addr.port or None
        kwargs = {"host": host, "port": port, "db": addr.db}
        if addr.username:
            kwargs["username"] = addr.username
        if topology.kind == "sentinel":
            kwargs["service_name"] = s.redis_service_name
            kwargs["sentinel_nodes"] = [[h, p] for h, p in s.redis_sentinel_nodes]
    if s.redis_tls is not None:
        kwargs["ssl"] = True
    try:
        version = (await redis.info()).get("redis_version") or "Unknown"
    except LookupError:
        version = "Unknown"
    return {"host": host, "port": port, "redis_kwargs": kwargs, "namespace": s.namespace, "redis_version": version}


def parse_client_list(reply: bytes | str) -> list[dict[str, str]]:
    """``CLIENT LIST``'s text as redis-py's ``client_list()`` returns it (LiteLLM's ``clients``): a dict per
    line of its ``key=value`` fields, values as strings; a value with spaces (a Unix socket's path) is kept
    whole, as redis-py's ``parse_client_list`` does."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    clients = []
    for line in text.splitlines():
        client: dict[str, str] = {}
        last = None
        for token in line.split(" "):
            if "=" in token:
                last, _, value = token.partition("=")
                client[last] = value
            elif last is not None:
                client[last] += " " + token
        if client:
            clients.append(client)
    return clients


async def _client_list(redis: Any) -> tuple[list[Any], int]:
    """Every primary's ``CLIENT LIST``, parsed, and their number; ``([CLIENT_LIST_UNAVAILABLE], -1)`` when a
    node refuses it (LiteLLM's answer). Sent with ``_send``, which returns an error reply rather than pausing
    the node as a failed cache command would. ``LookupError`` when a node does not answer."""
    clients: list[Any] = []
    for node in await redis._primaries():
        reply = await redis._send(node, "CLIENT", _CLIENT_LIST)
        if not isinstance(reply, (bytes, str)):  # an error reply (NOPERM, unknown command)
            return [CLIENT_LIST_UNAVAILABLE], -1
        clients.extend(parse_client_list(reply))
    return clients, len(clients)


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def ping(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/cache/ping", read=True)
        cache = _cache(gw)
        redis = cache.redis
        nodes = None
        if redis is None and cache.shared is not None:  # an object store: the bucket answers a probe
            try:
                ok = await cache.shared.ping()
            except LookupError as exc:
                raise GatewayError(f"Service Unhealthy ({exc})", status=503, type="service_unavailable",
                                   param="None") from None
            if not ok:
                raise GatewayError(f"Service Unhealthy ({cache.shared.label} {cache.shared.bucket} is not reachable "
                                   "with the configured credentials)", status=503, type="service_unavailable",
                                   param="None")
        elif redis is not None:
            nodes = await redis.ping_nodes()
            silent = [name for name, ok in nodes.items() if not ok]
            if silent:
                raise GatewayError(f"Service Unhealthy (redis {', '.join(silent)} did not answer PING)", status=503,
                                   type="service_unavailable", param="None")
            ok = (await redis.delete([_PROBE])) >= 0
        else:
            cache.memory.set(_PROBE, b"ok", 5)
            ok = cache.memory.get(_PROBE) == b"ok"
            cache.memory.delete(_PROBE)
        body = {"status": "healthy", "cache_type": cache.settings.type, "ping_response": True,
                "set_cache_response": "success" if ok else "failed",
                "litellm_cache_params": orjson.dumps(_params(cache)).decode(),
                "health_check_cache_params": await _health_params(cache) if redis is not None else None,
                "memory": {"entries": len(cache.memory), "bytes": cache.memory.used, "hits": cache.hits,
                           "misses": cache.misses}}
        if redis is not None and redis.topology.kind != "single":
            body["redis_nodes"] = nodes  # a cluster's primaries, or the sentinels' master: each answered
        await send_json(send, 200, orjson.dumps(body))

    async def delete(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/cache/delete")
        cache = _cache(gw)
        try:
            req = orjson.loads(await read_body(receive, gw.runtime.body_limits) or b"{}")
        except orjson.JSONDecodeError:
            raise GatewayError("Invalid JSON in request body", status=400, param="keys") from None
        keys = req.get("keys") if isinstance(req, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys) or len(keys) > 10_000:
            raise GatewayError("keys: expected a list of cache keys", status=400, param="keys")
        for k in keys:
            cache.memory.delete(k)
        if cache.shared is not None:
            try:
                await cache.shared.delete(keys)
            except LookupError as exc:
                raise GatewayError("Service Unhealthy (redis did not answer DEL)" if cache.redis is not None else
                                   f"Service Unhealthy ({exc})", status=503, type="service_unavailable",
                                   param="None") from None
        await send_json(send, 200, b'{"status":"success"}')

    async def flushall(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/cache/flushall")
        cache = _cache(gw)
        cache.memory.clear()
        cache.flush_semantic()
        if cache.shared is not None:
            try:
                await cache.shared.flush(cache.settings.namespace)
            except LookupError as exc:
                raise GatewayError("Service Unhealthy (redis did not answer SCAN/UNLINK)" if cache.redis is not None
                                   else f"Service Unhealthy ({exc})", status=503, type="service_unavailable",
                                   param="None") from None
        await send_json(send, 200, b'{"status":"success"}')

    async def redis_info(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/cache/redis/info", read=True)
        cache = _cache(gw)
        if cache.redis is None:
            raise GatewayError("the cache is not a redis cache", status=400, param="None")
        try:
            nodes = await cache.redis.info_nodes()
            clients, count = await _client_list(cache.redis)
        except LookupError:
            raise GatewayError("Service Unhealthy (redis did not answer INFO / CLIENT LIST)", status=503,
                               type="service_unavailable", param="None") from None
        if not cache.redis.cluster:  # one server (or the sentinels' current master): LiteLLM's shape
            name, info = next(iter(nodes.items()))
            out: dict[str, Any] = {"num_clients": count, "clients": clients, "info": info}
            if cache.redis.topology.kind == "sentinel":
                out["master"] = name
        else:  # redis-py's cluster INFO shape: per node, by "host:port"
            out = {"num_clients": count, "clients": clients, "info": nodes}
        await send_json(send, 200, orjson.dumps(out))

    t.add("GET", "/cache/ping", ping)
    t.add("POST", "/cache/delete", delete)
    t.add("POST", "/cache/flushall", flushall)
    async def stats(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/cache/stats", read=True)
        await send_json(send, 200, orjson.dumps(cache_stats(getattr(gw.runtime, "cache", None))))

    t.add("GET", "/cache/redis/info", redis_info)
    t.add("GET", "/cache/stats", stats)
    settings_api.add_routes(t, gw)  # /cache/settings, /cache/settings/test (the store's)


def cache_stats(cache: Any) -> dict[str, Any]:
    """The ``/cache/stats`` answer for ``cache`` (a ``ResponseCache``, or None when none is configured)."""
    if cache is None:
        return {"enabled": False, "type": None, "hits": 0, "misses": 0, "hit_rate": None, "entries": 0,
                "bytes": 0, "max_bytes": 0}
    hits, misses = int(cache.hits), int(cache.misses)
    memory = cache.memory
    return {"enabled": True, "type": cache.settings.type, "hits": hits, "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None, "entries": len(memory),
            "bytes": memory.used, "max_bytes": memory.max_bytes}


__all__ = ["CLIENT_LIST_UNAVAILABLE", "NOT_INITIALIZED", "add_routes", "cache_stats", "parse_client_list"]
