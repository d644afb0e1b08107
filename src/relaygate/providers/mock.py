"""The built-in ``mock`` provider: answers locally, no upstream, no keys, no network.

``model = "mock/echo"`` echoes the last user message; any other ``mock/NAME`` answers
``mock_response`` (a ``litellm_params`` key, as in LiteLLM) or a fixed sentence. Options, all in the
deployment's params: ``mock_latency_ms`` (before a non-stream answer, or before the first chunk),
``mock_chunks`` (content chunks per stream, default 8), ``mock_chunk_gap_ms``, ``mock_embedding_dim``.

Sans-IO like every adapter: it returns a plan of ``(delay_seconds, bytes)`` steps that the IO shell
plays out with ``asyncio.sleep``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any, ClassVar

import msgspec

from relaygate.config.model import Deployment
from relaygate.core.errors import BadRequest
from relaygate.core.sse import frame
from relaygate.core.tokens import estimate_tokens
from relaygate.core.views import ChatView, CompletionView, EmbeddingView
from relaygate.providers.base import Call, Provider, json_bytes

DEFAULT_TEXT = "This is a mock response from relaygate's built-in mock provider."
_part_decoder = msgspec.json.Decoder(Any)


def _last_user_text(view: ChatView) -> str:
    for raw in reversed(view.messages):
        msg = _part_decoder.decode(raw)
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _split(text: str, n: int) -> list[str]:
    if n <= 1 or not text:
        return [text]
    words = text.split(" ")
    per = max(1, -(-len(words) // n))
    parts = [" ".join(words[i:i + per]) for i in range(0, len(words), per)]
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


class MockProvider(Provider):
    name: ClassVar[str] = "mock"
    local: ClassVar[bool] = True
    default_api_base: ClassVar[str | None] = None
    error_prefix: ClassVar[str] = "MockException"

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        x = dep.extra
        self.latency = float(x.get("mock_latency_ms", 0) or 0) / 1000.0
        self.chunks = int(x.get("mock_chunks", 8) or 8)
        self.gap = float(x.get("mock_chunk_gap_ms", 0) or 0) / 1000.0
        self.dim = int(x.get("mock_embedding_dim", 8) or 8)
        fixed = x.get("mock_response")
        self.fixed = str(fixed) if fixed is not None else None
        self.echo = dep.upstream_model == "echo"

    def _text(self, call: Call) -> str:
        if self.fixed is not None:
            return self.fixed
        if self.echo and isinstance(call.view, ChatView):
            return _last_user_text(call.view) or DEFAULT_TEXT
        if self.echo and isinstance(call.view, CompletionView):
            prompt = _part_decoder.decode(call.view.prompt)
            return prompt if isinstance(prompt, str) else DEFAULT_TEXT
        return DEFAULT_TEXT

    def _usage(self, call: Call, text: str) -> dict[str, int]:
        view = call.view
        raw = b"".join(bytes(m) for m in view.messages) if isinstance(view, ChatView) else bytes(
            getattr(view, "prompt", b"") or getattr(view, "input", b""))
        p = estimate_tokens(raw)
        c = estimate_tokens(text)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def plan(self, call: Call) -> list[tuple[float, bytes]]:
        """The local answer: ``(delay, bytes)`` steps. One step for JSON, several for a stream."""
        now = int(call.now)
        rid = "chatcmpl-mock-" + hashlib.blake2s(call.body, digest_size=8).hexdigest()
        if isinstance(call.view, EmbeddingView):
            return [(self.latency, self._embeddings(call))]
        text = self._text(call)
        chat = isinstance(call.view, ChatView)
        if not call.stream:
            if chat:
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                obj = "text_completion"
            body = {"id": rid, "object": obj, "created": now, "model": call.model, "choices": [choice],
                    "usage": self._usage(call, text)}
            return [(self.latency, json_bytes(body))]
        steps: list[tuple[float, bytes]] = []
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choice: dict[str, Any], **more: Any) -> bytes:
            return frame(json_bytes({"id": rid, "object": obj, "created": now, "model": call.model,
                                     "choices": [choice] if choice else [], **more}))

        if chat:
            steps.append((self.latency, chunk({"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None})))
        for i, part in enumerate(_split(text, self.chunks)):
            delay = self.gap if (chat or i) else self.latency
            if chat:
                c = {"index": 0, "delta": {"content": part}, "finish_reason": None}
            else:
                c = {"index": 0, "text": part, "finish_reason": None, "logprobs": None}
            steps.append((delay, chunk(c)))
        final = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else {
            "index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
        steps.append((0.0, chunk(final)))
        if call.include_usage:
            steps.append((0.0, chunk({}, usage=self._usage(call, text))))
        steps.append((0.0, b"data: [DONE]\n\n"))
        return steps

    def _embeddings(self, call: Call) -> bytes:
        view = call.view
        assert isinstance(view, EmbeddingView)
        inputs: Any = _part_decoder.decode(view.input)
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise BadRequest("Invalid request body: `input` must be a string or a non-empty array",
                             param="input")
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            seed = hashlib.blake2s(json_bytes(item), digest_size=32).digest()
            vec = [((b / 255.0) * 2.0 - 1.0) for b in (seed * (self.dim // 32 + 1))[: self.dim]]
            emb: Any = vec
            if view.encoding_format == "base64":
                emb = base64.b64encode(struct.pack(f"<{self.dim}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
            tokens += estimate_tokens(item if isinstance(item, str) else str(item))
        return json_bytes({"object": "list", "data": data, "model": call.model,
                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
