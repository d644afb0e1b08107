"""LiteLLM's spend reporting routes on the spend logs and counters (``store.spend``).

Routes and answers (LiteLLM's shapes, ``litellm/proxy/spend_tracking/spend_management_endpoints.py``):

- ``GET /spend/logs`` (``api_key``, ``user_id``, ``team_id``, ``request_id``, ``start_date``, ``end_date``,
  ``limit``): a list of ``LiteLLM_SpendLogs`` rows (``startTime``, ``endTime``, ``user``, ``spend``,
  ``request_tags`` ...), newest first; with both dates and ``summarize`` not ``false`` (LiteLLM's
  default), one entry per day with the spend per key, user and model instead.
- ``GET /global/spend/logs`` (``api_key``): spend per day over the last 30 days.
- ``GET /spend/keys``: the keys (``LiteLLM_VerificationToken`` rows, with their ``spend``).
- ``GET /spend/users`` (``user_id``): the users with their ``spend``.
- ``GET /spend/tags`` (``start_date``, ``end_date``): ``[{"individual_request_tag", "log_count", "total_spend"}]``
  from the tag counters (all time), or from the spend logs of the days given.
- ``GET /global/spend``: ``{"spend", "max_budget"}`` from the proxy-wide counter.
- ``POST /global/spend/reset`` (the master key only): every key's and team's ``spend`` to 0
  (``{"message", "status": "success"}``).
- ``GET /global/spend/keys`` (``limit``): the keys that spent most over the last 30 days
  (``api_key``, ``key_alias``, ``key_name``, ``total_spend``).
- ``GET /global/spend/report`` (``start_date``, ``end_date``, ``group_by`` = ``team`` | ``customer`` |
  ``api_key``, ``api_key``): per day, the spend of each team or customer with a per-model breakdown; for
  ``api_key``, per key its cost and tokens with ``model_details``.

Who sees what (LiteLLM's rules): the proxy admin and its viewer everything; an internal user only its
own: logs of its user id (or, for a key without a user, of its key), its keys and its user row; the
proxy-wide routes (``/spend/tags``, ``/global/spend``, the report) are the admin's. Dates are ``YYYY-MM-DD``
(UTC days; ``end_date`` inclusive) or ISO date-times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from relaygate.auth import PrincipalKind
from relaygate.config.litellm_general import MetadataFields, metadata_fields
from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, forbidden, record, route
from relaygate.management.keys import token_of
from relaygate.store import NotFound
from relaygate.store.activity import Scope, spend_by_tag
from relaygate.store.spend import (
    NANOS,
    daily_spend,
    entity_totals,
    read_spend_logs,
    spend_report,
    spend_since,
    top_keys,
)
from relaygate.store.spend_rows import log_row


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path, handler in (("/spend/logs", spend_logs), ("/spend/keys", spend_keys), ("/spend/users", spend_users),
                          ("/spend/tags", spend_tags), ("/global/spend", global_spend),
                          ("/global/spend/keys", global_spend_keys), ("/global/spend/report", global_spend_report),
                          ("/global/spend/logs", global_spend_logs)):
        route(t, gw, "GET", path, handler)
    route(t, gw, "POST", "/global/spend/reset", global_spend_reset)


def parse_date(value: str | None, param: str, *, end: bool = False) -> datetime | None:
    """A query date: ``YYYY-MM-DD`` (as the start of that UTC day; with ``end``, of the next day, so the day
    is included) or an ISO date-time (naive means UTC)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            at = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end:  # the next midnight; the last day there is has none
                return at + timedelta(days=1) if day < date.max else datetime.max.replace(tzinfo=UTC)
            return at
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid {param}={value!r}: expected YYYY-MM-DD or an ISO date-time", param) from None
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:  # an offset past the first or the last day there is: that end of time
        return (datetime.min if at.year == 1 else datetime.max).replace(tzinfo=UTC)


def logged_fields(ctx: Ctx) -> MetadataFields | None:
    """The gateway's ``spend_logs_metadata_fields`` (what a shown row's ``metadata`` keeps)."""
    return metadata_fields(ctx.gw.runtime.config.general.spend_logs_metadata_fields)


