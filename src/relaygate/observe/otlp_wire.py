"""OTLP trace requests written as protobuf wire bytes directly, for the official OTLP/HTTP exporter to send.

What it owns: :func:`encode_request`, which turns the SDK's finished spans (``ReadableSpan``) into the bytes
of an ``ExportTraceServiceRequest`` — the same message the official encoder
(``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``) builds, field for field — and
:class:`WireSpanExporter`, the official ``OTLPSpanExporter`` with that encoder in its ``export``: its
transport (endpoint, headers, TLS, compression, timeout, retries with backoff), its request-size limit and
its own export metrics are the official exporter's, untouched.

Why: the official encoder builds one protobuf message object per attribute value, per attribute, per span
and per event from Python (~5 µs an attribute on this machine), then serialises them: for relaygate's ~60
attributes a request (a request span and an attempt span) that was ~360 µs of CPU a request, in the
exporter's thread but on the worker's core, more than the whole request costs. Writing the wire format
directly costs a fraction of that. The attributes, nearly all of the bytes, are written by ``core.otlp``:
the compiled twin (``ext/_otlp_c.pyx``) into one C buffer, the pure one with a bounded cache of the pairs of
short values seen before (the model, the provider, the key's alias ...).

Equivalence is checked in the tests: for spans of every shape relaygate exports and the edge cases the
official encoder handles (remote parents, trace state, events, links, dropped counts, nested lists and
maps, empty and None values, non-ASCII text, negative and 64-bit integers), the request parsed back with the
official ``opentelemetry-proto`` message equals the official encoder's message. A value the official encoder
refuses (an integer outside int64, text that is not valid Unicode, an unknown type) is left out, as the
official encoder leaves it out, with one logged line a minute (the official logs one per attribute).
Set ``RELAYGATE_OTEL_ENCODER=official`` to export through the stock encoder instead. An exporter release
without the transport this class calls falls back to the stock ``export`` by itself.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from relaygate.core.otlp import encode_attributes, encode_span, length_delimited, varint

__all__ = ["EncodedSpan", "WireSpanExporter", "encode_request", "encode_span", "refused"]

log = logging.getLogger("relaygate.observe")

_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4,
         SpanKind.CONSUMER: 5}
_I = struct.Struct("<I").pack
_last_error = [0.0]
_ld = length_delimited
_varint = varint


def refused(key: str, exc: Exception) -> None:
    """One line a minute at most: a value a client sent (in metadata, say) may be refused on every request. A
    warning, not an error: what a client sends (a ``seed`` past 64 bits) must not page whoever alerts on errors."""
    now = time.monotonic()
    if now - _last_error[0] >= 60.0:
        _last_error[0] = now
        log.warning("otel: attribute %r not encoded (left out; logged once a minute): %s", key, exc)


# tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
_T1, _T2, _T3, _T4 = b"\x0a", b"\x12", b"\x1a", b"\x22"


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """The repeated ``KeyValue`` field ``tag`` of ``attributes`` (``core.otlp``: compiled when built)."""
    return encode_attributes(tag, attributes, refused)


def _trace_state(ctx: Any) -> bytes:
    state = ctx.trace_state
    if not state:
        return b""
    return _ld(_T3, ",".join(f"{k}={v}" for k, v in state.items()).encode())


def _link(link: Any) -> bytes:
    lc = link.context
    body = _ld(_T1, lc.trace_id.to_bytes(16, "big")) + _ld(_T2, lc.span_id.to_bytes(8, "big"))
    body += _attributes(_T4, link.attributes)
    if link.dropped_attributes:
        body += b"\x28" + _varint(link.dropped_attributes)
    return _ld(b"\x6a", body + b"\x35" + _I(0x300 if lc.is_remote else 0x100))


def _span(s: ReadableSpan) -> bytes:
    """A finished SDK span's ``Span`` message (``core.otlp.encode_span``: compiled when built)."""
    ctx = s.get_span_context()
    assert ctx is not None
    parent = s.parent
    status = s.status
    return encode_span(
        ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"), _trace_state(ctx),
        parent.span_id.to_bytes(8, "big") if parent is not None else None,
        0x300 if parent is not None and parent.is_remote else 0x100, s.name or "", _KIND[s.kind], s.start_time or 0,
        s.end_time or 0, s.attributes, s.dropped_attributes,
        [(ev.timestamp or 0, ev.name, ev.attributes, ev.dropped_attributes) for ev in s.events], s.dropped_events,
        b"".join(_link(link) for link in s.links), s.dropped_links,
        (status.status_code.value, status.description or "") if status is not None else None, refused)


