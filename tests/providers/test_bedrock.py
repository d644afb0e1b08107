"""Bedrock adapter: SigV4 (checked against botocore), event-stream framing, Converse translation, errors."""

from __future__ import annotations

import struct
import time
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.bedrock import ConverseStream, EventStreamDecoder, SigV4, encode_frame, to_converse

from .conftest import call, chat, collect, feed_all, frames, normalize, provider, three_ways


def _event(name: str, obj: dict) -> bytes:
    return encode_frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                        orjson.dumps({**obj, "p": "abcdefgh"}))


STREAM = b"".join([
    _event("messageStart", {"role": "assistant"}),
    _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me"}}),
    _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " check – ü"}}),
    _event("contentBlockStop", {"contentBlockIndex": 0}),
    _event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1",
                                                                             "name": "get_weather"}}}),
    _event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
    _event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
    _event("contentBlockStop", {"contentBlockIndex": 1}),
    _event("messageStop", {"stopReason": "tool_use"}),
    _event("metadata", {"usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52,
                                  "cacheReadInputTokens": 4}, "metrics": {"latencyMs": 300}}),
])


def _stream() -> ConverseStream:
    return ConverseStream(call(chat([{"role": "user", "content": "x"}], stream=True,
                                    stream_options={"include_usage": True}), "m"))


def test_sigv4_matches_botocore() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    now = 1_700_000_000.0
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    body = b'{"messages":[]}'
    signer = SigV4("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-token", "us-west-2")
    ours = dict(signer.sign("POST", url, [("Content-Type", "application/json")], body, now))

    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-token"),
                     "bedrock", "us-west-2")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    req.context["timestamp"] = stamp
    req.headers["X-Amz-Date"] = stamp
    req.headers["X-Amz-Security-Token"] = "sess-token"
    canonical = auth.canonical_request(req)
    sig = auth.signature(auth.string_to_sign(req, canonical), req)
    assert ours["X-Amz-Date"] == stamp and ours["X-Amz-Security-Token"] == "sess-token"
    assert ours["Authorization"].endswith(f"Signature={sig}"), (canonical, ours["Authorization"])
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token" in ours["Authorization"]


def test_provider_urls_and_credentials() -> None:
    p = provider("bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0", aws_access_key_id="AK",
                 aws_secret_access_key="SK", aws_region_name="eu-west-1")
    r = p.build_request(call(chat([{"role": "user", "content": "hi"}], stream=True)))
    assert r.url == ("https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
                     "anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    h = dict(r.headers)
    assert h["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/") and "/eu-west-1/bedrock/" in h["Authorization"]
    key = provider("bedrock/m", api_key="bedrock-key").build_request(call(chat([{"role": "user", "content": "x"}])))
    assert ("Authorization", "Bearer bedrock-key") in key.headers


def test_request_translation() -> None:
    out = to_converse(chat([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "see", "cache_control": {"type": "ephemeral"}},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "assistant", "content": "ok", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "res"},
    ], max_tokens=10, temperature=0.1, top_p=0.5, stop="S", top_k=3,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], tool_choice="auto"),
        "m")
    assert out["system"] == [{"text": "sys"}]
    assert out["messages"][0]["content"] == [{"text": "see"}, {"cachePoint": {"type": "default"}},
                                             {"image": {"format": "png", "source": {"bytes": "iVBO"}}}]
    assert out["messages"][1]["content"] == [{"text": "ok"}, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]
    assert out["messages"][2]["content"] == [{"toolResult": {"toolUseId": "t1", "content": [{"text": "res"}]}}]
    assert out["inferenceConfig"] == {"maxTokens": 10, "temperature": 0.1, "topP": 0.5, "stopSequences": ["S"]}
    assert out["additionalModelRequestFields"] == {"top_k": 3}
    assert out["toolConfig"] == {"tools": [{"toolSpec": {"name": "f", "description": "f",
                                                         "inputSchema": {"json": {"type": "object"}}}}],
                                 "toolChoice": {"auto": {}}}
    with pytest.raises(errors.BadRequest, match="bedrock model `m`"):
        to_converse(chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]), "m")


