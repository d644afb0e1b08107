"""LiteLLM's ``arize`` and ``arize_phoenix`` callbacks: OpenInference spans over OTLP to Arize AX and Phoenix.

What it owns: :class:`ArizeSink`, :class:`PhoenixSink` and their settings. Both are relaygate's OpenTelemetry
sink (``observe.otel``: bounded queue, sampling, the wire encoder, drops counted and logged) with the spans
LiteLLM's callbacks send and the OpenInference attributes of ``observe.openinference`` on them.

- **arize** (LiteLLM's ``ArizeLogger``): needs ``ARIZE_API_KEY`` and ``ARIZE_SPACE_KEY`` (else
  ``ARIZE_SPACE_ID``), sent as the headers ``space_id`` and ``api_key``; over gRPC to ``ARIZE_ENDPOINT``, else
  over HTTP/protobuf to ``ARIZE_HTTP_ENDPOINT``, else over gRPC to ``https://otlp.arize.com/v1`` (the traces
  path appended as LiteLLM appends it). The project is the resource's ``service.name`` and ``model_id``:
  ``ARIZE_PROJECT_NAME`` unless ``OTEL_SERVICE_NAME`` says otherwise. One span per request,
  ``litellm_request`` (the client's ``metadata.generation_name`` when given), kind internal, a child of the
  client's ``traceparent`` when one came. LiteLLM starts without the keys and exports nothing (it logs the
  error once); relaygate refuses to start instead, naming the variable, and sends no literal ``None`` as a
  space id. gRPC needs ``opentelemetry-exporter-otlp-proto-grpc``: without it the error says so and names
  ``ARIZE_HTTP_ENDPOINT``.
- **arize_phoenix** (LiteLLM's ``ArizePhoenixLogger``): to ``PHOENIX_COLLECTOR_HTTP_ENDPOINT``, else
  ``PHOENIX_COLLECTOR_ENDPOINT``, else ``http://localhost:6006/v1/traces``; gRPC for a ``grpc://`` endpoint or
  one on port 4317 without ``/v1/traces``, else HTTP/protobuf with the traces path appended (Phoenix Cloud's
  ``app.phoenix.arize.com`` URLs kept as given, then normalised). ``PHOENIX_API_KEY`` is sent as
  ``authorization: Bearer <key>``; Phoenix Cloud without it is a start-up error (LiteLLM's message). The project
  is ``PHOENIX_PROJECT_NAME``, else ``ARIZE_PROJECT_NAME``, else ``default``, or a key's own
  ``phoenix_project_name_override`` / ``phoenix_project_name`` in its metadata (as LiteLLM: never the client's
  request metadata): the resource's ``openinference.project.name``, ``model_id`` and ``service.name`` (at most
  64 key-named projects' resources kept). Two spans per request: ``litellm_proxy_request``
  (kind server, the client's ``traceparent`` its parent) and its child ``litellm_request``, both with the
  attributes, as LiteLLM sends them. With the ``otel`` callback configured and any ``PHOENIX_*`` endpoint or
  key set, Phoenix is started too (LiteLLM's auto-initialisation).

Both: the OTLP variables of the ``otel`` callback (its endpoint, protocol and headers) are not read; timeout,
compression, batch sizes, the sampler and ``OTEL_RESOURCE_ATTRIBUTES`` are. A failed request's span has the
error status, the ``error.*`` attributes and an ``exception`` event.

A key's or team's own Arize space (``metadata.logging`` with ``arize_api_key`` and ``arize_space_key`` or
``arize_space_id``) gets that key's spans instead of the configured space, on the configured endpoint, through a
child sink of its own (``observe.otel_targets``; only its own credentials are sent, where LiteLLM also sends the
environment's ``space_id`` header beside the key's ``arize-space-id``); an entry without them falls back to the
configured space. Left out: the per-key sampling rates (``arize_*_sampling_rate``); LiteLLM's
``raw_gen_ai_request`` child span (the provider's own request and answer bodies) and guardrail spans.
relaygate's per-attempt spans (``otel``) are not sent either: LiteLLM has none, and Phoenix would show each
retry as another LLM call.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.detail import Detail, LoggingTarget
from relaygate.observe.langfuse_otel import DESTINATION
from relaygate.observe.openinference import openinference_attributes
from relaygate.observe.otel import OtelSink, OtlpSettings, _traces_path, otlp_settings, throttle_sdk_logs
from relaygate.observe.otel_attrs import request_span_name
from relaygate.observe.otel_targets import TargetedOtel, clean, header_safe
from relaygate.observe.tracecontext import new_span_id, new_trace_id
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["ArizeSink", "PhoenixSink", "arize_otlp_settings", "make_arize", "make_arize_phoenix",
           "phoenix_otlp_settings", "phoenix_wanted"]

log = logging.getLogger("relaygate.observe")

_ENV = "environment"
ARIZE_DEFAULT = "https://otlp.arize.com/v1"
PHOENIX_DEFAULT = "http://localhost:6006/v1/traces"
PHOENIX_CLOUD = "app.phoenix.arize.com"
PROXY_SPAN = "litellm_proxy_request"
PROJECTS = 64
"""Phoenix projects named by keys whose resources a sink keeps at most (past it, it starts over)."""
_PHOENIX_VARS = ("PHOENIX_API_KEY", "PHOENIX_COLLECTOR_HTTP_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT")


def _get(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return name, value
    return None


def _base(settings: ObserveSettings, env: Mapping[str, str], service: str | None) -> OtlpSettings:
    """The shared OTLP settings without the ``otel`` callback's destination (``service``: the resource's
    ``service.name`` unless ``OTEL_SERVICE_NAME`` is set, as LiteLLM's resource merge lets it win)."""
    own = {k: v for k, v in env.items() if k not in DESTINATION}
    if service and not (own.get("OTEL_SERVICE_NAME") or "").strip():
        own["OTEL_SERVICE_NAME"] = service
    return otlp_settings(settings, own)


