"""The cache stage in the pipeline (in-process tier): a miss goes upstream and is stored, a hit is served
without the router with the original usage at cost 0, streams are stored once complete and replayed, and
the per-request controls do what LiteLLM documents."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from relaygate.cache.stage import ResponseCache
from relaygate.config.cache import CacheSettings
from relaygate.sinks.record import CompletionRecord
from tests.asgi.conftest import call, make_gateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "classify this"}]}


def gateway(e_params: dict[str, Any] | None = None, **settings: Any) -> tuple[Any, list[CompletionRecord],
                                                                             ResponseCache]:
    """An in-process gateway with models ``m`` and ``e`` (``e_params`` added to e's ``litellm_params``), the
    cache of ``settings``, and the completion records it makes."""
    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}},
                                      {"model_name": "e", "litellm_params": {"model": "mock/echo", **(e_params or {})}}]})
    cache = ResponseCache(CacheSettings(**settings))
    gw.pipeline.runtime.cache = cache
    records: list[CompletionRecord] = []

    class Sink:
        def handle(self, batch: list[CompletionRecord]) -> None:
            records.extend(batch)

    gw.completions.add_sink(Sink())
    return gw, records, cache


@contextlib.asynccontextmanager
async def stored_gateway(path: Any, master: str) -> AsyncIterator[Any]:
    """An in-process gateway with model ``m``, a local cache and a SQLite store at ``path`` (keys made through
    ``/key/generate`` with ``master``), closed on exit."""
    from relaygate.store import open_store

    gw = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                       "general_settings": {"master_key": master},
                       "litellm_settings": {"cache": True, "cache_params": {"type": "local"}}})
    store = await open_store(f"sqlite:///{path}")
    gw.store = store
    gw.runtime.use_store(store)
    try:
        yield gw
    finally:
        gw.store = None
        await store.close()
        await gw.completions.aclose()


def sse_payloads(body: bytes) -> list[dict[str, Any]]:
    out = []
    for event in body.split(b"\n\n"):
        if event.startswith(b"data: ") and event != b"data: [DONE]":
            out.append(orjson.loads(event[6:]))
    return out


def test_miss_then_hit_unary() -> None:
    async def main() -> None:
        gw, records, cache = gateway()
        first = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert first.status == 200 and "x-litellm-cache-key" not in first.headers
        # same request, other key order, whitespace and ignored fields: a hit
        again = await call(gw, "POST", "/v1/chat/completions",
                           b'{"messages": [{"content": "classify this", "role": "user"}],  "user": "u9", "model": "m"}')
        assert again.status == 200 and again.headers["x-litellm-cache-key"]
        assert again.headers["x-litellm-response-cost"] == "0.0"
        a, b = first.json(), again.json()
        assert b["choices"] == a["choices"] and b["usage"] == a["usage"] and b["model"] == "m"
        assert b["id"] != a["id"] and b["id"].startswith("chatcmpl-")
        other = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "temperature": 0.5})
        assert "x-litellm-cache-key" not in other.headers
        await gw.completions.aclose()
        assert [r.cache_hit for r in records] == [False, True, False]
        hit = records[1]
        assert hit.cost == 0.0 and hit.prompt_tokens == a["usage"]["prompt_tokens"] and hit.deployment_id == ""
        assert (cache.hits, cache.misses) == (1, 2)

    asyncio.run(main())


def test_stream_is_stored_when_complete_and_replayed() -> None:
    async def main() -> None:
        gw, records, _ = gateway()
        req = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        first = await call(gw, "POST", "/v1/chat/completions", req)
        assert first.status == 200
        text = "".join(p["choices"][0]["delta"].get("content") or "" for p in sse_payloads(first.body) if p["choices"])
        # the stream's answer serves a unary request ...
        unary = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert unary.headers.get("x-litellm-cache-key") and unary.json()["choices"][0]["message"]["content"] == text
        # ... and a stream request, as a proper SSE stream ending with usage and [DONE]
        again = await call(gw, "POST", "/v1/chat/completions", req)
        assert again.headers.get("x-litellm-cache-key") and again.headers["content-type"] == "text/event-stream"
        assert again.body.endswith(b"data: [DONE]\n\n")
        payloads = sse_payloads(again.body)
        assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"]) == text
        assert payloads[-1]["usage"] and payloads[-1]["model"] == "m"
        await gw.completions.aclose()
        assert [r.cache_hit for r in records] == [False, True, True]

    asyncio.run(main())


def test_controls() -> None:
    async def main() -> None:
        gw, _, cache = gateway()
        await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"no-store": True}})
        r = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert "x-litellm-cache-key" not in r.headers  # nothing was stored by the no-store request
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"no-cache": True}})
        assert "x-litellm-cache-key" not in r.headers  # not served from the cache
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"namespace": "other"}})
        assert "x-litellm-cache-key" not in r.headers  # another key space
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"namespace": "other"}})
        assert r.headers["x-litellm-cache-key"].startswith("other:")
        cache._wall = lambda: 10**10  # far in the future: the entry is older than any s-maxage
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"s-maxage": 60}})
        assert "x-litellm-cache-key" not in r.headers
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"use-cache": False}})
        assert "x-litellm-cache-key" not in r.headers
        for bad in ({"no-cache": "yes"}, {"ttl": -1}, {"s-max-age": "1h"}, "all", {"namespace": ""}):
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": bad})
            assert r.status == 400 and r.json()["error"]["param"] == "cache", bad
        await gw.completions.aclose()

    asyncio.run(main())


def test_the_ttl_a_request_asks_outside_the_cache_object() -> None:
    """As LiteLLM: a ``Cache-Control: s-maxage=<s>`` request header, else the body's top-level ``ttl``, is the TTL
    the answer is stored for; the ``cache`` object's ``ttl`` and the configured ``ttl`` win over both."""
    async def main() -> None:
        for settings, body, headers, want in (
                ({}, {**CHAT, "ttl": 30}, {}, 30.0),
                ({}, {**CHAT, "ttl": 30}, {"cache-control": "no-transform, s-maxage=7"}, 7.0),
                ({}, {**CHAT, "cache": {"ttl": 5}}, {"cache-control": "s-maxage=7"}, 5.0),
                ({"ttl": 600.0}, {**CHAT, "ttl": 30}, {"cache-control": "s-maxage=7"}, 600.0),
                ({}, CHAT, {"cache-control": "max-age=9"}, 600.0)):
            gw, _, cache = gateway(**settings)
            r = await call(gw, "POST", "/v1/chat/completions", body, headers=headers)
            ((_, expires),) = cache.memory._data.values()  # the one entry stored, and when it expires
            assert r.status == 200 and abs(expires - time.monotonic() - want) < 2, (body, headers)
            await gw.completions.aclose()
        gw, _, _ = gateway()
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "ttl": "1h"})
        assert r.status == 400 and r.json()["error"]["param"] == "ttl"
        await gw.completions.aclose()

    asyncio.run(main())


