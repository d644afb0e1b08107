"""HTTP/1.1 responses from upstreams: the pure-Python twin of ``ext/_http1_c.pyx`` (the reference).

This module owns the wire format between the gateway and its providers, sans-IO in the manner of h11:
:class:`ResponseParser` takes whatever bytes the socket produced and returns events; the transport in
``relaygate.upstream.h1`` owns sockets, pools and timeouts. :func:`build_request` makes request bytes;
:func:`build_request_head` the head of a request whose body is streamed after it.

Events are deliberately compact, because the transport handles several per request: a :class:`Head`
instance, then body data as plain ``bytes`` objects (no wrapper; ``type(ev) is bytes``), then the
singleton :data:`END`. The head carries ``status``, ``reason``, ``headers`` (lower-case names, bytes
values, in order), ``keep_alive``, ``content_length`` and ``chunked``.

Framing follows RFC 9112 section 6.3: 1xx interim responses (100 Continue, 103 Early Hints) are skipped
and 101 is an error (the gateway never asks to upgrade); responses to HEAD and 204/304 have no body;
``Transfer-Encoding`` ending in ``chunked`` wins over ``Content-Length``; another transfer coding, or
neither header, means the body runs until the connection closes (:meth:`ResponseParser.feed_eof`).
``keep_alive`` is HTTP/1.1's default unless ``Connection: close``, HTTP/1.0's only with
``Connection: keep-alive``, and never for a read-until-close body.

Invariants: the events do not depend on how the input was split; bytes after the end of a response
stay buffered (:attr:`ResponseParser.buffered`, the transport then refuses to reuse the connection);
garbage raises :class:`relaygate.core.errors.UpstreamProtocolError` and leaves the parser unusable:
a malformed status line or header, obs-fold continuation lines, a head over :data:`MAX_HEAD` bytes,
a conflicting or non-numeric ``Content-Length``, a chunk-size line over :data:`MAX_CHUNK_LINE` bytes
or not hexadecimal, missing CRLF after chunk data. LF-only line ends are tolerated.
"""

from __future__ import annotations

from relaygate.core.errors import UpstreamProtocolError

__all__ = [
    "END", "MAX_CHUNK_LINE", "MAX_HEAD", "End", "Head", "ResponseParser", "build_request", "build_request_head",
]

#: Largest accepted response head (status line and headers), and trailer section.
MAX_HEAD = 65536
#: Largest accepted chunk-size line (size, extensions, CRLF).
MAX_CHUNK_LINE = 4096

_S_HEAD = 0
_S_LENGTH = 1
_S_CHUNK_SIZE = 2
_S_CHUNK_DATA = 3
_S_CHUNK_END = 4
_S_TRAILERS = 5
_S_UNTIL_EOF = 6
_S_DONE = 7
_S_ERROR = 8

_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_NO_BODY_METHODS = frozenset(("GET", "HEAD"))
_SKIP_REQUEST_HEADERS = frozenset(("host", "content-length", "transfer-encoding"))


