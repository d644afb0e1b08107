"""The Anthropic Messages API shape as an *inbound* format: translation to and from OpenAI's.

The gateway's ``/v1/messages`` route accepts Anthropic requests. A deployment on ``anthropic/`` gets the
client's bytes natively (model swapped); every other provider gets the request translated to an OpenAI
chat request (:func:`to_openai`), and its OpenAI answer translated back: a body with
:func:`openai_to_message`, a stream with :class:`MessagesStream`, which turns ``chat.completion.chunk``
frames into Anthropic's exact event sequence::

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*   text / thinking / tool_use blocks
    message_delta (stop_reason, usage), message_stop

A new block starts whenever the kind of delta changes (text -> tool call) or a tool call with a new
OpenAI ``index`` begins; the ``message_delta`` is held back until the upstream's usage chunk (the IO
shell asks for it with ``stream_options.include_usage``) or the end of the stream, so it carries the
real token counts. Errors are rendered in Anthropic's shape by :func:`error_body`.

Nothing here does IO.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
import orjson

from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import SHAPE_ERRORS

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
               "content_filter": "refusal"}

ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
              503: "overloaded_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    return ERROR_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(exc: errors.GatewayError) -> bytes:
    error = {"type": error_type(exc.status), "message": exc.message}
    if exc.body_call_id is not None:  # include_call_id_in_error_body, as LiteLLM puts it in Anthropic's error too
        error["litellm_call_id"] = exc.body_call_id
    return orjson.dumps({"type": "error", "error": error})


# ------------------------------------------------------------------------------ Anthropic -> OpenAI


def _media_url(source: dict[str, Any]) -> str:
    st = source.get("type")
    if st == "base64":
        return f"data:{source.get('media_type', 'application/octet-stream')};base64,{source.get('data', '')}"
    if st == "url":
        return str(source.get("url", ""))
    raise errors.BadRequest(f"Unsupported content source type `{st}`", param="messages")


def _parts(blocks: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in blocks:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text":
            p: dict[str, Any] = {"type": "text", "text": b.get("text", "")}
        elif t == "image":
            p = {"type": "image_url", "image_url": {"url": _media_url(b.get("source") or {})}}
        elif t == "document":
            src = b.get("source") or {}
            if src.get("type") == "text":
                p = {"type": "text", "text": src.get("data", "")}
            else:
                p = {"type": "file", "file": {"file_data": _media_url(src)}}
        elif t in ("thinking", "redacted_thinking"):
            continue
        else:
            raise errors.BadRequest(f"Unsupported content block type `{t}`", param="messages")
        if "cache_control" in b:
            p["cache_control"] = b["cache_control"]
        out.append(p)
    return out


def _simple(parts: list[dict[str, Any]]) -> Any:
    """A list of plain text parts collapses to a string (smaller, and every provider takes it)."""
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


class _Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]]


class _Request(msgspec.Struct):
    """The shape of a Messages request, checked before translation so a wrong type is a 400 naming it."""

    model: str
    messages: list[_Message]
    system: str | list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    stream: bool | None = None


def validate(req: dict[str, Any]) -> None:
    """Raise ``BadRequest`` naming the field when ``req`` is not a Messages request."""
    cv.check_shape(req, _Request)


def to_openai(req: dict[str, Any], model: str) -> dict[str, Any]:
    """Anthropic Messages request dict -> OpenAI chat request dict.

    The top level is checked by :func:`validate`; deeper, a block of the wrong shape is a 400 too."""
    validate(req)
    try:
        return _to_openai(req, model)
    except (TypeError, AttributeError, ValueError) as exc:
        raise errors.BadRequest(f"Invalid request body: a content block has the wrong shape ({exc})",
                                param="messages") from None


def _to_openai(req: dict[str, Any], model: str) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    system = req.get("system")
    if isinstance(system, str) and system:
        msgs.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        msgs.append({"role": "system", "content": _simple(_parts(system))})
    messages = req.get("messages")
    if not isinstance(messages, list):
        raise errors.BadRequest("messages: Field required", param="messages")
    for m in messages:
        if not isinstance(m, dict):
            raise errors.BadRequest("messages: each message must be an object", param="messages")
        role = m.get("role")
        content = m.get("content")
        if role not in ("user", "assistant"):
            raise errors.BadRequest(f"messages: unexpected role `{role}`", param="messages")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise errors.BadRequest("messages: content must be a string or an array", param="messages")
        if role == "user":
            rest: list[Any] = []
            for b in content:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    c = b.get("content")
                    tc = c if isinstance(c, str) else _simple(_parts(c or []))
                    if b.get("is_error") and isinstance(tc, str):
                        tc = tc or "error"
                    msgs.append({"role": "tool", "tool_call_id": b.get("tool_use_id", ""), "content": tc})
                else:
                    rest.append(b)
            if rest:
                msgs.append({"role": "user", "content": _simple(_parts(rest))})
        else:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            for b in content:
                if not isinstance(b, dict):
                    continue
                t = b.get("type")
                if t == "text":
                    texts.append(b.get("text", ""))
                elif t == "tool_use":
                    calls.append(cv.tool_call(b.get("id", ""), b.get("name", ""),
                                              orjson.dumps(b.get("input") or {}).decode()))
            am: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
            if calls:
                am["tool_calls"] = calls
            msgs.append(am)
    out: dict[str, Any] = {"model": model, "messages": msgs}
    if req.get("max_tokens") is not None:
        out["max_tokens"] = req["max_tokens"]
    for k in ("temperature", "top_p"):
        if req.get(k) is not None:
            out[k] = req[k]
    thinking = req.get("thinking")
    if isinstance(thinking, dict):  # the target's parameter rules map it (reasoning_effort) or drop it
        out["thinking"] = thinking
    if req.get("stop_sequences"):
        out["stop"] = req["stop_sequences"]
    md = req.get("metadata")
    if isinstance(md, dict) and md.get("user_id"):
        out["user"] = str(md["user_id"])
    tools = req.get("tools")
    if tools:
        fns = []
        for t in tools:
            tt = t.get("type")
            if tt not in (None, "custom"):
                raise errors.BadRequest(f"tools: server tool `{tt}` is only available on anthropic/ models",
                                        param="tools")
            fn: dict[str, Any] = {"name": t.get("name", ""), "parameters": t.get("input_schema") or {}}
            if t.get("description"):
                fn["description"] = t["description"]
            fns.append({"type": "function", "function": fn})
        out["tools"] = fns
    tc = req.get("tool_choice")
    if isinstance(tc, dict):
        kind = tc.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": tc.get("name", "")}}
        if tc.get("disable_parallel_tool_use") and tools:
            out["parallel_tool_calls"] = False
    if req.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# ------------------------------------------------------------------------------ OpenAI -> Anthropic


def message_id(rid: str) -> str:
    return rid if rid.startswith("msg_") else "msg_" + (rid or os.urandom(12).hex())


def anthropic_usage(u: dict[str, Any] | None) -> dict[str, int]:
    u = u or {}
    prompt = int(u.get("prompt_tokens") or 0)
    details = u.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    written = int(u.get("cache_creation_input_tokens") or 0)
    out = {"input_tokens": max(0, prompt - cached - written), "output_tokens": int(u.get("completion_tokens") or 0)}
    if cached:
        out["cache_read_input_tokens"] = cached
    if written:
        out["cache_creation_input_tokens"] = written
    return out


def openai_to_message(body: bytes, model: str) -> bytes:
    """OpenAI chat.completion body -> Anthropic Messages response body; one it cannot read is a 502."""
    try:
        return _openai_to_message(body, model)
    except SHAPE_ERRORS as exc:
        raise errors.UpstreamProtocolError(
            f"the upstream sent a response of an unexpected shape ({type(exc).__name__}: {exc})") from None


def _openai_to_message(body: bytes, model: str) -> bytes:
    obj = orjson.loads(body)
    choices = obj.get("choices") or [{}]
    ch = choices[0]
    msg = ch.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = msg.get("content")
    if isinstance(text, list):
        text = cv.text_of(text)
    if text:
        content.append({"type": "text", "text": text})
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        content.append({"type": "tool_use", "id": tc.get("id") or cv.new_call_id(), "name": fn.get("name", ""),
                        "input": cv.tool_args(fn.get("arguments"))})
    finish = ch.get("finish_reason") or "stop"
    return orjson.dumps({
        "id": message_id(str(obj.get("id") or "")), "type": "message", "role": "assistant",
        "model": obj.get("model") or model, "content": content,
        "stop_reason": STOP_REASON.get(finish, "end_turn"), "stop_sequence": None,
        "usage": anthropic_usage(obj.get("usage")),
    })


class _Fn(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Fn | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolDelta] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    id: str = ""
    model: str = ""
    choices: list[_Choice] = []
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)
_TEXT_START = b'"content_block":{"type":"text","text":""}}\n\n'
_THINK_START = b'"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'


def _ev(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


class MessagesStream:
    """OpenAI chunk frames (clean ``data: ...\\n\\n``) in, Anthropic SSE events out.

    ``feed`` returns the event bytes completed by its input; ``close`` ends the message (closing an open
    block and sending ``message_delta`` + ``message_stop`` if the upstream did not get that far).
    ``input_tokens`` is the prompt estimate for ``message_start``; the real count goes in ``message_delta``.
    """

    __slots__ = (
        "_block",
        "_buf",
        "_kind",
        "_started",
        "_stop",
        "_tool",
        "_usage",
        "done",
        "input_tokens",
        "last_data",
        "model",
    )

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self._buf = b""
        self._started = False
        self._block = -1  # index of the open block, -1 for none
        self._kind = 0  # 1 text, 2 thinking, 3 tool_use
        self._tool = -1  # OpenAI index of the open tool block
        self._stop: str | None = None
        self._usage: dict[str, Any] | None = None
        self.done = False
        self.last_data = b""

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        while True:
            j = buf.find(b"\n\n", pos)
            if j < 0:
                break
            block = buf[pos:j]
            pos = j + 2
            if block.startswith(b"data: "):
                payload = block[6:]
                if payload == b"[DONE]":
                    out.append(self._finish())
                    break
                self._chunk(payload, out)
        self._buf = buf[pos:] if not self.done else b""
        return b"".join(out)

    def close(self) -> bytes:
        if self.done:
            return b""
        return self._finish()

    def _open(self, out: list[bytes], kind: int, start: bytes) -> None:
        if self._block >= 0:
            out.append(_ev(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self._block))
        self._block += 1
        self._kind = kind
        out.append(_ev(b"content_block_start", b'{"type":"content_block_start","index":%d,' % self._block + start))

    def _message_start(self, rid: str, model: str, out: list[bytes]) -> None:
        self._started = True
        msg = {"type": "message_start", "message": {
            "id": message_id(rid), "type": "message", "role": "assistant", "model": model or self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}}
        out.append(_ev(b"message_start", orjson.dumps(msg)))
        out.append(_ev(b"ping", b'{"type":"ping"}'))

    def _chunk(self, payload: bytes, out: list[bytes]) -> None:
        try:
            ch = _chunk_decoder.decode(payload)
        except msgspec.DecodeError:
            return
        if ch.error is not None:
            err = ch.error
            out.append(_ev(b"error", orjson.dumps({"type": "error", "error": {
                "type": error_type(int(err.get("code") or 500) if str(err.get("code") or "").isdigit() else 500),
                "message": str(err.get("message", ""))}})))
            self.done = True
            return
        if not self._started:
            self._message_start(ch.id, ch.model, out)
        if ch.usage is not None:
            self._usage = ch.usage
            self.last_data = payload
        for c in ch.choices:
            d = c.delta
            if d is not None:
                if d.reasoning_content:
                    if self._kind != 2:
                        self._open(out, 2, _THINK_START)
                    out.append(_ev(b"content_block_delta",
                                   b'{"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta",'
                                   b'"thinking":%b}}' % (self._block, orjson.dumps(d.reasoning_content))))
                if d.content:
                    if self._kind != 1:
                        self._open(out, 1, _TEXT_START)
                    out.append(_ev(b"content_block_delta",
                                   b'{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta",'
                                   b'"text":%b}}' % (self._block, orjson.dumps(d.content))))
                if d.tool_calls:
                    for tc in d.tool_calls:
                        fn = tc.function
                        if self._kind != 3 or tc.index != self._tool:
                            self._tool = tc.index
                            start = b'"content_block":{"type":"tool_use","id":%b,"name":%b,"input":{}}}\n\n' % (
                                orjson.dumps(tc.id or cv.new_call_id()),
                                orjson.dumps((fn.name if fn else None) or ""))
                            self._open(out, 3, start)
                        if fn is not None and fn.arguments:
                            out.append(_ev(b"content_block_delta",
                                           b'{"type":"content_block_delta","index":%d,"delta":{"type":'
                                           b'"input_json_delta","partial_json":%b}}' % (
                                               self._block, orjson.dumps(fn.arguments))))
            if c.finish_reason:
                self._stop = STOP_REASON.get(c.finish_reason, "end_turn")

    def _finish(self) -> bytes:
        out: list[bytes] = []
        if not self._started:
            self._message_start("", self.model, out)
        if self._block >= 0:
            out.append(_ev(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self._block))
            self._block = -1
            self._kind = 0
        u = anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        if self._usage is None:
            u = {"input_tokens": self.input_tokens, "output_tokens": 0}
        delta = {"type": "message_delta", "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                 "usage": u}
        out.append(_ev(b"message_delta", orjson.dumps(delta)))
        out.append(_ev(b"message_stop", b'{"type":"message_stop"}'))
        self.done = True
        return b"".join(out)