def test_s_max_age_alias_and_unknown_controls() -> None:
    """LiteLLM reads ``s-maxage`` or ``s-max-age`` and ignores control names it does not know: a client that
    works against LiteLLM is not refused here (the known names keep their type checks)."""
    async def main() -> None:
        gw, _, cache = gateway()
        first = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"bogus": 1, "no-store": False}})
        assert first.status == 200 and "x-litellm-cache-key" not in first.headers
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"s-max-age": 60, "later": "x"}})
        assert r.status == 200 and r.headers.get("x-litellm-cache-key")  # stored by the first, fresh enough
        real = cache._wall
        cache._wall = lambda: real() + 120  # the entry is two minutes old now
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"s-max-age": 60}})
        assert r.status == 200 and "x-litellm-cache-key" not in r.headers
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"s-max-age": 600}})
        assert r.headers.get("x-litellm-cache-key")
        await gw.completions.aclose()

    asyncio.run(main())


def test_caching_false_is_not_served_but_stored() -> None:
    """LiteLLM's top-level ``caching`` field: anything but absent, null or true skips the lookup
    (``caching_handler.async_get_cache``), while the answer is still stored (its store path reads only
    ``no-store`` and the mode); ``caching: true`` does not opt in under ``mode: default_off`` (LiteLLM's
    ``Cache.should_use_cache`` reads only ``use-cache``)."""
    async def main() -> None:
        gw, _, cache = gateway()
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "caching": False})
        assert r.status == 200 and "x-litellm-cache-key" not in r.headers
        r = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert r.headers.get("x-litellm-cache-key")  # the caching: false answer was stored
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "caching": False})
        assert "x-litellm-cache-key" not in r.headers  # never served from the cache
        for value in (None, True):
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "caching": value})
            assert r.headers.get("x-litellm-cache-key"), value
        await gw.completions.aclose()
        assert (cache.hits, cache.misses) == (3, 2)

        gw, _, cache = gateway(default_off=True)
        for _ in range(2):
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "caching": True})
            assert r.status == 200 and "x-litellm-cache-key" not in r.headers
        assert len(cache.memory) == 0  # neither served nor stored, as LiteLLM
        await gw.completions.aclose()

    asyncio.run(main())


