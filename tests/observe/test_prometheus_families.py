"""LiteLLM's ``litellm_*`` families: LiteLLM's names, types and labels; bounded series; workers merged.

The table below is written from LiteLLM's ``litellm/types/integrations/prometheus.py``
(``PrometheusMetricLabels``, ``LATENCY_BUCKETS``) and ``litellm/integrations/prometheus.py`` (metric types;
``litellm_in_flight_requests`` from its in-flight middleware), independently of relaygate's own
``FAMILIES``, so a drift on either side fails here.
"""

from __future__ import annotations

import asyncio
import os
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest

from relaygate.config import from_litellm
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import Metrics
from relaygate.observe import prometheus
from relaygate.observe.prometheus import LiteLLMMetrics, enabled
from relaygate.router import Router
from relaygate.sinks import CompletionQueue, Outcome

from .test_prometheus_dashboard import (
    KEY_A,
    attempt,
    detail,
    family_of,
    parse_exposition,
    record,
    scrape_after_traffic,
    traffic_config,
)

_DEP = ["litellm_model_name", "model_id", "api_base", "api_provider"]
_API = ["model_group", "model", "hashed_api_key", "api_key_alias", "team", "team_alias", "requested_model",
        "end_user", "user", "model_id", "api_provider", "service_tier"]
_ORG = ["org_id", "org_alias"]  # LiteLLM 1.110's PrometheusMetricLabels._org_label_metrics
_TOKENS = ["end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email",
           "requested_model", "model_id", "api_provider"]
_CALLS = ["model_group", "requested_model", "litellm_model_name", "model_id", "api_base", "api_provider",
          "hashed_api_key", "api_key_alias", "team", "team_alias", "client_ip", "user_agent"]
_REMAINING = ["model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key", "api_key_alias",
              "model_id"]
# LiteLLM's cache metric labels, plus api_provider and model_group for the provider prompt-cache pair
_PROVIDER_CACHE = ["model", "hashed_api_key", "api_key_alias", "team", "team_alias", "end_user", "user", "model_id",
                   "api_provider", "model_group"]
_FALLBACKS = ["requested_model", "fallback_model", "hashed_api_key", "api_key_alias", "team", "team_alias",
              "exception_status", "exception_class", "model_id"]

