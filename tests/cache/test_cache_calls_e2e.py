"""The response cache on ``/v1/messages``, ``/v1/responses``, ``/v1/audio/transcriptions`` and ``/v1/rerank`` end to end: real
Granian processes (two workers) on a real redis-server, a real upstream that counts its calls and answers
every call differently, and the real clients: the anthropic SDK for Messages, the openai SDK for Responses and
transcriptions (a WAV made here).

Shown per call type: a hit never reaches the upstream, is the first answer with a fresh id and carries
``x-litellm-cache-key`` and cost 0; a stream's hit is parsed by the SDK into the same text and final object;
a stream's answer serves a unary request and the reverse; the fields that do not change the answer share
entries and those that do split them; the per-request controls; a Responses hit is a stored response
(``GET /v1/responses/{id}``, ``previous_response_id``); a transcription hit keeps its content type;
``mode: default_off`` with ``use-cache``."""

from __future__ import annotations

import io
import itertools
import math
import re
import struct
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import GatewayProc, RedisServer, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MASTER = "sk-master-cache-calls"


def _last_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


class Upstream:
    """An OpenAI-compatible upstream: chat (answer N says ``answer N to <prompt>``, unary or streamed a word a
    chunk) and transcriptions (``transcript N``, JSON or text as ``response_format`` asks)."""

    def __init__(self) -> None:
        self.calls = 0
        self.uploads: list[bytes] = []
        self._n = itertools.count(1)
        self._lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, ctype: str, data: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                with up._lock:
                    up.calls += 1
                    n = next(up._n)
                if self.path.endswith("/rerank"):
                    req = orjson.loads(raw)
                    docs = req.get("documents") or []
                    self._send("application/json", orjson.dumps({
                        "id": f"rr-up{n}", "results": [{"index": i, "relevance_score": round(1 / (i + n), 6)}
                                                       for i in range(len(docs))],
                        "meta": {"billed_units": {"search_units": 1}}}))
                    return
                if self.path.endswith("/audio/transcriptions"):
                    up.uploads.append(raw)
                    m = re.search(rb'name="response_format"\r\n\r\n(\w+)', raw)
                    if m is not None and m.group(1) == b"text":
                        self._send("text/plain; charset=utf-8", f"transcript {n}\n".encode())
                    else:
                        self._send("application/json", orjson.dumps({"text": f"transcript {n}"}))
                    return
                body = orjson.loads(raw)
                text = f"answer {n} to {_last_text(body)}"
                usage = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
                if not body.get("stream"):
                    self._send("application/json", orjson.dumps({
                        "id": f"chatcmpl-up{n}", "object": "chat.completion", "created": 1, "model": "up-model",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}], "usage": usage}))
                    return
                head = {"id": f"chatcmpl-up{n}", "object": "chat.completion.chunk", "created": 1,
                        "model": "up-model"}
                frames = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                "finish_reason": None}]}]
                frames += [{**head, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]}
                           for w in text.split()]
                if "cut" in text:  # a stream that ends cleanly before its end: no finish reason, no [DONE]
                    self._send("text/event-stream", b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames))
                    return
                frames.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                frames.append({**head, "choices": [], "usage": usage})
                self._send("text/event-stream", b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames)
                           + b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config(up: Upstream, redis: RedisServer | None, **params: Any) -> str:
    cache_params: dict[str, Any] = {"type": "redis", "url": redis.url} if redis is not None else {"type": "local"}
    cache_params["supported_call_types"] = ["acompletion", "anthropic_messages", "aresponses", "atranscription",
                                            "arerank"]
    cache_params.update(params)
    return orjson.dumps({
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "hosted_vllm/up-model", "api_base": up.url,
                                                   "api_key": "sk-up"}},
            {"model_name": "w", "litellm_params": {"model": "hosted_vllm/whisper-up", "api_base": up.url,
                                                   "api_key": "sk-up"}},
            {"model_name": "r", "litellm_params": {"model": "cohere/rerank-up", "api_base": up.url.removesuffix("/v1"),
                                                   "api_key": "sk-up"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"cache": True, "cache_params": cache_params},
    }).decode()


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[tuple[GatewayProc, Upstream]]:
    up = Upstream()
    try:
        with start_gateway(config(up, redis_server, namespace="calls", ttl=120), workers=2) as gw:
            yield gw, up
    finally:
        up.close()


def settle() -> None:
    time.sleep(0.3)  # a store reaches Redis off the request path; the next request may land on the other worker


