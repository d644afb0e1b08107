"""LiteLLM's control fields in a request body: honoured where relaygate has the feature, never forwarded.

A client of a LiteLLM proxy may put fields in the body that are meant for the proxy, not the provider
(``core.views.CONTROL_KEYS``: ``metadata``, ``tags``, ``fallbacks``, ``num_retries``, ``mock_response``,
``api_key`` ...). Forwarded, they break real providers (OpenAI: ``400 Unrecognized request argument``;
its own ``metadata`` takes at most 16 string values). So a frontend that finds any (``core.views.controls``
after decoding, or the keys of a body it read as a dict) calls :func:`apply`, and the body the adapters get
has them removed (one re-encode of the top level, only then). A request without any pays one integer test.

What is honoured:
- ``num_retries`` (or ``max_retries``), ``timeout`` (or ``request_timeout``; ``stream_timeout`` for a stream),
  ``fallbacks``: the per-request overrides (headers win; they only tighten the operator's values);
- ``metadata``, ``litellm_metadata``, ``tags``, trace and session ids: kept on the exchange
  (``Exchange.control``) for the completion record's consumers;
- ``mock_response`` (a text answer, or ``litellm.RateLimitError`` / ``litellm.InternalServerError`` /
  ``litellm.ContextWindowExceededError`` / ``litellm.ContentPolicyViolationError`` to fail that way),
  ``mock_timeout``, ``mock_testing_fallbacks`` (the first model group fails, its fallbacks answer),
  ``mock_testing_rate_limit_error``: as LiteLLM documents them, after routing and limits, instead of the
  upstream call, so fallback and retry setups can be tested without a provider.

With ``general_settings.reject_clientside_metadata_tags`` a body that sets tags (:func:`client_tags`) is a 400:
tags then come only from keys, teams and the configured headers.

What is only removed: a client can never point a deployment elsewhere or change its credentials
(``api_key``, ``api_base``, ``base_url``, ``api_version``, ``user_config``, ``model_list`` ...).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.auth.keys import KeyInfo
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.pipeline.exchange import Exchange, StreamStart, first_frame
from relaygate.pipeline.overrides import fallbacks_value
from relaygate.providers.base import ENDPOINT_PATHS
from relaygate.providers.openai import PassthroughStream
from relaygate.route_context import RouteContext
from relaygate.router import Target
from relaygate.upstream import local
from relaygate.upstream.base import Timeouts, UpstreamRequest

MOCKS = frozenset({"mock_response", "mock_timeout", "mock_testing_fallbacks", "mock_testing_rate_limit_error"})

_MOCK_ERRORS: dict[str, type[GatewayError]] = {
    "litellm.ContextWindowExceededError": errors.ContextWindowExceeded,
    "litellm.ContentPolicyViolationError": errors.ContentPolicyViolation,
}
_MOCK_STATUS = {"litellm.RateLimitError": 429, "litellm.InternalServerError": 500,
                "litellm.ServiceUnavailableError": 503, "litellm.APIConnectionError": 500,
                "litellm.BadRequestError": 400, "litellm.AuthenticationError": 401, "litellm.NotFoundError": 404}
_TIMEOUTS = Timeouts(connect=1.0, first_byte=60.0, idle=60.0, total=60.0)


def client_tags(found: dict[str, Any]) -> bool:
    """Whether the body sets request tags: ``metadata.tags``, ``litellm_metadata.tags`` or top-level ``tags``
    (LiteLLM's ``reject_clientside_metadata_tags`` looks at the first only, so the others got around it)."""
    if found.get("tags") is not None:
        return True
    return any(isinstance(m, dict) and m.get("tags") is not None
               for m in (found.get("metadata"), found.get("litellm_metadata")))


def apply(ex: Exchange, found: dict[str, Any]) -> None:
    """Honour the control fields ``found`` (by JSON name) on ``ex``: overrides, fallbacks, mocks, metadata."""
    over = ex.over
    assert over is not None
    if ex.rt.config.general.reject_clientside_metadata_tags and client_tags(found):
        raise errors.BadRequest("Client-side 'metadata.tags' not allowed in request. 'reject_clientside_metadata_tags'"
                                "=True. Tags can only be set via key or team metadata, or by configured "
                                "request_tag_mappings.", param="metadata.tags")  # LiteLLM's words
    retries = found.get("num_retries")
    if retries is None:
        retries = found.get("max_retries")
    timeout = found.get("timeout")
    if timeout is None and ex.stream:
        timeout = found.get("stream_timeout")
    if timeout is None:
        timeout = found.get("request_timeout")
    if retries is not None or timeout is not None:
        over.merge_body(retries, timeout)
    if found.get("fallbacks") is not None:
        ex.fallbacks = fallbacks_value(found["fallbacks"])
    for k in TABLES:
        if found.get(k) is not None:
            found[k] = fallback_table(found[k], k)
    for k in _KEPT:
        if k in found:
            _writable(k, found[k])
    ex.control = found


TABLES = ("context_window_fallbacks", "content_policy_fallbacks")
"""Per-request fallback tables, in the router's format (``[{model group: [fallback groups]}, ...]``)."""


def fallback_table(raw: Any, name: str) -> list[dict[str, list[str]]]:
    """A request's ``context_window_fallbacks`` / ``content_policy_fallbacks``: LiteLLM's table of
    ``{model group: [fallback groups]}`` entries (a bare model name in it is a fallback of any group, as
    ``"*"``); anything else is a 400 naming the field."""
    if isinstance(raw, list):
        table: list[dict[str, list[str]]] = []
        anywhere: list[str] = []
        for entry in raw:
            if isinstance(entry, str) and entry:
                anywhere.append(entry)
            elif isinstance(entry, dict) and all(
                    isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) and m for m in v)
                    for k, v in entry.items()):
                table.append(entry)
            else:
                break
        else:
            return [*table, {"*": anywhere}] if anywhere else table
    raise errors.BadRequest(f"{name}: expected a list of {{model group: [fallback model groups]}}", param=name)


