"""LiteLLM's ``braintrust`` callback: one Braintrust log event per answered request, inserted into a project's logs.

What it owns: the event of a completion record, the destination's configuration and the project name → id
lookups; batching, retries with backoff, the bounded buffer, drop counting and shutdown are
:class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM reads it from the environment: ``BRAINTRUST_API_KEY`` (required: LiteLLM's logger
raises at start without it, so relaygate refuses to start; sent as ``Authorization: Bearer <key>``, registered
as a secret and never logged) and ``BRAINTRUST_API_BASE`` (default ``https://api.braintrustdata.com/v1``,
LiteLLM's code and docs; its ``/v1`` included; trailing slashes stripped). The batches are sized by LiteLLM's
batch-logger knobs, ``DEFAULT_BATCH_SIZE`` (512, bounded to 1..10000) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5,
bounded to 0.01..300). ``callback_settings.braintrust.message_logging: false``
(or ``turn_off_message_logging``, or a redacted request) sends LiteLLM's ``redacted-by-litellm`` stand-ins
instead of messages and answers; ``redact_user_api_key_info`` blanks the key's fields of the metadata.

Each answered request becomes LiteLLM's event (``async_log_success_event``), posted as ``{"events": [...]}`` to
``<base>/project_logs/<project id>/insert``: ``id`` (the call id), ``input`` (the messages), ``output`` (the
answer's ``choices``), ``metadata`` (the StandardLoggingPayload of :mod:`relaygate.observe.standard`, plus the
client metadata's text values under keys the payload does not have), ``metrics`` (``prompt_tokens``,
``completion_tokens``, ``total_tokens``, ``total_cost``, ``start``, ``end`` in epoch seconds,
``time_to_first_token``), ``span_attributes`` (``{"name": <metadata span_name, else "Chat Completion">, "type":
"llm"}``), ``tags`` (``key:value`` of each ``langfuse_default_tags`` field the request has; left out when the
metadata names a ``root_span_id``: Braintrust refuses tags on a child span), and, from the client's metadata when
given, ``span_id``, ``root_span_id`` and ``span_parents`` (a comma-separated string, split). The project: the
metadata's ``project_id``, else the id of its ``project_name``, else of the project ``litellm``; a name's id is
asked of Braintrust (``POST <base>/project`` with ``{"name": ...}``, which creates the project or returns the
existing one) by the sending task, never on the request path, and kept (at most 1,024 destination and name
pairs; past that the cache starts over).

Where relaygate differs from LiteLLM, on purpose:

- Events are batched: one insert per project and flush holds all its events (LiteLLM posts one per request,
  awaited in its logging task). A name's lookup that fails is retried as a batch is; out of attempts, its events
  are dropped and counted.
- A name is looked up with ``POST <base>/project`` whichever way it came; LiteLLM's async path (the proxy's) posts
  a request's ``project_name`` to ``<base>/project/register``, a path of Braintrust's app server, not of its
  ``/v1`` API.
- Only the client's metadata adds keys to ``metadata``; LiteLLM adds every text value of its internal metadata
  too (the hashed key, the key's alias, user and team ids), which would escape ``redact_user_api_key_info``: those
  are in ``metadata.metadata`` as the payload has them. The payload is copied, never changed (LiteLLM writes the
  keys into the payload every other logger then reads).
- ``output`` is the answer's ``choices``, else (an image, a Responses answer, a rerank) the answer itself, and
  ``null`` for an embedding; LiteLLM sends ``[]`` for all of those (its ``choices is not None`` test is always
  true). ``time_to_first_token`` is measured from the request's start (LiteLLM: from the upstream call's).
- A client's ``project_id`` is a path segment, percent-encoded; an id, name or span id that is not text is
  ignored (LiteLLM sends it as it is, and Braintrust refuses the whole insert). A list ``span_parents`` is taken.
- A key's or team's own destination (its ``metadata.logging`` entry ``{"callback_name": "braintrust", ...}`` with
  ``callback_vars`` ``braintrust_api_key``, ``braintrust_project`` (the default project's name) and
  ``braintrust_host`` (its API base; ``/v1`` added to a bare host)): LiteLLM passes these dynamic params through
  but its logger never reads them; here they apply, for the outcomes the entry's ``callback_type`` names. A value
  the entry does not give comes from the environment, except that an entry naming its own host gets none of the
  environment's credentials (else the operator's key would go to a host of the key owner's choosing). An entry
  without a key, or with a host that cannot work, sends nothing (one warning a minute). :func:`make_braintrust`
  with ``keys_only`` makes the sink for such entries alone, without ``BRAINTRUST_API_KEY``.
- Failures are not sent, as in LiteLLM (its logger has no failure hook): ``failure_callbacks: [braintrust]`` is
  accepted and sends nothing. ``BRAINTRUST_MOCK`` (LiteLLM's test switch) is not read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact, register_secrets
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.generic_api import ENV_SOURCE, KeyedExporter, batching, callback_options
from relaygate.observe.post import PostError
from relaygate.observe.standard import detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DEFAULT_API_BASE", "DEFAULT_PROJECT", "BraintrustSink", "Destination", "destination_of", "event_of",
           "make_braintrust", "target_destination"]

DEFAULT_API_BASE = "https://api.braintrustdata.com/v1"
DEFAULT_PROJECT = "litellm"
"""The project LiteLLM logs to when the request names none."""
SPAN_NAME = "Chat Completion"
NAMES_MAX = 1024
"""Project name → id pairs kept (past it, the cache starts over)."""
_NO_CHOICES = frozenset({"embedding", "aembedding"})


class Destination(NamedTuple):
    """Where events go: the API base, the request headers (the API key) and the default project's name."""

    base: str
    headers: tuple[tuple[str, str], ...]
    project: str

    @property
    def url(self) -> str:
        return self.base


