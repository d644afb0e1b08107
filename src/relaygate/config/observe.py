"""Observability settings: LiteLLM's callback, logging and alerting keys, read once per config.

What it owns: :class:`ObserveSettings`, the part of a config that says which exporters run (Langfuse,
OpenTelemetry, Prometheus, Datadog, generic webhooks, JSON request logs, alerting) and how much of a
request they may see. Read from LiteLLM's keys (``litellm_settings.callbacks`` / ``success_callback`` /
``failure_callback`` / ``service_callback``, ``turn_off_message_logging``, ``redact_user_api_key_info``,
``json_logs``, ``callback_settings``, ``langfuse_default_tags``; ``general_settings.alerting``,
``alerting_threshold``, ``alert_types``, ``alert_to_webhook_url``, ``alerting_args``,
``require_auth_for_metrics_endpoint``) by :func:`from_litellm`. Credentials are never here: each exporter
reads its own environment variables (``LANGFUSE_*``, ``OTEL_*``, ``DD_*``, ``GENERIC_LOGGER_*``,
``SLACK_WEBHOOK_URL``) when it is built.

Callback names are normalised to lower case; ``callbacks`` puts a name in both the success and the
failure lists, as LiteLLM does. Unknown names are kept out and warned about by the loader (a name that
is a Python import path, LiteLLM's custom callback classes, cannot run here).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["KNOWN_CALLBACKS", "ObserveSettings"]

KNOWN_CALLBACKS = frozenset({"langfuse", "otel", "opentelemetry", "prometheus", "datadog", "generic_api",
                             "generic", "webhook", "json_logs"})
"""Callback names relaygate runs (``opentelemetry`` is ``otel``; ``generic`` / ``webhook`` are
``generic_api``)."""


class ObserveSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which exporters run and what they may see (immutable; part of the runtime snapshot)."""

    success_callbacks: tuple[str, ...] = ()
    """Exporters told about answered requests (``callbacks`` + ``success_callback``)."""
    failure_callbacks: tuple[str, ...] = ()
    """Exporters told about failed requests (``callbacks`` + ``failure_callback``)."""
    service_callbacks: tuple[str, ...] = ()
    """Exporters told about the gateway's own events (Redis / database failures, cooldowns)."""
    turn_off_message_logging: bool = False
    """Request and response bodies are never exported (``input`` / ``output`` of a Detail are None)."""
    redact_user_api_key_info: bool = False
    """Key hash, alias, team, user ids are left out of exported metadata."""
    json_logs: bool = False
    """One JSON line per request on the log (``litellm_settings.json_logs``)."""
    log_bodies: bool = False
    """JSON request logs include the request and response bodies (``relaygate_settings.log_bodies``)."""
    callback_settings: dict[str, dict[str, Any]] = {}
    """Per-callback options (``callback_settings.otel.message_logging: false`` ...)."""
    langfuse_default_tags: tuple[str, ...] = ()
    """LiteLLM's ``langfuse_default_tags``: metadata fields added to every trace as tags."""
    alerting: tuple[str, ...] = ()
    """``general_settings.alerting``: ``slack`` and/or ``webhook``."""
    alerting_threshold: float = 300.0
    """Seconds over which a response is reported as slow (LiteLLM's default 300)."""
    alert_types: tuple[str, ...] | None = None
    """Which alert kinds are sent (``None``: all LiteLLM's defaults)."""
    alert_to_webhook_url: dict[str, Any] = {}
    """Alert kind -> webhook URL (or a list of them), overriding ``SLACK_WEBHOOK_URL`` for that kind."""
    alerting_args: dict[str, Any] = {}
    require_auth_for_metrics_endpoint: bool = False
    exporter_queue: int = 10_000
    """Per-exporter bounded buffer (records); overflow is dropped oldest-first and counted."""

    @property
    def enabled(self) -> bool:
        return bool(self.success_callbacks or self.failure_callbacks or self.json_logs or self.alerting)
