"""LiteLLM's ``cache_control_injection_points`` (``core.cache_points``) and message-level ``cache_control``: the
breakpoints put where the points say (role, index, negative and text indexes, at most 4, never over the client's
own), carried into Anthropic's blocks and Bedrock's cache points; a malformed setting refused at load and in a
request; and through a real ``relaygate serve`` with the openai SDK: a deployment's points reach a real Anthropic
stand-in, a request's replace them, and an OpenAI upstream never gets the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from relaygate.config.loader import ConfigError, load_config
from relaygate.core import cache_points
from relaygate.core.errors import BadRequest
from relaygate.providers.anthropic import to_anthropic
from relaygate.providers.bedrock import to_converse
from tests.conftest import http_server, start_gateway

EPH = {"type": "ephemeral"}


def chat(*messages: dict[str, Any], points: Any = None, **more: Any) -> dict[str, Any]:
    req: dict[str, Any] = {"model": "m", "messages": [dict(m) for m in messages], **more}
    if points is not None:
        req[cache_points.FIELD] = points
    return req


SYS = {"role": "system", "content": "You are terse."}
U1 = {"role": "user", "content": "first"}
A1 = {"role": "assistant", "content": "ok"}
U2 = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}


def test_injection_rules() -> None:
    req = chat(SYS, U1, A1, U2, points=[{"location": "message", "role": "system"},
                                        {"location": "message", "index": -1}])
    cache_points.inject(req)
    m = req["messages"]
    assert cache_points.FIELD not in req
    assert m[0]["cache_control"] == EPH and "cache_control" not in m[1] and "cache_control" not in m[2]
    assert m[3]["content"][-1]["cache_control"] == EPH and "cache_control" not in m[3]["content"][0]
    assert "cache_control" not in U2["content"][-1]  # the client's objects are not changed
    # an index as text, a ttl passed as given; index wins over role; out of range picks nothing
    req = chat(SYS, U1, A1, points=[{"location": "message", "index": "1", "role": "system",
                                     "control": {"type": "ephemeral", "ttl": "1h"}},
                                    {"location": "message", "index": 7}])
    cache_points.inject(req)
    assert [x.get("cache_control") for x in req["messages"]] == [None, {"type": "ephemeral", "ttl": "1h"}, None]
    # a role matching many messages: at most 4 breakpoints in all
    many = [{"role": "user", "content": f"q{i}"} for i in range(6)]
    req = chat(*many, points=[{"location": "message", "role": "user"}])
    cache_points.inject(req)
    assert sum("cache_control" in x for x in req["messages"]) == 4
    # the client set its own breakpoints: nothing is injected (a tool's counts too)
    for own in (chat({**U1, "cache_control": EPH}, A1, points=[{"location": "message", "index": -1}]),
                chat(U1, A1, points=[{"location": "message", "index": 0}], tools=[
                    {"type": "function", "function": {"name": "f", "parameters": {}}, "cache_control": EPH}])):
        before = json.dumps(own["messages"])
        cache_points.inject(own)
        assert json.dumps(own["messages"]) == before
    for bad in ("x", [{"location": "tool_config"}], [{"location": "message"}],
                [{"location": "message", "index": "last"}], [{"location": "message", "role": "user", "control": 3}]):
        with pytest.raises(BadRequest) as err:
            cache_points.inject(chat(U1, points=bad))
        assert err.value.param == cache_points.FIELD


def test_anthropic_messages_injection() -> None:
    """The same rules on a ``/v1/messages`` body: ``system`` marks the top-level system, texts become blocks."""
    req: dict[str, Any] = {"model": "c", "system": "Long rules.", "messages": [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": "q2"}]}
    assert cache_points.inject_messages(req, [{"location": "message", "role": "system"},
                                              {"location": "message", "index": -1}])
    assert req["system"] == [{"type": "text", "text": "Long rules.", "cache_control": EPH}]
    assert req["messages"][2]["content"] == [{"type": "text", "text": "q2", "cache_control": EPH}]
    assert req["messages"][0]["content"] == "q1"
    own = {"model": "c", "system": [{"type": "text", "text": "s", "cache_control": EPH}],
           "messages": [{"role": "user", "content": "q"}]}
    assert not cache_points.inject_messages(own, [{"location": "message", "index": -1}])  # the client's choice
    assert own["messages"][0]["content"] == "q"


def test_message_level_breakpoints_reach_anthropic_and_bedrock() -> None:
    tool_turn = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "42", "cache_control": EPH}]
    req = chat({**SYS, "cache_control": EPH}, {**U1, "cache_control": EPH}, {**A1, "cache_control": EPH}, *tool_turn)
    out = to_anthropic(json.loads(json.dumps(req)), "claude")
    assert out["system"] == [{"type": "text", "text": "You are terse.", "cache_control": EPH}]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "first", "cache_control": EPH}]
    assert out["messages"][1]["content"][0] == {"type": "text", "text": "ok", "cache_control": EPH}
    assert "cache_control" not in out["messages"][1]["content"][-1]  # the tool call's block: not marked
    assert out["messages"][2]["content"][-1]["type"] == "tool_result"
    assert out["messages"][2]["content"][-1]["cache_control"] == EPH
    conv = to_converse(chat({**SYS, "cache_control": EPH}, {**U1, "cache_control": EPH}, A1,
                            points=None), "anthropic.claude")
    assert conv["system"] == [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}]
    assert conv["messages"][0]["content"] == [{"text": "first"}, {"cachePoint": {"type": "default"}}]
    # injection points through the Bedrock translation
    conv = to_converse(chat(SYS, U1, points=[{"location": "message", "role": "user"}]), "anthropic.claude")
    assert conv["messages"][0]["content"][-1] == {"cachePoint": {"type": "default"}} and "cachePoint" not in \
        str(conv["system"])


def test_config_is_checked(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("""model_list:
  - model_name: c
    litellm_params:
      model: anthropic/claude-x
      api_key: k
      cache_control_injection_points: [{location: message, index: first}]
