"""JSON request logs: one line per finished request, LiteLLM's ``json_logs: true``.

What it owns: :class:`JsonRequestLog`, a sync completion sink that writes one JSON object per record to
relaygate's log stream (the handler's stream, stderr by default), in the same envelope as every other
JSON log line (``ts``, ``level``, ``logger``, ``pid``, ``message``) plus the request's facts: call id,
route, stream, the model asked for, model group, deployment, provider, status and outcome, latency, time
to first token, overhead, tokens (prompt, completion, cached read and write), cost and whether it was
estimated, cache hit, retries, fallbacks, the error type, and the principal's ids (key hash, key alias,
team, user, organization, end user). Request and response bodies are added only with
``relaygate_settings.log_bodies: true`` and only when the request's messages may be logged (a Detail
that is not redacted).

Invariants: a line never contains a control character (``logs.json_line``); error messages and bodies
go through ``core.errors.redact`` (configured secrets, bearer tokens); keys appear only as their SHA-256
hash. A batch is written with one ``write`` call, on the event loop (the drain), so lines never interleave
with other log lines mid-way. A write that fails (a closed stream) is counted as ``json_log_failed`` and
never raised.

Cost: a dict and one ``orjson.dumps`` per record, off the request path (the completion queue's drain).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from relaygate.core.errors import redact
from relaygate.logs import json_line, log_stream
from relaygate.observe.detail import Detail
from relaygate.sinks.record import OUTCOME_TEXT, CompletionRecord

__all__ = ["JsonRequestLog"]


class JsonRequestLog:
    """One JSON line per completion record (a sync :class:`~relaygate.sinks.queue.Sink`)."""

    name = "json_logs"

    def __init__(self, *, bodies: bool = False, on_event: Callable[[str, int], None] | None = None,
                 stream: Any = None) -> None:
        self.bodies = bodies
        self.on_event = on_event
        self.stream = stream
        self.pid = os.getpid()

    def line(self, r: CompletionRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(r.start_time + r.latency, 3), "level": "info" if r.status < 400 else "warning",
            "logger": "relaygate.requests", "pid": self.pid, "message": "request",
            "call_id": r.call_id, "route": r.route, "stream": r.stream, "model": r.model,
            "model_group": r.model_group, "deployment_id": r.deployment_id, "provider": r.provider,
            "upstream_model": r.upstream_model, "status": r.status, "outcome": OUTCOME_TEXT[r.outcome],
            "start_time": round(r.start_time, 6), "latency_ms": round(r.latency * 1000.0, 3),
            "ttft_ms": round(r.ttft * 1000.0, 3) if r.ttft is not None else None,
            "overhead_ms": round(r.overhead * 1000.0, 3),
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "cache_read_tokens": r.cache_read_tokens, "cache_write_tokens": r.cache_write_tokens,
            "cost": r.cost, "cost_estimated": r.cost_estimated, "cache_hit": r.cache_hit,
            "retries": r.retries, "fallbacks": r.fallbacks, "error_type": r.error_type or None,
            "key_hash": r.key_hash, "key_alias": r.key_alias, "team_id": r.team_id, "user_id": r.user_id,
            "org_id": r.org_id, "end_user_id": r.end_user_id,
        }
        extra = r.extra
        detail = extra.get("observe") if isinstance(extra, dict) else None
        if isinstance(detail, Detail):
            obj["trace_id"] = detail.trace_id
            if detail.error_message:
                obj["error"] = redact(detail.error_message)
            if detail.tags:
                obj["tags"] = detail.tags
            if self.bodies and not detail.redacted:
                obj["request"] = _redacted(detail.input)
                obj["response"] = _redacted(detail.output)
        elif isinstance(extra, dict) and extra.get("tags"):
            obj["tags"] = extra["tags"]
        return json_line(obj)

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        text = "".join([self.line(r) + "\n" for r in batch])
        stream = self.stream if self.stream is not None else log_stream()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            if self.on_event is not None:
                self.on_event("json_log_failed", len(batch))


def _redacted(value: Any) -> Any:
    """A body with configured secrets and bearer tokens removed from every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
