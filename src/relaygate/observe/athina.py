"""LiteLLM's ``athina`` callback: each answered request logged to Athina as one inference, one POST per request.

What it owns: the inference log of a completion record (the body LiteLLM's ``AthinaLogger.log_event`` posts), the
endpoint it goes to and the configuration; the bounded buffer, retries with backoff, drop counting and shutdown
are :class:`~relaygate.observe.generic_api.HttpExporter`'s. Athina's ``/api/v1/log/inference`` takes one
inference per call, so the sink is ``single``: every entry is a POST of its own, at most
:attr:`AthinaSink.concurrency` (8) in flight.

Configuration, as LiteLLM's ``AthinaLogger`` reads it from the environment: ``ATHINA_API_KEY`` (sent as the
``athina-api-key`` header beside ``Content-Type: application/json``; registered as a secret, never logged) and
``ATHINA_BASE_URL`` (default ``https://log.athina.ai``), to which ``/api/v1/log/inference`` is appended.
``DEFAULT_BATCH_SIZE`` (512) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` say how many entries a flush takes and how
long a partial one waits (1 s by default here, where the batching exporters wait 5: LiteLLM posts each inference
as its request ends). ``callback_settings.athina.message_logging: false``, ``turn_off_message_logging`` or a
redacted request send LiteLLM's stand-ins instead of messages and answers: ``[{"role": "user", "content":
"redacted-by-litellm"}]`` as the prompt, and the answer's contents, reasoning and tool arguments replaced by
``redacted-by-litellm`` (LiteLLM's ``perform_redaction``, :func:`relaygate.observe.standard.redacted_answer`).

Each answered request's inference (LiteLLM's ``log_event``)::

    {"language_model_id": <model>, "request": {...}, "response": <answer>, "prompt": <messages>,
     "prompt_tokens": n, "completion_tokens": n, "total_tokens": n, "response_time": <ms>,
     "tools": ..., "functions": ..., <metadata fields>}

- ``language_model_id``: the deployment's model without its provider prefix (LiteLLM's ``kwargs["model"]``);
- ``response``: the answer as the client got it (a stream's assembled, as LiteLLM's
  ``complete_streaming_response``); ``prompt``: the chat ``messages``, a completion's ``prompt`` or an
  embedding's ``input`` (LiteLLM's ``kwargs["messages"]``);
- the token counts are the request's usage; ``response_time`` the whole request's duration in milliseconds;
- ``tools`` and ``functions``: the request's, when it had them (LiteLLM's ``optional_params``);
- LiteLLM's metadata fields, each only when the request's ``metadata`` has it, its value as sent:
  ``environment``, ``prompt_slug``, ``customer_id``, ``customer_user_id``, ``session_id``,
  ``external_reference_id``, ``context``, ``expected_response``, ``user_query``, ``tags``, ``user_feedback``,
  ``model_options``, ``custom_attributes`` (:data:`METADATA_FIELDS`). ``tags`` is the request's tags (the body's
  and metadata's, with the key's and team's, as LiteLLM's proxy merges them into ``metadata.tags``) when it has
  any.

Only answered requests are sent: LiteLLM calls the logger from its success handler alone (``athina`` in
``failure_callback`` sends nothing). Every API's answers are sent (LiteLLM sends any answer object it can dump).

Where relaygate differs from LiteLLM, on purpose:

- ``request`` is the request as the model saw it: ``model``, ``messages`` (the prompt above), ``optional_params``
  (the body's parameters: everything but content, ``model``, ``user``, ``metadata`` and LiteLLM's routing
  fields), ``stream``, ``user``, ``call_type``, ``litellm_call_id``, ``response_cost`` and ``cache_hit``, names
  as LiteLLM's. LiteLLM sends its whole logging object (``model_call_details``, every value as ``str`` where JSON
  cannot hold it): the upstream provider's ``api_key`` in plain text, the proxy's metadata (the key's hash,
  alias, spend and metadata, the request's headers), the ``standard_logging_object`` and its internal
  bookkeeping. That would carry a provider credential and the gateway's internals to a third party, so nothing
  of the caller's key is sent and ``redact_user_api_key_info`` has nothing to blank.
- ``ATHINA_API_KEY`` missing is a ``ConfigError`` at start: LiteLLM neither raises nor warns; it starts and every
  post fails on the ``None`` header (printed only in verbose mode), so nothing is ever logged.
- A trailing ``/`` of ``ATHINA_BASE_URL`` is dropped (LiteLLM appends the path to it, making ``//api``); a
  base URL with a query, or one that is not http(s), is a ``ConfigError``.
- Message logging off sends a stand-in answer carrying the usage when the answer was not kept (a redacted
  request's), where LiteLLM sends its redacted answer object. An answer that is not JSON (speech audio) is sent
  as that stand-in too: LiteLLM's logger fails on it (no ``model_dump``) and sends nothing.
- Inferences are sent off the request path, retried on a lost connection, ``408``, ``429`` or ``5xx``, and
  counted when dropped (``athina_dropped``, ``athina_send_failed``). LiteLLM posts each one synchronously in its
  success handler, once, without a timeout, and prints a failure only in verbose mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relaygate.config.observe import ObserveSettings
from relaygate.observe.exporter_env import api_key, base_url
from relaygate.observe.generic_api import (
    HttpExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import REDACTED, detail_of, redacted_answer
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CALL_TYPES, CompletionRecord

__all__ = ["DEFAULT_BASE_URL", "LOG_PATH", "METADATA_FIELDS", "AthinaSink", "inference_of", "make_athina"]

DEFAULT_BASE_URL = "https://log.athina.ai"
LOG_PATH = "/api/v1/log/inference"
METADATA_FIELDS = ("environment", "prompt_slug", "customer_id", "customer_user_id", "session_id",
                   "external_reference_id", "context", "expected_response", "user_query", "tags", "user_feedback",
                   "model_options", "custom_attributes")
"""The request metadata's fields LiteLLM copies into an inference, in its order."""

