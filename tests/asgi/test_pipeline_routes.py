"""Every LLM route runs the same pipeline: per-request timeouts, retries and fallbacks (headers and body),
call ids on errors, and one completion record per exchange, on the Anthropic and media routes as on chat.
The upstream is a real local HTTP server; the gateway runs in-process with its real transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from relaygate.sinks import CompletionRecord, Outcome
from tests.asgi.conftest import call, make_gateway

CHAT_OK = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "up",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
IMAGE_OK = b'{"created": 1, "data": [{"url": "http://x/1.png"}]}'


class Upstream:
    """``/slow/...`` answers after 2 s, ``/fail/...`` with a 500, ``/long/...`` with OpenAI's 400 for a prompt
    over the context window, anything else at once; hits are counted."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.bodies: list[bytes] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.bodies.append(await reader.readexactly(length))
                self.hits.append(path)
                status, body = 200, (IMAGE_OK if path.endswith("/images/generations") else CHAT_OK)
                if path.startswith("/sse/"):
                    frames = b"".join(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up",'
                                      b'"choices":[{"index":0,"delta":{"content":"%d"}}]}\n\n' % i for i in range(3))
                    body = frames + b"data: [DONE]\n\n"
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))
                    await writer.drain()
                    continue
                if path.startswith("/junk/"):
                    body = b"not json"
                if path.startswith("/slow/"):
                    await asyncio.sleep(2.0)
                elif path.startswith("/fail/"):
                    status, body = 500, b'{"error": {"message": "boom", "type": "server_error"}}'
                elif path.startswith("/long/"):
                    status, body = 400, (b'{"error": {"message": "This model\'s maximum context length is 8 tokens",'
                                         b' "type": "invalid_request_error", "code": "context_length_exceeded"}}')
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield up
    finally:
        server.close()


def gateway(up: Upstream) -> tuple[Any, list[CompletionRecord]]:
    def dep(name: str, where: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/up", "api_key": "sk-up",
                                                        "api_base": f"{up.url}/{where}/v1"}}

    gw = make_gateway({"model_list": [dep("slow", "slow"), dep("fail", "fail"), dep("ok", "ok")],
                       "router_settings": {"num_retries": 2, "retry_after": 0}})
    records: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: list[CompletionRecord]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return gw, records


MESSAGES = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
IMAGE = {"prompt": "a cat"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_header_timeout_applies_on_messages_and_media() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, records = gateway(up)
            h = {"x-litellm-timeout": "0.2", "x-litellm-num-retries": "0"}
            r = await call(gw, "POST", "/v1/messages", {"model": "slow", **MESSAGES}, h)
            assert r.status == 408, r.body
            assert r.json()["type"] == "error" and r.headers.get("x-litellm-call-id")  # Anthropic's shape
            r = await call(gw, "POST", "/v1/images/generations", {"model": "slow", **IMAGE}, h)
            assert r.status == 408, r.body
            assert "error" in r.json() and r.headers.get("x-litellm-call-id")  # OpenAI's shape, with a call id
            gw.completions.drain_now()
            assert [(x.route, x.status, x.outcome) for x in records] == [
                ("messages", 408, Outcome.ERROR), ("images", 408, Outcome.ERROR)]
            await gw.aclose()

    run(main())


def test_header_retries_lower_the_policy_on_every_route() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up)
            for path, body in (("/v1/chat/completions", {"model": "fail", "messages": MESSAGES["messages"]}),
                               ("/v1/messages", {"model": "fail", **MESSAGES}),
                               ("/v1/images/generations", {"model": "fail", **IMAGE})):
                up.hits.clear()
                r = await call(gw, "POST", path, body, {"x-litellm-num-retries": "0"})
                assert r.status == 500, (path, r.body)
                assert len(up.hits) == 1, (path, up.hits)  # the policy's 2 retries were lowered to 0
                up.hits.clear()
                r = await call(gw, "POST", path, {**body, "num_retries": 1})
                assert r.status == 500 and len(up.hits) == 2, (path, up.hits)  # the body's value, too
            await gw.aclose()

    run(main())


