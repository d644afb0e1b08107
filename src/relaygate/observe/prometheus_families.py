"""LiteLLM's ``litellm_*`` families as relaygate emits them: names, types, label names in LiteLLM's order and
help texts (:data:`FAMILIES`), the budget gauges' names, the buckets, the bounds on label values, and
:class:`Cells`, the value cells of the families one record identity counts in
(:mod:`relaygate.observe.prometheus` counts into them, :mod:`relaygate.observe.prometheus_text` writes them)."""

from __future__ import annotations

from relaygate.service_metrics import LATENCY_BUCKETS

__all__ = ["COUNTER", "DEFAULT_BUCKETS", "FAMILIES", "GAUGE", "HISTOGRAM", "LATENCY_BUCKETS", "MAX_IDENTITIES",
           "MAX_MEMO", "MAX_SERIES", "NONE", "OTHER", "BUDGET_GAUGE_KINDS", "DETAIL_FAMILIES", "Cells",
           "class_of"]

NONE = "None"
"""The value of a label LiteLLM leaves unset (its client library writes ``str(None)``)."""
OTHER = "other"
"""The value of every label outside the bounded set."""
MAX_IDENTITIES = 10_000
"""Distinct keys, teams and users that get their own label value; later ones are ``other``."""
MAX_SERIES = 100_000
"""Label sets per family; a new one past this counts under all-``other`` labels."""
MAX_MEMO = 20_000
"""Record identities whose cells are remembered; the memo is emptied when it is full."""

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""prometheus_client's default buckets, which LiteLLM's per-output-token histogram uses."""

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

_USER_KEY = ("end_user", "hashed_api_key", "api_key_alias")
_DEP = ("litellm_model_name", "model_id", "api_base", "api_provider")
_API = ("model_group", "model", "hashed_api_key", "api_key_alias", "team", "team_alias", "requested_model", "end_user",
        "user", "model_id", "api_provider", "service_tier")
_TOKENS = (*_USER_KEY, "model", "team", "team_alias", "user", "user_email", "requested_model", "model_id",
           "api_provider")
_PROVIDER_CACHE = ("model", "hashed_api_key", "api_key_alias", "team", "team_alias", "end_user", "user", "model_id",
                   "api_provider", "model_group")
_LITELLM_CACHE = _PROVIDER_CACHE[:9]
"""The response cache's families' labels (LiteLLM's ``_cache_metric_labels``: the provider cache's without
``model_group``)."""
_DEP_CALLS = ("model_group", "requested_model", *_DEP, "hashed_api_key", "api_key_alias", "team", "team_alias",
              "client_ip", "user_agent")
_REMAINING = ("model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key", "api_key_alias",
              "model_id")
_FALLBACKS = ("requested_model", "fallback_model", "hashed_api_key", "api_key_alias", "team", "team_alias",
              "exception_status", "exception_class", "model_id")

_ORG = ("org_id", "org_alias")
"""LiteLLM 1.110's organization labels, after the others, on the families whose records know the key's
organization (its ``PrometheusMetricLabels._org_label_metrics``; images generated too, of the sparse
token-detail families: ``cells.token_labels`` ends with them, the others' series leave them off)."""
_TOKENS_ORG = (*_TOKENS, *_ORG)

_KEY_MODEL = ("hashed_api_key", "api_key_alias", "model", "model_id")
_KEY_TYPE = ("hashed_api_key", "api_key_alias", "rate_limit_type")
_TEAM_TYPE = ("team", "team_alias", "rate_limit_type")

FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "litellm_proxy_total_requests_metric": (COUNTER, (
        *_USER_KEY, "requested_model", "team", "team_alias", "user", "status_code", "user_email", "route",
        "client_ip", "user_agent", "model_id", "api_provider", *_ORG),
        "Total number of requests made to the proxy server"),
    "litellm_proxy_failed_requests_metric": (COUNTER, (
        *_USER_KEY, "requested_model", "team", "team_alias", "user", "user_email", "exception_status",
        "exception_class", "route", "client_ip", "user_agent", "model_id", "api_provider", *_ORG),
        "Total number of failed responses from proxy - the client did not get a success response"),
    "litellm_request_total_latency_metric": (HISTOGRAM, (
        "model_group", *_USER_KEY, "requested_model", "team", "team_alias", "user", "model", "model_id",
        "api_provider", "service_tier", *_ORG),
        "Total latency (seconds) for a request to LiteLLM"),
    "litellm_request_queue_time_seconds": (HISTOGRAM, (
        *_USER_KEY, "requested_model", "team", "team_alias", "user", "model", "model_id", "api_provider", *_ORG),
        "Time (seconds) from request arrival at the proxy to the start of pre-call processing -- includes "
        "authentication and any ASGI-level queueing"),
    "litellm_llm_api_latency_metric": (HISTOGRAM, (*_API, *_ORG), "Total latency (seconds) for a models LLM API call"),
    "litellm_llm_api_time_to_first_token_metric": (HISTOGRAM, (*_API, *_ORG),
                                                   "Time to first token for a models LLM API call"),
    "litellm_overhead_latency_metric": (HISTOGRAM, _REMAINING, "Latency overhead (seconds) added by the proxy"),
    "litellm_deployment_latency_per_output_token": (HISTOGRAM, (
        "model_group", *_DEP, "hashed_api_key", "api_key_alias", "team", "team_alias", *_ORG),
        "LLM Deployment Analytics - Latency per output token"),
    "litellm_spend_metric": (COUNTER, (
        *_USER_KEY, "model", "team", "team_alias", "user", "user_email", "client_ip", "user_agent", "requested_model",
        "model_id", "api_provider", "service_tier", *_ORG), "Total spend on LLM requests"),
    "litellm_total_tokens_metric": (COUNTER, _TOKENS_ORG, "Total number of input + output tokens from LLM requests"),
    "litellm_input_tokens_metric": (COUNTER, _TOKENS_ORG, "Total number of input tokens from LLM requests"),
    "litellm_output_tokens_metric": (COUNTER, _TOKENS_ORG, "Total number of output tokens from LLM requests"),
    "litellm_input_cached_tokens_metric": (COUNTER, _TOKENS, "Provider-side cached input tokens (e.g. OpenAI "
                                           "prompt_tokens_details.cached_tokens, Anthropic cache_read_input_tokens)"),
    "litellm_input_cache_creation_tokens_metric": (COUNTER, _TOKENS, "Provider-side input tokens written to prompt "
                                                   "cache (e.g. Anthropic cache_creation_input_tokens)"),
    "litellm_input_audio_tokens_metric": (COUNTER, _TOKENS,
                                          "Audio input tokens reported in prompt_tokens_details.audio_tokens"),
    "litellm_output_reasoning_tokens_metric": (COUNTER, _TOKENS, "Reasoning tokens reported in "
                                               "completion_tokens_details.reasoning_tokens"),
    "litellm_output_audio_tokens_metric": (COUNTER, _TOKENS,
                                           "Audio output tokens reported in completion_tokens_details.audio_tokens"),
    "litellm_images_generated_metric": (COUNTER, _TOKENS_ORG,
                                        "Number of images generated, from the image generation response"),
    "litellm_cache_hits_metric": (COUNTER, _LITELLM_CACHE, "Total number of LiteLLM cache hits"),
    "litellm_cache_misses_metric": (COUNTER, _LITELLM_CACHE, "Total number of LiteLLM cache misses"),
    "litellm_cached_tokens_metric": (COUNTER, _LITELLM_CACHE, "Total tokens served from LiteLLM cache"),
    "litellm_provider_cache_read_input_tokens_metric": (COUNTER, _PROVIDER_CACHE,
                                                        "Total prompt/input tokens read from provider prompt cache"),
    "litellm_provider_cache_creation_input_tokens_metric": (
        COUNTER, _PROVIDER_CACHE, "Total prompt/input tokens written to provider prompt cache"),
    "litellm_zero_cost_requests": (COUNTER, ("requested_model", "model", "model_id", "api_provider", "reason"),
                                         "Requests that carried usage but were logged at $0 on a model whose pricing "
                                         "entry has a non-zero rate, by reason (missing_pricing_key, "
                                         "pricing_not_applied, cost_calculation_error)"),
    "litellm_requests_metric": (COUNTER, (
        *_USER_KEY, "model", "team", "team_alias", "user", "user_email", "client_ip", "user_agent", "requested_model",
        "model_id", "api_provider", *_ORG),
        "deprecated - use litellm_proxy_total_requests_metric. Total number of LLM calls to litellm"),
    "litellm_llm_api_failed_requests_metric": (COUNTER, (
        *_USER_KEY, "model", "team", "team_alias", "user", "model_id"),
        "deprecated - use litellm_proxy_failed_requests_metric"),
    "litellm_deployment_success_responses": (COUNTER, _DEP_CALLS,
                                             "LLM Deployment Analytics - Total number of successful LLM API calls"),
    "litellm_deployment_failure_responses": (COUNTER, (
        "model_group", "requested_model", *_DEP, "exception_status", "exception_class", "hashed_api_key",
        "api_key_alias", "team", "team_alias", "client_ip", "user_agent"),
        "LLM Deployment Analytics - Total number of failed LLM API calls"),
    "litellm_deployment_total_requests": (COUNTER, _DEP_CALLS,
                                          "LLM Deployment Analytics - Total number of LLM API calls"),
    "litellm_deployment_successful_fallbacks": (COUNTER, _FALLBACKS, "Number of successful fallback requests"),
    "litellm_deployment_failed_fallbacks": (COUNTER, _FALLBACKS, "Number of failed fallback requests"),
    "litellm_deployment_cooled_down": (COUNTER, (*_DEP, "exception_status"),
                                       "Number of times a deployment has been cooled down"),
    "litellm_deployment_state": (GAUGE, _DEP, "The state of the deployment: 0 = healthy, 1 = partial outage, "
                                              "2 = complete outage"),
    "litellm_deployment_rpm_limit": (GAUGE, ("model_group", *_DEP), "Deployment RPM limit found in config"),
    "litellm_deployment_tpm_limit": (GAUGE, ("model_group", *_DEP), "Deployment TPM limit found in config"),
    "litellm_remaining_requests_metric": (GAUGE, _REMAINING, "Remaining requests for model"),
    "litellm_remaining_tokens_metric": (GAUGE, _REMAINING, "Remaining tokens for model"),
    "litellm_remaining_requests": (GAUGE, _REMAINING, "Remaining requests for model (LiteLLM's earlier name)"),
    "litellm_remaining_tokens": (GAUGE, _REMAINING, "Remaining tokens for model (LiteLLM's earlier name)"),
    "litellm_in_flight_requests": (GAUGE, (), "Number of HTTP requests currently in-flight on this worker"),
    "litellm_spend_capture_rate": (GAUGE, ("api_provider",), "Share of the provider's bill LiteLLM captured as "
                                   "spend over the scheduled check's window (captured spend / provider bill), by "
                                   "api_provider; NaN when the last check produced no rate"),
    "litellm_admission_admitted_requests": (GAUGE, (), "Number of requests admitted by this worker"),
    "litellm_admission_queued_requests": (GAUGE, (), "Number of requests queued by this worker"),
    "litellm_admission_rejected_requests": (COUNTER, ("reason",), "Number of requests rejected by this worker"),
    "litellm_remaining_team_budget_metric": (GAUGE, ("team", "team_alias"), "Remaining budget for team"),
    "litellm_team_max_budget_metric": (GAUGE, ("team", "team_alias"), "Maximum budget set for team"),
    "litellm_team_budget_remaining_hours_metric": (GAUGE, ("team", "team_alias"),
                                                   "Remaining hours for team budget to be reset"),
    "litellm_remaining_api_key_budget_metric": (GAUGE, ("hashed_api_key", "api_key_alias"),
                                                "Remaining budget for api key"),
    "litellm_api_key_max_budget_metric": (GAUGE, ("hashed_api_key", "api_key_alias"),
                                          "Maximum budget set for api key"),
    "litellm_api_key_budget_remaining_hours_metric": (GAUGE, ("hashed_api_key", "api_key_alias"),
                                                      "Remaining hours for api key budget to be reset"),
    "litellm_remaining_org_budget_metric": (GAUGE, ("org_id", "org_alias"), "Remaining budget for organization"),
    "litellm_org_max_budget_metric": (GAUGE, ("org_id", "org_alias"), "Maximum budget set for organization"),
    "litellm_org_budget_remaining_hours_metric": (GAUGE, ("org_id", "org_alias"),
                                                  "Remaining hours for organization budget to be reset"),
    # the key's and team's limiter gauges (observe.prometheus_limits)
    "litellm_remaining_api_key_requests_for_model": (
        GAUGE, _KEY_MODEL, "Remaining Requests API Key can make for model (model based rpm limit on key)"),
    "litellm_remaining_api_key_tokens_for_model": (
        GAUGE, _KEY_MODEL, "Remaining Tokens API Key can make for model (model based tpm limit on key)"),
    "litellm_api_key_rate_limit_allowed_metric": (GAUGE, _KEY_TYPE, "Configured rate limit for the API Key in the "
                                                  "current window (rpm_limit / tpm_limit), by rate_limit_type"),
    "litellm_api_key_rate_limit_used_metric": (GAUGE, _KEY_TYPE, "Requests or tokens the API Key has consumed in "
                                               "the current rate limit window, by rate_limit_type"),
    "litellm_team_rate_limit_allowed_metric": (GAUGE, _TEAM_TYPE, "Configured rate limit for the Team in the current "
                                               "window (team rpm_limit / tpm_limit), by rate_limit_type"),
    "litellm_team_rate_limit_used_metric": (GAUGE, _TEAM_TYPE, "Requests or tokens the Team has consumed in the "
                                            "current rate limit window, by rate_limit_type"),
    "litellm_remaining_user_budget_metric": (GAUGE, ("user",), "Remaining budget for user"),
    "litellm_user_max_budget_metric": (GAUGE, ("user",), "Maximum budget set for user"),
    "litellm_user_budget_remaining_hours_metric": (GAUGE, ("user",), "Remaining hours for user budget to be reset"),
}
"""name -> (type, label names in LiteLLM's order, help). ``litellm_remaining_requests`` / ``_tokens`` are the
names LiteLLM's published v2 Grafana dashboard still queries; they carry the same samples as the ``_metric``
families."""

