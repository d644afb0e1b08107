"""``GET /health`` as LiteLLM's, the health check history routes, and ``GET /active/callbacks``.

What it owns:

- ``GET /health`` (any valid key): the deployments' checks (``gateway.health_view``) in LiteLLM's shape
  (``healthy_endpoints``, ``unhealthy_endpoints`` and their counts). With ``model`` (the deployments a request
  for that name reaches, else those whose ``litellm_params.model`` it is) or ``model_id`` (one deployment: an id
  no deployment has is a 404, ``Model with ID <id> not found``) only those are checked, and none healthy is a
  503 with the same body, so a monitor can read the status alone. A virtual key checks only the deployments of
  the model groups it may use (unless it is the proxy admin's key with every model): asking for another is a
  403 ``key not allowed to health-check model <name>``. Only the proxy admin sees ``api_base`` (without the
  userinfo or query string a URL may carry credentials in, as ``/health/deployments`` shows it); everyone else
  gets the entries without it and a ``Litellm-Health-Field-Notice`` header saying so (LiteLLM's). With
  ``background_health_checks`` on, the answer is the last background round's results instead of new upstream
  calls (the setting's point, in LiteLLM's words: models are not queried each time ``/health`` is called); a
  deployment the background never checks (``background_health_check_model_groups``) is left out until it is.
  A check that named a model is kept in the health check history (``gateway.health_history``) with the
  caller's user id as ``checked_by``.
- ``GET /health/history`` (proxy admin and its viewer): stored checks newest first, filtered by ``model`` (its
  name) and ``status_filter`` (``healthy`` / ``unhealthy``), ``limit`` 1-1000 (100), ``offset``:
  ``{"health_checks": [...], "total_records", "limit", "offset"}``; ``GET /health/latest``: the newest check of
  each deployment and model, ``{"latest_health_checks": {model_id or model_name: check}, "total_models"}``.
  Without a database both are the management API's 503.
- ``GET /active/callbacks`` and ``GET /settings`` (proxy admin and its viewer): LiteLLM's debugging view of
  the callbacks and alerting the gateway runs, names only (no parameter, URL or credential of any);
  ``GET /callbacks/list``: the same names as LiteLLM's ``{"success", "failure", "success_and_failure"}``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core.errors import GatewayError
from relaygate.core.urls import public_base
from relaygate.gateway.health_history import CheckRow, log_of
from relaygate.gateway.health_view import background_settings, book_of, check_deployments, health_targets
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.store import health_checks

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway
    from relaygate.router import Target

ADMIN_ONLY_FIELDS = ("api_base", "api_version", "aws_bedrock_runtime_endpoint")
"""Entry fields only the proxy admin is shown (LiteLLM's ``ADMIN_ONLY_HEALTH_DISPLAY_PARAMS``, of those a
relaygate entry can carry)."""
FIELD_NOTICE = (b"litellm-health-field-notice", f"{', '.join(ADMIN_ONLY_FIELDS)} are admin-only on this "
                "endpoint".encode())
STATUSES = frozenset({"healthy", "unhealthy"})


def _targets_of(gw: Gateway, who: Any, admin: bool, model: str | None,
                model_id: str | None) -> tuple[list[Target], str | None]:
    """The deployments this ``/health`` call checks and the model name a targeted check is kept under (see the
    module docstring); raises its 404 and 403."""
    router = gw.runtime.router
    key = who.key
    restricted = key is not None and (not admin or key.models is not None)
    visible = [t for t in health_targets(gw, False) if not restricted or who.allows(t.dep.model_name)]
    if model_id is not None:
        named = next((t.dep.model_name for g in router.groups.values() for t in g.targets if t.dep.id == model_id),
                     None)
        if named is None:
            raise GatewayError(f"Model with ID {model_id} not found", status=404, type="not_found_error",
                               param="model_id")
        model = named
        chosen = [t for t in visible if t.dep.id == model_id]
    elif model is not None:
        group = router.groups.get(model) or router.groups.get(router.aliases.get(model, ""))
        ids = {t.dep.id for t in group.targets} if group is not None else set()
        chosen = [t for t in visible if t.dep.id in ids] or [t for t in visible if t.dep.model == model]
    else:
        return visible, None
    if restricted and not chosen:
        raise GatewayError(f"key not allowed to health-check model_id {model_id}" if model_id is not None
                           else f"key not allowed to health-check model {model}", status=403, type="auth_error",
                           param="model_id" if model_id is not None else "model")
    return chosen, model


async def health(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    from relaygate.gateway.ops import principal, query

    who = await principal(gw, scope)
    q = query(scope)
    model = q.get("model") or None
    model_id = q.get("model_id") or None
    admin = who.role == "proxy_admin"
    targets, kept_as = _targets_of(gw, who, admin, model, model_id)
    background = background_settings(gw.runtime.config) is not None
    start = time.perf_counter()
    if background:  # the last background round's results
        last = book_of(gw).last
        results = [(t, None if r.ok else (r.error or "unhealthy")) for t in targets
                   if (r := last.get(t.dep.id)) is not None]
    else:
        results = await check_deployments(gw, targets)
    details = gw.runtime.config.general.health_check_details
    healthy, unhealthy = [], []
    for target, err in results:
        entry: dict[str, Any] = {"model": target.dep.model}
        if details:
            entry.update(model_name=target.dep.model_name, model_id=target.dep.id)
            shown = public_base(target.provider.api_base) if admin else None  # never its userinfo or query
            if shown:
                entry["api_base"] = shown
        if err is None:
            healthy.append(entry)
        else:
            if details:
                entry["error"] = err
            unhealthy.append(entry)
    targeted = kept_as is not None
    if kept_as is not None and not background:
        first = next((err for _, err in results if err is not None), None)
        log_of(gw).submit([CheckRow(kept_as, model_id, len(healthy), len(unhealthy), first,
                                    round((time.perf_counter() - start) * 1000.0, 3), who.record_user)])
    body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy, "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy)}
    await send_json(send, 503 if targeted and not healthy else 200, orjson.dumps(body),
                    [] if admin else [FIELD_NOTICE])


def _repr_list(names: Any) -> str:
    """A list as LiteLLM's ``str(general_settings.get("alerting"))`` spells it (``None`` when empty)."""
    return "[" + ", ".join(repr(str(n)) for n in names) + "]" if names else "None"


