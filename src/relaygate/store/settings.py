"""Settings changed through the API, over the config file's: LiteLLM's ``LiteLLM_Config`` rows of its
``litellm_settings``, for the cost tracking settings its UI edits (``PATCH /config/cost_discount_config``,
``/config/cost_margin_config``, ``/config/block_requests_for_models_without_pricing``).

One row of ``rg_config`` per setting: its name and its value as JSON text (the same column type on SQLite and
PostgreSQL). A write moves the store's change counter in its transaction, so every worker and instance
reads the rows again (the gateway's stored-models sync) and serves a snapshot with them; a row whose value
does not decode is skipped with one log line, never served.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from relaygate.store.base import Conn, Store

__all__ = ["delete_setting", "read_settings", "upsert_setting", "write_setting"]

log = logging.getLogger("relaygate.store")

_UPSERT = ("INSERT INTO rg_config (param_name, param_value, updated_at, updated_by) "
           "VALUES (?, ?, CURRENT_TIMESTAMP, ?) ON CONFLICT (param_name) DO UPDATE SET "
           "param_value = excluded.param_value, updated_at = excluded.updated_at, updated_by = excluded.updated_by")


async def read_settings(store: Store) -> dict[str, Any]:
    """Every stored setting, by name (a row whose value is not JSON is logged and left out)."""
    async with store._read() as c:
        rows = await c.fetch("SELECT param_name, param_value FROM rg_config ORDER BY param_name", [])
    out: dict[str, Any] = {}
    for row in rows:
        try:
            out[row["param_name"]] = orjson.loads(row["param_value"])
        except orjson.JSONDecodeError:
            log.error("stored setting %s skipped: its value is not JSON", ascii(row["param_name"]))
    return out


async def write_setting(store: Store, name: str, value: Any, by: str | None) -> None:
    """Store ``value`` (JSON-encodable) as setting ``name``, in a write that moves the change counter."""
    async with store.write() as c:
        await upsert_setting(c, name, value, by)


async def upsert_setting(c: Conn, name: str, value: Any, by: str | None) -> None:
    """Setting ``name`` set to ``value`` within the caller's write (``store.write()``)."""
    await c.execute(_UPSERT, [name, orjson.dumps(value).decode(), by])


async def delete_setting(store: Store, name: str) -> bool:
    """Remove setting ``name``; whether it was stored."""
    async with store.write() as c:
        return bool(await c.execute("DELETE FROM rg_config WHERE param_name = ?", [name]))
