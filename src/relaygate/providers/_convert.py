"""Shared pieces of the translating adapters: OpenAI request reading, response building, chunk framing.

Translating adapters (Anthropic, Gemini, Vertex, Bedrock, Cohere, Ollama) all read the same OpenAI
request and produce the same OpenAI response and ``chat.completion.chunk`` frames; what they share
lives here so every provider answers in exactly the same shape.

Streams: :class:`ChunkWriter` pre-encodes everything of a chunk frame that does not change during a
stream (``data: {"id":...,"object":"chat.completion.chunk","created":...,"model":...,"choices":[{"index":0,
"delta":``) once, so each content delta costs one ``orjson.dumps`` of its text and a few byte
concatenations. :class:`ChunkStream` is the translator base: it owns the writer, the usage chunk
(sent only when the client asked with ``stream_options.include_usage``, always kept in ``last_data`` so
the gateway can account tokens), the final ``[DONE]`` and a cheap completion-token estimate for streams
that break before the upstream reports usage.

Embeddings: :func:`embedding_inputs` reads ``input`` (text only: token-id arrays are a 400 for these
upstreams), :func:`embedding_response` builds the OpenAI body (float lists, or ``base64`` of little-endian
float32 as OpenAI sends them; usage estimated when the upstream reports none). Downloaded image URLs reach
the translators as a ``{url: (mime, bytes)}`` mapping (:func:`fetched`, :data:`NO_MEDIA` when none).

Invariant: nothing here does IO; request translation raises :class:`BadRequest` (400) naming the field
for input a provider cannot take (an ``input_audio`` part for a model without audio input, ...).
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import msgspec
import orjson

from relaygate.core import tokens
from relaygate.core.errors import BadRequest
from relaygate.core.sse import SSEDecoder
from relaygate.providers._check import check_chat
from relaygate.providers.base import Call, StreamTranslator, empty_stream_error
from relaygate.upstream.base import UpstreamRequest

#: OpenAI params that mean "max output tokens"
MAX_TOKEN_KEYS = ("max_completion_tokens", "max_tokens")

_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg",
               "m4a": "audio/m4a", "webm": "audio/webm", "aac": "audio/aac", "pcm16": "audio/pcm"}


def load_request(call: Call, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client's OpenAI request as a dict (already validated as JSON by the view decoder), with the
    deployment's ``defaults`` added where the client set none; a chat request's fields are checked for the
    shapes the readers here index into (``_check.check_chat``) and against the provider's parameter rules
    (``call.rules``: unsupported ones are a 400 or dropped, reasoning parameters mapped)."""
    try:
        obj = orjson.loads(call.body)
    except orjson.JSONDecodeError as exc:  # msgspec's view decode takes what orjson refuses (lone surrogates)
        raise BadRequest(f"Invalid request body: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("Invalid request body: expected a JSON object")
    if defaults:
        apply_defaults(obj, defaults)
    if call.endpoint == "chat":
        check_chat(obj)
        if call.rules is not None:
            if call.rules.cache_points is not None:  # the request's replaces the deployment's (LiteLLM's merge)
                obj["cache_control_injection_points"] = call.rules.cache_points
            call.rules.apply(obj)
    return obj


def apply_defaults(req: dict[str, Any], defaults: dict[str, Any]) -> None:
    for k, v in defaults.items():
        if k not in req:
            req[k] = v


def max_tokens(req: dict[str, Any]) -> int | None:
    for k in MAX_TOKEN_KEYS:
        v = req.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str)] or None
    raise BadRequest("Invalid request body: `stop` must be a string or an array of strings", param="stop")


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a string becomes one text part; None none)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]
    raise BadRequest("Invalid request body: message `content` must be a string or an array", param="messages")


