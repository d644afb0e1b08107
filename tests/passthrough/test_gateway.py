"""The pass-through routes through the gateway called in-process, against the real loopback upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.sinks import CompletionRecord
from tests.passthrough.conftest import GEMINI_KEY, MASTER, OPENAI_KEY, UPSTREAM_KEY, Upstream, config_text

AUTH = {"authorization": f"Bearer {MASTER}"}


class Records:
    name = "test-records"

    def __init__(self) -> None:
        self.got: list[CompletionRecord] = []

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        self.got.extend(batch)


class Reply:
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        start = sent[0]
        self.status: int = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in sent[1:])
        self.complete = sent[-1].get("more_body", False) is False and len(sent) > 1

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(gw: Gateway, method: str, target: str, body: bytes | dict[str, Any] = b"",
               headers: dict[str, str] | None = None, raw_path: bytes | None = None) -> Reply:
    data = orjson.dumps(body) if isinstance(body, dict) else body
    path, _, query = target.partition("?")
    hs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if isinstance(body, dict):
        hs.append((b"content-type", b"application/json"))
    scope = {"type": "http", "method": method, "path": path, "raw_path": raw_path or path.encode(), "headers": hs,
             "query_string": query.encode(), "http_version": "1.1", "scheme": "http"}
    messages = [{"type": "http.request", "body": data, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await gw(scope, receive, send)
    return Reply(sent)


def run(up: Upstream, extra: str, body: Any) -> tuple[Any, list[CompletionRecord]]:
    import yaml  # type: ignore[import-untyped]

    async def go() -> tuple[Any, list[CompletionRecord]]:
        cfg = yaml.safe_load(config_text(up.url, extra))
        cfg.setdefault("relaygate_settings", {})["embedded_database"] = False
        gw = Gateway(from_litellm(cfg, "<test>"))
        records = Records()
        gw.completions.add_sink(records)
        await gw.startup()
        try:
            out = await body(gw)
            gw.completions.drain_now()
            return out, records.got
        finally:
            await gw.shutdown()

    return asyncio.run(go())


def test_anthropic_unary_uses_gateway_key_and_records_cost(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> Reply:
        return await call(gw, "POST", "/anthropic/v1/messages", {
            "model": "claude-3-5-haiku-20241022", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
            {"x-api-key": MASTER, "anthropic-version": "2023-06-01", "anthropic-beta": "b1"})

    r, records = run(upstream, "", body)
    assert r.status == 200 and r.json()["content"][0]["text"] == "Hello from the upstream"
    assert r.headers["x-litellm-call-id"]
    seen = upstream.last("/v1/messages")
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and MASTER not in str(seen.headers)
    assert seen.headers["anthropic-version"] == "2023-06-01" and seen.headers["anthropic-beta"] == "b1"
    (rec,) = records
    assert (rec.route, rec.status, rec.prompt_tokens, rec.completion_tokens) == ("pass_through_endpoint", 200, 1000, 200)
    assert rec.provider == "anthropic" and rec.upstream_model == "claude-3-5-haiku-20241022"
    assert rec.cost == pytest.approx(1000 * 1e-6 + 200 * 5e-6)


def test_bad_key_is_401_in_the_provider_shape(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> list[Reply]:
        return [await call(gw, "POST", "/anthropic/v1/messages", {"model": "m"}, {"x-api-key": "sk-wrong-key-123"}),
                await call(gw, "POST", "/openai/v1/chat/completions", {"model": "m"}),
                await call(gw, "POST", "/gemini/v1beta/models/g:generateContent?key=nope", {})]

    (a, o, g), records = run(upstream, "", body)
    assert a.status == 401 and a.json()["type"] == "error" and a.json()["error"]["type"] == "authentication_error"
    assert o.status == 401 and o.json()["error"]["type"] == "auth_error"
    assert g.status == 401 and g.json()["error"]["status"] == "UNAUTHENTICATED"
    assert not upstream.seen and [r.status for r in records] == [401, 401, 401]


def test_gemini_query_key(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> list[Reply]:
        return [await call(gw, "POST", f"/gemini/v1beta/models/gemini-1.5-flash:generateContent?key={MASTER}",
                           {"contents": [{"parts": [{"text": "hi"}]}]}),
                await call(gw, "POST", "/gemini/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse",
                           {"contents": []}, {"x-goog-api-key": MASTER})]

    (unary, stream), records = run(upstream, "", body)
    assert unary.status == 200 and unary.json()["candidates"][0]["content"]["parts"][0]["text"] == "gemini says hi"
    assert stream.status == 200 and stream.body.startswith(b"data: ")
    for s in upstream.seen:
        assert "key=" not in s.path and s.headers["x-goog-api-key"] == GEMINI_KEY
    assert upstream.seen[1].path.endswith("?alt=sse")
    assert [(r.model, r.prompt_tokens, r.completion_tokens, r.stream) for r in records] == [
        ("gemini-1.5-flash", 40, 10, False), ("gemini-1.5-flash", 40, 10, True)]
    assert records[0].cost == pytest.approx(40 * 1e-7 + 10 * 3e-7)


def test_openai_paths_with_and_without_v1(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> list[Reply]:
        req = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        return [await call(gw, "POST", "/openai/v1/chat/completions", req, AUTH),
                await call(gw, "POST", "/openai/chat/completions", req, AUTH)]

    replies, records = run(upstream, "", body)
    assert [r.status for r in replies] == [200, 200]
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/v1/chat/completions"]
    assert upstream.seen[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert records[0].cost == pytest.approx(100 * 2e-6 + 20 * 4e-6)


CUSTOM = """
  pass_through_endpoints:
    - path: /custom
      target: "{url}/base?fixed=1"
      headers: {{x-target-token: tok-0123456789, x-fixed: fixed-value}}
      forward_headers: true
      include_subpath: true
      auth: true
      cost_per_request: 0.25
    - path: /open
      target: "{url}/open-target"
