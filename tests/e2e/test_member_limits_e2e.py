"""Team member rate limits in a real gateway (``relaygate serve`` on its embedded SQLite): a team made with
``team_member_rpm_limit`` over HTTP binds each member across its keys, the openai SDK sees LiteLLM's 429 as
a ``RateLimitError``, and ``/team/member_update`` raising one member's own limit takes effect at once (its
bucket refilling at the new rate from where it stood)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-member-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {MASTER}
"""


def admin(url: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(f"{url}{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ask(url: str, key: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        return "ok"
    except openai.RateLimitError as exc:
        assert "rate limit type = team_member" in str(exc), exc
        return "429"


def test_member_rpm_limit_across_keys_and_member_update() -> None:
    with start_gateway(CONFIG) as gw:
        admin(gw.url, "/team/new", {"team_id": "t", "team_member_rpm_limit": 2,
                                    "members_with_roles": [{"role": "user", "user_id": "ann"},
                                                           {"role": "user", "user_id": "ben"}]})
        ann = [admin(gw.url, "/key/generate", {"team_id": "t", "user_id": "ann"})["key"] for _ in range(2)]
        ben = admin(gw.url, "/key/generate", {"team_id": "t", "user_id": "ben"})["key"]
        assert [ask(gw.url, ann[0]), ask(gw.url, ann[1]), ask(gw.url, ann[0])] == ["ok", "ok", "429"]
        assert [ask(gw.url, ben) for _ in range(3)] == ["ok", "ok", "429"]
        out = admin(gw.url, "/team/member_update", {"team_id": "t", "user_id": "ben", "rpm_limit": 1000})
        assert out["rpm_limit"] == 1000
        time.sleep(0.5)  # the member's bucket refills at its new rate (1000 a minute: one in 60 ms)
        assert [ask(gw.url, ben) for _ in range(3)] == ["ok", "ok", "ok"]
        assert ask(gw.url, ann[1]) == "429"
        # LiteLLM 1.110's member routes over HTTP: back on the team's default (its rate limit again), and a
        # spend reset refused for a spend the member does not have
        out = admin(gw.url, "/team/t/member/ben/reset_budget", {})
        assert out["budget_source"] == "team_default" and out["previous_budget_id"]
        time.sleep(0.5)  # keys read again; the bucket refills at the default's rate, 2 a minute, past its level
        assert [ask(gw.url, ben) for _ in range(3)].count("429") >= 1
        try:
            admin(gw.url, "/team/t/member/ben/reset_spend", {"reset_to": 1.0})
            raise AssertionError("a reset above the member's spend was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400 and "must be <= current spend" in json.loads(exc.read())["error"]["message"]
