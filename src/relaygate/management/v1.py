"""LiteLLM's ``/management/v1`` API: lists that page, sort and filter, answered with page links, and errors as RFC
9457 problem documents. The bulk writes are ``management.v1_bulk``'s; this module has the routes' frame and the
reads.

- **Errors**: ``application/problem+json`` ``{"type": "urn:litellm:error:<slug>", "title", "status", "detail"}``
  (``allowed``: the names a query may use, for an unknown parameter, sort field or filter operator), LiteLLM's
  slugs and wording (:class:`Problem`). Authentication stays the management API's (a 401 in the OpenAI error
  shape, as LiteLLM's route gate answers before the route runs). Without a database: 503
  ``database-not-connected``. A query parameter a route does not take is a 400 ``unknown-query-parameter``
  (a filter silently ignored would answer more than was asked).
- ``GET /management/v1/budgets`` (the proxy admin and its viewer): ``page`` (1), ``page_size`` (50, above 100
  taken as 100), ``sort`` (a comma list of ``budget_id``, ``max_budget``, ``tpm_limit``, ``rpm_limit``,
  ``tpd_limit``, ``created_at``, ``budget_duration``, ``-`` for descending; default ``-created_at``; then
  ``budget_id``), ``q`` (a part of the id, any case), ``filter[budget_duration][in|is_null]``,
  ``filter[max_budget][gte|lte|is_null]``, ``filter[created_at][gte|lte]``; each parameter at most once.
  Absent values sort last, except that a descending limit puts them first (no limit is the largest); a reset
  period sorts by its length from now (calendar months). Answer ``{"data": [{"budget_id", "max_budget",
  "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit", "budget_duration", "budget_reset_at", "created_at",
  "updated_at"}], "meta": {"total_count", "page", "page_size", "total_pages"}, "links": {"self", "first",
  "prev", "next", "last"}}``; ``tpd_limit`` is always null (relaygate has no tokens-per-day budget).
- ``GET /management/v1/spend_logs/end_users`` and ``.../users``: the distinct end users (internal users) of the
  spend logs in ``filter[startTime][gte]`` .. ``filter[startTime][lte]`` (both required), among the newest
  :data:`FACET_SCAN` rows, ``q`` a part of the id, ``page`` / ``page_size`` (1-100): ``{"data": [ids],
  "meta": {"page", "page_size", "has_more"}, "links": {"self", "prev", "next"}}``. The admin and its viewer
  read every row; another caller its own rows and those of the teams it administers.
- ``GET /management/v1/users/me``: ``{"user_id", "user_role", "user_email"}`` of the caller's user (404
  ``user-not-found`` for a key with none).

Links are relative: the path and the request's own query, ``page`` set last.
"""

from __future__ import annotations

import calendar
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_body
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management.common import (
    Ctx,
    Gateway,
    admin_only,
    caller_principal,
    every_page,
    query_of,
    resolve_caller,
)
from relaygate.store import InvalidField, NotFound, StoreUnavailable

__all__ = ["FACET_SCAN", "PREFIX", "Problem", "add_routes", "v1_route"]

PREFIX = "/management/v1"
PROBLEM_TYPE = b"application/problem+json"
TYPE_BASE = "urn:litellm:error:"
FACET_SCAN = 10_000
"""Spend log rows a facet reads at most (the newest), as LiteLLM's ``SPEND_LOGS_FACET_SCAN_CAP``."""


class Problem(Exception):
    """An RFC 9457 problem answer (``slug``: the ``type`` after LiteLLM's URN base)."""

    def __init__(self, slug: str, title: str, status: int, detail: str, allowed: Sequence[str] | None = None) -> None:
        super().__init__(detail)
        self.slug, self.title, self.status, self.detail = slug, title, status, detail
        self.allowed = sorted(allowed) if allowed is not None else None

    def body(self) -> bytes:
        out: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title, "status": self.status,
                               "detail": self.detail}
        if self.allowed is not None:
            out["allowed"] = self.allowed
        return orjson.dumps(out)


def invalid_query(detail: str) -> Problem:
    return Problem("invalid-query-parameter", "Invalid query parameter", 400, detail)


def invalid_body(detail: str) -> Problem:
    return Problem("invalid-request-body", "Invalid request body", 422, detail)


def forbidden(detail: str) -> Problem:
    return Problem("forbidden", "Forbidden", 403, detail)


_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
           413: "Request too large", 503: "Service unavailable"}


