"""Observability settings: LiteLLM's callback, logging and alerting keys, read once per config.

What it owns: :class:`ObserveSettings`, the part of a config that says which exporters run (Langfuse,
OpenTelemetry, Prometheus, Datadog, generic webhooks, JSON request logs, alerting) and how much of a
request they may see. Read from LiteLLM's keys (``litellm_settings.callbacks`` / ``success_callback`` /
``failure_callback`` / ``service_callback``, ``turn_off_message_logging``, ``redact_user_api_key_info``,
``json_logs``, ``callback_settings``, ``langfuse_default_tags``, the ``prometheus_*`` output controls
(``config.prometheus_view``); ``general_settings.alerting``,
``alerting_threshold``, ``alert_types``, ``alert_to_webhook_url``, ``alerting_args``,
``require_auth_for_metrics_endpoint``) by :func:`from_litellm`. Credentials are never here: each exporter
reads its own environment variables (``LANGFUSE_*``, ``OTEL_*``, ``DD_*``, ``GENERIC_LOGGER_*``,
``SLACK_WEBHOOK_URL``) when it is built.

Callback names are normalised to lower case; ``callbacks`` puts a name in both the success and the
failure lists, as LiteLLM does. Unknown names are kept out and warned about by the loader. A name that is a
Python ``module.attribute`` path is LiteLLM's custom callback: kept as written in :attr:`ObserveSettings.custom_success`
/ ``custom_failure`` (the lists then name the ``custom_callbacks`` sink, ``observe.custom_callbacks``).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from relaygate.config.prometheus_view import FIELDS as PROMETHEUS_FIELDS
from relaygate.config.prometheus_view import PrometheusView, view_from

__all__ = ["CUSTOM", "GENERAL_SETTINGS_KEYS", "KNOWN_CALLBACKS", "LITELLM_SETTINGS_KEYS", "ObserveConfigError",
           "ObserveSettings", "from_litellm"]

KNOWN_CALLBACKS = frozenset({"langfuse", "otel", "opentelemetry", "prometheus", "datadog", "generic_api",
                             "generic", "webhook", "json_logs", "s3", "s3_v2", "langfuse_otel", "langsmith", "arize",
                             "arize_phoenix", "logfire", "signoz", "datadog_llm_observability", "posthog",
                             "aws_sqs", "gcs_bucket", "braintrust", "opik", "openmeter", "helicone", "lago",
                             "lunary", "athina", "langtrace", "sentry", "gcs_pubsub", "azure_storage",
                             "weave_otel", "datadog_metrics", "agentops", "smtp_email", "resend_email",
                             "sendgrid_email", "cloudzero"})
"""Callback names relaygate runs (``opentelemetry`` is ``otel``; ``generic`` / ``webhook`` are
``generic_api``; ``s3_v2`` is ``s3``; ``sqs`` is ``aws_sqs``)."""


CUSTOM = "custom_callbacks"
"""The name the custom callbacks' sink runs under (``observe.custom_callbacks``) in the callback lists."""


class ObserveSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which exporters run and what they may see (immutable; part of the runtime snapshot)."""

    success_callbacks: tuple[str, ...] = ()
    """Exporters told about answered requests (``callbacks`` + ``success_callback``)."""
    failure_callbacks: tuple[str, ...] = ()
    """Exporters told about failed requests (``callbacks`` + ``failure_callback``)."""
    service_callbacks: tuple[str, ...] = ()
    """``prometheus_system`` when LiteLLM's per-service families are asked for (``relaygate.service_metrics``)."""
    turn_off_message_logging: bool = False
    """Request and response bodies are never exported (``input`` / ``output`` of a Detail are None)."""
    redact_user_api_key_info: bool = False
    """Key hash, alias, team, user ids are left out of exported metadata."""
    forward_traceparent: bool = True
    """With OpenTelemetry on, each attempt sends the provider a ``traceparent`` naming its span
    (``litellm_settings.forward_traceparent_to_llm_provider``; relaygate's default is true, LiteLLM's false)."""
    json_logs: bool = False
    """One JSON line per request on the log (``litellm_settings.json_logs``)."""
    log_bodies: bool = False
    """JSON request logs include the request and response bodies (``relaygate_settings.log_bodies``)."""
    callback_settings: dict[str, dict[str, Any]] = {}
    """Per-callback options (``callback_settings.otel.message_logging: false`` ...)."""
    langfuse_default_tags: tuple[str, ...] = ()
    """LiteLLM's ``langfuse_default_tags``: metadata fields added to every trace as tags."""
    alerting: tuple[str, ...] = ()
    """``general_settings.alerting``: ``slack``, ``webhook``, ``pagerduty`` (``observe.pagerduty``), ``email``
    (``observe.mail``)."""
    alerting_threshold: float = 300.0
    """Seconds over which a response is reported as slow (LiteLLM's default 300)."""
    alert_types: tuple[str, ...] | None = None
    """Which alert kinds are sent (``None``: all LiteLLM's defaults)."""
    alert_to_webhook_url: dict[str, Any] = {}
    """Alert kind -> webhook URL (or a list of them), overriding ``SLACK_WEBHOOK_URL`` for that kind."""
    alerting_args: dict[str, Any] = {}
    s3_callback_params: dict[str, Any] = {}
    """LiteLLM's ``litellm_settings.s3_callback_params`` (the ``s3`` callback's bucket, region, credentials,
    path ...; read by ``observe.s3``)."""
    aws_sqs_callback_params: dict[str, Any] = {}
    """LiteLLM's ``litellm_settings.aws_sqs_callback_params`` (the ``aws_sqs`` callback's queue, region,
    credentials ...; read by ``observe.sqs``)."""
    datadog_llm_observability_params: dict[str, Any] = {}
    """LiteLLM's ``litellm_settings.datadog_llm_observability_params`` (read by ``observe.datadog_llm_obs``)."""
    gcs_pubsub_v1: bool = False
    """LiteLLM's ``litellm_settings.gcs_pub_sub_use_v1``: Pub/Sub messages are spend-log rows
    (``observe.gcs_pubsub``)."""
    require_auth_for_metrics_endpoint: bool = False
    prometheus_view: PrometheusView | None = None
    """LiteLLM's ``prometheus_metrics_config`` / ``prometheus_exclude_metrics`` / ``prometheus_exclude_labels``:
    which ``litellm_*`` families ``/metrics`` writes, with which labels (``config.prometheus_view``)."""
    exporter_queue: int = 10_000
    """Per-exporter bounded buffer (records); overflow is dropped oldest-first and counted."""
    custom_success: tuple[str, ...] = ()
    """LiteLLM's custom callbacks told about answered requests: ``module.attribute`` paths in ``callbacks`` or
    ``success_callback`` (``observe.custom_callbacks``; ``custom_callbacks`` is then in :attr:`success_callbacks`)."""
    custom_failure: tuple[str, ...] = ()
    """The same, told about failed requests (``callbacks`` or ``failure_callback``)."""
    custom_dir: str = ""
    """The directory a custom callback's module is looked for in first (the config file's, as LiteLLM does)."""
    custom_hooks_ok: bool = False
    """``relaygate_settings.ignore_guardrails``: a custom callback whose proxy hooks (which could refuse or change
    requests and answers, and do not run here) may start, with a warning, instead of stopping the start."""

    @property
    def enabled(self) -> bool:
        return bool(self.success_callbacks or self.failure_callbacks or self.json_logs or self.alerting)


