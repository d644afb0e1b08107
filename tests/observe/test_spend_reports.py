"""LiteLLM's ``spend_reports`` alert on a real store (SQLite and PostgreSQL) posted by a real alerter to a Slack
stand-in over HTTP: the periodic report (spend per team by alias and per tag, LiteLLM's layout), the past month's
on the first days of the next, each once per cluster whatever the workers and restarts, nothing for a period
without spend, and client-chosen tags escaped; the settings as LiteLLM reads them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relaygate.config import ConfigError, load_config
from relaygate.observe.alerting import Alerter
from relaygate.observe.spend_reports import MARK, due, send_due
from relaygate.store import Store, Team, open_store
from relaygate.store.records import SpendLog
from relaygate.store.settings import read_settings
from relaygate.store.spend import write_spend
from tests.observe.collector_server import Collector
from tests.store.conftest import db_url  # noqa: F401  (both backends)

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def reported(url: str, kind: str, n: int, body: Callable[[Store, Alerter], Awaitable[None]]) -> list[str]:
    """Run ``body`` with a store at ``url`` and an alerter posting ``kind`` to a Slack stand-in; the posts' texts
    once ``n`` arrived (or 10 s passed), and a moment more for any extra one."""
    async def main(hook: str) -> list[str]:
        store = await open_store(url)
        alerter = Alerter(slack_routes={kind: [hook]}, alert_types=[kind])
        alerter.start()
        try:
            await body(store, alerter)
            deadline = time.monotonic() + 10
            while len(slack.posts) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            return [p.json()["text"] for p in slack.posts]
        finally:
            await alerter.aclose()
            await store.close()

    with Collector() as slack:
        return asyncio.run(main(slack.url + "/slack"))


def test_when_reports_are_due() -> None:
    assert due(None, NOW, 7) == (True, "2026-11")
    assert due({"periodic": NOW.timestamp() - 3 * 86_400, "monthly": "2026-11"}, NOW, 7) == (False, None)
    assert due({"periodic": NOW.timestamp() - 7 * 86_400 + 3_000}, NOW, 7)[0] is True  # an hour's slack
    assert due({"monthly": "2026-10"}, NOW.replace(day=12), 7)[1] is None  # past the first week: not stale ones


def test_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model_list: []\ngeneral_settings:\n  spend_report_frequency: 1d\n")
    assert load_config(str(path)).general.spend_report_days == 1
    path.write_text("model_list: []\ngeneral_settings:\n  spend_report_frequency: weekly\n")
    with pytest.raises(ConfigError, match="spend_report_frequency"):
        load_config(str(path))


def test_reports_once_per_cluster(db_url: str) -> None:  # noqa: F811
    async def body(store: Store, alerter: Alerter) -> None:
        await store.create_team(Team(team_id="t-eng", team_alias="Engineering"))
        day = NOW - timedelta(days=1)
        last_month = datetime(2026, 11, 20, tzinfo=UTC)
        await write_spend(store, [
            SpendLog(request_id="a", spend=1.5, spend_nanos=1_500_000_000, team_id="t-eng", start_time=day,
                     request_tags=["prod"]),
            SpendLog(request_id="b", spend=0.25, spend_nanos=250_000_000, team_id="t-ops", start_time=day,
                     request_tags=["prod", "evil`<!channel>"]),
            SpendLog(request_id="c", spend=2.0, spend_nanos=2_000_000_000, team_id="t-eng",
                     start_time=last_month)])
        assert await send_due(store, alerter, 7, NOW) == 2  # the periodic report and November's
        assert await send_due(store, alerter, 7, NOW + timedelta(hours=1)) == 0  # another worker, an hour on
        other = await open_store(db_url)  # another instance on the same database
        try:
            assert await send_due(other, alerter, 7, NOW + timedelta(days=1)) == 0
        finally:
            await other.close()
        mark = (await read_settings(store))[MARK]
        assert mark["monthly"] == "2026-11" and mark["periodic"] == NOW.timestamp()
        # a week on: the next periodic report, but no spend in it: nothing sent, the mark moves on
        later = NOW + timedelta(days=20)
        assert await send_due(store, alerter, 7, later) == 0
        assert (await read_settings(store))[MARK]["periodic"] == later.timestamp()

    texts = reported(db_url, "spend_reports", 2, body)
    assert len(texts) == 2, texts
    weekly, monthly = texts
    assert "Level: `Low`" in weekly
    assert "*💸 Spend Report for `11-25-2026 - 12-02-2026` (7 days)*" in weekly
    assert "Team: `Engineering` | Spend: `$1.5`" in weekly and "Team: `t-ops` | Spend: `$0.25`" in weekly
    assert weekly.index("Engineering") < weekly.index("t-ops")  # the most spent first
    assert "Tag: `prod` | Spend: `$1.75`" in weekly
    assert "<!channel>" not in weekly and "evil`" not in weekly  # a client's tag cannot ping or break out
    assert "*💸 Monthly Spend Report for `11-01-2026 - 11-30-2026` *" in monthly
    assert "Team: `Engineering` | Spend: `$2.0`" in monthly and "t-ops" not in monthly


def test_daily_report_of_failing_and_slow_deployments(db_url: str) -> None:  # noqa: F811
    """``daily_reports`` from the spend logs: the deployments with the most failures and the slowest per output
    token over ``daily_report_frequency``, named by the configured model and API base (an unknown id as it is)."""
    async def body(store: Store, alerter: Alerter) -> None:
        t0 = NOW - timedelta(hours=2)
        rows = [SpendLog(request_id=f"f{i}", model_id="dep-a", status="failure", start_time=t0,
                         end_time=t0 + timedelta(seconds=1)) for i in range(3)]
        rows += [SpendLog(request_id="s1", model_id="dep-a", status="success", completion_tokens=100,
                          start_time=t0, end_time=t0 + timedelta(seconds=2)),
                 SpendLog(request_id="s2", model_id="dep-b", status="success", completion_tokens=10,
                          start_time=t0, end_time=t0 + timedelta(seconds=3)),
                 SpendLog(request_id="f9", model_id="gone", status="failure", start_time=t0, end_time=t0),
                 SpendLog(request_id="old", model_id="dep-b", status="failure", start_time=NOW - timedelta(days=2),
                          end_time=NOW - timedelta(days=2))]
        await write_spend(store, rows)
        names = {"dep-a": ("openai/gpt-4o", "https://api.example.com/v1"), "dep-b": ("anthropic/claude", "")}
        assert await send_due(store, alerter, 7, NOW, daily=lambda: names) == 1  # no spend_reports asked
        assert await send_due(store, alerter, 7, NOW + timedelta(hours=1), daily=lambda: names) == 0

    texts = reported(db_url, "daily_reports", 1, body)
    assert len(texts) == 1, texts
    text = texts[0]
    assert "Here are today's key metrics 📈" in text and "Level: `Low`" in text
    assert "1. Deployment: `openai/gpt-4o`, Failed Requests: `3`,  API Base: `https://api.example.com/v1`" in text
    assert "2. Deployment: `gone`, Failed Requests: `1`" in text and "dep-b`, Failed" not in text  # "old": before
    slow = text[text.index("Top Slowest"):]
    assert slow.index("anthropic/claude") < slow.index("openai/gpt-4o")  # 0.3 s/token before 0.02
    assert "Latency per output token: `0.3s/token`" in slow and "`0.02s/token`" in slow


class _Prometheus:
    """A Prometheus HTTP query API stand-in: answers each ``increase`` query with its series, records queries;
    ``down`` makes it answer 503."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.down = False

    def handler(self) -> type:
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import parse_qs, urlsplit

        import orjson

        prom = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                u = urlsplit(self.path)
                query = parse_qs(u.query)["query"][0]
                prom.queries.append(query)
                if prom.down or u.path != "/api/v1/query":
                    out, status = b'{"status": "error", "error": "down"}', 503
                else:
                    ok = "successful" in query
                    result = [{"metric": {"requested_model": "gpt-4o", "fallback_model": "claude"},
                               "value": [1, "41.9999" if ok else "2"]},
                              {"metric": {"requested_model": "m`<!channel>", "fallback_model": "x"},
                               "value": [1, "0"]}]  # none that day: not listed
                    out, status = orjson.dumps({"status": "success", "data": {"resultType": "vector",
                                                                               "result": result}}), 200
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        return Handler


