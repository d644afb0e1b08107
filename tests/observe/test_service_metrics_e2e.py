"""LiteLLM's service families (``service_callback: ["prometheus_system"]``) under a real ``relaygate serve``.

Two Granian workers, a real redis-server behind the limiter, the embedded SQLite store with a virtual key
that has a budget of a two-second period. Traffic goes through the openai SDK; failures are made the way
they happen in production: a bad key (auth), a spent budget (the pre-call check), a deployment whose
upstream refuses connections (router and upstream call), Redis stopped (redis). Then every query of the
"Service callbacks" row of LiteLLM's "All Prometheus Metrics" dashboard
(``data/litellm_service_panels.json``) must return data from ``/metrics``, except the families of parts
relaygate does not have (:data:`NOT_EMITTED`). And spend-log retention with a one-second period reports
LiteLLM's cleanup families after its runs delete the rows (``sinks.retention``).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import RedisServer, free_port, start_gateway
from tests.observe.test_prometheus_dashboard import (
    Scrape,
    _family,
    dashboard_targets,
    parse_exposition,
    references,
    satisfied,
)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

MASTER = "sk-services-master"
PANELS = Path(__file__).parent / "data" / "litellm_service_panels.json"
TARGETS = dashboard_targets(PANELS)

_BUFFER = "LiteLLM's Redis buffer of spend updates between instances: relaygate's workers write spend to the " \
          "database themselves"
NOT_EMITTED = {
    "litellm_redis_daily_org_spend_update_queue_latency": _BUFFER,
    "litellm_redis_daily_tag_spend_update_queue_latency": _BUFFER,
    "litellm_redis_daily_team_spend_update_queue_latency": _BUFFER,
    "litellm_redis_window_spend_update_queue_latency": _BUFFER,
    "litellm_redis_daily_org_spend_update_queue_total_requests": _BUFFER,
    "litellm_redis_daily_tag_spend_update_queue_total_requests": _BUFFER,
    "litellm_redis_daily_team_spend_update_queue_total_requests": _BUFFER,
    "litellm_redis_window_spend_update_queue_total_requests": _BUFFER,
    "litellm_redis_daily_org_spend_update_queue_failed_requests": _BUFFER,
    "litellm_redis_daily_tag_spend_update_queue_failed_requests": _BUFFER,
    "litellm_redis_daily_team_spend_update_queue_failed_requests": _BUFFER,
    "litellm_redis_window_spend_update_queue_failed_requests": _BUFFER,
    "litellm_redis_daily_agent_spend_update_queue_size": _BUFFER,
    "litellm_redis_daily_end_user_spend_update_queue_size": _BUFFER,
    "litellm_redis_daily_spend_update_queue_size": _BUFFER,
    "litellm_redis_spend_update_queue_size": _BUFFER,
    "litellm_in_memory_daily_spend_update_queue_size": "daily spend is read from the spend logs, not kept in a "
                                                       "queue of its own",
    "litellm_pod_lock_manager_size": "no lock between instances: each worker writes its own rows",
}
"""Families the row queries that relaygate does not emit, and why."""
NO_FAILURE_MADE = {
    "litellm_postgres_failed_requests": "a database failure is made in tests/observe/test_service_metrics.py",
    "litellm_batch_write_to_db_failed_requests": "as postgres",
    "litellm_reset_budget_job_failed_requests": "as postgres",
}
"""Failure counters this test does not make fail (their failures are counted the same way, tested apart)."""


def _config(redis_port: int, dead_port: int) -> str:
    return f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo, rpm: 100000, input_cost_per_token: 0.001, output_cost_per_token: 0.001}}
  - model_name: down
    litellm_params: {{model: openai/x, api_base: "http://127.0.0.1:{dead_port}/v1", api_key: sk-x}}
router_settings:
  redis_host: 127.0.0.1
  redis_port: {redis_port}
  num_retries: 0
litellm_settings:
  service_callback: ["prometheus_system", "datadog"]
general_settings:
  master_key: {MASTER}
  user_api_key_cache_ttl: 0.5
"""


def _scrape(c: httpx.Client) -> Scrape:
    return parse_exposition(c.get("/metrics").text)


def _value(scrape: Scrape, name: str, **labels: str) -> float:
    return sum(v for lab, v in zip(scrape.samples.get(name, []), scrape.values.get(name, []), strict=True)
               if all(lab.get(k) == x for k, x in labels.items()))


