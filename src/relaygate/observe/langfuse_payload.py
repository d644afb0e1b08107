"""Langfuse ingestion events built from completion records: the sans-IO half of the Langfuse exporter.

What it owns: the mapping from a :class:`~relaygate.sinks.record.CompletionRecord` (and its optional
:class:`~relaygate.observe.detail.Detail`) to the events of Langfuse's public batch ingestion API
(``POST /api/public/ingestion``, OpenAPI operation ``ingestion_batch``), the choice of the Langfuse
projects a record goes to, the credentials read from the environment and from a key's or team's
``metadata.logging``, the request bodies (split by count and size) and the reading of Langfuse's ``207``
multi-status answer. No IO, no clock, no randomness: ``now`` and the event-id maker are arguments.

Per record, as LiteLLM's ``langfuse`` callback logs a call:

- one ``trace-create`` event (left out when the client names an ``existing_trace_id``: the generation joins
  that trace and nothing about the trace is overwritten) and one ``generation-create`` event with the model
  (the upstream model), ``modelParameters`` (the request's parameters), ``usageDetails`` (``input`` is the
  prompt minus cached-read tokens, ``output``, ``total``, ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``), ``costDetails.total`` (the gateway's cost), ``startTime`` / ``endTime``
  (latency), ``completionStartTime`` for a stream that sent a first frame (Langfuse's time to first token),
  ``level`` ``ERROR`` (``WARNING`` for a client that went away) and ``statusMessage`` on failure, and LiteLLM's
  generation metadata (``user_api_key_*`` unless ``redact_user_api_key_info``, ``requester_metadata``,
  ``litellm_call_id``, ``litellm_response_cost``, ``cache_hit``, ``api_base`` ...).
- The client's ``metadata`` steers it as in LiteLLM: ``trace_id`` / ``existing_trace_id``, ``trace_name``,
  ``generation_name``, ``generation_id``, ``parent_observation_id``, ``session_id``, ``trace_user_id``
  (else the end user), ``tags`` (with the key's and team's), ``trace_metadata``, ``trace_release``,
  ``trace_version`` / ``version``, ``trace_public``, ``mask_input`` / ``mask_output``, ``debug_langfuse``,
  ``prompt`` (a Langfuse prompt's ``name`` and ``version``: the generation is linked to it);
  ``langfuse_*`` request headers override them. ``langfuse_default_tags`` adds ``<field>:<value>`` tags for
  the named metadata fields (``cache_hit`` and ``proxy_base_url`` included).
- Bodies: ``input`` is the request body less its model parameters and routing fields (the chat
  ``messages`` and ``tools``, a prompt, an embedding's ``input`` ...), ``output`` the answer's content
  (the chat message, the completion text, Anthropic's content blocks, a response's output items ...).
  With message logging off (``Detail.redacted``) both are LiteLLM's ``"redacted-by-litellm"``.

Everything sent is checked in the tests against Langfuse's published OpenAPI schema. Two of its rules
shaped the fields: the legacy ``usage`` object can never validate (``IngestionUsage`` is a ``oneOf`` whose two
branches both match it), so only ``usageDetails`` / ``costDetails`` are sent; ``modelParameters`` values
are strings, integers, booleans or lists of strings, so other values are sent as JSON text.

What the sink sends is :func:`encode_events`: the compiled writer's bytes (``ext/_langfuse_c.pyx``,
``_ext.LOADED["langfuse"]``) for a record of the default configuration that does not steer its events, else
:func:`build_events` encoded with msgspec; the two are equal byte for byte (``tests/observe/
test_langfuse_twins.py``). Per record the event dicts and their two encodings were ~11 µs of a worker's CPU
(~17 µs inside the loaded gateway); the compiled writer builds no dict and encodes the request's content and
the answer once for both events.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.core import _ext
from relaygate.observe.detail import Detail, LoggingTarget, detail_of
from relaygate.sinks.record import OUTCOME_TEXT, CompletionRecord, Outcome, header_tags_of
from relaygate.sinks.spend import CALL_TYPES, tag_list

__all__ = ["DEFAULT_HOST", "INGESTION_PATH", "REDACTED", "BuildOptions", "Credentials", "build_events",
           "chunk", "destinations", "detail_of", "encode_events", "env_credentials", "ingestion_body", "iso",
           "parse_answer", "record_events", "target_credentials"]

DEFAULT_HOST = "https://cloud.langfuse.com"
INGESTION_PATH = "/api/public/ingestion"
REDACTED = "redacted-by-litellm"
"""LiteLLM's stand-in for message content when message logging is off (also ``mask_input`` / ``mask_output``)."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """One Langfuse project: where to send and as whom. The secret never shows in ``repr`` or logs."""

    public_key: str
    secret_key: str = dataclasses.field(repr=False)
    host: str = DEFAULT_HOST

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (Basic, public key as user, secret key as password)."""
        raw = f"{self.public_key}:{self.secret_key}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @property
    def url(self) -> str:
        return self.host + INGESTION_PATH


def _host(value: str | None) -> str:
    """A Langfuse base URL with a scheme and without a trailing slash (LiteLLM adds ``http://`` when none)."""
    host = (value or "").strip() or DEFAULT_HOST
    if not host.startswith(("http://", "https://")):
        host = "http://" + host
    return host.rstrip("/")


def env_credentials(env: Mapping[str, str]) -> Credentials:
    """The default project from ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY`` and ``LANGFUSE_HOST``
    (else ``LANGFUSE_BASE_URL``, else Langfuse Cloud). Raises a ``ConfigError`` naming what is missing."""
    missing = [name for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY") if not env.get(name, "").strip()]
    if missing:
        raise ConfigError("environment", " and ".join(missing),
                          f"not set: the langfuse callback sends with the project's keys (LANGFUSE_HOST defaults "
                          f"to {DEFAULT_HOST})")
    return Credentials(env["LANGFUSE_PUBLIC_KEY"].strip(), env["LANGFUSE_SECRET_KEY"].strip(),
                       _host(env.get("LANGFUSE_HOST") or env.get("LANGFUSE_BASE_URL")))


def target_credentials(target: LoggingTarget, env: Mapping[str, str]) -> Credentials | None:
    """The project of a key's / team's ``logging`` entry (``callback_vars``: ``langfuse_public_key``,
    ``langfuse_secret_key`` or ``langfuse_secret``, ``langfuse_host``); a missing value falls back to the
    environment's, as LiteLLM's does, except the keys of an entry that names its own host: the environment's
    keys go to the environment's host only (else a key owner could send them to a server of theirs; LiteLLM
    closed the same hole with ``allow_env_credentials=False``). ``None`` when a key is still missing."""
    v = target.callback_vars
    fallback = env if not (v.get("langfuse_host") or "").strip() else {}
    public = v.get("langfuse_public_key") or fallback.get("LANGFUSE_PUBLIC_KEY", "")
    secret = v.get("langfuse_secret_key") or v.get("langfuse_secret") or fallback.get("LANGFUSE_SECRET_KEY", "")
    if not public.strip() or not secret.strip():
        return None
    return Credentials(public.strip(), secret.strip(),
                       _host(v.get("langfuse_host") or env.get("LANGFUSE_HOST") or env.get("LANGFUSE_BASE_URL")))


def destinations(record: CompletionRecord, detail: Detail | None, *, success: bool,
                 failure: bool) -> tuple[bool, list[LoggingTarget]]:
    """Where a record goes: (the default project?, the key's / team's Langfuse targets).

    A key or team with ``langfuse`` entries in its ``metadata.logging`` sends its requests to those projects
    (each by its ``callback_type``) instead of the default one, as LiteLLM's per-key credentials replace the
    global ones; otherwise the default project gets successes when ``langfuse`` is a success callback and
    failures (error, broken stream, client gone) when it is a failure callback. A record whose team turned
    logging off goes nowhere."""
    if record.no_logging:
        return False, []
    ok = record.outcome is Outcome.OK
    if detail is not None and detail.logging:
        mine = [t for t in detail.logging if t.callback_name == "langfuse"]
        if mine:
            want = "success" if ok else "failure"
            return False, [t for t in mine if t.callback_type in (want, "success_and_failure")]
    return (success if ok else failure), []


@dataclasses.dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the config says about every record's events."""

    default_tags: tuple[str, ...] = ()
    """``langfuse_default_tags``."""
    redact_key_info: bool = False
    """``redact_user_api_key_info``: no ``user_api_key_*`` metadata, no key alias in generation names."""
    environment: str | None = None
    """``LANGFUSE_TRACING_ENVIRONMENT``."""
    release: str | None = None
    """``LANGFUSE_RELEASE``: the traces' release unless the request names one."""
    proxy_base_url: str | None = None
    """``PROXY_BASE_URL``, for the ``proxy_base_url`` default tag."""


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 in UTC with microseconds (Langfuse's "optimal" resolution). Formatted
    seconds are memoised (a batch's events share a few), so the rest is one f-string."""
    secs = int(ts)
    micros = round((ts - secs) * 1e6)
    if micros >= 1_000_000:
        secs, micros = secs + 1, micros - 1_000_000
    text = _ISO_SECONDS.get(secs)
    if text is None:
        if len(_ISO_SECONDS) >= 256:
            _ISO_SECONDS.clear()
        text = _ISO_SECONDS[secs] = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros:06d}Z"


_ISO_SECONDS: dict[int, str] = {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else _encode(value).decode()


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


_NOT_PARAMS = frozenset({
    "model", "messages", "prompt", "input", "instructions", "system", "tools", "functions", "metadata", "user",
    "contents", "query", "documents", "file", "image", "mask", "previous_response_id", "litellm_trace_id",
    "litellm_session_id", "litellm_metadata", "extra_body", "mock_response", "api_key", "api_base",
    "stream_options"})
"""Request-body keys that are content, routing or logging, not model parameters."""
_NOT_INPUT = frozenset({"model", "metadata", "user", "litellm_trace_id", "litellm_session_id", "litellm_metadata",
                        "api_key", "api_base", "extra_body", "mock_response"})
"""Request-body keys left out of ``input`` besides the model parameters."""
_PARAM_TEXT = 2_000
"""Longest JSON text of one model parameter sent (a long ``response_format`` schema is cut)."""


def _param(value: Any) -> Any:
    """A model parameter as Langfuse's ``MapValue`` takes it: str, int, bool, list of str; else JSON text."""
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    text = _encode(value).decode() if not isinstance(value, float) else repr(value)
    return text if len(text) <= _PARAM_TEXT else text[:_PARAM_TEXT] + "..."


def model_parameters(body: Any) -> dict[str, Any]:
    """The request's model parameters (``temperature``, ``max_tokens``, ``stream``, ``tool_choice`` ...)."""
    if not isinstance(body, dict):
        return {}
    return {k: _param(v) for k, v in body.items() if k not in _NOT_PARAMS and v is not None}


def request_input(body: Any) -> Any:
    """What Langfuse shows as a generation's input: the content fields of the request body."""
    if not isinstance(body, dict):
        return body
    return {k: v for k, v in body.items() if k in _NOT_PARAMS and k not in _NOT_INPUT}


def answer_output(route: str, answer: Any) -> Any:
    """What Langfuse shows as a generation's output: the answer's content, in LiteLLM's choice of field."""
    if not isinstance(answer, dict):
        return answer
    if route == "embeddings":
        return None  # LiteLLM logs no output for embeddings (vectors are noise)
    if route == "audio_speech":
        return "speech-output"
    choices = answer.get("choices")
    if isinstance(choices, list) and choices:
        picked = [c.get("message", c.get("text")) if isinstance(c, dict) else c for c in choices]
        return picked[0] if len(picked) == 1 else picked
    if route == "messages" and "content" in answer:
        return {"role": answer.get("role", "assistant"), "content": answer["content"]}
    for key in ("output", "data", "results", "text"):
        if key in answer:
            return answer[key]
    return {k: v for k, v in answer.items() if k != "usage"}


_STEERING = ("trace_id", "existing_trace_id", "trace_name", "generation_name", "generation_id", "session_id",
             "trace_user_id", "trace_metadata", "trace_release", "trace_version", "trace_public", "version",
             "parent_observation_id", "mask_input", "mask_output", "debug_langfuse", "tags", "prompt")
_STEERING_SET = frozenset(_STEERING)


def _steering(metadata: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The client's Langfuse controls: ``metadata`` keys, overridden by ``langfuse_<key>`` request headers
    (LiteLLM's ``add_metadata_from_header``)."""
    out = {k: v for k, v in metadata.items() if v is not None and k in _STEERING_SET} if metadata else {}
    for name, value in headers.items():
        if name.startswith("langfuse_") and value:
            out[name[len("langfuse_"):]] = value
    return out


def _key_metadata(r: CompletionRecord, detail: Detail | None) -> dict[str, Any]:
    """LiteLLM's ``user_api_key_*`` metadata fields that have a value."""
    pairs = (("user_api_key_hash", r.key_hash), ("user_api_key_alias", r.key_alias),
             ("user_api_key_team_id", r.team_id),
             ("user_api_key_team_alias", detail.team_alias if detail is not None else None),
             ("user_api_key_user_id", r.user_id), ("user_api_key_org_id", r.org_id),
             ("user_api_key_end_user_id", r.end_user_id))
    return {k: v for k, v in pairs if v is not None}


def _default_tags(names: Sequence[str], fields: Mapping[str, Any], r: CompletionRecord,
                  opts: BuildOptions) -> list[str]:
    out = []
    for name in names:
        if name == "cache_hit":
            out.append(f"cache_hit:{r.cache_hit}")
        elif name == "proxy_base_url":
            if opts.proxy_base_url:
                out.append(f"proxy_base_url:{opts.proxy_base_url}")
        elif fields.get(name) is not None:
            value = fields[name]
            out.append(f"{name}:{value if isinstance(value, str) else _text(value)}")
    return out


def _status_message(r: CompletionRecord, detail: Detail | None) -> str:
    if detail is not None and detail.error_message:
        return detail.error_message
    if r.error_message:
        return r.error_message
    if r.outcome is Outcome.CLIENT_GONE:
        return "client disconnected before the answer was complete"
    if r.outcome is Outcome.STREAM_BROKEN:
        return f"stream broken: {r.error_type or 'upstream failed after the first frame'}"
    return f"{r.error_type or 'error'} (HTTP {r.status})"


def build_events(r: CompletionRecord, detail: Detail | None, opts: BuildOptions, *, now: float,
                 new_id: Callable[[], str]) -> list[dict[str, Any]]:
    """The ingestion events of one record: ``trace-create`` (unless ``existing_trace_id``) and
    ``generation-create``. ``now`` (epoch seconds) stamps the envelopes; ``new_id()`` names them (Langfuse
    deduplicates by envelope id, so a batch sent again is not counted twice).

    Each event body is built holding only the fields that have a value (Langfuse's optional fields are left
    out, never sent as null), and a request that steers nothing (no Langfuse keys in its ``metadata``, no
    ``langfuse_*`` headers: nearly every one) skips the steering lookups altogether."""
    extra = r.extra if isinstance(r.extra, dict) else {}
    raw_meta = detail.metadata if detail is not None else extra.get("metadata")
    metadata: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    ctl = _steering(metadata, detail.request_headers if detail is not None else {})
    ok = r.outcome is Outcome.OK
    route_type = CALL_TYPES.get(r.route, r.route)
    body = detail.input if detail is not None else None
    key_meta = {} if opts.redact_key_info else _key_metadata(r, detail)

    # the client's steering (LiteLLM's metadata keys and langfuse_* headers)
    if ctl:
        get = ctl.get
        existing = _text(get("existing_trace_id"))
        trace_id = existing or _text(get("trace_id"))
        trace_name, user, session = _text(get("trace_name")), _text(get("trace_user_id")), _text(get("session_id"))
        trace_version, trace_release = _text(get("trace_version", get("version"))), _text(get("trace_release"))
        gen_id, gen_name, version = _text(get("generation_id")), _text(get("generation_name")), _text(get("version"))
        parent = _text(get("parent_observation_id"))
        mask_in, mask_out = _flag(get("mask_input")), _flag(get("mask_output"))
        tag_value = get("tags", extra.get("tags"))
    else:
        existing = trace_id = trace_name = user = session = trace_version = trace_release = None
        gen_id = gen_name = version = parent = None
        mask_in = mask_out = False
        tag_value = extra.get("tags")

    # ids: LiteLLM's order (existing trace, metadata trace id, the request's own trace, the call)
    if not trace_id and isinstance(body, dict) and isinstance(body.get("litellm_trace_id"), str):
        trace_id = body["litellm_trace_id"]
    if not trace_id:
        trace_id = detail.trace_id if detail is not None and detail.trace_id else r.call_id

    # bodies
    if detail is None:
        inp: Any = None
        out: Any = None
    elif detail.redacted:
        inp = out = REDACTED
    else:
        inp = request_input(body)
        out = answer_output(r.route, detail.output) if detail.output is not None else None
    if mask_in:
        inp = REDACTED
    if mask_out:
        out = REDACTED
    status_message = None if ok else _status_message(r, detail)
    if out is None and status_message is not None:
        out = status_message  # LiteLLM logs the error as the output of a failed call

    # tags: the request's (with the key's / team's), then langfuse_default_tags
    tags = list(detail.tags) if detail is not None and detail.tags else tag_list(tag_value)
    if r.user_agent or r.header_tags:  # LiteLLM's User-Agent and extra_spend_tag_headers tags (its request_tags)
        tags.extend(header_tags_of(r))
    if opts.default_tags:
        tags.extend(_default_tags(opts.default_tags, {**key_meta, **metadata}, r, opts))
    if len(tags) > 1:
        tags = list(dict.fromkeys(tags))

    start = r.start_time
    started = iso(start)
    events: list[dict[str, Any]] = []
    stamp = iso(now)
    if existing is None:
        trace: dict[str, Any] = {"id": trace_id, "timestamp": started, "name": trace_name or f"litellm-{route_type}"}
        user = user or r.end_user_id
        if user is not None:
            trace["userId"] = user
        if session is not None:
            trace["sessionId"] = session
        if inp is not None:
            trace["input"] = inp
        if out is not None:
            trace["output"] = out
        trace["tags"] = tags
        if trace_version is not None:
            trace["version"] = trace_version
        release = trace_release or opts.release
        if release is not None:
            trace["release"] = release
        if ctl:
            trace_meta = ctl.get("trace_metadata")
            meta_out: dict[str, Any] = dict(trace_meta) if isinstance(trace_meta, dict) else {}
            if _flag(ctl.get("debug_langfuse")):
                meta_out["metadata_passed_to_litellm"] = {k: v for k, v in metadata.items()
                                                          if isinstance(v, (str, int, float, bool))}
            if meta_out:
                trace["metadata"] = meta_out
            if "trace_public" in ctl:
                trace["public"] = _flag(ctl["trace_public"])
        if opts.environment:
            trace["environment"] = opts.environment
        events.append({"id": new_id(), "timestamp": stamp, "type": "trace-create", "body": trace})

    gen_meta: dict[str, Any] = dict(key_meta)
    gen_meta["requester_metadata"] = metadata
    spend_meta = extra.get("spend_logs_metadata", metadata.get("spend_logs_metadata"))
    if spend_meta is not None:
        gen_meta["spend_logs_metadata"] = spend_meta
    cost = r.cost if math.isfinite(r.cost) and r.cost > 0.0 else 0.0
    gen_meta["litellm_call_id"] = r.call_id
    gen_meta["litellm_response_cost"] = cost
    gen_meta["cache_hit"] = r.cache_hit
    if r.model_group:
        gen_meta["model_group"] = r.model_group
    if r.deployment_id:
        gen_meta["model_id"] = r.deployment_id
    if r.provider:
        gen_meta["custom_llm_provider"] = r.provider
    gen_meta["status_code"] = r.status
    gen_meta["outcome"] = OUTCOME_TEXT[r.outcome]
    gen_meta["litellm_overhead_time_ms"] = round(r.overhead * 1000.0, 3)
    if detail is not None:
        gen_meta["span_id"] = detail.span_id
        attempts = detail.attempts
        if attempts:
            if attempts[-1].api_base:
                gen_meta["api_base"] = attempts[-1].api_base
            if len(attempts) > 1 or not ok:
                gen_meta["attempts"] = [{"model_id": a.deployment_id, "model_group": a.model_group,
                                         "provider": a.provider, "status": a.status,
                                         "duration_ms": round((a.end - a.start) * 1000.0, 3),
                                         **({"error_type": a.error_type} if a.error_type else {})}
                                        for a in attempts]
    if r.retries:
        gen_meta["attempted_retries"] = r.retries
    if r.fallbacks:
        gen_meta["attempted_fallbacks"] = r.fallbacks
    if r.cost_estimated:
        gen_meta["cost_estimated"] = True
    if not ok and r.error_type:
        gen_meta["error_type"] = r.error_type
    if not gen_name:
        alias = key_meta.get("user_api_key_alias")
        gen_name = f"litellm:{alias}" if alias else f"litellm-{route_type}"
    generation: dict[str, Any] = {
        "id": gen_id or r.call_id, "traceId": trace_id, "name": gen_name,
        "startTime": started, "endTime": iso(start + max(r.latency, 0.0))}
    model = r.upstream_model or r.model
    if model:
        generation["model"] = model
    params = model_parameters(body)
    if params:
        generation["modelParameters"] = params
    if inp is not None:
        generation["input"] = inp
    if out is not None:
        generation["output"] = out
    generation["usageDetails"] = {"input": max(r.prompt_tokens - r.cache_read_tokens, 0),
                                  "output": r.completion_tokens, "total": r.prompt_tokens + r.completion_tokens,
                                  "cache_read_input_tokens": r.cache_read_tokens,
                                  "cache_creation_input_tokens": r.cache_write_tokens}
    generation["costDetails"] = {"total": cost}
    generation["metadata"] = gen_meta
    generation["level"] = "DEFAULT" if ok else ("WARNING" if r.outcome is Outcome.CLIENT_GONE else "ERROR")
    if status_message is not None:
        generation["statusMessage"] = status_message
    if version is not None:
        generation["version"] = version
    if parent is not None:
        generation["parentObservationId"] = parent
    if opts.environment is not None:
        generation["environment"] = opts.environment
    if ctl:
        prompt = ctl.get("prompt")  # a Langfuse prompt the client used: link the generation to it
        if isinstance(prompt, dict) and isinstance(prompt.get("name"), str) and type(prompt.get("version")) is int:
            generation["promptName"], generation["promptVersion"] = prompt["name"], prompt["version"]
    if r.ttft is not None:
        generation["completionStartTime"] = iso(start + r.ttft)
    events.append({"id": new_id(), "timestamp": stamp, "type": "generation-create", "body": generation})
    return events


def ingestion_body(events: Sequence[bytes]) -> bytes:
    """The request body of a batch of already-encoded events (``{"batch": [...]}``)."""
    return b'{"batch":[' + b",".join(events) + b"]}"


def chunk(events: Sequence[bytes], max_events: int, max_bytes: int) -> list[list[bytes]]:
    """Split encoded events into request batches of at most ``max_events`` events and about ``max_bytes``
    (Langfuse takes 3.5 MB per request); an event larger than that goes alone."""
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for ev in events:
        if cur and (len(cur) >= max_events or size + len(ev) + 1 > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(ev)
        size += len(ev) + 1
    if cur:
        out.append(cur)
    return out


class _Item(msgspec.Struct):
    id: str = ""
    status: int = 0
    message: str | None = None


class _Answer(msgspec.Struct):
    successes: list[_Item] = []
    errors: list[_Item] = []


def parse_answer(body: bytes, sent: int) -> tuple[int, list[tuple[str, int, str]]]:
    """Langfuse's 207 (or 200) answer: (events accepted, [(event id, status, message)] rejected). An answer
    that is not the documented JSON counts every event as accepted (the server said 2xx)."""
    try:
        ans = _decode(body, type=_Answer)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return sent, []
    errors = [(e.id, e.status, e.message or "") for e in ans.errors]
    return (len(ans.successes) if ans.successes or errors else sent), errors


EncodeEvents = Callable[[CompletionRecord, Detail, bool, "str | None", "str | None", float, Callable[[], str]],
                        "list[bytes] | None"]


def _load() -> EncodeEvents | None:
    mod = _ext.compiled("langfuse")
    if mod is None:
        return None
    mod.configure(encode=_encode, ok=Outcome.OK, client_gone=Outcome.CLIENT_GONE, call_types=CALL_TYPES,
                  outcome_text=OUTCOME_TEXT, not_params=_NOT_PARAMS, not_input=_NOT_INPUT, steering=_STEERING_SET,
                  param=_param, answer_output=answer_output, status_message=_status_message, tag_list=tag_list,
                  header_tags_of=header_tags_of, iso=iso, redacted=REDACTED, record_type=CompletionRecord,
                  astuple=msgspec.structs.astuple)
    fn: EncodeEvents = mod.record_events
    return fn


record_events: EncodeEvents | None = _load()
"""``record_events(record, detail, redact_key_info, release, environment, now, new_id)``: the compiled writer
(None: the pure path only); it answers None for a record whose request steers its events."""


def encode_events(r: CompletionRecord, detail: Detail | None, opts: BuildOptions, *, now: float,
                  new_id: Callable[[], str]) -> list[bytes]:
    """The record's events as the sink sends them: :func:`build_events`, each encoded; written by the compiled
    writer when it is built and the record is one it writes (a Detail, no steering, no default tags)."""
    if record_events is not None and detail is not None and not opts.default_tags:
        events = record_events(r, detail, opts.redact_key_info, opts.release, opts.environment, now, new_id)
        if events is not None:
            return events
    return [_encode(e) for e in build_events(r, detail, opts, now=now, new_id=new_id)]
