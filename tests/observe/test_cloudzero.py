"""LiteLLM's CloudZero export (``observe.cloudzero``, ``/cloudzero/*``): resource names and CBF records as LiteLLM
maps them, drops posted to a real stand-in of the AnyCost API (retried on 5xx, refused on 4xx), the hourly job's
window and its one export per interval, and through a real ``relaygate serve``: the credentials stored sealed and
shown masked, a dry run and an export of the requests served, admin only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe import cloudzero as cz
from relaygate.sinks.spend import spend_values
from relaygate.store import Key, Team, hash_token, key_name, open_store
from relaygate.store.sealing import Sealer
from relaygate.store.settings import read_settings
from relaygate.store.spend import write_spend_values
from tests.conftest import start_gateway
from tests.observe.collector_server import Collector
from tests.store.test_usage_hours import rec

ROW = {"hour": "2026-11-03T10", "api_key": "0123456789abcdef" * 4, "model_group": "chat-main", "model": "gpt-4o",
       "provider": "bedrock", "team_id": "Team_42!", "user_id": "u1", "spend": 1.25e-07, "prompt_tokens": 30,
       "completion_tokens": 0, "cache_read_tokens": 6, "cache_write_tokens": 0, "requests": 3, "failed": 1,
       "key_alias": "search-prod", "team_alias": "Search", "user_email": "u1@example.com"}


def test_resource_names_and_records() -> None:
    assert cz.czrn("bedrock", "Team_42!", "anthropic.claude-3:0") == \
        "czrn:litellm:aws:cross-region:team-42:llm-usage:anthropic.claude-3:0"
    assert cz.czrn("vertex_ai", None, None) == "czrn:litellm:vertex-ai:cross-region:unknown:llm-usage:unknown"
    assert cz.czrn("gemini", "--a  b--", "m") == "czrn:litellm:google:cross-region:a-b:llm-usage:m"
    assert [cz.number(x) for x in (1.25e-07, 3, 0.0, 2.5, 1e-12)] == ["0.000000125", "3", "0", "2.5", "0"]
    [r] = cz.cbf_records([ROW, {**ROW, "failed": 3}])  # a group with no successful request is left out
    assert r["time/usage_start"] == "2026-11-03T10:00:00Z" and r["cost/cost"] == "0.000000125"
    assert (r["usage/amount"], r["usage/units"], r["lineitem/type"]) == ("30", "tokens", "Usage")
    assert r["resource/id"] == "czrn:litellm:aws:cross-region:team-42:llm-usage:gpt-4o"
    assert (r["resource/service"], r["resource/account"], r["resource/region"]) == \
        ("chat-main", "search-prod|01234567", "cross-region")
    assert (r["resource/usage_family"], r["action/operation"]) == ("bedrock", "Team_42!")
    assert r["resource/tag:entity_id"] == "Search" and r["resource/tag:user_email"] == "u1@example.com"
    assert (r["resource/tag:api_requests"], r["resource/tag:successful_requests"],
            r["resource/tag:failed_requests"]) == ("3", "2", "1")
    assert r["resource/tag:prompt_tokens"] == "30" and "resource/tag:completion_tokens" not in r
    assert all(isinstance(v, str) for v in r.values())
    anon = cz.cbf_records([{**ROW, "key_alias": None, "team_id": None, "team_alias": None, "user_email": None}])[0]
    assert anon["resource/account"] == "01234567" and anon["action/operation"] == ""
    assert "resource/tag:entity_id" not in anon and "resource/tag:user_email" not in anon
    days = cz.drops([r, {**r, "time/usage_start": "2026-12-01T00:00:00Z"}, r], "replace_hourly")
    assert [(d["month"], len(d["data"])) for d in days] == [("2026-11", 2), ("2026-12", 1)]


def test_send_retries_and_refusals() -> None:
    settings = cz.CloudZeroSettings("cz-api-secret-key-123", "conn/1 x")
    [r] = cz.cbf_records([ROW])
    with Collector() as c:
        env = {"CLOUDZERO_API_BASE": c.url + "/"}
        c.fail_next(1, 503)
        asyncio.run(cz.send(settings, cz.drops([r], "replace_hourly"), env, backoff=0.01))
        assert c.requests == 2 and len(c.posts) == 1
        post = c.posts[0]
        assert post.path == "/v2/connections/billing/anycost/conn%2F1%20x/billing_drops"
        assert post.headers["authorization"] == "Bearer cz-api-secret-key-123"
        assert post.json() == {"month": "2026-11", "operation": "replace_hourly", "data": [r]}
        c.fail_next(1, 401, body=b'{"message": "bad key"}')
        with pytest.raises(cz.ExportFailed, match="HTTP 401") as err:
            asyncio.run(cz.send(settings, cz.drops([r], "sum"), env, backoff=0.01))
        assert err.value.status == 401 and c.requests == 3


def test_settings_and_interval(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CLOUDZERO_EXPORT_INTERVAL_MINUTES"):
        check(ObserveSettings(success_callbacks=("cloudzero",)), {"CLOUDZERO_EXPORT_INTERVAL_MINUTES": "0"})
    check(ObserveSettings(success_callbacks=("cloudzero",)), {})  # credentials may come from /cloudzero/init
    assert cz.interval_minutes({}) == 60.0
    got = asyncio.run(cz.settings_for(None, Sealer(None), {"CLOUDZERO_API_KEY": "k-123456789",
                                                           "CLOUDZERO_CONNECTION_ID": "c1"}))
    assert got == cz.CloudZeroSettings("k-123456789", "c1", "UTC", "environment")
    assert asyncio.run(cz.settings_for(None, Sealer(None), {"CLOUDZERO_API_KEY": "k"})) is None


def test_hourly_job_window_and_one_export_per_interval(tmp_path: Path) -> None:
    now = datetime(2026, 11, 3, 12, 20, tzinfo=UTC)

    async def main(c: Collector) -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'cz.db'}")
        try:
            k = hash_token("sk-cz-1")
            await store.create_team(Team(team_id="t1", team_alias="Search"))
            await store.create_key(Key(token=k, key_name=key_name("sk-cz-1"), key_alias="a", team_id="t1"))
            at = [now - timedelta(hours=h, minutes=5) for h in (0, 1, 2, 30)]  # 12:15, 11:15, 10:15, a day before
            await write_spend_values(store, [spend_values(rec(i, t, k, team="t1"), store.dialect)
                                             for i, t in enumerate(at)])
            env = {"CLOUDZERO_API_BASE": c.url, "CLOUDZERO_API_KEY": "cz-key-abcdefgh", "CLOUDZERO_CONNECTION_ID": "c9"}
            # the first run: from twice the interval before, on the hour (10:00), to now
            assert await cz.export_due(store, Sealer(None), env, now) == 3
            sent = sorted(x["time/usage_start"] for p in c.posts for x in p.json()["data"])
            assert sent == ["2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", "2026-11-03T12:00:00Z"]
            assert (await read_settings(store))[cz.MARK]["until"] == now.timestamp()
            assert await cz.export_due(store, Sealer(None), env, now + timedelta(minutes=30)) is None  # not due
            # two days down: from the last export (12:00 on the hour) up to now
            assert await cz.export_due(store, Sealer(None), env, now + timedelta(days=2)) == 1
            assert c.posts[-1].json()["data"][0]["time/usage_start"] == "2026-11-03T12:00:00Z"
        finally:
            await store.close()

    with Collector() as c:
        asyncio.run(main(c))


@pytest.mark.e2e
def test_through_relaygate_serve(tmp_path: Path) -> None:
    master = "sk-cz-master"
    cfg = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
    model_info: {{input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
litellm_settings:
  callbacks: ["cloudzero"]
general_settings:
  master_key: {master}
  database_url: sqlite:///{tmp_path / "rg.db"}
  proxy_batch_write_at: 0.2
"""
    with Collector() as c, start_gateway(cfg, env={"CLOUDZERO_API_BASE": c.url}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {master}"}) as h:
        r = h.post("/cloudzero/export", json={})
        assert r.status_code == 400 and "POST /cloudzero/init" in r.json()["error"]["message"]
        assert h.get("/cloudzero/settings").json() == {"api_key_masked": None, "connection_id": None,
                                                       "timezone": None, "status": None}
        assert h.put("/cloudzero/settings", json={"timezone": "UTC"}).status_code == 404
        r = h.post("/cloudzero/init", json={"api_key": "cz-secret-api-key-987", "connection_id": "conn-1",
                                            "timezone": "Mars/Olympus"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "timezone"
        r = h.post("/cloudzero/init", json={"api_key": "cz-secret-api-key-987", "connection_id": "conn-1"})
        assert r.json() == {"message": "CloudZero settings initialized successfully", "status": "success"}
        assert h.get("/cloudzero/settings").json() == {"api_key_masked": "cz-s****-987", "connection_id": "conn-1",
                                                       "timezone": "UTC", "status": "configured"}
        assert h.put("/cloudzero/settings", json={"timezone": "Europe/Paris"}).status_code == 200
        team = h.post("/team/new", json={"team_alias": "Search"}).json()["team_id"]
        key = h.post("/key/generate", json={"team_id": team, "key_alias": "search-prod"}).json()["key"]
        plain = h.post("/key/generate", json={"key_alias": "plain"}).json()["key"]
        for _ in range(3):
            r = httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=20,
                           json={"model": "m", "messages": [{"role": "user", "content": "count my cost"}]})
            assert r.status_code == 200
        cost = 3 * float(r.headers["x-litellm-response-cost"])
        spent: list[Any] = []
        for _ in range(100):  # the spend rows are written within a second
            spent = h.post("/cloudzero/dry-run", json={"limit": 100}).json()["dry_run_data"]["cbf_data"]
            if spent and int(spent[0]["resource/tag:api_requests"]) == 3:
                break
            asyncio.run(asyncio.sleep(0.1))
        [rec_] = spent
        assert rec_["resource/account"].startswith("search-prod|") and rec_["resource/tag:entity_id"] == "Search"
        assert rec_["resource/id"] == f"czrn:litellm:mock:cross-region:{cz.component(team)}:llm-usage:echo"
        assert float(rec_["cost/cost"]) == pytest.approx(cost)
        r = h.post("/cloudzero/export", json={"operation": "sum"})
        assert r.status_code == 200 and r.json()["records_exported"] == 1, r.text
        [post] = c.posts
        assert post.path == "/v2/connections/billing/anycost/conn-1/billing_drops"
        assert post.headers["authorization"] == "Bearer cz-secret-api-key-987"
        assert post.json()["operation"] == "sum" and post.json()["data"] == [rec_]
        for method, path in (("POST", "/cloudzero/export"), ("GET", "/cloudzero/settings"),
                             ("POST", "/cloudzero/init"), ("DELETE", "/cloudzero/delete")):
            r = httpx.request(method, gw.url + path, headers={"Authorization": f"Bearer {plain}"}, json={})
            assert r.status_code in (401, 403), (path, r.status_code)
        c.fail_next(3, 500)
        r = h.post("/cloudzero/export", json={})
        assert r.status_code == 502 and "HTTP 500" in r.json()["error"]["message"]
        assert h.delete("/cloudzero/delete").json()["status"] == "success"
        assert h.delete("/cloudzero/delete").status_code == 404
        assert "cz-secret-api-key-987" not in gw.log()
