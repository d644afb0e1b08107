"""W3C traceparent parsing, id generation and the header sent upstream (core tier: pure functions)."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.observe.tracecontext import (
    clean_tracestate,
    new_ids,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    traceparent,
    traceparent_text,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEX = "0123456789abcdef"

hex_str = lambda n: st.text(alphabet=HEX, min_size=n, max_size=n)  # noqa: E731

#: an independent statement of the W3C rules (level 1, 3.2 and "versioning"), to compare the parser with
_V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_VNEXT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)


def reference(value: bytes) -> tuple[str, str, int] | None:
    try:
        s = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    m = _V00.fullmatch(s)
    if m is None:
        m2 = _VNEXT.fullmatch(s)
        if m2 is None or m2[1] in ("00", "ff"):
            return None
        trace, span, flags = m2[2], m2[3], m2[4]
    else:
        trace, span, flags = m[1], m[2], m[3]
    if set(trace) == {"0"} or set(span) == {"0"}:
        return None
    return trace, span, int(flags, 16)


def test_the_recommendations_example() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01".encode()) == (TRACE, SPAN, 1)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00".encode()) == (TRACE, SPAN, 0)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-ff".encode()) == (TRACE, SPAN, 255)


@pytest.mark.parametrize("value", [
    b"",
    f"00-{TRACE}-{SPAN}-0".encode(),                       # short
    f"00-{TRACE}-{SPAN}-01-".encode(),                     # version 00 must be exactly 55 bytes
    f"00-{TRACE}-{SPAN}-01-extra".encode(),
    f"ff-{TRACE}-{SPAN}-01".encode(),                      # version ff is forbidden
    f"00-{TRACE.upper()}-{SPAN}-01".encode(),              # uppercase hex
    f"00-{TRACE}-{SPAN.upper()}-01".encode(),
    f"0A-{TRACE}-{SPAN}-01".encode(),
    f"00-{TRACE}-{SPAN}-0A".encode(),
    f"00-{'0' * 32}-{SPAN}-01".encode(),                   # all-zero ids
    f"00-{TRACE}-{'0' * 16}-01".encode(),
    f"00-{TRACE[:-1]}g-{SPAN}-01".encode(),                # non-hex
    f"00_{TRACE}-{SPAN}-01".encode(),                      # wrong separators
    f"00-{TRACE}_{SPAN}-01".encode(),
    f"00-{TRACE}-{SPAN}_01".encode(),
    f"00-{TRACE[:-1]}-{SPAN}0-01".encode(),                # dash moved
    f"00-{TRACE} -{SPAN[1:]}-01".encode(),
    f"00-{TRACE}-{SPAN}-+1".encode(),
    f"cc-{TRACE}-{SPAN}-01.".encode(),                     # a future version needs "-" after the flags
    f"cc-{TRACE}-{SPAN}".encode(),
    f"00-{TRACE}-{SPAN}-01".encode("utf-16"),
    "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01".encode(),
])
def test_invalid_values_are_refused(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_is_read_by_its_first_fields() -> None:
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01".encode()) == (TRACE, SPAN, 1)
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-09-what-the-future-holds".encode()) == (TRACE, SPAN, 9)


@given(version=hex_str(2), trace=hex_str(32), span=hex_str(16), flags=hex_str(2),
       tail=st.one_of(st.just(""), st.text(alphabet=string.printable, max_size=20).map(lambda t: "-" + t)))
def test_well_formed_values_agree_with_the_reference(version: str, trace: str, span: str, flags: str,
                                                     tail: str) -> None:
    value = f"{version}-{trace}-{span}-{flags}{tail}".encode()
    assert parse_traceparent(value) == reference(value)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_agree_with_the_reference(value: bytes) -> None:
    assert parse_traceparent(value) == reference(value)


@given(trace=hex_str(32), span=hex_str(16), flags=hex_str(2),
       pos=st.integers(0, 54), char=st.sampled_from("ABCDEFG-_ xz\x00\xff"))
def test_one_wrong_byte_anywhere(trace: str, span: str, flags: str, pos: int, char: str) -> None:
    good = f"00-{trace}-{span}-{flags}".encode()
    bad = good[:pos] + char.encode("latin-1") + good[pos + 1:]
    assert parse_traceparent(bad) == reference(bad)
    if bad != good:
        assert parse_traceparent(bad) is None


def test_ids_are_lowercase_hex_of_the_right_length_and_unique() -> None:
    traces = {new_trace_id() for _ in range(1000)}
    spans = {new_span_id() for _ in range(1000)}
    assert len(traces) == len(spans) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and t != "0" * 32 for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)


def test_ids_drawn_together_are_like_ids_drawn_alone() -> None:
    draws = [new_ids() for _ in range(1000)]
    assert len({t for t, _, _ in draws}) == 1000 and len({s for _, s, f in draws} | {f for _, s, f in draws}) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and re.fullmatch(r"[0-9a-f]{16}", s) and
               re.fullmatch(r"[0-9a-f]{16}", f) for t, s, f in draws)


def test_zero_draws_are_guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    import relaygate.observe.tracecontext as tc
    monkeypatch.setattr(tc, "_getrandbits", lambda bits: 0)
    assert tc.new_trace_id() == "0" * 31 + "1"
    assert tc.new_span_id() == "0" * 15 + "1"
    assert tc.new_ids() == ("0" * 31 + "1", "0" * 15 + "1", "0" * 15 + "1")
    monkeypatch.setattr(tc, "_getrandbits", lambda bits: (1 << 255) | (1 << 64) if bits == 256 else 7)
    # the last part zero (the others not): all three drawn again, one at a time
    assert tc.new_ids() == ("0" * 31 + "7", "0" * 15 + "7", "0" * 15 + "7")


@given(trace=hex_str(32), span=hex_str(16), flags=st.integers(0, 255))
def test_traceparent_round_trips(trace: str, span: str, flags: int) -> None:
    value = traceparent(trace, span, flags)
    assert len(value) == 55
    expected = None if set(trace) == {"0"} or set(span) == {"0"} else (trace, span, flags)
    assert parse_traceparent(value) == expected


def test_traceparent_with_fresh_ids() -> None:
    t, s = new_trace_id(), new_span_id()
    assert traceparent(t, s, 1) == f"00-{t}-{s}-01".encode()


@given(trace=hex_str(32), span=hex_str(16), flags=st.integers(0, 1023))
def test_traceparent_text_is_the_header_value(trace: str, span: str, flags: int) -> None:
    assert traceparent_text(trace, span, flags) == traceparent(trace, span, flags).decode("ascii")


def test_tracestate_passes_through_when_short_and_printable() -> None:
    value = b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert clean_tracestate(value) is value
    assert clean_tracestate(b"") is None
    assert clean_tracestate(b"a=" + b"x" * 511) is None
    assert clean_tracestate(b"a=" + b"x" * 510) is not None
    assert clean_tracestate(b"a=\x00") is None
    assert clean_tracestate("a=é".encode()) is None
