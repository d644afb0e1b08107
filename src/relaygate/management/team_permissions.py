"""LiteLLM's team member permissions: which key routes a team's plain members (role ``user``) may use on the
team's keys, and ``GET /team/permissions_list`` / ``POST /team/permissions_update`` to read and set them.

A team's ``team_member_permissions`` (``/team/new``, ``/team/update``, ``/team/permissions_update``) lists key
routes (:data:`MEMBER_ROUTES`, LiteLLM's ``KeyManagementRoutes``); ``/key/info`` and ``/key/health`` are
always granted (LiteLLM's baseline, also its default). :func:`member_may` is the check ``management.keys``
makes when a caller that is neither the proxy admin nor the team's admin acts on a team key: making one
(``/key/generate`` with ``team_id``), or changing, regenerating or deleting its own (``/key/update``,
``/key/bulk_update``, ``/key/regenerate``, ``/key/delete``). As LiteLLM 1.110, a member of a team that
grants nothing more than the baseline may therefore not make team keys: the team's admin grants
``/key/generate`` when its members should. The refusal is LiteLLM's 401 ``team_member_permission_error``
naming the route and what the member may use; a caller no longer in the team is refused the same way.
Unlike LiteLLM, a granted route never lets a member change another member's key: the ownership rules of
``management.keys`` still apply (only the team's admin manages every key of the team).

``GET /team/permissions_list?team_id=``: ``{"team_id", "team_member_permissions", "all_available_permissions"}``
(the team's list, or the defaults when it set none), for the proxy admin, its viewer and the team's admin.
``POST /team/permissions_update`` ``{"team_id", "team_member_permissions": [...]}``: the team's list replaced
(a route LiteLLM does not know is a 400 naming it), by the proxy admin or the team's admin; answer: the team.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Caller, Ctx, Gateway, bad_request, forbidden, record, route
from relaygate.management.teams import save_team, team_admin
from relaygate.store import Team

__all__ = ["BASELINE", "MEMBER_ROUTES", "add_routes", "granted", "member_may"]

BASELINE = ("/key/info", "/key/health")
"""Granted to every member whatever the team says (LiteLLM's ``BASELINE_TEAM_MEMBER_PERMISSIONS``)."""

MEMBER_ROUTES = ("/key/generate", "/key/update", "/key/delete", "/key/regenerate", "/key/service-account/generate",
                 "/key/{key_id}/regenerate", "/key/block", "/key/unblock", "/key/bulk_update",
                 "/team/key/bulk_update", "/key/{key_id}/reset_spend", "/key/access_group_assignment",
                 "/auto_router/manage", "/key/info", "/key/health", "/key/list", "/key/aliases")
"""The routes a team may grant its members (LiteLLM's ``KeyManagementRoutes``, in its order)."""

_ALIASES = {"/key/regenerate": ("/key/regenerate", "/key/{key_id}/regenerate")}
"""A route and the spellings that grant it (LiteLLM grants the path-parameter form of a regeneration too)."""


class PermissionsBody(msgspec.Struct, kw_only=True):
    team_id: str
    team_member_permissions: list[str]


def granted(team: Team) -> list[str]:
    """The routes ``team``'s plain members may use on its keys (its list and the baseline)."""
    return list(dict.fromkeys([*team.team_member_permissions, *BASELINE]))


def member_may(team: Team, caller: Caller, route_name: str) -> None:
    """Raise LiteLLM's 401 unless ``caller`` may use ``route_name`` on a key of ``team``: the proxy admin and the
    team's admin always; a plain member when the team grants it; anyone else never."""
    role = caller.team_role(team)
    if caller.is_admin or role == "admin":
        return
    if role is None:
        raise GatewayError(f"User {caller.user_id} does not belong to team {team.team_id}. Team-scoped key "
                           "management endpoints can only be used for keys in teams you belong to.", status=401,
                           type="team_member_permission_error", param=route_name)
    allowed = granted(team)
    if not any(r in allowed for r in _ALIASES.get(route_name, (route_name,))):
        raise GatewayError(f"Team member does not have permissions for endpoint: {route_name}. You only have access "
                           f"to the following endpoints: {allowed} for team {team.team_id}. Ask a team admin to "
                           "grant it (POST /team/permissions_update).", status=401,
                           type="team_member_permission_error", param=route_name)


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "GET", "/team/permissions_list", permissions_list)
    route(t, gw, "POST", "/team/permissions_update", permissions_update)


async def permissions_list(ctx: Ctx) -> Any:
    team_id = ctx.query.get("team_id")
    if not team_id:
        raise bad_request("team_id is required", "team_id")
    team = await ctx.store.get_team(team_id)
    c = ctx.caller
    if not (c.reads_all or c.is_team_admin(team)):
        raise forbidden(f"Call not allowed. User not proxy admin OR team admin. route=/team/permissions_list, "
                        f"team_id={team_id}")
    return {"team_id": team_id, "team_member_permissions": list(team.team_member_permissions) or list(BASELINE),
            "all_available_permissions": list(MEMBER_ROUTES)}


async def permissions_update(ctx: Ctx) -> Any:
    body = await ctx.body(PermissionsBody)
    unknown = [p for p in body.team_member_permissions if p not in MEMBER_ROUTES]
    if unknown:
        raise bad_request(f"team_member_permissions: unknown route(s) {unknown}; expected some of "
                          f"{list(MEMBER_ROUTES)}", "team_member_permissions")
    await team_admin(ctx, body.team_id)
    team = await save_team(ctx, body.team_id, team_member_permissions=list(dict.fromkeys(body.team_member_permissions)))
    return record(team)