LITELLM: dict[str, tuple[str, list[str]]] = {
    "litellm_proxy_total_requests_metric": ("counter", [
        "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user",
        "status_code", "user_email", "route", "client_ip", "user_agent", "model_id", "api_provider", *_ORG]),
    "litellm_proxy_failed_requests_metric": ("counter", [
        "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user",
        "user_email", "exception_status", "exception_class", "route", "client_ip", "user_agent", "model_id",
        "api_provider", *_ORG]),
    "litellm_request_total_latency_metric": ("histogram", [
        "model_group", "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user",
        "model", "model_id", "api_provider", "service_tier", *_ORG]),
    "litellm_request_queue_time_seconds": ("histogram", [
        "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "model",
        "model_id", "api_provider", *_ORG]),
    "litellm_llm_api_latency_metric": ("histogram", [*_API, *_ORG]),
    "litellm_llm_api_time_to_first_token_metric": ("histogram", [*_API, *_ORG]),
    "litellm_overhead_latency_metric": ("histogram", _REMAINING),
    "litellm_deployment_latency_per_output_token": ("histogram", [
        "model_group", *_DEP, "hashed_api_key", "api_key_alias", "team", "team_alias", *_ORG]),
    "litellm_spend_metric": ("counter", [
        "end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email",
        "client_ip", "user_agent", "requested_model", "model_id", "api_provider", "service_tier", *_ORG]),
    "litellm_total_tokens_metric": ("counter", [*_TOKENS, *_ORG]),
    "litellm_input_tokens_metric": ("counter", [*_TOKENS, *_ORG]),
    "litellm_output_tokens_metric": ("counter", [*_TOKENS, *_ORG]),
    # LiteLLM 1.110's sparse token-detail and media families: the input / output tokens' labels
    "litellm_input_cached_tokens_metric": ("counter", _TOKENS),
    "litellm_input_cache_creation_tokens_metric": ("counter", _TOKENS),
    "litellm_input_audio_tokens_metric": ("counter", _TOKENS),
    "litellm_output_reasoning_tokens_metric": ("counter", _TOKENS),
    "litellm_output_audio_tokens_metric": ("counter", _TOKENS),
    "litellm_images_generated_metric": ("counter", [*_TOKENS, *_ORG]),
    "litellm_cache_hits_metric": ("counter", _PROVIDER_CACHE[:9]),  # LiteLLM's _cache_metric_labels
    "litellm_cache_misses_metric": ("counter", _PROVIDER_CACHE[:9]),
    "litellm_cached_tokens_metric": ("counter", _PROVIDER_CACHE[:9]),
    "litellm_provider_cache_read_input_tokens_metric": ("counter", _PROVIDER_CACHE),
    "litellm_provider_cache_creation_input_tokens_metric": ("counter", _PROVIDER_CACHE),
    "litellm_requests_metric": ("counter", [
        "end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email",
        "client_ip", "user_agent", "requested_model", "model_id", "api_provider", *_ORG]),
    "litellm_zero_cost_requests": ("counter", ["requested_model", "model", "model_id", "api_provider", "reason"]),
    "litellm_llm_api_failed_requests_metric": ("counter", [
        "end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "model_id"]),
    "litellm_deployment_success_responses": ("counter", _CALLS),
    "litellm_deployment_total_requests": ("counter", _CALLS),
    "litellm_deployment_failure_responses": ("counter", [
        "model_group", "requested_model", *_DEP, "exception_status", "exception_class", "hashed_api_key", "api_key_alias", "team",
        "team_alias", "client_ip", "user_agent"]),
    "litellm_deployment_successful_fallbacks": ("counter", _FALLBACKS),
    "litellm_deployment_failed_fallbacks": ("counter", _FALLBACKS),
    "litellm_deployment_cooled_down": ("counter", [*_DEP, "exception_status"]),
    "litellm_deployment_state": ("gauge", _DEP),
    "litellm_deployment_rpm_limit": ("gauge", ["model_group", *_DEP]),
    "litellm_deployment_tpm_limit": ("gauge", ["model_group", *_DEP]),
    "litellm_remaining_requests_metric": ("gauge", _REMAINING),
    "litellm_remaining_tokens_metric": ("gauge", _REMAINING),
    "litellm_in_flight_requests": ("gauge", []),
    "litellm_admission_admitted_requests": ("gauge", []),  # LiteLLM's admission-control middleware
    "litellm_admission_queued_requests": ("gauge", []),
    "litellm_remaining_team_budget_metric": ("gauge", ["team", "team_alias"]),
    "litellm_team_max_budget_metric": ("gauge", ["team", "team_alias"]),
    "litellm_team_budget_remaining_hours_metric": ("gauge", ["team", "team_alias"]),
    "litellm_remaining_api_key_budget_metric": ("gauge", ["hashed_api_key", "api_key_alias"]),
    "litellm_api_key_max_budget_metric": ("gauge", ["hashed_api_key", "api_key_alias"]),
    "litellm_api_key_budget_remaining_hours_metric": ("gauge", ["hashed_api_key", "api_key_alias"]),
    "litellm_remaining_user_budget_metric": ("gauge", ["user"]),
    "litellm_user_max_budget_metric": ("gauge", ["user"]),
    "litellm_user_budget_remaining_hours_metric": ("gauge", ["user"]),
    "litellm_remaining_org_budget_metric": ("gauge", ["org_id", "org_alias"]),
    "litellm_org_max_budget_metric": ("gauge", ["org_id", "org_alias"]),
    "litellm_org_budget_remaining_hours_metric": ("gauge", ["org_id", "org_alias"]),
    # the limiter's gauges (LiteLLM's v3 limiter headers)
    "litellm_remaining_api_key_requests_for_model": ("gauge", ["hashed_api_key", "api_key_alias", "model",
                                                               "model_id"]),
    "litellm_remaining_api_key_tokens_for_model": ("gauge", ["hashed_api_key", "api_key_alias", "model", "model_id"]),
    "litellm_api_key_rate_limit_allowed_metric": ("gauge", ["hashed_api_key", "api_key_alias", "rate_limit_type"]),
    "litellm_api_key_rate_limit_used_metric": ("gauge", ["hashed_api_key", "api_key_alias", "rate_limit_type"]),
    "litellm_team_rate_limit_allowed_metric": ("gauge", ["team", "team_alias", "rate_limit_type"]),
    "litellm_team_rate_limit_used_metric": ("gauge", ["team", "team_alias", "rate_limit_type"]),
    # the names LiteLLM's published v2 Grafana dashboard queries (the gauges' earlier names)
    "litellm_remaining_requests": ("gauge", _REMAINING),
    "litellm_remaining_tokens": ("gauge", _REMAINING),
}
LITELLM_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                           420.0, 600.0]  # LiteLLM 1.110's types/integrations/prometheus.py LATENCY_BUCKETS
PROMETHEUS_CLIENT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
_SUFFIX = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}


