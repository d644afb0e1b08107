"""LiteLLM's ``helicone`` callback: each answered request logged to Helicone's async logging API, one per request.

What it owns: the log entry of a completion record (Helicone's ``AsyncLogModel``), the log path it goes to and the
configuration; the bounded buffer, retries with backoff, drop counting and shutdown are
:class:`~relaygate.observe.generic_api.HttpExporter`'s. Helicone's log endpoint takes one request per call, so the
sink is ``single``: every entry is a POST of its own, at most :attr:`HeliconeSink.concurrency` (8) in flight.

Configuration, as LiteLLM's ``HeliconeLogger`` reads it from the environment: ``HELICONE_API_KEY`` (sent as
``Authorization: Bearer <key>`` and, as LiteLLM does, as ``Helicone-Auth`` in the entry's ``meta``; registered
as a secret, never logged) and ``HELICONE_API_BASE`` (default ``https://api.hconeai.com``, trailing ``/``
removed). ``DEFAULT_BATCH_SIZE`` (512) and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` say how many
entries a flush takes and how long a partial one waits (1 s by default here, where the other exporters wait 5:
LiteLLM posts each entry as its request ends). ``callback_settings.helicone.message_logging:
false``, ``turn_off_message_logging`` or a redacted request send LiteLLM's stand-ins instead of messages and
answers: ``[{"role": "user", "content": "redacted-by-litellm"}]``, and the answer's contents, reasoning and tool
arguments replaced by ``redacted-by-litellm`` (an embedding's ``data`` emptied), as LiteLLM's ``perform_redaction``
does. Nothing of the caller's key is sent, so ``redact_user_api_key_info`` has nothing to blank.

Each answered request's entry (LiteLLM's ``log_success``)::

    {"providerRequest": {"url": <provider URL>, "json": {"model": <model>, "messages": <input>}, "meta": {...}},
     "providerResponse": {"json": <answer>, "status": 200, "headers": {"openai-version": "2020-10-01"}},
     "timing": {"startTime": {"seconds", "milliseconds"}, "endTime": {"seconds", "milliseconds"}}}

``model`` is the deployment's model without its provider prefix (LiteLLM's ``self.model``); the input is the chat
``messages``, a completion's ``prompt`` or an embedding's ``input``; the timing is the request's start and end
(whole seconds and the milliseconds past them). Where it goes, by LiteLLM's rules on the model and provider:

- a model naming ``claude`` (not on Vertex AI): ``<base>/anthropic/v1/log``, provider URL
  ``https://api.anthropic.com/v1/messages``, the answer rewritten as an Anthropic message (``id``, ``type:
  message``, ``role``, ``model``, ``content`` blocks, ``stop_reason``, ``stop_sequence: null``, ``usage``
  ``input_tokens`` / ``output_tokens``);
- provider ``vertex_ai``: ``<base>/custom/v1/log``, ``https://aiplatform.googleapis.com/v1``;
- a model naming ``gemini``: ``<base>/custom/v1/log``, ``https://generativelanguage.googleapis.com/v1beta``;
- anything else: ``<base>/oai/v1/log``, ``https://api.openai.com/v1``, the OpenAI-shaped answer as it is.

Only answered requests are sent (LiteLLM's logger has no failure hook: ``helicone`` in ``failure_callback`` sends
nothing); the chat, text-completion and embedding APIs, whose answers Helicone's mappers read. ``HELICONE_MOCK``
(LiteLLM's test switch) is not read.

Where relaygate differs from LiteLLM, on purpose:

- ``meta`` holds ``Helicone-Auth`` and the client metadata's ``Helicone-*`` entries (``Helicone-Property-*``,
  ``Helicone-User-Id``, ``Helicone-Session-Id`` ..., any case) whose value is text, a number or a boolean, as
  text. LiteLLM copies the whole metadata of the call, which on its proxy is the gateway's own too (the key's
  hash, alias, budget, spend and metadata, the request's headers, the deployment), and lets a client's
  ``Helicone-Auth`` replace the operator's. Helicone's async log model types ``meta`` as ``Record<string,
  string>`` and reads its ``Helicone-*`` entries as the logged request's Helicone headers; the rest would only
  carry the gateway's internals (and other callbacks' settings from the key's metadata) to a third party, and
  objects or control characters are not header values. A client's ``Helicone-Auth`` is ignored. LiteLLM also
  copies proxy request headers named ``helicone_*`` (underscores, which most proxies drop); relaygate does not
  capture them: clients put them in ``metadata``.
- ``HELICONE_API_KEY`` missing is a ``ConfigError`` at start: LiteLLM neither raises nor warns; it starts and
  sends ``Bearer None`` with every entry, and prints Helicone's refusal only in verbose mode.
- The model is sent as it is: LiteLLM replaces any model not naming ``gpt``, ``claude``, ``gemini`` or one of
  seven Cohere ``command`` names by ``gpt-3.5-turbo`` (so an ``o3`` or Llama request shows as GPT-3.5 in Helicone).
- The Anthropic answer keeps its text beside its ``tool_use`` blocks (LiteLLM drops the text when there are tool
  calls), a tool's ``input`` is the decoded JSON of its arguments (Anthropic's shape; LiteLLM sends the JSON
  text), and ``stop_reason`` is Anthropic's (``end_turn``, ``max_tokens``, ``tool_use``, ``refusal``) where
  LiteLLM sends OpenAI's ``stop`` / ``length``. A Claude model's text completion goes to ``/oai/v1/log`` as
  the OpenAI answer it is (LiteLLM's mapping reads ``choices[0].message``, fails on it and sends nothing); a text
  completion's answer is sent as its JSON (LiteLLM turns only chat and embedding answer objects into JSON: a
  ``TextCompletionResponse`` reaching its logger fails the post's encoding).
- Message logging off sends the ``messages`` stand-in above where LiteLLM sends ``""`` (its redacted
  ``input``: a request without messages), and an answer whose body was not kept (a redacted request's) as
  LiteLLM's stand-in answer with the record's usage.
- Entries are sent off the request path, retried on a lost connection, ``408``, ``429`` or ``5xx``, and counted
  when dropped (``helicone_dropped``, ``helicone_send_failed``). LiteLLM posts each one at once from a worker
  thread, once, and only prints a failure in verbose mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relaygate.config.observe import ObserveSettings
from relaygate.observe.exporter_env import api_key, base_url
from relaygate.observe.generic_api import (
    HttpExporter,
    batching,
    callback_options,
    event_flags,
)
from relaygate.observe.standard import REDACTED, detail_of, redacted_answer
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["DEFAULT_API_BASE", "HeliconeSink", "anthropic_message", "entry_of", "make_helicone", "meta_of",
           "route_of"]

DEFAULT_API_BASE = "https://api.hconeai.com"
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
VERTEX_URL = "https://aiplatform.googleapis.com/v1"
GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta"
OAI_PATH, ANTHROPIC_PATH, CUSTOM_PATH = "/oai/v1/log", "/anthropic/v1/log", "/custom/v1/log"
ROUTES = frozenset({"chat", "completions", "embeddings"})
"""The APIs whose answers are sent (OpenAI-shaped answers Helicone's mappers read)."""
_INPUT_KEY = {"chat": "messages", "completions": "prompt", "embeddings": "input"}
_RESPONSE_HEADERS = {"openai-version": "2020-10-01"}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}
_REDACTED_CHOICE: dict[str, dict[str, Any]] = {
    "chat": {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": REDACTED}},
    "completions": {"index": 0, "finish_reason": "stop", "text": REDACTED}}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX = "helicone-"
_AUTH = "helicone-auth"

_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode_args = msgspec.json.Decoder().decode


def route_of(model: str, provider: str, route: str = "chat") -> tuple[str, str, bool]:
    """``(log path, provider URL, anthropic)``: where an entry goes by LiteLLM's rules (module docstring);
    ``anthropic``: the answer is rewritten as an Anthropic message."""
    vertex = provider == "vertex_ai" or model.startswith("vertex_ai/")
    if "claude" in model and not vertex and route == "chat":
        return ANTHROPIC_PATH, ANTHROPIC_URL, True
    if vertex:
        return CUSTOM_PATH, VERTEX_URL, False
    if "gemini" in model:
        return CUSTOM_PATH, GEMINI_URL, False
    return OAI_PATH, OPENAI_URL, False


def meta_of(auth: str, metadata: Any) -> dict[str, str]:
    """``meta``: ``Helicone-Auth`` and the client metadata's ``Helicone-*`` entries that can be headers (text,
    numbers and booleans, as text; no control characters), the client's ``Helicone-Auth`` ignored."""
    meta = {"Helicone-Auth": auth}
    if not isinstance(metadata, dict) or not metadata:
        return meta
    for name, value in metadata.items():
        if not isinstance(name, str) or not name[:9].lower() == _PREFIX or name.lower() == _AUTH:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = value
        elif isinstance(value, int | float):
            text = str(value)
        else:
            continue
        if _HEADER_NAME.fullmatch(name) and not _CONTROL.search(text):
            meta[name] = text
    return meta


def _tool_input(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return _decode_args(arguments)
        except msgspec.DecodeError:
            return arguments
    return arguments


def anthropic_message(answer: Any, model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """An OpenAI chat answer as the Anthropic message Helicone's ``/anthropic/v1/log`` reads (module docstring);
    the token counts are the answer's usage, else the record's."""
    answer = answer if isinstance(answer, dict) else {}
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        custom, fn = call.get("custom"), call.get("function")
        if isinstance(custom, dict):
            name, raw = custom.get("name"), custom.get("input")
        elif isinstance(fn, dict):
            name, raw = fn.get("name"), _tool_input(fn.get("arguments"))
        else:
            continue
        content.append({"type": "tool_use", "id": call.get("id"), "name": name, "input": raw})
    usage = answer.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    reason = choice.get("finish_reason")
    return {"id": answer.get("id"), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": _STOP_REASONS.get(reason, reason) if isinstance(reason, str) else reason,
            "stop_sequence": None,
            "usage": {"input_tokens": usage.get("prompt_tokens", prompt_tokens),
                      "output_tokens": usage.get("completion_tokens", completion_tokens)}}


def _time(t: float) -> dict[str, int]:
    seconds = int(t)
    return {"seconds": seconds, "milliseconds": int((t - seconds) * 1000)}


def entry_of(record: CompletionRecord, *, auth: str, redact_messages: bool = False) -> tuple[str, bool, dict[str, Any]]:
    """``(log path, anthropic, body)`` of one answered request (module docstring); ``auth``: ``Bearer <key>``."""
    r = record
    model = r.upstream_model or r.model
    path, provider_url, anthropic = route_of(model, r.provider, r.route)
    detail = detail_of(r)
    body = detail.input if detail is not None else None
    answer = detail.output if detail is not None else None
    messages: Any = None
    redacted = detail is not None and (detail.redacted or redact_messages)
    if redacted:
        messages = [{"role": "user", "content": REDACTED}]
        if answer is not None:
            answer = redacted_answer(answer)
    elif isinstance(body, dict):
        messages = body.get(_INPUT_KEY.get(r.route, "messages"))
    if not isinstance(answer, dict):
        answer = {"id": r.call_id, "model": model, "usage": {
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens}}
        if redacted and r.route in _REDACTED_CHOICE:  # LiteLLM's stand-in answer
            answer["choices"] = [dict(_REDACTED_CHOICE[r.route])]
    if anthropic:
        answer = anthropic_message(answer, model, r.prompt_tokens, r.completion_tokens)
    start = r.start_time
    entry = {
        "providerRequest": {"url": provider_url, "json": {"model": model, "messages": messages},
                            "meta": meta_of(auth, detail.metadata if detail is not None else None)},
        "providerResponse": {"json": answer, "status": 200, "headers": _RESPONSE_HEADERS},
        "timing": {"startTime": _time(start), "endTime": _time(start + r.latency)},
    }
    return path, anthropic, entry


class HeliconeSink(HttpExporter):
    """LiteLLM's ``helicone`` callback: one POST per answered request to Helicone's log endpoint for its model
    (``/oai``, ``/anthropic`` or ``/custom``), at most :attr:`concurrency` in flight."""

    name = "helicone"
    single = True

    def __init__(self, api_base: str, api_key: str, *, redact_messages: bool = False, concurrency: int = 8,
                 **options: Any) -> None:
        super().__init__(api_base + OAI_PATH, {"Authorization": f"Bearer {api_key}",
                                               "Content-Type": "application/json"}, **options)
        self.api_base = api_base
        self.auth = f"Bearer {api_key}"
        self.redact_messages = redact_messages
        self.concurrency = max(1, concurrency)
        self._urls = {p: api_base + p for p in (OAI_PATH, ANTHROPIC_PATH, CUSTOM_PATH)}

    def wants(self, record: CompletionRecord) -> bool:
        return self.success and record.outcome is Outcome.OK and not record.no_logging and record.route in ROUTES

    def select(self, batch: Sequence[CompletionRecord]) -> list[Any]:
        if not self.success:
            return []
        return [self.entry(r) for r in batch
                if r.outcome is Outcome.OK and not r.no_logging and r.route in ROUTES]

    def entry(self, record: CompletionRecord) -> Any:
        path, _, body = entry_of(record, auth=self.auth, redact_messages=self.redact_messages)
        return self._urls[path], body

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode(entries[0][1])

    def destination(self, entries: Sequence[Any]) -> tuple[str, str]:
        return "POST", entries[0][0]


def make_helicone(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                  **options: Any) -> HeliconeSink:
    """The ``helicone`` sink for ``settings``, configured from ``env`` as LiteLLM reads it (module docstring).
    ``options`` override :class:`HttpExporter`'s defaults (and ``concurrency``). Raises ``ConfigError`` without
    ``HELICONE_API_KEY``, with a key that cannot go in a header, or with a ``HELICONE_API_BASE`` that is not an
    http(s) URL."""
    key = api_key(env, "HELICONE_API_KEY", "helicone")
    base = base_url(env, "HELICONE_API_BASE", DEFAULT_API_BASE)
    opts = callback_options(settings, "helicone")
    success, _ = event_flags(settings, "helicone", None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options, interval=1.0)
    return HeliconeSink(base, key, success=success, failure=False, on_event=on_event,
                        redact_messages=settings.turn_off_message_logging or opts.get("message_logging") is False,
                        **defaults)