def _controls(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def destination_of(api_key: str, api_base: str, project: str = DEFAULT_PROJECT) -> Destination:
    """A :class:`Destination`; ``ValueError`` for a base that is not an http(s) URL without query, or a key with a
    control character (a ``CR LF`` in a header would split the request)."""
    parts = urlsplit(api_base)
    if _controls(api_base) or parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ValueError("the Braintrust API base must be an http(s) URL without query")  # the value unsaid
    if _controls(api_key):
        raise ValueError("the Braintrust API key has control characters: it cannot go in a header")
    return Destination(api_base.rstrip("/"), (("Authorization", f"Bearer {api_key}"),
                                               ("Content-Type", "application/json")), project)


def target_destination(target: LoggingTarget, env: Mapping[str, str]) -> Destination:
    """The destination of a key's or team's ``braintrust`` entry (module docstring); ``ValueError`` when it cannot
    send (no API key, a host that cannot work)."""
    v = target.callback_vars
    own_host = (v.get("braintrust_host") or "").strip()
    fallback = {} if own_host else env
    api_key = (v.get("braintrust_api_key") or fallback.get("BRAINTRUST_API_KEY") or "").strip()
    if not api_key:
        raise ValueError("no braintrust_api_key")
    register_secrets([api_key])
    if own_host and urlsplit(own_host).path.strip("/") == "":
        own_host = own_host.rstrip("/") + "/v1"
    base = own_host or (env.get("BRAINTRUST_API_BASE") or "").strip() or DEFAULT_API_BASE
    project = (v.get("braintrust_project") or "").strip()
    if _controls(project):
        raise ValueError("braintrust_project has control characters")
    return destination_of(api_key, base, project[:1000] or DEFAULT_PROJECT)


_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode = msgspec.json.Decoder().decode


def _text(value: Any, limit: int = 1000) -> str | None:
    """A client's name or id as Braintrust takes it: non-empty text (cut at ``limit``), else None."""
    return value[:limit] if isinstance(value, str) and value.strip() else None


def _parents(value: Any) -> list[str] | None:
    if isinstance(value, str):
        out = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, list):
        out = [s.strip() for s in value if isinstance(s, str) and s.strip()]
    else:
        return None
    return [s[:1000] for s in out[:100]] or None


def _output(payload: dict[str, Any]) -> Any:
    response = payload.get("response")
    if isinstance(response, dict):
        choices = response.get("choices")
        if isinstance(choices, list):
            return choices
    if payload.get("call_type") in _NO_CHOICES:
        return None
    return response