def _litellm_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "litellm_" in line and "cache_" not in line
                     and "provider_remaining_budget" not in line)


def test_every_family_has_litellm_name_type_and_labels() -> None:
    scrape, _text = scrape_after_traffic()
    declared = {n: t for n, t in scrape.types.items() if n.startswith("litellm_")}
    for name, (kind, labels) in LITELLM.items():
        assert declared.get(name) == kind, name
        for suffix in _SUFFIX[kind]:
            samples = scrape.samples.get(name + suffix)
            assert samples, f"{name}{suffix}: no sample after traffic"
            for s in samples:
                want = set(labels) | ({"le"} if suffix == "_bucket" else set())
                assert set(s) == want, f"{name}{suffix}: labels {sorted(s)} != {sorted(want)}"
    # emitted by relaygate.metrics from event counts (tested in test_service_metrics.py): samples only once
    # something happened (a provider budget, an exporter's failed delivery); admission refusals only with
    # max_in_flight_requests_per_worker under overload (tests/http/test_admission.py); the spend capture rate once
    # its daily check ran (tests/spend/test_capture_rate.py)
    ours = set(declared) - {"litellm_provider_remaining_budget_metric", "litellm_callback_logging_failures_metric",
                            "litellm_admission_rejected_requests", "litellm_spend_capture_rate"}
    assert ours == set(LITELLM)


def test_latency_buckets_are_litellms() -> None:
    scrape, _text = scrape_after_traffic()
    for name, buckets in (("litellm_request_total_latency_metric", LITELLM_LATENCY_BUCKETS),
                          ("litellm_llm_api_latency_metric", LITELLM_LATENCY_BUCKETS),
                          ("litellm_llm_api_time_to_first_token_metric", LITELLM_LATENCY_BUCKETS),
                          ("litellm_overhead_latency_metric", LITELLM_LATENCY_BUCKETS),
                          ("litellm_deployment_latency_per_output_token", PROMETHEUS_CLIENT_BUCKETS)):
        first = scrape.samples[name + "_bucket"][0]
        rest = {k: v for k, v in first.items() if k != "le"}
        les = [s["le"] for s in scrape.samples[name + "_bucket"] if {k: v for k, v in s.items() if k != "le"} == rest]
        assert les == [str(b) for b in buckets] + ["+Inf"], name


