"""Adapters read no clock: ``created`` stamps and SigV4 dates come from ``Call.now``, set by the shell."""

from __future__ import annotations

import orjson

from .conftest import call, chat, provider

NOW = 1_234_567_890.0


def test_bedrock_signs_with_the_calls_time() -> None:
    p = provider("bedrock/anthropic.claude-3-haiku", aws_access_key_id="AKID", aws_secret_access_key="s",
                 aws_region_name="us-east-1")
    req = p.build_request(call(chat([{"role": "user", "content": "hi"}]), "anthropic.claude-3-haiku", now=NOW))
    assert dict(req.headers)["X-Amz-Date"] == "20090213T233130Z"


def test_translated_answers_are_stamped_with_the_calls_time() -> None:
    c = call(chat([{"role": "user", "content": "hi"}]), "claude-x", now=NOW)
    body = orjson.dumps({"id": "msg_1", "model": "claude-x", "content": [{"type": "text", "text": "yo"}],
                         "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}})
    out = orjson.loads(provider("anthropic/claude-x", api_key="k").translate_response(c, body))
    assert out["created"] == int(NOW)
    tr = provider("anthropic/claude-x", api_key="k").stream_translator(c)
    frames = tr.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-x",'
                     b'"usage":{"input_tokens":1}}}\n\n')
    assert orjson.loads(frames.split(b"data: ", 1)[1].split(b"\n", 1)[0])["created"] == int(NOW)