def test_body_fallbacks_on_messages_and_media() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, records = gateway(up)
            r = await call(gw, "POST", "/v1/messages", {"model": "fail", "fallbacks": ["ok"], "num_retries": 0,
                                                        **MESSAGES})
            assert r.status == 200, r.body
            assert r.json()["type"] == "message" and r.headers["x-litellm-attempted-fallbacks"] == "1"
            r = await call(gw, "POST", "/v1/images/generations", {"model": "fail", "fallbacks": ["ok"],
                                                                  "num_retries": 0, **IMAGE})
            assert r.status == 200, r.body
            assert r.headers["x-litellm-attempted-fallbacks"] == "1"
            r = await call(gw, "POST", "/v1/messages", {"model": "fail", "fallbacks": "ok", **MESSAGES})
            assert r.status == 400 and "fallbacks" in r.json()["error"]["message"]
            gw.completions.drain_now()
            assert [(x.route, x.status, x.model_group) for x in records] == [
                ("messages", 200, "ok"), ("images", 200, "ok"), ("messages", 400, "")]
            await gw.aclose()

    run(main())


def test_litellm_request_and_response_headers() -> None:
    """``x-litellm-max-retries`` (LiteLLM's other spelling), ``x-goog-api-key`` auth, and a key's
    ``x-litellm-key-rpm-limit`` / ``-tpm-limit`` on the answer."""

    async def main() -> None:
        async with upstream() as up:
            gw = make_gateway({"model_list": [{"model_name": "fail", "litellm_params": {
                "model": "openai/up", "api_key": "sk-up", "api_base": f"{up.url}/fail/v1"}}, {
                "model_name": "ok", "litellm_params": {"model": "openai/up", "api_key": "sk-up",
                                                       "api_base": f"{up.url}/ok/v1"}}],
                "router_settings": {"num_retries": 3, "retry_after": 0},
                "general_settings": {"master_key": "sk-master"},
                "relaygate_keys": [{"key": "sk-limited", "rpm_limit": 600, "tpm_limit": 90000}]})
            body = {"model": "fail", "messages": MESSAGES["messages"]}
            r = await call(gw, "POST", "/v1/chat/completions", body,
                           {"authorization": "Bearer sk-master", "x-litellm-max-retries": "1"})
            assert r.status == 500 and len(up.hits) == 2, up.hits  # 3 retries lowered to 1
            r = await call(gw, "POST", "/v1/chat/completions", {**body, "model": "ok"},
                           {"x-goog-api-key": "sk-limited"})
            assert r.status == 200, r.body
            assert r.headers["x-litellm-key-rpm-limit"] == "600" and r.headers["x-litellm-key-tpm-limit"] == "90000"
            r = await call(gw, "POST", "/v1/chat/completions", {**body, "model": "ok"},
                           {"authorization": "Bearer sk-master"})
            assert "x-litellm-key-rpm-limit" not in r.headers  # the master key has no limits
            r = await call(gw, "POST", "/v1/chat/completions", {**body, "model": "ok"}, {"x-goog-api-key": "nope"})
            assert r.status == 401
            await gw.aclose()

    run(main())


def test_answers_carry_the_model_name_the_client_asked_for() -> None:
    """LiteLLM restamps ``model`` with the requested name (chat, chunks, /v1/messages); the upstream's name
    is in ``x-litellm-model-name``."""

    async def main() -> None:
        async with upstream() as up:
            gw = make_gateway({"model_list": [
                {"model_name": "my-group", "litellm_params": {"model": "openai/up", "api_key": "k",
                                                               "api_base": f"{up.url}/ok/v1"}},
                {"model_name": "my-stream", "litellm_params": {"model": "openai/up", "api_key": "k",
                                                                "api_base": f"{up.url}/sse/v1"}}]})
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "my-group", **MESSAGES})
            assert r.json()["model"] == "my-group" and r.headers["x-litellm-model-name"] == "up"
            assert r.headers["x-litellm-max-fallbacks"] == "5"  # router_settings.max_fallbacks (LiteLLM's default)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "my-stream", **MESSAGES, "stream": True})
            frames = [f for f in r.body.split(b"\n\n") if f.startswith(b"data: {")]
            assert len(frames) == 3 and all(orjson.loads(f[6:])["model"] == "my-stream" for f in frames), r.body
            r = await call(gw, "POST", "/v1/messages", {"model": "my-group", **MESSAGES})
            assert r.json()["model"] == "my-group"
            await gw.aclose()

    run(main())


