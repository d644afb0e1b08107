"""LiteLLM's ``StandardLoggingPayload``, built from a completion record: the dict most exporters send.

What it owns: the mapping from a :class:`~relaygate.sinks.record.CompletionRecord` (and its optional
:class:`~relaygate.observe.detail.Detail`) to the payload LiteLLM hands every logger as
``kwargs["standard_logging_object"]`` (``litellm/types/utils.py``): the generic webhook posts a list of
them, Datadog sends each one as a log line's ``message``, JSON request logs print them. A consumer written
against LiteLLM's payload must read ours without change, so the field names, nesting and value conventions
are LiteLLM's:

- Every key of ``StandardLoggingPayload`` (:data:`PAYLOAD_FIELDS`), of its ``metadata``
  (:data:`METADATA_FIELDS`), ``hidden_params`` (:data:`HIDDEN_PARAMS_FIELDS`) and ``error_information``
  (:data:`ERROR_INFORMATION_FIELDS`) is present, ``None`` when relaygate has no value for it (LiteLLM
  initialises its TypedDicts the same way). ``startTime``, ``endTime`` and ``completionStartTime`` are
  epoch seconds (floats); ``completionStartTime`` is ``endTime`` unless a stream sent a first frame;
  ``response_time`` is the time to that first frame for a streamed request, else the total.
- ``status`` is ``"success"`` or ``"failure"``; ``stream`` is ``True`` for an answered streamed request and
  ``None`` otherwise (LiteLLM sets it only when it assembled a stream). ``error_information`` holds empty
  strings on success, as LiteLLM's ``get_error_information(None)`` does; on failure ``error_code`` is the
  HTTP status as text and ``error_class`` LiteLLM's exception class for that status.
- ``id`` is the provider's response id when the answer carries one, else the call id; a cache hit's id
  is suffixed ``_cache_hit<end time>`` (LiteLLM does so, so that a cached answer never repeats an id).
  ``trace_id`` follows LiteLLM's order: the request's ``litellm_session_id`` / ``litellm_trace_id``, then
  ``metadata.session_id`` / ``metadata.trace_id``, then the request's own trace id.
- Message logging off (``Detail.redacted``, or ``redact_messages`` for an exporter whose
  ``callback_settings.<name>.message_logging`` is false): ``messages`` is LiteLLM's
  ``[{"role": "user", "content": "redacted-by-litellm"}]`` and an answer's ``response`` is
  ``{"text": "redacted-by-litellm"}`` (a chat answer keeps the choices shape with that content), as
  LiteLLM's ``perform_redaction`` writes them. Without bodies (no Detail) both are ``None``.
- ``redact_key_info`` (``litellm_settings.redact_user_api_key_info``) blanks every ``user_api_key_*`` field
  of the metadata (set to ``None``, keys kept, so the shape never changes).

Sans-IO and cheap: one dict build per record, no copies of the bodies (``messages`` and ``response`` are
the Detail's own decoded objects; exporters encode them and must not mutate them). Values relaygate does
not compute (``cost_breakdown``, ``model_map_value``, ``cache_key``, guardrail fields, ``user_agent``) are
``None``.
"""

from __future__ import annotations

import math
from typing import Any

from relaygate.observe.detail import Detail, detail_of
from relaygate.sinks.record import CompletionRecord, Outcome, error_class, header_tags_of
from relaygate.sinks.spend import CALL_TYPES, tag_list

__all__ = ["CALLBACK_SLOTS", "ERROR_INFORMATION_FIELDS", "HIDDEN_PARAMS_FIELDS", "METADATA_FIELDS", "PAYLOAD_FIELDS",
           "REDACTED", "auth_metadata", "detail_of", "error_class", "redacted_answer", "standard_metadata",
           "standard_payload"]

REDACTED = "redacted-by-litellm"
_NO_BUDGETS = (None,) * 7
"""The key, user and team spend and budget metadata of a request without a stored key (or with them redacted)."""
"""LiteLLM's stand-in for message content when message logging is off."""

