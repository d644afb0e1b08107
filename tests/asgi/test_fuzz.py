"""Whatever a client sends, the app answers with a well-formed response and never a 500.

Hypothesis generates JSON values of every shape (and non-JSON bytes) for each LLM route; the app runs
in-process on the built-in mock provider, so every byte of the handling path runs except the network.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.asgi import Gateway

from .conftest import call, make_gateway

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "bogus", 3]),
                                  "content": _json})
_bodies = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": st.sampled_from(["mock-echo", "fixed", "nope", 7, None])},
        optional={"messages": st.lists(_message | _json, max_size=3) | _json, "stream": _json,
                  "stream_options": _json, "prompt": _json, "input": _json, "tools": _json,
                  "num_retries": _json, "timeout": _json, "fallbacks": _json, "encoding_format": _json},
    ).map(lambda d: json.dumps(d).encode()),
)

_GW: Gateway | None = None


def _gateway() -> Gateway:
    global _GW
    if _GW is None:
        _GW = make_gateway({
            "model_list": [
                {"model_name": "mock-echo", "litellm_params": {"model": "mock/echo", "mock_chunks": 3}},
                {"model_name": "fixed", "litellm_params": {"model": "mock/x", "mock_response": "ok"}},
            ],
            "relaygate_settings": {"stream_keepalive_interval": 0},
        })
    return _GW


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies)
def test_any_body_gets_a_well_formed_answer(path: str, body: bytes) -> None:
    r = asyncio.run(call(_gateway(), "POST", path, body))
    assert r.status < 500, (r.status, r.body)
    if r.status != 200:
        err: Any = orjson.loads(r.body)
        assert "error" in err
        if path != "/v1/messages":
            assert set(err["error"]) == {"message", "type", "param", "code"}
            assert err["error"]["code"] == str(r.status)
    elif r.headers.get("content-type") == "text/event-stream":
        assert r.body.endswith(b"data: [DONE]\n\n") or b"event: message_stop" in r.body
    else:
        orjson.loads(r.body)


_block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "document", "tool_result", "tool_use", "thinking", "x"])},
    optional={"text": _json, "source": _json, "content": _json, "input": _json, "id": _json, "name": _json,
              "tool_use_id": _json, "is_error": _json, "cache_control": _json},
)
_anthropic = st.fixed_dictionaries(
    {"model": st.just("mock-echo"), "max_tokens": st.just(16),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                                 "content": st.lists(_block, max_size=3) | st.text(max_size=5)}),
                          max_size=3)},
    optional={"system": _json, "tools": st.lists(st.dictionaries(st.sampled_from(
        ["name", "type", "input_schema", "description"]), _json), max_size=2), "tool_choice": _json,
        "stream": st.booleans(), "stop_sequences": _json, "metadata": _json},
).map(lambda d: json.dumps(d).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_anthropic)
def test_messages_api_nested_shapes(body: bytes) -> None:
    r = asyncio.run(call(_gateway(), "POST", "/v1/messages", body))
    assert r.status < 500, (r.status, r.body)
    if r.status != 200:
        assert orjson.loads(r.body)["type"] == "error"
