"""A file upload (``multipart/form-data``) read only up to its file part, then streamed to the upstream.

:class:`Preamble` (sans-IO) is fed the upload's leading bytes and collects the plain form fields that come
before the first file part (``purpose``, ``model``, ``target_model_names``, ``custom_llm_provider``,
``expires_after[...]``), and where that file part begins. The OpenAI SDKs (httpx) send fields before files;
a client that sends the routing fields after the file gets the default route (they are forwarded as they
are), and more than :data:`PREAMBLE_LIMIT` bytes without a file part is a 400.

:class:`Upload` then makes the upstream body: the fields OpenAI takes (:data:`FORWARDED`) written again as
parts with the client's boundary, followed by the client's bytes from the file part on, unchanged, piece by
piece as ``receive()`` hands them over (the transport writes each with flow control: a slow upstream slows
the client, the gateway never holds the file). Routing fields never reach the upstream. The whole body is
bounded by ``max_request_body_bytes`` while it streams (413), and by the body time and rate bounds (408).

A batch input file routed by model group goes through :class:`BatchLines` on its way: each JSONL line whose
``body.model`` names the group gets the deployment's own model (LiteLLM's managed batches do the same), one
line held at a time; the body is then sent chunked, its length being unknown ahead.

Invariants: what :class:`Preamble` finds does not depend on how the input was split (each search resumes
where the previous one stopped, so each byte is looked at about once); it holds at most the bytes fed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson

from relaygate.core import errors
from relaygate.http.body import BodyLimits, next_message, too_large
from relaygate.http.types import Receive

__all__ = ["FORWARDED", "PREAMBLE_LIMIT", "BatchLines", "Preamble", "Upload"]

PREAMBLE_LIMIT = 1024 * 1024
"""How far into an upload the file part is looked for (and the most held before streaming)."""
FORWARDED = ("purpose", "expires_after[anchor]", "expires_after[seconds]")
"""Form fields before the file that go to the upstream; every other one is the gateway's (routing)."""
_MAX_FIELDS = 64

_SEEK, _HEAD, _VALUE, _FILE = 0, 1, 2, 3
_NAME = re.compile(rb'(?i)(?:^|;)\s*name="([^"]*)"')
_FILENAME = re.compile(rb'(?i)(?:^|;)\s*filename\*?=("([^"]*)"|[^;\s]+)')


class Preamble:
    """The plain fields before the first file part of a multipart body fed in pieces."""

    __slots__ = ("_buf", "_delim", "_from", "_limit", "_name", "_start", "_state", "content_start", "fields",
                 "file_start", "filename")

    def __init__(self, boundary: bytes, limit: int = PREAMBLE_LIMIT) -> None:
        self._delim = b"--" + boundary
        self._limit = limit
        self._buf = bytearray()
        self._state = _SEEK
        self._from = 0
        self._start = 0
        self._name = ""
        self.fields: dict[str, str] = {}
        """Plain fields found before the file part (the last value of a repeated name)."""
        self.file_start: int | None = None
        """Offset of the file part's delimiter line in the fed bytes, once found."""
        self.content_start = 0
        """Offset of the file's first byte (after the part's headers), once found."""
        self.filename: str | None = None

    @property
    def buffered(self) -> bytearray:
        return self._buf

    def feed(self, data: bytes) -> bool:
        """Take the next piece; True once the file part is found. 400 when the body closes without a file
        part, or past the limit without one."""
        if self._state == _FILE:
            return True
        self._buf += data
        self._scan()
        if self._state == _FILE:
            return True
        if len(self._buf) > self._limit:
            raise errors.BadRequest(f"file: no file part in the first {self._limit} bytes of the upload; send the "
                                    "form fields (purpose ...) before the file, as the OpenAI SDKs do", param="file")
        return False

    def end(self) -> None:
        """The body ended without a file part: 400."""
        if self._state != _FILE:
            raise errors.BadRequest("file: form field required (a multipart part with a filename)", param="file")

    def _find(self, needle: bytes) -> int:
        i = self._buf.find(needle, self._from)
        if i < 0:
            self._from = max(self._from, len(self._buf) - len(needle) + 1)
        return i

    def _scan(self) -> None:
        buf, delim = self._buf, self._delim
        while True:
            if self._state == _SEEK:
                i = self._find(delim)
                if i < 0:
                    return
                after = i + len(delim)
                if len(buf) < after + 2:
                    self._from = i
                    return
                if buf[after:after + 2] == b"--":
                    raise errors.BadRequest("file: form field required (a multipart part with a filename)",
                                            param="file")
                self._state, self._start, self._from = _HEAD, i, after
            elif self._state == _HEAD:
                i = self._find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(buf[self._start:i])
                disposition = b""
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-disposition:"):
                        disposition = line.split(b":", 1)[1]
                fname = _FILENAME.search(disposition)
                if fname is not None:
                    self.file_start, self.content_start = self._start, i + 4
                    raw = fname.group(2) if fname.group(2) is not None else fname.group(1)
                    self.filename = raw.decode("utf-8", "replace")[:255]
                    self._state = _FILE
                    return
                m = _NAME.search(disposition)
                self._name = m.group(1).decode("utf-8", "replace") if m else ""
                self._state, self._start, self._from = _VALUE, i + 4, i + 4
            else:
                i = self._find(b"\r\n" + delim)
                if i < 0:
                    return
                if len(self.fields) >= _MAX_FIELDS:
                    raise errors.BadRequest(f"too many form fields before the file (at most {_MAX_FIELDS})")
                self.fields[self._name] = bytes(buf[self._start:i]).decode("utf-8", "replace").strip()
                self._state, self._from = _SEEK, i + 2