_PROMPT_KEYS = ("messages", "prompt", "input")
_NOT_PARAMS = frozenset({"model", "messages", "prompt", "input", "metadata", "litellm_metadata", "user",
                         "litellm_session_id", "litellm_trace_id", "tags", "mock_response"})
"""Request-body keys that are not the model's parameters (content, routing, logging)."""
_FUNCTION_PARAMS = ("tools", "functions")
_REDACTED_PROMPT = ({"role": "user", "content": REDACTED},)

_encode = msgspec.json.Encoder(enc_hook=str).encode


def _prompt(body: Any) -> Any:
    if isinstance(body, dict):
        for key in _PROMPT_KEYS:
            if key in body:
                return body[key]
    return None


def inference_of(record: CompletionRecord, *, redact_messages: bool = False) -> dict[str, Any]:
    """The inference one answered request is logged as (module docstring); ``redact_messages``: message logging
    is off for this callback."""
    r = record
    detail = detail_of(r)
    model = r.upstream_model or r.model
    body = detail.input if detail is not None else None
    answer = detail.output if detail is not None else None
    redacted = detail is not None and (detail.redacted or redact_messages)
    prompt: Any
    if redacted:
        prompt = [dict(m) for m in _REDACTED_PROMPT]
        if answer is not None:
            answer = redacted_answer(answer)
    else:
        prompt = _prompt(body)
    total = r.prompt_tokens + r.completion_tokens
    if not isinstance(answer, dict):  # not kept (redacted request) or not JSON: the usage at least
        answer = {"id": r.call_id, "model": model, "usage": {
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens, "total_tokens": total}}
        if redacted and r.route in ("chat", "completions"):
            answer["choices"] = [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": REDACTED}}]
    params: dict[str, Any] = {}
    user = None
    if isinstance(body, dict):
        params = {k: v for k, v in body.items() if k not in _NOT_PARAMS}
        user = body.get("user")
    data: dict[str, Any] = {
        "language_model_id": model,
        "request": {"model": model, "messages": prompt, "optional_params": params, "stream": r.stream,
                    "user": user, "call_type": CALL_TYPES.get(r.route, r.route), "litellm_call_id": r.call_id,
                    "response_cost": r.cost, "cache_hit": r.cache_hit},
        "response": answer,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": total,
        "response_time": int(r.latency * 1000),
        "prompt": prompt,
    }
    for key in _FUNCTION_PARAMS:
        if key in params:
            data[key] = params[key]
    metadata = detail.metadata if detail is not None else None
    if metadata:
        for key in METADATA_FIELDS:
            if key in metadata:
                data[key] = metadata[key]
    if detail is not None and detail.tags:
        data["tags"] = list(detail.tags)
    return data


class AthinaSink(HttpExporter):
    """LiteLLM's ``athina`` callback: one POST per answered request to Athina's inference log, at most
    :attr:`concurrency` in flight."""

    name = "athina"
    single = True

    def __init__(self, url: str, api_key: str, *, redact_messages: bool = False, concurrency: int = 8,
                 **options: Any) -> None:
        super().__init__(url, {"athina-api-key": api_key, "Content-Type": "application/json"}, **options)
        self.redact_messages = redact_messages
        self.concurrency = max(1, concurrency)

    def entry(self, record: CompletionRecord) -> Any:
        return inference_of(record, redact_messages=self.redact_messages)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode(entries[0])


def make_athina(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                **options: Any) -> AthinaSink:
    """The ``athina`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults (and ``concurrency``). Raises ``ConfigError`` without
    ``ATHINA_API_KEY``, with a key that cannot go in a header, or with an ``ATHINA_BASE_URL`` that is not an
    http(s) URL without a query."""
    key = api_key(env, "ATHINA_API_KEY", "athina")
    base = base_url(env, "ATHINA_BASE_URL", DEFAULT_BASE_URL)
    opts = callback_options(settings, "athina")
    success, _ = event_flags(settings, "athina", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, interval=1.0)
    return AthinaSink(base + LOG_PATH, key, success=success, failure=False, on_event=on_event,
                      redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                      **defaults)
