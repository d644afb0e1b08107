"""JSON request logs (``observe.jsonlog``): one line per record, every fact the issue names, nothing forged,
no secret, bodies only when asked and allowed."""

from __future__ import annotations

import io

import orjson

from relaygate.core.errors import register_secrets
from relaygate.observe.detail import Detail
from relaygate.observe.jsonlog import JsonRequestLog
from relaygate.sinks.record import CompletionRecord, Outcome


def record(**kw: object) -> CompletionRecord:
    base: dict[str, object] = dict(
        call_id="c-1", route="chat", stream=True, model="m", model_group="m", deployment_id="d1",
        provider="openai", upstream_model="gpt-4o", key_hash="ab" * 32, key_alias="team-a-key", team_id="t1",
        user_id="u1", status=200, outcome=Outcome.OK, prompt_tokens=5, completion_tokens=7, cache_read_tokens=2,
        cache_write_tokens=0, latency=0.25, ttft=0.05, overhead=0.001, cost=0.0012, cache_hit=False, retries=1,
        fallbacks=0, start_time=1_700_000_000.0)
    base.update(kw)
    return CompletionRecord(**base)  # type: ignore[arg-type]


def lines(sink: JsonRequestLog, *records: CompletionRecord) -> list[dict[str, object]]:
    out = io.StringIO()
    sink.stream = out
    sink.handle(list(records))
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == len(records)
    return [orjson.loads(line) for line in text.splitlines()]


def test_one_line_per_request_with_its_facts() -> None:
    (obj,) = lines(JsonRequestLog(), record())
    assert obj["message"] == "request" and obj["logger"] == "relaygate.requests" and obj["level"] == "info"
    expected = {"call_id": "c-1", "route": "chat", "stream": True, "model": "m", "model_group": "m",
                "deployment_id": "d1", "provider": "openai", "status": 200, "outcome": "ok", "latency_ms": 250.0,
                "ttft_ms": 50.0, "prompt_tokens": 5, "completion_tokens": 7, "cache_read_tokens": 2,
                "cost": 0.0012, "cache_hit": False, "retries": 1, "fallbacks": 0, "key_hash": "ab" * 32,
                "key_alias": "team-a-key", "team_id": "t1", "user_id": "u1", "error_type": None}
    assert {k: obj[k] for k in expected} == expected
    assert obj["ts"] == 1_700_000_000.25


def test_no_forged_lines_and_no_secrets() -> None:
    register_secrets(["sk-upstream-secret-123"])
    d = Detail("a" * 32, "b" * 16, error_message="upstream said sk-upstream-secret-123\nFAKE LINE",
               input={"messages": [{"role": "user", "content": "Bearer sk-live-abcdef and\u2028more"}]})
    rec = record(model="evil\n{\"forged\":1}\u2028", status=502, outcome=Outcome.ERROR, error_type="api_error",
                 extra={"observe": d})
    out = io.StringIO()
    JsonRequestLog(bodies=True, stream=out).handle([rec])
    text = out.getvalue()
    assert text.count("\n") == 1 and "\u2028" not in text
    assert "sk-upstream-secret-123" not in text and "sk-live-abcdef" not in text
    obj = orjson.loads(text)
    assert obj["model"] == "evil\n{\"forged\":1}\u2028" and obj["level"] == "warning"
    assert obj["error"].startswith("upstream said [redacted]")


def test_bodies_only_when_asked_and_not_redacted() -> None:
    d = Detail("a" * 32, "b" * 16, input={"model": "m"}, output={"id": "x"}, tags=["t"])
    red = Detail("a" * 32, "c" * 16, redacted=True)
    plain, = lines(JsonRequestLog(), record(extra={"observe": d}))
    assert "request" not in plain and plain["tags"] == ["t"] and plain["trace_id"] == "a" * 32
    full, hidden = lines(JsonRequestLog(bodies=True), record(extra={"observe": d}), record(extra={"observe": red}))
    assert full["request"] == {"model": "m"} and full["response"] == {"id": "x"}
    assert "request" not in hidden and "response" not in hidden


def test_a_closed_stream_is_counted_not_raised() -> None:
    events: list[tuple[str, int]] = []
    out = io.StringIO()
    out.close()
    JsonRequestLog(stream=out, on_event=lambda e, n: events.append((e, n))).handle([record(), record()])
    assert events == [("json_log_failed", 2)]
