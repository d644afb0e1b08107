"""LiteLLM's Prometheus output controls (``prometheus_metrics_config``, ``prometheus_exclude_metrics``,
``prometheus_exclude_labels``): families left out, labels dropped with their series merged (the totals kept),
the config's shapes and errors, the names relaygate does not write warned about, and through a real gateway."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest

from relaygate.config import from_litellm
from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveConfigError
from relaygate.config.prometheus_view import PrometheusView, view_from
from relaygate.metrics import Metrics
from relaygate.observe.prometheus import LiteLLMMetrics
from relaygate.observe.prometheus_families import FAMILIES
from relaygate.observe.prometheus_text import EXTRA_FAMILIES
from relaygate.observe.prometheus_view import unknown_names
from relaygate.router import Router
from tests.conftest import start_gateway

from .test_prometheus_dashboard import KEY_A, Scrape, parse_exposition, traffic, traffic_config


def scrape(view: PrometheusView | None) -> Scrape:
    cfg = traffic_config()
    router = Router(cfg)
    metrics = Metrics.for_config(cfg)
    lite = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments, router=lambda: router)
    lite.view = view
    metrics.litellm = lite
    lite.handle(traffic())
    lite.set_budget("team", "team-1", "team-one", 100.0, 12.5, reset_at=4_000_000_000.0)
    lite.set_budget("team", "team-2", "team-two", 100.0, 40.0, reset_at=4_000_000_000.0)
    lite.set_budget("key", KEY_A, "alice", 10.0, 1.25, reset_at=4_000_000_000.0)
    return parse_exposition(metrics.render().decode())


def total(s: Scrape, sample: str, where: dict[str, str] | None = None) -> float:
    return sum(v for labels, v in zip(s.samples.get(sample, []), s.values.get(sample, []), strict=True)
               if all(labels.get(k) == x for k, x in (where or {}).items()))


def scraped(gw: Any, requests: int) -> Scrape:
    """The gateway's ``/metrics`` once it counts ``requests`` requests (or after ~5 s)."""
    s = Scrape()
    for _ in range(50):
        s = parse_exposition(httpx.get(f"{gw.url}/metrics", timeout=10).text)
        if total(s, "litellm_proxy_total_requests_metric_total") >= requests:
            break
        time.sleep(0.1)
    return s


def test_the_settings_read_as_litellm_reads_them() -> None:
    assert view_from({}) is None
    view = view_from({"prometheus_metrics_config": [
        {"group": "spend", "metrics": ["litellm_spend_metric", "litellm_total_tokens_metric"],
         "include_labels": ["team", "model"]},
        {"group": "requests", "metrics": ["litellm_proxy_total_requests_metric"]},
        {"group": "override", "metrics": ["litellm_total_tokens_metric"], "include_labels": ["team"]},
        {"group": "no filter", "metrics": ["litellm_total_tokens_metric"], "include_labels": []}],
        "prometheus_exclude_metrics": ["litellm_spend_metric"], "prometheus_exclude_labels": "end_user"})
    assert view is not None
    assert view.metrics == {"litellm_spend_metric", "litellm_total_tokens_metric",
                            "litellm_proxy_total_requests_metric"}
    assert view.include_labels == {"litellm_spend_metric": ("team", "model"), "litellm_total_tokens_metric": ("team",)}
    assert not view.enabled("litellm_spend_metric") and view.enabled("litellm_total_tokens_metric")
    assert not view.enabled("litellm_input_tokens_metric")
    assert view.exclude_labels == {"end_user"}
    only_excluded = view_from({"prometheus_exclude_labels": ["hashed_api_key"]})
    assert only_excluded is not None and only_excluded.metrics is None and only_excluded.enabled("litellm_spend_metric")
    empty = view_from({"prometheus_metrics_config": [{"group": "g", "metrics": []}]})
    assert empty is not None and empty.metrics is None  # no metrics listed: all of them, as LiteLLM
    for bad, field in (({"prometheus_metrics_config": {"metrics": ["x"]}}, "prometheus_metrics_config"),
                       ({"prometheus_metrics_config": ["x"]}, "prometheus_metrics_config[0]"),
                       ({"prometheus_metrics_config": [{"metrics": [1]}]}, "prometheus_metrics_config[0].metrics"),
                       ({"prometheus_metrics_config": [{"metrics": ["m"], "include_labels": 3}]},
                        "prometheus_metrics_config[0].include_labels"),
                       ({"prometheus_exclude_labels": [""]}, "prometheus_exclude_labels")):
        with pytest.raises(ObserveConfigError) as err:
            view_from(bad)
        assert err.value.field == f"litellm_settings.{field}"