Ref = tuple[str, str]
"""A project as an event names it: ``("id", <project id>)`` or ``("name", <project name>)``."""


def event_of(payload: dict[str, Any], client_meta: Mapping[str, Any], *,
             default_tags: Sequence[str] = ()) -> tuple[Ref | None, dict[str, Any]]:
    """The project an answered request names (None: the destination's default) and its Braintrust event (module
    docstring). ``payload``: its StandardLoggingPayload; ``client_meta``: the request's metadata."""
    metadata = dict(payload)
    for key, value in client_meta.items():
        if isinstance(value, str) and key not in metadata:
            metadata[key] = value
    start, end = payload.get("startTime"), payload.get("endTime")
    first = payload.get("completionStartTime")
    metrics: dict[str, Any] = {
        "prompt_tokens": payload.get("prompt_tokens", 0), "completion_tokens": payload.get("completion_tokens", 0),
        "total_tokens": payload.get("total_tokens", 0), "total_cost": payload.get("response_cost"),
        "start": start, "end": end}
    if isinstance(first, float | int) and isinstance(start, float | int):
        metrics["time_to_first_token"] = first - start
    event: dict[str, Any] = {
        "id": payload.get("litellm_call_id"), "input": payload.get("messages"), "output": _output(payload),
        "metadata": metadata, "span_attributes": {"name": _text(client_meta.get("span_name")) or SPAN_NAME,
                                                  "type": "llm"},
        "metrics": metrics}
    root = _text(client_meta.get("root_span_id"))
    if root is None:
        tags: list[str] = []
        if default_tags:
            std = payload.get("metadata") or {}
            for key in default_tags:
                value = std.get(key) if std.get(key) is not None else client_meta.get(key)
                if value is not None:
                    tags.append(f"{key}:{value}")
        event["tags"] = tags
    else:
        event["root_span_id"] = root
    span_id = _text(client_meta.get("span_id"))
    if span_id is not None:
        event["span_id"] = span_id
    parents = _parents(client_meta.get("span_parents"))
    if parents is not None:
        event["span_parents"] = parents
    project_id = _text(client_meta.get("project_id"), 200)
    if project_id is not None:
        return ("id", project_id), event
    name = _text(client_meta.get("project_name"))
    return (("name", name) if name is not None else None), event


