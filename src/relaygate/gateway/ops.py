"""The operational routes: models, health, readiness, metrics, ``/routes``, and ``POST /config/reload``.

``/v1/models`` answers as LiteLLM's: OpenAI-shaped items (``id``, ``object``, ``created``, ``owned_by``;
details are on ``/model/info``), the groups the key may use (model access groups expanded), and LiteLLM's
query parameters: ``return_wildcard_routes`` (wildcard names such as ``openai/*`` too),
``include_model_access_groups`` (the access group names too), ``only_model_access_groups`` (only them),
``include_metadata`` with ``fallback_type`` (``general``, ``context_window``, ``content_policy``: each item's
``metadata.fallbacks``). With ``litellm_settings.check_provider_endpoint``, wildcard deployments list
their provider's models (``gateway.discovery``).

Each handler takes ``(gateway, scope, receive, send, params)``; errors are ``GatewayError`` and reach the
client in OpenAI's shape through the gateway (``/health`` and the health check history are
``gateway.health_routes``'s). Routes that show the deployment (``/health``; ``/metrics``
with ``require_auth_for_metrics_endpoint``, open otherwise as LiteLLM's) or change it (``/config/reload``)
need a valid key; ``/config/reload`` needs the master key (or an open gateway), as LiteLLM's admin routes do.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

import orjson

from relaygate import __version__
from relaygate.auth import Principal
from relaygate.config.loader import ConfigError
from relaygate.config.stored_router import fallbacks_of
from relaygate.core import errors
from relaygate.gateway.config_view import add_routes as add_config_view_routes
from relaygate.gateway.cost_map import add_routes as add_cost_map_routes
from relaygate.gateway.drain import SHUTTING_DOWN, db_field
from relaygate.gateway.drain import add_routes as add_drain_routes
from relaygate.gateway.health_routes import add_routes as add_health_routes
from relaygate.gateway.health_view import add_routes as add_health_view_routes
from relaygate.gateway.health_view import healthy_groups
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

log = logging.getLogger("relaygate")
_CREATED = 1677610602  # what LiteLLM's /v1/models reports


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path, handler in (("/v1/models", models), ("/models", models),
                          ("/health/liveliness", liveness), ("/health/liveness", liveness),
                          ("/health/readiness", readiness), ("/metrics", metrics),
                          ("/", root)):
        t.add("GET", path, lambda sc, rc, sd, p, h=handler: h(gw, sc, rc, sd, p))
    t.add("GET", "/routes", lambda sc, rc, sd, p: routes(gw, sc, rc, sd, p))
    for path in ("/v1/models/{model_id:path}", "/models/{model_id:path}"):
        t.add("GET", path, lambda sc, rc, sd, p: model_info(gw, sc, rc, sd, p))
    t.add("POST", "/config/reload", lambda sc, rc, sd, p: config_reload(gw, sc, rc, sd, p))
    add_health_view_routes(t, gw)  # GET /health/deployments
    add_health_routes(t, gw)  # GET /health, /health/history, /health/latest, /active/callbacks, /settings
    add_config_view_routes(t, gw)  # GET /config/view
    add_drain_routes(t, gw)  # GET /health/drain, /health/backlog, /health/readiness/details
    add_cost_map_routes(t, gw)  # POST /reload/model_cost_map, GET /model/cost_map/source


async def principal(gw: Gateway, scope: Scope) -> Principal:
    """Who the request is, as every admin route sees it (``management.common.caller_principal``): the key (a
    cache hit costs no await; 401 for a bad key; a JWT's allowed routes), or without a key header the admin
    UI's session cookie (401 for a dead session, 403 for a state change without its CSRF token)."""
    from relaygate.management.common import caller_principal

    return await caller_principal(gw, scope)


async def _visible_models(gw: Gateway, scope: Scope) -> list[str]:
    """The model groups this request's key may use (every group for the master key)."""
    who = await principal(gw, scope)
    names = gw.router.public_models()
    return names if who.key is None else [n for n in names if who.allows(n)]


def query(scope: Scope) -> dict[str, str]:
    """The query string's parameters (first value of each)."""
    qs = scope.get("query_string") or b""
    return {k: v[0] for k, v in urllib.parse.parse_qs(qs.decode("latin-1")).items() if v}


def _flag(q: dict[str, str], name: str) -> bool:
    return q.get(name, "").strip().lower() in ("1", "true", "yes", "on")


async def models(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    q = query(scope)
    who = await principal(gw, scope)
    rt = gw.runtime
    key = who.key
    groups = rt.principals.access_groups
    names = [n for n in gw.router.public_models() if key is None or key.allows(n)]
    granted = list(groups) if key is None or key.models is None else list(key.access_groups)
    if _flag(q, "only_model_access_groups"):
        names = granted
    else:
        if _flag(q, "healthy_only") or rt.config.general.model_list_healthy_only:
            names = healthy_groups(gw, names)
        wild = [d for d in rt.config.deployments if d.is_wildcard and (key is None or key.allows(d.model_name))]
        if _flag(q, "return_wildcard_routes") if "return_wildcard_routes" in q else \
                rt.config.general.return_wildcard_routes:  # the request's choice, else LiteLLM's setting
            names.extend(d.model_name for d in wild)
        if rt.config.check_provider_endpoint and wild:
            from relaygate.gateway.discovery import discovery_of, listable

            found = await discovery_of(gw).names(gw, [d for d in wild if listable(d)])
            names.extend(n for n in found if key is None or key.allows(n))
        if _flag(q, "include_model_access_groups"):
            names.extend(granted)
    data: list[dict[str, Any]] = [{"id": name, "object": "model", "created": _CREATED, "owned_by": "openai"}
                                  for name in dict.fromkeys(names)]
    if _flag(q, "include_metadata"):
        kind = q.get("fallback_type") or "general"
        for item in data:
            item["metadata"] = {"fallbacks": fallbacks_of(rt.config, item["id"], kind)}
    await send_json(send, 200, orjson.dumps({"data": data, "object": "list"}))


async def routes(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """LiteLLM's ``GET /routes``: every route of the app (``path``, ``methods``, ``name``, ``endpoint``)."""
    await principal(gw, scope)
    by_path: dict[str, dict[str, Any]] = {}
    for method, path, handler in gw.routes.handlers():
        entry = by_path.get(path)
        if entry is None:
            name = getattr(handler, "__name__", "")
            if not name or name == "<lambda>":
                name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(":", "_") or "root"
            entry = by_path[path] = {"path": path, "methods": [], "name": name, "endpoint": name}
        entry["methods"].append(method)
    out = [dict(e, methods=sorted(set(e["methods"]))) for e in by_path.values()]
    await send_json(send, 200, orjson.dumps({"routes": out}))


async def model_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    model = params["model_id"]
    if model not in await _visible_models(gw, scope):
        raise errors.NotFound(f"The model `{model}` does not exist", param="model", code="model_not_found")
    await send_json(send, 200, orjson.dumps({"id": model, "object": "model", "created": _CREATED,
                                             "owned_by": "openai"}))


async def liveness(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    if gw.drain.marked():  # LiteLLM: a draining worker is no longer live either (terminated on schedule)
        await send_json(send, 503, SHUTTING_DOWN)
        return
    await send_json(send, 200, b'"I\'m alive!"')


async def readiness(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    from relaygate.core import _ext

    if gw.drain.marked():
        await send_json(send, 503, SHUTTING_DOWN)
        return
    db, unready = await db_field(gw)
    body = {"status": "healthy", "db": db, "cache": None, "litellm_version": __version__,
            "relaygate_version": __version__, "extensions": dict(_ext.LOADED),
            "transport": type(gw.transport).__name__, "config_generation": gw.runtime.generation}
    await send_json(send, 503 if unready else 200, orjson.dumps(body))


async def root(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await send_json(send, 200, orjson.dumps({"name": "relaygate", "version": __version__}))


async def metrics(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Prometheus text. Open, as LiteLLM's, unless ``litellm_settings.require_auth_for_metrics_endpoint``:
    then any valid key (LiteLLM runs its key check); label values are bounded whoever scrapes."""
    observe = gw.config.observe
    if observe is not None and observe.require_auth_for_metrics_endpoint:
        await principal(gw, scope)
    gw.completions.drain_now()  # every answer already sent is counted
    body = gw.metrics.render()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain; version=0.0.4"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def config_reload(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Reload the config file on every worker: this one at once, the others within ``reload_poll_interval``.
    An invalid file is a 400 with the problems, and the old config keeps serving."""
    from relaygate.gateway.core import NothingToReload

    who = await principal(gw, scope)
    if who.key is not None or who.role != "proxy_admin":  # a key, or a UI session that is not the admin's
        raise errors.AuthError(
            "Authentication Error, Only proxy admin can be used to reload the config. Route=/config/reload",
            code="401")
    try:
        rt = await gw.reload("POST /config/reload", announce=True)
    except NothingToReload as exc:
        raise errors.BadRequest(str(exc)) from None
    except ConfigError as exc:
        log.error("config reload refused, still serving generation %d: %s", gw.runtime.generation, exc)
        raise errors.BadRequest(f"config reload refused, the previous config keeps serving: {exc}") from None
    await send_json(send, 200, orjson.dumps({"status": "reloaded", **rt.describe()}))