def test_families_left_out_and_labels_merged_away() -> None:
    plain = scrape(None)
    view = view_from({
        "prometheus_metrics_config": [
            {"group": "usage", "metrics": [
                "litellm_proxy_total_requests_metric", "litellm_total_tokens_metric",
                "litellm_request_total_latency_metric", "litellm_remaining_team_budget_metric",
                "litellm_deployment_state"], "include_labels": ["team", "requested_model"]},
            {"group": "requests", "metrics": ["litellm_proxy_total_requests_metric"]},
            {"group": "keys", "metrics": ["litellm_spend_metric", "litellm_remaining_api_key_budget_metric"]}],
        "prometheus_exclude_metrics": ["litellm_deployment_state"],
        "prometheus_exclude_labels": ["hashed_api_key", "end_user"]})
    shaped = scrape(view)
    assert {n for n in shaped.types if n.startswith("litellm_")} == {
        "litellm_proxy_total_requests_metric", "litellm_total_tokens_metric", "litellm_request_total_latency_metric",
        "litellm_remaining_team_budget_metric", "litellm_spend_metric", "litellm_remaining_api_key_budget_metric"}
    # the requests family is also in a group without include_labels: the first group's list still holds
    req = "litellm_proxy_total_requests_metric_total"
    assert {frozenset(s) for s in shaped.samples[req]} == {frozenset({"team", "requested_model"})}
    assert total(shaped, req) == total(plain, req) and len(shaped.samples[req]) < len(plain.samples[req])
    spend = "litellm_spend_metric_total"  # no include_labels: all its labels but the excluded ones
    assert {frozenset(s) for s in shaped.samples[spend]} == {
        frozenset(FAMILIES["litellm_spend_metric"][1]) - {"hashed_api_key", "end_user"}}
    tok = "litellm_total_tokens_metric_total"
    assert {frozenset(s) for s in shaped.samples[tok]} == {frozenset({"team", "requested_model"})}
    assert total(shaped, tok) == total(plain, tok)
    assert total(shaped, tok, {"team": "team-1"}) == total(plain, tok, {"team": "team-1"})
    assert len(shaped.samples[tok]) == len({(s["team"], s["requested_model"]) for s in plain.samples[tok]})
    for suffix in ("_count", "_sum"):
        name = "litellm_request_total_latency_metric" + suffix
        assert total(shaped, name) == pytest.approx(total(plain, name))
    bucket = "litellm_request_total_latency_metric_bucket"
    assert total(shaped, bucket, {"le": "1.0"}) == total(plain, bucket, {"le": "1.0"})
    assert {frozenset(s) - {"le"} for s in shaped.samples[bucket]} == {frozenset({"team", "requested_model"})}
    # gauges that meet: the lowest remaining budget (the safe figure); only the kept labels
    budget = "litellm_remaining_team_budget_metric"
    assert shaped.samples[budget] == [{"team": "team-1"}, {"team": "team-2"}]
    assert shaped.values[budget] == [87.5, 60.0]
    assert total(shaped, spend) == pytest.approx(total(plain, spend))
    keyed = "litellm_remaining_api_key_budget_metric"
    assert shaped.samples[keyed] == [{"api_key_alias": "alice"}] and shaped.values[keyed] == [8.75]


def test_names_relaygate_does_not_write_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    view = view_from({"prometheus_metrics_config": [
        {"group": "g", "metrics": ["litellm_spend_metric", "litellm_mcp_tool_calls_total"],
         "include_labels": ["team", "mcp_server_name"]}],
        "prometheus_exclude_labels": ["guardrail_name", "team"]})
    assert view is not None
    assert unknown_names(view, FAMILIES, EXTRA_FAMILIES) == [
        "metric litellm_mcp_tool_calls_total", "label guardrail_name", "label mcp_server_name of litellm_spend_metric"]
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "litellm_settings": {"callbacks": ["prometheus"],
                                             "prometheus_exclude_metrics": ["litellm_no_such_family"]}}, "cfg.yaml")
    with caplog.at_level(logging.WARNING, logger="relaygate.observe"):
        lite = LiteLLMMetrics.for_config(cfg)
    assert lite is not None and lite.view is not None
    assert "metric litellm_no_such_family, which relaygate does not write: ignored" in caplog.text
    with pytest.raises(ConfigError, match="prometheus_exclude_metrics"):
        from_litellm({"model_list": [], "litellm_settings": {"callbacks": ["prometheus"],
                                                             "prometheus_exclude_metrics": 5}}, "c.yaml")


