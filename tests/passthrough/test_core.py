"""The sans-IO parts of the pass-through routes: paths, queries, headers both ways, usage readers, config."""

from __future__ import annotations

import os
import random
from pathlib import Path

import orjson
import pytest

from relaygate.config import from_litellm
from relaygate.config.errors import ConfigError
from relaygate.config.loader import config_secrets
from relaygate.core import errors
from relaygate.passthrough import urls
from relaygate.passthrough.targets import PROVIDER_ROUTES, model_in_path, upstream_for
from relaygate.passthrough.usage import UsageTap
from tests.passthrough.conftest import anthropic_events, openai_frames

# ------------------------------------------------------------------------------------------------ paths


@pytest.mark.parametrize(("raw", "want"), [
    (b"/anthropic", ""),
    (b"/anthropic/", "/"),
    (b"/anthropic/v1/messages", "/v1/messages"),
    (b"/anthropic/v1/messages/", "/v1/messages/"),
    (b"/gemini/v1beta/models/gemini-1.5-flash:generateContent", "/v1beta/models/gemini-1.5-flash:generateContent"),
    (b"/anthropic/a%20b/%C3%A9", "/a%20b/%C3%A9"),
    (b"/anthropic/a b", "/a%20b"),
    (b"/anthropic/%7Euser", "/~user"),
])
def test_subpath_canonical(raw: bytes, want: str) -> None:
    assert urls.subpath(raw, "/anthropic" if raw.startswith(b"/anthropic") else "/gemini") == want


@pytest.mark.parametrize("raw", [
    b"/anthropic/../admin", b"/anthropic/v1/../../x", b"/anthropic/%2e%2e/x", b"/anthropic/.%2E/x",
    b"/anthropic/./x", b"/anthropic/a%2Fb", b"/anthropic/a%2fb", b"/anthropic/a%5Cb", b"/anthropic/a\\b",
    b"/anthropic//evil.com/x", b"/anthropic/http://evil.com/x", b"/anthropic/v1//x", b"/anthropic/a%00b",
    b"/anthropic/a%0d%0aHost:x", b"/%61nthropic/v1/messages", b"/anthropicx/v1",
])
def test_subpath_refuses_hostile(raw: bytes) -> None:
    with pytest.raises(errors.BadRequest) as e:
        urls.subpath(raw, "/anthropic")
    assert e.value.status == 400


def test_subpath_random_bytes_never_escape() -> None:
    """Whatever the bytes, the result is either a 400 or a path whose segments are plain."""
    rng = random.Random(7)
    alphabet = b"/.%2e5cfF\\az:@?#\x00\r\n "
    for _ in range(3000):
        raw = b"/p" + bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        try:
            out = urls.subpath(raw, "/p")
        except errors.BadRequest:
            continue
        segs = [s for s in out.split("/")[1:] if s]
        assert all(s not in (".", "..") for s in segs)
        assert all(c not in out for c in "\\\r\n\0 #?") and "%2F" not in out.upper()


def test_query_drops_key_and_encodes() -> None:
    q, dropped = urls.query(b"alt=sse&key=sk-abc%2B1&x=a+b&y=%E2%82%AC", frozenset({"key"}))
    assert q == "alt=sse&x=a+b&y=%E2%82%AC" and dropped == {"key": "sk-abc+1"}
    q, _ = urls.query(b"a=\xe2\x82\xac&b=<>", frozenset())
    assert q == "a=%E2%82%AC&b=%3C%3E"
    assert urls.query(b"", frozenset({"key"})) == ("", {})


def test_join() -> None:
    assert urls.join("https://h/v1", "/x/y", "a=1") == "https://h/v1/x/y?a=1"
    assert urls.join("https://h/base?api-version=1", "", "a=1") == "https://h/base?api-version=1&a=1"
    assert urls.join("https://h/base/", "/", "") == "https://h/base/"