def test_the_service_row_returns_data(redis_server: RedisServer) -> None:
    with start_gateway(_config(redis_server.port, free_port()), workers=2) as gw, \
            httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {MASTER}"}) as c:
        assert "callback 'datadog' is not supported as a service callback" in gw.log_path.read_text()
        made = c.post("/key/generate", json={"max_budget": 0.05, "budget_duration": "2s", "models": ["m", "down"]})
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)
        for _ in range(4):  # answered: auth, pre-call, router, the upstream call, the limiter's Redis script
            assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.AuthenticationError):  # auth fails
            openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-nobody", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIStatusError):  # the upstream refuses: the router and the call fail
            client.chat.completions.create(model="down", messages=[{"role": "user", "content": "hi"}])
        # the key's spend passes its budget, the pre-call check refuses; the 2 s period ends, the reset is
        # written back (reset_budget_job) and the key answers again
        deadline = time.monotonic() + 30
        refused = False
        reset = False
        while not (refused and reset):
            assert time.monotonic() < deadline, (refused, reset)
            try:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 400}])
            except openai.UnprocessableEntityError as exc:  # LiteLLM's 422
                assert "Budget has been exceeded" in str(exc)
                refused = True
            scrape = _scrape(c)
            reset = _value(scrape, "litellm_reset_budget_job_total_requests_total") > 0
            time.sleep(0.2)
        redis_server.stop()  # the limiter's call fails; the request is still answered (local limits)
        master = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30)
        master.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 15
        while True:  # the spend sink's batch (every second) and the other worker's snapshot (every second)
            scrape = _scrape(c)
            if (_value(scrape, "litellm_batch_write_to_db_total_requests_total") > 0
                    and _value(scrape, "litellm_redis_failed_requests_total") > 0
                    and _value(scrape, "litellm_auth_failed_requests_total") > 0):
                break
            assert time.monotonic() < deadline, [
                (n, _value(scrape, n)) for n in ("litellm_batch_write_to_db_total_requests_total",
                                                 "litellm_redis_failed_requests_total",
                                                 "litellm_auth_failed_requests_total")]
            time.sleep(0.2)

    # LiteLLM's label layout: the service's own label, its name as value; failures by class and function
    assert _value(scrape, "litellm_redis_latency_count", redis="redis") >= 4
    assert _value(scrape, "litellm_auth_failed_requests_total", auth="auth", error_class="AuthError",
                  function_name="acompletion") >= 1
    failed_redis = scrape.samples["litellm_redis_failed_requests_total"]
    assert {lab["function_name"] for lab in failed_redis} <= {"connect", "evalsha", "eval", "ping", "pipeline", "get",
                                                               "set", "del"}, failed_redis
    assert {lab["error_class"] for lab in failed_redis} <= {"ConnectionError", "TimeoutError", "OSError",
                                                            "ConnectionRefusedError", "LookupError"}, failed_redis
    assert _value(scrape, "litellm_self_failed_requests_total", function_name="openai") >= 1
    assert _value(scrape, "litellm_router_failed_requests_total", function_name="acompletion") >= 1
    assert _value(scrape, "litellm_proxy_pre_call_failed_requests_total", error_class="budget_exceeded",
                  function_name="acompletion") >= 1
    assert scrape.types["litellm_in_memory_spend_update_queue_size"] == "gauge"
    # every series a histogram has: buckets cumulative, +Inf equal to the count
    for s in ("redis", "postgres", "auth", "router", "self", "proxy_pre_call", "batch_write_to_db"):
        buckets = [v for lab, v in zip(scrape.samples[f"litellm_{s}_latency_bucket"],
                                       scrape.values[f"litellm_{s}_latency_bucket"], strict=True)]
        assert buckets == sorted(buckets) and buckets[-1] == _value(scrape, f"litellm_{s}_latency_count") > 0, s

    problems = []
    for title, expr in TARGETS:
        for ref in references(expr):
            fam = _family(ref.metric)
            if fam in NOT_EMITTED or fam in NO_FAILURE_MADE:
                continue
            if (p := satisfied(ref, scrape)) is not None:
                problems.append(f"{title}: {expr}: {p}")
    assert not problems, "\n".join(problems)


def test_the_panel_fixture_is_read_whole_and_the_exclusions_are_current() -> None:
    assert len(TARGETS) == 43
    families = {_family(r.metric) for _t, e in TARGETS for r in references(e)}
    assert set(NOT_EMITTED) <= families and set(NO_FAILURE_MADE) <= families


