"""Request handlers for routes beyond the OpenAI chat/completions/embeddings trio.

``ROUTES`` maps a POST path to ``async handler(gateway, scope, receive, send)``; the ASGI shell
(:class:`relaygate.asgi.Gateway`) adds them to its route table at startup. Handlers are typed against
:class:`relaygate.relay.Services` (never the shell's module) and reuse the gateway's
auth, body limits, router, attempt functions and transport, so limits, retries and fallbacks behave as
on the OpenAI routes.
"""

from __future__ import annotations

from typing import Any

from relaygate.inbound.media import make_handler
from relaygate.inbound.messages import count_tokens, messages

ROUTES: dict[str, Any] = {
    "/v1/messages": messages,
    "/v1/messages/count_tokens": count_tokens,
}
for _kind, _path in (("images", "/images/generations"), ("image_edits", "/images/edits"),
                     ("speech", "/audio/speech"), ("transcriptions", "/audio/transcriptions"),
                     ("translations", "/audio/translations"), ("moderations", "/moderations"),
                     ("rerank", "/rerank")):
    _handler = make_handler(_kind)
    ROUTES["/v1" + _path] = _handler
    ROUTES[_path] = _handler
ROUTES["/v2/rerank"] = ROUTES["/v1/rerank"]

__all__ = ["ROUTES"]
