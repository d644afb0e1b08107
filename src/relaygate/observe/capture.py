"""What the request path records for exporters: one :class:`Capture` per exchange, only when one is on.

What it owns: the request-path half of observability. The pipeline asks the runtime's :class:`Observer`
(``Runtime.observer``; ``None`` when no exporter needs more than the completion record) whether an
exchange gets a :class:`Capture`; a key or team with its own ``metadata.logging`` targets gets one too.
A capture holds the exchange's :class:`~relaygate.observe.detail.Detail` while it is filled:

- **begin** (after the body is parsed): trace ids, from a valid incoming W3C ``traceparent`` or new;
  whether the request's messages may be exported (``turn_off_message_logging``, the
  ``x-litellm-enable-message-redaction`` header, the key's / team's ``metadata.turn_off_message_logging``);
  the request body unless redacted (its bytes: :func:`relaygate.observe.detail.detail_of` decodes them for the
  exporters, off the request path); the client's ``metadata`` object.
- **attempts** (:func:`traced` wraps the frontend's attempt function): one
  :class:`~relaygate.observe.detail.Attempt` per upstream try, with its own span id; with OpenTelemetry
  on, :attr:`Capture.traceparent` is what the attempt sends upstream so the provider's spans join the
  trace.
- **finish** (``Pipeline.complete``): tags, team alias, the error message, and the answer's bytes (a chat
  stream's frames assembled into its ``chat.completion`` as they were sent), decoded like the body.

Cost: nothing at all unless an exporter that needs a Detail is configured or the key has logging
targets (the pipeline tests one attribute). When on, the bench measures it (``bench.scenarios_observe``).
Attempts are bounded (:data:`MAX_ATTEMPTS`), and so is every string copied from a client.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from relaygate.config.observe import ObserveSettings
from relaygate.core.assemble import MessagesAssembler, ResponsesAssembler, StreamAssembler, assembler_for
from relaygate.core.errors import GatewayError, redact
from relaygate.observe.detail import Attempt, Detail, LoggingTarget
from relaygate.observe.tracecontext import new_ids, new_span_id, parse_traceparent, traceparent_text

Exchange = Any
"""``pipeline.exchange.Exchange`` (not imported: the pipeline imports this module)."""

__all__ = ["MAX_ATTEMPTS", "Capture", "Observer", "traced"]

T = TypeVar("T")

MAX_ATTEMPTS = 32
"""Attempts kept per exchange (retries x fallbacks are bounded by config, this is a backstop)."""
MAX_ERROR = 2000
"""Characters of an error message kept for exporters."""
DETAILED = frozenset({"langfuse", "otel", "langfuse_otel", "generic_api", "datadog", "s3", "langsmith", "arize",
                      "arize_phoenix", "logfire", "signoz", "datadog_llm_observability", "posthog", "aws_sqs",
                      "gcs_bucket", "gcs_pubsub", "azure_storage", "braintrust", "opik", "helicone", "lunary",
                      "athina", "langtrace", "weave_otel", "agentops", "custom_callbacks"})
"""Exporters that read a Detail (Prometheus and plain JSON logs read the record alone)."""

_REDACTION = b"x-litellm-enable-message-redaction"
_TRACEPARENT = b"traceparent"
_STEERING = (b"langfuse_", b"opik_")
"""Prefixes of the request headers exporters read as the client's controls (LiteLLM's Langfuse logger takes
``langfuse_<key>`` headers over the metadata's keys, its Opik logger ``opik_project_name`` / ``opik_thread_id`` /
``opik_tags``): kept in ``Detail.request_headers``."""
MAX_STEERING = 16
"""Such headers kept per request at most (each value cut to :data:`MAX_STEERING_VALUE` characters)."""
MAX_STEERING_VALUE = 1000


class Observer:
    """Per runtime snapshot: which exchanges get a capture, and what it may hold."""

    __slots__ = ("settings", "detailed", "exports", "propagate", "redact", "prompts", "headers")

    def __init__(self, settings: ObserveSettings, prompts: bool = False) -> None:
        self.settings = settings
        names = set(settings.success_callbacks) | set(settings.failure_callbacks)
        self.prompts = prompts
        """Spend-log rows keep the request and the answer (``store_prompts_in_spend_logs``, ``sinks.prompts``):
        the capture keeps both as bytes (:attr:`Capture.body`, :attr:`Capture.answer`)."""
        self.exports = bool(names & DETAILED) or (settings.json_logs and settings.log_bodies)
        """Exporters read the Detail: the body and the answer are kept in it (decoded when an exporter reads it)."""
        self.detailed = self.exports or prompts
        """Every exchange gets a capture."""
        self.propagate = ("otel" in names or "langfuse_otel" in names) and settings.forward_traceparent
        """Attempts send a ``traceparent`` upstream (OpenTelemetry is on, to a collector or to Langfuse, and
        ``forward_traceparent_to_llm_provider`` is not false)."""
        self.redact = settings.turn_off_message_logging
        self.headers = "custom_callbacks" in names
        """The request's headers are kept (``Detail.headers``): a custom callback reads them."""

    @classmethod
    def of(cls, settings: ObserveSettings | None, prompts: bool = False) -> Observer | None:
        """The observer of a config, or ``None`` when no exchange needs a capture from the config alone."""
        if settings is None and not prompts:
            return None
        observer = cls(settings if settings is not None else ObserveSettings(), prompts)
        return observer if observer.detailed else None


