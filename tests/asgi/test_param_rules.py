"""Parameter rules through the gateway (issue 11, rule 2): what reaches a real upstream for OpenAI reasoning
models, Anthropic models and unknown OpenAI-compatible servers; ``drop_params`` global, per deployment and
per request; ``additional_drop_params``; ``/v1/messages`` (Claude Code) routed to an OpenAI reasoning model."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.asgi.conftest import call, make_gateway
from tests.asgi.test_pipeline_routes import Upstream, upstream

CHAT = [{"role": "user", "content": "hi"}]


def gateway(up: Upstream, drop: bool | None = None, **deps: dict[str, Any]) -> Any:
    model_list = [{"model_name": name, "litellm_params": {"api_key": "sk-up", "api_base": f"{up.url}/ok/v1", **p}}
                  for name, p in deps.items()]
    cfg: dict[str, Any] = {"model_list": model_list}
    if drop is not None:
        cfg["litellm_settings"] = {"drop_params": drop}
    return make_gateway(cfg)


def sent(up: Upstream) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(up.bodies[-1])
    return body


def test_o_series_gets_max_completion_tokens_and_a_litellm_400_for_temperature() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, o3={"model": "openai/o3"})
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "o3", "messages": CHAT, "max_tokens": 50, "temperature": 1})
            assert r.status == 200, r.body
            assert sent(up) == {"model": "o3", "messages": CHAT, "max_completion_tokens": 50, "temperature": 1}
            n = len(up.bodies)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "o3", "messages": CHAT, "temperature": 0.3})
            assert r.status == 400 and len(up.bodies) == n  # refused before the provider
            err = orjson.loads(r.body)["error"]
            assert err["message"].startswith("litellm.UnsupportedParamsError: O-series models don't support "
                                             "temperature=0.3")
            assert err["param"] == "temperature" and err["code"] == "400"
            # the request's own drop_params: dropped, and the control field itself never forwarded
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "o3", "messages": CHAT, "temperature": 0.3, "top_p": 0.2, "drop_params": True})
            assert r.status == 200, r.body
            assert sent(up) == {"model": "o3", "messages": CHAT}

    asyncio.run(main())


def test_drop_params_global_and_per_deployment() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, drop=True, a={"model": "openai/gpt-5"},
                         b={"model": "openai/gpt-5", "drop_params": False})
            body = {"messages": CHAT, "stop": ["x"], "presence_penalty": 1, "seed": 3}
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "a", **body})
            assert r.status == 200, r.body
            assert sent(up) == {"model": "gpt-5", "messages": CHAT, "seed": 3}
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "b", **body})
            assert r.status == 400
            assert "openai does not support parameters: ['stop', 'presence_penalty'], for model=gpt-5" in \
                orjson.loads(r.body)["error"]["message"]

    asyncio.run(main())


def test_additional_and_allowed_params_from_the_deployment() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, m={"model": "openai/gpt-4o", "additional_drop_params": ["user", "service_tier"],
                                "allowed_openai_params": ["reasoning_effort"]})
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "m", "messages": CHAT, "user": "u1", "service_tier": "flex",
                            "reasoning_effort": "low"})
            assert r.status == 200, r.body
            assert sent(up) == {"model": "gpt-4o", "messages": CHAT, "reasoning_effort": "low"}

    asyncio.run(main())


def test_a_plain_openai_request_goes_out_byte_for_byte() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, m={"model": "openai/gpt-4o"})
            raw = b'{"model": "m",  "messages": [{"role": "user", "content": "temperature"}], "temperature": 0.7}'
            r = await call(gw, "POST", "/v1/chat/completions", raw)
            assert r.status == 200, r.body
            assert up.bodies[-1] == raw.replace(b'"model": "m"', b'"model": "gpt-4o"')

    asyncio.run(main())


def test_anthropic_deployment_refuses_or_maps() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, old={"model": "anthropic/claude-3-5-haiku-latest"},
                         new={"model": "anthropic/claude-sonnet-4-5"})
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "old", "messages": CHAT, "logit_bias": {"1": 2}})
            assert r.status == 400 and not up.bodies
            assert "anthropic does not support parameters: ['logit_bias']" in orjson.loads(r.body)["error"]["message"]
            # reasoning_effort on a Claude that thinks: LiteLLM's budget, max_tokens above it
            await call(gw, "POST", "/v1/chat/completions",
                       {"model": "new", "messages": CHAT, "reasoning_effort": "low"})
            out = sent(up)
            assert up.hits[-1] == "/ok/v1/messages"
            assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
            assert out["max_tokens"] == 1024 + 4096 and "reasoning_effort" not in out

    asyncio.run(main())


def test_messages_route_to_an_openai_reasoning_model() -> None:
    """Claude Code's request shape (thinking, temperature 1, a large max_tokens) to an o-series deployment."""
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, **{"claude-sonnet-4-5": {"model": "openai/o4-mini"}, "plain": {"model": "openai/gpt-4o"}})
            req = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "temperature": 1,
                   "thinking": {"type": "enabled", "budget_tokens": 12000},
                   "messages": [{"role": "user", "content": "hi"}]}
            r = await call(gw, "POST", "/v1/messages", req, headers={"anthropic-version": "2023-06-01"})
            assert r.status == 200, r.body
            assert orjson.loads(r.body)["type"] == "message"
            out = sent(up)
            assert out["max_completion_tokens"] == 32000 and "max_tokens" not in out
            assert out["reasoning_effort"] == "high" and "thinking" not in out and out["temperature"] == 1
            # a model that does not reason: thinking is dropped, not a 400 about a field the client never sent
            r = await call(gw, "POST", "/v1/messages", {**req, "model": "plain", "temperature": 0.5})
            assert r.status == 200, r.body
            out = sent(up)
            assert "thinking" not in out and "reasoning_effort" not in out and out["max_tokens"] == 32000

    asyncio.run(main())


def test_unknown_compatible_server_gets_reasoning_effort_but_not_thinking() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, q={"model": "hosted_vllm/Qwen/Qwen3-8B"})
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "q", "messages": CHAT, "reasoning_effort": "low", "top_k": 5})
            assert r.status == 200, r.body
            assert sent(up)["reasoning_effort"] == "low" and sent(up)["top_k"] == 5
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "q", "messages": CHAT, "thinking": {"type": "enabled", "budget_tokens": 9}})
            assert r.status == 400

    asyncio.run(main())
