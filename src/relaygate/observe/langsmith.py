"""LiteLLM's ``langsmith`` callback: one LangSmith run per request, sent in batches to ``/api/v1/runs/batch``.

What it owns: the run of a completion record and the endpoint's configuration; batching, retries with
backoff, the bounded buffer, drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM reads it from the environment: ``LANGSMITH_API_KEY`` (required; sent as
``x-api-key``, registered as a secret and never logged), ``LANGSMITH_PROJECT`` (default
``litellm-completion``), ``LANGSMITH_BASE_URL`` (default ``https://api.smith.langchain.com``; ``/api/v1`` is
added unless the URL has it, then ``/runs/batch``), ``LANGSMITH_TENANT_ID`` (sent as ``x-tenant-id``),
``LANGSMITH_DEFAULT_RUN_NAME`` (default ``LLMRun``), ``LANGSMITH_BATCH_SIZE`` (default 512) and
``DEFAULT_FLUSH_INTERVAL_SECONDS`` (default 5), ``LANGSMITH_SAMPLING_RATE`` (0..1, the share of requests sent:
LiteLLM reads it only when it is all digits, so ``0.5`` is ignored there and honoured here).
``callback_settings.langsmith.message_logging: false`` (or ``turn_off_message_logging``) leaves messages and
answers out, as for the other exporters.

Each record becomes LiteLLM's run (``_prepare_log_data``): ``name`` (the request metadata's ``run_name``, else
the default run name), ``run_type: llm``, ``inputs`` (the record's StandardLoggingPayload,
:mod:`relaygate.observe.standard`), ``outputs`` (the answer's fields, or ``{"output": ...}`` when it is not an
object, plus ``usage_metadata``: input, output and total tokens and the cost), ``session_name`` (the
metadata's ``project_name``, else the project), ``start_time`` / ``end_time`` (the payload's epoch seconds),
``tags`` (the request's tags), ``extra`` (the payload's metadata, with ``session_id``, ``thread_id`` and
``conversation_id`` lifted from the client's metadata), ``error`` for a failure; the ids from the client's
metadata (``id`` or ``run_id``, ``parent_run_id``, ``trace_id``, ``session_id`` unless it equals the trace
id, ``dotted_order``), else a fresh run id that is its own trace id, with ``dotted_order``
``<start time %Y%m%dT%H%M%S%fZ><run id>`` (LiteLLM stamps the time of logging; LangSmith orders runs by the
start time this encodes, so relaygate uses the request's start). The body is ``{"post": [runs]}``.

A key's or team's own project (its ``metadata.logging`` entry ``{"callback_name": "langsmith", "callback_type":
..., "callback_vars": {...}}``, LiteLLM's dynamic params ``langsmith_api_key``, ``langsmith_project``,
``langsmith_base_url``, ``langsmith_sampling_rate``, ``langsmith_tenant_id``) gets that key's runs instead of the
configured project, for the outcomes its ``callback_type`` names; a value it does not give comes from the
environment, except that an entry naming its own ``langsmith_base_url`` gets none of the environment's
credentials (LiteLLM's ``allow_env_credentials=False``: else a key's owner could have the operator's API key
sent to a host of theirs). An entry without an API key, or with a base URL or rate that cannot work, sends
nothing (one warning a minute). The runs of a flush go in one request per project. Such entries start this
exporter on the first request that names it even when ``langsmith`` is not a configured callback.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    KeyedExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["LangsmithSink", "Project", "make_langsmith", "project_of", "run_of", "target_project"]

DEFAULT_BASE_URL = "https://api.smith.langchain.com"
DEFAULT_PROJECT = "litellm-completion"
MAX_BODY = 20 * 1024 * 1024
"""Bytes a batch POST holds at most (LangSmith's ingest limit; a larger batch is split)."""
_LIFTED = ("session_id", "thread_id", "conversation_id")


class Project(NamedTuple):
    """Where a run goes: the batch URL, the request headers (API key, tenant), the project and sampling rate."""

    url: str
    headers: tuple[tuple[str, str], ...]
    name: str
    sampling_rate: float


def project_of(api_key: str, base: str, project: str, rate: float, tenant: str) -> Project:
    """A :class:`Project` from its settings (``base``: the base URL, ``/api/v1`` added unless it has it); raises
    ``ValueError`` for a base URL that is not http(s), or an API key or tenant with a control character (a
    ``CR LF`` in a header would split the request)."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("langsmith_base_url: expected an http(s) URL")  # the value unsaid: it may hold credentials
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_key + tenant):
        raise ValueError("langsmith_api_key / langsmith_tenant_id: control characters cannot go in a header")
    if "/api/v1" not in base:
        base = base.rstrip("/") + "/api/v1"
    headers = [("x-api-key", api_key), ("Content-Type", "application/json")]
    if tenant:
        headers.append(("x-tenant-id", tenant))
    return Project(f"{base.rstrip('/')}/runs/batch", tuple(headers), project, rate)


def _rate(raw: Any) -> float:
    """A sampling rate (``ValueError`` unless a number in 0..1; empty: 1)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 1.0
    rate = float(raw)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"expected a number in 0..1, got {raw!r}")
    return rate


