"""The client APIs the gateway speaks, each a :class:`~relaygate.pipeline.Frontend` (parse and render only):

- ``openai``: chat, completions, embeddings (and the model-in-path forms);
- ``anthropic``: ``/v1/messages`` and ``/v1/messages/count_tokens``;
- ``responses``: ``/v1/responses`` and ``/responses`` (the OpenAI Responses API), ``responses_count``: its
  ``/v1/responses/input_tokens``;
- ``google``: Gemini's ``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent``, ``:countTokens``;
- ``media``: images, audio (speech, transcriptions, translations), moderations, rerank.

:func:`llm_routes` lists every POST path with the frontend that serves it; the gateway adds each to its
route table as ``pipeline.run(frontend, ...)``. A new API is one more module and one more entry here.
"""

from __future__ import annotations

from relaygate.frontends.anthropic import CountTokens, Messages
from relaygate.frontends.google import routes as google_routes
from relaygate.frontends.media import Media
from relaygate.frontends.openai import ENDPOINTS, MODEL_IN_PATH, SUFFIXES, Completions, OpenAI
from relaygate.frontends.responses import Responses
from relaygate.frontends.responses_count import PATHS as COUNT_PATHS
from relaygate.frontends.responses_count import ResponsesInputTokens
from relaygate.pipeline import Frontend

_MEDIA_PATHS = (("images", "/images/generations"), ("image_edits", "/images/edits"), ("speech", "/audio/speech"),
                ("transcriptions", "/audio/transcriptions"), ("translations", "/audio/translations"),
                ("moderations", "/moderations"), ("rerank", "/rerank"))


def llm_routes() -> list[tuple[str, Frontend]]:
    """``(path, frontend)`` for every LLM route (all POST). Frontends are shared by the paths of one API."""
    openai = {endpoint: Completions() if endpoint == "completions" else OpenAI(endpoint) for endpoint in SUFFIXES}
    out: list[tuple[str, Frontend]] = [(path, openai[endpoint]) for path, endpoint in ENDPOINTS.items()]
    for endpoint, suffix in SUFFIXES.items():
        for prefix, param in MODEL_IN_PATH:
            out.append((prefix + param + suffix, openai[endpoint]))
    out += [("/v1/messages", Messages()), ("/v1/messages/count_tokens", CountTokens())]
    responses = Responses()
    out += [("/v1/responses", responses), ("/responses", responses)]
    count = ResponsesInputTokens()
    out += [(path, count) for path in COUNT_PATHS]
    out += google_routes()  # /v1beta/models/{model}:generateContent ...
    for kind, path in _MEDIA_PATHS:
        media = Media(kind)
        out += [("/v1" + path, media), (path, media)]
        if kind == "rerank":
            out.append(("/v2/rerank", media))
    return out


__all__ = ["llm_routes"]
