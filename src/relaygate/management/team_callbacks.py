"""LiteLLM's per-team logging routes: ``POST`` / ``GET /team/{team_id}/callback`` and
``POST /team/{team_id}/disable_logging``.

What it owns: writing a team's logging targets where the request path reads them (the team's
``metadata.logging``, ``auth.targets``), in LiteLLM's shapes, and reading them back with secrets masked.

- ``POST /team/{team_id}/callback`` (``callback_name``, ``callback_type`` = ``success`` / ``failure`` /
  ``success_and_failure``, ``callback_vars``): adds the target to ``metadata.logging`` (a target of the same
  name and type is replaced, as LiteLLM refuses duplicates only by name and type), and keeps LiteLLM's
  ``metadata.callback_settings`` (``success_callback`` / ``failure_callback`` / ``callback_vars``) in step
  so a LiteLLM reading the same table sees the same. Only names relaygate can run are taken
  (``langfuse``, ``otel``); anything else is a 400 naming the field.
- ``GET /team/{team_id}/callback``: LiteLLM's answer, ``{"status": "success", "data": {"team_id",
  "success_callbacks", "failure_callbacks", "callback_vars"}}``, with every value whose name says secret,
  key or password masked.
- ``POST /team/{team_id}/disable_logging``: no target, and ``metadata.turn_off_message_logging`` set, so
  nothing of the team's requests leaves the gateway through per-team targets and its bodies never do
  through any exporter.

The caller must be the proxy admin or an admin of the team (``teams.team_admin``). Every write invalidates
the team's keys' cached rights on every worker (``ctx.invalidate``), so the next request of a key of the
team reads the new targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.core import errors
from relaygate.management.common import Ctx, Gateway, record, route
from relaygate.management.teams import team_admin, team_keys

if TYPE_CHECKING:
    from relaygate.http.routes import RouteTable

__all__ = ["add_routes"]

RUNNABLE = ("langfuse", "otel")
"""Per-team callback names relaygate runs."""
_TYPES = ("success", "failure", "success_and_failure")
_SECRET_MARKS = ("secret", "key", "password", "token")


class AddTeamCallback(msgspec.Struct, kw_only=True):
    callback_name: str
    callback_type: str = "success_and_failure"
    callback_vars: dict[str, str] = {}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/team/{team_id}/callback", add_callback)
    route(t, gw, "GET", "/team/{team_id}/callback", get_callbacks)
    route(t, gw, "POST", "/team/{team_id}/disable_logging", disable_logging)


def _settings(logging: list[dict[str, Any]]) -> dict[str, Any]:
    """LiteLLM's ``callback_settings`` for these targets (kept in step for LiteLLM reading the same table)."""
    success = [e["callback_name"] for e in logging if e.get("callback_type") in ("success", "success_and_failure")]
    failure = [e["callback_name"] for e in logging if e.get("callback_type") in ("failure", "success_and_failure")]
    variables: dict[str, Any] = {}
    for e in logging:
        variables.update(e.get("callback_vars") or {})
    return {"success_callback": success, "failure_callback": failure, "callback_vars": variables}


def _masked(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if any(m in k.lower() for m in _SECRET_MARKS) and isinstance(v, str) and v else v)
            for k, v in values.items()}


async def _write(ctx: Ctx, team_id: str, metadata: dict[str, Any]) -> Any:
    team = await ctx.store.update_team(team_id, metadata=metadata, updated_by=ctx.caller.user_id or "default_user_id")
    ctx.invalidate(*await team_keys(ctx, team_id))
    return team


async def add_callback(ctx: Ctx) -> Any:
    team_id = ctx.params["team_id"]
    team = await team_admin(ctx, team_id)
    body = await ctx.body(AddTeamCallback)
    name = body.callback_name.strip().lower()
    if name not in RUNNABLE:
        raise errors.BadRequest(f"callback_name {body.callback_name!r} is not supported per team: use one of "
                                f"{', '.join(RUNNABLE)}", param="callback_name")
    if body.callback_type not in _TYPES:
        raise errors.BadRequest(f"callback_type must be one of {', '.join(_TYPES)}", param="callback_type")
    metadata = dict(team.metadata or {})
    logging = [e for e in metadata.get("logging") or [] if isinstance(e, dict)
               and not (e.get("callback_name") == name and e.get("callback_type") == body.callback_type)]
    logging.append({"callback_name": name, "callback_type": body.callback_type,
                    "callback_vars": dict(body.callback_vars)})
    metadata["logging"] = logging
    metadata["callback_settings"] = _settings(logging)
    metadata.pop("turn_off_message_logging", None)
    team = await _write(ctx, team_id, metadata)
    return {"status": "success", "data": record(team)}


async def get_callbacks(ctx: Ctx) -> Any:
    team_id = ctx.params["team_id"]
    team = await team_admin(ctx, team_id)
    logging = [e for e in (team.metadata or {}).get("logging") or [] if isinstance(e, dict)]
    settings = _settings(logging)
    return {"status": "success", "data": {"team_id": team_id, "success_callbacks": settings["success_callback"],
                                          "failure_callbacks": settings["failure_callback"],
                                          "callback_vars": _masked(settings["callback_vars"])}}


async def disable_logging(ctx: Ctx) -> Any:
    team_id = ctx.params["team_id"]
    team = await team_admin(ctx, team_id)
    metadata = dict(team.metadata or {})
    metadata["logging"] = []
    metadata["callback_settings"] = {"callbacks": [], "success_callback": [], "failure_callback": []}
    metadata["turn_off_message_logging"] = True
    await _write(ctx, team_id, metadata)
    return {"status": "success", "message": f"Logging disabled for team {team_id}",
            "data": {"team_id": team_id, "success_callbacks": [], "failure_callbacks": []}}