def test_messages_unary_and_stream(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    with anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0) as client:
        def ask(text: str, **kw: Any) -> tuple[anthropic.types.Message, httpx.Headers]:
            raw = client.messages.with_raw_response.create(model="m", max_tokens=64,
                                                           messages=[{"role": "user", "content": text}], **kw)
            return raw.parse(), raw.headers

        calls = up.calls
        first, h = ask("m1")
        assert "x-litellm-cache-key" not in h and up.calls == calls + 1
        settle()
        for _ in range(4):  # both workers, from Redis or their memory
            again, h = ask("m1", metadata={"user_id": "someone else"})
            assert h["x-litellm-cache-key"].startswith("calls:") and h["x-litellm-response-cost"] == "0.0"
            assert again.content[0].text == first.content[0].text and again.id != first.id  # type: ignore[union-attr]
            assert again.id.startswith("msg_") and again.model == "m" and again.usage == first.usage
        assert up.calls == calls + 1
        _, h = ask("m1", system="be brief")
        assert "x-litellm-cache-key" not in h and up.calls == calls + 2

        # a stream's answer is stored once it ended; its hit is the same event stream to the SDK
        with client.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "s1"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text.startswith("answer") and up.calls == calls + 3
        settle()
        for _ in range(3):
            with client.messages.stream(model="m", max_tokens=64,
                                        messages=[{"role": "user", "content": "s1"}]) as s:
                assert "x-litellm-cache-key" in s.response.headers
                assert "".join(s.text_stream) == text
                hit = s.get_final_message()
            assert hit.content == final.content and hit.stop_reason == final.stop_reason
            assert hit.usage.output_tokens == final.usage.output_tokens and hit.id != final.id
        unary, h = ask("s1")  # the streamed answer serves a unary request, and a unary one a stream
        assert unary.content[0].text == text and "x-litellm-cache-key" in h  # type: ignore[union-attr]
        with client.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "m1"}]) as s:
            assert "".join(s.text_stream) == first.content[0].text  # type: ignore[union-attr]
        assert up.calls == calls + 3

        # controls: no-store keeps nothing, no-cache goes upstream and stores the fresh answer
        ask("m2", extra_body={"cache": {"no-store": True}})
        settle()
        _, h = ask("m2")
        assert "x-litellm-cache-key" not in h and up.calls == calls + 5
        fresh, h = ask("m1", extra_body={"cache": {"no-cache": True}})
        assert "x-litellm-cache-key" not in h and fresh.content[0].text != first.content[0].text  # type: ignore

        # a stream the upstream cut short (cleanly: no finish reason) is answered, and not stored
        with client.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": "cut"}]) as s:
            assert "".join(s.text_stream).startswith("answer")
        settle()
        _, h = ask("cut")
        assert "x-litellm-cache-key" not in h


def test_responses_unary_stream_and_stored(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0) as client:
        calls = up.calls
        raw = client.responses.with_raw_response.create(model="m", input="r1")
        one = raw.parse()
        assert "x-litellm-cache-key" not in raw.headers and up.calls == calls + 1
        settle()
        raw = client.responses.with_raw_response.create(model="m", input="r1", metadata={"run": "2"})
        two = raw.parse()
        assert raw.headers["x-litellm-cache-key"].startswith("calls:") and up.calls == calls + 1
        assert two.output_text == one.output_text and two.id != one.id and two.id.startswith("resp_")
        assert two.metadata == {"run": "2"} and two.usage == one.usage
        # a hit is stored as a response of its own: retrievable, and a conversation can continue from it
        got = client.responses.retrieve(two.id)
        assert got.id == two.id and got.output_text == one.output_text
        three = client.responses.create(model="m", input="next", previous_response_id=two.id)
        assert three.previous_response_id == two.id and up.calls == calls + 2
        settle()
        # the key is over the resolved conversation: continuing `one` (same turns as `two`) is a hit of `three`
        raw = client.responses.with_raw_response.create(model="m", input="next", previous_response_id=one.id)
        four = raw.parse()
        assert "x-litellm-cache-key" in raw.headers and up.calls == calls + 2
        assert four.output_text == three.output_text and four.previous_response_id == one.id

        # a stream and its hit: the same deltas and final response, numbered events
        events = list(client.responses.create(model="m", input="rs1", stream=True))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        final = events[-1]
        assert final.type == "response.completed" and up.calls == calls + 3
        settle()
        for _ in range(3):
            again = list(client.responses.create(model="m", input="rs1", stream=True))
            assert [e.sequence_number for e in again] == list(range(len(again)))
            assert "".join(e.delta for e in again if e.type == "response.output_text.delta") == text
            last = again[-1]
            assert last.type == "response.completed" and last.response.output_text == final.response.output_text
            assert last.response.id != final.response.id and last.response.usage == final.response.usage
        with client.responses.stream(model="m", input="r1") as s:  # the helper's accumulator agrees
            assert s.get_final_response().output_text == one.output_text
        assert client.responses.create(model="m", input="rs1").output_text == text
        assert up.calls == calls + 3
        cut = list(client.responses.create(model="m", input="cut", stream=True))
        assert cut[-1].type == "response.completed"  # the translation ends it; the cache knows better
        settle()
        raw = client.responses.with_raw_response.create(model="m", input="cut")
        assert "x-litellm-cache-key" not in raw.headers and up.calls == calls + 5


