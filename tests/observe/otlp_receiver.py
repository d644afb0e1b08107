"""A real OTLP/HTTP trace receiver for the OpenTelemetry tests, decoding with the official protobuf messages.

:class:`Receiver` is a ``ThreadingHTTPServer`` on a free loopback port. ``POST /v1/traces`` bodies
(``application/x-protobuf``, gzip- or deflate-encoded when the exporter says so) are parsed with
``opentelemetry.proto.collector.trace.v1.trace_service_pb2.ExportTraceServiceRequest`` and every span is
kept as a :class:`Span` (ids as lowercase hex, attributes and resource attributes as plain Python values,
events, status). A test tells it how to answer: ``fail`` (every request gets that status, nothing is
kept), ``hang`` (requests are held unanswered until :meth:`Receiver.release` or :meth:`Receiver.stop`).
No Collector binary is needed: this is the receiving end of the OTLP/HTTP protocol and nothing more.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

__all__ = ["Event", "Receiver", "Span", "value_of"]

KINDS = {PbSpan.SPAN_KIND_INTERNAL: "INTERNAL", PbSpan.SPAN_KIND_SERVER: "SERVER",
         PbSpan.SPAN_KIND_CLIENT: "CLIENT", PbSpan.SPAN_KIND_PRODUCER: "PRODUCER",
         PbSpan.SPAN_KIND_CONSUMER: "CONSUMER", PbSpan.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED"}
STATUSES = {PbStatus.STATUS_CODE_UNSET: "UNSET", PbStatus.STATUS_CODE_OK: "OK",
            PbStatus.STATUS_CODE_ERROR: "ERROR"}


def value_of(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a plain value (arrays as tuples)."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return tuple(value_of(x) for x in v.array_value.values)
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    if which is None:
        return None
    return getattr(v, which)


def _attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        assert kv.key not in out, f"attribute {kv.key} sent twice"
        out[kv.key] = value_of(kv.value)
    return out


@dataclass
class Event:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    """``""`` for a root span."""
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: list[Event]
    status: str
    status_message: str
    flags: int
    trace_state: str
    resource: dict[str, Any]
    scope: str
    scope_version: str


@dataclass
class Export:
    headers: dict[str, str]
    """Header names in lower case."""
    request: ExportTraceServiceRequest


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # an exporter that timed out and hung up is part of the tests


@dataclass
class Receiver:
    fail: int = 0
    """Answer every request with this status (0: accept)."""
    path: str = "/v1/traces"
    """The path spans are taken at (404 elsewhere): Langfuse's is ``/api/public/otel/v1/traces``."""
    authorization: str | None = None
    """The ``Authorization`` value a request must carry (401 otherwise); None: any."""
    refused: int = 0
    """Requests answered 401 for want of :attr:`authorization`."""
    exports: list[Export] = field(default_factory=list)
    requests: int = 0
    """Requests received, answered or not."""
    _hang: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------------

    def hang(self) -> None:
        """Hold every request unanswered until :meth:`release` (or :meth:`stop`)."""
        self._hang = threading.Event()

    def release(self) -> None:
        if self._hang is not None:
            self._hang.set()
            self._hang = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def spans(self) -> list[Span]:
        with self._lock:
            exports = list(self.exports)
        out: list[Span] = []
        for e in exports:
            for rs in e.request.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(Span(
                            trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                            name=s.name, kind=KINDS[s.kind], start_time_unix_nano=s.start_time_unix_nano,
                            end_time_unix_nano=s.end_time_unix_nano, attributes=_attrs(s.attributes),
                            events=[Event(ev.name, ev.time_unix_nano, _attrs(ev.attributes)) for ev in s.events],
                            status=STATUSES[s.status.code], status_message=s.status.message, flags=s.flags,
                            trace_state=s.trace_state, resource=resource, scope=ss.scope.name,
                            scope_version=ss.scope.version))
        return out

    def wait_spans(self, n: int, timeout: float = 10.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.spans()
            if len(got) >= n:
                return got
            time.sleep(0.01)
        return self.spans()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests += 1
                hang = receiver._hang
                if hang is not None:
                    hang.wait(30)
                    self.close_connection = True
                    return
                if self.path != receiver.path:
                    self._answer(404, b"")
                    return
                if receiver.fail:
                    self._answer(receiver.fail, b"")
                    return
                if receiver.authorization is not None and self.headers.get("Authorization") != receiver.authorization:
                    with receiver._lock:
                        receiver.refused += 1
                    self._answer(401, b"")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                body = gzip.decompress(raw) if encoding == "gzip" else zlib.decompress(raw) if encoding == "deflate" else raw
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.exports.append(Export({k.lower(): v for k, v in self.headers.items()}, request))
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="otlp-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
