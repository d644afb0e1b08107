"""LiteLLM's ``POST /health/test_connection`` (``gateway.test_connection``) against real upstream servers (the
bench mock): a configured deployment tried by group, by id and by its model string, with an embedding; a
deployment from the request alone; the configured secret never carried to an ``api_base`` the request chose; a
stored credential named by the request; an upstream that refuses or is gone (a 200 with ``status: error``);
and the bodies that describe no deployment (400 / 404), without a database too, and callers that are not the
admin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bench.procs import MockHandle, start_mock
from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import User, open_store
from tests.management.conftest import MASTER, Env, api_error

SECRET = "sk-config-secret-123"


@pytest.fixture(scope="module")
def home() -> Any:
    with start_mock(name="home", api_key=SECRET) as mock:
        yield mock


@pytest.fixture(scope="module")
def elsewhere() -> Any:
    with start_mock(name="elsewhere", require_auth=False, record=200) as mock:
        yield mock


def _gateway(home: MockHandle) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_base": home.openai_base,
                                                     "api_key": SECRET}, "model_info": {"id": "dep-gpt"}},
            {"model_name": "emb", "litellm_params": {"model": "openai/text-embedding-3-small",
                                                     "api_base": home.openai_base, "api_key": SECRET},
             "model_info": {"mode": "embedding"}},
            {"model_name": "wild/*", "litellm_params": {"model": "openai/*", "api_base": home.openai_base,
                                                        "api_key": SECRET}}],
        "general_settings": {"master_key": MASTER, "store_model_in_db": True},
    }, "<test>"))


def _run(url: str | None, home: MockHandle, body: Callable[[Env], Awaitable[None]]) -> None:
    async def main() -> None:
        gw = _gateway(home)
        store = await open_store(url) if url is not None else None
        gw.store = store
        if store is not None:
            gw.runtime.use_store(store)
        try:
            await body(Env(gw, store))  # type: ignore[arg-type]
        finally:
            gw.store = None
            if store is not None:
                await store.close()

    asyncio.run(main())


async def _try(env: Env, params: dict[str, Any], **body: Any) -> dict[str, Any]:
    got: dict[str, Any] = await env.ok("POST", "/health/test_connection", {"litellm_params": params, **body})
    return got


def test_configured_and_new_deployments(db_url: str, home: MockHandle, elsewhere: MockHandle) -> None:
    async def body(env: Env) -> None:
        ok = await _try(env, {"model": "gpt"})
        assert ok == {"status": "success", "result": {"model": "openai/gpt-4o", "custom_llm_provider": "openai",
                                                      "mode": "chat", "api_base": home.openai_base}}
        assert (await _try(env, {}, model_info={"id": "dep-gpt"}))["status"] == "success"
        assert (await _try(env, {"model": "openai/gpt-4o"}))["status"] == "success"  # its model string
        emb = await _try(env, {"model": "emb"})  # the configured model_info.mode: an embedding
        assert emb["status"] == "success" and emb["result"]["mode"] == "embedding"
        home.reset()
        assert (await _try(env, {"model": "gpt"}, mode="embedding"))["status"] == "success"
        assert [r["target"] for r in home.requests()] == ["/v1/embeddings"]

        # a connection of the request's own: the configured key is not sent to the api_base it chose
        elsewhere.reset()
        moved = await _try(env, {"model": "gpt", "api_base": elsewhere.openai_base}, mode="chat")
        assert moved["status"] == "success" and moved["result"]["api_base"] == elsewhere.openai_base
        seen = elsewhere.requests()
        assert seen and all(SECRET not in str(r.get("headers")) for r in seen), seen

        # a deployment from the request alone: its own key, right and wrong
        fresh = {"model": "openai/gpt-4o-mini", "api_base": home.openai_base}
        assert (await _try(env, {**fresh, "api_key": SECRET}))["status"] == "success"
        wrong = await _try(env, {**fresh, "api_key": "sk-wrong"})
        assert wrong["status"] == "error" and "Incorrect API key" in wrong["result"]["error"]
        gone = await _try(env, {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-x"})
        assert gone["status"] == "error" and gone["result"]["error"]
        home.set_config(fault_500=1.0)
        try:
            failing = await _try(env, {"model": "gpt"}, mode="chat")
        finally:
            home.set_config(fault_500=0.0)
        assert failing["status"] == "error"

        if env.store is not None:  # a stored credential named by the request
            await env.ok("POST", "/credentials", {"credential_name": "home-cred",
                                                  "credential_values": {"api_key": SECRET}})
            named = await _try(env, {**fresh, "litellm_credential_name": "home-cred"})
            assert named["status"] == "success", named
            api_error(await env.call("POST", "/health/test_connection", {"litellm_params": {
                **fresh, "litellm_credential_name": "nope"}}), 400, "nope")

        for sent, status, needle in (
                ({"litellm_params": {"model": "gpt", "api_key": "os.environ/OPENAI_API_KEY"}}, 400, "os.environ/"),
                ({"litellm_params": {"model": "vertex_ai/gemini-pro", "vertex_credentials": "/etc/passwd"}}, 400,
                 "vertex_credentials"),
                ({"litellm_params": {"model": "bedrock/m", "aws_profile_name": "default"}}, 400, "aws_profile_name"),
                ({"litellm_params": {}, "model_info": {"id": "no-such-id"}}, 404, "no-such-id"),
                ({"litellm_params": {}}, 400, "litellm_params.model is required"),
                ({"litellm_params": {"model": "gpt"}, "mode": "rerank"}, 400, "cannot be tested here"),
                ({"litellm_params": {"model": "gpt", "mode": 3}}, 400, "must be a string"),
                ({"litellm_params": {"model": "wild/*"}}, 400, "wildcard"),
                ({"litellm_params": {"model": "openai/x", "rpm": -5}}, 400, "rpm"),
                ({"litellm_params": {"model": "nosuchprovider/x"}}, 400, "provider"),
                ({"litellm_params": "gpt"}, 400, "litellm_params")):
            api_error(await env.call("POST", "/health/test_connection", sent), status, needle)
        if env.store is not None:
            await env.store.create_user(User(user_id="u1", user_role="internal_user"))
            key = (await env.ok("POST", "/key/generate", {"user_id": "u1"}))["key"]
            api_error(await env.call("POST", "/health/test_connection", {"litellm_params": {"model": "gpt"}},
                                     key=key), 401, "Only proxy admin")

    _run(db_url, home, body)


def test_without_a_database(home: MockHandle) -> None:
    async def body(env: Env) -> None:
        assert (await _try(env, {"model": "gpt"}))["status"] == "success"
        api_error(await env.call("POST", "/health/test_connection", {"litellm_params": {
            "model": "openai/x", "litellm_credential_name": "c"}}), 400, "c")

    _run(None, home, body)
