"""The OpenAI Responses API shape as an *inbound* format: translation to and from chat completions.

The gateway's ``/v1/responses`` route accepts Responses requests. Every deployment that does not speak the
Responses API natively gets the request translated to a chat completions request (:func:`to_chat`), and
its chat answer translated back: a body with :func:`chat_to_response`, a stream with
:class:`ResponsesStream`, which turns ``chat.completion.chunk`` frames into the Responses event sequence::

    response.created, response.in_progress,
    per output item (reasoning, message, function_call ...):
        response.output_item.added
        reasoning: response.content_part.added, response.reasoning_text.delta*, .reasoning_text.done,
                   response.content_part.done; when the request asked for a ``reasoning.summary``:
                   response.reasoning_summary_part.added, response.reasoning_summary_text.delta*,
                   .reasoning_summary_text.done, response.reasoning_summary_part.done
        message:   response.content_part.added, response.output_text.delta*, response.output_text.done,
                   response.content_part.done
        function_call: response.function_call_arguments.delta*, response.function_call_arguments.done
        response.output_item.done
    response.completed (the whole Response, usage included) | response.failed

Every event carries ``sequence_number``, 0 first, one more each event. Items are opened as their first
delta arrives (one reasoning item, one message item, one function_call item per chat tool-call
``index``, so interleaved tool calls each keep their item) and all are closed, in output order, when the
stream ends; ``response.completed`` is held back until the upstream's usage chunk (the IO shell asks for
it with ``stream_options.include_usage``) or the end of the stream, so it carries the real token counts.

The model's reasoning (a chat answer's ``reasoning_content``: Claude's thinking, Gemini's thoughts) becomes
one reasoning item: its ``summary`` text when the request asked for ``reasoning.summary``, as OpenAI's
reasoning models answer, else its ``reasoning_text`` content, as open-weight models do; signed thinking
blocks (chat's ``thinking_blocks``) travel in its ``encrypted_content`` as LiteLLM encodes them, and come
back as the next assistant message's ``thinking_blocks``. ``reasoning.effort`` becomes ``reasoning_effort``,
which the target's parameter rules map (Anthropic: ``thinking``, LiteLLM's budgets 1024 / 2048 / 4096).
The echo of the request (``instructions``, ``tools`` ...) that every Response repeats is built once per
request (:func:`echo`); conversation state is the frontend's (``frontends.responses_state``), which also
replaces ``item_reference`` input items by the stored items they name before :func:`to_chat`. No IO here.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from relaygate.core import errors
from relaygate.providers import _convert as cv
from relaygate.providers.base import SHAPE_ERRORS
from relaygate.providers.messages_responses import encrypted_content
from relaygate.providers.responses_request import (  # the inbound half, re-exported: callers import it from here
    BUILTIN_TOOLS,
    WEB_SEARCH_TOOLS,
    Untranslatable,
    echo,
    new_id,
    to_chat,
    validate,
    web_search_options,
)

__all__ = ["BUILTIN_TOOLS", "WEB_SEARCH_TOOLS", "ResponsesStream", "Untranslatable", "chat_to_response", "chat_usage",
           "echo", "error_code", "new_id", "response_object", "response_usage", "summarized", "to_chat", "validate",
           "web_search_options"]

# ------------------------------------------------------------------------------ chat -> Responses


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def response_usage(u: dict[str, Any] | None) -> dict[str, Any]:
    u = u or {}
    prompt = int(u.get("prompt_tokens") or 0)
    completion = int(u.get("completion_tokens") or 0)
    cached = int(_obj(u.get("prompt_tokens_details")).get("cached_tokens") or 0)
    reasoning = int(_obj(u.get("completion_tokens_details")).get("reasoning_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": int(u.get("total_tokens") or prompt + completion)}


def chat_usage(u: Any, service_tier: Any = None) -> bytes:
    """A Responses ``usage`` as a chat-shaped ``{"usage": ...}`` (and the ``service_tier`` it was priced at)."""
    if not isinstance(u, dict):
        return b""
    ind = _obj(u.get("input_tokens_details"))
    outd = _obj(u.get("output_tokens_details"))
    tier = {"service_tier": service_tier} if isinstance(service_tier, str) and service_tier else {}
    return orjson.dumps({**tier, "usage": {
        "prompt_tokens": int(u.get("input_tokens") or 0), "completion_tokens": int(u.get("output_tokens") or 0),
        "total_tokens": int(u.get("total_tokens") or 0),
        "prompt_tokens_details": {"cached_tokens": int(ind.get("cached_tokens") or 0)},
        "completion_tokens_details": {"reasoning_tokens": int(outd.get("reasoning_tokens") or 0)}}})


def response_object(rid: str, created: int, model: str, ech: dict[str, Any], status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "status": status, "background": False,
            "error": error, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": model, "output": output, **ech, "usage": usage}


def summarized(ech: dict[str, Any]) -> bool:
    """Whether the request asked for a reasoning summary (the echo's ``reasoning.summary``)."""
    return bool(_obj(ech.get("reasoning")).get("summary"))


def _reasoning_item(iid: str, text: str, status: str, summary: bool = False,
                    encrypted: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": iid, "type": "reasoning", "summary": [], "status": status}
    if summary:
        item["summary"] = [{"type": "summary_text", "text": text}]
    else:
        item["content"] = [{"type": "reasoning_text", "text": text}]
    if encrypted:
        item["encrypted_content"] = encrypted
    return item


def _message_item(iid: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": iid, "type": "message", "role": "assistant", "status": status, "content": content}


def _call_item(iid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": iid, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def chat_to_response(body: bytes, model: str, created: int, ech: dict[str, Any]) -> bytes:
    """chat.completion body -> Response object body; one it cannot read is a 502."""
    try:
        return _chat_to_response(body, model, created, ech)
    except SHAPE_ERRORS as exc:
        raise errors.UpstreamProtocolError(
            f"the upstream sent a response of an unexpected shape ({type(exc).__name__}: {exc})") from None


def _chat_to_response(body: bytes, model: str, created: int, ech: dict[str, Any]) -> bytes:
    obj = orjson.loads(body)
    ch = (obj.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    output: list[dict[str, Any]] = []
    rid = new_id("resp_")  # item ids: the response's random part and the item's place

    def iid(prefix: str) -> str:
        return f"{prefix}{rid[5:]}{len(output):02x}"

    enc = encrypted_content(msg.get("thinking_blocks"))
    if msg.get("reasoning_content") or enc:
        output.append(_reasoning_item(iid("rs_"), str(msg.get("reasoning_content") or ""), "completed",
                                      summarized(ech), enc))
    text = msg.get("content")
    if isinstance(text, list):
        text = cv.text_of(text)
    if text:
        output.append(_message_item(iid("msg_"), str(text), "completed"))
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        output.append(_call_item(iid("fc_"), str(tc.get("id") or cv.new_call_id()), str(fn.get("name") or ""),
                                 str(fn.get("arguments") or ""), "completed"))
    status = "incomplete" if ch.get("finish_reason") == "length" else "completed"
    return orjson.dumps(response_object(rid, created, model, ech, status, output,
                                        response_usage(obj.get("usage"))))


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
    thinking_blocks: list[Any] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)


_DELTA_EVENT = {"reasoning": "response.reasoning_text.delta", "summary": "response.reasoning_summary_text.delta",
                "message": "response.output_text.delta", "function_call": "response.function_call_arguments.delta"}
_DELTA_AT = {"reasoning": b',"content_index":0,"delta":', "summary": b',"summary_index":0,"delta":',
             "message": b',"content_index":0,"delta":', "function_call": b',"delta":'}
_DELTA_END = {"message": b',"logprobs":[]}\n\n'}


class _Item:
    """One output item being streamed: its kind, id, position, what it has accumulated, and its delta event
    encoded once (``head`` + sequence number + ``mid`` + the delta as a JSON string + ``tail``): the hot loop
    builds no dict and encodes only the delta text."""

    __slots__ = ("kind", "id", "index", "parts", "call_id", "name", "head", "mid", "tail", "blocks", "final")

    def __init__(self, kind: str, iid: str, index: int, call_id: str = "", name: str = "",
                 delta: str = "") -> None:
        self.kind = kind
        self.id = iid
        self.index = index
        self.parts: list[str] = []
        self.call_id = call_id
        self.name = name
        self.blocks: list[dict[str, Any]] = []  # reasoning: the thinking blocks' signatures and redacted data
        self.final: dict[str, Any] | None = None  # the item as its output_item.done sent it, once closed
        event = _DELTA_EVENT[delta or kind]
        self.head = b"event: %b\ndata: {\"type\":\"%b\",\"sequence_number\":" % (event.encode(), event.encode())
        self.mid = b',"item_id":%b,"output_index":%d%b' % (orjson.dumps(iid), index, _DELTA_AT[delta or kind])
        self.tail = _DELTA_END.get(delta or kind, b"}\n\n")

    def done(self, summary: bool) -> dict[str, Any]:
        text = "".join(self.parts)
        if self.kind == "reasoning":
            sig = next((b["signature"] for b in reversed(self.blocks) if b.get("signature")), None)
            blocks = [{"type": "thinking", "thinking": text, "signature": sig}] if sig else []
            blocks += [b for b in self.blocks if b.get("type") == "redacted_thinking"]  # signed text, then redacted
            return _reasoning_item(self.id, text, "completed", summary, encrypted_content(blocks))
        if self.kind == "message":
            return _message_item(self.id, text, "completed")
        return _call_item(self.id, self.call_id, self.name, text, "completed")


def error_code(status: int) -> str:
    return "rate_limit_exceeded" if status == 429 else "server_error"


class ResponsesStream:
    """chat chunk frames (clean ``data: ...\\n\\n``) in, Responses SSE events out.

    ``feed`` returns the event bytes completed by its input; ``close`` ends the response (closing the open
    items and sending ``response.completed`` if the upstream did not get that far); :meth:`failed` renders
    a ``response.failed`` event for an upstream that broke off mid-stream.
    """

    __slots__ = ("_buf", "_created", "_echo", "_items", "_message", "_reasoning", "_seq", "_started", "_status",
                 "_summary", "_tools", "_usage", "done", "id", "model")

    def __init__(self, model: str, created: int, ech: dict[str, Any]) -> None:
        self.model = model
        self.id = new_id("resp_")
        self._created = created
        self._echo = ech
        self._summary = summarized(ech)
        self._buf = b""
        self._seq = 0
        self._started = False
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._tools: dict[int, _Item] = {}
        self._status = "completed"
        self._usage: dict[str, Any] | None = None
        self.done = False

    def _delta(self, out: list[bytes], item: _Item, text: str) -> None:
        item.parts.append(text)
        out.append(item.head + b"%d" % self._seq + item.mid + orjson.dumps(text) + item.tail)
        self._seq += 1

    def _ev(self, out: list[bytes], kind: str, fields: dict[str, Any]) -> None:
        payload = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")

    def _response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                  error: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.id, self._created, self.model, self._echo, status, output, usage, error)

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        r = self._response("in_progress", [], None)
        self._ev(out, "response.created", {"response": r})
        self._ev(out, "response.in_progress", {"response": r})

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
                    self._finish(out)
                    break
                self._chunk(payload, out)
                if self.done:
                    break
        self._buf = buf[pos:] if not self.done else b""
        return b"".join(out)

    def close(self) -> bytes:
        if self.done:
            return b""
        out: list[bytes] = []
        self._finish(out)
        return b"".join(out)

    def failed(self, exc: errors.GatewayError) -> bytes:
        """``response.failed`` for a stream the upstream broke off (the open items are left unfinished)."""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._ev(out, "response.failed", {"response": self._response(
            "failed", [], None, {"code": error_code(exc.status), "message": exc.message})})
        self.done = True
        return b"".join(out)

    def _open(self, out: list[bytes], kind: str, prefix: str, call_id: str = "", name: str = "") -> _Item:
        index = len(self._items)  # item ids: the response's random part and the item's place (one urandom call)
        item = _Item(kind, f"{prefix}{self.id[5:]}{index:02x}", index, call_id, name,
                     "summary" if kind == "reasoning" and self._summary else "")
        self._items.append(item)
        if kind == "reasoning":
            added = {"id": item.id, "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
        elif kind == "message":
            added = _message_item(item.id, None, "in_progress")
        else:
            added = _call_item(item.id, call_id, name, "", "in_progress")
        self._ev(out, "response.output_item.added", {"output_index": item.index, "item": added})
        if kind == "reasoning" and self._summary:
            self._ev(out, "response.reasoning_summary_part.added", {
                "item_id": item.id, "output_index": item.index, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""}})
        elif kind == "reasoning":
            self._ev(out, "response.content_part.added", {"item_id": item.id, "output_index": item.index,
                                                          "content_index": 0,
                                                          "part": {"type": "reasoning_text", "text": ""}})
        elif kind == "message":
            self._ev(out, "response.content_part.added", {
                "item_id": item.id, "output_index": item.index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        return item

    def _chunk(self, payload: bytes, out: list[bytes]) -> None:
        try:
            ch = _chunk_decoder.decode(payload)
        except msgspec.DecodeError:
            return
        if not self._started:
            self._start(out)
        if ch.error is not None:
            code = str(ch.error.get("code") or "")
            status = int(code) if code.isdigit() else 500
            exc = errors.GatewayError(str(ch.error.get("message") or "upstream error"), status=status)
            out.append(self.failed(exc))
            return
        if ch.usage is not None:
            self._usage = ch.usage
        for c in ch.choices:
            d = c.delta
            if d is not None:  # as OpenAI streams, an item is done before the next kind of item starts
                if d.reasoning_content or d.thinking_blocks:
                    item = self._reasoning
                    if item is None:
                        self._settle(out)
                        item = self._reasoning = self._open(out, "reasoning", "rs_")
                    if d.reasoning_content:
                        self._delta(out, item, d.reasoning_content)
                    if d.thinking_blocks:
                        item.blocks += [b for b in d.thinking_blocks if isinstance(b, dict)]
                if d.content:
                    item = self._message
                    if item is None:
                        self._settle(out)
                        item = self._message = self._open(out, "message", "msg_")
                    self._delta(out, item, d.content)
                for tc in d.tool_calls or ():
                    fn = tc.function
                    call = self._tools.get(tc.index)
                    if call is None:
                        self._settle(out)
                        call = self._open(out, "function_call", "fc_", tc.id or cv.new_call_id(),
                                          (fn.name if fn else None) or "")
                        self._tools[tc.index] = call
                    if fn is not None and fn.arguments:
                        self._delta(out, call, fn.arguments)
            if c.finish_reason == "length":
                self._status = "incomplete"

    def _settle(self, out: list[bytes]) -> None:  # another kind of item starts: close the open ones
        for item in (self._reasoning, self._message):
            if item is not None:
                self._close(out, item)
        self._reasoning = self._message = None

    def _finish(self, out: list[bytes]) -> None:
        if not self._started:
            self._start(out)
        for item in self._items:
            if item.final is None:
                self._close(out, item)
        kind = "response.incomplete" if self._status == "incomplete" else "response.completed"
        final = [item.final for item in self._items if item.final is not None]
        self._ev(out, kind, {"response": self._response(self._status, final, response_usage(self._usage))})
        self.done = True

    def _close(self, out: list[bytes], item: _Item) -> None:
        where = {"item_id": item.id, "output_index": item.index}
        text = "".join(item.parts)
        done = item.final = item.done(self._summary)
        if item.kind == "reasoning" and self._summary:
            self._ev(out, "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text})
            self._ev(out, "response.reasoning_summary_part.done", {**where, "summary_index": 0,
                                                                   "part": done["summary"][0]})
        elif item.kind == "function_call":
            self._ev(out, "response.function_call_arguments.done", {**where, "name": item.name, "arguments": text})
        else:
            msg = item.kind == "message"
            self._ev(out, "response.output_text.done" if msg else "response.reasoning_text.done",
                     {**where, "content_index": 0, "text": text, **({"logprobs": []} if msg else {})})
            self._ev(out, "response.content_part.done", {**where, "content_index": 0, "part": done["content"][0]})
        self._ev(out, "response.output_item.done", {"output_index": item.index, "item": done})