"""


def test_custom_endpoints(upstream: Upstream) -> None:
    extra = CUSTOM.format(url=upstream.url)

    async def body(gw: Gateway) -> list[Reply]:
        return [await call(gw, "POST", "/custom/a/b?q=1", b'{"x": 1}',
                           {**AUTH, "x-client": "c1", "x-fixed": "client-value", "content-type": "application/json"}),
                await call(gw, "GET", "/custom", headers={"x-client": "c2"}),
                await call(gw, "PUT", "/open", b"raw", {"x-client": "c3", "content-type": "text/plain"}),
                await call(gw, "GET", "/open/sub"),
                await call(gw, "DELETE", "/custom/x", headers=AUTH)]

    (sub, noauth, open_, open_sub, delete), records = run(upstream, extra, body)
    assert sub.status == 200 and sub.json()["path"] == "/base/a/b?fixed=1&q=1" and sub.json()["size"] == 8
    h = sub.json()["headers"]
    assert h["x-target-token"] == "tok-0123456789" and h["x-fixed"] == "fixed-value" and h["x-client"] == "c1"
    assert "authorization" not in h
    assert noauth.status == 401
    assert open_.status == 200 and open_.json()["method"] == "PUT" and open_.json()["path"] == "/open-target"
    assert "x-client" not in open_.json()["headers"] and open_.json()["headers"]["content-type"] == "text/plain"
    assert open_sub.status == 404  # include_subpath is off for /open
    assert delete.status == 200 and delete.json()["method"] == "DELETE"
    costs = {(r.status, r.cost) for r in records}
    assert (200, 0.25) in costs and (401, 0.0) in costs and (200, 0.0) in costs


@pytest.mark.parametrize("raw", [b"/anthropic/../key/generate", b"/anthropic/v1/%2e%2e/x", b"/anthropic/a%2Fb",
                                 b"/anthropic//evil.example/x", b"/anthropic/http://evil.example/x"])
def test_hostile_paths_are_400(upstream: Upstream, raw: bytes) -> None:
    async def body(gw: Gateway) -> Reply:
        return await call(gw, "POST", raw.decode(), {"model": "m"}, {"x-api-key": MASTER}, raw_path=raw)

    r, _ = run(upstream, "", body)
    assert r.status == 400 and r.json()["type"] == "error" and not upstream.seen


def test_upstream_down_is_502(upstream: Upstream) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    extra = f"""
  pass_through_endpoints:
    - path: /down
      target: http://127.0.0.1:{port}/x
"""

    async def body(gw: Gateway) -> Reply:
        return await call(gw, "POST", "/down", b"{}")

    r, records = run(upstream, extra, body)
    assert r.status == 502 and r.json()["error"]["message"] and [x.status for x in records] == [502]


def test_upstream_cut_mid_answer(upstream: Upstream) -> None:
    extra = f"""
  pass_through_endpoints:
    - path: /cut
      target: {upstream.url}/cut-plain
"""

    async def body(gw: Gateway) -> Reply:
        return await call(gw, "GET", "/cut")

    r, records = run(upstream, extra, body)
    assert r.status == 200 and not r.complete  # no clean end: the client sees the break
    assert [x.status for x in records] == [599]


def test_anthropic_stream_cut_ends_with_error_event(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> Reply:
        return await call(gw, "POST", "/anthropic/v1/cut", {"model": "m", "stream": True}, {"x-api-key": MASTER})

    r, records = run(upstream, "", body)
    assert r.status == 200 and r.body.rstrip().split(b"\n")[-2] == b"event: error"
    assert orjson.loads(r.body.rstrip().split(b"\n")[-1][6:])["type"] == "error"
    assert [x.status for x in records] == [599]