def test_values_after_traffic() -> None:
    scrape, text = scrape_after_traffic()
    # the bad key's 401 (record 6) is left out, as LiteLLM leaves invalid-key requests out of its metrics
    assert sum(scrape.values["litellm_proxy_total_requests_metric_total"]) == 12
    assert sum(scrape.values["litellm_proxy_failed_requests_metric_total"]) == 5
    assert 'exception_status="499",exception_class="ClientDisconnectedError"' in text
    assert 'exception_status="401"' not in text and 'status_code="401"' not in text
    assert 'exception_status="429",exception_class="Mock.RateLimitError"' in text
    ttft = scrape.samples["litellm_llm_api_time_to_first_token_metric_count"]
    assert len(ttft) == 2  # the two streams that finished; a broken one is a failure
    # the fallback: dep-a failed with a 503, dep-b answered
    assert ('litellm_deployment_successful_fallbacks_total{requested_model="gpt-4o",fallback_model="gpt-4o",'
            f'hashed_api_key="{KEY_A}",api_key_alias="alice",team="team-1",team_alias="team-one",'
            'exception_status="503",exception_class="Mock.ServiceUnavailableError",model_id="dep-b"} 1.0') in text
    state = dict(zip((s["model_id"] for s in scrape.samples["litellm_deployment_state"]),
                     scrape.values["litellm_deployment_state"]))
    assert state == {"dep-a": 2.0, "dep-b": 1.0, "dep-c": 1.0}  # cooling; last calls failed
    assert scrape.values["litellm_in_flight_requests"] == [2.0]
    assert scrape.values["litellm_remaining_requests_metric"] == [590.0]
    assert scrape.values["litellm_remaining_api_key_budget_metric"] == [8.75]
    assert sum(scrape.values["litellm_requests_metric_total"]) == 7  # LiteLLM's deprecated pair
    assert sum(scrape.values["litellm_llm_api_failed_requests_metric_total"]) == 5
    assert scrape.values["litellm_provider_cache_read_input_tokens_metric_total"] == [8.0]
    # the response cache: record 10 a hit (42 tokens served), record 0 a miss; labelled as LiteLLM's
    assert scrape.values["litellm_cache_hits_metric_total"] == [1.0]
    assert scrape.values["litellm_cached_tokens_metric_total"] == [42.0]
    assert scrape.values["litellm_cache_misses_metric_total"] == [1.0]
    assert scrape.samples["litellm_cache_misses_metric_total"][0]["hashed_api_key"] == KEY_A
    assert scrape.values["litellm_provider_cache_creation_input_tokens_metric_total"] == [4.0]
    # six answers came from an LLM API (one of them the images call); the cache hit made no call
    assert sum(scrape.values["litellm_llm_api_latency_metric_count"]) == 6
    assert sum(scrape.values["litellm_request_total_latency_metric_count"]) == 7
    # LiteLLM 1.110's labels: the served group, the provider and the service tier the answer named
    assert ('litellm_spend_metric_total{end_user="None",hashed_api_key="' + KEY_A + '",api_key_alias="alice",'
            'model="echo",team="team-1",team_alias="None",user="u1",user_email="None",client_ip="None",'
            'user_agent="None",requested_model="gpt-4o",model_id="dep-a",api_provider="mock",'
            'service_tier="default",org_id="org-1",org_alias="acme"} 0.0012') in text
    # LiteLLM 1.110's organization labels: the key's organization (its own, else its team's), "None" without one
    assert 'org_id="None",org_alias="None"' in text
    # its queue time (arrival to pre-call processing): the successes whose time was taken (with Prometheus on)
    assert scrape.values["litellm_request_queue_time_seconds_count"] == [1.0]
    assert scrape.values["litellm_request_queue_time_seconds_sum"] == [0.002]
    # LiteLLM 1.110's zero-cost counter: a billable answer priced at $0, by reason (cost.zero_cost)
    assert ('litellm_zero_cost_requests_total{requested_model="gpt-4o",model="echo",model_id="dep-a",'
            'api_provider="mock",reason="missing_pricing_key"} 1') in text
    # the sparse detail families: record 0's reasoning and audio tokens and its provider cache, 2 images
    assert scrape.values["litellm_output_reasoning_tokens_metric_total"] == [6.0]
    assert scrape.values["litellm_input_audio_tokens_metric_total"] == [3.0]
    assert scrape.values["litellm_output_audio_tokens_metric_total"] == [2.0]
    assert scrape.values["litellm_input_cached_tokens_metric_total"] == [8.0]
    assert scrape.values["litellm_input_cache_creation_tokens_metric_total"] == [4.0]
    assert scrape.values["litellm_images_generated_metric_total"] == [2.0]
    assert scrape.values["litellm_remaining_org_budget_metric"] == [180.0]
    assert scrape.samples["litellm_remaining_org_budget_metric"] == [{"org_id": "org-1", "org_alias": "acme"}]
    assert scrape.samples["litellm_deployment_rpm_limit"][0]["model_group"] == "gpt-4o"


