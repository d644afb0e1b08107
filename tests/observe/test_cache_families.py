"""LiteLLM's response-cache families through a gateway with the prometheus callback: a miss and a hit of the
same request counted in ``litellm_cache_misses_metric`` / ``litellm_cache_hits_metric`` with LiteLLM's
``_cache_metric_labels``, and the hit's tokens in ``litellm_cached_tokens_metric``; a request the cache was not
asked about (``cache: {"use-cache": false}``) is neither."""

from __future__ import annotations

import asyncio

from tests.asgi.conftest import call, make_gateway
from tests.observe.test_prometheus_dashboard import parse_exposition

MASTER = "sk-master-cache"


def test_a_miss_and_a_hit_in_litellms_labelled_cache_families() -> None:
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"callbacks": ["prometheus"], "cache": True, "cache_params": {"type": "local"}},
    })
    auth = {"authorization": f"Bearer {MASTER}"}

    async def main() -> str:
        await gw.startup()
        try:
            body = {"model": "m", "messages": [{"role": "user", "content": "same question"}]}
            for _ in range(2):  # a miss, then a hit
                assert (await call(gw, "POST", "/v1/chat/completions", body, headers=auth)).status == 200
            off = {**body, "cache": {"use-cache": False}}
            assert (await call(gw, "POST", "/v1/chat/completions", off, headers=auth)).status == 200
            gw.completions.drain_now()
            r = await call(gw, "GET", "/metrics", headers=auth)
            return r.body.decode()
        finally:
            await gw.shutdown()

    scrape = parse_exposition(asyncio.run(main()))
    labels = ["api_key_alias", "api_provider", "end_user", "hashed_api_key", "model", "model_id", "team",
              "team_alias", "user"]
    for family in ("litellm_cache_hits_metric_total", "litellm_cache_misses_metric_total",
                   "litellm_cached_tokens_metric_total"):
        assert scrape.values[family] and sorted(scrape.samples[family][0]) == labels, family
    assert scrape.values["litellm_cache_hits_metric_total"] == [1.0]
    assert scrape.values["litellm_cache_misses_metric_total"] == [1.0]  # the use-cache: false one is neither
    assert scrape.values["litellm_cached_tokens_metric_total"][0] > 0
