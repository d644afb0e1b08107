"""Error bodies carry LiteLLM's ``type`` for each failure (statuses unchanged), upstream errors carry the
upstream's headers as ``llm_provider-*``, and ``x-litellm-timeout`` bounds chat calls, unary and streamed.

The upstream is a real local HTTP server answering by path (``/s<status>/...`` with that status and an
error body of type ``up_type``, ``/slow/...`` after 2 s); the gateway runs in-process with its real
transport. What LiteLLM answers, and where in its code, is listed in ``core/errors.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from relaygate.core import errors
from tests.asgi.conftest import call, make_gateway

MASTER = "sk-types-master"
MSGS = [{"role": "user", "content": "hi"}]
CHAT_OK = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "up",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                     "finish_reason": "stop"}]})
SSE = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,'
       b'"delta":{"content":"hi"},"finish_reason":null}]}\n\ndata: [DONE]\n\n')


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            length = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length:")), 0)
            req = await reader.readexactly(length)
            status, body, ctype = 200, CHAT_OK, b"application/json"
            if path.startswith("/slow/"):
                await asyncio.sleep(2.0)
                if b'"stream":true' in req:
                    body, ctype = SSE, b"text/event-stream"
            elif path.startswith("/s"):
                status = int(path[2:5])
                body = orjson.dumps({"error": {"message": "upstream says no", "type": "up_type", "param": "p",
                                               "code": "up_code"}})
            writer.write(b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                         b"x-ratelimit-remaining-requests: 0\r\nretry-after: 0\r\nx-request-id: req-%d\r\n"
                         b"set-cookie: lb=1\r\n\r\n%s" % (status, ctype, len(body), status, body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def upstream() -> AsyncIterator[str]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def _gateway(url: str, extra: list[dict[str, Any]] | None = None) -> Any:
    def dep(name: str, where: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/up", "api_key": "sk-up",
                                                        "api_base": f"{url}/{where}/v1"}}

    models = [dep(f"s{s}", f"s{s}") for s in (400, 401, 404, 422, 429, 500, 503)]
    models += [dep("slow", "slow"), dep("ok", "ok"), *(extra or [])]
    models.append({"model_name": "down", "litellm_params": {"model": "openai/up", "api_key": "k",
                                                             "api_base": "http://127.0.0.1:9/v1"}})
    return make_gateway({"model_list": models, "general_settings": {"master_key": MASTER},
                         "router_settings": {"num_retries": 0, "retry_after": 0}})


AUTH = {"authorization": f"Bearer {MASTER}"}


def _err(reply: Any) -> dict[str, Any]:
    err = reply.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == str(reply.status), err
    return err  # type: ignore[no-any-return]


# (model, status, type): LiteLLM's RateLimitError sets throttling_error; BadRequestError keeps the upstream's
# body (a 400 / 422); every other class is built with body=None, so its type is null
UPSTREAM = [("s400", 400, "up_type"), ("s422", 422, "up_type"), ("s429", 429, "throttling_error"),
            ("s401", 401, None), ("s404", 404, None), ("s500", 500, None), ("s503", 503, None)]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_have_litellms_types(stream: bool) -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            for model, status, etype in UPSTREAM:
                r = await call(gw, "POST", "/v1/chat/completions", {"model": model, "messages": MSGS,
                                                                    "stream": stream}, AUTH)
                assert r.status == status, (model, r.body)
                assert _err(r)["type"] == etype, (model, r.body)
            await gw.aclose()

    asyncio.run(main())


def test_upstream_error_answers_carry_the_upstreams_headers() -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "s429", "messages": MSGS}, AUTH)
            assert r.status == 429
            assert r.headers["llm_provider-x-ratelimit-remaining-requests"] == "0"
            assert r.headers["llm_provider-x-request-id"] == "req-429"
            assert r.headers["llm_provider-retry-after"] == "0" and r.headers["retry-after"] == "0"
            assert "llm_provider-set-cookie" not in r.headers and "llm_provider-content-length" not in r.headers
            assert r.headers["content-type"] == "application/json"
            await gw.aclose()

    asyncio.run(main())


def test_gateway_errors_have_litellms_types() -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "ok", "messages": MSGS})
            assert r.status == 401 and _err(r)["type"] == "auth_error"
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "ok", "messages": MSGS},
                           {"authorization": "Bearer sk-wrong-key-123"})
            assert r.status == 401 and _err(r)["type"] == "auth_error"
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "nope", "messages": MSGS}, AUTH)
            assert r.status == 400 and _err(r)["type"] == "invalid_request_error"
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "down", "messages": MSGS}, AUTH)
            assert r.status == 502 and _err(r)["type"] is None  # LiteLLM's APIConnectionError
            await gw.aclose()

    asyncio.run(main())


def test_no_deployment_free_is_litellms_router_rate_limit_error() -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url, [{"model_name": "one-rpm", "litellm_params": {
                "model": "openai/up", "api_key": "k", "api_base": f"{url}/ok/v1", "rpm": 1}}])
            body = {"model": "one-rpm", "messages": MSGS}
            assert (await call(gw, "POST", "/v1/chat/completions", body, AUTH)).status == 200
            r = await call(gw, "POST", "/v1/chat/completions", body, AUTH)
            assert r.status == 429, r.body
            err = _err(r)
            assert err["type"] == "None" and err["param"] == "None", err  # RouterRateLimitError: a ValueError
            await gw.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("field,status,etype", [
    ("mock_testing_rate_limit_error", 429, "throttling_error"),
    ("mock_timeout", 408, None),
    ("mock_testing_fallbacks", 500, None),
])
def test_mock_errors_have_litellms_types(field: str, status: int, etype: str | None) -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "ok", "messages": MSGS, field: True}, AUTH)
            assert r.status == status and _err(r)["type"] == etype, r.body
            await gw.aclose()

    asyncio.run(main())


def test_anthropic_route_keeps_anthropics_error_shape() -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            r = await call(gw, "POST", "/v1/messages", {"model": "s429", "max_tokens": 5, "messages": MSGS}, AUTH)
            assert r.status == 429
            assert r.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": r.json()["error"][
                "message"]}}
            await gw.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("stream", [False, True])
def test_x_litellm_timeout_bounds_a_chat_call(stream: bool) -> None:
    async def main() -> None:
        async with upstream() as url:
            gw = _gateway(url)
            t = asyncio.get_running_loop().time()
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "slow", "messages": MSGS, "stream": stream},
                           {**AUTH, "x-litellm-timeout": "0.3"})
            assert asyncio.get_running_loop().time() - t < 1.5
            assert r.status == 408 and _err(r)["type"] is None, r.body  # litellm.Timeout
            # without the header the deployment's own timeout (600 s) applies: the call is answered
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "slow", "messages": MSGS, "stream": stream},
                           AUTH)
            assert r.status == 200, r.body
            await gw.aclose()

    asyncio.run(main())


def test_error_classes_defaults() -> None:
    assert errors.GatewayError("x").type == "internal_server_error"
    assert errors.AuthError("x").type == "auth_error"
    assert errors.RateLimited("x").param == "None" and errors.RateLimited("x", param="model").param == "model"
    assert errors.UpstreamError("x", status=429, type="rate_limit_exceeded").type == "throttling_error"
    assert errors.UpstreamError("x", status=400, type="invalid_request_error").type == "invalid_request_error"
    assert errors.UpstreamError("x", status=500, type="server_error").type is None
    assert orjson.loads(errors.UpstreamTimeout("x").body())["error"]["type"] is None
