"""LiteLLM's ``cache`` / ``cache_params`` read into CacheSettings, with a clear error naming the field."""

from __future__ import annotations

import pytest

from relaygate.config.cache import CacheConfigError, from_litellm


def test_off_and_defaults() -> None:
    assert from_litellm(None, None, []) is None and from_litellm(False, {"type": "redis"}, []) is None
    s = from_litellm(True, {"type": "local"}, [], environ={})
    assert s is not None and s.type == "local"
    assert s.routes == {"chat", "completions", "embeddings", "transcriptions", "rerank", "responses", "messages"}
    assert s.max_messages == 4 and s.redis_timeout == 0.05  # LiteLLM's max_messages; relaygate's Redis deadline
    # LiteLLM's defaults: InMemoryCache 600 s, RedisCache 60 s (BaseCache.default_ttl)
    assert s.scope == "team" and not s.default_off and s.memory_ttl == 600 and s.redis_ttl == 60
    s = from_litellm(True, {"type": "redis", "host": "h", "default_in_memory_ttl": 5}, [], environ={})
    assert s is not None and (s.memory_ttl, s.redis_ttl) == (5, 60)


def test_without_cache_params_the_environments_redis_as_litellm() -> None:
    """LiteLLM's load_config: ``cache_params.get("type", "redis")``, and with no cache_params at all the host,
    port and password of REDIS_HOST / REDIS_PORT / REDIS_PASSWORD (its Redis client also takes REDIS_URL)."""
    env = {"REDIS_HOST": "10.0.0.9", "REDIS_PORT": "6390", "REDIS_PASSWORD": "pw"}
    for params in (None, {}):
        warnings: list[str] = []
        s = from_litellm(True, params, warnings, environ=env)
        assert s is not None and s.type == "redis" and not warnings
        assert (s.redis_host, s.redis_port, s.redis_password) == ("10.0.0.9", 6390, "pw")
    s = from_litellm(True, None, [], environ={"REDIS_URL": "redis://r:1/3"})
    assert s is not None and s.type == "redis" and s.redis_url == "redis://r:1/3"
    warnings = []
    s = from_litellm(True, None, warnings, environ={})  # no Redis anywhere: the per-worker cache, said once
    assert s is not None and s.type == "local"
    assert len(warnings) == 1 and "LiteLLM would try a Redis" in warnings[0]
    warnings = []
    s = from_litellm(True, {"type": "local"}, warnings, environ=env)  # written out: unchanged
    assert s is not None and s.type == "local" and not warnings
    s = from_litellm(True, {"ttl": 60}, warnings, environ=env)  # other params, no type: the environment's Redis
    assert s is not None and s.type == "redis" and s.redis_host == "10.0.0.9" and not warnings
    s = from_litellm(True, {"host": "h", "port": 6379}, warnings, environ={})  # a Redis named in cache_params
    assert s is not None and s.type == "redis" and s.redis_host == "h" and not warnings
    s = from_litellm(True, {"ttl": 60}, warnings, environ={})  # no Redis named anywhere: local, and said
    assert s is not None and s.type == "local"
    assert len(warnings) == 1 and warnings[0].startswith("litellm_settings.cache_params.type:")


def test_litellm_params() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "redis", "host": "10.0.0.5", "port": "6380", "password": "pw",
                            "namespace": "litellm.caching", "ttl": 120, "default_in_memory_ttl": 30,
                            "supported_call_types": ["acompletion", "aembedding", "arerank", "aspeech"],
                            "mode": "default_off", "max_connections": 10}, warnings)
    assert s is not None and (s.redis_host, s.redis_port, s.redis_password) == ("10.0.0.5", 6380, "pw")
    assert s.routes == {"chat", "embeddings", "rerank"} and s.default_off and s.namespace == "litellm.caching"
    assert s.memory_ttl == 30 and s.redis_ttl == 120
    assert any("aspeech" in w for w in warnings) and any("max_connections" in w for w in warnings)
    assert not any("arerank" in w for w in warnings)


def test_default_call_types_are_litellms() -> None:
    # LiteLLM 1.110's DEFAULT_CACHING_SUPPORTED_CALL_TYPES: completion, text_completion, embedding, transcription,
    # rerank, responses and anthropic_messages (sync and async)
    s = from_litellm(True, {"type": "local"}, [])
    assert s is not None and s.routes == {"chat", "completions", "embeddings", "transcriptions", "rerank",
                                          "responses", "messages"}