def test_completions_on_a_chat_model_are_bridged_to_chat() -> None:
    """LiteLLM's bridge: ``/v1/completions`` for a chat-only model goes to ``/chat/completions`` and comes back
    as ``text_completion`` (streams too); an instruct model gets ``/completions`` as it is."""

    async def main() -> None:
        async with upstream() as up:
            def dep(name: str, model: str, where: str) -> dict[str, Any]:
                return {"model_name": name, "litellm_params": {"model": model, "api_key": "k",
                                                                "api_base": f"{up.url}/{where}/v1"}}

            gw = make_gateway({"model_list": [dep("chat", "openai/gpt-4o", "ok"),
                                              dep("instruct", "openai/gpt-3.5-turbo-instruct", "ok"),
                                              dep("chat-sse", "openai/gpt-4o", "sse")]})
            r = await call(gw, "POST", "/v1/completions", {"model": "chat", "prompt": "say hi", "max_tokens": 5,
                                                           "echo": False, "logprobs": 2})
            assert r.status == 200, r.body
            got = r.json()
            assert got["object"] == "text_completion" and got["choices"][0]["text"] == "hi"
            assert got["model"] == "chat" and got["usage"]["total_tokens"] == 4
            assert up.hits[-1] == "/ok/v1/chat/completions"
            sent = orjson.loads(up.bodies[-1])
            assert sent["messages"] == [{"role": "user", "content": "say hi"}] and sent["max_tokens"] == 5
            assert not {"prompt", "echo", "logprobs"} & set(sent)
            r = await call(gw, "POST", "/v1/completions", {"model": "instruct", "prompt": "x"})
            assert up.hits[-1] == "/ok/v1/completions"
            r = await call(gw, "POST", "/v1/completions", {"model": "chat-sse", "prompt": ["p"], "stream": True})
            frames = [orjson.loads(f[6:]) for f in r.body.split(b"\n\n") if f.startswith(b"data: {")]
            assert [f["choices"][0]["text"] for f in frames] == ["0", "1", "2"], r.body
            assert all(f["object"] == "text_completion" and f["model"] == "chat-sse" for f in frames)
            assert r.body.endswith(b"data: [DONE]\n\n")
            r = await call(gw, "POST", "/v1/completions", {"model": "chat", "prompt": ["a", "b"]})
            assert r.status == 400 and "one prompt" in r.json()["error"]["message"]
            raw = b'{"model": "chat", "prompt": "bad \xff utf-8"}'
            r = await call(gw, "POST", "/v1/completions", raw)
            assert r.status == 400, r.body  # found by the hostile fuzz test: was a 500
            gw2 = make_gateway({"model_list": [dep("chat", "openai/gpt-4o", "junk")]})
            r = await call(gw2, "POST", "/v1/completions", {"model": "chat", "prompt": "x"})
            assert r.status == 502, r.body
            await gw2.aclose()
            await gw.aclose()

    run(main())


