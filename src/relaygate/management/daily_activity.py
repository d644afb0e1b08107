"""LiteLLM's daily activity routes: spend, tokens and requests per day, broken down by model, model group,
provider, key and entity (``common_daily_activity`` in LiteLLM, what its Usage page and many cost scripts
read).

Routes (``start_date`` and ``end_date`` required, ``YYYY-MM-DD``, UTC days, both included; ``model`` (a model
group or an upstream model), ``api_key`` (a key, its hash, or LiteLLM's reporting id: ``unattributed`` for
requests no key paid for, ``raw:<key>``); ``page`` from 1 and ``page_size`` (10, at most 1000) count days):

- ``GET /user/daily/activity`` (``user_id``): entities are users. A caller that does not read everything
  sees its own user's days only (a ``user_id`` of someone else is a 403).
- ``GET /team/daily/activity`` (``team_ids`` and ``exclude_team_ids``, comma-separated): entities are teams.
  A caller that does not read everything sees the teams it belongs to.
- ``GET /tag/daily/activity`` (``tags``, comma-separated): entities are request tags (a request with
  several counts for each). A caller that does not read everything sees the requests of its own keys (the
  calling key and every key of its user), as LiteLLM narrows an internal user (LiteLLM leaves other roles,
  such as a team's service-account key, unnarrowed; here no caller but the admin and its viewer is).
- ``GET /organization/daily/activity`` (``organization_ids``, ``exclude_organization_ids``): a caller that
  does not read everything sees the organizations of which it is an ``org_admin`` (another one asked for is
  a 403; none at all, an empty answer), as LiteLLM's.
- ``GET /customer/daily/activity`` (``end_user_ids``, ``exclude_end_user_ids``; also
  ``/end_user/daily/activity``, as LiteLLM registers both): the admin's.

Answer: ``{"results": [{"date", "metrics", "breakdown": {"models", "model_groups", "providers", "api_keys",
"entities", "mcp_servers", "endpoints"}}], "metadata": {"total_spend", "total_prompt_tokens", ...,
"page", "total_pages", "has_more"}}``, newest day first. ``metrics`` are LiteLLM's ``SpendMetrics``
(``spend``, ``prompt_tokens``, ``completion_tokens``, ``cache_read_input_tokens``,
``cache_creation_input_tokens``, ``total_tokens``, ``successful_requests``, ``failed_requests``,
``api_requests``); a breakdown entry is ``{"metrics", "metadata", "api_key_breakdown"}``. Keys are named by
their reporting id (``store.activity.reporting_key``), each with LiteLLM's ``KeyMetadata`` (``key_alias``,
``team_id``, ``user_id`` and ``user_email`` of its owner, ``key_exists``; the empty key is ``Unattributed``);
an entity's metadata is what LiteLLM shows beside it (a user's ``user_email`` and ``user_alias``, a team's
``team_alias``, an organization's ``organization_alias``, a customer's ``alias``); an empty entity id is
``Unassigned``. Read from the daily rollup (``store.daily``: one row per day, entity and combination, kept by
the spend writer as LiteLLM keeps its daily spend tables), so the views still show days whose spend logs
retention deleted, or that ``disable_spend_logs`` never wrote. Where LiteLLM pages its daily table's rows (a
day's breakdown can straddle two pages) relaygate pages whole days, and the ``metadata`` totals are the whole
range's, not the page's.

The companion routes (``.../daily/activity/aggregated`` and its ``/keys``, ``/search``, ``/model_top_keys``,
``.../daily/activity/export`` ...) are ``management.daily_aggregated``'s, on the same scoping and rows
(:func:`scoped_rows`, :class:`Days`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.activity import range_bounds
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, forbidden, route
from relaygate.management.keys import token_of
from relaygate.store.activity import (
    Scope,
    daily_activity,
    entity_labels,
    key_metadata,
    key_of_reporting,
    keys_of_user,
    org_admin_of,
    reporting_key,
    team_user_spend,
)
from relaygate.store.spend import NANOS

ENTITIES = ("user", "team", "tag", "organization", "customer")
PREFIXES = {"user": ("/user",), "team": ("/team",), "tag": ("/tag",), "organization": ("/organization",),
            "customer": ("/customer", "/end_user")}
"""The routes' prefixes per entity (LiteLLM's customer views answer under ``/end_user`` too)."""
UNASSIGNED = "Unassigned"
"""LiteLLM's name of the entity of rows that have none."""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for entity in ENTITIES:
        for prefix in PREFIXES[entity]:
            route(t, gw, "GET", f"{prefix}/daily/activity", _paged(entity))
    route(t, gw, "GET", "/team/spend/by_user", team_spend_by_user)