_BUDGET_FAMILIES = {
    "team": ("litellm_remaining_team_budget_metric", "litellm_team_max_budget_metric",
             "litellm_team_budget_remaining_hours_metric"),
    "key": ("litellm_remaining_api_key_budget_metric", "litellm_api_key_max_budget_metric",
            "litellm_api_key_budget_remaining_hours_metric"),
    "user": ("litellm_remaining_user_budget_metric", "litellm_user_max_budget_metric",
             "litellm_user_budget_remaining_hours_metric"),
    "organization": ("litellm_remaining_org_budget_metric", "litellm_org_max_budget_metric",
                     "litellm_org_budget_remaining_hours_metric"),
}


# an error's LiteLLM exception class by HTTP status (LiteLLM: ``Provider.ClassName``)
_CLASSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError", 404: "NotFoundError",
            408: "Timeout", 413: "BadRequestError", 422: "UnprocessableEntityError", 429: "RateLimitError",
            499: "ClientDisconnectedError", 500: "InternalServerError", 502: "APIConnectionError",
            503: "ServiceUnavailableError", 504: "Timeout", 599: "MidStreamError"}
_TYPE_CLASSES = {"budget_exceeded": "BudgetExceededError", "context_length_exceeded": "ContextWindowExceededError",
                 "content_policy_violation": "ContentPolicyViolationError"}


