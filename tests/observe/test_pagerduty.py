"""LiteLLM's PagerDuty alerting: a critical incident when the failures or the hanging requests of a window reach the
threshold, posted to a real stand-in of PagerDuty's Events API; its settings; and through a real
``relaygate serve`` (failing and hanging requests)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe.pagerduty import PagerDuty, make_pagerduty, watch_hanging
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe.collector_server import Collector, record

KEY = "pd-routing-key-0123456789abcdef"


def env_for(c: Collector) -> dict[str, str]:
    return {"PAGERDUTY_API_KEY": KEY, "RELAYGATE_PAGERDUTY_URL": c.url + "/v2/enqueue"}


def test_settings() -> None:
    pd = make_pagerduty({}, {"PAGERDUTY_API_KEY": KEY}, None)
    assert pd.url == "https://events.pagerduty.com/v2/enqueue" and pd.failure_window == 60.0
    assert pd.hanging_threshold == 60.0 and pd.hanging_window == 600.0
    with pytest.raises(ConfigError, match="PAGERDUTY_API_KEY"):
        make_pagerduty({}, {}, None)
    with pytest.raises(ConfigError, match="PAGERDUTY_API_KEY"):  # serve and check-config refuse before any worker
        check(ObserveSettings(alerting=("pagerduty",)), {})
    for bad in ({"failure_threshold": -1}, {"failure_threshold": 2.5}, {"hanging_threshold_seconds": "x"},
                {"failure_threshold_window_seconds": True}):
        with pytest.raises(ConfigError, match="alerting_args"):
            make_pagerduty(bad, {"PAGERDUTY_API_KEY": KEY}, None)


class Exchange:
    """What :func:`watch_hanging` reads of a request in flight (hashable, as the pipeline's exchanges are)."""

    def __init__(self, t0: float, done: bool, who: Any) -> None:
        self.t0, self.done, self.who = t0, done, who


def failed(i: int) -> Any:
    return record(call_id=f"c{i}", status=429, outcome=Outcome.ERROR, error_type="rate_limit_error",
                  error_class="Openai.RateLimitError")


def test_failures_in_a_window_trigger_one_incident() -> None:
    now = [1000.0]
    with Collector(status=202) as c:
        pd = PagerDuty(KEY, {"failure_threshold": 3, "failure_threshold_window_seconds": 10.0,
                             "hanging_threshold_seconds": 60.0, "hanging_threshold_fails": 60,
                             "hanging_threshold_window_seconds": 600.0}, url=c.url + "/v2/enqueue",
                       clock=lambda: now[0])

        async def main() -> None:
            pd.handle([failed(1), record(call_id="ok")])  # an answered request is no event
            now[0] += 11.0  # the first failure leaves the window
            pd.handle([failed(2), failed(3)])
            await asyncio.sleep(0.2)
            assert c.posts == []
            pd.handle([failed(4)])  # three within ten seconds: the incident
            pd.handle([failed(5), failed(6)])  # the window started empty again
            await pd.aclose()

        asyncio.run(main())
        [post] = c.posts
        body = post.json()
        assert body["routing_key"] == KEY and body["event_action"] == "trigger"
        payload = body["payload"]
        assert payload["summary"] == "High LLM API Failure Rate: 3 in the last 10 seconds."
        assert (payload["severity"], payload["source"], payload["component"]) == ("critical", "LiteLLM Alert",
                                                                                 "LiteLLM")
        recent = payload["custom_details"]["recent_errors"]
        assert [e["error_code"] for e in recent] == ["429", "429", "429"]
        assert recent[0]["error_class"] == "Openai.RateLimitError" and recent[0]["failure_event_type"] == "failed_response"
        assert recent[0]["user_api_key_hash"] == "ab" * 32 and recent[0]["error_llm_provider"] == "openai"
        assert pd.sent == 1 and pd.dropped == 0


def test_hanging_requests_and_a_refusing_endpoint() -> None:
    with Collector(status=400) as c:
        events: list[tuple[str, int]] = []
        pd = PagerDuty(KEY, {"failure_threshold": 60, "failure_threshold_window_seconds": 60.0,
                             "hanging_threshold_seconds": 0.05, "hanging_threshold_fails": 2,
                             "hanging_threshold_window_seconds": 60.0}, url=c.url + "/v2/enqueue",
                       on_event=lambda e, n: events.append((e, n)))
        who = SimpleNamespace(key_hash="cd" * 32, key_alias="k", team_id="t", user_id="u")
        t0 = time.perf_counter()
        hangs = {Exchange(t0, False, who): False, Exchange(t0, True, who): False, Exchange(t0, False, None): False}

        async def main() -> None:
            task = asyncio.ensure_future(watch_hanging(hangs, pd))
            for _ in range(1000):  # at most 20 s on a loaded machine
                if c.requests:
                    break
                await asyncio.sleep(0.02)
            task.cancel()
            await pd.aclose()

        asyncio.run(main())
        assert c.requests == 1  # refused (400): dropped, counted, not retried
        assert pd.dropped == 1 and events == [("pagerduty_dropped", 1)]


@pytest.mark.e2e
def test_through_relaygate_serve() -> None:
    cfg = """model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
  - model_name: slow
    litellm_params: {model: mock/echo, mock_latency_ms: 1500}
general_settings:
  master_key: sk-pd
  alerting: ["pagerduty"]
  alerting_args: {failure_threshold: 2, failure_threshold_window_seconds: 30, hanging_threshold_seconds: 0.3,
                  hanging_threshold_fails: 1, hanging_threshold_window_seconds: 30}
"""
    with Collector(status=202) as c, start_gateway(cfg, env=env_for(c)) as gw:
        auth = {"Authorization": "Bearer sk-pd"}
        for _ in range(2):
            r = httpx.post(gw.url + "/v1/chat/completions", headers=auth, timeout=20,
                           json={"model": "m", "messages": [{"role": "user", "content": "x"}],
                                 "mock_response": "litellm.RateLimitError"})
            assert r.status_code == 429
        r = httpx.post(gw.url + "/v1/chat/completions", headers=auth, timeout=20,
                       json={"model": "slow", "messages": [{"role": "user", "content": "wait"}]})
        assert r.status_code == 200
        deadline = time.monotonic() + 15
        while len(c.posts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        summaries = sorted(p.json()["payload"]["summary"] for p in c.posts)
        assert summaries == ["High LLM API Failure Rate: 2 in the last 30 seconds.",
                             "High Number of Hanging LLM Requests: 1 in the last 30 seconds."]
        assert KEY not in gw.log()