def test_off_costs_nothing() -> None:
    cfg = traffic_config()
    assert not enabled(cfg) and LiteLLMMetrics.for_config(cfg) is None
    m = Metrics.for_config(cfg)
    assert "litellm" not in m.snapshot()
    assert "litellm_proxy" not in m.render().decode()
    m.cooldown("dep-a", 429)  # the router's call works without the extension
    assert m.events["deployment_cooldown"] == 1
    cfg.observe = ObserveSettings(failure_callbacks=("prometheus",))
    lite = LiteLLMMetrics.for_config(cfg)
    assert enabled(cfg) and isinstance(lite, LiteLLMMetrics)


def _random(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + '-_."\\\n{}') for _ in range(rng.randint(1, 30)))


def _series(lite: LiteLLMMetrics) -> int:
    return sum(len(d) for d in lite.counters.values()) + sum(len(d) for d in lite.histograms.values())


def test_time_to_first_token_counts_from_the_answering_calls_start() -> None:
    """LiteLLM's ``litellm_llm_api_time_to_first_token_metric`` is ``completion_start_time - api_call_start_time``:
    the answering call's own wait, not the gateway's work or the failed attempts before it (``api_ttft``);
    a record without it (a mocked stream) falls back to the time from arrival."""
    cfg = traffic_config()
    lite = LiteLLMMetrics(["gpt-4o"], cfg.deployments)
    lite.handle([record(0, stream=True, ttft=2.0, api_ttft=0.3), record(1, stream=True, ttft=0.5)])
    text = "\n".join(lite.render([lite.snapshot()]))
    scrape = parse_exposition(text)
    assert scrape.values["litellm_llm_api_time_to_first_token_metric_sum"] == [0.8]
    assert scrape.values["litellm_llm_api_time_to_first_token_metric_count"] == [2.0]


def test_a_bad_keys_401_is_left_out_and_a_deployments_own_401_counts() -> None:
    """LiteLLM leaves invalid-key requests out of every family (a client guessing keys would otherwise make
    the failure panels move), but never a deployment that answered 401 to its own credential."""
    cfg = traffic_config()
    lite = LiteLLMMetrics(["gpt-4o"], cfg.deployments)
    lite.handle([record(0, key_hash=None, key_alias=None, team_id=None, user_id=None, model_group="",
                        deployment_id="", status=401, outcome=Outcome.ERROR, error_type="auth_error")])
    assert "litellm_proxy_total_requests_metric_total{" not in "\n".join(lite.render([lite.snapshot()]))
    lite.handle([record(1, status=401, outcome=Outcome.ERROR, error_type="authentication_error")])
    text = "\n".join(lite.render([lite.snapshot()]))
    assert 'litellm_deployment_failure_responses_total{' in text and 'exception_status="401"' in text


