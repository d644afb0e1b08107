"""Hostile clients against the in-process app: authorization through every model a request can reach,
per-request overrides that may only tighten, bodies that are slow, huge, duplicated or nested too deep.

Each test states a rule of the shell; the real-process versions live in tests/e2e/test_hostile_e2e.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway

from .conftest import Reply, call, make_gateway

MASTER = {"Authorization": "Bearer sk-master"}
CHEAP_KEY = {"Authorization": "Bearer sk-cheap-only"}
MSGS = [{"role": "user", "content": "hi"}]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _gw(**router: Any) -> Gateway:
    """``cheap`` always fails (nothing listens on its port), ``expensive`` answers; the key may use only
    ``cheap`` (and the ``cheap*`` pattern)."""
    return make_gateway({
        "model_list": [
            {"model_name": "cheap", "litellm_params": {"model": "openai/cheap", "api_base": "http://127.0.0.1:9",
                                                       "api_key": "sk-up"}},
            {"model_name": "cheap-limited", "litellm_params": {"model": "mock/x", "mock_response": "ok", "rpm": 1}},
            {"model_name": "expensive", "litellm_params": {"model": "mock/x", "mock_response": "EXPENSIVE"}},
            {"model_name": "*", "litellm_params": {"model": "openai/*", "api_base": "http://127.0.0.1:9"}},
        ],
        "router_settings": {"retry_after": 0, **router},
        "general_settings": {"master_key": "sk-master"},
        "relaygate_keys": [{"key": "sk-cheap-only", "models": ["cheap", "cheap-limited", "cheap*"]}],
    })


def _served_expensive(r: Reply) -> bool:
    return b"EXPENSIVE" in r.body


def chats(gw: Gateway, *requests: tuple[dict[str, Any], dict[str, str]]) -> list[Reply]:
    """Several chat calls in one event loop (the upstream pool lives in it), then the gateway closed."""

    async def main() -> list[Reply]:
        try:
            return [await call(gw, "POST", "/v1/chat/completions", body, headers) for body, headers in requests]
        finally:
            await gw.aclose()

    return asyncio.run(main())


def test_body_fallbacks_outside_the_allow_list_are_refused() -> None:
    body = {"model": "cheap", "messages": MSGS, "fallbacks": ["expensive"]}
    denied, master = chats(_gw(), (body, CHEAP_KEY), (body, MASTER))
    assert denied.status == 401 and denied.json()["error"]["type"] == "key_model_access_denied", denied.body
    assert "expensive" in denied.json()["error"]["message"]
    assert master.status == 200 and _served_expensive(master)  # the master key may name any fallback


@pytest.mark.parametrize("router", [
    {"fallbacks": [{"cheap": ["expensive"]}, {"cheap-limited": ["expensive"]}]},
    {"default_fallbacks": ["expensive"]},
    {"fallbacks": [{"*": ["expensive"]}]},
])
def test_config_fallbacks_never_reach_a_forbidden_group(router: dict[str, Any]) -> None:
    failing = {"model": "cheap", "messages": MSGS}
    limited = {"model": "cheap-limited", "messages": MSGS}
    fails, first, limited_out, master = chats(_gw(**router), (failing, CHEAP_KEY), (limited, CHEAP_KEY),
                                              (limited, CHEAP_KEY), (failing, MASTER))
    # the allowed group fails upstream: the forbidden fallback is skipped, the client gets the failure
    assert fails.status >= 400 and not _served_expensive(fails), fails.body
    # the allowed group is out of rpm: the same
    assert first.status == 200
    assert limited_out.status == 429 and not _served_expensive(limited_out), limited_out.body
    # the master key does fall back
    assert master.status == 200 and _served_expensive(master)


def test_comma_lists_need_every_model_allowed() -> None:
    gw = _gw()
    r = run(call(gw, "POST", "/v1/chat/completions", {"model": "cheap,expensive", "messages": MSGS}, CHEAP_KEY))
    assert r.status == 401 and r.json()["error"]["type"] == "key_model_access_denied"


@pytest.mark.parametrize("header", ["x-litellm-timeout", "x-litellm-num-retries"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e999", "abc", "", "1000000", "2.5e400"])
def test_override_headers_are_validated(header: str, value: str) -> None:
    gw = _gw()
    r = run(call(gw, "POST", "/v1/chat/completions", {"model": "expensive", "messages": MSGS},
                 {**MASTER, header: value}))
    if header == "x-litellm-num-retries" and value == "0":
        assert r.status == 200
        return
    if header == "x-litellm-timeout" and value == "1000000":
        assert r.status == 200  # a finite, positive timeout is valid; it just cannot lift the operator's
        return
    assert r.status == 400, (value, r.body)
    assert r.json()["error"]["param"] == header


@pytest.mark.parametrize("field,value", [("timeout", b"1e999"), ("timeout", b"-3"), ("timeout", b"0"),
                                         ("num_retries", b"-1"), ("num_retries", b"1000000000")])
def test_override_body_fields_are_validated(field: str, value: bytes) -> None:
    gw = _gw()
    body = b'{"model":"expensive","messages":[{"role":"user","content":"hi"}],"%s":%s}' % (field.encode(), value)
    r = run(call(gw, "POST", "/v1/chat/completions", body, MASTER))
    assert r.status == 400, r.body
    assert r.json()["error"]["param"] == field


def test_overrides_only_tighten_the_operators_timeouts() -> None:
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "openai/m", "api_base": "http://127.0.0.1:9", "timeout": 20, "stream_timeout": 10}}],
        "relaygate_settings": {"first_byte_timeout": 15, "idle_timeout": 12}})
    target = gw.router.resolve("m").targets[0]
    base = gw.runtime.timeouts(target, False, None)
    assert base.total == 20 and base.first_byte == 15 and base.idle == 12
    for huge in (1e9, 3600.0, 20.5):
        t = gw.runtime.timeouts(target, False, huge)
        assert (t.total, t.first_byte, t.idle) == (20, 15, 12)
        s = gw.runtime.timeouts(target, True, huge)
        assert s.total is None and s.first_byte == 10 and s.idle == 10
    t = gw.runtime.timeouts(target, False, 2.0)
    assert t.total == 2.0 and t.first_byte == 2.0 and t.idle == 2.0 and t.connect <= 2.0


# -- bodies ---------------------------------------------------------------------------------------------


async def _call_receive(gw: Gateway, path: str, receive: Any, headers: list[tuple[bytes, bytes]]) -> Reply:
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "http_version": "1.1",
             "headers": [(b"authorization", b"Bearer sk-master"), *headers]}
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await gw(scope, receive, send)
    start = sent[0]
    return Reply(start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
                 b"".join(m.get("body", b"") for m in sent[1:]))


def _slow_gateway() -> Gateway:
    return make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/x", "mock_response": "ok"}}],
        "general_settings": {"master_key": "sk-master"},
        "relaygate_settings": {"body_read_timeout": 0.3, "min_body_rate": 1000},
    })


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/images/generations",
                                  "/v1/audio/transcriptions"])
def test_a_body_that_never_arrives_is_cut_with_a_408(path: str) -> None:
    gw = _slow_gateway()
    first = [True]

    async def receive() -> dict[str, Any]:
        if first[0]:
            first[0] = False
            return {"type": "http.request", "body": b"--b\r\n", "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    ctype = [(b"content-type", b"multipart/form-data; boundary=b")] if "audio" in path else []
    t = time.monotonic()
    r = run(asyncio.wait_for(_call_receive(gw, path, receive, ctype), 10))
    assert r.status == 408, r.body
    assert time.monotonic() - t < 10  # hang guard, not a timing assert: the bound is the test's own timeout
    assert b"did not arrive in time" in r.body


def test_a_trickled_body_is_cut_by_the_minimum_rate() -> None:
    gw = _slow_gateway()
    sent = [0]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.02)
        sent[0] += 1
        return {"type": "http.request", "body": b" ", "more_body": True}  # 50 bytes/s < 1000 bytes/s

    r = run(asyncio.wait_for(_call_receive(gw, "/v1/chat/completions", receive, []), 10))
    assert r.status == 408 and sent[0] < 200


def test_a_slow_but_steady_body_is_read() -> None:
    gw = _slow_gateway()
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 3000}]})
    pieces = [body[i:i + 500] for i in range(0, len(body), 500)]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)  # 10 kB/s, above the 1000 bytes/s minimum, longer than body_read_timeout
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    r = run(_call_receive(gw, "/v1/chat/completions", receive, []))
    assert r.status == 200, r.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/images/generations",
                                  "/v1/audio/transcriptions", "/openai/deployments/m/chat/completions"])
def test_declared_oversize_is_413_before_reading(path: str) -> None:
    gw = _slow_gateway()

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    headers = [(b"content-length", str(1 << 30).encode())]
    if "audio" in path:
        headers.append((b"content-type", b"multipart/form-data; boundary=b"))
    r = run(_call_receive(gw, path, receive, headers))
    assert r.status == 413, r.body


@pytest.mark.parametrize("body", [
    b'{"model":"expensive","messages":[{"role":"user","content":"x"}],"model":"cheap"}',
    b'{"model":"cheap","model":"expensive","messages":[{"role":"user","content":"x"}]}',
    b'{"model":"expensive","stream":false,"messages":[{"role":"user","content":"x"}],"model":"cheap","stream":true}',
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_duplicated_model_key_is_400(body: bytes, path: str) -> None:
    gw = _gw()
    if path == "/v1/messages":
        body = body.replace(b'"messages"', b'"max_tokens":5,"messages"')
    r = run(call(gw, "POST", path, body, MASTER))
    assert r.status == 400, r.body
    assert b"more than once" in r.body


def test_nested_model_keys_are_not_duplicates() -> None:
    gw = _gw()
    body = {"model": "expensive", "messages": MSGS,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}}}}}]}
    r = run(call(gw, "POST", "/v1/chat/completions", body, MASTER))
    assert r.status == 200, r.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages",
                                  "/v1/images/generations"])
@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deep_nesting_is_400(path: str, depth: int) -> None:
    gw = _gw()
    deep = b"[" * depth + b"]" * depth
    field = {"/v1/completions": b"prompt", "/v1/embeddings": b"input", "/v1/images/generations": b"prompt"}.get(
        path, b"messages")
    if field == b"messages":
        value = b'[{"role":"user","content":' + deep + b"}]"
    else:
        value = deep
    body = b'{"model":"expensive","max_tokens":5,"' + field + b'":' + value + b"}"
    r = run(call(gw, "POST", path, body, MASTER))
    assert r.status == 400, (r.status, r.body[:300])


def test_health_reports_a_failing_check_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = make_gateway({"model_list": [
        {"model_name": "bug", "litellm_params": {"model": "openai/x", "api_base": "http://127.0.0.1:9"}},
        {"model_name": "ok", "litellm_params": {"model": "mock/x"}},
    ]})
    provider = gw.router.resolve("bug").targets[0].provider

    def broken() -> None:
        raise RuntimeError("a bug in one adapter's health request")

    monkeypatch.setattr(provider, "health_request", broken)
    r = run(call(gw, "GET", "/health"))
    assert r.status == 200, r.body
    data = r.json()
    assert data["healthy_count"] == 1 and data["unhealthy_count"] == 1
    assert data["unhealthy_endpoints"][0]["model_name"] == "bug"
    assert "RuntimeError" in data["unhealthy_endpoints"][0]["error"]


@pytest.mark.parametrize("params,says", [
    ({"model": "azure/gpt4"}, "api_base is required"),
    ({"model": "vertex_ai/gemini-1.5-pro", "vertex_project": "p",
      "vertex_credentials": '{"type": "service_account", "client_email": "a@b.c"}'}, "lack private_key"),
    ({"model": "vertex_ai/gemini-1.5-pro", "vertex_project": "p",
      "vertex_credentials": '{"type": "service_account", "client_email": "a@b.c", "private_key": "nope"}'},
     "not a usable PEM key"),
])
def test_a_deployment_that_cannot_work_fails_at_start_not_per_request(params: dict[str, str], says: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from relaygate.core.errors import GatewayError

    for var in ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(GatewayError, match=says):
        make_gateway({"model_list": [{"model_name": "x", "litellm_params": params}]})


@pytest.mark.parametrize("transport", ["h1", "aiohttp"])
def test_a_unary_answer_over_the_cap_is_a_502(transport: str) -> None:
    from bench.procs import start_mock

    with start_mock(name="big", response_bytes=20_000) as mock:
        gw = make_gateway({
            "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/m", "api_base": mock.openai_base,
                                                                  "api_key": "sk-up"}}],
            "relaygate_settings": {"max_upstream_response_bytes": 5000, "transport": transport},
        })
        (r,) = chats(gw, ({"model": "m", "messages": MSGS}, {}))
    assert r.status == 502, r.body
    assert "5000" in r.json()["error"]["message"]


# -- found by the hostile fuzz (tests/asgi/test_hostile_fuzz.py); each a rule ------------------------------


def _renaming_gateway() -> Gateway:
    """Groups whose names differ from the upstream model: bodies are re-encoded (``core.body.set_fields``)."""
    return make_gateway({
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "mock/x", "mock_response": "ok"}},
            {"model_name": "claude-cheap", "litellm_params": {"model": "anthropic/claude-3-haiku",
                                                              "api_base": "http://127.0.0.1:9", "api_key": "sk-a"}},
            {"model_name": "claude-expensive", "litellm_params": {"model": "anthropic/claude-3-opus",
                                                                  "api_base": "http://127.0.0.1:9",
                                                                  "api_key": "sk-a"}},
            {"model_name": "mod", "litellm_params": {"model": "openai/omni-moderation", "api_base": "http://127.0.0.1:9",
                                                     "api_key": "sk-a"}},
        ],
        "general_settings": {"master_key": "sk-master"},
        "relaygate_keys": [{"key": "sk-cheap-only", "models": ["claude-cheap", "mod", "m"]}],
    })


@pytest.mark.parametrize("call_id", [b"abc\xff", b"caf\xc3\xa9", b"a b", b"x" * 129, b"line\r\nforged"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/moderations"])
def test_a_call_id_that_is_not_visible_ascii_is_replaced(call_id: bytes, path: str) -> None:
    gw = _renaming_gateway()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"model": "nope"}', "more_body": False}

    r = run(_call_receive(gw, path, receive, [(b"x-litellm-call-id", call_id)]))
    assert r.status == 400, r.body
    given = r.headers["x-litellm-call-id"]
    assert given.encode() != call_id and len(given) == 36


def test_a_non_utf8_forwarded_header_is_no_500() -> None:
    gw = _renaming_gateway()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"model":"nope","max_tokens":1,"messages":[]}',
                "more_body": False}

    r = run(_call_receive(gw, "/v1/messages", receive, [(b"anthropic-beta", b"caf\xc3")]))
    assert r.status == 400 and r.json()["type"] == "error", r.body


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize("path,body", [
    ("/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": [_deep(300)]}]}),
    ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "tools": [{"name": "t", "input_schema": {"type": "object", "x": _deep(300)}}]}),
    ("/v1/moderations", {"model": "mod", "input": "hi", "x": _deep(1000)}),
    ("/v1/messages", {"model": "claude-cheap", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "metadata": {"x": _deep(1000)}}),
])
def test_nesting_our_own_code_cannot_write_is_400(path: str, body: dict[str, Any]) -> None:
    gw = _renaming_gateway()
    r = run(call(gw, "POST", path, orjson.dumps(body) if False else _dumps_deep(body), MASTER))
    assert r.status == 400, (r.status, r.body[:300])


def _dumps_deep(obj: Any) -> bytes:
    """json.dumps without orjson's depth limit (the client may send anything)."""
    import json
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return json.dumps(obj).encode()
    finally:
        sys.setrecursionlimit(old)


def test_a_duplicate_model_hidden_behind_deep_nesting_is_refused() -> None:
    gw = _renaming_gateway()
    body = (b'{"model":"claude-expensive","max_tokens":5,"messages":[{"role":"user","content":"x"}],'
            b'"metadata":{"x":' + b"[" * 1000 + b"]" * 1000 + b'},"model":"claude-cheap"}')
    r = run(call(gw, "POST", "/v1/messages", body, CHEAP_KEY))
    assert r.status == 400, r.body
