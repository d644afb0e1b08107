"""A real ``relaygate serve`` (SQLite beside the config): requests made with a generated key appear in
``/spend/logs`` (successes and failures), and the key's, the team's and the proxy's counters equal the
rows' sums."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from typing import Any

import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-spend-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: {MASTER}
"""


def call(url: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER) -> tuple[int, Any]:
    req = urllib.request.Request(f"{url}{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:  # closed now: an error answer left to the collector holds its socket (a ResourceWarning later)
            return exc.code, json.loads(exc.read() or b"null")


def logged(url: str, key: str, n: int, master: str = MASTER, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``/spend/logs`` of ``key`` once it lists ``n`` rows (the sink writes off the request path), or at
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status, rows = call(url, "/spend/logs?api_key=" + key, key=master)
        assert status == 200, rows
        if len(rows) >= n or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.2)


def test_requests_appear_in_spend_logs_and_counters() -> None:
    with start_gateway(CONFIG, workers=1) as gw:
        assert call(gw.url, "/team/new", {"team_id": "team-a"})[0] == 200
        status, out = call(gw.url, "/key/generate", {"key_alias": "spender", "team_id": "team-a",
                                                     "user_id": "alice", "tags": ["proj"]})
        assert status == 200, out
        key = out["key"]
        ids = []
        for i in range(5):
            req = urllib.request.Request(f"{gw.url}/v1/chat/completions", method="POST", data=json.dumps(
                {"model": "chat", "messages": [{"role": "user", "content": f"hello {i}"}]}).encode(),
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                ids.append(r.headers["x-litellm-call-id"])
        bad_status, _ = call(gw.url, "/v1/chat/completions", {"model": "chat"}, key=key)  # no messages: 400
        assert bad_status == 400
        rows = logged(gw.url, key, 6)
        assert {r["request_id"] for r in rows} >= set(ids)
        assert sorted(r["status"] for r in rows) == ["failure"] + ["success"] * 5
        ok = [r for r in rows if r["status"] == "success"]
        ua = f"Python-urllib/{sys.version_info.major}.{sys.version_info.minor}"  # LiteLLM's User-Agent tags too
        assert all(r["team_id"] == "team-a" and r["user"] == "alice" and r["model_group"] == "chat" and
                   r["request_tags"] == ["proj", "User-Agent: Python-urllib", f"User-Agent: {ua}"] for r in ok)
        total = sum(r["spend"] for r in rows)
        assert total > 0
        assert call(gw.url, f"/spend/logs?request_id={ids[0]}")[1][0]["request_id"] == ids[0]
        info = call(gw.url, "/key/info?key=" + key)[1]["info"]
        assert abs(info["spend"] - total) < 1e-9
        assert abs(call(gw.url, "/global/spend")[1]["spend"] - total) < 1e-9
        tags = {t["individual_request_tag"]: t["log_count"] for t in call(gw.url, "/spend/tags")[1]}
        assert tags == {"proj": 6, "User-Agent: Python-urllib": 6, f"User-Agent: {ua}": 6}
        team = call(gw.url, "/team/info?team_id=team-a")[1]
        assert abs(team["team_info"]["spend"] - total) < 1e-9
        day = ok[0]["startTime"][:10]
        report = call(gw.url, f"/global/spend/report?start_date={day}&end_date={day}&group_by=team")[1]
        assert report[0]["group_by_day"] == day and report[0]["teams"][0]["team_name"] == "team-a"
        # /spend/logs with a date range: LiteLLM's per-day summary (summarize=false: the rows), every day there
        after = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        summary = call(gw.url, f"/spend/logs?start_date={day}&end_date={after}")[1]
        assert [d["startTime"] for d in summary] == [day, after], summary
        first, empty = summary
        assert abs(first["spend"] - total) < 1e-9 and abs(first["users"]["alice"] - total) < 1e-9
        assert abs(first["models"]["chat"] - total) < 1e-9 and abs(first[ok[0]["api_key"]] - total) < 1e-9
        assert empty == {"startTime": after, "spend": 0, "users": {}, "models": {}}
        assert len(call(gw.url, f"/spend/logs?start_date={day}&end_date={day}&summarize=false")[1]) == 6
        daily = call(gw.url, "/global/spend/logs")[1]
        assert daily[-1]["date"] == day and abs(daily[-1]["spend"] - total) < 1e-9, daily
        mine = call(gw.url, "/global/spend/logs?api_key=" + key)[1]
        assert mine[-1]["api_key"] == ok[0]["api_key"] and abs(mine[-1]["spend"] - total) < 1e-9, mine
        top = call(gw.url, "/global/spend/keys?limit=5")[1]
        assert top[0]["key_alias"] == "spender"
        assert call(gw.url, "/spend/logs", key=key)[0] == 200  # the key's own logs


def test_request_tags_from_headers() -> None:
    """LiteLLM's ``extra_spend_tag_headers`` (``<header>: <value>`` tags, the configured spelling) with its
    ``User-Agent`` tags turned off (``disable_add_user_agent_to_request_tags``); the tags count in ``/spend/tags``."""
    from relaygate.pipeline.overrides import Overrides
    from relaygate.sinks.record import CompletionRecord, Outcome, header_tags_of

    over = Overrides([(b"user-agent", b"claude-cli/1.0.3 (external)"), (b"x-team-name", b"search")], 1 << 20,
                     tag_headers={b"x-team-name": "X-Team-Name"})
    r = CompletionRecord("c", "chat", False, "m", "m", "", "", "", None, None, None, None, 200, Outcome.OK, 0, 0, 0,
                         0, 0.1, None, 0.0, 0.0, False, 0, 0)
    r.user_agent, r.header_tags = over.user_agent, tuple(over.header_tags or ())
    assert header_tags_of(r) == ("User-Agent: claude-cli", "User-Agent: claude-cli/1.0.3 (external)",
                                 "X-Team-Name: search")
    r.user_agent = b"curl"
    assert header_tags_of(r) == ("User-Agent: curl", "X-Team-Name: search")
    r.user_agent = r.header_tags = None
    assert header_tags_of(r) == ()
    many = Overrides([(b"x-team-name", b"t%d" % i) for i in range(1000)], 1 << 20, tag_headers={b"x-team-name": "T"})
    assert many.header_tags is not None and len(many.header_tags) == 16
    config = CONFIG.replace("general_settings:", "litellm_settings:\n  disable_add_user_agent_to_request_tags: true\n"
                            "  extra_spend_tag_headers: [X-Team-Name, x-cost-center]\ngeneral_settings:")
    with start_gateway(config, workers=1) as gw:
        for team in ("search", "ads", "search"):
            req = urllib.request.Request(f"{gw.url}/v1/chat/completions", method="POST", data=json.dumps(
                {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json",
                         "x-team-name": team})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
        deadline = time.monotonic() + 10
        while True:
            tags = {t["individual_request_tag"]: t["log_count"] for t in call(gw.url, "/spend/tags")[1]}
            if sum(tags.values()) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert tags == {"X-Team-Name: search": 2, "X-Team-Name: ads": 1}
