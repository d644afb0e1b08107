"""Reusable provider credentials kept in the database (``rg_credentials``, step 15; LiteLLM's
``LiteLLM_CredentialsTable``).

What it owns: the rows (:func:`list_credentials`, :func:`get_credential`, :func:`create_credential`,
:func:`update_credential`, :func:`delete_credential`), every string value sealed with the gateway's sealer
(``store.sealing``: LiteLLM encrypts every value of a credential, whatever its name) and opened on the way out
(:func:`opened`), and the stored models that name one (:func:`models_naming`). Writes move the change counter:
every worker reads the stored models again and serves those that name a changed credential with its new values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from relaygate.store import tables as t
from relaygate.store.base import Store
from relaygate.store.sealing import Sealer, SealError

__all__ = ["Credential", "create_credential", "delete_credential", "get_credential", "list_credentials",
           "models_naming", "opened", "sealed", "update_credential"]

_COLUMNS = ("credential_name", "display_name", "credential_values", "credential_info", "created_at", "created_by",
            "updated_at", "updated_by")


@dataclass(frozen=True, slots=True)
class Credential:
    """One stored credential (its values as stored: sealed)."""

    credential_name: str
    display_name: str | None
    credential_values: dict[str, Any]
    credential_info: dict[str, Any]
    created_at: Any
    created_by: str | None
    updated_at: Any
    updated_by: str | None


def sealed(values: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """Every string value of ``values`` sealed (nested mappings too)."""
    return {k: sealer.seal(v) if isinstance(v, str) else sealed(v, sealer) if isinstance(v, dict) else v
            for k, v in values.items()}


def opened(values: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """Every sealed value opened (``store.sealing.SealError`` when one does not open)."""
    return {k: sealer.open(v) if isinstance(v, str) else opened(v, sealer) if isinstance(v, dict) else v
            for k, v in values.items()}


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def _row(r: dict[str, Any]) -> Credential:
    return Credential(r["credential_name"], r["display_name"], _json(r["credential_values"]),
                      _json(r["credential_info"]), r["created_at"], r["created_by"], r["updated_at"], r["updated_by"])


def _now(store: Store) -> Any:
    return t.time_value(datetime.now(UTC), store.dialect)


async def list_credentials(store: Store) -> list[Credential]:
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {', '.join(_COLUMNS)} FROM rg_credentials ORDER BY credential_name", [])
    return [_row(r) for r in rows]


async def get_credential(store: Store, name: str) -> Credential | None:
    async with store._read() as c:
        rows = await c.fetch(f"SELECT {', '.join(_COLUMNS)} FROM rg_credentials WHERE credential_name = ?", [name])
    return _row(rows[0]) if rows else None


async def create_credential(store: Store, name: str, display_name: str | None, values: dict[str, Any],
                            info: dict[str, Any], by: str | None) -> bool:
    """Store a new credential (``values`` already sealed); False when one of that name exists."""
    now = _now(store)
    async with store.write() as c:
        n = await c.execute(
            f"INSERT INTO rg_credentials ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (credential_name) DO NOTHING",
            [name, display_name, orjson.dumps(values).decode(), orjson.dumps(info).decode(), now, by, now, by])
    return bool(n)


async def update_credential(store: Store, name: str, display_name: str | None, values: dict[str, Any],
                            info: dict[str, Any], by: str | None) -> bool:
    """Replace a credential's display name, values (sealed) and info; False when there is none of that name."""
    async with store.write() as c:
        n = await c.execute(
            "UPDATE rg_credentials SET display_name = ?, credential_values = ?, credential_info = ?, updated_at = ?, "
            "updated_by = ? WHERE credential_name = ?",
            [display_name, orjson.dumps(values).decode(), orjson.dumps(info).decode(), _now(store), by, name])
    return bool(n)


async def delete_credential(store: Store, name: str) -> bool:
    async with store.write() as c:
        return bool(await c.execute("DELETE FROM rg_credentials WHERE credential_name = ?", [name]))


async def models_naming(store: Store, name: str, sealer: Sealer) -> list[str]:
    """The ids of the stored models whose ``litellm_params.litellm_credential_name`` is ``name`` (a stored row
    seals it with its other credential-named fields)."""

    def names(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return sealer.open(value) == name
        except SealError:
            return False

    out = []
    page = 1
    while True:
        got = await store.list_models(page=page, page_size=1000)
        out += [m.model_id for m in got.items if names(m.litellm_params.get("litellm_credential_name"))]
        if page >= got.total_pages:
            return out
        page += 1
