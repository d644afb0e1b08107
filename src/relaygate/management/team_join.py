"""LiteLLM's available teams: teams any internal user may join by itself.

``litellm_settings.default_internal_user_params.available_teams`` (a list of team ids, LiteLLM's) names them.
``GET /team/available`` answers the caller's user the available teams it is not in yet (the team records;
LiteLLM's 404 ``User not found`` for a caller without a user row, the master key included), and ``POST
/team/member_add`` on one of them is allowed to a caller that is not the team's admin under LiteLLM's
self-join rules (:func:`member_add_target`): the caller adds only itself, with role ``user``, and sets no
member budget, budget period or model list (those stay the admins'); each refusal is LiteLLM's 403 with its
words. The team's admin and the proxy admin add members as before; a viewer still may not.
"""

from __future__ import annotations

from typing import Any

from relaygate.config.model import Config
from relaygate.http.routes import RouteTable
from relaygate.management.common import UNSET, Ctx, Gateway, forbidden, not_found, record, route, writer
from relaygate.store import NotFound, Team

__all__ = ["add_routes", "available", "member_add_target"]


def available(config: Config) -> list[str]:
    """The team ids ``default_internal_user_params.available_teams`` names (none when it is not a list)."""
    teams = (config.general.default_internal_user_params or {}).get("available_teams")
    return [t for t in teams if isinstance(t, str)] if isinstance(teams, list) else []


async def member_add_target(ctx: Ctx, team_id: str, members: list[Any], body: Any) -> Team:
    """The team ``/team/member_add`` adds ``members`` to: one the caller administers, or an available team the
    caller joins itself (LiteLLM's self-join rules); else LiteLLM's 403."""
    writer(ctx)
    team = await ctx.store.get_team(team_id)
    c = ctx.caller
    if c.is_team_admin(team):
        return team
    if team_id not in available(ctx.gw.runtime.config):
        raise forbidden(f"Only the proxy admin or an admin of team={team_id} can do this. Your role={c.role}")
    if body.max_budget_in_team is not None or body.budget_duration is not None or \
            body.allowed_models not in (UNSET, None):
        raise forbidden("Available-team self-join cannot set per-member budget or model controls "
                        "(max_budget_in_team, budget_duration, allowed_models); these are admin-only.")
    for m in members:
        if m.role != "user":
            raise forbidden("Available-team self-join cannot assign 'admin' role. Only proxy/team/org admins can "
                            "add admins to a team.")
        if c.user_id is None or m.user_id != c.user_id:
            raise forbidden("Available-team self-join can only add the caller (user_id must match the "
                            "authenticated user's user_id).")
    return team


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/team/available", list_available)


async def list_available(ctx: Ctx) -> Any:
    ids = available(ctx.gw.runtime.config)
    if not ids:
        return []
    user_id = ctx.caller.user_id
    if user_id is None:
        raise not_found("User not found", "user_id")
    try:
        user = await ctx.store.get_user(user_id)
    except NotFound:
        raise not_found("User not found", "user_id") from None
    out = []
    for team_id in dict.fromkeys(ids):
        if team_id in user.teams:
            continue
        try:
            out.append(record(await ctx.store.get_team(team_id)))
        except NotFound:  # named in the config, not made yet
            continue
    return out
