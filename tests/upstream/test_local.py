"""The local transport: the built-in mock's upstream answers in-process like an HTTP upstream would."""

from __future__ import annotations

import asyncio
import time

import orjson

from relaygate.config import from_litellm
from relaygate.core.views import decode_view
from relaygate.providers import make_provider
from relaygate.providers.base import Call
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.local import LOCAL, LocalTransport

NOW = 1_700_000_000.0


def _mock(**params: object) -> object:
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo", **params}}]},
                       "cfg.yaml")
    return make_provider(cfg.deployments[0])


def _request(endpoint: str, body: dict[str, object], **params: object) -> UpstreamRequest:
    p = _mock(**params)
    raw = orjson.dumps(body)
    req: UpstreamRequest = p.build_request(Call(endpoint, raw, decode_view(endpoint, raw), "m", "echo", NOW))  # type: ignore[attr-defined]
    assert p.transport is LOCAL and req.url.startswith("local://mock/")  # type: ignore[attr-defined]
    return req


def test_unary_answer_after_the_latency() -> None:
    req = _request("chat", {"model": "m", "messages": [{"role": "user", "content": "ping pong"}]},
                   mock_latency_ms=50)

    async def go() -> tuple[float, int, bytes]:
        t = time.perf_counter()
        resp = await LocalTransport().send(req, Timeouts())
        return time.perf_counter() - t, resp.status, await resp.read()

    took, status, body = asyncio.run(go())
    out = orjson.loads(body)
    assert status == 200 and took >= 0.045
    assert out["choices"][0]["message"]["content"] == "ping pong"
    assert out["created"] == int(NOW) and out["model"] == "m"


def test_stream_chunks_arrive_one_by_one_with_the_gaps() -> None:
    req = _request("chat", {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b c d"}]},
                   mock_chunks=4, mock_chunk_gap_ms=20)

    async def go() -> tuple[list[bytes], float, bytes | None]:
        resp = await LOCAL.send(req, Timeouts())
        t = time.perf_counter()
        chunks = [c async for c in resp]
        return chunks, time.perf_counter() - t, resp.header(b"content-type")

    chunks, took, ctype = asyncio.run(go())
    assert ctype == b"text/event-stream" and chunks[-1] == b"data: [DONE]\n\n"
    assert len(chunks) == 7 and took >= 0.075  # role, 4 content chunks 20 ms apart, finish, [DONE]


def test_embeddings_and_unreadable_requests() -> None:
    req = _request("embeddings", {"model": "m", "input": ["a", "b"]}, mock_embedding_dim=4)
    resp = asyncio.run(LOCAL.send(req, Timeouts()))
    data = orjson.loads(asyncio.run(resp.read()))["data"]
    assert [len(d["embedding"]) for d in data] == [4, 4]
    bad = UpstreamRequest("POST", "local://mock/chat/completions", [], b'{"model": 1}')
    assert asyncio.run(LOCAL.send(bad, Timeouts())).status == 400
    assert asyncio.run(LOCAL.send(UpstreamRequest("GET", "local://mock/nope"), Timeouts())).status == 404
    assert asyncio.run(LOCAL.send(UpstreamRequest("GET", "local://mock/health"), Timeouts())).status == 200
