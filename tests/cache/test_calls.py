"""The cached call types' rules (``cache.calls``, ``cache.form``, ``replay_anthropic``, ``replay_responses``):
what the key is computed over for ``/v1/messages``, ``/v1/responses`` and transcriptions, how an upload is
taken apart, and that a hit's stream assembles back into the stored answer."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from relaygate.cache import calls
from relaygate.cache.form import read_form
from relaygate.cache.key import cache_key
from relaygate.cache.replay_anthropic import fresh_message, message_stream
from relaygate.cache.replay_responses import fresh_response, response_stream
from relaygate.config.cache import from_litellm
from relaygate.core.assemble import MessagesAssembler, ResponsesAssembler
from relaygate.frontends import anthropic, responses
from relaygate.pipeline.exchange import Exchange


def _messages(req: dict[str, Any], beta: str | None = None) -> Exchange:
    ex = Exchange("messages", 0.0, None)  # type: ignore[arg-type]  # material() reads no runtime
    ex.state = anthropic._State(orjson.dumps(req), [("anthropic-beta", beta)] if beta else [], req)
    return ex


def _key(ex: Exchange) -> str:
    body = calls.material(ex)
    assert body is not None
    return cache_key(ex.route, "m", body)


def test_messages_key_ignores_framing_and_splits_on_the_answer() -> None:
    base = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    key = _key(_messages(base))
    assert _key(_messages({**base, "stream": True, "metadata": {"user_id": "u2"}, "model": "alias"})) == key
    assert _key(_messages(dict(reversed(list(base.items()))))) == key
    assert _key(_messages({**base, "temperature": 0.2})) != key
    assert _key(_messages({**base, "system": "be brief"})) != key
    assert _key(_messages(base, beta="output-128k-2025-02-19")) != key  # the beta header changes the answer


def _responses(req: dict[str, Any], background: bool = False) -> Exchange:
    ex = Exchange("responses", 0.0, None)  # type: ignore[arg-type]
    st = ex.state = responses._State(b"{}", {}, None)
    st.req, st.background = req, background
    return ex


def test_responses_key_is_over_the_resolved_conversation_without_item_ids() -> None:
    turn = [{"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"id": "msg_2", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "b"}]},
            {"role": "user", "content": "next"}]
    other_ids = [{**it, "id": "msg_x" + str(i)} if "id" in it else it for i, it in enumerate(turn)]
    key = _key(_responses({"model": "m", "input": turn, "store": True}))
    assert _key(_responses({"model": "m", "input": other_ids, "store": False, "metadata": {"a": "b"}})) == key
    assert _key(_responses({"model": "m", "input": turn[2:]})) != key  # another conversation
    assert _key(_responses({"model": "m", "input": turn, "instructions": "x"})) != key
    ref = [{"type": "item_reference", "id": "msg_1"}]
    assert _key(_responses({"model": "m", "input": ref})) != _key(_responses({"model": "m", "input": [
        {"type": "item_reference", "id": "msg_2"}]}))  # a reference's id is what it says
    assert calls.material(_responses({"model": "m", "input": "x"}, background=True)) is None


def _upload(parts: list[tuple[str, bytes, str | None]], boundary: bytes = b"XyZ") -> bytes:
    out = b""
    for name, value, filename in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        ctype = b"Content-Type: audio/wav\r\n" if filename else b""
        out += b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n" + ctype + b"\r\n" + value \
            + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def test_a_form_is_keyed_by_its_fields_and_the_file_hash() -> None:
    audio = b"RIFF\x00\x01--XyZ not a delimiter\r\n\r\n"
    body = _upload([("model", b"w", None), ("language", b"fr", None), ("timestamp_granularities[]", b"word", None),
                    ("timestamp_granularities[]", b"segment", None), ("file", audio, "a.wav")])
    form = read_form(body, b"XyZ")
    assert form is not None and form.controls is None and form.body is body
    assert form.fields == {"model": "w", "language": "fr", "timestamp_granularities": ["word", "segment"],
                           "file": {"sha256": hashlib.sha256(audio).hexdigest()}}
    renamed = read_form(_upload([("model", b"w2", None), ("file", audio, "other.mp3"), ("language", b"fr", None),
                                 ("timestamp_granularities[]", b"word", None),
                                 ("timestamp_granularities[]", b"segment", None)]), b"XyZ")
    assert renamed is not None
    assert cache_key("transcriptions", "w", renamed.fields) == cache_key("transcriptions", "w", form.fields)
    other = read_form(_upload([("model", b"w", None), ("file", audio + b"!", "a.wav")]), b"XyZ")
    assert other is not None and other.fields["file"] != form.fields["file"]
    assert read_form(body[:-10], b"XyZ") is None  # no closing delimiter: not cached, sent as it came


def test_form_cache_controls_are_read_and_removed() -> None:
    parts = [("model", b"w", None), ("cache[no-cache]", b"true", None), ("cache[ttl]", b"30", None),
             ("file", b"abc", "a.wav")]
    form = read_form(_upload(parts), b"XyZ")
    assert form is not None and form.controls == {"no-cache": True, "ttl": 30}
    assert form.body == _upload([parts[0], parts[3]]) and "cache" not in form.fields
    form = read_form(_upload([("cache", b'{"no-store": true}', None), ("model", b"w", None)]), b"XyZ")
    assert form is not None and form.controls == {"no-store": True} and form.body == _upload([("model", b"w", None)])


def test_call_types_map_to_routes() -> None:
    warnings: list[str] = []
    s = from_litellm(True, {"type": "local", "supported_call_types": ["anthropic_messages", "aresponses",
                                                                      "transcription", "arerank", "amoderation"]},
                     warnings)
    assert s is not None and s.routes == {"messages", "responses", "transcriptions", "rerank"}
    assert warnings == ["litellm_settings.cache_params.supported_call_types: 'amoderation' is not cached yet"]


MESSAGE = {"id": "msg_orig", "type": "message", "role": "assistant", "model": "up", "stop_reason": "tool_use",
           "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 0},
           "content": [{"type": "thinking", "thinking": "t" * 600, "signature": "sig"},
                       {"type": "text", "text": "x" * 700},
                       {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}]}


def test_a_message_stream_hit_assembles_into_the_stored_message() -> None:
    frames = b"".join(message_stream(orjson.dumps(MESSAGE), "msg_new", "asked"))
    assert frames.startswith(b"event: message_start\n") and frames.endswith(b'data: {"type":"message_stop"}\n\n')
    asm = MessagesAssembler()
    asm.feed_frames(frames)
    assert asm.complete
    assert orjson.loads(asm.answer(0)) == {**MESSAGE, "id": "msg_new", "model": "asked"}
    assert orjson.loads(fresh_message(orjson.dumps(MESSAGE), "msg_2", "asked")) == {**MESSAGE, "id": "msg_2",
                                                                                     "model": "asked"}


RESPONSE = {"id": "resp_" + "a" * 32, "object": "response", "created_at": 1, "status": "completed", "model": "up",
            "store": True, "previous_response_id": None, "metadata": {}, "background": False,
            "output": [{"id": "rs_" + "a" * 32 + "00", "type": "reasoning", "status": "completed",
                        "summary": [{"type": "summary_text", "text": "why"}]},
                       {"id": "msg_" + "a" * 32 + "01", "type": "message", "role": "assistant",
                        "status": "completed", "content": [{"type": "output_text", "text": "y" * 600,
                                                            "annotations": [], "logprobs": []}]},
                       {"id": "fc_upstream", "type": "function_call", "call_id": "c1", "name": "f",
                        "arguments": '{"a":1}', "status": "completed"}],
            "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}


def test_a_response_hit_is_a_new_response_and_streams_back_whole() -> None:
    rid = "resp_" + "b" * 32
    obj = fresh_response(orjson.dumps(RESPONSE), rid, 99, "asked", {"store": False, "metadata": {"k": "v"},
                                                                     "temperature": 2})
    assert obj is not None and obj["id"] == rid and obj["created_at"] == 99 and obj["model"] == "asked"
    assert [it["id"] for it in obj["output"]] == ["rs_" + "b" * 32 + "00", "msg_" + "b" * 32 + "01", "fc_upstream"]
    assert obj["store"] is False and obj["metadata"] == {"k": "v"} and "temperature" not in obj
    frames = b"".join(response_stream(obj))
    events = [orjson.loads(line[6:]) for line in frames.split(b"\n") if line.startswith(b"data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "y" * 600 and max(len(e.get("delta", "")) for e in events) <= 256
    asm = ResponsesAssembler()
    asm.feed_frames(frames)
    assert asm.complete and orjson.loads(asm.answer(0)) == obj
