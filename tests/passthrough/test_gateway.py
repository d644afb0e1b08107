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
from tests.conftest import dead_port
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
               headers: dict[str, str] | None = None, raw_path: bytes | None = None, pieces: int = 1) -> Reply:
    data = orjson.dumps(body) if isinstance(body, dict) else body
    path, _, query = target.partition("?")
    hs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if isinstance(body, dict):
        hs.append((b"content-type", b"application/json"))
    scope = {"type": "http", "method": method, "path": path, "raw_path": raw_path or path.encode(), "headers": hs,
             "query_string": query.encode(), "http_version": "1.1", "scheme": "http"}
    step = max(1, -(-len(data) // pieces))
    parts = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

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

    port = dead_port()  # nothing listens there
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


PROVIDERS = """
  - model_name: az
    litellm_params: {{model: azure/my-deploy, api_key: az-key-0123456789, api_base: "{url}",
                      api_version: "2024-10-21", use_in_pass_through: true}}
  - model_name: br
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, api_key: br-bearer-0123456789,
                      api_base: "{url}", use_in_pass_through: true}}
"""


def run_models(up: Upstream, models: str, extra: str, body: Any) -> tuple[Any, list[CompletionRecord]]:
    import yaml

    async def go() -> tuple[Any, list[CompletionRecord]]:
        cfg = yaml.safe_load(config_text(up.url, extra))
        cfg["model_list"].extend(yaml.safe_load(models.format(url=up.url)))
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


def test_azure_and_bedrock_routes(upstream: Upstream) -> None:
    async def body(gw: Gateway) -> list[Reply]:
        return [await call(gw, "POST", "/azure/openai/deployments/my-deploy/chat/completions",
                           {"messages": []}, {"api-key": MASTER}),
                await call(gw, "POST", "/azure/openai/deployments/my-deploy/chat/completions?api-version=2025-01-01",
                           {"messages": []}, AUTH),
                await call(gw, "POST", "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
                           {"messages": []}, AUTH)]

    (az, az2, br), records = run_models(upstream, PROVIDERS, "", body)
    # the upstream wants OpenAI's bearer key on /chat/completions: its own 401 comes back as it is
    assert az.status == 401 and az.json()["error"]["message"] == "bad key" and az2.status == 401
    seen_az = [s for s in upstream.seen if "/deployments/" in s.path]
    assert seen_az[0].path.endswith("?api-version=2024-10-21") and seen_az[0].headers["api-key"] == "az-key-0123456789"
    assert seen_az[1].path.endswith("?api-version=2025-01-01") and MASTER not in str(seen_az[1].headers)
    assert br.status == 200 and br.json()["output"]["message"]["content"][0]["text"] == "ok"
    seen_br = upstream.last("/converse")
    assert seen_br.headers["authorization"] == "Bearer br-bearer-0123456789"
    rec = records[-1]
    assert (rec.provider, rec.model, rec.prompt_tokens, rec.completion_tokens) == (
        "bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 30, 3)


def test_bedrock_sigv4_signs_the_body(upstream: Upstream) -> None:
    models = """
  - model_name: br
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: AKIDEXAMPLE0123,
                      aws_secret_access_key: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY, aws_region_name: us-west-2,
                      api_base: "{url}", use_in_pass_through: true}}
"""

    async def body(gw: Gateway) -> Reply:
        return await call(gw, "POST", "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
                          {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, AUTH)

    r, _ = run_models(upstream, models, "", body)
    assert r.status == 200
    h = upstream.last("/converse").headers
    assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE0123/")
    assert "/us-west-2/bedrock/aws4_request" in h["authorization"] and h["x-amz-date"]


def test_key_model_allow_list_and_allowed_routes(upstream: Upstream, tmp_path: Any) -> None:
    extra = """
relaygate_keys:
  - {key: sk-only-gpt-0123456789, models: [gpt-4o-mini]}
"""

    async def body(gw: Gateway) -> list[Reply]:
        limited = {"authorization": "Bearer sk-only-gpt-0123456789"}
        out = [await call(gw, "POST", "/anthropic/v1/messages", {"model": "claude-3-5-haiku-20241022"}, limited),
               await call(gw, "POST", "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []},
                          limited)]
        # no content type, or model given twice: the body is still read as the upstream would read it
        out += [await call(gw, "POST", "/anthropic/v1/messages", b'{"model": "claude-3-5-haiku-20241022"}', limited),
                await call(gw, "POST", "/openai/v1/chat/completions",
                           b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": []}', limited)]
        # a body longer than the part read before forwarding, its model at the end: still checked
        big = b'{"messages": [{"role": "user", "content": "' + b"x" * (400 * 1024) + b'"}], "model": "gpt-4o"}'
        out.append(await call(gw, "POST", "/openai/v1/chat/completions", big, limited, pieces=8))
        made = await call(gw, "POST", "/key/generate", {"allowed_routes": ["/openai/*"]}, AUTH)
        key = {"authorization": f"Bearer {made.json()['key']}"}
        out += [await call(gw, "POST", "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}, key),
                await call(gw, "POST", "/anthropic/v1/messages", {"model": "claude-3-5-haiku-20241022"}, key)]
        return out

    import yaml

    async def go() -> tuple[list[Reply], list[CompletionRecord]]:
        cfg = yaml.safe_load(config_text(upstream.url, extra))
        cfg["general_settings"]["database_url"] = f"sqlite:///{tmp_path}/rg.db"
        gw = Gateway(from_litellm(cfg, "<test>"))
        records = Records()
        gw.completions.add_sink(records)
        await gw.startup()
        try:
            return await body(gw), records.got
        finally:
            await gw.shutdown()

    (denied, allowed, untyped, twice, long_body, routed_ok, routed_no), _ = asyncio.run(go())
    assert untyped.status == 401 and twice.status == 400 and long_body.status == 401
    assert not any(len(s.body) > 400 * 1024 for s in upstream.seen)
    assert denied.status == 401 and denied.json()["error"]["type"] == "authentication_error"
    assert allowed.status == 200
    assert routed_ok.status == 200
    assert routed_no.status == 403 and "not allowed to call this route" in routed_no.json()["error"]["message"]


def test_slow_upstream_is_504(upstream: Upstream) -> None:
    upstream.hold.clear()
    extra = f"""
  pass_through_endpoints:
    - path: /slow
      target: {upstream.url}/slow-head
relaygate_settings:
  first_byte_timeout: 0.3
"""

    async def body(gw: Gateway) -> Reply:
        try:
            return await call(gw, "GET", "/slow")
        finally:
            upstream.hold.set()

    r, records = run(upstream, extra, body)
    assert r.status == 504 and [x.status for x in records] == [504]


def test_client_gone_closes_upstream(upstream: Upstream) -> None:
    upstream.hold.clear()
    extra = f"""
  pass_through_endpoints:
    - path: /held
      target: {upstream.url}/hold
"""

    async def body(gw: Gateway) -> tuple[list[dict[str, Any]], int]:
        got_first = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await got_first.wait()
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(msg: dict[str, Any]) -> None:
            sent.append(msg)
            if msg.get("body"):
                got_first.set()

        scope = {"type": "http", "method": "GET", "path": "/held", "raw_path": b"/held", "headers": [],
                 "query_string": b"", "http_version": "1.1", "scheme": "http"}
        try:
            await gw(scope, receive, send)
        finally:
            upstream.hold.set()
        await asyncio.get_running_loop().run_in_executor(None, upstream.broken.wait, 10)
        return sent, gw.transport.open_connections()

    (sent, open_after), records = run(upstream, extra, body)
    assert sent[-1].get("more_body") is True  # the answer was cut where the client left
    assert [x.status for x in records] == [499]
    assert upstream.broken.is_set() and open_after == 0  # the upstream connection was closed, not pooled


def test_vertex_route_host_from_the_deployment_and_sse(upstream: Upstream) -> None:
    models = f"""
  - model_name: vx
    litellm_params: {{{{model: vertex_ai/gemini-1.5-flash, vertex_project: my-proj, vertex_location: us-central1,
                      api_key: {GEMINI_KEY}, api_base: "{{url}}", use_in_pass_through: true}}}}
"""
    path = "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-1.5-flash"

    async def body(gw: Gateway) -> list[Reply]:
        return [await call(gw, "POST", f"/vertex_ai{path}:generateContent", {"contents": []}, AUTH),
                await call(gw, "POST", f"/vertex-ai{path}:streamGenerateContent", {"contents": []}, AUTH)]

    (unary, stream), records = run_models(upstream, models, "", body)
    assert unary.status == 200 and stream.status == 200 and stream.body.startswith(b"data: ")
    assert [s.path for s in upstream.seen] == [f"{path}:generateContent", f"{path}:streamGenerateContent?alt=sse"]
    assert all(s.headers["x-goog-api-key"] == GEMINI_KEY and MASTER not in str(s.headers) for s in upstream.seen)
    assert [(r.provider, r.prompt_tokens, r.completion_tokens) for r in records] == [("vertex_ai", 40, 10)] * 2


def test_key_rate_limits_apply(upstream: Upstream) -> None:
    extra = """
relaygate_keys:
  - {key: sk-one-per-minute-0123, rpm_limit: 1}
"""

    async def body(gw: Gateway) -> list[Reply]:
        h = {"x-api-key": "sk-one-per-minute-0123"}
        req = {"model": "claude-3-5-haiku-20241022", "max_tokens": 5, "messages": []}
        return [await call(gw, "POST", "/anthropic/v1/messages", req, h),
                await call(gw, "POST", "/anthropic/v1/messages", req, h)]

    (first, second), _ = run(upstream, extra, body)
    assert first.status == 200 and second.status == 429
    assert second.json()["type"] == "error" and second.json()["error"]["type"] == "rate_limit_error"
    assert len(upstream.seen) == 1


def test_baggage_tags_on_pass_through(upstream: Upstream) -> None:
    """``request_tag_mappings`` apply to the pass-through routes as to the LLM routes (LiteLLM maps both): the
    mapped tag and ``x-litellm-tags`` are the record's tags; a required key missing is refused before the upstream."""
    extra = """  request_tag_mappings:
    - {key: tenant, tag_prefix: "tenant:", required: true}
"""  # under general_settings, beside the master key

    async def body(gw: Gateway) -> list[Reply]:
        req = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        return [await call(gw, "POST", "/openai/v1/chat/completions", req,
                           {**AUTH, "baggage": "tenant=acme", "x-litellm-tags": "mine"}),
                await call(gw, "POST", "/openai/v1/chat/completions", req, AUTH)]

    (ok, missing), records = run(upstream, extra, body)
    assert ok.status == 200 and missing.status == 400
    assert records[0].key_hash == "litellm_proxy_master_key"  # auth was on: the master key
    assert "Missing, invalid or unmapped baggage value for tenant" in missing.body.decode()
    assert len(upstream.seen) == 1
    assert sorted(records[0].extra["tags"]) == ["mine", "tenant:acme"]
