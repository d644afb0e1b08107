"""Gemini and Vertex AI adapters: requests, responses, SSE streams (three ways), safety, errors, OAuth."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core import errors
from relaygate.providers.gemini import GeminiStream, to_gemini
from relaygate.providers.vertex import TokenSource, VertexProvider
from relaygate.upstream.base import UpstreamRequest

from .conftest import call, chat, collect, feed_all, frames, normalize, provider, three_ways

BASE = "https://generativelanguage.googleapis.com/v1beta/models"


def _sse(objs: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)


STREAM = _sse([
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking...", "thought": True}]}, "index": 0}],
     "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "The weather"}]}, "index": 0}],
     "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": " is – ünïcode"}]}, "index": 0}],
     "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"},
    {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}}]}, "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 12, "thoughtsTokenCount": 5,
                       "cachedContentTokenCount": 8, "totalTokenCount": 47},
     "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"},
])


def _stream(prefix: str = "GeminiException") -> GeminiStream:
    return GeminiStream(call(chat([{"role": "user", "content": "x"}], stream=True,
                                  stream_options={"include_usage": True}), "gemini-x"), prefix)


def test_urls_and_key_header() -> None:
    p = provider("gemini/gemini-2.5-flash", api_key="AIza")
    r = p.build_request(call(chat([{"role": "user", "content": "hi"}])))
    assert r.url == f"{BASE}/gemini-2.5-flash:generateContent"
    assert ("x-goog-api-key", "AIza") in r.headers
    s = p.build_request(call(chat([{"role": "user", "content": "hi"}], stream=True)))
    assert s.url == f"{BASE}/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert provider("gemini/g", api_base="http://m:1").build_request(
        call(chat([{"role": "user", "content": "x"}]))).url == "http://m:1/v1beta/models/g:generateContent"


def test_request_translation() -> None:
    req = chat([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}},
            {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp\": 20}"},
        {"role": "tool", "tool_call_id": "call_a", "content": "plain text"},
    ], max_tokens=100, temperature=0.5, top_p=0.9, stop=["X"], n=2, response_format={"type": "json_object"},
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": False,
            "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "noargs", "parameters": {"type": "object", "properties": {}}}}],
        tool_choice="required")
    out = to_gemini(req, "gemini", "g")
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    c = out["contents"]
    assert [x["role"] for x in c] == ["user", "model", "user"]
    assert c[0]["parts"] == [{"text": "what is this"}, {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                             {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}},
                             {"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}}]
    assert c[1]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    assert c[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
                             {"functionResponse": {"name": "get_weather", "response": {"content": "plain text"}}}]
    assert out["generationConfig"] == {"temperature": 0.5, "topP": 0.9, "candidateCount": 2, "maxOutputTokens": 100,
                                       "stopSequences": ["X"], "responseMimeType": "application/json"}
    decls = out["tools"][0]["functionDeclarations"]
    assert decls[0] == {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    assert decls[1] == {"name": "noargs"}
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_response_translation() -> None:
    body = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "hmm", "thought": True}, {"text": "Hello"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]},
        "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                                                     "thoughtsTokenCount": 2, "totalTokenCount": 16},
        "modelVersion": "gemini-2.5-pro", "responseId": "r1"})
    out = orjson.loads(provider("gemini/g").translate_response(call(chat([{"role": "user", "content": "x"}])), body))
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Hello" and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"][0]["function"] == {"name": "f", "arguments": "{\"a\":1}"}
    assert msg["tool_calls"][0]["id"].startswith("call_")
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
                            "completion_tokens_details": {"reasoning_tokens": 2}}
    mt = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS"}]})
    assert orjson.loads(provider("gemini/g").translate_response(call(chat([{"role": "user", "content": "x"}])), mt)
                        )["choices"][0]["finish_reason"] == "length"


def test_safety_blocks_are_content_policy_errors() -> None:
    p = provider("gemini/g")
    c = call(chat([{"role": "user", "content": "x"}]))
    blocked = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}})
    with pytest.raises(errors.ContentPolicyViolation, match="blocked: SAFETY"):
        p.translate_response(c, blocked)
    stopped = orjson.dumps({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}]})
    with pytest.raises(errors.ContentPolicyViolation):
        p.translate_response(c, stopped)
    t = _stream()
    with pytest.raises(errors.ContentPolicyViolation):
        t.feed(_sse([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}]))
    t = _stream()
    out = t.feed(_sse([{"candidates": [{"content": {"parts": [{"text": "partial"}]}}]},
                       {"candidates": [{"finishReason": "SAFETY"}]}])) + t.close()
    assert collect(frames(out))["finish"] == "content_filter"


def test_stream_every_event() -> None:
    fs = frames(three_ways(_stream, STREAM))
    got = collect(fs)
    assert got["content"] == "The weather is – ünïcode" and got["reasoning"] == "thinking..."
    assert [(t["name"], t["arguments"]) for t in got["tools"]] == [("get_weather", "{\"city\":\"Paris\"}"),
                                                                   ("get_time", "{}")]
    assert all(t["id"].startswith("call_") for t in got["tools"])
    assert got["finish"] == "tool_calls"
    assert got["usage"] == {"prompt_tokens": 30, "completion_tokens": 17, "total_tokens": 47,
                            "prompt_tokens_details": {"cached_tokens": 8},
                            "completion_tokens_details": {"reasoning_tokens": 5}}
    assert fs[0]["id"] == "resp-1" and fs[0]["model"] == "gemini-2.5-flash" and fs[-1] == "[DONE]"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=25))
def test_stream_random_splits(splits: list[int]) -> None:
    assert normalize(feed_all(_stream, STREAM, splits)) == normalize(feed_all(_stream, STREAM))


def _gerr(status: int, message: str, code: str) -> errors.GatewayError:
    return provider("gemini/g").map_error(status, orjson.dumps({"error": {"code": status, "message": message,
                                                                          "status": code}}), None)


def test_error_mapping() -> None:
    assert isinstance(_gerr(400, "The input token count (1200000) exceeds the maximum number of tokens allowed "
                                 "(1048576).", "INVALID_ARGUMENT"), errors.ContextWindowExceeded)
    assert _gerr(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED").status == 429
    assert "PermissionDeniedError" in _gerr(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED").message
    assert "NotFoundError" in _gerr(404, "models/x is not found", "NOT_FOUND").message
    assert "GeminiException" in _gerr(400, "API key not valid", "INVALID_ARGUMENT").message


# ------------------------------------------------------------------------------------------- Vertex


@pytest.fixture(scope="module")
def sa() -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "proj-1", "private_key_id": "kid1", "private_key": pem,
            "client_email": "sa@proj-1.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
            "_public": key.public_key()}


def _b64d(s: bytes) -> bytes:
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


def test_service_account_jwt_is_signed_rs256(sa: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    ts = TokenSource({k: v for k, v in sa.items() if k != "_public"})
    assert ts.needs_refresh(1000.0)
    req = ts.refresh_request(1000.0)
    assert req.url == "https://oauth2.googleapis.com/token"
    from urllib.parse import parse_qs

    form = parse_qs(req.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    h, c, s = form["assertion"][0].encode().split(b".")
    assert json.loads(_b64d(h)) == {"alg": "RS256", "typ": "JWT", "kid": "kid1"}
    claims = json.loads(_b64d(c))
    assert claims == {"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/cloud-platform",
                      "aud": "https://oauth2.googleapis.com/token", "iat": 1000, "exp": 4600}
    sa["_public"].verify(_b64d(s), h + b"." + c, padding.PKCS1v15(), hashes.SHA256())
    ts.accept(200, b'{"access_token": "ya29.tok", "expires_in": 3599, "token_type": "Bearer"}', 1000.0)
    assert not ts.needs_refresh(1000.0 + 3000) and ts.needs_refresh(1000.0 + 3400)
    with pytest.raises(errors.AuthError):
        TokenSource({k: v for k, v in sa.items() if k != "_public"}).accept(
            400, b'{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}', 0.0)


class _FakeResp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body, self.headers = status, body, []

    async def read(self) -> bytes:
        return self._body


class _FakeTransport:
    def __init__(self) -> None:
        self.sent: list[UpstreamRequest] = []

    async def send(self, req: UpstreamRequest, timeouts: Any) -> _FakeResp:
        self.sent.append(req)
        await asyncio.sleep(0)
        return _FakeResp(200, b'{"access_token": "ya29.x", "expires_in": 3600}')


def test_vertex_urls_auth_and_refresh_by_the_io_shell(sa: dict[str, Any]) -> None:
    from relaygate.upstream.calls import refresh_token

    creds = json.dumps({k: v for k, v in sa.items() if k != "_public"})
    p = provider("vertex_ai/gemini-2.5-pro", vertex_credentials=creds, vertex_location="europe-west4")
    assert isinstance(p, VertexProvider) and p.project == "proj-1"
    c = call(chat([{"role": "user", "content": "x"}], stream=True))
    with pytest.raises(errors.AuthError):
        p.build_request(c)  # no token yet: the shell must refresh first
    tr = _FakeTransport()

    async def go() -> None:
        await asyncio.gather(refresh_token(p.token_source, tr), refresh_token(p.token_source, tr))
        await refresh_token(p.token_source, tr)

    asyncio.run(go())
    assert len(tr.sent) <= 2 and p.token_source.token == "ya29.x"
    r = p.build_request(c)
    assert r.url == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4/"
                     "publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert ("Authorization", "Bearer ya29.x") in r.headers


def test_vertex_claude_uses_anthropic_translation(sa: dict[str, Any]) -> None:
    creds = {k: v for k, v in sa.items() if k != "_public"}
    p = provider("vertex_ai/claude-sonnet-4@20250514", vertex_credentials=creds, vertex_location="global",
                 vertex_project="other")
    assert p.token_source is not None
    p.token_source.accept(200, b'{"access_token": "t", "expires_in": 3600}', 1e12)
    p.token_source.expires_at = float("inf")
    r = p.build_request(call(chat([{"role": "user", "content": "x"}])))
    assert r.url == ("https://aiplatform.googleapis.com/v1/projects/other/locations/global/publishers/anthropic/"
                     "models/claude-sonnet-4@20250514:rawPredict")
    body = orjson.loads(r.body)
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body and body["max_tokens"] == 4096


def test_web_search_options_ground_with_google_search() -> None:
    """LiteLLM maps OpenAI's ``web_search_options`` to Gemini's Google Search grounding tool (once)."""
    out = to_gemini(chat([{"role": "user", "content": "news?"}], web_search_options={"search_context_size": "low"}),
                    "gemini", "g")
    assert out["tools"] == [{"googleSearch": {}}]
    out = to_gemini(chat([{"role": "user", "content": "x"}], web_search_options={}, tools=[{"googleSearch": {}}]),
                    "gemini", "g")
    assert out["tools"] == [{"googleSearch": {}}]


PNG = "iVBORw0KGgo="


def test_image_output() -> None:
    """Gemini's image models as LiteLLM answers them: ``modalities`` -> ``responseModalities``, image parts ->
    ``message.images`` (and ``delta.images`` in a stream), text beside them."""
    out = to_gemini(chat([{"role": "user", "content": "a cat"}], modalities=["text", "image"]), "gemini", "g")
    assert out["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    body = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Here it is"}, {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1290, "totalTokenCount": 1293}})
    msg = orjson.loads(provider("gemini/gemini-2.5-flash-image", api_key="k").translate_response(
        call(chat([{"role": "user", "content": "a cat"}])), body))["choices"][0]["message"]
    assert msg["content"] == "Here it is"
    assert msg["images"] == [{"image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "auto"}, "index": 0,
                              "type": "image_url"}]
    event = b"data: " + body + b"\r\n\r\n"
    fs = frames(three_ways(lambda: GeminiStream(call(chat([{"role": "user", "content": "a cat"}], stream=True)),
                                                "GeminiException"), event))
    deltas = [f["choices"][0]["delta"] for f in fs if f != "[DONE]" and f.get("choices")]
    assert [d["images"] for d in deltas if "images" in d] == [[msg["images"][0]]]
    assert collect(fs)["content"] == "Here it is"
