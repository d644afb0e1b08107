"""Gemini's thought signatures through chat: a signed ``functionCall`` part becomes a tool call whose id carries
the signature (LiteLLM's ``<id>__thought__<signature>``), unary and streamed (whole, byte by byte, random
splits), only on the calls Gemini signed; the id sent back becomes the part's ``thoughtSignature`` again, on
Gemini and on Vertex; plain ids are untouched and hostile ids are passed on, never a crash."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.providers.gemini import THOUGHT_SEP, GeminiStream, to_gemini

from .conftest import call, chat, collect, feed_all, frames, provider

SIG = "CiQB4/H/Xt5tdo+i0VpVKLh7ostYBjJuoSsH0WcK2KxV+1Lp0=="
SIG2 = "EpgBCpUBAWkUfRPnWX0Lt8BP/w=="
PARIS = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG}
ROME = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
PLAIN_ID = re.compile(r"call_[0-9a-f]{24}")


def _body(parts: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
                         "modelVersion": "gemini-3-pro", "responseId": "r1"})


def _message(parts: list[dict[str, Any]], model: str = "gemini/gemini-3-pro") -> dict[str, Any]:
    out = orjson.loads(provider(model).translate_response(call(chat([{"role": "user", "content": "x"}])),
                                                          _body(parts)))
    msg: dict[str, Any] = out["choices"][0]["message"]
    return msg


def _split(cid: str) -> tuple[str, str]:
    base, _, sig = cid.partition(THOUGHT_SEP)
    return base, sig


def test_separator_is_litellms() -> None:
    assert THOUGHT_SEP == "__thought__"


def test_unary_signed_call() -> None:
    msg = _message([{"text": "Let me check."}, PARIS])
    [tc] = msg["tool_calls"]
    base, sig = _split(tc["id"])
    assert PLAIN_ID.fullmatch(base) and sig == SIG
    assert tc["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert msg["content"] == "Let me check."
    # Gemini's own call id (Vertex sends one) is kept in front of the signature
    [own] = _message([{**PARIS, "functionCall": {**PARIS["functionCall"], "id": "fc-7"}}])["tool_calls"]
    assert own["id"] == "fc-7__thought__" + SIG
    [num] = _message([{**PARIS, "functionCall": {**PARIS["functionCall"], "id": 7}}])["tool_calls"]
    assert num["id"] == "7__thought__" + SIG  # an odd id from upstream is no crash


def test_unary_parallel_calls_keep_exactly_what_gemini_signed() -> None:
    first, second = _message([PARIS, ROME])["tool_calls"]
    assert _split(first["id"])[1] == SIG
    assert PLAIN_ID.fullmatch(second["id"]) and THOUGHT_SEP not in second["id"]
    # two signed calls (sequential steps answered at once): each keeps its own
    a, b = _message([PARIS, {**ROME, "thoughtSignature": SIG2}])["tool_calls"]
    assert (_split(a["id"])[1], _split(b["id"])[1]) == (SIG, SIG2)


def test_unsigned_calls_and_text_signatures_leave_ids_plain() -> None:
    msg = _message([{"text": "Hi", "thoughtSignature": SIG2}, ROME, {"functionCall": {"name": "t"},
                                                                     "thoughtSignature": ""}])
    assert msg["content"] == "Hi"
    assert all(PLAIN_ID.fullmatch(tc["id"]) for tc in msg["tool_calls"])
    # a signature that is not a string is not Gemini's: no id carries it
    [odd] = _message([{**ROME, "thoughtSignature": {"x": 1}}])["tool_calls"]
    assert PLAIN_ID.fullmatch(odd["id"])


# ------------------------------------------------------------------------------------------------ streams


def _sse(objs: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)


def _ev(parts: list[dict[str, Any]], finish: bool = False) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = "STOP"
    return {"candidates": [cand], "modelVersion": "gemini-3-pro", "responseId": "resp-3"}


def _with_id(part: dict[str, Any], cid: str) -> dict[str, Any]:
    return {**part, "functionCall": {**part["functionCall"], "id": cid}}


#: thoughts, text with a signature-only part, then a parallel step (first call signed) and a signed call;
#: the calls carry Gemini ids, so every run of the translator gives the same bytes
STREAM = _sse([
    _ev([{"text": "thinking", "thought": True}]),
    _ev([{"text": "Checking – ünïcode"}]),
    _ev([{"text": "", "thoughtSignature": SIG2}]),
    _ev([_with_id(PARIS, "fc-1"), _with_id(ROME, "fc-2")]),
    _ev([_with_id({**ROME, "thoughtSignature": SIG2}, "fc-3")], finish=True),
])


def _stream(model: str = "gemini/gemini-3-pro") -> GeminiStream:
    t = provider(model).stream_translator(call(chat([{"role": "user", "content": "x"}], stream=True)))
    assert isinstance(t, GeminiStream)
    return t


def _check_stream(out: bytes) -> None:
    got = collect(frames(out))
    assert [t["id"] for t in got["tools"]] == ["fc-1__thought__" + SIG, "fc-2", "fc-3__thought__" + SIG2]
    assert got["content"] == "Checking – ünïcode" and got["reasoning"] == "thinking"
    assert got["finish"] == "tool_calls"


def test_stream_whole_and_byte_by_byte() -> None:
    whole = feed_all(_stream, STREAM)
    _check_stream(whole)
    assert feed_all(_stream, STREAM, list(range(1, len(STREAM)))) == whole


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=25))
def test_stream_random_splits(splits: list[int]) -> None:
    out = feed_all(_stream, STREAM, splits)
    _check_stream(out)
    assert out == feed_all(_stream, STREAM)


def test_stream_generated_ids_carry_the_signature() -> None:
    out = feed_all(_stream, _sse([_ev([PARIS, ROME], finish=True)]))
    first, second = collect(frames(out))["tools"]
    base, sig = _split(first["id"])
    assert PLAIN_ID.fullmatch(base) and sig == SIG
    assert PLAIN_ID.fullmatch(second["id"])


# ----------------------------------------------------------------------------------------------- requests


def _loop(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The next step of a tool loop as an OpenAI client sends it: the assistant message as it came, one
    result per call."""
    results = [{"role": "tool", "tool_call_id": tc["id"], "content": f"{i}C"}
               for i, tc in enumerate(msg["tool_calls"])]
    return [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": msg.get("content"),
                                                       "tool_calls": msg["tool_calls"]}, *results]


