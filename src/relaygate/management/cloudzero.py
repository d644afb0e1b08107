"""LiteLLM's CloudZero routes (``/cloudzero/*``): its credentials in the database, a dry run and an export now.

What it owns: the routes over ``observe.cloudzero``, with LiteLLM's paths, bodies, answers and words. Proxy admin
only (reading the settings: its viewer too). The API key is sealed in the ``cloudzero_settings`` row as model
credentials are (``store.sealing``: ``LITELLM_SALT_KEY``, else the master key) and shown masked.

- ``POST /cloudzero/init`` ``{api_key, connection_id, timezone}``: the row written (replaced).
- ``GET /cloudzero/settings``: ``{api_key_masked, connection_id, timezone, status: "configured"}``, every field
  null when nothing is stored. ``PUT /cloudzero/settings``: the fields given changed (400 without any, 404 before
  an init). ``DELETE /cloudzero/delete``: the row removed (404 without one).
- ``POST /cloudzero/dry-run`` / ``POST /cloudzero/export`` ``{limit, operation, start_time_utc, end_time_utc}``:
  the records of the spend logs between the two instants (by default the last 24 hours; at most ``limit``
  groups, 10,000 by default and 100,000 at most), shown or sent. An export without credentials is a 400 naming
  how to give them, CloudZero's refusal a 502 with its status.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, not_found, route
from relaygate.observe import cloudzero as cz
from relaygate.store.sealing import sealer_for
from relaygate.store.settings import delete_setting, read_settings, write_setting

__all__ = ["add_routes"]

LIMIT, MAX_LIMIT = 10_000, 100_000
_NOT_FOUND = "CloudZero settings not found"


def _text(body: dict[str, Any], name: str, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise bad_request(f"{name} must be a non-empty string", name)
    return value.strip()


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"Unknown timezone {value!r} (an IANA name such as UTC or Europe/Paris)",
                          "timezone") from None
    return value


def _mask(key: str) -> str:
    return f"{key[:4]}****{key[-4:]}" if len(key) > 12 else "****"


async def _stored(ctx: Ctx) -> dict[str, Any] | None:
    row = (await read_settings(ctx.store)).get(cz.SETTING)
    return row if isinstance(row, dict) else None


async def init(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.json_object("api_key")
    key, conn = _text(body, "api_key", True), _text(body, "connection_id", True)
    tz = _timezone(_text(body, "timezone", False)) or "UTC"
    assert key is not None
    sealed = sealer_for(ctx.gw.runtime.config).seal(key)
    await write_setting(ctx.store, cz.SETTING, {"api_key": sealed, "connection_id": conn, "timezone": tz},
                        ctx.caller.user_id)
    return {"message": "CloudZero settings initialized successfully", "status": "success"}


async def get_settings(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    row = await _stored(ctx)
    if row is None:
        return {"api_key_masked": None, "connection_id": None, "timezone": None, "status": None}
    try:
        key = sealer_for(ctx.gw.runtime.config).open(str(row.get("api_key") or ""))
    except Exception:
        raise GatewayError("Failed to decrypt CloudZero API key. Check your salt key configuration.",
                           status=500, type="internal_server_error") from None
    return {"api_key_masked": _mask(key), "connection_id": row.get("connection_id"),
            "timezone": row.get("timezone") or "UTC", "status": "configured"}


async def update_settings(ctx: Ctx) -> Any:
    admin_only(ctx)
    body = await ctx.json_object("api_key")
    key, conn = _text(body, "api_key", False), _text(body, "connection_id", False)
    tz = _timezone(_text(body, "timezone", False))
    if key is None and conn is None and tz is None:
        raise bad_request("At least one field must be provided for update", "api_key")
    row = await _stored(ctx)
    if row is None:
        raise not_found(f"{_NOT_FOUND}. Please initialize settings first using /cloudzero/init", "api_key")
    row = dict(row)
    if key is not None:
        row["api_key"] = sealer_for(ctx.gw.runtime.config).seal(key)
    if conn is not None:
        row["connection_id"] = conn
    if tz is not None:
        row["timezone"] = tz
    await write_setting(ctx.store, cz.SETTING, row, ctx.caller.user_id)
    return {"message": "CloudZero settings updated successfully", "status": "success"}


async def delete(ctx: Ctx) -> Any:
    admin_only(ctx)
    if not await delete_setting(ctx.store, cz.SETTING):
        raise not_found(_NOT_FOUND, "None")
    return {"message": "CloudZero settings deleted successfully", "status": "success"}


def _instant(body: dict[str, Any], name: str, default: datetime) -> datetime:
    value = body.get(name)
    if value is None:
        return default
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 date and time, got {str(value)[:60]!r}", name) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _window(body: dict[str, Any]) -> tuple[datetime, datetime, int, str]:
    now = datetime.now(UTC)
    end = _instant(body, "end_time_utc", now)
    start = _instant(body, "start_time_utc", end - timedelta(days=1))
    if start >= end:
        raise bad_request("start_time_utc must be before end_time_utc", "start_time_utc")
    limit = body.get("limit", LIMIT)
    if limit is None:
        limit = MAX_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    operation = body.get("operation") or "replace_hourly"
    if operation not in cz.OPERATIONS:
        raise bad_request(f"operation must be one of {list(cz.OPERATIONS)}", "operation")
    return start, end, limit, operation


async def dry_run(ctx: Ctx) -> Any:
    admin_only(ctx)
    start, end, limit, _ = _window(await ctx.json_object("limit"))
    data = await cz.dry_run(ctx.store, start, end, limit)
    return {"message": "CloudZero dry run export completed successfully.", "status": "success",
            "records_exported": None, "dry_run_data": data, "summary": data["summary"]}


async def export(ctx: Ctx) -> Any:
    admin_only(ctx)
    start, end, limit, operation = _window(await ctx.json_object("limit"))
    settings = await cz.settings_for(ctx.store, sealer_for(ctx.gw.runtime.config), os.environ)
    if settings is None:
        raise bad_request("CloudZero is not configured: POST /cloudzero/init, or set CLOUDZERO_API_KEY and "
                          "CLOUDZERO_CONNECTION_ID", "None")
    try:
        n = await cz.export(ctx.store, settings, os.environ, start, end, operation, limit)
    except cz.ExportFailed as exc:
        raise GatewayError(f"Failed to perform CloudZero export: {exc}", status=502, type="bad_gateway") from None
    return {"message": "CloudZero export completed successfully", "status": "success", "records_exported": n,
            "dry_run_data": None, "summary": None}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/cloudzero/init", init)
    route(t, gw, "GET", "/cloudzero/settings", get_settings)
    route(t, gw, "PUT", "/cloudzero/settings", update_settings)
    route(t, gw, "DELETE", "/cloudzero/delete", delete)
    route(t, gw, "POST", "/cloudzero/dry-run", dry_run)
    route(t, gw, "POST", "/cloudzero/export", export)
