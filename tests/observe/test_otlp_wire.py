"""relaygate.observe.otlp_wire: the same ExportTraceServiceRequest as the official encoder, and the official
exporter sending it.

Each case encodes spans both ways and parses ours back with the official ``opentelemetry-proto`` message:
the two messages must be equal (every field, every attribute, in order). The spans are those ``OtelSink``
builds for many kinds of record, and hand-built ones for what relaygate never sends but the encoder must
still get right. The cost (build, official encoder, this encoder) is printed by
``python -m bench.micro.otel_encode``: on this machine ~240 against ~42 µs per record of two spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from relaygate.config.errors import ConfigError
from relaygate.observe import otlp_wire
from relaygate.observe.otel import OtelSink, _exporter, otlp_settings
from relaygate.observe.otlp_wire import EncodedSpan, WireSpanExporter, encode_request
from relaygate.sinks.record import Outcome
from tests.observe.otlp_receiver import Receiver
from tests.observe.test_otel_export import BOTH, PARENT, SERVER, attempt, detail, record, with_detail


@pytest.fixture(autouse=True)
def _no_process_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "RELAYGATE_OTEL_")):
            monkeypatch.delenv(name)


def same_as_official(spans: list[Any]) -> bytes:
    ours = encode_request(spans)
    official = encode_spans(spans)
    parsed = ExportTraceServiceRequest.FromString(ours)
    assert parsed == official, (parsed, official)
    assert len(ours) == len(official.SerializeToString())
    return ours


class _Collect:
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span)


class _Nowhere(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def built(records: list[Any], **env: str) -> list[Any]:
    """The spans OtelSink builds for ``records`` (its own building code, without the processor)."""
    cfg = otlp_settings(BOTH, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **env})
    sink = OtelSink(BOTH, cfg, exporter=_Nowhere())
    sink.processor.shutdown()  # type: ignore[no-untyped-call]
    collect = _Collect()
    sink.processor = collect  # type: ignore[assignment]
    for r in records:
        d = r.extra.get("observe") if isinstance(r.extra, dict) else None
        sink._build(r, d)
    return collect.spans


def test_every_kind_of_record_the_sink_builds() -> None:
    records = [
        with_detail(detail()),
        with_detail(detail(parent_span_id=PARENT)),  # a remote parent: the is-remote flag bits
        with_detail(detail(attempts=[attempt(status=500, error_message="upstream 500"),
                                     attempt(span_id="2" * 16, start=1_700_000_000.5),
                                     attempt(span_id="3" * 16, model_group="other", upstream_model="claude")])),
        with_detail(detail(error_message="bad key"), status=401, outcome=Outcome.ERROR, error_type="AuthenticationError"),
        with_detail(detail(redacted=True, input=None, output=None)),
        with_detail(detail(), stream=True, ttft=0.25, cache_read_tokens=3),
        with_detail(detail(input={"temperature": "hot", "max_tokens": True, "top_p": float("inf"),
                                  "metadata": {"x": [1, {"y": None}]}},
                           metadata={"generation_name": "g", "nested": {"a": [1, 2.5, True, None]}})),
        with_detail(detail(input={"messages": [{"role": "user", "content": "héllo wörld ✓ 日本"}]})),
        record(call_id="no-detail"),
        record(call_id="client-gone", outcome=Outcome.CLIENT_GONE, status=499),
        record(route="embeddings", call_id="emb", prompt_tokens=7, completion_tokens=0),
    ]
    spans = built(records)
    assert len(spans) == 21  # a request span each, an attempt span each attempt (3 in the third)
    same_as_official(spans)
    same_as_official(spans[:1])
    same_as_official(built(records, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="5"))


def test_the_cache_never_mixes_types_or_fields() -> None:
    # True == 1 == 1.0 in a dict: the cache keys on the type as well, and on the field the pair sits in
    kinds: list[Any] = [True, 1, 1.0, "1", False, 0, 0.0, ""]
    spans = [_span(attributes={"v": v}, events=[Event("e", {"v": v}, 5)]) for v in kinds]
    for _ in range(2):  # the second time every pair comes from the cache
        same_as_official(spans)
        for s in spans:
            same_as_official([s])


RES = Resource({"service.name": "svc", "n": 3})
SCOPE = InstrumentationScope("lib", "1.2", "https://schema/1", {"scope.attr": "x"})


def _span(name: str = "op", *, trace_id: int = 0xABC, span_id: int = 0x123, parent: SpanContext | None = None,
          resource: Resource = RES, scope: InstrumentationScope | None = SCOPE, **kw: Any) -> ReadableSpan:
    ctx = kw.pop("context", None) or SpanContext(trace_id, span_id, False, TraceFlags(1))
    values: dict[str, Any] = dict(kind=SpanKind.INTERNAL, start_time=1, end_time=2, status=Status(StatusCode.UNSET))
    values.update(kw)
    return ReadableSpan(name, context=ctx, parent=parent, resource=resource, instrumentation_scope=scope,
                        **values)


def test_edge_cases_the_official_encoder_handles() -> None:
    remote = SpanContext(0xABC, 0x999, True, TraceFlags(1))
    local = SpanContext(0xABC, 0x998, False, TraceFlags(1))
    state = TraceState([("vendor", "v1"), ("other", "x=y")])
    big = (1 << 63) - 1
    spans = [
        _span(),
        _span("", kind=SpanKind.SERVER, start_time=0, end_time=0),  # defaults left out
        _span("remote", parent=remote, kind=SpanKind.CLIENT),
        _span("local", parent=local, kind=SpanKind.PRODUCER),
        _span("state", context=SpanContext(0xABD, 0x1, False, TraceFlags(1), state), kind=SpanKind.CONSUMER),
        _span("values", attributes={
            "s": "text", "empty": "", "uni": "ü ✓ 𝄞", "long": "x" * 5000, "i": -5, "max": big, "min": -(1 << 63),
            "f": -2.5, "b": False, "bytes": b"\x00\xff", "none": None, "list": ["a", "b"], "ints": (1, 2, 3),
            "mixed": [1, "a", None, [2.5]], "map": {"k": {"nested": [1]}, "n": None}, "": "empty key",
        }),
        _span("events", events=[Event("first", {"a": 1}, 10), Event("", None, 0), Event("third", {}, 12)],
              status=Status(StatusCode.ERROR, "it broke")),
        _span("links", links=[Link(remote, {"l": "x"}), Link(local)], status=Status(StatusCode.OK)),
        _span("no scope", scope=None),
        _span("other resource", resource=Resource({"service.name": "b"}, "https://schema/r")),
        _span("equal resource, other object", resource=Resource({"service.name": "svc", "n": 3})),
        _span("scope without version", scope=InstrumentationScope("lib2")),
        _span("uint ids", trace_id=(1 << 128) - 1, span_id=(1 << 64) - 1),
    ]
    same_as_official(spans)
    for s in spans:
        same_as_official([s])


def test_dropped_counts() -> None:
    from opentelemetry.attributes import BoundedAttributes

    attrs = BoundedAttributes(maxlen=2, attributes={"a": 1, "b": 2, "c": 3, "d": 4}, immutable=True)
    ev_attrs = BoundedAttributes(maxlen=1, attributes={"a": 1, "b": 2}, immutable=True)
    span = _span(attributes=attrs, events=[Event("e", ev_attrs, 3)],
                 links=[Link(SpanContext(1, 2, False), BoundedAttributes(maxlen=1, attributes={"x": 1, "y": 2}))])
    assert span.dropped_attributes == 2
    same_as_official([span])


def test_values_the_official_encoder_refuses_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    otlp_wire._last_error[0] = -1e9
    span = _span(attributes={"ok": 1, "huge": 1 << 64, "surrogate": "a\ud800b", "object": object(), "after": "x"})
    with caplog.at_level(logging.WARNING, logger="relaygate.observe"):
        parsed = ExportTraceServiceRequest.FromString(encode_request([span]))
        encode_request([span])
    assert parsed == encode_spans([span])
    got = parsed.resource_spans[0].scope_spans[0].spans[0]
    assert [kv.key for kv in got.attributes] == ["ok", "after"]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "relaygate.observe"]
    assert len(lines) == 1 and "not encoded" in lines[0][1]  # once a minute, not once per attribute
    assert lines[0][0] == logging.WARNING  # a client's value: never an error line


# -- the exporter --------------------------------------------------------------------------------------


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_the_official_exporter_class_is_chosen_by_setting(rx: Receiver) -> None:
    assert type(_exporter(otlp_settings(BOTH, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url}))) is WireSpanExporter
    official = _exporter(otlp_settings(BOTH, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
                                              "RELAYGATE_OTEL_ENCODER": "official"}))
    assert type(official) is OTLPSpanExporter
    with pytest.raises(ConfigError) as e:
        otlp_settings(BOTH, {"RELAYGATE_OTEL_ENCODER": "fast"})
    assert e.value.field == "RELAYGATE_OTEL_ENCODER"


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_wire_exporter_sends_through_the_official_transport(rx: Receiver, compression: str) -> None:
    spans = built([with_detail(detail()), record(call_id="plain")])
    exporter = WireSpanExporter(endpoint=rx.url + "/v1/traces", compression={
        "none": None, "gzip": _compression("Gzip"), "deflate": _compression("Deflate")}[compression])
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    got = rx.wait_spans(3)
    assert {s.span_id for s in got} >= {SERVER}
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE  # shut down: refused, as the official does


def _compression(name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression

    return getattr(Compression, name)


def test_wire_exporter_reports_a_refusing_receiver(rx: Receiver) -> None:
    rx.fail = 400
    exporter = WireSpanExporter(endpoint=rx.url + "/v1/traces", timeout=2)
    assert exporter.export(built([record()])) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_wire_exporter_falls_back_to_the_stock_export_on_an_unknown_release(
        rx: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def stock(self: Any, spans: Any) -> SpanExportResult:
        calls.append(len(spans))
        return SpanExportResult.SUCCESS

    monkeypatch.setattr(OTLPSpanExporter, "export", stock)
    exporter = WireSpanExporter(endpoint=rx.url + "/v1/traces")
    assert exporter.export(built([record()])) is SpanExportResult.SUCCESS
    assert calls == []  # ours sent it
    assert rx.wait_spans(1)
    del exporter._client  # as a release without the transport attribute would be
    assert exporter.export(built([record(call_id="again")])) is SpanExportResult.SUCCESS
    assert calls == [1]  # the stock method ran instead


def test_wire_exporter_keeps_the_official_request_size_limit(rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    exporter = WireSpanExporter(endpoint=rx.url + "/v1/traces", max_request_size=200)
    with caplog.at_level(logging.WARNING, logger="relaygate.observe"):
        assert exporter.export(built([with_detail(detail())])) is SpanExportResult.FAILURE
    assert rx.requests == 0 and any("max_request_size 200" in r.getMessage() for r in caplog.records)
    exporter.shutdown()


def built_encoded(records: list[Any], **env: str) -> list[Any]:
    """What OtelSink hands its processor with the wire exporter: spans encoded as they are built."""
    cfg = otlp_settings(BOTH, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", **env})
    sink = OtelSink(BOTH, cfg, exporter=WireSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    assert sink.direct
    sink.processor.shutdown()  # type: ignore[no-untyped-call]
    collect = _Collect()
    sink.processor = collect  # type: ignore[assignment]
    for r in records:
        sink._build(r, r.extra.get("observe") if isinstance(r.extra, dict) else None)
    return collect.spans


def test_spans_encoded_as_built_are_the_official_encoders_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink's direct path (no ``ReadableSpan``) sends, byte for byte, what the official encoder makes of
    the same records built as SDK spans: every shape of record, and the attribute length limit."""
    from relaygate.observe import otel

    monkeypatch.setattr(otel, "new_trace_id", lambda: "ab" * 16)  # a record without detail: fresh ids, the
    monkeypatch.setattr(otel, "new_span_id", lambda: "cd" * 8)  # same in both builds
    records = [
        with_detail(detail()),
        with_detail(detail(parent_span_id=PARENT)),
        with_detail(detail(attempts=[attempt(status=500, error_message="upstream 500"),
                                     attempt(span_id="2" * 16, start=1_700_000_000.5),
                                     attempt(span_id="3" * 16, model_group="other", upstream_model="claude")])),
        with_detail(detail(error_message="bad key"), status=401, outcome=Outcome.ERROR, error_type="AuthenticationError"),
        with_detail(detail(input={"messages": [{"role": "user", "content": "héllo wörld ✓ 日本"}]})),
        record(call_id="client-gone", outcome=Outcome.CLIENT_GONE, status=499),
        record(route="embeddings", call_id="emb", prompt_tokens=7, completion_tokens=0),
    ]
    for env in ({}, {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5"}):
        encoded = built_encoded(records, **env)
        assert all(isinstance(s, EncodedSpan) for s in encoded) and len(encoded) == 14
        assert encode_request(encoded) == same_as_official(built(records, **env))


def test_encoded_spans_are_sent_and_refused_only_when_the_exporter_cannot(rx: Receiver) -> None:
    exporter = WireSpanExporter(endpoint=rx.url + "/v1/traces")
    assert exporter.takes_encoded()
    assert exporter.export(built_encoded([with_detail(detail())])) is SpanExportResult.SUCCESS
    assert rx.wait_spans(2)
    client = exporter._client
    del exporter._client  # a release without the transport: a sink builds SDK spans for it instead
    assert not exporter.takes_encoded()
    assert exporter.export(built_encoded([record()])) is SpanExportResult.FAILURE  # never half-understood
    sink = OtelSink(BOTH, otlp_settings(BOTH, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url}), exporter=exporter)
    assert not sink.direct
    exporter._client = client
    sink.discard()
