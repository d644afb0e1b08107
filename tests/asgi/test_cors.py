"""CORS in-process: preflights on any path, Access-Control-* on every answer (JSON, errors, streams),
credentials and origin echo, CORS turned off, config loading and validation, reload."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.config import ConfigError, from_litellm, from_native, validate
from relaygate.core.errors import GatewayError
from relaygate.http.types import Receive, Scope, Send

from .conftest import Reply, call

MASTER = "sk-cors"
AUTH = {"Authorization": f"Bearer {MASTER}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SITE = "https://app.example.com"
OTHER = "https://evil.example.net"


def config(**server: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "mock/echo", "mock_chunks": 3}},
            {"model_name": "limited", "litellm_params": {"model": "mock/x", "mock_response": "ok", "rpm": 1}},
        ],
        "general_settings": {"master_key": MASTER},
        "relaygate_settings": server,
    }


def gateway(**server: Any) -> Gateway:
    gw = Gateway(from_litellm(config(**server), "<test>"))

    async def boom(scope: Scope, receive: Receive, send: Send, params: Any) -> None:
        raise RuntimeError("a bug")

    gw.routes.add("GET", "/boom", boom)
    return gw


def calls(gw: Gateway, *requests: tuple[Any, ...]) -> list[Reply]:
    async def main() -> list[Reply]:
        try:
            return [await call(gw, *r) for r in requests]
        finally:
            await gw.aclose()

    return asyncio.run(main())


def preflight(path: str = "/v1/chat/completions", origin: str = SITE, method: str = "POST",
              headers: str | None = "authorization, content-type") -> tuple[Any, ...]:
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return ("OPTIONS", path, None, h)


def cors_headers(r: Reply) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-") or k == "vary"}


# -- preflight ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/health", "/v1/models",
                                  "/no/such/route"])
def test_preflight_default_is_litellms_star_on_any_path(path: str) -> None:
    (r,) = calls(gateway(), preflight(path))
    assert r.status == 200 and r.body == b"OK"
    assert cors_headers(r) == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
        "access-control-max-age": "600",
        "access-control-allow-headers": "authorization, content-type",  # '*': what was asked, mirrored
    }


def test_preflight_with_explicit_lists() -> None:
    gw = gateway(cors_allow_origins=[SITE, "http://localhost:3000"], cors_allow_methods=["POST", "GET"],
                 cors_allow_headers=["Authorization", "X-Api-Key"], cors_max_age=60)
    ok, bad_origin, bad_method, bad_header, all_bad, safelisted = calls(
        gw, preflight(), preflight(origin=OTHER), preflight(method="DELETE"),
        preflight(headers="authorization, x-other"), preflight(origin=OTHER, method="PUT", headers="x-other"),
        preflight(headers="Content-Type"))
    assert ok.status == 200 and ok.body == b"OK"
    assert cors_headers(ok) == {
        "access-control-allow-origin": SITE, "vary": "Origin",
        "access-control-allow-methods": "POST, GET", "access-control-max-age": "60",
        "access-control-allow-headers": "accept, accept-language, authorization, content-language, "
                                        "content-type, x-api-key",
        "access-control-allow-credentials": "true",  # an explicit origin list: credentials on unless set off
    }
    assert bad_origin.status == 400 and bad_origin.body == b"Disallowed CORS origin"
    assert "access-control-allow-origin" not in bad_origin.headers  # a refused origin is never reflected
    assert bad_method.status == 400 and bad_method.body == b"Disallowed CORS method"
    assert bad_header.status == 400 and bad_header.body == b"Disallowed CORS headers"
    assert all_bad.status == 400 and all_bad.body == b"Disallowed CORS origin, method, headers"
    assert safelisted.status == 200


@pytest.mark.parametrize("asked", ["authorization\r\nx-injected: 1", "x-a; x-b", "x-a, , x-b", "é"])
def test_preflight_never_mirrors_what_is_not_a_header_list(asked: str) -> None:
    (r,) = calls(gateway(), preflight(headers=asked))
    assert r.status == 400 and r.body == b"Disallowed CORS headers"
    assert "access-control-allow-headers" not in r.headers and "x-injected" not in r.headers


def test_options_without_request_method_is_an_ordinary_request() -> None:
    (r,) = calls(gateway(), ("OPTIONS", "/v1/chat/completions", None, {"Origin": SITE}))
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert r.headers["access-control-allow-origin"] == "*"


# -- simple requests: every answer carries the headers --------------------------------------------------


def test_every_answer_carries_allow_origin() -> None:
    o = {"Origin": SITE}
    ok, stream, unauth, missing, wrong_method, first, limited, bug, plain = calls(
        gateway(cors_expose_headers=["x-litellm-call-id"]),
        ("POST", "/v1/chat/completions", CHAT, {**AUTH, **o}),
        ("POST", "/v1/chat/completions", {**CHAT, "stream": True}, {**AUTH, **o}),
        ("POST", "/v1/chat/completions", CHAT, o),
        ("GET", "/v1/nope", None, {**AUTH, **o}),
        ("GET", "/v1/chat/completions", None, {**AUTH, **o}),
        ("POST", "/v1/chat/completions", {**CHAT, "model": "limited"}, {**AUTH, **o}),
        ("POST", "/v1/chat/completions", {**CHAT, "model": "limited"}, {**AUTH, **o}),
        ("GET", "/boom", None, o),
        ("POST", "/v1/chat/completions", CHAT, AUTH),
    )
    answers = [ok, stream, unauth, missing, wrong_method, limited, bug]
    assert [r.status for r in answers] == [200, 200, 401, 404, 405, 429, 500], [r.body for r in answers]
    assert first.status == 200
    assert stream.headers["content-type"] == "text/event-stream" and stream.body.endswith(b"data: [DONE]\n\n")
    for r in answers:
        assert cors_headers(r) == {"access-control-allow-origin": "*",
                                   "access-control-expose-headers": "x-litellm-call-id"}, r.status
    assert limited.headers["retry-after"] and ok.headers["x-litellm-call-id"]  # the answer's own headers stay
    assert cors_headers(plain) == {}  # no Origin: nothing added


def test_origin_found_anywhere_among_the_headers() -> None:
    headers = {**AUTH, "Content-Type": "application/json", "User-Agent": "x", "Origin": SITE, "Accept": "*/*"}
    (r,) = calls(gateway(), ("POST", "/v1/chat/completions", CHAT, headers))
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "*"


def test_explicit_origins_echo_the_allowed_one_only() -> None:
    gw = gateway(cors_allow_origins=[SITE], cors_expose_headers=["x-litellm-call-id", "x-ratelimit-remaining-requests"])
    allowed, refused, stream = calls(
        gw,
        ("POST", "/v1/chat/completions", CHAT, {**AUTH, "Origin": SITE}),
        ("POST", "/v1/chat/completions", CHAT, {**AUTH, "Origin": OTHER}),
        ("POST", "/v1/chat/completions", {**CHAT, "stream": True}, {"Origin": SITE}),  # 401
    )
    expected = {"access-control-allow-origin": SITE, "vary": "Origin", "access-control-allow-credentials": "true",
                "access-control-expose-headers": "x-litellm-call-id, x-ratelimit-remaining-requests"}
    assert allowed.status == 200 and cors_headers(allowed) == expected
    assert stream.status == 401 and cors_headers(stream) == expected
    assert refused.status == 200 and cors_headers(refused) == {"vary": "Origin"}


def test_credentials_can_be_turned_off_for_an_origin_list() -> None:
    (r,) = calls(gateway(cors_allow_origins=[SITE], cors_allow_credentials=False),
                 ("GET", "/health/liveliness", None, {"Origin": SITE}))
    assert cors_headers(r) == {"access-control-allow-origin": SITE, "vary": "Origin"}


def test_star_with_credentials_echoes_the_origin() -> None:
    gw = gateway(cors_allow_credentials=True)
    simple, pre, malformed, malformed_pre = calls(
        gw,
        ("POST", "/v1/chat/completions", CHAT, {**AUTH, "Origin": OTHER}),
        preflight(origin=OTHER),
        ("POST", "/v1/chat/completions", CHAT, {**AUTH, "Origin": "https://a.example\r\nset-cookie: x=1"}),
        preflight(origin="javascript:alert(1)"),
    )
    assert cors_headers(simple) == {"access-control-allow-origin": OTHER, "vary": "Origin",
                                    "access-control-allow-credentials": "true"}
    assert pre.status == 200 and pre.headers["access-control-allow-origin"] == OTHER
    assert pre.headers["access-control-allow-credentials"] == "true" and pre.headers["vary"] == "Origin"
    # what has not the shape of an origin is never echoed: '*' without credentials
    assert cors_headers(malformed) == {"access-control-allow-origin": "*"} and "set-cookie" not in malformed.headers
    assert malformed_pre.status == 400 and "access-control-allow-origin" not in malformed_pre.headers


def test_empty_origin_list_turns_cors_off() -> None:
    pre, simple = calls(gateway(cors_allow_origins=[]), preflight(),
                        ("POST", "/v1/chat/completions", CHAT, {**AUTH, "Origin": SITE}))
    assert pre.status == 405 and cors_headers(pre) == {}
    assert simple.status == 200 and cors_headers(simple) == {}


def test_a_reload_changes_the_policy() -> None:
    gw = gateway()

    async def main() -> tuple[Reply, Reply]:
        try:
            before = await call(gw, "GET", "/health/liveliness", None, {"Origin": SITE})
            await gw.swap(from_litellm(config(cors_allow_origins=[SITE]), "<test>"), 2)
            after = await call(gw, "GET", "/health/liveliness", None, {"Origin": SITE})
            return before, after
        finally:
            await gw.aclose()

    before, after = asyncio.run(main())
    assert before.headers["access-control-allow-origin"] == "*" and "vary" not in before.headers
    assert after.headers["access-control-allow-origin"] == SITE and after.headers["vary"] == "Origin"


def test_errors_raised_by_a_handler_keep_their_headers() -> None:
    gw = gateway()

    async def teapot(scope: Scope, receive: Receive, send: Send, params: Any) -> None:
        raise GatewayError("no", status=418, headers=[(b"x-why", b"because")])

    gw.routes.add("GET", "/teapot", teapot)
    (r,) = calls(gw, ("GET", "/teapot", None, {"Origin": SITE}))
    assert r.status == 418 and r.headers["x-why"] == "because" and r.headers["access-control-allow-origin"] == "*"


# -- config ---------------------------------------------------------------------------------------------


def test_defaults_and_litellm_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITELLM_CORS_ORIGINS", raising=False)
    monkeypatch.delenv("LITELLM_CORS_ALLOW_CREDENTIALS", raising=False)
    s = from_litellm({}, "<t>").server
    assert (s.cors_allow_origins, s.cors_allow_credentials, s.cors_allow_methods, s.cors_allow_headers,
            s.cors_expose_headers, s.cors_max_age) == (["*"], None, ["*"], ["*"], [], 600)
    # LiteLLM's general_settings keys, a list given as a comma-separated string
    s = from_litellm({"general_settings": {"cors_allow_origins": f"{SITE}, http://localhost:3000",
                                           "cors_allow_credentials": False, "cors_allow_methods": ["POST"],
                                           "cors_allow_headers": "Authorization"}}, "<t>").server
    assert s.cors_allow_origins == [SITE, "http://localhost:3000"] and s.cors_allow_credentials is False
    assert s.cors_allow_methods == ["POST"] and s.cors_allow_headers == ["Authorization"]
    s = from_native({"server": {"cors_allow_origins": [SITE], "cors_max_age": 0,
                                "cors_expose_headers": ["x-litellm-call-id"]}}, "<t>").server
    assert s.cors_allow_origins == [SITE] and s.cors_max_age == 0 and s.cors_expose_headers == ["x-litellm-call-id"]


def test_litellm_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_CORS_ORIGINS", f" {SITE} ,, http://localhost:3000 ")
    monkeypatch.setenv("LITELLM_CORS_ALLOW_CREDENTIALS", "TRUE")
    s = from_litellm({}, "<t>").server
    assert s.cors_allow_origins == [SITE, "http://localhost:3000"] and s.cors_allow_credentials is True
    # the file wins over the environment (as for the master key)
    s = from_native({"server": {"cors_allow_origins": ["*"], "cors_allow_credentials": False}}, "<t>").server
    assert s.cors_allow_origins == ["*"] and s.cors_allow_credentials is False
    monkeypatch.setenv("LITELLM_CORS_ALLOW_CREDENTIALS", "maybe")
    with pytest.raises(ConfigError, match="LITELLM_CORS_ALLOW_CREDENTIALS: expected true or false"):
        from_litellm({}, "<t>")


@pytest.mark.parametrize("server, message", [
    ({"cors_allow_origins": ["https://a.example/"]}, "server.cors_allow_origins[0]: 'https://a.example/' is not an origin"),
    ({"cors_allow_origins": ["*", "https://*.example.com"]}, "server.cors_allow_origins[1]"),
    ({"cors_allow_origins": ["a.example"]}, "server.cors_allow_origins[0]"),
    ({"cors_allow_origins": ["https://a.example\r\nx: y"]}, "server.cors_allow_origins[0]"),
    ({"cors_allow_methods": ["GET", "PO ST"]}, "server.cors_allow_methods[1]: 'PO ST' is not a method or header"),
    ({"cors_allow_headers": ["x:y"]}, "server.cors_allow_headers[0]"),
    ({"cors_expose_headers": [""]}, "server.cors_expose_headers[0]"),
    ({"cors_max_age": -1}, "server.cors_max_age: expected a whole number of seconds >= 0"),
])
def test_invalid_values_are_named(server: dict[str, Any], message: str) -> None:
    cfg = from_native({"server": server}, "<t>")
    assert any(message in e for e in validate(cfg)), validate(cfg)
    with pytest.raises(ValueError, match=r"server\.cors_"):  # a gateway is never built on them
        Gateway(cfg)


@pytest.mark.parametrize("server, field", [
    ({"cors_allow_origins": 5}, "relaygate_settings.cors_allow_origins"),
    ({"cors_allow_credentials": "sometimes"}, "relaygate_settings.cors_allow_credentials"),
    ({"cors_max_age": "long"}, "relaygate_settings.cors_max_age"),
])
def test_wrong_types_are_config_errors(server: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_litellm({"relaygate_settings": server}, "<t>")
    assert info.value.field == field


def test_valid_values_pass() -> None:
    cfg = from_native({"server": {"cors_allow_origins": ["*", "null", "http://[::1]:8080", "https://a.b-c.example",
                                                        "chrome-extension://abcdef"],
                                  "cors_allow_methods": ["*"], "cors_allow_headers": ["*", "X-Api-Key"],
                                  "cors_expose_headers": ["*"], "cors_max_age": 86400}}, "<t>")
    assert validate(cfg) == []
