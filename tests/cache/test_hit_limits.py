"""A cache hit pays its key's rate limits as a routed request does (LiteLLM's limiter runs before its cache
lookup): rpm, max parallel requests, tpm settled with the hit's usage; over them, the routed request's 429 in
the caller's API shape, before anything is sent and counted as neither hit nor miss. No deployment's limits
are charged. A hit carries the routed answer's key and duration headers.

In-process tier with a real local upstream (counting what reaches it), the in-process limiter and, for the
shared limiter, a real ``redis-server``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relaygate.sinks import CompletionRecord
from relaygate.store import Key
from tests.asgi.conftest import Reply, call, collect_records, make_gateway
from tests.asgi.test_pipeline_routes import Upstream, upstream
from tests.budgets.conftest import COST, ask, token
from tests.budgets.conftest import gateway as store_gateway
from tests.budgets.conftest import upstream as priced_upstream
from tests.conftest import RedisServer

CHAT = {"model": "m", "messages": [{"role": "user", "content": "classify this"}]}
OTHER = {"model": "m", "messages": [{"role": "user", "content": "something else"}]}
MESSAGES = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "classify this"}]}
USED = 4
"""The upstream's answer's usage (``CHAT_OK``: 3 prompt + 1 completion tokens)."""


def gateway(up: Upstream, keys: list[dict[str, Any]], *, call_types: list[str] | None = None,
            router: dict[str, Any] | None = None, dep: dict[str, Any] | None = None
            ) -> tuple[Any, list[CompletionRecord]]:
    params: dict[str, Any] = {"type": "local"}
    if call_types is not None:
        params["supported_call_types"] = call_types
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/up", "api_key": "sk-up",
                                                              "api_base": f"{up.url}/ok/v1", **(dep or {})}}],
        "litellm_settings": {"cache": True, "cache_params": params},
        "router_settings": router or {},
        "general_settings": {"master_key": "sk-master"},
        "relaygate_keys": keys})
    return gw, collect_records(gw)


def as_key(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def limit_headers(r: Reply) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith(("x-ratelimit-", "retry-after"))}


def frozen(gw: Any) -> None:
    """The in-process limiter's clock stopped: buckets do not refill during the test (exact levels)."""
    gw.pipeline.runtime.router.limiter.clock = lambda: 1000.0


def test_a_hit_over_the_keys_rpm_is_refused_as_a_routed_request() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, records = gateway(up, [{"key": "sk-two", "rpm_limit": 2}])
            frozen(gw)
            cache = gw.response_cache
            miss = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-two"))
            assert miss.status == 200 and "x-litellm-cache-key" not in miss.headers
            hit = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-two"))
            assert hit.status == 200 and hit.headers["x-litellm-cache-key"]
            assert hit.headers["x-ratelimit-remaining-requests"] == "0"
            refused = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-two"))
            assert refused.status == 429, refused.body
            err = refused.json()["error"]
            assert err["message"].startswith("LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / "
                                             "RPM / Max Parallel Request Limit. current rpm: 2, rpm limit: 2")
            assert (err["type"], err["code"]) == ("None", "429")
            assert "x-litellm-cache-key" not in refused.headers and refused.headers["retry-after"]
            assert len(up.hits) == 1
            # a request that would be routed, over the same limit: the same answer
            routed = await call(gw, "POST", "/v1/chat/completions", OTHER, as_key("sk-two"))
            assert routed.status == 429 and len(up.hits) == 1
            assert routed.json() == refused.json() and limit_headers(routed) == limit_headers(refused)
            # the master key has no limits: still served from the cache
            assert (await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-master"))).status == 200
            await gw.completions.aclose()
            assert cache is not None and (cache.hits, cache.misses) == (2, 2)  # the refused hit is neither
            assert [(r.status, r.cache_hit, r.cache_miss) for r in records] == [
                (200, False, True), (200, True, False), (429, False, False), (429, False, True),
                (200, True, False)]
            await gw.aclose()

    asyncio.run(main())


def test_a_key_without_limits_gets_every_hit() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up, [{"key": "sk-free"}, {"key": "sk-many", "rpm_limit": 1000}])
            for key in ("sk-free", "sk-many"):
                for _ in range(12):
                    r = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key(key))
                    assert r.status == 200
            assert len(up.hits) == 1
            assert gw.response_cache.hits == 23
            await gw.aclose()

    asyncio.run(main())


