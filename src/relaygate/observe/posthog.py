"""LiteLLM's ``posthog`` callback: one PostHog LLM-analytics event per request, sent in batches to ``/batch/``.

What it owns: the event of a completion record and the destination's configuration; batching, retries with
backoff, the bounded buffer, drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM reads it from the environment: ``POSTHOG_API_KEY`` (the project key, required: LiteLLM's
logger raises at start without it, so relaygate refuses to start; sent in the body as ``api_key``, registered as a
secret and never logged), ``POSTHOG_API_URL`` (default ``https://us.i.posthog.com``, LiteLLM's code; its docs say
``app.posthog.com``; trailing slashes stripped, then ``/batch/``), ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (default 5,
bounded to 0.01..300). A batch holds at most 100 events (LiteLLM's fixed ``POSTHOG_MAX_BATCH_SIZE``;
``DEFAULT_BATCH_SIZE`` does not apply). ``callback_settings.posthog.message_logging: false`` (or
``turn_off_message_logging``, or a redacted request) sends LiteLLM's ``redacted-by-litellm`` stand-ins instead of
messages and answers; the event carries no ``user_api_key_*`` field, so ``redact_user_api_key_info`` has nothing
more to blank.

The body is ``{"api_key": <project key>, "batch": [events]}`` with ``Content-Type: application/json`` and no auth
header. Each event (LiteLLM's ``create_posthog_event_payload``, from the StandardLoggingPayload of
:mod:`relaygate.observe.standard`): ``event`` ``$ai_embedding`` for an embedding, else ``$ai_generation``;
``distinct_id`` the client metadata's ``user_id``, else the end user, else the trace id; ``properties``:
``$ai_model``, ``$ai_provider``, ``$ai_input`` (the messages), ``$ai_output_choices`` (the answer object, as
LiteLLM sends it; generations only), ``$ai_input_tokens``, ``$ai_output_tokens`` (generations only),
``$ai_total_cost_usd``, ``$ai_latency``, ``$ai_is_error`` and ``$ai_error`` for a failure, ``$ai_trace_id``
(the payload's trace id), ``$ai_span_id`` (its id), ``$ai_parent_id`` (the client metadata's ``parent_run_id``
or ``parent_id``), then the client's metadata as custom properties, without LiteLLM's internal keys.

Where relaygate differs from LiteLLM, on purpose:

- An embedding is an ``$ai_embedding`` event: LiteLLM tests for the call type ``embedding``, but its proxy's
  embeddings are ``aembedding``, so there they are sent as ``$ai_generation``.
- ``$ai_latency`` is the request's whole latency in seconds, as PostHog defines it; LiteLLM sends its
  ``response_time``, which for a stream is the time to the first chunk. A stream also gets ``$ai_stream: true``
  and ``$ai_time_to_first_token``, a failure ``$ai_http_status`` (PostHog's properties; LiteLLM sends neither).
- Each event carries ``timestamp`` (the request's end, ISO 8601) and a ``uuid`` made once per event: LiteLLM
  sends neither, so PostHog dates its events by arrival (seconds late, more after a retry) and cannot
  deduplicate a batch sent again after a lost answer.
- The client's metadata never replaces a property the event already has (LiteLLM lets ``metadata.$ai_model`` or
  ``$ai_total_cost_usd`` overwrite the gateway's values); ``token`` and ``api_key`` and credential-like keys
  (``*_api_key``, ``*_secret``, ``*_secret_key``) are left out: PostHog reads a ``token`` property as the project,
  and a batch naming two projects is refused, other requests' events with it. The proxy's own metadata
  (budgets, spend, the key's and team's metadata, headers) is not sent: LiteLLM sends what its exclusion list
  misses; relaygate sends the client's metadata and the request's ``tags``.
- A key's or team's own destination (its ``metadata.logging`` entry ``{"callback_name": "posthog", ...}`` with
  ``callback_vars`` ``posthog_api_key`` and ``posthog_api_url``, or ``posthog_host``, the name LiteLLM's team
  callback API accepts) gets that key's events instead of the configured project, for the outcomes its
  ``callback_type`` names. LiteLLM 1.110 reads only ``posthog_api_url`` in its logger but passes only
  ``posthog_host`` through, so a key's URL never applies there; both apply here (``posthog_api_url`` first). A
  value the entry does not give comes from the environment, except that an entry naming its own URL gets none of
  the environment's credentials (LiteLLM would send the operator's project key to that host). An entry without a
  key, or with a URL that cannot work, sends nothing (one warning a minute). The events of a flush go in one
  request per destination. ``POSTHOG_MOCK`` (LiteLLM's test switch) is not read.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.generic_api import ENV_SOURCE, KeyedExporter, batching, callback_options, event_flags
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DEFAULT_API_URL", "Destination", "PosthogSink", "destination_of", "event_of", "make_posthog",
           "target_destination"]

DEFAULT_API_URL = "https://us.i.posthog.com"
BATCH_SIZE = 100
"""Events a batch holds at most (LiteLLM's ``POSTHOG_MAX_BATCH_SIZE``)."""
MAX_BODY = 20 * 1024 * 1024
"""Bytes a batch POST holds at most (PostHog's capture limit; a larger batch is split)."""
MAX_DISTINCT_ID = 200
"""Characters of a ``distinct_id`` PostHog keeps."""
_HEADERS = (("Content-Type", "application/json"),)

_INTERNAL = frozenset({
    "endpoint", "caching_groups", "user_api_key_hash", "user_api_key_alias", "user_api_key_team_id",
    "user_api_key_user_id", "user_api_key_org_id", "user_api_key_team_alias", "user_api_key_end_user_id",
    "user_api_key_user_email", "user_api_key", "user_api_end_user_max_budget", "litellm_api_version",
    "global_max_parallel_requests", "user_api_key_team_max_budget", "user_api_key_team_spend",
    "user_api_key_spend", "user_api_key_max_budget", "user_api_key_model_max_budget", "user_api_key_metadata",
    "headers", "litellm_parent_otel_span", "requester_ip_address", "model_group", "model_group_size",
    "deployment", "model_info", "api_base", "hidden_params", "parent_run_id", "parent_id", "user_id",
    "token", "api_key", "tags",
})
"""Client metadata keys that are not custom properties: LiteLLM's internal list, the ids it reads, ``token`` and
``api_key`` (PostHog's project), ``tags`` (sent from the request's tags)."""
_CREDENTIAL_SUFFIXES = ("_api_key", "_secret", "_secret_key")


class Destination(NamedTuple):
    """Where an event goes: the ``/batch/`` URL and the project key the body carries."""

    url: str
    api_key: str


def destination_of(api_key: str, api_url: str) -> Destination:
    """A :class:`Destination` (``/batch/`` added to the URL, trailing slashes stripped); ``ValueError`` for a URL
    that is not http(s) or has a query or fragment, or a URL or key with a control character."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_url):
        raise ValueError("posthog_api_url: control characters refused")
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("posthog_api_url: expected an http(s) URL without query")  # the value unsaid
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_key):
        raise ValueError("posthog_api_key: control characters refused")
    return Destination(f"{api_url.rstrip('/')}/batch/", api_key)


def target_destination(target: LoggingTarget, env: Mapping[str, str]) -> Destination:
    """The destination of a key's or team's ``posthog`` entry (module docstring); ``ValueError`` when it cannot
    send (no key, a URL that cannot work)."""
    v = target.callback_vars
    own_url = (v.get("posthog_api_url") or v.get("posthog_host") or "").strip()
    fallback = {} if own_url else env
    api_key = (v.get("posthog_api_key") or fallback.get("POSTHOG_API_KEY") or "").strip()
    if not api_key:
        raise ValueError("no posthog_api_key")
    register_secrets([api_key])
    return destination_of(api_key, own_url or (env.get("POSTHOG_API_URL") or "").strip() or DEFAULT_API_URL)


_encode = msgspec.json.Encoder(enc_hook=str).encode


def _id_text(value: Any) -> str | None:
    """An id from the client's metadata as text (a string or number), else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _custom(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(k, str) and k not in _INTERNAL
            and not k.endswith(_CREDENTIAL_SUFFIXES)}


