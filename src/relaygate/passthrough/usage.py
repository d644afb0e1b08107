"""Reading token usage out of a pass-through answer while it streams to the client (sans-IO).

A pass-through answer is relayed byte for byte; :class:`UsageTap` is fed a copy of each piece as it goes
by and says, at the end, which model answered and how many tokens it used, in OpenAI's terms (``prompt``
includes cached-read and cache-write tokens, as :meth:`relaygate.cost.prices.PriceTable.tokens` expects).

Shapes understood, unary or streamed:

- Anthropic Messages: ``usage`` of a message (``input_tokens`` without the cache counts,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens``, ``output_tokens``); in a stream,
  ``message_start`` then ``message_delta`` events, whose counts are cumulative (the last wins);
- OpenAI chat and completions: ``usage.prompt_tokens`` / ``completion_tokens`` with their ``*_details``
  (a stream carries it in its last chunk when the client asked ``stream_options.include_usage``);
- OpenAI Responses: ``usage.input_tokens`` / ``output_tokens`` with ``input_tokens_details``, in the answer
  or in a stream's ``response.completed`` event;
- Gemini (AI Studio and Vertex ``generateContent``): ``usageMetadata`` (``promptTokenCount``,
  ``candidatesTokenCount``, ``cachedContentTokenCount``, ``thoughtsTokenCount``), in the answer, in each
  SSE chunk (cumulative) or in a streamed JSON array; the model is ``modelVersion``;
- Bedrock Converse: ``usage.inputTokens`` / ``outputTokens`` / ``cacheReadInputTokens`` / ``cacheWriteInputTokens``,
  in the answer or in the ``metadata`` event of a ``converse-stream`` (AWS's binary event stream).

Bounded: an event stream is decoded event by event and only events that can carry usage or the model are
parsed (a substring test each); a JSON answer is kept for the end only up to :data:`MAX_JSON` bytes (a
larger one, a file download say, is relayed without being read). Anything unreadable leaves the usage
unknown (``None``), never an error: the client's answer is what matters.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core import errors
from relaygate.core.sse import SSEDecoder
from relaygate.providers.bedrock import EventStreamDecoder

__all__ = ["MAX_JSON", "Usage", "UsageTap"]

MAX_JSON = 4 * 1024 * 1024
"""The largest JSON answer kept to read its usage at the end."""

_HINTS = (b'"usage', b"usageMetadata", b'"message_start"', b'"modelVersion"')


class Usage:
    """What an answer used, in OpenAI's terms; ``seen``: some usage was found."""

    __slots__ = ("model", "prompt", "completion", "cache_read", "cache_write", "reasoning", "seen")

    def __init__(self) -> None:
        self.model = ""
        self.prompt = 0
        self.completion = 0
        self.cache_read = 0
        self.cache_write = 0
        self.reasoning = 0
        self.seen = False


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _sub(obj: Any, key: str) -> dict[str, Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, dict) else {}


def _anthropic(u: dict[str, Any], out: Usage) -> None:
    # message_delta repeats only what changed: keep what message_start said for the rest
    if "input_tokens" in u or "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:
        cr, cw = _int(u.get("cache_read_input_tokens")), _int(u.get("cache_creation_input_tokens"))
        out.cache_read, out.cache_write = cr, cw
        out.prompt = _int(u.get("input_tokens")) + cr + cw
    if "output_tokens" in u:
        out.completion = _int(u.get("output_tokens"))


def _read_usage(u: dict[str, Any], out: Usage) -> None:
    out.seen = True
    if "prompt_tokens" in u or "completion_tokens" in u:  # OpenAI chat / completions
        out.prompt, out.completion = _int(u.get("prompt_tokens")), _int(u.get("completion_tokens"))
        out.cache_read = _int(_sub(u, "prompt_tokens_details").get("cached_tokens"))
        out.reasoning = _int(_sub(u, "completion_tokens_details").get("reasoning_tokens"))
    elif "input_tokens_details" in u or "output_tokens_details" in u:  # OpenAI Responses
        out.prompt, out.completion = _int(u.get("input_tokens")), _int(u.get("output_tokens"))
        out.cache_read = _int(_sub(u, "input_tokens_details").get("cached_tokens"))
        out.reasoning = _int(_sub(u, "output_tokens_details").get("reasoning_tokens"))
    elif "inputTokens" in u or "outputTokens" in u:  # Bedrock Converse
        cr, cw = _int(u.get("cacheReadInputTokens")), _int(u.get("cacheWriteInputTokens"))
        out.prompt, out.completion = _int(u.get("inputTokens")) + cr + cw, _int(u.get("outputTokens"))
        out.cache_read, out.cache_write = cr, cw
    else:  # Anthropic
        _anthropic(u, out)


