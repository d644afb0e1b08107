"""What a spend-log row keeps of a request and its answer (``sinks.prompts``): credentials masked, long strings
cut, redaction, LiteLLM's ``latest_turn`` and the tenant opt-out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.sinks.prompts import (
    MAX_DEPTH,
    REDACTED,
    Prompts,
    latest_turn,
    max_string_length,
    request_text,
    response_text,
    sanitized,
    tenant_allows,
    truncated,
)


def test_credentials_are_masked_except_in_content() -> None:
    body = {"model": "m", "api_key": "sk-1", "x-api-key": "sk-2", "secret_fields": {"raw_headers": {"a": "b"}},
            "max_tokens": 5, "input_cost_per_token": 0.1, "metadata": {"access_token": "t", "user": "u"},
            "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": '{"api_key": "k"}'}}]},
                         {"role": "tool", "content": [{"type": "text", "text": "token"}]}],
            "extra_body": {"vertex_credentials": "json", "password": 12}}
    out = sanitized(body, 2048)
    assert out["api_key"] == out["x-api-key"] == out["metadata"]["access_token"] == REDACTED
    assert "secret_fields" not in out
    assert out["max_tokens"] == 5 and out["input_cost_per_token"] == 0.1 and out["metadata"]["user"] == "u"
    assert out["extra_body"] == {"vertex_credentials": REDACTED, "password": 12}  # a number is no credential
    assert out["messages"] == body["messages"]  # what a model wrote or read stays as it was


def test_tool_content_keeps_its_keys() -> None:
    """A tool's output and a tool call's input are content: a ``key`` field in them is not a credential."""
    block = {"role": "user", "content": [{"type": "tool_result", "content": {"key": "value"}},
                                         {"type": "tool_use", "input": {"api_key": "shown"}}]}
    assert sanitized(block, 2048) == block


def test_long_strings_are_cut_around_the_marker() -> None:
    text = "a" * 1000 + "b" * 4000
    cut = truncated(text, 2048)
    head, tail = int(2048 * 0.35), int(2048 * 0.65)
    assert cut.startswith("a" * head + "... (litellm_truncated skipped ") and cut.endswith("b" * tail)
    assert f"skipped {len(text) - head - tail} chars." in cut and "MAX_STRING_LENGTH_PROMPT_IN_DB" in cut
    assert truncated("short", 2048) == "short"
    assert sanitized({"content": [{"type": "image_url", "image_url": {"url": text}}]}, 100)["content"][0][
        "image_url"]["url"] == truncated(text, 100)


def test_the_limit_comes_from_the_environment() -> None:
    assert max_string_length({}) == 2048
    assert max_string_length({"MAX_STRING_LENGTH_PROMPT_IN_DB": "500"}) == 500
    assert max_string_length({"MAX_STRING_LENGTH_PROMPT_IN_DB": "lots"}) == 2048
    assert max_string_length({"MAX_STRING_LENGTH_PROMPT_IN_DB": "-3"}) == 2048


def test_deep_nesting_is_cut() -> None:
    value: object = "x"
    for _ in range(MAX_DEPTH + 50):
        value = [value]
    out = sanitized(value, 10)
    depth = 0
    while isinstance(out, list):
        out, depth = out[0], depth + 1
    assert out is None and depth == MAX_DEPTH


def test_latest_turn() -> None:
    body = {"model": "m", "temperature": 0.2, "tools": [{"type": "function"}],
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                         {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "text", "text": "look"},
                                                      {"type": "image_url", "image_url": {"url": "data:..."}},
                                                      {"type": "text", "text": "here"}]}]}
    assert latest_turn(body, "chat") == {"model": "m", "messages": [
        {"role": "user", "content": "look\n[image omitted]\nhere"}]}
    # a tool result is no user turn; an assistant last turn neither: the model alone
    tool = {"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "r"}]}]}
    assert latest_turn(tool, "messages") == {"model": "m"}
    assert latest_turn({"model": "m", "messages": [{"role": "assistant", "content": "x"}]}, "chat") == {"model": "m"}
    # Responses: a string input, and a continued conversation kept whole
    assert latest_turn({"model": "m", "input": "hi", "instructions": "sys"}, "responses") == {
        "model": "m", "input": [{"role": "user", "content": "hi"}]}
    chained = {"model": "m", "input": "again", "previous_response_id": "resp_1"}
    assert latest_turn(chained, "responses") == chained
    assert latest_turn({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "a"}, {"type": "input_file", "file_id": "f"}]}]}, "responses") == {
        "model": "m", "input": [{"role": "user", "content": "a\n[file omitted]"}]}


def test_columns() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "p", "temperature": 1}
    answer = {"id": "c1", "choices": [{"message": {"role": "assistant", "content": "yo"}}]}
    p = Prompts(body, answer, False, "chat")
    assert json.loads(request_text(p, False, 2048)) == body
    assert json.loads(request_text(p, True, 2048)) == {"model": "m", "messages": body["messages"]}
    assert json.loads(response_text(p, 2048)) == answer
    redacted = Prompts(body, None, True, "chat")
    assert json.loads(request_text(redacted, False, 2048)) == {
        "model": "m", "messages": [{"role": "user", "content": REDACTED}], "prompt": "", "input": "",
        "temperature": 1}
    assert response_text(redacted, 2048) == "{}"
    # a body that was not JSON, or not an object; an answer that is not an object
    assert request_text(Prompts(None, None, False, "chat"), False, 2048) == "{}"
    assert request_text(Prompts(b"[1]", None, False, "chat"), False, 2048) == "{}"
    assert request_text(Prompts(b'{"model": "m"}', None, False, "chat"), False, 2048) == '{"model": "m"}'  # as sent
    assert json.loads(response_text(Prompts(None, "text", False, "chat"), 2048)) == {"content": "text"}


def test_tenant_opt_out() -> None:
    assert tenant_allows(None, {}) and tenant_allows({"store_prompts_in_spend_logs": True})
    assert not tenant_allows({"store_prompts_in_spend_logs": False}, None)
    assert not tenant_allows(None, {"store_prompts_in_spend_logs": "false"})


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=30))
def test_any_body_gives_json(value: object) -> None:
    """Whatever a client sends, the column is a JSON object with no string past the limit."""
    for body in ({"model": "m", "x": value}, {"model": "m", "messages": value}, {"input": value, "conversation": 1}):
        for latest in (False, True):
            for route in ("chat", "responses"):
                assert isinstance(json.loads(request_text(Prompts(body, value, True, route), latest, 20)), dict)
    text = request_text(Prompts({"model": "m", "x": value}, value, False, "chat"), False, 20)
    assert isinstance(json.loads(text), dict)

    def walk(v: object) -> None:
        if isinstance(v, str):
            assert len(v) <= 20 or "litellm_truncated" in v
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(json.loads(text))


_KEYS = st.sampled_from(["model", "api_key", "max_tokens", "x-Token", "content", "role", "keyboard", "cost_key",
                         "secret_fields", "arguments", "type", "tool_result", "Access", "é_key", "a\x00b"])


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=30) | st.sampled_from(["key", "tool", "x" * 40]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS | st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=25),
       st.sampled_from([20, 2048]))
def test_bytes_as_received_store_what_the_decoded_body_would(value: object, limit: int) -> None:
    """The sink's verbatim path (the body or answer stored as received when nothing in it would change) stores
    exactly what masking and cutting the decoded value would."""
    import msgspec

    doc = {"model": "m", "v": value}
    raw = msgspec.json.encode(doc)
    decoded = Prompts(doc, doc, False, "chat")
    received = Prompts(raw, raw, False, "chat")
    assert json.loads(request_text(received, False, limit)) == json.loads(request_text(decoded, False, limit))
    assert json.loads(response_text(received, limit)) == json.loads(response_text(decoded, limit))


def test_bytes_held_for_the_spend_logs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bodies and answers alive in a worker count against ``HELD_MAX`` until their ``Prompts`` goes (its row
    written or its record dropped); past it a request keeps nothing and its row says so."""
    from relaygate.sinks import prompts

    monkeypatch.setattr(prompts, "HELD_MAX", prompts.held() + 1000)
    body = b'{"model": "m", "messages": []}'
    kept = [Prompts(body, b'{"id": "x"}', False, "chat") for _ in range(40)]  # ~41 bytes each
    assert all(p.kept for p in kept[:len(kept) // 2]) and not kept[-1].kept
    last = kept[-1]
    assert request_text(last, False, 2048) == prompts.NOT_KEPT and response_text(last, 2048) == "{}"
    del kept[:]  # rows written: their bytes are given back
    assert Prompts(body, None, False, "chat").kept
