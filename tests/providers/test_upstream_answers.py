"""Rules for 2xx upstream answers that are not what the API promises (sans-IO, every adapter)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.base import SHAPE_ERRORS, json_object, stream_head_error

from .conftest import call, chat, provider

ADAPTERS = {
    "openai/x": {"api_key": "k"}, "azure/x": {"api_key": "k", "api_version": "v"}, "gemini/x": {"api_key": "k"},
    "vertex_ai/gemini-x": {"api_key": "k", "vertex_project": "p"}, "bedrock/x": {"api_key": "k"},
    "ollama/x": {}, "ollama_chat/x": {}, "cohere/x": {"api_key": "k"}, "anthropic/x": {"api_key": "k"},
}
NATIVE = {"bedrock/x": b"application/vnd.amazon.eventstream", "ollama/x": b"application/x-ndjson",
          "ollama_chat/x": b"application/x-ndjson"}


@pytest.mark.parametrize("body", [b'{"a":1}', b' \n{"a":1}\r\n', b"{}"])
def test_json_object_passes_objects(body: bytes) -> None:
    assert json_object(body, "x") is body


@pytest.mark.parametrize("body", [b"", b"  ", b"<html></html>", b"[1]", b'"s"', b"null", b'{"a":1', b'{"a":[1,',
                                  b"\xef\xbb\xbf<html>"])
def test_json_object_refuses_the_rest(body: bytes) -> None:
    with pytest.raises(errors.UpstreamProtocolError) as ei:
        json_object(body, "x")
    assert ei.value.status == 502


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=40))
def test_json_object_is_a_body_or_a_502(body: bytes) -> None:
    try:
        assert json_object(body, "x") is body
    except errors.UpstreamProtocolError:
        assert not (body.strip()[:1] == b"{" and body.strip()[-1:] == b"}")


@pytest.mark.parametrize("model", sorted(ADAPTERS))
def test_passthrough_unary_of_html_is_a_502(model: str) -> None:
    p = provider(model, api_base="http://up.test", **ADAPTERS[model])
    c = call(chat([{"role": "user", "content": "hi"}]))
    # translating adapters parse the body (a shape error the shell turns into a 502); passthrough checks it
    with pytest.raises((errors.UpstreamProtocolError, *SHAPE_ERRORS)):
        p.translate_response(c, b"<html>502</html>")


@pytest.mark.parametrize("model", sorted(ADAPTERS))
def test_stream_content_type(model: str) -> None:
    p = provider(model, api_base="http://up.test", **ADAPTERS[model])
    native = NATIVE.get(model, b"text/event-stream")
    assert stream_head_error(p, native) is None
    assert stream_head_error(p, native.upper() + b"; charset=utf-8") is None
    assert stream_head_error(p, None) is None  # absent: the translator judges the bytes
    for bad in (b"text/html", b"text/html; charset=utf-8", b"text/plain"):
        exc = stream_head_error(p, bad)
        assert isinstance(exc, errors.UpstreamProtocolError) and exc.status == 502


@pytest.mark.parametrize("model", sorted(ADAPTERS))
@pytest.mark.parametrize("data", [b"", b"\n\n", b": keepalive\n\n"])
def test_a_stream_without_any_event_is_an_error(model: str, data: bytes) -> None:
    p = provider(model, api_base="http://up.test", **ADAPTERS[model])
    t = p.stream_translator(call(chat([{"role": "user", "content": "hi"}], stream=True)))
    with pytest.raises(errors.UpstreamProtocolError):  # at close, or at once where it is not the framing
        assert t.feed(data) == b""
        t.close()


def test_a_passthrough_stream_with_done_only_or_frames_without_done_is_fine() -> None:
    p = provider("openai/x", api_base="http://up.test", api_key="k")
    c = call(chat([{"role": "user", "content": "hi"}], stream=True))
    t = p.stream_translator(c)
    assert t.feed(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert t.close() == b""
    t = p.stream_translator(c)
    assert t.feed(b"data: {}\n\n") == b"data: {}\n\n"
    assert t.close() == b"data: [DONE]\n\n"


def test_anthropic_native_passthrough_body_must_be_an_object() -> None:
    from relaygate.providers.anthropic import AnthropicProvider

    p = provider("anthropic/x", api_base="http://up.test", api_key="k")
    assert isinstance(p, AnthropicProvider)
    assert p.native_response(b'{"type":"message"}') == b'{"type":"message"}'
    with pytest.raises(errors.UpstreamProtocolError):
        p.native_response(b"<html></html>")