def text_of(content: Any) -> str:
    """The text of a message's content (parts joined); media parts are skipped."""
    if isinstance(content, str):
        return content
    if not content:
        return ""
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def data_uri(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> (``image/png``, ``AAAA``); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep:
        raise BadRequest("Invalid data URI in image_url", param="messages")
    meta = head[5:]
    mime = meta.split(";", 1)[0] or "application/octet-stream"
    if ";base64" not in meta:
        raise BadRequest("Only base64 data URIs are supported in image_url", param="messages")
    return mime, data


#: no downloaded media (the default of the translation functions)
NO_MEDIA: Mapping[str, tuple[str, bytes]] = MappingProxyType({})


def is_http(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def image_urls(body: bytes, want: Callable[[str], bool] = is_http) -> list[str]:
    """The distinct ``image_url`` URLs of an OpenAI chat body for which ``want(url)``, in order.
    Returns at once when the body mentions no ``image_url``."""
    if b'"image_url"' not in body:
        return []
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    out: list[str] = []
    messages = obj.get("messages") if isinstance(obj, dict) else None
    for m in messages if isinstance(messages, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "image_url":
                continue
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if isinstance(url, str) and want(url) and url not in out:
                out.append(url)
    return out


def fetched(url: str, media: Mapping[str, tuple[str, bytes]]) -> tuple[str, str] | None:
    """A URL the shell downloaded (``Provider.fetch_urls``) as (mime type, base64 data); None otherwise."""
    got = media.get(url) if media else None
    if got is None:
        return None
    return got[0], base64.b64encode(got[1]).decode("ascii")


def single(requests: list[UpstreamRequest], provider: str) -> UpstreamRequest:
    """The one request of ``Provider.build_requests`` (for ``build_request``, which cannot return several)."""
    if len(requests) != 1:
        raise BadRequest(f"{provider}: this request needs {len(requests)} upstream calls; use build_requests")
    return requests[0]


def image_url_of(part: dict[str, Any]) -> str:
    iu = part.get("image_url")
    url = iu.get("url") if isinstance(iu, dict) else iu
    if not isinstance(url, str) or not url:
        raise BadRequest("Invalid image_url content part: missing `url`", param="messages")
    return url


def audio_of(part: dict[str, Any]) -> tuple[str, str]:
    """``input_audio`` part -> (mime type, base64 data)."""
    ia = part.get("input_audio")
    if not isinstance(ia, dict) or not isinstance(ia.get("data"), str):
        raise BadRequest("Invalid input_audio content part: missing `data`", param="messages")
    fmt = str(ia.get("format") or "wav").lower()
    return _AUDIO_MIME.get(fmt, f"audio/{fmt}"), ia["data"]


def unsupported(kind: str, provider: str, model: str) -> BadRequest:
    return BadRequest(f"{provider} model `{model}` does not accept `{kind}` content parts", param="messages")


def tool_args(arguments: Any) -> Any:
    """An OpenAI tool call's ``arguments`` string as a JSON object (an invalid string is kept as text)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"raw_arguments": arguments}


def data_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """The payloads of the whole ``data: ...`` frames at the start of ``buf`` (clean OpenAI chunk frames, each
    ended by a blank line; other lines skipped) and the bytes after the last whole frame."""
    payloads: list[bytes] = []
    pos = 0
    while True:
        j = buf.find(b"\n\n", pos)
        if j < 0:
            return payloads, buf[pos:]
        block, pos = buf[pos:j], j + 2
        if block.startswith(b"data: "):
            payloads.append(block[6:])


def check_shape(req: dict[str, Any], shape: type[Any]) -> None:
    """Raise ``BadRequest`` naming the top-level field when ``req`` does not convert to the struct ``shape`` (an
    inbound format's field types, checked before translating it)."""
    try:
        msgspec.convert(req, shape)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = text.rfind(" - at `$.")
        param = text[at + 9:-1].split(".")[0].split("[")[0] if at != -1 else None
        raise BadRequest(f"Invalid request body: {text}", param=param) from None


def new_call_id() -> str:
    return "call_" + os.urandom(12).hex()


def tool_name_index(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistant messages (providers that key results by name)."""
    out: dict[str, str] = {}
    for m in messages:
        for tc in m.get("tool_calls") or ():
            if isinstance(tc, dict):
                fn = tc.get("function") or {}
                if tc.get("id") and fn.get("name"):
                    out[tc["id"]] = fn["name"]
    return out


def openai_tools(req: dict[str, Any]) -> list[dict[str, Any]]:
    """``tools`` (and legacy ``functions``) as a list of function dicts (name, description, parameters)."""
    out = []
    for t in req.get("tools") or ():
        if isinstance(t, dict) and t.get("type", "function") == "function" and isinstance(t.get("function"), dict):
            out.append(t["function"])
    for f in req.get("functions") or ():
        if isinstance(f, dict):
            out.append(f)
    return out


# ----------------------------------------------------------------------------------------- embeddings


def embedding_inputs(req: dict[str, Any], provider: str) -> list[str]:
    """An embeddings request's ``input`` as a list of strings; token-id arrays are a 400 (the translating
    upstreams take text only)."""
    inp = req.get("input")
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        return inp
    if isinstance(inp, list) and inp and all(isinstance(x, (int, list)) for x in inp):
        raise BadRequest(f"{provider} embeddings take text input (a string or an array of strings), not token ids",
                         param="input")
    raise BadRequest("Invalid request body: `input` must be a non-empty string or array of strings", param="input")


def dimensions(req: dict[str, Any]) -> int | None:
    d = req.get("dimensions")
    if d is None:
        return None
    if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
        raise BadRequest("Invalid request body: `dimensions` must be a positive integer", param="dimensions")
    return d


def pack_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: the vector as little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_response(vectors: list[list[float]], model: str, inputs: list[str], prompt_tokens: int | None,
                       encoding_format: str | None) -> bytes:
    """An OpenAI ``/embeddings`` body; usage is estimated from ``inputs`` when the upstream gave none."""
    b64 = encoding_format == "base64"
    data = [{"object": "embedding", "index": i, "embedding": pack_base64(v) if b64 else v}
            for i, v in enumerate(vectors)]
    if prompt_tokens is None:
        prompt_tokens = sum(tokens.estimate_tokens(t) for t in inputs)
    return orjson.dumps({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})


# ------------------------------------------------------------------------------------------ responses


def usage(prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None,
          **extra: int) -> dict[str, Any]:
    u: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}
    if cached is not None:
        u["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    u.update(extra)
    return u


def chat_response(rid: str, model: str, created: int, content: str | None, tool_calls: list[dict[str, Any]],
                  finish: str, usage_obj: dict[str, Any] | None, reasoning: str | None = None,
                  thinking_blocks: list[dict[str, Any]] | None = None) -> bytes:
    """An OpenAI ``chat.completion`` body; ``thinking_blocks`` (LiteLLM's field: Claude's signed ``thinking``
    and ``redacted_thinking`` blocks, as the client must send them back) is set only when there are some."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    body: dict[str, Any] = {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage_obj is not None:
        body["usage"] = usage_obj
    return orjson.dumps(body)


def tool_call(cid: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


# ------------------------------------------------------------------------------------------- streams

_ROLE_DELTA = b'{"role":"assistant","content":""}'
_NULL_FINISH = b',"finish_reason":null}]}\n\n'


class ChunkWriter:
    """Builds ``chat.completion.chunk`` SSE frames for one stream with a pre-encoded head."""

    __slots__ = ("head", "usage_head")

    def __init__(self, rid: str, model: str, created: int) -> None:
        common = (b'data: {"id":' + orjson.dumps(rid) + b',"object":"chat.completion.chunk","created":'
                  + str(created).encode() + b',"model":' + orjson.dumps(model))
        self.head = common + b',"choices":[{"index":0,"delta":'
        self.usage_head = common + b',"choices":[],"usage":'

    def delta(self, delta_json: bytes) -> bytes:
        return self.head + delta_json + _NULL_FINISH

    def role(self) -> bytes:
        return self.head + _ROLE_DELTA + _NULL_FINISH

    def content(self, text: str) -> bytes:
        return self.head + b'{"content":' + orjson.dumps(text) + b"}" + _NULL_FINISH

    def reasoning(self, text: str) -> bytes:
        return self.head + b'{"reasoning_content":' + orjson.dumps(text) + b"}" + _NULL_FINISH

    def thinking_block(self, block: dict[str, Any]) -> bytes:
        """A delta carrying one of Claude's ``thinking_blocks`` (a signature, or a redacted block's data)."""
        return self.head + b'{"thinking_blocks":[' + orjson.dumps(block) + b"]}" + _NULL_FINISH

    def tool_start(self, index: int, cid: str, name: str, arguments: str = "") -> bytes:
        return self.head + b'{"tool_calls":[{"index":%d,"id":%b,"type":"function","function":{"name":%b,' \
            b'"arguments":%b}}]}' % (index, orjson.dumps(cid), orjson.dumps(name), orjson.dumps(arguments)) \
            + _NULL_FINISH

    def tool_args(self, index: int, fragment: str) -> bytes:
        return self.head + b'{"tool_calls":[{"index":%d,"function":{"arguments":%b}}]}' % (
            index, orjson.dumps(fragment)) + _NULL_FINISH

    def finish(self, reason: str) -> bytes:
        return self.head + b'{},"finish_reason":"' + reason.encode() + b'"}]}\n\n'

    def usage(self, usage_json: bytes) -> bytes:
        return self.usage_head + usage_json + b"}\n\n"


class ChunkStream(StreamTranslator):
    """Base of translating stream adapters: upstream events in, OpenAI chunk frames out.

    Subclasses parse their upstream framing and call :meth:`start`, then the ``w`` writer's methods,
    :meth:`finish` and :meth:`set_usage`; :meth:`close` (or :meth:`end`) adds the usage chunk and
    ``[DONE]``.
    """

    def __init__(self, call: Call) -> None:
        self.include_usage = call.include_usage
        self.model = call.upstream_model
        self.created = int(call.now)
        self.w: ChunkWriter | None = None
        self.done = False
        self.last_data = b""
        self._chars = 0
        self._usage: bytes | None = None
        self._finish_sent = False
        self.tool_index = -1
        self.emitted = False  # any content/tool delta went out
        self.seen = False  # any upstream event arrived (subclasses set it as they parse one)

    @property
    def content_tokens(self) -> int:
        return (self._chars + 3) // 4

    def start(self, rid: str | None, model: str | None, created: int | None = None) -> bytes:
        self.w = ChunkWriter(rid or "chatcmpl-" + os.urandom(12).hex(), model or self.model,
                             created or self.created)
        return self.w.role()

    def writer(self) -> tuple[ChunkWriter, bytes]:
        """The writer, starting the stream (role chunk) if no start event came first."""
        if self.w is None:
            first = self.start(None, None)
            assert self.w is not None
            return self.w, first
        return self.w, b""

    def text(self, text: str) -> bytes:
        w, first = self.writer()
        self._chars += len(text)
        self.emitted = True
        return first + w.content(text)

    def finish(self, reason: str) -> bytes:
        if self._finish_sent:
            return b""
        self._finish_sent = True
        w, first = self.writer()
        return first + w.finish(reason)

    def set_usage(self, usage_obj: dict[str, Any]) -> None:
        data = orjson.dumps(usage_obj)
        self._usage = data
        self.last_data = b'{"usage":' + data + b"}"

    def end(self) -> bytes:
        """The stream's tail: the finish chunk if none went out, the usage chunk if asked, ``[DONE]``.

        A stream that ends before any upstream event arrived is an error, not an empty success."""
        if self.done:
            return b""
        if not self.seen:
            raise empty_stream_error(self.__class__.__name__.removesuffix("Stream").lower() or "the upstream")
        out = b"" if self._finish_sent else self.finish("stop")
        self.done = True
        if self._usage is not None and self.include_usage:
            assert self.w is not None
            out += self.w.usage(self._usage)
        return out + b"data: [DONE]\n\n"

    def close(self) -> bytes:
        return self.end()


class SSEChunkStream(ChunkStream):
    """A :class:`ChunkStream` whose upstream speaks SSE: each event's data goes to :meth:`_event`."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._sse = SSEDecoder()

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        events = self._sse.feed(data)
        if not events:
            return b""
        self.seen = True
        if len(events) == 1:
            return self._event(events[0][1])
        return b"".join([self._event(d) for _, d in events])

    def close(self) -> bytes:
        if self.done:
            return b""
        events = self._sse.close()
        if events:
            self.seen = True
        return b"".join([self._event(d) for _, d in events]) + self.end()

    def _event(self, data: bytes) -> bytes:
        """One upstream event's data -> client frames (``b""`` for none)."""
        raise NotImplementedError