def own_logs(ctx: Ctx) -> tuple[str | None, str | None]:
    """The query's ``api_key`` (hashed) and ``user_id``, narrowed to the caller's own rows for a caller that
    does not read everything (its user's, or its key's for a key without a user; 403 for someone else's)."""
    c, q = ctx.caller, ctx.query
    api_key = token_of(q["api_key"], "api_key") if q.get("api_key") else None
    user_id = q.get("user_id") or None
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only view your own spend logs. Got user_id={user_id}, Your ID={c.user_id}")
        if c.user_id is not None:
            user_id = c.user_id
        elif api_key is not None and api_key != c.key_hash:
            raise forbidden("You can only view the spend logs of your own key")
        else:
            api_key = c.key_hash
    return api_key, user_id


async def spend_logs(ctx: Ctx) -> Any:
    q = ctx.query
    api_key, user_id = own_logs(ctx)
    team_id = q.get("team_id") or None
    start = parse_date(q.get("start_date"), "start_date")
    end = parse_date(q.get("end_date"), "end_date", end=True)
    request_id = q.get("request_id") or None
    if start is not None and end is not None and q.get("summarize", "true").lower() != "false":
        return _by_day(await daily_spend(ctx.store, start, end, api_key=api_key, user_id=user_id, team_id=team_id,
                                         request_id=request_id), start, end)
    status = q.get("status") or None
    if status is not None and status not in ("success", "failure"):
        raise bad_request(f"status must be 'success' or 'failure', got {status[:40]!r}", "status")
    limit = ctx.int_arg("limit", LOGS_CAP, high=LOGS_CAP)
    rows = await read_spend_logs(
        ctx.store, api_key=api_key, user_id=user_id, team_id=team_id, request_id=request_id, start=start, end=end,
        limit=limit, model=q.get("model") or None, status=status)
    if len(rows) == limit:  # LiteLLM's signal that older rows were left out (its /spend/logs/v2 pages them)
        ctx.answer_headers.append((b"x-litellm-spend-logs-truncated", b"true"))
    fields = logged_fields(ctx)
    return [log_row(r, fields) for r in rows]


LOGS_CAP = 10_000
"""Rows ``/spend/logs`` answers at most, newest first (LiteLLM's ``SPEND_LOGS_PAGINATION_COUNT_CAP``); a
smaller ``limit`` may be asked for."""


def _by_day(rows: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """LiteLLM's summary of ``/spend/logs`` with a date range (``summarize``, the default): one entry per day,
    ``{"startTime": "YYYY-MM-DD", "spend", "users": {user: spend}, "models": {model: spend}, <api_key>: spend}``;
    days without spend are there with zeros (LiteLLM pads only the days after the last day with spend).
    Sums are exact nano-USD, shown as USD."""
    days: dict[str, dict[str, Any]] = {}
    day = start.date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < end and len(days) < 3660:
        days[day.isoformat()] = {"startTime": day.isoformat(), "spend": 0, "users": {}, "models": {}}
        day += timedelta(days=1)
    nanos: dict[tuple[str, str, str], int] = {}
    for r in rows:
        for part, name in (("", "spend"), ("k", r["api_key"] or ""), ("u", r["user"] or ""), ("m", r["model"] or "")):
            k = (r["day"], part, name)
            nanos[k] = nanos.get(k, 0) + r["spend_nanos"]
    for (d, part, name), n in nanos.items():
        entry = days.setdefault(d, {"startTime": d, "spend": 0, "users": {}, "models": {}})
        usd = n / NANOS
        if part == "":
            entry["spend"] = usd
        elif part == "u":
            entry["users"][name] = usd
        elif part == "m":
            entry["models"][name] = usd
        else:
            entry[name] = usd
    return [days[d] for d in sorted(days)]


async def global_spend_logs(ctx: Ctx) -> Any:
    """LiteLLM's ``/global/spend/logs``: spend per day over the last 30 days (``MonthlyGlobalSpend``:
    ``[{"date", "spend"}]``), or one key's (``api_key``; ``MonthlyGlobalSpendPerKey``: with ``api_key``).
    An internal user sees its own keys' days only (``MonthlyGlobalSpendPerUserPerKey``: with ``user``)."""
    c, q = ctx.caller, ctx.query
    api_key = token_of(q["api_key"], "api_key") if q.get("api_key") else None
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=30)
    user_id = None
    if not c.reads_all:
        if c.user_id is None:
            raise forbidden("/global/spend/logs Error: User ID is None")
        user_id = c.user_id
    rows = await daily_spend(ctx.store, start, end, api_key=api_key, user_id=user_id)
    out: dict[tuple[str, str | None], int] = {}
    for r in rows:
        k = (r["day"], r["api_key"] if api_key is not None or user_id is not None else None)
        out[k] = out.get(k, 0) + r["spend_nanos"]
    answer: list[dict[str, Any]] = []
    for (d, key), n in sorted(out.items(), key=lambda x: (x[0][0], x[0][1] or "")):
        item: dict[str, Any] = {"date": d, "spend": n / NANOS}
        if key is not None:
            item["api_key"] = key
        if user_id is not None:
            item["user"] = user_id
        answer.append(item)
    return answer


