"""Gateway errors that know the HTTP status and the OpenAI-format body they become.

Like h11's ``error_status_hint``, every error raised on the request path carries the status it should be
answered with, so the ASGI shell turns any of them into a response with one ``except`` and no table
look-ups. Bodies follow LiteLLM's proxy: ``{"error": {"message", "type", "param", "code"}}`` where
``code`` is the status as a string. Messages never contain secrets: callers pass redacted text only.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    """Base error: ``status`` is the HTTP status, ``type`` the OpenAI error type."""

    status: int = 500
    type: str = "internal_server_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.param = param
        self.code = code if code is not None else str(self.status)
        self.headers: list[tuple[bytes, bytes]] = headers or []

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthError(GatewayError):
    status = 401
    type = "auth_error"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"


class ContextWindowExceeded(BadRequest):
    """Upstream said the prompt is too long: triggers ``context_window_fallbacks``."""

    type = "context_length_exceeded"


class ContentPolicyViolation(BadRequest):
    """Upstream refused on content policy: triggers ``content_policy_fallbacks``."""

    type = "content_policy_violation"


class UpstreamError(GatewayError):
    """The upstream answered with an HTTP error; status and message are passed through."""

    type = "upstream_error"

    def __init__(self, message: str, *, status: int, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, status=status, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamConnectError(GatewayError):
    """Could not connect to (or lost the connection to) the upstream before a response: 502."""

    status = 502
    type = "api_connection_error"


class UpstreamTimeout(GatewayError):
    """Connect, first-byte, idle or total timeout talking to the upstream: 408, as LiteLLM answers."""

    status = 408
    type = "timeout"

    def __init__(self, message: str, *, phase: str = "total", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.phase = phase


class UpstreamProtocolError(UpstreamConnectError):
    """The upstream sent bytes that are not valid HTTP/1.1: 502."""