def test_a_hit_carries_the_routed_answers_key_and_duration_headers() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up, [{"key": "sk-lim", "rpm_limit": 100, "tpm_limit": 10000},
                                 {"key": "sk-free"}])
            routed = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-lim"))
            hit = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-lim"))
            assert hit.headers["x-litellm-cache-key"] and hit.headers["x-litellm-response-cost"] == "0.0"
            assert hit.headers["x-litellm-model-group"] == "m"
            assert hit.headers["x-litellm-key-spend"] == "0.0"
            assert float(hit.headers["x-litellm-response-duration-ms"]) > 0.0
            assert float(hit.headers["x-litellm-overhead-duration-ms"]) > 0.0
            assert hit.headers["x-litellm-key-rpm-limit"] == "100" and hit.headers["x-litellm-key-tpm-limit"] == "10000"
            assert hit.headers["x-ratelimit-limit-requests"] == "100"
            assert int(hit.headers["x-ratelimit-remaining-requests"]) < int(
                routed.headers["x-ratelimit-remaining-requests"])
            assert hit.headers["x-ratelimit-limit-tokens"] == "10000"
            # every header of the routed answer but those naming its deployment (and the upstream's own)
            deployment = {"x-litellm-model-id", "x-litellm-model-api-base", "x-litellm-model-name"}
            assert deployment <= set(routed.headers) and not deployment & set(hit.headers)
            assert {k for k in routed.headers if k.startswith("x-litellm-") or k.startswith("x-ratelimit-")
                    } - deployment <= set(hit.headers), set(routed.headers) - set(hit.headers)
            free = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-free"))
            assert free.headers["x-litellm-key-spend"] == "0.0" and free.headers["x-litellm-response-duration-ms"]
            assert not any(k.startswith(("x-ratelimit-", "x-litellm-key-rpm")) for k in free.headers)
            assert free.headers["x-litellm-version"] and free.headers["x-litellm-attempted-retries"] == "0"
            await gw.aclose()

    asyncio.run(main())


def test_the_hits_tokens_and_parallel_slot_are_settled_and_no_deployment_is_charged() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up, [{"key": "sk-tok", "tpm_limit": 1000, "max_parallel_requests": 1}],
                            dep={"rpm": 2, "tpm": 1000})
            frozen(gw)
            router = gw.pipeline.runtime.router
            state = router.limiter.buckets.state
            key = (await gw.pipeline.runtime.principals.resolve([(b"authorization", b"Bearer sk-tok")])).key
            tpm, par = key.buckets
            dep_rpm, dep_tpm = router.groups["m"].targets[0].buckets
            assert (await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-tok"))).status == 200
            assert state[tpm.key][0] == 1000 - USED and state[par.key][0] == 0
            assert (state[dep_rpm.key][0], state[dep_tpm.key][0]) == (1, 1000 - USED)
            for _ in range(3):  # more hits than the deployment's rpm: it is never charged
                hit = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-tok"))
                assert hit.status == 200 and hit.headers["x-litellm-cache-key"]
            assert state[tpm.key][0] == 1000 - 4 * USED and state[par.key][0] == 0
            assert (state[dep_rpm.key][0], state[dep_tpm.key][0]) == (1, 1000 - USED)
            # the key's one parallel slot taken by a request in flight: a hit waits its turn as LiteLLM's
            verdict = await router.limiter.acquire((par,), (1.0,))
            assert verdict.ok
            busy = await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-tok"))
            assert busy.status == 429 and "current max_parallel_requests: 1, max_parallel_requests: 1" in (
                busy.json()["error"]["message"])
            router.limiter.adjust((par,), (-1.0,))
            assert (await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-tok"))).status == 200
            assert len(up.hits) == 1 and state[par.key][0] == 0
            await gw.aclose()

    asyncio.run(main())


def test_a_stream_hit_pays_the_key_too() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up, [{"key": "sk-two", "rpm_limit": 2}])
            frozen(gw)
            assert (await call(gw, "POST", "/v1/chat/completions", CHAT, as_key("sk-two"))).status == 200
            req = {**CHAT, "stream": True}
            hit = await call(gw, "POST", "/v1/chat/completions", req, as_key("sk-two"))
            assert hit.status == 200 and hit.headers["content-type"] == "text/event-stream"
            assert hit.headers["x-ratelimit-remaining-requests"] == "0" and hit.headers["x-litellm-key-spend"]
            refused = await call(gw, "POST", "/v1/chat/completions", req, as_key("sk-two"))
            assert refused.status == 429 and refused.json()["error"]["code"] == "429"
            assert len(up.hits) == 1
            await gw.aclose()

    asyncio.run(main())


def test_a_messages_hit_is_refused_in_anthropics_shape() -> None:
    async def main() -> None:
        async with upstream() as up:
            gw, _ = gateway(up, [{"key": "sk-two", "rpm_limit": 2}], call_types=["anthropic_messages"])
            frozen(gw)
            miss = await call(gw, "POST", "/v1/messages", MESSAGES, as_key("sk-two"))
            assert miss.status == 200, miss.body
            hit = await call(gw, "POST", "/v1/messages", MESSAGES, as_key("sk-two"))
            assert hit.status == 200 and hit.headers["x-litellm-cache-key"] and hit.json()["type"] == "message"
            refused = await call(gw, "POST", "/v1/messages", MESSAGES, as_key("sk-two"))
            assert refused.status == 429 and len(up.hits) == 1
            body = refused.json()
            assert body["type"] == "error" and body["error"]["message"].startswith(
                "LiteLLM Rate Limit Handler for rate limit type = key.")
            routed = await call(gw, "POST", "/v1/messages", {**MESSAGES, "max_tokens": 11}, as_key("sk-two"))
            assert routed.status == 429 and len(up.hits) == 1
            assert routed.json() == body and limit_headers(routed) == limit_headers(refused)
            await gw.aclose()

    asyncio.run(main())


def test_the_shared_redis_limiter_refuses_a_hit_on_the_keys_shared_count(redis_server: RedisServer) -> None:
    """Two gateways on one Redis limiter (each with its own local cache): what the first paid for a miss and
    a hit counts on the second, whose hit is refused; the bucket lives in Redis."""
    async def main() -> None:
        import redis.asyncio as aioredis

        async with upstream() as up:
            settings = {"redis_url": redis_server.url}
            a, _ = gateway(up, [{"key": "sk-three", "rpm_limit": 3}], router=settings)
            b, _ = gateway(up, [{"key": "sk-three", "rpm_limit": 3}], router=settings)
            await a.router.start()
            await b.router.start()
            try:
                assert (await call(a, "POST", "/v1/chat/completions", CHAT, as_key("sk-three"))).status == 200
                assert (await call(b, "POST", "/v1/chat/completions", CHAT, as_key("sk-three"))).status == 200
                hit = await call(a, "POST", "/v1/chat/completions", CHAT, as_key("sk-three"))
                assert hit.status == 200 and hit.headers["x-litellm-cache-key"]
                refused = await call(b, "POST", "/v1/chat/completions", CHAT, as_key("sk-three"))
                assert refused.status == 429, refused.body
                assert "current rpm: 3, rpm limit: 3" in refused.json()["error"]["message"]
                assert len(up.hits) == 2 and b.response_cache.hits == 0
                r = aioredis.from_url(redis_server.url)
                key = (await a.pipeline.runtime.principals.resolve([(b"authorization", b"Bearer sk-three")])).key
                assert await r.exists(key.buckets[0].key)
                await r.aclose()
            finally:
                await a.aclose()
                await b.aclose()

    asyncio.run(main())



def test_a_hits_key_spend_is_the_keys_spend_so_far(tmp_path: Path) -> None:
    """A stored key's ``x-litellm-key-spend`` on a hit: its row's spend plus what this worker saw it spend
    since (the miss's cost), the hit adding 0."""
    async def main() -> None:
        cache = {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}}
        async with priced_upstream() as up, store_gateway(f"sqlite:///{tmp_path / 'k.db'}", up, **cache) as gw:
            await gw.store.create_key(Key(token=token("sk-spent"), spend=0.25, rpm_limit=5))
            miss = await ask(gw, "sk-spent")
            hit = await ask(gw, "sk-spent")
            assert "x-litellm-cache-key" not in miss.headers and hit.headers["x-litellm-cache-key"]
            assert float(miss.headers["x-litellm-key-spend"]) == float(hit.headers["x-litellm-key-spend"]) == (
                0.25 + COST)
            assert hit.headers["x-litellm-key-rpm-limit"] == "5" and up.hits == 1

    asyncio.run(main())


