"""Compiled vs pure: SSE re-framing, usage extraction, token estimates, HTTP/1.1 response parsing, SHA-256
digests, the cache key's canonical body, and the exporters' writers (Langfuse events, OTLP spans, JSON request
log lines).

Each benchmark group holds the ``c`` and ``py`` twin of one operation, so the table pytest-benchmark
prints puts them side by side. Run: see README.md in this folder.
"""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tests.core.token_corpus import PROSE

from .conftest import twin

CHUNKS = [
    b'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":" token%d"},"finish_reason":null}]}\n\n' % i
    for i in range(20)
]
USAGE_CHUNK = (
    b'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",'
    b'"choices":[],"usage":{"prompt_tokens":52,"completion_tokens":20,"total_tokens":72,'
    b'"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
)
STREAM = CHUNKS + [USAGE_CHUNK, b"data: [DONE]\n\n"]
CRLF_STREAM = [c.replace(b"\n", b"\r\n") for c in STREAM]

RESPONSE_BODY = json.dumps(
    {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": PROSE[:600]}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 52,
            "completion_tokens": 120,
            "total_tokens": 172,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        "system_fingerprint": "fp_abc",
    }
).encode()

MESSAGES = json.dumps(
    [
        {"role": "system", "content": "You are a helpful assistant. Answer concisely."},
        {"role": "user", "content": PROSE[:400]},
        {"role": "assistant", "content": PROSE[400:700]},
        {"role": "user", "content": "Summarise the above in one sentence, please.\nThanks!"},
    ]
).encode()

HEAD = (
    b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Jul 2025 10:00:00 GMT\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: keep-alive\r\nopenai-processing-ms: 312\r\nopenai-version: 2020-10-01\r\n"
    b"x-request-id: req_0123456789abcdef\r\nx-ratelimit-remaining-requests: 9999\r\n"
    b"x-ratelimit-remaining-tokens: 1999000\r\nstrict-transport-security: max-age=31536000\r\n\r\n"
)
RESPONSE = HEAD % len(RESPONSE_BODY) + RESPONSE_BODY
SSE_RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\nx-request-id: req_0123456789abcdef\r\n\r\n"
)
SSE_WIRE = [b"%x\r\n%s\r\n" % (len(c), c) for c in STREAM] + [b"0\r\n\r\n"]


