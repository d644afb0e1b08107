"""Google's Gemini ``generateContent`` API as an *inbound* format: translation to and from OpenAI's chat.

The gateway's ``/v1beta/models/{model}:generateContent`` routes (``frontends.google``) accept Gemini requests
(the ``google-genai`` SDK pointed at the gateway) for any model group: the request becomes an OpenAI chat
request (:func:`to_openai`), goes through the deployment's own adapter, and the OpenAI answer comes back as a
``GenerateContentResponse``: a body with :func:`openai_to_gemini`, a stream with :class:`GeminiStream`.

Request (Gemini -> chat): ``systemInstruction`` a system message; ``contents`` (role ``user`` / ``model``) user
and assistant messages, their ``text`` parts text, ``inlineData`` images as ``image_url`` data URIs, audio as
``input_audio``, other media as ``file`` parts, ``fileData`` URIs as ``image_url`` (images) or ``file`` ids,
``functionCall`` parts assistant ``tool_calls`` (ids kept, or made), ``functionResponse`` parts ``tool``
messages answering the call of that name, in order; thought parts are not sent back. ``generationConfig``:
``temperature``, ``topP``, ``topK`` (a provider option), ``maxOutputTokens``, ``stopSequences``,
``candidateCount`` (``n``), ``presencePenalty``, ``frequencyPenalty``, ``seed``, ``responseLogprobs`` /
``logprobs``, ``responseMimeType: application/json`` (``json_object``) with ``responseSchema`` /
``responseJsonSchema`` (``json_schema``), ``thinkingConfig.thinkingBudget`` (Anthropic's ``thinking``, as
LiteLLM maps it). ``tools``' ``functionDeclarations`` become functions (a Gemini schema's upper-case types
lower-cased); other tools (``googleSearch`` ...) pass on as chat tools, which a ``gemini/`` deployment takes
and others refuse. ``toolConfig.functionCallingConfig.mode``: ``AUTO`` ``auto``, ``ANY`` ``required`` (one
allowed name: that function), ``NONE`` ``none``. ``safetySettings`` pass on (``safety_settings``).

Answer (chat -> Gemini): one candidate per choice, its parts the reasoning (``thought: true``), the text and the
``functionCall``\\ s (``args`` decoded), ``finishReason`` ``STOP`` / ``MAX_TOKENS`` / ``SAFETY``;
``usageMetadata`` from the usage (``promptTokenCount``, ``candidatesTokenCount`` without the reasoning,
``thoughtsTokenCount``, ``cachedContentTokenCount``, ``totalTokenCount``); ``modelVersion`` the model asked for;
``responseId`` the answer's id. Streams (``streamGenerateContent``): ``data: <GenerateContentResponse>`` events
(Google's ``alt=sse`` form, what the SDK asks; LiteLLM answers every stream so too), no ``[DONE]``.
Errors are Google's ``{"error": {"code", "message", "status"}}``. Nothing here does IO.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.core import errors
from relaygate.providers import _convert as cv

__all__ = ["GeminiStream", "error_body", "gemini_usage", "openai_to_gemini", "to_openai"]

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "function_call": "STOP",
          "content_filter": "SAFETY"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          408: "DEADLINE_EXCEEDED", 413: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
          499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
          504: "DEADLINE_EXCEEDED"}
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}


def error_body(exc: errors.GatewayError) -> bytes:
    return orjson.dumps({"error": {"code": exc.status, "message": exc.message,
                                   "status": STATUS.get(exc.status, "UNKNOWN")}})


def _bad(message: str, param: str | None = None) -> errors.GatewayError:
    return errors.BadRequest(message, param=param)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by Gemini's REST name or the SDK's Python name (both reach the gateway)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _schema(value: Any, depth: int = 0) -> Any:
    """A Gemini (OpenAPI-style) schema as JSON Schema: upper-case ``type`` names lower-cased, at every depth."""
    if depth > 64:
        raise _bad("tools: a function's parameters are nested too deeply", "tools")
    if isinstance(value, dict):
        out = {k: _schema(v, depth + 1) for k, v in value.items()}
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = kind.lower()
        return out
    if isinstance(value, list):
        return [_schema(v, depth + 1) for v in value]
    return value


def _media(mime: str, data: str) -> dict[str, Any]:
    mime = mime.lower()
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
    return {"type": "file", "file": {"file_data": f"data:{mime};base64,{data}"}}


def _user_parts(parts: list[Any], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _bad(f"{where}.parts[{i}]: expected an object", "contents")
        if part.get("thought"):
            continue
        text = part.get("text")
        inline = _get(part, "inlineData", "inline_data")
        file = _get(part, "fileData", "file_data")
        if isinstance(text, str):
            out.append({"type": "text", "text": text})
        elif isinstance(inline, dict):
            data, mime = inline.get("data"), _get(inline, "mimeType", "mime_type")
            if not isinstance(data, str) or not isinstance(mime, str):
                raise _bad(f"{where}.parts[{i}].inlineData: expected mimeType and base64 data", "contents")
            try:
                base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise _bad(f"{where}.parts[{i}].inlineData.data: not base64", "contents") from None
            out.append(_media(mime, data))
        elif isinstance(file, dict):
            uri, mime = _get(file, "fileUri", "file_uri"), _get(file, "mimeType", "mime_type") or ""
            if not isinstance(uri, str) or not uri:
                raise _bad(f"{where}.parts[{i}].fileData: expected a fileUri", "contents")
            out.append({"type": "image_url", "image_url": {"url": uri}} if str(mime).startswith("image/")
                       else {"type": "file", "file": {"file_id": uri}})
        elif not any(k in part for k in ("functionCall", "function_call", "functionResponse", "function_response")):
            raise _bad(f"{where}.parts[{i}]: a part kind the gateway cannot translate ({', '.join(part)[:80]})",
                       "contents")
    return out


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = value.get("parts") if isinstance(value, dict) else value
    if not isinstance(parts, list):
        return ""
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _texts(_get(req, "systemInstruction", "system_instruction") or "")
    if system:
        messages.append({"role": "system", "content": system})
    contents = req.get("contents")
    if isinstance(contents, (str, dict)):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise _bad("contents: required (a list of contents)", "contents")
    pending: dict[str, list[str]] = {}  # function name -> ids of its calls not answered yet
    made = 0
    for n, content in enumerate(contents):
        where = f"contents[{n}]"
        if isinstance(content, str):
            content = {"role": "user", "parts": [{"text": content}]}
        if not isinstance(content, dict):
            raise _bad(f"{where}: expected an object", "contents")
        parts = content.get("parts") or []
        if not isinstance(parts, list):
            raise _bad(f"{where}.parts: expected a list", "contents")
        if content.get("role") == "model":
            text = "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
                           and not p.get("thought"))
            calls = []
            for p in parts:
                fc = _get(p, "functionCall", "function_call") if isinstance(p, dict) else None
                if isinstance(fc, dict) and isinstance(fc.get("name"), str):
                    made += 1
                    given = fc.get("id")
                    cid = given if isinstance(given, str) and given else f"call_{made}"
                    pending.setdefault(fc["name"], []).append(cid)
                    calls.append({"id": cid, "type": "function", "function": {
                        "name": fc["name"], "arguments": orjson.dumps(fc.get("args") or {}).decode()}})
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
            continue
        for p in parts:
            fr = _get(p, "functionResponse", "function_response") if isinstance(p, dict) else None
            if isinstance(fr, dict):
                raw_name, given = fr.get("name"), fr.get("id")
                name = raw_name if isinstance(raw_name, str) else ""
                ids = pending.get(name) or []
                cid = given if isinstance(given, str) and given else (ids.pop(0) if ids else f"call_{name}")
                if cid in ids:
                    ids.remove(cid)
                messages.append({"role": "tool", "tool_call_id": cid,
                                 "content": orjson.dumps(fr.get("response") or {}).decode()})
        user = _user_parts(parts, where)
        if user:
            only_text = all(u["type"] == "text" for u in user)
            messages.append({"role": "user", "content": "".join(u["text"] for u in user) if only_text else user})
    return messages


def _tools(req: dict[str, Any], out: dict[str, Any]) -> None:
    tools = req.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("tools: expected a list", "tools")
    chat: list[dict[str, Any]] = []
    for t in tools:
        if not isinstance(t, dict):
            raise _bad("tools: expected a list of objects", "tools")
        decls = _get(t, "functionDeclarations", "function_declarations")
        if decls is None:
            chat.append(t)  # googleSearch, codeExecution ...: LiteLLM's chat form of Gemini's own tools
            continue
        for d in decls if isinstance(decls, list) else []:
            if not isinstance(d, dict) or not isinstance(d.get("name"), str):
                raise _bad("tools.functionDeclarations: each needs a name", "tools")
            fn: dict[str, Any] = {"name": d["name"]}
            if isinstance(d.get("description"), str):
                fn["description"] = d["description"]
            params = _get(d, "parametersJsonSchema", "parameters_json_schema") or d.get("parameters")
            if params is not None:
                fn["parameters"] = _schema(params)
            chat.append({"type": "function", "function": fn})
    if chat:
        out["tools"] = chat
    cfg = _get(req, "toolConfig", "tool_config")
    fcc = _get(cfg, "functionCallingConfig", "function_calling_config") if isinstance(cfg, dict) else None
    if isinstance(fcc, dict):
        mode = str(fcc.get("mode") or "AUTO").upper()
        allowed = _get(fcc, "allowedFunctionNames", "allowed_function_names")
        if mode == "ANY" and isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
            out["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        else:
            out["tool_choice"] = {"ANY": "required", "NONE": "none"}.get(mode, "auto")


def _generation(gc: Any, out: dict[str, Any]) -> None:
    if gc is None:
        return
    if not isinstance(gc, dict):
        raise _bad("generationConfig: expected an object", "generationConfig")
    for camel, snake, name in (("temperature", "temperature", "temperature"), ("topP", "top_p", "top_p"),
                               ("topK", "top_k", "top_k"), ("maxOutputTokens", "max_output_tokens", "max_tokens"),
                               ("stopSequences", "stop_sequences", "stop"), ("candidateCount", "candidate_count", "n"),
                               ("presencePenalty", "presence_penalty", "presence_penalty"),
                               ("frequencyPenalty", "frequency_penalty", "frequency_penalty"),
                               ("seed", "seed", "seed"), ("responseLogprobs", "response_logprobs", "logprobs"),
                               ("logprobs", "logprobs", "top_logprobs")):
        value = _get(gc, camel, snake)
        if value is not None:
            out[name] = value
    schema = _get(gc, "responseJsonSchema", "response_json_schema") or _get(gc, "responseSchema", "response_schema")
    mime = _get(gc, "responseMimeType", "response_mime_type")
    if schema is not None:
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response",
                                                                         "schema": _schema(schema)}}
    elif mime == "application/json":
        out["response_format"] = {"type": "json_object"}
    thinking = _get(gc, "thinkingConfig", "thinking_config")
    budget = _get(thinking, "thinkingBudget", "thinking_budget") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def to_openai(req: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A Gemini ``generateContent`` request as an OpenAI chat request for ``model`` (see the module docstring)."""
    out: dict[str, Any] = {"model": model, "messages": _messages(req)}
    _generation(_get(req, "generationConfig", "generation_config"), out)
    _tools(req, out)
    safety = _get(req, "safetySettings", "safety_settings")
    if safety is not None:
        out["safety_settings"] = safety
    if stream:
        out["stream"] = True
    return out


