"""OpenTelemetry: one span per request and one per upstream attempt, exported over OTLP with the official SDK.

What it owns: :class:`OtelSink`, the async completion sink behind the ``otel`` callback (LiteLLM's
``callbacks: ["otel"]``), and :func:`otlp_settings`, which reads the exporter's configuration from the
environment. Spans are built after the fact, off the request path, from each
:class:`~relaygate.sinks.record.CompletionRecord` and its :class:`~relaygate.observe.detail.Detail`:

- **The request**: a ``SERVER`` span named ``Received Proxy Server Request``, the span LiteLLM's proxy opens
  for every request and (since it stopped making a ``litellm_request`` child by default) puts the request's
  attributes on, so dashboards and trace searches written against a LiteLLM proxy keep working; with
  ``USE_OTEL_LITELLM_REQUEST_SPAN=true``, as in LiteLLM, the attributes go on an ``INTERNAL`` child named
  ``litellm_request`` (or the request's ``metadata.generation_name``) and the server span keeps the status.
  Its ids are the Detail's: ``trace_id`` / ``span_id`` chosen on the
  request path, parent ``parent_span_id`` (the client's ``traceparent``, a remote parent) when there was
  one. Its attributes follow the GenAI semantic conventions (``gen_ai.operation.name``, ``gen_ai.system``
  and its successor ``gen_ai.provider.name``, ``gen_ai.request.model`` / ``.temperature`` / ``.max_tokens``
  / ``.top_p`` ..., ``gen_ai.response.model`` / ``.id`` / ``.finish_reasons``, ``gen_ai.usage.*``,
  ``gen_ai.response.time_to_first_chunk``, ``error.type``), plus LiteLLM's own (``llm.request.type``,
  ``llm.is_streaming``, ``llm.usage.total_tokens``, ``metadata.*`` from its StandardLoggingPayload
  metadata, ``hidden_params``) and relaygate's (``relaygate.*``: call id, model group, deployment, cache
  hit, retries, fallbacks, cost, outcome, tags). Status ``OK`` when answered (as LiteLLM sets it),
  ``ERROR`` with ``error.type`` (LiteLLM's exception class) and an ``exception`` event when failed, unset
  when the client went away.
- **Each upstream attempt**: a ``CLIENT`` child named ``{gen_ai.operation.name} {model}`` as the GenAI
  conventions name an inference span, with the span id that was sent upstream in that attempt's
  ``traceparent`` (so the provider's spans hang under it), ``server.address`` / ``server.port`` from the
  deployment's ``api_base``, ``http.response.status_code``, ``error.type``, and ``relaygate.attempt.kind``
  (``first``, ``retry`` of the same model group, ``fallback`` to another): retries and fallbacks are
  visible as siblings in order. The answering attempt also carries the response model, id and usage.
- **Content** only when message logging is allowed: not ``turn_off_message_logging``, not
  ``callback_settings.otel.message_logging: false``, not a redacted request. It goes on the request span as
  the conventions' opt-in attributes ``gen_ai.input.messages``, ``gen_ai.system_instructions`` and
  ``gen_ai.output.messages`` (JSON in the conventions' ``{"role", "parts"}`` shape, as LiteLLM writes them).
- A record without a Detail still gives its request span, with fresh ids and no attempts. A request whose
  incoming ``traceparent`` was not sampled (flag bit 0 clear) is not exported, as the SDK's default
  parent-based sampler decides.

Exact ids: each span carries the Detail's ids, parent and times. With the default exporter
(:class:`~relaygate.observe.otlp_wire.WireSpanExporter`) it is encoded as it is built and handed to the SDK's
``BatchSpanProcessor`` (``on_end``) as an :class:`~relaygate.observe.otlp_wire.EncodedSpan`: the exporter's
thread then only joins bytes into the request. By default (the attributes on the proxy span, no length limit,
no backend's own attributes) the compiled ``observe.otel_spans`` writer makes a record's spans without
attribute dicts, byte for byte the spans of the pure path: :func:`request_attributes`' dicts encoded by
``core.otlp.encode_span``. With any other exporter (console, gRPC, the official encoder) spans are the SDK's
``ReadableSpan``. No ``Tracer``: its ``start_span`` validates every attribute again and made spans ~10x dearer.
Per chat record of two spans with content and ~60 attributes (``python -m bench.micro.otel_encode``): ~19 µs
of loop time compiled (~43 µs on the pure path), ~4 µs of the exporter's thread joining them. Sampling
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``: the standard samplers, :func:`sampled`) cuts both
in proportion. ``handle`` yields to the loop every :data:`YIELD_EVERY` records (a batch never holds it long).

Export: the SDK's ``BatchSpanProcessor`` with the official OTLP exporter (HTTP/protobuf, its transport
with :mod:`relaygate.observe.otlp_wire`'s encoder unless ``RELAYGATE_OTEL_ENCODER=official``; gRPC when
the protocol says so and ``opentelemetry-exporter-otlp-proto-grpc`` is installed). The exporter's HTTP call
blocks, so it runs in the processor's own thread, never on the loop. Bounded: the processor's queue holds
``OTEL_BSP_MAX_QUEUE_SIZE`` spans (default ``exporter_queue``). The sink counts the spans handed to the
exporter (a counting wrapper), so it knows how full that queue can be and drops a whole record *before*
it would overflow: a trace is exported whole or not at all, and the processor never drops on its own
(it would drop its oldest span with a warning per span and no count). Every span lost — dropped here,
refused by the receiver, or unexported at close — is counted as ``otel_dropped`` through ``on_event``
and logged at most once a minute; the SDK's own export
loggers (a warning per retry, an error per failed batch) are throttled to one line per message a minute
(:func:`throttle_sdk_logs`). A receiver that is gone or hangs costs the exporter thread its timeout per
batch (``OTEL_EXPORTER_OTLP_TIMEOUT``) and fills the queue; ``handle`` never waits for it.

Configuration (:func:`otlp_settings`, from the environment the sink is given): the standard
``OTEL_EXPORTER_OTLP_[TRACES_]{PROTOCOL,ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE,CLIENT_KEY,
CLIENT_CERTIFICATE}``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``,
``OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT``; LiteLLM's ``OTEL_EXPORTER`` (``otlp_http``, ``otlp_grpc``,
``console``), ``OTEL_ENDPOINT`` and ``OTEL_HEADERS`` as aliases of the standard protocol, endpoint and
headers (the standard names win), ``OTEL_ENVIRONMENT_NAME``, ``OTEL_MODEL_ID``, ``OTEL_TRACER_NAME``. As
LiteLLM, the service name defaults to ``litellm`` and an endpoint without the signal path gets
``/v1/traces`` (one that already ends with it is kept); ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as
given. Timeouts are seconds, as the Python exporter reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.re import parse_env_headers

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.logs import Every
from relaygate.observe.detail import Attempt, Detail
from relaygate.observe.otel_attrs import (
    PROXY_SPAN,
    attempt_attributes,
    operation,
    request_attributes,
    request_span_name,
)
from relaygate.observe.otel_logs import throttle_sdk_logs
from relaygate.observe.otel_spans import record_spans
from relaygate.observe.otlp_wire import EncodedSpan, WireSpanExporter, encode_span, refused
from relaygate.observe.standard import detail_of
from relaygate.observe.tracecontext import new_span_id, new_trace_id
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DROPPED_EVENT", "OtelSink", "OtlpSettings", "make_otel", "otlp_settings", "throttle_sdk_logs"]

log = logging.getLogger("relaygate.otel")

DROPPED_EVENT = "otel_dropped"
"""``on_event`` name counting spans that will never reach the receiver."""
YIELD_EVERY = 8
"""Records built between two yields to the loop in :meth:`OtelSink.handle`."""
NAMES = ("otel", "opentelemetry")
"""Callback names of this exporter."""

_ENV_SOURCE = "environment"
_PROTOCOLS = {"http/protobuf": "http/protobuf", "otlp_http": "http/protobuf", "http": "http/protobuf",
              "http/json": "http/protobuf", "grpc": "grpc", "otlp_grpc": "grpc", "console": "console"}
"""Accepted protocol values (standard, and LiteLLM's ``OTEL_EXPORTER`` names) -> the exporter used."""
_SIGNALS = ("/v1/traces", "/v1/logs", "/v1/metrics")


@dataclass(frozen=True)
class OtlpSettings:
    """The exporter's configuration, read once from the environment (:func:`otlp_settings`)."""

    protocol: str = "http/protobuf"
    """``http/protobuf``, ``grpc`` or ``console``."""
    endpoint: str = "http://localhost:4318/v1/traces"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    """Seconds per export request (the exporter retries within it)."""
    compression: str = "none"
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None
    resource: dict[str, str] = field(default_factory=dict)
    tracer_name: str = "litellm"
    schedule_delay_ms: float = 5000.0
    max_export_batch: int = 512
    max_queue: int = 10_000
    attribute_length: int | None = None
    """Longest string attribute value kept (``None``: no limit)."""
    sampler: str = "parentbased_always_on"
    """``OTEL_TRACES_SAMPLER``: ``always_on``, ``always_off``, ``traceidratio`` or their ``parentbased_`` forms."""
    ratio: float = 1.0
    """``OTEL_TRACES_SAMPLER_ARG`` for the ratio samplers (0..1)."""
    encoder: str = "wire"
    """``RELAYGATE_OTEL_ENCODER``: ``wire`` (:mod:`relaygate.observe.otlp_wire`, the default) or ``official``
    (the exporter's stock protobuf encoder, ~5x the CPU per span); HTTP only (gRPC sends the stock way)."""
    request_span: bool = False
    """LiteLLM's ``USE_OTEL_LITELLM_REQUEST_SPAN``: the request's attributes go on a ``litellm_request`` child
    of the ``Received Proxy Server Request`` span instead of on that span itself."""


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(_ENV_SOURCE, name, f"expected an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(_ENV_SOURCE, name, f"expected a non-negative integer, got {raw!r}")
    return value


def _traces_path(endpoint: str) -> str:
    """LiteLLM's endpoint normalisation: the traces signal path is appended unless it is there."""
    base = endpoint.rstrip("/")
    if base.endswith("/v1/traces"):
        return base
    for other in _SIGNALS[1:]:
        if base.endswith(other):
            return base[: -len(other)] + "/v1/traces"
    return base + ("/traces" if base.endswith("/v1") else "/v1/traces")


def _resource_attributes(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(","):
        key, eq, value = item.partition("=")
        key = unquote(key).strip()
        if not eq or not key:
            if item.strip():
                log.warning("OTEL_RESOURCE_ATTRIBUTES: %r is not key=value: ignored", item.strip())
            continue
        out[key] = unquote(value).strip()
    return out


_SAMPLERS = frozenset({"always_on", "always_off", "traceidratio", "parentbased_always_on",
                       "parentbased_always_off", "parentbased_traceidratio"})


def sampled(cfg: OtlpSettings, trace_id: int, parent_flags: int | None) -> bool:
    """The standard samplers' decision for a request span: a ``parentbased_`` sampler follows a remote
    parent's sampled flag; ``traceidratio`` keeps a trace when the low 64 bits of its id fall under
    ``ratio`` of their range (the SDK's ``TraceIdRatioBased`` rule, so every service sampling the same
    trace at the same ratio keeps it alike)."""
    name = cfg.sampler
    if name.startswith("parentbased_"):
        if parent_flags is not None:
            return bool(parent_flags & 1)
        name = name[len("parentbased_"):]
    if name == "always_on":
        return True
    if name == "always_off":
        return False
    return (trace_id & 0xFFFFFFFFFFFFFFFF) < round(cfg.ratio * (1 << 64))


def otlp_settings(settings: ObserveSettings, env: Mapping[str, str]) -> OtlpSettings:
    """The exporter configuration in ``env`` (see the module essay); raises ``ConfigError`` for a value
    that cannot work (an unknown protocol, an endpoint that is not a URL, a size that is not a number)."""
    got = _first(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER")
    protocol = "http/protobuf"
    if got is not None:
        name, raw = got
        chosen = _PROTOCOLS.get(raw.lower())
        if chosen is None:
            raise ConfigError(_ENV_SOURCE, name, f"unknown OTLP protocol {raw!r} (expected http/protobuf or grpc;"
                                                 " LiteLLM's otlp_http, otlp_grpc and console are accepted too)")
        if raw.lower() == "http/json":
            log.warning("%s=http/json: the OpenTelemetry Python exporter sends http/protobuf only; using it", name)
        protocol = chosen

    endpoint = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318/v1/traces"
    exact = _first(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = _first(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_ENDPOINT")
    if exact is not None:
        endpoint = exact[1]
    elif base is not None:
        endpoint = base[1] if protocol == "grpc" else _traces_path(base[1])
    where = exact or base
    if protocol == "http/protobuf" and not endpoint.lower().startswith(("http://", "https://")):
        raise ConfigError(_ENV_SOURCE, where[0] if where else "OTEL_EXPORTER_OTLP_ENDPOINT",
                          f"expected an http:// or https:// URL, got {endpoint!r}")

    hdrs = _first(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS")
    headers = dict(parse_env_headers(hdrs[1], liberal=True)) if hdrs is not None else {}

    timeout = 10.0
    got = _first(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    if got is not None:
        try:
            timeout = float(got[1])
        except ValueError:
            raise ConfigError(_ENV_SOURCE, got[0], f"expected seconds, got {got[1]!r}") from None
        if not timeout > 0:
            raise ConfigError(_ENV_SOURCE, got[0], f"expected a positive number of seconds, got {got[1]!r}")

    compression = "none"
    got = _first(env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
    if got is not None:
        compression = got[1].lower()
        if compression not in ("none", "gzip", "deflate") or (protocol == "grpc" and compression == "deflate"):
            log.warning("%s=%r is not a supported compression: sending uncompressed", got[0], got[1])
            compression = "none"

    def path(*names: str) -> str | None:
        found = _first(env, *names)
        return found[1] if found is not None else None

    resource = {"service.name": "litellm",
                "deployment.environment": env.get("OTEL_ENVIRONMENT_NAME", "").strip() or "production"}
    resource.update(_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        resource["service.name"] = service
    resource.setdefault("model_id", env.get("OTEL_MODEL_ID", "").strip() or resource["service.name"])
    resource.update({"telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
                     "telemetry.sdk.version": sdk_version})

    max_queue = _int(env, "OTEL_BSP_MAX_QUEUE_SIZE", max(1, settings.exporter_queue)) or 1
    batch = min(_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) or 1, max_queue)
    delay = _int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000)
    length = _int(env, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", None)
    if length is None:
        length = _int(env, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", None)
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if sampler not in _SAMPLERS:
        raise ConfigError(_ENV_SOURCE, "OTEL_TRACES_SAMPLER", f"unknown sampler {sampler!r} (expected one of "
                                                               f"{', '.join(sorted(_SAMPLERS))})")
    ratio = 1.0
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if arg and sampler.endswith("traceidratio"):
        try:
            ratio = float(arg)
        except ValueError:
            raise ConfigError(_ENV_SOURCE, "OTEL_TRACES_SAMPLER_ARG", f"expected a number in 0..1, got {arg!r}") \
                from None
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(_ENV_SOURCE, "OTEL_TRACES_SAMPLER_ARG", f"expected a number in 0..1, got {arg!r}")
    encoder = env.get("RELAYGATE_OTEL_ENCODER", "").strip().lower() or "wire"
    if encoder not in ("wire", "official"):
        raise ConfigError(_ENV_SOURCE, "RELAYGATE_OTEL_ENCODER", f"expected wire or official, got {encoder!r}")
    return OtlpSettings(
        sampler=sampler, ratio=ratio, encoder=encoder,
        request_span=env.get("USE_OTEL_LITELLM_REQUEST_SPAN", "").strip().lower() in ("true", "1", "yes", "on"),
        protocol=protocol, endpoint=endpoint, headers=headers, timeout=timeout, compression=compression,
        certificate=path("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        client_key=path("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        client_certificate=path("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        resource=resource, tracer_name=env.get("OTEL_TRACER_NAME", "").strip() or "litellm",
        schedule_delay_ms=float(delay if delay is not None else 5000), max_export_batch=batch,
        max_queue=max_queue, attribute_length=length)


def _exporter(cfg: OtlpSettings) -> SpanExporter:
    """The official exporter ``cfg`` names (imported here: only the configured one is loaded)."""
    if cfg.protocol == "console":
        return ConsoleSpanExporter()
    if cfg.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ConfigError(_ENV_SOURCE, "OTEL_EXPORTER_OTLP_PROTOCOL",
                              "grpc needs the opentelemetry-exporter-otlp-proto-grpc package, which is not "
                              f"installed ({exc}); install it or use http/protobuf") from None
        from grpc import Compression as GrpcCompression  # type: ignore[import-untyped]
        grpc_exporter: SpanExporter = GrpcExporter(
            endpoint=cfg.endpoint, headers=cfg.headers or None, timeout=cfg.timeout,
            compression=GrpcCompression.Gzip if cfg.compression == "gzip" else GrpcCompression.NoCompression)
        return grpc_exporter
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    compression = {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(cfg.compression,
                                                                                Compression.NoCompression)
    cls = WireSpanExporter if cfg.encoder == "wire" else OTLPSpanExporter
    return cls(endpoint=cfg.endpoint, headers=cfg.headers, timeout=cfg.timeout, compression=compression,
               certificate_file=cfg.certificate, client_key_file=cfg.client_key,
               client_certificate_file=cfg.client_certificate)


class _Counting(SpanExporter):
    """The real exporter, counting the spans handed to it and those it failed to deliver.

    Written only by the processor's thread (its exports are serialised by its lock); read on the loop."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.handed = 0
        self.failed = 0
        self.done = 0
        """Spans whose export returned (delivered or failed)."""
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        self.handed += n
        try:
            result = self.inner.export(spans)
        except Exception:
            self.failed += n
            self.done += n
            raise
        if result is not SpanExportResult.SUCCESS:
            self.failed += n
        self.done += n
        return result

    def shutdown(self) -> None:
        """Stop the exporter (once): an export in flight gives up its retries."""
        if not self._shut:
            self._shut = True
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_OK = Status(StatusCode.OK)
_KINDS = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
"""OTLP's ``Span.SpanKind`` numbers."""


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


async def _in_thread(fn: Any, timeout: float, name: str) -> bool:
    """Run the blocking ``fn`` in a daemon thread; ``True`` when it finished within ``timeout`` seconds.

    Not the loop's default executor: a hung receiver must not hold ``asyncio.run``'s executor shutdown."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("otel: %s failed", name)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(finished)

    threading.Thread(target=run, name=f"relaygate-otel-{name}", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        return False
    return True


class OtelSink:
    """Completion records to OpenTelemetry spans over OTLP (an async sink; see the module essay)."""

    name = "otel"
    names: tuple[str, ...] = NAMES
    """The callback names (and keys' ``logging`` target names) this sink exports for."""
    dropped_event = DROPPED_EVENT
    decorates = False
    """True: :meth:`decorate` adds the backend's own attributes (``langfuse_otel``); ``otel`` makes no call."""

    def __init__(self, settings: ObserveSettings, cfg: OtlpSettings, on_event: OnEvent | None = None, *,
                 exporter: SpanExporter | None = None, log_interval: float = 60.0) -> None:
        self.cfg = cfg
        self.success = any(n in settings.success_callbacks for n in self.names)
        self.failure = any(n in settings.failure_callbacks for n in self.names)
        cb = next((c for n in self.names if (c := settings.callback_settings.get(n))), None) or {}
        self.message_logging = not settings.turn_off_message_logging and cb.get("message_logging", True) is not False
        """Content may be exported (per request also: not redacted)."""
        self.redact_key_info = settings.redact_user_api_key_info
        self.on_event = on_event
        self.exporter = _Counting(exporter if exporter is not None else _exporter(cfg))
        inner = self.exporter.inner
        self.direct = isinstance(inner, WireSpanExporter) and inner.takes_encoded()
        """Spans are encoded as they are built (:class:`EncodedSpan`), not handed over as ``ReadableSpan``."""
        self.fast = record_spans if self.direct and not (self.decorates or cfg.request_span) and \
            cfg.attribute_length is None else None
        """The compiled writer of the default spans (``observe.otel_spans``); None: built here, attribute dicts."""
        self.resource = Resource(cfg.resource)
        self.scope = InstrumentationScope(cfg.tracer_name)
        self.processor = BatchSpanProcessor(self.exporter, max_queue_size=cfg.max_queue,
                                            schedule_delay_millis=cfg.schedule_delay_ms,
                                            max_export_batch_size=cfg.max_export_batch)
        self.ended = 0
        """Spans handed to the processor."""
        self.built = 0
        """Spans built and handed on by :meth:`_span` (what a record whose building failed midway handed)."""
        self.dropped = 0
        """Spans counted as ``otel_dropped``."""
        self._failed_seen = 0
        self._unlogged = 0
        self._why: set[str] = set()
        self._droplog = Every(log_interval)
        self._closed = False
        self.roots_sampled = cfg.sampler in ("always_on", "parentbased_always_on")
        """A request without an incoming parent is always sampled (the default sampler): no id is read to decide."""
        self._emit: Any = None
        self._emit_for: Any = None

    # -- queue interface ----------------------------------------------------------------------------

    async def handle(self, batch: Sequence[CompletionRecord]) -> None:
        """Build the spans of every record that asks for them and queue them for export; never waits on
        the exporter (a full export queue drops the record, counted)."""
        for i, record in enumerate(batch):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if self._closed or not self.wanted(record):
                continue
            detail = detail_of(record)
            if detail is not None and not (self.roots_sampled and not detail.parent_span_id) and not sampled(
                    self.cfg, int(detail.trace_id, 16), detail.trace_flags if detail.parent_span_id else None):
                continue
            spans = self.spans_of(detail)
            if self.ended - self.exporter.handed + spans > self.cfg.max_queue:
                self._drop(spans, "the export queue is full")
                continue
            self.ended += spans
            before = self.built
            try:
                self._build(record, detail)
            except Exception as exc:  # that record only (a value no span can hold): the batch goes on
                lost = spans - (self.built - before)
                self.ended -= lost
                self._drop(lost, f"a record's spans could not be built ({type(exc).__name__})")
        self._collect()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Export what is queued now (in a thread); ``True`` when done within ``timeout`` seconds."""
        ok = await _in_thread(self.processor.force_flush, timeout, "flush")
        self._collect()
        return ok

    async def aclose(self, timeout: float = 5.0) -> None:
        """Export what is queued (within ``timeout`` seconds) and stop the exporter; what could not be
        sent by then is counted as dropped."""
        if self._closed:
            return
        self._closed = True
        if not await _in_thread(self.processor.shutdown, timeout, "shutdown"):
            self.exporter.shutdown()  # a hung or retrying export gives up; the processor's thread then ends
        self._collect()
        left = self.ended - self.exporter.done  # still queued, or in an export that did not return
        if left > 0:
            self._drop(left, "not exported at shutdown")
        if self._unlogged:
            self._log_drops()

    def discard(self) -> None:
        """Stop the exporter thread without sending anything (``observe.check`` builds a sink to validate)."""
        self._closed = True
        self.processor.shutdown()  # type: ignore[no-untyped-call]

    # -- filtering, building, counting --------------------------------------------------------------

    def wanted(self, record: CompletionRecord) -> bool:
        """Whether the record is exported: the callbacks' success / failure lists, or the key's or team's
        own ``metadata.logging`` target named ``otel``; never a record whose team turned logging off."""
        if record.no_logging:
            return False
        ok = record.outcome is Outcome.OK
        if self.success if ok else self.failure:
            return True
        detail = detail_of(record)
        if detail is None or not detail.logging:
            return False
        kind = "success" if ok else "failure"
        return any(t.callback_name.lower() in self.names and kind in t.callback_type for t in detail.logging)

    def spans_of(self, detail: Detail | None) -> int:
        """How many spans :meth:`_build` makes of a record (counted against the export queue first)."""
        return 1 + self.cfg.request_span + (len(detail.attempts) if detail is not None else 0)

    def _span(self, name: str, ids: tuple[int, int, int | None, bool, int], kind: SpanKind,
              attributes: dict[str, Any], events: Sequence[tuple[str, dict[str, Any]]], status: Status,
              start: float, end: float, resource: Resource | None = None) -> None:
        """One finished span, handed to the batch processor (which exports it from its own thread). ``ids``:
        trace id, span id, parent span id (None: a root), whether the parent is remote, trace flags.

        With the wire exporter (the default) the span is encoded here, as an :class:`EncodedSpan`, straight
        from these values: no ``ReadableSpan`` is built, and the exporter's thread only joins bytes."""
        limit = self.cfg.attribute_length
        if limit is not None:
            attributes = {k: v[:limit] if isinstance(v, str) else v for k, v in attributes.items()}
        trace_id, span_id, parent_id, remote, flags = ids
        t0, t1 = _ns(start), _ns(end)
        if self.direct:
            code = status.status_code.value
            self.processor.on_end(EncodedSpan(encode_span(  # type: ignore[arg-type]
                trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"), b"",
                parent_id.to_bytes(8, "big") if parent_id is not None else None,
                0x300 if parent_id is not None and remote else 0x100, name, _KINDS[kind], t0, t1, attributes, 0,
                [(t1, ev_name, ev_attrs, 0) for ev_name, ev_attrs in events], 0, b"", 0,
                (code, status.description or ""), refused), resource or self.resource, self.scope))
            self.built += 1
            return
        trace_flags = TraceFlags(flags)
        parent = None if parent_id is None else SpanContext(trace_id, parent_id, is_remote=remote,
                                                            trace_flags=trace_flags)
        self.processor.on_end(ReadableSpan(
            name, context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=trace_flags), parent=parent,
            resource=resource or self.resource, attributes=attributes,
            events=[Event(ev_name, ev_attrs, t1) for ev_name, ev_attrs in events], kind=kind, status=status,
            start_time=t0, end_time=t1, instrumentation_scope=self.scope))
        self.built += 1

    def _build(self, r: CompletionRecord, detail: Detail | None) -> None:
        logging_ok = self.message_logging and not (detail is not None and detail.redacted)
        if self.fast is not None and detail is not None:
            emit = self._emit if self._emit_for is self.processor else self._emitter()
            for data in self.fast(r, detail, logging_ok, self.redact_key_info, refused):
                emit(EncodedSpan(data, self.resource, self.scope))
                self.built += 1
            return
        attrs, events, status = request_attributes(r, detail, message_logging=logging_ok,
                                                   redact_key_info=self.redact_key_info)
        if self.decorates:
            self.decorate(r, detail, attrs, logging_ok)
        start = r.start_time or time.time() - r.latency
        end = start + max(0.0, r.latency)
        parent_id: int | None = None
        remote = False
        if detail is not None:
            trace_id, span_id = int(detail.trace_id, 16), int(detail.span_id, 16)
            flags = detail.trace_flags & 0xFF
            if detail.parent_span_id:
                parent_id, remote = int(detail.parent_span_id, 16), True
        else:
            trace_id, span_id, flags = int(new_trace_id(), 16), int(new_span_id(), 16), TraceFlags.SAMPLED
        if detail is not None and detail.attempts:
            op = operation(r.route)
            last = len(detail.attempts) - 1
            prev: Attempt | None = None
            for n, a in enumerate(detail.attempts):
                self._attempt(r, detail, a, n, prev, n == last, op, (trace_id, span_id, flags))
                prev = a
        if not self.cfg.request_span:  # LiteLLM's proxy: the attributes on its request span itself
            self._span(PROXY_SPAN, (trace_id, span_id, parent_id, remote, flags), SpanKind.SERVER, attrs, events,
                       status, start, end)
            return
        self._span(PROXY_SPAN, (trace_id, span_id, parent_id, remote, flags), SpanKind.SERVER,
                   {"http.response.status_code": r.status}, (), status, start, end)
        self._span(request_span_name(r, detail), (trace_id, int(new_span_id(), 16), span_id, False, flags),
                   SpanKind.INTERNAL, attrs, events, status, start, end)

    def _emitter(self) -> Any:
        """What hands an encoded span to the processor: its queue's own ``emit`` (the SDK's batch processor's
        ``on_end`` only checks the sampled flag, which an encoded span always has, then calls it), else
        ``on_end``; looked up again whenever the processor is another object."""
        p = self.processor
        emit = getattr(getattr(p, "_batch_processor", None), "emit", None)
        self._emit = emit if isinstance(p, BatchSpanProcessor) and callable(emit) else p.on_end
        self._emit_for = p
        return self._emit

    def decorate(self, r: CompletionRecord, detail: Detail | None, attrs: dict[str, Any], content: bool) -> None:
        """Add a backend's own attributes to the request's (``content``: messages may be exported); none here."""

    def _attempt(self, r: CompletionRecord, detail: Detail, a: Attempt, n: int, prev: Attempt | None,
                 last: bool, op: str, parent: tuple[int, int, int]) -> None:
        attrs, failed = attempt_attributes(r, detail, a, n, prev, last, op)
        span_id = int(a.span_id, 16) if a.span_id else int(new_span_id(), 16)
        name = f"{op} {a.upstream_model}" if a.upstream_model else op
        start = a.start or r.start_time
        status = Status(StatusCode.ERROR, a.error_message or None) if failed else _OK
        trace_id, parent_id, flags = parent
        self._span(name, (trace_id, span_id, parent_id, False, flags), SpanKind.CLIENT, attrs, (), status, start,
                   max(a.end, start))

    def _collect(self) -> None:
        """Count the spans the exporter failed to deliver since the last look (read on the loop)."""
        failed = self.exporter.failed
        if failed > self._failed_seen:
            n, self._failed_seen = failed - self._failed_seen, failed
            self._drop(n, "the receiver did not take them")

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        self._unlogged += n
        self._why.add(why)
        if self.on_event is not None:
            self.on_event(self.dropped_event, n)
        if self._droplog.ready() is not None:
            self._log_drops()

    def _log_drops(self) -> None:
        log.warning("%s: %d span(s) dropped since the last report (%s); %d in total; exporting to %s",
                    self.name, self._unlogged, ", ".join(sorted(self._why)), self.dropped, self.cfg.endpoint)
        self._unlogged = 0
        self._why.clear()


def make_otel(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None = None) -> OtelSink:
    """The OpenTelemetry sink for ``callbacks: ["otel"]``, exporting as ``env`` configures it (see
    :func:`otlp_settings`). Raises ``ConfigError`` for an unusable configuration (unknown protocol, gRPC
    without its exporter package, an endpoint that is not a URL)."""
    cfg = otlp_settings(settings, env)
    sink = OtelSink(settings, cfg, on_event)
    throttle_sdk_logs()
    log.info("otel: exporting spans over %s to %s (service %s)", cfg.protocol, cfg.endpoint,
             cfg.resource.get("service.name"))
    return sink
