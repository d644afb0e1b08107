"""Request views: the few fields of a client request the gateway needs, decoded with msgspec.

What it owns: one small Struct per endpoint holding only what auth, routing, limits and providers read
(``model``, ``stream``, ``stream_options``, routing overrides), with everything else left in the client's
bytes. Decoders are built once here. A body that does not decode raises :class:`BadRequest` whose message
names the field (msgspec's ``$.stream``-style path), so the client learns exactly what was wrong.

Invariant: decoding never copies the conversation: ``messages`` / ``prompt`` / ``input`` stay
``msgspec.Raw`` slices of the request body, handed to token estimation and provider translation as is.
"""

from __future__ import annotations

import msgspec

from relaygate.core.errors import BadRequest


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Common(msgspec.Struct, kw_only=True):
    model: str = ""
    user: str | None = None
    # per-request router overrides, as LiteLLM accepts them in the body
    fallbacks: list[str] | None = None
    num_retries: int | None = None
    timeout: float | None = None
    mock_testing_fallbacks: bool | None = None


class ChatView(_Common, kw_only=True):
    messages: list[msgspec.Raw]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: msgspec.Raw = msgspec.Raw(b"null")  # msgspec cannot put Raw in a union: null when absent


class CompletionView(_Common, kw_only=True):
    prompt: msgspec.Raw
    stream: bool | None = False
    stream_options: StreamOptions | None = None


class EmbeddingView(_Common, kw_only=True):
    input: msgspec.Raw
    encoding_format: str | None = None
    stream: bool | None = False  # never true; kept so every view has it


AnyView = ChatView | CompletionView | EmbeddingView

_DECODERS: dict[str, msgspec.json.Decoder[AnyView]] = {
    "chat": msgspec.json.Decoder(ChatView),
    "completions": msgspec.json.Decoder(CompletionView),
    "embeddings": msgspec.json.Decoder(EmbeddingView),
}


def decode_view(endpoint: str, body: bytes) -> AnyView:
    """Decode ``body`` for ``endpoint``; malformed JSON or a wrong type is a 400 naming the field."""
    try:
        return _DECODERS[endpoint].decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = None
        at = text.rfind(" - at `$.")
        if at != -1:
            param = text[at + 9:-1].split(".")[0].split("[")[0]
        raise BadRequest(f"Invalid request body: {text}", param=param) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Invalid JSON in request body: {exc}") from None
