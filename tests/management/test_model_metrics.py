"""LiteLLM's model analytics (``management.model_metrics``) on SQLite and a real PostgreSQL server: spend rows
written by the spend writer, read back per deployment as ``/model/metrics`` (seconds per output token),
``/model/streaming_metrics`` (time to first token, per day and per request), ``/model/metrics/slow_responses``
and ``/model/metrics/exceptions``; deployments named as LiteLLM names them; the filters, the range, bad
queries and callers that are not the admin's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import spend_values
from relaygate.store import hash_token
from relaygate.store.spend import write_spend_values
from tests.management.conftest import Env, api_error, run
from tests.spend.helpers import record

AZURE = "https://res.openai.azure.com/openai/deployments/gpt-4o"
MODELS = [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-up-1",
                                                   "api_base": AZURE + "?api-version=2024"}},
          {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-up-2",
                                                   "api_base": "http://127.0.0.1:9/v1"}},
          {"model_name": "other", "litellm_params": {"model": "mock/echo"}}]


def _deployments(env: Env) -> dict[str, str]:
    """Upstream model -> deployment id of the configured ``gpt`` group."""
    return {t.upstream_model: t.dep.id for t in env.gw.runtime.router.groups["gpt"].targets}


def _row(env: Env, i: int, dep: str, model: str, *, ago: float = 0.0, latency: float = 0.2, completion: int = 5,
         ttft: float | None = None, hit: bool = False, status: int = 200, error_class: str = "",
         key: str | None = None, customer: str | None = None) -> tuple[Any, ...]:
    r: CompletionRecord = record(i, key=key, customer=customer, deployment=dep, completion=completion,
                                 start=time.time() - ago - 1, outcome=Outcome.OK if status == 200 else Outcome.ERROR)
    r.upstream_model, r.latency, r.ttft, r.cache_hit, r.status = model, latency, ttft, hit, status
    r.stream = ttft is not None
    if error_class:
        r.error_class = error_class
    return spend_values(r, env.store.dialect)


def _today() -> str:
    return datetime.fromtimestamp(time.time() - 1, UTC).strftime("%Y-%m-%d")  # the rows' day (they start 1 s ago)


def test_model_analytics(db_url: str) -> None:
    async def body(env: Env) -> None:
        key = await env.user("u1", key_alias="k-one")
        h = hash_token(key)
        dep = _deployments(env)
        big, mini = dep["gpt-4o"], dep["gpt-4o-mini"]
        rows = [
            _row(env, 0, big, "gpt-4o", latency=0.2, completion=5, key=h),  # 0.04 s a token
            _row(env, 1, big, "gpt-4o", latency=0.6, completion=5, ttft=0.3, customer="c1"),  # 0.12
            _row(env, 2, mini, "gpt-4o-mini", latency=0.1, completion=10, ttft=0.05),  # 0.01
            _row(env, 3, mini, "gpt-4o-mini", latency=0.9, completion=0),  # no output: not counted
            _row(env, 4, big, "gpt-4o", latency=50.0, completion=5, hit=True, ttft=9.0),  # a hit: left out
            _row(env, 5, big, "gpt-4o", latency=400.0, completion=100),  # slow (over 300 s), 4 s a token
            _row(env, 6, big, "gpt-4o", status=429, error_class="RateLimitError"),
            _row(env, 7, big, "gpt-4o", status=429, error_class="RateLimitError", hit=False),
            _row(env, 8, mini, "gpt-4o-mini", status=500),
            _row(env, 9, big, "gpt-4o", ago=40 * 86400, latency=5.0, completion=1),  # out of range
            _row(env, 10, "gone-deployment", "old-model", latency=0.3, completion=3, ttft=0.2),
        ]
        assert await write_spend_values(env.store, rows) == len(rows)
        q = "_selected_model_group=gpt"

        m = await env.ok("GET", f"/model/metrics?{q}")
        assert m["all_api_bases"] == sorted(["https://res.openai.azure.com", "gpt-4o-mini", "old-model"])
        [day] = m["data"]
        assert day["date"] == _today()
        # the https deployment's answers (not its failures, not its hit): (0.04 + 0.12 + 4.0) / 3
        assert day["https://res.openai.azure.com"] == pytest.approx((0.2 / 5 + 0.6 / 5 + 400.0 / 100) / 3)
        assert day["gpt-4o-mini"] == pytest.approx(0.1 / 10)
        assert day["old-model"] == pytest.approx(0.1)
        only_key = await env.ok("GET", f"/model/metrics?{q}&api_key={key}")
        assert only_key["data"] == [{"date": _today(), "https://res.openai.azure.com": pytest.approx(0.04)}]
        assert (await env.ok("GET", f"/model/metrics?{q}&api_key={h}"))["data"] == only_key["data"]
        by_customer = await env.ok("GET", f"/model/metrics?{q}&customer=c1&api_key=undefined")
        assert by_customer["data"] == [{"date": _today(), "https://res.openai.azure.com": pytest.approx(0.12)}]
        old = (datetime.now(UTC) - timedelta(days=45)).strftime("%Y-%m-%d")
        wide = await env.ok("GET", f"/model/metrics?{q}&startTime={old}&endTime={_today()}")
        assert len(wide["data"]) == 2 and wide["data"][0]["https://res.openai.azure.com"] == pytest.approx(5.0)

        s = await env.ok("GET", f"/model/streaming_metrics?{q}")
        assert s["data"] == [{"date": _today(), "https://res.openai.azure.com": pytest.approx(0.3),
                              "gpt-4o-mini": pytest.approx(0.05), "old-model": pytest.approx(0.2)}]
        one = await env.ok("GET", f"/model/streaming_metrics?{q}&startTime={_today()}&endTime={_today()}")
        assert sorted(one["data"], key=lambda e: e["date"]) == [
            {"date": "call-1", "https://res.openai.azure.com": pytest.approx(0.3)},
            {"date": "call-10", "old-model": pytest.approx(0.2)},
            {"date": "call-2", "gpt-4o-mini": pytest.approx(0.05)}]

        slow = await env.ok("GET", f"/model/metrics/slow_responses?{q}")
        assert slow == [{"api_base": "https://res.openai.azure.com", "total_count": 5, "slow_count": 1},
                        {"api_base": "http://127.0.0.1:9/v1", "total_count": 3, "slow_count": 0},
                        {"api_base": "", "total_count": 1, "slow_count": 0}]

        e = await env.ok("GET", f"/model/metrics/exceptions?{q}")
        assert e == {"data": [{"model": "gpt-4o-https://res.openai.azure.com/openai/deployments/gpt-4o",
                               "total_exceptions": 2, "RateLimitError": 2},
                              {"model": "gpt-4o-mini-http://127.0.0.1:9/v1", "total_exceptions": 1,
                               "InternalServerError": 1}],
                     "exception_types": ["InternalServerError", "RateLimitError"]}
        assert (await env.ok("GET", "/model/metrics/exceptions?_selected_model_group=other"))["data"] == []

        edge = await env.ok("GET", f"/model/metrics?{q}&startTime=0001-01-01&endTime=9999-12-31")
        assert len(edge["data"]) == 2
        for path in ("/model/metrics?startTime=0001-01-01T00:00:00%2B05:00",  # the ends of time, offsets past them
                     "/model/streaming_metrics?startTime=9999-12-31&endTime=9999-12-31",
                     "/model/metrics/slow_responses?endTime=9999-12-31T23:59:59-05:00"):
            assert (await env.call("GET", f"{path}&{q}")).status == 200, path
        at = await env.ok("GET", f"/model/metrics?{q}&startTime=2020-01-01T00:00:00Z&endTime=2020-01-02T00:00:00")
        assert at == {"data": [], "all_api_bases": []}
        api_error(await env.call("GET", "/model/metrics"), 400, "_selected_model_group is required")
        api_error(await env.call("GET", "/model/streaming_metrics?_selected_model_group=undefined"), 400,
                  "_selected_model_group")
        api_error(await env.call("GET", f"/model/metrics?{q}&startTime=yesterday"), 400, "startTime")
        api_error(await env.call("GET", f"/model/metrics/exceptions?{q}&startTime=2026-02-01&endTime=2026-01-01"),
                  400, "is after endTime")
        for path in ("/model/metrics", "/model/streaming_metrics", "/model/metrics/slow_responses",
                     "/model/metrics/exceptions"):
            api_error(await env.call("GET", f"{path}?{q}", key=key), 401, "Only proxy admin")

    run(db_url, body, model_list=MODELS)
