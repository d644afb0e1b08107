"""Gateway errors that know the HTTP status and the OpenAI-format body they become; secret redaction.

Like h11's ``error_status_hint``, every error raised on the request path carries the status it should be
answered with, so the ASGI shell turns any of them into a response with one ``except`` and no table
look-ups. Bodies follow LiteLLM's proxy: ``{"error": {"message", "type", "param", "code"}}`` where
``code`` is the status as a string.

``type`` is what LiteLLM's proxy writes for the same failure (its ``ProxyException`` takes
``getattr(exc, "type", "None")``; LiteLLM's exception classes are the openai SDK's, whose ``type`` is the
upstream body's or ``None``), so clients that branch on it behave the same:

- a gateway bug or config error (the base class), 500: ``internal_server_error`` (``ProxyErrorTypes``);
- ``BadRequest``, 400: ``invalid_request_error``;
- ``AuthError``, 401: ``auth_error`` (``UserAPIKeyAuthExceptionHandler``); a key not allowed the model,
  401: ``key_model_access_denied`` (raised in ``auth.keys``);
- ``NotFound``, 404: ``not_found_error`` (``ProxyErrorTypes``);
- ``RateLimited`` (no deployment free) and ``KeyLimitExceeded`` (a key's, team's or user's limit), 429:
  the string ``"None"``, ``param`` ``"None"`` too (``RouterRateLimitError`` and the limiter's
  ``HTTPException`` carry no type);
- ``UpstreamError`` (``providers.base.classify`` and the mocks): a 429 is ``throttling_error``
  (``litellm.RateLimitError`` sets it); a 400 or 422 keeps the upstream's own ``type``
  (``BadRequestError(body=...)``); any other status is ``null`` (``AuthenticationError``,
  ``NotFoundError``, ``InternalServerError``... are built with ``body=None``);
- ``ContextWindowExceeded``, ``ContentPolicyViolation`` (400), ``UpstreamTimeout`` (408),
  ``UpstreamConnectError`` / ``UpstreamProtocolError`` (502; LiteLLM's ``APIConnectionError`` answers 500,
  the status here stays 502): ``null``.

The Anthropic frontend (``/v1/messages``) renders every error in Anthropic's shape with Anthropic's
type for the status instead (``providers.messages_api.error_type``).

Messages never contain configured secrets, and no caller has to remember it: an error message often
quotes an upstream's answer (a 401 body that echoes the key it was sent), so ``GatewayError.message`` is
passed through :func:`redact` whenever it is set, at construction or later. :func:`redact` replaces every
configured secret (master key, virtual keys, deployment keys, cloud credentials, Redis and proxy
passwords: whatever the config loader registers with :func:`register_secrets`) by ``[redacted]``. The
log formatters (``relaygate.logs``) run the same function over every log line. The registry is
per-process and only grows: a secret dropped by a reload stays redacted, which is harmless.

A :class:`Redactor` matches all secrets in one pass of one compiled regex built as a radix trie (shared
prefixes are matched once, so thousands of virtual keys cost a few character compares per text position,
not one compare per key). Secrets shorter than :data:`MIN_SECRET_LEN` are not registered: redacting
``"admin"`` everywhere would garble ordinary text, and such a key is no secret anyway. Each secret is also
matched in its JSON-escaped and percent-encoded spellings, the forms an echo usually takes. Redaction runs
only on failure paths (errors, log lines), never on a successful request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

import orjson

MIN_SECRET_LEN = 8
REDACTED = "[redacted]"
# an Authorization value echoed back (``Bearer <token>``): redacted even when the token was never configured
# (OAuth access tokens the gateway obtained at run time). Tried only when the text contains "bearer": a
# case-insensitive pattern tried at every position costs ~30 ns a character, a substring test ~1.
_BEARER = re.compile(r"([Bb][Ee][Aa][Rr][Ee][Rr][ \t]+)[^\s\"'\\,;]{8,}")


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of ``words`` (longest first at each branch), as a radix trie."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        # single-child chains become literal runs, so nesting depth is the number of branch points only
        run: list[str] = []
        while len(node) == 1 and "" not in node:
            ((ch, node),) = node.items()
            run.append(ch)
        head = re.escape("".join(run))
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return head
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return head + (f"(?:{body})?" if "" in node else body)

    return emit(trie)


class Redactor:
    """Replaces every occurrence of a fixed set of secrets (and their JSON / URL spellings) in text, and
    the token of any ``Bearer <token>``."""

    __slots__ = ("secrets", "_pattern")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN)
        forms: set[str] = set()
        for s in self.secrets:
            forms.add(s)
            forms.add(orjson.dumps(s).decode()[1:-1])
            forms.add(quote(s, safe=""))
        self._pattern = re.compile(_trie_pattern(forms)) if forms else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if "bearer" in text.lower():
            text = _BEARER.sub(r"\1" + REDACTED, text)
        return text


_redactor = Redactor()


def register_secrets(secrets: Iterable[str]) -> None:
    """Add ``secrets`` to the set :func:`redact` removes (the config loader calls this for every config)."""
    global _redactor
    new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
    if not new <= _redactor.secrets:
        _redactor = Redactor(_redactor.secrets | new)


def redact(text: str) -> str:
    """``text`` with every registered secret (and any ``Bearer`` token) replaced by ``[redacted]``."""
    return _redactor(text)


class GatewayError(Exception):
    """Base error: ``status`` is the HTTP status, ``type`` the OpenAI error type.

    ``final`` marks errors that no fallback group can help (the caller's own limits, a limiter that
    refuses everything): the router raises them as they are, without trying fallbacks.
    """

    status: int = 500
    type: str | None = "internal_server_error"
    """LiteLLM's ``type`` for this failure (``None`` is written as JSON ``null``, as LiteLLM does)."""
    default_param: str | None = None
    """``param`` when the raiser gives none (LiteLLM writes the string ``"None"`` for some classes)."""
    final: bool = False
    budget_fallback: str | None = None
    """A model the request may be served by instead (a key's ``budget_fallbacks``: set by the budget guard on a
    refusal of the key's own per-model budget; ``Pipeline.run`` reroutes, anywhere else the refusal stands)."""
    litellm_class: str | None = None
    """The exception class LiteLLM raises for this refusal of the gateway's own, where it is not the one its
    HTTP status names (LiteLLM's Prometheus ``exception_class`` and ``error_information.error_class``); None:
    named from the status and type."""

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
        message = _redactor(message)
        super().__init__(message)
        self._message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.param = param if param is not None else self.default_param
        self.code = code if code is not None else str(self.status)
        self.headers: list[tuple[bytes, bytes]] = headers or []

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = _redactor(value)
        self.args = (self._message,)

    body_call_id: str | None = None
    """The call id the error's body names as ``litellm_call_id`` (``general_settings.include_call_id_in_error_body``,
    set by the pipeline when it answers with this error); None: the ``x-litellm-call-id`` header only."""

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if self.body_call_id is not None:
            error["litellm_call_id"] = self.body_call_id
        return orjson.dumps({"error": error})


