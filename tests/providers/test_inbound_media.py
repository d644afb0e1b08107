"""Media routes in-process with a recording fake transport: routing, model swap, multipart, binary stream."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from relaygate.upstream.base import UpstreamRequest
from tests.asgi.conftest import call, make_gateway


class _Resp:
    def __init__(self, status: int, body: bytes, ctype: bytes = b"application/json", parts: int = 1) -> None:
        self.status = status
        self._body = body
        self.headers = [(b"content-type", ctype)]
        self._parts = parts

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)

    async def read(self) -> bytes:
        return self._body

    async def _iter(self) -> Any:
        step = max(1, len(self._body) // self._parts)
        for i in range(0, len(self._body), step):
            yield self._body[i:i + step]

    def __aiter__(self) -> Any:
        return self._iter()

    async def aclose(self) -> None:
        return None


class _Transport:
    def __init__(self, answer: _Resp) -> None:
        self.answer = answer
        self.sent: list[UpstreamRequest] = []

    async def send(self, req: UpstreamRequest, timeouts: Any) -> _Resp:
        self.sent.append(req)
        return self.answer

    async def aclose(self) -> None:
        return None


def _gw(answer: _Resp) -> tuple[Any, _Transport]:
    gw = make_gateway({"model_list": [
        {"model_name": "img", "litellm_params": {"model": "openai/dall-e-3", "api_key": "sk", "api_base": "http://u/v1"}},
        {"model_name": "tts", "litellm_params": {"model": "azure/tts-dep", "api_key": "az", "api_base": "http://az",
                                                 "api_version": "2025-03-01-preview"}},
        {"model_name": "whisper", "litellm_params": {"model": "openai/whisper-1", "api_base": "http://u/v1"}},
        {"model_name": "rr", "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": "co"}},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-x"}},
    ], "general_settings": {"master_key": "sk-m"}})
    tr = _Transport(answer)
    gw.transport = tr
    return gw, tr


H = {"authorization": "Bearer sk-m"}


def test_images_passthrough_with_model_swap() -> None:
    gw, tr = _gw(_Resp(200, b'{"created":1,"data":[{"url":"http://x/1.png"}]}'))
    r = asyncio.run(call(gw, "POST", "/v1/images/generations", {"model": "img", "prompt": "a cat"}, H))
    assert r.status == 200 and r.json()["data"][0]["url"] == "http://x/1.png"
    assert tr.sent[0].url == "http://u/v1/images/generations"
    assert orjson.loads(tr.sent[0].body) == {"model": "dall-e-3", "prompt": "a cat"}
    assert r.headers["x-litellm-model-group"] == "img"


def test_speech_streams_binary_from_azure() -> None:
    audio = bytes(range(256)) * 40
    gw, tr = _gw(_Resp(200, audio, b"audio/mpeg", parts=5))
    r = asyncio.run(call(gw, "POST", "/v1/audio/speech", {"model": "tts", "input": "hi", "voice": "alloy"}, H))
    assert r.status == 200 and r.body == audio and r.headers["content-type"] == "audio/mpeg" and len(r.chunks) >= 5
    assert tr.sent[0].url == "http://az/openai/deployments/tts-dep/audio/speech?api-version=2025-03-01-preview"
    assert ("api-key", "az") in tr.sent[0].headers


def test_transcription_multipart_model_swapped() -> None:
    gw, tr = _gw(_Resp(200, b'{"text":"hello"}'))
    b = "XyZb"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
            ).encode() + b"RIFF\x00\x01model" + (f"\r\n--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
                                               f"whisper\r\n--{b}--\r\n").encode()
    r = asyncio.run(call(gw, "POST", "/v1/audio/transcriptions", body,
                         {**H, "content-type": f"multipart/form-data; boundary={b}"}))
    assert r.status == 200 and r.json() == {"text": "hello"}
    sent = tr.sent[0]
    assert sent.url == "http://u/v1/audio/transcriptions"
    assert b'name="model"\r\n\r\nwhisper-1\r\n' in sent.body and b"RIFF\x00\x01model" in sent.body
    assert ("Content-Type", f"multipart/form-data; boundary={b}") in sent.headers


def test_rerank_on_cohere_and_unsupported_provider() -> None:
    gw, tr = _gw(_Resp(200, b'{"id":"r","results":[{"index":1,"relevance_score":0.9}]}'))
    r = asyncio.run(call(gw, "POST", "/v1/rerank", {"model": "rr", "query": "q", "documents": ["a", "b"], "top_n": 1}, H))
    assert r.status == 200 and r.json()["results"][0]["index"] == 1
    assert tr.sent[0].url == "https://api.cohere.com/v2/rerank"
    assert orjson.loads(tr.sent[0].body) == {"query": "q", "documents": ["a", "b"], "top_n": 1, "model": "rerank-v3.5"}
    bad = asyncio.run(call(gw, "POST", "/v1/images/generations", {"model": "claude", "prompt": "x"}, H))
    assert bad.status == 400 and "anthropic model `claude-x` does not support /v1/images/generations" in \
        bad.json()["error"]["message"]
    noauth = asyncio.run(call(gw, "POST", "/v1/moderations", {"model": "img", "input": "x"}))
    assert noauth.status == 401
