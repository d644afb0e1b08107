"""LiteLLM's OpenTelemetry presets: ``logfire``, ``signoz`` and ``langtrace``, the ``otel`` spans sent to a vendor's
OTLP endpoint.

What it owns: where each preset exports and with which credential, read from the environment as LiteLLM reads
it, and :class:`PresetOtelSink`, the :class:`~relaygate.observe.otel.OtelSink` that exports for one preset's
callback name. The spans are the ``otel`` callback's (a ``Received Proxy Server Request`` span with LiteLLM's and
the GenAI conventions' attributes, a span per upstream attempt), as LiteLLM's presets are its ``OpenTelemetry``
logger with another exporter configuration:

- ``logfire``: ``LOGFIRE_TOKEN`` (required: LiteLLM refuses to start the callback without it, and so does
  relaygate), sent as the ``Authorization`` header, over OTLP HTTP/protobuf to ``LOGFIRE_BASE_URL`` (Pydantic
  Logfire's ``https://logfire-api.pydantic.dev`` by default) plus ``/v1/traces``.
- ``signoz``: ``SIGNOZ_INGESTION_ENDPOINT`` (required), with ``/v1/traces`` added unless it ends so, and
  ``SIGNOZ_INGESTION_KEY`` as the ``signoz-ingestion-key`` header when set (a self-hosted SigNoz needs none).
- ``langtrace``: ``LANGTRACE_API_KEY`` (required, as LiteLLM refuses the callback without it) as the ``x-api-key``
  header, over OTLP HTTP/protobuf to ``LANGTRACE_API_HOST`` (``https://app.langtrace.ai`` by default) plus
  ``/api/trace`` unless it ends so. LiteLLM's Langtrace attributes are added to the request's span
  (:func:`langtrace_attributes`): ``langtrace.service.name`` (the provider), ``llm.top_k``, ``llm.user``,
  ``llm.frequency_penalty``, ``llm.presence_penalty``, ``llm.response.stop_reason`` (the request's ``stop``, as
  LiteLLM sets it), ``gen_ai.response_id``, ``gen_ai.system_fingerprint``, ``gen_ai.usage.prompt_tokens`` /
  ``completion_tokens``; the prompts and completions, which LiteLLM adds as ``gen_ai.content.prompt`` /
  ``gen_ai.content.completion`` span events, are the conventions' message attributes here (when message logging
  is on), as on every ``otel`` span.

The other ``OTEL_*`` variables (timeout, compression, certificates, resource, batch processor, sampler) apply as
for ``otel``; the destination ones do not, so ``otel`` can export to a collector beside a preset. Where relaygate
differs: LiteLLM hands ``logfire`` the ``otel`` logger itself when both are configured (so Logfire's spans go
wherever ``otel``'s go, and Logfire gets nothing); here each exports to its own destination. Drops are counted
as ``<name>_dropped`` and in ``litellm_callback_logging_failures_metric{callback_name="<name>"}``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import Detail
from relaygate.observe.otel import OtelSink, OtlpSettings, _traces_path, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_targets import header_safe
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["PRESETS", "Preset", "PresetOtelSink", "langtrace_attributes", "make_preset", "preset_settings"]

log = logging.getLogger("relaygate.observe")

_DESTINATION = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_ENDPOINT",
                "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_HEADERS",
                "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER")
"""The variables that say where ``otel`` exports: a preset has its own destination."""
LOGFIRE_DEFAULT = "https://logfire-api.pydantic.dev"
LANGTRACE_DEFAULT = "https://app.langtrace.ai"
_ENV = "environment"


class Preset(NamedTuple):
    """One preset: the variable it cannot start without, its endpoint and its headers from the environment, and
    the variable its credential header comes from (named when that header's value cannot be sent)."""

    required: str
    endpoint: Callable[[Mapping[str, str]], str]
    headers: Callable[[Mapping[str, str]], dict[str, str]]
    secret: str


def _var(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _langtrace_endpoint(host: str) -> str:
    base = (host or LANGTRACE_DEFAULT).rstrip("/")
    return base if base.endswith("/api/trace") else base + "/api/trace"


PRESETS: dict[str, Preset] = {
    "logfire": Preset("LOGFIRE_TOKEN",
                      lambda env: (_var(env, "LOGFIRE_BASE_URL") or LOGFIRE_DEFAULT).rstrip("/") + "/v1/traces",
                      lambda env: {"Authorization": _var(env, "LOGFIRE_TOKEN")}, "LOGFIRE_TOKEN"),
    "signoz": Preset("SIGNOZ_INGESTION_ENDPOINT",
                     lambda env: _traces_path(_var(env, "SIGNOZ_INGESTION_ENDPOINT")),
                     lambda env: ({"signoz-ingestion-key": key} if (key := _var(env, "SIGNOZ_INGESTION_KEY"))
                                  else {}), "SIGNOZ_INGESTION_KEY"),
    "langtrace": Preset("LANGTRACE_API_KEY", lambda env: _langtrace_endpoint(_var(env, "LANGTRACE_API_HOST")),
                        lambda env: {"x-api-key": _var(env, "LANGTRACE_API_KEY")}, "LANGTRACE_API_KEY"),
}


def preset_settings(name: str, settings: ObserveSettings, env: Mapping[str, str]) -> OtlpSettings:
    """The exporter configuration of preset ``name``; ``ConfigError`` without its required variable (or with an
    endpoint that is not an http(s) URL)."""
    preset = PRESETS[name]
    if not _var(env, preset.required):
        raise ConfigError(_ENV, preset.required, f"the {name} callback needs it")
    endpoint = preset.endpoint(env)
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(_ENV, preset.required, f"expected an http(s) URL, got {endpoint!r}")
    headers = {header: header_safe(preset.secret, value) for header, value in preset.headers(env).items()}
    cfg = otlp_settings(settings, {k: v for k, v in env.items() if k not in _DESTINATION})
    return dataclasses.replace(cfg, protocol="http/protobuf", endpoint=endpoint, headers=headers)


class PresetOtelSink(OtelSink):
    """The ``otel`` sink exporting for one preset's callback name (its own destination, drops and log lines)."""

    def __init__(self, name: str, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None
                 ) -> None:
        self.name = name
        self.names = (name,)
        self.dropped_event = f"{name}_dropped"
        self.decorates = name == "langtrace"
        super().__init__(settings, cfg, on_event)

    def decorate(self, r: CompletionRecord, detail: Detail | None, attrs: dict[str, Any], content: bool) -> None:
        langtrace_attributes(r, detail, attrs)


_LANGTRACE_PARAMS = (("top_k", "llm.top_k"), ("user", "llm.user"), ("frequency_penalty", "llm.frequency_penalty"),
                     ("presence_penalty", "llm.presence_penalty"), ("stop", "llm.response.stop_reason"))


def _scalar(value: Any) -> Any:
    """An attribute value OTLP carries: text, a number, a flag, or a list of texts; None otherwise (or when empty,
    which LiteLLM's ``set_span_attributes`` leaves out too)."""
    if isinstance(value, str | bool | int | float):
        return value or None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def langtrace_attributes(r: CompletionRecord, detail: Detail | None, attrs: dict[str, Any]) -> None:
    """LiteLLM's ``LangtraceAttributes`` on the request's span attributes (module docstring); request and answer
    fields only from the Detail's decoded bodies (none when they were not kept)."""
    if r.provider:
        attrs["langtrace.service.name"] = r.provider
    body = detail.input if detail is not None else None
    if isinstance(body, dict):
        for field, name in _LANGTRACE_PARAMS:
            value = _scalar(body.get(field))
            if value is not None:
                attrs[name] = value
    answer = detail.output if detail is not None else None
    if isinstance(answer, dict):
        for field, name in (("id", "gen_ai.response_id"), ("system_fingerprint", "gen_ai.system_fingerprint")):
            value = answer.get(field)
            if isinstance(value, str) and value:
                attrs[name] = value
    if r.prompt_tokens:
        attrs["gen_ai.usage.prompt_tokens"] = r.prompt_tokens
    if r.completion_tokens:
        attrs["gen_ai.usage.completion_tokens"] = r.completion_tokens


def make_preset(name: str) -> Callable[[ObserveSettings, Mapping[str, str], OnEvent | None], PresetOtelSink]:
    """The factory of preset ``name``'s sink (``observe._factory``'s signature)."""

    def make(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None) -> PresetOtelSink:
        cfg = preset_settings(name, settings, env)
        sink = PresetOtelSink(name, settings, cfg, on_event)
        throttle_sdk_logs()
        log.info("%s: exporting spans over %s to %s", name, cfg.protocol, cfg.endpoint)
        return sink

    return make
