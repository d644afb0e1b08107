"""LiteLLM's team-based logging API through a real ``relaygate serve`` (two workers, its SQLite store) with
Langfuse, OpenTelemetry and ``generic_api`` configured: a team given its own Langfuse project with
``POST /team/{team_id}/callback`` sends its requests there, a team whose logging was turned off with
``POST /team/{team_id}/disable_logging`` sends its requests to no exporter at all (LiteLLM's still reach the
configured ones: its open issue 16589) while metrics still count them, and a key without a team goes to the
configured project."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.conftest import start_gateway
from tests.observe.collector_server import Collector
from tests.observe.langfuse_server import LangfuseServer
from tests.observe.otlp_receiver import Receiver
from tests.observe.test_all_exporters_e2e import wait

pytestmark = pytest.mark.e2e

MASTER = "sk-team-logging"
AUTH = {"Authorization": f"Bearer {MASTER}"}
CONFIG = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["langfuse", "otel", "generic_api", "prometheus"]
general_settings:
  master_key: {MASTER}
"""


def generations(server: LangfuseServer) -> set[str]:
    return {e["body"]["id"] for e in server.accepted if e["type"] == "generation-create"}


def chat_each(c: httpx.Client, keys: dict[str, str], rounds: int) -> dict[str, set[str]]:
    """``rounds`` chat requests with each key; the call ids by key name."""
    ids: dict[str, set[str]] = {name: set() for name in keys}
    for i in range(rounds):
        for name, key in keys.items():
            r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "m", "messages": [{"role": "user", "content": f"words of {name} {i}"}]})
            assert r.status_code == 200, r.text
            ids[name].add(r.headers["x-litellm-call-id"])
    return ids


def test_team_callbacks_and_disabled_logging() -> None:
    with LangfuseServer() as lf, LangfuseServer("pk-team", "sk-team") as lf_team, Receiver() as rx, \
            Collector() as generic:
        env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": lf.url,
               "LANGFUSE_FLUSH_INTERVAL": "0.05", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
               "OTEL_BSP_SCHEDULE_DELAY": "50", "GENERIC_LOGGER_ENDPOINT": generic.url + "/log",
               "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}
        with start_gateway(CONFIG, workers=2, env=env) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
            for team in ("loud", "quiet"):
                assert c.post("/team/new", headers=AUTH, json={"team_id": team}).status_code == 200
            r = c.post("/team/loud/callback", headers=AUTH, json={
                "callback_name": "langfuse", "callback_type": "success",
                "callback_vars": {"langfuse_public_key": "pk-team", "langfuse_secret_key": "sk-team",
                                  "langfuse_host": lf_team.url}})
            assert r.status_code == 200, r.text
            r = c.post("/team/quiet/disable_logging", headers=AUTH)
            assert r.status_code == 200 and r.json()["message"] == "Logging disabled for team quiet", r.text
            keys = {"loud": c.post("/key/generate", headers=AUTH, json={"team_id": "loud"}).json()["key"],
                    "quiet": c.post("/key/generate", headers=AUTH, json={"team_id": "quiet"}).json()["key"],
                    "plain": c.post("/key/generate", headers=AUTH, json={}).json()["key"]}
            ids = chat_each(c, keys, 4)  # over both workers

            assert wait(lambda: generations(lf) >= ids["plain"] and generations(lf_team) >= ids["loud"])
            assert wait(lambda: {s.attributes.get("relaygate.call_id") for s in rx.spans()} >= ids["plain"] | ids["loud"])
            assert wait(lambda: {p.get("call_id") for p in generic.entries()} >= ids["plain"] | ids["loud"])
            def counted() -> bool:
                return 'team="quiet"' in c.get("/metrics").text

            assert wait(counted), "the quiet team's requests are still counted"
            time.sleep(0.5)  # anything else that was going to arrive has arrived
        assert generations(lf) == ids["plain"]  # the loud team's go to its own project instead
        assert generations(lf_team) == ids["loud"]
        exported = {s.attributes.get("relaygate.call_id") for s in rx.spans()} | {
            p.get("call_id") for p in generic.entries()}
        assert not exported & ids["quiet"]
        sent = orjson.dumps([lf.accepted, lf_team.accepted, generic.entries()]).decode()
        assert "words of quiet" not in sent and "words of loud" in sent


def test_team_settings_from_the_config() -> None:
    """LiteLLM's ``litellm_settings.default_team_settings`` (team-based logging in the config, no callback
    configured): a key of a listed team logs to that team's Langfuse project (its variables beside the lists,
    ``os.environ/`` resolved, LiteLLM's ``langfuse_secret`` name); a team whose own metadata names a project
    keeps its own; a key without a team logs nowhere."""
    with LangfuseServer("pk-research", "sk-research") as lf_config, LangfuseServer("pk-own", "sk-own") as lf_own:
        config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  default_team_settings:
    - team_id: research
      success_callback: ["langfuse"]
      langfuse_public_key: pk-research
      langfuse_secret: os.environ/RESEARCH_LANGFUSE_SECRET
      langfuse_host: {lf_config.url}
    - team_id: own
      success_callback: ["langfuse"]
      callback_vars: {{langfuse_public_key: pk-research, langfuse_secret_key: sk-research,
                       langfuse_host: "{lf_config.url}"}}
general_settings:
  master_key: {MASTER}
"""
        env = {"RESEARCH_LANGFUSE_SECRET": "sk-research", "LANGFUSE_FLUSH_INTERVAL": "0.05"}
        with start_gateway(config, env=env) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
            for team in ("research", "own"):
                assert c.post("/team/new", headers=AUTH, json={"team_id": team}).status_code == 200
            r = c.post("/team/own/callback", headers=AUTH, json={
                "callback_name": "langfuse", "callback_type": "success",
                "callback_vars": {"langfuse_public_key": "pk-own", "langfuse_secret_key": "sk-own",
                                  "langfuse_host": lf_own.url}})
            assert r.status_code == 200, r.text
            keys = {"research": c.post("/key/generate", headers=AUTH, json={"team_id": "research"}).json()["key"],
                    "own": c.post("/key/generate", headers=AUTH, json={"team_id": "own"}).json()["key"],
                    "plain": c.post("/key/generate", headers=AUTH, json={}).json()["key"]}
            ids = chat_each(c, keys, 3)

            assert wait(lambda: generations(lf_config) >= ids["research"] and generations(lf_own) >= ids["own"])
            time.sleep(0.5)
            log = gw.log()
        assert generations(lf_config) == ids["research"]
        assert generations(lf_own) == ids["own"]
        assert "default_team_settings: ignored" not in log and "sk-research" not in log


def test_team_settings_need_a_team_id() -> None:
    from relaygate.auth.targets import team_defaults
    from relaygate.config import from_litellm
    from relaygate.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"default_team_settings\[1\]: team_id missing"):
        from_litellm({"model_list": [], "litellm_settings": {"default_team_settings": [
            {"team_id": "a"}, {"success_callback": ["langfuse"]}]}}, "c.yaml")
    assert team_defaults([{"team_id": "t", "success_callback": ["langfuse"], "failure_callback": ["langfuse"],
                           "langfuse_public_key": "pk", "sample_rate": 0.5, "team_id_extra": None},
                          {"team_id": "t", "success_callback": ["otel"]}]) == {
        "t": {"callback_settings": {"success_callback": ["langfuse"], "failure_callback": ["langfuse"],
                                    "callback_vars": {"langfuse_public_key": "pk", "sample_rate": "0.5"}}}}
