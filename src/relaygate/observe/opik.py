"""LiteLLM's ``opik`` callback: a Comet Opik trace and an ``llm`` span per request, sent in batches to Opik's REST API.

What it owns: the trace and span of a completion record and the endpoint's configuration; batching, retries with
backoff, the bounded buffer, drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM's ``get_opik_config_variable`` reads it: each setting from the environment variable
``OPIK_<NAME>``, else from the ``[opik]`` section of ``~/.opik.config`` (the Opik SDK's file, key ``<name>``),
else its default: ``OPIK_URL_OVERRIDE`` / ``url_override`` (default Comet's cloud, ``https://www.comet.com/opik/api``;
the batches go to ``<url>/v1/private/traces/batch`` and ``<url>/v1/private/spans/batch``), ``OPIK_API_KEY`` /
``api_key`` (sent as the bare ``authorization`` header value, registered as a secret and never logged),
``OPIK_WORKSPACE`` / ``workspace`` (sent as ``Comet-Workspace``), ``OPIK_PROJECT_NAME`` / ``project_name`` (default
``Default Project``). ``DEFAULT_BATCH_SIZE`` (512 items, traces and spans counted alike as LiteLLM's queue counts
them; at most 1,000, Opik's limit per batch) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5) are LiteLLM's batch logger
knobs. ``callback_settings.opik.message_logging: false`` (or ``turn_off_message_logging``, or a redacted request)
sends LiteLLM's ``redacted-by-litellm`` stand-ins instead of messages and answers; ``redact_user_api_key_info``
blanks the ``user_api_key_*`` metadata (:mod:`relaygate.observe.standard`). LiteLLM starts without an API key, and
so does relaygate for a self-hosted Opik (which needs none); aimed at Comet's cloud (``*.comet.com``), where every
batch would be refused, a missing key is a ``ConfigError`` (LiteLLM would log nothing, silently). A URL that is
not http(s), or an API key or workspace with a control character, is a ``ConfigError`` too. LiteLLM has no
per-key credentials for Opik (no ``opik_*`` ``StandardCallbackDynamicParams``): every record goes to the
configured endpoint.

Only answered requests are sent: LiteLLM's ``OpikLogger`` has no failure hook. Each becomes, as LiteLLM's
``build_opik_payload`` makes them (from the StandardLoggingPayload of :mod:`relaygate.observe.standard`):

- The request's Opik settings: the ``opik`` object of the key's metadata (LiteLLM's ``user_api_key_auth_metadata``)
  under the ``opik`` object of the client's request ``metadata``: ``project_name`` (else the configured project),
  ``tags``, ``thread_id`` and ``current_span_data`` (``{"trace_id": ..., "id": ...}``, what the Opik SDK's
  ``get_current_span_data()`` holds: the span then joins that trace under that span, and no trace is made);
  ``opik_project_name``, ``opik_thread_id`` and ``opik_tags`` (a JSON list, added) request headers override them
  when the capture carries them.
- A trace (unless the request joins one): ``project_name``, ``id`` (a new UUID v7), ``name`` (the answer's
  ``object``, e.g. ``chat.completion``), ``start_time`` / ``end_time`` (ISO 8601, UTC, ``Z``), ``input`` (the
  payload's ``messages``), ``output`` (its ``response``), ``metadata``, ``tags``, ``thread_id``.
- A span: ``id`` (a new UUID v7), ``project_name``, ``trace_id``, ``parent_span_id``, ``name``
  (``<model>_<object>_<created>`` of the answer), ``type: llm``, ``model`` (the answer's), the same times, input,
  output, metadata and tags, ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``), ``provider``
  (LiteLLM's provider, a few renamed as Opik names them: ``gemini`` is ``google_ai``...), ``total_cost``.
- ``metadata``: the Opik settings (without ``current_span_data``), ``created_from: litellm``, the payload's
  ``metadata``, its ``call_type`` (as ``type``), ``status``, ``model``, ``model_id``, ``model_group``, ``api_base``,
  ``cache_hit``, ``saved_cache_cost``, ``error_str``, ``model_parameters``, ``hidden_params``,
  ``model_map_information``, and ``cost: {"total_tokens": <cost in USD>, "currency": "USD"}`` (LiteLLM's key name).
- ``tags``: the Opik settings' tags, then the provider. Fields without a value are left out.

The traces of a flush go in one ``{"traces": [...]}`` request, then its spans in one ``{"spans": [...]}``, each
retried on its own.

Where relaygate differs from LiteLLM, on purpose:

- The span also carries ``total_estimated_cost``, the name Opik's REST API reads (its ``Span`` ignores unknown
  fields, so LiteLLM's ``total_cost``, the Opik SDK's argument name, is dropped there and Opik shows no cost when
  LiteLLM sends over REST); ``total_cost`` is kept for consumers of LiteLLM's payload.
- The client's values that Opik validates are checked first, because one bad item has Opik refuse the whole
  batch, other requests' traces with it: ``current_span_data`` ids are used only when they are UUID v7 (Opik's
  rule; else the request starts a trace of its own, and a parent span id never goes without its trace id, which
  LiteLLM sends into a new trace), tags only when they are a list (a string is not split into characters) and only
  its strings, a project name or thread id only when it is non-empty text.
- ``OPIK_URL_OVERRIDE``'s trailing slash is dropped (LiteLLM would ask for ``//v1/...``); ``~/.opik.config`` is read
  without ``%`` interpolation (a ``%`` in a key stops LiteLLM's reader).
- LiteLLM sends through the ``opik`` package's client when it is installed; relaygate always uses the REST API.
- The key's ``opik`` settings come from the key's metadata; LiteLLM also merges the team's metadata over them.
"""

