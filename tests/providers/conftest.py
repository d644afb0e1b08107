"""Helpers for adapter tests: build a Call, feed a stream translator whole / byte by byte / split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from relaygate.config.model import Deployment
from relaygate.core.views import decode_view
from relaygate.providers import make_provider
from relaygate.providers.base import Call, Provider, StreamTranslator


def dep(model: str, **params: Any) -> Deployment:
    provider, _, upstream = model.partition("/")
    known = {k: params.pop(k) for k in list(params) if k in ("api_key", "api_base", "api_version")}
    return Deployment(model_name="m", model=model, provider=provider, upstream_model=upstream, id="d1",
                      extra=params, **known)


def provider(model: str, **params: Any) -> Provider:
    return make_provider(dep(model, **params))


#: the wall-clock time test calls carry (``Call.now``): adapters stamp ``created`` and sign with it
NOW = 1_700_000_000.0


def call(body: dict[str, Any], upstream: str = "up-model", endpoint: str = "chat", now: float = NOW) -> Call:
    raw = orjson.dumps(body)
    return Call(endpoint, raw, decode_view(endpoint, raw), body.get("model", "m"), upstream, now)


def chat(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"model": "m", "messages": messages, **kw}


def feed_all(make: Callable[[], StreamTranslator], data: bytes, splits: list[int] | None = None) -> bytes:
    """Feed ``data`` cut at ``splits`` (offsets), then close; return everything the translator produced."""
    t = make()
    out = []
    prev = 0
    for s in sorted(set(splits or [])) + [len(data)]:
        if s > prev:
            out.append(t.feed(data[prev:s]))
            prev = s
    out.append(t.close())
    return b"".join(out)


def three_ways(make: Callable[[], StreamTranslator], data: bytes) -> bytes:
    """Whole and byte by byte must give the same bytes; returns them."""
    whole = feed_all(make, data)
    bytewise = feed_all(make, data, list(range(1, len(data))))
    assert _normalize(bytewise) == _normalize(whole)
    return whole


def _normalize(out: bytes) -> list[Any]:
    """Frames with generated ids/timestamps blanked, for comparisons across runs."""
    frames = []
    for f in out.split(b"\n\n"):
        if not f:
            continue
        if f.startswith(b"data: {"):
            obj = orjson.loads(f[6:])
            obj.pop("created", None)
            for ch in obj.get("choices") or ():
                for tc in (ch.get("delta") or {}).get("tool_calls") or ():
                    if str(tc.get("id", "")).startswith("call_"):
                        tc["id"] = "call_x"
            if str(obj.get("id", "")).startswith("chatcmpl-"):
                obj["id"] = "chatcmpl-x"
            frames.append(obj)
        else:
            frames.append(f)
    return frames


normalize = _normalize


def frames(out: bytes) -> list[Any]:
    """OpenAI SSE output -> list of decoded chunks, with the final ``[DONE]`` as the string "[DONE]"."""
    res: list[Any] = []
    for f in out.split(b"\n\n"):
        if not f:
            continue
        assert f.startswith(b"data: "), f
        p = f[6:]
        res.append("[DONE]" if p == b"[DONE]" else orjson.loads(p))
    return res


def collect(chunks: list[Any]) -> dict[str, Any]:
    """Accumulate OpenAI chunks the way SDKs do: content, tool calls by index, finish reason, usage."""
    content = ""
    reasoning = ""
    tools: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    for c in chunks:
        if c == "[DONE]":
            continue
        if c.get("usage"):
            usage = c["usage"]
        for ch in c["choices"]:
            d = ch["delta"]
            content += d.get("content") or ""
            reasoning += d.get("reasoning_content") or ""
            for tc in d.get("tool_calls") or ():
                slot = tools.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return {"content": content, "reasoning": reasoning, "tools": [tools[i] for i in sorted(tools)],
            "finish": finish, "usage": usage}
