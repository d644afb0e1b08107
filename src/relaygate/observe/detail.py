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
- The capture keeps the request body and the answer as bytes (``raw_input`` / ``raw_output``), not decoded on
  the request path: :func:`detail_of`, which every exporter reads its Detail through, decodes them into
  ``input`` / ``output`` on the first read (:func:`materialize`, once for all the exporters of the record). A
  dict decoded on the request path lived until the sinks ran (~20 ms later, ``sinks.queue.LINGER``) and was
  collected by the garbage collector's older generations; bytes are not tracked by it, and the decoding is done
  with the sinks' other work.
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

from typing import Any

import msgspec

from relaygate.auth.targets import LoggingTarget, key_logging

__all__ = ["Attempt", "Detail", "LoggingTarget", "detail_of", "key_logging", "materialize"]

_decode = msgspec.json.Decoder().decode


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
    """Only the request headers exporters read as the client's controls, ``langfuse_*`` and ``opik_*``
    (``capture``; never ``authorization`` or ``*-api-key``)."""
    budgets: tuple[float | None, float | None, str | None, float | None, float | None, float | None,
                   float | None] | None = None
    """The stored key's spend, max budget and budget reset time (ISO), its user's spend and max budget and its
    team's, as the request's key rows had them (``capture``; None: no stored key): LiteLLM's
    ``user_api_key_{spend,max_budget,budget_reset_at,user_spend,user_max_budget,team_spend,team_max_budget}``."""
    headers: dict[str, str] | None = None
    """The request's headers, credentials left out (names with ``authorization``, ``cookie``, ``api-key``, ``token``,
    ``secret``, ``password``), kept only for custom callbacks (LiteLLM's ``litellm_params.metadata.headers``);
    None otherwise."""
    key_metadata: dict[str, Any] | None = None
    """The key row's ``metadata`` as stored (a reference, not a copy; None: no key row or an empty one): LiteLLM's
    ``user_api_key_auth_metadata`` once its callback settings are taken out (``standard.auth_metadata``)."""
    raw_input: bytes | None = None
    """The request body as the capture kept it, not yet decoded into ``input`` (None: nothing pending)."""
    raw_output: bytes | None = None
    """The answer as the capture kept it, not yet decoded into ``output`` (None: nothing pending)."""

    def beyond_answer(self, deployment_id: str, ok: bool) -> bool:
        """Whether the attempts say more than the exchange does: some attempt, and not only the answering call of an
        exchange that succeeded (``deployment_id``'s, 2xx: Prometheus counts that one with the exchange itself)."""
        a = self.attempts
        return bool(a) and not (ok and len(a) == 1 and a[0].deployment_id == deployment_id and 200 <= a[0].status < 300)


def detail_of(record: Any) -> Detail | None:
    """A completion record's :class:`Detail` (``record.extra["observe"]``), or ``None``; its request and answer
    decoded (:func:`materialize`)."""
    extra = record.extra
    if isinstance(extra, dict):
        d = extra.get("observe")
        if isinstance(d, Detail):
            if d.raw_input is not None or d.raw_output is not None:
                materialize(d)
            return d
    return None


def materialize(d: Detail) -> None:
    """Decode the request body and the answer the capture kept as bytes into ``input`` / ``output`` (``None`` for
    one that is not JSON), as the capture once did on the request path; nothing is pending after."""
    raw_in, raw_out = d.raw_input, d.raw_output
    d.raw_input = d.raw_output = None
    if raw_in is not None:
        try:
            d.input = _decode(raw_in)
        except msgspec.DecodeError:
            d.input = None
    if raw_out is not None:
        try:
            d.output = _decode(raw_out)
        except msgspec.DecodeError:
            d.output = None
