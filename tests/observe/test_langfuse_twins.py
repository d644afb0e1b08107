"""The ``langfuse`` sink's compiled event writer (``langfuse_payload.record_events``) against its pure twin.

The pure twin is ``build_events`` with each event encoded by msgspec; ``encode_events`` (what the sink sends)
takes the compiled writer for a record it writes. Every record here must give the same bytes both ways (or make
both refuse it): records of every route and outcome, redacted or not, with odd values in every field (strings
to escape, integers past 64 bits, floats that are not finite, times the ISO writer refuses), and generated ones.
A request that steers its events is left to the pure path (the writer answers None).
"""

from __future__ import annotations

import enum
import itertools
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.observe import langfuse_payload
from relaygate.observe.detail import Attempt, Detail
from relaygate.observe.langfuse_payload import BuildOptions, build_events, encode_events
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.core.compiled_only import check_loaded
from tests.observe.test_langfuse_payload import START, detail, rec, with_detail

NOW = START + 1.5
OPTIONS = [BuildOptions(), BuildOptions(redact_key_info=True, release="v1", environment="prod"),
           BuildOptions(release="", environment="")]
compiled = pytest.mark.skipif(langfuse_payload.record_events is None,
                              reason="RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def _pure(r: CompletionRecord, d: Detail | None, opts: BuildOptions) -> list[bytes] | str:
    counter = itertools.count()
    try:
        return [msgspec.json.encode(e) for e in build_events(r, d, opts, now=NOW,
                                                             new_id=lambda: f"ev-{next(counter)}")]
    except Exception as exc:
        return type(exc).__name__


def _compiled(r: CompletionRecord, d: Detail, opts: BuildOptions) -> list[bytes] | str | None:
    counter = itertools.count()
    assert langfuse_payload.record_events is not None
    try:
        return langfuse_payload.record_events(r, d, opts.redact_key_info, opts.release, opts.environment, NOW,
                                              lambda: f"ev-{next(counter)}")
    except Exception as exc:
        return type(exc).__name__


def _same(r: CompletionRecord, opts: BuildOptions) -> None:
    d = r.extra["observe"]
    got, want = _compiled(r, d, opts), _pure(r, d, opts)
    assert got is not None, "the record does not steer: the compiled writer takes it"
    if isinstance(want, str) or isinstance(got, str):  # both refuse it (the sink drops that record alike)
        assert isinstance(got, str) and isinstance(want, str), (r, got, want)
        return
    assert got == want, r


def _attempt(**kw: Any) -> Attempt:
    fields: dict[str, Any] = dict(deployment_id="dep-1", model_group="gpt-4o", provider="openai",
                                  upstream_model="gpt-4o", api_base="https://api.example/v1", start=START,
                                  end=START + 0.25, status=200, span_id="1111111111111111")
    fields.update(kw)
    return Attempt(**fields)


ODD = 'quote " backslash \\ newline \n tab \t nul \x00 del \x7f é 日本 🎉 \u2028'


def _records() -> list[CompletionRecord]:
    failed = _attempt(status=429, error_type="RateLimitError", error_message="slow down", end=START + 0.1)
    return [
        with_detail(detail()),
        with_detail(detail(), stream=True, ttft=0.125, latency=1.5, cache_read_tokens=4, cache_write_tokens=2),
        with_detail(detail(attempts=[_attempt()])),
        with_detail(detail(attempts=[_attempt(api_base="")])),
        with_detail(detail(attempts=[failed, _attempt(model_group="fallback", provider="azure")]), retries=1,
                    fallbacks=1),
        with_detail(detail(output=None, error_message="Rate limit reached", attempts=[failed]), status=429,
                    outcome=Outcome.ERROR, error_type="rate_limit_error", prompt_tokens=0, completion_tokens=0,
                    cost=0.0),
        with_detail(detail(output=None), status=500, outcome=Outcome.ERROR, error_type=""),
        with_detail(detail(output=None), outcome=Outcome.CLIENT_GONE, status=499),
        with_detail(detail(output={"choices": [{"message": {"role": "assistant", "content": "hal"}}]}),
                    outcome=Outcome.STREAM_BROKEN, status=599, error_type="api_error", stream=True, ttft=0.1),
        with_detail(detail(input=None, output=None, redacted=True)),
        with_detail(detail(input={"input": ["a", "b"], "model": "e", "dimensions": 8}, output={"data": []}),
                    route="embeddings"),
        with_detail(detail(input={"model": "c", "system": "s", "max_tokens": 9,
                                  "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
                           output={"role": "assistant", "content": [{"type": "text", "text": "yo"}]}),
                    route="messages", provider="anthropic"),
        with_detail(detail(input={"model": "r", "instructions": "be brief", "input": "hey"},
                           output={"output": [{"type": "message"}], "usage": {}}), route="responses"),
        with_detail(detail(input={"model": "tts", "input": "say"}, output={"x": 1}), route="audio_speech"),
        with_detail(detail(input={"prompt": "p", "model": "c"}, output={"choices": [{"text": "t"}, {"text": "u"}]}),
                    route="completions"),
        with_detail(detail(input=[1, 2], output="text")),
        with_detail(detail(input="not an object", output=[1])),
        with_detail(detail(input={"model": "m", "litellm_trace_id": "own-trace"})),
        with_detail(detail(input={"model": "m", "litellm_trace_id": ""})),
        with_detail(detail(input={"model": "m", "litellm_trace_id": 7})),
        with_detail(detail(trace_id="")),
        with_detail(detail(metadata={"x": 1, "session_id": None, "nested": {"a": [1, 2.5, None]}})),
        with_detail(detail(metadata={"spend_logs_metadata": {"m": 1}})),
        with_detail(detail(metadata="not an object")),
        with_detail(detail(tags=["b", "a", "b"]), user_agent=b"curl/8", header_tags=("h:1",)),
        with_detail(detail(tags=[]), user_agent=b"ua"),
        with_detail(detail(team_alias="Team A"), org_id="org-1", end_user_id="end-1", key_alias=None,
                    team_id=None, user_id=None, key_hash=None),
        with_detail(detail(), key_alias="", end_user_id=""),
        with_detail(detail(input={"model": ODD, "messages": [{"role": "user", "content": ODD}], ODD: ODD,
                                  "temperature": 0.2, "top_p": 1, "stop": ["\n", ODD], "logit_bias": {"1": -100},
                                  "response_format": {"type": "json_schema", "schema": {"p": "x" * 3000}},
                                  "seed": None, "n": True, "penalty": math.nan, "big": 2 ** 70}),
                    call_id=ODD, model=ODD, upstream_model="", provider=ODD, model_group=ODD, deployment_id=ODD,
                    key_alias=ODD, user_id=ODD, error_type=ODD),
        with_detail(detail(), prompt_tokens=2 ** 70, completion_tokens=-(2 ** 63), cache_read_tokens=2 ** 64,
                    cache_write_tokens=-1, status=2 ** 70, retries=-(2 ** 70), fallbacks=2 ** 63 - 1),
        with_detail(detail(), cost=math.nan),
        with_detail(detail(), cost=math.inf),
        with_detail(detail(), cost=-1.0),
        with_detail(detail(), cost=3),
        with_detail(detail(), cost=10 ** 400),
        with_detail(detail(), latency=-1.0, overhead=math.nan),
        with_detail(detail(), latency=math.nan),
        with_detail(detail(), start_time=0.0, latency=0.0),
        with_detail(detail(), start_time=-5.5),
        with_detail(detail(), start_time=1e12),
        with_detail(detail(), start_time=253402300799.9999),
        with_detail(detail(), start_time=1764566400.9999996),
        with_detail(detail(), start_time=1764566400.0000005, ttft=0.0000005),
        with_detail(detail(), start_time=1764566400, latency=1, ttft=2),
        with_detail(detail(), cost_estimated=True, cache_hit=True, overhead=0.0),
        with_detail(detail(), outcome=Outcome.ERROR, status=400, error_type="bad"),
        with_detail(detail(), route="made_up_route"),
        with_detail(detail(), route="", model="", upstream_model=""),
        with_detail(detail(input={"model": Colour.RED, "level": Level.HIGH, "flag": Colour.RED})),
        with_detail(detail(), call_id=Colour.RED, key_alias=Level.HIGH, provider=Colour.RED),
        with_detail(detail(), call_id="lone \ud800 surrogate"),
        with_detail(detail(metadata={"bad": {1, 2}})),
        with_detail(detail(attempts=[_attempt(end=math.nan), failed])),
        with_detail(detail(attempts=(failed,))),
    ]


def test_the_compiled_writer_loaded() -> None:
    check_loaded("langfuse", langfuse_payload.record_events)


@compiled
@pytest.mark.parametrize("opts", OPTIONS, ids=["default", "redacted-keys", "empty-env"])
def test_compiled_events_equal_the_pure_path(opts: BuildOptions) -> None:
    refused = 0
    for r in _records():
        _same(r, opts)
        refused += isinstance(_pure(r, r.extra["observe"], opts), str)
    assert 0 < refused < 12  # the list has records both refuse, and most are sent


@compiled
def test_spend_logs_metadata_from_the_record_or_the_request() -> None:
    for extra in ({"spend_logs_metadata": {"from": "extra"}}, {"spend_logs_metadata": None}, {"tags": ["t"]},
                  {"metadata": {"ignored": True}}):
        r = with_detail(detail(metadata={"spend_logs_metadata": "request"}))
        r.extra.update(extra)
        _same(r, BuildOptions())
    bare = rec(extra=None)
    counter = itertools.count()
    assert encode_events(bare, None, BuildOptions(), now=NOW,
                         new_id=lambda: f"ev-{next(counter)}") == _pure(bare, None, BuildOptions())


@compiled
@pytest.mark.parametrize("steer", [{"metadata": {"trace_id": "t"}}, {"metadata": {"tags": ["x"]}},
                                   {"metadata": {"mask_input": False}}, {"request_headers": {"langfuse_trace_id": "h"}},
                                   {"request_headers": None}])
def test_a_request_that_steers_is_left_to_the_pure_path(steer: dict[str, Any]) -> None:
    r = with_detail(detail(**steer))
    d = r.extra["observe"]
    assert _compiled(r, d, BuildOptions()) is None
    counter = itertools.count()
    want = _pure(r, d, BuildOptions())
    if not isinstance(want, str):
        assert encode_events(r, d, BuildOptions(), now=NOW, new_id=lambda: f"ev-{next(counter)}") == want


def test_default_tags_take_the_pure_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(langfuse_payload, "record_events", lambda *a: calls.append(a))
    r = with_detail(detail())
    opts = BuildOptions(default_tags=("cache_hit",))
    assert encode_events(r, r.extra["observe"], opts, now=NOW, new_id=lambda: "x")[0].startswith(b'{"id":"x"')
    assert calls == []
    encode_events(r, r.extra["observe"], BuildOptions(), now=NOW, new_id=lambda: "x")
    assert len(calls) == 1  # None from the stand-in: the pure path answered


_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)
_text = st.text(max_size=40)
_maybe_text = st.none() | _text


@compiled
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.none() | st.dictionaries(st.sampled_from(["model", "messages", "temperature", "max_tokens", "stop",
                                                         "tools", "input", "prompt", "user", "metadata", "n",
                                                         "litellm_trace_id", "stream", "x"]) | _text, _json,
                                        max_size=8) | _json,
       answer=st.none() | _json | st.fixed_dictionaries({"choices": st.lists(st.dictionaries(
           st.sampled_from(["message", "text", "index"]), _json, max_size=3), max_size=3)}),
       route=st.sampled_from(["chat", "completions", "embeddings", "messages", "responses", "audio_speech", "rerank",
                              ""]),
       outcome=st.sampled_from(list(Outcome)), strings=st.lists(_maybe_text, min_size=9, max_size=9),
       numbers=st.lists(st.integers(min_value=-(2 ** 66), max_value=2 ** 66), min_size=7, max_size=7),
       times=st.lists(st.floats(min_value=-10.0, max_value=2.6e11), min_size=4, max_size=4),
       cost=st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-5, max_value=5),
       metadata=st.dictionaries(st.sampled_from(["x", "spend_logs_metadata", "y"]), _json, max_size=3),
       tags=st.lists(_text, max_size=4), redacted=st.booleans(), ttft=st.none() | st.floats(min_value=0, max_value=9),
       opts=st.sampled_from(OPTIONS), attempts=st.integers(min_value=0, max_value=3))