""")
    with pytest.raises(ConfigError, match="cache_control_injection_points"):
        load_config(str(p))
    p.write_text("""model_list:
  - model_name: c
    litellm_params:
      model: anthropic/claude-x
      api_key: k
      cache_control_injection_points: [{location: message, role: system}]
""")
    cfg = load_config(str(p))
    assert not [w for w in cfg.warnings if "cache_control" in w]


class _Upstream(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.seen.append((self.path, body))
        if self.path.endswith("/v1/messages"):
            out = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 10}}
        else:
            out = {"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"], "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    _Upstream.seen = []
    with http_server(_Upstream) as url:
        yield url


@pytest.mark.e2e
def test_through_relaygate_serve(upstream: str) -> None:
    cfg = f"""model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet
      api_base: {upstream}
      api_key: sk-ant-up
      cache_control_injection_points:
        - location: message
          role: system
  - model_name: gpt
    litellm_params: {{model: openai/gpt-x, api_base: {upstream}/v1, api_key: sk-up}}
general_settings:
  master_key: sk-cp-master
"""
    with start_gateway(cfg) as gw:
        client = openai.OpenAI(api_key="sk-cp-master", base_url=gw.url + "/v1")
        msgs: Any = [{"role": "system", "content": "Long shared instructions."}, {"role": "user", "content": "q"}]
        r = client.chat.completions.create(model="claude", messages=msgs)
        assert r.choices[0].message.content == "hi"
        path, body = _Upstream.seen[-1]
        assert path == "/v1/messages" and cache_points.FIELD not in body
        assert body["system"] == [{"type": "text", "text": "Long shared instructions.", "cache_control": EPH}]
        assert "cache_control" not in body["messages"][-1]["content"][-1]
        # the request's own points replace the deployment's
        client.chat.completions.create(model="claude", messages=msgs, extra_body={
            cache_points.FIELD: [{"location": "message", "index": -1, "control": {"type": "ephemeral", "ttl": "1h"}}]})
        body = _Upstream.seen[-1][1]
        assert "cache_control" not in body["system"][-1]
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        with pytest.raises(openai.BadRequestError, match=cache_points.FIELD):
            client.chat.completions.create(model="claude", messages=msgs, extra_body={cache_points.FIELD: "all"})
        # /v1/messages (the native passthrough): the deployment's points apply to Anthropic's own format
        ac = anthropic.Anthropic(api_key="sk-cp-master", base_url=gw.url)
        ac.messages.create(model="claude", max_tokens=10, system="Long shared instructions.",
                           messages=[{"role": "user", "content": "q"}])
        path, body = _Upstream.seen[-1]
        assert path == "/v1/messages" and cache_points.FIELD not in body
        assert body["system"] == [{"type": "text", "text": "Long shared instructions.", "cache_control": EPH}]
        assert body["messages"] == [{"role": "user", "content": "q"}]
        # an OpenAI upstream never gets LiteLLM's field
        client.chat.completions.create(model="gpt", messages=msgs, extra_body={
            cache_points.FIELD: [{"location": "message", "role": "system"}]})
        path, body = _Upstream.seen[-1]
        assert path == "/v1/chat/completions" and cache_points.FIELD not in body
