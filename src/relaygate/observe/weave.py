"""LiteLLM's ``weave_otel`` callback: one OpenInference span a request to Weights & Biases Weave over OTLP.

What it owns: where it exports, read from the environment as LiteLLM reads it, and :class:`WeaveSink`, the
Arize sink's single OpenInference span (``observe.openinference``: model, messages, usage, cost, metadata, tags,
errors) with Weave's own attributes on top, as LiteLLM's ``WeaveOtelLogger`` is its OpenTelemetry logger with
the Arize attribute set and Weave's:

- **Destination**: ``WANDB_API_KEY`` and ``WANDB_PROJECT_ID`` (``<entity>/<project>``) are required (LiteLLM
  refuses the callback without either, and so does relaygate, at start); OTLP HTTP/protobuf to
  ``WANDB_HOST`` (a dedicated or self-managed Weave; ``https://`` added when it names no scheme) plus
  ``/otel/v1/traces``, else Weave cloud's ``https://trace.wandb.ai/otel/v1/traces``; headers
  ``Authorization: Basic base64("api:<WANDB_API_KEY>")`` and ``project_id: <WANDB_PROJECT_ID>``. The other
  ``OTEL_*`` variables (timeout, compression, certificates, resource, batch processor, sampler) apply as for
  ``otel``; the destination ones do not, so ``otel`` can export to a collector beside it.
- **Weave's attributes**: ``wandb.display_name`` (the request's ``metadata.display_name``, else
  ``<provider>/<model>``, each ``/`` written ``__`` as LiteLLM writes it); with a ``metadata.session_id``,
  ``wandb.thread_id`` (it) and ``wandb.is_turn`` (true); ``input.value`` the JSON of ``{"messages", "tools",
  "functions"}`` and ``output.value`` the whole answer's JSON (both ``redacted-by-litellm`` when messages are not
  logged: the OpenInference ones stay, each ``redacted-by-litellm``).
- One span a request, no attempt spans (LiteLLM's Weave logger skips its raw-request child span too).

Where relaygate differs: a key's or team's own Weave project (LiteLLM's dynamic ``wandb_*`` parameters) is not
supported: every request goes to the configured project. Drops are counted as ``weave_otel_dropped`` and in
``litellm_callback_logging_failures_metric{callback_name="weave_otel"}``.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.arize import ArizeSink
from relaygate.observe.detail import Detail, LoggingTarget
from relaygate.observe.otel import OtlpSettings, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_presets import _DESTINATION
from relaygate.observe.otel_targets import header_safe
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["WEAVE_DEFAULT", "WeaveSink", "make_weave", "weave_attributes", "weave_endpoint", "weave_settings"]

log = logging.getLogger("relaygate.observe")

WEAVE_DEFAULT = "https://trace.wandb.ai"
TRACES_PATH = "/otel/v1/traces"


def weave_endpoint(host: str) -> str:
    """The OTLP traces URL of a Weave ``host`` (LiteLLM's ``weave_otel_endpoint``), else Weave cloud's."""
    if not host:
        return WEAVE_DEFAULT + TRACES_PATH
    base = host if host.startswith("http") else f"https://{host}"
    return base.rstrip("/") + TRACES_PATH


def weave_settings(settings: ObserveSettings, env: Mapping[str, str]) -> OtlpSettings:
    """The exporter configuration (module docstring); ``ConfigError`` naming a missing or unusable variable."""
    key, project = (env.get("WANDB_API_KEY") or "").strip(), (env.get("WANDB_PROJECT_ID") or "").strip()
    if not key:
        raise ConfigError("environment", "WANDB_API_KEY", "the weave_otel callback needs it")
    if not project:
        raise ConfigError("environment", "WANDB_PROJECT_ID", "the weave_otel callback needs it (<entity>/<project>)")
    endpoint = weave_endpoint((env.get("WANDB_HOST") or "").strip())
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError("environment", "WANDB_HOST", f"expected an http(s) URL, got {endpoint!r}")
    auth = "Basic " + base64.b64encode(f"api:{header_safe('WANDB_API_KEY', key)}".encode()).decode()
    headers = {"Authorization": auth, "project_id": header_safe("WANDB_PROJECT_ID", project)}
    cfg = otlp_settings(settings, {k: v for k, v in env.items() if k not in _DESTINATION})
    return dataclasses.replace(cfg, protocol="http/protobuf", endpoint=endpoint, headers=headers)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def weave_attributes(r: CompletionRecord, detail: Detail | None, attrs: dict[str, Any], content: bool) -> None:
    """Weave's attributes over the OpenInference ones in ``attrs`` (module docstring)."""
    meta = detail.metadata if detail is not None else {}
    name = meta.get("display_name")
    if not isinstance(name, str) or not name:
        model = r.upstream_model or r.model
        name = f"{r.provider}/{model}" if r.provider and model else model
    if name:
        attrs["wandb.display_name"] = name.replace("/", "__")
    session = meta.get("session_id")
    if session is not None:
        attrs["wandb.thread_id"] = session if isinstance(session, str) else _json(session)
        attrs["wandb.is_turn"] = True
    if not content:
        return
    body = detail.input if detail is not None and isinstance(detail.input, dict) else None
    if body is not None and isinstance(body.get("messages"), list):
        prompt: dict[str, Any] = {"messages": body["messages"]}
        for field in ("functions", "tools"):
            if body.get(field) is not None:
                prompt[field] = body[field]
        attrs["input.value"] = _json(prompt)
    answer = detail.output if detail is not None and isinstance(detail.output, dict) else None
    if answer is not None and r.outcome is Outcome.OK:
        attrs["output.value"] = _json(answer)


class WeaveSink(ArizeSink):
    """The OpenTelemetry sink behind ``callbacks: ["weave_otel"]`` (see the module docstring)."""

    name = "weave_otel"
    names = ("weave_otel",)
    dropped_event = "weave_otel_dropped"

    def destination(self, target: LoggingTarget) -> tuple[str, ...] | None:
        return None  # no project of a key's own (module docstring)

    def _attributes(self, r: CompletionRecord, detail: Detail | None) -> dict[str, Any]:
        attrs = super()._attributes(r, detail)
        weave_attributes(r, detail, attrs, self.message_logging and not (detail is not None and detail.redacted))
        return attrs


def make_weave(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None) -> WeaveSink:
    """The ``weave_otel`` sink (``observe._factory``'s signature); ``ConfigError`` as :func:`weave_settings`."""
    cfg = weave_settings(settings, env)
    sink = WeaveSink(settings, cfg, on_event)
    throttle_sdk_logs()
    log.info("weave_otel: exporting spans over %s to %s", cfg.protocol, cfg.endpoint)
    return sink
