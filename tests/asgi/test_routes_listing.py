"""LiteLLM's ``GET /routes`` (every route: path, methods, name, endpoint), a trailing slash served like
the path without it, and ``/health`` honouring each deployment's ``timeout``."""

from __future__ import annotations

import asyncio
import socket
import time

from tests.asgi.conftest import call, make_gateway

H = {"authorization": "Bearer sk-m"}


def test_routes_lists_every_route_in_litellm_shape() -> None:
    async def main() -> None:
        gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/x"}}],
                           "general_settings": {"master_key": "sk-m"}})
        r = await call(gw, "GET", "/routes", None, H)
        assert r.status == 200
        routes = {x["path"]: x for x in r.json()["routes"]}
        for path in ("/v1/chat/completions", "/chat/completions", "/v1/models", "/model/info", "/health",
                     "/routes", "/v1/models/{model_id:path}"):
            assert path in routes, path
        assert set(routes["/v1/chat/completions"]) == {"path", "methods", "name", "endpoint"}
        assert routes["/v1/chat/completions"]["methods"] == ["POST"]
        assert "GET" in routes["/v1/models"]["methods"]
        assert all(x["name"] and x["endpoint"] for x in routes.values())
        assert (await call(gw, "GET", "/routes", None, {"authorization": "Bearer bad"})).status == 401

    asyncio.run(main())


def test_a_trailing_slash_is_served_like_the_path() -> None:
    async def main() -> None:
        gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/x"}}],
                           "general_settings": {"master_key": "sk-m"}})
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        r = await call(gw, "POST", "/v1/chat/completions/", body, H)
        assert r.status == 200 and r.json()["object"] == "chat.completion"
        assert (await call(gw, "GET", "/model/info/", None, H)).status == 200
        assert (await call(gw, "GET", "/v1/models/m/", None, H)).json()["id"] in ("m", "m/")
        assert (await call(gw, "GET", "/nope/", None, H)).status == 404
        assert (await call(gw, "GET", "/v1/chat/completions/", None, H)).status == 405

    asyncio.run(main())


def test_health_uses_each_deployments_timeout() -> None:
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]

    async def main() -> None:
        gw = make_gateway({"model_list": [
            {"model_name": "slow", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "timeout": 0.3,
                                                      "api_base": f"http://127.0.0.1:{port}/v1"}},
            {"model_name": "ok", "litellm_params": {"model": "mock/x"}}],
            "general_settings": {"master_key": "sk-m", "health_check_timeout": 30}})
        t0 = time.monotonic()
        r = await call(gw, "GET", "/health", None, H)
        assert time.monotonic() - t0 < 5
        body = r.json()
        assert [e["model_name"] for e in body["unhealthy_endpoints"]] == ["slow"]
        assert [e["model_name"] for e in body["healthy_endpoints"]] == ["ok"]
        await gw.transport.aclose()

    try:
        asyncio.run(main())
    finally:
        silent.close()
