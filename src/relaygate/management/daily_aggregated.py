"""LiteLLM's companion routes of the daily activity views (its ``daily_activity_routes``: what its Usage page
reads), on the rows and scoping of ``management.daily_activity`` (the same entities, prefixes, ids, ``model``
and ``api_key`` filters, callers and date range).

For each prefix (``/user``, ``/team``, ``/tag``, ``/organization``, ``/customer`` and ``/end_user``):

- ``GET {prefix}/daily/activity/aggregated``: every day of the range at once, the paginated view's shape with
  ``page`` 1 of 1; ``api_key_limit`` (1-1000, default 100) keeps the per-key parts (each day's ``api_keys`` and
  every ``api_key_breakdown``) to the range's top keys by spend (then reporting id), while every sum still
  counts every key; ``metadata`` adds ``api_key_limit``, ``total_api_keys`` (the range's distinct keys) and
  ``entity_total_api_keys`` (per entity).
- ``GET {prefix}/daily/activity/aggregated/keys``: the range's keys by spend, ``offset`` (from 0) and ``limit``
  (1-100, default 50): ``{"api_keys": [{"api_key", "metrics", "metadata"}], "total_api_keys", "offset",
  "limit"}``.
- ``GET {prefix}/daily/activity/aggregated/search``: ``search`` (required) found, case-insensitive, in a key's
  reporting id, alias, owner or owner's email; ``limit`` (1-100, default 100): ``{"api_keys": [...]}`` by spend.
- ``GET {prefix}/daily/activity/aggregated/model_top_keys``: ``model_group`` (required) matched exactly
  against the rows' model group, or their upstream model with ``by_model_group=false``; ``limit`` (1-100,
  default 5): ``{"model", "by_model_group", "api_keys"}`` by spend.
- ``GET {prefix}/daily/activity/export``: ``export_type`` ``daily`` (default), ``daily_with_keys``,
  ``daily_with_models`` or ``daily_with_users`` (a row per day, entity and key, model or key owner), ``format``
  ``csv`` (default) or ``json``: LiteLLM's 17 columns in its order, rows by day, entity and then the group;
  a download named ``<entity>-usage-<start>-<end>-<type>.<format>``. A CSV cell starting with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a ``'`` in front (a spreadsheet would run it as a formula).
- ``/user`` only: ``GET /user/daily/activity/aggregated/users`` (``offset``, ``limit`` 1-100, default 50: a row
  per user by spend, the rows without a user as one with ``user_id`` null, last among equals) and
  ``GET /user/daily/activity/aggregated/cache_leakage_keys`` (``limit`` 1-100, default 20: the keys whose prompt
  tokens were not read from a provider's cache, most first).

Keys are named by their reporting id and carry LiteLLM's ``KeyMetadata`` (``management.daily_activity``).
Rankings break ties by the reporting id (users: by user id). Where relaygate differs: the range is at most 366
days on every route (LiteLLM leaves ``/user/.../aggregated`` unbounded and caps the others at 401), and the
metrics and totals LiteLLM keeps for features relaygate has not (PTU flat costs, prompt compression, its
autorouter's savings) are not in the answers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from relaygate.http.routes import RouteTable
from relaygate.management.activity import date_range
from relaygate.management.common import Ctx, Download, Gateway, bad_request, route
from relaygate.management.daily_activity import ENTITIES, PREFIXES, UNASSIGNED, Days, Sum, scoped_rows
from relaygate.store.activity import entity_labels, key_metadata, reporting_key

__all__ = ["EXPORT_COLUMNS", "EXPORT_TYPES", "add_routes"]

EXPORT_TYPES = ("daily", "daily_with_keys", "daily_with_models", "daily_with_users")
EXPORT_COLUMNS = ("date", "entity_id", "entity_alias", "api_key", "key_alias", "user_id", "user_email", "model",
                  "spend", "flat_cost", "prompt_tokens", "completion_tokens", "api_requests", "successful_requests",
                  "failed_requests", "cache_read_input_tokens", "cache_creation_input_tokens")
"""LiteLLM's export columns, in its order."""
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_ALIAS = {"team": "team_alias", "organization": "organization_alias"}
"""The entities whose alias an export shows (LiteLLM's)."""