@pytest.mark.parametrize("model", ["gemini/gemini-3-pro", "vertex_ai/gemini-3-pro"])
def test_request_round_trip_sends_back_exactly_the_parts_gemini_sent(model: str) -> None:
    extra = {"vertex_project": "p", "api_key": "k"} if model.startswith("vertex") else {"api_key": "k"}
    p = provider(model, **extra)
    parts = [{"text": "Let me check."}, PARIS, ROME]
    msg = orjson.loads(p.translate_response(call(chat([{"role": "user", "content": "x"}])), _body(parts))
                       )["choices"][0]["message"]
    for stream in (False, True):
        body = orjson.loads(p.build_request(call(chat(_loop(msg), stream=stream))).body)
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": parts},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "0C"}}},
                                       {"functionResponse": {"name": "get_weather", "response": {"content": "1C"}}}]}]


def test_streamed_calls_round_trip() -> None:
    got = collect(frames(feed_all(_stream, STREAM)))
    calls = [{"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": t["arguments"]}}
             for t in got["tools"]]
    out = to_gemini(chat(_loop({"content": got["content"], "tool_calls": calls})), "gemini", "g")
    assert [p.get("thoughtSignature") for p in out["contents"][1]["parts"]] == [None, SIG, None, SIG2]


def test_plain_ids_are_unchanged() -> None:
    req = chat([{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_b", "content": "2"},
                {"role": "tool", "tool_call_id": "call_a", "content": "1"}])
    out = to_gemini(req, "gemini", "g")
    assert out["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}},
                                    {"functionCall": {"name": "g", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {"content": 2}}},
                                   {"functionResponse": {"name": "f", "response": {"content": 1}}}]}]


def test_litellm_provider_specific_fields_come_first() -> None:
    def part(tc: dict[str, Any]) -> dict[str, Any]:
        req = chat([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{}"}, **tc}]}])
        got: dict[str, Any] = to_gemini(req, "gemini", "g")["contents"][1]["parts"][0]
        return got

    assert part({"id": "call_a" + THOUGHT_SEP + SIG2, "provider_specific_fields": {"thought_signature": SIG}}
                )["thoughtSignature"] == SIG
    assert part({"id": "call_a", "function": {"name": "f", "arguments": "{}",
                                              "provider_specific_fields": {"thought_signature": SIG}}}
                )["thoughtSignature"] == SIG
    assert part({"id": "call_a" + THOUGHT_SEP + SIG2, "provider_specific_fields": "junk"})["thoughtSignature"] == SIG2
    assert "thoughtSignature" not in part({"id": "call_a", "provider_specific_fields": {"thought_signature": 7}})


@pytest.mark.parametrize(("call_id", "result_id"), [
    ("call_a" + THOUGHT_SEP + SIG, "call_a"),  # the result lost the signature
    ("call_a", "call_a" + THOUGHT_SEP + SIG),  # the call lost it (and goes unsigned)
])
def test_a_result_finds_its_call_whichever_side_kept_the_signature(call_id: str, result_id: str) -> None:
    req = chat([{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": result_id, "content": "20C"}])
    out = to_gemini(req, "gemini", "g")
    assert out["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"


# ------------------------------------------------------------------------------------------- hostile ids


def _sent(cid: str) -> dict[str, Any]:
    """The first model part the Gemini adapter sends for a call with this id, through the provider."""
    req = chat([{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": cid, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": cid, "content": "ok"}])
    body = orjson.loads(provider("gemini/gemini-3-pro", api_key="k").build_request(call(req)).body)
    part: dict[str, Any] = body["contents"][1]["parts"][0]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "f"
    return part


def test_hostile_ids_are_passed_on_as_litellm_does() -> None:
    huge = "call_x" + THOUGHT_SEP + "!not base64 \u00e9\u4e2d\"\\\n" * 100_000
    assert _sent(huge)["thoughtSignature"] == huge.partition(THOUGHT_SEP)[2]  # Gemini judges it (its own 400)
    assert _sent("a" + THOUGHT_SEP + "b" + THOUGHT_SEP + "c")["thoughtSignature"] == "b" + THOUGHT_SEP + "c"
    for empty in (THOUGHT_SEP, "call_x" + THOUGHT_SEP):
        assert "thoughtSignature" not in _sent(empty)
    assert _sent(THOUGHT_SEP + SIG)["thoughtSignature"] == SIG


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_id_translates(base: str, tail: str) -> None:
    cid = base + THOUGHT_SEP + tail
    part = _sent(cid)
    sig = cid.partition(THOUGHT_SEP)[2]
    assert part.get("thoughtSignature") == (sig or None)
    assert part["functionCall"] == {"name": "f", "args": {}}