@pytest.mark.e2e
def test_through_the_gateway() -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["prometheus"]
  prometheus_metrics_config:
    - group: tokens
      metrics: [litellm_total_tokens_metric, litellm_proxy_total_requests_metric]
      include_labels: [requested_model, status_code, model]
general_settings:
  master_key: sk-pv-master
"""
    with start_gateway(config) as gw:
        for _ in range(3):
            r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-pv-master"},
                           json={"model": "m", "messages": [{"role": "user", "content": "count me"}]}, timeout=10)
            assert r.status_code == 200, r.text
        s = scraped(gw, 3)
    litellm_families = {n for n in s.types if n.startswith("litellm_")}
    assert litellm_families == {"litellm_total_tokens_metric", "litellm_proxy_total_requests_metric"}
    assert s.samples["litellm_proxy_total_requests_metric_total"] == [{"requested_model": "m", "status_code": "200"}]
    assert s.values["litellm_proxy_total_requests_metric_total"] == [3.0]
    assert s.samples["litellm_total_tokens_metric_total"] == [{"model": "echo", "requested_model": "m"}]
    assert any(n.startswith("relaygate_") for n in s.types)  # relaygate's own families are not LiteLLM's to shape


def test_custom_metadata_and_tag_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's ``custom_prometheus_metadata_labels`` and ``custom_prometheus_tags``: labels on every family,
    values from the key's metadata and the standard key fields (never the client's metadata), tags
    ``true`` / ``false`` (exact or ``*`` pattern, the ``User-Agent`` tags included); a family without values
    for them writes ``None``; a label's values are bounded."""
    from relaygate.observe import prometheus_custom

    from .test_prometheus_dashboard import record

    view = view_from({"custom_prometheus_metadata_labels": ["metadata.cost_center", "metadata.org.unit",
                                                             "metadata.user_api_key_team_alias"],
                      "custom_prometheus_tags": ["prod", "User-Agent: curl/*"]})
    assert view is not None and view.custom_names == (
        "metadata_cost_center", "metadata_org_unit", "metadata_user_api_key_team_alias", "tag_prod",
        "tag_User_Agent__curl__")
    cfg = traffic_config()
    metrics = Metrics.for_config(cfg)
    lite = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments)
    lite.view = view
    metrics.litellm = lite
    records = [record(0, key_metadata={"cost_center": "cc-1", "org": {"unit": "search"}}, team_alias="team-one",
                      extra={"tags": ["prod"], "metadata": {"cost_center": "client-said"}},
                      header_tags=("User-Agent: curl", "User-Agent: curl/8.1")),
               record(1, key_metadata={"cost_center": 7}, extra={"metadata": {"cost_center": "client-said"}}),
               record(2, key_metadata={"cost_center": "cc-1", "org": {"unit": "search"}}, team_alias="team-one",
                      extra={"tags": ["prod"]}, header_tags=("User-Agent: curl", "User-Agent: curl/8.1"))]
    lite.handle(records)
    lite.set_budget("team", "team-1", "team-one", 100.0, 12.5, reset_at=4_000_000_000.0)
    s = parse_exposition(metrics.render().decode())
    req = "litellm_proxy_total_requests_metric_total"
    got = sorted((x["metadata_cost_center"], x["metadata_org_unit"], x["metadata_user_api_key_team_alias"],
                  x["tag_prod"], x["tag_User_Agent__curl__"], v) for x, v in zip(s.samples[req], s.values[req]))
    assert got == [("None", "None", "None", "false", "false", 1.0), ("cc-1", "search", "team-one", "true", "true", 2.0)]
    assert "client-said" not in str(s.samples)
    budget = s.samples["litellm_remaining_team_budget_metric"][0]
    assert budget["metadata_cost_center"] == "None" and budget["tag_prod"] == "None"
    bucket = "litellm_request_total_latency_metric_bucket"
    assert {x["tag_prod"] for x in s.samples[bucket]} == {"true", "false"}
    # another worker's snapshot from before the labels were configured: its series get "None", nothing lost
    old = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments)
    old.handle([record(3)])
    merged = parse_exposition("\n".join(lite.render([lite.snapshot(), old.snapshot()])))
    assert total(merged, req) == 4 and total(merged, "litellm_request_total_latency_metric_count") == 4
    assert sum(1 for x in merged.samples[req] if x["tag_prod"] == "None") == 1
    monkeypatch.setattr(prometheus_custom, "MAX_VALUES", 2)
    bounded = prometheus_custom.CustomLabels(view)
    seen = [bounded.values(record(i, key_metadata={"cost_center": f"cc-{i}"}))[0] for i in range(4)]
    assert seen == ["cc-0", "cc-1", "other", "other"]