def v1_route(t: RouteTable, gw: Gateway, method: str, path: str, handler: Callable[[Ctx], Awaitable[Any]], *,
             failure: str, query: Sequence[str] | None = ()) -> None:
    """Add ``handler`` at ``PREFIX + path``: the caller authenticated as on every management route, then
    problem answers for what the route refuses (``failure``: the 500's detail; ``query``: the parameters it
    takes, None: not checked)."""
    async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        store = gw.store
        try:
            if store is None:
                await caller_principal(gw, scope)  # 401 before 503
                raise Problem("database-not-connected", "Database not connected", 503,
                              "DB not connected. This endpoint needs a database; set DATABASE_URL (or "
                              "general_settings.database_url).")
            caller = await resolve_caller(gw, scope, store)
            ctx = Ctx(gw, store, caller, PREFIX + path, params, query_of(scope), receive, scope)
            if query is not None:
                unknown = sorted({k for k, _ in _raw_query(scope)} - set(query))
                if unknown:
                    raise Problem("unknown-query-parameter", "Unknown query parameter", 400,
                                  f"Unrecognized query parameter(s): {', '.join(unknown)}.", query)
            result = await handler(ctx)
        except Problem as problem:
            await _send(send, problem)
            return
        except StoreUnavailable as exc:
            await _send(send, Problem("database-not-connected", "Database not connected", 503, exc.message))
            return
        except (NotFound, InvalidField) as exc:
            status = 404 if isinstance(exc, NotFound) else 400
            await _send(send, Problem("not-found" if status == 404 else "invalid-request-body", _TITLES[status],
                                      status, exc.message))
            return
        except GatewayError as exc:
            if exc.status == 401 or exc.type == "auth_error":
                raise  # the route gate's answer, as LiteLLM's
            await _send(send, Problem("internal-server-error" if exc.status >= 500 else "bad-request",
                                      _TITLES.get(exc.status, "Internal server error"), exc.status, exc.message))
            return
        except (OSError, ConnectionError):
            await _send(send, Problem("internal-server-error", "Internal server error", 500, failure))
            return
        await send_body(send, 200, orjson.dumps(result), [(b"content-type", b"application/json")])

    t.add(method, PREFIX + path, serve)


async def _send(send: Send, problem: Problem) -> None:
    await send_body(send, problem.status, problem.body(), [(b"content-type", PROBLEM_TYPE)])


