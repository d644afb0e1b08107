"""The stored-response routes of the Responses API: retrieve, delete, list input items, cancel.

``GET /v1/responses/{response_id}``, ``DELETE /v1/responses/{response_id}``,
``GET /v1/responses/{response_id}/input_items`` (OpenAI's list: ``object: "list"``, ``data``, ``first_id``,
``last_id``, ``has_more``; ``limit`` 1-100, default 20, ``order`` ``desc`` by default, ``after`` an item id)
and ``POST /v1/responses/{response_id}/cancel``, each also without ``/v1``. :func:`add_routes` adds them to
the gateway's route table (``gateway.core``).

Every route authenticates as the LLM routes do (the pipeline's resolver: a 401 in OpenAI's shape), then
reads through :class:`~relaygate.frontends.responses_state.ResponseState`, which decides visibility: a
response another key stored (outside the caller's team) is OpenAI's 404, exactly as one that never existed.
Without a database every route answers a 404 saying responses are not stored on this gateway.

A background response a native upstream runs (``openai/``, ``azure/``) is the upstream's to advance: a
``GET`` of one still ``queued`` / ``in_progress`` asks the upstream (its own id, on the deployment that has
it) and stores what it says; ``cancel`` is passed to it the same way. One a translated deployment runs is a
task of the worker that accepted it (``ResponseState.runs``); a cancel that reaches another worker marks it
cancelled in the database, and the worker running it stops it within a second.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, quote

import orjson

from relaygate.core import errors
from relaygate.frontends.responses_state import Gateway, ResponseState, state_of, valid_id
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.store.responses import StoredResponse

log = logging.getLogger("relaygate.responses")

_RUNNING = ("queued", "in_progress")


def add_routes(t: RouteTable, gw: Gateway) -> None:
    """Add the stored-response routes of ``gw`` to ``t``."""
    st = state_of(gw)
    for prefix in ("/v1/responses", "/responses"):
        t.add("GET", prefix + "/{response_id}", _route(gw, st, _retrieve))
        t.add("DELETE", prefix + "/{response_id}", _route(gw, st, _delete))
        t.add("GET", prefix + "/{response_id}/input_items", _route(gw, st, _input_items))
        t.add("POST", prefix + "/{response_id}/cancel", _route(gw, st, _cancel))


def _route(gw: Gateway, st: ResponseState, handler: Any) -> Any:
    async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        headers = scope["headers"]
        principals = gw.runtime.principals
        who = principals.resolve_cached(headers) or await principals.resolve(headers)
        if who.jwt is not None:  # a JWT's allowed routes (auth.jwt_routes); None for every other caller
            who.jwt.check(scope["path"])
        if who.routes is not None:  # a virtual key's allowed_routes (auth.key_routes)
            who.routes.check(scope["path"])
        if not st.enabled:
            raise errors.GatewayError(
                "Responses are not stored on this gateway: it has no database (server.embedded_database is false "
                "and no database_url is set)", status=404, type="invalid_request_error", param="response_id",
                code="not_found")
        result = await handler(gw, st, who, params["response_id"], _query(scope))
        await send_json(send, 200, orjson.dumps(result))

    return serve


def _query(scope: Scope) -> dict[str, str]:
    qs = scope.get("query_string") or b""
    return {k: v[0] for k, v in parse_qs(qs.decode("latin-1")).items() if v}


async def _retrieve(gw: Gateway, st: ResponseState, who: Any, rid: str, query: dict[str, str]) -> Any:
    row = await st.get(rid, who)
    if row.background and row.status in _RUNNING and row.upstream_id and rid not in st.runs:
        row = await _ask_upstream(gw, st, row, "")
    return row.response


async def _delete(gw: Gateway, st: ResponseState, who: Any, rid: str, query: dict[str, str]) -> Any:
    row = await st.get(rid, who)
    await st.delete(rid, who)
    if row.upstream_id:  # the upstream's copy goes too (best effort: its own retention ends it otherwise)
        try:
            await _upstream(gw, row, "DELETE", "")
        except errors.GatewayError as exc:
            log.warning("responses: the upstream copy of %s was not deleted: %s", rid, exc.message)
    return {"id": rid, "object": "response", "deleted": True}


async def _cancel(gw: Gateway, st: ResponseState, who: Any, rid: str, query: dict[str, str]) -> Any:
    row = await st.get(rid, who)
    if row.background and row.status in _RUNNING and row.upstream_id and rid not in st.runs:
        return (await _ask_upstream(gw, st, row, "/cancel")).response
    return (await st.cancel(rid, who)).response


async def _input_items(gw: Gateway, st: ResponseState, who: Any, rid: str, query: dict[str, str]) -> Any:
    row = await st.get(rid, who)
    limit = _int(query.get("limit"), 20, 1, 100, "limit")
    order = query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise errors.BadRequest(f"order must be 'asc' or 'desc', got {order!r}", param="order")
    items = [it for it in row.input if isinstance(it, dict)]
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after:
        at = next((i for i, it in enumerate(items) if it.get("id") == after), None)
        if at is None:
            raise errors.BadRequest(f"after: no input item with id {after!r} in this response", param="after")
        items = items[at + 1:]
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None, "has_more": len(items) > limit}


def _int(raw: str | None, default: int, low: int, high: int, param: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.BadRequest(f"{param} must be an integer, got {raw!r}", param=param) from None
    if not low <= value <= high:
        raise errors.BadRequest(f"{param} must be between {low} and {high}, got {value}", param=param)
    return value


def _target(gw: Gateway, deployment_id: str) -> Any:
    for group in gw.runtime.router.groups.values():
        for target in group.targets:
            if target.dep.id == deployment_id:
                return target
    return None


async def _upstream(gw: Gateway, row: StoredResponse, method: str, action: str) -> tuple[int, bytes] | None:
    """``method`` on the upstream's copy of ``row`` (``action``: ``""`` or ``"/cancel"``) at the deployment
    that holds it; None when that deployment is no longer served."""
    from relaygate.upstream.base import UpstreamRequest  # the IO shell's request type

    target = _target(gw, row.deployment_id or "")
    up_id = row.upstream_id or ""
    if target is None or not target.provider.native_responses or not valid_id(up_id):
        return None
    p = target.provider
    post = method == "POST"
    headers = [*p.media_headers(), ("Content-Type", "application/json")] if post else p.media_headers()
    resp = await (p.transport or gw.pipeline.transport).send(
        UpstreamRequest(method, p.responses_url("/" + quote(up_id, safe="") + action), headers,
                        b"{}" if post else b""),
        gw.runtime.timeouts(target, False, None))
    return resp.status, await resp.read()


async def _ask_upstream(gw: Gateway, st: ResponseState, row: StoredResponse, action: str) -> StoredResponse:
    """A native background response's state (``action`` ``""``) or its cancellation (``"/cancel"``) from the
    upstream that runs it; stored when it moved. The stored row answers when the deployment is gone."""
    method = "POST" if action else "GET"
    got = await _upstream(gw, row, method, action)
    if got is None:
        return row
    status, data = got
    if status >= 400:
        log.warning("responses: %s of upstream response %s answered %d", method, row.response_id, status)
        if action:
            raise errors.BadRequest(f"The upstream could not cancel response {row.response_id} ({status})",
                                    param="response_id")
        return row
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return row
    if not isinstance(obj, dict):
        return row
    obj.update(id=row.response_id, previous_response_id=row.previous_response_id, model=row.model,
               background=True)
    new = StoredResponse(**{**{f: getattr(row, f) for f in row.__struct_fields__},
                            "status": str(obj.get("status") or row.status), "response": obj, "updated_at": None})
    st.put(new)
    return new
