"""/model/new|update|delete with ``store_model_in_db`` on both backends: stored models join the runtime
without a restart (this worker at once, another worker on its next sync), show on /v1/models and
/model/info with ``db_model: true``, survive a config reload, and never answer their credentials."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store.sealing import PREFIX, open_credentials, sealer_for
from tests.management.conftest import MASTER, Env, run_pair
from tests.management.conftest import run as run_default


def _gateway() -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "gpt-a", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "cfg"}}],
        "general_settings": {"master_key": MASTER, "store_model_in_db": True},
    }, "<test>"))


def _run(url: str, body: Any) -> None:
    run_pair(url, _gateway, body)


async def _chat(env: Env, model: str) -> int:
    r = await env.call("POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user",
                                                                                     "content": "hi"}]})
    return r.status


async def _names(env: Env) -> list[str]:
    return [m["id"] for m in (await env.ok("GET", "/v1/models"))["data"]]


def test_models_in_the_database(db_url: str) -> None:
    async def body(env: Env, other: Env) -> None:
        out = await env.ok("POST", "/model/new", {
            "model_name": "db-model", "litellm_params": {"model": "mock/echo", "api_key": "sk-upstream-secret"},
            "model_info": {"id": "m1", "mode": "chat"}})
        assert out["model_id"] == "m1" and out["model_name"] == "db-model"
        assert "sk-upstream-secret" not in str(out) and out["litellm_params"] == {"model": "mock/echo"}
        assert await _names(env) == ["gpt-a", "db-model"] and await _chat(env, "db-model") == 200
        info = (await env.ok("GET", "/model/info?litellm_model_id=m1"))["data"]
        assert len(info) == 1 and info[0]["model_info"]["db_model"] is True
        assert "sk-upstream-secret" not in str(await env.ok("GET", "/model/info"))
        cfg = (await env.ok("GET", "/model/info?litellm_model_id=cfg"))["data"][0]
        assert cfg["model_info"]["db_model"] is False
        # another worker on the same database: serves it on its next sync (the change poll's job)
        assert await _chat(other, "db-model") == 400
        assert await other.gw.sync_models() is True and await _chat(other, "db-model") == 200
        assert await other.gw.sync_models() is False  # nothing changed: no new snapshot

        upd = await env.ok("POST", "/model/update", {"model_name": "db-renamed", "model_info": {"id": "m1"}})
        assert upd["model_name"] == "db-renamed" and upd["litellm_params"] == {"model": "mock/echo"}
        stored = (await env.store.get_model("m1")).litellm_params["api_key"]  # kept, sealed at rest
        assert stored.startswith(PREFIX) and "sk-upstream-secret" not in stored
        assert open_credentials({"api_key": stored}, sealer_for(env.gw.runtime.config)) == {
            "api_key": "sk-upstream-secret"}
        assert await _chat(env, "db-model") == 400 and await _chat(env, "db-renamed") == 200
        await env.ok("PATCH", "/model/m1/update", {"model_info": {"base_model": "gpt-4o"}})
        assert (await env.store.get_model("m1")).model_info == {"mode": "chat", "base_model": "gpt-4o"}
        # a config reload keeps the stored models
        await env.gw.swap(env.gw.file_config, env.gw.runtime.generation + 1, "test reload")
        assert await _names(env) == ["gpt-a", "db-renamed"]

        before = await env.store.change_version()
        for path, payload, status, param in (
                ("/model/new", {"litellm_params": {"model": "mock/echo"}}, 400, "model_name"),
                ("/model/new", {"model_name": "x", "litellm_params": {}}, 400, "litellm_params.model"),
                ("/model/new", {"model_name": "x", "litellm_params": {"model": "nope/x"}}, 400, "litellm_params.model"),
                ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/echo", "rpm": "many"}}, 400,
                 "litellm_params.rpm"),
                ("/model/new", {"model_name": "x", "litellm_params": {"model": "openai/x",
                                                                      "litellm_credential_name": "c"}}, 400,
                 "litellm_params.litellm_credential_name"),
                ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "cfg"}},
                 400, "model_info.id"),
                ("/model/new", {"model_name": "x", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "m1"}},
                 400, "model_info.id"),
                ("/model/update", {"model_name": "y"}, 400, "model_info.id"),
                ("/model/update", {"model_info": {"id": "nope"}}, 404, "model_id"),
                ("/model/update", {"model_info": {"id": "m1"}, "litellm_params": {"model": "nope/x"}}, 400,
                 "litellm_params.model"),
                ("/model/delete", {"id": "nope"}, 404, "id"),
                ("/model/delete", {}, 400, "id")):
            r = await env.call("POST", path, payload)
            assert r.status == status and r.json()["error"]["param"] == param, (path, payload, r.status, r.body)
        assert await env.store.change_version() == before
        assert await _chat(env, "db-renamed") == 200

        assert (await env.ok("POST", "/model/delete", {"id": "m1"}))["message"] == "Model: m1 deleted successfully"
        assert await _names(env) == ["gpt-a"] and await _chat(env, "db-renamed") == 400
        assert await other.gw.sync_models() is True and await _names(other) == ["gpt-a"]

    _run(db_url, body)


def test_models_need_store_model_in_db(db_url: str) -> None:
    async def body(env: Env) -> None:
        r = await env.call("POST", "/model/new", {"model_name": "x", "litellm_params": {"model": "mock/echo"}})
        assert r.status == 400 and r.json()["error"]["param"] == "store_model_in_db"
        assert (await env.store.list_models()).total == 0

    run_default(db_url, body)


def test_a_negative_limit_is_refused_not_stored(db_url: str) -> None:
    """A stored model with a negative ``rpm`` (or ``tpm``, ``timeout`` ...) is a 400 naming it, and nothing is
    stored: it used to be stored, then break the router's build, a 500 here and on every later sync, for every
    stored model."""
    async def body(env: Env, other: Env) -> None:
        for field, value in (("rpm", -5), ("tpm", -1), ("max_parallel_requests", -1), ("timeout", -2.5),
                             ("weight", -1)):
            r = await env.call("POST", "/model/new", {"model_name": "bad", "litellm_params": {
                "model": "mock/echo", field: value}})
            assert r.status == 400 and field in r.json()["error"]["message"], (field, r.status, r.body)
        assert "bad" not in await _names(env)
        await env.ok("POST", "/model/new", {"model_name": "good", "litellm_params": {"model": "mock/echo", "rpm": 0,
                                                                                      "tpm": 100}})
        assert await _chat(env, "good") == 200
        assert await other.gw.sync_models() is True and await _chat(other, "good") == 200

    _run(db_url, body)


def test_a_failed_read_of_the_stored_models_is_read_again(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The other worker's read after a change fails (its database connections gone): one warning, and it reads
    again until a read succeeds, so the change is served once the database answers, with no further change
    needed (it used to wait for the next one). A second failed read meanwhile starts no second retry loop."""
    async def body(env: Env, other: Env) -> None:
        await env.ok("POST", "/model/new", {"model_name": "late", "litellm_params": {"model": "mock/echo"}})
        await other.store.close()
        with caplog.at_level(logging.INFO, logger="relaygate"):
            await other.gw._sync_models_logged()  # the change poll's read: fails
            await other.gw._sync_models_logged()  # another change meanwhile: fails too
            assert other.gw._sync_retrying and await _chat(other, "late") == 400
            await other.store.connect()  # the database answers again
            deadline = time.monotonic() + 10
            while other.gw._sync_retrying:
                assert time.monotonic() < deadline, "the stored models were never read again"
                await asyncio.sleep(0.05)
        assert await _chat(other, "late") == 200
        said = [r.getMessage() for r in caplog.records if r.name == "relaygate"]
        assert sum("database models could not be read" in m for m in said) == 1, said
        assert "database models read again" in said

    _run(db_url, body)


