"""``/global/activity/overview`` end to end: a real ``relaygate serve`` on SQLite and on a real PostgreSQL
server, real mock upstreams (one slow and healthy, one answering 500), traffic through the openai SDK from
the master key and from an internal user's key; the overview's numbers are checked exactly against the spend
logs the gateway wrote (requests, errors, spend, tokens, percentiles of the rows' latencies), the internal
user sees only its own traffic, and LiteLLM's ``/global/activity`` and ``/global/activity/model`` agree."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bench.procs import start_mock
from tests.conftest import start_gateway
from tests.pg import PostgresServer
from tests.ui.test_activity import percentile_cont

pytestmark = pytest.mark.e2e

MASTER = "sk-activity-master"
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def _latency_ms(row: dict[str, Any]) -> float:
    start = datetime.fromisoformat(row["startTime"])
    end = datetime.fromisoformat(row["endTime"])
    return (end - start).total_seconds() * 1000


def _send(url: str, key: str, model: str, n: int) -> int:
    """``n`` chat requests through the openai SDK (no SDK retries); how many failed."""
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)
    failed = 0
    for i in range(n):
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hello {i}"}])
        except openai.APIStatusError:
            failed += 1
    return failed


def _logs(url: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        rows: list[dict[str, Any]] = httpx.get(url + "/spend/logs", headers=ADMIN).json()
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _overview(url: str, headers: dict[str, str], **params: str) -> dict[str, Any]:
    r = httpx.get(url + "/global/activity/overview", headers=headers, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'activity.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def test_overview_matches_the_spend_logs(database_url: str) -> None:
    with start_mock(name="slow", latency_ms=30) as slow, start_mock(name="down", fault_500=1.0) as down:
        config = f"""
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{slow.openai_base}"}}
  - model_name: broken
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{down.openai_base}"}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
"""
        with start_gateway(config) as gw:
            u = httpx.post(gw.url + "/user/new", headers=ADMIN, json={"user_role": "internal_user"})
            assert u.status_code == 200, u.text
            k = httpx.post(gw.url + "/key/generate", headers=ADMIN,
                           json={"user_id": u.json()["user_id"], "key_alias": "user-key"})
            assert k.status_code == 200, k.text
            user_key, user_token = k.json()["key"], k.json()["token"]

            day0 = datetime.now(UTC).date().isoformat()  # the range spans midnight if the test does
            assert _send(gw.url, MASTER, "gpt", 5) == 0
            assert _send(gw.url, MASTER, "broken", 3) == 3
            assert _send(gw.url, user_key, "gpt", 4) == 0
            assert _send(gw.url, user_key, "broken", 1) == 1
            rows = _logs(gw.url, 13)
            assert len(rows) == 13
            today = datetime.now(UTC).date().isoformat()
            one_day = day0 == today

            body = _overview(gw.url, ADMIN, start_date=day0, end_date=today)
            assert (body["start_date"], body["end_date"]) == (day0, today)
            assert body["bucket"] == "day"
            totals = body["totals"]
            assert totals["requests"] == 13
            assert totals["errors"] == 4 == sum(r["status"] == "failure" for r in rows)
            # the spend logs page's filters, on the server: status and model (group or upstream name)
            failed = httpx.get(gw.url + "/spend/logs", headers=ADMIN, params={"status": "failure"}).json()
            assert sorted(r["request_id"] for r in failed) == sorted(r["request_id"] for r in rows
                                                                     if r["status"] == "failure")
            gpt = httpx.get(gw.url + "/spend/logs", headers=ADMIN, params={"model": "gpt"}).json()
            assert len(gpt) == 9 and {r["model_group"] for r in gpt} == {"gpt"}
            both = httpx.get(gw.url + "/spend/logs", headers=ADMIN, params={"model": "broken", "status": "success"})
            assert both.status_code == 200 and both.json() == []
            bad = httpx.get(gw.url + "/spend/logs", headers=ADMIN, params={"status": "weird"})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
            spend = sum(r["spend"] for r in rows)
            assert spend > 0
            assert totals["spend"] == pytest.approx(spend, abs=1e-9)
            assert totals["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
            assert totals["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
            latencies = [_latency_ms(r) for r in rows]
            for name, p in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
                assert totals[name] == pytest.approx(percentile_cont(latencies, p), abs=0.01)
                assert min(latencies) - 0.01 <= totals[name] <= max(latencies) + 0.01
            assert totals["p50_ms"] <= totals["p95_ms"] <= totals["p99_ms"]
            assert body["series"][0]["t"] == f"{day0}T00:00:00Z"
            assert sum(p["requests"] for p in body["series"]) == 13
            if one_day:
                assert len(body["series"]) == 1
                assert body["spend_today"] == pytest.approx(spend, abs=1e-9)
                assert body["spend_month"] == pytest.approx(spend, abs=1e-9)
            models = {m["model"]: m for m in body["top_models"]}
            assert models["gpt"]["requests"] == 9 and models["gpt"]["errors"] == 0
            assert models["broken"] == {"model": "broken", "requests": 4, "errors": 4, "spend": 0.0}
            keys = {t["token"]: t for t in body["top_keys"]}
            assert keys[user_token]["requests"] == 5
            assert keys[user_token]["key_alias"] == "user-key"
            assert sum(t["requests"] for t in body["top_keys"]) == 13

            hourly = _overview(gw.url, ADMIN, start_date=day0, end_date=today, bucket="hour")
            assert len(hourly["series"]) == 24 * len(body["series"])
            assert sum(p["requests"] for p in hourly["series"]) == 13
            assert hourly["totals"] == totals

            # the internal user sees only its own key's traffic
            mine = _overview(gw.url, {"Authorization": f"Bearer {user_key}"}, start_date=day0, end_date=today)
            assert mine["totals"]["requests"] == 5
            assert mine["totals"]["errors"] == 1
            mine_rows = [r for r in rows if r["api_key"] == user_token]
            assert mine["totals"]["spend"] == pytest.approx(sum(r["spend"] for r in mine_rows), abs=1e-9)
            assert [t["token"] for t in mine["top_keys"]] == [user_token]
            if one_day:
                assert mine["spend_today"] == pytest.approx(sum(r["spend"] for r in mine_rows), abs=1e-9)

            # LiteLLM's shapes
            act = httpx.get(gw.url + "/global/activity", headers=ADMIN,
                            params={"start_date": day0, "end_date": today}).json()
            assert act["sum_api_requests"] == 13
            assert act["sum_total_tokens"] == sum(r["total_tokens"] for r in rows)
            if one_day:
                label = datetime.now(UTC).strftime("%b %d")
                assert act["daily_data"] == [{"date": label, "api_requests": 13,
                                              "total_tokens": act["sum_total_tokens"]}]
            by_model = httpx.get(gw.url + "/global/activity/model", headers=ADMIN,
                                 params={"start_date": day0, "end_date": today}).json()
            assert [(m["model"], m["sum_api_requests"]) for m in by_model] == [("gpt", 9), ("broken", 4)]

            spend_models = httpx.get(gw.url + "/global/spend/models", headers=ADMIN).json()
            assert spend_models[0]["model"] == "gpt-4o-mini"  # the model sent upstream; all the spend is its
            assert spend_models[0]["total_spend"] == pytest.approx(spend, abs=1e-9)
            assert sum(m["total_spend"] for m in spend_models) == pytest.approx(spend, abs=1e-9)

            # bad input: 400 naming the parameter; no key: 401
            for params, param in (({"bucket": "week"}, "bucket"), ({"start_date": "01/02/2026"}, "start_date"),
                                  ({"start_date": "2020-01-01", "end_date": today}, "start_date")):
                r = httpx.get(gw.url + "/global/activity/overview", headers=ADMIN, params=params)
                assert r.status_code == 400, r.text
                assert r.json()["error"]["param"] == param
            r = httpx.get(gw.url + "/global/activity", headers=ADMIN)
            assert r.status_code == 400 and r.json()["error"]["param"] in ("start_date", "end_date")
            assert httpx.get(gw.url + "/global/activity/overview").status_code == 401
