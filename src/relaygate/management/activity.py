"""Activity routes: what the admin UI's overview page charts, from the spend logs (``store.activity``).

- ``GET /global/activity/overview`` (``start_date``, ``end_date``: ``YYYY-MM-DD``, UTC days, both included;
  ``bucket``: ``day`` (default) or ``hour``): ``{"start_date", "end_date", "bucket", "series", "totals",
  "spend_today", "spend_month", "top_models", "top_keys", "top_teams"}``. ``series`` has one entry per bucket
  of the range, empty buckets included (zeros, null percentiles), so a chart's x axis is the range itself:
  ``{"t": ISO-8601 UTC start of the bucket, "requests", "errors", "spend", "prompt_tokens",
  "completion_tokens", "p50_ms", "p95_ms", "p99_ms"}``; ``totals`` the same keys over the whole range (its
  percentiles over every row, not averaged from the buckets). ``spend_today`` / ``spend_month`` are the UTC
  day's and month's spend whatever the range. Defaults: the last 7 days. Ranges are capped: 366 days, and 14
  days with hour buckets (a chart of 336 points at most).
- ``GET /global/activity`` (LiteLLM's): ``{"daily_data": [{"date": "Jan 22", "api_requests",
  "total_tokens"}], "sum_api_requests", "sum_total_tokens"}``; both dates required, as LiteLLM's.
- ``GET /global/activity/model`` (LiteLLM's): per model group (the 10 with most requests)
  ``{"model", "daily_data", "sum_api_requests", "sum_total_tokens"}``.
- ``GET /global/spend/models`` (LiteLLM's, ``limit``, default 10): the models (as sent upstream) that spent
  most over the last 30 days, ``[{"model", "total_spend", "total_tokens"}]``.
- ``GET /global/activity/exceptions`` (LiteLLM's; ``model_group``, ``start_date``, ``end_date``, all required):
  the group's requests answered 429 per day, ``{"daily_data": [{"date", "num_rate_limit_exceptions"}],
  "sum_num_rate_limit_exceptions"}``; ``/global/activity/exceptions/deployment`` the same per deployment's
  ``api_base`` (without credentials or query; a deployment the config no longer has by its id), the 10 with
  most, ``[{"api_base", "daily_data", "sum_num_rate_limit_exceptions"}]``. LiteLLM counts each failed
  deployment call of its error log; relaygate counts requests answered 429 (its spend rows: one per request),
  so a 429 that a retry or a fallback then answered is not among them. The admin's, as in LiteLLM.
- ``GET /global/activity/cache_hits`` (LiteLLM's, its Admin UI's cache dashboard; both dates required,
  ``key_aliases`` and ``models`` repeatable filters): ``{"groups": [{"call_type", "api_requests",
  "cache_hits", "failed_requests", "cached_completion_tokens", "generated_completion_tokens"}], "totals":
  {..., "cache_hit_ratio"}, "filter_options": {"key_aliases", "models"}, "error_breakdown": [{"call_type",
  "error_code", "error_class", "count"}]}``: ``api_requests`` are the requests a provider answered (neither
  a hit nor a failure), the ratio is per cent of all; a key without an alias is ``Unnamed Key``.

Who sees what: the proxy admin and its viewer all traffic; any other caller only its own — the rows of its
user id (every key it owns), or of its key when the key has no user (as ``/spend/logs``).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, date, datetime, timedelta
from typing import Any

from relaygate.core.urls import public_base
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.store.activity import (
    Scope,
    activity_by_model,
    cache_activity,
    daily_status,
    latency_percentiles,
    series,
    spend_since,
    top_groups,
)
from relaygate.store.spend import NANOS

MAX_DAYS = 366
MAX_HOUR_DAYS = 14
TOP = 10
_PCT = (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99))


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/global/activity/overview", overview)
    route(t, gw, "GET", "/global/activity", global_activity)
    route(t, gw, "GET", "/global/activity/model", global_activity_model)
    route(t, gw, "GET", "/global/spend/models", global_spend_models)
    route(t, gw, "GET", "/global/activity/exceptions", global_activity_exceptions)
    route(t, gw, "GET", "/global/activity/exceptions/deployment", global_activity_exceptions_deployment)
    route(t, gw, "GET", "/global/activity/cache_hits", global_activity_cache_hits)


def parse_day(value: str | None, param: str, default: date | None = None) -> date:
    """A ``YYYY-MM-DD`` query date; a 400 naming ``param`` when it is absent (without default) or malformed."""
    if value is None or value == "":
        if default is None:
            raise bad_request("Please provide start_date and end_date", param)
        return default
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"Invalid {param}={value!r}: expected a date YYYY-MM-DD", param) from None


def date_range(q: dict[str, str], *, required: bool = False, bucket: str = "day",
               today: date | None = None) -> tuple[date, date]:
    """``start_date`` and ``end_date`` (inclusive) of the query, checked: in order, within the caps."""
    today = today if today is not None else datetime.now(UTC).date()
    end = parse_day(q.get("end_date"), "end_date", None if required else today)
    start = parse_day(q.get("start_date"), "start_date", None if required else end - timedelta(days=6))
    if start > end:
        raise bad_request(f"start_date={start} is after end_date={end}", "start_date")
    days = (end - start).days + 1
    cap = MAX_HOUR_DAYS if bucket == "hour" else MAX_DAYS
    if days > cap:
        raise bad_request(f"The range is {days} days; at most {cap} days with {bucket} buckets", "start_date")
    return start, end


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def range_bounds(q: dict[str, str]) -> tuple[datetime, datetime]:
    """The query's required ``start_date`` .. ``end_date`` as times: the first day's midnight (UTC) and the
    midnight after the last day."""
    start, end = date_range(q, required=True)
    return midnight(start), midnight(end) + timedelta(days=1)


def deployment_bases(ctx: Ctx) -> dict[str, str]:
    """Each configured deployment's ``api_base`` as an admin may see it (``core.urls.public_base``: no
    credentials, no query; ``""`` for a provider's default), by deployment id."""
    bases: dict[str, str] = {}
    for g in ctx.gw.runtime.router.groups.values():
        for target in g.targets:
            bases.setdefault(target.dep.id, public_base(target.provider.api_base) or "")
    return bases


