"""LiteLLM's ``GET /spend/capture_rate`` on SQLite and a real PostgreSQL, against a stand-in for OpenAI's
organization costs API (a real HTTP server checking the admin key and the query, answering in pages): the spend
rows of OpenAI-billed providers per UTC day against the bill, every day listed, the rate and the threshold; and
LiteLLM's refusals (no admin key, the bill unreadable, bad dates, ranges, thresholds, providers, callers)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from relaygate.sinks.spend import spend_values
from relaygate.store import Key, hash_token
from relaygate.store.spend import write_spend_values
from tests.asgi.conftest import call
from tests.budgets.conftest import gateway, upstream
from tests.spend.test_spend_views import DAY, get, rec
from tests.store.conftest import db_url  # noqa: F401  (both backends)

ADMIN_KEY = "sk-admin-costs-test"


class Costs:
    """OpenAI's ``GET /v1/organization/costs``: one-day buckets of ``bill`` (ISO day -> amounts), two a page."""

    def __init__(self, bill: dict[str, list[float]]) -> None:
        self.bill = bill
        self.queries: list[dict[str, list[str]]] = []
        self.status = 200
        self.currency = "usd"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path, _, qs = self.path.partition("?")
                q = urllib.parse.parse_qs(qs)
                server.queries.append(q)
                if path != "/v1/organization/costs":
                    status, body = 404, {"error": {"message": "not found"}}
                elif self.headers.get("authorization") != f"Bearer {ADMIN_KEY}":
                    status, body = 401, {"error": {"message": "Incorrect API key provided"}}
                elif server.status != 200:
                    status, body = server.status, {"error": {"message": "billing is down"}}
                else:
                    status, body = 200, server.page(q)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True

    def page(self, q: dict[str, list[str]]) -> dict[str, Any]:
        start, end = int(q["start_time"][0]), int(q["end_time"][0])
        buckets = []
        for t in range(start, end, 86400):
            day = datetime.fromtimestamp(t, UTC).date().isoformat()
            buckets.append({"object": "bucket", "start_time": t, "end_time": t + 86400, "results": [
                {"object": "organization.costs.result", "amount": {"value": v, "currency": self.currency},
                 "line_item": None, "project_id": None} for v in self.bill.get(day, [])]})
        at = int(q.get("page", ["0"])[0])
        more = at + 2 < len(buckets)
        return {"object": "page", "data": buckets[at:at + 2], "has_more": more,
                "next_page": str(at + 2) if more else None}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1/organization/costs"

    def __enter__(self) -> Costs:
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def billing(monkeypatch: pytest.MonkeyPatch, bill: dict[str, list[float]]) -> Iterator[Costs]:
    with Costs(bill) as costs:
        monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN_KEY)
        monkeypatch.setenv("RELAYGATE_OPENAI_COSTS_URL", costs.url)
        yield costs


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def test_captured_spend_against_the_bill(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    now = time.time()
    today, yesterday, before = iso(now), iso(now - DAY), iso(now - 2 * DAY)
    with billing(monkeypatch, {today: [0.6, 0.4], before: [0.3, 0.1]}) as costs:
        async def main() -> None:
            async with upstream() as up, gateway(db_url, up) as gw:
                d = gw.store.dialect
                rows = [rec("a1", 0.5, now), rec("a2", 0.25, now, provider="text-completion-openai"),
                        rec("a3", 1.0, now, provider="anthropic"), rec("a4", 0.3, now, provider="azure"),
                        rec("a5", 0.2, now - 2 * DAY), rec("a6", 9.0, now - 5 * DAY)]
                assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 6
                span = f"start_date={before}&end_date={today}"
                body = await get(gw, f"/spend/capture_rate?provider=openai&{span}&project_ids=proj_a"
                                     "&project_ids=proj_b")
                assert body["provider"] == "openai" and (body["start_date"], body["end_date"]) == (before, today)
                assert body["captured_spend"] == pytest.approx(0.95) and body["provider_spend"] == pytest.approx(1.4)
                assert body["capture_rate"] == pytest.approx(0.95 / 1.4) and body["threshold"] == 0.9
                assert body["below_threshold"] is True
                days = {x["date"]: x for x in body["days"]}
                assert list(days) == [before, yesterday, today]
                assert days[today]["captured_spend"] == pytest.approx(0.75)
                assert days[today]["capture_rate"] == pytest.approx(0.75)
                assert days[yesterday] == {"date": yesterday, "captured_spend": 0.0, "provider_spend": 0.0,
                                           "capture_rate": None}
                assert days[before]["capture_rate"] == pytest.approx(0.5)
                # the query OpenAI documents: UTC midnights, one-day buckets, 180 a page, the projects; every page
                first = costs.queries[0]
                start = int(datetime.fromisoformat(before).replace(tzinfo=UTC).timestamp())
                assert first["start_time"] == [str(start)] and first["end_time"] == [str(start + 3 * 86400)]
                assert first["bucket_width"] == ["1d"] and first["limit"] == ["180"]
                assert first["project_ids[]"] == ["proj_a", "proj_b"] and "page" not in first
                assert [q.get("page") for q in costs.queries] == [None, ["2"]]
                body = await get(gw, f"/spend/capture_rate?{span}&threshold=0.5")
                assert body["below_threshold"] is False and body["threshold"] == 0.5

                # LiteLLM's refusals
                for query, field in ((f"start_date={today}&end_date={before}", "end_date"),
                                     ("start_date=2026-01-01&end_date=2026-06-30", "end_date"),
                                     (f"{span}&threshold=0", "threshold"), (f"{span}&threshold=1.5", "threshold"),
                                     (f"{span}&threshold=nan", "threshold"), (f"{span}&provider=anthropic", "provider"),
                                     (f"start_date=2026-13-01&end_date={today}", "start_date"),
                                     (f"end_date={today}", "start_date")):
                    err = await get(gw, f"/spend/capture_rate?{query}", status=400)
                    assert err["error"]["param"] == field, (query, err)
                err = await get(gw, "/spend/capture_rate?start_date=2026-01-01&end_date=2026-06-30", status=400)
                assert err["error"]["message"] == "Date range too large; maximum is 180 days"
                costs.currency = "eur"
                err = await get(gw, f"/spend/capture_rate?{span}", status=502)
                assert err["error"]["message"].startswith("Could not read the openai bill: unexpected response shape")
                costs.currency, costs.status = "usd", 500
                err = await get(gw, f"/spend/capture_rate?{span}", status=502)
                assert err["error"]["message"].startswith("Could not read the openai bill: HTTP 500")
                monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-wrong-one")
                costs.status = 200
                err = await get(gw, f"/spend/capture_rate?{span}", status=502)
                assert "HTTP 401" in err["error"]["message"] and "sk-admin-wrong-one" not in json.dumps(err)
                monkeypatch.delenv("OPENAI_ADMIN_KEY")
                err = await get(gw, f"/spend/capture_rate?{span}", status=503)
                assert err["error"]["message"] == ("OPENAI_ADMIN_KEY is not set on the proxy, so the openai bill "
                                                   "cannot be read")
                own = "sk-capture-internal"
                await gw.store.create_key(Key(token=hash_token(own), user_id="u-1"))
                await get(gw, f"/spend/capture_rate?{span}", {"authorization": f"Bearer {own}"}, status=401)
                await get(gw, f"/spend/capture_rate?{span}", {"authorization": "Bearer sk-nope"}, status=401)

        asyncio.run(main())


def test_the_daily_check(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """``spend_capture_rate_check``: the lookback days before today, once a UTC day for the cluster (the mark), its
    LiteLLM alert at High to a real Slack stand-in when under the threshold or when the bill cannot be read."""
    from relaygate.config.litellm_general import CaptureRateCheck
    from relaygate.management.capture_rate import MARK, check_due, check_once
    from relaygate.observe.alerting import Alerter
    from relaygate.store.settings import read_settings
    from tests.observe.collector_server import Collector

    now = datetime.now(UTC).replace(hour=2, minute=0)
    stamp = now.timestamp()
    assert check_due(None, now) and check_due({"day": "2020-01-01"}, now)
    assert not check_due({"day": now.date().isoformat()}, now)
    assert not check_due({"day": "2020-01-01"}, now.replace(hour=1, minute=14))  # the day's bill settles first
    settings = CaptureRateCheck(threshold=0.8, lookback_days=3)
    with billing(monkeypatch, {iso(stamp - DAY): [1.0], iso(stamp - 3 * DAY): [1.0]}) as costs, \
            Collector() as slack:
        async def main() -> None:
            alerter = Alerter(slack_routes={"failed_tracking_spend": [slack.url + "/s"]})
            alerter.start()
            async with upstream() as up, gateway(db_url, up) as gw:
                d = gw.store.dialect
                rows = [rec("b1", 0.5, stamp - DAY), rec("b2", 0.25, stamp - 3 * DAY), rec("b3", 5.0, stamp)]
                assert await write_spend_values(gw.store, [spend_values(r, d) for r in rows]) == 3
                rates = await check_once(gw.store, settings, alerter, now)
                assert rates == {"openai": pytest.approx(0.375)}  # today's row is outside the window
                first = costs.queries[0]
                start = int(datetime.fromisoformat(iso(stamp - 3 * DAY)).replace(tzinfo=UTC).timestamp())
                assert first["start_time"] == [str(start)] and first["end_time"] == [str(start + 3 * 86400)]
                mark = (await read_settings(gw.store))[MARK]
                assert mark["day"] == now.date().isoformat() and mark["rates"]["openai"] == pytest.approx(0.375)
                asked = len(costs.queries)
                assert await check_once(gw.store, settings, alerter, now) == rates  # ran today: the mark's rates
                assert len(costs.queries) == asked
                monkeypatch.delenv("OPENAI_ADMIN_KEY")
                later = now + timedelta(days=1)
                assert await check_once(gw.store, settings, alerter, later) == {}
            await alerter.aclose()

        asyncio.run(main())
        texts = [p.json()["text"] for p in slack.posts]
        assert len(texts) == 2 and all("Level: `High`" in t for t in texts)
        assert "Spend capture rate for openai is 37.5%, under the 80% threshold: LiteLLM captured $0.75 of the " \
               "$2.00 openai bill" in texts[0]
        assert "OPENAI_ADMIN_KEY is not set, so the openai bill cannot be read" in texts[1]


def test_the_check_settings_and_the_gauge() -> None:
    from relaygate.config import ConfigError, from_litellm
    from relaygate.observe.prometheus import LiteLLMMetrics

    base = {"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}]}
    cfg = from_litellm({**base, "general_settings": {"spend_capture_rate_check": {"lookback_days": 14}}}, "t.yaml")
    check = cfg.general.spend_capture_rate_check
    assert check is not None and check.lookback_days == 14 and check.providers == ("openai",)
    assert check.threshold == 0.9
    for bad in ({"threshold": 0}, {"threshold": 1.5}, {"lookback_days": 181}, {"providers": ["anthropic"]},
                {"providers": []}, {"unknown": 1}):
        with pytest.raises(ConfigError):
            from_litellm({**base, "general_settings": {"spend_capture_rate_check": bad}}, "t.yaml")
    lite = LiteLLMMetrics(["m"], cfg.deployments)
    assert lite.gauges()["litellm_spend_capture_rate"] == []
    lite.capture_rates = {"openai": 0.5}
    assert lite.gauges()["litellm_spend_capture_rate"] == [["openai", 0.5]]


def test_every_worker_shows_the_rate_as_the_gauge(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The check as the gateway runs it (``run_forever``): the rate the mark holds becomes the worker's
    ``litellm_spend_capture_rate`` gauge, on ``/metrics``."""
    from relaygate.management.capture_rate import run_forever

    stamp = time.time()
    with billing(monkeypatch, {iso(stamp - DAY): [2.0]}):
        async def main() -> None:
            extra = {"general_settings": {"spend_capture_rate_check": {"lookback_days": 2}},
                     "litellm_settings": {"callbacks": ["prometheus"]}}
            async with upstream() as up, gateway(db_url, up, **extra) as gw:
                rows = [rec("c1", 0.5, stamp - DAY)]
                assert await write_spend_values(gw.store, [spend_values(r, gw.store.dialect) for r in rows]) == 1
                task = asyncio.ensure_future(run_forever(gw, first=0.0))
                try:
                    for _ in range(1000):  # at most 20 s on a loaded machine
                        if gw.exporters.prometheus.capture_rates:
                            break
                        await asyncio.sleep(0.02)
                    assert gw.exporters.prometheus.capture_rates == {"openai": pytest.approx(0.25)}
                finally:
                    task.cancel()
                text = (await call(gw, "GET", "/metrics")).body.decode()
                assert 'litellm_spend_capture_rate{api_provider="openai"} 0.25' in text

        asyncio.run(main())
