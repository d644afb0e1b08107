"""LiteLLM's daily activity routes: spend, tokens and requests per day, broken down by model, model group,
provider, key and entity (``common_daily_activity`` in LiteLLM, what its Usage page and many cost scripts
read).

Routes (``start_date`` and ``end_date`` required, ``YYYY-MM-DD``, UTC days, both included; ``model`` (a model
group or an upstream model), ``api_key`` (a key or its hash); ``page`` from 1 and ``page_size`` (10, at
most 1000) count days):

- ``GET /user/daily/activity`` (``user_id``): entities are users. A caller that does not read everything
  sees its own user's days only (a ``user_id`` of someone else is a 403).
- ``GET /team/daily/activity`` (``team_ids`` and ``exclude_team_ids``, comma-separated): entities are teams,
  with their ``team_alias`` as metadata. A caller that does not read everything sees the teams it belongs to.
- ``GET /tag/daily/activity`` (``tags``, comma-separated): entities are request tags (a request with
  several counts for each); the admin's.
- ``GET /organization/daily/activity`` (``organization_ids``) and ``/customer/daily/activity``
  (``end_user_ids``): the admin's.

Answer: ``{"results": [{"date", "metrics", "breakdown": {"models", "model_groups", "providers", "api_keys",
"entities", "mcp_servers", "endpoints"}}], "metadata": {"total_spend", "total_prompt_tokens", ...,
"page", "total_pages", "has_more"}}``, newest day first. ``metrics`` are LiteLLM's ``SpendMetrics``
(``spend``, ``prompt_tokens``, ``completion_tokens``, ``cache_read_input_tokens``,
``cache_creation_input_tokens``, ``total_tokens``, ``successful_requests``, ``failed_requests``,
``api_requests``); a breakdown entry is ``{"metrics", "metadata", "api_key_breakdown"}`` (a key's:
``{"metrics", "metadata": {"key_alias", "team_id"}}``). Read from the daily rollup (``store.daily``: one row
per day, entity and combination, kept by the spend writer as LiteLLM keeps its daily spend tables), so the
views still show days whose spend logs retention deleted, or that ``disable_spend_logs`` never wrote. Where
LiteLLM pages
its daily table's rows (a day's breakdown can straddle two pages) relaygate pages whole days, and the
``metadata`` totals are the whole range's, not the page's.
"""

from __future__ import annotations

from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.activity import range_bounds
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, forbidden, route
from relaygate.management.keys import token_of
from relaygate.store.activity import Scope, daily_activity, key_labels, team_aliases
from relaygate.store.spend import NANOS

_FIELDS = ("spend", "prompt_tokens", "completion_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
           "total_tokens", "successful_requests", "failed_requests", "api_requests")


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/user/daily/activity", user_activity)
    route(t, gw, "GET", "/team/daily/activity", team_activity)
    route(t, gw, "GET", "/tag/daily/activity", tag_activity)
    route(t, gw, "GET", "/organization/daily/activity", organization_activity)
    route(t, gw, "GET", "/customer/daily/activity", customer_activity)



def _ids(ctx: Ctx, name: str) -> list[str] | None:
    raw = ctx.query.get(name) or ""
    got = [x for x in (v.strip() for v in raw.split(",")) if x]
    if len(got) > 500:
        raise bad_request(f"{name} names {len(got)} ids; at most 500", name)
    return got or None


class _Sum:
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
    """A breakdown entry: its sum and, per key, the key's."""

    __slots__ = ("total", "keys")

    def __init__(self) -> None:
        self.total = _Sum()
        self.keys: dict[str, _Sum] = {}

    def add(self, r: dict[str, Any]) -> None:
        self.total.add(r)
        k = self.keys.get(r["api_key"])
        if k is None:
            k = self.keys[r["api_key"]] = _Sum()
        k.add(r)