def test_allowed_cache_controls_govern_every_name(tmp_path: Any) -> None:
    """A key's ``allowed_cache_controls`` refuses any other name with LiteLLM's 403 (its
    ``cache_control_check`` hook tests every name of ``cache``, known or not); without it, unknown names
    are ignored."""
    async def main() -> None:
        async with stored_gateway(tmp_path / "cc.db", "sk-master-cc") as gw:
            made = await call(gw, "POST", "/key/generate", {"allowed_cache_controls": ["no-cache"]},
                              headers={"authorization": "Bearer sk-master-cc"})
            assert made.status == 200, made.body
            h = {"authorization": f"Bearer {made.json()['key']}"}
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"no-cache": True}}, headers=h)
            assert r.status == 200
            for name in ("no-store", "s-max-age", "bogus"):
                r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {name: True}}, headers=h)
                assert r.status == 403 and r.json()["error"]["message"] == (
                    f"Not allowed to set {name} as a cache control. Contact admin to change permissions."), name
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"bogus": 1}},
                           headers={"authorization": "Bearer sk-master-cc"})
            assert r.status == 200

    asyncio.run(main())


def test_a_keys_cache_rules_are_read_once_and_follow_an_update(tmp_path: Any) -> None:
    """A stored key's cache rules are worked out on its first cached request and kept on the key
    (``KeyInfo.cache_rules``: ``()`` for a key with none, which then takes the path of a request without controls);
    ``/key/update`` resolves the key again, so a new ``allowed_cache_controls`` or ``metadata.cache`` applies at
    once."""
    async def main() -> None:
        admin = {"authorization": "Bearer sk-master-rules"}
        async with stored_gateway(tmp_path / "rules.db", "sk-master-rules") as gw:
            made = await call(gw, "POST", "/key/generate", {}, headers=admin)
            key = made.json()["key"]
            h = {"authorization": f"Bearer {key}"}
            first = await call(gw, "POST", "/v1/chat/completions", CHAT, headers=h)
            again = await call(gw, "POST", "/v1/chat/completions", CHAT, headers=h)
            assert first.status == again.status == 200 and "x-litellm-cache-key" in again.headers
            auth = [(b"authorization", f"Bearer {key}".encode())]
            who = gw.runtime.principals.resolve_cached(auth)
            assert who is not None and who.key is not None and who.key.records and who.key.cache_rules == ()
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"no-store": True}}, headers=h)
            assert r.status == 200
            updated = await call(gw, "POST", "/key/update", {"key": key, "allowed_cache_controls": ["no-cache"],
                                                             "metadata": {"cache": {"no-cache": True, "x": 1}}},
                                 headers=admin)
            assert updated.status == 200, updated.body
            r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"no-store": True}}, headers=h)
            assert r.status == 200  # the key's metadata.cache replaces the request's own controls
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers=h)
            assert r.status == 200 and "x-litellm-cache-key" not in r.headers  # no-cache, from the key, every time
            who = gw.runtime.principals.resolve_cached(auth)
            assert who is not None and who.key is not None
            assert who.key.cache_rules == (["no-cache"], {"no-cache": True})

    asyncio.run(main())


def test_default_off_and_uncached_routes() -> None:
    async def main() -> None:
        gw, _, _ = gateway(default_off=True, routes=frozenset({"chat"}))
        await call(gw, "POST", "/v1/chat/completions", CHAT)
        r = await call(gw, "POST", "/v1/chat/completions", CHAT)
        assert "x-litellm-cache-key" not in r.headers  # default_off: not used unless asked
        await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"use-cache": True}})
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"use-cache": True}})
        assert r.headers.get("x-litellm-cache-key")
        emb = {"model": "e", "input": "x"}
        await call(gw, "POST", "/v1/embeddings", {**emb, "cache": {"use-cache": True}})
        r = await call(gw, "POST", "/v1/embeddings", {**emb, "cache": {"use-cache": True}})
        assert r.status == 200 and "x-litellm-cache-key" not in r.headers  # embeddings not in routes
        await gw.completions.aclose()

    asyncio.run(main())


