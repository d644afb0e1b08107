"""Server-sent events: the pure-Python twin of ``ext/_sse_c.pyx`` (the reference implementation).

This module owns the byte-level side of streaming. Upstream providers send ``text/event-stream`` bodies
that TCP and the HTTP de-chunker split anywhere: inside a line, between ``\\r`` and ``\\n``, inside the
UTF-8 byte-order mark. Two consumers need the events:

* :class:`SSEDecoder` is the general WHATWG parser: LF, CRLF and CR line ends, ``:`` comments, ``event``,
  ``data`` (multi-line, joined with ``\\n``), ``id``, ``retry``, one optional space after the colon, a
  leading BOM. It yields ``(event_name_or_None, data)`` for each event that carries data. Provider
  adapters that translate streams (Anthropic, Gemini, ...) use it.
* :class:`DataReframer` serves OpenAI-compatible passthrough: it turns whatever the upstream sent into
  clean ``data: <payload>\\n\\n`` frames, drops comments, ids and event names, stops at ``[DONE]`` and
  remembers the last payload before it (where the usage chunk lives) and the frame count. Well-behaved
  upstreams already send clean single-line frames separated by ``\\n\\n``: for those the reframer only
  finds the separators and returns the completed prefix of its input as one slice, with no per-line work.
  The first ``\\r`` seen switches it, for the rest of the stream, to the general decoder.

The re-framer's output is valid UTF-8: a payload holding invalid UTF-8 (a broken upstream, a multi-byte
character cut by a buggy encoder) has each invalid sequence replaced by U+FFFD, as
``bytes.decode("utf-8", "replace")`` does, so a client's JSON decoder never meets a decode error. Its
output is whole frames, which end in ASCII, so the replacement does not depend on the split either; the
check costs an ``isascii()`` on ASCII output.

Invariants: output never depends on how the input was split; a feed returns only completed events and
keeps the incomplete tail; ``close()`` flushes a final event that lacks its blank line (unlike the
browser algorithm, which drops it: upstreams that forget the last blank line are common); nothing is
emitted after ``[DONE]``. Neither class does any IO or awaits.
"""

from __future__ import annotations

import re

__all__ = ["DONE_FRAME", "DataReframer", "SSEDecoder", "frame"]

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n?|\n")
#: The frame that ends an OpenAI stream.
DONE_FRAME = b"data: [DONE]\n\n"


def frame(payload: bytes) -> bytes:
    """One SSE data frame: ``data: <payload>\\n\\n``. ``payload`` must be a single line (JSON is)."""
    return b"data: " + payload + b"\n\n"


def _utf8(out: bytes) -> bytes:
    """``out`` with each invalid UTF-8 sequence replaced by U+FFFD (``out`` itself when valid)."""
    if out.isascii():
        return out
    try:
        out.decode()
    except UnicodeDecodeError:
        return out.decode("utf-8", "replace").encode()
    return out


def _data_frame(payload: bytes) -> bytes:
    # A multi-line payload needs one ``data:`` line per line to round-trip.
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    return b"data: " + payload + b"\n\n"


class SSEDecoder:
    """Incremental ``text/event-stream`` parser.

    ``feed(data)`` returns the events completed by ``data`` as ``(event, data)`` pairs; ``event`` is the
    ``event:`` field or None when absent or empty. Events without any ``data:`` line are not returned.
    ``last_event_id`` and ``retry`` keep the latest valid ``id:`` / ``retry:`` values.
    """

    __slots__ = ("_bom_done", "_buf", "_data", "_event", "_skip_lf", "last_event_id", "retry")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False
        self._bom_done = False
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self.last_event_id: bytes = b""
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        buf = self._buf + data if self._buf else bytes(data)
        if self._skip_lf and buf:
            self._skip_lf = False
            if buf[0] == 10:
                buf = buf[1:]
        if not self._bom_done:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._bom_done = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        out: list[tuple[bytes | None, bytes]] = []
        pos = 0
        end = len(buf)
        for m in _LINE_END.finditer(buf):
            start = m.start()
            stop = m.end()
            if stop == end and stop - start == 1 and buf[start] == 13:
                # A lone CR at the very end: the next feed may begin with its LF.
                self._skip_lf = True
            self._line(buf[pos:start], out)
            pos = stop
        self._buf = buf[pos:]
        return out

    def close(self) -> list[tuple[bytes | None, bytes]]:
        """Flush: a pending unterminated line and a final event without its blank line."""
        out: list[tuple[bytes | None, bytes]] = []
        buf = self._buf
        self._buf = b""
        if not self._bom_done:
            self._bom_done = True
            if buf == _BOM:
                buf = b""
        if buf:
            self._line(buf, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[tuple[bytes | None, bytes]]) -> None:
        if not line:
            if self._data:
                out.append((self._event, b"\n".join(self._data)))
                self._data = []
            self._event = None
            return
        if line[0] == 58:  # ':' comment
            return
        colon = line.find(b":")
        if colon < 0:
            name = line
            value = b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value or None
        elif name == b"id" and b"\x00" not in value:
            self.last_event_id = value
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)


