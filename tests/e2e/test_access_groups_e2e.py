"""Model access groups managed over HTTP in a real gateway (``relaygate serve`` on its embedded SQLite, with
``store_model_in_db``): a stored model put in a group by ``/access_group/new`` answers the openai SDK for a key
naming the group, and no longer once ``/access_group/{group}/delete`` took it off."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import openai
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-groups-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {MASTER}
  store_model_in_db: true
"""


def admin(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(f"{url}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_access_group_over_http() -> None:
    with start_gateway(CONFIG) as gw:
        admin(gw.url, "POST", "/model/new", {"model_name": "stored", "litellm_params": {"model": "mock/echo"},
                                             "model_info": {"id": "s1"}})
        key = admin(gw.url, "POST", "/key/generate", {"models": ["team-models"]})["key"]
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        ask = {"model": "stored", "messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(**ask)  # type: ignore[call-overload]
        out = admin(gw.url, "POST", "/access_group/new", {"access_group": "team-models", "model_names": ["stored"]})
        assert out["models_updated"] == 1
        assert client.chat.completions.create(**ask).choices[0].message.content  # type: ignore[call-overload]
        assert admin(gw.url, "GET", "/access_group/list")["access_groups"][0]["model_names"] == ["stored"]
        admin(gw.url, "DELETE", "/access_group/team-models/delete")
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(**ask)  # type: ignore[call-overload]