async def spend_keys(ctx: Ctx) -> Any:
    c = ctx.caller
    if c.reads_all:
        return [record(k) for k in (await ctx.store.list_keys(page_size=1000)).items]
    if c.user_id is not None:
        return [record(k) for k in (await ctx.store.list_keys(user_id=c.user_id, page_size=1000)).items]
    return [record(c.key)] if c.key is not None else []


async def spend_users(ctx: Ctx) -> Any:
    c = ctx.caller
    user_id = ctx.query.get("user_id") or None
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only view your own spend. Got user_id={user_id}, Your ID={c.user_id}")
        user_id = c.user_id
        if user_id is None:
            return []
    if user_id is not None:
        try:
            return [record(await ctx.store.get_user(user_id))]
        except NotFound:
            return []
    return [record(u) for u in (await ctx.store.list_users(page_size=1000)).items]


async def spend_tags(ctx: Ctx) -> Any:
    """LiteLLM's ``/spend/tags``: every tag's requests and spend, all time, from the tag counters; with
    ``start_date`` and ``end_date``, of those days from the spend logs (LiteLLM takes both and ignores them)."""
    admin_only(ctx, read=True)
    q = ctx.query
    if q.get("start_date") or q.get("end_date"):
        start = parse_date(q.get("start_date"), "start_date")
        end = parse_date(q.get("end_date"), "end_date", end=True)
        if start is None or end is None:
            raise bad_request("Please provide start_date and end_date", "start_date" if start is None else "end_date")
        return [{"individual_request_tag": r["tag"], "log_count": r["requests"],
                 "total_spend": r["spend_nanos"] / NANOS} for r in await spend_by_tag(ctx.store, Scope(start, end))]
    rows = await entity_totals(ctx.store, "tag")
    return [{"individual_request_tag": r["entity_id"], "log_count": r["requests"],
             "total_spend": r["spend_nanos"] / NANOS} for r in rows]


async def global_spend(ctx: Ctx) -> Any:
    """LiteLLM's ``/global/spend``: the proxy's spend over the last 30 days (its ``MonthlyGlobalSpend`` view of
    the spend logs; with ``disable_spend_logs`` there are no rows, and the all-time global counter is
    given instead of LiteLLM's 0) and ``litellm_settings.max_budget`` (0.0 when unset, as LiteLLM)."""
    admin_only(ctx, read=True)
    general = ctx.gw.runtime.config.general
    if general.disable_spend_logs:
        rows = await entity_totals(ctx.store, "global", [""])
        spend = rows[0]["spend_nanos"] if rows else 0
    else:
        spend = await spend_since(ctx.store, datetime.now(UTC) - timedelta(days=30))
    return {"spend": spend / NANOS, "max_budget": general.max_budget or 0.0}


async def global_spend_reset(ctx: Ctx) -> Any:
    """LiteLLM's ``POST /global/spend/reset``: every key's and team's ``spend`` back to 0, the spend logs and
    counters kept; the master key only (LiteLLM's ``master_key_only_routes``: a virtual key is refused even with
    the ``proxy_admin`` role). Unlike LiteLLM, both tables change in one transaction, every worker reads its
    keys again at once (LiteLLM's cached keys keep their old spend until their TTL), and the keys' and teams'
    budget counters in Redis are set to 0 too, so their budgets count from 0 at once."""
    if ctx.caller.principal.kind is PrincipalKind.KEY:
        raise GatewayError(f"Authentication Error, Tried to access route={ctx.path}, which is only for MASTER KEY",
                           status=401, type="auth_error", param="None")
    await ctx.store.reset_all_spend()
    ctx.invalidate_all()
    await ctx.spend_set("key", None, 0.0)
    await ctx.spend_set("team", None, 0.0)
    return {"message": "Spend for all API Keys and Teams reset successfully", "status": "success"}