def test_a_flood_of_client_strings_does_not_grow_the_series() -> None:
    cfg = traffic_config()
    lite = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments)
    rng = random.Random(7)

    def flood(n: int) -> None:
        lite.handle([record(i, model=_random(rng), end_user_id=_random(rng), deployment_id=rng.choice(
            ["dep-a", "dep-b", _random(rng), ""]), route=rng.choice(["chat", "embeddings"]),
            status=rng.choice([200, 400, 429, 1234]), outcome=rng.choice(list(Outcome)),
            error_type=rng.choice(["", "rate_limit_error", _random(rng)]), fallbacks=rng.choice([0, 1]),
            model_group=rng.choice(["gpt-4o", _random(rng), ""])) for i in range(n)])

    flood(3_000)
    before, size = _series(lite), len(lite.render([lite.snapshot()]))
    flood(20_000)
    assert _series(lite) == before
    assert len(lite.render([lite.snapshot()])) == size
    text = "\n".join(lite.render([lite.snapshot()]))
    assert "\\n" not in text and 'model_id="dep-a"' in text and 'requested_model="other"' in text
    parse_exposition(text)


def test_the_memo_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered cells give exactly the figures computed afresh for every record."""
    cfg = traffic_config()
    rng = random.Random(3)
    records = []
    for i in range(4_000):
        team = rng.choice(["t1", "t2", None])
        records.append(record(
            i, model=rng.choice(["gpt-4o", "claude", "x"]), key_hash=rng.choice([KEY_A, None, "c" * 64]),
            key_alias=rng.choice(["alice", None]), team_id=team, end_user_id=rng.choice([None, "e"]),
            deployment_id=rng.choice(["dep-a", "dep-b", ""]), status=rng.choice([200, 429]),
            outcome=rng.choice(list(Outcome)), stream=True, ttft=rng.choice([None, 0.2]), latency=rng.random() * 9,
            fallbacks=rng.choice([0, 0, 1]), cache_hit=rng.random() < 0.1,
            extra=detail(attempt("dep-a", 500), attempt("dep-b", 200), team_alias=f"alias-{team}-{i // 1000}")
            if rng.random() < 0.2 else None))
    remembered = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments)
    remembered.handle(records)
    monkeypatch.setattr(prometheus, "MAX_MEMO", 0)
    afresh = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments)
    for r in records:
        afresh.handle([r])
    assert afresh.snapshot() == remembered.snapshot()


def test_one_good_attempt_counts_as_a_record_without_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Detail listing only the answering call (every exporter's common case) adds the same series and values
    as a record without one: the answering call is counted with the record's cells, not walked as an attempt;
    a Detail with a failed attempt first, or a lone attempt of another deployment, still is."""
    cfg = traffic_config()
    walks: list[object] = []
    walk = LiteLLMMetrics._calls
    monkeypatch.setattr(LiteLLMMetrics, "_calls", lambda self, calls, cells: (walks.append(calls),
                                                                              walk(self, calls, cells))[1])
    plain, lone = (LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments) for _ in range(2))
    team = detail(team_alias=None)["observe"]
    for i, stream in enumerate((False, True, False)):
        plain.handle([record(i, stream=stream, extra={"observe": team})])
        lone.handle([record(i, stream=stream, extra=detail(attempt("dep-a", 200), team_alias=None))])
    assert lone.snapshot() == plain.snapshot() and walks == []
    walked = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments)
    walked.handle([record(0, deployment_id="dep-b", extra=detail(attempt("dep-a", 500), attempt("dep-b", 200)))])
    scrape = parse_exposition("\n".join(walked.render([walked.snapshot()])))
    totals = {s["model_id"]: v for s, v in zip(scrape.samples["litellm_deployment_total_requests_total"],
                                               scrape.values["litellm_deployment_total_requests_total"], strict=True)}
    assert totals == {"dep-a": 1.0, "dep-b": 1.0} and len(walks) == 1
    other = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments)
    other.handle([record(0, extra=detail(attempt("dep-b", 200)))])  # the Detail's call is dep-b's, not the record's
    scrape = parse_exposition("\n".join(other.render([other.snapshot()])))
    assert [s["model_id"] for s in scrape.samples["litellm_deployment_success_responses_total"]] == ["dep-b"]


