"""Minimal sans-IO HTTP/1.1 parsing for the bench tools: requests (mock server) and responses (load client).

This module owns the wire format the bench speaks and nothing else: it never touches sockets, clocks or the
event loop. The mock feeds it bytes from ``data_received`` and gets back complete :class:`Request` objects;
the load generator feeds it response bytes and gets callbacks for the head, each body piece and the end.

Invariants:
- Bytes may arrive split anywhere (one byte at a time, or many pipelined messages in one read); parsers keep
  a buffer and never lose or reorder messages.
- Request bodies may be ``Content-Length`` or ``Transfer-Encoding: chunked``; a malformed message raises
  :class:`ParseError` and the connection must then be closed (the parser state is undefined afterwards).
- Header names are lower-cased ``str``; values are ``str`` decoded as latin-1 (HTTP's byte-preserving view).

It is deliberately small and fast rather than complete: no obs-fold, no trailers beyond skipping them, no
HTTP/1.0 persistent connections. Speed matters because the mock and the load generator must each run far
faster than one gateway core.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ParseError", "Request", "RequestParser", "ResponseParser", "MAX_HEAD", "MAX_BODY"]

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024


class ParseError(Exception):
    """Malformed HTTP; ``status`` is what a server should answer before closing."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Request:
    """One complete HTTP request."""

    __slots__ = ("method", "target", "path", "query", "headers", "body", "keep_alive", "header_list")

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        header_list: list[tuple[str, str]],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.headers = headers
        self.header_list = header_list
        self.body = body
        self.keep_alive = keep_alive

    def query_params(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.query, keep_blank_values=True))


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str], list[tuple[str, str]]]:
    """Parse a request or status line plus header lines. Returns (a, b, c, headers, header_list)."""
    try:
        text = head.decode("latin-1")
    except Exception as exc:  # pragma: no cover - latin-1 decodes everything
        raise ParseError(str(exc)) from exc
    lines = text.split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2:
        raise ParseError(f"bad start line {lines[0][:80]!r}")
    if len(first) == 2:
        first.append("")
    headers: dict[str, str] = {}
    header_list: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t":
            raise ParseError(f"bad header line {line[:80]!r}")
        lname = name.lower()
        value = value.strip(" \t")
        header_list.append((lname, value))
        if lname in headers:
            headers[lname] = headers[lname] + ", " + value
        else:
            headers[lname] = value
    return first[0], first[1], first[2], headers, header_list


def _body_mode(headers: dict[str, str]) -> int:
    """-1 for chunked, else the Content-Length (0 when absent)."""
    te = headers.get("transfer-encoding")
    if te is not None:
        if te.lower().rsplit(",", 1)[-1].strip() != "chunked":
            raise ParseError(f"unsupported transfer-encoding {te!r}", 501)
        return -1
    cl = headers.get("content-length")
    if cl is None:
        return 0
    if not cl.isdigit():
        raise ParseError(f"bad content-length {cl!r}")
    n = int(cl)
    if n > MAX_BODY:
        raise ParseError("body too large", 413)
    return n


class _Dechunker:
    """Incremental ``Transfer-Encoding: chunked`` decoder over a shared bytearray buffer."""

    __slots__ = ("remaining", "state", "total")

    # states: 0 = expect size line, 1 = in chunk data, 2 = expect CRLF after data, 3 = trailers, 4 = done
    def __init__(self) -> None:
        self.remaining = 0
        self.state = 0
        self.total = 0

    def step(self, buf: bytearray, pos: int, out: Callable[[bytes], None]) -> int:
        """Consume from ``buf[pos:]``; call ``out`` with data pieces. Returns the new position."""
        n = len(buf)
        while pos < n:
            st = self.state
            if st == 1:
                take = min(self.remaining, n - pos)
                out(bytes(buf[pos : pos + take]))
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = 2
            elif st == 0:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise ParseError("chunk size line too long")
                    return pos
                size_s = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
                try:
                    size = int(size_s, 16)
                except ValueError:
                    raise ParseError(f"bad chunk size {size_s[:20]!r}") from None
                pos = eol + 2
                self.total += size
                if self.total > MAX_BODY:
                    raise ParseError("body too large", 413)
                if size == 0:
                    self.state = 3
                else:
                    self.remaining = size
                    self.state = 1
            elif st == 2:
                if n - pos < 2:
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise ParseError("missing CRLF after chunk")
                pos += 2
                self.state = 0
            elif st == 3:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return pos
                if eol == pos:
                    self.state = 4
                    return pos + 2
                pos = eol + 2  # skip a trailer line
            else:
                return pos
        return pos

    @property
    def done(self) -> bool:
        return self.state == 4


