"""LiteLLM's other spend views: per tag, provider, team and end user, and a cost calculator.

Routes and answers (LiteLLM's shapes, ``spend_management_endpoints.py``; dates ``YYYY-MM-DD``, UTC days, both
included, as everywhere in relaygate — LiteLLM's ``BETWEEN $1::date AND $2::date`` stops at the end date's
midnight on some of these routes and takes the whole day on others):

- ``GET /global/spend/tags`` (``start_date``, ``end_date``, both required; ``tags``: comma-separated, ``all-tags``
  or none for every tag): ``{"spend_per_tag": [{"name", "spend", "log_count"}]}``, the most spend first. A
  request with several tags counts for each.
- ``GET /global/spend/all_tag_names``: ``{"tag_names": [...]}``, every tag a spend row carries (at most 10,000).
- ``GET /global/spend/provider`` (``start_date``, ``end_date``, required): ``[{"provider", "spend"}]`` from the
  rows' provider (the deployment's; rows no deployment answered, such as cache hits, are in none).
- ``GET /global/spend/teams``: the last 30 days, ``{"daily_spend": [{"date", <team>: spend}], "teams": [...],
  "total_spend_per_team": [{"team_id": <team>, "total_spend"}]}`` (the 10 teams that spent most). A team is
  named by its alias, else by its id (LiteLLM lumps every team without an alias in with the rows of no team,
  as ``Unassigned``; here only the rows of no team are ``Unassigned``).
- ``GET /global/all_end_users``: ``{"end_users": [...]}``, every customer id a spend row carries.
- ``POST /global/spend/end_users`` (body, all optional: ``api_key`` (a key or its hash), ``startTime``,
  ``endTime``; the last 30 days by default): the 100 customers that spent most,
  ``[{"end_user", "total_count", "total_spend"}]``.
- ``GET /spend/logs/v2`` and ``/spend/logs/ui`` (LiteLLM's paged logs; ``start_date`` and ``end_date``
  required, ``YYYY-MM-DD HH:MM:SS`` UTC as LiteLLM's, or a date or ISO time; the end's whole second is in;
  ``page`` from 1, ``page_size`` 1-100 (50); filters ``api_key`` (a key or its hash), ``user_id``,
  ``team_id``, ``request_id``, ``key_alias``, ``end_user``, ``model`` (the model group or the upstream
  model), ``status_filter`` (``success`` / ``failure``), ``min_spend`` / ``max_spend``; ``sort_by``
  ``startTime`` (default) or ``spend``, ``sort_order`` ``desc`` (default) or ``asc``): ``{"data": [rows in
  /spend/logs' shape], "total", "page", "page_size", "total_pages"}``. ``GET /spend/logs/ui/{request_id}``:
  that row, or ``null``.
- ``POST /spend/calculate``: ``{"cost"}`` of ``{"model", "messages"}`` before a call (the prompt's estimated
  tokens at the model's input price: a model group's first deployment, or the catalog's model of that name),
  or of ``{"completion_response"}`` after one (its usage, cache and reasoning tokens included, priced as the
  gateway prices an answer). A model nobody priced is a 400 naming it, not a cost of 0.

Spend is exact (summed in nano-USD) and not rounded: LiteLLM rounds a tag's spend to 4 decimals and a team's
day to 2, which shows a team that spent $0.004 a day as having spent nothing.

Who sees what: tags, tag names, providers and paged logs are the caller's own rows for a caller that is not
an admin (its user's, or its key's for a key without a user; LiteLLM shows every caller every tag); teams and
end users are the admin's (and its viewer's); any key may calculate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from relaygate.core import tokens
from relaygate.core.errors import GatewayError
from relaygate.cost import details, usd
from relaygate.cost.adjust import Parts
from relaygate.cost.prices import PriceTable
from relaygate.http.body import read_body
from relaygate.http.routes import RouteTable
from relaygate.management.activity import midnight, own_scope, range_bounds
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, forbidden, route
from relaygate.management.keys import token_of
from relaygate.management.spend import logged_fields, own_logs, parse_date
from relaygate.store import NotFound
from relaygate.store.activity import Scope, daily_by_team, spend_by_tag, tag_names, top_groups
from relaygate.store.spend import NANOS, count_spend_logs, read_spend_logs
from relaygate.store.spend_rows import log_row

MAX_NAMES = 10_000
"""Tag names and end users listed at most."""
MAX_TAGS = 100
"""Tags one ``/global/spend/tags`` request may name."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/global/spend/tags", global_spend_tags)
    route(t, gw, "GET", "/global/spend/all_tag_names", all_tag_names)
    route(t, gw, "GET", "/global/spend/provider", global_spend_provider)
    route(t, gw, "GET", "/global/spend/teams", global_spend_teams)
    route(t, gw, "GET", "/global/all_end_users", all_end_users)
    route(t, gw, "POST", "/global/spend/end_users", global_spend_end_users)
    route(t, gw, "POST", "/spend/calculate", spend_calculate, store_optional=True)
    route(t, gw, "GET", "/spend/logs/v2", paged_logs)
    route(t, gw, "GET", "/spend/logs/ui", paged_logs)
    route(t, gw, "GET", "/spend/logs/ui/{request_id}", one_log)