@pytest.mark.e2e
def test_custom_labels_through_the_gateway() -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["prometheus"]
  custom_prometheus_metadata_labels: [metadata.cost_center]
  custom_prometheus_tags: [prod, "User-Agent: python-httpx*"]
general_settings:
  master_key: sk-pv-master
"""
    admin = {"Authorization": "Bearer sk-pv-master"}
    with start_gateway(config) as gw:
        r = httpx.post(f"{gw.url}/key/generate", headers=admin, json={"metadata": {"cost_center": "cc-9"}},
                       timeout=10)
        assert r.status_code == 200, r.text
        key = r.json()["key"]
        for tags in (["prod"], []):
            r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "tags": tags,
                                 "metadata": {"cost_center": "mine"}}, timeout=10)
            assert r.status_code == 200, r.text
        s = scraped(gw, 2)
    got = sorted((x["metadata_cost_center"], x["tag_prod"], x["tag_User_Agent__python_httpx_"])
                 for x in s.samples["litellm_proxy_total_requests_metric_total"])
    assert got == [("cc-9", "false", "true"), ("cc-9", "true", "true")]


def test_stream_label_and_series_cap() -> None:
    """``prometheus_emit_stream_label``: LiteLLM's ``stream`` label (``True`` / ``False``) on the proxy's request
    counter only; ``prometheus_metrics_max_series_per_metric``: past it a new series counts under all-``other``."""
    from .test_prometheus_dashboard import record

    view = view_from({"prometheus_emit_stream_label": True, "prometheus_metrics_max_series_per_metric": 2})
    assert view is not None and view.stream_label and view.max_series == 2
    cfg = traffic_config()
    metrics = Metrics.for_config(cfg)
    lite = LiteLLMMetrics(["gpt-4o", "claude", "gpt4"], cfg.deployments)
    lite.view = view
    metrics.litellm = lite
    lite.handle([record(0), record(1, stream=True, ttft=0.1), record(2, stream=True, ttft=0.1),
                 record(3, key_hash="c" * 64, key_alias="carol")])
    s = parse_exposition(metrics.render().decode())
    req = "litellm_proxy_total_requests_metric_total"
    got = sorted((x["stream"], x["api_key_alias"], v) for x, v in zip(s.samples[req], s.values[req]))
    assert got == [("False", "alice", 1.0), ("True", "alice", 2.0), ("other", "other", 1.0)]
    assert "stream" not in s.samples["litellm_total_tokens_metric_total"][0]
    for bad in ({"prometheus_emit_stream_label": "sometimes"}, {"prometheus_metrics_max_series_per_metric": 0}):
        with pytest.raises(ObserveConfigError):
            view_from(bad)


def test_a_counter_may_be_named_as_litellms_code_names_it() -> None:
    """LiteLLM's config names a counter as its code creates it, ``litellm_zero_cost_requests_total``, whose family
    (the ``# TYPE`` line) is ``litellm_zero_cost_requests``: either name selects it, with its label filter, and
    neither is warned about."""
    for name in ("litellm_zero_cost_requests_total", "litellm_zero_cost_requests"):
        view = view_from({"prometheus_metrics_config": [{"group": "g", "metrics": [name],
                                                         "include_labels": ["reason"]}]})
        assert view is not None and unknown_names(view, FAMILIES, EXTRA_FAMILIES) == []
        s = scrape(view)
        assert {n for n in s.types if n.startswith("litellm_")} == {"litellm_zero_cost_requests"}, s.types
        assert s.samples["litellm_zero_cost_requests_total"] == [{"reason": "missing_pricing_key"}]
    view = view_from({"prometheus_exclude_metrics": ["litellm_zero_cost_requests_total"]})
    assert view is not None and "litellm_zero_cost_requests" not in scrape(view).types
