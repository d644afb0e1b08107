"""The response cache end to end: real Granian processes, a real redis-server, a real upstream that counts
its calls and answers every call differently, and the openai SDK as the client.

Shown here: a hit never reaches the upstream and is what the first answer was; hits are shared between the
two workers of one gateway and between two gateway instances on one Redis; a stream's hit parses in the
SDK into the same text; TTL expiry, ``no-store``, ``no-cache`` and namespaces; ``/cache/*``; and Redis
going away turns caching off (requests still answered) until it is back."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import RedisServer, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MASTER = "sk-master-cache"


class Upstream:
    """An OpenAI-compatible chat upstream; answer N says ``answer N`` (unary or streamed in pieces)."""

    def __init__(self) -> None:
        self.calls = 0
        self._n = itertools.count(1)
        self._lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
                with up._lock:
                    up.calls += 1
                    n = next(up._n)
                text = f"answer {n} to {body['messages'][-1]['content']}"
                usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
                if not body.get("stream"):
                    data = orjson.dumps({"id": f"chatcmpl-up{n}", "object": "chat.completion", "created": 1,
                                         "model": "up-model", "choices": [{"index": 0, "message": {
                                             "role": "assistant", "content": text}, "finish_reason": "stop"}],
                                         "usage": usage})
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                head = {"id": f"chatcmpl-up{n}", "object": "chat.completion.chunk", "created": 1, "model": "up-model"}
                frames = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                "finish_reason": None}]}]
                frames += [{**head, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]}
                           for w in text.split()]
                frames.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                frames.append({**head, "choices": [], "usage": usage})
                payload = b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
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


def config(up: Upstream, redis: RedisServer | None, **params: Any) -> str:
    cache_params: dict[str, Any] = {"type": "redis", "url": redis.url} if redis is not None else {"type": "local"}
    cache_params.update(params)
    return orjson.dumps({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up-model", "api_base": up.url,
                                                               "api_key": "sk-up"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"cache": True, "cache_params": cache_params},
        "relaygate_settings": {"embedded_database": False},
    }).decode()


@contextmanager
def client(url: str) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    try:
        yield c
    finally:
        c.close()


def ask(c: openai.OpenAI, text: str, **extra: Any) -> tuple[str, bool]:
    raw = c.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": text}],
                                                     extra_body=extra or None)
    return raw.parse().choices[0].message.content or "", "x-litellm-cache-key" in raw.headers


def test_hits_across_workers_and_instances_and_streams(redis_server: RedisServer, upstream: Upstream) -> None:
    cfg = config(upstream, redis_server, namespace="rgtest", ttl=60)
    with start_gateway(cfg, workers=2) as gw1, start_gateway(cfg) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first, hit = ask(c1, "q1")
        assert not hit and upstream.calls == 1
        time.sleep(0.3)  # the store reaches Redis off the request path
        seen = set()
        for _ in range(8):  # both workers of gw1 (connections spread over them) and gw2
            text, hit = ask(c1, "q1")
            assert hit and text == first
            seen.add(text)
        text, hit = ask(c2, "q1")
        assert hit and text == first and upstream.calls == 1

        # a stream's answer is stored once complete; its hit parses into the same text
        s = c1.chat.completions.create(model="m", messages=[{"role": "user", "content": "q2"}], stream=True,
                                       stream_options={"include_usage": True})
        streamed = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
        calls = upstream.calls
        time.sleep(0.3)
        for c in (c1, c2):
            s = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q2"}], stream=True,
                                          stream_options={"include_usage": True})
            chunks = list(s)
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == streamed
            assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 13
        assert upstream.calls == calls

        # controls: no-cache goes upstream (and stores the fresh answer), no-store does not store
        fresh, hit = ask(c1, "q1", cache={"no-cache": True})
        assert not hit and fresh != first and upstream.calls == calls + 1
        ask(c1, "q3", cache={"no-store": True})
        time.sleep(0.3)
        _, hit = ask(c1, "q3")
        assert not hit
        _, hit = ask(c1, "q1", cache={"namespace": "elsewhere"})
        assert not hit

        # management: ping, info, delete one key, flush the namespace
        h = {"authorization": f"Bearer {MASTER}"}
        ping = httpx.get(gw1.url + "/cache/ping", headers=h).json()
        assert ping["status"] == "healthy" and ping["cache_type"] == "redis" and ping["ping_response"] is True
        assert "password" not in orjson.dumps(ping).decode()
        assert orjson.loads(ping["litellm_cache_params"])["namespace"] == "rgtest"  # a JSON string, as LiteLLM's
        assert ping["health_check_cache_params"]["redis_version"] == httpx.get(
            gw1.url + "/cache/redis/info", headers=h).json()["info"]["redis_version"]
        info = httpx.get(gw1.url + "/cache/redis/info", headers=h).json()
        assert info["num_clients"] == len(info["clients"]) >= 2 and "redis_version" in info["info"]
        raw = c2.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "q1"}])
        key = raw.headers["x-litellm-cache-key"]
        assert key.startswith("rgtest:")
        assert httpx.post(gw2.url + "/cache/delete", headers=h, json={"keys": [key]}).json() == {"status": "success"}
        _, hit = ask(c2, "q1")
        assert not hit  # gone from Redis and from gw2's memory
        assert httpx.post(gw1.url + "/cache/flushall", headers=h).json() == {"status": "success"}
        assert httpx.post(gw1.url + "/cache/delete", headers=h, json={"keys": "x"}).status_code == 400
        metrics = httpx.get(gw1.url + "/metrics", headers=h).text
        assert "litellm_cache_hits_metric_total" in metrics


def test_ttl_and_redis_outage(redis_server: RedisServer, upstream: Upstream) -> None:
    cfg = config(upstream, redis_server, ttl=1)
    with start_gateway(cfg) as gw, client(gw.url) as c:
        first, _ = ask(c, "t1")
        assert ask(c, "t1") == (first, True)
        time.sleep(1.3)
        text, hit = ask(c, "t1")
        assert not hit and text != first  # expired in memory and in Redis
        redis_server.stop()
        for i in range(5):  # Redis gone: answered from the upstream, nothing fails
            text, hit = ask(c, f"down {i}")
            assert text.startswith("answer")
        redis_server.start()
        # the worker waits out its pause (5 s) before trying Redis again: the ping says so meanwhile
        ping = httpx.get(gw.url + "/cache/ping", headers={"authorization": f"Bearer {MASTER}"})
        assert ping.status_code == 503 and "Service Unhealthy" in ping.json()["error"]["message"]
        log = gw.log()
        assert log.count("response cache: redis") == 1  # one warning for the outage, not one per request


def test_local_cache_and_a_key_without_rights(upstream: Upstream) -> None:
    cfg = orjson.loads(config(upstream, None))
    cfg["relaygate_keys"] = [{"key": "sk-user", "models": ["m"]}]
    with start_gateway(orjson.dumps(cfg).decode()) as gw, client(gw.url) as c:
        first, _ = ask(c, "l1")
        assert ask(c, "l1") == (first, True)
        r = httpx.get(gw.url + "/cache/ping", headers={"authorization": "Bearer sk-user"})
        assert r.status_code == 401  # admin routes: the admin only
        r = httpx.get(gw.url + "/cache/ping", headers={"authorization": f"Bearer {MASTER}"}).json()
        assert r["cache_type"] == "local" and r["memory"]["entries"] >= 1
