"""LiteLLM 1.110's scoped spend reports: ``GET /key/spend/report``, ``/user/spend/report``, ``/team/spend/report``
and ``/organization/spend/report``.

Each takes ``start_date`` and ``end_date`` (``YYYY-MM-DD``, UTC days, both included, at most 366 days apart) and
answers LiteLLM's rows, the ``/global/spend/report?group_by=api_key`` shape: per key that spent in the range,
``{"api_key", "total_cost", "total_input_tokens", "total_output_tokens", "model_details": [{"model",
"total_cost", "total_input_tokens", "total_output_tokens"}]}``, the largest cost first, from the spend logs
(``store.activity.scoped_spend_report``).

Whose spend, as LiteLLM scopes it:

- ``/key/spend/report`` (``api_key``: a key or its hash): the caller's own key; the proxy admin and its viewer
  may name any.
- ``/user/spend/report`` (``internal_user_id``): the caller's user; the admin and viewer any.
- ``/team/spend/report`` (``team_id``): the team of the caller's key; the admin and viewer any.
- ``/organization/spend/report`` (``organization_id``, else the caller's key's): an organization the caller is
  the proxy admin (or viewer) or an ``org_admin`` of; its spend logged against the organization, and its teams'
  logged against no organization, each model line naming its ``team_id``.

Naming another's is a 403 (``Not authorized to view spend for a <scope> other than your own``); a caller
without one of its own and naming none is a 400, as LiteLLM's. LiteLLM serves these to Enterprise licences
only; here to everyone its rules let read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.http.routes import RouteTable
from relaygate.management.common import PROXY_ADMIN_VIEWER, Ctx, Gateway, bad_request, forbidden, route
from relaygate.management.keys import token_of
from relaygate.store.activity import org_admin_of, scoped_spend_report

__all__ = ["MAX_DAYS", "add_routes"]

MAX_DAYS = 366
"""The longest range a report covers (LiteLLM's ``_SPEND_REPORT_MAX_RANGE_DAYS``)."""


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path, handler in (("/key/spend/report", key_report), ("/user/spend/report", user_report),
                          ("/team/spend/report", team_report), ("/organization/spend/report", org_report)):
        route(t, gw, "GET", path, handler)


def _range(ctx: Ctx) -> tuple[datetime, datetime]:
    """The query's days as ``[start, end + 1 day)`` in UTC, with LiteLLM's 400s."""
    start, end = ctx.query.get("start_date"), ctx.query.get("end_date")
    if not start or not end:
        raise bad_request("Please provide start_date and end_date", "start_date")
    try:
        a = datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=UTC)
        b = datetime.strptime(end, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise bad_request("start_date and end_date must be in YYYY-MM-DD format", "start_date") from None
    if b < a:
        raise bad_request("start_date must be on or before end_date", "start_date")
    if b - a > timedelta(days=MAX_DAYS):
        raise bad_request(f"Date range too large; maximum is {MAX_DAYS} days", "start_date")
    if b.year == 9999 and b.month == 12 and b.day == 31:  # no day follows it
        raise bad_request("end_date must be before 9999-12-31", "end_date")
    return a, b + timedelta(days=1)


def _scope(ctx: Ctx, requested: str | None, own: str | None, name: str) -> str:
    """LiteLLM's ``_resolve_spend_report_scope``: the caller's own unless it reads everything."""
    if requested:
        if requested != own and not ctx.caller.reads_all:
            raise forbidden(f"Not authorized to view spend for a {name} other than your own")
        return requested
    if own is None:
        raise bad_request(f"No {name} associated with this API key; pass a {name} query param", name)
    return own


async def _report(ctx: Ctx, column: str, value: str, team_ids: list[str] | None = None) -> Any:
    start, end = _range(ctx)
    return await scoped_spend_report(ctx.store, start, end, column=column, value=value, team_ids=team_ids or ())


async def key_report(ctx: Ctx) -> Any:
    raw = ctx.query.get("api_key") or None
    requested = token_of(raw, "api_key") if raw else None
    return await _report(ctx, "api_key", _scope(ctx, requested, ctx.caller.key_hash, "api_key"))


async def user_report(ctx: Ctx) -> Any:
    user = _scope(ctx, ctx.query.get("internal_user_id") or None, ctx.caller.user_id, "internal_user_id")
    return await _report(ctx, "user_id", user)


async def team_report(ctx: Ctx) -> Any:
    return await _report(ctx, "team_id", _scope(ctx, ctx.query.get("team_id") or None, ctx.caller.team_id, "team_id"))


async def org_report(ctx: Ctx) -> Any:
    c = ctx.caller
    own = c.key.organization_id if c.key is not None else None
    org = ctx.query.get("organization_id") or own
    if not org:
        raise bad_request("No organization_id associated with this API key; pass an organization_id query param",
                          "organization_id")
    if not (c.is_admin or c.role == PROXY_ADMIN_VIEWER) and (
            c.user_id is None or org not in await org_admin_of(ctx.store, c.user_id)):
        raise forbidden(f"User is not org_admin for Organization= {org}.")
    teams = [t.team_id for t in (await ctx.store.list_teams(organization_id=org, page_size=1000)).items]
    return await _report(ctx, "organization_id", org, teams)