def class_of(status: int, error_type: str, provider: str) -> str:
    """LiteLLM's ``exception_class`` label of a failure (``Provider.ClassName``)."""
    name = _TYPE_CLASSES.get(error_type) or _CLASSES.get(status) or "APIError"
    return f"{provider[0].upper()}{provider[1:]}.{name}" if provider and provider != NONE else name


DETAIL_FAMILIES = ("litellm_output_reasoning_tokens_metric", "litellm_input_audio_tokens_metric",
                    "litellm_output_audio_tokens_metric", "litellm_images_generated_metric",
                    "litellm_input_cached_tokens_metric", "litellm_input_cache_creation_tokens_metric")
BUDGET_GAUGE_KINDS = frozenset({"team", "key", "user", "organization"})
"""The budget kinds with LiteLLM gauges (``litellm_remaining_{team,api_key,user,org}_budget_metric`` ...). A
customer's are not kept: its id is the client's ``user`` field, which never becomes a label value here."""


class Cells:
    """The value cells one record identity counts in (shared with the families' dicts)."""

    __slots__ = ("total", "failed", "calls", "state", "labels", "latency", "input", "output", "tokens", "spend",
                 "api", "ttft", "overhead", "per_token", "legacy", "cache_labels", "cache_read", "cache_write",
                 "cache_hits", "cache_misses", "cached_tokens", "remaining", "token_labels", "details", "queue")

    def __init__(self, total: list[float]) -> None:
        self.total = total
        self.failed: list[float] | None = None
        self.calls: list[list[float]] = []
        self.state: tuple[str, int] | None = None
        self.labels: tuple[str, ...] = ()
        """requested_model, hashed_api_key, api_key_alias, team, team_alias, model_id."""
        self.latency: list[float] = []
        self.input: list[float] = []
        self.output: list[float] = []
        self.tokens: list[float] = []
        self.spend: list[float] = []
        self.legacy: list[float] = []
        """``litellm_requests_metric`` on success, ``litellm_llm_api_failed_requests_metric`` on failure."""
        self.cache_labels: tuple[str, ...] = ()
        self.cache_read: list[float] | None = None
        """Provider prompt-cache counters, created at the first record that has such tokens."""
        self.cache_write: list[float] | None = None
        self.cache_hits: list[float] | None = None
        """The response cache's hit (and cached tokens) or miss counter of an answered request it was asked about."""
        self.cache_misses: list[float] | None = None
        self.cached_tokens: list[float] | None = None
        self.api: list[float] | None = None
        self.ttft: list[float] | None = None
        self.overhead: list[float] | None = None
        self.per_token: list[float] | None = None
        self.queue: list[float] | None = None
        """``litellm_request_queue_time_seconds``'s (a success whose queue time was taken)."""
        self.remaining: tuple[str, ...] | None = None
        """The ``litellm_remaining_*_metric`` labels of a deployment's answer (None: no deployment answered)."""
        self.token_labels: tuple[str, ...] = ()
        self.details: list[list[float] | None] | None = None
        """LiteLLM's sparse token-detail counters (reasoning, input audio, output audio tokens, images), each
        created at the first record with such a count."""