def test_spend_log_retention_reports_litellms_cleanup_families() -> None:
    config = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo, input_cost_per_token: 0.001, output_cost_per_token: 0.001}}
general_settings:
  master_key: {MASTER}
  maximum_spend_logs_retention_period: 1s
  maximum_spend_logs_retention_interval: 1s
"""
    with start_gateway(config, workers=2) as gw, \
            httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {MASTER}"}) as c:
        for _ in range(5):
            assert c.post("/v1/chat/completions", json={"model": "m", "messages": [
                {"role": "user", "content": "hi"}]}).status_code == 200
        deadline = time.monotonic() + 20
        while True:  # written within a second, older than the 1 s period a second later, deleted by a run
            scrape = _scrape(c)
            if _value(scrape, "litellm_spend_log_cleanup_rows_deleted_total", table="rg_spend_logs") >= 5:
                break
            assert time.monotonic() < deadline, scrape.samples.get("litellm_spend_log_cleanup_runs_total")
            time.sleep(0.2)
        assert _value(scrape, "litellm_spend_log_cleanup_runs_total", outcome="completed") >= 1
        # two workers, one job lock: a run the other worker's overlapped ends at once, never both delete
        assert {lab["outcome"] for lab in scrape.samples["litellm_spend_log_cleanup_runs_total"]} <= {
            "completed", "skipped_locked"}
        assert _value(scrape, "litellm_spend_log_cleanup_batch_duration_seconds_count") >= 1
        assert scrape.types["litellm_spend_log_cleanup_rows_remaining"] == "gauge"
        # the rows are gone
        deadline = time.monotonic() + 10
        while c.get("/spend/logs").json():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # /global/spend is the last 30 days of rows, as LiteLLM's (the counters keep the spend:
        # tests/spend/test_retention.py)
        assert c.get("/global/spend").json()["spend"] == 0.0


def _members(scrape: Scrape, team_id: str) -> float | None:
    for labels, value in zip(scrape.samples.get("litellm_team_members_metric", []),
                             scrape.values.get("litellm_team_members_metric", []), strict=True):
        if labels == {"team": team_id, "team_alias": "one"}:
            return value
    return None


def test_user_and_team_counts_follow_the_store() -> None:
    config = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["prometheus"]
general_settings:
  master_key: {MASTER}
"""
    with start_gateway(config, workers=2) as gw, \
            httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {MASTER}"}) as c:
        start = _scrape(c)
        assert start.types["litellm_total_users"] == "gauge" and start.types["litellm_teams_count"] == "gauge"
        users0 = _value(start, "litellm_total_users")
        assert "litellm_team_members_metric" not in start.samples  # no team yet: no series
        team = c.post("/team/new", json={"team_alias": "one"})
        assert team.status_code == 200
        team_id = team.json()["team_id"]
        assert c.post("/user/new", json={"user_id": "someone"}).status_code == 200
        deadline = time.monotonic() + 15
        while True:  # every worker reads the counts again when the store's change counter moves
            scrape = _scrape(c)
            if _value(scrape, "litellm_teams_count") == 1 and _value(scrape, "litellm_total_users") == users0 + 1:
                assert _value(scrape, "litellm_active_users") == users0 + 1
                break
            assert time.monotonic() < deadline, (_value(scrape, "litellm_teams_count"),
                                                 _value(scrape, "litellm_total_users"))
            time.sleep(0.2)
        # LiteLLM's litellm_team_members_metric{team, team_alias}: the team's members, after each change
        for body, route, want in (
                ({"team_id": team_id, "member": [{"role": "user", "user_id": "someone"},
                                                 {"role": "admin", "user_id": "another"}]}, "/team/member_add", 2),
                ({"team_id": team_id, "user_id": "another"}, "/team/member_delete", 1)):
            assert c.post(route, json=body).status_code == 200, route
            deadline = time.monotonic() + 15
            while _members(_scrape(c), team_id) != want:
                assert time.monotonic() < deadline, (route, _members(_scrape(c), team_id))
                time.sleep(0.2)
        assert c.post("/team/delete", json={"team_ids": [team_id]}).status_code == 200
        deadline = time.monotonic() + 15
        while "litellm_team_members_metric" in _scrape(c).samples:  # a deleted team's series goes with it
            assert time.monotonic() < deadline
            time.sleep(0.2)
