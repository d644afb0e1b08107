"""``request_tag_mappings`` through a real ``relaygate serve``: the openai SDK sends W3C ``baggage``; the mapped tags
are in the spend logs and ``/spend/tags``, and a request without the required key is LiteLLM's 400."""

from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import start_gateway
from tests.spend.test_spend_e2e import CONFIG as SPEND_CONFIG
from tests.spend.test_spend_e2e import MASTER, call

pytestmark = pytest.mark.e2e

CONFIG = SPEND_CONFIG + """  request_tag_mappings:
    - {key: tenant, tag_prefix: "tenant:", required: true}
    - {key: env, value: prod, tag: production}
"""
"""The spend e2e config (a priced mock model, its master key) with two rules under its ``general_settings``."""


def test_baggage_becomes_spend_tags() -> None:
    with start_gateway(CONFIG, workers=1) as gw:
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as client:
            r = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hello"}],
                extra_headers={"baggage": "tenant=acme%20corp,env=prod;ttl=1,unrelated=x"})
            call_id = r.headers["x-litellm-call-id"]
            with pytest.raises(openai.BadRequestError, match="Missing, invalid or unmapped baggage value for tenant"):
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}],
                                               extra_headers={"baggage": "env=prod"})
        deadline = time.monotonic() + 10
        while True:
            rows = call(gw.url, f"/spend/logs?request_id={call_id}", key=MASTER)[1]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {"tenant:acme corp", "production"} <= set(rows[0]["request_tags"])
        tags = {t["individual_request_tag"] for t in call(gw.url, "/spend/tags", key=MASTER)[1]}
        assert {"tenant:acme corp", "production"} <= tags