def test_a_deployments_own_num_retries_is_its_retry_policy() -> None:
    """``litellm_params.num_retries`` (LiteLLM: request > deployment > router_settings)."""

    async def main() -> None:
        async with upstream() as up:
            gw = make_gateway({"model_list": [{"model_name": "fail", "litellm_params": {
                "model": "openai/up", "api_key": "k", "api_base": f"{up.url}/fail/v1", "num_retries": 2}}],
                "router_settings": {"num_retries": 0, "retry_after": 0}})
            body = {"model": "fail", "messages": MESSAGES["messages"]}
            r = await call(gw, "POST", "/v1/chat/completions", body)
            assert r.status == 500 and len(up.hits) == 3, up.hits
            up.hits.clear()
            r = await call(gw, "POST", "/v1/chat/completions", body, {"x-litellm-num-retries": "1"})
            assert r.status == 500 and len(up.hits) == 2, up.hits  # the request only lowers it
            await gw.aclose()

    run(main())


def test_tag_based_routing() -> None:
    """LiteLLM's tag routing (``enable_tag_filtering``): body ``tags``, ``metadata.tags`` or ``x-litellm-tags``
    pick the deployments sharing a tag; untagged or unmatched requests go to ``default``."""

    async def main() -> None:
        async with upstream() as up:
            def dep(name: str, where: str, tags: list[str]) -> dict[str, Any]:
                return {"model_name": name, "litellm_params": {"model": "openai/up", "api_key": "k", "tags": tags,
                                                                "api_base": f"{up.url}/{where}/v1"}}

            gw = make_gateway({"model_list": [dep("m", "free", ["free"]), dep("m", "paid", ["paid", "gold"]),
                                              dep("m", "dflt", ["default"]), dep("strict", "paid", ["paid"])],
                               "router_settings": {"enable_tag_filtering": True}})
            chat = {"model": "m", "messages": MESSAGES["messages"]}

            async def where(body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
                r = await call(gw, "POST", "/v1/chat/completions", body, headers)
                assert r.status == 200, r.body
                return up.hits[-1].split("/")[1]

            for _ in range(5):
                assert await where({**chat, "tags": ["free"]}) == "free"
                assert await where({**chat, "metadata": {"tags": ["gold"]}}) == "paid"
                assert await where(chat, {"x-litellm-tags": "paid, x"}) == "paid"
                assert await where(chat) == "dflt"
                assert await where({**chat, "tags": ["unknown"]}) == "dflt"
            assert all(b"tags" not in b for b in up.bodies)  # tags never reach the provider
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "model": "strict", "tags": ["free"]})
            assert r.status == 400 and "tags" in r.json()["error"]["message"]
            r = await call(gw, "POST", "/v1/chat/completions", {**chat, "tags": [1, 2]})
            assert r.status == 400
            await gw.aclose()

    run(main())


def test_comma_separated_models_ask_every_group() -> None:
    """LiteLLM's batch completion: ``"model": "a,b"`` answers a list, one element per group in order (an
    error object for a group that failed); ``fastest_response`` answers the first success alone."""

    async def main() -> None:
        async with upstream() as up:
            def dep(name: str, where: str) -> dict[str, Any]:
                return {"model_name": name, "litellm_params": {"model": "openai/up", "api_key": "k",
                                                                "api_base": f"{up.url}/{where}/v1"}}

            gw = make_gateway({"model_list": [dep("a", "ok"), dep("b", "ok"), dep("bad", "fail"),
                                              dep("*", "ok")],
                               "general_settings": {"master_key": "sk-m"},
                               "relaygate_keys": [{"key": "sk-a", "models": ["a"]}]})
            h = {"authorization": "Bearer sk-m"}
            chat = {"messages": MESSAGES["messages"]}
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "a, b,bad", **chat}, h)
            assert r.status == 200, r.body
            got = r.json()
            assert [x.get("model") for x in got[:2]] == ["a", "b"] and "error" in got[2]
            assert len(up.hits) == 3 and all(b'"a, b,bad"' not in b for b in up.bodies)
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "bad,a", "fastest_response": True, **chat}, h)
            assert r.status == 200 and r.json()["model"] == "a"
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "a,b", **chat},
                           {"authorization": "Bearer sk-a"})
            assert r.status == 401  # every part must be allowed
            r = await call(gw, "POST", "/v1/chat/completions", {"model": "a,b", "stream": True, **chat}, h)
            assert r.status == 400
            await gw.aclose()

    run(main())
