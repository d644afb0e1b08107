"""The fields of LiteLLM's key requests beyond what a key row keeps: ``key_type``, and the ones relaygate refuses.

What it owns, for ``/key/generate``, ``/key/update`` and ``/key/regenerate`` (``management.keys``):

- ``key_type`` (LiteLLM's ``LiteLLMKeyType``, on a new key): ``llm_api``, ``management`` and ``read_only`` set the
  key's ``allowed_routes`` to LiteLLM's preset (``llm_api_routes``, ``management_routes``, ``info_routes``; any
  ``allowed_routes`` sent with it is replaced, as LiteLLM's ``handle_key_type`` does), ``default`` leaves them;
  another value is a 400. A key's ``allowed_routes`` is enforced on every route (``auth.key_routes``). On an
  update, where LiteLLM does not read it, only ``default`` or null is taken (a 400 otherwise: the routes are
  changed with ``allowed_routes``).
- :data:`NOT_KEPT`: LiteLLM's key fields for features relaygate does not have (a tokens-per-day limit, the
  limit types other than best effort, tag and MCP rate limits, guardrails, policies, prompts, MCP and vector
  store permissions, per-key pass-through route lists, access group ids, automatic rotation, throttling on a
  spent budget, end-user budgets, output token estimates, prompt caching injection, agents and projects, invite
  e-mails). Sent with a value that would ask for something (not null, false, empty, or LiteLLM's default), each
  is a 400 naming it: silently dropped, an operator would believe it enforced. ``disable_global_guardrails`` is
  accepted and has no effect (there are no global guardrails to disable).
"""

from __future__ import annotations

from typing import Any

from relaygate.management.common import bad_request

__all__ = ["KEY_TYPE_ROUTES", "NOT_KEPT", "key_extras"]

KEY_TYPE_ROUTES = {"llm_api": "llm_api_routes", "management": "management_routes", "read_only": "info_routes"}
"""LiteLLM's ``_KEY_TYPE_PRESET_ROUTES``: a key type -> the route group its key may call."""
NOT_KEPT = ("tpd_limit", "rpm_limit_type", "tpm_limit_type", "tag_rpm_limit", "mcp_rpm_limit", "guardrails",
            "policies", "prompts", "object_permission", "allowed_passthrough_routes", "denied_passthrough_routes",
            "allowed_vector_store_indexes", "access_group_ids", "auto_rotate", "rotation_interval",
            "throttle_on_budget_exceeded", "end_user_budget_id", "default_estimated_output_tokens",
            "default_estimated_output_tokens_per_model", "enable_prompt_caching", "agent_id", "project_id",
            "send_invite_email")
ACCEPTED = ("disable_global_guardrails",)
_ASKS_NOTHING: tuple[Any, ...] = (None, False, "", [], {})
_DEFAULTS = {"rpm_limit_type": "best_effort_throughput", "tpm_limit_type": "best_effort_throughput"}
"""Values that ask for what relaygate does anyway (LiteLLM's default limit type)."""


def key_extras(sent: dict[str, Any], *, new: bool) -> None:
    """Check and remove the fields of this module from ``sent`` (the fields a key request sent), applying
    ``key_type`` to ``allowed_routes`` on a ``new`` key (see the module docstring)."""
    for name in NOT_KEPT:
        if name in sent:
            value = sent.pop(name)
            if value not in _ASKS_NOTHING and value != _DEFAULTS.get(name):
                raise bad_request(f"{name}: not supported by this gateway (relaygate does not have the feature it "
                                  "sets); leave it out or null", name)
    for name in ACCEPTED:
        sent.pop(name, None)
    if "key_type" not in sent:
        return
    kind = sent.pop("key_type")
    if kind is None or kind == "default":
        return
    if not new or not isinstance(kind, str) or kind not in KEY_TYPE_ROUTES:
        allowed = "llm_api, management, read_only or default" if new else "default (set allowed_routes instead)"
        raise bad_request(f"key_type must be {allowed}, got {kind!r}", "key_type")
    sent["allowed_routes"] = [KEY_TYPE_ROUTES[kind]]
