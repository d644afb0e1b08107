"""A stream assembled into the one answer it streamed (sans IO).

What it owns: :class:`StreamAssembler`, fed each ``data:`` JSON payload of a chat-completions stream as
the client got it (``[DONE]`` excluded) and answering one ``chat.completion`` body once every choice has
its finish reason: content, reasoning and refusal text joined, tool calls rebuilt from their pieces, the
stream's usage chunk kept; and its kin for the other streamed APIs: :class:`MessagesAssembler`
(Anthropic's Messages events into the ``message``) and :class:`ResponsesAssembler` (OpenAI's Responses
events: the ``response.completed`` object). Two consumers: the response cache stores a chat stream's
answer (``cache.replay``), and exporters show any of them as the request's output
(``observe.capture``). A payload that is not JSON marks the stream ``broken`` and it is never
:attr:`complete`.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MessagesAssembler", "ResponsesAssembler", "StreamAssembler", "assembler_for"]


class _Choice:
    __slots__ = ("role", "parts", "tools", "finish")

    def __init__(self) -> None:
        self.role = "assistant"
        self.parts: dict[str, list[str]] = {}
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None


class StreamAssembler:
    """Chat-completions chunk payloads in (each ``data:`` JSON of a stream, ``[DONE]`` excluded), one
    ``chat.completion`` body out once :attr:`complete`."""

    __slots__ = ("_choices", "_head", "_usage", "broken")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._head: dict[str, Any] = {}
        self._usage: Any = None
        self.broken = False

    def feed_frames(self, frames: bytes) -> None:
        """Outgoing SSE frames as the client got them: each ``data:`` payload fed, ``[DONE]`` skipped."""
        _frames(self, frames)

    def feed(self, payload: bytes) -> None:
        obj = _object(self, payload)
        if obj is None:
            return
        if not self._head:
            self._head = {k: obj[k] for k in ("id", "model", "system_fingerprint") if obj.get(k) is not None}
        if obj.get("usage") is not None:
            self._usage = obj["usage"]
        for c in obj.get("choices") or ():
            ch = self._choices.get(c.get("index", 0))
            if ch is None:
                ch = self._choices[c.get("index", 0)] = _Choice()
            delta = c.get("delta") or {}
            if delta.get("role"):
                ch.role = delta["role"]
            for field in ("content", "reasoning_content", "refusal"):
                text = delta.get(field)
                if isinstance(text, str) and text:
                    ch.parts.setdefault(field, []).append(text)
            for call in delta.get("tool_calls") or ():
                slot = ch.tools.setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                  "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["function"]["name"] += fn["name"]
                if fn.get("arguments"):
                    slot["function"]["arguments"] += fn["arguments"]
            if c.get("finish_reason"):
                ch.finish = c["finish_reason"]

    @property
    def complete(self) -> bool:
        """Every choice seen has finished, and nothing undecodable arrived."""
        return bool(self._choices) and not self.broken and all(c.finish for c in self._choices.values())

    def answer(self, created: int) -> bytes:
        """The assembled ``chat.completion`` body (call only when :attr:`complete`)."""
        choices = []
        for i in sorted(self._choices):
            ch = self._choices[i]
            msg: dict[str, Any] = {"role": ch.role, "content": "".join(ch.parts["content"])
                                   if "content" in ch.parts else None}
            for field in ("reasoning_content", "refusal"):
                if field in ch.parts:
                    msg[field] = "".join(ch.parts[field])
            if ch.tools:
                msg["tool_calls"] = [ch.tools[n] for n in sorted(ch.tools)]
            choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": ch.finish})
        body: dict[str, Any] = {"id": self._head.get("id", ""), "object": "chat.completion", "created": created,
                                "model": self._head.get("model"), "choices": choices}
        if "system_fingerprint" in self._head:
            body["system_fingerprint"] = self._head["system_fingerprint"]
        if self._usage is not None:
            body["usage"] = self._usage
        return orjson.dumps(body)


class MessagesAssembler:
    """Anthropic Messages stream events in (each ``data:`` JSON), the ``message`` they stream out: text,
    thinking and tool-use blocks rebuilt from their deltas, the stop reason and usage of ``message_delta``."""

    __slots__ = ("_message", "_blocks", "_done", "broken")

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._done = False
        self.broken = False

    def feed_frames(self, frames: bytes) -> None:
        _frames(self, frames)

    def feed(self, payload: bytes) -> None:
        obj = _object(self, payload)
        if obj is None:
            return
        kind = obj.get("type")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            self._message = dict(obj["message"])
        elif kind == "content_block_start" and isinstance(obj.get("content_block"), dict):
            block = dict(obj["content_block"])
            if block.get("type") == "tool_use":
                block["input"] = ""
            self._blocks[obj.get("index", len(self._blocks))] = block
        elif kind == "content_block_delta":
            found = self._blocks.get(obj.get("index", 0))
            delta = obj.get("delta") or {}
            if found is None or not isinstance(delta, dict):
                return
            for field, into in (("text", "text"), ("thinking", "thinking"), ("partial_json", "input"),
                                ("signature", "signature")):
                piece = delta.get(field)
                if isinstance(piece, str):
                    found[into] = (found.get(into) or "") + piece
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            if isinstance(delta, dict):
                self._message.update({k: v for k, v in delta.items() if v is not None})
            if isinstance(obj.get("usage"), dict):
                usage = self._message.get("usage")
                self._message["usage"] = {**(usage if isinstance(usage, dict) else {}), **obj["usage"]}
        elif kind == "message_stop":
            self._done = True

    @property
    def complete(self) -> bool:
        return self._done and not self.broken and bool(self._message)

    def answer(self, created: int) -> bytes:
        """The assembled ``message`` (call only when :attr:`complete`; ``created`` is unused: Anthropic's
        messages carry no timestamp)."""
        content = []
        for i in sorted(self._blocks):
            block = self._blocks[i]
            if block.get("type") == "tool_use" and isinstance(block.get("input"), str):
                try:
                    block = {**block, "input": orjson.loads(block["input"] or "{}")}
                except orjson.JSONDecodeError:
                    pass
            content.append(block)
        return orjson.dumps({**self._message, "content": content})


class ResponsesAssembler:
    """OpenAI Responses stream events in, the final ``response`` object out (``response.completed`` carries
    it whole; ``response.failed`` / ``response.incomplete`` too, and then it is not :attr:`complete`)."""

    __slots__ = ("_response", "_done", "broken")

    def __init__(self) -> None:
        self._response: Any = None
        self._done = False
        self.broken = False

    def feed_frames(self, frames: bytes) -> None:
        _frames(self, frames)

    def feed(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.broken = True
            return
        if isinstance(obj, dict) and obj.get("type") == "response.completed" and isinstance(obj.get("response"),
                                                                                              dict):
            self._response = obj["response"]
            self._done = True

    @property
    def complete(self) -> bool:
        return self._done and not self.broken

    def answer(self, created: int) -> bytes:
        return orjson.dumps(self._response)


def _frames(asm: MessagesAssembler | ResponsesAssembler | StreamAssembler, frames: bytes) -> None:
    for event in frames.split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    asm.feed(payload)


def assembler_for(route: str) -> MessagesAssembler | ResponsesAssembler | StreamAssembler | None:
    """The assembler of a route's streams (``chat``, ``messages``, ``responses``), or ``None``."""
    if route == "chat":
        return StreamAssembler()
    if route == "messages":
        return MessagesAssembler()
    if route == "responses":
        return ResponsesAssembler()
    return None


def _object(asm: MessagesAssembler | ResponsesAssembler | StreamAssembler, payload: bytes) -> dict[str, Any] | None:
    """A payload's JSON object, or ``None`` with ``asm`` marked broken."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        asm.broken = True
        return None
    return obj