def active_callbacks(gw: Gateway) -> dict[str, Any]:
    """LiteLLM's ``/active/callbacks`` body from this snapshot's settings: ``callbacks`` are the names in both
    the success and the failure lists (what ``litellm_settings.callbacks`` sets), ``success_callback`` and
    ``failure_callback`` the others; the async lists hold every success and failure name, as LiteLLM's
    registration copies them there."""
    cfg = gw.runtime.config
    observe = cfg.observe
    success = list(observe.success_callbacks) if observe is not None else []
    failure = list(observe.failure_callbacks) if observe is not None else []
    if observe is not None and observe.json_logs:
        success.append("json_logs")
        failure.append("json_logs")
    both = [n for n in success if n in failure]
    only_success = [n for n in success if n not in both]
    only_failure = [n for n in failure if n not in both]
    service = list(observe.service_callbacks) if observe is not None else []
    alerting = list(observe.alerting) if observe is not None else []
    lists = {"litellm.callbacks": both + service, "litellm.input_callback": [],
             "litellm.failure_callback": only_failure, "litellm.success_callback": only_success,
             "litellm._async_success_callback": success, "litellm._async_failure_callback": failure,
             "litellm._async_input_callback": []}
    every = [n for names in lists.values() for n in names]
    return {"alerting": _repr_list(alerting), **lists, "all_litellm_callbacks": every, "num_callbacks": len(every),
            "num_alerting": len(alerting), "litellm.request_timeout": cfg.server.request_timeout}


def callbacks_by_type(active: dict[str, Any]) -> dict[str, list[str]]:
    """LiteLLM's ``/callbacks/list`` (``CallbacksByType``) from the :func:`active_callbacks` lists: a name in
    ``callbacks`` or in both the success and failure lists is ``success_and_failure``."""
    success = set(active["litellm._async_success_callback"])
    failure = set(active["litellm._async_failure_callback"])
    both = set(active["litellm.callbacks"]) | (success & failure)
    return {"success": sorted(success - both), "failure": sorted(failure - both), "success_and_failure": sorted(both)}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    from relaygate.management.common import Ctx, admin_only, check_admin, route

    t.add("GET", "/health", lambda sc, rc, sd, p: health(gw, sc, rc, sd, p))

    async def history(ctx: Ctx) -> dict[str, Any]:
        admin_only(ctx, read=True)
        status = ctx.query.get("status_filter") or None
        if status is not None and status not in STATUSES:
            raise GatewayError("status_filter must be healthy or unhealthy", status=400, type="bad_request_error",
                               param="status_filter")
        limit = ctx.int_arg("limit", 100, 1, 1000)
        offset = ctx.int_arg("offset", 0, 0, 2**31 - 1)
        rows = await health_checks.history(ctx.store, model=ctx.query.get("model") or None, status=status,
                                           limit=limit, offset=offset)
        return {"health_checks": rows, "total_records": len(rows), "limit": limit, "offset": offset}

    async def latest(ctx: Ctx) -> dict[str, Any]:
        admin_only(ctx, read=True)
        rows = await health_checks.latest(ctx.store)
        checks = {r["model_id"] or r["model_name"]: r for r in rows}
        return {"latest_health_checks": checks, "total_models": len(checks)}

    from relaygate.gateway import service_checks, test_connection

    test_connection.add_routes(t, gw)  # POST /health/test_connection
    service_checks.add_routes(t, gw)  # GET /health/services
    route(t, gw, "GET", "/health/history", history)
    route(t, gw, "GET", "/health/latest", latest)

    for path in ("/active/callbacks", "/settings", "/callbacks/list"):
        async def callbacks(scope: Scope, receive: Receive, send: Send, params: Params, path: str = path) -> None:
            await check_admin(gw, scope, receive, params, path, read=True)
            body = active_callbacks(gw)
            await send_json(send, 200, orjson.dumps(callbacks_by_type(body) if path == "/callbacks/list" else body))

        t.add("GET", path, callbacks)