from __future__ import annotations

import configparser
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    HttpExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DEFAULT_PROJECT", "DEFAULT_URL", "OpikSink", "items_of", "make_opik", "opik_config", "uuid7"]

DEFAULT_URL = "https://www.comet.com/opik/api"
DEFAULT_PROJECT = "Default Project"
BATCH_MAX = 1000
"""Items Opik takes in one batch request."""
MAX_BODY = 50 * 1024 * 1024
"""Bytes a batch request holds at most (the Opik SDK's split size; a larger batch is split in halves)."""
CONFIG_FILE = ".opik.config"

_PROVIDERS = {"vertex_ai-language-models": "google_vertexai", "gemini": "google_ai",
              "vertex_ai-anthropic_models": "anthropic_vertexai", "bedrock_converse": "bedrock"}
"""LiteLLM's provider names that Opik names otherwise (the rest pass as they are)."""
_OBJECTS = {"chat": "chat.completion", "completions": "text_completion", "embeddings": "list",
            "responses": "response", "messages": "message"}
"""The answer's ``object`` by route, when the answer is not at hand (redacted)."""
_FIELDS = (("call_type", "type"), ("status", "status"), ("model", "model"), ("model_id", "model_id"),
           ("model_group", "model_group"), ("api_base", "api_base"), ("cache_hit", "cache_hit"),
           ("saved_cache_cost", "saved_cache_cost"), ("error_str", "error_str"),
           ("model_parameters", "model_parameters"), ("hidden_params", "hidden_params"),
           ("model_map_information", "model_map_information"))
"""StandardLoggingPayload fields LiteLLM copies into the metadata, and their names there."""

_encode = msgspec.json.Encoder(enc_hook=str).encode
_LOW62 = (1 << 62) - 1


def uuid7(now: float | None = None) -> str:
    """An RFC 9562 UUID v7: ``now``'s Unix milliseconds, then random bits (Opik refuses ids of other versions, and
    ones whose time is far from its own clock)."""
    ms = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    rnd = int.from_bytes(os.urandom(10), "big")  # 74 of its 80 bits are used
    h = f"{ms << 80 | 0x7 << 76 | (rnd >> 62 & 0xFFF) << 64 | 0x2 << 62 | (rnd & _LOW62):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _v7(value: Any) -> str | None:
    """``value`` as a canonical UUID v7 string, else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        u = uuid.UUID(value)
    except ValueError:
        return None
    return str(u) if u.version == 7 else None


def _tags(value: Any) -> list[str]:
    return [t for t in value if isinstance(t, str) and t] if isinstance(value, list) else []


def _settings(payload_meta: Mapping[str, Any], client_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The request's Opik settings: the key's ``opik`` metadata under the client's (LiteLLM's
    ``extract_opik_metadata``; its third source, the requester metadata, is the client's metadata again)."""
    out: dict[str, Any] = {}
    auth = payload_meta.get("user_api_key_auth_metadata")
    if isinstance(auth, dict) and isinstance(auth.get("opik"), dict):
        out.update(auth["opik"])
    own = client_meta.get("opik")
    if isinstance(own, dict):
        out.update(own)
    return out