def test_keys_teams_users_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "MAX_IDENTITIES", 5)
    lite = LiteLLMMetrics(["gpt-4o"], traffic_config().deployments)
    lite.handle([record(i, key_hash=f"{i:064x}", key_alias=f'alias "{i}"\n', team_id=f"t{i}", user_id=f"u{i}")
                 for i in range(50)])
    scrape = parse_exposition("\n".join(lite.render([lite.snapshot()])))
    rows = scrape.samples["litellm_proxy_total_requests_metric_total"]
    for label in ("hashed_api_key", "api_key_alias", "team", "user"):
        values = {r[label] for r in rows}
        assert len(values) == 6 and "other" in values, label
    assert 'alias "0"\n' in {r["api_key_alias"] for r in rows}  # escaped on the way out, read back whole


def test_series_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "MAX_SERIES", 3)
    lite = LiteLLMMetrics(["gpt-4o"], traffic_config().deployments)
    lite.handle([record(i, key_hash=f"{i:064x}") for i in range(10)])
    d = lite.counters["litellm_proxy_total_requests_metric"]
    assert len(d) == 4 and d[("other",) * 16] == [7.0]


def _source(router: Router) -> Callable[[], Router]:
    return lambda: router


def test_two_workers_are_merged(tmp_path: Path) -> None:
    cfg = traffic_config()
    routers = [Router(cfg), Router(cfg)]
    workers = []
    for router in routers:
        m = Metrics.for_config(cfg, str(tmp_path))
        m.litellm = LiteLLMMetrics(["gpt-4o", "claude"], cfg.deployments, router=_source(router))
        workers.append(m)
    workers[1].pid = os.getppid()  # another live process: the snapshot of "another worker"
    a, b = workers
    assert a.litellm is not None and b.litellm is not None
    a.litellm.handle([record(0), record(1, latency=3.0)])  # type: ignore[attr-defined]
    b.litellm.handle([record(2), record(3, status=429, outcome=Outcome.ERROR)])  # type: ignore[attr-defined]
    routers[0].by_id["dep-a"][0].inflight = 1
    routers[1].by_id["dep-a"][0].inflight = 3
    routers[1].by_id["dep-b"][0].cooldown_until = routers[1].clock() + 60
    routers[0].by_id["dep-a"][0].rpm_left = 500.0
    routers[1].by_id["dep-a"][0].rpm_left = 450.0
    b.cooldown("dep-b", 503)
    b.flush()
    scrape = parse_exposition(a.render().decode())
    assert sum(scrape.values["litellm_proxy_total_requests_metric_total"]) == 4
    assert sum(scrape.values["litellm_proxy_failed_requests_metric_total"]) == 1
    [count] = scrape.values["litellm_request_total_latency_metric_count"]
    [total] = scrape.values["litellm_request_total_latency_metric_sum"]
    assert count == 3 and total == pytest.approx(4.6)
    inf = [v for s, v in zip(scrape.samples["litellm_request_total_latency_metric_bucket"],
                             scrape.values["litellm_request_total_latency_metric_bucket"]) if s["le"] == "+Inf"]
    assert inf == [3.0]
    assert scrape.values["litellm_in_flight_requests"] == [4.0]
    state = dict(zip((s["model_id"] for s in scrape.samples["litellm_deployment_state"]),
                     scrape.values["litellm_deployment_state"]))
    assert state["dep-b"] == 2.0 and state["dep-a"] == 1.0  # worst of the workers
    assert scrape.values["litellm_remaining_requests_metric"] == [450.0]
    assert scrape.values["litellm_deployment_cooled_down_total"] == [1.0]
    assert scrape.values["litellm_deployment_rpm_limit"] == [600.0]  # the same everywhere, not summed