def test_a_keys_metadata_cache_controls_replace_the_requests(tmp_path: Path) -> None:
    """LiteLLM's ``add_key_level_controls``: a key whose ``metadata.cache`` says ``no-cache`` is never served
    from the cache whatever its requests send (its answers are still stored: another key gets the hit), and
    one with ``no-store`` stores nothing; names outside ttl / s-maxage / no-cache / no-store are dropped."""
    async def main() -> None:
        cache = {"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}}
        async with priced_upstream() as up, store_gateway(f"sqlite:///{tmp_path / 'm.db'}", up, **cache) as gw:
            await gw.store.create_key(Key(token=token("sk-fresh"), metadata={"cache": {"no-cache": True,
                                                                                      "namespace": "x"}}))
            await gw.store.create_key(Key(token=token("sk-nostore"), metadata={"cache": {"no-store": True}}))
            await gw.store.create_key(Key(token=token("sk-plain")))
            for _ in range(2):  # never a hit, even asking for one
                r = await ask(gw, "sk-fresh", cache={"no-cache": False})
                assert "x-litellm-cache-key" not in r.headers
            assert up.hits == 2
            assert "x-litellm-cache-key" in (await ask(gw, "sk-plain")).headers  # what sk-fresh stored
            assert up.hits == 2
            r = await ask(gw, "sk-nostore", messages=[{"role": "user", "content": "not kept"}])
            assert "x-litellm-cache-key" not in r.headers
            r = await ask(gw, "sk-plain", messages=[{"role": "user", "content": "not kept"}])
            assert "x-litellm-cache-key" not in r.headers and up.hits == 4  # nostore's answer was not kept

    asyncio.run(main())
