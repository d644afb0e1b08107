"""LiteLLM's ``langfuse_otel`` callback: the OpenTelemetry sink, sent to Langfuse's OTLP endpoint with its attributes.

What it owns: :class:`LangfuseOtelSink` and :func:`langfuse_otlp_settings`. Langfuse (v3 and later) takes
OpenTelemetry traces at ``<host>/api/public/otel/v1/traces``; LiteLLM's ``langfuse_otel`` callback sends its
OpenTelemetry spans there instead of to ``OTEL_EXPORTER_OTLP_ENDPOINT``, with Langfuse's own attributes on
the request's span. This is that callback on relaygate's OpenTelemetry sink (``observe.otel``: the same spans,
ids, GenAI attributes, sampling, bounded queue and drop counting), with:

- **Where and as whom** (:func:`langfuse_otlp_settings`, LiteLLM's ``_build_langfuse_otel_config``): the host
  is ``LANGFUSE_OTEL_HOST``, else ``LANGFUSE_HOST`` (``https://`` put in front of one without a scheme), else
  Langfuse's US cloud; the endpoint ``<host>/api/public/otel/v1/traces`` over OTLP HTTP/protobuf, whatever the
  ``OTEL_EXPORTER_OTLP_*`` endpoint, protocol and headers say (those stay the ``otel`` callback's, so both
  can run side by side); headers ``Authorization: Basic base64(LANGFUSE_PUBLIC_KEY:LANGFUSE_SECRET_KEY)`` and
  ``x-langfuse-ingestion-version: 4`` (Langfuse's current ingestion path, as LiteLLM sends). The other
  standard variables (timeout, compression, batch sizes, sampler, service name, resource) apply as to
  ``otel``. Without both keys LiteLLM falls back to the plain ``OTEL_*`` configuration; so does this, with
  a warning at start-up.
- **Langfuse's attributes** (:meth:`LangfuseOtelSink.decorate`, LiteLLM's ``set_langfuse_otel_attributes``):
  ``langfuse.observation.type: generation``; ``langfuse.environment`` from ``LANGFUSE_TRACING_ENVIRONMENT``;
  the client's Langfuse controls from its ``metadata`` and ``langfuse_*`` request headers (as the
  ``langfuse`` callback reads them) as ``langfuse.generation.name`` / ``.id`` / ``.parent_observation_id`` /
  ``.mask_input`` / ``.mask_output``, ``user.id`` (``trace_user_id``), ``session.id``,
  ``langfuse.trace.name`` / ``.id`` (dashes removed) / ``.metadata`` / ``.existing_id`` /
  ``.update_keys``, ``langfuse.release``, ``langfuse.version`` (``trace_version``, else ``version``),
  ``langfuse.debug`` (lists and objects as JSON text); with content allowed, ``langfuse.observation.input``
  (the messages, else the ``input`` or ``prompt``, as JSON) and ``langfuse.observation.output`` (the first
  choice's role and content, its tool calls as Langfuse's ``function_call`` items, or a Responses answer's
  output items); ``langfuse.observation.completion_start_time`` for an answer with a first-token time. A
  request that starts its own trace (no incoming ``traceparent``, no ``existing_trace_id``) also names the
  trace: ``langfuse.trace.name`` ``litellm-<call type>`` unless the client named it, ``langfuse.trace.tags``
  (the metadata's ``tags``, the request's tags and ``langfuse_default_tags``), ``langfuse.trace.input`` /
  ``.output`` (``redacted-by-litellm`` where the client masked them).

A key's or team's own project (``metadata.logging`` with ``langfuse_public_key`` and ``langfuse_secret_key``,
and optionally ``langfuse_host``: LiteLLM's per-key dynamic OTLP config) gets that key's spans instead of the
configured project, through a child sink of its own (``observe.otel_targets``); an entry without both keys falls
back to the configured project, as LiteLLM's does. Such entries are honoured when ``langfuse_otel`` is a
configured callback.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import Detail, LoggingTarget
from relaygate.observe.langfuse_payload import REDACTED, BuildOptions, _default_tags, _key_metadata, _steering
from relaygate.observe.otel import OtelSink, OtlpSettings, _traces_path, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_targets import TargetedOtel, clean
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import CALL_TYPES

log = logging.getLogger("relaygate.observe")

NAMES = ("langfuse_otel",)
US_CLOUD = "https://us.cloud.langfuse.com/api/public/otel"
"""LiteLLM's endpoint when neither ``LANGFUSE_OTEL_HOST`` nor ``LANGFUSE_HOST`` is set."""
INGESTION_VERSION = ("x-langfuse-ingestion-version", "4")
DESTINATION = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS")
"""The ``otel`` callback's destination variables, which ``langfuse_otel`` (and ``arize``, ``arize_phoenix``)
replace with their own."""
_METADATA = {"generation_name": "langfuse.generation.name", "generation_id": "langfuse.generation.id",
             "parent_observation_id": "langfuse.generation.parent_observation_id",
             "mask_input": "langfuse.generation.mask_input", "mask_output": "langfuse.generation.mask_output",
             "trace_user_id": "user.id", "session_id": "session.id", "tags": "langfuse.trace.tags",
             "trace_name": "langfuse.trace.name", "trace_id": "langfuse.trace.id",
             "trace_metadata": "langfuse.trace.metadata", "trace_release": "langfuse.release",
             "existing_trace_id": "langfuse.trace.existing_id", "update_trace_keys": "langfuse.trace.update_keys",
             "debug_langfuse": "langfuse.debug"}
