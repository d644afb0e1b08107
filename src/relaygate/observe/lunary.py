"""LiteLLM's ``lunary`` callback: each request as a Lunary run, a ``start`` and an ``end`` (or ``error``) event,
sent in batches to Lunary's ingest API.

What it owns: the two events of a completion record and the endpoint's configuration; batching, retries with
backoff, the bounded buffer, drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

LiteLLM's ``LunaryLogger`` hands each request to the ``lunary`` SDK's ``track_event`` twice; the SDK queues the
events and a thread POSTs whatever is queued every half second. Relaygate sends what the SDK sends, itself.

Configuration, as the SDK reads it from the environment: the project key from ``LUNARY_PRIVATE_KEY``, else
``LUNARY_PUBLIC_KEY``, else ``LUNARY_APP_ID`` (sent as ``Authorization: Bearer <key>``, registered as a secret and
never logged); ``LUNARY_API_URL`` (default ``https://api.lunary.ai``, then ``/v1/runs/ingest``). A flush takes at
most ``DEFAULT_BATCH_SIZE`` (512) records, two events each, and a partial one waits
``DEFAULT_FLUSH_INTERVAL_SECONDS`` (0.5 s by default here: the SDK's send period). ``callback_settings.lunary.
message_logging: false``, ``turn_off_message_logging`` or a redacted request send LiteLLM's stand-ins instead of
messages and answers (``{"role": "user", "content": "redacted-by-litellm"}``, the assistant's likewise);
``redact_user_api_key_info`` leaves the ``user_api_key_*`` entries out of ``metadata``.

The body is ``{"events": [...]}`` (Lunary's ingest takes a list, and sorts it by timestamp, so a run's ``start``
is stored before its ``end``). Every event has the SDK's keys, ``null`` where there is no value: ``event``,
``type`` (``embed`` for an embedding, else ``llm``), ``name``, ``userId``, ``userProps``, ``tags``,
``threadTags``, ``runId``, ``parentRunId``, ``timestamp`` (ISO 8601, UTC), ``message``, ``input``, ``output``,
``error``, ``feedback``, ``runtime: litellm``, ``tokensUsage``, ``metadata``, ``params``, ``templateId``,
``appId``, ``threadMetadata``. ``runId`` is the SDK's: the UUID made of the first 32 hex digits of the SHA-256 of
the call id (``x-litellm-call-id``) followed by the project key; ``parentRunId`` (the client metadata's
``parent_run_id``) is hashed the same way, so a run the client's own SDK made in the same project is the parent.

- ``start``: ``name`` the model (the deployment's, without its provider prefix: LiteLLM's ``self.model``),
  ``userId`` the request's ``user``, ``tags`` the request's tags, ``timestamp`` the request's start, ``input``
  the messages (or an embedding's input) as LiteLLM's ``parse_messages`` shapes them (each message reduced to
  ``role``, ``content`` and its ``tool_calls``' ``type``, ``id``, ``function.name`` / ``arguments``; a list of
  one is sent as that one), ``metadata``, ``params`` (the request's model parameters, without ``user``,
  ``extra_body`` and ``extra_headers``) and ``templateId`` (the ``Template-Id`` of the request's
  ``extra_headers``).
- ``end``: ``timestamp`` the request's end, ``output`` the answer's choices shaped the same way (one choice: that
  message), ``tokensUsage`` ``{"completion": ..., "prompt": ...}``.
- ``error`` (a failed request, when ``lunary`` is a failure callback): ``timestamp`` the end, ``error``
  ``{"message": ..., "stack": ...}``.

Where relaygate differs from LiteLLM, on purpose:

- A missing project key is a ``ConfigError`` at start. LiteLLM starts (it fails only when the ``lunary`` package
  is not installed); the SDK then logs ``API key not found`` and drops every batch.
- ``metadata`` is the client's metadata with the caller's key fields (``user_api_key_hash``, ``_alias``,
  ``_team_id``, ``_team_alias``, ``_user_id``, ``_org_id``, ``_end_user_id``) and ``model_group``. LiteLLM sends
  its whole ``litellm_params.metadata``, which on its proxy also holds the request's headers, budgets, spend and
  the key's own metadata (other callbacks' settings among them).
- ``params`` keep JSON values as JSON: LiteLLM writes any value that is not text, a number or a boolean (except
  ``tools``) as its Python ``str`` (``{'type': 'json_object'}``). A failed request's ``userId`` is its ``user`` or
  null: LiteLLM sends ``"default"``, which Lunary records as a user of that name.
- The ``error`` holds the error message the client got, as ``message`` and ``stack`` (LiteLLM sends only ``stack``,
  its Python traceback). A text completion's choice is sent as the assistant's message with its ``text`` as
  ``content`` (LiteLLM's ``parse_messages`` finds no ``message`` in it and sends ``role`` and ``content`` null); an
  input LiteLLM cannot shape (an embedding of token ids) is sent as it is (LiteLLM's logger fails and sends
  nothing).
- Batches go off the request path, are retried on a lost connection, ``408``, ``429`` or ``5xx``, and counted when
  dropped (``lunary_dropped``, ``lunary_send_failed``). The SDK posts once and logs a failure. ``DISABLE_SSL_VERIFY``
  and ``LUNARY_VERBOSE`` are not read; trailing ``/`` of ``LUNARY_API_URL`` are removed (the SDK would post to
  ``//v1/runs/ingest``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.exporter_env import base_url
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    HttpExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import REDACTED, detail_of
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.sinks.spend import tag_list

__all__ = ["DEFAULT_API_URL", "KEY_VARS", "LunarySink", "events_of", "make_lunary", "parse_messages", "run_id"]

DEFAULT_API_URL = "https://api.lunary.ai"
INGEST_PATH = "/v1/runs/ingest"
KEY_VARS = ("LUNARY_PRIVATE_KEY", "LUNARY_PUBLIC_KEY", "LUNARY_APP_ID")
"""Where the SDK looks for the project key, in its order."""
MAX_BODY = 10 * 1024 * 1024
"""Bytes a batch POST holds at most (a larger batch is split in halves)."""

_NOT_PARAMS = frozenset({"model", "messages", "input", "prompt", "metadata", "litellm_metadata", "user",
                         "litellm_session_id", "litellm_trace_id", "tags", "extra_body", "extra_headers",
                         "system", "instructions", "contents", "file", "image", "mask", "documents", "query",
                         "text", "mock_response"})
"""Request-body keys that are not model parameters (content, routing, logging, what LiteLLM pops)."""
_KEY_FIELDS = ("user_api_key_hash", "user_api_key_alias", "user_api_key_team_id", "user_api_key_team_alias",
               "user_api_key_user_id", "user_api_key_org_id", "user_api_key_end_user_id")
_REDACTED_INPUT = {"role": "user", "content": REDACTED}
_REDACTED_OUTPUT = {"role": "assistant", "content": REDACTED}

_encode = msgspec.json.Encoder(enc_hook=str).encode


def run_id(value: str, key: str) -> str:
    """The SDK's run id for ``value`` in the project of ``key``: a UUID of the first 32 hex digits of
    ``sha256(value + key)``."""
    h = hashlib.sha256((value + key).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        custom = call.get("custom")
        if isinstance(custom, dict):
            name, args = custom.get("name"), custom.get("input")
        elif isinstance(fn, dict):
            name, args = fn.get("name"), fn.get("arguments")
        else:
            continue
        out.append({"type": call.get("type"), "id": call.get("id"), "function": {"name": name, "arguments": args}})
    return out


def _message(message: Any) -> Any:
    """One message as LiteLLM's ``clean_message`` shapes it (a choice: its message)."""
    if not isinstance(message, dict):
        return message
    if "message" in message:
        return _message(message["message"])
    if "text" in message and "role" not in message and "content" not in message:  # a text completion's choice
        return {"role": "assistant", "content": message["text"]}
    out = {"role": message.get("role"), "content": message.get("content")}
    calls = message.get("tool_calls")
    if calls and isinstance(calls, list):
        tool_calls = _tool_calls(calls)
        if tool_calls:
            out["tool_calls"] = tool_calls
    return out


