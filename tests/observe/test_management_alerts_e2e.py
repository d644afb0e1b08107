"""LiteLLM's management event alerts through a real ``relaygate serve`` (SQLite store) posting to a Slack stand-in:
creating, updating and deleting a virtual key, a team and an internal user each posts LiteLLM's message (the
event's name, who did it, the request's fields) when ``alert_types`` names the kind, nothing when it does not,
and no secret — a key value, a password, a logging credential — is ever in a post."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_gateway
from tests.observe.collector_server import Collector

pytestmark = pytest.mark.e2e

MASTER = "sk-audit-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}
KINDS = ["new_virtual_key_created", "virtual_key_updated", "virtual_key_deleted", "new_team_created", "team_updated",
         "team_deleted", "new_internal_user_created", "internal_user_updated"]  # not internal_user_deleted


def _config(tmp_path: Path, general: str) -> str:
    """A gateway with a SQLite store alerting to Slack, and ``general``, more ``general_settings`` lines."""
    return f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp_path / "rg.db"}
  alerting: ["slack"]
{general}"""


def test_management_events_are_alerted_without_secrets(tmp_path: Path) -> None:
    config = _config(tmp_path, f"  alert_types: {KINDS}\n")
    with Collector() as slack, start_gateway(config, env={"SLACK_WEBHOOK_URL": slack.url + "/slack"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers=AUTH) as c:
        def ok(path: str, body: dict[str, object]) -> dict[str, object]:
            r = c.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            out: dict[str, object] = r.json()
            return out

        ok("/team/new", {"team_id": "audit-team", "team_alias": "Audit", "metadata": {"logging": [
            {"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk-lf-1",
                                                            "langfuse_secret_key": "sk-lf-very-secret"}}]}})
        key = str(ok("/key/generate", {"team_id": "audit-team", "key_alias": "alice-key"})["key"])
        custom = "sk-custom-secret-value-9876"
        ok("/key/generate", {"key": custom, "key_alias": "custom-key"})
        ok("/key/update", {"key": key, "max_budget": 5.0})
        ok("/key/delete", {"keys": [key, custom]})
        ok("/team/update", {"team_id": "audit-team", "max_budget": 50})
        ok("/user/new", {"user_id": "audit-user", "user_email": "a@example.com", "password": "hunter2-secret"})
        ok("/user/update", {"user_id": "audit-user", "max_budget": 3})
        ok("/user/delete", {"user_ids": ["audit-user"]})  # its kind is not listed: no post
        ok("/team/delete", {"team_ids": ["audit-team"]})
        assert c.post("/key/update", json={"key": "sk-no-such-key-1234", "max_budget": 1}).status_code != 200

        deadline = time.monotonic() + 15
        texts: list[str] = []
        while time.monotonic() < deadline:
            texts = [p.json().get("text", "") for p in slack.posts]
            if len(texts) >= 9:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        texts = [p.json().get("text", "") for p in slack.posts]
    titles = [next(line for line in t.splitlines() if line.startswith("Message: ")) for t in texts]
    assert titles == ["Message: `New Team Created`", "Message: `New Virtual Key Created`",
                      "Message: `New Virtual Key Created`", "Message: `Virtual Key Updated`",
                      "Message: `Virtual Key Deleted`", "Message: `Team Updated`",
                      "Message: `New Internal User Created`", "Message: `Internal User Updated`",
                      "Message: `Team Deleted`"], titles
    first = texts[0]
    assert "Level: `High`" in first and "*Action Done by:*" in first
    assert "created_by_user_id: `default_user_id`" in first and "created_by_user_role: `proxy_admin`" in first
    assert "team_id: `audit-team`" in first and "team_alias: `Audit`" in first
    assert "alice-key" in texts[1] and f"sk-...{key[-4:]}" in texts[3] and "max_budget: `5.0`" in texts[3]
    assert "sk-...9876" in texts[2]
    everything = "\n".join(texts)
    for secret in (key, custom, "hunter2-secret", "sk-lf-very-secret", MASTER):
        assert secret not in everything


def test_a_model_added_is_alerted_as_litellm_lays_it_out(tmp_path: Path) -> None:
    """LiteLLM's ``new_model_added``: ``/model/new`` posts the model's name, base model, an OpenAI SDK snippet
    pointing at ``PROXY_BASE_URL`` and what the cost map knows of it; no credential of the model is in it."""
    config = _config(tmp_path, '  store_model_in_db: true\n  alert_types: ["new_model_added"]\n')
    with Collector() as slack, start_gateway(config, env={"SLACK_WEBHOOK_URL": slack.url + "/slack",
                                                         "PROXY_BASE_URL": "https://gateway.example"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers=AUTH) as c:
        r = c.post("/model/new", json={"model_name": "team-gpt", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_key": "sk-provider-secret-123"}, "model_info": {"base_model": "gpt-4o"}})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not slack.posts:
            time.sleep(0.05)
        [post] = [p.json()["text"] for p in slack.posts]
        assert post.startswith("Level: `Low`") and "*🚅 New Model Added*\nModel Name: `team-gpt`" in post
        assert "Base Model: `gpt-4o`" in post and "base_url=https://gateway.example" in post
        assert 'model="team-gpt", # model to send to the proxy' in post
        assert "litellm_provider: openai\nmode: chat" in post and "input_cost_per_token: 0.00000250" in post
        assert "sk-provider-secret-123" not in post