def test_generated_records_equal_the_pure_path(body: Any, answer: Any, route: str, outcome: Outcome,
                                               strings: list[str | None], numbers: list[int], times: list[float],
                                               cost: float, metadata: dict[str, Any], tags: list[str],
                                               redacted: bool, ttft: float | None, opts: BuildOptions,
                                               attempts: int) -> None:
    d = detail(input=body, output=answer, metadata=metadata, tags=tags, redacted=redacted, team_alias=strings[8],
               attempts=[_attempt(status=numbers[0], start=times[2], end=times[3],
                                  error_type=strings[0] or "") for _ in range(attempts)])
    r = with_detail(d, route=route, outcome=outcome, call_id=strings[0] or "c", model=strings[1] or "",
                    upstream_model=strings[2] or "", provider=strings[3] or "", key_alias=strings[4],
                    key_hash=strings[5], end_user_id=strings[6], error_type=strings[7] or "", status=numbers[0],
                    prompt_tokens=numbers[1], completion_tokens=numbers[2], cache_read_tokens=numbers[3],
                    cache_write_tokens=numbers[4], retries=numbers[5], fallbacks=numbers[6], cost=cost,
                    start_time=START + times[0], latency=times[1], overhead=times[2], ttft=ttft)
    _same(r, opts)
