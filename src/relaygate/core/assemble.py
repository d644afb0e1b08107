"""A chat-completions stream assembled into the one answer it streamed (sans IO).

What it owns: :class:`StreamAssembler`, fed each ``data:`` JSON payload of a chat-completions stream as the
client got it (``[DONE]`` excluded) and answering one ``chat.completion`` body once every choice has its
finish reason: content, reasoning and refusal text joined, tool calls rebuilt from their pieces, the
stream's usage chunk kept. Two consumers: the response cache stores a stream's answer
(``cache.replay``), and exporters show it as the request's output (``observe.capture``). A payload that
is not a JSON object marks the stream ``broken`` and it is never :attr:`complete`.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["StreamAssembler"]


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
        for event in frames.split(b"\n\n"):
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload and payload != b"[DONE]":
                        self.feed(payload)

    def feed(self, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.broken = True
            return
        if not isinstance(obj, dict):
            self.broken = True
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