def test_response_translation() -> None:
    body = orjson.dumps({"output": {"message": {"role": "assistant", "content": [
        {"text": "Hi"}, {"toolUse": {"toolUseId": "tu1", "name": "f", "input": {"x": 2}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
        "metrics": {"latencyMs": 10}})
    out = orjson.loads(provider("bedrock/m", api_key="k").translate_response(call(chat([{"role": "user", "content": "x"}])), body))
    assert out["choices"][0]["message"]["tool_calls"][0] == {"id": "tu1", "type": "function",
                                                             "function": {"name": "f", "arguments": "{\"x\":2}"}}
    assert out["choices"][0]["finish_reason"] == "tool_calls" and out["usage"]["total_tokens"] == 8


def test_event_stream_decoder_three_ways_and_crc() -> None:
    whole = EventStreamDecoder().feed(STREAM)
    assert len(whole) == 10 and whole[0][0][":event-type"] == "messageStart"
    d = EventStreamDecoder()
    one = [f for i in range(len(STREAM)) for f in d.feed(STREAM[i:i + 1])]
    assert one == whole and d.pending == 0
    bad = bytearray(STREAM)
    bad[30] ^= 0xFF
    with pytest.raises(errors.UpstreamProtocolError, match="CRC"):
        EventStreamDecoder().feed(bytes(bad))
    prelude = bytearray(STREAM[:12])
    prelude[3] ^= 1
    with pytest.raises(errors.UpstreamProtocolError, match="prelude"):
        EventStreamDecoder().feed(bytes(prelude))
    # typed headers other than strings
    hb = b"\x04flag\x00" + b"\x03num\x04" + struct.pack(">i", 7)
    total = 16 + len(hb)
    pre = struct.pack(">II", total, len(hb))
    msg = pre + struct.pack(">I", zlib.crc32(pre)) + hb
    msg += struct.pack(">I", zlib.crc32(msg))
    assert EventStreamDecoder().feed(msg) == [({"flag": True, "num": 7}, b"")]


def test_stream_translation() -> None:
    fs = frames(three_ways(_stream, STREAM))
    got = collect(fs)
    assert got["content"] == "Let me check – ü"
    assert got["tools"] == [{"id": "tooluse_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}]
    assert got["finish"] == "tool_calls" and got["usage"]["prompt_tokens"] == 44
    assert fs[-1] == "[DONE]"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_stream_random_splits(splits: list[int]) -> None:
    assert normalize(feed_all(_stream, STREAM, splits)) == normalize(feed_all(_stream, STREAM))


def test_stream_exception_frame_raises() -> None:
    t = _stream()
    t.feed(_event("messageStart", {"role": "assistant"}))
    exc = encode_frame({":exception-type": "throttlingException", ":content-type": "application/json",
                        ":message-type": "exception"}, b'{"message":"Too many requests, please wait"}')
    with pytest.raises(errors.GatewayError) as ei:
        t.feed(exc)
    assert ei.value.status == 429 and "BedrockException" in ei.value.message


def test_error_mapping() -> None:
    p = provider("bedrock/m", api_key="k")
    cw = p.map_error(400, b'{"message":"Input is too long for requested model."}', None)
    assert isinstance(cw, errors.ContextWindowExceeded)
    cw2 = p.map_error(400, b'{"message":"prompt is too long: 300000 tokens > 200000 maximum"}', None)
    assert isinstance(cw2, errors.ContextWindowExceeded)
    assert p.map_error(429, b'{"message":"Too many requests"}', None).status == 429
    assert "AuthenticationError" in p.map_error(401, b'{"message":"bad"}', None).message
    assert p.map_error(403, b'{"Message":"The security token included in the request is invalid."}', None).status == 403
    assert p.map_error(404, b'{"message":"Could not resolve the foundation model"}', None).status == 404


RF = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_json_mode_request_and_answer() -> None:
    """LiteLLM's JSON mode on Converse: ``response_format`` is one forced tool whose input is the answer's text."""
    out = to_converse(chat([{"role": "user", "content": "where?"}], response_format=RF), "m")
    assert out["toolConfig"] == {"tools": [{"toolSpec": {"name": "json_tool_call", "description": "json_tool_call",
                                                         "inputSchema": {"json": RF["json_schema"]["schema"]}}}],
                                 "toolChoice": {"tool": {"name": "json_tool_call"}}}
    obj = to_converse(chat([{"role": "user", "content": "x"}], response_format={"type": "json_object"},
                           thinking={"type": "enabled", "budget_tokens": 1024}), "m")
    assert "toolChoice" not in obj["toolConfig"]  # a forced tool is refused while thinking: only offered
    assert to_converse(chat([{"role": "user", "content": "x"}], response_format={"type": "text"}), "m").get(
        "toolConfig") is None
    c = call(chat([{"role": "user", "content": "where?"}], response_format=RF))
    body = orjson.dumps({"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "tu1", "name": "json_tool_call", "input": {"city": "Paris"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8}})
    msg = orjson.loads(provider("bedrock/m", api_key="k").translate_response(c, body))["choices"][0]
    assert orjson.loads(msg["message"]["content"]) == {"city": "Paris"} and not msg["message"].get("tool_calls")
    assert msg["finish_reason"] == "stop"
    stream = b"".join([
        _event("messageStart", {"role": "assistant"}),
        _event("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t",
                                                                                 "name": "json_tool_call"}}}),
        _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        _event("messageStop", {"stopReason": "tool_use"}),
        _event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8}}),
    ])
    got = collect(frames(three_ways(lambda: ConverseStream(call(chat(
        [{"role": "user", "content": "where?"}], stream=True, response_format=RF), "m")), stream)))
    assert got["content"] == "{\"city\":\"Paris\"}" and not got["tools"] and got["finish"] == "stop"