Route = Callable[[Ctx, str], Awaitable[Any]]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for entity in ENTITIES:
        for prefix in PREFIXES[entity]:
            base = f"{prefix}/daily/activity"
            for path, handler in ((f"{base}/aggregated", aggregated), (f"{base}/aggregated/keys", key_page),
                                  (f"{base}/aggregated/search", search),
                                  (f"{base}/aggregated/model_top_keys", model_top_keys), (f"{base}/export", export)):
                route(t, gw, "GET", path, _bound(handler, entity))
    route(t, gw, "GET", "/user/daily/activity/aggregated/users", _bound(users, "user"))
    route(t, gw, "GET", "/user/daily/activity/aggregated/cache_leakage_keys", _bound(cache_leakage_keys, "user"))


def _bound(handler: Route, entity: str) -> Callable[[Ctx], Awaitable[Any]]:
    async def serve(ctx: Ctx) -> Any:
        return await handler(ctx, entity)
    return serve


def _per_key(rows: list[dict[str, Any]]) -> dict[str, Sum]:
    out: dict[str, Sum] = {}
    for r in rows:
        s = out.get(r["api_key"])
        if s is None:
            s = out[r["api_key"]] = Sum()
        s.add(r)
    return out


def _ranked(sums: dict[str, Sum]) -> list[str]:
    """Keys by spend, most first, then by reporting id."""
    return sorted(sums, key=lambda k: (-sums[k].nanos, reporting_key(k)))


async def _key_rows(ctx: Ctx, keys: list[str], sums: dict[str, Sum]) -> list[dict[str, Any]]:
    meta = await key_metadata(ctx.store, keys)
    return [{"api_key": reporting_key(k), "metrics": sums[k].out(), "metadata": meta[k]} for k in keys]


def _text(ctx: Ctx, name: str) -> str:
    value = (ctx.query.get(name) or "").strip()
    if not value:
        raise bad_request(f"{name} is required", name)
    if len(value) > 1000:
        raise bad_request(f"{name} is longer than 1000 characters", name)
    return value


async def aggregated(ctx: Ctx, entity: str) -> dict[str, Any]:
    limit = ctx.int_arg("api_key_limit", 100, high=1000)
    rows = await scoped_rows(ctx, entity)
    sums = _per_key(rows)
    top = set(_ranked(sums)[:limit])
    days = Days(rows, top)
    shown = days.newest_first()
    keys, entities = await days.labels(ctx, shown, entity)
    per_entity: dict[str, set[str]] = {}
    for r in rows:
        per_entity.setdefault(r["entity"] or UNASSIGNED, set()).add(r["api_key"])
    return {"results": days.results(shown, keys, entities), "metadata": {
        **days.totals(), "page": 1, "total_pages": 1, "has_more": False, "api_key_limit": limit,
        "total_api_keys": len(sums), "entity_total_api_keys": {e: len(ks) for e, ks in per_entity.items()}}}


async def key_page(ctx: Ctx, entity: str) -> dict[str, Any]:
    offset = ctx.int_arg("offset", 0, low=0, high=10**9)
    limit = ctx.int_arg("limit", 50, high=100)
    sums = _per_key(await scoped_rows(ctx, entity))
    ranked = _ranked(sums)
    return {"api_keys": await _key_rows(ctx, ranked[offset:offset + limit], sums), "total_api_keys": len(ranked),
            "offset": offset, "limit": limit}


async def search(ctx: Ctx, entity: str) -> dict[str, Any]:
    text = _text(ctx, "search").lower()
    limit = ctx.int_arg("limit", 100, high=100)
    sums = _per_key(await scoped_rows(ctx, entity))
    meta = await key_metadata(ctx.store, list(sums))

    def found(k: str) -> bool:
        m = meta[k]
        named = reporting_key(k), m["key_alias"] if m["key_exists"] else None, m["user_id"], m["user_email"]
        return any(isinstance(v, str) and text in v.lower() for v in named)

    hits = [k for k in _ranked(sums) if found(k)][:limit]
    return {"api_keys": [{"api_key": reporting_key(k), "metrics": sums[k].out(), "metadata": meta[k]}
                         for k in hits]}


async def model_top_keys(ctx: Ctx, entity: str) -> dict[str, Any]:
    model = _text(ctx, "model_group")
    by_group = (ctx.query.get("by_model_group") or "true").strip().lower() not in ("false", "0", "no", "off")
    limit = ctx.int_arg("limit", 5, high=100)
    column = "model_group" if by_group else "model"
    sums = _per_key([r for r in await scoped_rows(ctx, entity) if r[column] == model])
    return {"model": model, "by_model_group": by_group,
            "api_keys": await _key_rows(ctx, _ranked(sums)[:limit], sums)}


