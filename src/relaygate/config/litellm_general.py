"""LiteLLM's ``general_settings`` / ``litellm_settings`` that are more than a value to copy: the ones kept in
``GeneralSettings`` from ``litellm_settings``, the default models of a kind of call, and the settings relaygate
does not run that must stop startup rather than be ignored (re-exported by ``config.litellm``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from relaygate.config.errors import ConfigError

__all__ = ["DEFAULT_MODELS", "GENERAL_FROM_LITELLM_SETTINGS", "GENERAL_KEYS", "MetadataFields", "metadata_fields",
           "refuse_guardrails", "refuse_unenforced", "size_bytes"]

DEFAULT_MODELS = {"completion_model": ("chat", "completions"), "embedding_model": ("embeddings",),
                  "image_generation_model": ("images",), "moderation_model": ("moderations",)}
"""LiteLLM's ``general_settings`` that name the model a kind of call is served by, whatever the request names,
and the pipeline routes (``Exchange.route``) each applies to."""
GENERAL_KEYS = frozenset((
    "master_key", "database_url", "health_check_timeout", "background_health_checks", "health_check_interval",
    "max_request_size_mb", "proxy_port", "user_api_key_cache_ttl", "allow_requests_on_db_unavailable",
    "store_model_in_db", "disable_spend_logs", "store_prompts_in_spend_logs", "spend_logs_prompt_storage",
    "maximum_spend_logs_retention_period",
    "maximum_spend_logs_retention_interval", "maximum_spend_logs_cleanup_batch_size",
    "maximum_spend_logs_cleanup_max_batches", "maximum_spend_logs_cleanup_run_budget",
    "maximum_spend_logs_cleanup_batch_timeout", "maximum_spend_logs_size", "maximum_spend_logs_cleanup_target_size",
    "maximum_spend_logs_size_check_interval", "maximum_daily_tag_spend_retention_period", "spend_logs_buffer",
    "proxy_batch_write_at", "enable_jwt_auth",
    "litellm_jwtauth", "litellm_key_header_name", "health_check_details", "global_max_parallel_requests",
    "allowed_ips", "use_x_forwarded_for", "trusted_proxy_ranges", "allowed_routes", "enforce_user_param",
    "enforced_params",
    "user_header_name", "user_header_mappings", "ui_access_mode", "forward_client_headers_to_llm_api",
    "forward_openai_org_id", "disable_spend_updates", "apply_user_budget_to_team_keys", "disable_budget_reservation",
    "request_tag_mappings", "max_in_flight_requests_per_worker",
    "max_queued_requests_per_worker", "admission_queue_timeout_seconds", "enable_drain_endpoint",
    "drain_endpoint_token", "spend_capture_rate_check", *DEFAULT_MODELS,
    "reject_clientside_metadata_tags", "disable_custom_api_keys", "disable_reset_budget", "max_file_size_mb",
    "allowed_file_extensions", "blocked_file_extensions", "spend_report_frequency",
    "always_include_stream_usage", "token_rate_limit_type", "include_call_id_in_error_body",
    "enforce_fallback_model_access", "disable_fallbacks_on_per_model_rate_limits", "return_wildcard_routes",
    "model_list_healthy_only", "health_check_concurrency",
    "background_health_check_model_groups", "health_check_skip_disabled_background_models",
    "user_api_key_cache_max_size", "disable_requester_ip_address_logging", "spend_logs_metadata_fields"))
"""``general_settings`` keys kept as they are in ``GeneralSettings``."""
GENERAL_IGNORED_WHY = {
    "proxy_config_reload_interval_seconds": "with store_model_in_db, stored models and settings reach every worker "
                                            "within about a second of a write, through the store's change poll",
}
"""``general_settings`` keys relaygate does not act on, and why (warned about once at load)."""
GENERAL_FROM_LITELLM_SETTINGS = frozenset((
    "max_budget", "budget_duration", "default_internal_user_params", "max_end_user_budget", "max_end_user_budget_id",
    "max_internal_user_budget", "internal_user_budget_duration", "disable_end_user_cost_tracking",
    "disable_end_user_cost_tracking_prometheus_only", "budget_exceeded_status_code", "timezone", "budget_reset_time",
    "cost_discount_config", "cost_margin_config", "block_requests_for_models_without_pricing",
    "default_team_settings", "disable_add_user_agent_to_request_tags", "extra_spend_tag_headers",
    "default_team_params", "model_group_settings", "public_model_groups", "public_model_groups_links",
    "enable_json_schema_validation"))
"""``litellm_settings`` keys kept in ``GeneralSettings`` (budgets, new users' defaults, end-user tracking, provider
discounts and margins, refusing unpriced models, teams' logging, request tags from headers, the public model hub)."""


def refuse_unenforced(data: Mapping[str, Any], rg: Mapping[str, Any], source: str, warnings: list[str]) -> None:
    """Stop startup on LiteLLM settings that restrict access and that relaygate does not enforce, unless
    ``relaygate_settings`` acknowledges serving without them: ``guardrails`` (:func:`refuse_guardrails`), and
    ``general_settings.custom_auth`` (a Python function of LiteLLM's proxy that decides who may call),
    ``admin_only_routes`` (routes only a proxy admin may call), ``custom_key_generate`` (a function that
    vets key generation) or ``custom_sso`` (a function that decides what a signed-in user becomes).
    Ignoring any with a warning would let in callers, keys or roles the operator meant to keep out."""
    refuse_guardrails(data.get("guardrails"), rg.get("ignore_guardrails") is True, source)
    general = data.get("general_settings")
    if not isinstance(general, Mapping):
        return
    mappings = general.get("user_header_mappings")
    for m in [mappings] if isinstance(mappings, dict) else mappings if isinstance(mappings, list) else []:
        role = m.get("litellm_user_role") if isinstance(m, dict) else None
        if str(role).lower() != "customer":
            warnings.append(f"general_settings.user_header_mappings: role {role!r} ignored (only customer: a "
                            "header naming the internal user would let a caller charge another user's budget)")
    if rg.get("ignore_custom_auth") is True:
        return
    for name, what in (("custom_auth", "LiteLLM's custom_auth functions"),
                       ("admin_only_routes", "LiteLLM's admin_only_routes"),
                       ("custom_key_generate", "LiteLLM's custom_key_generate functions"),
                       ("custom_sso", "LiteLLM's custom_sso handlers")):
        if general.get(name):
            raise ConfigError(source, f"general_settings.{name}", f"relaygate does not run {what}: callers it "
                              "refuses would be let in. Remove it, or set relaygate_settings.ignore_custom_auth: "
                              "true to serve with the gateway's own key checks knowingly")


def refuse_guardrails(guardrails: Any, acknowledged: bool, source: str) -> None:
    """LiteLLM's top-level ``guardrails`` (PII masking, prompt-injection and moderation checks around every
    call) are not run by relaygate. Ignoring them with a warning would send every request to the providers
    unchecked, which an operator who configured them relies on not happening: a non-empty list stops
    startup, unless ``relaygate_settings.ignore_guardrails: true`` says to serve without them knowingly."""
    if not guardrails or acknowledged:
        return
    names = [str(g.get("guardrail_name")) for g in guardrails if isinstance(g, dict) and g.get("guardrail_name")] \
        if isinstance(guardrails, list) else []
    listed = f" ({', '.join(names)})" if names else ""
    raise ConfigError(source, "guardrails", f"relaygate does not run LiteLLM's guardrails{listed}: requests would "
                      "reach the providers unchecked. Remove them, or set relaygate_settings.ignore_guardrails: "
                      "true to serve without them knowingly")


SPEND_METADATA_FIELDS = frozenset((
    # LiteLLM's LiteLLM_SpendLogs.metadata fields (SpendLogsMetadata) ...
    "user_api_key", "user_api_key_alias", "user_api_key_team_id", "user_api_key_project_id",
    "user_api_key_project_alias", "user_api_key_org_id", "user_api_key_user_id", "user_api_key_user_email",
    "user_api_key_team_alias", "spend_logs_metadata", "requester_ip_address", "user_agent", "litellm_call_id",
    "applied_guardrails", "mcp_tool_call_metadata", "vector_store_request_metadata", "routing_decision",
    "status", "proxy_server_request", "error_information", "usage_object", "model_map_information",
    "cold_storage_object_key", "litellm_overhead_time_ms", "attempted_retries", "max_retries",
    "attempted_fallbacks", "original_model_group", "cost_breakdown", "guardrail_information", "batch_models",
    # ... and those of relaygate's rows
    "requester_metadata", "outcome", "stream"))
"""The spend logs' metadata fields ``spend_logs_metadata_fields`` may name (LiteLLM refuses any other name)."""


class MetadataFields:
    """LiteLLM's ``general_settings.spend_logs_metadata_fields``: which keys of a spend row's ``metadata`` are
    written, ``include`` only these or ``exclude`` these; ``status`` always."""

    __slots__ = ("include", "exclude")

    def __init__(self, include: frozenset[str] | None, exclude: frozenset[str] | None) -> None:
        self.include = include
        self.exclude = exclude

    def keeps(self, name: str) -> bool:
        if name == "status":
            return True
        if self.include is not None:
            return name in self.include
        return self.exclude is None or name not in self.exclude


def metadata_fields(value: Any) -> MetadataFields | None:
    """The checked setting (None: unset, every key written); ``ValueError`` naming what is wrong."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"include", "exclude"} or \
            (value.get("include") is None) == (value.get("exclude") is None):
        raise ValueError("spend_logs_metadata_fields: set exactly one of 'include' or 'exclude', a list of metadata "
                         "field names")
    names = value.get("include") if value.get("include") is not None else value.get("exclude")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("spend_logs_metadata_fields: expected a list of metadata field names")
    unknown = sorted(set(names) - SPEND_METADATA_FIELDS)
    if unknown:
        raise ValueError(f"spend_logs_metadata_fields: {unknown} are not spend log metadata fields")
    if value.get("exclude") is not None and "status" in names:
        raise ValueError("spend_logs_metadata_fields: ['status'] is always kept and cannot be excluded")
    found = frozenset(names)
    return MetadataFields(found, None) if value.get("include") is not None else MetadataFields(None, found)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"B": 1, "KB": 1024, "KIB": 1024, "MB": 1024**2, "MIB": 1024**2, "GB": 1024**3, "GIB": 1024**3,
               "TB": 1024**4, "TIB": 1024**4}


def size_bytes(value: Any, name: str) -> int | None:
    """A storage size setting (``180GB``, ``512 MiB``, ``1.5TB``; a bare number is bytes) in bytes, None when
    unset. Units are powers of 1024, as ``pg_size_pretty`` prints them (LiteLLM's convention), so the figure an
    operator reads off the database is the one to configure. ``ValueError`` naming ``name`` otherwise."""
    if value is None:
        return None
    m = None if isinstance(value, bool) else _SIZE.match(str(value))
    size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "B").upper()]) if m is not None else 0
    if size <= 0:
        raise ValueError(f"{name}: expected a positive size such as '180GB', got {value!r}")
    return size


class CaptureRateCheck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """LiteLLM 1.110's ``general_settings.spend_capture_rate_check``: the daily check of the spend priced against
    the provider's bill (``management.capture_rate``), over the ``lookback_days`` closed UTC days before the day
    it runs, alerting (``failed_tracking_spend``) under ``threshold``."""

    providers: tuple[str, ...] = ("openai",)
    threshold: float = 0.9
    lookback_days: int = 7
    openai_project_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.providers or set(self.providers) - {"openai"}:
            raise ValueError(f"spend_capture_rate_check.providers: expected a list of 'openai', got "
                             f"{list(self.providers)!r}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"spend_capture_rate_check.threshold: expected a number in (0, 1], got {self.threshold}")
        if not 1 <= self.lookback_days <= 180:
            raise ValueError(f"spend_capture_rate_check.lookback_days: expected 1 to 180, got {self.lookback_days}")