def target_project(target: LoggingTarget, env: Mapping[str, str]) -> Project:
    """The project of a key's or team's ``langsmith`` entry (module docstring); ``ValueError`` when it cannot
    send (no API key, a base URL or rate that cannot work)."""
    v = target.callback_vars
    own_base = (v.get("langsmith_base_url") or "").strip()
    fallback = {} if own_base else env
    api_key = (v.get("langsmith_api_key") or fallback.get("LANGSMITH_API_KEY") or "").strip()
    if not api_key:
        raise ValueError("no langsmith_api_key")
    register_secrets([api_key])
    base = own_base or (env.get("LANGSMITH_BASE_URL") or "").strip() or DEFAULT_BASE_URL
    project = (v.get("langsmith_project") or fallback.get("LANGSMITH_PROJECT") or "").strip() or DEFAULT_PROJECT
    rate = _rate(v.get("langsmith_sampling_rate", fallback.get("LANGSMITH_SAMPLING_RATE")))
    tenant = (v.get("langsmith_tenant_id") or fallback.get("LANGSMITH_TENANT_ID") or "").strip()
    return project_of(api_key, base, project, rate, tenant)


_encode = msgspec.json.Encoder(enc_hook=str).encode


def _text(value: Any) -> str | None:
    """A client's name or id as LangSmith takes it: text (at most 1,000 characters), else None. A value of another
    type (an object, a list) would have LangSmith refuse the whole batch, other requests' runs with it."""
    return value[:1000] if isinstance(value, str) and value else None


def _ids(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The run ids the client's metadata names (LiteLLM's ``_extract_metadata_fields``), text only."""
    out = {"id": _text(meta.get("id", meta.get("run_id"))), "parent_run_id": _text(meta.get("parent_run_id")),
           "trace_id": _text(meta.get("trace_id")), "session_id": _text(meta.get("session_id")),
           "dotted_order": _text(meta.get("dotted_order"))}
    if out["session_id"] == out["trace_id"]:
        out["session_id"] = None  # LangSmith refuses a batch whose session_id is not one of its sessions
    return {k: v for k, v in out.items() if v}


def run_of(record: CompletionRecord, payload: dict[str, Any], client_meta: Mapping[str, Any], *, project: str,
           run_name: str, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> dict[str, Any]:
    """The LangSmith run of one record (see the module docstring); ``client_meta``: the request's metadata."""
    meta = payload.get("metadata") or {}
    extra = dict(meta)
    requester = meta.get("requester_metadata")
    if isinstance(requester, dict):
        for key in _LIFTED:
            if key in requester and key not in extra:
                extra[key] = requester[key]
    response = payload.get("response")
    outputs = dict(response) if isinstance(response, dict) else {"output": response}
    outputs["usage_metadata"] = {"input_tokens": payload.get("prompt_tokens", 0),
                                 "output_tokens": payload.get("completion_tokens", 0),
                                 "total_tokens": payload.get("total_tokens", 0),
                                 "total_cost": payload.get("response_cost", 0)}
    run: dict[str, Any] = {
        "name": _text(client_meta.get("run_name")) or run_name, "run_type": "llm", "inputs": payload,
        "outputs": outputs, "session_name": _text(client_meta.get("project_name")) or project,
        "start_time": payload.get("startTime"),
        "end_time": payload.get("endTime"), "tags": payload.get("request_tags") or [], "extra": extra}
    if record.outcome is not Outcome.OK and payload.get("error_str") is not None:
        run["error"] = payload["error_str"]
    run.update(_ids(client_meta))
    run_id = run.get("id") or new_id()
    run["id"] = run_id
    if ("parent_run_id" not in run and "dotted_order" not in run) or "trace_id" not in run:
        run["trace_id"] = run_id  # a root run is its own trace (LangSmith refuses the batch otherwise)
    if "dotted_order" not in run:
        start = datetime.fromtimestamp(record.start_time or 0.0, UTC)
        run["dotted_order"] = start.strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)
    return run


