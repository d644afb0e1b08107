"""The semantic cache (core and in-process tiers): what is embedded, the scope a match may come from, the
embedded index's search, bounds and expiry (numpy and pure Python), the settings in LiteLLM's spellings, and
the stage with a real embedding model (all-MiniLM-L6-v2 served as an ``openai/`` deployment): paraphrases
hit with ``x-litellm-semantic-similarity``, unrelated prompts and other model groups miss, the exact key is
tried first, and an embedding model that is down is a miss, counted and logged once, never an error."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from array import array
from typing import Any

import pytest

from relaygate.cache.semantic import LocalIndex, Match, dot, normalised, prompt_text, semantic_scope
from relaygate.config.cache import CacheConfigError, from_litellm
from tests.asgi.conftest import call, make_gateway
from tests.cache.test_semantic_model import EmbeddingServer, MiniLM, minilm  # noqa: F401

PASSWORD = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"
UNRELATED = "What is the capital of France?"


def unit(*values: float) -> array[float]:
    v = normalised(list(values))
    assert v is not None
    return v


# -- core ------------------------------------------------------------------------------------------------

def test_prompt_text() -> None:
    chat = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                      {"type": "image_url", "image_url": {"url": "x"}},
                                                      {"type": "text", "text": "there"}]},
                         {"role": "assistant", "content": None, "tool_calls": []}]}
    assert prompt_text("chat", chat) == "Be brief.\nHi there"
    assert prompt_text("completions", {"prompt": ["a", "b"]}) == "a\nb"
    assert prompt_text("completions", {"prompt": "  x  "}) == "x"
    assert prompt_text("completions", {"prompt": [1, 2]}) is None
    assert prompt_text("chat", {"messages": "nope"}) is None and prompt_text("chat", {"messages": []}) is None
    assert prompt_text("embeddings", {"input": "x"}) is None
    assert len(prompt_text("chat", {"messages": [{"role": "user", "content": "x" * 100_000}]}) or "") == 32_768


def test_scope_is_the_exact_keys_scope_less_the_prompt() -> None:
    a = {"messages": [{"role": "user", "content": "one"}], "temperature": 0.2, "user": "u1"}
    b = {"messages": [{"role": "user", "content": "two"}], "temperature": 0.2, "metadata": {"x": 1}}
    s = semantic_scope("chat", "m", a)
    assert s == semantic_scope("chat", "m", b) and len(s) == 32
    assert s != semantic_scope("chat", "other", a)
    assert s != semantic_scope("completions", "m", a)
    assert s != semantic_scope("chat", "m", a, team="t1") != semantic_scope("chat", "m", a, team="t2")
    assert s != semantic_scope("chat", "m", a, namespace="ns")
    assert s != semantic_scope("chat", "m", {**a, "temperature": 0.9})
    assert s != semantic_scope("chat", "m", {**a, "tools": [{"type": "function", "function": {"name": "f"}}]})


def test_normalised_vectors() -> None:
    v = unit(3.0, 4.0)
    assert list(v) == pytest.approx([0.6, 0.8])
    assert normalised([0.0, 0.0]) is None and normalised("x") is None and normalised([]) is None
    assert normalised(["a"]) is None and normalised([float("inf"), 1.0]) is None
    assert dot(v, v) == pytest.approx(1.0) and dot(v, unit(1.0, 0.0, 0.0)) == 0.0


@pytest.mark.parametrize("use_numpy", [True, False], ids=["numpy", "pure"])
def test_local_index_search_scope_expiry_and_bounds(use_numpy: bool) -> None:
    now = [0.0]
    idx = LocalIndex(max_entries=3, max_bytes=10_000, clock=lambda: now[0], use_numpy=use_numpy)
    idx.add("s", "k1", unit(1.0, 0.0), ttl=10)
    idx.add("s", "k2", unit(0.0, 1.0), ttl=20)
    idx.add("t", "k3", unit(1.0, 0.0), ttl=10)
    m = idx.nearest("s", unit(1.0, 0.1), 0.9)
    assert m is not None and m.key == "k1" and m.similarity == pytest.approx(0.995, abs=1e-3)
    assert idx.nearest("s", unit(1.0, 1.0), 0.9) is None  # 0.707 to both
    assert idx.nearest("u", unit(1.0, 0.0), 0.1) is None  # another scope: never
    assert asyncio.run(idx.search("s", unit(0.0, 1.0), 0.99)) == Match("k2", pytest.approx(1.0))
    now[0] = 15.0  # k1 and k3 expired
    assert idx.nearest("s", unit(1.0, 0.0), 0.5) is None
    assert idx.nearest("s", unit(0.0, 1.0), 0.5) is not None and len(idx) == 2
    # bounded in entries: the least recently stored goes first
    idx.add("s", "k4", unit(1.0, 1.0), ttl=100)
    idx.add("s", "k5", unit(-1.0, 1.0), ttl=100)
    idx.add("s", "k6", unit(1.0, -1.0), ttl=100)
    assert len(idx) == 3
    assert {m.key for v in ([0, 1], [1, 1], [-1, 1], [1, -1]) if (m := idx.nearest("s", unit(*v), 0.99))} == \
        {"k4", "k5", "k6"}
    # a replaced key keeps one entry; bytes stay within the bound
    idx.add("s", "k6", unit(0.0, -1.0), ttl=100)
    assert len(idx) == 3 and idx.used <= idx.max_bytes
    small = LocalIndex(max_bytes=500, use_numpy=use_numpy)
    for i in range(10):
        small.add("s", f"k{i}", unit(float(i + 1), 1.0), ttl=100)
    assert small.used <= 500 and len(small) == 2
    small.add("s", "huge", normalised([1.0] * 200) or array("f"), ttl=100)  # larger than the bound: not kept
    assert len(small) == 2 and small.nearest("s", normalised([1.0] * 200) or array("f"), 0.5) is None
    idx.clear()
    assert len(idx) == 0 and idx.used == 0


# -- settings ----------------------------------------------------------------------------------------------

def test_settings_in_litellms_spellings() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "local", "similarity_threshold": 0.8, "embedding_model": "emb"}, warnings)
    assert s is not None and s.semantic == "local" and s.similarity_threshold == 0.8 and s.embedding_model == "emb"
    assert warnings == []
    s = from_litellm(True, {"type": "semantic", "similarity_threshold": 1}, [])
    assert s is not None and s.semantic == "local" and s.embedding_model == "text-embedding-ada-002"
    s = from_litellm(True, {"type": "redis-semantic", "host": "h", "port": 6379, "similarity_threshold": 0.9,
                            "redis_semantic_cache_embedding_model": "emb", "embedding_timeout": 0.5}, [])
    assert s is not None and (s.type, s.semantic, s.redis_host, s.embedding_model, s.embedding_timeout) == (
        "redis-semantic", "redis", "h", "emb", 0.5)
    s = from_litellm(True, {"type": "qdrant-semantic", "similarity_threshold": 0.8, "qdrant_collection_name": "c",
                            "qdrant_semantic_cache_embedding_model": "emb", "qdrant_quantization_config": "binary",
                            "qdrant_semantic_cache_vector_size": 384}, warnings,
                     environ={"QDRANT_API_BASE": "http://q:6333", "QDRANT_API_KEY": "k"})
    assert s is not None and (s.semantic, s.qdrant_collection_name, s.qdrant_api_base, s.qdrant_api_key,
                              s.qdrant_quantization_config, s.embedding_model) == (
        "qdrant", "c", "http://q:6333", "k", "binary", "emb")
    assert warnings == ["litellm_settings.cache_params.qdrant_semantic_cache_vector_size: ignored"]
    s = from_litellm(True, {"type": "local"}, [])
    assert s is not None and s.semantic is None  # exact only
    warnings = []
    s = from_litellm(True, {"type": "redis", "host": "h", "embedding_model": "emb"}, warnings)
    assert s is not None and s.semantic is None and "not a semantic cache" in warnings[0]


@pytest.mark.parametrize(("params", "field"), [
    ({"type": "semantic"}, "similarity_threshold"),
    ({"type": "redis-semantic", "host": "h"}, "similarity_threshold"),
    ({"type": "local", "similarity_threshold": 1.5}, "similarity_threshold"),
    ({"type": "local", "similarity_threshold": True}, "similarity_threshold"),
    ({"type": "semantic", "similarity_threshold": 0.8, "embedding_model": 3}, "embedding_model"),
    ({"type": "semantic", "similarity_threshold": 0.8, "embedding_timeout": 0}, "embedding_timeout"),
    ({"type": "semantic", "similarity_threshold": 0.8, "semantic_max_entries": -1}, "semantic_max_entries"),
    ({"type": "qdrant-semantic", "similarity_threshold": 0.8}, "qdrant_collection_name"),
    ({"type": "qdrant-semantic", "similarity_threshold": 0.8, "qdrant_collection_name": "c",
      "qdrant_quantization_config": "float"}, "qdrant_quantization_config"),
    ({"type": "qdrant-semantic", "similarity_threshold": 0.8, "qdrant_collection_name": "c",
      "qdrant_api_base": 5}, "qdrant_api_base"),
    ({"type": "redis-semantic", "similarity_threshold": 0.8}, "cache_params"),
    ({"type": "valkey-semantic", "host": "h"}, "similarity_threshold"),
])
def test_invalid_semantic_settings(params: dict[str, Any], field: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        from_litellm(True, params, [], environ={})
    assert info.value.field == "litellm_settings.cache_params" + ("" if field == "cache_params" else "." + field)


# -- the stage, in process, with a real embedding model ---------------------------------------------------

def gateway(server: EmbeddingServer, **params: Any) -> Any:
    # a generous embedding timeout: the real model answers in milliseconds, but a loaded machine (the suite's
    # other workers) must not turn an embedding into a timed-out miss; the timeout's own test sets its own
    cache_params = {"type": "local", "similarity_threshold": 0.8, "embedding_model": "emb", "embedding_timeout": 30,
                    **params}
    return make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                       {"model_name": "m2", "litellm_params": {"model": "mock/echo"}},
                       {"model_name": "emb", "litellm_params": {"model": "openai/minilm", "api_base": server.base,
                                                                 "api_key": "sk-emb"}}],
        "router_settings": {"num_retries": 0},
        "litellm_settings": {"cache": True, "cache_params": cache_params},
    })


async def ask(gw: Any, text: str, model: str = "m", **extra: Any) -> tuple[str, dict[str, str]]:
    r = await call(gw, "POST", "/v1/chat/completions",
                   {"model": model, "messages": [{"role": "user", "content": text}], **extra})
    assert r.status == 200, r.body
    return r.json()["choices"][0]["message"]["content"], r.headers


async def close(gw: Any) -> None:
    await gw.response_cache.aclose()
    await gw.aclose()


def test_paraphrase_hits_unrelated_misses_in_process(minilm: MiniLM) -> None:  # noqa: F811
    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server)
            first, h = await ask(gw, PASSWORD)
            assert "x-litellm-cache-key" not in h and server.calls == 1
            again, h = await ask(gw, PASSWORD)  # the exact key first: no embedding call
            assert again == first and h["x-litellm-cache-key"] and "x-litellm-semantic-similarity" not in h
            assert server.calls == 1
            para, h = await ask(gw, PARAPHRASE)
            assert para == first  # the echo of the first prompt: served from the cache
            assert float(h["x-litellm-semantic-similarity"]) > 0.9 and h["x-litellm-cache-key"]
            assert h["x-litellm-response-cost"] == "0.0" and server.calls == 2
            other, h = await ask(gw, UNRELATED)
            assert "x-litellm-cache-key" not in h and UNRELATED in other
            _, h = await ask(gw, PARAPHRASE, model="m2")  # another model group: never
            assert "x-litellm-cache-key" not in h
            _, h = await ask(gw, PARAPHRASE, temperature=0.3)  # another request shape: never
            assert "x-litellm-cache-key" not in h
            _, h = await ask(gw, PARAPHRASE, cache={"namespace": "n2"})
            assert "x-litellm-cache-key" not in h
            s = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "stream": True, "messages": [
                {"role": "user", "content": "Please tell me how to reset my password"}]})
            assert s.status == 200 and b"x-litellm-semantic-similarity" not in s.body
            assert s.headers.get("x-litellm-semantic-similarity") and b"data: [DONE]" in s.body
            assert PASSWORD.encode() in s.body  # the stored answer, replayed as a stream
            cache = gw.response_cache
            assert cache.hits == 3 and cache.semantic.embedder.failures == 0
            await close(gw)

    asyncio.run(main())


def test_cut_to_tokens() -> None:
    from relaygate.cache.semantic import cut_to_tokens
    from relaygate.core.tokens import estimate_tokens

    assert cut_to_tokens(PASSWORD, 100) == PASSWORD
    long = " ".join(f"word{i}" for i in range(2000))
    cut = cut_to_tokens(long, 50)
    assert long.startswith(cut) and estimate_tokens(cut) <= 50 < estimate_tokens(long[:len(cut) + 1])
    assert cut_to_tokens(long, 1) == long[:len(cut_to_tokens(long, 1))] and cut_to_tokens("", 5) == ""


def test_prompts_cut_to_the_embedding_models_window(minilm: MiniLM) -> None:  # noqa: F811
    """LiteLLM's ``semantic_cache_embedding_max_input_tokens``, and without it the embedding deployment's
    ``max_input_tokens``: a long prompt is cut before it is embedded; a short one is sent whole."""
    from relaygate.core.tokens import estimate_tokens

    long = PASSWORD + " " + " ".join(f"detail{i}" for i in range(400))

    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server, semantic_cache_embedding_max_input_tokens=12)
            await ask(gw, long)
            await ask(gw, PARAPHRASE)
            cut, whole = server.inputs
            assert long.startswith(cut) and len(cut) < len(long) and estimate_tokens(cut) <= 12
            assert whole == PARAPHRASE
            await close(gw)
            server.inputs.clear()
            windowed = make_gateway({
                "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                               {"model_name": "emb", "litellm_params": {"model": "openai/minilm",
                                                                         "api_base": server.base, "api_key": "sk-emb"},
                                "model_info": {"max_input_tokens": 20, "mode": "embedding"}}],
                "litellm_settings": {"cache": True, "cache_params": {"type": "local", "similarity_threshold": 0.8,
                                                                     "embedding_model": "emb"}}})
            await ask(windowed, long)
            (cut,) = server.inputs
            assert long.startswith(cut) and estimate_tokens(cut) <= 20 < estimate_tokens(long)
            await close(windowed)

    asyncio.run(main())


def test_embedding_model_down_is_a_miss_logged_once(minilm: MiniLM, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server)  # down answers 503 at once: no timeout involved
            await ask(gw, PASSWORD)
            server.down = True
            for variant in (PARAPHRASE, "How can I reset my password?", "how do i reset my password"):
                text, h = await ask(gw, variant)
                assert "x-litellm-cache-key" not in h and variant in text
            emb = gw.response_cache.semantic.embedder
            assert emb.failures == 3
            server.down = False
            _, h = await ask(gw, "What's the way to reset my password, please?")
            assert h.get("x-litellm-semantic-similarity")
            await close(gw)
            unknown = gateway(server, embedding_model="nope")  # not in the model_list: a miss too
            _, h = await ask(unknown, PASSWORD)
            assert "x-litellm-cache-key" not in h and unknown.response_cache.semantic.embedder.failures == 1
            await close(unknown)

    with caplog.at_level(logging.WARNING, logger="relaygate.cache"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if "embedding model" in r.getMessage()]
    assert len(warnings) == 2 and "'emb'" in warnings[0].getMessage() and "'nope'" in warnings[1].getMessage()


def test_qdrant_local_mode_in_process(minilm: MiniLM) -> None:  # noqa: F811
    pytest.importorskip("qdrant_client")

    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server, type="qdrant-semantic", qdrant_collection_name="rg",
                         qdrant_semantic_cache_embedding_model="emb", embedding_model=None)
            first, _ = await ask(gw, PASSWORD)
            await asyncio.sleep(0.2)  # the point is written off the request path
            gw.response_cache.memory.clear()  # the answer comes from Qdrant's payload, not this worker's memory
            para, h = await ask(gw, PARAPHRASE)
            assert para == first and float(h["x-litellm-semantic-similarity"]) > 0.9
            _, h = await ask(gw, UNRELATED)
            assert "x-litellm-cache-key" not in h
            _, h = await ask(gw, PARAPHRASE, model="m2")
            assert "x-litellm-cache-key" not in h
            await close(gw)

    asyncio.run(main())


# -- redis-semantic's vectors on a real redis-server ------------------------------------------------------

def test_search_module_detection() -> None:
    from relaygate.cache.vectors_redis import _has_search

    stack = [[b"name", b"search", b"ver", 20809, b"path", b"/opt/redis-stack/lib/redisearch.so", b"args", []]]
    debian = [[b"name", b"ft", b"ver", 10200, b"path", b"/usr/lib/redis/modules/redisearch.so", b"args", []]]
    assert _has_search(stack) and not _has_search(debian)  # RediSearch 1.2 has FT.* but no vector fields
    assert not _has_search([]) and not _has_search(b"ERR") and not _has_search([[b"name", b"ReJSON", b"ver", 20606]])


@pytest.mark.redis
def test_redis_vectors_scan_bounds_and_expiry(redis_server: Any) -> None:
    from relaygate.cache.redis import RedisCache
    from relaygate.cache.vectors_redis import RedisVectors
    from relaygate.limits.resp import RedisAddress

    async def main() -> None:
        redis = RedisCache(RedisAddress.from_settings(redis_server.url, None, None, None))
        now = [1000.0]
        vec = RedisVectors(redis, "ns", max_entries=3, wall=lambda: now[0])
        for i in range(5):
            vec.add("s1", f"ns:k{i}", unit(float(i + 1), 1.0), ttl=10, value=b"")
        vec.add("s2", "ns:other", unit(1.0, 0.0), ttl=100, value=b"")
        await asyncio.gather(*vec._tasks)
        assert vec.search_module is False  # Debian's redis-server: the scan
        assert await redis._call("HLEN", "HLEN", "ns:semantic:s1") == 3
        m = await vec.search("s2", unit(1.0, 0.05), 0.9)
        assert m is not None and m.key == "ns:other" and m.similarity > 0.99
        assert await vec.search("s2", unit(0.0, 1.0), 0.5) is None
        assert await vec.search("s3", unit(1.0, 0.0), 0.1) is None
        now[0] += 50  # the s1 entries expired (the hash itself lives as long as the latest store's TTL)
        assert await vec.search("s1", unit(1.0, 1.0), 0.1) is None
        await asyncio.gather(*vec._tasks)
        assert await redis._call("HLEN", "HLEN", "ns:semantic:s1") == 0  # removed off the request path
        redis_server.stop()
        assert await vec.search("s2", unit(1.0, 0.0), 0.1) is None  # down: a miss
        assert redis.failures >= 1
        await vec.aclose()
        await redis.aclose()

    asyncio.run(main())


def test_qdrant_down_is_a_miss_logged_once(minilm: MiniLM, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    pytest.importorskip("qdrant_client")
    from tests.conftest import dead_port

    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server, type="qdrant-semantic", qdrant_collection_name="rg", embedding_timeout=1,
                         qdrant_api_base=f"http://127.0.0.1:{dead_port()}")  # nothing listens there
            for text in (PASSWORD, PARAPHRASE, UNRELATED):
                answer, h = await ask(gw, text)
                assert "x-litellm-cache-key" not in h and text in answer
            await asyncio.sleep(0.2)  # the stores fail off the request path
            index = gw.response_cache.semantic.index
            assert index.failures >= 3 and gw.response_cache.misses == 3
            await close(gw)

    with caplog.at_level(logging.WARNING, logger="relaygate.cache"):
        asyncio.run(main())
    assert len([r for r in caplog.records if "semantic cache: qdrant" in r.getMessage()]) == 1


def test_completions_route_paraphrase(minilm: MiniLM) -> None:  # noqa: F811
    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            gw = gateway(server)
            first = await call(gw, "POST", "/v1/completions", {"model": "m", "prompt": PASSWORD})
            assert first.status == 200 and "x-litellm-cache-key" not in first.headers
            again = await call(gw, "POST", "/v1/completions", {"model": "m", "prompt": PARAPHRASE})
            assert again.headers.get("x-litellm-semantic-similarity")
            assert again.json()["choices"][0]["text"] == first.json()["choices"][0]["text"]
            chat = await call(gw, "POST", "/v1/chat/completions",
                              {"model": "m", "messages": [{"role": "user", "content": PARAPHRASE}]})
            assert "x-litellm-cache-key" not in chat.headers  # a completion never answers a chat request
            await close(gw)

    asyncio.run(main())


def test_semantic_hits_never_cross_keys(minilm: MiniLM) -> None:  # noqa: F811
    """As LiteLLM's semantic-cache tenant scope: a paraphrase matches the same key's prompts only (not another key
    of the same team, nor another team's); ``semantic_cache_scope: end_user`` also keeps end users apart;
    ``scope: global`` shares every caller's."""
    async def main() -> None:
        with EmbeddingServer(minilm) as server:
            for scope, b_hits in (("team", False), ("global", True)):
                gw = make_gateway({
                    "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                                   {"model_name": "emb", "litellm_params": {
                                       "model": "openai/minilm", "api_base": server.base, "api_key": "sk-emb"}}],
                    "general_settings": {"master_key": "sk-master"},
                    "relaygate_keys": [{"key": "sk-a", "team_id": "ta", "models": ["m"]},
                                       {"key": "sk-a2", "team_id": "ta", "models": ["m"]},
                                       {"key": "sk-b", "team_id": "tb", "models": ["m"]}],
                    "litellm_settings": {"cache": True, "cache_params": {
                        "type": "semantic", "similarity_threshold": 0.8, "embedding_model": "emb", "scope": scope}}})

                async def ask_as(key: str, text: str) -> Any:
                    r = await call(gw, "POST", "/v1/chat/completions",  # noqa: B023
                                   {"model": "m", "messages": [{"role": "user", "content": text}]},
                                   headers={"authorization": f"Bearer {key}"})
                    assert r.status == 200, r.body
                    return r.headers

                await ask_as("sk-a", PASSWORD)
                assert (await ask_as("sk-a", PARAPHRASE)).get("x-litellm-semantic-similarity")  # the same key
                mate = (await ask_as("sk-a2", "What is the way to reset my password?")).get("x-litellm-cache-key")
                assert bool(mate) is b_hits, scope  # another key of the same team: only with scope global
                hit = (await ask_as("sk-b", "How would I go about resetting my password?")).get("x-litellm-cache-key")
                assert bool(hit) is b_hits, scope
                await close(gw)
            gw = make_gateway({
                "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                               {"model_name": "emb", "litellm_params": {
                                   "model": "openai/minilm", "api_base": server.base, "api_key": "sk-emb"}}],
                "general_settings": {"master_key": "sk-master"},
                "litellm_settings": {"cache": True, "cache_params": {
                    "type": "semantic", "similarity_threshold": 0.8, "embedding_model": "emb",
                    "semantic_cache_scope": "end_user"}}})

            async def ask_for(user: str, text: str) -> Any:
                r = await call(gw, "POST", "/v1/chat/completions",
                               {"model": "m", "user": user, "messages": [{"role": "user", "content": text}]},
                               headers={"authorization": "Bearer sk-master"})
                assert r.status == 200, r.body
                return r.headers

            await ask_for("alice", PASSWORD)
            assert (await ask_for("alice", PARAPHRASE)).get("x-litellm-semantic-similarity")
            assert not (await ask_for("bob", PARAPHRASE)).get("x-litellm-semantic-similarity")  # another end user
            await close(gw)

    asyncio.run(main())


