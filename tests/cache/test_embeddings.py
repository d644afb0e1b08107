"""Embeddings cached per input (``cache.embeddings``), in process: a list's inputs are found one by one, only
the missing ones go upstream, the answer is put back together in the request's order with the whole
request's usage, the cost is the upstream call's alone, and the per-request controls apply per input."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relaygate.cache.embeddings import Parts, inputs_of, shares, split_entry
from relaygate.cache.key import input_keys
from relaygate.cache.stage import ResponseCache
from relaygate.core import errors
from relaygate.sinks.record import CompletionRecord
from tests.asgi.conftest import call
from tests.cache.test_stage import gateway as stage_gateway

PRICE = 0.001  # per input token: the cost header shows which tokens were billed


def gateway(**settings: Any) -> tuple[Any, list[CompletionRecord], ResponseCache]:
    return stage_gateway({"input_cost_per_token": PRICE, "output_cost_per_token": 0.0}, **settings)


async def embed(gw: Any, inp: Any, **extra: Any) -> Any:
    r = await call(gw, "POST", "/v1/embeddings", {"model": "e", "input": inp, **extra})
    assert r.status == 200, r.body
    return r


def vectors(r: Any) -> list[Any]:
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    assert all(d["object"] == "embedding" for d in data)
    return [d["embedding"] for d in data]


def test_inputs_of() -> None:
    assert inputs_of({"input": "a"}) == ["a"]
    assert inputs_of({"input": ["a", "b"]}) == ["a", "b"]
    assert inputs_of({"input": [1, 2, 3]}) == [[1, 2, 3]]  # one token array is one input (LiteLLM splits it)
    assert inputs_of({"input": [[1, 2], [3]]}) == [[1, 2], [3]]
    assert inputs_of({"input": [{"type": "text", "text": "x"}]}) == [{"type": "text", "text": "x"}]
    for bad in ([], [1, "a"], [[]], [None], 5, None, [True]):
        assert inputs_of({"input": bad}) is None, bad


def test_shares_add_up() -> None:
    assert shares(10, [1, 1]) == [5, 5]
    assert shares(10, [1, 2]) == [3, 7]
    assert sum(shares(7, [3, 3, 3])) == 7
    assert shares(0, [1, 2]) == [0, 0] and shares(5, []) == []
    for total in range(0, 50):
        assert sum(shares(total, [5, 1, 9, 2])) == total


def test_input_keys() -> None:
    body = {"model": "e", "input": ["a", "b"], "dimensions": 8, "user": "u1"}
    ka, kb = input_keys("embeddings", "e", body, ["a", "b"])
    assert ka != kb
    # an input's key does not depend on the list it came in, nor on fields that do not change the answer
    assert input_keys("embeddings", "e", {"input": "a", "user": "u2", "dimensions": 8}, ["a"]) == [ka]
    assert input_keys("embeddings", "e", {"input": "a", "dimensions": 4}, ["a"]) != [ka]
    assert input_keys("embeddings", "other", body, ["a"]) != [ka]
    assert input_keys("embeddings", "e", body, ["a"], team="t1") != [ka]
    assert input_keys("embeddings", "e", body, ["a"], namespace="ns")[0] == "ns:" + ka
    assert input_keys("embeddings", "e", body, [{"b": 1, "a": 2}]) == input_keys("embeddings", "e", body,
                                                                                 [{"a": 2, "b": 1}])


def test_split_entry() -> None:
    assert split_entry(b"12\n[0.5,1.0]") == (12, b"[0.5,1.0]")
    assert split_entry(b"x\n[1]") is None and split_entry(b"12") is None and split_entry(b"3\n") is None


def test_merge_refuses_a_wrong_count() -> None:
    parts = Parts(["k0", "k1", "k2"], ["a", "b", "c"])
    parts.found[1], parts.found_tokens, parts.missing = b"[9]", 4, [0, 2]
    one = orjson.dumps({"object": "list", "data": [{"index": 0, "embedding": [1]}], "usage": {"prompt_tokens": 2}})
    with pytest.raises(errors.GatewayError) as exc:
        parts.merged(one)
    assert exc.value.status == 502 and "1 embedding(s) for the 2 input(s)" in exc.value.message
    assert parts.entries(one) == []  # nothing stored of an answer that cannot be placed
    # items out of order are placed by their index; usage is the whole request's
    two = orjson.dumps({"object": "list", "model": "e", "data": [{"index": 1, "embedding": [3]},
                                                                  {"index": 0, "embedding": [1]}],
                        "usage": {"prompt_tokens": 6, "total_tokens": 6}})
    merged = orjson.loads(parts.merged(two))
    assert [d["embedding"] for d in merged["data"]] == [[1], [9], [3]]
    assert merged["usage"] == {"prompt_tokens": 10, "total_tokens": 10} and merged["model"] == "e"
    assert [(k, e.split(b"\n")[1]) for k, e in parts.entries(two)] == [("k0", b"[1]"), ("k2", b"[3]")]


def test_partial_hit_sends_only_the_missing_inputs() -> None:
    async def main() -> None:
        gw, records, cache = gateway()
        first = await embed(gw, ["alpha beta gamma", "delta"])
        assert "x-litellm-cache-key" not in first.headers
        a, d = vectors(first)
        mixed = await embed(gw, ["delta", "epsilon zeta", "alpha beta gamma"])
        assert "x-litellm-cache-key" not in mixed.headers  # the upstream was called: not a hit
        assert vectors(mixed)[0] == d and vectors(mixed)[2] == a
        alone = await embed(gw, "epsilon zeta")  # stored by the partial request's upstream answer
        assert alone.headers.get("x-litellm-cache-key") and vectors(alone) == [vectors(mixed)[1]]
        # the whole answer from the entries: inputs in the request's order, the original usage, cost 0
        whole = await embed(gw, ["alpha beta gamma", "epsilon zeta", "delta"])
        keys = whole.headers["x-litellm-cache-key"].split(",")
        assert len(keys) == 3 and len(set(keys)) == 3 and whole.headers["x-litellm-response-cost"] == "0.0"
        assert vectors(whole) == [a, vectors(mixed)[1], d]
        await gw.completions.aclose()
        # usage: the mock counts each input's tokens; the partial answer reports the whole request's,
        # and only the upstream part (epsilon zeta) is billed and in the record
        full = first.json()["usage"]["prompt_tokens"]
        sent = alone.json()["usage"]["prompt_tokens"]
        assert mixed.json()["usage"]["prompt_tokens"] == full + sent == whole.json()["usage"]["prompt_tokens"]
        assert float(mixed.headers["x-litellm-response-cost"]) == pytest.approx(sent * PRICE)
        assert [(r.cache_hit, r.prompt_tokens) for r in records] == [(False, full), (False, sent), (True, sent),
                                                                     (True, full + sent)]
        assert records[1].cost == pytest.approx(sent * PRICE) and records[3].cost == 0.0
        assert (cache.hits, cache.misses) == (2, 2)

    asyncio.run(main())


def test_a_hit_reports_the_original_usage() -> None:
    """One answer for several inputs: its prompt tokens are shared out, so the same inputs served from the
    cache report what the original answer did, and each input alone its share."""
    async def main() -> None:
        gw, _, _ = gateway()
        inputs = ["a long input of many words " * 5, "short", "a middling input here"]
        first = await embed(gw, inputs)
        again = await embed(gw, inputs)
        assert again.headers.get("x-litellm-cache-key")
        assert again.json()["usage"] == first.json()["usage"] and vectors(again) == vectors(first)
        each = [(await embed(gw, x)).json()["usage"]["prompt_tokens"] for x in inputs]
        assert sum(each) == first.json()["usage"]["prompt_tokens"] and each[0] > each[1]
        await gw.completions.aclose()

    asyncio.run(main())


def test_formats_and_shapes_are_keyed_apart() -> None:
    async def main() -> None:
        gw, _, _ = gateway()
        floats = await embed(gw, ["one", "two"])
        b64 = await embed(gw, ["one", "two"], encoding_format="base64")
        assert "x-litellm-cache-key" not in b64.headers and isinstance(vectors(b64)[0], str)
        hit = await embed(gw, ["two"], encoding_format="base64")
        assert hit.headers.get("x-litellm-cache-key") and vectors(hit) == [vectors(b64)[1]]
        assert vectors(await embed(gw, "one")) == [vectors(floats)[0]]
        tokens = await embed(gw, [5, 6, 7])  # a token array: one input, one embedding
        assert len(vectors(tokens)) == 1 and "x-litellm-cache-key" not in tokens.headers
        again = await embed(gw, [[5, 6, 7], [8]])
        assert vectors(again)[0] == vectors(tokens)[0] and "x-litellm-cache-key" not in again.headers
        assert (await embed(gw, [[8], [5, 6, 7]])).headers.get("x-litellm-cache-key")
        dup = await embed(gw, ["one", "one"])  # the same input twice: found twice
        assert dup.headers.get("x-litellm-cache-key") and vectors(dup) == [vectors(floats)[0]] * 2
        await gw.completions.aclose()

    asyncio.run(main())


def test_controls_apply_per_input() -> None:
    async def main() -> None:
        gw, _, cache = gateway()
        await embed(gw, ["p", "q"], cache={"no-store": True})
        assert "x-litellm-cache-key" not in (await embed(gw, "p")).headers  # nothing stored
        assert (await embed(gw, "p")).headers.get("x-litellm-cache-key")
        r = await embed(gw, ["p", "q"], cache={"no-cache": True})  # not served, stored: q is now there
        assert "x-litellm-cache-key" not in r.headers
        assert (await embed(gw, ["q", "p"])).headers.get("x-litellm-cache-key")
        ns = await embed(gw, ["p"], cache={"namespace": "other"})
        assert "x-litellm-cache-key" not in ns.headers
        assert (await embed(gw, ["p"], cache={"namespace": "other"})).headers["x-litellm-cache-key"].startswith(
            "other:")
        await embed(gw, ["r"], cache={"ttl": 0})  # a TTL of 0: not kept
        assert "x-litellm-cache-key" not in (await embed(gw, ["r"])).headers
        real = cache._wall
        cache._wall = lambda: real() + 120  # every entry is two minutes old now
        old = await embed(gw, ["p", "q"], cache={"s-maxage": 60})
        assert "x-litellm-cache-key" not in old.headers
        assert (await embed(gw, ["p", "q"], cache={"s-maxage": 600})).headers.get("x-litellm-cache-key")
        await gw.completions.aclose()

    asyncio.run(main())


def test_inputs_not_cached_pass_through() -> None:
    async def main() -> None:
        gw, records, cache = gateway()
        r = await call(gw, "POST", "/v1/embeddings", {"model": "e", "input": []})
        assert r.status == 400  # the upstream's answer to it, not the cache's
        r = await call(gw, "POST", "/v1/embeddings", {"model": "e", "input": [1, "a"]})
        assert "x-litellm-cache-key" not in r.headers
        await gw.completions.aclose()
        assert cache.misses == 0 and not any(r.cache_miss for r in records)

    asyncio.run(main())