def route_controls(ctx: RouteContext, found: dict[str, Any] | None, key: KeyInfo | None) -> None:
    """LiteLLM's per-request fallback switches onto ``ctx``: ``disable_fallbacks: true`` (a key's
    ``metadata.disable_fallbacks``, when a boolean, replaces the request's, as LiteLLM's key-level controls
    do) and the request's own fallback tables (:data:`TABLES`) in place of the router's."""
    disabled = found.get("disable_fallbacks") is True if found is not None else False
    if key is not None and key.disable_fallbacks is not None:
        disabled = key.disable_fallbacks
    ctx.no_fallbacks = disabled
    if found is not None:
        ctx.window_fallbacks = found.get("context_window_fallbacks")
        ctx.policy_fallbacks = found.get("content_policy_fallbacks")


_KEPT = ("metadata", "litellm_metadata", "tags")
"""Fields kept for the completion record's consumers (spend logs, loggers), which will write them as JSON."""


def _writable(name: str, value: Any) -> None:
    """A kept value must be writable as JSON later, by every exporter: nesting deeper than orjson writes (254)
    or an integer outside the 64-bit range (the body's decoder keeps any integer; orjson and the exporters'
    encoders write 64 bits) is a 400 now, saying which, not a record its exporters fail on later."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        text = str(exc)
        why = ("is nested too deeply" if "ecursion" in text else
               "holds an integer outside the 64-bit range" if "64-bit" in text else
               f"cannot be written as JSON ({text})")
        raise errors.BadRequest(f"Invalid request body: `{name}` {why}", param=name) from None


MAX_TAGS = 64


def request_tags(header: list[str] | None, control: dict[str, Any] | None) -> frozenset[str] | None:
    """A request's tags (LiteLLM: ``x-litellm-tags``, body ``tags``, ``metadata.tags``): at most
    :data:`MAX_TAGS` strings of at most 256 characters, else a 400; None without any."""
    found: list[Any] = list(header or ())
    if control is not None:
        for raw in (control.get("tags"), (control.get("metadata") or {}).get("tags")
                    if isinstance(control.get("metadata"), dict) else None):
            if isinstance(raw, str):
                found.extend(t.strip() for t in raw.split(",") if t.strip())
            elif isinstance(raw, list):
                found.extend(raw)
            elif raw is not None:
                raise errors.BadRequest("tags: expected a list of strings", param="tags")
    if not found:
        return None
    if len(found) > MAX_TAGS or not all(isinstance(t, str) and 0 < len(t) <= 256 for t in found):
        raise errors.BadRequest(f"tags: expected at most {MAX_TAGS} strings of 1-256 characters", param="tags")
    return frozenset(found)


def mocked(ex: Exchange) -> bool:
    """Whether the request asks for a mock instead of the upstream call (checked once per request)."""
    control = ex.control
    return control is not None and not MOCKS.isdisjoint(control)


def _mock_failure(ex: Exchange) -> GatewayError | None:
    control = ex.control
    assert control is not None
    ctx = ex.ctx
    if control.get("mock_testing_fallbacks") and (ctx is None or ctx.attempted_fallbacks == 0):
        return errors.UpstreamError(
            f"litellm.InternalServerError: This is a mock exception for model={ex.model}, to trigger a fallback. "
            f"Fallbacks={ctx.fallbacks if ctx is not None else None}", status=500)
    if control.get("mock_testing_rate_limit_error"):
        return errors.UpstreamError(f"litellm.RateLimitError: This is a mock rate limit error for model={ex.model}",
                                    status=429)
    if control.get("mock_timeout"):
        return errors.UpstreamTimeout(f"litellm.Timeout: This is a mock timeout error for model={ex.model}")
    text = control.get("mock_response")
    if isinstance(text, str):
        cls = _MOCK_ERRORS.get(text)
        if cls is not None:
            return cls(f"{text}: This is a mock error for model={ex.model}")
        status = _MOCK_STATUS.get(text)
        if status is not None:
            return errors.UpstreamError(f"{text}: This is a mock error for model={ex.model}", status=status)
    return None


def _request(ex: Exchange, target: Target) -> UpstreamRequest | None:
    """The local mock's request for ``mock_response``, or None when the request has no mock answer."""
    control = ex.control
    assert control is not None
    if "mock_response" not in control:
        return None
    text = control["mock_response"]
    headers = [("content-type", "application/json"), ("x-mock-model", ex.model),
               ("x-mock-created", str(int(time.time()))),
               ("x-mock-response", text if isinstance(text, str) else str(text))]
    return UpstreamRequest("POST", local.ORIGIN + ENDPOINT_PATHS[ex.endpoint], headers, ex.body)


async def _mock(ex: Exchange, target: Target) -> local.LocalResponse | None:
    """The mock's failure (raised) or answer; None: no mock answer, call the upstream."""
    err = _mock_failure(ex)
    if err is not None:
        raise err
    req = _request(ex, target)
    return None if req is None else await local.LOCAL.send(req, _TIMEOUTS)


async def unary(ex: Exchange, target: Target) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """A mocked unary attempt's answer; None: no mock answer, call the upstream."""
    resp = await _mock(ex, target)
    return None if resp is None else (await resp.read(), [])


async def stream(ex: Exchange, target: Target) -> StreamStart | None:
    """A mocked stream attempt's start; None: no mock answer, call the upstream."""
    resp = await _mock(ex, target)
    if resp is None:
        return None
    translator = PassthroughStream()
    chunks = resp.__aiter__()
    first = await first_frame(chunks, translator, resp.aclose)
    return StreamStart(chunks, translator, first, [], resp.aclose)