REDISEARCH_1 = "/usr/lib/redis/modules/redisearch.so"


@pytest.mark.redis
@pytest.mark.skipif(not os.path.exists(REDISEARCH_1), reason="Debian's redis-redisearch (RediSearch 1.2) not installed")
def test_an_old_search_module_is_scanned_like_plain_redis(tmp_path: Any) -> None:
    """Debian's RediSearch 1.2 answers ``FT.*`` but has no vector fields: the scan serves, and no ``FT``
    command is sent (an error reply would pause the whole Redis level)."""
    from relaygate.cache.redis import RedisCache
    from relaygate.cache.vectors_redis import RedisVectors
    from relaygate.limits.resp import RedisAddress
    from tests.conftest import free_port, stop_process

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", str(tmp_path), "--loadmodule", REDISEARCH_1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def main() -> None:
        redis = RedisCache(RedisAddress.from_settings(f"redis://127.0.0.1:{port}/0", None, None, None))
        for _ in range(100):
            if await redis.ping():
                break
            redis._down_until = 0.0
            await asyncio.sleep(0.05)
        vec = RedisVectors(redis, None)
        try:
            modules = await redis._call("MODULE", "MODULE", "LIST")
            assert modules[0][1] == b"ft"  # the module is loaded
            failures = redis.failures  # those of the wait for the server above
            vec.add("s", "k1", unit(1.0, 0.0), ttl=60, value=b"")
            await asyncio.gather(*vec._tasks)
            assert vec.search_module is False
            m = await vec.search("s", unit(1.0, 0.1), 0.9)
            assert m is not None and m.key == "k1" and redis.failures == failures
        finally:
            await vec.aclose()
            await redis.aclose()

    try:
        asyncio.run(main())
    finally:
        stop_process(proc)


def test_valkey_semantic_reads_litellms_variables() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "valkey-semantic", "similarity_threshold": 0.9,
                            "valkey_semantic_cache_embedding_model": "emb", "valkey_semantic_cache_index_name": "i"},
                     warnings, environ={"VALKEY_HOST": "vk", "VALKEY_PORT": "6380", "VALKEY_PASSWORD": "pw",
                                        "REDIS_HOST": "redis-host"})
    assert s is not None and s.type == "valkey-semantic" and s.semantic == "redis" and s.embedding_model == "emb"
    assert (s.redis_host, s.redis_port, s.redis_password, s.redis_url) == ("vk", 6380, "pw", None)
    assert warnings == ["litellm_settings.cache_params.valkey_semantic_cache_index_name: ignored"]
    s = from_litellm(True, {"type": "valkey-semantic", "similarity_threshold": 0.9}, [],
                     environ={"REDIS_HOST": "redis-host", "REDIS_PORT": "6379"})
    assert s is not None and (s.redis_host, s.redis_port) == ("redis-host", 6379)
    with pytest.raises(CacheConfigError, match="VALKEY_HOST"):
        from_litellm(True, {"type": "valkey-semantic", "similarity_threshold": 0.9}, [], environ={})
