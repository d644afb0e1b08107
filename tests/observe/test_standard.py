"""standard_payload: LiteLLM's StandardLoggingPayload field names and value conventions, record by record."""

from __future__ import annotations

import math

import msgspec
import pytest

from relaygate.observe import standard
from relaygate.observe.standard import REDACTED, detail_of, error_class, standard_payload
from relaygate.sinks.record import Outcome
from tests.observe.collector_server import detail, record

# The keys of LiteLLM's TypedDicts (litellm/types/utils.py: StandardLoggingPayload, StandardLoggingMetadata
# = StandardLoggingUserAPIKeyMetadata + its own keys, StandardLoggingHiddenParams,
# StandardLoggingPayloadErrorInformation, StandardLoggingModelInformation, StandardLoggingPayloadStatusFields),
# written out here independently of the module's own tables; ``call_id`` is relaygate's earlier name for
# LiteLLM's ``litellm_call_id``, kept beside it.
LITELLM_PAYLOAD = {  # LiteLLM 1.110's required keys, and the optional ones its builder always writes
    "cost_finalized", "autorouter_savings", "autorouter_savings_estimate", "autorouter_baseline_observation",
    "id", "trace_id", "session_id", "litellm_call_id", "call_id", "call_type", "stream", "response_cost", "cost_breakdown",
    "response_cost_failure_debug_info", "zero_cost_diagnostic", "status", "status_fields", "custom_llm_provider", "total_tokens",
    "prompt_tokens", "completion_tokens", "startTime", "endTime", "completionStartTime", "response_time",
    "model_map_information", "model", "model_id", "model_group", "api_base", "metadata", "cache_hit", "cache_key",
    "saved_cache_cost", "request_tags", "end_user", "requester_ip_address", "user_agent", "messages", "response",
    "error_str", "error_information", "model_parameters", "hidden_params", "guardrail_information",
    "standard_built_in_tools_params",
}
LITELLM_USER_API_KEY_METADATA = {
    "user_api_key_hash", "user_api_key_alias", "user_api_key_spend", "user_api_key_max_budget",
    "user_api_key_budget_reset_at", "user_api_key_user_spend", "user_api_key_user_max_budget",
    "user_api_key_team_spend", "user_api_key_team_max_budget", "user_api_key_org_id", "user_api_key_org_alias", "user_api_key_team_id",
    "user_api_key_project_id", "user_api_key_project_alias", "user_api_key_user_id", "user_api_key_user_email",
    "user_api_key_team_alias", "user_api_key_end_user_id", "user_api_key_request_route",
    "user_api_key_auth_metadata",
}
LITELLM_METADATA = LITELLM_USER_API_KEY_METADATA | {
    "spend_logs_metadata", "requester_ip_address", "user_agent", "requester_metadata", "requester_custom_headers",
    "prompt_management_metadata", "mcp_tool_call_metadata", "vector_store_request_metadata", "applied_guardrails",
    "usage_object", "cold_storage_object_key", "team_alias", "team_id", "routing_decision", "kubernetes_pod_routing",
    "used_client_oauth_token",
}
LITELLM_HIDDEN_PARAMS = {"model_id", "cache_key", "api_base", "response_cost", "litellm_overhead_time_ms",
                         "additional_headers", "batch_models", "batch_successful_requests", "batch_failed_requests",
                         "litellm_model_name", "usage_object"}
LITELLM_ERROR_INFORMATION = {"error_code", "error_class", "llm_provider", "traceback", "error_message"}
LITELLM_MODEL_INFORMATION = {"model_map_key", "model_map_value"}
LITELLM_STATUS_FIELDS = {"llm_api_status", "guardrail_status"}


def shape_ok(p: dict) -> None:
    assert set(p) == LITELLM_PAYLOAD
    assert set(p["metadata"]) == LITELLM_METADATA
    assert set(p["hidden_params"]) == LITELLM_HIDDEN_PARAMS
    assert set(p["error_information"]) == LITELLM_ERROR_INFORMATION
    assert set(p["model_map_information"]) == LITELLM_MODEL_INFORMATION
    assert set(p["status_fields"]) == LITELLM_STATUS_FIELDS
    assert isinstance(p["startTime"], float) and isinstance(p["endTime"], float)
    assert isinstance(p["completionStartTime"], float) and isinstance(p["response_time"], float)
    msgspec.json.encode(p)  # plain JSON values only


