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


BUDGET_CONFIG = f"""model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
    model_info:
      input_cost_per_token: 0.001
      output_cost_per_token: 0.001
general_settings:
  master_key: {MASTER}
  proxy_batch_write_at: 0
"""


def test_reset_spend_frees_a_spent_budget_on_every_worker() -> None:
    """A key over its budget on a real two-worker gateway: the openai SDK gets LiteLLM's 422 from whichever worker
    it reaches; once ``/key/{key}/reset_spend`` set its spend back to 0, it is answered again (each request costs
    more than the budget, so one answer spends it again)."""
    with start_gateway(BUDGET_CONFIG, workers=2) as gw:
        key = post(gw.url, "/key/generate", {"max_budget": 0.0001})["key"]
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)

        def ask() -> bool:
            try:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
            except openai.UnprocessableEntityError as exc:
                assert "Budget has been exceeded" in str(exc)
                return False
            return True

        deadline = time.monotonic() + 10
        refusals = 0
        while refusals < 6:  # six refusals in a row: the requests spread over both workers
            refusals = 0 if ask() else refusals + 1
            assert time.monotonic() < deadline, "the spent budget never refused the key"
        time.sleep(1.5)  # every completion written to the key's row (proxy_batch_write_at: 0)
        out = post(gw.url, f"/key/{key}/reset_spend", {"reset_to": 0})
        assert out["spend"] == 0.0 and out["previous_spend"] > 0.0001
        deadline = time.monotonic() + 5
        while not ask():  # the worker that reset it at once, the other within the ~1 s change poll
            assert time.monotonic() < deadline, "the reset key is still refused"
            time.sleep(0.1)