def _range_scope(ctx: Ctx) -> Scope:
    """The caller's own rows of the query's ``start_date`` .. ``end_date`` (both required, both included)."""
    return own_scope(ctx, *range_bounds(ctx.query))


async def global_spend_tags(ctx: Ctx) -> Any:
    scope = _range_scope(ctx)
    wanted = [t for t in (x.strip() for x in (ctx.query.get("tags") or "").split(",")) if t]
    if len(wanted) > MAX_TAGS:
        raise bad_request(f"tags names {len(wanted)} tags; at most {MAX_TAGS}", "tags")
    rows = await spend_by_tag(ctx.store, scope, None if not wanted or "all-tags" in wanted else wanted)
    return {"spend_per_tag": [{"name": r["tag"], "spend": r["spend_nanos"] / NANOS, "log_count": r["requests"]}
                              for r in rows]}


async def all_tag_names(ctx: Ctx) -> Any:
    scope = own_scope(ctx, _EPOCH, datetime.now(UTC) + timedelta(days=1))
    return {"tag_names": await tag_names(ctx.store, scope, MAX_NAMES)}


async def global_spend_provider(ctx: Ctx) -> Any:
    rows = await top_groups(ctx.store, _range_scope(ctx), "provider", 1000)
    return [{"provider": r["id"], "spend": r["spend_nanos"] / NANOS} for r in rows]


UNASSIGNED = "Unassigned"
"""The team name of rows of no team (LiteLLM's)."""


