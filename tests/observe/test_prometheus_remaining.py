"""An upstream's rate-limit state, as LiteLLM reports it: the client gets ``x-ratelimit-*`` under OpenAI's
names whichever provider answered (Anthropic's ``anthropic-ratelimit-*`` renamed, as LiteLLM's
``process_anthropic_headers``), and with Prometheus on the remaining requests and tokens the upstream
announced become ``litellm_remaining_requests_metric`` / ``litellm_remaining_tokens_metric`` for the
deployment and key that asked; a deployment whose upstream says nothing falls back to its own rpm / tpm
left, as LiteLLM's router fallback does. The upstream is a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from relaygate.observe.prometheus import LiteLLMMetrics
from relaygate.upstream.headers import ratelimit_headers, remaining_of
from tests.asgi.conftest import call, collect_records, http_upstream, make_gateway
from tests.observe.test_prometheus_dashboard import parse_exposition

MASTER = "sk-remaining"
AUTH = {"authorization": f"Bearer {MASTER}"}
CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "hello"}], "usage": {"input_tokens": 3, "output_tokens": 1}}
SAID = {  # model -> the rate-limit headers its upstream answers with
    "gpt": [("x-ratelimit-limit-requests", "30000"), ("x-ratelimit-remaining-requests", "29999"),
            ("x-ratelimit-remaining-tokens", "149999990"), ("x-ratelimit-reset-requests", "2ms")],
    "claude-x": [("anthropic-ratelimit-requests-limit", "50"), ("anthropic-ratelimit-requests-remaining", "49"),
                 ("anthropic-ratelimit-tokens-limit", "80000"), ("anthropic-ratelimit-tokens-remaining", "79000"),
                 ("anthropic-ratelimit-requests-reset", "2026-12-03T12:00:00Z"), ("request-id", "req_a1")],
    "odd": [("x-ratelimit-remaining-requests", "12"), ("x-ratelimit-remaining-tokens", "n/a")],
    "quiet": [],
}


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        model = req["model"]
        stream = bool(req.get("stream"))
        anthropic = self.path.endswith("/v1/messages")
        self.send_response(200)
        for k, v in SAID[model]:
            self.send_header(k, v)
        if stream:  # OpenAI chunks only (the chat models here)
            chunk = {**CHAT, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}]}
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            self.send_header("content-type", "text/event-stream")
        else:
            body = json.dumps(MESSAGE if anthropic else {**CHAT, "model": model}).encode()
            self.send_header("content-type", "application/json")
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
    def dep(name: str, **params: Any) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "sk-up",
                                                       "api_base": base + "/v1", **params},
                "model_info": {"id": f"dep-{name}"}}

    return {"model_list": [dep("gpt"), dep("odd"), dep("quiet", rpm=100, tpm=5000),
                           {"model_name": "claude-x", "litellm_params": {"model": "anthropic/claude-x",
                                                                        "api_key": "sk-ant", "api_base": base},
                            "model_info": {"id": "dep-claude-x"}}],
            "router_settings": {"num_retries": 0},
            "general_settings": {"master_key": MASTER},
            **({"litellm_settings": {"callbacks": ["prometheus"]}} if prometheus else {})}


def _ask(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def test_the_client_gets_openai_rate_limit_headers_from_any_provider(upstream: str) -> None:
    gw = make_gateway(_config(upstream))

    async def main() -> dict[str, dict[str, str]]:
        await gw.startup()
        try:
            out = {}
            for model, stream in (("gpt", False), ("gpt", True), ("claude-x", False)):
                r = await call(gw, "POST", "/v1/chat/completions", _ask(model, stream), headers=AUTH)
                assert r.status == 200, r.body
                out[f"{model}{'-stream' if stream else ''}"] = r.headers
            return out
        finally:
            await gw.shutdown()

    got = asyncio.run(main())
    for name in ("gpt", "gpt-stream"):
        h = got[name]
        assert h["x-ratelimit-remaining-requests"] == "29999" and h["x-ratelimit-limit-requests"] == "30000", h
        assert h["x-ratelimit-remaining-tokens"] == "149999990"
    h = got["claude-x"]
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("50", "49"), h
    assert (h["x-ratelimit-limit-tokens"], h["x-ratelimit-remaining-tokens"]) == ("80000", "79000"), h
    assert h["llm_provider-anthropic-ratelimit-requests-remaining"] == "49"  # and as the provider said it
    assert "x-ratelimit-reset-requests" not in h  # Anthropic's reset is a timestamp: not renamed (as LiteLLM)


def test_remaining_gauges_follow_the_upstream_and_fall_back_to_the_deployment_limits(upstream: str) -> None:
    gw = make_gateway(_config(upstream))

    async def main() -> str:
        await gw.startup()
        try:
            for model, stream in (("gpt", False), ("claude-x", False), ("odd", True), ("quiet", False)):
                r = await call(gw, "POST", "/v1/chat/completions", _ask(model, stream), headers=AUTH)
                assert r.status == 200, (model, r.body)
            gw.completions.drain_now()
            return (await call(gw, "GET", "/metrics", headers=AUTH)).body.decode()
        finally:
            await gw.shutdown()

    scrape = parse_exposition(asyncio.run(main()))

    def by_model_id(family: str) -> dict[str, tuple[float, dict[str, str]]]:
        return {s["model_id"]: (v, s) for s, v in zip(scrape.samples.get(family, []), scrape.values.get(family, []),
                                                       strict=True)}

    requests = by_model_id("litellm_remaining_requests_metric")
    tokens = by_model_id("litellm_remaining_tokens_metric")
    assert {k: v for k, (v, _) in requests.items()} == {
        "dep-gpt": 29999.0, "dep-claude-x": 49.0, "dep-odd": 12.0, "dep-quiet": 99.0}
    # "n/a" is no reading (LiteLLM's _gauge_reading_or_none); quiet's upstream said nothing: its own tpm left
    quiet = tokens.pop("dep-quiet")[0]
    assert {k: v for k, (v, _) in tokens.items()} == {"dep-gpt": 149999990.0, "dep-claude-x": 79000.0}
    assert 4900.0 < quiet < 5000.0  # the router's tokens-per-minute bucket, charged for the one request
    labels = requests["dep-claude-x"][1]
    assert (labels["model_group"], labels["api_provider"], labels["litellm_model_name"]) == (
        "claude-x", "anthropic", "claude-x"), labels
    # LiteLLM's earlier names carry the same samples
    assert {s["model_id"]: v for s, v in zip(scrape.samples["litellm_remaining_requests"],
                                             scrape.values["litellm_remaining_requests"], strict=True)} == {
        k: v for k, (v, _) in requests.items()}


def test_without_prometheus_nothing_is_read(upstream: str) -> None:
    gw = make_gateway(_config(upstream, prometheus=False))
    records = collect_records(gw)

    async def main() -> dict[str, str]:
        await gw.startup()
        try:
            r = await call(gw, "POST", "/v1/chat/completions", _ask("gpt"), headers=AUTH)
            gw.completions.drain_now()
            return r.headers
        finally:
            await gw.shutdown()

    headers = asyncio.run(main())
    assert headers["x-ratelimit-remaining-requests"] == "29999"  # the client's headers do not depend on it
    assert [r.upstream_ratelimit for r in records] == [None]


def test_the_latest_reading_wins_across_workers() -> None:
    labels = ["m", "openai", "http://u", "x", "hk", "alias", "dep-m"]
    older = {"r": [[*labels, 10.0, 500.0, 100.0]]}
    newer = {"r": [[*labels, 7.0, None, 200.0]]}
    for parts in ([older, newer], [newer, older]):
        scrape = parse_exposition("\n".join(LiteLLMMetrics().render(parts, now=300.0)))
        assert scrape.values["litellm_remaining_requests_metric"] == [7.0]
        assert "litellm_remaining_tokens_metric" not in scrape.values  # the latest reading named no tokens


def test_ratelimit_headers_rename_anthropics() -> None:
    up = [(b"anthropic-ratelimit-requests-remaining", b"5"), (b"x-ratelimit-remaining-requests", b"7"),
          (b"anthropic-ratelimit-tokens-remaining", b"900"), (b"anthropic-ratelimit-input-tokens-limit", b"3"),
          (b"anthropic-ratelimit-tokens-limit", b"1000"), (b"content-type", b"application/json")]
    out = ratelimit_headers(up)
    # the upstream's own x-ratelimit-* wins over a renamed one; Anthropic's other ones are not OpenAI's
    assert out == [(b"x-ratelimit-remaining-requests", b"7"), (b"x-ratelimit-remaining-tokens", b"900"),
                   (b"x-ratelimit-limit-tokens", b"1000")]
    openai_only = [(b"x-ratelimit-limit-requests", b"10"), (b"server", b"x")]
    assert ratelimit_headers(openai_only) == openai_only[:1]
    assert remaining_of(out) == (7.0, 900.0)
    assert remaining_of([(b"x-ratelimit-remaining-tokens", b"inf")]) is None
    assert remaining_of([(b"x-ratelimit-limit-tokens", b"5")]) is None
    assert ratelimit_headers([(b"server", b"x")]) == []
