"""LiteLLM's ``prometheus_latency_buckets`` and ``prometheus_metrics_ttl_seconds`` (with its cleanup interval):
read as LiteLLM reads them, counted and written by the sink, merged across workers, and through a real
gateway's ``/metrics``."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from relaygate.config.observe import ObserveConfigError
from relaygate.config.prometheus_view import view_from
from relaygate.metrics import Metrics
from relaygate.observe.prometheus import LiteLLMMetrics
from relaygate.observe.prometheus_families import LATENCY_BUCKETS
from relaygate.observe.prometheus_ttl import SeriesTtl
from relaygate.service_metrics import ServiceMetrics
from tests.conftest import start_gateway

from .test_prometheus_dashboard import LIMITER_HEADERS, Scrape, parse_exposition, record, traffic_config
from .test_prometheus_view import scraped, total

LATENCY = "litellm_request_total_latency_metric"


def sink(settings: dict[str, Any]) -> tuple[Metrics, LiteLLMMetrics]:
    cfg = traffic_config()
    metrics = Metrics.for_config(cfg)
    lite = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments)
    lite.view = view_from(settings)
    metrics.litellm = lite
    return metrics, lite


def les(s: Scrape, family: str) -> list[tuple[str, float]]:
    """``family``'s bucket bounds and cumulative counts, summed over its series, in the order written."""
    out: dict[str, float] = {}
    for labels, v in zip(s.samples[family + "_bucket"], s.values[family + "_bucket"], strict=True):
        out[labels["le"]] = out.get(labels["le"], 0.0) + v
    return list(out.items())


def test_the_settings_read_as_litellm_reads_them() -> None:
    view = view_from({"prometheus_latency_buckets": [0.1, 1, 2.5, "+Inf"]})
    assert view is not None and view.latency_buckets == (0.1, 1.0, 2.5)  # +Inf implied, ints as floats
    assert view.ttl is None and view.cleanup_interval == 60.0
    view = view_from({"prometheus_metrics_ttl_seconds": 300, "prometheus_metrics_cleanup_interval_seconds": 0})
    assert view is not None and view.ttl == 300.0 and view.cleanup_interval == 0.0 and view.latency_buckets is None
    for bad in ([], [1, 0.5], [0.5, 0.5], ["fast"], [True], [1, float("inf"), 5], "0.1,1", [float("nan")],
                ["+Inf"], list(range(1, 100))):
        with pytest.raises(ObserveConfigError, match="prometheus_latency_buckets"):
            view_from({"prometheus_latency_buckets": bad})
    for key, bad in (("prometheus_metrics_ttl_seconds", 0), ("prometheus_metrics_ttl_seconds", "1h"),
                     ("prometheus_metrics_ttl_seconds", -5), ("prometheus_metrics_cleanup_interval_seconds", -1),
                     ("prometheus_metrics_cleanup_interval_seconds", True)):
        with pytest.raises(ObserveConfigError, match=key):
            view_from({key: bad})


def test_latency_histograms_take_the_configured_bounds() -> None:
    metrics, lite = sink({"prometheus_latency_buckets": [0.1, 1, 10]})
    lite.handle([record(0, latency=0.05), record(1, latency=0.8, ttft=0.3), record(2, latency=30.0)])
    s = parse_exposition(metrics.render().decode())
    assert les(s, LATENCY) == [("0.1", 1.0), ("1.0", 2.0), ("10.0", 2.0), ("+Inf", 3.0)]
    assert total(s, LATENCY + "_count") == 3.0 and total(s, LATENCY + "_sum") == pytest.approx(30.85)
    for family in ("litellm_llm_api_latency_metric", "litellm_overhead_latency_metric",
                   "litellm_llm_api_time_to_first_token_metric"):
        assert [le for le, _n in les(s, family)] == ["0.1", "1.0", "10.0", "+Inf"], family
    # the per-output-token histogram keeps prometheus_client's defaults, as in LiteLLM
    per_token = [le for le, _n in les(s, "litellm_deployment_latency_per_output_token")]
    assert per_token[:2] == ["0.005", "0.01"] and len(per_token) == 15


def test_a_worker_counting_with_other_bounds_is_left_out_and_a_reload_restarts_the_histograms() -> None:
    metrics, lite = sink({"prometheus_latency_buckets": [0.1, 1, 10]})
    _, other = sink({})
    lite.handle([record(0, latency=0.5)])
    other.handle([record(1, latency=0.5), record(2, latency=0.7)])  # LiteLLM's bounds: 16 cells, other meaning
    text = "\n".join(lite.render([lite.snapshot(), other.snapshot()]))
    s = parse_exposition(text)
    assert les(s, LATENCY) == [("0.1", 0.0), ("1.0", 1.0), ("10.0", 1.0), ("+Inf", 1.0)]
    assert total(s, "litellm_proxy_total_requests_metric_total") == 3.0  # counters merge whatever the bounds

    lite.view = view_from({"prometheus_latency_buckets": [2, 4]})  # a reload with other bounds
    assert lite.buckets == (2.0, 4.0) and not any(lite.histograms[LATENCY].values())
    lite.handle([record(3, latency=3.0)])
    s = parse_exposition(metrics.render().decode())
    assert les(s, LATENCY) == [("2.0", 0.0), ("4.0", 1.0), ("+Inf", 1.0)]
    lite.view = view_from({})
    assert lite.buckets is LATENCY_BUCKETS and "lb" not in lite.snapshot()