"""Client metadata (LiteLLM's Langfuse controls) -> the span attribute LiteLLM's ``langfuse_otel`` sets."""


def _host(env: Mapping[str, str]) -> str | None:
    host = (env.get("LANGFUSE_OTEL_HOST") or "").strip() or (env.get("LANGFUSE_HOST") or "").strip()
    if not host:
        return None
    return (host if host.startswith("http") else f"https://{host}").rstrip("/")


def langfuse_otlp_settings(settings: ObserveSettings, env: Mapping[str, str], *, keys_only: bool = False
                           ) -> OtlpSettings:
    """The exporter configuration of ``langfuse_otel`` (see the module docstring); raises ``ConfigError`` as
    :func:`~relaygate.observe.otel.otlp_settings` does for the variables both read. ``keys_only``: for keys' own
    projects, where missing keys are not warned about (:func:`make_langfuse_otel`)."""
    public = (env.get("LANGFUSE_PUBLIC_KEY") or "").strip()
    secret = (env.get("LANGFUSE_SECRET_KEY") or "").strip()
    if not public or not secret:
        if keys_only:
            return otlp_settings(settings, env)
        log.warning("langfuse_otel: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set: exporting where "
                    "the OTEL_EXPORTER_OTLP_* variables say, as LiteLLM does")
        return otlp_settings(settings, env)
    cfg = otlp_settings(settings, {k: v for k, v in env.items() if k not in DESTINATION})
    host = _host(env)
    auth = base64.b64encode(f"{public}:{secret}".encode()).decode()
    return dataclasses.replace(cfg, protocol="http/protobuf",
                               endpoint=_traces_path(f"{host}/api/public/otel" if host else US_CLOUD),
                               headers={"Authorization": f"Basic {auth}", INGESTION_VERSION[0]: INGESTION_VERSION[1]})


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _mask(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _caller_tags(value: Any) -> list[str]:
    """The metadata's ``tags``: a list (non-text items as JSON), a JSON list as text, or comma-separated text."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, list):
        return [t if isinstance(t, str) else _json(t) for t in value]
    if isinstance(value, str) and value:
        return [t.strip() for t in value.split(",")] if "," in value else [value]
    return []


def _input(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for name in ("messages", "input", "prompt"):
        value = body.get(name)
        if value:
            return _json(value)
    return None


def _function_call(item_id: Any, name: Any, call_id: Any, arguments: Any) -> dict[str, Any]:
    """Langfuse's ``function_call`` item (arguments given as JSON text decoded; ``{}`` when they are not JSON)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    return {"id": item_id, "name": name, "call_id": call_id, "type": "function_call", "arguments": arguments}


def _tool_call(answer: dict[str, Any], call: Any) -> dict[str, Any] | None:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return None
    return _function_call(answer.get("id", ""), fn.get("name", ""), call.get("id", ""), fn.get("arguments", "{}"))


def _output_item(item: Any) -> list[dict[str, Any]]:
    kind = item.get("type") if isinstance(item, dict) else None
    if kind == "reasoning":
        return [{"role": "reasoning_summary", "content": s.get("text")}
                for s in item.get("summary") or () if isinstance(s, dict) and "text" in s]
    if kind == "message":
        content = item.get("content")
        first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else {}
        return [{"role": item.get("role", "assistant"), "content": first.get("text", "")}]
    if kind == "function_call":
        return [_function_call(item.get("id", ""), item.get("name", ""), item.get("call_id", ""),
                               item.get("arguments", "{}"))]
    return []


def observation_output(answer: Any) -> str | None:
    """LiteLLM's ``langfuse.observation.output`` of an answer: a Responses answer's output items, else the first
    choice's tool calls (as ``function_call`` items) or its role and content; None when it has neither."""
    if not isinstance(answer, dict):
        return None
    output = answer.get("output")
    if isinstance(output, list) and output:
        items = [x for item in output for x in _output_item(item)]
        if items:
            return _json(items)
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return None
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        return _json([c for call in calls if (c := _tool_call(answer, call)) is not None])
    out = {k: v for k, v in (("role", message.get("role") or None), ("content", message.get("content")))
           if v is not None}
    return _json(out) if out else None


class LangfuseOtelSink(TargetedOtel):
    """The OpenTelemetry sink behind ``callbacks: ["langfuse_otel"]`` (see the module docstring)."""

    name = "langfuse_otel"
    names = NAMES
    dropped_event = "langfuse_otel_dropped"
    decorates = True

    def __init__(self, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None, *,
                 env: Mapping[str, str] | None = None, **kw: Any) -> None:
        super().__init__(settings, cfg, on_event, **kw)
        env = env or {}
        self.env = env
        self.default_host = _host(env)
        self.environment = (env.get("LANGFUSE_TRACING_ENVIRONMENT") or "").strip() or None
        self.default_tags = settings.langfuse_default_tags
        self.tag_options = BuildOptions(proxy_base_url=(env.get("PROXY_BASE_URL") or "").strip() or None)

    def destination(self, target: LoggingTarget) -> tuple[str, ...] | None:
        """A key's or team's own Langfuse project: its ``langfuse_public_key`` and ``langfuse_secret_key`` (both,
        as LiteLLM's ``construct_dynamic_otel_config``), at its ``langfuse_host`` or the configured host."""
        v = target.callback_vars
        public, secret = clean(v.get("langfuse_public_key")), clean(v.get("langfuse_secret_key"))
        if public is None or secret is None:
            return None
        host = v.get("langfuse_host")
        return (host.strip() if isinstance(host, str) and host.strip() else self.default_host or "", public, secret)

    def lane(self, destination: tuple[str, ...]) -> OtelSink:
        host, public, secret = destination
        if host and clean(host) is None:
            raise ValueError("langfuse_host has a control character")
        if host and not host.startswith("http"):
            host = f"https://{host}"
        if host and not host.lower().startswith(("http://", "https://")):
            raise ValueError("langfuse_host is not an http(s) URL")
        if host and "@" in urlsplit(host).netloc:  # the endpoint is written to the log with its drops
            raise ValueError("langfuse_host carries credentials")
        auth = base64.b64encode(f"{public}:{secret}".encode()).decode()
        headers = {"Authorization": f"Basic {auth}", INGESTION_VERSION[0]: INGESTION_VERSION[1]}
        cfg = dataclasses.replace(self.cfg, protocol="http/protobuf", headers=headers,
                                  endpoint=_traces_path(f"{host.rstrip('/')}/api/public/otel" if host else US_CLOUD))
        return self._child(LangfuseOtelSink(self.settings, cfg, self.on_event, env=self.env))

    def decorate(self, r: CompletionRecord, detail: Detail | None, attrs: dict[str, Any], content: bool) -> None:
        attrs["langfuse.observation.type"] = "generation"
        if self.environment:
            attrs["langfuse.environment"] = self.environment
        meta = _steering(detail.metadata, detail.request_headers) if detail is not None else {}
        if detail is not None and detail.metadata.get("update_trace_keys") is not None:
            meta["update_trace_keys"] = detail.metadata["update_trace_keys"]  # not a control the ingestion API reads
        version = meta.get("trace_version") if meta.get("trace_version") is not None else meta.get("version")
        if version is not None:
            attrs["langfuse.version"] = version if isinstance(version, str | int | float | bool) else _json(version)
        for key, name in _METADATA.items():
            value = meta.get(key)
            if value is None:
                continue
            if key == "trace_id" and isinstance(value, str):
                value = value.replace("-", "")  # Langfuse's trace ids are 32 hex digits
            attrs[name] = _json(value) if isinstance(value, list | dict) or not isinstance(
                value, str | int | float | bool) else value
        body = detail.input if detail is not None and content else None
        answer = detail.output if detail is not None and content and r.outcome is Outcome.OK else None
        given = _input(body)
        if given is not None:
            attrs["langfuse.observation.input"] = given
        if r.ttft is not None and r.start_time:
            stamp = datetime.fromtimestamp(r.start_time + r.ttft, UTC).isoformat()
            attrs["langfuse.observation.completion_start_time"] = _json(stamp)
        said = observation_output(answer)
        if said is not None:
            attrs["langfuse.observation.output"] = said
        if meta.get("existing_trace_id") is not None or (detail is not None and detail.parent_span_id):
            return  # part of a trace that began elsewhere: that one is named there
        if meta.get("trace_name") is None:
            attrs["langfuse.trace.name"] = f"litellm-{CALL_TYPES.get(r.route, r.route)}"
        tags = [*_caller_tags(meta.get("tags")), *(detail.tags if detail is not None else ()),
                *self._default(r, detail)]
        if tags:
            attrs["langfuse.trace.tags"] = _json(list(dict.fromkeys(tags)))
        if given is not None:
            attrs["langfuse.trace.input"] = REDACTED if _mask(meta.get("mask_input")) else given
        if said is not None:
            attrs["langfuse.trace.output"] = REDACTED if _mask(meta.get("mask_output")) else said

    def _default(self, r: CompletionRecord, detail: Detail | None) -> list[str]:
        """``langfuse_default_tags`` of the record (fields from the key and the request's metadata)."""
        if not self.default_tags:
            return []
        fields = {} if self.redact_key_info else _key_metadata(r, detail)
        if detail is not None:
            fields.update(detail.metadata)
        return _default_tags(self.default_tags, fields, r, self.tag_options)


def make_langfuse_otel(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None, *,
                       keys_only: bool = False) -> LangfuseOtelSink:
    """The sink for ``callbacks: ["langfuse_otel"]``; raises ``ConfigError`` as ``make_otel`` does. ``keys_only``:
    the sink for keys' and teams' own ``langfuse_otel`` entries when the config names no such callback (started
    by ``observe.Exporters.ensure_targets``); without ``LANGFUSE_PUBLIC_KEY`` and ``LANGFUSE_SECRET_KEY``, an
    entry without its own keys has no project to go to: its spans are dropped and counted."""
    cfg = langfuse_otlp_settings(settings, env, keys_only=keys_only)
    sink = LangfuseOtelSink(settings, cfg, on_event, env=env)
    if keys_only and not cfg.headers.get("Authorization"):
        sink.fallback = ("a key's langfuse_otel entry names no langfuse_public_key and langfuse_secret_key, and "
                         "LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY are not set")
    throttle_sdk_logs()
    log.info("langfuse_otel: exporting spans over %s to %s", cfg.protocol, cfg.endpoint)
    return sink


__all__ = ["DESTINATION", "NAMES", "LangfuseOtelSink", "langfuse_otlp_settings", "make_langfuse_otel",
           "observation_output"]
