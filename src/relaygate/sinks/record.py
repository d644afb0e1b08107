"""The completion record: one typed, immutable-by-contract fact per finished exchange.

What it owns: the shape of what the request path tells everything that happens *after* a request — the
metrics, spend logs and counters (issue 13), Langfuse, OpenTelemetry and JSON request logs (issue 16).
The pipeline's ``complete`` stage builds exactly one :class:`CompletionRecord` per exchange, whatever the
ending (:class:`Outcome`: ``ok``, ``error``, ``client_gone``, ``stream_broken``), and puts it into the
worker's :class:`~relaygate.sinks.queue.CompletionQueue`; sinks read it in batches, off the request path.

Invariants:

- Every field is a plain value (str, int, float, bool, None, an enum) except ``extra``, so a record can
  be encoded by msgspec as it is (``msgspec.json.encode(record)``) and compared in tests.
- Usage is kept apart: prompt, completion, cached-read and cache-write tokens are separate fields,
  never summed here, because they are priced differently.
- Times: ``start_time`` is wall-clock (``time.time()``, for logs and spend rows); ``latency``, ``ttft``
  and ``overhead`` are durations in seconds from ``perf_counter``. ``overhead`` is the total minus the
  time spent waiting on upstreams; ``ttft`` is ``None`` unless a stream sent its first frame.
- Principal ids are copied in (``key_hash`` is the SHA-256 hex, never a key in clear).
- ``extra`` is free-form per-request payload for exporters (request metadata, tags, bodies when logging
  is asked for); ``None`` on the default path. It must never reference the record itself: records are
  built with ``gc=False`` (no cycle-collector tracking), which is safe only without reference cycles.

Cost: the record is a ``msgspec.Struct`` with ``gc=False``. Measured on this machine (Python 3.11,
msgspec 0.23, 30 fields, timeit): positional construction ~0.37 µs, keyword construction ~1.5 µs
(msgspec matches keywords by a linear scan of the field names), a ``__slots__`` class ~0.8 µs positional
and ~2.1 µs by keyword. The hot path therefore builds it **positionally, in field order** (one call site
in the pipeline); tests and rare paths may use keywords. Fields after ``fallbacks`` have defaults.
"""

from __future__ import annotations

import enum
import logging

import msgspec

from relaygate.core.tokens import MAX_TOKENS, bound
from relaygate.logs import Every

__all__ = ["CALL_TYPES", "ERROR_MESSAGE_MAX", "MAX_COST", "OUTCOME_TEXT", "TAG_MAX", "CompletionRecord", "Outcome",
           "bound_usage", "error_class", "header_tags_of", "ua_tags"]

log = logging.getLogger("relaygate.cost")

MAX_COST = 10_000.0
"""The most USD one record may cost (:func:`bound_usage`): far above any real request (a million input tokens at
the dearest rate in the cost map is ~150 USD), and low enough that PostgreSQL's 64-bit nano-USD totals take
922,000 such records before they could overflow."""
_absurd = Every(60.0)


def bound_usage(counts: tuple[int, int, int, int], cost: float, group: str,
                deployment: str) -> tuple[tuple[int, int, int, int], float]:
    """An exchange's (prompt, completion, cached, cache write) tokens within ``[0, MAX_TOKENS]`` and its cost
    within ``[0, MAX_COST]`` USD (not a number: 0), with a warning at most once a minute. Only an upstream's
    absurd usage gets here (``core.tokens`` bounds the counts it reads; other adapters' counts and the price of
    bounded counts are bounded here): unbounded, it was written to the database as it came, and a count past 64
    bits failed the whole batch of spend rows it was in (``OverflowError``) until the sink gave up on it, while
    pico-USD past 64 bits broke the shared budget counters."""
    bounded = [bound(n) for n in counts]
    fixed = cost if 0.0 <= cost <= MAX_COST else (MAX_COST if cost > MAX_COST else 0.0)
    quiet = _absurd.ready()
    if quiet is not None:
        log.warning("absurd usage from the upstream of model group %s (deployment %s): tokens %s and cost %s USD "
                    "kept as %s and %s (at most %d tokens a count, %s USD a request; %d more not logged since the "
                    "last)", group, deployment, list(counts), cost if cost == cost else "not a number",
                    bounded, fixed, MAX_TOKENS, MAX_COST, quiet)
    return (bounded[0], bounded[1], bounded[2], bounded[3]), fixed


