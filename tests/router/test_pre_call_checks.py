"""``router_settings.enable_pre_call_checks`` (LiteLLM's): a prompt goes only to deployments whose context
window (``model_info.max_input_tokens``, else the catalog's) holds it; when none does, LiteLLM's
``_pre_call_checks`` 400, which ``context_window_fallbacks`` answer (fast tier: in-process ASGI, mock upstreams)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.asgi.conftest import call, make_gateway

AUTH = {"Authorization": "Bearer sk-pcc"}
LONG = " ".join(f"word{i}" for i in range(400))  # ~800 tokens by the estimator


def gateway(pre_call_checks: bool = True, **router: Any) -> Any:
    return make_gateway({
        "model_list": [
            {"model_name": "g", "litellm_params": {"model": "mock/small"}, "model_info": {"id": "small",
                                                                                     "max_input_tokens": 50}},
            {"model_name": "g", "litellm_params": {"model": "mock/big"}, "model_info": {"id": "big",
                                                                                   "max_input_tokens": 100_000}},
            {"model_name": "tiny", "litellm_params": {"model": "mock/tiny"}, "model_info": {"id": "tiny",
                                                                                       "max_input_tokens": 20}},
            {"model_name": "roomy", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "roomy"}},
        ],
        "router_settings": {"enable_pre_call_checks": pre_call_checks, **router},
        "general_settings": {"master_key": "sk-pcc"},
    })


def chat(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def test_a_long_prompt_goes_only_where_it_fits() -> None:
    gw = gateway()

    async def main() -> None:
        served = {(await call(gw, "POST", "/v1/chat/completions", chat("g", LONG), AUTH)).headers["x-litellm-model-id"]
                  for _ in range(20)}
        assert served == {"big"}
        short = {(await call(gw, "POST", "/v1/chat/completions", chat("g", "hi"), AUTH)).headers["x-litellm-model-id"]
                 for _ in range(40)}
        assert short == {"small", "big"}  # both fit: the group is balanced as before

    asyncio.run(main())


def test_off_every_deployment_is_tried() -> None:
    gw = gateway(pre_call_checks=False)

    async def main() -> None:
        served = {(await call(gw, "POST", "/v1/chat/completions", chat("g", LONG), AUTH)).headers["x-litellm-model-id"]
                  for _ in range(40)}
        assert served == {"small", "big"}
        assert gw.router.groups["g"].windows is None

    asyncio.run(main())


def test_no_deployment_holds_the_prompt_litellms_400() -> None:
    gw = gateway()

    async def main() -> None:
        r = await call(gw, "POST", "/v1/chat/completions", chat("tiny", LONG), AUTH)
        assert r.status == 400
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "400"
        assert err["message"].startswith("litellm._pre_call_checks: Context Window exceeded for given call. No models "
                                         "have context window large enough for this call.\nModel=tiny, "
                                         "Max Input Tokens=20, Got=")
        ok = await call(gw, "POST", "/v1/chat/completions", chat("tiny", "hi"), AUTH)
        assert ok.status == 200

    asyncio.run(main())


def test_context_window_fallbacks_answer_it() -> None:
    gw = gateway(context_window_fallbacks=[{"tiny": ["roomy"]}])

    async def main() -> None:
        r = await call(gw, "POST", "/v1/chat/completions", chat("tiny", LONG), AUTH)
        assert r.status == 200, r.body
        assert r.headers["x-litellm-model-id"] == "roomy" and r.headers["x-litellm-attempted-fallbacks"] == "1"

    asyncio.run(main())
