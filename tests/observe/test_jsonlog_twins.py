"""JSON request log lines written by compiled code (``jsonlog.request_line``) against the pure twin.

The pure twin is ``JsonRequestLog.line`` (a dict, ``logs.json_line``). The compiled writer writes the lines that
are plain ASCII and answers None for the others, which the sink then writes on the pure path: every record here
must give the pure line (or be left to it), and the sink's output must be the same either way. Floats of every
kind go through it (its ``round`` must be Python's, digit for digit), and so do strings and integers that are
not plain.
"""

from __future__ import annotations

import enum
import io
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaygate.observe import jsonlog
from relaygate.observe.jsonlog import JsonRequestLog
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.core.compiled_only import check_loaded
from tests.observe.test_langfuse_payload import detail, rec, with_detail

compiled = pytest.mark.skipif(jsonlog.request_line is None,
                              reason="RELAYGATE_NO_EXTENSIONS is set: no compiled writer to compare")


class Colour(enum.StrEnum):
    RED = "red"


def _pure(r: CompletionRecord, log: JsonRequestLog) -> str | None:
    try:
        return log.line(r) + "\n"
    except Exception:
        return None


def _check(r: CompletionRecord) -> str | None:
    """The compiled line (None: left to the pure path), checked against the pure one."""
    log = JsonRequestLog(stream=io.StringIO())
    assert jsonlog.request_line is not None
    got = jsonlog.request_line(r, log.pid)
    want = _pure(r, log)
    assert got is None or got == want, (r, got, want)
    return got


def _records() -> list[CompletionRecord]:
    return [
        rec(),
        with_detail(detail()),
        with_detail(detail(tags=["b", "a"], error_message="upstream said: Bearer sk-secret-123 was refused")),
        with_detail(detail(tags=[1, None, "x"])),
        rec(extra={"tags": ["t1", "t2"]}),
        rec(extra={"tags": []}),
        rec(extra=None),
        rec(status=500, outcome=Outcome.ERROR, error_type="api_error", ttft=0.25, stream=True),
        rec(status=499, outcome=Outcome.CLIENT_GONE, error_type=""),
        rec(extra={"tags": "not a list"}),
        rec(model="модель"),
        rec(call_id="tab\there"),
        rec(call_id='quote"here'),
        rec(key_alias="del\x7fchar"),
        rec(model_group=Colour.RED),
        rec(prompt_tokens=2 ** 64),
        rec(completion_tokens=-(2 ** 63)),
        rec(cost=math.nan, latency=math.inf),
        rec(cost=3, start_time=1_764_566_400, latency=2, overhead=0),
        rec(start_time=0.0, latency=0.0, overhead=0.0, ttft=0.0),
        rec(start_time=1_764_566_400.0005, latency=0.0015, overhead=0.0025, ttft=0.0035),
        rec(start_time=-1.5, latency=-0.25),
        rec(start_time=math.nan),
        with_detail(detail(tags=["é"])),
        with_detail(detail(tags=[2 ** 70])),
        with_detail(detail(error_message="ошибка")),
    ]


def test_the_compiled_writer_loaded() -> None:
    check_loaded("jsonlog", jsonlog.request_line)


@compiled
def test_compiled_lines_equal_the_pure_lines() -> None:
    written = [_check(r) is not None for r in _records()]
    assert written[:9] == [True] * 9  # plain records never leave the compiled path
    assert 0 < written.count(False) < len(written)


@compiled
def test_the_sink_writes_the_same_text_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records()
    outs = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(jsonlog, "request_line", None)
        stream = io.StringIO()
        failed: list[int] = []
        log = JsonRequestLog(stream=stream, flush_every=0, on_event=lambda name, n, lost=failed: lost.append(n))
        log.handle(records)
        outs.append((stream.getvalue(), failed))
    assert outs[0] == outs[1]
    assert outs[0][0].count("\n") == len(records) - len(outs[0][1])


@compiled
def test_bodies_take_the_pure_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(jsonlog, "request_line", lambda *a: calls.append(a))
    stream = io.StringIO()
    JsonRequestLog(stream=stream, flush_every=0, bodies=True).handle([with_detail(detail())])
    assert calls == [] and '"request":' in stream.getvalue()


_ascii = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_float = st.floats(min_value=0.0, max_value=5.0) | st.floats(allow_nan=True, allow_infinity=True) | \
    st.integers(min_value=0, max_value=10 ** 6).map(lambda k: k / 2000)  # halves of the third digit
_time = st.floats(min_value=1e9, max_value=2.1e9) | st.integers(min_value=0, max_value=10 ** 6).map(
    lambda k: 1_764_566_400 + k / 2_000_000)  # halves of the sixth digit


@compiled
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=_time | _float, latency=_float, overhead=_float, ttft=st.none() | _float, cost=_float,
       tokens=st.lists(st.integers(min_value=0, max_value=10 ** 6) | st.integers(min_value=-(2 ** 65),
                                                                                   max_value=2 ** 65),
                       min_size=4, max_size=4),
       text=st.lists(st.none() | _ascii | st.text(max_size=4), min_size=6, max_size=6), status=st.integers(0, 999),
       tags=st.lists(_ascii | st.text(max_size=4), max_size=3))
def test_generated_records_equal_the_pure_lines(start: float, latency: float, overhead: float, ttft: float | None,
                                                cost: float, tokens: list[int], text: list[str | None],
                                                status: int, tags: list[str]) -> None:
    r = with_detail(detail(tags=tags), start_time=start, latency=latency, overhead=overhead, ttft=ttft, cost=cost,
                    prompt_tokens=tokens[0], completion_tokens=tokens[1], cache_read_tokens=tokens[2],
                    retries=tokens[3], key_alias=text[0], team_id=text[1], user_id=text[2], end_user_id=text[3],
                    model=text[4] or "", call_id=text[5] or "c", status=status)
    _check(r)


@compiled
@settings(max_examples=300, deadline=None)
@given(start=st.floats(min_value=1e9, max_value=2.1e9), latency=st.floats(min_value=1e-6, max_value=60.0),
       overhead=st.floats(min_value=1e-6, max_value=1.0))
def test_plain_times_are_written_by_the_compiled_path(start: float, latency: float, overhead: float) -> None:
    assert _check(rec(start_time=start, latency=latency, overhead=overhead, ttft=latency / 2)) is not None
