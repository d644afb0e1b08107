"""The OpenAI frontend: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` (with and without
``/v1``, and the model-in-path forms Azure and old clients use: ``/openai/deployments/{model}/...``,
``/engines/{model}/...``).

Parse only: the body is decoded once into a msgspec view (``core.views.decode_view``: the fields the gateway
reads, duplicate ``model`` and over-deep nesting refused), body ``num_retries`` / ``timeout`` join the header
overrides, body ``fallbacks`` are the request's fallbacks, and the model comes from the path when the path
names one. Rendering is the pipeline's default, which is OpenAI's shape: answers are passed through as the
adapters produced them, errors are ``{"error": {...}}``, and a stream that fails in-band ends with an error
``data:`` frame and ``[DONE]``.
"""

from __future__ import annotations

from relaygate.core import body as body_edit
from relaygate.core.views import controls, decode_view
from relaygate.http.body import read_body
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope
from relaygate.pipeline import Exchange, Frontend, StreamStart, bridge, control, require_model
from relaygate.pipeline.frontend import Answer, Attempt, stream, unary
from relaygate.router import Target
from relaygate.upstream.base import Transport

ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/completions": "completions",
    "/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
}
MODEL_IN_PATH = (("/openai/deployments/", "{model:path}"), ("/engines/", "{model}"), ("/v1/engines/", "{model}"))
"""Prefixes (and the path parameter) of the model-in-path forms; each takes the three endpoint suffixes."""
SUFFIXES = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


class OpenAI(Frontend):
    """One instance per endpoint (``chat``, ``completions``, ``embeddings``)."""

    restamp = True

    def __init__(self, endpoint: str) -> None:
        self.route = endpoint
        self.batches = endpoint == "chat"
        self.router_route = "/" + SUFFIXES[endpoint].lstrip("/")

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        body = ex.body = await read_body(receive, ex.rt.body_limits)
        endpoint = self.route
        view = ex.view = decode_view(endpoint, body)
        ex.model = require_model(params.get("model") or view.model)
        ex.stream = bool(view.stream) and endpoint != "embeddings"
        found = controls(view)
        if found is not None:  # LiteLLM's control fields: honoured, and never sent on
            control.apply(ex, found)
            ex.body = body_edit.drop_fields(body, found)


class Completions(OpenAI):
    """``/v1/completions``: sent as it is to deployments that serve it, bridged to chat for chat-only models
    (``pipeline.bridge``; ``Provider.completions_native`` decides per deployment)."""

    def __init__(self) -> None:
        super().__init__("completions")

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        native = super().unary(transport, ex)
        chat: list[tuple[Exchange, Attempt[Answer]]] = []  # built on the first bridged attempt

        async def attempt(target: Target) -> Answer:
            if target.provider.completions_native(target.upstream_model):
                return await native(target)
            if not chat:
                cex = bridge.chat_exchange(ex)
                chat.append((cex, unary(transport, cex)))
            cex, inner = chat[0]
            try:
                data, headers = await inner(target)
            finally:
                ex.wait, cex.wait = ex.wait + cex.wait, 0.0
            return bridge.to_completion(data), headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        native = super().streaming(transport, ex)
        chat: list[tuple[Exchange, Attempt[StreamStart]]] = []

        async def attempt(target: Target) -> StreamStart:
            if target.provider.completions_native(target.upstream_model):
                return await native(target)
            if not chat:
                cex = bridge.chat_exchange(ex)
                chat.append((cex, stream(transport, cex)))
            cex, inner = chat[0]
            try:
                start = await inner(target)
            finally:
                ex.wait, cex.wait = ex.wait + cex.wait, 0.0
            return bridge.stream_start(start)

        return attempt
