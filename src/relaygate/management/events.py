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

__all__ = ["fields_of", "model_added", "told"]

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


_INFO = ("litellm_provider", "mode", "max_input_tokens", "max_output_tokens")


def model_added(gw: Any, model_name: str, litellm_params: Mapping[str, Any], model_info: Mapping[str, Any]) -> None:
    """Alert ``new_model_added`` (``/model/new`` succeeded) when the alerter sends it, with what the catalog knows
    of the model (its ``base_model`` when given, else the ``litellm_params.model``); never raises."""
    alerter = getattr(getattr(gw, "exporters", None), "alerter", None)
    if alerter is None or "new_model_added" not in alerter.kinds:
        return
    from relaygate.catalog import default_catalog

    base = model_info.get("base_model")
    base_model = base if isinstance(base, str) and base else None
    model = litellm_params.get("model")
    entry = default_catalog().lookup_name(base_model or (model if isinstance(model, str) else ""))
    info: dict[str, Any] = {}
    if entry is not None:
        values = {"litellm_provider": entry.provider, "mode": entry.mode, "max_input_tokens": entry.max_input_tokens,
                  "max_output_tokens": entry.max_output_tokens}
        info = {k: values[k] for k in _INFO if values[k] is not None}
        info.update(sorted(entry.prices.items()))
    alerter.model_added(model_name, base_model, info)