def gemini_usage(u: dict[str, Any] | None) -> dict[str, int]:
    """An OpenAI ``usage`` as Gemini's ``usageMetadata``."""
    u = u if isinstance(u, dict) else {}
    prompt, completion = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    pd, cd = u.get("prompt_tokens_details"), u.get("completion_tokens_details")
    cached = int(pd.get("cached_tokens") or 0) if isinstance(pd, dict) else 0
    thoughts = int(cd.get("reasoning_tokens") or 0) if isinstance(cd, dict) else 0
    out = {"promptTokenCount": prompt, "candidatesTokenCount": max(completion - thoughts, 0),
           "totalTokenCount": int(u.get("total_tokens") or prompt + completion)}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _call_part(tc: dict[str, Any]) -> dict[str, Any]:
    fn = tc.get("function") or {}
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = {"arguments": raw}
    call: dict[str, Any] = {"name": fn.get("name") or "", "args": args if isinstance(args, dict) else {"value": args}}
    if tc.get("id"):
        call["id"] = tc["id"]
    return {"functionCall": call}


def openai_to_gemini(body: bytes, model: str) -> bytes:
    """An OpenAI chat completion as a ``GenerateContentResponse`` (see the module docstring)."""
    obj = orjson.loads(body)
    candidates = []
    for i, choice in enumerate(obj.get("choices") or []):
        msg = choice.get("message") or {}
        parts: list[dict[str, Any]] = []
        if msg.get("reasoning_content"):
            parts.append({"text": msg["reasoning_content"], "thought": True})
        if isinstance(msg.get("content"), str) and msg["content"]:
            parts.append({"text": msg["content"]})
        parts += [_call_part(tc) for tc in msg.get("tool_calls") or [] if isinstance(tc, dict)]
        candidates.append({"content": {"role": "model", "parts": parts or [{"text": ""}]},
                           "finishReason": FINISH.get(choice.get("finish_reason") or "stop", "STOP"),
                           "index": choice.get("index", i)})
    return orjson.dumps({"candidates": candidates, "usageMetadata": gemini_usage(obj.get("usage")),
                         "modelVersion": model, "responseId": obj.get("id") or ""})


