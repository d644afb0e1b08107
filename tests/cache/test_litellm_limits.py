"""LiteLLM 1.110's limits on what is cached: ``max_messages`` (a request with more messages is neither looked up
nor stored; 4 by default, ``null`` for none), answers that say nothing (never stored: LiteLLM's
``is_response_without_output``), and a Redis hit's copy in a worker's memory that never outlives the Redis entry."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import orjson

from relaygate.cache import calls
from relaygate.cache.stage import CacheState, ResponseCache
from relaygate.config.cache import from_litellm
from relaygate.pipeline.exchange import Exchange
from tests.asgi.conftest import call, make_gateway

MASTER = "sk-master-limits"


def _turns(n: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(n)]


def _hits(params: dict[str, Any], sizes: list[int]) -> list[bool]:
    """Whether the second of two identical chats of each size was a hit."""
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                       "general_settings": {"master_key": MASTER},
                       "litellm_settings": {"cache": True, "cache_params": {"type": "local", **params}}})
    auth = {"authorization": f"Bearer {MASTER}"}

    async def main() -> list[bool]:
        await gw.startup()
        try:
            out = []
            for n in sizes:
                body = {"model": "m", "messages": _turns(n)}
                for _ in range(2):
                    r = await call(gw, "POST", "/v1/chat/completions", body, headers=auth)
                    assert r.status == 200, r.body
                out.append("x-litellm-cache-key" in r.headers)
            stats = gw.response_cache
            assert stats is not None
            out.append(stats.misses)  # type: ignore[arg-type]
            return out
        finally:
            await gw.shutdown()

    return asyncio.run(main())


def test_max_messages_as_litellm() -> None:
    *hits, misses = _hits({}, [1, 4, 5, 9])
    assert hits == [True, True, False, False]  # LiteLLM's default: at most 4 messages
    assert misses == 2  # the long ones are not misses either: the cache was not asked
    *hits, _ = _hits({"max_messages": 1}, [1, 2])
    assert hits == [True, False]
    *hits, _ = _hits({"max_messages": None}, [5, 30])
    assert hits == [True, True]


def test_message_count_per_route() -> None:
    ex = Exchange("responses", 0.0, None)  # type: ignore[arg-type]
    ex.state = type("S", (), {"req": {"input": [{"role": "user", "content": "a"}, {"type": "file", "file_id": "f"},
                                                 {"type": "function_call_output", "output": "x"}, "stray"]}})()
    assert calls.message_count(ex) == 2  # objects other than a file block
    ex.state.req = {"input": "just text"}
    assert calls.message_count(ex) == 0
    ex = Exchange("messages", 0.0, None)  # type: ignore[arg-type]
    ex.state = type("S", (), {"req": {"messages": _turns(3)}})()
    assert calls.message_count(ex) == 3


def _chat(message: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "length"}]})


def test_an_answer_that_says_nothing_is_not_stored() -> None:
    empty = [_chat({"content": ""}), _chat({"content": None, "refusal": None, "annotations": []}),
             b'{"choices": [{"message": {"role": "assistant", "content": ""}}]}']
    said = [_chat({"content": "hi"}), _chat({"content": "", "tool_calls": [{"id": "t", "type": "function"}]}),
            _chat({"content": None, "refusal": "no"}), _chat({"content": "", "reasoning_content": "hmm"}),
            b'{"choices": [{"message": {"role": "assistant", "content": "\\u00e9"}}]}', b"not json"]
    assert [calls.has_output("chat", a) for a in empty] == [False] * 3
    assert [calls.has_output("chat", a) for a in said] == [True] * 6
    assert not calls.has_output("messages", orjson.dumps({"type": "message", "content": [{"type": "text", "text": ""}]}))
    assert calls.has_output("messages", orjson.dumps({"type": "message", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}))
    assert not calls.has_output("responses", orjson.dumps({"object": "response", "output": []}))
    assert calls.has_output("responses", orjson.dumps({"object": "response", "output": [{"type": "message"}]}))
    assert calls.has_output("embeddings", b'{"data": []}')  # other routes: always

    settings = from_litellm(True, {"type": "local"}, [])
    assert settings is not None
    cache = ResponseCache(settings)
    for answer, kept in ((empty[0], False), (said[0], True)):
        ex = Exchange("chat", 0.0, None)  # type: ignore[arg-type]
        ex.cache = CacheState("k" + str(kept), None, False)
        cache.store(ex, answer)
        assert (cache.memory.get("k" + str(kept)) is not None) is kept


def test_a_redis_hits_copy_keeps_what_redis_has_left() -> None:
    settings = from_litellm(True, {"type": "redis", "host": "127.0.0.1", "ttl": 60}, [])
    assert settings is not None
    now = 1_000_000.0
    cache = ResponseCache(settings, wall=lambda: now)
    stamp = struct.Struct(">d")
    cache._copy("young", stamp.pack(now - 10) + b"{}")
    cache._copy("old", stamp.pack(now - 59.5) + b"{}")
    cache._copy("gone", stamp.pack(now - 61) + b"{}")
    left = {k: v[1] - time.monotonic() for k, v in cache.memory._data.items()}
    assert set(left) == {"young", "old"}
    assert 49 < left["young"] <= 50 and 0 < left["old"] <= 0.5