_PLAIN = Observer(ObserveSettings())
"""The observer of exchanges captured only because their key has logging targets."""


class Capture:
    """One exchange's Detail while it is being filled (``Exchange.obs``)."""

    __slots__ = ("detail", "traceparent", "assembler", "output", "propagate", "exports", "prompts", "body", "answer",
                 "first_span")

    def __init__(self, observer: Observer | None, ex: Exchange, headers: Iterable[tuple[bytes, bytes]],
                 targets: list[LoggingTarget] | None, key_redacts: bool) -> None:
        obs = observer if observer is not None else _PLAIN
        exports = self.exports = obs.exports or targets is not None
        """Exporters read the Detail (else only the spend logs' :attr:`body` and :attr:`answer` are kept: no trace
        ids, no attempts, nothing decoded)."""
        parent: tuple[str, str, int] | None = None
        redacted = obs.redact or key_redacts
        steering: dict[str, str] | None = None
        for k, v in headers:
            if k == _TRACEPARENT:
                parent = parse_traceparent(v) if exports else None
            elif k == _REDACTION and v.strip().lower() == b"true":
                redacted = True
            elif exports and 95 in k and k.startswith(_STEERING) and (steering is None or len(steering) < MAX_STEERING):
                # 95 is "_", which header names rarely have: one byte test, the prefixes only for those that do
                if steering is None:
                    steering = {}
                steering[k.decode("latin-1")] = v.decode("latin-1")[:MAX_STEERING_VALUE]
        if obs.headers:
            kept = _kept_headers(headers)
        self.first_span: str | None = None
        """The first attempt's span id, drawn with the request's ids (:func:`traced` takes it)."""
        if not exports:
            detail = Detail("", "")
        else:
            trace_id, span_id, self.first_span = new_ids()
            detail = Detail(trace_id, span_id) if parent is None else Detail(parent[0], span_id, parent[1], parent[2])
        detail.redacted = redacted
        detail.logging = targets
        if obs.headers:
            detail.headers = kept
        if steering is not None:
            detail.request_headers = steering
        self.prompts = obs.prompts
        self.body: bytes | None = None
        """The request body for the spend logs (``sinks.prompts``; stored redacted when ``detail.redacted``)."""
        self.answer: bytes | None = None
        """The answer for the spend logs (never when redacted)."""
        body = ex.body
        if isinstance(body, bytes | bytearray | memoryview) and body[:1] == b"{":
            if obs.prompts:
                self.body = bytes(body)
            if not redacted and exports:  # decoded by the first exporter that reads it (detail.materialize)
                detail.raw_input = body if type(body) is bytes else bytes(body)
        control = ex.control
        meta = control.get("metadata") if control is not None else None
        if isinstance(meta, dict):
            detail.metadata = meta
        self.detail = detail
        self.propagate = obs.propagate
        self.traceparent: str | None = None
        """The header value the current attempt sends upstream (``None``: none is sent)."""
        self.assembler: MessagesAssembler | ResponsesAssembler | StreamAssembler | None = None
        self.output: bytes | None = None
        """A unary answer's body as sent (kept in the Detail by :meth:`finish`)."""
        if not redacted and ex.stream:
            self.assembler = assembler_for(ex.route)

    def stream_frames(self, frames: bytes) -> None:
        """A stream's outgoing frames (chat, messages, responses), fed to the assembler of its answer."""
        if self.assembler is not None:
            self.assembler.feed_frames(frames)

    def finish(self, ex: Exchange, error: GatewayError | None) -> Detail:
        """The Detail, completed from the exchange's end (called once, by ``Pipeline.complete``)."""
        detail = self.detail
        ctx = ex.ctx
        if ctx is not None and ctx.tags:
            detail.tags = sorted(ctx.tags)
        who = ex.who
        key = who.key if who is not None else None
        if key is not None and key.records:
            meta = getattr(key.records[0], "metadata", None)
            if isinstance(meta, dict) and meta:
                detail.key_metadata = meta
            if len(key.records) > 1 and key.records[1] is not None:
                detail.team_alias = getattr(key.records[1], "team_alias", None)
            detail.budgets = key_budgets(key.records, key.spent)
        if error is not None:
            detail.error_message = redact(error.message)[:MAX_ERROR]
            if detail.attempts and not detail.attempts[-1].end:
                _ended(detail.attempts[-1], error)
        elif detail.attempts and ex.stream:
            detail.attempts[-1].end = time.time()  # a stream's attempt lasts until its last frame
        if not detail.redacted:
            answer = self.output
            if answer is None and self.assembler is not None and self.assembler.complete:
                answer = self.assembler.answer(int(time.time()))
            if answer is not None:
                if self.prompts:
                    self.answer = bytes(answer)
                if self.exports:  # decoded by the first exporter that reads it (detail.materialize)
                    detail.raw_output = answer if type(answer) is bytes else bytes(answer)
        return detail


