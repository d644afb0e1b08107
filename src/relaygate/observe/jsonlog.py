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
hash. A write that fails (a closed stream) is counted as ``json_log_failed`` (one per line lost) and never
raised.

Writes: lines are gathered for at most ``flush_every`` seconds (:data:`FLUSH_EVERY`, 50 ms) or
:data:`FLUSH_BYTES`, then written on the event loop (a timer armed by the first line waiting), and at
close. Before, every drain of the completion queue (~1 ms under load, a couple of records) was its own
write and flush: a syscall per one or two requests, 1–2.5% of a small request's CPU on one core
(``bench.scenarios_observe --together --baseline``: +2.6, +0.9 and +1.2 points of off's throughput in three
runs). Outside a running loop (tests, tools) each batch is written at once. Lines never interleave with
other writers mid-way: into a regular file a flush is one ``write`` (appends are whole); into a pipe or a
socket (a container's stderr, shared by every worker process) the lines go in writes of at most
``PIPE_BUF`` bytes of whole lines, which the kernel keeps whole against the other workers' writes (a single
line longer than that cannot be, and goes alone). A line reaches the log at most ``flush_every`` later than
it used to; a worker killed outright loses what it gathered (at most that much).

Cost: off the request path (the completion queue's drain), a line per record written by compiled code
(``ext/_jsonlog_c.pyx``, ``_ext.LOADED["jsonlog"]``) when it is plain ASCII and carries no bodies, else a dict
and one ``orjson.dumps`` (:meth:`JsonRequestLog.line`, the pure twin: the two are equal, ``tests/observe/
test_jsonlog_twins.py``). The dict and its encoding cost ~6.4 µs a record on this machine, the compiled line ~2.7
(``bench.micro`` ``json-log-line``, medians).
"""

from __future__ import annotations

import asyncio
import os
import select
import stat
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson

from relaygate.core import _ext
from relaygate.core.errors import redact
from relaygate.logs import iso_time, json_line, log_stream
from relaygate.observe.detail import Detail, materialize
from relaygate.sinks.record import OUTCOME_TEXT, CompletionRecord

__all__ = ["FLUSH_BYTES", "FLUSH_EVERY", "JsonRequestLog", "atomic_chunks", "request_line"]

FLUSH_EVERY = 0.05
"""Seconds a request line may wait to be written with others (see the module docstring)."""
FLUSH_BYTES = 64 * 1024
"""Characters gathered at most before they are written at once."""
PIPE_BUF = getattr(select, "PIPE_BUF", 4096)
"""Bytes a write to a pipe keeps whole against other writers (POSIX: at least 512; Linux: 4096)."""


def _load() -> Callable[[CompletionRecord, int], str | None] | None:
    mod = _ext.compiled("jsonlog")
    if mod is None:
        return None
    mod.configure(dumps=orjson.dumps, iso_time=iso_time, redact=redact, outcome_text=OUTCOME_TEXT, detail=Detail,
                  record_type=CompletionRecord, astuple=msgspec.structs.astuple)
    fn: Callable[[CompletionRecord, int], str | None] = mod.request_line
    return fn


request_line = _load()
"""``request_line(record, pid)``: the record's line and its newline, written by compiled code, or None (a line it
leaves to :meth:`JsonRequestLog.line`); None itself when the compiled module is not built."""


def atomic_chunks(lines: Sequence[str], limit: int = PIPE_BUF) -> list[str]:
    """``lines`` (each ending in a newline) joined into chunks of at most ``limit`` UTF-8 bytes of whole
    lines, in order; a line longer than ``limit`` is a chunk of its own."""
    return [chunk for chunk, _ in _counted_chunks(lines, limit)]


def _counted_chunks(lines: Sequence[str], limit: int) -> list[tuple[str, int]]:
    """:func:`atomic_chunks` with each chunk's number of lines (what a failed write lost, without scanning the
    chunk for newlines: a JSON line has exactly one, at its end)."""
    out: list[tuple[str, int]] = []
    part: list[str] = []
    size = 0
    for line in lines:
        n = len(line) if line.isascii() else len(line.encode())
        if part and size + n > limit:
            out.append(("".join(part), len(part)))
            part, size = [], 0
        part.append(line)
        size += n
    if part:
        out.append(("".join(part), len(part)))
    return out


def _shared_stream(stream: Any) -> bool:
    """Whether ``stream`` writes to a pipe or a socket (other processes may write to it between two of our
    writes), not to a regular file or a terminal."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # io.StringIO and the like: no descriptor
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class JsonRequestLog:
    """One JSON line per completion record (a sync :class:`~relaygate.sinks.queue.Sink`)."""

    name = "json_logs"

    def __init__(self, *, bodies: bool = False, on_event: Callable[[str, int], None] | None = None,
                 stream: Any = None, flush_every: float = FLUSH_EVERY) -> None:
        self.bodies = bodies
        self.on_event = on_event
        self.stream = stream
        self.flush_every = flush_every
        self.pid = os.getpid()
        self._lines: list[str] = []
        self._chars = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._shared: dict[int, bool] = {}
        """Per stream (by id): whether it is a pipe or socket (:func:`_shared_stream`), looked up once."""

    def line(self, r: CompletionRecord) -> str:
        end = r.start_time + r.latency
        obj: dict[str, Any] = {
            "ts": round(end, 3), "timestamp": iso_time(end), "level": "INFO" if r.status < 400 else "WARNING",
            "component": "relaygate.requests", "logger": "relaygate.requests", "pid": self.pid, "message": "request",
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
                if detail.raw_input is not None or detail.raw_output is not None:
                    materialize(detail)
                obj["request"] = _redacted(detail.input)
                obj["response"] = _redacted(detail.output)
        elif isinstance(extra, dict) and extra.get("tags"):
            obj["tags"] = extra["tags"]
        return json_line(obj)

    def handle(self, batch: Sequence[CompletionRecord]) -> None:
        lines = self._lines
        fast = request_line if not self.bodies else None
        for r in batch:
            try:
                line = fast(r, self.pid) if fast is not None else None
                if line is None:
                    line = self.line(r) + "\n"
            except Exception:  # that record only; the others are written
                if self.on_event is not None:
                    self.on_event("json_log_failed", 1)
                continue
            lines.append(line)
            self._chars += len(line)
        if self._chars >= FLUSH_BYTES or self.flush_every <= 0:
            self.flush()
            return
        timer_loop = self._timer_loop
        if self._timer is not None and timer_loop is not None and not timer_loop.is_closed():
            return  # the armed timer writes them
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests, tools), or the timer's loop ended: written at once
            self.flush()
            return
        self._timer_loop = loop
        self._timer = loop.call_later(self.flush_every, self.flush)

    def flush(self) -> None:
        """Write the lines gathered so far (the timer's callback; also at close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines, self._chars = self._lines, [], 0
        if not lines:
            return
        stream = self.stream if self.stream is not None else log_stream()
        shared = self._shared.get(id(stream))
        if shared is None:
            if len(self._shared) > 8:
                self._shared.clear()
            shared = self._shared[id(stream)] = _shared_stream(stream)
        chunks = _counted_chunks(lines, PIPE_BUF) if shared else [("".join(lines), len(lines))]
        written = 0
        try:
            for chunk, count in chunks:
                stream.write(chunk)
                stream.flush()
                written += count
        except (OSError, ValueError):
            if self.on_event is not None:
                self.on_event("json_log_failed", len(lines) - written)

    def close(self) -> None:
        """Write what is gathered (the completion queue closes its sinks at shutdown)."""
        self.flush()


def _redacted(value: Any) -> Any:
    """A body with configured secrets and bearer tokens removed from every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
