"""CPU per exported request for OpenTelemetry: building the spans, and encoding them both ways.

    python -m bench.micro.otel_encode [--records 3000]

Builds ``--records`` chat records the way the gateway exports them (a request span and one attempt span,
input and output content, metadata and tags: ~60 attributes a record) through ``OtelSink``'s own span
building, then encodes them in the batch processor's batches of 512 spans with the official encoder
(``encode_spans(...).SerializePartialToString()``) and with ``relaygate.observe.otlp_wire.encode_request``,
and checks that the two requests are the same message. Prints process CPU microseconds per record for each
step (the encoders: the best of three interleaved runs). The default path is the compiled span writer
(``observe.otel_spans``) when it is built, the pure path's dicts and ``encode_span`` otherwise. Run it pinned
(``taskset -c 0``) and read the ratio: the machine's speed moves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from relaygate.config.observe import ObserveSettings
from relaygate.observe.otel import OtelSink, otlp_settings
from relaygate.observe.otlp_wire import WireSpanExporter, encode_request
from tests.observe.test_otel_export import attempt, detail, with_detail

BOTH = ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",))


class _Nowhere(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Collect:
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=3000)
    a = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    sink = OtelSink(BOTH, otlp_settings(BOTH, env), exporter=_Nowhere())
    sink.processor.shutdown()  # type: ignore[no-untyped-call]
    collect = _Collect()
    sink.processor = collect  # type: ignore[assignment]
    n = a.records
    records = [with_detail(detail(trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", attempts=[
        attempt(span_id=f"{i + 1:015x}a")])) for i in range(n)]

    t0 = time.process_time()
    for r in records:
        sink._build(r, r.extra["observe"])  # type: ignore[index]
    build = time.process_time() - t0
    spans = collect.spans
    batches = [spans[i:i + 512] for i in range(0, len(spans), 512)]

    t_official = t_wire = float("inf")
    official: list[bytes] = []
    wire: list[bytes] = []
    for _ in range(3):  # the best of three, interleaved
        t0 = time.process_time()
        official = [encode_spans(b).SerializePartialToString() for b in batches]
        t_official = min(t_official, time.process_time() - t0)
        t0 = time.process_time()
        wire = [encode_request(b) for b in batches]
        t_wire = min(t_wire, time.process_time() - t0)

    same = all(ExportTraceServiceRequest.FromString(w) == encode_spans(b) for w, b in zip(wire, batches, strict=True))

    # the sink's default path: each span encoded as it is built (no ReadableSpan; by the compiled writer,
    # observe.otel_spans, when it is built), the export a join
    direct = OtelSink(BOTH, otlp_settings(BOTH, env), exporter=WireSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    direct.processor.shutdown()  # type: ignore[no-untyped-call]
    encoded = _Collect()
    direct.processor = encoded  # type: ignore[assignment]
    t0 = time.process_time()
    for r in records:
        direct._build(r, r.extra["observe"])  # type: ignore[index]
    t_direct = time.process_time() - t0
    parts = [encoded.spans[i:i + 512] for i in range(0, len(encoded.spans), 512)]
    t0 = time.process_time()
    joined = [encode_request(b) for b in parts]
    t_join = time.process_time() - t0
    same = same and all(ExportTraceServiceRequest.FromString(j) == encode_spans(b)
                        for j, b in zip(joined, batches, strict=True))
    attrs = sum(len(s.attributes) for s in spans) / n
    print(f"{n} records, {len(spans) / n:.1f} spans and {attrs:.0f} attributes each, "
          f"{sum(map(len, wire)) / n:.0f} bytes each on the wire")
    print(f"build spans (loop):        {build / n * 1e6:7.1f} us/record")
    print(f"official encoder:          {t_official / n * 1e6:7.1f} us/record")
    print(f"otlp_wire.encode_request:  {t_wire / n * 1e6:7.1f} us/record "
          f"({t_official / t_wire:.1f}x less), same message: {same}")
    print(f"bytes equal: {sum(map(len, official)) == sum(map(len, wire))} in length")
    print(f"default path, build + encode on the loop: {t_direct / n * 1e6:7.1f} us/record, export's join "
          f"{t_join / n * 1e6:5.1f} us/record: {(t_direct + t_join) / n * 1e6:7.1f} against "
          f"{(build + t_wire) / n * 1e6:7.1f} built then encoded; same message: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