def own_scope(ctx: Ctx, start: datetime, end: datetime) -> Scope:
    """The rows the caller may see between ``start`` and ``end``."""
    c = ctx.caller
    if c.reads_all:
        return Scope(start, end)
    if c.user_id is not None:
        return Scope(start, end, user_id=c.user_id)
    return Scope(start, end, api_key=c.key_hash or "")


def bucket_starts(start: date, end: date, bucket: str) -> list[tuple[str, datetime]]:
    """Every bucket of the range: its text key (as ``store.activity.bucket_sql`` spells it) and its start."""
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    at, stop, out = midnight(start), midnight(end) + timedelta(days=1), []
    while at < stop:
        key = at.strftime("%Y-%m-%dT%H") if bucket == "hour" else at.strftime("%Y-%m-%d")
        out.append((key, at))
        at += step
    return out


def _point(row: dict[str, Any] | None, pct: dict[int, float | None] | None) -> dict[str, Any]:
    r = row or {}
    out: dict[str, Any] = {"requests": r.get("requests", 0), "errors": r.get("errors", 0),
                           "spend": r.get("spend_nanos", 0) / NANOS, "prompt_tokens": r.get("prompt_tokens", 0),
                           "completion_tokens": r.get("completion_tokens", 0)}
    for name, p in _PCT:
        value = pct.get(p) if pct is not None else None
        out[name] = round(value, 3) if value is not None else None
    return out