class GeminiStream:
    """OpenAI chunk frames (clean ``data: ...\\n\\n``) in, Gemini's SSE events out. Text and reasoning deltas go
    out as they come; function calls are sent whole once their arguments are complete, with the finish reason
    and the usage, in the last event."""

    __slots__ = ("model", "_buf", "_calls", "_finish", "_usage", "_id", "_sent", "done", "last_usage")

    def __init__(self, model: str, last_usage: Callable[[], bytes] | None = None) -> None:
        self.model = model
        self.last_usage = last_usage
        """Where the upstream's usage is when the chunks this sees had it taken out (the OpenAI adapter strips
        the usage chunk it asked for itself, keeping it for the gateway: ``StreamTranslator.last_data``)."""
        self._buf = b""
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._id = ""
        self._sent = 0
        self.done = False

    def _emit(self, obj: dict[str, Any]) -> bytes:
        self._sent += 1
        return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        out: dict[str, Any] = {"candidates": [cand]}
        if finish is not None:
            cand["finishReason"] = finish
            out["usageMetadata"] = gemini_usage(self._usage)
        out["modelVersion"], out["responseId"] = self.model, self._id
        return self._emit(out)

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        payloads, rest = cv.data_frames(self._buf + data if self._buf else data)
        out: list[bytes] = []
        for payload in payloads:
            if self.done:
                break
            if payload == b"[DONE]":
                out.append(self._end())
                break
            self._one(payload, out)
        self._buf = rest if not self.done else b""
        return b"".join(out)

    def _one(self, payload: bytes, out: list[bytes]) -> None:
        try:
            ch = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(ch, dict):
            return
        if isinstance(ch.get("error"), dict):
            err = ch["error"]
            code = int(err["code"]) if str(err.get("code") or "").isdigit() else 500
            out.append(self._emit({"error": {"code": code, "message": str(err.get("message") or ""),
                                             "status": STATUS.get(code, "UNKNOWN")}}))
            self.done = True
            return
        self._id = self._id or str(ch.get("id") or "")
        if isinstance(ch.get("usage"), dict):
            self._usage = ch["usage"]
        for c in ch.get("choices") or []:
            d = c.get("delta") or {}
            parts: list[dict[str, Any]] = []
            if d.get("reasoning_content"):
                parts.append({"text": d["reasoning_content"], "thought": True})
            if isinstance(d.get("content"), str) and d["content"]:
                parts.append({"text": d["content"]})
            if parts:
                out.append(self._chunk(parts))
            for tc in d.get("tool_calls") or []:
                slot = self._calls.setdefault(int(tc.get("index") or 0), {"id": None, "name": "", "args": ""})
                fn = tc.get("function") or {}
                slot["id"] = slot["id"] or tc.get("id")
                slot["name"] += fn.get("name") or ""
                slot["args"] += fn.get("arguments") or ""
            if c.get("finish_reason"):
                self._finish = c["finish_reason"]

    def _end(self) -> bytes:
        if self._usage is None and self.last_usage is not None:
            raw = self.last_usage()
            try:
                found = orjson.loads(raw).get("usage") if raw else None
            except (orjson.JSONDecodeError, AttributeError):
                found = None
            self._usage = found if isinstance(found, dict) else None
        parts = [_call_part({"id": s["id"], "function": {"name": s["name"], "arguments": s["args"] or "{}"}})
                 for _, s in sorted(self._calls.items())]
        last = self._chunk(parts or [{"text": ""}], FINISH.get(self._finish or "stop", "STOP"))
        self.done = True
        return last

    def close(self) -> bytes:
        return b"" if self.done else self._end()
