"""Per-key and per-team logging targets: LiteLLM's ``metadata.logging`` on a key or a team, read once.

What it owns: :class:`LoggingTarget` and :func:`key_logging`, which reads a key's or team's ``metadata``
when the key is resolved from the store (``auth.store_keys``), never per request: the targets (callback
name, success / failure, its variables with ``os.environ/`` resolved) and whether the entity turns
message logging off. The request path only reads the result (``KeyInfo.logging``); exporters
(``relaygate.observe``) send a request of such a key to its targets' credentials. Bad entries are
skipped, never an error: a key keeps working whatever its metadata says.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

__all__ = ["LoggingTarget", "key_logging"]


class LoggingTarget(msgspec.Struct, gc=False):
    """One entry of a key's or team's ``metadata.logging`` (LiteLLM's per-key / per-team callbacks)."""

    callback_name: str
    """``langfuse``, ``otel``, ``generic_api`` ... the names of ``litellm_settings.callbacks``."""
    callback_type: str = "success_and_failure"
    """``success``, ``failure`` or ``success_and_failure``."""
    callback_vars: dict[str, str] = {}
    """Credentials and settings with ``os.environ/`` already resolved (``langfuse_public_key``,
    ``langfuse_secret_key``, ``langfuse_host`` ...). Secrets: never logged, never exported."""


def key_logging(metadata: Any) -> tuple[list[LoggingTarget] | None, bool]:
    """A key's or team's ``metadata``: its ``logging`` targets (LiteLLM's per-key / per-team callbacks,
    ``os.environ/`` values resolved) and whether it turns message logging off. Bad entries are skipped."""
    if not isinstance(metadata, dict):
        return None, False
    redacts = metadata.get("turn_off_message_logging") is True
    entries = metadata.get("logging")
    if not isinstance(entries, list):
        return None, redacts
    out: list[LoggingTarget] = []
    for entry in entries[:8]:
        if not isinstance(entry, dict) or not isinstance(entry.get("callback_name"), str):
            continue
        kind = entry.get("callback_type", "success_and_failure")
        if kind not in ("success", "failure", "success_and_failure"):
            continue
        raw = entry.get("callback_vars") or {}
        values: dict[str, str] = {}
        if isinstance(raw, dict):
            for k, v in raw.items():
                if isinstance(k, str) and isinstance(v, str):
                    if v.startswith("os.environ/"):
                        found = os.environ.get(v[len("os.environ/"):])
                        if found is None:
                            continue
                        v = found
                    values[k] = v
        out.append(LoggingTarget(entry["callback_name"].strip().lower(), kind, values))
    return out or None, redacts