def _grpc_available(variable: str) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        raise ConfigError(_ENV, variable, "this endpoint is OTLP over gRPC, which needs the "
                          "opentelemetry-exporter-otlp-proto-grpc package (not installed); send over HTTP "
                          "instead (ARIZE_HTTP_ENDPOINT / PHOENIX_COLLECTOR_HTTP_ENDPOINT)") from None


def arize_otlp_settings(settings: ObserveSettings, env: Mapping[str, str], *, keys_only: bool = False) -> OtlpSettings:
    """The exporter configuration of ``arize`` (see the module docstring); ``ConfigError`` when it cannot work.
    ``keys_only``: for keys' own spaces, where the configured keys may be missing (then no auth headers)."""
    key = _get(env, "ARIZE_API_KEY")
    if key is None and not keys_only:
        raise ConfigError(_ENV, "ARIZE_API_KEY", "the arize callback needs ARIZE_API_KEY and ARIZE_SPACE_KEY "
                                                 "(or ARIZE_SPACE_ID)")
    space = _get(env, "ARIZE_SPACE_KEY", "ARIZE_SPACE_ID")
    if space is None and not keys_only:
        raise ConfigError(_ENV, "ARIZE_SPACE_ID", "the arize callback needs ARIZE_SPACE_KEY or ARIZE_SPACE_ID")
    grpc, http = _get(env, "ARIZE_ENDPOINT"), _get(env, "ARIZE_HTTP_ENDPOINT")
    if grpc is not None or http is None:
        protocol, endpoint = "grpc", _traces_path(grpc[1] if grpc is not None else ARIZE_DEFAULT)
        _grpc_available(grpc[0] if grpc is not None else "ARIZE_ENDPOINT")
    else:
        protocol, endpoint = "http/protobuf", _traces_path(http[1])
        if not endpoint.lower().startswith(("http://", "https://")):
            raise ConfigError(_ENV, http[0], f"expected an http:// or https:// URL, got {http[1]!r}")
    project = _get(env, "ARIZE_PROJECT_NAME")
    cfg = _base(settings, env, project[1] if project is not None else None)
    headers = {} if key is None or space is None else {"space_id": header_safe(space[0], space[1]),
                                                        "api_key": header_safe(key[0], key[1])}
    return dataclasses.replace(cfg, protocol=protocol, endpoint=endpoint, tracer_name="litellm", headers=headers)


def phoenix_wanted(env: Mapping[str, str]) -> bool:
    """Whether LiteLLM would start Phoenix beside ``otel`` on its own (a ``PHOENIX_*`` endpoint or key set)."""
    return _get(env, *_PHOENIX_VARS) is not None