DAILY_PERMISSION = "/team/daily/activity"
"""A team's ``team_member_permissions`` entry that lets its members read every member's spend (LiteLLM's)."""


async def team_spend_by_user(ctx: Ctx) -> Any:
    """LiteLLM 1.110's ``GET /team/spend/by_user`` (``team_ids``, ``start_date``, ``end_date``, both days
    included): each user's spend, tokens and requests within each team, from the spend logs, the largest
    first. The proxy admin and its viewer read any team; another caller only its own teams (else a 403), and
    within each every user where it is the team's admin or the team grants its members
    ``/team/daily/activity``, else its own row only. Requests of no user are under ``user_id`` ``""``."""
    if not ctx.query.get("start_date") or not ctx.query.get("end_date"):
        raise bad_request("Please provide start_date and end_date", "start_date")
    if not _ids(ctx, "team_ids"):
        raise bad_request("Please provide team_ids", "team_ids")
    start, end = range_bounds(ctx.query)
    ids = _team_ids(ctx) or []
    teams = {tm.team_id: tm for tm in (await ctx.store.search_teams(team_ids=ids, page_size=len(ids) or 1)).items}
    c = ctx.caller
    every = [i for i in ids if i in teams and (c.reads_all or c.team_role(teams[i]) == "admin"
                                               or DAILY_PERMISSION in teams[i].team_member_permissions)]
    own = [i for i in ids if i in teams and i not in every]
    rows = await team_user_spend(ctx.store, start, end, every)
    if own and c.user_id:
        rows += await team_user_spend(ctx.store, start, end, own, c.user_id)
    rows.sort(key=lambda r: (-r["spend_nanos"], r["team_id"], r["user_id"] or ""))
    return {"start_date": ctx.query["start_date"], "end_date": ctx.query["end_date"], "results": [
        {"team_id": r["team_id"], "team_alias": teams[r["team_id"]].team_alias, "user_id": r["user_id"] or "",
         "user_email": r["user_email"], "user_alias": r["user_alias"], "spend": r["spend_nanos"] / NANOS,
         "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
         "total_tokens": r["total_tokens"], "api_requests": r["requests"],
         "successful_requests": r["requests"] - r["failed"], "failed_requests": r["failed"]} for r in rows]}


def _paged(entity: str) -> Callable[[Ctx], Awaitable[Any]]:
    async def handler(ctx: Ctx) -> Any:
        return await respond(ctx, entity)
    return handler


def _ids(ctx: Ctx, name: str) -> list[str] | None:
    raw = ctx.query.get(name) or ""
    got = [x for x in (v.strip() for v in raw.split(",")) if x]
    if len(got) > 500:
        raise bad_request(f"{name} names {len(got)} ids; at most 500", name)
    return got or None


class Sum:
    """One ``SpendMetrics`` being added up (spend in exact nano-USD until it is shown)."""

    __slots__ = ("nanos", "prompt", "completion", "cache_read", "cache_write", "requests", "failed")

    def __init__(self) -> None:
        self.nanos = self.prompt = self.completion = self.cache_read = self.cache_write = 0
        self.requests = self.failed = 0

    def add(self, r: dict[str, Any]) -> None:
        self.nanos += r["spend_nanos"]
        self.prompt += r["prompt_tokens"]
        self.completion += r["completion_tokens"]
        self.cache_read += r["cache_read_tokens"]
        self.cache_write += r["cache_write_tokens"]
        self.requests += r["requests"]
        self.failed += r["failed"]

    def out(self) -> dict[str, Any]:
        return {"spend": self.nanos / NANOS, "prompt_tokens": self.prompt, "completion_tokens": self.completion,
                "cache_read_input_tokens": self.cache_read, "cache_creation_input_tokens": self.cache_write,
                "total_tokens": self.prompt + self.completion, "successful_requests": self.requests - self.failed,
                "failed_requests": self.failed, "api_requests": self.requests}


