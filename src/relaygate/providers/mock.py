"""The built-in ``mock`` provider: an adapter whose upstream is in-process (no network, no keys).

``model = "mock/echo"`` echoes the last user message; any other ``mock/NAME`` answers
``mock_response`` (a ``litellm_params`` key, as in LiteLLM) or a fixed sentence. Options, all in the
deployment's params: ``mock_latency_ms`` (before a non-stream answer, or before the first chunk),
``mock_chunks`` (content chunks per stream, default 8), ``mock_chunk_gap_ms``, ``mock_embedding_dim``.

Like every adapter it builds an upstream request (``local://mock/...``: the client's body, the options
as headers) and reads OpenAI-shaped answers; the answers come from ``upstream.local.LocalTransport``,
which the adapter names as its :attr:`~relaygate.providers.base.Provider.transport`, so the shell runs
the same path as for any upstream.
"""

from __future__ import annotations

from typing import Any, ClassVar

from relaygate.config.model import Deployment
from relaygate.core.errors import BadRequest
from relaygate.core.views import EmbeddingView
from relaygate.providers.base import ENDPOINT_PATHS, Call, Provider, StreamTranslator
from relaygate.providers.openai import PassthroughStream
from relaygate.upstream import local
from relaygate.upstream.base import UpstreamRequest


def _number(x: dict[str, Any], name: str, default: float) -> str:
    return repr(float(x.get(name, default) or default))


class MockProvider(Provider):
    name: ClassVar[str] = "mock"
    default_api_base: ClassVar[str | None] = None
    error_prefix: ClassVar[str] = "MockException"

    def __init__(self, dep: Deployment) -> None:
        super().__init__(dep)
        self.transport = local.LOCAL
        x = dep.extra
        headers = [("content-type", "application/json"),
                   ("x-mock-latency-ms", _number(x, "mock_latency_ms", 0)),
                   ("x-mock-chunks", str(int(x.get("mock_chunks", 8) or 8))),
                   ("x-mock-chunk-gap-ms", _number(x, "mock_chunk_gap_ms", 0)),
                   ("x-mock-embedding-dim", str(int(x.get("mock_embedding_dim", 8) or 8)))]
        fixed = x.get("mock_response")
        if fixed is not None:
            headers.append(("x-mock-response", str(fixed)))
        if dep.upstream_model == "echo":
            headers.append(("x-mock-echo", "1"))
        self.headers = headers

    def build_request(self, call: Call) -> UpstreamRequest:
        view = call.view
        if isinstance(view, EmbeddingView) and local.embedding_inputs(view.input) is None:
            raise BadRequest("Invalid request body: `input` must be a string or a non-empty array",
                             param="input")
        headers = [*self.headers, ("x-mock-model", call.model), ("x-mock-created", str(int(call.now)))]
        return UpstreamRequest("POST", local.ORIGIN + ENDPOINT_PATHS[call.endpoint], headers, call.body)

    def health_request(self) -> UpstreamRequest | None:
        return UpstreamRequest("GET", local.ORIGIN + "/health")

    def stream_translator(self, call: Call) -> StreamTranslator:
        return PassthroughStream()
