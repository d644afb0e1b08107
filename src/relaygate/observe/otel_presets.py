"""LiteLLM's OpenTelemetry presets: ``logfire`` and ``signoz``, the ``otel`` spans sent to a vendor's OTLP endpoint.

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
from typing import NamedTuple

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.otel import OtelSink, OtlpSettings, _traces_path, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_targets import header_safe
from relaygate.sinks.queue import OnEvent

__all__ = ["PRESETS", "Preset", "PresetOtelSink", "make_preset", "preset_settings"]

log = logging.getLogger("relaygate.observe")

_DESTINATION = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_ENDPOINT",
                "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_HEADERS",
                "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER")
"""The variables that say where ``otel`` exports: a preset has its own destination."""
LOGFIRE_DEFAULT = "https://logfire-api.pydantic.dev"
_ENV = "environment"


class Preset(NamedTuple):
    """One preset: the variable it cannot start without, its endpoint and its headers from the environment."""

    required: str
    endpoint: Callable[[Mapping[str, str]], str]
    headers: Callable[[Mapping[str, str]], dict[str, str]]


def _var(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


PRESETS: dict[str, Preset] = {
    "logfire": Preset("LOGFIRE_TOKEN",
                      lambda env: (_var(env, "LOGFIRE_BASE_URL") or LOGFIRE_DEFAULT).rstrip("/") + "/v1/traces",
                      lambda env: {"Authorization": _var(env, "LOGFIRE_TOKEN")}),
    "signoz": Preset("SIGNOZ_INGESTION_ENDPOINT",
                     lambda env: _traces_path(_var(env, "SIGNOZ_INGESTION_ENDPOINT")),
                     lambda env: ({"signoz-ingestion-key": key} if (key := _var(env, "SIGNOZ_INGESTION_KEY"))
                                  else {})),
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
    headers = {header: header_safe(preset.required if header == "Authorization" else "SIGNOZ_INGESTION_KEY", value)
               for header, value in preset.headers(env).items()}
    cfg = otlp_settings(settings, {k: v for k, v in env.items() if k not in _DESTINATION})
    return dataclasses.replace(cfg, protocol="http/protobuf", endpoint=endpoint, headers=headers)


class PresetOtelSink(OtelSink):
    """The ``otel`` sink exporting for one preset's callback name (its own destination, drops and log lines)."""

    def __init__(self, name: str, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None
                 ) -> None:
        self.name = name
        self.names = (name,)
        self.dropped_event = f"{name}_dropped"
        super().__init__(settings, cfg, on_event)


def make_preset(name: str) -> Callable[[ObserveSettings, Mapping[str, str], OnEvent | None], PresetOtelSink]:
    """The factory of preset ``name``'s sink (``observe._factory``'s signature)."""

    def make(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None) -> PresetOtelSink:
        cfg = preset_settings(name, settings, env)
        sink = PresetOtelSink(name, settings, cfg, on_event)
        throttle_sdk_logs()
        log.info("%s: exporting spans over %s to %s", name, cfg.protocol, cfg.endpoint)
        return sink

    return make