def parse_messages(value: Any) -> Any:
    """Messages (or choices) as LiteLLM's ``parse_messages`` sends them: each cleaned, a list of one as that one."""
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) == 1:
            return _message(value[0])
        return [_message(m) for m in value]
    return _message(value)


def _input_of(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    for key in ("messages", "input", "prompt"):
        if key in body:
            return body[key]
    return None


def _params(body: Any) -> tuple[dict[str, Any], Any]:
    """The request's model parameters and its ``Template-Id`` (LiteLLM's ``extra`` and ``template_id``)."""
    if not isinstance(body, dict):
        return {}, None
    template = None
    extra_headers = body.get("extra_headers")
    if isinstance(extra_headers, dict):
        t = extra_headers.get("Template-Id")
        template = t if isinstance(t, str | int) and not isinstance(t, bool) else None
    return {k: v for k, v in body.items() if k not in _NOT_PARAMS}, template


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def events_of(record: CompletionRecord, key: str, *, redact_messages: bool = False,
              redact_key_info: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``start`` and ``end`` (or ``error``) events of one record (see the module docstring); ``key``: the
    project key the run ids are made with."""
    r = record
    detail = detail_of(r)
    ok = r.outcome is Outcome.OK
    body = detail.input if detail is not None else None
    client_meta: Any = detail.metadata if detail is not None else None
    if not client_meta:
        raw = r.extra.get("metadata") if isinstance(r.extra, dict) else None
        client_meta = raw if isinstance(raw, dict) else {}
    if detail is not None and detail.tags:
        tags: list[str] | None = list(detail.tags)
    else:
        tags = tag_list(r.extra.get("tags")) if isinstance(r.extra, dict) else []
        tags = tags or tag_list(client_meta.get("tags")) or None

    redacted = redact_messages or (detail is not None and detail.redacted)
    if detail is None:
        messages: Any = None
        output: Any = None
    elif redacted:
        messages = _REDACTED_INPUT
        output = _REDACTED_OUTPUT if ok and r.route in ("chat", "completions") else None
    else:
        messages = parse_messages(_input_of(body))
        out = detail.output if ok else None
        choices = out.get("choices") if isinstance(out, dict) else None
        output = parse_messages(choices) if isinstance(choices, list) else None
    params, template = _params(body)
    user = _text(body.get("user")) if isinstance(body, dict) else None
    user = user or r.end_user_id or None

    metadata = dict(client_meta)
    if not redact_key_info:
        values = (r.key_hash, r.key_alias, r.team_id, r.team_alias, r.user_id, r.org_id, r.end_user_id)
        for name, value in zip(_KEY_FIELDS, values, strict=True):
            if value is not None:
                metadata[name] = value
    if r.model_group:
        metadata["model_group"] = r.model_group

    rid = run_id(r.call_id, key)
    parent = _text(client_meta.get("parent_run_id"))
    kind = "embed" if r.route == "embeddings" else "llm"
    start = r.start_time
    start_event = {
        "event": "start", "type": kind, "name": r.upstream_model or r.model, "userId": user, "userProps": None,
        "tags": tags, "threadTags": None, "runId": rid,
        "parentRunId": run_id(parent, key) if parent else None, "timestamp": _iso(start), "message": None,
        "input": messages, "output": None, "error": None, "feedback": None, "runtime": "litellm",
        "tokensUsage": None, "metadata": metadata, "params": params, "templateId": template, "appId": None,
        "threadMetadata": None}
    if ok:
        error = None
        usage: dict[str, int] | None = {"completion": r.completion_tokens, "prompt": r.prompt_tokens}
    else:
        message = (detail.error_message if detail is not None else "") or r.error_message or r.error_type \
            or f"HTTP {r.status}"
        error = {"message": message, "stack": message}
        usage = None
    end_event = {
        "event": "end" if ok else "error", "type": kind, "name": None, "userId": None, "userProps": None,
        "tags": None, "threadTags": None, "runId": rid, "parentRunId": None, "timestamp": _iso(start + r.latency),
        "message": None, "input": None, "output": output, "error": error, "feedback": None, "runtime": "litellm",
        "tokensUsage": usage, "metadata": None, "params": None, "templateId": None, "appId": None,
        "threadMetadata": None}
    return start_event, end_event


class LunarySink(HttpExporter):
    """LiteLLM's ``lunary`` callback: two run events per request, a batch's in one ingest POST."""

    name = "lunary"
    max_body = MAX_BODY

    def __init__(self, url: str, key: str, *, redact_messages: bool = False, redact_key_info: bool = False,
                 **options: Any) -> None:
        super().__init__(url, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, **options)
        self.key = key
        self.redact_messages = redact_messages
        self.redact_key_info = redact_key_info

    def entry(self, record: CompletionRecord) -> Any:
        return events_of(record, self.key, redact_messages=self.redact_messages,
                         redact_key_info=self.redact_key_info)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"events": [event for pair in entries for event in pair]})


def _control(value: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def make_lunary(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                **options: Any) -> LunarySink:
    """The ``lunary`` sink for ``settings``, configured from ``env`` as the Lunary SDK reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without a project key, with a
    key that cannot go in a header, or with a ``LUNARY_API_URL`` that is not an http(s) URL."""
    name, key = next(((n, (env.get(n) or "").strip()) for n in KEY_VARS if (env.get(n) or "").strip()),
                     (KEY_VARS[1], ""))
    if not key:
        raise ConfigError(ENV_SOURCE, "LUNARY_PUBLIC_KEY",
                          "the lunary callback needs LUNARY_PUBLIC_KEY (or LUNARY_PRIVATE_KEY / LUNARY_APP_ID)")
    if _control(key):
        raise ConfigError(ENV_SOURCE, name, "control characters cannot go in a header")
    register_secrets([key])
    base = base_url(env, "LUNARY_API_URL", DEFAULT_API_URL)
    opts = callback_options(settings, "lunary")
    success, failure = event_flags(settings, "lunary", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, interval=0.5)
    return LunarySink(base + INGEST_PATH, key, success=success, failure=failure, on_event=on_event,
                      redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                      redact_key_info=settings.redact_user_api_key_info, **defaults)