PAYLOAD_FIELDS = (
    "cost_finalized", "id", "trace_id", "session_id", "litellm_call_id", "call_id", "call_type", "stream",
    "response_cost", "cost_breakdown", "autorouter_savings", "autorouter_savings_estimate",
    "autorouter_baseline_observation",
    "response_cost_failure_debug_info", "zero_cost_diagnostic", "status", "status_fields", "custom_llm_provider",
    "total_tokens",
    "prompt_tokens", "completion_tokens", "startTime", "endTime", "completionStartTime", "response_time",
    "model_map_information", "model", "model_id", "model_group", "api_base", "metadata", "cache_hit",
    "cache_key", "saved_cache_cost", "request_tags", "end_user", "requester_ip_address", "user_agent",
    "messages", "response", "error_str", "error_information", "model_parameters", "hidden_params",
    "guardrail_information", "standard_built_in_tools_params",
)
"""The keys of LiteLLM's ``StandardLoggingPayload``, in its declaration order."""

METADATA_FIELDS = (
    "user_api_key_hash", "user_api_key_alias", "user_api_key_spend", "user_api_key_max_budget",
    "user_api_key_budget_reset_at", "user_api_key_user_spend", "user_api_key_user_max_budget",
    "user_api_key_team_spend", "user_api_key_team_max_budget", "user_api_key_org_id", "user_api_key_org_alias",
    "user_api_key_team_id",
    "user_api_key_project_id", "user_api_key_project_alias", "user_api_key_user_id", "user_api_key_user_email",
    "user_api_key_team_alias", "user_api_key_end_user_id", "user_api_key_request_route",
    "user_api_key_auth_metadata", "spend_logs_metadata", "requester_ip_address", "user_agent",
    "requester_metadata", "requester_custom_headers", "prompt_management_metadata", "mcp_tool_call_metadata",
    "vector_store_request_metadata", "routing_decision", "kubernetes_pod_routing", "applied_guardrails",
    "usage_object", "cold_storage_object_key", "team_alias", "team_id", "used_client_oauth_token",
)
"""The keys of LiteLLM's ``StandardLoggingMetadata`` (``StandardLoggingUserAPIKeyMetadata`` first)."""

HIDDEN_PARAMS_FIELDS = ("model_id", "cache_key", "api_base", "response_cost", "litellm_overhead_time_ms",
                        "additional_headers", "batch_models", "batch_successful_requests", "batch_failed_requests",
                        "litellm_model_name", "usage_object")
"""The keys of LiteLLM's ``StandardLoggingHiddenParams``."""

ERROR_INFORMATION_FIELDS = ("error_code", "error_class", "llm_provider", "traceback", "error_message")
"""The keys of LiteLLM's ``StandardLoggingPayloadErrorInformation``."""

_NO_ERROR = {"error_code": "", "error_class": "", "llm_provider": "", "traceback": "", "error_message": ""}

_NOT_PARAMS = frozenset({"model", "messages", "input", "prompt", "metadata", "litellm_metadata", "user",
                         "litellm_session_id", "litellm_trace_id", "tags", "system", "instructions",
                         "contents", "file", "image", "mask", "documents", "query", "text"})
"""Request-body keys that are not model parameters (content, routing, logging)."""

_REDACTED_MESSAGES_TEMPLATE = ({"role": "user", "content": REDACTED},)


def _messages(body: Any) -> Any:
    """What LiteLLM logs as ``messages`` for a request body: the chat messages, else the input/prompt."""
    if not isinstance(body, dict):
        return body
    for key in ("messages", "input", "prompt", "contents"):
        if key in body:
            return body[key]
    return body


def _model_parameters(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k not in _NOT_PARAMS}


def _redacted_response(route: str) -> dict[str, Any]:
    if route in ("chat", "completions"):
        return {"choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": REDACTED}}]}
    return {"text": REDACTED}


