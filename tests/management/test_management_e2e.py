"""A real ``relaygate serve`` (two workers, SQLite beside the config): a key made by ``/key/generate`` serves the real
openai SDK, is limited to its models, and stops working once deleted."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import openai
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-mgmt-master"
CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
  - model_name: other
    litellm_params:
      model: mock/echo
general_settings:
  master_key: {MASTER}
"""


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(f"{url}{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_generated_key_serves_the_openai_sdk() -> None:
    with start_gateway(CONFIG, workers=2) as gw:
        out = post(gw.url, "/key/generate", {"key_alias": "sdk", "models": ["chat"]})
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=out["key"], max_retries=0)
        answer = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
        assert answer.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="other", messages=[{"role": "user", "content": "hello"}])
        assert post(gw.url, "/key/delete", {"key_aliases": ["sdk"]}) == {"deleted_keys": ["sdk"]}
        deadline = time.monotonic() + 3
        while True:  # the worker that deleted it forgets it at once, the other within the ~1 s change poll
            try:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            except openai.AuthenticationError:
                break
            assert time.monotonic() < deadline, "deleted key still answers"
            time.sleep(0.1)