def items_of(record: CompletionRecord, payload: dict[str, Any], client_meta: Mapping[str, Any],
             headers: Mapping[str, str], output: Any, *, project: str,
             new_id: Callable[[], str] = uuid7) -> list[tuple[str, dict[str, Any]]]:
    """The ``("traces", trace)`` (unless the request joins a trace) and ``("spans", span)`` items of one answered
    request (module docstring). ``payload``: its StandardLoggingPayload; ``client_meta``: the request's metadata;
    ``headers``: the request headers the capture kept; ``output``: the decoded answer (None when redacted), read
    for its ``object``, ``model`` and ``created`` only."""
    opik = _settings(payload.get("metadata") or {}, client_meta)
    project = _text(opik.get("project_name")) or project
    thread_id = _text(opik.get("thread_id"))
    trace_id = parent_id = None
    span_data = opik.get("current_span_data")
    if isinstance(span_data, dict):
        trace_id = _v7(span_data.get("trace_id"))
        parent_id = _v7(span_data.get("id")) if trace_id is not None else None
    tags = _tags(opik.get("tags"))
    provider = payload.get("custom_llm_provider")
    if provider:
        tags.append(provider)
    for name, value in headers.items():  # LiteLLM's apply_proxy_header_overrides
        if not name.startswith("opik_") or not value:
            continue
        if name == "opik_project_name":
            project = value
        elif name == "opik_thread_id":
            thread_id = value
        elif name == "opik_tags":
            try:
                tags.extend(_tags(json.loads(value)))
            except ValueError:
                pass

    metadata = {k: v for k, v in opik.items() if k != "current_span_data"}
    metadata["created_from"] = "litellm"
    metadata.update(payload.get("metadata") or {})
    for src, dst in _FIELDS:
        metadata[dst] = payload.get(src)
    cost = payload.get("response_cost")
    metadata["cost"] = {"total_tokens": cost, "currency": "USD"}

    answer = output if isinstance(output, dict) else {}
    obj = answer.get("object")
    if not isinstance(obj, str):
        obj = _OBJECTS.get(record.route)
    model = answer.get("model")
    if not isinstance(model, str) or not model:
        model = record.upstream_model or record.model or "unknown-model"
    created = answer.get("created")
    if not isinstance(created, int):
        created = int(record.start_time + record.latency)
    start, end = _iso(payload["startTime"]), _iso(payload["endTime"])
    messages, response = payload.get("messages"), payload.get("response")

    out: list[tuple[str, dict[str, Any]]] = []
    if trace_id is None:
        trace_id = new_id()
        trace = {"project_name": project, "id": trace_id, "name": obj or "unknown type", "start_time": start,
                 "end_time": end, "input": messages, "output": response, "metadata": metadata, "tags": tags}
        if thread_id is not None:
            trace["thread_id"] = thread_id
        out.append(("traces", {k: v for k, v in trace.items() if v is not None}))
    span = {"id": new_id(), "project_name": project, "trace_id": trace_id,
            "name": f"{model}_{obj or 'unknown-object'}_{created}", "type": "llm", "model": model,
            "start_time": start, "end_time": end, "input": messages, "output": response, "metadata": metadata,
            "tags": tags, "usage": {"completion_tokens": record.completion_tokens,
                                    "prompt_tokens": record.prompt_tokens,
                                    "total_tokens": record.prompt_tokens + record.completion_tokens},
            "parent_span_id": parent_id, "provider": _PROVIDERS.get(provider, provider) if provider else None,
            "total_cost": cost, "total_estimated_cost": cost}
    out.append(("spans", {k: v for k, v in span.items() if v is not None}))
    return out