class Outcome(enum.StrEnum):
    """How an exchange ended (its value is what logs and exporters show)."""

    OK = "ok"
    """An answer was sent in full (unary body, or a stream that ended normally)."""
    ERROR = "error"
    """An error response was sent (a ``GatewayError``: auth, limits, upstream failures after retries)."""
    CLIENT_GONE = "client_gone"
    """The client disconnected before the answer was complete; nothing more was sent."""
    STREAM_BROKEN = "stream_broken"
    """The upstream failed after the first frame; the client got an in-band error frame."""


OUTCOME_TEXT: dict[Outcome, str] = {o: o.value for o in Outcome}
"""Each outcome's text as a plain ``str`` (``Outcome.value`` is an enum property: ~7x slower per read, and the
sinks read it for every record)."""


CALL_TYPES = {"chat": "acompletion", "completions": "atext_completion", "embeddings": "aembedding",
              "messages": "anthropic_messages", "images": "aimage_generation", "audio_speech": "aspeech",
              "audio_transcriptions": "atranscription", "rerank": "arerank", "responses": "aresponses",
              "moderations": "amoderation", "realtime": "_arealtime", "generate_content": "agenerate_content"}
"""A record's ``route`` as LiteLLM's ``call_type``."""


_ERROR_CLASSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                  404: "NotFoundError", 408: "Timeout", 409: "BadRequestError", 413: "BadRequestError",
                  422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
                  502: "APIConnectionError", 503: "ServiceUnavailableError", 504: "Timeout",
                  599: "APIConnectionError"}
"""HTTP status -> the LiteLLM exception class a LiteLLM proxy reports for it (``litellm.exceptions``)."""

_ERROR_TYPE_CLASSES = {"context_length_exceeded": "ContextWindowExceededError",
                       "content_policy_violation": "ContentPolicyViolationError",
                       "budget_exceeded": "BudgetExceededError", "timeout": "Timeout"}
"""Error types whose LiteLLM class is more specific than the status says."""


def error_class(status: int, error_type: str) -> str:
    """LiteLLM's exception class name for a failure with this HTTP ``status`` and OpenAI ``error_type``."""
    specific = _ERROR_TYPE_CLASSES.get(error_type)
    if specific is not None:
        return specific
    cls = _ERROR_CLASSES.get(status)
    if cls is not None:
        return cls
    if 400 <= status < 500:
        return "BadRequestError"
    if status >= 500:
        return "InternalServerError"
    return error_type or "APIError"


ERROR_MESSAGE_MAX = 1000
"""Characters of a failure's message a record keeps (a provider's error body can be long)."""