class DataReframer:
    """Re-frames an upstream OpenAI-style SSE stream into clean ``data: ...\\n\\n`` frames.

    ``feed(data)`` returns the bytes to send to the client for the events ``data`` completed (``b""``
    when none), always valid UTF-8. ``done`` turns true at ``data: [DONE]``; ``last_data`` is the last
    payload before it; ``frames`` counts the data frames emitted, not counting ``[DONE]``.
    """

    __slots__ = ("_bom_done", "_buf", "_decoder", "done", "frames", "last_data")

    def __init__(self) -> None:
        self._buf = b""
        self._bom_done = False
        self._decoder: SSEDecoder | None = None
        self.done = False
        self.last_data = b""
        self.frames = 0

    def feed(self, data: bytes) -> bytes:
        return _utf8(self._feed(data))

    def close(self) -> bytes:
        """Flush a final event that lacks its blank line."""
        return _utf8(self._close())

    def _feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if self._decoder is not None:
            return self._emit_events(self._decoder.feed(data))
        buf = self._buf + data if self._buf else bytes(data)
        if not self._bom_done:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return b""
            self._bom_done = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        if b"\r" in buf:
            self._buf = b""
            dec = self._decoder = SSEDecoder()
            dec._bom_done = True
            return self._emit_events(dec.feed(buf))
        parts: list[bytes] = []
        pos = 0
        run = 0  # start of the current run of clean frames, copied out as one slice
        while True:
            j = buf.find(b"\n\n", pos)
            if j < 0:
                break
            block = buf[pos:j]
            nxt = j + 2
            if block[:6] == b"data: " and block.find(b"\n", 6) < 0:
                payload = block[6:]
                if payload == b"[DONE]":
                    if run < pos:
                        parts.append(buf[run:pos])
                    parts.append(DONE_FRAME)
                    self.done = True
                    self._buf = b""
                    return b"".join(parts)
                self.last_data = payload
                self.frames += 1
            else:
                if run < pos:
                    parts.append(buf[run:pos])
                if self._block(block, parts):
                    self._buf = b""
                    return b"".join(parts)
                run = nxt
            pos = nxt
        if run < pos:
            parts.append(buf[run:pos])
        self._buf = buf[pos:]
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _close(self) -> bytes:
        if self.done:
            return b""
        if self._decoder is not None:
            return self._emit_events(self._decoder.close())
        buf = self._buf
        self._buf = b""
        if not self._bom_done:
            self._bom_done = True
            if buf == _BOM:
                buf = b""
        if buf.endswith(b"\n"):
            buf = buf[:-1]
        if not buf:
            return b""
        parts: list[bytes] = []
        self._block(buf, parts)
        return b"".join(parts)

    def _block(self, block: bytes, parts: list[bytes]) -> bool:
        """Slow path: one LF-only event block of arbitrary lines. True if it was [DONE]."""
        data: list[bytes] | None = None
        for line in block.split(b"\n"):
            if not line:
                # A blank line inside a block only happens at its start (extra blank lines).
                if data is not None and self._one(b"\n".join(data), parts):
                    return True
                data = None
                continue
            if line[0] == 58:
                continue
            colon = line.find(b":")
            if colon < 0:
                if line == b"data":
                    data = [b""] if data is None else data + [b""]
                continue
            if line[:colon] == b"data":
                value = line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
                if data is None:
                    data = [value]
                else:
                    data.append(value)
        if data is not None:
            return self._one(b"\n".join(data), parts)
        return False

    def _one(self, payload: bytes, parts: list[bytes]) -> bool:
        if payload == b"[DONE]":
            parts.append(DONE_FRAME)
            self.done = True
            return True
        parts.append(_data_frame(payload))
        self.last_data = payload
        self.frames += 1
        return False

    def _emit_events(self, events: list[tuple[bytes | None, bytes]]) -> bytes:
        parts: list[bytes] = []
        for _event, payload in events:
            if self._one(payload, parts):
                break
        return b"".join(parts)