def test_request_headers_never_forward_credentials() -> None:
    client = [(b"authorization", b"Bearer sk-client"), (b"x-api-key", b"sk-client"), (b"api-key", b"k"),
              (b"x-goog-api-key", b"k"), (b"x-litellm-api-key", b"k"), (b"cookie", b"s=1"), (b"host", b"gw"),
              (b"content-length", b"12"), (b"connection", b"keep-alive, x-hop"), (b"x-hop", b"1"),
              (b"transfer-encoding", b"chunked"), (b"accept-encoding", b"gzip"), (b"x-litellm-tags", b"a"),
              (b"anthropic-version", b"2023-06-01"), (b"content-type", b"application/json"),
              (b"x-pass-anthropic-beta", b"tools-2024"), (b"x-pass-authorization", b"Bearer evil"),
              (b"x-pass-x-amz-date", b"1"), (b"x-bad", b"a\r\nInjected: 1")]
    own = [("x-api-key", "sk-upstream")]
    got = urls.request_headers(client, True, own)
    assert got == [("x-api-key", "sk-upstream"), ("anthropic-version", "2023-06-01"),
                   ("content-type", "application/json"), ("anthropic-beta", "tools-2024")]
    # without forward_all: the body's type and the x-pass- headers only
    assert urls.request_headers(client, False, []) == [("content-type", "application/json"),
                                                       ("anthropic-beta", "tools-2024")]


def test_the_configs_own_key_header_is_never_forwarded() -> None:
    """``litellm_key_header_name``: the gateway key in a header of the operator's naming stays a credential."""
    client = [(b"x-my-gateway-key", b"Bearer sk-virtual"), (b"x-pass-x-my-gateway-key", b"sk-virtual"),
              (b"x-trace", b"t1")]
    assert urls.request_headers(client, True, [], b"x-my-gateway-key") == [("x-trace", "t1")]
    assert ("x-my-gateway-key", "Bearer sk-virtual") in urls.request_headers(client, True, [])


def test_response_headers() -> None:
    up = [(b"content-type", b"text/event-stream"), (b"content-length", b"5"), (b"transfer-encoding", b"chunked"),
          (b"connection", b"close"), (b"set-cookie", b"a=1"), (b"server", b"x"), (b"request-id", b"req_1"),
          (b"anthropic-ratelimit-requests-limit", b"50")]
    assert urls.response_headers(up) == [(b"content-type", b"text/event-stream"), (b"request-id", b"req_1"),
                                         (b"anthropic-ratelimit-requests-limit", b"50")]


def test_model_in_path() -> None:
    assert model_in_path("gemini", "/v1beta/models/gemini-1.5-flash:streamGenerateContent") == "gemini-1.5-flash"
    assert model_in_path("vertex_ai", "/v1/projects/p/locations/l/publishers/google/models/gemini-2.0:x") == "gemini-2.0"
    assert model_in_path("bedrock", "/model/anthropic.claude-v2/converse") == "anthropic.claude-v2"
    assert model_in_path("azure", "/openai/deployments/my-dep/chat/completions") == "my-dep"
    assert model_in_path("anthropic", "/v1/messages") == ""


# ------------------------------------------------------------------------------------------------ usage


def _tap(sse: bool, data: bytes, step: int | None) -> UsageTap:
    tap = UsageTap(sse)
    if step is None:
        tap.feed(data)
    else:
        for i in range(0, len(data), step):
            tap.feed(data[i:i + step])
    return tap


@pytest.mark.parametrize("step", [None, 1, 7, 64])
def test_usage_anthropic_stream(step: int | None) -> None:
    u = _tap(True, b"".join(anthropic_events()), step).close()
    assert u is not None and (u.model, u.prompt, u.completion) == ("claude-3-5-haiku-20241022", 1000, 200)


@pytest.mark.parametrize("step", [None, 1, 13])
def test_usage_openai_stream(step: int | None) -> None:
    u = _tap(True, b"".join(openai_frames()), step).close()
    assert u is not None and (u.model, u.prompt, u.completion) == ("gpt-4o-mini", 100, 20)


