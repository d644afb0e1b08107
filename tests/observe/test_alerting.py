"""Alerter against a real local webhook server: each kind's JSON, rate limits, filters, routing, failures."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.alerting import DROPPED_EVENT, Alerter, make_alerter
from relaygate.observe.detail import Attempt, Detail
from relaygate.sinks import CompletionQueue, CompletionRecord, Outcome
from tests.observe.webhook_server import WebhookServer

T = TypeVar("T")

FAST = {"timeout": 3.0, "retries": 0, "backoff": 0.01, "tick": 0.02}


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner() as runner:
        return runner.run(asyncio.wait_for(coro, 30))


class Events:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, event: str, n: int) -> None:
        self.counts[event] = self.counts.get(event, 0) + n


def slack(hooks: WebhookServer, events: Events | None = None, *, path: str = "/slack", **kw: Any) -> Alerter:
    options = {**FAST, **{k: v for k, v in kw.items() if k not in ObserveSettings.__struct_fields__}}
    settings = ObserveSettings(alerting=("slack",), **{k: v for k, v in kw.items()
                                                        if k in ObserveSettings.__struct_fields__})
    a = make_alerter(settings, {"SLACK_WEBHOOK_URL": hooks.url(path)}, events, **options)
    assert a is not None
    return a


def rec(i: int = 0, **kw: Any) -> CompletionRecord:
    fields: dict[str, Any] = dict(
        call_id=f"c{i}", route="chat", stream=False, model="gpt-4o", model_group="gpt-4o", deployment_id="dep-1",
        provider="openai", upstream_model="gpt-4o-2024", key_hash="f" * 64, key_alias="prod-app", team_id="t1",
        user_id=None, status=200, outcome=Outcome.OK, prompt_tokens=1, completion_tokens=2, cache_read_tokens=0,
        cache_write_tokens=0, latency=0.5, ttft=None, overhead=0.001, cost=0.0, cache_hit=False, retries=0,
        fallbacks=0)
    fields.update(kw)
    return CompletionRecord(**fields)


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


async def quiet(hooks: WebhookServer, seconds: float = 0.15) -> None:
    """Let anything in flight arrive (used before asserting that nothing more was posted)."""
    await asyncio.sleep(seconds)


# -- each kind ------------------------------------------------------------------------------------------


def test_budget_alert_slack_json_and_once_per_ttl() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks)
            a.start()
            for _ in range(50):
                a.budget_crossed("key", "f" * 64, 12.0, 10.0, alias="prod-app")
            [body] = await hooks.wait_for("/slack", 1)
            assert set(body) == {"text"}
            text = body["text"]
            assert text.startswith("Level: `High`\nTimestamp: `")
            assert "Message: Key Budget: Budget Crossed\n Total Budget:`10.0`" in text
            assert "*key_alias:* `prod-app`" in text and "f" * 64 not in text
            a.budget_crossed("key", "f" * 64, 12.0, 5.0, soft=True, alias="prod-app")  # another event: sent
            a.budget_crossed("team", "t1", 9.0, 10.0, alias="Research")  # 10% left: threshold crossed
            a.budget_crossed("team", "t2", 1.0, 10.0)  # far from its budget: nothing
            bodies = await hooks.wait_for("/slack", 3)
            await quiet(hooks)
            assert len(hooks.on("/slack")) == 3
            assert "Soft Budget Crossed: Total Soft Budget:`5.0`" in bodies[1]["text"]
            assert "Team Budget: 15% Threshold Crossed" in bodies[2]["text"]
            assert "*team_alias:* `Research`" in bodies[2]["text"]
            assert a.stats()["suppressed"] == 49
            await a.aclose()
    run(main())


def test_budget_alert_generic_webhook_event() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = make_alerter(ObserveSettings(alerting=("webhook",)), {"WEBHOOK_URL": hooks.url("/wh")}, None, **FAST)
            assert a is not None and a.kinds == {"budget_alerts"}
            a.start()
            a.budget_crossed("user", "u-1", 3.0, 2.5)
            a.budget_crossed("key", "ab12", 2.0, 1.0, alias="ci")
            a.handle([rec(latency=1e6)])  # webhook mode carries budget events only, as LiteLLM's
            first, second = await hooks.wait_for("/wh", 2)
            assert first == {
                "spend": 3.0, "max_budget": 2.5, "soft_budget": None, "token": None, "customer_id": None,
                "user_id": "u-1", "team_id": None, "team_alias": None, "organization_id": None,
                "user_email": None, "key_alias": None, "projected_exceeded_date": None, "projected_spend": None,
                "event_group": "user", "event": "budget_crossed",
                "event_message": "User Budget: Budget Crossed\n Total Budget:`2.5`"}
            assert second["token"] == "ab12" and second["key_alias"] == "ci" and second["event_group"] == "key"
            await quiet(hooks)
            assert len(hooks.posts) == 2
            await a.aclose()
    run(main())


def test_slack_and_webhook_together() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            env = {"SLACK_WEBHOOK_URL": hooks.url("/slack"), "WEBHOOK_URL": hooks.url("/wh")}
            a = make_alerter(ObserveSettings(alerting=("slack", "webhook")), env, None, **FAST)
            assert a is not None
            a.budget_crossed("organization", "org-9", 100.0, 50.0)
            a.start()
            [s] = await hooks.wait_for("/slack", 1)
            [w] = await hooks.wait_for("/wh", 1)
            assert "Organization Budget: Budget Crossed" in s["text"] and w["organization_id"] == "org-9"
            await a.aclose()
    run(main())


def test_cooldown_alert_once_per_deployment_then_a_summary() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, window=0.3)
            a.start()
            for i in range(5):
                a.deployment_cooled_down("gpt-4o", "dep-1", "openai", "https://api.openai.com/v1",
                                         f"429 rate limited #{i}", 60.0)
            a.deployment_cooled_down("gpt-4o", "dep-2", "azure", "", "500 server error", 5.0)
            first, other = await hooks.wait_for("/slack", 2)
            text = first["text"]
            assert text.startswith("Level: `Low`")
            assert "Router: Cooling down Deployment:\nModel Group: `gpt-4o`\nDeployment: `dep-1`" in text
            assert "Provider: `openai`" in text and "API Base: `https://api.openai.com/v1`" in text
            assert "Cooldown Time: `60.0 seconds`" in text and "Reason: `429 rate limited #0`" in text
            assert "Deployment: `dep-2`" in other["text"] and "API Base: `default`" in other["text"]
            summary = (await hooks.wait_for("/slack", 3))[2]["text"]
            assert summary.startswith("[Num Alerts: 4]\n\nLevel: `Low`")
            assert "Reason: `429 rate limited #4`" in summary  # the latest occurrence
            await a.aclose()
    run(main())


def test_outage_alerts_database_and_redis_redacted() -> None:
    register_secrets(["pg-password-0123456789"])

    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alerting_args={"outage_alert_ttl": 30})
            a.start()
            for _ in range(20):
                a.outage("database", "connection refused: postgres://u:pg-password-0123456789@db/x")
            a.outage("redis", "Error 111 connecting to redis:6379.\nConnection refused.")
            db, redis = await hooks.wait_for("/slack", 2)
            assert "Message: DB read/write call failed: `connection refused: postgres://u:[redacted]@db/x`" in db["text"]
            assert "pg-password" not in db["text"]
            assert "Redis call failed: `Error 111 connecting to redis:6379.\\nConnection refused.`" in redis["text"]
            await quiet(hooks)
            assert len(hooks.posts) == 2
            await a.aclose()
            summary = hooks.on("/slack")[2]["text"]  # the summary owed is sent at shutdown
            assert summary.startswith("[Num Alerts: 19]") and "DB read/write call failed" in summary
    run(main())


def test_slow_and_exception_alerts_from_records() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alerting_threshold=2.0)
            a.start()
            detail = Detail("0" * 32, "0" * 16, error_message="upstream said: Internal error <@U123>",
                            attempts=[Attempt("dep-1", "gpt-4o", "openai", "gpt-4o", "https://api.example/v1", 0.0,
                                              1.0, 502)],
                            metadata={"alerting_metadata": {"owner": "ml-team"}}, team_alias="Research")
            a.handle([
                rec(1, latency=1.0),                                      # fast: nothing
                rec(2, latency=3.25),                                     # slow
                rec(3, latency=9.0),                                      # slow again, same group: held
                rec(4, status=400, outcome=Outcome.ERROR, error_type="invalid_request_error"),  # client's fault
                rec(5, status=499, outcome=Outcome.CLIENT_GONE),          # client gone: nothing
                rec(6, status=502, outcome=Outcome.ERROR, error_type="api_error", extra={"observe": detail}),
            ])
            slow, exc = await hooks.wait_for("/slack", 2)
            text = slow["text"]
            assert text.startswith("Level: `Low`")
            assert "`Responses are slow - 3.25s response time > Alerting threshold: 2.0s`" in text
            assert "Request Model: `gpt-4o`" in text and "Key Alias: `prod-app`" in text and "f" * 64 not in text
            text = exc["text"]
            assert text.startswith("Level: `High`")
            assert "LLM API call failed: `upstream said: Internal error &lt;@U123&gt;`\nStatus: `502`" in text
            assert "API Base: `https://api.example/v1`" in text and "Team: `Research`" in text
            assert "*Alerting Metadata*:\nowner: `ml-team`" in text
            await quiet(hooks)
            assert len(hooks.posts) == 2
            a.handle([rec(7, status=599, outcome=Outcome.STREAM_BROKEN, model_group="claude",
                          error_type="api_error")])
            [*_, broken] = await hooks.wait_for("/slack", 3)
            assert "stream broken after the first frame" in broken["text"]
            await a.aclose()
    run(main())


def test_outage_alerts_per_deployment() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alert_types=("outage_alerts",), alerting_args={"minor_outage_alert_threshold": 2,
                                                                            "major_outage_alert_threshold": 4})
            a.start()
            detail = Detail("0" * 32, "0" * 16, attempts=[Attempt("dep-1", "gpt-4o", "openai", "gpt-4o",
                                                                  "https://eu.example/v1", 0.0, 1.0, 503)])
            a.handle([rec(i, status=503 if i % 2 else 408, outcome=Outcome.ERROR, extra={"observe": detail},
                          deployment_id="", failed_attempts=(("dep-1", 503 if i % 2 else 408, "APIError"),))
                      for i in range(10)])
            a.handle([rec(99, status=503, outcome=Outcome.ERROR, failed_attempts=(("dep-2", 503, "x"),))])  # one
            a.handle([rec(98, status=400, outcome=Outcome.ERROR, failed_attempts=(("dep-3", 400, "x"),) * 9)])  # 4xx
            a.handle([rec(97, status=200, failed_attempts=(("dep-4", 500, "x"),) * 9)])  # retried, then answered
            minor, major = await hooks.wait_for("/slack", 2)
            assert minor["text"].startswith("Level: `Medium`") and "*⚠️ Minor Service Outage*" in minor["text"]
            assert "*Deployment:* `dep-1`" in minor["text"] and "*API Base:* `https://eu.example/v1`" in minor["text"]
            assert "Timeout Errors: 1\nAPI Errors: 1" in minor["text"]
            assert major["text"].startswith("Level: `High`") and "*⚠️ Major Service Outage*" in major["text"]
            await quiet(hooks)
            posts = await hooks.wait_for("/slack", 4)  # dep-4's failed attempts count though a retry answered
            assert len(hooks.posts) == 4 and all("*Deployment:* `dep-4`" in p["text"] for p in posts[2:])
            await a.aclose()
    run(main())


def test_client_chosen_model_name_is_escaped() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks)
            a.start()
            a.handle([rec(model="x<!channel>\n`y` Bearer sk-secretsecret", model_group="", status=500,
                          outcome=Outcome.ERROR, deployment_id="")])
            [body] = await hooks.wait_for("/slack", 1)
            assert "Request Model: `x&lt;!channel&gt;\\n'y' Bearer [redacted]`" in body["text"]
            assert "sk-secretsecret" not in body["text"]
            await a.aclose()
    run(main())


def test_alerter_as_a_completion_queue_sink() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alerting_threshold=0.1)
            q = CompletionQueue(delay=0)
            q.add_sink(a)
            q.start()
            a.start()
            q.put(rec(latency=0.2))
            [body] = await hooks.wait_for("/slack", 1)
            assert "Responses are slow" in body["text"]
            await until(lambda: a.stats()["sent"] == 1)
            await q.aclose()  # closes its sinks: the alerter too
            assert a._closed
    run(main())


# -- filters and routing --------------------------------------------------------------------------------


def test_alert_types_filter() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alert_types=("budget_alerts",), alerting_threshold=0.0)
            a.start()
            a.handle([rec(latency=100.0), rec(status=500, outcome=Outcome.ERROR)])
            a.deployment_cooled_down("g", "d", "p", "", "r", 1.0)
            a.outage("database", "down")
            a.budget_crossed("key", "k", 2.0, 1.0)
            [body] = await hooks.wait_for("/slack", 1)
            await quiet(hooks)
            assert len(hooks.posts) == 1 and "Key Budget" in body["text"]
            await a.aclose()
    run(main())


def test_alert_to_webhook_url_routing() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            settings = ObserveSettings(alerting=("slack",), alerting_threshold=1.0, alert_to_webhook_url={
                "llm_too_slow": hooks.url("/slow"),
                "budget_alerts": [hooks.url("/b1"), "os.environ/B2"]})
            env = {"SLACK_WEBHOOK_URL": hooks.url("/default"), "B2": hooks.url("/b2")}
            a = make_alerter(settings, env, None, **FAST)
            assert a is not None
            a.start()
            a.handle([rec(latency=5.0)])
            a.budget_crossed("key", "k", 2.0, 1.0)
            a.outage("redis", "down")
            [slow] = await hooks.wait_for("/slow", 1)
            [b1] = await hooks.wait_for("/b1", 1)
            [b2] = await hooks.wait_for("/b2", 1)
            [other] = await hooks.wait_for("/default", 1)
            assert "Responses are slow" in slow["text"] and b1 == b2 and "Redis call failed" in other["text"]
            await quiet(hooks)
            assert len(hooks.posts) == 4
            await a.aclose()
    run(main())


# -- failures -------------------------------------------------------------------------------------------


def test_hanging_webhook_never_blocks_and_stays_bounded() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            hooks.set_mode("/hang", "hang")
            events = Events()
            a = slack(hooks, events, path="/hang", queue_size=20, timeout=0.2)
            a.start()
            t0 = time.perf_counter()
            for i in range(2000):
                a.budget_crossed("key", f"k{i}", 2.0, 1.0)  # distinct entities: 2000 distinct alerts
                a.outage("database", f"down {i}")
            elapsed = time.perf_counter() - t0
            assert elapsed < 5.0, elapsed  # ~µs per call: never the hung webhook's wait (a loaded CI pauses)
            assert a.stats()["queued"] <= 20
            await hooks.wait_attempts("/hang", 1)
            t0 = time.perf_counter()
            await a.aclose(timeout=0.3)
            assert time.perf_counter() - t0 < 2.0
            # every alert admitted was either sent or counted as dropped (the outage ones: one, then a summary)
            assert a.stats()["sent"] == 0
            assert events.counts[DROPPED_EVENT] == a.stats()["dropped"] == 2000 + 2
    run(main())


def test_failing_webhook_is_retried_then_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            hooks.set_mode("/slack", "500")
            events = Events()
            a = slack(hooks, events, retries=2)
            a.start()
            with caplog.at_level(logging.WARNING, "relaygate.alerting"):
                a.budget_crossed("key", "k", 2.0, 1.0)
                await hooks.wait_attempts("/slack", 3)
                for i in range(5):
                    a.budget_crossed("key", f"other{i}", 2.0, 1.0)
                await hooks.wait_attempts("/slack", 18)
                await until(lambda: a.stats()["dropped"] == 6)
                assert events.counts[DROPPED_EVENT] == 6
                lines = [r for r in caplog.records if "dropped" in r.getMessage()]
                assert len(lines) == 1  # the first at once; the rest wait for the minute (or shutdown)
                assert "HTTP 500" in lines[0].getMessage() and "/slack" not in lines[0].getMessage()
                await a.aclose()
                lines = [r for r in caplog.records if "dropped" in r.getMessage()]
                assert len(lines) == 2 and "5 alert(s) dropped" in lines[1].getMessage()
            assert hooks.attempts["/slack"] == 18
    run(main())


def test_retry_succeeds_after_a_429() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            hooks.set_mode("/slack", "429")
            a = slack(hooks, retries=3, backoff=0.05)
            a.start()
            a.outage("database", "down")
            await hooks.wait_attempts("/slack", 1)
            hooks.set_mode("/slack", "ok")
            [body] = await hooks.wait_for("/slack", 1)
            assert "DB read/write call failed" in body["text"]
            await until(lambda: a.stats()["sent"] == 1)
            assert a.stats()["dropped"] == 0
            await a.aclose()
    run(main())


def test_unreachable_webhook() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            url = hooks.url("/x")
        events = Events()  # the server is gone: connection refused
        a = make_alerter(ObserveSettings(alerting=("slack",)), {"SLACK_WEBHOOK_URL": url}, events, **FAST)
        assert a is not None
        a.start()
        a.outage("redis", "down")
        await until(lambda: a.stats()["dropped"] == 1)
        assert events.counts == {DROPPED_EVENT: 1}
        await a.aclose()
    run(main())


# -- lifecycle ------------------------------------------------------------------------------------------


def test_alerts_before_start_wait_and_after_close_are_dropped() -> None:
    events = Events()
    # built and triggered outside any loop (config load time): the alert waits, bounded
    a = Alerter(slack_routes={"db_exceptions": ["http://127.0.0.1:9/x"]}, on_event=events, queue_size=3, **FAST)
    for i in range(5):
        a.outage(f"c{i}", "down")
    assert a.stats()["queued"] == 3 and events.counts[DROPPED_EVENT] == 2

    async def main() -> None:
        async with WebhookServer() as hooks:
            b = Alerter(slack_routes={"db_exceptions": [hooks.url("/s")]}, on_event=events, **FAST)
            b.outage("database", "down")  # inside a running loop: starts itself
            await hooks.wait_for("/s", 1)
            await b.aclose()
            b.outage("redis", "down")
            assert b.stats()["dropped"] == 1
            await b.aclose()  # idempotent
    run(main())


def test_queued_before_start_sent_by_aclose_and_rebinds_to_a_new_loop() -> None:
    async def main() -> None:
        async with WebhookServer() as hooks:
            a = Alerter(slack_routes={"db_exceptions": [hooks.url("/s")]}, **FAST)
            await asyncio.to_thread(a.outage, "database", "down")  # no loop in that thread: queued
            assert a.stats()["queued"] == 1
            await a.aclose()  # never started: starts, then drains
            assert len(hooks.on("/s")) == 1 and a.stats()["sent"] == 1

            b = Alerter(slack_routes={"db_exceptions": [hooks.url("/s")]}, **FAST)
            await asyncio.to_thread(run, _trigger(b, "redis"))  # started on a loop that then ends
            b.outage("database", "down again")  # this loop: bound afresh
            await hooks.wait_for("/s", 3)
            await b.aclose()
    run(main())


async def _trigger(a: Alerter, component: str) -> None:
    a.outage(component, "down")
    await until(lambda: a.stats()["sent"] == 1)


def test_triggers_never_raise() -> None:
    a = Alerter(slack_routes={k: ["http://127.0.0.1:9/x"] for k in
                              ("budget_alerts", "cooldown_deployment", "db_exceptions", "llm_too_slow")})
    a.budget_crossed("key", "k", None, 1.0)  # type: ignore[arg-type]
    a.deployment_cooled_down("g", "d", "p", "", "r", "soon")  # type: ignore[arg-type]
    a.handle([None])  # type: ignore[list-item]
    a.handle(None)  # type: ignore[arg-type]


def test_suppressed_triggers_format_nothing() -> None:
    a = Alerter(slack_routes={"budget_alerts": ["http://127.0.0.1:9/x"]})
    for _ in range(10_000):
        a.budget_crossed("key", "k", 2.0, 1.0)
    assert a.stats()["queued"] == 1 and a.stats()["suppressed"] == 9_999


def test_budget_flood_is_bounded_and_counted() -> None:
    events = Events()
    a = Alerter(slack_routes={"budget_alerts": ["http://127.0.0.1:9/x"]}, on_event=events, budget_keys=10)
    for _ in range(3):
        for i in range(100):
            a.budget_crossed("user", f"u{i}", 2.0, 1.0)
    assert a.stats()["queued"] == 10 and a.stats()["keys"] == 10
    assert events.counts[DROPPED_EVENT] == 270  # every refused occurrence is visible


def test_region_outage_alerts_need_several_deployments_of_one_region() -> None:
    """LiteLLM's ``region_outage_alerts``: failures (408, 5xx) of the deployments in one provider region, counted
    together in ``region_outage_alert_ttl``; minor then major at the outage thresholds, only once more than one
    deployment failed (one bad deployment is ``outage_alerts``' business). The region is each deployment's
    ``region_name``, or its provider's own (Bedrock's ``aws_region_name``, Vertex AI's ``vertex_location`` or
    ``VERTEXAI_LOCATION``); a deployment without one counts towards no region."""
    from relaygate.config import from_litellm

    async def main() -> None:
        async with WebhookServer() as hooks:
            a = slack(hooks, alert_types=("region_outage_alerts",),
                      alerting_args={"minor_outage_alert_threshold": 3, "major_outage_alert_threshold": 5,
                                     "region_outage_alert_ttl": 600})
            cfg = from_litellm({"model_list": [
                {"model_name": "g", "litellm_params": {"model": "bedrock/anthropic.claude-3", "aws_region_name":
                                                       "us-east-1"}, "model_info": {"id": "b-1"}},
                {"model_name": "g", "litellm_params": {"model": "bedrock/anthropic.claude-3", "aws_region_name":
                                                       "us-east-1"}, "model_info": {"id": "b-2"}},
                {"model_name": "v", "litellm_params": {"model": "vertex_ai/gemini-1.5-pro"},
                 "model_info": {"id": "v-1"}},
                {"model_name": "o", "litellm_params": {"model": "openai/gpt-4o", "region_name": "eu"},
                 "model_info": {"id": "o-1"}},
                {"model_name": "n", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {"id": "n-1"}}]},
                "<test>")
            a.know_deployments(cfg.deployments, {"VERTEXAI_LOCATION": "europe-west4"})
            assert a.regions == {"b-1": ("bedrock", "us-east-1"), "b-2": ("bedrock", "us-east-1"),
                                 "v-1": ("vertex_ai", "europe-west4"), "o-1": ("openai", "eu")}
            a.start()
            def failed(dep: str, status: int = 503) -> dict[str, Any]:
                return {"outcome": Outcome.ERROR, "status": status, "deployment_id": "",
                        "failed_attempts": ((dep, status, "APIError"),)}

            a.handle([rec(i, **failed("v-1")) for i in range(6)])  # one deployment only
            a.handle([rec(9, **failed("n-1", 500))] * 6)  # no region
            await quiet(hooks)
            assert hooks.posts == []
            a.handle([rec(20, **failed("b-1")), rec(21, **failed("b-2", 408))])
            await quiet(hooks)
            assert hooks.posts == []  # 2 failures
            a.handle([rec(22, **failed("b-1"))])
            [minor] = await hooks.wait_for("/slack", 1)
            assert minor["text"].startswith("Level: `Medium`") and "*⚠️ Minor Service Outage*" in minor["text"]
            assert "*Region Name:* `us-east-1`" in minor["text"] and "*Provider:* `bedrock`" in minor["text"]
            assert "Timeout Errors: 1\nAPI Errors: 2" in minor["text"]
            a.handle([rec(23, **failed("b-2"))] * 2)
            _, major = await hooks.wait_for("/slack", 2)
            assert major["text"].startswith("Level: `High`") and "*⚠️ Major Service Outage*" in major["text"]
            a.handle([rec(22, **failed("b-1"))] * 5)  # sent once per window
            await quiet(hooks)
            assert len(hooks.posts) == 2
            await a.aclose()
    run(main())
