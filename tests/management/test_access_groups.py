"""LiteLLM's model access group routes (``/access_group/*``) on the models stored in the database, on both
backends: a group made, listed, changed and deleted through them is what keys naming the group may call, at
once on this worker and on another after its next sync; the config file's deployments are left alone."""

from __future__ import annotations

from typing import Any

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from tests.management.conftest import MASTER, Env, api_error, run_pair
from tests.management.conftest import run as run_default


def _gateway() -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": "cfg-model", "litellm_params": {"model": "mock/echo"},
                        "model_info": {"id": "cfg", "access_groups": ["file-group"]}}],
        "general_settings": {"master_key": MASTER, "store_model_in_db": True},
    }, "<test>"))


async def _chat(env: Env, key: str, model: str) -> int:
    r = await env.call("POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user",
                                                                                     "content": "hi"}]}, key=key)
    return r.status


async def _model(env: Env, name: str, model_id: str, **info: Any) -> None:
    await env.ok("POST", "/model/new", {"model_name": name, "litellm_params": {"model": "mock/echo"},
                                        "model_info": {"id": model_id, **info}})


def test_access_groups_on_stored_models(db_url: str) -> None:
    async def body(env: Env, other: Env) -> None:
        await _model(env, "alpha", "a1")
        await _model(env, "alpha", "a2")
        await _model(env, "beta", "b1", access_groups=["legacy"])
        await _model(env, "gamma", "g1")
        key = str((await env.ok("POST", "/key/generate", {"models": ["prod"]}))["key"])
        assert await _chat(env, key, "alpha") == 401  # no group named prod yet

        out = await env.ok("POST", "/access_group/new", {"access_group": "prod", "model_names": ["alpha", "beta"]})
        assert out == {"access_group": "prod", "model_names": ["alpha", "beta"], "model_ids": None,
                       "models_updated": 3}
        assert (await env.store.get_model("b1")).model_info["access_groups"] == ["legacy", "prod"]
        assert await _chat(env, key, "alpha") == 200 and await _chat(env, key, "beta") == 200
        assert await _chat(env, key, "gamma") == 401
        assert await other.gw.sync_models() is True and await _chat(other, key, "beta") == 200  # another worker

        listed = (await env.ok("GET", "/access_group/list"))["access_groups"]
        assert listed == [
            {"access_group": "legacy", "model_names": ["beta"], "deployment_count": 1, "spend": None, "budget": None},
            {"access_group": "prod", "model_names": ["alpha", "beta"], "deployment_count": 3, "spend": None,
             "budget": None}]  # the config file's group is the file's: not listed, not changed
        assert (await env.ok("GET", "/access_group/prod/info"))["deployment_count"] == 3
        api_error(await env.call("GET", "/access_group/nope/info"), 404, "Access group 'nope' not found")

        # update: exactly the deployments named afterwards
        out = await env.ok("PUT", "/access_group/prod/update", {"model_ids": ["a1", "g1"]})
        assert out["models_updated"] == 2
        assert await _chat(env, key, "gamma") == 200 and await _chat(env, key, "beta") == 401
        assert (await env.store.get_model("b1")).model_info["access_groups"] == ["legacy"]
        assert (await env.store.get_model("a2")).model_info["access_groups"] == []
        assert await _chat(env, key, "alpha") == 200  # a1 still carries it

        out = await env.ok("DELETE", "/access_group/prod/delete")
        assert out == {"access_group": "prod", "models_updated": 2,
                       "message": "Access group 'prod' deleted successfully"}
        assert await _chat(env, key, "alpha") == 401 and await _chat(env, key, "gamma") == 401
        assert [g["access_group"] for g in (await env.ok("GET", "/access_group/list"))["access_groups"]] == ["legacy"]

        # refusals, LiteLLM's wording
        api_error(await env.call("POST", "/access_group/new", {"access_group": "legacy", "model_names": ["gamma"]}),
                  409, "Access group 'legacy' already exists")
        api_error(await env.call("POST", "/access_group/new", {"access_group": "x", "model_names": ["cfg-model"]}),
                  400, "Can't find model 'cfg-model' in Database")
        api_error(await env.call("POST", "/access_group/new", {"access_group": "x", "model_ids": ["nope"]}),
                  400, "Deployment with model_id 'nope' not found in Database.")
        api_error(await env.call("POST", "/access_group/new", {"access_group": " ", "model_names": ["gamma"]}),
                  400, "access_group is required")
        api_error(await env.call("POST", "/access_group/new", {"access_group": "x"}), 400,
                  "Either model_names or model_ids must be provided")
        api_error(await env.call("PUT", "/access_group/nope/update", {"model_names": ["gamma"]}), 404,
                  "Access group 'nope' not found")
        api_error(await env.call("DELETE", "/access_group/nope/delete"), 404, "Access group 'nope' not found")
        api_error(await env.call("GET", "/access_group/list", key=key), 401, "Only proxy admin")

    run_pair(db_url, _gateway, body)


def test_access_groups_need_store_model_in_db(db_url: str) -> None:
    async def body(env: Env) -> None:
        r = await env.call("POST", "/access_group/new", {"access_group": "g", "model_names": ["gpt-a"]})
        api_error(r, 400, "store_model_in_db")
        assert (await env.ok("GET", "/access_group/list")) == {"access_groups": []}

    run_default(db_url, body)
