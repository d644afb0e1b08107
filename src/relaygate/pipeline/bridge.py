"""``/v1/completions`` on a chat-only model: bridged to ``/chat/completions`` and back, as LiteLLM does.

Most models served today are chat models: OpenAI answers ``/completions`` only for its instruct and base
models, and Anthropic, Gemini, Bedrock, Cohere or Ollama deployments have no such endpoint. A deployment
whose adapter says it does not serve the call natively (``Provider.completions_native``) gets the request as
a chat request instead:

- request: ``prompt`` (a string, or a list of one string) becomes one user message; ``echo``, ``best_of``,
  ``suffix`` and ``logprobs`` (an integer in the completions API) are dropped; everything else (``max_tokens``,
  ``temperature``, ``stop``, ``n``, ``stream``, ``stream_options``, ``user`` ...) goes on as it is. Several
  prompts in one request are a 400 (the chat API has no batch of prompts);
- answer: each choice's ``message.content`` becomes ``text`` of a ``text_completion`` object, with
  ``finish_reason``, ``usage``, ``id``, ``created`` and ``model`` kept;
- stream: each ``chat.completion.chunk`` frame becomes a ``text_completion`` frame (``delta.content`` ->
  ``text``); usage frames and ``[DONE]`` are kept.

Costs are on the bridged path only (one re-encode of the request, one per answer or frame); deployments
that serve ``/completions`` natively are unaffected.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from relaygate.core import errors
from relaygate.core.views import decode_view
from relaygate.pipeline.exchange import Exchange, StreamStart
from relaygate.providers.base import SHAPE_ERRORS, WrappedTranslator

_DROPPED = frozenset({"prompt", "echo", "best_of", "suffix", "logprobs"})
_raw = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


def chat_exchange(ex: Exchange) -> Exchange:
    """A chat-shaped twin of a completions exchange (same runtime, context, model and control fields)."""
    try:
        obj: dict[str, Any] = _raw.decode(ex.body)
        prompt = msgspec.json.decode(obj["prompt"]) if "prompt" in obj else None
    except msgspec.DecodeError as exc:  # the view skips inside strings; this reads them (bad UTF-8 ...)
        raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise errors.BadRequest("prompt: a chat model takes one prompt string (this model is served through "
                                "/chat/completions)", param="prompt")
    out: dict[str, Any] = {k: v for k, v in obj.items() if k not in _DROPPED}
    out["messages"] = [{"role": "user", "content": prompt}]
    chat = Exchange(ex.route, ex.t0, ex.rt)
    chat.endpoint = "chat"
    chat.body = _encoder.encode(out)  # the other values are copied as the client wrote them
    chat.view = decode_view("chat", chat.body)
    chat.model, chat.stream, chat.ctx, chat.control, chat.call_id = ex.model, ex.stream, ex.ctx, ex.control, ex.call_id
    chat.over, chat.obs = ex.over, ex.obs  # what the upstream request carries beyond the body (frontend.add_headers)
    return chat


def _choice(c: dict[str, Any], text: str | None) -> dict[str, Any]:
    return {"index": c.get("index", 0), "text": text or "", "logprobs": None,
            "finish_reason": c.get("finish_reason")}


def to_completion(data: bytes) -> bytes:
    """A chat completion answer as a ``text_completion`` answer; one it cannot read is a 502."""
    try:
        return _completion(orjson.loads(data))
    except (orjson.JSONDecodeError, *SHAPE_ERRORS) as exc:
        raise errors.UpstreamProtocolError(f"the upstream's chat answer cannot be read as a completion "
                                           f"({type(exc).__name__})") from None


def _completion(obj: Any) -> bytes:
    choices = [_choice(c, (c.get("message") or {}).get("content")) for c in obj.get("choices") or []]
    out = {"id": obj.get("id"), "object": "text_completion", "created": obj.get("created"),
           "model": obj.get("model"), "choices": choices}
    if obj.get("usage") is not None:
        out["usage"] = obj["usage"]
    return orjson.dumps(out)


def _frame(payload: bytes) -> bytes:
    obj = orjson.loads(payload)
    choices = [_choice(c, (c.get("delta") or {}).get("content")) for c in obj.get("choices") or []]
    out = {"id": obj.get("id"), "object": "text_completion", "created": obj.get("created"),
           "model": obj.get("model"), "choices": choices}
    if obj.get("usage") is not None:
        out["usage"] = obj["usage"]
    return b"data: " + orjson.dumps(out) + b"\n\n"


class CompletionFrames(WrappedTranslator):
    """A chat stream translator's frames, re-shaped as ``text_completion`` frames."""

    def convert(self, frames: bytes) -> bytes:
        if not frames:
            return frames
        out = []
        for frame in frames.split(b"\n\n"):
            if frame.startswith(b"data: {"):
                try:
                    out.append(_frame(frame[6:]))
                except (orjson.JSONDecodeError, *SHAPE_ERRORS):
                    out.append(frame + b"\n\n")  # not a chunk we know: as it came
            elif frame:
                out.append(frame + b"\n\n")
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        return self.convert(self.inner.feed(data))

    def close(self) -> bytes:
        return self.convert(self.inner.close())


def stream_start(start: StreamStart) -> StreamStart:
    tr = CompletionFrames(start.translator)
    return StreamStart(start.chunks, tr, tr.convert(start.first), start.headers, start.close)

