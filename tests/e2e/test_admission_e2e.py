"""LiteLLM's per-worker admission control through a real ``relaygate serve`` (one worker): with one slot and no
waiting, a request arriving while a slow one is served gets LiteLLM's 503 ``overloaded_error`` with
``retry-after: 1``; the probe answers meanwhile, and once the slow request is done the slot serves the openai SDK
again."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.e2e

CONFIG = """model_list:
  - model_name: m
    litellm_params: {model: mock/echo, mock_latency_ms: 800}
general_settings:
  max_in_flight_requests_per_worker: 1
  max_queued_requests_per_worker: 0
"""


def test_one_slot_no_queue() -> None:
    with start_gateway(CONFIG, workers=1) as gw:
        async def burst() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as c:
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                slow = asyncio.ensure_future(c.post(gw.url + "/v1/chat/completions", json=body))
                await asyncio.sleep(0.3)  # the first holds the one slot
                refused = await c.post(gw.url + "/v1/chat/completions", json=body)
                probe = await c.get(gw.url + "/health/liveliness")
                return await slow, refused, probe

        served, refused, probe = asyncio.run(burst())
        assert served.status_code == 200 and probe.status_code == 200
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert refused.json()["error"]["message"] == \
            "Worker at capacity: 1 in-flight, 0 queued requests. Retry later."
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="none", max_retries=0) as client:
            assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