@pytest.mark.benchmark(group="sse-reframe-20-chunks")
def test_sse_reframe_clean(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("sse", kind)

    def run() -> int:
        rf = mod.DataReframer()
        n = 0
        for chunk in STREAM:
            n += len(rf.feed(chunk))
        return n

    assert benchmark(run) == sum(map(len, STREAM))


@pytest.mark.benchmark(group="sse-reframe-20-chunks-crlf")
def test_sse_reframe_crlf(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("sse", kind)

    def run() -> int:
        rf = mod.DataReframer()
        n = 0
        for chunk in CRLF_STREAM:
            n += len(rf.feed(chunk))
        return n

    assert benchmark(run) == sum(map(len, STREAM))


@pytest.mark.benchmark(group="sse-decode-20-chunks")
def test_sse_decoder(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("sse", kind)

    def run() -> int:
        dec = mod.SSEDecoder()
        return sum(len(dec.feed(chunk)) for chunk in STREAM)

    assert benchmark(run) == len(STREAM)


@pytest.mark.benchmark(group="usage-response-1k")
def test_extract_usage_response(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("tokens", kind)
    assert benchmark(mod.extract_usage, RESPONSE_BODY) == (52, 120, 172)


@pytest.mark.benchmark(group="usage-response-1k")
def test_extract_usage_baseline_orjson(benchmark: BenchmarkFixture) -> None:
    def run() -> tuple[int, int, int]:
        u = orjson.loads(RESPONSE_BODY)["usage"]
        return u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]

    assert benchmark(run) == (52, 120, 172)


@pytest.mark.benchmark(group="usage-final-chunk")
def test_extract_usage_chunk(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("tokens", kind)
    payload = USAGE_CHUNK[6:-2]
    assert benchmark(mod.extract_usage, payload) == (52, 20, 72)


@pytest.mark.benchmark(group="estimate-tokens-2k-prose")
def test_estimate_tokens(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("tokens", kind)
    text = PROSE * 2
    assert benchmark(mod.estimate_tokens, text) > 300


@pytest.mark.benchmark(group="estimate-messages-4")
def test_estimate_messages(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("tokens", kind)
    assert benchmark(mod.estimate_messages_tokens, MESSAGES) > 100


@pytest.mark.benchmark(group="count-stream-content-chunk")
def test_count_stream_content(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("tokens", kind)
    assert benchmark(mod.count_stream_content, CHUNKS[3][6:-2]) == 2


@pytest.mark.benchmark(group="http1-parse-json-response")
def test_http1_parse_response(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("http1", kind)

    def run() -> int:
        return len(mod.ResponseParser().feed(RESPONSE))

    assert benchmark(run) == 3


@pytest.mark.benchmark(group="http1-parse-sse-chunked-22")
def test_http1_parse_chunked_stream(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("http1", kind)

    def run() -> int:
        p = mod.ResponseParser()
        n = len(p.feed(SSE_RESPONSE_HEAD))
        for piece in SSE_WIRE:
            n += len(p.feed(piece))
        return n

    assert benchmark(run) == len(STREAM) + 2


@pytest.mark.benchmark(group="http1-build-request")
def test_http1_build_request(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("http1", kind)
    headers = [
        ("Authorization", "Bearer sk-" + "x" * 40),
        ("Content-Type", "application/json"),
        ("User-Agent", "relaygate/0.1"),
        ("OpenAI-Organization", "org-123"),
    ]
    out = benchmark(mod.build_request, "POST", "api.openai.com", "/v1/chat/completions", headers, MESSAGES)
    assert out.endswith(MESSAGES)


CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": json.loads(MESSAGES), "temperature": 0.7, "max_tokens": 256, "user": "u-1"}
).encode()


@pytest.mark.benchmark(group="sha256-hex-1k")
def test_sha256_hex_1k(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("sha", kind)
    head = b"chat\0gpt-4o-mini\0"
    assert benchmark(mod.sha256_hex, RESPONSE_BODY, head) == hashlib.sha256(head + RESPONSE_BODY).hexdigest()


@pytest.mark.benchmark(group="sha256-hex-token")
def test_sha256_hex_token(benchmark: BenchmarkFixture, kind: str) -> None:
    mod = twin("sha", kind)
    token = b"sk-" + b"a" * 48
    assert benchmark(mod.sha256_hex, token) == hashlib.sha256(token).hexdigest()


@pytest.mark.benchmark(group="cache-key-canonical-body")
def test_cache_key_canonical_body(benchmark: BenchmarkFixture, kind: str) -> None:
    """The response cache key's canonical form of a ~1.8 KB chat body: the compiled walker (``c``) against the
    pure path's ``orjson`` decode and sorted encode (``py``)."""
    from relaygate.cache import key

    if kind == "c":
        twin("cachekey", kind)  # skipped without the extension
        fn = key.canonical_body
    else:
        fn = key._canonical_body_py
    assert benchmark(fn, CHAT_BODY) == key._canonical_body_py(CHAT_BODY)


def _exported_record() -> tuple[object, object]:
    """A completion record of a small answered chat request and its Detail, as the exporters get them (the bench
    gateway's requests: one attempt, a key, the messages and the answer decoded)."""
    from relaygate.observe.detail import Attempt, Detail
    from relaygate.sinks.record import CompletionRecord, Outcome

    start = 1_796_585_037.2250013
    detail = Detail("754103339891d3cbcd03d87604683def", "4105604dbf64abcc",
                    input={"model": "m", "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                           "max_tokens": 64, "stream": False},
                    output=json.loads(RESPONSE_BODY), metadata={}, tags=[],
                    attempts=[Attempt("eb8444e82b8166828d6e6c685acaee14", "m", "openai", "mock-model",
                                      "http://127.0.0.1:37827/v1", start + 0.0014, start + 0.0044, 200,
                                      span_id="e878d509c8dfdae6")])
    record = CompletionRecord(
        call_id="ab7325a4-7d8e-4c58-a000-000000000002", route="chat", stream=False, model="m", model_group="m",
        deployment_id="eb8444e82b8166828d6e6c685acaee14", provider="openai", upstream_model="mock-model",
        key_hash="5e0c5f2f3a1b", key_alias="team-key", team_id="team-1", user_id="default_user_id", status=200,
        outcome=Outcome.OK, prompt_tokens=31, completion_tokens=20, cache_read_tokens=0, cache_write_tokens=0,
        latency=0.0044, ttft=None, overhead=0.00148, cost=0.0000123, cache_hit=False, retries=0, fallbacks=0,
        start_time=start, extra={"observe": detail}, requester_ip="127.0.0.1", user_agent=b"relaygate-bench",
        request_route="/v1/chat/completions")
    return record, detail


@pytest.mark.benchmark(group="langfuse-events")
def test_langfuse_events(benchmark: BenchmarkFixture, kind: str) -> None:
    """A record's two Langfuse ingestion events, encoded: the compiled writer (``c``) against ``build_events`` and
    a msgspec encode per event (``py``)."""
    from relaygate.observe import langfuse_payload as lp

    record, detail = _exported_record()
    opts = lp.BuildOptions()
    if kind == "c":
        twin("langfuse", kind)

        def run() -> list[bytes]:
            return lp.encode_events(record, detail, opts, now=1_796_585_040.5, new_id=lambda: "ev")  # type: ignore[arg-type]
    else:
        def run() -> list[bytes]:
            return [lp._encode(e) for e in lp.build_events(record, detail, opts, now=1_796_585_040.5,  # type: ignore[arg-type]
                                                           new_id=lambda: "ev")]
    assert benchmark(run) == [lp._encode(e) for e in lp.build_events(record, detail, opts, now=1_796_585_040.5,  # type: ignore[arg-type]
                                                                     new_id=lambda: "ev")]


@pytest.mark.benchmark(group="otel-spans")
def test_otel_spans(benchmark: BenchmarkFixture, kind: str) -> None:
    """A record's OTLP spans (the attempt's and LiteLLM's proxy span), encoded: the compiled writer (``c``)
    against the attribute dicts and ``encode_span`` (``py``), both through the sink's ``_build``."""
    from relaygate.config.observe import ObserveSettings
    from relaygate.observe.otel import OtelSink, otlp_settings
    from relaygate.observe.otlp_wire import WireSpanExporter

    if kind == "c":
        twin("otelspan", kind)
    record, detail = _exported_record()
    settings = ObserveSettings(success_callbacks=("otel",), failure_callbacks=("otel",))
    sink = OtelSink(settings, otlp_settings(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}),
                    exporter=WireSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    sink.processor.shutdown()  # type: ignore[no-untyped-call]
    spans: list[bytes] = []

    class Collect:
        def on_end(self, span: object) -> None:
            spans.append(span.data)  # type: ignore[attr-defined]

    sink.processor = Collect()  # type: ignore[assignment]
    if kind == "py":
        sink.fast = None

    def run() -> None:
        spans.clear()
        sink._build(record, detail)  # type: ignore[arg-type]

    benchmark(run)
    assert len(spans) == 2


@pytest.mark.benchmark(group="json-log-line")
def test_json_log_line(benchmark: BenchmarkFixture, kind: str) -> None:
    """A record's JSON request log line: the compiled writer (``c``) against the dict and ``json_line`` (``py``)."""
    import io

    from relaygate.observe import jsonlog

    record, _ = _exported_record()
    log = jsonlog.JsonRequestLog(stream=io.StringIO())
    if kind == "c":
        twin("jsonlog", kind)
        fn = jsonlog.request_line
        assert fn is not None
        assert benchmark(fn, record, log.pid) == log.line(record) + "\n"  # type: ignore[arg-type]
    else:
        assert benchmark(lambda: log.line(record) + "\n") == log.line(record) + "\n"  # type: ignore[arg-type]