def test_fallback_report_from_prometheus_once_a_day(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``fallback_reports`` with ``PROMETHEUS_URL``: at 9 o'clock Los Angeles time, the day's increase of
    the successful and failed fallback counters per requested and fallback model, once per cluster per day;
    Prometheus down: logged, nothing marked, tried again at the next check."""
    from relaygate.observe.fallback_reports import FallbackSource
    from tests.conftest import http_server

    prom = _Prometheus()
    morning = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)  # 10:30 in Los Angeles
    with http_server(prom.handler()) as url:
        source = FallbackSource.from_env({"PROMETHEUS_URL": url + "/", "PROMETHEUS_SELECTED_INSTANCE": 'gw"1'})
        assert source is not None and FallbackSource.from_env({}) is None

        async def body(store: Store, alerter: Alerter) -> None:
            assert await send_due(store, alerter, 7, morning - timedelta(hours=3), fallbacks=source) == 0  # 7:30
            prom.down = True
            assert await send_due(store, alerter, 7, morning, fallbacks=source) == 0
            assert "fallback" not in (await read_settings(store)).get(MARK, {})
            prom.down = False
            assert await send_due(store, alerter, 7, morning + timedelta(minutes=5), fallbacks=source) == 1
            assert await send_due(store, alerter, 7, morning + timedelta(hours=5), fallbacks=source) == 0  # sent
            assert (await read_settings(store))[MARK]["fallback"] == "2026-12-02"

        texts = reported(db_url, "fallback_reports", 1, body)
    [text] = texts
    assert text.startswith("Level: `Low`") and "*Fallback Statistics:*\n" in text
    assert "`42 successful fallback requests` with primary model=`gpt-4o` -> fallback model=`claude`" in text
    assert "`2 failed fallback requests` with primary model=`gpt-4o` -> fallback model=`claude`" in text
    assert "channel" not in text
    assert prom.queries[-1] == ('sum by (requested_model, fallback_model) '
                                '(increase(litellm_deployment_failed_fallbacks_total{instance="gw\\"1"}[24h]))')
