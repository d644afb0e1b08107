"""LiteLLM 1.110's Prometheus labels and sparse families, through the gateway and a real upstream on loopback.

With ``callbacks: ["prometheus"]`` the request families carry ``api_provider``, ``model_group`` and
``service_tier`` (the tier the answer says it was served at, else a known tier the request asked for; a value
outside LiteLLM's known tiers is ``other``, and a client's own text never becomes one), and the sparse
families count what the provider reported: reasoning, audio, cached and cache-write tokens, images generated.
Without the callback nothing of it is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.asgi.conftest import call, collect_records, http_upstream, make_gateway
from tests.observe.test_prometheus_dashboard import parse_exposition

MASTER = "sk-labels"
AUTH = {"authorization": f"Bearer {MASTER}"}
USAGE = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
ANSWERS: dict[str, dict[str, Any]] = {  # model -> extra fields of its chat answer
    "tiered": {"service_tier": "priority",
               "usage": {**USAGE, "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 2},
                         "completion_tokens_details": {"reasoning_tokens": 7, "audio_tokens": 1}}},
    "plain": {},
    "odd": {"service_tier": "turbo-9000"},
    "nulltier": {"service_tier": None},
}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "hello"}],
           "usage": {"input_tokens": 3, "output_tokens": 1, "cache_creation_input_tokens": 5,
                     "service_tier": "standard"}}


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        if self.path.endswith("/images/generations"):
            body = json.dumps({"created": 1, "data": [{"url": "http://127.0.0.1/a.png"},
                                                      {"url": "http://127.0.0.1/b.png"}]}).encode()
            ctype = "application/json"
        elif self.path.endswith("/v1/messages"):
            body, ctype = json.dumps(MESSAGE).encode(), "application/json"
        elif req.get("stream"):
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "x",
                    "service_tier": "default"}
            frames = [{**base, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                      {**base, "choices": [], "usage": {**USAGE, "completion_tokens_details": {
                          "reasoning_tokens": 3}}}]
            body = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames) + b"data: [DONE]\n\n"
            ctype = "text/event-stream"
        else:
            answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": req["model"],
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                   "finish_reason": "stop"}], "usage": USAGE, **ANSWERS[req["model"]]}
            body, ctype = json.dumps(answer).encode(), "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with http_upstream(_Upstream) as url:
        yield url


def _config(base: str, prometheus: bool = True) -> dict[str, Any]:
    def dep(name: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-up",
                                                       "api_base": base + "/v1"},
                "model_info": {"id": f"dep-{name}"}}

    return {"model_list": [*(dep(m) for m in (*ANSWERS, "img")),
                           {"model_name": "claude-x", "litellm_params": {"model": "anthropic/claude-x",
                                                                        "api_key": "sk-ant", "api_base": base},
                            "model_info": {"id": "dep-claude-x"}}],
            "router_settings": {"num_retries": 0},
            "general_settings": {"master_key": MASTER},
            **({"litellm_settings": {"callbacks": ["prometheus"]}} if prometheus else {})}


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "tiered"}),
    ("/v1/chat/completions", {"model": "plain", "service_tier": "flex"}),  # the answer names none: the request's
    ("/v1/chat/completions", {"model": "plain", "service_tier": "bogus\"}<script>"}),  # not a known tier: none
    ("/v1/chat/completions", {"model": "odd"}),
    ("/v1/chat/completions", {"model": "nulltier", "service_tier": "priority"}),
    ("/v1/messages", {"model": "claude-x", "max_tokens": 16}),  # Anthropic's usage names the tier
    ("/v1/chat/completions", {"model": "plain", "stream": True, "stream_options": {"include_usage": True}}),
    ("/v1/images/generations", {"model": "img", "prompt": "a cat", "n": 2}),
]


async def _traffic(gw: Any) -> None:
    for path, body in REQUESTS:
        if not path.endswith("/generations"):
            body = {**body, "messages": [{"role": "user", "content": "hi"}]}
        r = await call(gw, "POST", path, body, headers=AUTH)
        assert r.status == 200, (body, r.body)
    gw.completions.drain_now()


def test_request_families_carry_provider_group_and_service_tier(upstream: str) -> None:
    gw = make_gateway(_config(upstream))

    async def main() -> str:
        await gw.startup()
        try:
            await _traffic(gw)
            return (await call(gw, "GET", "/metrics", headers=AUTH)).body.decode()
        finally:
            await gw.shutdown()

    text = asyncio.run(main())
    scrape = parse_exposition(text)
    spend = scrape.samples["litellm_spend_metric_total"]
    tiers: dict[str, set[str]] = {}
    for s in spend:
        tiers.setdefault(s["model_id"], set()).add(s["service_tier"])
        assert s["api_provider"] == ("anthropic" if s["model_id"] == "dep-claude-x" else "openai"), s
        assert s["requested_model"] == s["model_id"].removeprefix("dep-"), s
    assert tiers == {"dep-tiered": {"priority"}, "dep-plain": {"flex", "None", "default"}, "dep-odd": {"other"},
                     "dep-nulltier": {"priority"}, "dep-claude-x": {"standard"}, "dep-img": {"None"}}, tiers
    assert "bogus" not in text and "<script>" not in text and "turbo-9000" not in text
    latency = scrape.samples["litellm_request_total_latency_metric_count"]
    assert {(s["model_group"], s["api_provider"]) for s in latency} == {
        ("tiered", "openai"), ("plain", "openai"), ("odd", "openai"), ("nulltier", "openai"),
        ("claude-x", "anthropic"), ("img", "openai")}
    api = scrape.samples["litellm_llm_api_latency_metric_count"]
    assert {s["service_tier"] for s in api if s["model_group"] == "tiered"} == {"priority"}
    calls = scrape.samples["litellm_deployment_total_requests_total"]
    assert {s["model_group"] for s in calls} == {"tiered", "plain", "odd", "nulltier", "claude-x", "img"}
    total = scrape.samples["litellm_proxy_total_requests_metric_total"]
    assert {s["api_provider"] for s in total} == {"openai", "anthropic"}

    def by_group(family: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s, v in zip(scrape.samples.get(family + "_total", []), scrape.values.get(family + "_total", []),
                        strict=True):
            out[s["requested_model"]] = out.get(s["requested_model"], 0.0) + v
        return out

    assert by_group("litellm_output_reasoning_tokens_metric") == {"tiered": 7.0, "plain": 3.0}  # and the stream's
    assert by_group("litellm_input_audio_tokens_metric") == {"tiered": 2.0}
    assert by_group("litellm_output_audio_tokens_metric") == {"tiered": 1.0}
    assert by_group("litellm_input_cached_tokens_metric") == {"tiered": 4.0}
    assert by_group("litellm_input_cache_creation_tokens_metric") == {"claude-x": 5.0}
    assert by_group("litellm_images_generated_metric") == {"img": 2.0}


def test_without_prometheus_nothing_is_read(upstream: str) -> None:
    gw = make_gateway(_config(upstream, prometheus=False))
    records = collect_records(gw)

    async def main() -> None:
        await gw.startup()
        try:
            await _traffic(gw)
        finally:
            await gw.shutdown()

    asyncio.run(main())
    assert len(records) == len(REQUESTS)
    assert [r.usage_labels for r in records] == [None] * len(REQUESTS)
