"""Every exporter at once through a real ``relaygate serve`` (Granian, two workers) and real receivers:
Langfuse (a stand-in that checks auth and Langfuse's published schema), an OTLP/HTTP receiver decoding
with ``opentelemetry-proto``, LiteLLM's ``generic_api`` webhook and Datadog's logs intake (a collector),
Slack alerting (a collector), Prometheus' ``litellm_*`` families and JSON request lines; and the same with
every receiver gone or hanging: requests are unaffected, drops are counted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.compat.recorder import recording_upstream
from tests.conftest import start_gateway
from tests.observe.collector_server import Collector
from tests.observe.langfuse_server import LangfuseServer
from tests.observe.otlp_receiver import Receiver

pytestmark = pytest.mark.e2e

MASTER = "sk-all-exporters"
AUTH = {"Authorization": f"Bearer {MASTER}"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def config(base: str) -> str:
    return f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{base}/v1"}}
  - model_name: broken
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{base}/status-503/v1"}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "{base}/status-500/v1"}}
  - model_name: pair
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{base}/v1"}}
router_settings:
  num_retries: 0
  allowed_fails: 0
  cooldown_time: 30
litellm_settings:
  callbacks: ["langfuse", "otel", "prometheus", "generic_api", "datadog"]
  json_logs: true
  langfuse_default_tags: ["user_api_key_alias"]
general_settings:
  master_key: {MASTER}
  alerting: ["slack"]
  alert_types: ["llm_exceptions", "cooldown_deployment"]
"""


def env(lf: str, otlp: str, generic: str, dd: str, slack: str) -> dict[str, str]:
    return {"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": lf,
            "LANGFUSE_FLUSH_INTERVAL": "0.05", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_BSP_SCHEDULE_DELAY": "50",
            "GENERIC_LOGGER_ENDPOINT": generic + "/log", "GENERIC_LOGGER_HEADERS": "x-collector=yes",
            "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05", "DD_API_KEY": "dd-key-test", "DD_BASE_URL": dd,
            "DD_SITE": "local", "SLACK_WEBHOOK_URL": slack + "/slack"}


