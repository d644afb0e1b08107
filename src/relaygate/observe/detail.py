"""What exporters get beyond the completion record: one :class:`Detail` per exchange, only when one asks.

What it owns: the shape of the per-request payload the pipeline attaches to a
:class:`~relaygate.sinks.record.CompletionRecord` (``record.extra["observe"]``) when an exporter that
needs more than the record's plain fields is configured (Langfuse, OpenTelemetry, generic webhooks,
JSON request logs with bodies). Without such an exporter nothing here is built: the default path pays
nothing (one ``is None`` test).

Invariants:

- Plain values only (str, int, float, bool, None, lists, dicts of those, nested Structs of this module),
  so a detail can be encoded by msgspec as it is and compared in tests; it never references the record.
- ``input`` / ``output`` are ``None`` when message logging is off for the request
  (``litellm_settings.turn_off_message_logging``, ``x-litellm-enable-message-redaction: true``, a key's or
  team's ``metadata.turn_off_message_logging``) and ``redacted`` is then true. They are the decoded JSON
  of the client's request body and of the answer the client got (a stream's answer assembled into the
  unary shape of its API); secrets (auth headers, keys) are never in them because headers never are.
- ``metadata`` is the request's ``metadata`` object as the client sent it (LiteLLM's keys ``trace_id``,
  ``generation_name``, ``session_id``, ``trace_user_id``, ``tags``, ``trace_name``, ``generation_id``,
  ``existing_trace_id``, ``trace_metadata`` ... are read from it by each exporter); ``{}`` when none.
- Trace ids: ``trace_id`` (32 lowercase hex) and ``span_id`` (16 hex, the request's server span) are
  chosen on the request path, from the incoming ``traceparent`` when there is a valid one
  (``parent_span_id`` is then its parent), so the ids sent upstream and the ids exported agree.
- ``attempts`` lists every upstream attempt in order (retries and fallbacks), each with the span id that
  was sent upstream in that attempt's ``traceparent``.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

__all__ = ["Attempt", "Detail", "LoggingTarget", "key_logging"]


class Attempt(msgspec.Struct, gc=False):
    """One upstream attempt of an exchange."""

    deployment_id: str
    model_group: str
    provider: str
    upstream_model: str
    api_base: str
    """The deployment's ``api_base`` (configured, never client-sent; ``""`` for a provider's default)."""
    start: float
    """Wall clock (``time.time()``) when the attempt started."""
    end: float
    status: int
    """The upstream's HTTP status, 200 for a good answer; 0 when no status came (connect error, timeout)."""
    error_type: str = ""
    error_message: str = ""
    span_id: str = ""
    """16 lowercase hex: the span id sent upstream in this attempt's ``traceparent`` ("" if none was)."""


class LoggingTarget(msgspec.Struct, gc=False):
    """One entry of a key's or team's ``metadata.logging`` (LiteLLM's per-key / per-team callbacks)."""

    callback_name: str
    """``langfuse``, ``otel``, ``generic_api`` ... the names of ``litellm_settings.callbacks``."""
    callback_type: str = "success_and_failure"
    """``success``, ``failure`` or ``success_and_failure``."""
    callback_vars: dict[str, str] = {}
    """Credentials and settings with ``os.environ/`` already resolved (``langfuse_public_key``,
    ``langfuse_secret_key``, ``langfuse_host`` ...). Secrets: never logged, never exported."""


class Detail(msgspec.Struct, gc=False):
    """Per-exchange payload for exporters (``record.extra["observe"]``)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    trace_flags: int = 1
    input: Any = None
    """The decoded request body (``None`` when redacted or not JSON)."""
    output: Any = None
    """The decoded answer (a stream's answer assembled); ``None`` when redacted, failed or not JSON."""
    redacted: bool = False
    metadata: dict[str, Any] = {}
    tags: list[str] = []
    error_message: str = ""
    """The error's message as the client got it ("" when ok); already redacted of configured secrets."""
    attempts: list[Attempt] = []
    team_alias: str | None = None
    logging: list[LoggingTarget] | None = None
    """The key's / team's ``metadata.logging`` targets (``None``: none, the config's callbacks apply)."""
    request_headers: dict[str, str] = {}
    """Only the ``x-*`` headers exporters map (never ``authorization`` or ``*-api-key``)."""


def key_logging(metadata: Any) -> tuple[list[LoggingTarget] | None, bool]:
    """A key's or team's ``metadata``: its ``logging`` targets (LiteLLM's per-key / per-team callbacks,
    ``os.environ/`` values resolved) and whether it turns message logging off. Bad entries are skipped."""
    if not isinstance(metadata, dict):
        return None, False
    redacts = metadata.get("turn_off_message_logging") is True
    entries = metadata.get("logging")
    if not isinstance(entries, list):
        return None, redacts
    out: list[LoggingTarget] = []
    for entry in entries[:8]:
        if not isinstance(entry, dict) or not isinstance(entry.get("callback_name"), str):
            continue
        kind = entry.get("callback_type", "success_and_failure")
        if kind not in ("success", "failure", "success_and_failure"):
            continue
        raw = entry.get("callback_vars") or {}
        values: dict[str, str] = {}
        if isinstance(raw, dict):
            for k, v in raw.items():
                if isinstance(k, str) and isinstance(v, str):
                    if v.startswith("os.environ/"):
                        found = os.environ.get(v[len("os.environ/"):])
                        if found is None:
                            continue
                        v = found
                    values[k] = v
        out.append(LoggingTarget(entry["callback_name"].strip().lower(), kind, values))
    return out or None, redacts
