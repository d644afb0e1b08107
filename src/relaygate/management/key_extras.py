"""The fields of LiteLLM's key requests beyond what a key row keeps: ``key_type``, and the ones relaygate refuses.

What it owns, for ``/key/generate``, ``/key/update`` and ``/key/regenerate`` (``management.keys``):

- ``key_type`` (LiteLLM's ``LiteLLMKeyType``, on a new key): ``llm_api``, ``management`` and ``read_only`` set the
  key's ``allowed_routes`` to LiteLLM's preset (``llm_api_routes``, ``management_routes``, ``info_routes``; any
  ``allowed_routes`` sent with it is replaced, as LiteLLM's ``handle_key_type`` does), ``default`` leaves them;
  another value is a 400. A key's ``allowed_routes`` is enforced on every route (``auth.key_routes``). On an
  update, where LiteLLM does not read it, only ``default`` or null is taken (a 400 otherwise: the routes are
  changed with ``allowed_routes``).
- :data:`NOT_KEPT` (:data:`TEAM_NOT_KEPT` for teams): LiteLLM's key fields for features relaygate does not
  have (a tokens-per-day limit, the limit types other than best effort, tag and MCP rate limits, guardrails,
  policies, prompts, MCP and vector store permissions, per-key pass-through route lists, access group ids,
  automatic rotation, throttling on a spent budget, end-user budgets, output token estimates, prompt caching
  injection, agents and projects, invite e-mails; for teams also team tags, trace ids, secret manager settings,
  member key durations and model budgets, file and batch expiries, default member models). Sent with a value
  that would ask for something (not null, false, empty, or LiteLLM's default), each is a 400 naming it:
  silently dropped, an operator would believe it enforced. ``disable_global_guardrails`` is accepted and has no
  effect (there are no global guardrails to disable).
"""

from __future__ import annotations

from typing import Any

from relaygate.management.common import bad_request, refuse_not_kept

__all__ = ["BUDGET_NOT_KEPT", "CUSTOMER_NOT_KEPT", "KEY_TYPE_ROUTES", "NOT_KEPT", "ORG_NOT_KEPT", "TEAM_NOT_KEPT",
           "USER_NOT_KEPT", "key_extras"]

KEY_TYPE_ROUTES = {"llm_api": "llm_api_routes", "management": "management_routes", "read_only": "info_routes"}
"""LiteLLM's ``_KEY_TYPE_PRESET_ROUTES``: a key type -> the route group its key may call."""
NOT_KEPT = ("tpd_limit", "rpm_limit_type", "tpm_limit_type", "tag_rpm_limit", "mcp_rpm_limit", "guardrails",
            "policies", "prompts", "object_permission", "allowed_passthrough_routes", "denied_passthrough_routes",
            "allowed_vector_store_indexes", "access_group_ids", "auto_rotate", "rotation_interval",
            "throttle_on_budget_exceeded", "end_user_budget_id", "default_estimated_output_tokens",
            "default_estimated_output_tokens_per_model", "enable_prompt_caching", "agent_id", "project_id")
ACCEPTED = ("disable_global_guardrails",)
NEW_ONLY = ("send_invite_email",)
"""Taken on a new key (``/key/generate``: ``management.mail_events`` mails it), refused on an update, as above."""
TEAM_NOT_KEPT = ("tpd_limit", "tags", "guardrails", "policies", "prompts", "object_permission",
                 "allowed_passthrough_routes", "denied_passthrough_routes", "require_trace_id",
                 "secret_manager_settings", "rpm_limit_type", "tpm_limit_type", "default_estimated_output_tokens",
                 "default_estimated_output_tokens_per_model", "mcp_rpm_limit", "team_member_key_duration",
                 "team_member_model_max_budget", "allowed_vector_store_indexes", "enforced_batch_output_expires_after",
                 "enforced_file_expires_after", "access_group_ids", "default_team_member_models")
"""LiteLLM's team fields (``NewTeamRequest`` / ``UpdateTeamRequest``) for features relaygate does not have: refused
as the key's are (``/team/new``, ``/team/update``); ``disable_global_guardrails`` is taken and does nothing."""
USER_NOT_KEPT = (*NOT_KEPT, "organizations")
BUDGET_NOT_KEPT = ("tpd_limit", "allowed_models", "temp_budget_increase", "temp_budget_expiry")
"""LiteLLM's budget row fields (``LiteLLM_BudgetTable``) relaygate does not keep on a budget row (``/budget/*``,
and the budget fields of organizations)."""
ORG_NOT_KEPT = (*BUDGET_NOT_KEPT, "model_rpm_limit", "model_tpm_limit", "object_permission")
CUSTOMER_NOT_KEPT = ("tpd_limit", "models", "object_permission")
"""A customer's (end user's) ``models`` too: LiteLLM's allow-list of models for an end user, not enforced here."""
"""LiteLLM's user fields (``NewUserRequest`` / ``UpdateUserRequest``: the key fields of ``GenerateRequestBase``,
and ``organizations``, memberships ``/organization/member_add`` makes here) for what relaygate does not have."""


def key_extras(sent: dict[str, Any], *, new: bool) -> None:
    """Check and remove the fields of this module from ``sent`` (the fields a key request sent), applying
    ``key_type`` to ``allowed_routes`` on a ``new`` key (see the module docstring)."""
    refuse_not_kept(sent, NOT_KEPT if new else (*NOT_KEPT, *NEW_ONLY))
    for name in (*NOT_KEPT, *ACCEPTED, *NEW_ONLY):
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