def _trace_id(detail: Detail | None, metadata: dict[str, Any], call_id: str) -> str:
    body = detail.input if detail is not None else None
    if isinstance(body, dict):
        for key in ("litellm_session_id", "litellm_trace_id"):
            v = body.get(key)
            if v:
                return str(v)
    for key in ("session_id", "trace_id"):
        v = metadata.get(key)
        if v:
            return str(v)
    return detail.trace_id if detail is not None and detail.trace_id else call_id


def _metadata_of(r: CompletionRecord, detail: Detail | None) -> dict[str, Any]:
    if detail is not None and detail.metadata:
        return detail.metadata
    raw_meta = r.extra.get("metadata") if isinstance(r.extra, dict) else None
    return raw_meta if isinstance(raw_meta, dict) else {}


CALLBACK_SLOTS = frozenset({"logging", "callback_settings", "secret_manager_settings"})
"""Key metadata entries that carry callback credentials: never in an exported payload (LiteLLM's
``strip_callback_config``)."""


def auth_metadata(detail: Detail | None) -> dict[str, Any] | None:
    """LiteLLM's ``user_api_key_auth_metadata``: the key's metadata without its callback settings (None when
    there is nothing else)."""
    meta = detail.key_metadata if detail is not None else None
    if not meta:
        return None
    return {k: v for k, v in meta.items() if k not in CALLBACK_SLOTS} or None