def test_budgets_latest_report_wins() -> None:
    lite = LiteLLMMetrics()
    lite.set_budget("team", "t1", "one", 100.0, 10.0, reset_at=7200.0, now=100.0)
    older = lite.snapshot()
    lite.set_budget("team", "t1", "one", 100.0, 40.0, reset_at=7200.0, now=200.0)
    scrape = parse_exposition("\n".join(lite.render([older, lite.snapshot()], now=3600.0)))
    assert scrape.values["litellm_remaining_team_budget_metric"] == [60.0]
    assert scrape.values["litellm_team_budget_remaining_hours_metric"] == [1.0]
    lite.set_budget("key", KEY_A, None, 5.0, 1.0)  # no period: no remaining hours
    scrape = parse_exposition("\n".join(lite.render([lite.snapshot()])))
    assert scrape.values["litellm_remaining_api_key_budget_metric"] == [4.0]
    assert "litellm_api_key_budget_remaining_hours_metric" not in scrape.samples
    with pytest.raises(ValueError):
        lite.set_budget("org", "o1", None, 1.0, 0.0)


def test_through_the_completion_queue() -> None:
    cfg = traffic_config()
    lite = LiteLLMMetrics(["gpt-4o"], cfg.deployments)

    async def main() -> None:
        q = CompletionQueue(100, delay=0)
        q.add_sink(lite)
        q.put(record(0))
        q.start()
        await asyncio.sleep(0)
        q.drain_now()
        await q.aclose()

    asyncio.run(main())
    assert [v[0] for v in lite.counters["litellm_proxy_total_requests_metric"].values()] == [1.0]
    assert "prometheus" in [lite.name]


def test_reload_follows_the_new_config() -> None:
    cfg = traffic_config()
    lite = LiteLLMMetrics(["gpt-4o"], cfg.deployments)
    lite.handle([record(0, model="claude", model_group="claude", deployment_id="dep-c")])
    cfg.deployments = [d for d in cfg.deployments if d.id != "dep-c"]
    lite.set_config(cfg)
    lite.handle([record(1, model="claude", model_group="claude", deployment_id="dep-c")])
    ids = {k[-4] for k in lite.counters["litellm_proxy_total_requests_metric"]}  # model_id, api_provider, org_id,
    # org_alias last
    assert ids == {"dep-c", "other"}


def test_api_base_is_the_adapters_when_the_config_names_none() -> None:
    cfg = from_litellm({"model_list": [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"},
         "model_info": {"id": "o1"}}]}, "cfg.yaml")
    router = Router(cfg)
    lite = LiteLLMMetrics(["gpt-4o"], cfg.deployments)
    lite.handle([record(0, deployment_id="o1")])
    lite.attach(_source(router))
    lite.handle([record(1, deployment_id="o1")])
    bases = {k[2] for k in lite.histograms["litellm_overhead_latency_metric"]}
    assert bases == {"None", "https://api.openai.com/v1"}  # before and after the router was attached
    assert lite.gauges()["litellm_in_flight_requests"] == [[0]]


def test_relaygates_litellm_named_families_are_typed_as_prometheus_client_types_them() -> None:
    """``# TYPE`` names the family, its counter samples carry ``_total`` (as LiteLLM's client library writes)."""
    m = Metrics.for_config(traffic_config())
    m.count("cache_hit")
    m.set_provider_budget("openai", 10.0, 2.5, 0.0, False)
    scrape = parse_exposition(m.render().decode())
    assert family_of("litellm_cache_hits_metric_total", scrape.types) == ("litellm_cache_hits_metric", "counter")
    assert family_of("litellm_cache_misses_metric_total", scrape.types) == ("litellm_cache_misses_metric", "counter")
    assert scrape.values["litellm_provider_remaining_budget_metric"] == [7.5]