async def global_spend_keys(ctx: Ctx) -> Any:
    c = ctx.caller
    since = datetime.now(UTC) - timedelta(days=30)
    limit = ctx.int_arg("limit", 1000, high=10_000)
    if c.reads_all:
        return await top_keys(ctx.store, since, limit)
    mine = await spend_keys(ctx)
    return await top_keys(ctx.store, since, limit, [k["token"] for k in mine])


async def global_spend_report(ctx: Ctx) -> Any:
    """LiteLLM's ``/global/spend/report``: per day, per team (``team_name``: its alias, as LiteLLM's; relaygate
    gives a team without one its id, where LiteLLM lumps every such team in with the rows of no team as
    ``Unassigned Team``; ``team_id`` added) or per customer, each with its spend per model and key
    (``metadata``); with ``group_by=api_key``, per key with ``model_details``, as LiteLLM's fields."""
    admin_only(ctx, read=True)
    q = ctx.query
    group_by = q.get("group_by") or "team"
    if group_by not in ("team", "customer", "api_key"):
        raise bad_request(f"group_by must be one of team, customer, api_key; got {group_by!r}", "group_by")
    start = parse_date(q.get("start_date"), "start_date")
    end = parse_date(q.get("end_date"), "end_date", end=True)
    if start is None or end is None:
        raise bad_request("Please provide start_date and end_date", "start_date" if start is None else "end_date")
    api_key = token_of(q["api_key"], "api_key") if q.get("api_key") else None
    rows = await spend_report(ctx.store, group_by, start, end, api_key)
    if group_by == "api_key":
        return _by_key(rows)
    name, field = ("teams", "team_name") if group_by == "team" else ("customers", "customer")
    days: dict[str, dict[Any, dict[str, Any]]] = {}
    for r in rows:
        groups = days.setdefault(r["day"], {})
        if group_by == "team":  # LiteLLM's name: the team's alias (here the id when it has none), else its wording
            label = r["alias"] or r["group"] or "Unassigned Team"
        else:
            label = r["group"] or None  # no customer: LiteLLM's null
        g = groups.get(r["group"])
        if g is None:
            g = groups[r["group"]] = {field: label, "total_spend": 0, "metadata": []}
            if group_by == "team":
                g["team_id"] = r["group"]
        g["total_spend"] += r["spend_nanos"]
        g["metadata"].append({"model": r["model"], "api_key": r["api_key"], "spend": r["spend_nanos"] / NANOS,
                              "total_tokens": r["total_tokens"]})
    out = []
    for day, groups in days.items():
        for g in groups.values():
            g["total_spend"] = g["total_spend"] / NANOS
        out.append({"group_by_day": day, name: list(groups.values())})
    return out


def _by_key(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        k = r["group"] or ""
        acc = keys.setdefault(k, {"api_key": k, "total_cost": 0, "total_input_tokens": 0,
                                  "total_output_tokens": 0, "model_details": []})
        acc["total_cost"] += r["spend_nanos"]
        acc["total_input_tokens"] += r["prompt_tokens"]
        acc["total_output_tokens"] += r["completion_tokens"]
        m = models.get((k, r["model"]))
        if m is None:
            m = models[(k, r["model"])] = {"model": r["model"], "total_cost": 0, "total_input_tokens": 0,
                                           "total_output_tokens": 0}
            acc["model_details"].append(m)
        m["total_cost"] += r["spend_nanos"]
        m["total_input_tokens"] += r["prompt_tokens"]
        m["total_output_tokens"] += r["completion_tokens"]
    for acc in keys.values():
        acc["total_cost"] /= NANOS
        for m in acc["model_details"]:
            m["total_cost"] /= NANOS
    return sorted(keys.values(), key=lambda a: -a["total_cost"])
