"""Writing whole responses: a JSON body with its length, and the OpenAI-shaped error every route answers with
unless its frontend has a shape of its own (Anthropic's).

Invariant: every error response carries ``x-litellm-version`` and, once the request has one, its
``x-litellm-call-id``; headers an error brings (``retry-after``, ``x-ratelimit-*``, ``allow``) are added.
"""

from __future__ import annotations

from relaygate import __version__
from relaygate.core.errors import GatewayError
from relaygate.http.types import Headers, Send

VERSION = __version__.encode()
JSON = (b"content-type", b"application/json")


async def send_body(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """One response: ``headers`` (completed here with ``content-length``) and ``body`` in one piece."""
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """A JSON response; ``body`` is already encoded. ``headers`` (appended to) may be left out."""
    hs = headers if headers is not None else []
    hs.append(JSON)
    await send_body(send, status, body, hs)


async def send_error(send: Send, exc: GatewayError, call_id: bytes | None = None) -> None:
    """``exc`` as an OpenAI-format error body with its status (``GatewayError.body``)."""
    headers = [(b"x-litellm-version", VERSION)]
    if call_id:
        headers.append((b"x-litellm-call-id", call_id))
    headers.extend(exc.headers)
    await send_json(send, exc.status, exc.body(), headers)


async def send_quiet(send: Send, body: bytes, more: bool) -> None:
    """A body piece to a client that may be gone: a failed send is ignored."""
    try:
        await send({"type": "http.response.body", "body": body, "more_body": more})
    except (OSError, RuntimeError):
        pass
