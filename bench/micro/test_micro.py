"""Compiled vs pure: SSE re-framing, usage extraction, token estimates, HTTP/1.1 response parsing, SHA-256
digests, the cache key's canonical body.

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