def field_part(boundary: bytes, name: str, value: str) -> bytes:
    return (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
            + value.encode() + b"\r\n")


class BatchLines:
    """Rewrites the ``body.model`` of each JSONL line of a batch input file, as the file streams (sans-IO).

    LiteLLM's managed batches let the lines name the model group (``"model": "gpt-4o-batch"``) and write the
    deployment's own model into them; this does the same: a line whose ``body.model`` is one of ``names``
    gets ``upstream``. Lines are held only until their newline, at most ``max_line`` bytes (a longer one
    passes unchanged); every other line, and everything from the multipart delimiter that closes the file on,
    passes byte for byte. Line endings (``\n``, ``\r\n``) are kept."""

    __slots__ = ("_delim", "_done", "_line", "_names", "_passing", "_upstream", "max_line", "rewritten")

    def __init__(self, boundary: bytes, names: frozenset[str], upstream: str, max_line: int = 16 << 20) -> None:
        self._delim = b"--" + boundary
        self._names = names
        self._upstream = upstream
        self._line = bytearray()
        self._done = False
        self._passing = False
        self.max_line = max_line
        self.rewritten = 0
        """Lines whose model was rewritten."""

    def feed(self, data: bytes) -> bytes:
        if self._done:
            return data
        out = bytearray()
        line = self._line
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl + 1
            if self._passing:
                out += data[start:end]
                self._passing = nl < 0
            else:
                line += data[start:end]
                if nl >= 0:
                    if line.startswith(self._delim):
                        out += line
                        out += data[end:]
                        line.clear()
                        self._done = True
                        return bytes(out)
                    out += line if len(line) > self.max_line else self._rewrite(bytes(line))
                    line.clear()
                elif len(line) > self.max_line:
                    out += line
                    line.clear()
                    self._passing = True
            start = end
        return bytes(out)

    def close(self) -> bytes:
        rest, self._line = bytes(self._line), bytearray()
        return rest if self._done or rest.startswith(self._delim) else self._rewrite(rest)

    def _rewrite(self, line: bytes) -> bytes:
        if b'"model"' not in line:
            return line
        text = line.rstrip(b"\r\n")
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return line
        body = obj.get("body") if isinstance(obj, dict) else None
        if not isinstance(body, dict) or body.get("model") not in self._names:
            return line
        body["model"] = self._upstream
        self.rewritten += 1
        return orjson.dumps(obj) + line[len(text):]


class Upload:
    """The upstream body of an upload: forwarded fields, then the client's bytes from the file part on
    (through ``lines`` when a batch file's models are rewritten)."""

    __slots__ = ("_head", "_limits", "_lines", "_more", "_receive", "_start", "_used", "length", "received")

    def __init__(self, pre: Preamble, boundary: bytes, receive: Receive, limits: BodyLimits, start: float,
                 declared: int | None, more: bool, lines: BatchLines | None = None) -> None:
        assert pre.file_start is not None
        lead = b"".join(field_part(boundary, n, pre.fields[n]) for n in FORWARDED if n in pre.fields)
        buffered = pre.buffered
        if lines is None:
            self._head = lead + bytes(buffered[pre.file_start:])
        else:
            self._head = (lead + bytes(buffered[pre.file_start:pre.content_start])
                          + lines.feed(bytes(buffered[pre.content_start:])))
        self._lines = lines
        self.received = len(buffered)
        """Bytes of the client's body read so far (what the size bound counts)."""
        self.length = None if declared is None or lines is not None else declared - self.received + len(self._head)
        """The upstream body's exact size when known ahead (else it goes chunked)."""
        self._receive = receive
        self._limits = limits
        self._start = start
        self._more = more
        self._used = False

    async def body(self) -> AsyncIterator[bytes]:
        """The body's pieces (iterable once)."""
        if self._used:
            raise RuntimeError("an upload can be sent once")
        self._used = True
        head, self._head = self._head, b""
        yield head
        limits, limit, lines = self._limits, self._limits.max_bytes, self._lines
        more = self._more
        while more:
            msg = await next_message(self._receive, limits, self._start, self.received)
            chunk: bytes = msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            self.received += len(chunk)
            if self.received > limit:
                raise too_large(self.received, limit)
            if lines is not None:
                chunk = lines.feed(chunk)
            if chunk:
                yield chunk
        if lines is not None:
            tail = lines.close()
            if tail:
                yield tail
