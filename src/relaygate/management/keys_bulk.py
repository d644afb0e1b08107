"""LiteLLM's key routes for many keys at once: ``POST /v2/key/info``, ``GET /key/aliases``, ``POST /key/bulk_update``.

- ``POST /v2/key/info`` (``{"keys": [...], "key_aliases": [...]}``, at least one, at most :data:`MAX_KEYS` in all):
  ``{"key": <keys as sent>, "info": [<key rows>]}``, the most spent first. A key that does not exist, or that
  the caller may not read (``keys.may_read``: its own, its teams' as their admin, all for the admin and its
  viewer), is left out. LiteLLM ignores ``key_aliases`` (a body with only aliases answers every key to any
  caller) and checks nobody; here aliases are looked up and each key is checked as ``/key/info`` checks it.
- ``GET /key/aliases`` (``page``, ``size`` up to 100, ``search``: part of an alias, any case): ``{"aliases",
  "total_count", "current_page", "total_pages", "size"}``, alphabetical; the admin and its viewer see every
  key's, anyone else those of its own keys and of its teams' keys (LiteLLM's rule).
- ``POST /key/bulk_update`` (the proxy admin; ``{"keys": [{"key": ..., <any /key/update field>}]}``, at most
  :data:`MAX_KEYS`): each key changed as ``/key/update`` changes it, one by one; ``{"total_requested",
  "successful_updates": [{"key", "key_info"}], "failed_updates": [{"key", "key_info", "failed_reason"}]}``. A
  key that cannot be changed (not found, a taken alias ...) is a failed update; the others still go through.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, bad_request, forbidden, record, route
from relaygate.management.keys import UpdateBody, may_read, token_of, update_one
from relaygate.store import Key, NotFound, StoreUnavailable

MAX_KEYS = 500
"""Keys one ``/v2/key/info`` or ``/key/bulk_update`` takes at most (LiteLLM's bulk bound)."""


class KeysBody(msgspec.Struct, kw_only=True):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None


class BulkBody(msgspec.Struct, kw_only=True):
    keys: list[UpdateBody]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/v2/key/info", info_v2)
    route(t, gw, "GET", "/key/aliases", aliases)
    route(t, gw, "POST", "/key/bulk_update", bulk_update)


async def info_v2(ctx: Ctx) -> Any:
    body = await ctx.body(KeysBody)
    keys, names = body.keys or [], body.key_aliases or []
    if not keys and not names:
        raise bad_request("At least one of 'keys' or 'key_aliases' must be provided.", "keys")
    if len(keys) + len(names) > MAX_KEYS:
        raise bad_request(f"At most {MAX_KEYS} keys and aliases at once, got {len(keys) + len(names)}", "keys")
    found: dict[str, Key] = {}
    for value in keys:
        try:
            rec = await ctx.store.get_key(token_of(value, "keys"))
        except NotFound:
            continue
        found[rec.token] = rec
    for alias in names:
        try:
            rec = await ctx.store.get_key_by_alias(alias)
        except NotFound:
            continue
        found[rec.token] = rec
    visible = []
    for rec in found.values():
        try:
            await may_read(ctx, rec)
        except GatewayError:
            continue
        visible.append(rec)
    visible.sort(key=lambda r: r.spend or 0.0, reverse=True)
    return {"key": keys, "info": [record(r) for r in visible]}


async def aliases(ctx: Ctx) -> Any:
    c = ctx.caller
    page = ctx.int_arg("page", 1, high=10**9)
    size = ctx.int_arg("size", 50, high=100)
    search = ctx.query.get("search") or None
    if c.reads_all:
        found = await ctx.store.key_aliases(search=search, page=page, page_size=size)
    else:
        teams = list(c.user.teams) if c.user is not None else []
        found = await ctx.store.key_aliases(search=search, user_id=c.user_id, team_ids=teams, page=page,
                                            page_size=size)
    return {"aliases": found.items, "total_count": found.total, "current_page": page,
            "total_pages": found.total_pages, "size": size}


async def bulk_update(ctx: Ctx) -> Any:
    if not ctx.caller.is_admin:
        raise forbidden("Only proxy admins can perform bulk key updates")
    body = await ctx.body(BulkBody)
    if not body.keys:
        raise bad_request("No keys provided for update", "keys")
    if len(body.keys) > MAX_KEYS:
        raise bad_request(f"Maximum {MAX_KEYS} keys can be updated at once. Found {len(body.keys)} keys.", "keys")
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for item in body.keys:
        try:
            rec = await update_one(ctx, item)
        except StoreUnavailable:
            raise
        except NotFound:
            failed.append({"key": item.key, "key_info": None, "failed_reason": f"Key not found: {item.key}"})
        except GatewayError as exc:
            failed.append({"key": item.key, "key_info": None, "failed_reason": exc.message})
        else:
            done.append({"key": item.key, "key_info": record(rec, "token")})
    return {"total_requested": len(body.keys), "successful_updates": done, "failed_updates": failed}