class BraintrustSink(KeyedExporter):
    """LiteLLM's ``braintrust`` callback: events to the configured destination or a key's or team's own
    (:class:`~relaygate.observe.generic_api.KeyedExporter`), one insert per project and flush."""

    name = "braintrust"

    def __init__(self, default: Destination | None, *, redact_key_info: bool = False, redact_messages: bool = False,
                 default_tags: Sequence[str] = (), env: Mapping[str, str] | None = None, concurrency: int = 4,
                 **options: Any) -> None:
        super().__init__(default.base if default is not None else DEFAULT_API_BASE,
                         dict(default.headers) if default is not None else {}, **options)
        self.default = default
        """The configured destination (``BRAINTRUST_*``); None: only keys' and teams' own."""
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages
        self.default_tags = tuple(default_tags)
        self.env = env or {}
        self.concurrency = max(1, concurrency)
        self.project_ids: dict[tuple[Destination, str], str] = {}
        """Project ids by destination and name, as Braintrust answered (bounded by :data:`NAMES_MAX`)."""

    def resolve(self, target: LoggingTarget) -> Destination:
        return target_destination(target, self.env)

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        # LiteLLM's logger has no failure hook: failures are never sent, whatever a key's entry says
        return super().select([r for r in batch if r.outcome is Outcome.OK])

    def body(self, record: CompletionRecord, dest: Destination) -> tuple[Ref | None, dict[str, Any]]:
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info,
                                   redact_messages=self.redact_messages)
        client_meta = detail.metadata if detail is not None else {}
        return event_of(payload, client_meta if isinstance(client_meta, dict) else {},
                        default_tags=self.default_tags)

    # entries as posted: (destination, project id, event)

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"events": [e[2] for e in entries]})

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        dest, project_id = entries[0][0], entries[0][1]
        return "POST", f"{dest.base}/project_logs/{quote(project_id, safe='')}/insert"

    def headers_for(self, entries: Sequence[Any]) -> Mapping[str, str]:
        return dict(entries[0][0].headers)

    async def _deliver(self, chunk: list[Any]) -> None:
        by_project: dict[tuple[Destination, str], list[Any]] = {}
        unresolved: dict[tuple[Destination, str], list[Any]] = {}
        for dest, (ref, event) in chunk:
            kind, value = ref if ref is not None else ("name", dest.project)
            if kind == "name":
                known = self.project_ids.get((dest, value))
                if known is None:
                    unresolved.setdefault((dest, value), []).append(event)
                    continue
                value = known
            by_project.setdefault((dest, value), []).append((dest, value, event))
        for (dest, name), events in unresolved.items():
            project_id = await self._lookup(dest, name, len(events))
            if project_id is not None:
                by_project.setdefault((dest, project_id), []).extend((dest, project_id, e) for e in events)
        if by_project:
            await self._post_groups(list(by_project.values()), self.concurrency)

    async def _lookup(self, dest: Destination, name: str, n: int) -> str | None:
        """The id of the project ``name`` at ``dest`` (created when missing), retried as a batch is; None when
        Braintrust did not say: the ``n`` events waiting for it are dropped and counted."""
        url = f"{dest.base}/project"
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        body = _encode({"name": name})
        delay = self.backoff
        attempt = 0
        while True:
            attempt += 1
            retry = True
            try:
                self.requests += 1
                resp = await self._http().post(url, body, list(dest.headers))
            except PostError as exc:
                reason = redact(str(exc))[:200]
            else:
                if 200 <= resp.status < 300:
                    project_id = _project_id(resp.content)
                    if project_id is not None:
                        if len(self.project_ids) >= NAMES_MAX:
                            self.project_ids.clear()
                        self.project_ids[(dest, name)] = project_id
                        return project_id
                    reason, retry = f"HTTP {resp.status} without a project id", False
                else:
                    reason = f"HTTP {resp.status}: {redact(resp.text[:300])}"
                    retry = resp.status in (408, 429) or resp.status >= 500
            self.failures += 1
            self._count(f"{self.name}_send_failed", 1)
            if not retry or attempt >= self.max_attempts:
                self._drop(n, f"the project lookup at {where} failed {attempt} time(s), last: {reason}")
                return None
            self._warn("%s exporter: looking up a project at %s failed (%s); retry %d of %d in %.1f s",
                       self.name, where, reason, attempt, self.max_attempts - 1, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)


def _project_id(content: bytes) -> str | None:
    """The ``id`` of Braintrust's project answer, or None."""
    try:
        found = _decode(content)
    except msgspec.DecodeError:
        return None
    project_id = found.get("id") if isinstance(found, dict) else None
    return project_id if isinstance(project_id, str) and project_id else None


def make_braintrust(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None, *,
                    keys_only: bool = False, **options: Any) -> BraintrustSink:
    """The ``braintrust`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` without ``BRAINTRUST_API_KEY``
    (unless ``keys_only``: started for keys' own destinations, where it may be missing), or with an API key or
    base that cannot work."""
    api_key = (env.get("BRAINTRUST_API_KEY") or "").strip()
    default: Destination | None = None
    if api_key:
        register_secrets([api_key])
        try:
            default = destination_of(api_key, (env.get("BRAINTRUST_API_BASE") or "").strip() or DEFAULT_API_BASE)
        except ValueError as exc:
            name = "BRAINTRUST_API_KEY" if "API key" in str(exc) else "BRAINTRUST_API_BASE"
            raise ConfigError(ENV_SOURCE, name, str(exc)) from None
    elif not keys_only:
        raise ConfigError(ENV_SOURCE, "BRAINTRUST_API_KEY", "the braintrust callback needs BRAINTRUST_API_KEY")
    opts = callback_options(settings, "braintrust")
    defaults = batching(env, settings, options)
    success = "braintrust" in settings.success_callbacks and not keys_only
    return BraintrustSink(default, env=env, success=success, failure=False, on_event=on_event,
                          redact_key_info=settings.redact_user_api_key_info,
                          redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                          default_tags=settings.langfuse_default_tags, **defaults)
