"""Every adapter turns any OpenAI-shaped request into an upstream request or a GatewayError, never a crash.

Client bodies reach the adapters after only the view decode (``model``, ``messages`` as a list), so the
message contents, tools and params can be any JSON. Hypothesis throws odd shapes at each adapter's
``build_request`` / ``build_requests`` as the shell calls them: a shape the adapter cannot take must be a
``BadRequest`` raised on purpose (``providers/_check.py``); anything else is an adapter bug (a 500 in
production) and fails here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.config import from_litellm
from relaygate.core.errors import GatewayError
from relaygate.core.views import decode_view
from relaygate.providers import make_provider
from relaygate.providers.base import Call
from relaygate.upstream.base import Timeouts

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=32) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
        ["type", "text", "url", "image_url", "input_audio", "data", "format", "function", "name", "arguments",
         "id", "file", "file_data", "detail"]), c, max_size=3),
    max_leaves=10,
)
_part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio", "file", "x"])},
                              optional={"text": _json, "image_url": _json | st.fixed_dictionaries(
                                  {"url": st.sampled_from(["data:image/png;base64,iVBORw0KGgo=",
                                                           "https://example.com/a.png", "gs://b/c.png", ""])}),
                                        "input_audio": _json, "file": _json})
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "function"])},
    optional={"content": st.text(max_size=8) | st.lists(_part, max_size=3) | _json,
              "tool_calls": st.lists(st.fixed_dictionaries({"id": _json, "type": _json, "function": _json}),
                                     max_size=2) | _json,
              "tool_call_id": _json, "name": _json},
)
_request = st.fixed_dictionaries(
    {"messages": st.lists(_message, min_size=1, max_size=4)},
    optional={"tools": st.lists(st.fixed_dictionaries({"type": _json, "function": _json}), max_size=2) | _json,
              "tool_choice": _json, "max_tokens": _json, "stop": _json, "temperature": _json,
              "response_format": _json, "stream": st.booleans(), "n": _json, "top_p": _json},
)

MODELS = ["anthropic/claude-x", "gemini/gemini-x", "vertex_ai/gemini-x", "vertex_ai/claude-x",
          "bedrock/anthropic.claude-x", "cohere/command-r", "ollama/llama3", "ollama_chat/llama3", "azure/dep",
          "openai/gpt-x", "mock/echo"]


def _provider(model: str) -> Any:
    params: dict[str, Any] = {"model": model, "api_key": "k", "api_base": "http://127.0.0.1:9/v1"}
    if model.startswith("vertex_ai/"):
        params |= {"vertex_project": "p", "vertex_location": "us-central1"}
    if model.startswith("bedrock/"):
        params |= {"aws_access_key_id": "AKID", "aws_secret_access_key": "s", "aws_region_name": "us-east-1"}
    cfg = from_litellm({"model_list": [{"model_name": "m", "litellm_params": params}]}, "<fuzz>")
    return make_provider(cfg.deployments[0])


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_request)
def test_any_request_builds_or_fails_cleanly(model: str, req: dict[str, Any]) -> None:
    body = json.dumps({"model": "m", **req}).encode()
    try:
        view = decode_view("chat", body)
    except GatewayError:
        return
    provider = _provider(model)
    call = Call("chat", body, view, "m", provider.dep.upstream_model, 1_700_000_000.0)
    fn = provider.build_requests if provider.hooks else provider.build_request
    args = (call, {}) if provider.hooks else (call,)
    try:
        built = fn(*args)  # what the shell calls: anything else than a GatewayError is a 500
    except GatewayError:
        return
    if provider.transport is not None:  # the mock's in-process upstream answers 200 or 400, never raises
        resp = asyncio.run(provider.transport.send(built, Timeouts()))
        asyncio.run(resp.read())
        assert resp.status in (200, 400)