def test_module_tables_match_litellm() -> None:
    assert set(standard.PAYLOAD_FIELDS) == LITELLM_PAYLOAD
    assert len(standard.PAYLOAD_FIELDS) == len(LITELLM_PAYLOAD)
    assert set(standard.METADATA_FIELDS) == LITELLM_METADATA
    assert set(standard.HIDDEN_PARAMS_FIELDS) == LITELLM_HIDDEN_PARAMS
    assert set(standard.ERROR_INFORMATION_FIELDS) == LITELLM_ERROR_INFORMATION


def test_ok_unary_with_detail() -> None:
    d = detail()
    r = record(extra={"observe": d, "spend_logs_metadata": {"app": "x"}})
    assert detail_of(r) is d
    p = standard_payload(r, d)
    shape_ok(p)
    assert p["id"] == "chatcmpl-123"  # the provider's response id, as LiteLLM logs it
    assert p["call_id"] == "call-1"
    assert p["trace_id"] == d.trace_id
    assert p["call_type"] == "acompletion"
    assert p["stream"] is None
    assert p["status"] == "success"
    assert p["status_fields"] == {"llm_api_status": "success", "guardrail_status": "not_run"}
    assert p["custom_llm_provider"] == "openai"
    assert (p["prompt_tokens"], p["completion_tokens"], p["total_tokens"]) == (10, 5, 15)
    assert p["startTime"] == 1_700_000_000.0
    assert p["endTime"] == 1_700_000_001.5
    assert p["completionStartTime"] == p["endTime"]  # not streamed: LiteLLM's default is the end time
    assert p["response_time"] == pytest.approx(1.5)
    assert p["response_cost"] == 0.00025
    assert p["model"] == "gpt-4o" and p["model_group"] == "gpt-4o-alias" and p["model_id"] == "dep-1"
    assert p["model_map_information"] == {"model_map_key": "gpt-4o", "model_map_value": None}
    assert p["api_base"] == "https://api.openai.com/v1"  # trailing slash stripped, as LiteLLM does
    assert p["cache_hit"] is False and p["saved_cache_cost"] == 0.0
    assert p["request_tags"] == ["t1", "t2"]
    assert p["end_user"] == ""
    assert p["messages"] == [{"role": "user", "content": "hi"}]
    assert p["response"] == d.output
    assert p["error_str"] is None
    assert p["error_information"] == {"error_code": "", "error_class": "", "llm_provider": "", "traceback": "",
                                      "error_message": ""}
    assert p["model_parameters"] == {"temperature": 0.2}
    meta = p["metadata"]
    assert meta["user_api_key_hash"] == "ab" * 32
    assert meta["user_api_key_alias"] == "my-key"
    assert meta["user_api_key_team_id"] == "team-1" and meta["team_id"] == "team-1"
    assert meta["user_api_key_user_id"] == "user-1"
    assert meta["user_api_key_team_alias"] == "team-alias" and meta["team_alias"] == "team-alias"
    assert meta["spend_logs_metadata"] == {"app": "x"}
    assert meta["requester_metadata"] == {"generation_name": "g1", "tags": ["t-meta"]}
    assert meta["requester_custom_headers"] is None  # LiteLLM 1.110's: the steering headers go to their exporters
    assert meta["usage_object"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    hidden = p["hidden_params"]
    assert hidden["model_id"] == "dep-1" and hidden["api_base"] == "https://api.openai.com/v1"
    assert hidden["litellm_model_name"] == "gpt-4o" and hidden["response_cost"] == 0.00025
    assert hidden["litellm_overhead_time_ms"] == pytest.approx(2.0)


def test_stream_times() -> None:
    r = record(stream=True, ttft=0.25, latency=2.0)
    p = standard_payload(r, detail())
    shape_ok(p)
    assert p["stream"] is True
    assert p["completionStartTime"] == pytest.approx(1_700_000_000.25)
    assert p["endTime"] == pytest.approx(1_700_000_002.0)
    assert p["response_time"] == pytest.approx(0.25)  # a stream's response time is its time to first token


def test_stream_broken_is_a_failure() -> None:
    r = record(stream=True, ttft=0.1, outcome=Outcome.STREAM_BROKEN, status=599, error_type="api_error")
    p = standard_payload(r, detail(output=None, error_message="upstream went away"))
    shape_ok(p)
    assert p["status"] == "failure" and p["stream"] is None
    assert p["error_information"]["error_code"] == "599"
    assert p["error_information"]["error_class"] == "APIConnectionError"
    assert p["error_str"] == "upstream went away"


def test_error_record() -> None:
    r = record(outcome=Outcome.ERROR, status=429, error_type="rate_limit_error", completion_tokens=0,
               prompt_tokens=0, cost=0.0)
    d = detail(output=None, error_message="litellm.RateLimitError: slow down")
    p = standard_payload(r, d)
    shape_ok(p)
    assert p["status"] == "failure"
    assert p["status_fields"]["llm_api_status"] == "failure"
    assert p["id"] == "call-1"
    assert p["response"] is None
    assert p["error_str"] == "litellm.RateLimitError: slow down"
    assert p["error_information"] == {"error_code": "429", "error_class": "RateLimitError", "llm_provider": "openai",
                                      "traceback": "", "error_message": "litellm.RateLimitError: slow down"}


def test_error_without_detail_names_its_type() -> None:
    p = standard_payload(record(outcome=Outcome.ERROR, status=401, error_type="auth_error"), None)
    shape_ok(p)
    assert p["error_str"] == "auth_error"
    assert p["error_information"]["error_class"] == "AuthenticationError"


@pytest.mark.parametrize(("status", "error_type", "cls"), [
    (400, "invalid_request_error", "BadRequestError"),
    (400, "context_length_exceeded", "ContextWindowExceededError"),
    (404, "", "NotFoundError"),
    (418, "", "BadRequestError"),
    (500, "", "InternalServerError"),
    (503, "", "ServiceUnavailableError"),
    (504, "", "Timeout"),
    (0, "weird", "weird"),
])
def test_error_class(status: int, error_type: str, cls: str) -> None:
    assert error_class(status, error_type) == cls


def test_cache_hit_id_is_unique() -> None:
    r = record(cache_hit=True, cost=0.0)
    p = standard_payload(r, detail())
    shape_ok(p)
    assert p["cache_hit"] is True
    assert p["id"].startswith("chatcmpl-123_cache_hit")
    assert p["id"] != "chatcmpl-123"
    assert p["response_cost"] == 0.0


def test_redacted_messages_use_litellm_sentinel() -> None:
    d = detail(input=None, output=None, redacted=True)
    p = standard_payload(record(extra={"observe": d}), d)
    shape_ok(p)
    assert p["messages"] == [{"role": "user", "content": REDACTED}]
    assert p["response"]["choices"][0]["message"]["content"] == REDACTED
    assert p["model_parameters"] == {}
    assert '"hi"' not in msgspec.json.encode(p).decode()


def test_redacted_by_exporter_setting() -> None:
    d = detail()
    p = standard_payload(record(route="embeddings"), d, redact_messages=True)
    shape_ok(p)
    assert p["call_type"] == "aembedding"
    assert p["messages"] == [{"role": "user", "content": REDACTED}]
    assert p["response"] == {"text": REDACTED}
    text = msgspec.json.encode(p).decode()
    assert '"hi"' not in text and "hello" not in text


def test_sentinel_is_a_fresh_list() -> None:
    a = standard_payload(record(), detail(redacted=True, input=None, output=None))
    a["messages"][0]["content"] = "changed"
    b = standard_payload(record(), detail(redacted=True, input=None, output=None))
    assert b["messages"][0]["content"] == REDACTED


def test_redact_key_info_blanks_user_api_key_fields() -> None:
    r = record(org_id="org-1", end_user_id="cust-1")
    p = standard_payload(r, detail(), redact_key_info=True)
    shape_ok(p)
    meta = p["metadata"]
    for k in LITELLM_USER_API_KEY_METADATA:
        assert meta[k] is None, k
    assert "ab" * 32 not in msgspec.json.encode(p).decode()
    assert p["end_user"] == "cust-1"  # the customer is not key information
    unredacted = standard_payload(r, detail())["metadata"]
    assert unredacted["user_api_key_org_id"] == "org-1" and unredacted["user_api_key_end_user_id"] == "cust-1"


def test_team_alias_and_user_email_from_the_record() -> None:
    """The stored key's team alias and user email (copied into the record from the key's rows) fill LiteLLM's
    ``user_api_key_team_alias`` / ``user_api_key_user_email``, with or without a Detail, unless key information
    is redacted."""
    r = record(team_alias="Blue Team", user_email="ada@example.com")
    for d in (None, detail(team_alias=None)):
        meta = standard_payload(r, d)["metadata"]
        assert (meta["user_api_key_team_alias"], meta["user_api_key_user_email"]) == ("Blue Team", "ada@example.com")
    meta = standard_payload(r, None, redact_key_info=True)["metadata"]
    assert meta["user_api_key_team_alias"] is None and meta["user_api_key_user_email"] is None


def test_without_detail_uses_extra() -> None:
    r = record(extra={"tags": "a, b", "metadata": {"session_id": "sess-9", "spend_logs_metadata": {"k": 1}}})
    p = standard_payload(r, None)
    shape_ok(p)
    assert p["id"] == "call-1"
    assert p["trace_id"] == "sess-9"
    assert p["request_tags"] == ["a", "b"]
    assert p["metadata"]["spend_logs_metadata"] == {"k": 1}
    assert p["metadata"]["requester_metadata"] == {"session_id": "sess-9", "spend_logs_metadata": {"k": 1}}
    assert p["messages"] is None and p["response"] is None
    assert p["api_base"] == "" and p["hidden_params"]["api_base"] is None


def test_bare_record() -> None:
    r = record(extra=None, upstream_model="", model_group="", deployment_id="", provider="", key_hash=None,
               cost=math.nan)
    p = standard_payload(r)
    shape_ok(p)
    assert p["trace_id"] == "call-1"
    assert p["model"] == "gpt-4o-alias" and p["model_group"] == "" and p["model_id"] == ""
    assert p["custom_llm_provider"] is None
    assert p["response_cost"] == 0.0
    assert p["request_tags"] == [] and p["metadata"]["requester_metadata"] is None


def test_trace_id_order() -> None:
    d = detail(input={"messages": [], "litellm_session_id": "sess-body", "litellm_trace_id": "trace-body"},
               metadata={"trace_id": "trace-meta", "session_id": "sess-meta"})
    assert standard_payload(record(), d)["trace_id"] == "sess-body"
    d = detail(input={"messages": [], "litellm_trace_id": "trace-body"}, metadata={"trace_id": "trace-meta"})
    assert standard_payload(record(), d)["trace_id"] == "trace-body"
    d = detail(metadata={"trace_id": "trace-meta", "session_id": "sess-meta"})
    assert standard_payload(record(), d)["trace_id"] == "sess-meta"
    d = detail(metadata={"trace_id": "trace-meta"})
    assert standard_payload(record(), d)["trace_id"] == "trace-meta"


def test_tags_fall_back_to_metadata() -> None:
    p = standard_payload(record(), detail(tags=[], metadata={"tags": ["from-meta"]}))
    assert p["request_tags"] == ["from-meta"]


def test_cache_tokens_in_usage() -> None:
    p = standard_payload(record(cache_read_tokens=4, cache_write_tokens=3), None)
    usage = p["metadata"]["usage_object"]
    assert usage["cache_read_input_tokens"] == 4
    assert usage["prompt_tokens_details"] == {"cached_tokens": 4}
    assert usage["cache_creation_input_tokens"] == 3
    assert p["hidden_params"]["usage_object"] == usage


@pytest.mark.parametrize(("route", "call_type"), [("completions", "atext_completion"), ("messages",
                         "anthropic_messages"), ("responses", "aresponses"), ("unknown_kind", "unknown_kind")])
def test_call_types(route: str, call_type: str) -> None:
    assert standard_payload(record(route=route))["call_type"] == call_type


def test_messages_of_other_apis() -> None:
    p = standard_payload(record(route="embeddings"), detail(input={"model": "e", "input": ["a", "b"],
                                                                   "dimensions": 8}, output={"data": []}))
    assert p["messages"] == ["a", "b"]
    assert p["model_parameters"] == {"dimensions": 8}
    p = standard_payload(record(route="completions"), detail(input={"model": "c", "prompt": "say"}, output=None))
    assert p["messages"] == "say"
    assert p["id"] == "call-1"