def test_service_latency_histograms_take_the_configured_bounds() -> None:
    svc = ServiceMetrics((0.01, 0.1))
    svc.ok("redis", 0.005)
    svc.ok("redis", 0.05)
    svc.ok("redis", 3.0)
    old = ServiceMetrics()
    old.ok("redis", 0.05)  # another number of buckets: left out of the latency, never mis-added
    lines = [x for x in svc.render([svc.snapshot(), old.snapshot()]) if x.startswith("litellm_redis_latency")]
    assert lines[:3] == ['litellm_redis_latency_bucket{redis="redis",le="0.01"} 1.0',
                         'litellm_redis_latency_bucket{redis="redis",le="0.1"} 2.0',
                         'litellm_redis_latency_bucket{redis="redis",le="+Inf"} 3.0']


def test_idle_series_leave_after_the_ttl() -> None:
    metrics, lite = sink({"prometheus_metrics_ttl_seconds": 100, "prometheus_metrics_cleanup_interval_seconds": 10})
    assert lite.ttl is not None
    clock = [1000.0]
    lite.ttl.clock = lambda: clock[0]
    lite.ttl.wall = lambda: 5000.0 + clock[0]

    def scrape(at: float) -> Scrape:
        clock[0] = at
        return parse_exposition(metrics.render().decode())

    def aliases(s: Scrape) -> set[str]:
        return {x["api_key_alias"] for x in s.samples.get("litellm_proxy_total_requests_metric_total", [])}

    carol = {"key_hash": "c" * 64, "key_alias": "carol"}
    lite.handle([record(0, upstream_ratelimit=[(b"x-ratelimit-remaining-requests", b"9")], start_time=6000.0),
                 record(1, **carol, key_ratelimit=LIMITER_HEADERS, start_time=6000.0)])
    assert aliases(scrape(1000.0)) == {"alice", "carol"}
    lite.handle([record(2)])  # alice keeps moving, carol does not
    assert aliases(scrape(1050.0)) == {"alice", "carol"}
    lite.handle([record(3)])
    s = scrape(1105.0)  # carol last moved before 1000 (first seen then): more than 100 s ago
    assert aliases(s) == {"alice"}
    assert total(s, "litellm_proxy_total_requests_metric_total") == 3.0
    assert "litellm_api_key_rate_limit_allowed_metric" not in s.samples  # carol's limiter reading, 110 s old
    assert "litellm_remaining_requests_metric" not in s.samples  # the upstream's reading, as old
    assert {x["api_key_alias"] for x in s.samples[LATENCY + "_count"]} == {"alice"}

    lite.handle([record(4, **carol)])  # carol comes back: new series, from 0 (a counter reset to Prometheus)
    s = scrape(1106.0)
    got = dict((x["api_key_alias"], v) for x, v in zip(s.samples["litellm_proxy_total_requests_metric_total"],
                                                        s.values["litellm_proxy_total_requests_metric_total"]))
    assert got == {"alice": 3.0, "carol": 1.0}

    assert lite.ttl.sweep([], now=1200.0) == 0  # a sweep ahead of its interval is harmless
    assert not lite.ttl.due(1205.0) and lite.ttl.due(1210.0)


def test_a_sweep_looks_at_values_not_calls() -> None:
    ttl = SeriesTtl(10.0, 0.0)
    series = {("a",): [1.0], ("b",): [0.0, 2.0, 0.0, 1.3]}
    assert ttl.sweep([("c", series), ("h", {})], now=0.0) == 0
    series[("a",)][0] += 1
    assert ttl.sweep([("c", series)], now=10.0) == 1  # b unchanged since 0
    assert list(series) == [("a",)]
    assert ttl.sweep([("c", series)], now=19.0) == 0 and ttl.sweep([("c", series)], now=20.0) == 1


@pytest.mark.e2e
def test_through_the_gateway() -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["prometheus"]
  prometheus_latency_buckets: [0.5, 1.0, 5.0]
  prometheus_metrics_ttl_seconds: 1
  prometheus_metrics_cleanup_interval_seconds: 0
general_settings:
  master_key: sk-bt-master
"""

    def ask() -> None:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-bt-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "time me"}]}, timeout=10)
        assert r.status_code == 200, r.text

    with start_gateway(config) as gw:
        for _ in range(2):
            ask()
        s = scraped(gw, 2)
        assert les(s, LATENCY) == [("0.5", 2.0), ("1.0", 2.0), ("5.0", 2.0), ("+Inf", 2.0)]
        time.sleep(1.3)
        s = parse_exposition(httpx.get(f"{gw.url}/metrics", timeout=10).text)  # idle for more than the TTL
        assert total(s, "litellm_proxy_total_requests_metric_total") == 0.0
        assert LATENCY + "_bucket" not in s.samples and s.types[LATENCY] == "histogram"
        ask()
        s = scraped(gw, 1)
        assert total(s, "litellm_proxy_total_requests_metric_total") == 1.0
        assert les(s, LATENCY)[-1] == ("+Inf", 1.0)
