"""JSON request logs (``observe.jsonlog``): one line per record, every fact the issue names, nothing forged,
no secret, bodies only when asked and allowed."""

from __future__ import annotations

import io

import orjson
import pytest

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
    assert obj["message"] == "request" and obj["logger"] == "relaygate.requests" and obj["level"] == "INFO"
    assert obj["component"] == "relaygate.requests"  # LiteLLM's JsonFormatter fields, beside relaygate's
    expected = {"call_id": "c-1", "route": "chat", "stream": True, "model": "m", "model_group": "m",
                "deployment_id": "d1", "provider": "openai", "status": 200, "outcome": "ok", "latency_ms": 250.0,
                "ttft_ms": 50.0, "prompt_tokens": 5, "completion_tokens": 7, "cache_read_tokens": 2,
                "cost": 0.0012, "cache_hit": False, "retries": 1, "fallbacks": 0, "key_hash": "ab" * 32,
                "key_alias": "team-a-key", "team_id": "t1", "user_id": "u1", "error_type": None}
    assert {k: obj[k] for k in expected} == expected
    assert obj["ts"] == 1_700_000_000.25 and obj["timestamp"] == "2023-11-14T22:13:20.250+00:00"


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
    assert obj["model"] == "evil\n{\"forged\":1}\u2028" and obj["level"] == "WARNING"
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


class _Counting(io.StringIO):
    """A stream that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_lines_are_gathered_on_the_loop_and_written_together() -> None:
    import asyncio

    out = _Counting()
    sink = JsonRequestLog(stream=out, flush_every=0.05)

    async def main() -> None:
        sink.handle([record(call_id="a")])
        sink.handle([record(call_id="b"), record(call_id="c")])
        assert out.getvalue() == ""  # waiting for the timer
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert out.writes == 1
    assert [orjson.loads(x)["call_id"] for x in out.getvalue().splitlines()] == ["a", "b", "c"]


def test_close_writes_what_is_gathered_and_a_full_buffer_goes_at_once() -> None:
    import asyncio

    from relaygate.observe.jsonlog import FLUSH_BYTES

    out = _Counting()
    sink = JsonRequestLog(stream=out, flush_every=30.0)
    big = "x" * 2000

    async def main() -> None:
        sink.handle([record(call_id="first")])
        assert out.getvalue() == ""
        sink.close()  # the queue closes its sinks at shutdown
        assert orjson.loads(out.getvalue())["call_id"] == "first"
        n = FLUSH_BYTES // 2000 + 1
        sink.handle([record(call_id=f"{big}{i}") for i in range(n)])  # past FLUSH_BYTES: written now
        assert out.getvalue().count("\n") == 1 + n

    asyncio.run(main())


def test_a_timer_whose_loop_ended_does_not_hold_lines_back() -> None:
    import asyncio

    out = io.StringIO()
    sink = JsonRequestLog(stream=out, flush_every=30.0)

    async def first() -> None:
        sink.handle([record(call_id="one")])

    asyncio.run(first())  # the loop ends with the timer armed
    assert out.getvalue() == ""
    sink.handle([record(call_id="two")])  # no loop now: both written at once
    assert [orjson.loads(x)["call_id"] for x in out.getvalue().splitlines()] == ["one", "two"]


def test_into_a_pipe_each_write_is_whole_lines_within_pipe_buf() -> None:
    import os
    import threading

    from relaygate.observe.jsonlog import PIPE_BUF, atomic_chunks

    lines = [f'{{"n":{i},"pad":"{"é" * (i % 700)}"}}\n' for i in range(60)] + ['{"long":"' + "y" * 9000 + '"}\n']
    chunks = atomic_chunks(lines)
    assert "".join(chunks) == "".join(lines)
    for c in chunks:
        assert c.endswith("\n")
        assert len(c.encode()) <= PIPE_BUF or c.count("\n") == 1  # only a single long line exceeds it

    r, w = os.pipe()
    got: list[bytes] = []

    def read() -> None:
        with os.fdopen(r, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    stream = os.fdopen(w, "w", encoding="utf-8")
    sink = JsonRequestLog(stream=stream, flush_every=0)
    sink.handle([record(call_id=f"c{i}", model="m" * 300) for i in range(40)])
    assert list(sink._shared.values()) == [True]  # seen as a pipe: written in whole-line chunks
    stream.close()
    reader.join(5)
    text = got[0].decode()
    assert [orjson.loads(x)["call_id"] for x in text.splitlines()] == [f"c{i}" for i in range(40)]


def test_a_body_orjson_refuses_is_still_logged_and_a_failing_record_costs_only_its_line() -> None:
    huge = int("9" * 400)  # past 64 bits: orjson refuses it, the line goes through msgspec
    d = Detail("a" * 32, "b" * 16, input={"model": "m", "temperature": huge}, output={"id": "x"})
    out = io.StringIO()
    JsonRequestLog(bodies=True, stream=out).handle([record(extra={"observe": d})])
    import json

    obj = json.loads(out.getvalue())  # (the stdlib reads integers whole; orjson would make it a double)
    assert obj["request"]["temperature"] == huge and obj["call_id"] == "c-1"

    events: list[tuple[str, int]] = []
    sink = JsonRequestLog(on_event=lambda e, n: events.append((e, n)))
    out = io.StringIO()
    sink.stream = out
    # a start time no line can carry (its timestamp cannot be written): the compiled writer leaves it to the
    # pure path, which fails on it; that record only is lost and counted
    sink.handle([record(call_id="a"), record(call_id="bad", start_time=float("nan")), record(call_id="b")])
    assert [orjson.loads(x)["call_id"] for x in out.getvalue().splitlines()] == ["a", "b"]
    assert events == [("json_log_failed", 1)]


def test_a_failed_write_counts_the_lines_it_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Into a pipe the lines go in whole-line chunks; a chunk whose write fails counts its lines as failed (from
    the lines it holds, not by scanning it for newlines), the chunks before it stay written."""
    import relaygate.observe.jsonlog as jsonlog

    class Failing(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def write(self, s: str) -> int:
            self.calls += 1
            if self.calls == 2:
                raise OSError("no space left on device")
            return super().write(s)

    monkeypatch.setattr(jsonlog, "_shared_stream", lambda stream: True)  # written as into a pipe, in chunks
    events: list[tuple[str, int]] = []
    out = Failing()
    sink = JsonRequestLog(stream=out, flush_every=0, on_event=lambda e, n: events.append((e, n)))
    sink.handle([record(call_id=f"c{i}", model="m" * 300) for i in range(40)])
    written = out.getvalue().splitlines()
    assert 0 < len(written) < 40 and all(orjson.loads(x)["call_id"] for x in written)
    assert events == [("json_log_failed", 40 - len(written))]
