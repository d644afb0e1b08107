"""General and router settings stored in the database (LiteLLM's ``LiteLLM_Config`` rows ``general_settings`` and
``router_settings``), served over the config file's. Sans IO.

LiteLLM's admin API (``/config/field/update``, ``/config/update`` ..., ``management.db_config``) stores
``general_settings`` fields in the database when ``store_model_in_db`` is on; every worker serves them. The
rules, LiteLLM 1.110's where it has them:

- **The file owns what it sets.** A field the config file's ``general_settings`` sets is never taken from the
  database (a write to it is refused, :func:`refusal`, with LiteLLM's 400 saying so); the database sets only
  the fields the file leaves out.
- **Only what a running worker applies** can be stored (:data:`FIELDS`): the settings read from the snapshot
  each request is served with (limits, sizes, headers, routing switches). A setting read once at start (the
  master key, the database, alerting, the spend sink's and the budgets' switches, health checks) or one that
  could lock the admin out (``allowed_routes``, ``allowed_ips``) is refused by name: LiteLLM stores any of
  them, and many then never apply.
- **Checked as the file is**: the stored fields are written into the file's own document (``Config.document``,
  the YAML as parsed) and the whole of it translated again (:func:`with_stored_general`), so a stored value
  is read by exactly the code that reads the file's, and one that does not load or check is refused at write
  time (the caller's 400 with the loader's message) and, should one reach the row another way, logged and not
  served (the file's settings are).

The ``router_settings`` row follows the same rules for the settings a snapshot's router is built from
(:data:`ROUTER_FIELDS`, LiteLLM's ``/config/update`` ``router_settings``); its fallback lists are
``config.stored_router``'s (``POST /fallback``), applied over the file's as before. A native TOML config has no
LiteLLM document: nothing is stored over it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from relaygate.config.loader import ConfigError, from_litellm, validate
from relaygate.config.model import Config

__all__ = ["FIELDS", "LITELLM_FIELDS", "ROUTER_FIELDS", "ROUTER_LISTS", "ROUTER_SECTION", "SECTION", "file_keys",
           "overlay", "refusal", "router_refusal", "stored_row", "with_stored_general"]

log = logging.getLogger("relaygate")

SECTION = "general_settings"
"""The ``rg_config`` row (LiteLLM's ``LiteLLM_Config.param_name``)."""

FIELDS: dict[str, tuple[str, Any, str]] = {
    "request_tag_mappings": ("RequestTagMappings", None, "W3C baggage entries made request tags"),
    "global_max_parallel_requests": ("Integer", None, "Requests a worker serves at once (429 past it)"),
    "max_in_flight_requests_per_worker": ("Integer", None, "Admission control: requests a worker serves at once, "
                                                           "the rest queue (503 when the queue is full)"),
    "max_queued_requests_per_worker": ("Integer", None, "Admission control: requests that may wait for a slot"),
    "admission_queue_timeout_seconds": ("Float", 1.0, "Admission control: seconds a queued request waits at most"),
    "max_request_size_mb": ("Integer", None, "Largest request body accepted, in MB (413 past it)"),
    "max_file_size_mb": ("Integer", None, "Largest file /v1/files accepts, in MB"),
    "allowed_file_extensions": ("List", None, "File name extensions /v1/files accepts (all when unset)"),
    "blocked_file_extensions": ("List", None, "File name extensions /v1/files refuses"),
    "return_wildcard_routes": ("Boolean", False, "/v1/models lists wildcard routes such as openai/*"),
    "model_list_healthy_only": ("Boolean", False, "/v1/models hides groups whose deployments all failed their "
                                                  "last health check"),
    "disable_requester_ip_address_logging": ("Boolean", False, "Spend logs leave out the caller's IP address"),
    "disable_fallbacks_on_per_model_rate_limits": ("Boolean", False, "A deployment's own rpm/tpm limit does not "
                                                                     "trigger fallbacks"),
    "enforce_fallback_model_access": ("Boolean", True, "A configured fallback is tried only when the key may "
                                                       "call that model group"),
    "always_include_stream_usage": ("Boolean", False, "Streams end with a usage chunk whatever the client asked"),
    "forward_client_headers_to_llm_api": ("Boolean", False, "The client's x- headers go on to the provider"),
    "cancel_on_disconnect": ("Boolean", True, "A client that goes away cancels its upstream call"),
    "include_call_id_in_error_body": ("Boolean", False, "Error bodies name their litellm_call_id"),
    "reject_clientside_metadata_tags": ("Boolean", False, "A request body may not set tags"),
    "completion_model": ("String", None, "The model group every chat and completions call is served by"),
    "user_header_name": ("String", None, "The request header naming the end user (customer)"),
    "user_header_mappings": ("List", None, "Request headers naming the end user, by role"),
}
"""The ``general_settings`` fields the database may set: name -> (LiteLLM's ``/config/list`` field type, the
default, a description)."""

LITELLM_FIELDS = frozenset({
    "use_spend_logs_ledger", "request_tag_mappings", "completion_model", "max_in_flight_requests_per_worker",
    "max_queued_requests_per_worker", "admission_queue_timeout_seconds", "plugins", "key_management_system",
    "use_google_kms", "use_azure_key_vault", "master_key", "dangerously_permit_weak_or_unset_master_key",
    "coordination_redis", "fail_closed_rate_limit_enforcement", "control_plane_url",
    "allow_cli_sso_verification_uri_complete", "include_call_id_in_error_body", "enable_claude_code_gateway",
    "claude_code_gateway_managed_settings", "database_url", "database_connection_pool_limit",
    "database_connection_timeout", "database_connect_timeout", "database_socket_timeout",
    "database_max_idle_connection_lifetime", "database_extra_connection_params",
    "database_disable_prepared_statements", "database_type", "database_args", "otel", "custom_auth",
    "max_parallel_requests", "global_max_parallel_requests", "user_api_key_cache_max_size", "max_request_size_mb",
    "max_batch_file_size_mb", "max_batch_file_records", "max_batch_file_uploads_per_day",
    "max_file_downloads_per_minute", "max_file_size_mb", "allowed_file_extensions", "blocked_file_extensions",
    "max_response_size_mb", "proxy_config_reload_interval_seconds", "cancel_on_disconnect", "infer_model_from_keys",
    "background_health_checks", "health_check_interval", "health_check_concurrency",
    "health_check_skip_disabled_background_models", "background_health_check_model_groups",
    "model_list_healthy_only", "return_wildcard_routes", "alerting", "alert_types", "alert_to_webhook_url",
    "alerting_args", "alerting_threshold", "ui_access_mode", "max_failed_login_attempts_per_source",
    "max_failed_login_attempts_per_source_overrides", "failed_login_window_seconds", "failed_login_block_seconds",
    "allowed_routes", "allowed_client_side_s3_buckets", "allowed_client_side_s3_endpoint_urls",
    "reject_clientside_metadata_tags", "vector_store_deny_by_default", "search_tool_deny_by_default",
    "missing_session_id", "enable_public_model_hub", "pass_through_request_timeout",
    "responses_websocket_session_limit_seconds", "pass_through_endpoints", "enable_openai_websocket_passthrough",
    "vertex_ai_pass_through_drop_anthropic_betas", "transcribe_media_buckets", "user_header_name",
    "user_header_mappings", "supported_db_objects", "self_serve_budget_policy", "user_mcp_management_mode",
    "store_prompts_in_spend_logs", "spend_logs_prompt_storage", "claude_code_marketplace_auth_required",
    "disable_requester_ip_address_logging", "spend_logs_metadata_fields", "disable_auto_add_proxy_admin_to_teams",
    "enforce_fallback_model_access", "disable_fallbacks_on_per_model_rate_limits", "scheduled_job_stagger",
    "spend_capture_rate_check", "maximum_spend_logs_retention_period", "maximum_autorouter_session_retention_period",
    "maximum_health_check_retention_period", "maximum_daily_tag_spend_retention_period", "maximum_spend_logs_size",
    "maximum_spend_logs_cleanup_target_size", "maximum_spend_logs_size_check_interval",
    "use_spend_logs_partitioning", "maximum_spend_logs_cleanup_batch_size", "maximum_spend_logs_cleanup_max_batches",
    "maximum_spend_logs_cleanup_run_budget", "maximum_spend_logs_cleanup_batch_timeout", "mcp_internal_ip_ranges",
    "mcp_advertised_versions", "mcp_disabled_capabilities", "mcp_allowed_clients", "mcp_require_explicit_server_scope",
    "mcp_client_id_header", "mcp_trusted_proxy_ranges", "mcp_xff_num_trusted_hops",
    "mcp_prefer_client_id_metadata_document", "trusted_proxy_ranges", "store_model_in_db",
    "forward_client_headers_to_llm_api", "skill_scanner", "mcp_required_fields", "password_policy_min_length",
    "password_policy_require_uppercase", "password_policy_require_lowercase", "password_policy_require_numbers",
    "password_policy_require_special_characters", "disable_password_login_when_sso_enabled",
    "disable_responses_id_security", "allow_unmanaged_response_ids", "disable_env_credential_login",
    "disable_budget_reservation", "apply_user_budget_to_team_keys", "agent_access_default_deny",
    "user_url_validation", "user_url_allowed_hosts", "provider_url_destination_allowed_hosts",
    "always_include_stream_usage",
})
"""LiteLLM 1.110's ``ConfigGeneralSettings`` fields: the names its ``/config/field/*`` routes accept (any other
is its 400 ``Invalid field=... passed in.``)."""

_LOCKOUT = frozenset({"allowed_routes", "allowed_ips", "master_key", "ui_access_mode"})

ROUTER_SECTION = "router_settings"
"""The ``rg_config`` row of the router settings stored through the API (its fallback lists are
``config.stored_router``'s, applied over the file's; the other settings here, where the file sets none)."""
ROUTER_FIELDS = frozenset({
    "routing_strategy", "num_retries", "timeout", "stream_timeout", "max_fallbacks", "default_fallbacks",
    "allowed_fails", "allowed_fails_policy", "cooldown_time", "disable_cooldowns", "retry_after", "retry_policy",
    "model_group_alias", "enable_pre_call_checks", "default_max_parallel_requests", "enable_tag_filtering",
    "latency_ewma_alpha", "latency_exploration"})
"""The router settings the database may set: those a snapshot's router is built from (its Redis connection and
limiter settings are read at start: the config file's)."""
ROUTER_LISTS = frozenset({"fallbacks", "context_window_fallbacks", "content_policy_fallbacks"})
"""The fallback lists, stored in the same row and applied over the file's (``config.stored_router``)."""


def router_refusal(names: list[str], config: Config) -> str | None:
    """Why these ``router_settings`` fields cannot be stored for ``config`` (LiteLLM's words); None: they can."""
    unknown = sorted(n for n in names if n not in ROUTER_FIELDS and n not in ROUTER_LISTS)
    if unknown:
        return f"Unsupported router settings: {', '.join(unknown)} are not valid router settings"
    if config.document is None:
        return ("router settings are stored over a LiteLLM YAML config only (this gateway runs a native TOML "
                "config): set them in the config file")
    owned = sorted(n for n in names if n in ROUTER_FIELDS and n in file_keys(config, ROUTER_SECTION))
    if owned:
        keys = f"key '{owned[0]}' is" if len(owned) == 1 else f"keys {', '.join(repr(k) for k in owned)} are"
        return (f"router_settings {keys} set in the config file and cannot be changed here. Edit {config.source} "
                "to change them, or remove them from the file to let the database own them")
    return None


def refusal(name: str, config: Config) -> str | None:
    """Why ``general_settings.<name>`` cannot be stored for ``config``; None: it can."""
    if name not in LITELLM_FIELDS and name not in FIELDS:
        return f"Invalid field={name} passed in."
    if config.document is None:
        return ("general settings are stored over a LiteLLM YAML config only (this gateway runs a native TOML "
                "config): set it in the config file")
    if name in file_keys(config):
        return (f"general_settings key '{name}' is set in the config file and cannot be changed here. "
                f"Edit {config.source} to change it, or remove it from the file to let the database own it")
    if name in FIELDS:
        return None
    if name in _LOCKOUT:
        return f"{name} could lock the admin out of this API: set it in the config file"
    return f"{name} is read when the gateway starts, or not kept by relaygate: set it in the config file"


def file_keys(config: Config, name: str = SECTION) -> frozenset[str]:
    """The fields of section ``name`` ``config``'s file sets (a ``null`` is not set, as LiteLLM reads it); for
    ``router_settings`` also the router settings its ``litellm_settings`` sets (``num_retries``, the fallback
    lists ..., ``request_timeout`` as ``timeout``), which LiteLLM reads there too."""
    doc = config.document
    section = doc.get(name) if isinstance(doc, dict) else None
    keys = frozenset(k for k, v in section.items() if v is not None) if isinstance(section, dict) else frozenset()
    if name == ROUTER_SECTION and isinstance(doc, dict) and isinstance(doc.get("litellm_settings"), dict):
        ls = {k for k, v in doc["litellm_settings"].items() if v is not None}
        keys |= (ls & (ROUTER_FIELDS | ROUTER_LISTS)) | ({"timeout"} if "request_timeout" in ls else set())
    return keys


def stored_row(stored: Mapping[str, Any], name: str = SECTION) -> dict[str, Any]:
    """The stored row ``name`` (``{}``: none, or not an object)."""
    row = stored.get(name)
    return dict(row) if isinstance(row, dict) else {}


def overlay(config: Config, fields: Mapping[str, Any], router: Mapping[str, Any] | None = None) -> Config:
    """``config`` translated again from its document with ``fields`` in its ``general_settings`` and ``router``
    in its ``router_settings`` (a ConfigError when that does not load or check). ``config.document`` stays the
    file's."""
    assert config.document is not None
    doc = copy.deepcopy(config.document)
    for name, more in ((SECTION, fields), (ROUTER_SECTION, router or {})):
        if more:
            section = doc.get(name)
            doc[name] = {**(section if isinstance(section, dict) else {}), **more}
    try:
        new = from_litellm(doc, config.source)
    except (ValueError, TypeError) as exc:  # a loader step without its own message: still the caller's 400
        raise ConfigError(config.source, SECTION, f"a value does not load ({type(exc).__name__}: {exc})") from None
    errors = validate(new)
    if errors:
        raise ConfigError(config.source, SECTION, "; ".join(errors))
    new.document = config.document
    return new


_served: list[Any] = [None, None, None]
"""The last overlay served: (the file's document, the fields, the result): a swap with neither changed (a
model added, a key's change) does not translate the config again."""


def with_stored_general(config: Config, stored: Mapping[str, Any]) -> Config:
    """``config`` with the stored ``general_settings`` fields it may take (:data:`FIELDS`, not set by the file)
    over its own; unchanged when there are none, and when they do not load or check (logged)."""
    if config.document is None:
        return config
    owned, routed = file_keys(config), file_keys(config, ROUTER_SECTION)
    fields = {k: v for k, v in stored_row(stored).items() if k in FIELDS and k not in owned and v is not None}
    router = {k: v for k, v in stored_row(stored, ROUTER_SECTION).items()
              if k in ROUTER_FIELDS and k not in routed and v is not None}
    if not fields and not router:
        return config
    if _served[0] is config.document and _served[1] == (fields, router):
        return _served[2]  # type: ignore[no-any-return]
    try:
        new = overlay(config, fields, router)
    except ConfigError as exc:
        log.error("stored general_settings / router_settings not applied (the config file's are served): %s", exc)
        return config
    _served[:] = [config.document, (fields, router), new]
    return new