class LangsmithSink(KeyedExporter):
    """LiteLLM's ``langsmith`` callback (LangSmith's batch ingest API): runs to the configured project or to a key's
    or team's own (:class:`~relaygate.observe.generic_api.KeyedExporter`)."""

    name = "langsmith"
    max_body = MAX_BODY

    def __init__(self, default: Project | None, *, run_name: str = "LLMRun", redact_key_info: bool = False,
                 redact_messages: bool = False, env: Mapping[str, str] | None = None, concurrency: int = 4,
                 **options: Any) -> None:
        super().__init__(default.url if default is not None else DEFAULT_BASE_URL,
                         dict(default.headers) if default is not None else {}, **options)
        self.default = default
        """The configured project (``LANGSMITH_*``); None: only keys' and teams' own projects are sent to."""
        self.sampling_rate = default.sampling_rate if default is not None else 1.0
        self.run_name = run_name
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self.env = env or {}
        self.concurrency = max(1, concurrency)

    def resolve(self, target: LoggingTarget) -> Project:
        return target_project(target, self.env)

    def keep(self, dest: Project) -> bool:
        return dest.sampling_rate >= 1.0 or random.random() < dest.sampling_rate

    def body(self, record: CompletionRecord, dest: Project) -> dict[str, Any]:
        return self.run(record, dest)

    def run(self, record: CompletionRecord, project: Project) -> dict[str, Any]:
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        client_meta = detail.metadata if detail is not None else {}
        return run_of(record, payload, client_meta if isinstance(client_meta, dict) else {}, project=project.name,
                      run_name=self.run_name)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"post": [run for _, run in entries]})

    def headers_for(self, entries: Sequence[Any]) -> Mapping[str, str]:
        return dict(entries[0][0].headers)


def _sampling_rate(env: Mapping[str, str]) -> float:
    raw = env.get("LANGSMITH_SAMPLING_RATE")
    try:
        return _rate(raw)
    except ValueError:
        raise ConfigError(ENV_SOURCE, "LANGSMITH_SAMPLING_RATE", f"expected a number in 0..1, got {raw!r}") from None


def make_langsmith(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                   keys_only: bool = False, **options: Any) -> LangsmithSink:
    """The ``langsmith`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without ``LANGSMITH_API_KEY``
    (unless ``keys_only``: started for keys' own projects, where it may be missing) or with a base URL or
    sampling rate that cannot work."""
    api_key = (env.get("LANGSMITH_API_KEY") or "").strip()
    default: Project | None = None
    if api_key:
        register_secrets([api_key])
        base = (env.get("LANGSMITH_BASE_URL") or "").strip() or DEFAULT_BASE_URL
        try:
            default = project_of(api_key, base, (env.get("LANGSMITH_PROJECT") or "").strip() or DEFAULT_PROJECT,
                                 _sampling_rate(env), (env.get("LANGSMITH_TENANT_ID") or "").strip())
        except ValueError as exc:
            name = "LANGSMITH_API_KEY" if "control characters" in str(exc) else "LANGSMITH_BASE_URL"
            raise ConfigError(ENV_SOURCE, name, str(exc)) from None
    elif not keys_only:
        raise ConfigError(ENV_SOURCE, "LANGSMITH_API_KEY", "the langsmith callback needs LANGSMITH_API_KEY")
    opts = callback_options(settings, "langsmith")
    success, failure = event_flags(settings, "langsmith", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch_var="LANGSMITH_BATCH_SIZE")
    return LangsmithSink(default, run_name=(env.get("LANGSMITH_DEFAULT_RUN_NAME") or "").strip() or "LLMRun",
                         env=env, success=success and not keys_only, failure=failure and not keys_only,
                         on_event=on_event,
                         redact_key_info=settings.redact_user_api_key_info,
                         redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                         **defaults)
