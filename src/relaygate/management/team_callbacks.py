"""LiteLLM's team-based logging routes: a team's own logging callbacks, kept in its ``metadata``.

Routes (LiteLLM's ``team_callback_endpoints``; the proxy admin or the team's admin, reads also the admin's
viewer):

- ``POST /team/{team_id}/callback`` (``{"callback_name": "langfuse", "callback_type": "success" | "failure" |
  "success_and_failure", "callback_vars": {"langfuse_public_key": ..., "langfuse_secret_key": ...,
  "langfuse_host": ...}}``): one more entry of the team's ``metadata.logging`` (what ``auth.targets`` reads
  when its keys are resolved); ``{"status": "success", "data": <the team>}``.
- ``GET /team/{team_id}/callback``: ``{"status": "success", "data": {"team_id", "success_callbacks",
  "failure_callbacks", "callback_vars"}}``, secrets masked.
- ``POST /team/{team_id}/disable_logging``: LiteLLM's marker (``logging`` emptied, ``callback_settings`` with
  empty ``success_callback`` and ``failure_callback``); ``{"status": "success", "message", "data"}``.
- ``DELETE /team/{team_id}/callback/{callback_name}``: the entries of that callback removed (LiteLLM's newer
  route).

Where relaygate differs, and why: a team whose logging is disabled sends its requests to no logging callback,
the configured ones included (LiteLLM's removes only the team's own and goes on sending to the proxy's, its
open issue 16589); a callback relaygate cannot send a team's requests to (anything but ``langfuse`` and
``otel``) is a 400, not an entry that silently does nothing; ``callback_vars`` that reference the environment
(``os.environ/``) only from the proxy admin (LiteLLM now refuses them from everyone); answers mask secrets.
A change reaches every worker within a second, as any team change.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from relaygate.auth.targets import logging_entries
from relaygate.http.routes import RouteTable
from relaygate.management.common import (
    Ctx,
    Gateway,
    bad_request,
    forbidden,
    no_env_references,
    not_found,
    record,
    refuse_route,
    route,
)
from relaygate.management.masking import masked_vars, unmask_metadata
from relaygate.management.teams import save_team, team_admin
from relaygate.store import Team

SUPPORTED = ("langfuse", "otel", "opentelemetry", "langsmith", "langfuse_otel", "arize", "arize_phoenix", "posthog",
             "braintrust")
"""Callbacks a team's requests can be sent to (``observe``: the team's own Langfuse, LangSmith, Arize, PostHog or
Braintrust project, OpenTelemetry, Phoenix), each started for the team's entries when the config runs none of them
(``observe.KEYS_ONLY``)."""
MAX_ENTRIES = 8
"""Entries a team's ``metadata.logging`` holds at most (``auth.targets.key_logging`` reads that many)."""
VARIABLES = (
    "langfuse_public_key", "langfuse_secret", "langfuse_secret_key", "langfuse_host", "langfuse_prompt_version",
    "langsmith_api_key", "langsmith_project", "langsmith_base_url", "langsmith_sampling_rate",
    "langsmith_tenant_id", "humanloop_api_key", "arize_api_key", "arize_space_key", "arize_space_id",
    "posthog_api_key", "posthog_host", "posthog_api_url", "braintrust_api_key", "braintrust_project", "braintrust_host",
    "slack_webhook_url", "lunary_public_key", "dd_api_key", "dd_site", "dd_agent_host", "dd_agent_port",
    "turn_off_message_logging",
)
"""LiteLLM's ``StandardCallbackDynamicParams`` names: the ``callback_vars`` a team entry may carry."""
class CallbackBody(msgspec.Struct, kw_only=True):
    """LiteLLM's ``AddTeamCallback``."""

    callback_name: str
    callback_type: Literal["success", "failure", "success_and_failure"] | None = "success_and_failure"
    callback_vars: dict[str, str | int | float | bool]


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/team/{team_id}/callback", add_callback), ("GET", "/team/{team_id}/callback", get_callbacks),
            ("POST", "/team/{team_id}/disable_logging", disable_logging),
            ("DELETE", "/team/{team_id}/callback/{callback_name}", delete_callback)):
        route(t, gw, method, path, handler)


def summary(team: Team) -> dict[str, Any]:
    """The team's callbacks as LiteLLM's ``GET /team/{team_id}/callback`` gives them (secrets masked)."""
    success: list[str] = []
    failure: list[str] = []
    merged: dict[str, Any] = {}
    for entry in logging_entries(team.metadata):
        name, kind = entry.get("callback_name"), entry.get("callback_type") or "success_and_failure"
        if not isinstance(name, str):
            continue
        if kind in ("success", "success_and_failure") and name not in success:
            success.append(name)
        if kind in ("failure", "success_and_failure") and name not in failure:
            failure.append(name)
        merged.update(masked_vars(entry.get("callback_vars")))
    return {"team_id": team.team_id, "success_callbacks": success, "failure_callbacks": failure,
            "callback_vars": merged}