_SECRET_NAME = re.compile(rb"authorization|cookie|api-key|api_key|apikey|token|secret|password|signature|credential",
                          re.IGNORECASE)
"""Header names with one of these in them are credentials, never kept (``Detail.headers``)."""
MAX_HEADERS = 64


_NAMES: dict[bytes, str | None] = {}
"""A header name as kept (lower case), or None for a credential's: the same few names arrive on every request."""
_UNSEEN = ""


def _kept_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers for custom callbacks: credentials left out, at most :data:`MAX_HEADERS`, each value
    cut to :data:`MAX_STEERING_VALUE` characters."""
    out: dict[str, str] = {}
    names = _NAMES
    for k, v in headers:
        name = names.get(k, _UNSEEN)
        if name == _UNSEEN:
            if len(names) >= 1024:
                names.clear()
            name = names[k] = None if _SECRET_NAME.search(k) is not None else k.decode("latin-1").lower()
        if name is not None:
            out[name] = (v if len(v) <= MAX_STEERING_VALUE else v[:MAX_STEERING_VALUE]).decode("latin-1")
            if len(out) >= MAX_HEADERS:
                break
    return out


def _ended(attempt: Attempt, exc: BaseException) -> None:
    attempt.end = time.time()
    if isinstance(exc, GatewayError):
        attempt.status = exc.status
        attempt.error_type = exc.type or type(exc).__name__
        attempt.error_message = redact(exc.message)[:MAX_ERROR]
    else:
        attempt.error_type = type(exc).__name__


def traced(cap: Capture, attempt: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
    """``attempt`` recording each upstream try in ``cap`` (and, with OpenTelemetry, its ``traceparent``)."""

    async def run(target: Any) -> T:
        detail = cap.detail
        dep = target.dep
        span = cap.first_span
        if span is None:
            span = new_span_id()
        else:
            cap.first_span = None
        if cap.propagate:
            cap.traceparent = traceparent_text(detail.trace_id, span, detail.trace_flags)
        a = Attempt(dep.id, dep.model_name, dep.provider, target.upstream_model, dep.api_base or "", time.time(),
                    0.0, 0, span_id=span)
        if len(detail.attempts) < MAX_ATTEMPTS:
            detail.attempts.append(a)
        try:
            result = await attempt(target)
        except BaseException as exc:
            _ended(a, exc)
            raise
        a.end = time.time()
        a.status = 200
        return result

    return run


def key_budgets(rows: tuple[Any, ...], spent: float) -> tuple[float | None, float | None, str | None, float | None,
                                                              float | None, float | None, float | None]:
    """LiteLLM's key, user and team spend and budget metadata from a key's rows (key, team, user ...): the key's
    spend is its row's and what this worker counted since (``KeyInfo.spent``), as ``x-litellm-key-spend``."""
    key = rows[0]
    team = rows[1] if len(rows) > 1 else None
    user = rows[2] if len(rows) > 2 else None
    reset = getattr(key, "budget_reset_at", None)
    return ((getattr(key, "spend", 0.0) or 0.0) + spent, getattr(key, "max_budget", None),
            reset.isoformat() if reset is not None else None,
            getattr(user, "spend", None), getattr(user, "max_budget", None),
            getattr(team, "spend", None), getattr(team, "max_budget", None))