def test_a_blocked_model_is_kept_listed_and_not_served(db_url: str) -> None:
    """LiteLLM's ``/model/block`` and ``/model/unblock``: a blocked stored model answers no request on either
    worker and leaves ``/v1/models``, but ``/model/info`` still lists it (``model_info.blocked: true``) so it can
    be unblocked, which serves it again; a config deployment is LiteLLM's 400, an unknown id its 404, and only the
    proxy admin may do either."""
    async def info(env: Env, model_id: str) -> dict[str, Any]:
        data = (await env.ok("GET", f"/model/info?litellm_model_id={model_id}"))["data"]
        assert len(data) == 1, data
        return dict(data[0]["model_info"])

    async def body(env: Env, other: Env) -> None:
        await env.ok("POST", "/model/new", {"model_name": "pausable", "litellm_params": {
            "model": "mock/echo", "api_key": "sk-paused-upstream-secret"}, "model_info": {"id": "p1"}})
        assert await other.gw.sync_models() is True and await _chat(other, "pausable") == 200
        assert (await info(env, "p1"))["blocked"] is False

        out = await env.ok("POST", "/model/block", {"model_id": "p1"})
        assert out["blocked"] is True and out["model_id"] == "p1" and "sk-paused-upstream-secret" not in str(out)
        assert await other.gw.sync_models() is True
        for e in (env, other):
            assert await _chat(e, "pausable") == 400 and "pausable" not in await _names(e)
            shown = await info(e, "p1")
            assert shown["blocked"] is True and shown["db_model"] is True
        assert (await env.ok("POST", "/model/block", {"model_id": "p1"}))["blocked"] is True  # again: no change

        out = await env.ok("POST", "/model/unblock", {"model_id": "p1"})
        assert out["blocked"] is False
        assert await other.gw.sync_models() is True
        for e in (env, other):
            assert await _chat(e, "pausable") == 200 and (await info(e, "p1"))["blocked"] is False

        r = await env.call("POST", "/model/block", {"model_id": "cfg"})
        assert r.status == 400 and "config-based model" in r.json()["error"]["message"], r.body
        r = await env.call("POST", "/model/unblock", {"model_id": "nope"})
        assert r.status == 404 and r.json()["error"]["message"] == "Model nope not found on proxy.", r.body
        for bad in ({}, {"model_id": 5}, {"id": "p1"}):
            r = await env.call("POST", "/model/block", bad)
            assert r.status == 400 and "model_id" in r.json()["error"]["message"], (bad, r.body)
        key = (await env.ok("POST", "/key/generate", {}))["key"]
        r = await env.call("POST", "/model/block", {"model_id": "p1"}, key=key)
        assert r.status in (401, 403), r.body
        assert (await env.store.get_model("p1")).blocked is False

    _run(db_url, body)
