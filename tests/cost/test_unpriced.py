"""``block_requests_for_models_without_pricing`` in process (``cost.unpriced``): the hook exists only when the
setting is on; a group is priced when any deployment is; a refused request is LiteLLM's 403 and its record
says so; each group is judged once per snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

from relaygate.cost.unpriced import UnpricedGuard, blocked_message
from tests.asgi.conftest import call, collect_records, make_gateway

AUTH = {"authorization": "Bearer sk-master"}


def config(block: bool | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_list": [
            {"model_name": "priced", "litellm_params": {"model": "mock/echo", "input_cost_per_token": 1e-6}},
            {"model_name": "half", "litellm_params": {"model": "mock/echo"}},
            {"model_name": "half", "litellm_params": {"model": "mock/echo"},
             "model_info": {"output_cost_per_token": 0}},
            {"model_name": "unpriced", "litellm_params": {"model": "mock/echo"}},
        ],
        "general_settings": {"master_key": "sk-master"},
    }
    if block is not None:
        out["litellm_settings"] = {"block_requests_for_models_without_pricing": block}
    return out


def chat(gw: Any, model: str) -> Any:
    return asyncio.run(call(gw, "POST", "/v1/chat/completions",
                            {"model": model, "messages": [{"role": "user", "content": "hi"}]}, headers=AUTH))


def test_off_adds_no_hook_and_serves_every_model() -> None:
    for block in (None, False):
        gw = make_gateway(config(block))
        assert not any(isinstance(h, UnpricedGuard) for h in gw.runtime.before_route)
        assert chat(gw, "unpriced").status == 200


def test_on_refuses_a_group_no_deployment_of_which_is_priced() -> None:
    gw = make_gateway(config(True))
    guards = [h for h in gw.runtime.before_route if isinstance(h, UnpricedGuard)]
    assert len(guards) == 1
    records = collect_records(gw)

    async def main() -> None:
        ask = {"messages": [{"role": "user", "content": "hi"}]}
        assert (await call(gw, "POST", "/v1/chat/completions", {"model": "priced", **ask}, AUTH)).status == 200
        # one deployment priced (at 0, explicitly): the group is
        assert (await call(gw, "POST", "/v1/chat/completions", {"model": "half", **ask}, AUTH)).status == 200
        r = await call(gw, "POST", "/v1/chat/completions", {"model": "unpriced", **ask}, AUTH)
        assert r.status == 403
        assert r.json()["error"] == {"message": blocked_message("unpriced"), "type": "model_cost_map_missing",
                                     "param": "model", "code": "403"}
        for _ in range(50):
            if len(records) >= 3:
                break
            await asyncio.sleep(0.01)
        assert [rec.status for rec in records] == [200, 200, 403]
        assert (await call(gw, "POST", "/v1/chat/completions", {"model": "unpriced", **ask}, AUTH)).status == 403

    asyncio.run(main())
    assert len(guards[0]._priced) == 3  # one answer per group, kept


def test_the_message_names_what_the_client_asked_for() -> None:
    gw = make_gateway({**config(True), "router_settings": {"model_group_alias": {"alias-of-unpriced": "unpriced"}}})
    r = chat(gw, "alias-of-unpriced")
    assert r.status == 403 and "Model 'alias-of-unpriced' has no pricing" in r.json()["error"]["message"]
