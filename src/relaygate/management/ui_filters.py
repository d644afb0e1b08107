"""LiteLLM's admin UI search boxes: ``GET /user/filter/ui`` and ``GET /team/filter/ui``.

- ``/user/filter/ui?user_id=&user_email=&search=&team_id=&page=&page_size=`` (page from 1, 1-100 a page, 50 by
  default): users whose id and email contain the parts given (``search``: the id or the email), newest first,
  each as LiteLLM's ``LiteLLM_UserTableFiltered`` — ``{"user_id", "user_email"}`` and nothing else. The proxy
  admin and its viewer search every user; so does the admin of the team ``team_id`` names (LiteLLM's team
  admin looking for someone to add). LiteLLM lets any key search every user by default (its
  ``scope_user_search_to_org`` flag off), so any key reads every user's email; relaygate refuses other callers
  (LiteLLM's admin-route refusal).
- ``/team/filter/ui?team_id=&team_alias=&page=&page_size=``: teams whose id and alias contain the parts given,
  newest first, as ``/team/info`` answers a team. The admin and its viewer search every team; any other caller
  the teams it is a member of (LiteLLM answers every team to every key).
"""

from __future__ import annotations

from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, record, refuse_route, route
from relaygate.store import NotFound
from relaygate.store.people_search import find_teams, find_users

__all__ = ["add_routes"]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/user/filter/ui", users)
    route(t, gw, "GET", "/team/filter/ui", teams)


async def _team_admin(ctx: Ctx, team_id: str | None) -> bool:
    if team_id is None or ctx.caller.user_id is None:
        return False
    try:
        team = await ctx.store.get_team(team_id)
    except NotFound:
        return False
    return ctx.caller.is_team_admin(team)


async def users(ctx: Ctx) -> Any:
    q = ctx.query
    if not ctx.caller.reads_all and not await _team_admin(ctx, q.get("team_id")):
        refuse_route(ctx)
    found = await find_users(ctx.store, user_id_part=q.get("user_id"), email_part=q.get("user_email"),
                             search=q.get("search"), page=ctx.int_arg("page", 1, high=10**9),
                             page_size=ctx.int_arg("page_size", 50, high=100))
    return [{"user_id": u.user_id, "user_email": u.user_email} for u in found.items]


async def teams(ctx: Ctx) -> Any:
    q = ctx.query
    member = None if ctx.caller.reads_all else (ctx.caller.user_id or "")
    found = await find_teams(ctx.store, id_part=q.get("team_id"), alias_part=q.get("team_alias"), member=member,
                             page=ctx.int_arg("page", 1, high=10**9), page_size=ctx.int_arg("page_size", 50, high=100))
    return [record(team) for team in found.items]