def wav(freq: float, seconds: float = 0.25, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
                               for i in range(int(rate * seconds))))
    return buf.getvalue()


def test_transcriptions(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    audio = wav(440.0)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0) as client:
        def ask(data: bytes, name: str = "a.wav", **kw: Any) -> tuple[str, httpx.Headers]:
            raw = client.audio.transcriptions.with_raw_response.create(model="w", file=(name, data, "audio/wav"),
                                                                       **kw)
            return raw.text, raw.headers

        calls = up.calls
        first, h = ask(audio)
        assert orjson.loads(first)["text"].startswith("transcript") and "x-litellm-cache-key" not in h
        settle()
        for _ in range(3):
            again, h = ask(audio, name="renamed.wav")  # the audio's bytes are the key, not its file name
            assert again == first and h["content-type"] == "application/json"
            assert h["x-litellm-cache-key"].startswith("calls:") and h["x-litellm-response-cost"] == "0.0"
        assert up.calls == calls + 1
        _, h = ask(audio, language="fr")
        assert "x-litellm-cache-key" not in h
        _, h = ask(wav(880.0))
        assert "x-litellm-cache-key" not in h and up.calls == calls + 3
        text, h = ask(audio, response_format="text")
        assert text.startswith("transcript") and h["content-type"].startswith("text/plain")
        settle()
        again, h = ask(audio, response_format="text")  # the stored content type comes back with it
        assert again == text and h["content-type"].startswith("text/plain") and "x-litellm-cache-key" in h
        assert up.calls == calls + 4
        # controls from the form (the SDK's extra_body): honoured, and never sent upstream
        fresh, h = ask(audio, extra_body={"cache": {"no-cache": True}})
        assert fresh != first and "x-litellm-cache-key" not in h and up.calls == calls + 5
        assert b'name="cache' not in up.uploads[-1] and audio in up.uploads[-1]
        settle()
        again, h = ask(audio)
        assert again == fresh and "x-litellm-cache-key" in h  # no-cache stored the fresh answer


def test_rerank(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {MASTER}"}) as client:
        def ask(**kw: Any) -> httpx.Response:
            body = {"model": "r", "query": "which is fruit?", "documents": ["apple", "brick", "pear"], **kw}
            r = client.post("/v1/rerank", json=body)
            assert r.status_code == 200, r.text
            return r

        calls = up.calls
        first = ask()
        assert "x-litellm-cache-key" not in first.headers
        settle()
        again = ask(metadata={"trace": "x"})  # metadata never changes the answer
        assert again.headers["x-litellm-cache-key"].startswith("calls:")
        assert again.headers["x-litellm-response-cost"] == "0.0"
        a, b = first.json(), again.json()
        assert b["results"] == a["results"] and b["meta"] == a["meta"]
        # only the id is new; nothing is added to Cohere's shape
        assert b["id"] != a["id"] and set(b) == set(a) == {"id", "results", "meta"}
        assert up.calls == calls + 1
        other = ask(top_n=1)  # a parameter that changes the answer splits the key
        assert "x-litellm-cache-key" not in other.headers and up.calls == calls + 2
        fresh = ask(cache={"no-cache": True})
        assert "x-litellm-cache-key" not in fresh.headers and up.calls == calls + 3


def test_default_off_local() -> None:
    up = Upstream()
    try:
        with start_gateway(config(up, None, mode="default_off")) as gw, \
                anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0) as client:
            def ask(**kw: Any) -> str:
                msg = client.messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": "d"}],
                                             **kw)
                return msg.content[0].text  # type: ignore[union-attr]

            assert ask() != ask() and up.calls == 2  # off unless asked for
            opted = ask(extra_body={"cache": {"use-cache": True}})
            assert ask(extra_body={"cache": {"use-cache": True}}) == opted and up.calls == 3
            metrics = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text
            assert "litellm_cache_hits_metric_total" in metrics
    finally:
        up.close()
