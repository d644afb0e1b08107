"""The ASGI app in-process with the built-in mock provider: routes, auth, errors, headers, streams."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relaygate import __version__
from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.config.errors import ConfigError

from .conftest import call, make_gateway

AUTH = {"Authorization": "Bearer sk-test"}
CHAT = {"model": "mock-echo", "messages": [{"role": "user", "content": "ping pong"}]}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions",
                                  "/openai/deployments/mock-echo/chat/completions",
                                  "/engines/mock-echo/chat/completions"])
def test_chat_routes(mock_gateway: Gateway, path: str) -> None:
    r = run(call(mock_gateway, "POST", path, CHAT, AUTH))
    assert r.status == 200, r.body
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "ping pong"
    assert data["usage"]["total_tokens"] > 0


def test_path_model_wins_over_body(mock_gateway: Gateway) -> None:
    body = {**CHAT, "model": "nope"}
    r = run(call(mock_gateway, "POST", "/openai/deployments/fixed/chat/completions", body, AUTH))
    assert r.status == 200
    assert r.json()["choices"][0]["message"]["content"] == "hello there"


def test_completions_and_embeddings(mock_gateway: Gateway) -> None:
    r = run(call(mock_gateway, "POST", "/v1/completions", {"model": "mock-echo", "prompt": "say hi"}, AUTH))
    assert r.status == 200 and r.json()["choices"][0]["text"] == "say hi"
    r = run(call(mock_gateway, "POST", "/engines/mock-echo/embeddings", {"input": ["a", "b"]}, AUTH))
    assert r.status == 200
    data = r.json()
    assert [d["index"] for d in data["data"]] == [0, 1] and len(data["data"][0]["embedding"]) == 8


def test_response_headers(mock_gateway: Gateway) -> None:
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", CHAT, {**AUTH, "x-litellm-call-id": "abc-123"}))
    h = r.headers
    assert h["x-litellm-call-id"] == "abc-123"
    assert h["x-litellm-model-group"] == "mock-echo"
    assert h["x-litellm-version"] == __version__
    assert h["x-litellm-model-id"]
    total = float(h["x-litellm-response-duration-ms"])
    overhead = float(h["x-litellm-overhead-duration-ms"])
    assert 0 <= overhead <= total
    r2 = run(call(mock_gateway, "POST", "/v1/chat/completions", CHAT, AUTH))
    assert len(r2.headers["x-litellm-call-id"]) == 36  # generated uuid


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "api-key", "x-litellm-api-key"])
def test_auth_headers_accepted(mock_gateway: Gateway, header: str) -> None:
    value = "Bearer sk-test" if header == "Authorization" else "sk-test"
    assert run(call(mock_gateway, "POST", "/v1/chat/completions", CHAT, {header: value})).status == 200


def test_litellm_key_header_name() -> None:
    """LiteLLM's ``general_settings.litellm_key_header_name``: the key may arrive in the operator's header (with
    or without ``Bearer``), read before ``Authorization`` (which a client may then use for something else)."""
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                       "general_settings": {"master_key": "sk-master", "litellm_key_header_name": "X-Litellm-Key"},
                       "relaygate_keys": [{"key": "sk-team", "models": ["m"]}]})
    body = {**CHAT, "model": "m"}
    for headers in ({"X-Litellm-Key": "Bearer sk-team"}, {"x-litellm-key": "sk-team"},
                    {"X-Litellm-Key": "Bearer sk-team", "Authorization": "Bearer not-a-gateway-key"},
                    {"Authorization": "Bearer sk-team"}):
        assert run(call(gw, "POST", "/v1/chat/completions", body, headers)).status == 200, headers
    r = run(call(gw, "POST", "/v1/chat/completions", body,
                 {"X-Litellm-Key": "Bearer wrong", "Authorization": "Bearer sk-team"}))
    assert r.status == 401  # the configured header, when sent, is the key


def test_litellm_key_header_name_must_be_a_header_name() -> None:
    from relaygate.config.loader import validate

    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "general_settings": {"litellm_key_header_name": "X Key:"}}, "<test>")
    assert [p for p in validate(cfg) if "litellm_key_header_name" in p]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "sk-tes"}])
def test_auth_rejected(mock_gateway: Gateway, headers: dict[str, str]) -> None:
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", CHAT, headers))
    assert r.status == 401
    err = r.json()["error"]
    assert err["type"] == "auth_error" and err["code"] == "401" and "param" in err
    assert "wrong" not in err["message"]


def test_models_list_and_health(mock_gateway: Gateway) -> None:
    r = run(call(mock_gateway, "GET", "/v1/models", None, AUTH))
    assert r.status == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert ids == ["mock-echo", "fixed"]
    assert r.json()["data"][0]["object"] == "model"
    assert run(call(mock_gateway, "GET", "/models", None, {})).status == 401
    for path in ("/health/liveliness", "/health/liveness", "/health/readiness"):
        assert run(call(mock_gateway, "GET", path, None, {})).status == 200
    assert run(call(mock_gateway, "GET", "/health", None, {})).status == 401
    h = run(call(mock_gateway, "GET", "/health", None, AUTH)).json()
    assert h["healthy_count"] == 2 and h["unhealthy_count"] == 0


def test_health_check_details_off_and_max_response_size() -> None:
    """LiteLLM's ``health_check_details: false`` keeps ``api_base`` and error text out of ``/health``;
    ``max_response_size_mb`` caps what an upstream may answer."""
    cfg = {"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo", "api_base": "http://in.ternal"}}],
           "general_settings": {"health_check_details": False, "max_response_size_mb": 2}}
    gw = make_gateway(cfg)
    h = run(call(gw, "GET", "/health", None, {})).json()
    assert h["healthy_endpoints"] == [{"model": "mock/echo"}] and h["healthy_count"] == 1
    assert gw.runtime.config.server.max_upstream_response_bytes == 2 * 1024 * 1024
    full = run(call(make_gateway({"model_list": cfg["model_list"]}), "GET", "/health", None, {})).json()
    assert set(full["healthy_endpoints"][0]) >= {"model", "model_name", "model_id"}


def test_unknown_route_and_method(mock_gateway: Gateway) -> None:
    r = run(call(mock_gateway, "GET", "/v1/nope", None, AUTH))
    assert r.status == 404 and "error" in r.json()
    r = run(call(mock_gateway, "GET", "/v1/chat/completions", None, AUTH))
    assert r.status == 405 and r.headers["allow"] == "POST"
    r = run(call(mock_gateway, "DELETE", "/engines/a/chat/completions", None, AUTH))
    assert r.status == 405 and r.headers["allow"] == "POST"  # (/openai/* is the pass-through, every method)
    r = run(call(mock_gateway, "POST", "/v1/models/mock-echo", None, AUTH))
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
    r = run(call(mock_gateway, "POST", "/v1/messages/nope", None, AUTH))
    assert r.status == 404


@pytest.mark.parametrize("body,field", [
    (b"{not json", None),
    (b'{"model": "mock-echo", "messages": "hi"}', "messages"),
    (b'{"model": "mock-echo", "messages": [], "stream": "yes"}', "stream"),
    (b'{"model": 5, "messages": []}', "model"),
    (b'{"messages": []}', None),
    (b"[]", None),
])
def test_bad_bodies_are_400(mock_gateway: Gateway, body: bytes, field: str | None) -> None:
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", body, AUTH))
    assert r.status == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "400"
    if field:
        assert field in err["message"] and err["param"] == field


def test_unknown_model_is_400_litellm_style(mock_gateway: Gateway) -> None:
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt-9"}, AUTH))
    assert r.status == 400
    msg = r.json()["error"]["message"]
    assert "Invalid model name passed in model=gpt-9" in msg and "/v1/models" in msg


def test_oversized_body_413(mock_gateway: Gateway) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 20000}]}
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", big, AUTH))
    assert r.status == 413 and "too large" in r.json()["error"]["message"]
    # also when the body arrives in parts without a content-length
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", big, AUTH, body_parts=5))
    assert r.status == 413


def test_stream_frames(mock_gateway: Gateway) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "one two three four five six seven eight"}],
            "stream": True, "stream_options": {"include_usage": True}}
    r = run(call(mock_gateway, "POST", "/v1/chat/completions", body, AUTH))
    assert r.status == 200
    assert r.headers["content-type"] == "text/event-stream"
    frames = [f for f in r.body.split(b"\n\n") if f]
    assert all(f.startswith(b"data: ") for f in frames)
    assert frames[-1] == b"data: [DONE]"
    chunks = [orjson.loads(f[6:]) for f in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three four five six seven eight"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert len(r.chunks) >= 6  # sent one by one, not buffered


def test_stream_keepalive_before_slow_first_token() -> None:
    gw = make_gateway({
        "model_list": [{"model_name": "slow", "litellm_params": {"model": "mock/echo", "mock_latency_ms": 250}}],
        "relaygate_settings": {"stream_keepalive_interval": 0.05},
    })
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = run(call(gw, "POST", "/v1/chat/completions", body))
    assert r.status == 200
    assert r.chunks[0] == b": keepalive\n\n"
    assert sum(c == b": keepalive\n\n" for c in r.chunks) >= 2
    assert r.body.endswith(b"data: [DONE]\n\n")
    assert b'"content":"hi"' in r.body


def test_wildcard_groups() -> None:
    gw = make_gateway({"model_list": [
        {"model_name": "mock/*", "litellm_params": {"model": "mock/*"}},
        {"model_name": "*", "litellm_params": {"model": "mock/*", "mock_response": "catch-all"}},
    ]})
    r = run(call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "mock/echo"}))
    assert r.status == 200 and r.json()["choices"][0]["message"]["content"] == "ping pong"
    assert r.headers["x-litellm-model-group"] == "mock/echo"
    r = run(call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "anything-else"}))
    assert r.status == 200 and r.json()["choices"][0]["message"]["content"] == "catch-all"


def test_model_group_alias() -> None:
    gw = make_gateway({"model_list": [{"model_name": "real", "litellm_params": {"model": "mock/echo"}}],
                       "router_settings": {"model_group_alias": {"nick": "real"}}})
    r = run(call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "nick"}))
    assert r.status == 200 and r.headers["x-litellm-model-group"] == "real"
    ids = [m["id"] for m in run(call(gw, "GET", "/v1/models")).json()["data"]]
    assert ids == ["real", "nick"]


def test_model_group_alias_in_litellms_object_shape_with_hidden() -> None:
    """``{alias: {model: group, hidden: true}}`` (LiteLLM's ``RouterModelGroupAliasItem``) was refused at
    startup; a hidden alias is served and not listed."""
    gw = make_gateway({"model_list": [{"model_name": "real", "litellm_params": {"model": "mock/echo"}}],
                       "router_settings": {"model_group_alias": {"nick": {"model": "real"},
                                                                 "secret": {"model": "real", "hidden": True},
                                                                 "plain": "real"}}})
    for alias in ("nick", "secret", "plain"):
        r = run(call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": alias}))
        assert r.status == 200 and r.headers["x-litellm-model-group"] == "real"
    ids = [m["id"] for m in run(call(gw, "GET", "/v1/models")).json()["data"]]
    assert ids == ["real", "nick", "plain"]


@pytest.mark.parametrize(("alias", "field"), [
    ({"nick": {"model": "real", "hidden": "yes"}}, "router_settings.model_group_alias.nick.hidden"),
    ({"nick": {"model": "real", "visible": True}}, "router_settings.model_group_alias.nick"),
    ({"nick": {"hidden": True}}, "router_settings.model_group_alias.nick"),
    (["nick"], "router_settings.model_group_alias"),
])
def test_model_group_alias_errors_name_the_field(alias: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_litellm({"model_list": [{"model_name": "real", "litellm_params": {"model": "mock/echo"}}],
                      "router_settings": {"model_group_alias": alias}}, "<test>")
    assert info.value.field == field


def test_models_list_follows_the_keys_allow_list() -> None:
    gw = make_gateway({
        "model_list": [{"model_name": n, "litellm_params": {"model": "mock/echo"}}
                       for n in ("gpt-4o", "gpt-4o-mini", "claude")],
        "general_settings": {"master_key": "sk-master"},
        "relaygate_keys": [{"key": "sk-team", "models": ["gpt-4o*"]}],
    })
    ids = [m["id"] for m in run(call(gw, "GET", "/v1/models", None, {"Authorization": "Bearer sk-team"})).json()["data"]]
    assert ids == ["gpt-4o", "gpt-4o-mini"]
    ids = [m["id"] for m in run(call(gw, "GET", "/v1/models", None, {"Authorization": "Bearer sk-master"})).json()["data"]]
    assert ids == ["gpt-4o", "gpt-4o-mini", "claude"]
    assert run(call(gw, "GET", "/v1/models/claude", None, {"Authorization": "Bearer sk-team"})).status == 404
    r = run(call(gw, "POST", "/v1/chat/completions", {**CHAT, "model": "claude"}, {"Authorization": "Bearer sk-team"}))
    assert r.status == 401 and "key not allowed" in r.json()["error"]["message"]