def standard_metadata(record: CompletionRecord, detail: Detail | None = None, *,
                      redact_key_info: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``metadata`` and ``hidden_params`` objects of :func:`standard_payload`, alone: what OpenTelemetry's
    ``metadata.*`` and ``hidden_params`` attributes carry, without the rest of the payload (its messages,
    parameters, error and ids) built for nothing on every exported request."""
    r = record
    extra = r.extra if isinstance(r.extra, dict) else None
    metadata = _metadata_of(r, detail)
    spend_meta = extra.get("spend_logs_metadata") if extra is not None else None
    if spend_meta is None:
        spend_meta = metadata.get("spend_logs_metadata")
    cost = r.cost if math.isfinite(r.cost) and r.cost > 0.0 else 0.0
    api_base = ""
    team_alias = r.team_alias
    if detail is not None:
        if detail.attempts:
            api_base = detail.attempts[-1].api_base.rstrip("/")
        team_alias = detail.team_alias or team_alias
    usage: dict[str, Any] = {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                             "total_tokens": r.prompt_tokens + r.completion_tokens}
    if r.cache_read_tokens:
        usage["cache_read_input_tokens"] = r.cache_read_tokens
        usage["prompt_tokens_details"] = {"cached_tokens": r.cache_read_tokens}
    if r.cache_write_tokens:
        usage["cache_creation_input_tokens"] = r.cache_write_tokens

    keys = not redact_key_info
    budgets = detail.budgets if detail is not None and keys else None
    if budgets is None:
        budgets = _NO_BUDGETS
    meta = {
        "user_api_key_hash": r.key_hash if keys else None,
        "user_api_key_alias": r.key_alias if keys else None,
        "user_api_key_spend": budgets[0],
        "user_api_key_max_budget": budgets[1],
        "user_api_key_budget_reset_at": budgets[2],
        "user_api_key_user_spend": budgets[3],
        "user_api_key_user_max_budget": budgets[4],
        "user_api_key_team_spend": budgets[5],
        "user_api_key_team_max_budget": budgets[6],
        "user_api_key_org_id": r.org_id if keys else None,
        "user_api_key_org_alias": r.org_alias if keys else None,
        "user_api_key_team_id": r.team_id if keys else None,
        "user_api_key_project_id": None,
        "user_api_key_project_alias": None,
        "user_api_key_user_id": r.user_id if keys else None,
        "user_api_key_user_email": r.user_email if keys else None,
        "user_api_key_team_alias": team_alias if keys else None,
        "user_api_key_end_user_id": r.end_user_id if keys else None,
        "user_api_key_request_route": r.request_route or None,
        "user_api_key_auth_metadata": auth_metadata(detail) if keys else None,
        "spend_logs_metadata": spend_meta if isinstance(spend_meta, dict) else None,
        "requester_ip_address": r.requester_ip,
        "user_agent": None,
        "requester_metadata": metadata or None,
        "requester_custom_headers": None,  # LiteLLM 1.110's (the steering headers go to their exporters only)
        "prompt_management_metadata": None,
        "mcp_tool_call_metadata": None,
        "vector_store_request_metadata": None,
        "routing_decision": None,  # LiteLLM's auto-router's; relaygate has none
        "kubernetes_pod_routing": None,
        "applied_guardrails": None,
        "usage_object": usage,
        "cold_storage_object_key": None,
        "team_alias": team_alias,
        "team_id": r.team_id,
        "used_client_oauth_token": None,  # LiteLLM's: a client's Anthropic OAuth token forwarded (never here)
    }
    hidden = {
        "model_id": r.deployment_id or None,
        "cache_key": None,
        "api_base": api_base or None,
        "response_cost": cost,
        "litellm_overhead_time_ms": r.overhead * 1000.0,
        "additional_headers": None,
        "batch_models": None,
        "batch_successful_requests": None,
        "batch_failed_requests": None,
        "litellm_model_name": r.upstream_model or None,
        "usage_object": usage,
    }
    return meta, hidden


def standard_payload(record: CompletionRecord, detail: Detail | None = None, *, redact_key_info: bool = False,
                     redact_messages: bool = False) -> dict[str, Any]:
    """LiteLLM's ``StandardLoggingPayload`` for one finished exchange (see the module essay).

    ``detail`` is the record's :class:`Detail` when the pipeline built one (:func:`detail_of`); without it the
    payload is built from the record's fields and ``record.extra``'s ``tags``, ``metadata`` and
    ``spend_logs_metadata`` keys."""
    r = record
    extra = r.extra if isinstance(r.extra, dict) else None
    ok = r.outcome is Outcome.OK
    status = "success" if ok else "failure"
    metadata = _metadata_of(r, detail)
    if detail is not None and detail.tags:
        tags = list(detail.tags)
    else:
        tags = tag_list(extra.get("tags")) if extra is not None else []
        if not tags:
            tags = tag_list(metadata.get("tags"))
    if r.user_agent or r.header_tags:  # LiteLLM's request_tags end with the User-Agent and header tags
        tags = list(dict.fromkeys([*tags, *header_tags_of(r)]))
    meta, hidden = standard_metadata(r, detail, redact_key_info=redact_key_info)

    start = r.start_time
    end = start + r.latency
    first = start + r.ttft if r.ttft is not None else end
    response_time = (first - start) if r.stream else r.latency
    cost = hidden["response_cost"]
    model = r.upstream_model or r.model
    total = r.prompt_tokens + r.completion_tokens
    api_base = hidden["api_base"] or ""

    messages: Any = None
    response: Any = None
    params: dict[str, Any] = {}
    error_message = ""
    if detail is not None:
        error_message = detail.error_message
        params = _model_parameters(detail.input)
        if detail.redacted or redact_messages:
            messages = [dict(m) for m in _REDACTED_MESSAGES_TEMPLATE]
            response = _redacted_response(r.route) if ok else None
        else:
            messages = _messages(detail.input)
            response = detail.output if ok else None

    rid = r.call_id
    if ok and detail is not None and isinstance(detail.output, dict):
        out_id = detail.output.get("id")
        if isinstance(out_id, str) and out_id:
            rid = out_id
    if r.cache_hit:
        rid = f"{rid}_cache_hit{end}"

    if ok:
        error_str = None
        error_information = dict(_NO_ERROR)
    else:
        error_str = error_message or r.error_message or r.error_type or f"HTTP {r.status}"
        error_information = {"error_code": str(r.status),
                             "error_class": r.error_class or error_class(r.status, r.error_type),
                             "llm_provider": r.provider, "traceback": "", "error_message": error_str}

    return {
        "cost_finalized": ok,  # LiteLLM 1.110's: the answered request's cost is final when it is logged
        "id": rid,
        "trace_id": _trace_id(detail, metadata, r.call_id),
        "session_id": "",  # LiteLLM's, empty unless its request_correlation_in_logs is on
        "litellm_call_id": r.call_id,  # LiteLLM's name for the x-litellm-call-id
        "call_id": r.call_id,  # relaygate's earlier name for it, kept for consumers reading it
        "call_type": CALL_TYPES.get(r.route, r.route),
        "stream": True if (r.stream and ok) else None,
        "response_cost": cost,
        "cost_breakdown": None,
        "autorouter_savings": None,  # LiteLLM's auto-router's (relaygate has none)
        "autorouter_savings_estimate": None,
        "autorouter_baseline_observation": None,
        "response_cost_failure_debug_info": None,
        "zero_cost_diagnostic": None if r.zero_cost is None else {  # LiteLLM 1.110's (cost.zero_cost)
            "reason": r.zero_cost[0], "pricing_model": r.zero_cost[1], "missing_pricing_keys": list(r.zero_cost[2])},
        "status": status,
        "status_fields": {"llm_api_status": status, "guardrail_status": "not_run"},
        "custom_llm_provider": r.provider or None,
        "total_tokens": total,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "startTime": start,
        "endTime": end,
        "completionStartTime": first,
        "response_time": response_time,
        "model_map_information": {"model_map_key": model, "model_map_value": None},
        "model": model,
        "model_id": r.deployment_id,
        "model_group": r.model_group,
        "api_base": api_base,
        "metadata": meta,
        "cache_hit": r.cache_hit,
        "cache_key": None,
        "saved_cache_cost": 0.0,
        "request_tags": tags,
        "end_user": r.end_user_id or "",
        "requester_ip_address": r.requester_ip,
        "user_agent": None,
        "messages": messages,
        "response": response,
        "error_str": error_str,
        "error_information": error_information,
        "model_parameters": params,
        "hidden_params": hidden,
        "guardrail_information": None,
        "standard_built_in_tools_params": None,
    }


def _redacted_calls(message: dict[str, Any]) -> None:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        out = []
        for call in calls:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                call = {**call, "function": {**call["function"], "arguments": REDACTED}}
            out.append(call)
        message["tool_calls"] = out
    fn = message.get("function_call")
    if isinstance(fn, dict) and "arguments" in fn:
        message["function_call"] = {**fn, "arguments": REDACTED}


def redacted_answer(answer: Any) -> Any:
    """The answer with its content replaced as LiteLLM's ``perform_redaction`` does (a copy: the Detail's answer
    is shared with the other exporters): choices' content, reasoning and tool arguments ``redacted-by-litellm``,
    thinking blocks, reasoning items and audio ``None``, a text choice's ``text`` redacted and its ``logprobs``
    dropped, an embedding's ``data`` emptied; anything else ``{"text": "redacted-by-litellm"}``."""
    if not isinstance(answer, dict):
        return {"text": REDACTED}
    choices = answer.get("choices")
    if isinstance(choices, list):
        out = []
        for choice in choices:
            if not isinstance(choice, dict):
                out.append(choice)
                continue
            choice = dict(choice)
            choice.pop("token_ids", None)
            choice.pop("provider_specific_fields", None)
            body = choice.get("message")
            if isinstance(body, dict):
                body = dict(body)
                for field in ("content", "reasoning_content"):
                    if body.get(field) is not None:
                        body[field] = REDACTED
                for field in ("thinking_blocks", "reasoning_items", "audio"):
                    if field in body:
                        body[field] = None
                body.pop("provider_specific_fields", None)
                _redacted_calls(body)
                choice["message"] = body
            elif choice.get("text") is not None:
                choice["text"] = REDACTED
                choice.pop("logprobs", None)
            out.append(choice)
        return {**answer, "choices": out}
    if "data" in answer:
        return {**answer, "data": []}
    return {"text": REDACTED}
