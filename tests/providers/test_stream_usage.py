"""The OpenAI adapter's stream usage (``providers.openai``): when it asks the upstream for usage, what it sends and
which chunk it keeps from the client, whatever the spacing and however the stream is cut into pieces."""

from __future__ import annotations

import orjson

from relaygate.config.model import Deployment
from relaygate.core.views import decode_view
from relaygate.providers import registry
from relaygate.providers.base import Call
from relaygate.providers.openai import PassthroughStream

USAGE_CHUNK = b'data: {"id":"c","choices": [ ],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
CONTENT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'


def call(body: dict[str, object], provider: str = "openai", policy: bool | None = None) -> tuple[bytes, Call]:
    raw = orjson.dumps(body)
    c = Call("chat", raw, decode_view("chat", raw), "m", "m", 0.0)
    c.usage_policy = policy
    dep = Deployment(model_name="m", model=f"{provider}/m", provider=provider, upstream_model="m", id="d",
                     api_key="k", api_base="http://127.0.0.1:9/v1")
    return registry()[provider](dep).request_body(c), c


def test_when_usage_is_asked_for() -> None:
    sent, c = call({"model": "m", "stream": True, "messages": []})
    assert orjson.loads(sent)["stream_options"] == {"include_usage": True} and c.usage_injected
    for body, provider, policy in (({"model": "m", "stream": False, "messages": []}, "openai", None),  # no stream
                                   ({"model": "m", "stream": True, "messages": [],
                                     "stream_options": {"include_usage": False}}, "openai", None),  # the client's
                                   ({"model": "m", "stream": True, "messages": []}, "mistral", None),  # no such option
                                   ({"model": "m", "stream": True, "messages": []}, "perplexity", None),
                                   ({"model": "m", "stream": True, "messages": []}, "openai", False)):  # turned off
        sent, c = call(body, provider, policy)
        assert sent == orjson.dumps({**body}) and not c.usage_injected, (body, provider, policy)


def test_usage_is_asked_of_the_providers_litellm_asks() -> None:
    """LiteLLM's proxy asks a stream's usage of every provider whose config lists ``stream_options`` among its
    supported parameters (``get_supported_openai_params``): relaygate asks the same ones."""
    for provider in ("openai", "custom_openai", "azure", "azure_ai", "groq", "together_ai", "fireworks_ai",
                     "lm_studio", "hosted_vllm", "deepseek", "xai", "openrouter"):
        sent, c = call({"model": "m", "stream": True, "messages": []}, provider)
        assert orjson.loads(sent)["stream_options"] == {"include_usage": True} and c.usage_injected, provider


def test_azure_s_filter_chunk_with_empty_choices_is_not_the_usage_chunk() -> None:
    """Azure's first chunk has empty ``choices`` (its prompt filter results) and, with usage asked for,
    ``"usage": null``: only the chunk whose ``usage`` is an object is kept from the client."""
    filters = (b'data: {"choices":[],"created":0,"id":"","model":"","object":"","usage":null,'
               b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}\n\n')
    whole = filters + CONTENT + USAGE_CHUNK + b"data: [DONE]\n\n"
    t = PassthroughStream(strip_usage=True)
    out = t.feed(whole) + t.close()
    assert filters.strip() in out and CONTENT.strip() in out and USAGE_CHUNK.strip() not in out


def test_the_usage_chunk_is_kept_from_the_client_only() -> None:
    whole = CONTENT + USAGE_CHUNK + b"data: [DONE]\n\n"
    for strip in (True, False):
        t = PassthroughStream(strip_usage=strip)
        out = b"".join(t.feed(whole[i:i + 7]) for i in range(0, len(whole), 7)) + t.close()
        assert (USAGE_CHUNK.strip() in out) is not strip and CONTENT.strip() in out and out.endswith(b"[DONE]\n\n")
        assert b'"prompt_tokens":3' in t.last_data  # the pricing reads it either way
