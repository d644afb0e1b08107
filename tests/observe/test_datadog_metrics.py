"""datadog_metrics: LiteLLM's Datadog metric series of each request (latencies and a count, its tags), the
metrics API's configuration, against a real local intake that records the gzipped posts; and through a real
``relaygate serve``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe.datadog_metrics import DatadogMetricsSink, make_datadog_metrics
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe.collector_server import Collector, callback_config, detail, record

BOTH = ObserveSettings(success_callbacks=("datadog_metrics",), failure_callbacks=("datadog_metrics",))
KEY = "dd-metrics-key-0123456789"
BASE = ["env:prod", "service:litellm-server", "version:unknown", "HOSTNAME:gw-1", "POD_NAME:unknown"]


def env_for(c: Collector, **extra: str) -> dict[str, str]:
    return {"DD_API_KEY": KEY, "DD_BASE_URL": c.url, "DD_ENV": "prod", "HOSTNAME": "gw-1", **extra}


def test_configuration() -> None:
    sink = make_datadog_metrics(BOTH, {"DD_API_KEY": KEY}, None)
    assert sink.url == "https://api.datadoghq.com/api/v2/series" and sink.headers["DD-API-KEY"] == KEY
    sink = make_datadog_metrics(BOTH, {"DD_API_KEY": KEY, "DD_SITE": "us5.datadoghq.com", "DD_APP_KEY": "app-1"},
                                None)
    assert sink.url == "https://api.us5.datadoghq.com/api/v2/series"
    assert sink.headers["DD-APPLICATION-KEY"] == "app-1" and sink.flush_interval == 5.0
    with pytest.raises(ConfigError, match="DD_API_KEY"):
        make_datadog_metrics(BOTH, {"DD_SITE": "datadoghq.com"}, None)
    with pytest.raises(ConfigError, match="DD_API_KEY"):  # serve and check-config refuse before any worker
        check(BOTH, {})
    with pytest.raises(ConfigError, match="DD_BASE_URL"):
        make_datadog_metrics(BOTH, {"DD_API_KEY": KEY, "DD_BASE_URL": "ftp://x"}, None)


def test_the_series_at_an_intake() -> None:
    with Collector(status=202) as c:
        sink: DatadogMetricsSink = make_datadog_metrics(BOTH, env_for(c), None, flush_interval=0.0)
        ok = record(extra={"observe": detail(team_alias="Team Red, EU")})
        failed = record(call_id="c2", status=429, outcome=Outcome.ERROR, latency=0.25, overhead=0.01,
                        team_id=None)
        unrouted = record(call_id="c3", status=400, outcome=Outcome.ERROR, deployment_id="", provider="",
                          upstream_model="", model_group="whatever-a-client-typed", latency=0.001, team_id=None)

        async def main() -> None:
            await sink.handle([ok, failed, unrouted])
            await sink.aclose()

        asyncio.run(main())
        [post] = c.posts
        assert post.headers["dd-api-key"] == KEY and post.headers["content-encoding"] == "gzip"
        assert post.path == "/api/v2/series"
        series = post.json()["series"]
        by = {s["metric"]: s for s in series[:4]}  # the first record's four
        stamp = int(1_700_000_000.0 + 1.5)
        routed = [*BASE, "provider:openai", "model_name:gpt-4o", "model_group:gpt-4o-alias", "team:team_red_eu"]
        total = by["litellm.request.total_latency"]
        assert total == {"metric": "litellm.request.total_latency", "type": 3,
                         "points": [{"timestamp": stamp, "value": 1.5}], "tags": [*routed, "status_code:200"]}
        api = [s for s in series if s["metric"] == "litellm.llm_api.latency"]
        assert [s["points"][0]["value"] for s in api] == [pytest.approx(1.498), pytest.approx(0.24)]
        assert by["litellm.overhead.latency"]["tags"] == routed  # no status code, as LiteLLM's
        assert by["litellm.overhead.latency"]["points"][0]["value"] == 0.002
        counts = [s for s in series if s["metric"] == "litellm.llm_api.request_count"]
        assert len(counts) == 3 and all(s["type"] == 1 and s["interval"] == 0 for s in counts)
        assert [s["tags"][-1] for s in counts] == ["status_code:200", "status_code:429", "status_code:400"]
        # a request no deployment served: no provider, model or model group tag (the client's name stays out)
        mine = series[-3:]  # the last record's: no provider latency either
        assert {s["metric"] for s in mine} == {"litellm.request.total_latency", "litellm.overhead.latency",
                                               "litellm.llm_api.request_count"}
        assert all(t in (*BASE, "status_code:400") for s in mine for t in s["tags"])
        assert "whatever" not in post.body.decode()


@pytest.mark.e2e
def test_through_relaygate_serve() -> None:
    cfg = callback_config("datadog_metrics", "sk-ddm")
    with Collector(status=202) as c:
        with start_gateway(cfg, env={**env_for(c), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw:
            for model, status in (("m", 200), ("nope", 400)):
                r = httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-ddm"},
                               timeout=20, json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == status, r.text
            deadline = time.monotonic() + 15
            series: list[Any] = []
            while time.monotonic() < deadline:
                series = [s for p in c.posts for s in p.json()["series"]]
                if len([s for s in series if s["metric"] == "litellm.llm_api.request_count"]) >= 2:
                    break
                time.sleep(0.05)
        counts = {s["tags"][-1]: s for s in series if s["metric"] == "litellm.llm_api.request_count"}
        assert set(counts) == {"status_code:200", "status_code:400"}
        assert "model_group:m" in counts["status_code:200"]["tags"]
        assert not any(t.startswith("model_group:") for t in counts["status_code:400"]["tags"])
