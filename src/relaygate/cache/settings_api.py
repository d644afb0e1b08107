"""LiteLLM's cache settings API (its Admin UI's "Cache Settings" page): ``GET /cache/settings``, ``POST
/cache/settings/test``, ``POST /cache/settings``.

- ``GET /cache/settings`` (the proxy admin and its viewer): ``{"fields": [{"field_name", "field_type",
  "field_value", "field_description", "field_default", "options", "ui_field_name", "redis_type"}],
  "current_values": {...}, "redis_type_descriptions": {...}}``, LiteLLM's shape. The fields are the
  ``cache_params`` relaygate reads for a Redis cache (:data:`FIELDS`); the current values are the cache the
  worker serves (the stored settings, else the config file's, with the environment's Redis variables already
  read), ``redis_type`` derived as LiteLLM derives it (``node``, ``cluster``, ``sentinel``). Passwords, and a
  URL that carries one, are shown as :data:`MASK`.
- ``POST /cache/settings/test`` ``{"cache_settings": {...}}`` (the proxy admin): checks the settings as a start
  would and asks that Redis a ``PING`` (every node of a cluster; the master the sentinels name), within 5 s, as
  a probe (a failure is not logged or alerted on as the cache's outage):
  ``{"status": "success" | "failed", "message", "error"}`` (a failure is an answer, not an error status, as
  LiteLLM's). A masked or left-out password is the stored one. Only Redis types are tested, as LiteLLM's.
- ``POST /cache/settings`` ``{"cache_settings": {...}}`` (the proxy admin, with ``store_model_in_db``, else a
  400 saying so): the settings, checked as the config file's ``cache_params`` are (a 400 naming the field),
  with a masked or left-out password kept from the stored settings (sent empty or null: none), are stored
  (``store.settings``, row ``cache_settings``; passwords and URLs sealed as stored model credentials are,
  ``store.sealing``) and served
  in place of the file's ``litellm_settings.cache`` / ``cache_params`` — caching switched on, as LiteLLM does
  — by this worker at once and every other worker and instance within a second (the stored-models sync,
  :func:`with_stored_cache`). Answer: ``{"message": "Cache settings updated successfully", "status":
  "success", "settings": {...}}`` (masked).

Where relaygate differs: LiteLLM answers a store failure or an invalid value with a 500; here an invalid value
is a 400 naming the field. Settings stored by another version that no longer check are logged and the file's
cache is served.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from relaygate.cache.redis import RedisCache
from relaygate.config.cache import REDIS_TYPES, CacheConfigError, CacheSettings
from relaygate.config.cache import from_litellm as cache_from_litellm
from relaygate.config.cost_settings import STORED, with_stored
from relaygate.config.model import Config
from relaygate.config.stored_general import SECTION as GENERAL_SECTION
from relaygate.config.stored_router import SETTING as ROUTER_SETTING
from relaygate.config.stored_router import with_stored_fallbacks
from relaygate.core.errors import register_secrets
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.management.models import enabled, stored_changed
from relaygate.store.sealing import Sealer, SealError, sealer_for
from relaygate.store.settings import read_settings, write_setting

__all__ = ["FIELDS", "MASK", "SETTING", "STORED_NAMES", "add_routes", "with_stored_cache", "with_stored_settings"]

log = logging.getLogger("relaygate.cache")

SETTING = "cache_settings"
"""The ``rg_config`` row of the stored cache settings."""
STORED_NAMES = frozenset({*STORED, SETTING, ROUTER_SETTING, GENERAL_SECTION})
"""Every setting the API stores that a snapshot serves (the stored-models sync reads these; no job marks)."""
MASK = "********"
SECRETS = ("password", "sentinel_password")
URLS = ("url", "redis_url")
TEST_TIMEOUT = 5.0

FIELDS: tuple[tuple[str, str, str, Any, list[str] | None, str, str | None], ...] = (
    ("redis_type", "String", "How the Redis is reached: one server, a Redis Cluster, or a master its sentinels "
     "name.", "node", ["node", "cluster", "sentinel"], "Redis Type", None),
    ("url", "String", "A redis:// or rediss:// URL (it wins over host and port).", None, None, "Redis URL", None),
    ("host", "String", "The Redis server's host.", None, None, "Host", None),
    ("port", "String", "The Redis server's port.", "6379", None, "Port", None),
    ("db", "Integer", "The database number (0 on a cluster).", 0, None, "Database Index", None),
    ("username", "String", "The ACL user, when the server has one.", None, None, "Username", None),
    ("password", "String", "The server's password (stored sealed, shown masked).", None, None, "Password", None),
    ("ssl", "Boolean", "TLS to the server.", False, None, "SSL", None),
    ("ssl_cert_reqs", "String", "Whether the server's certificate is verified (none, optional, required).",
     "required", ["none", "optional", "required"], "SSL Cert Reqs", None),
    ("ssl_check_hostname", "Boolean", "Whether the certificate must name the host.", True, None,
     "SSL Check Hostname", None),
    ("namespace", "String", "A prefix for every cache key.", None, None, "Namespace", None),
    ("ttl", "Float", "Seconds an answer stays cached.", None, None, "TTL (seconds)", None),
    ("redis_startup_nodes", "List", "The cluster's nodes, [{host, port}, ...].", None, None, "Startup Nodes",
     "cluster"),
    ("sentinel_nodes", "List", "The sentinels, [[host, port], ...].", None, None, "Sentinel Nodes", "sentinel"),
    ("service_name", "String", "The master the sentinels monitor.", None, None, "Service Name", "sentinel"),
    ("sentinel_password", "String", "The sentinels' password (stored sealed, shown masked).", None, None,
     "Sentinel Password", "sentinel"),
    ("similarity_threshold", "Float", "With it, a semantic cache: how close (0-1) a prompt must be to a stored "
     "one.", None, None, "Similarity Threshold", "semantic"),
    ("redis_semantic_cache_embedding_model", "Models_Select", "The model group that embeds prompts.",
     "text-embedding-ada-002", None, "Embedding Model", "semantic"),
    ("semantic_cache_scope", "String", "Whose prompts a semantic match may come from.", "key", ["key", "end_user"],
     "Semantic Cache Scope", "semantic"),
)
"""(name, type, description, default, options, display name, Redis kind) of each field the page edits."""
REDIS_TYPES_TEXT = {"node": "One Redis server", "cluster": "A Redis Cluster (the keys spread over its primaries)",
                    "sentinel": "A master and its replicas, the master named by Redis Sentinel (failover)"}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/cache/settings", get_settings)
    route(t, gw, "POST", "/cache/settings/test", test_settings)
    route(t, gw, "POST", "/cache/settings", save_settings)


# -- values ----------------------------------------------------------------------------------------------


def values_of(s: CacheSettings | None) -> dict[str, Any]:
    """The ``cache_params`` a cache is served with, as the page shows them (unmasked)."""
    if s is None:
        return {}
    out: dict[str, Any] = {"type": s.type, "namespace": s.namespace, "ttl": s.ttl,
                           "default_in_memory_ttl": s.default_in_memory_ttl,
                           "default_in_redis_ttl": s.default_in_redis_ttl, "mode": "default_off" if s.default_off
                           else "default_on"}
    if s.type in REDIS_TYPES:
        out.update(url=s.redis_url, host=s.redis_host, port=str(s.redis_port) if s.redis_port else None,
                   password=s.redis_password, ssl=s.redis_tls is not None or None)
        if s.redis_startup_nodes:
            out["redis_startup_nodes"] = [{"host": h, "port": p} for h, p in s.redis_startup_nodes]
        if s.redis_sentinel_nodes:
            out.update(sentinel_nodes=[[h, p] for h, p in s.redis_sentinel_nodes], service_name=s.redis_service_name,
                       sentinel_password=s.redis_sentinel_password)
        out["redis_type"] = "cluster" if s.redis_startup_nodes else "sentinel" if s.redis_sentinel_nodes else "node"
    if s.semantic is not None:
        out.update(similarity_threshold=s.similarity_threshold, redis_semantic_cache_embedding_model=s.embedding_model,
                   semantic_cache_scope="end_user" if s.semantic_end_user else "key")
    return {k: v for k, v in out.items() if v is not None}


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with passwords, and URLs that carry one, as :data:`MASK`."""
    out = dict(values)
    for k in SECRETS:
        if out.get(k):
            out[k] = MASK
    for k in URLS:
        v = out.get(k)
        if isinstance(v, str) and "@" in v:
            out[k] = MASK
    return out