class EncodedSpan:
    """A span already encoded (:func:`encode_span`) as it was built, handed to the SDK's batch processor in
    place of a ``ReadableSpan`` when the exporter is :class:`WireSpanExporter`: the processor reads only its
    ``context`` (sampled: the sink decided before building), the exporter its bytes, resource and scope."""

    __slots__ = ("data", "resource", "instrumentation_scope")

    context = SpanContext(1, 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    """What the batch processor checks (``context.trace_flags.sampled``); not the span's own ids."""

    def __init__(self, data: bytes, resource: Any, scope: Any) -> None:
        self.data = data
        self.resource = resource
        self.instrumentation_scope = scope


_resource_cache: dict[int, tuple[Any, bytes]] = {}


def _resource(resource: Any) -> bytes:
    """``ResourceSpans.resource`` (field 1), kept per resource object (a sink has one; the object is held
    with its bytes, so its id is not reused while cached)."""
    got = _resource_cache.get(id(resource))
    if got is None or got[0] is not resource:
        if len(_resource_cache) >= 64:
            _resource_cache.clear()
        got = _resource_cache[id(resource)] = (resource, _ld(_T1, _attributes(_T1, resource.attributes)))
    return got[1]


def _scope(scope: Any) -> bytes:
    """``ScopeSpans.scope`` (field 1): always present, as the official encoder sets it."""
    if scope is None:
        return _ld(_T1, b"")
    body = (_ld(_T1, scope.name.encode()) if scope.name else b"") + (
        _ld(_T2, scope.version.encode()) if scope.version else b"")
    return _ld(_T1, body + _attributes(_T3, scope.attributes))


def encode_request(spans: Sequence[ReadableSpan | EncodedSpan]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` of ``spans``: grouped by resource, then by
    instrumentation scope, by equality and in first-seen order, as the official encoder groups them (each
    distinct object is compared once: hashing a ``Resource`` JSON-encodes its attributes)."""
    same: dict[int, Any] = {}
    """id of a resource or scope object -> the first equal one seen (the group's)."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}

    def canonical(obj: Any, seen: Any) -> Any:
        c = same.get(id(obj))
        if c is None:
            c = same[id(obj)] = next((o for o in seen if o == obj), obj)
        return c

    last: tuple[Any, Any, list[bytes]] | None = None
    """The previous span's resource and scope objects and their group's list (a batch is mostly one sink's)."""
    for s in spans:
        if last is not None and s.resource is last[0] and s.instrumentation_scope is last[1]:
            encoded_list = last[2]
        else:
            resource = canonical(s.resource, (g[0] for g in groups.values()))
            entry = groups.get(id(resource))
            if entry is None:
                entry = groups[id(resource)] = (resource, {})
            scope = s.instrumentation_scope or None
            if scope is not None:
                scope = canonical(scope, (g[0] for g in entry[1].values() if g[0] is not None))
            group = entry[1].get(id(scope))
            if group is None:
                group = entry[1][id(scope)] = (scope, [])
            encoded_list = group[1]
            last = (s.resource, s.instrumentation_scope, encoded_list)
        data = s.data if type(s) is EncodedSpan else _span(s)  # type: ignore[arg-type]
        encoded_list.append(_T2 + _varint(len(data)))
        encoded_list.append(data)
    # written once: each message's head (tag, length) before its parts, the parts joined at the end (joining
    # each level in turn copied every span four more times, ~1 µs a copy of a record's spans)
    out: list[bytes] = []
    for resource, scopes in groups.values():
        body = [_resource(resource)]
        for scope, encoded in scopes.values():
            ss = [_scope(scope), *encoded]
            if scope is not None and scope.schema_url:
                ss.append(_ld(_T3, scope.schema_url.encode()))
            body.append(_T2 + _varint(sum(map(len, ss))))
            body.extend(ss)
        if resource.schema_url:
            body.append(_ld(_T3, resource.schema_url.encode()))
        out.append(_T1 + _varint(sum(map(len, body))))
        out.extend(body)
    return b"".join(out)


class WireSpanExporter(OTLPSpanExporter):
    """The official OTLP/HTTP span exporter, encoding with :func:`encode_request` (see the module docstring)."""

    def takes_encoded(self) -> bool:
        """Whether this exporter's own path is there (the exporter release's transport and metrics), so it
        can send :class:`EncodedSpan` (the stock ``export`` cannot)."""
        client = getattr(self, "_client", None)
        return client is not None and hasattr(client, "export") and getattr(self, "_metrics", None) is not None

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        metrics = getattr(self, "_metrics", None)
        limit = getattr(self, "_max_request_size", None)
        if getattr(self, "_shutdown", True) or client is None or metrics is None or not hasattr(client, "export"):
            # shut down (the stock method says so), or a release we do not know
            if any(isinstance(s, EncodedSpan) for s in spans):
                return SpanExportResult.FAILURE  # the stock encoder cannot read them (sinks check takes_encoded)
            return super().export(spans)  # type: ignore[arg-type]
        with metrics.export_operation(len(spans)) as result:
            try:
                data = encode_request(spans)
            except Exception as error:
                log.error("otel: failed to encode a batch of %d span(s): %s", len(spans), error)
                result.error = error
                return SpanExportResult.FAILURE
            if isinstance(limit, int) and limit > 0 and len(data) > limit:
                log.warning("otel: dropping a span batch of %d bytes, over max_request_size %d", len(data), limit)
                result.error = ValueError(f"span batch of {len(data)} bytes exceeds max_request_size {limit}")
                return SpanExportResult.FAILURE
            sent = client.export(data)
            if not sent.success:
                result.error = sent.error
                code = getattr(sent, "status_code", None)
                result.error_attrs = {"http.response.status_code": code} if code is not None else None
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
