"""Langfuse ingestion events from completion records (sans-IO): LiteLLM's mapping, Langfuse's schema.

Every event built here is validated against Langfuse's published OpenAPI schema (the fixture in
``data/``) and checked for body fields the schema does not name.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import msgspec
import pytest

from relaygate.config.errors import ConfigError
from relaygate.observe.detail import Attempt, Detail, LoggingTarget
from relaygate.observe.langfuse_payload import (
    REDACTED,
    BuildOptions,
    Credentials,
    build_events,
    chunk,
    destinations,
    encode_events,
    env_credentials,
    ingestion_body,
    parse_answer,
    target_credentials,
)
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.observe.langfuse_server import unknown_fields, validate_event, validate_request

START = 1_764_566_400.25  # 2025-12-01T05:20:00.250Z
CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
             "max_tokens": 50, "stream": False, "stop": ["\n"], "response_format": {"type": "json_object"},
             "tools": [{"type": "function", "function": {"name": "f"}}], "metadata": {"x": 1}, "seed": None}
CHAT_ANSWER = {"id": "chatcmpl-1", "object": "chat.completion",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hello"}}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}


def rec(**kw: Any) -> CompletionRecord:
    fields: dict[str, Any] = dict(
        call_id="call-1", route="chat", stream=False, model="gpt-4o", model_group="gpt-4o", deployment_id="dep-1",
        provider="openai", upstream_model="gpt-4o-2024-08-06", key_hash="ab" * 32, key_alias="team-key",
        team_id="team-1", user_id="user-1", status=200, outcome=Outcome.OK, prompt_tokens=12, completion_tokens=3,
        cache_read_tokens=0, cache_write_tokens=0, latency=0.5, ttft=None, overhead=0.002, cost=0.000123,
        cache_hit=False, retries=0, fallbacks=0, start_time=START)
    fields.update(kw)
    return CompletionRecord(**fields)


def detail(**kw: Any) -> Detail:
    fields: dict[str, Any] = dict(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7",
                                  input=CHAT_BODY, output=CHAT_ANSWER, metadata={}, tags=[])
    fields.update(kw)
    return Detail(**fields)


def with_detail(d: Detail | None, **kw: Any) -> CompletionRecord:
    return rec(extra={"observe": d} if d is not None else None, **kw)


def events(r: CompletionRecord, opts: BuildOptions | None = None) -> dict[str, dict[str, Any]]:
    """The record's events by type, each validated against the schema (through its JSON encoding). What the
    sink sends (``encode_events``: the compiled writer when it takes the record) must be these bytes."""
    counter = itertools.count()
    d = r.extra.get("observe") if isinstance(r.extra, dict) else None
    d = d if isinstance(d, Detail) else None
    built = build_events(r, d, opts or BuildOptions(), now=START + 1, new_id=lambda: f"ev-{next(counter)}")
    encoded = [msgspec.json.encode(e) for e in built]
    again = itertools.count()
    assert encode_events(r, d, opts or BuildOptions(), now=START + 1, new_id=lambda: f"ev-{next(again)}") == encoded
    wire = msgspec.json.decode(ingestion_body(encoded))
    assert validate_request(wire) == []
    for e in wire["batch"]:
        assert validate_event(e) == [], e
        assert unknown_fields(e) == set(), e
    assert len({e["id"] for e in wire["batch"]}) == len(wire["batch"])
    return {e["type"]: e for e in wire["batch"]}


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the mapping --------------------------------------------------------------------------------------

def test_ok_unary_chat_trace_and_generation() -> None:
    ev = events(with_detail(detail()))
    assert set(ev) == {"trace-create", "generation-create"}
    trace, gen = ev["trace-create"]["body"], ev["generation-create"]["body"]
    assert trace["id"] == gen["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace["name"] == "litellm-acompletion"
    assert "sessionId" not in trace and "userId" not in trace
    assert gen["id"] == "call-1"
    assert gen["name"] == "litellm:team-key"  # LiteLLM names a key's generations after its alias
    assert gen["model"] == "gpt-4o-2024-08-06"
    assert gen["input"] == {"messages": CHAT_BODY["messages"], "tools": CHAT_BODY["tools"]}
    assert gen["output"] == {"role": "assistant", "content": "hello"}
    assert trace["input"] == gen["input"] and trace["output"] == gen["output"]
    assert gen["modelParameters"] == {"temperature": "0.2", "max_tokens": 50, "stream": False, "stop": ["\n"],
                                      "response_format": '{"type":"json_object"}'}
    assert gen["usageDetails"] == {"input": 12, "output": 3, "total": 15, "cache_read_input_tokens": 0,
                                   "cache_creation_input_tokens": 0}
    assert gen["costDetails"] == {"total": 0.000123}
    assert gen["level"] == "DEFAULT" and "statusMessage" not in gen
    assert ts(gen["startTime"]) == pytest.approx(START) and ts(gen["endTime"]) == pytest.approx(START + 0.5)
    assert gen["startTime"].endswith("Z") and "completionStartTime" not in gen
    meta = gen["metadata"]
    assert meta["user_api_key_hash"] == "ab" * 32 and meta["user_api_key_alias"] == "team-key"
    assert meta["user_api_key_team_id"] == "team-1" and meta["user_api_key_user_id"] == "user-1"
    assert meta["litellm_call_id"] == "call-1" and meta["litellm_response_cost"] == 0.000123
    assert meta["cache_hit"] is False and meta["model_group"] == "gpt-4o" and meta["model_id"] == "dep-1"
    assert meta["requester_metadata"] == {}
    assert ev["trace-create"]["timestamp"] == ev["generation-create"]["timestamp"]


def test_stream_sends_completion_start_time_for_ttft() -> None:
    ev = events(with_detail(detail(), stream=True, ttft=0.125, latency=1.5))
    gen = ev["generation-create"]["body"]
    assert ts(gen["completionStartTime"]) - ts(gen["startTime"]) == pytest.approx(0.125, abs=1e-6)
    assert ts(gen["endTime"]) - ts(gen["startTime"]) == pytest.approx(1.5, abs=1e-6)


def test_error_is_level_error_with_status_message_as_output() -> None:
    d = detail(output=None, error_message="Rate limit reached for gpt-4o",
               attempts=[Attempt("dep-1", "gpt-4o", "openai", "gpt-4o", "https://api.example", START, START + 0.2,
                                 429, "rate_limit_error", "slow down", "1111111111111111"),
                         Attempt("dep-2", "gpt-4o", "azure", "gpt-4o", "", START + 0.2, START + 0.4, 429,
                                 "rate_limit_error")])
    ev = events(with_detail(d, status=429, outcome=Outcome.ERROR, error_type="rate_limit_error", prompt_tokens=0,
                            completion_tokens=0, cost=0.0, retries=1))
    gen = ev["generation-create"]["body"]
    assert gen["level"] == "ERROR"
    assert gen["statusMessage"] == gen["output"] == "Rate limit reached for gpt-4o"
    assert gen["metadata"]["error_type"] == "rate_limit_error" and gen["metadata"]["status_code"] == 429
    assert [a["model_id"] for a in gen["metadata"]["attempts"]] == ["dep-1", "dep-2"]
    assert gen["metadata"]["attempted_retries"] == 1
    assert gen["costDetails"] == {"total": 0.0}


def test_broken_stream_keeps_partial_output_and_client_gone_is_a_warning() -> None:
    partial = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hal"}}]}
    gen = events(with_detail(detail(output=partial), stream=True, ttft=0.1, status=599,
                             outcome=Outcome.STREAM_BROKEN, error_type="api_error"))["generation-create"]["body"]
    assert gen["level"] == "ERROR" and gen["output"] == {"role": "assistant", "content": "hal"}
    assert gen["statusMessage"].startswith("stream broken")
    gone = events(with_detail(detail(output=None), outcome=Outcome.CLIENT_GONE, status=499))
    assert gone["generation-create"]["body"]["level"] == "WARNING"


def test_cache_hit_and_cached_tokens() -> None:
    opts = BuildOptions(default_tags=("cache_hit",))
    ev = events(with_detail(detail(), cache_hit=True, cost=0.0, prompt_tokens=100, cache_read_tokens=80,
                            cache_write_tokens=5), opts)
    gen = ev["generation-create"]["body"]
    assert gen["metadata"]["cache_hit"] is True
    assert gen["usageDetails"] == {"input": 20, "output": 3, "total": 103, "cache_read_input_tokens": 80,
                                   "cache_creation_input_tokens": 5}
    assert ev["trace-create"]["body"]["tags"] == ["cache_hit:True"]


def test_redacted_bodies_are_litellms_marker() -> None:
    ev = events(with_detail(detail(input=None, output=None, redacted=True)))
    for kind in ("trace-create", "generation-create"):
        assert ev[kind]["body"]["input"] == ev[kind]["body"]["output"] == REDACTED
    assert "modelParameters" not in ev["generation-create"]["body"]


def test_mask_input_and_output_from_metadata() -> None:
    gen = events(with_detail(detail(metadata={"mask_input": True, "mask_output": "true"})))["generation-create"]
    assert gen["body"]["input"] == gen["body"]["output"] == REDACTED


def test_record_without_detail_exports_what_it_has() -> None:
    r = rec(extra={"metadata": {"session_id": "s-9", "generation_name": "g"}, "tags": ["a", "b"]})
    ev = events(r)
    trace, gen = ev["trace-create"]["body"], ev["generation-create"]["body"]
    assert trace["id"] == gen["traceId"] == "call-1"
    assert trace["sessionId"] == "s-9" and trace["tags"] == ["a", "b"] and gen["name"] == "g"
    assert "input" not in gen and "output" not in gen
    assert events(rec())["trace-create"]["body"]["id"] == "call-1"


def test_litellm_metadata_mapping() -> None:
    meta = {"trace_id": "my-trace", "generation_name": "summarise", "generation_id": "gen-7",
            "session_id": "sess-1", "trace_user_id": "alice", "tags": ["prod"], "trace_name": "pipeline",
            "trace_metadata": {"team": "search"}, "trace_release": "v9", "trace_version": "3", "version": "2",
            "trace_public": True, "parent_observation_id": "span-0", "debug_langfuse": True, "extra_field": "x",
            "prompt": {"name": "summary-prompt", "version": 4, "type": "text", "prompt": "Summarise {{x}}"}}
    ev = events(with_detail(detail(metadata=meta, tags=["prod", "key-tag"]), end_user_id="end-user"))
    trace, gen = ev["trace-create"]["body"], ev["generation-create"]["body"]
    assert trace["id"] == gen["traceId"] == "my-trace"
    assert trace["name"] == "pipeline" and trace["userId"] == "alice" and trace["sessionId"] == "sess-1"
    assert trace["release"] == "v9" and trace["version"] == "3" and trace["public"] is True
    assert trace["tags"] == ["prod", "key-tag"]
    assert trace["metadata"]["team"] == "search"
    assert trace["metadata"]["metadata_passed_to_litellm"]["extra_field"] == "x"
    assert gen["id"] == "gen-7" and gen["name"] == "summarise" and gen["version"] == "2"
    assert gen["parentObservationId"] == "span-0"
    assert gen["promptName"] == "summary-prompt" and gen["promptVersion"] == 4
    assert gen["metadata"]["requester_metadata"] == meta


def test_user_id_falls_back_to_end_user_and_version_to_trace() -> None:
    ev = events(with_detail(detail(metadata={"version": "5"}), end_user_id="cust-1"))
    assert ev["trace-create"]["body"]["userId"] == "cust-1"
    assert ev["trace-create"]["body"]["version"] == "5"


def test_existing_trace_id_adds_a_generation_only() -> None:
    ev = events(with_detail(detail(metadata={"existing_trace_id": "old-trace", "trace_id": "ignored",
                                             "trace_name": "not-overwritten"})))
    assert set(ev) == {"generation-create"}
    assert ev["generation-create"]["body"]["traceId"] == "old-trace"


def test_langfuse_headers_override_metadata() -> None:
    d = detail(metadata={"session_id": "from-body"},
               request_headers={"langfuse_session_id": "from-header", "langfuse_trace_name": "hdr"})
    trace = events(with_detail(d))["trace-create"]["body"]
    assert trace["sessionId"] == "from-header" and trace["name"] == "hdr"


def test_default_tags_from_metadata_and_key_fields() -> None:
    opts = BuildOptions(default_tags=("user_api_key_alias", "user_api_key_team_id", "semantic-similarity",
                                      "proxy_base_url", "missing"),
                        proxy_base_url="https://gw.example")
    trace = events(with_detail(detail(metadata={"semantic-similarity": 0.9}, tags=["t1"])), opts)
    assert trace["trace-create"]["body"]["tags"] == [
        "t1", "user_api_key_alias:team-key", "user_api_key_team_id:team-1", "semantic-similarity:0.9",
        "proxy_base_url:https://gw.example"]


def test_redact_user_api_key_info() -> None:
    ev = events(with_detail(detail(team_alias="search")), BuildOptions(redact_key_info=True))
    gen = ev["generation-create"]["body"]
    assert not [k for k in gen["metadata"] if k.startswith("user_api_key")]
    assert gen["name"] == "litellm-acompletion"


def test_environment_and_release_options() -> None:
    ev = events(with_detail(detail()), BuildOptions(environment="staging", release="r1"))
    assert ev["trace-create"]["body"]["environment"] == ev["generation-create"]["body"]["environment"] == "staging"
    assert ev["trace-create"]["body"]["release"] == "r1"


def test_fields_without_a_value_are_left_out_never_null() -> None:
    """Bodies hold only the fields that have a value, whether the request steers its events or not (the
    builder sets each optional field only when it has one, instead of filtering nulls afterwards)."""
    bare = with_detail(detail(attempts=[]), model_group="", deployment_id="", provider="", upstream_model="", model="",
                       key_alias=None, team_id=None, user_id=None, end_user_id=None)
    steered = with_detail(detail(metadata={"trace_name": "t", "generation_name": "", "session_id": None,
                                           "trace_release": "", "existing_trace_id": None, "version": "v2"}),
                          outcome=Outcome.ERROR, status=500, error_type="")
    for r in (bare, steered):
        for e in events(r).values():
            body = e["body"]
            assert None not in body.values(), body
            if "metadata" in body:
                assert None not in body["metadata"].values(), body["metadata"]
    ev = events(bare)
    gen, trace = ev["generation-create"]["body"], ev["trace-create"]["body"]
    assert gen["name"] == "litellm-acompletion" and "model" not in gen and "userId" not in trace
    assert not {"model_group", "model_id", "custom_llm_provider", "error_type"} & set(gen["metadata"])
    ev = events(steered)
    gen, trace = ev["generation-create"]["body"], ev["trace-create"]["body"]
    assert trace["name"] == "t" and trace["version"] == "v2" and gen["version"] == "v2"
    assert gen["name"] == "litellm:team-key"  # an empty generation_name names nothing
    assert "release" not in trace and "sessionId" not in trace and "error_type" not in gen["metadata"]


@pytest.mark.parametrize(("route", "body", "answer", "expected_in", "expected_out"), [
    ("completions", {"model": "m", "prompt": "say", "max_tokens": 5},
     {"choices": [{"index": 0, "text": " hi"}]}, {"prompt": "say"}, " hi"),
    ("embeddings", {"model": "m", "input": ["a", "b"]}, {"data": [{"embedding": [0.1]}]}, {"input": ["a", "b"]}, None),
    ("messages", {"model": "m", "system": "be brief", "messages": [{"role": "user", "content": "x"}],
                  "max_tokens": 9},
     {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "y"}]},
     {"system": "be brief", "messages": [{"role": "user", "content": "x"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "y"}]}),
    ("responses", {"model": "m", "input": "q", "instructions": "i", "reasoning": {"effort": "low"}},
     {"output": [{"type": "message", "content": []}]}, {"input": "q", "instructions": "i"},
     [{"type": "message", "content": []}]),
    ("images", {"model": "m", "prompt": "cat", "n": 1}, {"data": [{"url": "u"}]}, {"prompt": "cat"}, [{"url": "u"}]),
    ("audio_speech", {"model": "m", "input": "read", "voice": "alloy"}, {}, {"input": "read"}, "speech-output"),
])
def test_other_routes(route: str, body: dict[str, Any], answer: dict[str, Any], expected_in: Any,
                      expected_out: Any) -> None:
    gen = events(with_detail(detail(input=body, output=answer), route=route))["generation-create"]["body"]
    assert gen["input"] == expected_in
    assert gen.get("output") == expected_out


def test_nan_cost_and_negative_latency_still_validate() -> None:
    gen = events(with_detail(detail(), cost=float("nan"), latency=-1.0))["generation-create"]["body"]
    assert gen["costDetails"] == {"total": 0.0} and gen["startTime"] == gen["endTime"]


# -- routing and credentials -------------------------------------------------------------------------

def test_destinations_by_outcome_and_callbacks() -> None:
    ok, err = rec(), rec(outcome=Outcome.ERROR, status=500)
    assert destinations(ok, None, success=True, failure=False) == (True, [])
    assert destinations(err, None, success=True, failure=False) == (False, [])
    assert destinations(err, None, success=False, failure=True) == (True, [])
    gone = rec(outcome=Outcome.CLIENT_GONE)
    assert destinations(gone, None, success=False, failure=True) == (True, [])


def test_per_key_targets_replace_the_default_project() -> None:
    both = LoggingTarget("langfuse", "success_and_failure", {"langfuse_public_key": "pk-2"})
    only_fail = LoggingTarget("langfuse", "failure", {"langfuse_public_key": "pk-3"})
    other = LoggingTarget("otel")
    d = detail(logging=[both, only_fail, other])
    assert destinations(rec(), d, success=False, failure=False) == (False, [both])
    assert destinations(rec(outcome=Outcome.ERROR), d, success=True, failure=True) == (False, [both, only_fail])
    assert destinations(rec(), detail(logging=[other]), success=True, failure=True) == (True, [])


def test_env_credentials_and_missing_keys() -> None:
    c = env_credentials({"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk", "LANGFUSE_HOST": "lf.local:3000/"})
    assert c == Credentials("pk", "sk", "http://lf.local:3000")
    assert c.url == "http://lf.local:3000/api/public/ingestion"
    assert c.authorization == "Basic cGs6c2s="
    assert "s3cret" not in repr(Credentials("pk", "s3cret"))
    assert env_credentials({"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}).host == \
        "https://cloud.langfuse.com"
    with pytest.raises(ConfigError, match="LANGFUSE_SECRET_KEY") as info:
        env_credentials({"LANGFUSE_PUBLIC_KEY": "pk"})
    assert info.value.field == "LANGFUSE_SECRET_KEY"
    with pytest.raises(ConfigError) as info:
        env_credentials({"LANGFUSE_PUBLIC_KEY": " ", "LANGFUSE_SECRET_KEY": ""})
    assert info.value.field == "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"


def test_target_credentials_fall_back_to_the_environment() -> None:
    env = {"LANGFUSE_PUBLIC_KEY": "pk-env", "LANGFUSE_SECRET_KEY": "sk-env", "LANGFUSE_HOST": "https://lf.env"}
    t = LoggingTarget("langfuse", callback_vars={"langfuse_public_key": "pk-k", "langfuse_secret_key": "sk-k",
                                                 "langfuse_host": "https://lf.key"})
    assert target_credentials(t, env) == Credentials("pk-k", "sk-k", "https://lf.key")
    legacy = LoggingTarget("langfuse", callback_vars={"langfuse_public_key": "pk-k", "langfuse_secret": "sk-l"})
    assert target_credentials(legacy, env) == Credentials("pk-k", "sk-l", "https://lf.env")
    assert target_credentials(LoggingTarget("langfuse"), {}) is None
    # an entry naming its own host never gets the environment's keys: they would go to that host
    elsewhere = LoggingTarget("langfuse", callback_vars={"langfuse_host": "https://attacker.example"})
    assert target_credentials(elsewhere, env) is None
    half = LoggingTarget("langfuse", callback_vars={"langfuse_public_key": "pk-k", "langfuse_host": "https://x.example"})
    assert target_credentials(half, env) is None


# -- requests and answers ----------------------------------------------------------------------------

def test_chunk_by_count_and_size() -> None:
    evs = [b"x" * 10] * 5
    assert [len(c) for c in chunk(evs, 2, 10_000)] == [2, 2, 1]
    assert [len(c) for c in chunk(evs, 100, 25)] == [2, 2, 1]
    assert [len(c) for c in chunk([b"y" * 100, b"z"], 100, 25)] == [1, 1]
    assert chunk([], 10, 10) == []


def test_parse_answer() -> None:
    body = b'{"successes":[{"id":"a","status":201}],"errors":[{"id":"b","status":400,"message":"Invalid"}]}'
    assert parse_answer(body, 2) == (1, [("b", 400, "Invalid")])
    assert parse_answer(b"not json", 3) == (3, [])
    assert parse_answer(b'{"successes":[],"errors":[]}', 4) == (4, [])


def test_the_schema_check_is_not_vacuous() -> None:
    good = events(with_detail(detail()))["generation-create"]
    assert validate_event(good) == []
    for change in ({"usage": {"input": 1, "output": 2, "total": 3}},  # matches both IngestionUsage branches
                   {"modelParameters": {"temperature": 0.2}},  # a float is no MapValue
                   {"level": "INFO"}, {"startTime": "yesterday"}, {"usageDetails": {"input": 1.5}}):
        assert validate_event({**good, "body": {**good["body"], **change}}) != [], change
    assert validate_event({**good, "type": "generation-made"}) != []
    assert validate_event({k: v for k, v in good.items() if k != "timestamp"}) != []
    assert unknown_fields({**good, "body": {**good["body"], "sessionID": "x"}}) == {"sessionID"}