class RequestParser:
    """Feed bytes, get complete requests. ``expect_continue`` is set when a head asked for 100-continue."""

    __slots__ = ("_buf", "_head", "_need", "_chunks", "_dechunk", "expect_continue")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head: tuple[str, str, dict[str, str], list[tuple[str, str]], bool] | None = None
        self._need = 0
        self._chunks: list[bytes] = []
        self._dechunk: _Dechunker | None = None
        self.expect_continue = False

    def feed(self, data: bytes) -> list[Request]:
        buf = self._buf
        buf += data
        out: list[Request] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if self._head is None:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD:
                        raise ParseError("request head too large", 431)
                    break
                method, target, version, headers, header_list = _parse_head(bytes(buf[pos:end]))
                pos = end + 4
                if not version.startswith("HTTP/1."):
                    raise ParseError(f"unsupported version {version[:20]!r}", 505)
                conn = headers.get("connection", "").lower()
                keep_alive = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
                self._head = (method, target, headers, header_list, keep_alive)
                mode = _body_mode(headers)
                if mode < 0:
                    self._dechunk = _Dechunker()
                    self._chunks = []
                else:
                    self._need = mode
                if headers.get("expect", "").lower() == "100-continue":
                    self.expect_continue = True
            if self._dechunk is not None:
                pos = self._dechunk.step(buf, pos, self._chunks.append)
                if not self._dechunk.done:
                    break
                body = b"".join(self._chunks)
                self._chunks = []
                self._dechunk = None
            else:
                if n - pos < self._need:
                    break
                body = bytes(buf[pos : pos + self._need])
                pos += self._need
                self._need = 0
            method, target, headers, header_list, keep_alive = self._head
            self._head = None
            out.append(Request(method, target, headers, header_list, body, keep_alive))
        if pos:
            del buf[:pos]
        return out

    @property
    def waiting_for_body(self) -> bool:
        return self._head is not None


class ResponseParser:
    """Incremental response parser driving callbacks; used by the load generator.

    ``on_head(status, headers)`` once per response, ``on_body(piece)`` for each de-chunked piece (only when
    ``want_body`` is true, else bodies are counted but not copied), ``on_end(keep_alive)`` when the response
    is complete. Responses to HEAD requests are not supported (the bench never sends them).
    """

    __slots__ = (
        "_buf", "_in_head", "_need", "_dechunk", "_until_close", "_keep_alive",
        "on_head", "on_body", "on_end", "body_bytes",
    )

    def __init__(
        self,
        on_head: Callable[[int, dict[str, str]], None],
        on_body: Callable[[bytes], None],
        on_end: Callable[[bool], None],
    ) -> None:
        self._buf = bytearray()
        self._in_head = True
        self._need = 0
        self._dechunk: _Dechunker | None = None
        self._until_close = False
        self._keep_alive = True
        self.on_head = on_head
        self.on_body = on_body
        self.on_end = on_end
        self.body_bytes = 0

    def _piece(self, piece: bytes) -> None:
        self.body_bytes += len(piece)
        self.on_body(piece)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while pos < n:
            if self._in_head:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD:
                        raise ParseError("response head too large")
                    break
                version, code, _reason, headers, _ = _parse_head(bytes(buf[pos:end]))
                pos = end + 4
                if not version.startswith("HTTP/1.") or not code.isdigit():
                    raise ParseError(f"bad status line {version!r} {code!r}")
                status = int(code)
                if 100 <= status < 200:
                    continue  # interim response, e.g. 100 Continue
                conn = headers.get("connection", "").lower()
                self._keep_alive = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
                self._in_head = False
                self.body_bytes = 0
                self.on_head(status, headers)
                if status == 204 or status == 304:
                    mode = 0
                elif "transfer-encoding" in headers or "content-length" in headers:
                    mode = _body_mode(headers)
                else:
                    mode = -2
                if mode == -1:
                    self._dechunk = _Dechunker()
                elif mode == -2:
                    self._until_close = True
                    self._keep_alive = False
                else:
                    self._need = mode
                    if mode == 0:
                        self._in_head = True
                        self.on_end(self._keep_alive)
                        continue
            if self._dechunk is not None:
                pos = self._dechunk.step(buf, pos, self._piece)
                if not self._dechunk.done:
                    break
                self._dechunk = None
                self._in_head = True
                self.on_end(self._keep_alive)
            elif self._until_close:
                self._piece(bytes(buf[pos:n]))
                pos = n
            else:
                take = min(self._need, n - pos)
                if take:
                    self._piece(bytes(buf[pos : pos + take]))
                pos += take
                self._need -= take
                if self._need == 0:
                    self._in_head = True
                    self.on_end(self._keep_alive)
        if pos:
            del buf[:pos]

    def eof(self) -> bool:
        """The peer closed. Returns True if that completed a read-until-close response."""
        if self._until_close and not self._in_head:
            self._until_close = False
            self._in_head = True
            self.on_end(False)
            return True
        return False

    @property
    def idle(self) -> bool:
        """True between responses (no partial response buffered)."""
        return self._in_head and not self._buf
