"""A model name never steers the upstream URL: it is checked and encoded, or the request is a 400.

On wildcard groups the client's model name becomes the adapter's upstream model. For any string, every
adapter either refuses it with a ``BadRequest`` naming ``model`` or builds a URL on the deployment's host,
under its base path, with exactly the query keys the adapter puts there.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.base import url_segment

from .conftest import call, chat, provider

BASE = "http://up.test/base"

#: adapter prefix -> (deployment params, query keys of the chat URL (unary, stream))
ADAPTERS: dict[str, tuple[dict[str, Any], tuple[set[str], set[str]]]] = {
    "gemini": ({"api_key": "k"}, (set(), {"alt"})),
    "vertex_ai": ({"api_key": "k", "vertex_project": "p"}, (set(), {"alt"})),
    "azure": ({"api_key": "k", "api_version": "2024-10-21"}, ({"api-version"}, {"api-version"})),
    "azure_ai": ({"api_key": "k"}, (set(), set())),
    "bedrock": ({"api_key": "k"}, (set(), set())),
    "ollama": ({}, (set(), set())),
    "ollama_chat": ({}, (set(), set())),
    "cohere": ({"api_key": "k"}, (set(), set())),
    "anthropic": ({"api_key": "k"}, (set(), set())),
    "openai": ({"api_key": "k"}, (set(), set())),
}

NAMES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="abc./?#%:@&=+ \r\n\x00\x7f-_~*", max_size=30),
    st.sampled_from(["../../../__mock/config?x=", "x?key=attacker#", "..", ".", "a/../../b", "%2e%2e", "a#b",
                     "models/../x", "a\rb", "a\x7f", "a\x00", "x/", "/x", "a//b"]),
)


def _build(prefix: str, name: str, stream: bool) -> str:
    params, _ = ADAPTERS[prefix]
    p = provider(f"{prefix}/{name}", api_base=BASE, **params)
    return p.build_request(call(chat([{"role": "user", "content": "hi"}], stream=stream), upstream=name)).url


def _check(prefix: str, name: str) -> None:
    for stream in (False, True):
        try:
            url = _build(prefix, name, stream)
        except errors.BadRequest as exc:
            assert exc.param == "model"
            return
        u = urllib.parse.urlsplit(url)
        assert (u.scheme, u.netloc, u.fragment) == ("http", "up.test", "")
        assert all(0x20 < ord(c) < 0x7f for c in url), url
        assert posixpath.normpath(urllib.parse.unquote(u.path)).startswith("/base/"), url
        assert ".." not in u.path.split("/"), url
        keys = [k for k, _ in urllib.parse.parse_qsl(u.query, keep_blank_values=True)]
        assert sorted(keys) == sorted(ADAPTERS[prefix][1][stream]), url


@pytest.mark.parametrize("prefix", sorted(ADAPTERS))
@settings(max_examples=150, deadline=None)
@given(name=NAMES)
def test_any_model_name_is_a_400_or_a_url_under_the_base(prefix: str, name: str) -> None:
    _check(prefix, name)


@pytest.mark.parametrize(("prefix", "name"), [
    ("gemini", "../../../__mock/config?x="), ("gemini", "x?key=attacker#"), ("gemini", "a/b"),
    ("vertex_ai", "..%2f"), ("azure", "x?key=attacker#"), ("azure", "../../x"), ("azure", "dep loy"),
    ("bedrock", ".."), ("bedrock", "a/../b"), ("bedrock", "a?b"), ("gemini", "a\rb"), ("openai", "a\x00"),
    ("ollama", "a\x7fb"), ("anthropic", "x\r\nX-Injected: 1"),
])
def test_hostile_names_are_a_400(prefix: str, name: str) -> None:
    with pytest.raises(errors.BadRequest) as ei:
        _build(prefix, name, False)
    assert ei.value.status == 400 and ei.value.param == "model"


@pytest.mark.parametrize(("prefix", "name", "path"), [
    ("gemini", "gemini-1.5-pro-002", "/base/v1beta/models/gemini-1.5-pro-002:generateContent"),
    ("gemini", "models/gemini-2.0-flash", "/base/v1beta/models/gemini-2.0-flash:generateContent"),
    ("vertex_ai", "claude-3-5-sonnet-v2@20241022",
     "/base/v1/projects/p/locations/us-central1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict"),
    ("azure", "gpt-4o_prod.1", "/base/openai/deployments/gpt-4o_prod.1/chat/completions"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0",
     "/base/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
    ("bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-v1:0",
     "/base/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic"
     ".claude-3-haiku-v1%3A0/converse"),
    ("ollama", "llama3:8b", "/base/api/generate"),
    ("openai", "ft:gpt-4o:org::id", "/base/chat/completions"),
])
def test_real_model_ids_pass(prefix: str, name: str, path: str) -> None:
    assert urllib.parse.urlsplit(_build(prefix, name, False)).path == path


def test_url_segment_rule() -> None:
    assert url_segment("llama3:8b") == "llama3:8b"
    assert url_segment("a/b", slash=True) == "a/b"
    assert url_segment("a/b:c", slash=True, safe="") == "a%2Fb%3Ac"
    for bad in ("", ".", "..", "a/b", "a?b", "a#b", "a%2e", "a b", "é"):
        with pytest.raises(errors.BadRequest):
            url_segment(bad)
    for bad in ("a//b", "/a", "a/", "a/../b", "./a"):
        with pytest.raises(errors.BadRequest):
            url_segment(bad, slash=True)


def test_vertex_location_is_a_host_label() -> None:
    with pytest.raises(errors.GatewayError):
        provider("vertex_ai/gemini-pro", api_key="k", vertex_project="p", vertex_location="evil.com/x@")