def test_team_scope_separates_teams() -> None:
    async def main() -> None:
        cfg = {"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
               "general_settings": {"master_key": "sk-master"},
               "relaygate_keys": [{"key": "sk-a", "team_id": "ta"}, {"key": "sk-a2", "team_id": "ta"},
                                  {"key": "sk-b", "team_id": "tb"}]}
        for scope, b_hits in (("team", False), ("global", True)):
            gw = make_gateway(cfg)
            gw.pipeline.runtime.cache = ResponseCache(CacheSettings(scope=scope))
            await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"authorization": "Bearer sk-a"})
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"authorization": "Bearer sk-a2"})
            assert r.headers.get("x-litellm-cache-key")  # same team
            r = await call(gw, "POST", "/v1/chat/completions", CHAT, headers={"authorization": "Bearer sk-b"})
            assert bool(r.headers.get("x-litellm-cache-key")) is b_hits, scope
            await gw.completions.aclose()

    asyncio.run(main())


def test_a_body_too_deep_for_the_key_is_served_uncached() -> None:
    async def main() -> None:
        gw, records, _ = gateway()
        deep = "{" + '"a":{' * 400 + "}" * 400 + "}"
        body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools_extra": ' + deep.encode() + b"}"
        for _ in range(2):  # answered both times, never cached
            r = await call(gw, "POST", "/v1/chat/completions", body)
            assert r.status == 200 and "x-litellm-cache-key" not in r.headers
        await gw.completions.aclose()
        assert all(not rec.cache_hit for rec in records)

    asyncio.run(main())


def test_a_hit_remembers_its_key_for_the_same_bytes_and_nothing_else(monkeypatch: Any) -> None:
    """After an exact hit, the same body bytes (route, group, team and namespace alike) skip the key's decode
    and hash; a miss remembers nothing; a per-request namespace, stripped from the forwarded body, still keys
    apart; the memo starts again empty past its byte bound."""
    from relaygate.cache import key, stage

    computed: list[bytes] = []
    real = key.canonical_body  # chat's key is made from the body's bytes (on the compiled path, too)

    def counting(body: bytes) -> bytes | None:
        computed.append(body)
        return real(body)

    monkeypatch.setattr(key, "canonical_body", counting)

    async def main() -> None:
        gw, _, cache = gateway()
        body = orjson.dumps(CHAT)
        first = await call(gw, "POST", "/v1/chat/completions", body)
        assert "x-litellm-cache-key" not in first.headers and cache._memo == {} and len(computed) == 1
        hit = await call(gw, "POST", "/v1/chat/completions", body)
        key = hit.headers["x-litellm-cache-key"]
        assert len(computed) == 2 and list(cache._memo.values()) == [key]
        again = await call(gw, "POST", "/v1/chat/completions", body)
        assert again.headers["x-litellm-cache-key"] == key and len(computed) == 2  # from the memo
        assert again.json()["choices"] == hit.json()["choices"]
        elsewhere = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"namespace": "other"}})
        assert "x-litellm-cache-key" not in elsewhere.headers and len(computed) == 3
        other = {**CHAT, "messages": [{"role": "user", "content": "another"}]}
        await call(gw, "POST", "/v1/chat/completions", other)
        monkeypatch.setattr(stage, "MEMO_BYTES", len(body) + stage.MEMO_ENTRY + 10)
        assert (await call(gw, "POST", "/v1/chat/completions", other)).headers["x-litellm-cache-key"]
        assert len(cache._memo) == 1 and cache._memo_bytes == len(orjson.dumps(other)) + stage.MEMO_ENTRY
        await gw.completions.aclose()

    asyncio.run(main())


def test_memory_decides_without_a_coroutine(monkeypatch: Any) -> None:
    """A lookup that memory decides returns at once (None for a miss, the stored bytes for a hit, None for an
    entry older than the request's ``s-maxage``); an embeddings request's lookup returns an awaitable."""
    returned: list[Any] = []

    async def main() -> None:
        gw, records, cache = gateway()
        real = cache.find  # what the pipeline calls: the compiled path's, or ResponseCache.lookup

        def watching(ex: Any) -> Any:
            out = real(ex)
            returned.append(out)
            return out

        monkeypatch.setattr(cache, "find", watching)
        await call(gw, "POST", "/v1/chat/completions", CHAT)
        await call(gw, "POST", "/v1/chat/completions", CHAT)
        await asyncio.sleep(1.1)
        stale = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "cache": {"s-maxage": 1}})
        assert "x-litellm-cache-key" not in stale.headers
        assert returned[0] is None and type(returned[1]) is bytes and returned[2] is None
        assert (cache.hits, cache.misses) == (1, 2)
        emb = await call(gw, "POST", "/v1/embeddings", {"model": "e", "input": ["a", "b"]})
        assert emb.status == 200 and asyncio.iscoroutine(returned[3])
        await gw.completions.aclose()
        assert [r.cache_hit for r in records] == [False, True, False, False]

    asyncio.run(main())