async def respond(ctx: Ctx, entity: str, *, ids: list[str] | None = None, exclude: list[str] | None = None,
                  entity_labels: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The days of ``entity`` rows in the query's range (see the module docstring)."""
    q = ctx.query
    page = ctx.int_arg("page", 1, high=1_000_000)
    size = ctx.int_arg("page_size", 10, high=1000)
    api_key = token_of(q["api_key"], "api_key") if q.get("api_key") else None
    scope = Scope(*range_bounds(q))
    rows = await daily_activity(ctx.store, scope, entity, ids=ids, exclude=exclude, model=q.get("model") or None,
                                api_key=api_key)
    days: dict[str, dict[str, Any]] = {}
    total = _Sum()
    for r in rows:
        total.add(r)
        day = days.get(r["day"])
        if day is None:
            day = days[r["day"]] = {"sum": _Sum(), "models": {}, "model_groups": {}, "providers": {},
                                    "api_keys": {}, "entities": {}}
        day["sum"].add(r)
        for part, name in (("models", r["model"]), ("model_groups", r["model_group"]),
                           ("providers", r["provider"] or "default"), ("entities", r["entity"])):
            entry = day[part].get(name)
            if entry is None:
                entry = day[part][name] = _Entry()
            entry.add(r)
        k = day["api_keys"].get(r["api_key"])
        if k is None:
            k = day["api_keys"][r["api_key"]] = _Sum()
        k.add(r)
    ordered = sorted(days, reverse=True)
    shown = ordered[(page - 1) * size:page * size]
    labels = await key_labels(ctx.store, list({k for d in shown for k in days[d]["api_keys"]}))

    def key_meta(token: str) -> dict[str, Any]:
        alias, team = labels.get(token, (None, None))
        return {"key_alias": alias, "team_id": team}

    def entry_out(e: _Entry, metadata: dict[str, Any]) -> dict[str, Any]:
        return {"metrics": e.total.out(), "metadata": metadata,
                "api_key_breakdown": {k: {"metrics": s.out(), "metadata": key_meta(k)} for k, s in e.keys.items()}}

    results = []
    ents = entity_labels or {}
    for d in shown:
        day = days[d]
        results.append({"date": d, "metrics": day["sum"].out(), "breakdown": {
            "models": {n: entry_out(e, {}) for n, e in day["models"].items()},
            "model_groups": {n: entry_out(e, {}) for n, e in day["model_groups"].items()},
            "providers": {n: entry_out(e, {}) for n, e in day["providers"].items()},
            "api_keys": {k: {"metrics": s.out(), "metadata": key_meta(k)} for k, s in day["api_keys"].items()},
            "entities": {n: entry_out(e, ents.get(n, {})) for n, e in day["entities"].items()},
            "mcp_servers": {}, "endpoints": {}}})
    t = total.out()
    return {"results": results, "metadata": {
        "total_spend": t["spend"], "total_prompt_tokens": t["prompt_tokens"],
        "total_completion_tokens": t["completion_tokens"], "total_tokens": t["total_tokens"],
        "total_api_requests": t["api_requests"], "total_successful_requests": t["successful_requests"],
        "total_failed_requests": t["failed_requests"], "total_cache_read_input_tokens": t["cache_read_input_tokens"],
        "total_cache_creation_input_tokens": t["cache_creation_input_tokens"], "page": page,
        "total_pages": -(-len(ordered) // size), "has_more": page * size < len(ordered)}}


async def user_activity(ctx: Ctx) -> Any:
    c = ctx.caller
    user_id = ctx.query.get("user_id") or None
    if not c.reads_all:
        if user_id is not None and user_id != c.user_id:
            raise forbidden(f"You can only view your own activity. Got user_id={user_id}, Your ID={c.user_id}")
        if c.user_id is None:
            raise forbidden("Your key has no user: its activity is under /key/info")
        user_id = c.user_id
    return await respond(ctx, "user", ids=[user_id] if user_id else None)


async def team_activity(ctx: Ctx) -> Any:
    c = ctx.caller
    ids, exclude = _ids(ctx, "team_ids"), _ids(ctx, "exclude_team_ids")
    if not c.reads_all:
        mine = set(c.user.teams if c.user is not None else []) | ({c.team_id} if c.team_id else set())
        if ids is not None and not set(ids) <= mine:
            raise forbidden("You can only view the activity of your own teams")
        ids = sorted(mine if ids is None else set(ids))
        if not ids:
            raise forbidden("You are in no team")
    labels = {team: {"team_alias": alias} for team, alias in (await team_aliases(ctx.store)).items()}
    return await respond(ctx, "team", ids=ids, exclude=exclude, entity_labels=labels)


async def tag_activity(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return await respond(ctx, "tag", ids=_ids(ctx, "tags"))


async def organization_activity(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return await respond(ctx, "organization", ids=_ids(ctx, "organization_ids"))


async def customer_activity(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    return await respond(ctx, "customer", ids=_ids(ctx, "end_user_ids"))


__all__ = ["add_routes"]