def read_object(obj: Any, out: Usage) -> None:
    """Take what ``obj`` (one decoded answer or stream event) says of the model and usage."""
    if not isinstance(obj, dict):
        return
    kind = obj.get("type")
    if kind == "message_start":
        obj = _sub(obj, "message")
    elif isinstance(kind, str) and kind.startswith("response.") and isinstance(obj.get("response"), dict):
        obj = obj["response"]
    model = obj.get("model") or obj.get("modelVersion")
    if isinstance(model, str) and model and not out.model:
        out.model = model[:256]
    u = obj.get("usage")
    if isinstance(u, dict):
        _read_usage(u, out)
    gm = obj.get("usageMetadata")
    if isinstance(gm, dict):
        out.seen = True
        cached = _int(gm.get("cachedContentTokenCount"))
        out.prompt, out.cache_read = _int(gm.get("promptTokenCount")), cached
        thoughts = _int(gm.get("thoughtsTokenCount"))
        out.completion, out.reasoning = _int(gm.get("candidatesTokenCount")) + thoughts, thoughts


class UsageTap:
    """Fed a copy of an answer's pieces (:meth:`feed`); :meth:`close` gives its :class:`Usage` or None.

    :meth:`for_type` picks the reading from the answer's ``Content-Type``: an event stream is decoded as it
    goes (SSE, or Bedrock's binary ``application/vnd.amazon.eventstream``), a JSON answer is kept for the
    end (up to :data:`MAX_JSON`), anything else is not read at all."""

    __slots__ = ("_sse", "_aws", "_buf", "_size", "usage")

    def __init__(self, sse: bool, aws: bool = False) -> None:
        self._sse = SSEDecoder() if sse else None
        self._aws = EventStreamDecoder() if aws else None
        self._buf: list[bytes] | None = [] if not sse and not aws else None
        self._size = 0
        self.usage = Usage()

    @classmethod
    def for_type(cls, content_type: bytes) -> UsageTap | None:
        ct = content_type.lower()
        if ct.startswith(b"text/event-stream"):
            return cls(True)
        if ct.startswith(b"application/vnd.amazon.eventstream"):
            return cls(False, aws=True)
        if b"json" in ct:
            return cls(False)
        return None

    def feed(self, data: bytes) -> None:
        dec = self._sse
        if dec is not None:
            for _, payload in dec.feed(data):
                self._event(payload)
            return
        aws = self._aws
        if aws is not None:
            try:
                frames = aws.feed(data)
            except errors.GatewayError:  # not an event stream after all: stop reading it
                self._aws = None
                return
            for _, payload in frames:
                self._event(payload)
            return
        buf = self._buf
        if buf is not None:
            self._size += len(data)
            if self._size > MAX_JSON:
                self._buf = None
            else:
                buf.append(data)

    def _event(self, payload: bytes) -> None:
        if not any(h in payload for h in _HINTS):
            return
        try:
            read_object(orjson.loads(payload), self.usage)
        except orjson.JSONDecodeError:
            return

    def close(self) -> Usage | None:
        """The usage read (None when the answer said none), once the answer ended or broke off."""
        dec = self._sse
        if dec is not None:
            for _, payload in dec.close():
                self._event(payload)
        elif self._buf:
            try:
                obj = orjson.loads(b"".join(self._buf))
            except orjson.JSONDecodeError:
                obj = None
            self._buf = None
            for item in obj if isinstance(obj, list) else [obj]:
                read_object(item, self.usage)
        u = self.usage
        return u if u.seen else None
