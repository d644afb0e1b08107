"""Embeddings cached per input, end to end: real Granian processes sharing a real redis-server, a real
upstream that records the inputs of every call, and the openai SDK as the client (which asks for base64
embeddings unless told otherwise, and decodes them).

Shown here: an input embedded once is not sent upstream again, by either worker of a gateway or by another
gateway on the same Redis, whether it comes alone or among new inputs; the client gets every embedding in
its request's order, as the upstream made it; the usage is the whole request's and the cost the upstream
call's alone."""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import RedisServer, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MASTER = "sk-master-emb"
PRICE = 0.0001
DIM = 6


def vector(text: str) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 4) for b in seed[:DIM]]


class Upstream:
    """An OpenAI-compatible embeddings upstream: each input's vector is a function of its text; one
    prompt token per word; every call's inputs recorded."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                with up._lock:
                    up.calls.append(inputs)
                data = []
                for i, text in enumerate(inputs):
                    vec: Any = vector(text)
                    if body.get("encoding_format") == "base64":
                        vec = base64.b64encode(struct.pack(f"<{DIM}f", *vec)).decode()
                    data.append({"object": "embedding", "index": i, "embedding": vec})
                tokens = sum(len(t.split()) for t in inputs)
                payload = orjson.dumps({"object": "list", "data": data, "model": "up-embed",
                                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


def config(up: Upstream, redis: RedisServer) -> str:
    return orjson.dumps({
        "model_list": [{"model_name": "emb", "litellm_params": {
            "model": "openai/up-embed", "api_base": up.url, "api_key": "sk-up", "input_cost_per_token": PRICE}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "url": redis.url, "namespace": "embt",
                                                             "ttl": 60}},
        "relaygate_settings": {"embedded_database": False},
    }).decode()


def embed(c: openai.OpenAI, inputs: list[str]) -> tuple[list[list[float]], Any, Any]:
    raw = c.embeddings.with_raw_response.create(model="emb", input=inputs)
    resp = raw.parse()
    assert [d.index for d in resp.data] == list(range(len(inputs)))
    return [d.embedding for d in resp.data], resp.usage, raw.headers


def close_to(got: list[list[float]], texts: list[str]) -> bool:
    return all(g == pytest.approx(vector(t), abs=1e-6) for g, t in zip(got, texts, strict=True))


def test_inputs_shared_across_workers_and_instances(redis_server: RedisServer, upstream: Upstream) -> None:
    cfg = config(upstream, redis_server)
    with start_gateway(cfg, workers=2) as gw1, start_gateway(cfg) as gw2:
        c1 = openai.OpenAI(base_url=gw1.url + "/v1", api_key=MASTER, max_retries=0)
        c2 = openai.OpenAI(base_url=gw2.url + "/v1", api_key=MASTER, max_retries=0)
        try:
            first = ["the quick brown fox", "jumps"]
            vecs, usage, headers = embed(c1, first)
            assert close_to(vecs, first) and usage.prompt_tokens == 5 and "x-litellm-cache-key" not in headers
            assert upstream.calls == [first]
            time.sleep(0.3)  # the entries reach Redis off the request path

            # another instance: the two known inputs are not sent again, the new one is, alone
            mixed = ["jumps", "over the lazy dog", "the quick brown fox"]
            vecs, usage, headers = embed(c2, mixed)
            assert close_to(vecs, mixed) and upstream.calls[1:] == [["over the lazy dog"]]
            assert usage.prompt_tokens == 9 and usage.total_tokens == 9  # the whole request's usage
            assert float(headers["x-litellm-response-cost"]) == pytest.approx(4 * PRICE)  # only what was sent
            assert "x-litellm-cache-key" not in headers
            time.sleep(0.3)

            # every input known: no upstream call, from either worker of the first gateway
            for _ in range(6):
                whole = ["over the lazy dog", "jumps", "the quick brown fox", "jumps"]
                vecs, usage, headers = embed(c1, whole)
                assert close_to(vecs, whole) and usage.prompt_tokens == 10
                assert len(headers["x-litellm-cache-key"].split(",")) == 4
                assert all(k.startswith("embt:") for k in headers["x-litellm-cache-key"].split(","))
                assert headers["x-litellm-response-cost"] == "0.0"
            assert len(upstream.calls) == 2

            # float vectors are another entry (encoding_format changes the answer's form): sent again
            raw = c1.embeddings.create(model="emb", input=["jumps"], encoding_format="float")
            assert raw.data[0].embedding == pytest.approx(vector("jumps"), abs=1e-6) and len(upstream.calls) == 3
        finally:
            c1.close()
            c2.close()