def event_of(record: CompletionRecord, payload: Mapping[str, Any], client_meta: Mapping[str, Any], *,
             event_id: str | None = None) -> dict[str, Any]:
    """The PostHog event of one record (see the module docstring); ``payload``: its StandardLoggingPayload,
    ``client_meta``: the request's metadata."""
    generation = payload.get("call_type") not in ("embedding", "aembedding")
    props: dict[str, Any] = {"$ai_model": payload.get("model") or "",
                             "$ai_provider": payload.get("custom_llm_provider") or ""}
    messages = payload.get("messages")
    if messages is not None:
        props["$ai_input"] = messages
    if generation:
        response = payload.get("response")
        if response is not None:
            props["$ai_output_choices"] = response
    props["$ai_input_tokens"] = payload.get("prompt_tokens") or 0
    if generation:
        props["$ai_output_tokens"] = payload.get("completion_tokens") or 0
    cost = payload.get("response_cost")
    if cost is not None:
        props["$ai_total_cost_usd"] = cost
    props["$ai_latency"] = record.latency
    if record.stream:
        props["$ai_stream"] = True
        if record.ttft is not None:
            props["$ai_time_to_first_token"] = record.ttft
    if record.outcome is not Outcome.OK:
        props["$ai_is_error"] = True
        if payload.get("error_str") is not None:
            props["$ai_error"] = payload["error_str"]
        if record.status:
            props["$ai_http_status"] = record.status
    trace_id = str(payload.get("trace_id") or "") or str(uuid.uuid4())
    props["$ai_trace_id"] = trace_id
    props["$ai_span_id"] = str(payload.get("id") or "") or str(uuid.uuid4())
    parent = _id_text(client_meta.get("parent_run_id")) or _id_text(client_meta.get("parent_id"))
    if parent:
        props["$ai_parent_id"] = parent
    tags = payload.get("request_tags")
    if tags:
        props["tags"] = tags
    for key, value in _custom(client_meta).items():
        props.setdefault(key, value)
    user_id = client_meta.get("user_id")
    distinct = str(user_id) if user_id else str(payload.get("end_user") or "") or trace_id
    end = datetime.fromtimestamp(record.start_time + record.latency, UTC)
    return {"event": "$ai_generation" if generation else "$ai_embedding", "distinct_id": distinct[:MAX_DISTINCT_ID],
            "properties": props, "timestamp": end.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "uuid": event_id or str(uuid.uuid4())}