def phoenix_otlp_settings(settings: ObserveSettings, env: Mapping[str, str]) -> tuple[OtlpSettings, str]:
    """The exporter configuration of ``arize_phoenix`` and its default project (see the module docstring)."""
    found = _get(env, "PHOENIX_COLLECTOR_HTTP_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT")
    raw = found[1] if found is not None else PHOENIX_DEFAULT
    if raw.startswith("grpc://") or (":4317" in raw and "/v1/traces" not in raw):
        protocol = "grpc"
        _grpc_available(found[0] if found is not None else "PHOENIX_COLLECTOR_ENDPOINT")
    else:
        protocol = "http/protobuf"
        if not raw.lower().startswith(("http://", "https://")):
            raise ConfigError(_ENV, found[0] if found is not None else "PHOENIX_COLLECTOR_ENDPOINT",
                              f"expected an http:// or https:// URL, got {raw!r}")
    endpoint = _traces_path(raw)
    key = _get(env, "PHOENIX_API_KEY")
    headers: dict[str, str] = {}
    if key is not None:
        headers["authorization"] = f"Bearer {header_safe(key[0], key[1])}"
    elif PHOENIX_CLOUD in raw:
        raise ConfigError(_ENV, "PHOENIX_API_KEY", "PHOENIX_API_KEY must be set when using Phoenix Cloud "
                                                   f"({PHOENIX_CLOUD})")
    project = (_get(env, "PHOENIX_PROJECT_NAME", "ARIZE_PROJECT_NAME") or ("", "default"))[1]
    cfg = _base(settings, env, None)
    resource = {**cfg.resource, "openinference.project.name": project, "model_id": project, "service.name": project}
    return dataclasses.replace(cfg, protocol=protocol, endpoint=endpoint, headers=headers, resource=resource,
                               tracer_name="litellm"), project


class ArizeSink(TargetedOtel):
    """The OpenTelemetry sink behind ``callbacks: ["arize"]`` (see the module docstring)."""

    name = "arize"
    names: tuple[str, ...] = ("arize",)
    dropped_event = "arize_dropped"

    def destination(self, target: LoggingTarget) -> tuple[str, ...] | None:
        """A key's or team's own Arize space: its ``arize_api_key`` and ``arize_space_key`` (else
        ``arize_space_id``), sent to the configured endpoint."""
        v = target.callback_vars
        key, space = clean(v.get("arize_api_key")), clean(v.get("arize_space_key") or v.get("arize_space_id"))
        return (key, space) if key is not None and space is not None else None

    def lane(self, destination: tuple[str, ...]) -> OtelSink:
        key, space = destination
        cfg = dataclasses.replace(self.cfg, headers={"space_id": space, "api_key": key})
        return self._child(ArizeSink(self.settings, cfg, self.on_event))

    def spans_of(self, detail: Detail | None) -> int:
        return 1

    def _attributes(self, r: CompletionRecord, detail: Detail | None) -> dict[str, Any]:
        content = self.message_logging and not (detail is not None and detail.redacted)
        return openinference_attributes(r, detail, content=content, redact_key_info=self.redact_key_info)

    @staticmethod
    def _ids(detail: Detail | None) -> tuple[int, int, int | None, bool, int]:
        """The request's trace and span ids, its parent (the client's ``traceparent``) and trace flags."""
        if detail is None:
            return int(new_trace_id(), 16), int(new_span_id(), 16), None, False, 1
        parent = int(detail.parent_span_id, 16) if detail.parent_span_id else None
        return int(detail.trace_id, 16), int(detail.span_id, 16), parent, parent is not None, detail.trace_flags & 0xFF

    @staticmethod
    def _outcome(r: CompletionRecord, attrs: dict[str, Any]) -> tuple[Status, list[tuple[str, dict[str, Any]]]]:
        if r.outcome is Outcome.OK:
            return Status(StatusCode.OK), []
        message = str(attrs.get("error.message") or "")
        return (Status(StatusCode.ERROR, message or None),
                [("exception", {"exception.type": str(attrs.get("error.type") or ""), "exception.message": message})])

    def _build(self, r: CompletionRecord, detail: Detail | None) -> None:
        attrs = self._attributes(r, detail)
        status, events = self._outcome(r, attrs)
        start = r.start_time or time.time() - r.latency
        self._span(request_span_name(r, detail), self._ids(detail), SpanKind.INTERNAL, attrs, events, status,
                   start, start + max(0.0, r.latency))