class _Entry:
    """A breakdown entry: its sum and, per key shown, the key's."""

    __slots__ = ("total", "keys")

    def __init__(self) -> None:
        self.total = Sum()
        self.keys: dict[str, Sum] = {}

    def add(self, r: dict[str, Any], shown: bool) -> None:
        self.total.add(r)
        if shown:
            k = self.keys.get(r["api_key"])
            if k is None:
                k = self.keys[r["api_key"]] = Sum()
            k.add(r)


class Days:
    """The rows of a range added up per day: the day's sum and its breakdowns (``keep``: the keys shown in the
    per-key parts, all when None; every sum counts every key)."""

    __slots__ = ("days", "total")

    def __init__(self, rows: list[dict[str, Any]], keep: set[str] | None = None) -> None:
        self.days: dict[str, dict[str, Any]] = {}
        self.total = Sum()
        for r in rows:
            self.total.add(r)
            day = self.days.get(r["day"])
            if day is None:
                day = self.days[r["day"]] = {"sum": Sum(), "models": {}, "model_groups": {}, "providers": {},
                                             "api_keys": {}, "entities": {}}
            day["sum"].add(r)
            shown = keep is None or r["api_key"] in keep
            for part, name in (("models", r["model"]), ("model_groups", r["model_group"]),
                               ("providers", r["provider"] or "default"), ("entities", r["entity"] or UNASSIGNED)):
                entry = day[part].get(name)
                if entry is None:
                    entry = day[part][name] = _Entry()
                entry.add(r, shown)
            if shown:
                k = day["api_keys"].get(r["api_key"])
                if k is None:
                    k = day["api_keys"][r["api_key"]] = Sum()
                k.add(r)

    def newest_first(self) -> list[str]:
        return sorted(self.days, reverse=True)

    def results(self, shown: list[str], keys: dict[str, dict[str, Any]],
                entities: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """LiteLLM's ``DailySpendData`` of each of the ``shown`` days (``keys``: ``key_metadata`` of their keys;
        ``entities``: each entity's metadata)."""
        def key_out(token: str, s: Sum) -> dict[str, Any]:
            return {"metrics": s.out(), "metadata": keys[token]}

        def entry_out(e: _Entry, metadata: dict[str, Any]) -> dict[str, Any]:
            return {"metrics": e.total.out(), "metadata": metadata,
                    "api_key_breakdown": {reporting_key(k): key_out(k, s) for k, s in e.keys.items()}}

        out = []
        for d in shown:
            day = self.days[d]
            out.append({"date": d, "metrics": day["sum"].out(), "breakdown": {
                "models": {n: entry_out(e, {}) for n, e in day["models"].items()},
                "model_groups": {n: entry_out(e, {}) for n, e in day["model_groups"].items()},
                "providers": {n: entry_out(e, {}) for n, e in day["providers"].items()},
                "api_keys": {reporting_key(k): key_out(k, s) for k, s in day["api_keys"].items()},
                "entities": {n: entry_out(e, entities.get(n, {})) for n, e in day["entities"].items()},
                "mcp_servers": {}, "endpoints": {}}})
        return out

    async def labels(self, ctx: Ctx, shown: list[str], entity: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The key metadata and the entity metadata of the ``shown`` days."""
        keys = await key_metadata(ctx.store, list({k for d in shown for k in self.days[d]["api_keys"]}))
        names = list({n for d in shown for n in self.days[d]["entities"]})
        return keys, await entity_labels(ctx.store, entity, names)

    def totals(self) -> dict[str, Any]:
        t = self.total.out()
        return {"total_spend": t["spend"], "total_prompt_tokens": t["prompt_tokens"],
                "total_completion_tokens": t["completion_tokens"], "total_tokens": t["total_tokens"],
                "total_api_requests": t["api_requests"], "total_successful_requests": t["successful_requests"],
                "total_failed_requests": t["failed_requests"],
                "total_cache_read_input_tokens": t["cache_read_input_tokens"],
                "total_cache_creation_input_tokens": t["cache_creation_input_tokens"]}


async def scoped_rows(ctx: Ctx, entity: str) -> list[dict[str, Any]]:
    """The rollup rows of ``entity`` the caller may read in the query's range, of its ``model`` and ``api_key``
    (see the module docstring)."""
    ids, exclude = await scope_of(ctx, entity)
    q = ctx.query
    bounds = range_bounds(q)
    if ids == []:  # the caller may read none
        return []
    api_key = None
    if q.get("api_key"):
        stored = key_of_reporting(q["api_key"].strip())
        api_key = token_of(stored, "api_key") if stored else ""
    rows = await daily_activity(ctx.store, Scope(*bounds), entity, ids=ids, exclude=exclude,
                                model=q.get("model") or None, api_key=api_key)
    c = ctx.caller
    if entity == "tag" and not c.reads_all:  # its own keys' requests
        own = set(await keys_of_user(ctx.store, c.user_id)) if c.user_id else set()
        if c.key_hash:
            own.add(c.key_hash)
        rows = [r for r in rows if r["api_key"] in own]
    return rows


async def respond(ctx: Ctx, entity: str) -> dict[str, Any]:
    """A page of the days of ``entity`` rows in the query's range (see the module docstring)."""
    page = ctx.int_arg("page", 1, high=1_000_000)
    size = ctx.int_arg("page_size", 10, high=1000)
    days = Days(await scoped_rows(ctx, entity))
    ordered = days.newest_first()
    shown = ordered[(page - 1) * size:page * size]
    keys, entities = await days.labels(ctx, shown, entity)
    return {"results": days.results(shown, keys, entities), "metadata": {
        **days.totals(), "page": page, "total_pages": -(-len(ordered) // size),
        "has_more": page * size < len(ordered)}}


async def scope_of(ctx: Ctx, entity: str) -> tuple[list[str] | None, list[str] | None]:
    """The entity ids the caller's query reads (None: all it may; empty: none) and those it leaves out."""
    if entity == "user":
        return _user_ids(ctx), None
    if entity == "team":
        return _team_ids(ctx), _ids(ctx, "exclude_team_ids")
    if entity == "tag":
        return _ids(ctx, "tags"), None
    if entity == "organization":
        return await _org_ids(ctx), _ids(ctx, "exclude_organization_ids")
    admin_only(ctx, read=True)
    return _ids(ctx, "end_user_ids"), _ids(ctx, "exclude_end_user_ids")


async def _org_ids(ctx: Ctx) -> list[str] | None:
    ids = _ids(ctx, "organization_ids")
    c = ctx.caller
    if c.reads_all:
        return ids
    mine = await org_admin_of(ctx.store, c.user_id) if c.user_id else []
    for org in ids or ():
        if org not in mine:
            raise forbidden(f"User is not org_admin for Organization= {org}.")
    return ids if ids is not None else mine


def _user_ids(ctx: Ctx) -> list[str] | None:
    c = ctx.caller
    user_id = ctx.query.get("user_id") or None
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only view your own activity. Got user_id={user_id}, Your ID={c.user_id}")
        if c.user_id is None:
            raise forbidden("Your key has no user: its activity is under /key/info")
        user_id = c.user_id
    return [user_id] if user_id else None


def _team_ids(ctx: Ctx) -> list[str] | None:
    c = ctx.caller
    ids = _ids(ctx, "team_ids")
    if not c.reads_all:
        mine = set(c.user.teams if c.user is not None else []) | ({c.team_id} if c.team_id else set())
        if ids is not None and not set(ids) <= mine:
            raise forbidden("You can only view the activity of your own teams")
        ids = sorted(mine if ids is None else set(ids))
        if not ids:
            raise forbidden("You are in no team")
    return ids


__all__ = ["ENTITIES", "PREFIXES", "UNASSIGNED", "Days", "Sum", "add_routes", "respond", "scope_of", "scoped_rows",
           "team_spend_by_user"]