async def global_spend_teams(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    now = datetime.now(UTC)
    rows = await daily_by_team(ctx.store, Scope(midnight(now.date()) - timedelta(days=30), now + timedelta(seconds=1)))
    days: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = {}
    for r in rows:
        name = r["team_alias"] or r["team_id"] or UNASSIGNED
        day = days.setdefault(r["day"], {"date": r["day"]})
        day[name] = day.get(name, 0) + r["spend_nanos"] / NANOS
        totals[name] = totals.get(name, 0) + r["spend_nanos"]
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {"daily_spend": [days[d] for d in sorted(days)], "teams": sorted(totals),
            "total_spend_per_team": [{"team_id": name, "total_spend": n / NANOS} for name, n in top]}


async def all_end_users(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    rows = await top_groups(ctx.store, Scope(_EPOCH, datetime.now(UTC) + timedelta(days=1)), "end_user", MAX_NAMES)
    return {"end_users": sorted(r["id"] for r in rows)}


class EndUsersQuery(msgspec.Struct, forbid_unknown_fields=False):
    api_key: str | None = None
    startTime: str | None = None  # LiteLLM's field names
    endTime: str | None = None


async def global_spend_end_users(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    raw = await read_body(ctx.receive, ctx.gw.runtime.body_limits)
    try:
        q = msgspec.json.decode(raw, type=EndUsersQuery) if raw.strip() else EndUsersQuery()
    except msgspec.DecodeError as exc:
        raise bad_request(f"Invalid request body: {exc}", "body") from None
    now = datetime.now(UTC)
    end = parse_date(q.endTime, "endTime", end=True) or now
    start = parse_date(q.startTime, "startTime") or now - timedelta(days=30)
    key = token_of(q.api_key, "api_key") if q.api_key and q.api_key.strip() else None
    rows = await top_groups(ctx.store, Scope(start, end, api_key=key), "end_user", 100)
    return [{"end_user": r["id"], "total_count": r["requests"], "total_spend": r["spend_nanos"] / NANOS}
            for r in rows]


class CalculateRequest(msgspec.Struct, forbid_unknown_fields=False):
    model: str | None = None
    messages: Any = None
    completion_response: dict[str, Any] | None = None


def pricing(ctx: Ctx, model: str) -> tuple[PriceTable, Callable[[int], tuple[int, Parts | None]]]:
    """The prices of ``model``: a model group's (or alias's) first deployment, else the catalog's model of
    that name; a 400 when neither has a price. With them, what a request of a list-price cost is charged and
    its parts: a deployment's discount and margin applied (``cost.adjust``, as LiteLLM's ``completion_cost``
    applies them), a catalog model's list price (no parts)."""
    rt = ctx.gw.runtime
    try:
        group = rt.router.resolve(model)
    except GatewayError:
        group = None
    charge: Callable[[int], tuple[int, Parts | None]] = _list_price
    if group is not None and group.targets:
        dep = group.targets[0].dep
        table: PriceTable = rt.prices.table(dep)
        if rt.prices.adjusting:
            charge = functools.partial(rt.prices.charge, dep)
    else:
        table = PriceTable(rt.prices.catalog.lookup_name(model))
    if not table.known:
        raise bad_request(f"No price is known for model={model!r}: set input_cost_per_token and "
                          "output_cost_per_token on its deployment, or add it to a cost map", "model")
    return table, charge


def _list_price(pico: int) -> tuple[int, Parts | None]:
    return pico, None


async def spend_calculate(ctx: Ctx) -> Any:
    raw = await read_body(ctx.receive, ctx.gw.runtime.body_limits)
    try:
        req = msgspec.json.decode(raw, type=CalculateRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad_request(f"Invalid request body: {exc}", "body") from None
    if req.model is not None:
        if req.messages is None:
            raise bad_request("Bad Request - messages must be provided if 'model' is provided", "messages")
        if not isinstance(req.messages, list):
            raise bad_request("messages: expected an array of messages", "messages")
        prompt = tokens.estimate_messages_tokens(orjson.dumps(req.messages))
        table, charge = pricing(ctx, req.model)
        return {"cost": usd(charge(table.tokens(prompt, 0))[0])}
    if req.completion_response is not None:
        answer = req.completion_response
        model = answer.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("completion_response.model: expected the model that answered", "completion_response")
        data = orjson.dumps(answer)
        usage = tokens.extract_usage(data)
        if not usage:
            raise bad_request("completion_response.usage: expected the answer's token usage", "completion_response")
        table, charge = pricing(ctx, model)
        d = details(data, table.service)
        return {"cost": usd(charge(d.price(table, usage[0], usage[1]))[0])}
    raise bad_request("Bad Request - Either 'model' or 'completion_response' must be provided", "model")


_SORTS = {"startTime": "start_time", "spend": "spend_nanos"}


def _spend_arg(ctx: Ctx, name: str) -> int | None:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"{name} must be a number, got {raw[:40]!r}", name) from None
    if not value >= 0 or value > 1e9:
        raise bad_request(f"{name} must be between 0 and 1e9, got {raw[:40]!r}", name)
    return round(value * NANOS)


async def paged_logs(ctx: Ctx) -> Any:
    q = ctx.query
    if not q.get("start_date") or not q.get("end_date"):
        raise bad_request("Start date and end date are required", "start_date" if not q.get("start_date")
                          else "end_date")
    start = parse_date(q["start_date"], "start_date")
    end = parse_date(q["end_date"], "end_date", end=True)
    assert start is not None and end is not None
    if len(q["end_date"]) > 10:  # a time: its whole second is in (LiteLLM's ``lte`` of a time to the second)
        end += timedelta(seconds=1)
    status = q.get("status_filter") or None
    if status is not None and status not in ("success", "failure"):
        raise bad_request(f"status_filter must be 'success' or 'failure', got {status[:40]!r}", "status_filter")
    sort = _SORTS.get(q.get("sort_by") or "startTime")
    if sort is None:
        raise bad_request("sort_by must be 'startTime' or 'spend'", "sort_by")
    way = (q.get("sort_order") or "desc").lower()
    if way not in ("asc", "desc"):
        raise bad_request("sort_order must be 'asc' or 'desc'", "sort_order")
    page = ctx.int_arg("page", 1, high=1_000_000)
    size = ctx.int_arg("page_size", 50, high=100)
    api_key, user_id = await _team_or_own_logs(ctx)
    filters: dict[str, Any] = {
        "api_key": api_key, "user_id": user_id, "team_id": q.get("team_id") or None,
        "request_id": q.get("request_id") or None, "key_alias": q.get("key_alias") or None,
        "end_user": q.get("end_user") or None, "model": q.get("model") or None, "status": status, "start": start,
        "end": end, "min_nanos": _spend_arg(ctx, "min_spend"), "max_nanos": _spend_arg(ctx, "max_spend"),
        "error_code": ctx.int_arg("error_code", 0, low=100, high=599) if q.get("error_code") else None,
        "error_message": (q.get("error_message") or "")[:1000] or None}
    total = await count_spend_logs(ctx.store, **filters)
    rows = await read_spend_logs(ctx.store, limit=size, offset=(page - 1) * size, order=f"{sort} {way.upper()}",
                                 **filters) if (page - 1) * size < total else []
    fields = logged_fields(ctx)
    return {"data": [log_row(r, fields) for r in rows], "total": total, "page": page, "page_size": size,
            "total_pages": -(-total // size)}


async def _team_or_own_logs(ctx: Ctx) -> tuple[str | None, str | None]:
    """:func:`own_logs`, except that a team's admin naming its team (``team_id``) reads the whole team's rows,
    as LiteLLM's paged logs let it (``_can_team_member_view_log``); a caller who is not that team's admin, or a
    team that does not exist, is LiteLLM's 403."""
    c, q = ctx.caller, ctx.query
    team_id = q.get("team_id") or None
    if team_id is None or c.reads_all:
        return own_logs(ctx)
    try:
        team = await ctx.store.get_team(team_id)
    except NotFound:
        team = None
    if team is None or c.team_role(team) != "admin":
        raise forbidden(f"Not authorized to view team spend for team_id={team_id}")
    return (token_of(q["api_key"], "api_key") if q.get("api_key") else None), (q.get("user_id") or None)


async def one_log(ctx: Ctx) -> Any:
    api_key, user_id = own_logs(ctx)
    rows = await read_spend_logs(ctx.store, limit=1, request_id=ctx.params["request_id"], api_key=api_key,
                                 user_id=user_id)
    return log_row(rows[0], logged_fields(ctx)) if rows else None


__all__ = ["add_routes"]