class PhoenixSink(ArizeSink):
    """The OpenTelemetry sink behind ``callbacks: ["arize_phoenix"]`` (see the module docstring)."""

    name = "arize_phoenix"
    names = ("arize_phoenix",)
    dropped_event = "arize_phoenix_dropped"

    def __init__(self, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None, *,
                 project: str = "default", auto: bool = False, **kw: Any) -> None:
        super().__init__(settings, cfg, on_event, **kw)
        self.project = project
        self._resources: dict[str, Resource] = {}
        if auto:  # started beside ``otel`` by its variables alone: LiteLLM registers it for every request
            self.success = self.failure = True

    def spans_of(self, detail: Detail | None) -> int:
        return 2

    def destination(self, target: LoggingTarget) -> tuple[str, ...] | None:
        return None  # Phoenix has no per-key credentials in LiteLLM: a key's entry goes to the configured one

    def _resource(self, detail: Detail | None) -> Resource | None:
        """The resource of the request's project: its key's ``phoenix_project_name_override``, else
        ``phoenix_project_name`` (LiteLLM reads only the key's metadata on the proxy, never the client's); None
        for the configured project. At most :data:`PROJECTS` projects' resources are kept."""
        meta = detail.key_metadata if detail is not None else None
        if not meta:
            return None
        name = meta.get("phoenix_project_name_override") or meta.get("phoenix_project_name")
        if not isinstance(name, str) or not name.strip() or name.strip() == self.project:
            return None
        name = name.strip()
        got = self._resources.get(name)
        if got is None:
            if len(self._resources) >= PROJECTS:
                self._resources.clear()
            got = self._resources[name] = Resource({**self.cfg.resource, "openinference.project.name": name,
                                                    "model_id": name, "service.name": name})
        return got

    def _build(self, r: CompletionRecord, detail: Detail | None) -> None:
        attrs = self._attributes(r, detail)
        status, events = self._outcome(r, attrs)
        start = r.start_time or time.time() - r.latency
        end = start + max(0.0, r.latency)
        trace_id, span_id, parent, remote, flags = self._ids(detail)
        resource = self._resource(detail)
        self._span(PROXY_SPAN, (trace_id, span_id, parent, remote, flags), SpanKind.SERVER, attrs, events, status,
                   start, end, resource)
        self._span(request_span_name(r, detail), (trace_id, int(new_span_id(), 16), span_id, False, flags),
                   SpanKind.INTERNAL, attrs, events, status, start, end, resource)


def make_arize(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None, *,
               keys_only: bool = False) -> ArizeSink:
    """The sink for ``callbacks: ["arize"]``; raises ``ConfigError`` when it cannot export. ``keys_only``: the
    sink for keys' and teams' own ``arize`` entries when the config names no ``arize`` callback (started by
    ``observe.Exporters.ensure_targets``); without ``ARIZE_API_KEY`` and a space, an entry without its own
    keys has nowhere to go: its spans are dropped and counted."""
    cfg = arize_otlp_settings(settings, env, keys_only=keys_only)
    sink = ArizeSink(settings, cfg, on_event)
    if not cfg.headers:
        sink.fallback = ("a key's arize entry names no arize_api_key and arize_space_key, and ARIZE_API_KEY / "
                         "ARIZE_SPACE_KEY are not set")
    throttle_sdk_logs()
    log.info("arize: exporting spans over %s to %s (project %s)", cfg.protocol, cfg.endpoint,
             cfg.resource.get("service.name"))
    return sink


def make_arize_phoenix(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None, *,
                       auto: bool = False) -> PhoenixSink:
    """The sink for ``callbacks: ["arize_phoenix"]`` (``auto``: started beside ``otel`` by the ``PHOENIX_*``
    variables); raises ``ConfigError`` when it cannot export."""
    cfg, project = phoenix_otlp_settings(settings, env)
    sink = PhoenixSink(settings, cfg, on_event, project=project, auto=auto)
    throttle_sdk_logs()
    log.info("arize_phoenix: exporting spans over %s to %s (project %s)", cfg.protocol, cfg.endpoint, project)
    return sink