def test_usage_shapes_unary() -> None:
    anthropic = {"model": "claude-x", "usage": {"input_tokens": 10, "output_tokens": 5,
                                                 "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7}}
    u = _tap(False, orjson.dumps(anthropic), 3).close()
    assert u is not None and (u.prompt, u.completion, u.cache_read, u.cache_write) == (117, 5, 100, 7)
    responses = {"type": "response.completed", "response": {"model": "gpt-5", "usage": {
        "input_tokens": 50, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 20},
        "output_tokens_details": {"reasoning_tokens": 4}}}}
    u = _tap(True, b"event: response.completed\ndata: " + orjson.dumps(responses) + b"\n\n", 5).close()
    assert u is not None and (u.model, u.prompt, u.completion, u.cache_read, u.reasoning) == ("gpt-5", 50, 9, 20, 4)
    gemini = [{"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}, "modelVersion": "gemini-x"},
              {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 8, "thoughtsTokenCount": 2,
                                 "cachedContentTokenCount": 1}}]
    u = _tap(False, orjson.dumps(gemini), None).close()
    assert u is not None and (u.model, u.prompt, u.completion, u.reasoning, u.cache_read) == ("gemini-x", 3, 10, 2, 1)
    bedrock = {"usage": {"inputTokens": 4, "outputTokens": 2, "cacheReadInputTokens": 1}}
    u = _tap(False, orjson.dumps(bedrock), None).close()
    assert u is not None and (u.prompt, u.completion, u.cache_read) == (5, 2, 1)


def test_usage_unknown_or_too_big() -> None:
    assert _tap(False, b"not json", None).close() is None
    assert _tap(True, b"data: {\"x\": 1}\n\n", None).close() is None
    big = UsageTap(False)
    for _ in range(5):
        big.feed(b" " * (1024 * 1024))
    big.feed(b'{"usage": {"prompt_tokens": 1}}')
    assert big.close() is None  # over MAX_JSON: relayed without being read


# ------------------------------------------------------------------------------------------------ config


def test_config_entries_checked(tmp_path: Path) -> None:
    os.environ["RG_PT_TEST_KEY"] = "sk-bria-secret-value-1"
    cfg = from_litellm({"general_settings": {"pass_through_endpoints": [
        {"path": "/bria/", "target": "https://engine.example.com/v1?x=1",
         "headers": {"Authorization": "Bearer os.environ/RG_PT_TEST_KEY", "content-type": "application/json"},
         "include_subpath": True, "auth": "true", "forward_headers": False, "cost_per_request": "0.12",
         "guardrails": {}}]}}, "<test>")
    (ep,) = cfg.general.pass_through_endpoints
    assert (ep.path, ep.include_subpath, ep.auth, ep.cost_per_request) == ("/bria", True, True, 0.12)
    assert ep.headers["Authorization"] == "Bearer sk-bria-secret-value-1"
    assert "general_settings.pass_through_endpoints[0].guardrails: ignored" in cfg.warnings
    assert "sk-bria-secret-value-1" in config_secrets(cfg)
    assert "application/json" not in config_secrets(cfg)


@pytest.mark.parametrize(("entry", "field"), [
    ({"target": "https://x"}, "path"),
    ({"path": "bria", "target": "https://x"}, "path"),
    ({"path": "/a/../b", "target": "https://x"}, "path"),
    ({"path": "/a/{x}", "target": "https://x"}, "path"),
    ({"path": "/a", "target": "ftp://x"}, "target"),
    ({"path": "/a", "target": "https://u:p@x"}, "target"),
    ({"path": "/a", "target": "https://x", "headers": {"a": "b\r\nc"}}, "headers.a"),
    ({"path": "/a", "target": "https://x", "headers": {"a": "os.environ/RG_PT_NOT_SET_ANYWHERE"}}, "headers.a"),
    ({"path": "/a", "target": "https://x", "auth": "maybe"}, "auth"),
    ({"path": "/a", "target": "https://x", "cost_per_request": -1}, "cost_per_request"),
])
def test_config_errors(entry: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_litellm({"general_settings": {"pass_through_endpoints": [entry]}}, "<test>")
    assert f"pass_through_endpoints[0].{field}" in str(e.value)


def test_config_duplicate_path() -> None:
    with pytest.raises(ConfigError, match=r"\[1\]\.path"):
        from_litellm({"general_settings": {"pass_through_endpoints": [
            {"path": "/a", "target": "https://x"}, {"path": "/a/", "target": "https://y"}]}}, "<test>")


def test_credentials_from_marked_deployment_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    anthropic = PROVIDER_ROUTES[0]
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_BASE", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    unmarked = from_litellm({"model_list": [{"model_name": "c", "litellm_params": {
        "model": "anthropic/claude-x", "api_key": "sk-not-for-pass-through"}}]}, "<test>")
    up = upstream_for(anthropic, unmarked)
    assert up.error is not None and up.error.status == 404 and "ANTHROPIC_API_KEY" in up.error.message
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env-123")
    up = upstream_for(anthropic, unmarked)
    assert up.error is None and up.headers == [("x-api-key", "sk-from-env-123")]
    assert up.base == "https://api.anthropic.com"
    marked = from_litellm({"model_list": [{"model_name": "c", "litellm_params": {
        "model": "anthropic/claude-x", "api_key": "sk-marked-1234", "api_base": "https://a.example/v1",
        "use_in_pass_through": True}}]}, "<test>")
    up = upstream_for(anthropic, marked)
    assert up.headers == [("x-api-key", "sk-marked-1234")] and up.base == "https://a.example"
    assert "use_in_pass_through" not in marked.deployments[0].extra and not marked.warnings


