"""LiteLLM's ``GET /health/services``: a test record to one named exporter, a test alert to Slack or the
webhook, LiteLLM's 400s and 422s, admins only; through a real ``relaygate serve`` with real receivers (a
Langfuse stand-in checking auth and schema, collectors for the generic webhook, Slack and alert webhook), and
the Langfuse key check and the failure-only exporter in process against the same real servers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import GatewayError
from relaygate.gateway.service_checks import MOCK_ANSWER, MOCK_MODEL, MOCK_PROMPT, MOCK_USER, send_test_record
from relaygate.observe.generic_api import make_generic_api
from relaygate.observe.langfuse import make_langfuse
from tests.conftest import start_gateway
from tests.observe.collector_server import Collector
from tests.observe.langfuse_server import LangfuseServer
from tests.observe.test_all_exporters_e2e import wait

MASTER = "sk-services-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def config(db: str) -> str:
    return f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["langfuse", "generic_api", "prometheus"]
general_settings:
  master_key: {MASTER}
  database_url: {db}
  proxy_batch_write_at: 0.2
  alerting: ["slack", "webhook"]
  alert_types: ["llm_exceptions", "budget_alerts", "db_exceptions"]
"""


def error_of(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


@pytest.mark.e2e
def test_services_through_the_gateway(tmp_path: Path) -> None:
    with LangfuseServer() as lf, Collector() as generic, Collector() as slack, Collector() as hook:
        env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": lf.url,
               "LANGFUSE_FLUSH_INTERVAL": "0.05", "GENERIC_LOGGER_ENDPOINT": generic.url + "/log",
               "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05", "SLACK_WEBHOOK_URL": slack.url + "/slack",
               "WEBHOOK_URL": hook.url + "/hook"}
        with start_gateway(config(f"sqlite:///{tmp_path / 'rg.db'}"), env=env) as gw, \
                httpx.Client(base_url=gw.url, timeout=20) as c:
            r = c.post("/v1/chat/completions", headers=AUTH,
                       json={"model": "m", "messages": [{"role": "user", "content": "a real request"}]})
            assert r.status_code == 200

            # LiteLLM's refusals
            r = c.get("/health/services", headers=AUTH)
            assert r.status_code == 400 and error_of(r) == "Service must be specified."
            r = c.get("/health/services", headers=AUTH, params={"service": "nope\x1b[31m"})
            assert r.status_code == 400
            assert error_of(r).startswith("Service must be in list. Service=nope\\x1b[31m not in [")
            assert "'langfuse'" in error_of(r) and "'slack'" in error_of(r)
            for hostile in ("\x00", "\r\nx", "a" * 5000, "%00", "\U0001f600", "langfuse\n", "LANGFUSE", " "):
                r = c.get("/health/services", headers=AUTH, params={"service": hostile})
                assert r.status_code == 400, (hostile, r.text)
            r = c.get("/health/services", headers=AUTH, params={"service": "datadog"})
            assert r.status_code == 400
            assert error_of(r) == ("Service=datadog is not configured as a callback, add it to "
                                   "litellm_settings.callbacks.")
            for service in ("email", "ms_teams"):
                r = c.get("/health/services", headers=AUTH, params={"service": service})
                assert r.status_code == 422
                assert error_of(r) == f'"{service}" not in proxy config: general_settings. Unable to test this.'
            r = c.get("/health/services", params={"service": "langfuse"})
            assert r.status_code == 401
            key = c.post("/key/generate", headers=AUTH, json={"key_alias": "plain"}).json()["key"]
            r = c.get("/health/services", headers={"Authorization": f"Bearer {key}"}, params={"service": "slack"})
            assert r.status_code == 401 and "Only proxy admin" in error_of(r)

            # a callback: the key check, then the mock record to that exporter alone
            r = c.get("/health/services", headers=AUTH, params={"service": "langfuse"})
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "success", "message": "Mock LLM request made - check langfuse."}
            assert lf.gets == [("/api/public/projects", 200)]
            mock = wait(lambda: [e for e in lf.accepted if e["type"] == "generation-create"
                                 and e["body"].get("model") == MOCK_MODEL])
            assert len(mock) == 1
            assert MOCK_PROMPT in str(mock[0]["body"]["input"]) and MOCK_ANSWER in str(mock[0]["body"]["output"])
            traces = [e for e in lf.accepted if e["type"] == "trace-create"
                      and e["body"].get("id") == mock[0]["body"].get("traceId")]
            assert traces and traces[0]["body"].get("userId") == MOCK_USER
            real = wait(lambda: [e for e in generic.entries() if e.get("model") != MOCK_MODEL])
            assert len(real) == 1  # the real request's entry; the langfuse test went to langfuse only
            r = c.get("/health/services", headers=AUTH, params={"service": "generic_api"})
            assert r.json() == {"status": "success", "message": "Mock LLM request made - check generic_api."}
            mock = wait(lambda: [e for e in generic.entries() if e.get("model") == MOCK_MODEL])
            assert len(mock) == 1 and mock[0]["status"] == "success"
            r = c.get("/health/services", headers=AUTH, params={"service": "custom_callback_api"})
            assert r.status_code == 200  # LiteLLM's name for the generic webhook
            assert wait(lambda: len([e for e in generic.entries() if e.get("model") == MOCK_MODEL]) == 2)
            r = c.get("/health/services", headers=AUTH, params={"service": "prometheus"})
            assert r.status_code == 200 and r.json()["status"] == "healthy"

            # alerting: a Low message per alert kind; the webhook's budget event for the caller
            r = c.get("/health/services", headers=AUTH, params={"service": "slack"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["alert_types"] == ["budget_alerts", "db_exceptions", "llm_exceptions"]
            assert body["message"] == "Mock Slack Alert sent, verify Slack Alert Received on your channel"
            texts = wait(lambda: [p.json()["text"] for p in slack.posts] if len(slack.posts) >= 3 else None)
            assert texts is not None and len(texts) == 3
            for wording in ("Budget Alert test alert", "DB Exception test alert", "LLM Exception test alert"):
                assert any(wording in t and "Level: `Low`" in t for t in texts), (wording, texts)
            r = c.get("/health/services", headers=AUTH, params={"service": "webhook"})
            assert r.json() == {"status": "success", "message": "Mock Webhook Alert sent, verify Webhook Alert Received"}
            events = wait(lambda: [p.json() for p in hook.posts])
            assert len(events) == 1
            assert events[0]["event"] == "budget_crossed" and events[0]["spend"] == 1.0
            assert events[0]["max_budget"] == 0.0 and events[0]["event_group"] == "key"

            # the tests made no spend row and no request metric
            rows = wait(lambda: c.get("/spend/logs", headers=AUTH).json())
            assert [row["model"] for row in rows] != [] and all(MOCK_MODEL not in str(row) for row in rows)
            metrics = c.get("/metrics", headers=AUTH).text
            assert "litellm_proxy_total_requests_metric" in metrics and MOCK_MODEL not in metrics


def test_langfuse_keys_refused_send_nothing() -> None:
    with LangfuseServer(secret_key="sk-lf-other") as lf:
        env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": lf.url,
               "LANGFUSE_FLUSH_INTERVAL": "0"}
        sink = make_langfuse(ObserveSettings(success_callbacks=("langfuse",)), env, lambda e, n: None)
        gw = SimpleNamespace(exporters=SimpleNamespace(sinks=[sink]))

        async def main() -> None:
            with pytest.raises(GatewayError) as got:
                await send_test_record(gw, "langfuse")  # type: ignore[arg-type]
            assert got.value.status == 500
            assert got.value.message == "langfuse auth_check failed: HTTP 401"
            await sink.aclose()

        asyncio.run(main())
        assert lf.gets == [("/api/public/projects", 401)] and lf.requests == []


def test_a_failure_only_exporter_gets_a_failed_record() -> None:
    with Collector() as generic:
        env = {"GENERIC_LOGGER_ENDPOINT": generic.url + "/log", "DEFAULT_FLUSH_INTERVAL_SECONDS": "0"}
        sink = make_generic_api(ObserveSettings(failure_callbacks=("generic_api",)), env, lambda e, n: None)
        gw = SimpleNamespace(exporters=SimpleNamespace(sinks=[sink]))

        async def main() -> None:
            got = await send_test_record(gw, "generic_api")
            assert got["status"] == "success"
            await sink.aclose()

        asyncio.run(main())
        entries = generic.wait_entries(1)
        assert len(entries) == 1 and entries[0]["model"] == MOCK_MODEL and entries[0]["status"] == "failure"