def wait(pred: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_every_exporter_gets_the_traffic() -> None:
    with recording_upstream(openai_like=True) as up, LangfuseServer() as lf, Receiver() as rx, \
            Collector() as generic, Collector() as dd, Collector() as slack:
        with start_gateway(config(up.url), workers=2, env=env(lf.url, rx.url, generic.url, dd.url, slack.url)) as gw:
            with httpx.Client(base_url=gw.url, timeout=20) as c:
                r = c.post("/v1/chat/completions", headers={**AUTH, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
                                                            "langfuse_trace_name": "named-by-header"},
                           json={"model": "m", "messages": [{"role": "user", "content": "hello unary"}],
                                 "metadata": {"generation_name": "gen-unary", "session_id": "sess-1",
                                              "trace_user_id": "u-7", "tags": ["blue"]}})
                assert r.status_code == 200
                unary_id = r.headers["x-litellm-call-id"]
                with c.stream("POST", "/v1/chat/completions", headers=AUTH, json={
                        "model": "m", "stream": True, "messages": [{"role": "user", "content": "hello stream"}],
                        "metadata": {"generation_name": "gen-stream"}}) as s:
                    assert s.status_code == 200
                    text = b"".join(s.iter_bytes())
                    stream_id = s.headers["x-litellm-call-id"]
                assert b"[DONE]" in text
                r = c.post("/v1/chat/completions", headers={**AUTH, "x-litellm-enable-message-redaction": "true"},
                           json={"model": "m", "messages": [{"role": "user", "content": "secret words"}]})
                assert r.status_code == 200
                redacted_id = r.headers["x-litellm-call-id"]
                r = c.post("/v1/chat/completions", headers=AUTH,
                           json={"model": "broken", "messages": [{"role": "user", "content": "fail"}]})
                assert r.status_code == 503
                failed_id = r.headers.get("x-litellm-call-id")
                for _ in range(16):  # the failing deployment of "pair" is picked, cooled down; the other answers
                    c.post("/v1/chat/completions", headers=AUTH,
                           json={"model": "pair", "messages": [{"role": "user", "content": "pair"}]})

                # Langfuse: traces and generations with the client's metadata, TTFT, redaction, the error
                gens = wait(lambda: {e["body"]["id"]: e["body"] for e in lf.accepted
                                     if e["type"] == "generation-create" and e["body"]["id"] in
                                     {unary_id, stream_id, redacted_id, failed_id}}
                            if len([e for e in lf.accepted if e["type"] == "generation-create"]) >= 4 else None)
                assert gens and {unary_id, stream_id, redacted_id} <= set(gens), lf.accepted
                assert gens[unary_id]["name"] == "gen-unary" and "completionStartTime" not in gens[unary_id]
                assert gens[unary_id]["usageDetails"]["output"] > 0
                assert gens[stream_id]["name"] == "gen-stream" and "completionStartTime" in gens[stream_id]
                assert gens[redacted_id]["input"] == "redacted-by-litellm"
                assert "secret words" not in orjson.dumps(lf.accepted).decode()
                traces = {e["body"]["id"]: e["body"] for e in lf.accepted if e["type"] == "trace-create"}
                unary_trace = traces[gens[unary_id]["traceId"]]
                assert unary_trace["sessionId"] == "sess-1" and unary_trace["userId"] == "u-7"
                assert unary_trace["name"] == "named-by-header"  # LiteLLM's langfuse_* request headers
                assert "blue" in unary_trace["tags"]
                if failed_id in gens:
                    assert gens[failed_id]["level"] == "ERROR"

                # OpenTelemetry: the incoming trace continued; request and attempt spans
                spans = wait(lambda: [s for s in rx.spans() if s.trace_id == TRACE] if len(
                    [s for s in rx.spans() if s.trace_id == TRACE]) >= 2 else None)
                assert spans and {s.kind for s in spans} == {"SERVER", "CLIENT"}
                server = next(s for s in spans if s.kind == "SERVER")
                assert server.parent_span_id == "00f067aa0ba902b7"
                assert server.attributes["gen_ai.request.model"] == "m"
                assert server.attributes["relaygate.call_id"] == unary_id

                # generic_api and Datadog: LiteLLM's StandardLoggingPayload
                payloads = wait(lambda: [p for p in generic.entries() if p.get("call_id") == unary_id] or None)
                assert payloads and payloads[0]["status"] == "success" and payloads[0]["model_group"] == "m"
                assert all(p.headers.get("x-collector") == "yes" for p in generic.posts)
                logs = wait(lambda: [e for e in dd.entries() if unary_id in e.get("message", "")] or None)
                assert logs and all(p.headers.get("dd-api-key") == "dd-key-test" for p in dd.posts)

                # Slack: the failed request and the cooldown
                alerts = wait(lambda: [p.json().get("text", "") for p in slack.posts] if len(slack.posts) >= 2
                              else None)
                assert alerts and any("LLM API call failed" in a for a in alerts), alerts
                assert any("Cooling down" in a for a in alerts), alerts

                # Prometheus: LiteLLM's families, without a key (LiteLLM's default)
                def scraped() -> str | None:
                    t = c.get("/metrics").text
                    return t if 'litellm_proxy_total_requests_metric_total{' in t and \
                        "litellm_deployment_cooled_down_total{" in t else None
                metrics = wait(scraped)
                assert metrics, c.get("/metrics").text[-3000:]
                assert 'requested_model="m"' in metrics and "litellm_llm_api_latency_metric_bucket{" in metrics
                assert "litellm_deployment_state{" in metrics
            log = gw.log_path.read_text()
    lines = [orjson.loads(line) for line in log.splitlines() if line.strip()]
    assert {unary_id, stream_id} <= {o.get("call_id") for o in lines if o.get("message") == "request"}
    for secret in ("sk-lf-test", "dd-key-test", "sk-up", MASTER):
        assert secret not in log


def test_exporters_down_or_hanging_leave_requests_alone() -> None:
    with recording_upstream() as up, LangfuseServer() as lf, Collector() as generic, Collector() as slack:
        lf.hang()
        generic.hang()
        dead = "http://127.0.0.1:9"  # nothing listens: refused at once
        e = env(lf.url, dead, generic.url, dead, slack.url)
        with start_gateway(config(up.url), env=e) as gw:
            with httpx.Client(base_url=gw.url, timeout=10) as c:
                t0 = time.monotonic()
                for i in range(60):
                    r = c.post("/v1/chat/completions", headers=AUTH,
                               json={"model": "m", "stream": i % 3 == 0,
                                     "messages": [{"role": "user", "content": f"q{i}"}]})
                    assert r.status_code == 200
                # no request waited on an exporter (each exporter's timeout is seconds; 60 requests are not)
                assert time.monotonic() - t0 < 30
                assert c.get("/health/readiness").status_code == 200
                # LiteLLM's metric of failed log deliveries names the exporter whose receiver refuses
                deadline = time.monotonic() + 30
                while 'litellm_callback_logging_failures_metric_total{callback_name="datadog"}' not in (
                        text := c.get("/metrics").text):
                    assert time.monotonic() < deadline, text[-2000:]
                    time.sleep(0.2)
            lf.release.set()
            generic.release()
            log = gw.log_path.read_text()
    assert "Traceback" not in log
    assert "sk-lf-test" not in log and "dd-key-test" not in log
