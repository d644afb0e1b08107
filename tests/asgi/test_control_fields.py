"""LiteLLM's control fields in request bodies (issue 11, rule 1): honoured where relaygate has the feature,
never forwarded to the provider, on every route; and LiteLLM's mock fields answer without the upstream.
The upstream is a real local HTTP server that records what it receives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.core.views import CONTROL_KEYS
from tests.asgi.conftest import call, make_gateway
from tests.asgi.test_pipeline_routes import IMAGE, MESSAGES, Upstream, upstream

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
#: one value per control field that the gateway must accept and strip
CONTROLS: dict[str, Any] = {k: "x" for k in CONTROL_KEYS if not k.startswith("mock_")}
CONTROLS.update({"metadata": {"a": "b", "n": 1}, "tags": ["t1"], "num_retries": 1, "max_retries": 1, "timeout": 30,
                 "request_timeout": 30, "stream_timeout": 30, "fallbacks": ["ok"], "caching": False,
                 "no-log": True, "api_key": "sk-client-tries", "api_base": "http://evil.example/v1",
                 "base_url": "http://evil.example/v1", "model_list": [{"model_name": "x"}],
                 "user_config": {"model_list": []}, "drop_params": True, "additional_drop_params": ["x"],
                 "allowed_openai_params": ["temperature"],
                 "max_fallbacks": 1, "ttl": 5, "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                 "disable_fallbacks": False, "context_window_fallbacks": [{"ok": ["ok"]}],
                 "content_policy_fallbacks": []})


def gateway(up: Upstream, extra: dict[str, Any] | None = None, **router: Any) -> Any:
    extra = extra or {}

    def dep(name: str, where: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/up", "api_key": "sk-up",
                                                        "api_base": f"{up.url}/{where}/v1"}}

    return make_gateway({"model_list": [dep("ok", "ok"), dep("fail", "fail"), dep("long", "long")],
                         "router_settings": {"retry_after": 0, **router}, **extra})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("path,body", [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES),
                                       ("/v1/images/generations", IMAGE)])
def test_no_control_field_reaches_the_provider(path: str, body: dict[str, Any]) -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up)
            r = await call(gw, "POST", path, {"model": "ok", **body, **CONTROLS, "temperature": 0.5})
            assert r.status == 200, r.body
            (sent,) = up.bodies
            got = orjson.loads(sent)
            leaked = sorted(set(got) & (set(CONTROLS) | {"metadata"}))
            assert leaked == [], leaked
            if path != "/v1/images/generations":
                assert got["temperature"] == 0.5  # everything else goes on as the client sent it
            assert b"sk-client-tries" not in sent and b"evil.example" not in sent
            assert up.hits[0].startswith("/ok/")  # the deployment's api_base, never the client's
            await gw.aclose()

    run(main())


def test_body_retries_and_fallbacks_are_honoured_then_stripped() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, num_retries=0)
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "fail", **CHAT, "max_retries": 2, "fallbacks": ["ok"]})
            assert r.status == 200, r.body
            assert [h.split("/")[1] for h in up.hits] == ["fail", "ok"]  # max_retries only lowers the policy (0)
            assert r.headers["x-litellm-attempted-fallbacks"] == "1"
            assert all(b"fallbacks" not in b and b"max_retries" not in b for b in up.bodies)
            await gw.aclose()

    run(main())


def test_anthropic_metadata_user_id_goes_on_natively() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = make_gateway({"model_list": [{"model_name": "claude", "litellm_params": {
                "model": "anthropic/claude-x", "api_key": "sk-ant", "api_base": f"{up.url}/ok"}}]})
            await call(gw, "POST", "/v1/messages", {"model": "claude", **MESSAGES,
                                                   "metadata": {"user_id": "u-1"}, "tags": ["a"]})
            await call(gw, "POST", "/v1/messages", {"model": "claude", **MESSAGES,
                                                   "metadata": {"user_id": "u-1", "team": "x"}})
            first, second = (orjson.loads(b) for b in up.bodies)
            assert first["metadata"] == {"user_id": "u-1"} and "tags" not in first
            assert "metadata" not in second  # LiteLLM's own metadata shape: Anthropic would refuse it
            await gw.aclose()

    run(main())


def test_mock_response_answers_without_the_upstream() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "ok", **CHAT, "mock_response": "hello!"})
            assert r.status == 200 and r.json()["choices"][0]["message"]["content"] == "hello!"
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "ok", **CHAT, "mock_response": "streamed", "stream": True})
            assert r.status == 200 and b"streamed" in r.body and r.body.endswith(b"data: [DONE]\n\n")
            r = await call(gw, "POST", "/v1/messages", {"model": "ok", **MESSAGES, "mock_response": "anth"})
            assert r.status == 200 and r.json()["content"][0]["text"] == "anth"
            assert up.hits == []
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "ok", **CHAT, "mock_response": "litellm.RateLimitError"})
            assert r.status == 429, r.body
            assert up.hits == []
            await gw.aclose()

    run(main())


def test_mock_testing_fallbacks_fails_the_first_group_only() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up)
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "fail", **CHAT, "mock_testing_fallbacks": True, "fallbacks": ["ok"]})
            assert r.status == 200, r.body
            assert r.headers["x-litellm-attempted-fallbacks"] == "1"
            assert [h.split("/")[1] for h in up.hits] == ["ok"]  # the first group never called its upstream
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "ok", **CHAT, "mock_testing_rate_limit_error": True})
            assert r.status == 429 and "mock rate limit" in r.json()["error"]["message"]
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "ok", **CHAT, "mock_timeout": True})
            assert r.status == 408
            await gw.aclose()

    run(main())


def test_disable_fallbacks_from_the_request_and_from_the_key(tmp_path: Path) -> None:
    # LiteLLM's disable_fallbacks: true in the body skips every fallback; a stored key's
    # metadata.disable_fallbacks (a boolean) replaces the request's, either way
    from relaygate.store import open_store

    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, {"general_settings": {"master_key": "sk-master"}}, num_retries=0,
                         fallbacks=[{"fail": ["ok"]}], disable_cooldowns=True)
            store = await open_store(f"sqlite:///{tmp_path / 'fb.db'}")
            gw.store = store
            gw.runtime.use_store(store)
            keys = {}
            for name, meta in (("off", {"disable_fallbacks": True}), ("on", {"disable_fallbacks": False}),
                               ("plain", {}), ("odd", {"disable_fallbacks": "yes"})):
                made = await call(gw, "POST", "/key/generate", {"metadata": meta},
                                  headers={"authorization": "Bearer sk-master"})
                assert made.status == 200, made.body
                keys[name] = made.json()["key"]

            async def ask(key: str, **body: Any) -> Any:
                up.hits.clear()
                return await call(gw, "POST", "/v1/chat/completions", {"model": "fail", **CHAT, **body},
                                  headers={"authorization": f"Bearer {keys[key]}"})

            try:
                r = await ask("plain")
                assert r.status == 200 and r.headers["x-litellm-attempted-fallbacks"] == "1", r.body
                r = await ask("plain", disable_fallbacks=True)
                assert r.status == 500 and [h.split("/")[1] for h in up.hits] == ["fail"], r.body
                assert (await ask("plain", disable_fallbacks="yes")).status == 200  # only a literal true
                assert (await ask("plain", disable_fallbacks=True, fallbacks=["ok"])).status == 500  # its own too
                assert (await ask("off")).status == 500  # the key's true
                assert (await ask("on", disable_fallbacks=True)).status == 200  # the key's false wins
                assert (await ask("odd", disable_fallbacks=True)).status == 500  # not a boolean: the request's
                assert all(b"disable_fallbacks" not in b for b in up.bodies)
            finally:
                await gw.aclose()
                await store.close()

    run(main())


def test_request_context_window_fallbacks_replace_the_routers() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up, num_retries=0, context_window_fallbacks=[{"long": ["fail"]}])
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "long", **CHAT, "context_window_fallbacks": [{"long": ["ok"]}]})
            assert r.status == 200, r.body
            assert [h.split("/")[1] for h in up.hits] == ["long", "ok"]  # the request's table, not the router's
            up.hits.clear()
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "long", **CHAT, "context_window_fallbacks": ["ok"]})  # a bare name: any group
            assert r.status == 200 and [h.split("/")[1] for h in up.hits] == ["long", "ok"], r.body
            up.hits.clear()
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "long", **CHAT})  # the router's table
            assert r.status == 500 and [h.split("/")[1] for h in up.hits] == ["long", "fail"], r.body
            up.hits.clear()
            for bad in ({"long": "ok"}, [{"long": "ok"}], [["ok"]], "ok", [{"long": [1]}]):
                r = await call(gw, "POST", "/v1/chat/completions",
                               {"model": "long", **CHAT, "content_policy_fallbacks": bad})
                assert r.status == 400 and r.json()["error"]["param"] == "content_policy_fallbacks", (bad, r.body)
            assert up.hits == []
            await gw.aclose()

    run(main())


@pytest.mark.parametrize("field,value,words", [
    ("metadata", {"id": 2**64}, "`metadata` holds an integer outside the 64-bit range"),
    ("metadata", {"id": -(2**63) - 1}, "`metadata` holds an integer outside the 64-bit range"),
    ("tags", [1, 2**70], "`tags` holds an integer outside the 64-bit range"),
    ("litellm_metadata", {"n": 10**30}, "`litellm_metadata` holds an integer outside the 64-bit range"),
    ("metadata", {"a": [[[[[[[[{"deep": 300}]]]]]]]]}, None),  # nested, but nothing an encoder refuses: fine
])
def test_a_kept_field_no_exporter_can_write_is_a_400_saying_why(field: str, value: Any, words: str | None) -> None:
    """A client's metadata (and tags) go to every exporter and the spend log: a value their JSON encoders refuse
    (an integer past 64 bits, which the body's decoder keeps exact) is the client's 400 naming the field and the
    reason, before anything goes upstream; not a record the exporters would fail on. (It said "nested too deeply"
    for an integer, which misled the client.)"""
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up)
            raw = b'{"model": "ok", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (
                field.encode(), repr(value).replace("'", '"').encode())
            r = await call(gw, "POST", "/v1/chat/completions", raw)
            if words is None:
                assert r.status == 200, r.body
                return
            assert r.status == 400, r.body
            err = r.json()["error"]
            assert err["message"] == f"Invalid request body: {words}" and err["param"] == field
            assert up.bodies == []

    run(main())


def test_a_kept_field_nested_past_the_encoders_is_a_400_saying_so() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw = gateway(up)
            deep = b'{"a": ' * 300 + b"1" + b"}" * 300
            raw = b'{"model": "ok", "messages": [{"role": "user", "content": "hi"}], "metadata": %s}' % deep
            r = await call(gw, "POST", "/v1/chat/completions", raw)
            assert r.status == 400, r.body
            assert r.json()["error"]["message"] == "Invalid request body: `metadata` is nested too deeply"
            assert up.bodies == []

    run(main())
