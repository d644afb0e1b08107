"""LiteLLM's management event alerts: a virtual key, team or internal user created, updated or deleted.

What it owns: :func:`told`, which the management routes' wrapper (``common.route``) calls after a write of
``alert_rules.MANAGEMENT_KINDS`` succeeded, and which hands the alerter (``observe.alerting``) the caller and
the request's fields when ``general_settings.alerting`` routes that kind somewhere (LiteLLM's
``send_management_endpoint_alert``: ``new_virtual_key_created``, ``virtual_key_updated``,
``virtual_key_deleted``, ``new_team_created`` ... ``internal_user_deleted``). Nothing is awaited: the alerter
queues the post.

Unlike LiteLLM, which prints the request object as it came, no secret reaches the alert: a key value given
(``key``, ``new_key``, each of ``keys``, ``token``) shows as LiteLLM's ``sk-...abcd`` key name, a ``password``
as masked, and the logging credentials in ``metadata`` as the management answers show them (``masking``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from relaygate.management.masking import MASKED, mask_metadata

__all__ = ["fields_of", "told"]

_KEY_FIELDS = frozenset({"key", "new_key", "token"})


def _key_name(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("sk-"):
        return f"sk-...{value[-4:]}" if len(value) > 7 else "sk-..."
    return value


def fields_of(sent: Any) -> dict[str, Any]:
    """The request body's fields as sent (unset ones left out), secrets masked."""
    if sent is None:
        return {}
    try:
        raw = msgspec.to_builtins(sent)
    except (TypeError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _KEY_FIELDS:
            value = _key_name(value)
        elif name == "keys" and isinstance(value, list):
            value = [_key_name(v) for v in value]
        elif name == "password":
            value = MASKED
        elif name == "metadata":
            value = mask_metadata(value)
        out[name] = value
    return out


def told(gw: Any, kind: str, caller: Any, sent: Any, params: Mapping[str, str]) -> None:
    """Alert ``kind`` (a management write that succeeded) when the alerter sends it; never raises."""
    alerter = getattr(getattr(gw, "exporters", None), "alerter", None)
    if alerter is None or kind not in alerter.kinds:
        return
    args = {**{k: _key_name(v) for k, v in params.items()}, **fields_of(sent)}
    principal = getattr(caller, "principal", None)
    user_id = caller.user_id or ("default_user_id" if caller.is_admin else None)  # LiteLLM's id of the master key
    alerter.management_event(kind, user_id, caller.role, getattr(principal, "key_alias", None), args)
