"""Regenerated keys kept valid for a grace period: LiteLLM's ``LiteLLM_DeprecatedVerificationToken``.

What it owns: ``rg_deprecated_keys`` (migration step 16), one row per key regenerated with a grace period: the
old key's hash (``token``), the key it now stands for (``active_token``) and when it stops working
(``revoke_at``). :func:`keep_old` writes it inside the regeneration's own transaction, so the old key is
never revoked without its grace period nor kept without the new key; :func:`active_for` is what the key
lookup (``auth.store_keys``) reads for a hash ``rg_keys`` does not have.

Invariants: a row always points at the newest key of its chain (regenerating the active key again with a grace
period moves every row that pointed at it, so a key regenerated twice within its grace period keeps working
until its own ``revoke_at``, which LiteLLM's table loses track of; without one, they are deleted with it); rows
past their ``revoke_at`` are never read and are deleted by the next regeneration (the table holds at most the
keys regenerated within a grace period).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relaygate.store import tables as t
from relaygate.store.base import Conn, Store

__all__ = ["active_for", "keep_old"]


async def keep_old(c: Conn, dialect: str, old_token: str, new_token: str, revoke_at: datetime | None) -> None:
    """Within a regeneration's transaction: with ``revoke_at``, the old key stands for ``new_token`` until then
    and so do the older keys that stood for it (each until its own end); without, the old key stops at once
    and so do they (a regeneration without a grace period is a revocation: a leaked key's whole chain goes).
    Expired rows go."""
    now = datetime.now(UTC)
    at = t.time_value(now, dialect)
    await c.execute("DELETE FROM rg_deprecated_keys WHERE revoke_at <= ?", [at])
    if revoke_at is None or revoke_at <= now:
        await c.execute("DELETE FROM rg_deprecated_keys WHERE active_token = ?", [old_token])
        return
    await c.execute("UPDATE rg_deprecated_keys SET active_token = ? WHERE active_token = ?", [new_token, old_token])
    await c.execute(
        "INSERT INTO rg_deprecated_keys (token, active_token, revoke_at, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (token) DO UPDATE SET active_token = excluded.active_token, revoke_at = excluded.revoke_at",
        [old_token, new_token, t.time_value(revoke_at, dialect), at])


def _time(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def active_for(store: Store, token: str) -> tuple[str, datetime] | None:
    """``(the hash of the key it stands for, when it stops)`` for a regenerated key still in its grace period,
    else None."""
    async with store._read() as c:
        rows = await c.fetch("SELECT active_token, revoke_at FROM rg_deprecated_keys WHERE token = ? AND "
                             "revoke_at > ?", [token, t.time_value(datetime.now(UTC), store.dialect)])
    return (rows[0]["active_token"], _time(rows[0]["revoke_at"])) if rows else None