def assemble(start: date, end: date, bucket: str, rows: list[dict[str, Any]],
             pct: dict[str, dict[int, float | None]], total_pct: dict[int, float | None] | None) -> dict[str, Any]:
    """The series (every bucket, zeros where no row) and the totals of the range, from the grouped rows."""
    by_key = {r["bucket"]: r for r in rows}
    points = []
    for key, at in bucket_starts(start, end, bucket):
        points.append({"t": at.isoformat().replace("+00:00", "Z"), **_point(by_key.get(key), pct.get(key))})
    sums = {"requests": 0, "errors": 0, "spend_nanos": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for r in rows:
        for k in sums:
            sums[k] += r[k]
    return {"series": points, "totals": _point(sums, total_pct)}


async def overview(ctx: Ctx) -> Any:
    q = ctx.query
    bucket = q.get("bucket") or "day"
    if bucket not in ("day", "hour"):
        raise bad_request(f"bucket must be 'day' or 'hour', got {bucket!r}", "bucket")
    start, end = date_range(q, bucket=bucket)
    scope = own_scope(ctx, midnight(start), midnight(end) + timedelta(days=1))
    store = ctx.store
    rows = await series(store, scope, bucket)
    pct = await latency_percentiles(store, scope, bucket)
    total_pct = (await latency_percentiles(store, scope, None)).get("")
    body: dict[str, Any] = {"start_date": start.isoformat(), "end_date": end.isoformat(), "bucket": bucket,
                            **assemble(start, end, bucket, rows, pct, total_pct)}
    now = datetime.now(UTC)
    today = midnight(now.date())
    month = today.replace(day=1)
    own = own_scope(ctx, month, now + timedelta(days=1))
    spend_month, spend_today = await spend_since(store, own, [month, today])
    body["spend_today"] = spend_today / NANOS
    body["spend_month"] = spend_month / NANOS
    models = await top_groups(store, scope, "model", TOP)
    keys = await top_groups(store, scope, "key", TOP)
    teams = await top_groups(store, scope, "team", TOP)
    body["top_models"] = [{"model": m["id"], "requests": m["requests"], "errors": m["errors"],
                           "spend": m["spend_nanos"] / NANOS} for m in models]
    body["top_keys"] = [{"token": k["id"], "key_alias": k["name"], "requests": k["requests"],
                         "spend": k["spend_nanos"] / NANOS} for k in keys]
    body["top_teams"] = [{"team_id": g["id"], "team_alias": g["name"], "requests": g["requests"],
                          "spend": g["spend_nanos"] / NANOS} for g in teams]
    return body


def _litellm_day(key: str) -> str:
    """LiteLLM's label of a day in ``daily_data`` (``strftime("%b %d")``: ``Jan 22``)."""
    return date.fromisoformat(key).strftime("%b %d")


async def global_activity(ctx: Ctx) -> Any:
    start, end = date_range(ctx.query, required=True)
    scope = own_scope(ctx, midnight(start), midnight(end) + timedelta(days=1))
    rows = await series(ctx.store, scope, "day")
    daily = [{"date": _litellm_day(r["bucket"]), "api_requests": r["requests"], "total_tokens": r["total_tokens"]}
             for r in rows]
    return {"daily_data": daily, "sum_api_requests": sum(r["requests"] for r in rows),
            "sum_total_tokens": sum(r["total_tokens"] for r in rows)}


async def global_activity_model(ctx: Ctx) -> Any:
    start, end = date_range(ctx.query, required=True)
    scope = own_scope(ctx, midnight(start), midnight(end) + timedelta(days=1))
    models: dict[str, dict[str, Any]] = {}
    for r in await activity_by_model(ctx.store, scope):
        m = models.setdefault(r["model"] or "", {"model": r["model"] or "", "daily_data": [],
                                                 "sum_api_requests": 0, "sum_total_tokens": 0})
        m["daily_data"].append({"date": _litellm_day(r["day"]), "api_requests": r["requests"],
                                "total_tokens": r["total_tokens"]})
        m["sum_api_requests"] += r["requests"]
        m["sum_total_tokens"] += r["total_tokens"]
    return sorted(models.values(), key=lambda m: (-m["sum_api_requests"], m["model"]))[:TOP]


async def global_spend_models(ctx: Ctx) -> Any:
    now = datetime.now(UTC)
    scope = own_scope(ctx, now - timedelta(days=30), now + timedelta(seconds=1))
    rows = await top_groups(ctx.store, scope, "upstream_model", ctx.int_arg("limit", TOP, high=1000))
    return [{"model": r["id"], "total_spend": r["spend_nanos"] / NANOS, "total_tokens": r["total_tokens"]}
            for r in rows]


def _exceptions_query(ctx: Ctx) -> tuple[str, Scope]:
    admin_only(ctx, read=True)
    group = ctx.query.get("model_group") or ""
    if not group:
        raise bad_request("model_group is required", "model_group")
    start, end = date_range(ctx.query, required=True)
    return group, Scope(midnight(start), midnight(end) + timedelta(days=1))


async def global_activity_exceptions(ctx: Ctx) -> Any:
    group, scope = _exceptions_query(ctx)
    rows = await daily_status(ctx.store, scope, 429, group)
    return {"daily_data": [{"date": _litellm_day(r["day"]), "num_rate_limit_exceptions": r["count"]} for r in rows],
            "sum_num_rate_limit_exceptions": sum(r["count"] for r in rows)}


async def global_activity_exceptions_deployment(ctx: Ctx) -> Any:
    group, scope = _exceptions_query(ctx)
    bases = deployment_bases(ctx)
    per: dict[str, dict[str, int]] = {}
    for r in await daily_status(ctx.store, scope, 429, group, by_deployment=True):
        days = per.setdefault(bases.get(r["deployment"]) or r["deployment"], {})
        days[r["day"]] = days.get(r["day"], 0) + r["count"]
    top = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:TOP]
    return [{"api_base": base, "daily_data": [{"date": _litellm_day(d), "num_rate_limit_exceptions": n}
                                              for d, n in sorted(days.items())],
             "sum_num_rate_limit_exceptions": sum(days.values())} for base, days in top]


async def global_activity_cache_hits(ctx: Ctx) -> Any:
    """LiteLLM's ``/global/activity/cache_hits`` (its Admin UI's cache dashboard): per call type the requests a
    provider answered, the cache's hits and the failures, their totals with the hit ratio (per cent of all),
    the filters' choices and the failures by error code and class; ``key_aliases`` and ``models`` (each may
    repeat) filter. The admin reads every row, another caller its own (``own_scope``)."""
    start, end = range_bounds(ctx.query)
    raw = urllib.parse.parse_qs((ctx.scope.get("query_string") or b"").decode("latin-1"))
    aliases, models = (raw.get(name, [])[:500] for name in ("key_aliases", "models"))
    got = await cache_activity(ctx.store, own_scope(ctx, start, end), aliases, models)
    groups = got["groups"]
    totals = {k: sum(g[k] for g in groups) for k in ("api_requests", "cache_hits", "failed_requests",
                                                      "cached_completion_tokens")}
    every = totals["api_requests"] + totals["cache_hits"] + totals["failed_requests"]
    totals["cache_hit_ratio"] = totals["cache_hits"] / every * 100 if every else 0.0
    return {"groups": groups, "totals": totals,
            "filter_options": {"key_aliases": got["key_aliases"], "models": got["models"]},
            "error_breakdown": got["errors"]}
