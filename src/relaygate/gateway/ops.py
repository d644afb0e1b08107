"""The operational routes: models, health, readiness, metrics, and ``POST /config/reload``.

Each handler takes ``(gateway, scope, receive, send, params)``; errors are ``GatewayError`` and reach the
client in OpenAI's shape through the gateway. Routes that show the deployment (``/health``, ``/metrics``)
or change it (``/config/reload``) need a valid key; ``/config/reload`` needs the master key (or an open
gateway), as LiteLLM's admin routes do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from relaygate import __version__
from relaygate.auth import Principal
from relaygate.config.loader import ConfigError
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.core.views import decode_view
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.providers.base import Call
from relaygate.router import Target
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.calls import refresh_token
from relaygate.upstream.identity import identity_client

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

log = logging.getLogger("relaygate")
_CREATED = 1677610602  # what LiteLLM's /v1/models reports


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path, handler in (("/v1/models", models), ("/models", models),
                          ("/health/liveliness", liveness), ("/health/liveness", liveness),
                          ("/health/readiness", readiness), ("/health", health), ("/metrics", metrics),
                          ("/", root)):
        t.add("GET", path, lambda sc, rc, sd, p, h=handler: h(gw, sc, rc, sd, p))
    for path in ("/v1/models/{model_id:path}", "/models/{model_id:path}"):
        t.add("GET", path, lambda sc, rc, sd, p: model_info(gw, sc, rc, sd, p))
    t.add("POST", "/config/reload", lambda sc, rc, sd, p: config_reload(gw, sc, rc, sd, p))


async def principal(gw: Gateway, scope: Scope) -> Principal:
    """Who the request is (a cache hit costs no await; 401 for a bad key)."""
    principals = gw.runtime.principals
    headers = scope["headers"]
    return principals.resolve_cached(headers) or await principals.resolve(headers)


async def _visible_models(gw: Gateway, scope: Scope) -> list[str]:
    """The model groups this request's key may use (every group for the master key)."""
    who = await principal(gw, scope)
    names = gw.router.public_models()
    return names if who.key is None else [n for n in names if who.allows(n)]


async def models(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    data = [{"id": name, "object": "model", "created": _CREATED, "owned_by": "openai"}
            for name in await _visible_models(gw, scope)]
    await send_json(send, 200, orjson.dumps({"data": data, "object": "list"}))


async def model_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    model = params["model_id"]
    if model not in await _visible_models(gw, scope):
        raise errors.NotFound(f"The model `{model}` does not exist", param="model", code="model_not_found")
    await send_json(send, 200, orjson.dumps({"id": model, "object": "model", "created": _CREATED,
                                             "owned_by": "openai"}))


async def liveness(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await send_json(send, 200, b'"I\'m alive!"')


async def readiness(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    from relaygate.core import _ext

    body = {"status": "healthy", "db": "Not connected", "cache": None, "litellm_version": __version__,
            "relaygate_version": __version__, "extensions": dict(_ext.LOADED),
            "transport": type(gw.transport).__name__, "config_generation": gw.runtime.generation}
    await send_json(send, 200, orjson.dumps(body))


async def root(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await send_json(send, 200, orjson.dumps({"name": "relaygate", "version": __version__}))


async def metrics(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
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
    if who.key is not None:
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


async def health(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Check every deployment (LiteLLM's ``/health`` shape): a cheap upstream call each, concurrently."""
    await principal(gw, scope)
    rt = gw.runtime
    targets = [t for g in rt.router.groups.values() for t in g.targets]
    timeout = rt.config.general.health_check_timeout
    timeouts = Timeouts(connect=timeout, first_byte=timeout, idle=timeout, total=timeout)

    async def check(target: Target) -> tuple[Target, str | None]:
        provider = target.provider
        transport = provider.transport or gw.transport
        try:
            req = provider.health_request() or await _ping_request(target, rt.config.server.http_proxy)
            resp = await transport.send(req, timeouts)
            data = await resp.read()
        except GatewayError as exc:
            return target, exc.message
        except Exception as exc:  # one deployment's misconfiguration never fails the whole report
            log.exception("health check of deployment %s failed", target.dep.id)
            return target, f"health check failed: {type(exc).__name__}: {exc}"
        if resp.status >= 400:
            return target, provider.map_error(resp.status, data, None).message
        return target, None

    results = await asyncio.gather(*(check(t) for t in targets))
    healthy, unhealthy = [], []
    for target, err in results:
        entry: dict[str, Any] = {"model": target.dep.model, "model_name": target.dep.model_name,
                                 "model_id": target.dep.id}
        if target.provider.api_base:
            entry["api_base"] = target.provider.api_base
        if err is None:
            healthy.append(entry)
        else:
            entry["error"] = err
            unhealthy.append(entry)
    body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
    await send_json(send, 200, orjson.dumps(body))


async def _ping_request(target: Target, proxy: str | None) -> UpstreamRequest:
    """For adapters with no cheap health endpoint: a one-token completion, as LiteLLM's health check makes."""
    provider = target.provider
    now = time.time()
    if provider.supports("chat"):
        body = orjson.dumps({"model": target.upstream_model, "max_tokens": 1,
                             "messages": [{"role": "user", "content": "ping"}]})
        call = Call("chat", body, decode_view("chat", body), target.upstream_model, target.upstream_model, now)
    else:
        body = orjson.dumps({"model": target.upstream_model, "input": "ping"})
        call = Call("embeddings", body, decode_view("embeddings", body), target.upstream_model,
                    target.upstream_model, now)
    if provider.token_source is not None:
        await refresh_token(provider.token_source, identity_client(proxy))
    if provider.hooks:
        return provider.build_requests(call, {})[0]
    return provider.build_request(call)