class ObserveConfigError(ValueError):
    """A wrong value in an observability setting; the loader turns it into a ``ConfigError``."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


LITELLM_SETTINGS_KEYS = frozenset({
    "callbacks", "success_callback", "failure_callback", "service_callback", "turn_off_message_logging",
    "redact_user_api_key_info", "json_logs", "callback_settings", "langfuse_default_tags",
    "require_auth_for_metrics_endpoint", "s3_callback_params", "forward_traceparent_to_llm_provider",
    "aws_sqs_callback_params", "datadog_llm_observability_params", "gcs_pub_sub_use_v1",
    *PROMETHEUS_FIELDS})
"""``litellm_settings`` keys :func:`from_litellm` reads."""
GENERAL_SETTINGS_KEYS = frozenset({"alerting", "alerting_threshold", "alert_types", "alert_to_webhook_url",
                                   "alerting_args"})
"""``general_settings`` keys :func:`from_litellm` reads."""
_ALIASES = {"opentelemetry": "otel", "generic": "generic_api", "webhook": "generic_api", "s3_v2": "s3",
            "sqs": "aws_sqs"}


def _names(value: Any, field: str, warnings: list[str], known: frozenset[str] = KNOWN_CALLBACKS,
           note: str = "", custom: list[str] | None = None) -> list[str]:
    """The callback names of ``field`` (lower case, aliases resolved, each once); a name not in ``known``
    is warned about (with ``note``) and left out. With ``custom``, a ``module.attribute`` path (LiteLLM's custom
    callback: an instance, a class's or a function) is added to it as written instead."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ObserveConfigError(field, "expected a list of callback names")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ObserveConfigError(f"{field}[{i}]", "expected a callback name")
        if custom is not None and "." in item:
            path = item.strip()
            if not all(part.isidentifier() for part in path.split(".")):
                raise ObserveConfigError(f"{field}[{i}]", "expected a callback name or a custom callback's "
                                         "module.attribute path (custom_callbacks.proxy_handler_instance)")
            if path not in custom:
                custom.append(path)
            continue
        name = item.strip().lower()
        name = _ALIASES.get(name, name)
        if name not in known:
            warnings.append(f"{field}[{i}]: callback {item!r} is not supported{note}: ignored")
            continue
        if name not in out:
            out.append(name)
    return out


_CHANNELS = ("slack", "webhook", "pagerduty", "email")
"""``general_settings.alerting`` channels relaygate runs (``email``: ``observe.mail``)."""
SERVICE_CALLBACKS = frozenset({"prometheus_system"})
"""``service_callback`` names relaygate serves (``relaygate.service_metrics``: LiteLLM's per-service
Prometheus families)."""


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ObserveConfigError(field, "expected true or false")


def from_litellm(ls: dict[str, Any], gs: dict[str, Any], rg: dict[str, Any],
                 warnings: list[str], source: str = "") -> ObserveSettings | None:
    """The settings from LiteLLM's ``litellm_settings`` / ``general_settings`` (and relaygate's
    ``relaygate_settings.log_bodies``); ``None`` when nothing is on, so the request path skips it all.
    ``source``: the config file's path (a custom callback's module is looked for beside it first)."""
    custom_both: list[str] = []
    custom_success: list[str] = []
    custom_failure: list[str] = []
    both = _names(ls.get("callbacks"), "litellm_settings.callbacks", warnings, custom=custom_both)
    success = both + [n for n in _names(ls.get("success_callback"), "litellm_settings.success_callback", warnings,
                                        custom=custom_success) if n not in both]
    failure = both + [n for n in _names(ls.get("failure_callback"), "litellm_settings.failure_callback", warnings,
                                        custom=custom_failure) if n not in both]
    custom_success = list(dict.fromkeys(custom_both + custom_success))
    custom_failure = list(dict.fromkeys(custom_both + custom_failure))
    if custom_success:
        success.append(CUSTOM)
    if custom_failure:
        failure.append(CUSTOM)
    service = _names(ls.get("service_callback"), "litellm_settings.service_callback", warnings, SERVICE_CALLBACKS,
                     " as a service callback (prometheus_system is)")
    json_logs = _flag(ls.get("json_logs", False), "litellm_settings.json_logs") or "json_logs" in success
    cb_settings = ls.get("callback_settings") or {}
    if not isinstance(cb_settings, dict) or not all(isinstance(v, dict) for v in cb_settings.values()):
        raise ObserveConfigError("litellm_settings.callback_settings", "expected a mapping of mappings")
    tags = ls.get("langfuse_default_tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ObserveConfigError("litellm_settings.langfuse_default_tags", "expected a list of strings")
    alerting = gs.get("alerting") or []
    if isinstance(alerting, str):
        alerting = [alerting]
    if not isinstance(alerting, list) or not all(isinstance(a, str) for a in alerting):
        raise ObserveConfigError("general_settings.alerting", "expected a list such as [\"slack\"]")
    for i, a in enumerate(alerting):
        if a not in _CHANNELS:
            warnings.append(f"general_settings.alerting[{i}]: {a!r} is not supported (slack, webhook, pagerduty, "
                            "email): ignored")
    alerting = [a for a in alerting if a in _CHANNELS]
    threshold = gs.get("alerting_threshold", 300)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0:
        raise ObserveConfigError("general_settings.alerting_threshold", "expected a positive number of seconds")
    types = gs.get("alert_types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise ObserveConfigError("general_settings.alert_types", "expected a list of alert type names")
    for field in ("alert_to_webhook_url", "alerting_args"):
        if not isinstance(gs.get(field) or {}, dict):
            raise ObserveConfigError(f"general_settings.{field}", "expected a mapping")
    params = {}
    for field in ("s3_callback_params", "aws_sqs_callback_params", "datadog_llm_observability_params"):
        params[field] = ls.get(field) or {}
        if not isinstance(params[field], dict):
            raise ObserveConfigError(f"litellm_settings.{field}", "expected a mapping")
    forward = ls.get("forward_traceparent_to_llm_provider")  # unset or null: relaygate's default, true
    settings = ObserveSettings(
        success_callbacks=tuple(n for n in success if n != "json_logs"),
        failure_callbacks=tuple(n for n in failure if n != "json_logs"),
        service_callbacks=tuple(service),
        turn_off_message_logging=_flag(ls.get("turn_off_message_logging", False),
                                       "litellm_settings.turn_off_message_logging"),
        redact_user_api_key_info=_flag(ls.get("redact_user_api_key_info", False),
                                       "litellm_settings.redact_user_api_key_info"),
        forward_traceparent=_flag(True if forward is None else forward,
                                  "litellm_settings.forward_traceparent_to_llm_provider"),
        json_logs=json_logs,
        log_bodies=_flag(rg.get("log_bodies", False), "relaygate_settings.log_bodies"),
        callback_settings=dict(cb_settings),
        langfuse_default_tags=tuple(tags),
        alerting=tuple(dict.fromkeys(alerting)),
        alerting_threshold=float(threshold),
        alert_types=tuple(types) if types is not None else None,
        alert_to_webhook_url=dict(gs.get("alert_to_webhook_url") or {}),
        alerting_args=dict(gs.get("alerting_args") or {}),
        s3_callback_params=dict(params["s3_callback_params"]),
        aws_sqs_callback_params=dict(params["aws_sqs_callback_params"]),
        datadog_llm_observability_params=dict(params["datadog_llm_observability_params"]),
        gcs_pubsub_v1=_flag(ls.get("gcs_pub_sub_use_v1", False), "litellm_settings.gcs_pub_sub_use_v1"),
        require_auth_for_metrics_endpoint=_flag(ls.get("require_auth_for_metrics_endpoint", False),
                                                "litellm_settings.require_auth_for_metrics_endpoint"),
        prometheus_view=view_from(ls),
        custom_success=tuple(custom_success),
        custom_failure=tuple(custom_failure),
        custom_dir=os.path.dirname(os.path.abspath(source)) if (custom_success or custom_failure) and source
        and not source.startswith("<") else "",
        custom_hooks_ok=rg.get("ignore_guardrails") is True,
    )
    if not settings.enabled and not settings.require_auth_for_metrics_endpoint and not service and \
            not settings.turn_off_message_logging:  # it holds for keys' own logging targets and the spend logs
        return None
    return settings