class CompletionRecord(msgspec.Struct, gc=False):
    """One finished exchange, as the sinks see it. Build it positionally on the hot path (field order)."""

    call_id: str
    """``x-litellm-call-id`` of the exchange."""
    route: str
    """API kind: ``chat``, ``completions``, ``embeddings``, ``messages``, ``images``, ``audio_speech`` ..."""
    stream: bool
    model: str
    """The model name as the client sent it (may be an alias, or unknown)."""
    model_group: str
    """The resolved model group (``""`` when the request failed before resolution)."""
    deployment_id: str
    """The deployment that answered (the last one tried on failure; ``""`` when none was)."""
    provider: str
    upstream_model: str
    key_hash: str | None
    key_alias: str | None
    team_id: str | None
    user_id: str | None
    status: int
    """HTTP status sent (or that would have been sent) to the client; ``599`` for a broken stream."""
    outcome: Outcome
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    latency: float
    """Seconds from the request's arrival to its last byte (or its end)."""
    ttft: float | None
    """Seconds to the first stream frame sent; ``None`` for unary answers and streams that sent none."""
    overhead: float
    """``latency`` minus the time spent waiting on upstreams: what the gateway itself cost."""
    cost: float
    cache_hit: bool
    retries: int
    """Retries attempted (``x-litellm-attempted-retries``)."""
    fallbacks: int
    """Fallbacks attempted (``x-litellm-attempted-fallbacks``)."""
    start_time: float = 0.0
    """Wall-clock start (``time.time()``)."""
    error_type: str = ""
    """The error's OpenAI type (``""`` when ok): what failure callbacks and spans report."""
    org_id: str | None = None
    end_user_id: str | None = None
    """The customer / end user (``user`` field, ``x-litellm-end-user-id``) when known."""
    extra: object = None
    """Exporter payload (metadata, tags, bodies when asked); must not reference the record."""
    cost_estimated: bool = False
    """``cost`` (and the token counts) were estimated from the content: the provider sent no usage (a stream
    without a usage chunk, or abandoned before it). Set after construction, only when true."""
    api_ttft: float | None = None
    """A stream's time to first frame from the start of the attempt that answered (LiteLLM's
    ``litellm_llm_api_time_to_first_token_metric``: ``completion_start_time - api_call_start_time``), where
    ``ttft`` counts from the request's arrival. Set after construction, for streams only."""
    failed_attempts: tuple[tuple[str, int, str], ...] = ()
    """``(deployment id, status, error type)`` of each upstream attempt that failed, in order (retries and
    fallbacks); the answering attempt is ``deployment_id``. Set after construction, only when some failed."""
    team_alias: str | None = None
    """The stored key's team's ``team_alias`` (LiteLLM's ``team_alias`` label); set after construction."""
    user_email: str | None = None
    """The stored key's user's ``user_email`` (LiteLLM's ``user_email`` label); set after construction."""
    upstream_ratelimit: list[tuple[bytes, bytes]] | None = None
    """The answering upstream's rate-limit headers under OpenAI's names (``upstream.headers.ratelimit_headers``),
    kept only with Prometheus on: the sink reads LiteLLM's ``litellm_remaining_requests_metric`` /
    ``_tokens_metric`` from them (``upstream.headers.remaining_of``), once per batch and series, off the
    request path. Set after construction."""
    cache_miss: bool = False
    """The response cache was looked up for this request and had no answer (LiteLLM's ``cache_hit: False``,
    which its ``litellm_cache_misses_metric`` counts; a request the cache was not asked about is neither a hit
    nor a miss). Set after construction, only when true."""
    no_logging: bool = False
    """The key's team turned its logging off (``auth.keys.KeyInfo.logging_off``): no logging callback (Langfuse,
    OpenTelemetry, Datadog, generic API) exports this record; metrics, spend logs and JSON request lines still
    read it. Set after construction, only when true."""

    error_message: str = ""
    """A failure's message as the client got it, at most :data:`ERROR_MESSAGE_MAX` characters (``""`` when ok):
    the spend log's ``metadata.error_information.error_message``. Set after construction, for failures only."""
    error_class: str = ""
    """LiteLLM's exception class for a refusal of the gateway's own (``GatewayError.litellm_class``:
    ``RouterRateLimitError``, ``HTTPException`` for a key's limit, ``ProxyModelNotFoundError``); ``""``: named
    from the status and type. Set after construction, for such failures only."""
    request_route: str = ""
    """The route template the request matched (``Exchange.path``: ``/v1/chat/completions``, ``/chat/completions``,
    ``/openai/deployments/{model}/chat/completions`` ...), a constant of the gateway's route table and never the
    client's text: LiteLLM's ``route`` label and ``user_api_key_request_route``. ``""`` for a record not made
    by a routed request. Set after construction."""
    key_ratelimit: list[tuple[bytes, bytes]] | None = None
    """The key's, team's and per-model limiter headers the answer carried (``routing_limits.ratelimit_headers``),
    kept only with Prometheus on: LiteLLM's key and team rate-limit gauges (``observe.prometheus_limits``). Set
    after construction."""
    usage_labels: tuple[int, int, int, int, str | None] | None = None
    """(reasoning, input audio, output audio tokens, images generated, ``service_tier`` label) of the answer, read
    only with Prometheus on (``pipeline.exchange.Exchange.labels``): LiteLLM's sparse token-detail and media
    families and its ``service_tier`` label. Set after construction."""
    key_metadata: dict[str, object] | None = None
    """The stored key's ``metadata`` (the admin's: LiteLLM's ``user_api_key_auth_metadata``), kept only for
    ``custom_prometheus_metadata_labels`` (``observe.prometheus_custom``). Set after construction."""
    requester_ip: str | None = None
    """The client's address (``auth.access.client_address``: the peer, or the proxy's last ``X-Forwarded-For`` hop
    with ``use_x_forwarded_for``), unless ``disable_requester_ip_address_logging``: LiteLLM's
    ``requester_ip_address``. Set after construction."""
    user_agent: bytes | None = None
    """The client's ``User-Agent``, kept unless ``disable_add_user_agent_to_request_tags``: LiteLLM's
    ``User-Agent: ...`` request tags, made from it by the sinks that write tags (:func:`header_tags_of`), off
    the request path. Set after construction."""
    hold: int = 0
    """The budget reservation the request held (``budgets.holds.Hold.id``; 0: none): the budget guard releases it
    when it counts the record's cost."""
    header_tags: tuple[str, ...] | None = None
    """``<header>: <value>`` of the ``extra_spend_tag_headers`` the request carried (LiteLLM's). Set after
    construction."""
    org_alias: str | None = None
    """The ``organization_alias`` of the stored key's organization (its own, else its team's), whose id is
    ``org_id``: LiteLLM's ``user_api_key_org_alias`` and ``org_alias`` label. Set after construction."""
    zero_cost: tuple[str, str, tuple[str, ...]] | None = None
    """Why the answer, which had usage, was priced at 0 on a model with prices: ``(reason, pricing model,
    missing pricing keys)`` (``cost.zero_cost``): LiteLLM's ``zero_cost_diagnostic`` and
    ``litellm_zero_cost_requests_total``. Set after construction, only then."""
    queue_time: float | None = None
    """Seconds from the request's arrival to the start of its pre-call processing (the body read and the key
    checked), kept only with Prometheus on: LiteLLM's ``litellm_request_queue_time_seconds``. Set after
    construction."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_UA_TAGS: dict[bytes, tuple[str, ...]] = {}
_UA_MEMO = 256
TAG_MAX = 512
"""Characters of a header's value kept in its tag (the spend counters key a longer tag by its digest anyway)."""


def ua_tags(ua: bytes) -> tuple[str, ...]:
    """LiteLLM's ``_get_user_agent_tags``: ``User-Agent: <product>`` (the header up to its first ``/``, when it
    has one) and ``User-Agent: <whole header>``; remembered (a gateway's clients send a few)."""
    got = _UA_TAGS.get(ua)
    if got is None:
        text = ua.decode("utf-8", "replace")[:TAG_MAX]
        got = (f"User-Agent: {text.split('/')[0]}", f"User-Agent: {text}") if "/" in text else (f"User-Agent: {text}",)
        if len(_UA_TAGS) >= _UA_MEMO:
            _UA_TAGS.clear()
        _UA_TAGS[ua] = got
    return got


def header_tags_of(r: CompletionRecord) -> tuple[str, ...]:
    """The tags LiteLLM adds to a request's own (and its key's) from its headers: the ``User-Agent`` ones, then
    those of ``extra_spend_tag_headers``; ``()`` for none."""
    ua = r.user_agent
    found = ua_tags(ua) if ua else ()
    return (*found, *r.header_tags) if r.header_tags else found