@pytest.mark.parametrize("step", [None, 1, 10])
def test_usage_bedrock_event_stream(step: int | None) -> None:
    from relaygate.providers.bedrock import encode_frame

    frames = b"".join(encode_frame({":event-type": k, ":content-type": "application/json", ":message-type": "event"},
                                   orjson.dumps(v)) for k, v in [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
        ("metadata", {"usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16}, "metrics": {}})])
    tap = UsageTap.for_type(b"application/vnd.amazon.eventstream")
    assert tap is not None
    if step is None:
        tap.feed(frames)
    else:
        for i in range(0, len(frames), step):
            tap.feed(frames[i:i + step])
    u = tap.close()
    assert u is not None and (u.prompt, u.completion) == (12, 4)


def test_usage_tap_by_content_type() -> None:
    assert UsageTap.for_type(b"application/octet-stream") is None  # a download is relayed, never kept
    assert UsageTap.for_type(b"text/plain") is None
    assert UsageTap.for_type(b"application/json; charset=utf-8") is not None
    bad = UsageTap.for_type(b"application/vnd.amazon.eventstream")
    assert bad is not None
    bad.feed(b"\x00" * 64)  # not an event stream after all: it stops reading, never raises
    assert bad.close() is None


def test_bearer_routes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {r.prefix: r for r in PROVIDER_ROUTES}
    monkeypatch.setenv("COHERE_API_KEY", "co-key-0123456789")
    monkeypatch.setenv("COHERE_API_BASE", "https://co.example/v2")
    monkeypatch.setenv("MISTRAL_API_KEY", "mi-key-0123456789")
    monkeypatch.delenv("MISTRAL_API_BASE", raising=False)
    cfg = from_litellm({}, "<test>")
    co = upstream_for(routes["/cohere"], cfg)
    assert (co.base, co.headers) == ("https://co.example", [("Authorization", "Bearer co-key-0123456789")])
    mi = upstream_for(routes["/mistral"], cfg)
    assert mi.base == "https://api.mistral.ai" and mi.headers == [("Authorization", "Bearer mi-key-0123456789")]
    assert routes["/openai_passthrough"].provider == "openai"