async def users(ctx: Ctx, entity: str) -> dict[str, Any]:
    offset = ctx.int_arg("offset", 0, low=0, high=10**9)
    limit = ctx.int_arg("limit", 50, high=100)
    sums: dict[str, Sum] = {}
    for r in await scoped_rows(ctx, entity):
        s = sums.get(r["entity"])
        if s is None:
            s = sums[r["entity"]] = Sum()
        s.add(r)
    ranked = sorted(sums, key=lambda u: (-sums[u].nanos, u == "", u))
    page = ranked[offset:offset + limit]
    labels = await entity_labels(ctx.store, "user", page)
    out = []
    for u in page:
        m = sums[u].out()
        label = labels.get(u, {})
        out.append({"user_id": u or None, "user_email": label.get("user_email"), "user_alias": label.get("user_alias"),
                    **{k: m[k] for k in ("spend", "prompt_tokens", "completion_tokens", "total_tokens",
                                         "api_requests", "successful_requests", "failed_requests")}})
    return {"users": out, "total_users": len(ranked), "offset": offset, "limit": limit}


async def cache_leakage_keys(ctx: Ctx, entity: str) -> dict[str, Any]:
    limit = ctx.int_arg("limit", 20, high=100)
    sums = _per_key(await scoped_rows(ctx, entity))
    leaked = {k: s.prompt - s.cache_read for k, s in sums.items() if s.prompt - s.cache_read > 0}
    ranked = sorted(leaked, key=lambda k: (-leaked[k], reporting_key(k)))[:limit]
    return {"api_keys": await _key_rows(ctx, ranked, sums)}


async def export(ctx: Ctx, entity: str) -> Download:
    kind = ctx.query.get("export_type") or "daily"
    if kind not in EXPORT_TYPES:
        raise bad_request(f"export_type must be one of {', '.join(EXPORT_TYPES)}", "export_type")
    fmt = ctx.query.get("format") or "csv"
    if fmt not in ("csv", "json"):
        raise bad_request("format must be csv or json", "format")
    start, end = date_range(ctx.query, required=True)
    rows = await scoped_rows(ctx, entity)
    keys = await key_metadata(ctx.store, list({r["api_key"] for r in rows})) if kind != "daily" else {}
    groups: dict[tuple[str, str, str], Sum] = {}
    for r in rows:
        if kind == "daily_with_keys":
            by = reporting_key(r["api_key"])
        elif kind == "daily_with_models":
            by = r["model"] or "unknown-model"
        elif kind == "daily_with_users":
            by = keys[r["api_key"]]["user_id"] or ""
        else:
            by = ""
        g = (r["day"], r["entity"] or "", by)
        s = groups.get(g)
        if s is None:
            s = groups[g] = Sum()
        s.add(r)
    aliases = await entity_labels(ctx.store, entity, list({e for _, e, _ in groups})) if entity in _ALIAS else {}
    emails = await entity_labels(ctx.store, "user", list({b for _, _, b in groups})) \
        if kind == "daily_with_users" else {}
    by_reporting = {reporting_key(k): m for k, m in keys.items()} if kind == "daily_with_keys" else {}
    out: list[dict[str, Any]] = []
    for (day, ent, by), s in sorted(groups.items()):
        m = s.out()
        row: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
        row.update(date=day, entity_id=ent, spend=m["spend"], flat_cost=0.0,
                   entity_alias=aliases.get(ent, {}).get(_ALIAS.get(entity, ""), None) if ent else None,
                   **{c: m[c] for c in EXPORT_COLUMNS[10:]})
        if kind == "daily_with_keys":
            meta = by_reporting[by]
            row.update(api_key=by, key_alias=meta["key_alias"], user_id=meta["user_id"], user_email=meta["user_email"])
        elif kind == "daily_with_models":
            row["model"] = by
        elif kind == "daily_with_users":
            row.update(user_id=by or None, user_email=emails.get(by, {}).get("user_email") if by else None)
        out.append(row)
    name = f"{entity}-usage-{start.isoformat()}-{end.isoformat()}-{kind}.{fmt}"
    if fmt == "json":
        return Download(orjson.dumps(out), b"application/json", name)
    buf = io.StringIO()
    writer = csv.writer(buf)  # the excel dialect: minimal quoting, CRLF, as LiteLLM's
    writer.writerow(EXPORT_COLUMNS)
    for row in out:
        writer.writerow(["" if v is None else _cell(v) for v in row.values()])
    return Download(buf.getvalue().encode(), b"text/csv; charset=utf-8", name)


def _cell(value: Any) -> Any:
    """A CSV cell: text a spreadsheet would run as a formula gets a ``'`` in front."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value