def test_max_messages_socket_timeout_and_semantic_scope() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "local", "max_messages": None}, warnings)
    assert s is not None and s.max_messages is None and not warnings
    s = from_litellm(True, {"type": "redis", "host": "h", "max_messages": 10, "socket_timeout": 0.5}, warnings)
    assert s is not None and s.max_messages == 10 and s.redis_timeout == 0.5 and not warnings
    for bad in ({"max_messages": -1}, {"max_messages": True}, {"max_messages": "4"}):
        with pytest.raises(CacheConfigError, match="max_messages"):
            from_litellm(True, {"type": "local", **bad}, [])
    with pytest.raises(CacheConfigError, match="socket_timeout"):
        from_litellm(True, {"type": "local", "socket_timeout": 0}, [])
    s = from_litellm(True, {"type": "semantic", "similarity_threshold": 0.9, "semantic_cache_scope": "end_user",
                            "semantic_cache_embedding_timeout": 3}, warnings)
    assert s is not None and s.semantic_end_user and s.embedding_timeout == 3.0 and not warnings
    with pytest.raises(CacheConfigError, match="semantic_cache_scope"):
        from_litellm(True, {"type": "semantic", "similarity_threshold": 0.9, "semantic_cache_scope": "org"}, [])


def test_a_worker_copy_never_outlives_the_redis_entry() -> None:
    # LiteLLM's Redis caches have no memory level: the copy relaygate keeps is bounded by the Redis TTL
    s = from_litellm(True, {"type": "redis", "host": "h", "default_in_redis_ttl": 30, "ttl": 600}, [])
    assert s is not None and s.redis_ttl == 30 and s.memory_ttl == 30
    s = from_litellm(True, {"type": "redis", "host": "h"}, [])
    assert s is not None and s.redis_ttl == 60 and s.memory_ttl == 60
    s = from_litellm(True, {"type": "local", "ttl": 600}, [])
    assert s is not None and s.memory_ttl == 600


def test_redis_from_the_environment() -> None:
    s = from_litellm(True, {"type": "redis"}, [], environ={"REDIS_URL": "redis://h:1/2"})
    assert s is not None and s.redis_url == "redis://h:1/2"
    with pytest.raises(CacheConfigError, match="REDIS_HOST"):
        from_litellm(True, {"type": "redis"}, [], environ={})


@pytest.mark.parametrize(("cache", "params", "field"), [
    ("yes", None, "litellm_settings.cache"),
    (True, [], "litellm_settings.cache_params"),
    (True, {"type": "memcached"}, "litellm_settings.cache_params.type"),
    (True, {"type": "disk"}, "litellm_settings.cache_params.type"),
    (True, {"type": "azure-blob"}, "litellm_settings.cache_params.azure_account_url"),
    (True, {"type": "gcs"}, "litellm_settings.cache_params.gcs_bucket_name"),
    (True, {"type": "s3"}, "litellm_settings.cache_params.s3_bucket_name"),
    (True, {"ttl": -5}, "litellm_settings.cache_params.ttl"),
    (True, {"mode": "sometimes"}, "litellm_settings.cache_params.mode"),
    (True, {"scope": "user"}, "litellm_settings.cache_params.scope"),
    (True, {"supported_call_types": ["acompletion", "nope"]}, "litellm_settings.cache_params.supported_call_types"),
    (True, {"max_bytes": 0}, "litellm_settings.cache_params.max_bytes"),
    (True, {"type": "redis", "host": "h", "port": "x"}, "litellm_settings.cache_params.port"),
])
def test_invalid(cache: object, params: object, field: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        from_litellm(cache, params, [], environ={})
    assert info.value.field == field


def test_litellms_parameters_not_acted_on_say_why() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "local", "redis_flush_size": 100, "disk_cache_dir": "/tmp/c"}, warnings,
                     environ={})
    assert s is not None and warnings == [
        "litellm_settings.cache_params.redis_flush_size: ignored (relaygate's Redis writer sends each store as it "
        "comes, pipelined; nothing waits for a batch)",
        "litellm_settings.cache_params.disk_cache_dir: ignored (LiteLLM 1.110 removed the disk cache)"]
    warnings.clear()
    from_litellm(True, {"type": "redis", "host": "h", "gcp_service_account": "sa@p.iam"}, warnings, environ={})
    assert len(warnings) == 1 and "IAM authentication is not supported" in warnings[0]