def _merged(sent: Any, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The request's settings with a masked or left-out secret taken from ``saved`` (one sent empty or null is
    cleared); ``redis_type`` (the page's own field) dropped."""
    if not isinstance(sent, dict):
        raise bad_request("cache_settings: expected an object of cache_params", "cache_settings")
    out = {k: v for k, v in sent.items() if k != "redis_type" and v is not None and v != ""}
    for k in (*SECRETS, *URLS):
        if out.get(k) == MASK or (k in SECRETS and k not in sent and k in saved):
            if k in saved:
                out[k] = saved[k]
            else:
                out.pop(k, None)
    return out


async def _body(ctx: Ctx) -> dict[str, Any]:
    return await ctx.json_object("cache_settings")


def _checked(params: dict[str, Any]) -> CacheSettings:
    try:
        settings = cache_from_litellm(True, params, [], environ=dict(os.environ))
    except CacheConfigError as exc:
        raise bad_request(f"{exc.field}: {exc.detail}", exc.field.rsplit(".", 1)[-1]) from None
    assert settings is not None
    return settings


def _sealed(params: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    return {k: sealer.seal(v) if k in (*SECRETS, *URLS) and isinstance(v, str) else v for k, v in params.items()}


def _opened(params: Mapping[str, Any], sealer: Sealer) -> dict[str, Any]:
    return {k: sealer.open(v) if k in (*SECRETS, *URLS) and isinstance(v, str) else v for k, v in params.items()}


async def _saved(ctx: Ctx) -> dict[str, Any]:
    """The settings a masked password stands for: the stored ones, opened, else those of the cache served (the
    config file's)."""
    stored = (await read_settings(ctx.store)).get(SETTING)
    if isinstance(stored, dict):
        try:
            return _opened(stored, sealer_for(ctx.gw.runtime.config))
        except SealError:
            pass
    return values_of(ctx.gw.runtime.config.cache)


def with_stored_settings(config: Config, stored: Mapping[str, Any]) -> Config:
    """``config`` with every stored setting over its own: the cost settings (``config.cost_settings``), the
    fallback lists (``config.stored_router``) and the cache settings (:func:`with_stored_cache`, opened with
    this gateway's sealer)."""
    return with_stored_cache(with_stored_fallbacks(with_stored(config, stored), stored), stored, sealer_for(config))


def with_stored_cache(config: Config, stored: Mapping[str, Any], sealer: Sealer) -> Config:
    """``config`` serving the stored cache settings (``stored``: the stored settings by name) in place of its own,
    caching on; unchanged when none are stored, and when they do not open or check (logged)."""
    params = stored.get(SETTING)
    if not isinstance(params, dict):
        return config
    try:
        opened = _opened(params, sealer)
        register_secrets([v for k in (*SECRETS, *URLS) if isinstance(v := opened.get(k), str) and v])
        settings = cache_from_litellm(True, opened, [], environ=dict(os.environ))
    except (CacheConfigError, SealError) as exc:
        log.error("stored cache settings not applied (the config file's are served): %s", exc)
        return config
    return config if settings == config.cache else msgspec.structs.replace(config, cache=settings)


# -- routes ----------------------------------------------------------------------------------------------


async def get_settings(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    current = masked(values_of(ctx.gw.runtime.config.cache))
    fields = [{"field_name": n, "field_type": t, "field_value": current.get(n), "field_description": d,
               "field_default": dflt, "options": opts, "ui_field_name": ui, "redis_type": kind}
              for n, t, d, dflt, opts, ui, kind in FIELDS]
    return {"fields": fields, "current_values": current, "redis_type_descriptions": REDIS_TYPES_TEXT}


async def test_settings(ctx: Ctx) -> Any:
    admin_only(ctx)
    params = _merged((await _body(ctx)).get("cache_settings"), await _saved(ctx))
    if params.get("type", "redis") not in REDIS_TYPES:
        return {"status": "failed", "message": "Only Redis cache types can be tested", "error": None}
    params.setdefault("type", "redis")
    try:
        settings = cache_from_litellm(True, params, [], environ=dict(os.environ))
    except CacheConfigError as exc:
        return {"status": "failed", "message": "Cache connection test failed: invalid settings",
                "error": f"{exc.field}: {exc.detail}"}
    assert settings is not None
    redis = RedisCache.from_settings(msgspec.structs.replace(settings, redis_timeout=TEST_TIMEOUT))
    redis.quiet = True
    try:
        nodes = await asyncio.wait_for(redis.ping_nodes(), TEST_TIMEOUT + 1)
    except (TimeoutError, LookupError, OSError) as exc:
        nodes = {"redis": False}
        log.info("cache settings test: %s", type(exc).__name__)
    finally:
        await redis.aclose()
    silent = sorted(name for name, ok in nodes.items() if not ok)
    if not nodes or silent:
        why = f" ({redis.last_failure[:300]})" if redis.last_failure else ""
        return {"status": "failed", "message": "Cache connection test failed",
                "error": f"no answer to PING from {', '.join(silent) or 'the server'}{why}"}
    return {"status": "success", "message": "Cache connection test successful", "error": None}


async def save_settings(ctx: Ctx) -> Any:
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) in the "
                          "config to change the cache settings through the API", "store_model_in_db")
    params = _merged((await _body(ctx)).get("cache_settings"), await _saved(ctx))
    _checked(params)
    sealer = sealer_for(ctx.gw.runtime.config)
    await write_setting(ctx.store, SETTING, _sealed(params, sealer), ctx.caller.user_id or "default_user_id")
    await stored_changed(ctx)
    return {"message": "Cache settings updated successfully", "status": "success", "settings": masked(params)}
