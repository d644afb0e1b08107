"""Per-key and per-team logging targets: LiteLLM's ``metadata.logging`` on a key or a team, read once.

What it owns: :class:`LoggingTarget` and :func:`key_logging`, which reads a key's or team's ``metadata``
when the key is resolved from the store (``auth.store_keys``), never per request: the targets (callback
name, success / failure, its variables with ``os.environ/`` resolved) and whether the entity turns
message logging off. The request path only reads the result (``KeyInfo.logging``); exporters
(``relaygate.observe``) send a request of such a key to its targets' credentials. Bad entries are
skipped, never an error: a key keeps working whatever its metadata says.

LiteLLM's older team shape, ``metadata.callback_settings`` (``{"success_callback": ["langfuse"],
"failure_callback": [...], "callback_vars": {...}}``), is read when ``logging`` holds no entry; with both lists
empty it is what ``/team/{team_id}/disable_logging`` writes, and :func:`logging_off` says the team's requests
go to no logging callback at all.

``os.environ/`` values are resolved from the gateway's environment, so who may write them is the management
API's concern (:func:`env_references`): only the proxy admin. Anyone else could otherwise point a target's host
at a server of theirs and its secret at ``os.environ/LITELLM_MASTER_KEY`` (LiteLLM's advisory for its own
resolution of them, which it then removed).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

__all__ = ["ENV_PREFIX", "LoggingTarget", "env_references", "key_logging", "logging_entries", "logging_off",
           "team_defaults"]

ENV_PREFIX = "os.environ/"


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
    ``os.environ/`` values resolved; else those of its ``callback_settings``) and whether it turns message
    logging off. Bad entries are skipped."""
    if not isinstance(metadata, dict):
        return None, False
    redacts = metadata.get("turn_off_message_logging") is True
    out: list[LoggingTarget] = []
    for entry in logging_entries(metadata)[:8]:
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
                    if v.startswith(ENV_PREFIX):
                        found = os.environ.get(v[len(ENV_PREFIX):])
                        if found is None:
                            continue
                        v = found
                    values[k] = v
        if values.get("turn_off_message_logging", "").strip().lower() == "true":  # LiteLLM's dynamic param
            redacts = True
        out.append(LoggingTarget(entry["callback_name"].strip().lower(), kind, values))
    return out or None, redacts


def team_defaults(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """LiteLLM's ``default_team_settings`` (config) as team metadata to read with :func:`key_logging`:
    ``team_id`` -> ``{"callback_settings": ...}``, the entry's ``callback_vars`` or else every key beside
    ``team_id`` and the two lists (values as text, ``os.environ/`` resolved by :func:`key_logging`). The first
    entry of a team wins, as LiteLLM's ``_get_team_config``."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        team = entry.get("team_id")
        if not isinstance(team, str) or team in out:
            continue
        raw = entry.get("callback_vars", entry)
        variables = {str(k): v if isinstance(v, str) else str(v) for k, v in raw.items()
                     if k not in ("team_id", "success_callback", "failure_callback") and v is not None} \
            if isinstance(raw, dict) else {}
        out[team] = {"callback_settings": {"success_callback": entry.get("success_callback") or [],
                                           "failure_callback": entry.get("failure_callback") or [],
                                           "callback_vars": variables}}
    return out


def logging_entries(metadata: Any) -> list[Any]:
    """The raw entries of a key's or team's logging: its ``logging`` list, else its ``callback_settings`` as
    entries (nothing resolved, nothing checked)."""
    if not isinstance(metadata, dict):
        return []
    entries = metadata.get("logging")
    if isinstance(entries, list) and entries:
        return entries
    return _settings_entries(metadata.get("callback_settings"))


def _settings_entries(settings: Any) -> list[Any]:
    """LiteLLM's ``callback_settings`` as ``logging`` entries: a name in both lists is ``success_and_failure``;
    every entry shares the ``callback_vars``."""
    if not isinstance(settings, dict):
        return []
    names: dict[str, set[str]] = {}
    for field, kind in (("success_callback", "success"), ("failure_callback", "failure")):
        listed = settings.get(field)
        for name in listed if isinstance(listed, list) else ():
            if isinstance(name, str) and name.strip():
                names.setdefault(name, set()).add(kind)
    shared = settings.get("callback_vars")
    return [{"callback_name": name, "callback_vars": shared,
             "callback_type": kinds.pop() if len(kinds) == 1 else "success_and_failure"}
            for name, kinds in names.items()]


def logging_off(metadata: Any) -> bool:
    """Whether a team's ``metadata`` turns its logging off (``/team/{team_id}/disable_logging``: no
    ``logging`` entry, ``callback_settings`` with an empty ``success_callback`` and ``failure_callback``)."""
    if not isinstance(metadata, dict):
        return False
    settings = metadata.get("callback_settings")
    return (isinstance(settings, dict) and settings.get("success_callback") == []
            and settings.get("failure_callback") == [] and not metadata.get("logging"))


def env_references(metadata: Any) -> list[str]:
    """The callback variables of ``metadata`` (its ``logging`` entries' and its ``callback_settings``') whose
    value names the environment (``os.environ/``), which only the proxy admin may write."""
    if not isinstance(metadata, dict):
        return []
    entries = metadata.get("logging")
    groups = [e.get("callback_vars") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    settings = metadata.get("callback_settings")
    if isinstance(settings, dict):
        groups.append(settings.get("callback_vars"))
    return [str(k) for g in groups if isinstance(g, dict) for k, v in g.items()
            if isinstance(v, str) and ENV_PREFIX in v]