class PosthogSink(KeyedExporter):
    """LiteLLM's ``posthog`` callback (PostHog's ``/batch/`` capture API): events to the configured project or to
    a key's or team's own (:class:`~relaygate.observe.generic_api.KeyedExporter`)."""

    name = "posthog"
    max_body = MAX_BODY

    def __init__(self, default: Destination | None, *, redact_key_info: bool = False, redact_messages: bool = False,
                 env: Mapping[str, str] | None = None, concurrency: int = 4, **options: Any) -> None:
        super().__init__(default.url if default is not None else f"{DEFAULT_API_URL}/batch/", dict(_HEADERS),
                         **options)
        self.default = default
        """The configured project (``POSTHOG_*``); None: only keys' and teams' own destinations are sent to."""
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self.env = env or {}
        self.concurrency = max(1, concurrency)

    def resolve(self, target: LoggingTarget) -> Destination:
        return target_destination(target, self.env)

    def body(self, record: CompletionRecord, dest: Destination) -> dict[str, Any]:
        return self.event(record)

    def event(self, record: CompletionRecord) -> dict[str, Any]:
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        client_meta = detail.metadata if detail is not None else None
        return event_of(record, payload, client_meta if isinstance(client_meta, dict) else {})

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"api_key": entries[0][0].api_key, "batch": [event for _, event in entries]})


def make_posthog(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                 keys_only: bool = False, **options: Any) -> PosthogSink:
    """The ``posthog`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without ``POSTHOG_API_KEY``
    (unless ``keys_only``: started for keys' own destinations, where it may be missing) or with a URL or key that
    cannot work."""
    api_key = (env.get("POSTHOG_API_KEY") or "").strip()
    default: Destination | None = None
    if api_key:
        register_secrets([api_key])
        try:
            default = destination_of(api_key, (env.get("POSTHOG_API_URL") or "").strip() or DEFAULT_API_URL)
        except ValueError as exc:
            name = "POSTHOG_API_KEY" if str(exc).startswith("posthog_api_key") else "POSTHOG_API_URL"
            raise ConfigError(ENV_SOURCE, name, str(exc)) from None
    elif not keys_only:
        raise ConfigError(ENV_SOURCE, "POSTHOG_API_KEY", "the posthog callback needs POSTHOG_API_KEY")
    opts = callback_options(settings, "posthog")
    success, failure = event_flags(settings, "posthog", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch=BATCH_SIZE, batch_var=None)
    return PosthogSink(default, env=env, success=success and not keys_only, failure=failure and not keys_only,
                       on_event=on_event, redact_key_info=settings.redact_user_api_key_info,
                       redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                       **defaults)
