"""Cohere (``cohere/`` and ``cohere_chat/``): the v2 Chat API, and v2 rerank.

Cohere v2 messages are close to OpenAI's (system/user/assistant/tool roles, ``tool_calls`` with JSON
argument strings, ``tool_call_id`` on results, OpenAI-format ``tools``), so the request translation is
mostly renaming: ``top_p`` -> ``p``, ``top_k`` -> ``k``, ``stop`` -> ``stop_sequences``, ``response_format``
kept (Cohere takes ``{"type": "json_object", "json_schema": ...}``). Images go as ``image_url`` parts;
audio is a 400.

Responses: ``message.content`` text parts -> content, ``tool_calls`` kept, ``tool_plan`` ->
``reasoning_content``; ``finish_reason`` COMPLETE/STOP_SEQUENCE -> stop, MAX_TOKENS -> length,
TOOL_CALL -> tool_calls; usage from ``usage.tokens`` (falling back to ``billed_units``). Streams are SSE
events typed ``message-start``, ``content-delta``, ``tool-plan-delta``, ``tool-call-start``,
``tool-call-delta``, ``message-end`` (others ignored), translated one at a time (:class:`CohereStream`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import orjson

from relaygate.config.model import Deployment
from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import Call, Provider, StreamTranslator, classify
from relaygate.providers.openai import REQUEST_DEFAULTS
from relaygate.upstream.base import UpstreamRequest

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
          "ERROR": "stop", "TIMEOUT": "stop"}
_RENAME = (("temperature", "temperature"), ("top_p", "p"), ("top_k", "k"), ("seed", "seed"),
           ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"),
           ("documents", "documents"), ("citation_options", "citation_options"), ("safety_mode", "safety_mode"))


def to_cohere(req: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    msgs = []
    for m in req.get("messages") or ():
        role = m.get("role")
        if role == "developer":
            role = "system"
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                t = p.get("type")
                if t == "text":
                    parts.append({"type": "text", "text": p.get("text", "")})
                elif t == "image_url" and role == "user":
                    parts.append({"type": "image_url", "image_url": {"url": cv.image_url_of(p)}})
                else:
                    raise cv.unsupported(str(t), "cohere", model)
            content = parts if any(p["type"] != "text" for p in parts) else "".join(p["text"] for p in parts)
        cm: dict[str, Any] = {"role": role}
        if content is not None and content != "":
            cm["content"] = content
        if role == "assistant" and m.get("tool_calls"):
            cm["tool_calls"] = [{"id": tc.get("id"), "type": "function", "function": tc.get("function")}
                                for tc in m["tool_calls"]]
        if role == "tool":
            cm["tool_call_id"] = m.get("tool_call_id", "")
            cm.setdefault("content", "")
        msgs.append(cm)
    out: dict[str, Any] = {"model": model, "messages": msgs, "stream": stream}
    for src, dst in _RENAME:
        if req.get(src) is not None:
            out[dst] = req[src]
    mt = cv.max_tokens(req)
    if mt is not None:
        out["max_tokens"] = mt
    stop = cv.stop_list(req.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    fns = cv.openai_tools(req)
    if fns:
        out["tools"] = [{"type": "function", "function": f} for f in fns]
    tc = req.get("tool_choice")
    if tc == "required":
        out["tool_choice"] = "REQUIRED"
    elif tc == "none":
        out["tool_choice"] = "NONE"
    rf = req.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        f: dict[str, Any] = {"type": "json_object"}
        schema = (rf.get("json_schema") or {}).get("schema")
        if schema:
            f["json_schema"] = schema
        out["response_format"] = f
    return out


def convert_usage(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not u:
        return None
    t = u.get("tokens") or u.get("billed_units") or {}
    return cv.usage(int(t.get("input_tokens") or 0), int(t.get("output_tokens") or 0))


def from_cohere(body: bytes, model: str, created: int) -> bytes:
    obj = orjson.loads(body)
    msg = obj.get("message") or {}
    content = msg.get("content")
    text = content if isinstance(content, str) else "".join(
        c.get("text", "") for c in content or () if isinstance(c, dict) and c.get("type") == "text")
    calls = [cv.tool_call(tc.get("id") or cv.new_call_id(), (tc.get("function") or {}).get("name", ""),
                          (tc.get("function") or {}).get("arguments") or "{}") for tc in msg.get("tool_calls") or ()]
    finish = FINISH.get(obj.get("finish_reason") or "COMPLETE", "stop")
    return cv.chat_response(obj.get("id") or "chatcmpl-" + os.urandom(12).hex(), model, created,
                            text if text or not calls else None, calls, finish, convert_usage(obj.get("usage")),
                            msg.get("tool_plan"))


class CohereStream(cv.SSEChunkStream):
    def __init__(self, call: Call) -> None:
        super().__init__(call)

    def _event(self, data: bytes) -> bytes:
        if self.done or data == b"[DONE]":
            return b""
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise errors.UpstreamProtocolError(f"cohere sent an invalid stream event: {data[:200]!r}") from None
        t = ev.get("type")
        delta = ev.get("delta") or {}
        msg = delta.get("message") or {}
        if t == "message-start":
            return self.start(ev.get("id"), self.model) if self.w is None else b""
        if t == "content-delta":
            c = msg.get("content") or {}
            if c.get("thinking"):
                w, first = self.writer()
                return first + w.reasoning(c["thinking"])
            return self.text(c.get("text") or "") if c.get("text") else b""
        if t == "tool-plan-delta":
            w, first = self.writer()
            return first + w.reasoning(msg.get("tool_plan") or "") if msg.get("tool_plan") else first
        if t == "tool-call-start":
            tc = msg.get("tool_calls") or {}
            fn = tc.get("function") or {}
            self.tool_index += 1
            self.emitted = True
            w, first = self.writer()
            return first + w.tool_start(self.tool_index, tc.get("id") or cv.new_call_id(), fn.get("name", ""),
                                        fn.get("arguments") or "")
        if t == "tool-call-delta":
            frag = ((msg.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if not frag or self.tool_index < 0:
                return b""
            w, first = self.writer()
            self._chars += len(frag)
            return first + w.tool_args(self.tool_index, frag)
        if t == "message-end":
            if delta.get("error"):
                raise classify(500, str(delta["error"]), None, None, None, "CohereException")
            u = convert_usage(delta.get("usage"))
            if u is not None:
                self.set_usage(u)
            out = self.finish(FINISH.get(delta.get("finish_reason") or "COMPLETE", "stop"))
            return out + self.end()
        return b""


class CohereProvider(Provider):
    name: ClassVar[str] = "cohere"
    default_api_base: ClassVar[str | None] = "https://api.cohere.com"
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat", "embeddings"})
    error_prefix: ClassVar[str] = "CohereException"
    media_translated: ClassVar[frozenset[str]] = frozenset({"rerank"})

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        base = self.api_base or ""
        for suffix in ("/v2/chat", "/v1/chat", "/v2", "/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        self.api_base = base
        key = dep.api_key or ""
        self.headers = [("Content-Type", "application/json"), ("Authorization", f"Bearer {key}"),
                        ("accept", "application/json")]
        self.defaults = {k: v for k, v in dep.extra.items() if k in REQUEST_DEFAULTS or k == "top_k"}

    def build_request(self, call: Call) -> UpstreamRequest:
        if call.endpoint == "embeddings":
            obj = cv.load_request(call)
            texts = cv.embedding_inputs(obj, self.name)
            body = orjson.dumps({"model": call.upstream_model, "texts": texts,
                                 "input_type": obj.get("input_type") or "search_document",
                                 "embedding_types": ["float"]})
            return UpstreamRequest("POST", f"{self.api_base}/v2/embed", self.headers, body)
        req = cv.load_request(call, self.defaults)
        return UpstreamRequest("POST", f"{self.api_base}/v2/chat", self.headers,
                               orjson.dumps(to_cohere(req, call.upstream_model, call.stream)))

    def media_request(self, kind: str, req: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        return UpstreamRequest("POST", f"{self.api_base}/v2/rerank", self.headers,
                               orjson.dumps({**req, "model": upstream_model}))

    def translate_response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint == "embeddings":
            obj = orjson.loads(body)
            vecs = (obj.get("embeddings") or {}).get("float") or []
            n = int(((obj.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0)
            return orjson.dumps({"object": "list", "model": call.model,
                                 "data": [{"object": "embedding", "index": i, "embedding": v}
                                          for i, v in enumerate(vecs)],
                                 "usage": {"prompt_tokens": n, "total_tokens": n}})
        return from_cohere(body, call.upstream_model, int(call.now))

    def stream_translator(self, call: Call) -> StreamTranslator:
        return CohereStream(call)
