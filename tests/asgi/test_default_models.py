"""LiteLLM's ``general_settings.completion_model`` / ``embedding_model`` (and ``image_generation_model``,
``moderation_model``): the model a kind of call is served by, whatever the request names, as LiteLLM's proxy
overrides it; other kinds of calls are untouched (in process)."""

from __future__ import annotations

import asyncio

from tests.asgi.conftest import call, make_gateway

AUTH = {"Authorization": "Bearer sk-dm"}


def test_default_models_override_what_the_request_names() -> None:
    gw = make_gateway({
        "model_list": [{"model_name": n, "litellm_params": {"model": "mock/echo"}, "model_info": {"id": n}}
                       for n in ("asked", "served", "emb")],
        "general_settings": {"master_key": "sk-dm", "completion_model": "served", "embedding_model": "emb"},
    })

    async def main() -> None:
        for path, body in (("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
                           ("/v1/completions", {"prompt": "x"})):
            r = await call(gw, "POST", path, {"model": "asked", **body}, AUTH)
            assert r.status == 200 and r.headers["x-litellm-model-group"] == "served", r.body
            r = await call(gw, "POST", path, {"model": "no-such-model", **body}, AUTH)
            assert r.status == 200 and r.headers["x-litellm-model-id"] == "served"
        r = await call(gw, "POST", "/v1/embeddings", {"model": "asked", "input": "x"}, AUTH)
        assert r.status == 200 and r.headers["x-litellm-model-id"] == "emb"
        r = await call(gw, "POST", "/v1/messages", {"model": "asked", "max_tokens": 5,
                                                    "messages": [{"role": "user", "content": "x"}]}, AUTH)
        assert r.status == 200 and r.headers["x-litellm-model-id"] == "asked"  # not one of LiteLLM's four

    asyncio.run(main())