class OpikSink(HttpExporter):
    """LiteLLM's ``opik`` callback: traces and spans to Opik's batch endpoints. Its entries are
    ``("traces" | "spans", item)`` pairs, one or two per record; a flush sends its traces, then its spans."""

    name = "opik"
    max_body = MAX_BODY

    def __init__(self, base_url: str, headers: Mapping[str, str], *, project: str = DEFAULT_PROJECT,
                 redact_key_info: bool = False, redact_messages: bool = False, **options: Any) -> None:
        super().__init__(f"{base_url}/v1/private/traces/batch", headers, **options)
        self.urls = {"traces": self.url, "spans": f"{base_url}/v1/private/spans/batch"}
        self.project = project
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def wants(self, record: CompletionRecord) -> bool:
        return self.success and record.outcome is Outcome.OK and not record.no_logging

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        if not self.success:
            return []
        out: list[Any] = []
        for r in batch:
            if r.outcome is Outcome.OK and not r.no_logging:
                out.extend(self.entry(r))
        return out

    def entry(self, record: CompletionRecord) -> list[tuple[str, dict[str, Any]]]:
        """The record's items (a list: :meth:`select` queues each on its own)."""
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        if detail is None:
            return items_of(record, payload, {}, {}, None, project=self.project)
        meta = detail.metadata if isinstance(detail.metadata, dict) else {}
        return items_of(record, payload, meta, detail.request_headers, detail.output, project=self.project)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({entries[0][0]: [item for _, item in entries]})

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        return "POST", self.urls[entries[0][0]]

    async def _deliver(self, chunk: list[Any]) -> None:
        traces = [e for e in chunk if e[0] == "traces"]
        if traces:
            await self._post(traces)
        spans = [e for e in chunk if e[0] == "spans"]
        if spans:
            await self._post(spans)


def opik_config(env: Mapping[str, str]) -> dict[str, str]:
    """The ``[opik]`` section of ``~/.opik.config`` (``HOME`` from ``env``; ``{}`` without the file or section).
    A file that cannot be parsed is a ``ConfigError``."""
    home = env.get("HOME") or os.path.expanduser("~")
    path = os.path.join(home, CONFIG_FILE)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(path, "opik", f"cannot read the Opik config file: {type(exc).__name__}") from None
    return dict(parser.items("opik")) if parser.has_section("opik") else {}


def _setting(env: Mapping[str, str], file: Mapping[str, str], key: str) -> tuple[str | None, str]:
    """A setting's value and where it came from: ``OPIK_<KEY>`` (even empty, as LiteLLM), else the file's."""
    name = f"OPIK_{key.upper()}"
    if env.get(name) is not None:
        return env[name].strip(), name
    if key in file:
        return file[key].strip(), f"~/{CONFIG_FILE} [opik] {key}"
    return None, name


def _control(value: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def make_opik(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
              **options: Any) -> OpikSink:
    """The ``opik`` sink for ``settings``, configured from ``env`` (and ``~/.opik.config``) as LiteLLM reads it
    (module docstring). ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` for a URL
    that is not http(s), an API key or workspace with a control character, or Comet's cloud without an API key."""
    file = opik_config(env)
    url, url_from = _setting(env, file, "url_override")
    base = (url or DEFAULT_URL).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(ENV_SOURCE, url_from, "expected an http(s) URL")  # the value unsaid: it may hold secrets
    api_key, key_from = _setting(env, file, "api_key")
    workspace, ws_from = _setting(env, file, "workspace")
    project, _ = _setting(env, file, "project_name")
    headers = {"Content-Type": "application/json"}
    if api_key:
        if _control(api_key):
            raise ConfigError(ENV_SOURCE, key_from, "control characters cannot go in a header")
        register_secrets([api_key])
        headers["authorization"] = api_key
    elif parts.hostname == "comet.com" or parts.hostname.endswith(".comet.com"):
        raise ConfigError(ENV_SOURCE, "OPIK_API_KEY",
                          "the opik callback needs OPIK_API_KEY for Comet's cloud (or OPIK_URL_OVERRIDE for a "
                          "self-hosted Opik)")
    if workspace:
        if _control(workspace):
            raise ConfigError(ENV_SOURCE, ws_from, "control characters cannot go in a header")
        headers["Comet-Workspace"] = workspace
    opts = callback_options(settings, "opik")
    success, _ = event_flags(settings, "opik", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, batch_max=BATCH_MAX)
    return OpikSink(base, headers, project=project or DEFAULT_PROJECT, success=success, failure=False,
                    on_event=on_event, redact_key_info=settings.redact_user_api_key_info,
                    redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                    **defaults)
