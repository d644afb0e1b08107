"""W3C Trace Context on the request path: parse the incoming ``traceparent``, choose ids, build the outgoing one.

What it owns: the few sans-IO functions the pipeline calls per request when tracing is on — read the
client's ``traceparent`` (and ``tracestate``), choose the request's trace and span ids, and format the
``traceparent`` header value sent upstream with each attempt. The OpenTelemetry exporter
(:mod:`relaygate.observe.otel`) later exports spans with exactly these ids, off the request path; nothing
here imports OpenTelemetry.

Invariants:

- Ids are lowercase hex ``str`` (trace id 32 characters, span id 16), never all zeros; header values are
  ``bytes`` (ASGI header values).
- :func:`parse_traceparent` accepts what the W3C Trace Context recommendation (level 1, section 3.2 and
  "versioning of traceparent") accepts and nothing else: version ``00`` is exactly 55 bytes; a higher
  version (not ``ff``) may be longer when byte 56 is ``-``, and only its first four fields are read; every
  field is lowercase hex (uppercase, a sign or whitespace inside is invalid), the trace id and parent id
  are not all zeros. Anything else gives ``None``: the caller starts a new trace, and (per the
  recommendation) then drops ``tracestate`` too.
- Flags are returned and sent as given (``sampled`` is bit 0); the pipeline decides what to propagate.
- :func:`clean_tracestate` passes ``tracestate`` through unparsed when it is short (at most 512 bytes, the
  size the recommendation asks every vendor to propagate) and printable ASCII; else ``None`` (dropped
  rather than truncated: cutting list members needs a parser the hot path does not want).

Cost (Python 3.11 on this machine, ``timeit``, best of 5): ``os.urandom(8).hex()`` ~730 ns (a syscall per
id), ``'%016x' % random.getrandbits(64)`` ~230 ns, ``random.getrandbits(64).to_bytes(8, "big").hex()``
~150-200 ns. Ids come from :func:`random.getrandbits` (what the OpenTelemetry SDK's ``RandomIdGenerator``
uses: ids are unique, not secret; ``random`` is reseeded in a forked child), as ``to_bytes(...).hex()``;
the zero guard is ``or 1`` (a zero draw has probability 2**-64). :func:`parse_traceparent` costs ~1 µs
for a valid header on this loaded machine, like a compiled ``re.fullmatch`` (one ``bytes.translate``
validates every character at C speed); it is paid only when a client sends the header.
"""

from __future__ import annotations

import random

__all__ = ["clean_tracestate", "new_ids", "new_span_id", "new_trace_id", "parse_traceparent", "traceparent",
           "traceparent_text"]

_getrandbits = random.getrandbits

_HEX_AND_DASH = b"0123456789abcdef-"
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_PRINTABLE = bytes(range(0x20, 0x7F))
_MAX_TRACESTATE = 512


def parse_traceparent(value: bytes) -> tuple[str, str, int] | None:
    """``(trace_id, parent_span_id, flags)`` from a ``traceparent`` header value; ``None`` when invalid."""
    n = len(value)
    if n != 55:
        if n < 55 or value[:2] == b"00" or value[55] != 45:  # 45 == ord("-")
            return None
        value = value[:55]
    if value.translate(None, _HEX_AND_DASH) or value.count(45) != 3 or not value[2] == value[35] == value[52] == 45:
        return None
    s = value.decode("ascii")
    trace_id = s[3:35]
    span_id = s[36:52]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN or s[:2] == "ff":
        return None
    return trace_id, span_id, int(s[53:55], 16)


def new_trace_id() -> str:
    """A fresh random trace id: 32 lowercase hex characters, never all zeros."""
    return (_getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_span_id() -> str:
    """A fresh random span id: 16 lowercase hex characters, never all zeros."""
    return (_getrandbits(64) or 1).to_bytes(8, "big").hex()


def new_ids() -> tuple[str, str, str]:
    """A fresh trace id and two span ids (a request's and its first attempt's), as :func:`new_trace_id` and
    :func:`new_span_id` make them, from one 256-bit draw cut in three (one call and one ``hex`` instead of
    three: the request path of a traced request makes all three)."""
    h = _getrandbits(256).to_bytes(32, "big").hex()
    trace, span, second = h[:32], h[32:48], h[48:]
    if trace == _ZERO_TRACE or span == _ZERO_SPAN or second == _ZERO_SPAN:  # probability ~2**-64
        return new_trace_id(), new_span_id(), new_span_id()
    return trace, span, second


def traceparent(trace_id: str, span_id: str, flags: int) -> bytes:
    """The ``traceparent`` value (version ``00``) to send upstream for one attempt."""
    return b"00-%s-%s-%02x" % (trace_id.encode("ascii"), span_id.encode("ascii"), flags & 0xFF)


def traceparent_text(trace_id: str, span_id: str, flags: int) -> str:
    """:func:`traceparent` as ``str`` (what an attempt's upstream request headers carry), in one f-string."""
    return f"00-{trace_id}-{span_id}-{flags & 0xFF:02x}"


def clean_tracestate(value: bytes) -> bytes | None:
    """The ``tracestate`` value to pass upstream unchanged, or ``None`` to drop it (empty, too long, odd bytes)."""
    if not value or len(value) > _MAX_TRACESTATE or value.translate(None, _PRINTABLE):
        return None
    return value