def _raw_query(scope: Scope) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl((scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True)


def _page_url(ctx: Ctx, page: int) -> str:
    others = [(k, v) for k, v in _raw_query(ctx.scope) if k != "page"]
    return f"{ctx.path}?{urllib.parse.urlencode([*others, ('page', page)])}"


def _int(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_query(f"'{name}' must be an integer.") from None
    if value < 1:
        raise invalid_query(f"'{name}' must be 1 or greater.")
    if value > PAGE_MAX:  # a page past 64 bits was a 500 (orjson refused to write it back in ``meta``)
        raise invalid_query(f"'{name}' must be {PAGE_MAX} or less.")
    return value


PAGE_MAX = 10**9
"""The largest ``page`` or ``page_size`` a query may give."""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    from relaygate.management import v1_bulk

    v1_route(t, gw, "GET", "/budgets", list_budgets, failure="Failed to list budgets.", query=None)
    for column, path in (("end_user", "/spend_logs/end_users"), ("user_id", "/spend_logs/users")):
        v1_route(t, gw, "GET", path, _facet(column), query=_FACET_QUERY,
                 failure=f"Failed to list spend log {'end users' if column == 'end_user' else 'users'}.")
    v1_route(t, gw, "GET", "/users/me", users_me, failure="Failed to read the user.", query=None)
    v1_bulk.add_routes(t, gw)


# -- budgets -----------------------------------------------------------------------------------------------

SORTABLE = ("budget_id", "max_budget", "tpm_limit", "rpm_limit", "tpd_limit", "created_at", "budget_duration")
_LIMITS = frozenset({"max_budget", "tpm_limit", "rpm_limit", "tpd_limit"})
_FILTERS = {"budget_duration": ("in", "is_null"), "max_budget": ("gte", "lte", "is_null"),
            "created_at": ("gte", "lte")}
_OPS = ("eq", "gte", "lte", "gt", "lt", "contains", "not", "in", "is_null")
BUDGET_QUERY = ("page", "page_size", "sort", "q", *(f"filter[{f}][{op}]" for f, ops in _FILTERS.items() for op in ops))
_FILTER_KEY = re.compile(r"filter\[([^\]]*)\](?:\[([^\]]*)\])?")
_PERIOD = re.compile(r"^([0-9]+)(mo|[smhdw])")
_ALIASES = {"hourly": "1h", "daily": "24h", "weekly": "7d", "monthly": "30d"}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _period_seconds(value: str | None, now: datetime) -> float | None:
    """A reset period's length from ``now`` in seconds (calendar months), None when it does not parse."""
    if not value:
        return None
    text = _ALIASES.get(value.strip().lower(), value)
    text = "".join(str(int(ch)) if ch.isdecimal() else ch for ch in text)
    m = _PERIOD.match(text)
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if unit != "mo":
        return float(n * _SECONDS[unit])
    month = now.month - 1 + n
    year, month = now.year + month // 12, month % 12 + 1
    day = min(now.day, calendar.monthrange(year, month)[1])
    return (now.replace(year=year, month=month, day=day) - now).total_seconds()


def _budget_item(b: Any) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {"budget_id": b.budget_id, "max_budget": b.max_budget, "soft_budget": b.soft_budget,
            "tpm_limit": b.tpm_limit, "rpm_limit": b.rpm_limit, "tpd_limit": None,
            "budget_duration": b.budget_duration, "budget_reset_at": iso(b.budget_reset_at),
            "created_at": iso(b.created_at), "updated_at": iso(b.updated_at)}


def _sort_keys(ctx: Ctx) -> list[tuple[str, bool]]:
    raw = ctx.query.get("sort")
    if raw is None:
        return [("created_at", True)]
    keys = [(s[1:], True) if s.startswith("-") else (s, False) for s in (p.strip() for p in raw.split(","))]
    bad = [name for name, _ in keys if name not in SORTABLE]
    if bad:
        raise Problem("invalid-sort-field", "Invalid sort field", 400,
                      f"Cannot sort budgets by: {', '.join(repr(b) for b in bad)}.", SORTABLE)
    seen: list[str] = []
    for name, _ in keys:
        if name in seen:
            raise Problem("duplicate-sort-field", "Duplicate sort field", 400,
                          f"Sort field(s) named more than once: {name}. Each may appear once.", SORTABLE)
        seen.append(name)
    return keys


def _filters(ctx: Ctx) -> list[Callable[[dict[str, Any]], bool]]:
    out: list[Callable[[dict[str, Any]], bool]] = []
    for key in sorted(k for k in ctx.query if k.startswith("filter[")):
        m = _FILTER_KEY.fullmatch(key)
        field, op = (m.group(1), m.group(2) or "eq") if m else ("", "")
        if field in _FILTERS and op in _OPS and op not in _FILTERS[field]:
            raise Problem("unsupported-filter-operator", "Unsupported filter operator", 400,
                          f"Operator '{op}' is not supported on '{field}'.", _FILTERS[field])
        raw = ctx.query[key]
        out.append(_test(key, field, op, raw))
    return out


def _test(key: str, field: str, op: str, raw: str) -> Callable[[dict[str, Any]], bool]:
    """One filter's test of a budget row (``key``: the parameter, for errors)."""
    if op == "is_null":
        if raw.lower() not in ("true", "false"):
            raise invalid_query(f"'{key}' must be 'true' or 'false'.")
        want = raw.lower() == "true"
        return lambda r: (r[field] is None) == want
    if op == "in":
        values = frozenset(v.strip() for v in raw.split(","))
        return lambda r: r[field] in values
    value: Any
    if field == "created_at":
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_query(f"'{key}' is not a valid datetime: {raw!r}.") from None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    else:
        try:
            value = float(raw)
        except ValueError:
            raise invalid_query(f"'{key}' is not a valid float: {raw!r}.") from None
    if op == "gte":
        return lambda r: r[field] is not None and r[field] >= value
    return lambda r: r[field] is not None and r[field] <= value


async def list_budgets(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    unknown = []
    for name, _ in _raw_query(ctx.scope):  # a filter on a budget field with an operator word is known (below)
        m = _FILTER_KEY.fullmatch(name)
        if name not in BUDGET_QUERY and not (m and m.group(1) in _FILTERS and (m.group(2) or "eq") in _OPS):
            unknown.append(name)
    if unknown:
        raise Problem("unknown-query-parameter", "Unknown query parameter", 400,
                      f"Unrecognized query parameter(s): {', '.join(sorted(set(unknown)))}.", BUDGET_QUERY)
    page = _int(ctx, "page", 1)
    size = min(_int(ctx, "page_size", 50), 100)
    keys = _sort_keys(ctx)
    tests = _filters(ctx)
    q = (ctx.query.get("q") or "").lower()
    repeated = sorted({k for k, _ in _raw_query(ctx.scope) if [n for n, _ in _raw_query(ctx.scope)].count(k) > 1})
    if repeated:
        raise invalid_query(f"Repeated query parameter(s): {', '.join(repeated)}. Each may appear once; use a "
                            "comma-separated list for multiple sort keys or filter values.")
    budgets = await every_page(ctx.store.list_budgets)
    now = datetime.now(UTC)
    rows = []
    for b in budgets:
        r = {"budget_id": b.budget_id, "max_budget": b.max_budget, "tpm_limit": b.tpm_limit,
             "rpm_limit": b.rpm_limit, "tpd_limit": None, "budget_duration": b.budget_duration,
             "created_at": b.created_at.astimezone(UTC) if b.created_at is not None else None, "_b": b}
        if q and q not in b.budget_id.lower():
            continue
        if all(test(r) for test in tests):
            rows.append(r)
    for name, desc in reversed([*keys, ("budget_id", False)]):  # stable sorts, the last key first
        def key(r: dict[str, Any], name: str = name) -> Any:
            return _period_seconds(r[name], now) if name == "budget_duration" else r[name]
        present = [r for r in rows if key(r) is not None]
        absent = [r for r in rows if key(r) is None]
        present.sort(key=key, reverse=desc)
        rows = absent + present if desc and name in _LIMITS else present + absent
    total = len(rows)
    pages = math.ceil(total / size)
    last = max(pages, 1)
    shown = rows[(page - 1) * size:page * size]
    return {"data": [_budget_item(r["_b"]) for r in shown],
            "meta": {"total_count": total, "page": page, "page_size": size, "total_pages": pages},
            "links": {"self": _page_url(ctx, page), "first": _page_url(ctx, 1),
                      "prev": _page_url(ctx, page - 1) if page > 1 else None,
                      "next": _page_url(ctx, page + 1) if page < last else None, "last": _page_url(ctx, last)}}


# -- spend log facets --------------------------------------------------------------------------------------

_FACET_QUERY = ("filter[startTime][gte]", "filter[startTime][lte]", "q", "page", "page_size")


def _when(ctx: Ctx, name: str) -> datetime:
    raw = ctx.query.get(name)
    if not raw:
        raise invalid_query(f"{name}: Field required")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_query(f"{name}: Input should be a valid datetime") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _facet(column: str) -> Callable[[Ctx], Awaitable[Any]]:
    async def handler(ctx: Ctx) -> Any:
        start, end = _when(ctx, "filter[startTime][gte]"), _when(ctx, "filter[startTime][lte]")
        page = _int(ctx, "page", 1)
        size = _int(ctx, "page_size", 50)
        if size > 100:
            raise invalid_query("page_size: Input should be less than or equal to 100")
        c = ctx.caller
        users: str | None = None
        teams: list[str] = []
        if not c.reads_all:
            users = c.user_id or ""
            for team_id in (c.user.teams if c.user is not None else []):
                try:
                    if c.is_team_admin(await ctx.store.get_team(team_id)):
                        teams.append(team_id)
                except NotFound:
                    continue
        from relaygate.store.activity import spend_log_facet

        values = await spend_log_facet(ctx.store, column, start, end + timedelta(microseconds=1),
                                       (ctx.query.get("q") or "").lower() or None, users, teams, FACET_SCAN,
                                       (page - 1) * size, size + 1)
        more = len(values) > size
        return {"data": values[:size], "meta": {"page": page, "page_size": size, "has_more": more},
                "links": {"self": _page_url(ctx, page), "prev": _page_url(ctx, page - 1) if page > 1 else None,
                          "next": _page_url(ctx, page + 1) if more else None}}
    return handler


async def users_me(ctx: Ctx) -> Any:
    c = ctx.caller
    if c.user_id is None:
        raise Problem("user-not-found", "User not found", 404, "The key used for this request is not bound to a user.")
    user = c.user
    return {"user_id": c.user_id, "user_role": c.role, "user_email": user.user_email if user is not None else None}