async def add_callback(ctx: Ctx) -> Any:
    team = await team_admin(ctx, ctx.params["team_id"])
    body = await ctx.body(CallbackBody)
    name = body.callback_name.strip()
    kind = body.callback_type or "success_and_failure"
    if name.lower() not in SUPPORTED:
        raise bad_request(f"callback_name {name!r} cannot log a team's requests here: one of {list(SUPPORTED)}",
                          "callback_name")
    for key in body.callback_vars:
        if key not in VARIABLES:
            raise bad_request(f"Invalid callback variable: {key}. Must be one of {list(VARIABLES)}", "callback_vars")
    values = {k: str(v) for k, v in body.callback_vars.items()}
    no_env_references(ctx.caller, {"logging": [{"callback_vars": values}]})
    meta = dict(team.metadata)
    # the entries its keys are resolved with: its logging list, else its older callback_settings (carried over,
    # or the first entry added would hide them)
    entries = [dict(e) for e in logging_entries(meta) if isinstance(e, dict)]
    for e in entries:
        if str(e.get("callback_name", "")).strip().lower() == name.lower() and e.get("callback_type",
                                                                                    "success_and_failure") == kind:
            raise bad_request(f"callback_name = {name} already exists in team_callback_settings, for team_id = "
                              f"{team.team_id} and event = {kind}", "callback_name")
    if len(entries) >= MAX_ENTRIES:
        raise bad_request(f"A team has at most {MAX_ENTRIES} logging callbacks", "callback_name")
    # a masked secret sent back (an answer edited) keeps the stored one of the same callback; none stored: a 400
    added = unmask_metadata({"logging": [{"callback_name": name, "callback_type": kind, "callback_vars": values}]},
                            meta)["logging"][0]
    meta["logging"] = [*entries, added]
    return {"status": "success", "data": record(await save_team(ctx, team.team_id, metadata=meta))}


async def get_callbacks(ctx: Ctx) -> Any:
    c = ctx.caller
    team = await ctx.store.get_team(ctx.params["team_id"])
    if not c.reads_all:
        if not c.may_write:
            refuse_route(ctx)
        if not c.is_team_admin(team):
            raise forbidden(f"Only the proxy admin or an admin of team={team.team_id} can do this. Your role={c.role}")
    return {"status": "success", "data": summary(team)}


async def disable_logging(ctx: Ctx) -> Any:
    team = await team_admin(ctx, ctx.params["team_id"])
    meta = dict(team.metadata)
    settings = meta.get("callback_settings")
    meta["callback_settings"] = {**(settings if isinstance(settings, dict) else {}), "success_callback": [],
                                 "failure_callback": []}
    meta["logging"] = []
    team = await save_team(ctx, team.team_id, metadata=meta)
    return {"status": "success", "message": f"Logging disabled for team {team.team_id}",
            "data": {"team_id": team.team_id, "success_callbacks": [], "failure_callbacks": []}}


async def delete_callback(ctx: Ctx) -> Any:
    team = await team_admin(ctx, ctx.params["team_id"])
    name = ctx.params["callback_name"].strip().lower()
    meta = dict(team.metadata)
    entries = meta.get("logging")
    kept = [e for e in entries if not (isinstance(e, dict) and str(e.get("callback_name", "")).strip().lower()
                                       == name)] if isinstance(entries, list) else []
    settings = meta.get("callback_settings")
    removed = isinstance(entries, list) and len(kept) != len(entries)
    if isinstance(settings, dict):
        lists = {f: [n for n in settings.get(f) or [] if str(n).strip().lower() != name]
                 for f in ("success_callback", "failure_callback") if isinstance(settings.get(f), list)}
        removed = removed or any(len(v) != len(settings[f]) for f, v in lists.items())
        kept_settings = {**settings, **lists}
        if not any(lists.values()):  # both lists empty would read as logging disabled: the last one removed is not
            kept_settings.pop("success_callback", None)
            kept_settings.pop("failure_callback", None)
        meta["callback_settings"] = kept_settings
    if not removed:
        raise not_found(f"callback_name = {ctx.params['callback_name']} is not a logging callback of team_id = "
                        f"{team.team_id}", "callback_name")
    if isinstance(entries, list):
        meta["logging"] = kept
    team = await save_team(ctx, team.team_id, metadata=meta)
    return {"status": "success", "message": f"Callback {ctx.params['callback_name']} removed for team "
                                            f"{team.team_id}", "data": summary(team)}