class BadRequest(GatewayError):
    status = 400
    type: str | None = "invalid_request_error"


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
    """No deployment of the group can take the request now: LiteLLM's ``RouterRateLimitError``, a bare
    ``ValueError`` its proxy answers with ``type`` and ``param`` the string ``"None"``."""

    status = 429
    type = "None"
    default_param = "None"
    litellm_class = "RouterRateLimitError"


class KeyLimitExceeded(RateLimited):
    """A key's, team's or user's own limit was crossed: a 429 no fallback group can help (LiteLLM's
    ``ProxyRateLimitError``, which its metrics name ``HTTPException``)."""

    final = True
    litellm_class = "HTTPException"


class ModelLimitExceeded(KeyLimitExceeded):
    """A key's (team's ...) limit for one model group (LiteLLM's ``model_rpm_limit`` / ``model_tpm_limit``) was
    crossed: the configured fallbacks, other model groups, are tried, as LiteLLM tries them unless
    ``general_settings.disable_fallbacks_on_per_model_rate_limits`` (then it is a :class:`KeyLimitExceeded`)."""

    final = False


class ModelNotFound(BadRequest):
    """No model group, alias or wildcard serves the requested model (LiteLLM's ``ProxyModelNotFoundError``)."""

    litellm_class = "ProxyModelNotFoundError"


class ContextWindowExceeded(BadRequest):
    """Upstream said the prompt is too long: triggers ``context_window_fallbacks``."""

    type = None


class ContentPolicyViolation(BadRequest):
    """Upstream refused on content policy: triggers ``content_policy_fallbacks``."""

    type = None


class UpstreamError(GatewayError):
    """The upstream answered with an HTTP error; status and message are passed through, ``type`` as LiteLLM
    sets it: ``throttling_error`` for a 429, the upstream's own (given as ``type``) for a 400 / 422, else
    ``None``."""

    type = None

    def __init__(self, message: str, *, status: int, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, status=status, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        if status == 429:  # litellm.RateLimitError sets its type over whatever the upstream said
            self.type = "throttling_error"
        elif status != 400 and status != 422:  # LiteLLM builds these classes with body=None: no type
            self.type = None


class UpstreamConnectError(GatewayError):
    """Could not connect to (or lost the connection to) the upstream before a response: 502."""

    status = 502
    type = None


class UpstreamTimeout(GatewayError):
    """Connect, first-byte, idle or total timeout talking to the upstream: 408, as LiteLLM answers."""

    status = 408
    type = None

    def __init__(self, message: str, *, phase: str = "total", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.phase = phase


class UpstreamProtocolError(UpstreamConnectError):
    """The upstream sent bytes that are not valid HTTP/1.1: 502."""