class Head:
    """The response head: status line, headers and the framing decided from them."""

    __slots__ = ("chunked", "content_length", "headers", "http_version", "keep_alive", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked

    def header(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self) -> str:
        return (
            f"Head(status={self.status}, reason={self.reason!r}, headers={self.headers!r}, "
            f"keep_alive={self.keep_alive}, content_length={self.content_length}, chunked={self.chunked})"
        )


class End:
    """The end of a response body. Use the singleton :data:`END`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = End()


def _error(message: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"invalid HTTP response from upstream: {message}")


def _header_tokens(value: bytes) -> list[bytes]:
    return [t.strip(b" \t").lower() for t in value.split(b",")]


class ResponseParser:
    """Incremental parser for one HTTP/1.1 response (reusable with :meth:`reset` for the next)."""

    __slots__ = ("_buf", "_method_is_head", "_remaining", "_state", "head", "trailers")

    def __init__(self, method_is_head: bool = False) -> None:
        self._buf = b""
        self._state = _S_HEAD
        self._remaining = 0
        self._method_is_head = method_is_head
        #: The head of the current response once parsed.
        self.head: Head | None = None
        #: Trailer fields of a chunked body (lower-case names).
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def done(self) -> bool:
        """True once the current response ended."""
        return self._state == _S_DONE

    @property
    def buffered(self) -> int:
        """Bytes received but not consumed (after :data:`END`: bytes the upstream should not have sent)."""
        return len(self._buf)

    def reset(self, method_is_head: bool = False) -> None:
        """Prepare for the next response on the same connection."""
        self._state = _S_HEAD
        self._remaining = 0
        self._method_is_head = method_is_head
        self.head = None
        self.trailers = []

    def feed(self, data: bytes) -> list[object]:
        """Consume ``data``; return the events it completes (:class:`Head`, body ``bytes``, :data:`END`)."""
        if self._buf:
            buf = self._buf + data
        else:
            buf = data if type(data) is bytes else bytes(data)
        out: list[object] = []
        pos = 0
        n = len(buf)
        state = self._state
        try:
            while pos < n:
                if state == _S_LENGTH:
                    take = min(self._remaining, n - pos)
                    out.append(buf if take == n else buf[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        out.append(END)
                        state = _S_DONE
                elif state == _S_CHUNK_DATA:
                    take = min(self._remaining, n - pos)
                    out.append(buf if take == n else buf[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        state = _S_CHUNK_END
                elif state == _S_CHUNK_SIZE:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        if n - pos > MAX_CHUNK_LINE:
                            raise _error("chunk-size line too long")
                        break
                    if nl - pos > MAX_CHUNK_LINE:
                        raise _error("chunk-size line too long")
                    line = buf[pos:nl]
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    size = line.split(b";", 1)[0].strip(b" \t")
                    if not size or len(size) > 16 or size.translate(None, _HEX):
                        raise _error(f"bad chunk size {size[:20]!r}")
                    pos = nl + 1
                    self._remaining = int(size, 16)
                    state = _S_CHUNK_DATA if self._remaining else _S_TRAILERS
                elif state == _S_CHUNK_END:
                    if buf[pos] == 10:
                        pos += 1
                    elif buf[pos] == 13:
                        if pos + 1 >= n:
                            break
                        if buf[pos + 1] != 10:
                            raise _error("missing CRLF after chunk data")
                        pos += 2
                    else:
                        raise _error("missing CRLF after chunk data")
                    state = _S_CHUNK_SIZE
                elif state == _S_TRAILERS:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        if n - pos > MAX_HEAD:
                            raise _error("trailer section too long")
                        break
                    line = buf[pos:nl]
                    pos = nl + 1
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if not line:
                        out.append(END)
                        state = _S_DONE
                        continue
                    self.trailers.append(self._field(line))
                    if len(self.trailers) > 1000:
                        raise _error("too many trailer fields")
                elif state == _S_HEAD:
                    end = self._head_end(buf, pos)
                    if end < 0:
                        if n - pos > MAX_HEAD:
                            raise _error("response head too large")
                        break
                    if end - pos > MAX_HEAD:
                        raise _error("response head too large")
                    head = self._parse_head(buf[pos:end])
                    pos = end
                    if head is None:  # 1xx interim response: skip it
                        continue
                    self.head = head
                    out.append(head)
                    status = head.status
                    if self._method_is_head or status == 204 or status == 304:
                        out.append(END)
                        state = _S_DONE
                    elif head.chunked:
                        state = _S_CHUNK_SIZE
                    elif head.content_length is not None:
                        if head.content_length:
                            self._remaining = head.content_length
                            state = _S_LENGTH
                        else:
                            out.append(END)
                            state = _S_DONE
                    else:
                        state = _S_UNTIL_EOF
                elif state == _S_UNTIL_EOF:
                    out.append(buf if pos == 0 else buf[pos:])
                    pos = n
                elif state == _S_DONE:
                    break
                else:
                    raise _error("parser used after an error")
        except UpstreamProtocolError:
            self._state = _S_ERROR
            self._buf = b""
            raise
        self._state = state
        self._buf = buf[pos:] if pos else buf
        return out

    def feed_eof(self) -> list[object]:
        """The connection closed: end a read-until-close body, or raise if the response is incomplete."""
        state = self._state
        if state == _S_UNTIL_EOF:
            self._state = _S_DONE
            return [END]
        if state == _S_DONE:
            return []
        self._state = _S_ERROR
        if state == _S_HEAD:
            raise _error("connection closed before the response head was complete")
        raise _error("connection closed before the response body was complete")

    @staticmethod
    def _head_end(buf: bytes, pos: int) -> int:
        """Index just past the blank line that ends the head starting at ``pos``, or -1."""
        i = buf.find(b"\n\r\n", pos)
        j = buf.find(b"\n\n", pos, i + 3 if i >= 0 else len(buf))
        if j >= 0:
            return j + 2
        return i + 3 if i >= 0 else -1

    def _parse_head(self, raw: bytes) -> Head | None:
        lines = raw.split(b"\n")
        # raw ends with the blank line: drop the two trailing (empty) pieces
        while lines and lines[-1] in (b"", b"\r"):
            lines.pop()
        if not lines:
            raise _error("empty status line")
        status_line = lines[0]
        if status_line.endswith(b"\r"):
            status_line = status_line[:-1]
        if (
            len(status_line) < 12
            or not status_line.startswith(b"HTTP/1.")
            or status_line[7] not in (48, 49)
            or status_line[8] != 32
            or not status_line[9:12].isdigit()
            or (len(status_line) > 12 and status_line[12] != 32)
        ):
            raise _error(f"bad status line {status_line[:40]!r}")
        status = int(status_line[9:12])
        if status < 100:
            raise _error(f"bad status code {status}")
        http11 = status_line[7] == 49
        if 100 <= status < 200:
            if status == 101:
                raise _error("unexpected 101 Switching Protocols")
            return None
        headers: list[tuple[bytes, bytes]] = []
        content_length: int | None = None
        te: list[bytes] | None = None
        conn_close = False
        conn_keep_alive = False
        field = self._field
        for line in lines[1:]:
            if line.endswith(b"\r"):
                line = line[:-1]
            name, value = field(line)
            headers.append((name, value))
            if name == b"content-length":
                for part in value.split(b","):
                    part = part.strip(b" \t")
                    if not part.isdigit() or len(part) > 18:
                        raise _error(f"bad content-length {value[:40]!r}")
                    cl = int(part)
                    if content_length is not None and cl != content_length:
                        raise _error("conflicting content-length values")
                    content_length = cl
            elif name == b"transfer-encoding":
                te = (te or []) + _header_tokens(value)
            elif name == b"connection":
                for tok in _header_tokens(value):
                    if tok == b"close":
                        conn_close = True
                    elif tok == b"keep-alive":
                        conn_keep_alive = True
        chunked = False
        until_eof = False
        if te is not None:
            content_length = None
            if te[-1] == b"chunked":
                chunked = True
            else:
                until_eof = True
        elif content_length is None:
            until_eof = True
        if self._method_is_head or status == 204 or status == 304:
            until_eof = False
        keep_alive = (not conn_close if http11 else conn_keep_alive and not conn_close) and not until_eof
        return Head(
            status,
            status_line[13:],
            b"1.1" if http11 else b"1.0",
            headers,
            keep_alive,
            content_length,
            chunked,
        )

    @staticmethod
    def _field(line: bytes) -> tuple[bytes, bytes]:
        if not line:
            raise _error("empty header line")
        if line[0] in (32, 9):
            raise _error("obsolete line folding in header")
        colon = line.find(b":")
        if colon <= 0:
            raise _error(f"bad header line {line[:40]!r}")
        name = line[:colon]
        if name.translate(None, _TOKEN):
            raise _error(f"bad header name {name[:40]!r}")
        value = line[colon + 1 :].strip(b" \t")
        if b"\r" in value or b"\x00" in value:
            raise _error("bad character in header value")
        return name.lower(), value


def _head_start(method: str, host: str, path: str, headers: list[tuple[str, str]]) -> tuple[list[str], int]:
    """Request line, ``Host`` and the caller's headers (less those we compute); the line ends counted."""
    parts = [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n"]
    lines = 2
    for name, value in headers:
        if name.lower() in _SKIP_REQUEST_HEADERS:
            continue
        parts += (name, ": ", value, "\r\n")
        lines += 1
    return parts, lines


def _head_bytes(parts: list[str], lines: int) -> bytes:
    """Join and encode a head; any CR or LF beyond the ``lines`` we wrote is header injection."""
    text = "".join(parts)
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF in request line or header")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"request head is not latin-1: {exc}") from None


def build_request(method: str, host: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Request bytes: request line, ``Host``, the given headers, ``Content-Length``, blank line, body.

    ``Host``, ``Content-Length`` and ``Transfer-Encoding`` in ``headers`` are replaced by the computed
    ones. ``Content-Length`` is sent unless the method is GET or HEAD with an empty body. Raises
    ValueError if any part contains CR or LF (header injection) or is not latin-1.
    """
    parts, lines = _head_start(method, host, path, headers)
    if body or method not in _NO_BODY_METHODS:
        parts += ("Content-Length: ", str(len(body)), "\r\n\r\n")
        lines += 2
    else:
        parts.append("\r\n")
        lines += 1
    return _head_bytes(parts, lines) + body


def build_request_head(
    method: str, host: str, path: str, headers: list[tuple[str, str]], content_length: int | None
) -> bytes:
    """The head of a request whose body the caller streams after it: request line, ``Host``, the given
    headers, then ``Content-Length: content_length``, or ``Transfer-Encoding: chunked`` when it is None
    (the caller then frames each piece as a chunk and ends with ``0\\r\\n\\r\\n``), and the blank line.

    ``Host``, ``Content-Length`` and ``Transfer-Encoding`` in ``headers`` are replaced. Raises ValueError
    for a negative length, CR or LF in any part (header injection), or a head that is not latin-1.
    """
    parts, lines = _head_start(method, host, path, headers)
    if content_length is None:
        parts.append("Transfer-Encoding: chunked\r\n\r\n")
    elif content_length < 0:
        raise ValueError("negative Content-Length")
    else:
        parts += ("Content-Length: ", str(content_length), "\r\n\r\n")
    return _head_bytes(parts, lines + 2)
