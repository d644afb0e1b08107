"""LiteLLM's ``datadog_llm_observability`` callback: one Datadog LLM Observability span per request, in batches.

What it owns: the LLM Observability span of a completion record and the intake's configuration; batching,
retries, bounds, drop counting and shutdown are :class:`~relaygate.observe.generic_api.HttpExporter`'s.

Configuration, as LiteLLM 1.110 reads it from the environment (``datadog_llm_obs.py`` and ``datadog_handler.py``):
``DD_API_KEY`` and ``DD_SITE`` (both required: spans go to ``https://api.<DD_SITE>/api/intake/llm-obs/v1/trace/
spans`` with the key as ``DD-API-KEY``); or ``LITELLM_DD_AGENT_HOST`` (a Datadog agent at
``http://<host>:<LITELLM_DD_LLM_OBS_PORT or 8126>`` and the same path, the key then optional and sent only when
set); ``DD_BASE_URL`` replaces scheme and host in either case (``<DD_BASE_URL>/api/intake/llm-obs/v1/trace/
spans``: tests, proxies). ``DD_SERVICE`` (default ``litellm-server``) is the payload's ``ml_app``;
``DD_ENV``, ``DD_SERVICE``, ``DD_VERSION``, ``HOSTNAME``, ``POD_NAME`` make the tags every span carries
(:func:`relaygate.observe.datadog.base_tags`, shared with the ``datadog`` sink). ``DEFAULT_BATCH_SIZE`` (512)
and ``DEFAULT_FLUSH_INTERVAL_SECONDS`` (5) are LiteLLM's batch logger knobs. LiteLLM does not read
``DD_LLMOBS_ML_APP`` (ddtrace's variable), so neither does this sink: spans stay in the ``ml_app`` LiteLLM
puts them in. The body is JSON, not compressed, as LiteLLM sends it::

    {"data": {"type": "span", "attributes": {"ml_app": ..., "tags": [base tags], "spans": [span, ...]}}}

Each record becomes LiteLLM's span (``create_llm_obs_payload``), built from the record's StandardLoggingPayload
(:mod:`relaygate.observe.standard`): ``parent_id`` (the client's ``metadata.parent_id``, else ``"undefined"``:
a root span), ``trace_id`` (the payload's, which falls back to the request's W3C trace id), ``span_id`` (the
client's ``metadata.span_id``, else the request's server span id where LiteLLM draws a UUID), ``name`` (the
client's ``metadata.name``, else ``litellm_llm_call``), ``meta`` (``kind``: ``llm``, or with a parent the
call type's kind: ``embedding``, ``task`` ...; ``input.messages`` / ``output.messages`` in LLM Observability's
message schema, tool calls and results of the OpenAI and Anthropic shapes in ``tool_calls`` /
``tool_results``; ``tool_definitions`` from the request's ``tools``; ``metadata``: model, provider, ids,
cache hit, ``is_streamed_request``, ``latency_metrics``, ``spend_metrics``, the payload's metadata spread in,
and ``_dd.cost_tags`` naming the cost dimensions the span's tags carry; ``error`` for a failure, else null),
``start_ns`` and ``duration`` (nanoseconds), ``metrics`` (input, output, total tokens, ``total_cost``,
``time_to_first_token`` in seconds; cache read / write and non-cached input tokens when the prompt cache was
used; reasoning tokens when the answer's usage says; ``tool_output_tokens`` when the request carries tool
results), ``status`` (``ok`` / ``error``), ``tags`` (the base tags, ``request_tag:<tag>``, ``team:``,
``user:``, ``key_alias:``, ``model_group:``, values normalised as LiteLLM's ``normalize_datadog_tag_value``
does) and ``apm_id``, the decimal of the request's trace id (LiteLLM sends ddtrace's current trace id there
when it runs under ``ddtrace-run``; relaygate's request trace is the one its ``otel`` spans and the upstream
``traceparent`` carry).

Message logging off for this callback (``litellm_settings.datadog_llm_observability_params:
{turn_off_message_logging: true}``, ``callback_settings.datadog_llm_observability.message_logging: false`` or
``turn_off_message_logging: true``): as LiteLLM's logger, which redacts by itself, each message keeps its role
(one of LiteLLM's known roles, else ``""``) and the names and ids of its tool calls and results, and its content,
arguments and results become ``redacted-by-litellm``; tool definitions and the metadata entries that quote
prompts (``requester_metadata`` ...) are left out. A request redacted before it reached the sink
(``litellm_settings.turn_off_message_logging``, a client's redaction header, a key's setting: the Detail holds
no bodies) is sent the same way, with LiteLLM's one redacted user message and redacted answer for messages.
``redact_user_api_key_info`` blanks the key's fields in the metadata, and the ``user`` / ``key_alias`` tags go.

Where relaygate differs from LiteLLM, and why: ``DD_BASE_URL`` without ``DD_SITE`` is enough (LiteLLM also
demands ``DD_SITE`` it then does not use), as for the ``datadog`` sink; a ``DD_SITE`` that is not a host name,
a port that is not a number or a key with control characters is a ``ConfigError`` (LiteLLM builds a URL that
cannot work); any ``2xx`` is success (LiteLLM only takes ``202``, and keeps a refused batch to send again at
every flush, with no retry limit: here retries are bounded and a ``4xx`` drops the batch); a batch above 5 MB is
split; a client's ``parent_id`` / ``span_id`` / ``name``
must be text or an integer (another type would have the intake refuse the batch, other requests' spans with
it); ``tool_output_tokens`` is relaygate's token estimate (LiteLLM runs the model's tokenizer); content parts
that are not objects are skipped where LiteLLM's conversion raises and loses the span. Missing credentials are
a ``ConfigError`` at start, as LiteLLM's logger raises when it is built. Not done: LiteLLM's ``DATADOG_MOCK``,
Anthropic server tool calls in ``provider_specific_fields``, guardrail and auto-router fields (relaygate records
neither). LiteLLM's agent path is kept as it is, though a stock agent serves LLM Observability only through its
EVP proxy (``/evp_proxy/v2/...``), which this callback does not speak.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import register_secrets
from relaygate.core.tokens import estimate_tokens
from relaygate.observe.datadog import base_tags, normalize_tag
from relaygate.observe.detail import Detail
from relaygate.observe.generic_api import (
    ENV_SOURCE,
    HttpExporter,
    batching,
    callback_options,
    event_flags,
    url_secrets,
)
from relaygate.observe.standard import REDACTED, detail_of, standard_payload
from relaygate.sinks.queue import OnEvent
from relaygate.sinks.record import CompletionRecord

__all__ = ["INTAKE_PATH", "NAME", "DatadogLlmObsSink", "input_messages", "intake_url", "make_datadog_llm_obs",
           "normalize_tag", "span_of"]

NAME = "datadog_llm_observability"
INTAKE_PATH = "/api/intake/llm-obs/v1/trace/spans"
DEFAULT_AGENT_PORT = "8126"
DEFAULT_SPAN_NAME = "litellm_llm_call"
MAX_BODY = 5_000_000
"""Bytes a batch POST holds at most (a larger batch is split in halves; the intake's limit is 5 MB)."""
_MAX_PARSED_ARGUMENTS = 256 * 1024
"""Tool-call arguments longer than this are sent as the string they are, unparsed (LiteLLM's bound)."""
_MAX_CLIENT_ID = 256
_SAFE_ROLES = frozenset({"agent", "assistant", "developer", "function", "model", "system", "tool", "user"})
_PROMPT_CARRIERS = frozenset({"routing_decision", "requester_metadata", "prompt_management_metadata",
                              "mcp_tool_call_metadata", "vector_store_request_metadata"})
_OUTPUT_CALL_TYPES = frozenset({"completion", "acompletion", "text_completion", "atext_completion",
                                "generate_content", "agenerate_content", "generate_content_stream",
                                "agenerate_content_stream", "anthropic_messages"})
"""Call types whose answer LiteLLM logs as output messages (``choices[0].message``)."""
_CHILD_KINDS = {"embedding": "embedding", "aembedding": "embedding", "call_mcp_tool": "tool",
                **{c: "task" for c in ("image_generation", "aimage_generation", "image_edit", "aimage_edit",
                                       "moderation", "amoderation", "transcription", "atranscription", "speech",
                                       "aspeech", "rerank", "arerank", "create_batch", "acreate_batch",
                                       "create_file", "acreate_file")}}
"""A child span's kind by call type (LiteLLM's ``_get_datadog_span_kind``; ``llm`` for the rest). A root span is
always ``llm``: the other kinds cannot be roots."""
_EMPTY: Mapping[str, Any] = {}
_PLAIN_KEYS = frozenset({"role", "content", "name"})

_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode = msgspec.json.decode
# -- messages in LLM Observability's schema -----------------------------------------------------------------


def _ident(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _search_results_text(results: Any) -> str:
    if not isinstance(results, list):
        return ""
    text = ""
    for result in results:
        if not isinstance(result, dict):
            continue
        for key in ("source", "title"):
            if isinstance(v := result.get(key), str):
                text += v
        for block in result.get("content") or ():
            if isinstance(block, dict) and isinstance(t := block.get("text"), str):
                text += t
        if result.get("citations") is not None:
            text += _encode(result["citations"]).decode()
    return text


def _text_of(message: Mapping[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined (LiteLLM's ``convert_content_list_to_str``)."""
    content = message.get("content")
    text = ""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(t for c in content if isinstance(c, dict) and isinstance(t := c.get("text"), str))
    if "search_results" in message:
        text += _search_results_text(message["search_results"])
    return text


def _arguments(raw: Any) -> Any:
    """Tool-call arguments as the object LLM Observability types them as, else the string they are."""
    if not isinstance(raw, str):
        return raw if isinstance(raw, dict) else str(raw)
    if len(raw) > _MAX_PARSED_ARGUMENTS:
        return raw
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        return raw
    return value if isinstance(value, dict) else raw


def _tool_calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenAI's ``tool_calls`` and Anthropic's ``tool_use`` blocks as LLM Observability's ToolCalls."""
    out: list[dict[str, Any]] = []
    raw = message.get("tool_calls")
    if isinstance(raw, list):
        for call in raw:
            if isinstance(call, dict):
                fn = call.get("function")
                fn = fn if isinstance(fn, dict) else _EMPTY
                out.append({"name": _ident(fn.get("name", "")), "arguments": _arguments(fn.get("arguments", "")),
                            "tool_id": _ident(call.get("id", "")), "type": _ident(call.get("type", "function"))})
    for block in _blocks(message):
        if block.get("type") == "tool_use":
            out.append({"name": _ident(block.get("name", "")), "arguments": _arguments(block.get("input") or {}),
                        "tool_id": _ident(block.get("id", "")), "type": "tool_use"})
    return out


def _tool_result(tool_id: str, result: Any, names: Mapping[str, str]) -> dict[str, Any]:
    return {"name": names.get(tool_id, ""), "result": result if isinstance(result, str) else _encode(result).decode(),
            "tool_id": tool_id, "type": "function"}


def _tool_results(message: Mapping[str, Any], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """A ``role: tool`` message (OpenAI) or the ``tool_result`` blocks of a message (Anthropic)."""
    if message.get("role") == "tool":
        return [_tool_result(str(message.get("tool_call_id", "")), message.get("content") or "", names)]
    return [_tool_result(str(b.get("tool_use_id", "")), b.get("content") or "", names) for b in _blocks(message)
            if b.get("type") == "tool_result"]


def _names_by_id(messages: list[Any]) -> dict[str, str]:
    """Tool call ids to tool names, to name the results that answer them."""
    out: dict[str, str] = {}
    anthropic: list[tuple[Any, Any]] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    fn = call.get("function")
                    tool_id = call.get("id")
                    if tool_id:
                        out[str(tool_id)] = str((fn if isinstance(fn, dict) else _EMPTY).get("name", ""))
        anthropic.extend((b.get("id"), b.get("name", "")) for b in _blocks(m) if b.get("type") == "tool_use")
    out.update((str(i), str(n)) for i, n in anthropic if i)
    return out


def _loose(value: Any) -> dict[str, Any]:
    """Something that is not a message object, as LiteLLM logs it: ``{"input": <its text>}``."""
    if isinstance(value, str):
        return {"input": value}
    if isinstance(value, dict | list):
        return {"input": _encode(value).decode()}
    return {"input": str(value)}


def _message(message: Any, names: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(message, dict):
        return _loose(message)
    text = _text_of(message)
    original = message.get("content")
    out: dict[str, Any] = {"role": message.get("role", ""),
                           "content": text if text or not isinstance(original, list) or not original else original}
    if (reasoning := message.get("reasoning_content")) is not None:
        out["reasoning_content"] = reasoning
    if calls := _tool_calls(message):
        out["tool_calls"] = calls
    if results := _tool_results(message, names):
        out["tool_results"] = results
    return out


def input_messages(value: Any) -> list[dict[str, Any]]:
    """The payload's ``messages`` (a chat's messages, a prompt, an embedding's input ...) as LLM Observability's
    messages, LiteLLM's ``_to_dd_messages``: text content as a string, a content list without text kept as it is,
    ``reasoning_content``, tool calls and results moved to the fields LLM Observability reads."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [_loose(value)]
    plain = [{"role": m.get("role", ""), "content": c} for m in value
             if type(m) is dict and m.keys() <= _PLAIN_KEYS and type(c := m.get("content")) is str
             and m.get("role") != "tool"]
    if len(plain) == len(value):  # text only, no tools: nothing to convert (the common chat)
        return plain
    names = _names_by_id(value)
    return [_message(m, names) for m in value]


def _output_messages(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The answer's first choice's message, for the call types LiteLLM logs one for (else none)."""
    response = payload.get("response")
    if payload.get("call_type") not in _OUTPUT_CALL_TYPES or not isinstance(response, dict):
        return []
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and "message" in choices[0]:
        return input_messages([choices[0]["message"]])
    return []


def _redact(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role", "")
    out: dict[str, Any] = {"role": role if isinstance(role, str) and role in _SAFE_ROLES else "", "content": REDACTED}
    if calls := message.get("tool_calls"):
        out["tool_calls"] = [{"name": _ident(c.get("name")), "arguments": REDACTED, "tool_id": _ident(c.get("tool_id")),
                              "type": _ident(c.get("type"))} for c in calls]
    if results := message.get("tool_results"):
        out["tool_results"] = [{"name": _ident(r.get("name")), "result": REDACTED, "tool_id": _ident(r.get("tool_id")),
                                "type": _ident(r.get("type"))} for r in results]
    return out


def _tool_definitions(params: Any) -> list[dict[str, Any]]:
    """The request's declared ``tools`` (or ``functions``), OpenAI's wrapped shape or the bare one."""
    if not isinstance(params, dict):
        return []
    tools = params.get("tools") or params.get("functions")
    if not isinstance(tools, list):
        return []
    out: list[dict[str, Any]] = []
    for entry in tools:
        if not isinstance(entry, dict):
            continue
        fn = entry.get("function")
        declared = fn if isinstance(fn, dict) else entry
        name = _ident(declared.get("name", ""))
        if not name:
            continue
        schema = declared.get("parameters") or declared.get("input_schema")
        definition: dict[str, Any] = {"name": name, "description": _ident(declared.get("description", ""))}
        if isinstance(schema, dict):
            definition["schema"] = schema
        out.append(definition)
    return out


# -- the span --------------------------------------------------------------------------------------------


def _client_id(value: Any) -> str | None:
    """A client's id or name as the intake takes it: text (at most 256 characters) or an integer, else None."""
    if isinstance(value, str) and value:
        return value[:_MAX_CLIENT_ID]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _reasoning_tokens(output: Any) -> float:
    usage = output.get("usage") if isinstance(output, dict) else None
    if not isinstance(usage, dict):
        return 0.0
    for field in ("completion_tokens_details", "output_tokens_details"):
        details = usage.get(field)
        n = details.get("reasoning_tokens") if isinstance(details, dict) else None
        if isinstance(n, int | float) and not isinstance(n, bool):
            return float(n)
    return 0.0


def _spend_metrics(payload: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"response_cost": payload["response_cost"]}
    for field in ("user_api_key_max_budget", "user_api_key_spend"):
        value = meta.get(field)
        if value is not None:
            try:
                out[field] = float(value)
            except (TypeError, ValueError):
                pass
    reset = meta.get("user_api_key_budget_reset_at")
    if isinstance(reset, str):
        try:
            at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is not None:
            out["user_api_key_budget_reset_at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
    return out


def _apm_id(detail: Detail | None) -> str | None:
    if detail is None or not detail.trace_id:
        return None
    try:
        return str(int(detail.trace_id, 16))
    except ValueError:
        return None


def span_of(record: CompletionRecord, detail: Detail | None, payload: dict[str, Any], base: Sequence[str], *,
            redact: bool) -> dict[str, Any]:
    """The LLM Observability span of one record (module essay). ``payload``: the record's StandardLoggingPayload
    with its messages unredacted (the span redacts them itself when ``redact``); ``base``: the tags every span
    carries."""
    client = detail.metadata if detail is not None and isinstance(detail.metadata, dict) else _EMPTY
    meta = payload["metadata"]
    messages_in = input_messages(payload["messages"])
    messages_out = _output_messages(payload)
    tool_texts = [r.get("result", "") for m in messages_in for r in m.get("tool_results", ())]
    if redact:
        span_meta = {k: v for k, v in meta.items() if k not in _PROMPT_CARRIERS}
        tools: list[dict[str, Any]] = []
        messages_in = [_redact(m) for m in messages_in]
        messages_out = [_redact(m) for m in messages_out]
    else:
        span_meta = meta
        tools = _tool_definitions(payload["model_parameters"])

    error: dict[str, Any] | None = None
    info = payload["error_information"]
    if payload["status"] == "failure" and info:
        error = {"message": info.get("error_message") or payload.get("error_str") or "Unknown error",
                 "type": info.get("error_class"), "stack": info.get("traceback")}

    tags = list(base)
    tags.extend(f"request_tag:{normalize_tag(t)}" for t in payload["request_tags"])
    declared: list[str] = []
    team = meta["user_api_key_team_alias"] or meta["team_alias"] or meta["user_api_key_team_id"] or meta["team_id"]
    if team:
        value = normalize_tag(team)
        tags.append(f"team:{value}")
        if value:
            declared.append("team")
    for dim, raw in (("user", meta["user_api_key_user_id"]), ("key_alias", meta["user_api_key_alias"]),
                     ("model_group", payload["model_group"])):
        if raw is not None and (value := normalize_tag(raw)):
            tags.append(f"{dim}:{value}")
            declared.append(dim)

    start, first = payload["startTime"], payload["completionStartTime"]
    ttft = first - start
    hidden = payload["hidden_params"]
    latency: dict[str, Any] = {}
    if ttft > 0:
        latency["time_to_first_token_ms"] = ttft * 1000
    if hidden.get("litellm_overhead_time_ms") is not None:
        latency["litellm_overhead_time_ms"] = hidden["litellm_overhead_time_ms"]
    params = payload["model_parameters"]
    metadata: dict[str, Any] = {
        "model_name": payload["model"], "model_provider": payload["custom_llm_provider"], "id": payload["id"],
        "trace_id": payload["trace_id"], "cache_hit": payload["cache_hit"], "cache_key": payload["cache_key"],
        "saved_cache_cost": payload["saved_cache_cost"], "guardrail_information": payload["guardrail_information"],
        "is_streamed_request": payload["stream"] is True or (isinstance(params, dict) and params.get("stream") is True),
        "latency_metrics": latency, "spend_metrics": _spend_metrics(payload, meta), **span_meta}
    if declared:
        dd = span_meta.get("_dd")
        metadata["_dd"] = {**(dd if isinstance(dd, dict) else _EMPTY), "cost_tags": declared}

    prompt = float(payload["prompt_tokens"])
    metrics: dict[str, float] = {"input_tokens": prompt, "output_tokens": float(payload["completion_tokens"]),
                                 "total_tokens": float(payload["total_tokens"]),
                                 "total_cost": float(payload["response_cost"] or 0.0), "time_to_first_token": ttft}
    read, write = float(record.cache_read_tokens), float(record.cache_write_tokens)
    if read or write:
        if read:
            metrics["cache_read_input_tokens"] = read
        if write:
            metrics["cache_write_input_tokens"] = write
        metrics["non_cached_input_tokens"] = max(prompt - read - write, 0.0)
    if reasoning := _reasoning_tokens(detail.output if detail is not None else None):
        metrics["reasoning_output_tokens"] = reasoning
    if tool_texts:
        metrics["tool_output_tokens"] = float(sum(estimate_tokens(t) for t in tool_texts if isinstance(t, str)))

    parent = _client_id(client.get("parent_id"))
    kind = "llm" if parent is None else _CHILD_KINDS.get(payload["call_type"], "llm")
    span_meta_out: dict[str, Any] = {"kind": kind, "input": {"messages": messages_in},
                                     "output": {"messages": messages_out}, "metadata": metadata, "error": error}
    if tools:
        span_meta_out["tool_definitions"] = tools
    span_id = _client_id(client.get("span_id")) or (detail.span_id if detail is not None and detail.span_id
                                                    else str(uuid.uuid4()))
    span: dict[str, Any] = {
        "parent_id": parent or "undefined", "trace_id": payload["trace_id"], "span_id": span_id,
        "name": _client_id(client.get("name")) or DEFAULT_SPAN_NAME, "meta": span_meta_out,
        "start_ns": int(start * 1e9), "duration": int((payload["endTime"] - start) * 1e9), "metrics": metrics,
        "status": "error" if error else "ok", "tags": tags}
    if (apm := _apm_id(detail)) is not None:
        span["apm_id"] = apm
    return span


class DatadogLlmObsSink(HttpExporter):
    """LiteLLM's ``datadog_llm_observability`` callback (Datadog LLM Observability's span intake)."""

    name = NAME
    max_body = MAX_BODY

    def __init__(self, url: str, headers: Mapping[str, str], *, ml_app: str = "litellm-server",
                 tags: Sequence[str] = (), redact_key_info: bool = False, redact_messages: bool = False,
                 **options: Any) -> None:
        super().__init__(url, headers, **options)
        self.ml_app = ml_app
        self.tags = list(tags)
        self.redact_key_info = redact_key_info
        self.redact_messages = redact_messages

    def entry(self, record: CompletionRecord) -> Any:
        detail = detail_of(record)
        payload = standard_payload(record, detail, redact_key_info=self.redact_key_info)
        return span_of(record, detail, payload, self.tags,
                       redact=self.redact_messages or (detail is not None and detail.redacted))

    def encode(self, entries: Sequence[Any]) -> bytes:
        return _encode({"data": {"type": "span", "attributes": {"ml_app": self.ml_app, "tags": self.tags,
                                                                 "spans": entries}}})


def _control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _bool_param(params: Mapping[str, Any], field: str) -> bool:
    value = params.get(field)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError("config", f"litellm_settings.datadog_llm_observability_params.{field}", "expected true or false")


def intake_url(env: Mapping[str, str]) -> str:
    """Where the spans go, from ``env`` as LiteLLM reads it (module essay); ``ConfigError`` when it cannot work."""
    api_key = (env.get("DD_API_KEY") or "").strip()
    agent = (env.get("LITELLM_DD_AGENT_HOST") or "").strip()
    base_url = (env.get("DD_BASE_URL") or "").strip().rstrip("/")
    site = (env.get("DD_SITE") or "").strip()
    if agent:
        port = (env.get("LITELLM_DD_LLM_OBS_PORT") or DEFAULT_AGENT_PORT).strip()
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(ENV_SOURCE, "LITELLM_DD_LLM_OBS_PORT", f"expected a port number, got {port!r}")
        url, field = f"http://{agent}:{port}{INTAKE_PATH}", "LITELLM_DD_AGENT_HOST"
    else:
        if not api_key:
            raise ConfigError(ENV_SOURCE, "DD_API_KEY", "the datadog_llm_observability callback needs DD_API_KEY "
                              "(or a Datadog agent in LITELLM_DD_AGENT_HOST)")
        if not site and not base_url:
            raise ConfigError(ENV_SOURCE, "DD_SITE", "the datadog_llm_observability callback needs DD_SITE "
                              "(e.g. us5.datadoghq.com)")
        url, field = f"https://api.{site}{INTAKE_PATH}", "DD_SITE"
        if site and not base_url and not re.fullmatch(r"[A-Za-z0-9.-]+", site):
            raise ConfigError(ENV_SOURCE, "DD_SITE", f"expected a Datadog site such as us5.datadoghq.com, got {site!r}")
    if base_url:
        url, field = base_url + INTAKE_PATH, "DD_BASE_URL"
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        raise ConfigError(ENV_SOURCE, field, "not a usable intake URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or _control(url):
        raise ConfigError(ENV_SOURCE, field, "not a usable intake URL")  # the value unsaid: it may hold credentials
    return url


def make_datadog_llm_obs(settings: ObserveSettings, env: Mapping[str, str], on_event: OnEvent | None,
                         **options: Any) -> DatadogLlmObsSink:
    """The ``datadog_llm_observability`` sink for ``settings``, configured from ``env`` as LiteLLM reads it
    (module essay). ``options`` override :class:`HttpExporter`'s defaults. Raises ``ConfigError`` when the
    intake cannot be reached for want of a key or site, or with a value that cannot work."""
    url = intake_url(env)
    api_key = (env.get("DD_API_KEY") or "").strip()
    headers = {"Content-Type": "application/json"}
    if api_key:
        if _control(api_key):
            raise ConfigError(ENV_SOURCE, "DD_API_KEY", "control characters cannot go in a header")
        register_secrets([api_key])
        headers["DD-API-KEY"] = api_key
    register_secrets(url_secrets(url))
    opts = callback_options(settings, NAME)
    params = settings.datadog_llm_observability_params
    redact = (settings.turn_off_message_logging or _bool_param(params, "turn_off_message_logging")
              or opts.get("message_logging") is False or opts.get("turn_off_message_logging") is True)
    success, failure = event_flags(settings, NAME, None, "litellm_settings.callbacks")
    defaults = batching(env, settings, options)
    return DatadogLlmObsSink(url, headers, ml_app=(env.get("DD_SERVICE") or "").strip() or "litellm-server",
                             tags=base_tags(env).split(","), success=success, failure=failure, on_event=on_event,
                             redact_key_info=settings.redact_user_api_key_info, redact_messages=redact, **defaults)
