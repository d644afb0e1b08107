"""The bench's calibration systems: a raw proxy and a hello world, served by Granian as relaygate is.

Issue 18 measures relaygate's CPU per request against the least a Python proxy on this stack can spend:
a bare ASGI app on the same server (Granian, ASGI interface, uvloop, one worker, HTTP/1.1, the same
backlog, backpressure and header timeout as ``relaygate serve``) that relays each request to the upstream
and back with nothing in between: no auth, routing, limits, metrics or logging. Two modes, chosen by
environment variables (the Granian worker imports ``bench.peers.rawproxy:app``):

- relay (``RAWPROXY_UPSTREAM=http://127.0.0.1:PORT``): the method, path and query, body and the
  ``content-type``/``authorization``/``x-api-key``/``anthropic-version`` headers go to the upstream over a
  pool of keep-alive HTTP/1.1 connections driven by an ``asyncio.Protocol`` (no HTTP client library).
  ``RAWPROXY_UPSTREAM_KEY=K`` replaces the client's credentials with ``Bearer K`` (and ``x-api-key: K``
  when one was sent), as a gateway holding the provider key does. The status and content type come back;
  a ``Content-Length`` body in one ``http.response.body``, a chunked (SSE) body piece by piece as it
  arrives (``more_body=True``). An upstream that cannot be reached, or breaks before its head, is a 502
  JSON error; one that breaks mid-body ends the client's response there.
- hello (``RAWPROXY_HELLO=1``): every request is answered with one fixed small ``chat.completion``; with
  ``RAWPROXY_ANSWER=FILE`` (``--answer FILE``) with the status, headers and body in that JSON file
  (``{"status": 200, "headers": [[name, value], ...], "body": text}``) instead: ``bench.scenarios_cache``'s
  floor, the bytes a cache hit answers served by nothing but Granian.

``GET /health/*`` answers 200 locally in both modes (the bench's readiness poll). Like ``relaygate serve``,
the worker's threads run under ``SCHED_BATCH`` (``relaygate.http.sched``) unless ``--scheduling normal``:
the calibration gets the same operating-system treatment as the gateway it calibrates.

Invariants: a connection goes back to the pool only after its response ended, neither side asked to
close, and no byte followed the response; a broken or closed connection is dropped, never reused. At most
``MAX_IDLE`` idle connections are kept. There is no flow control towards a slow client and no timeout:
this is a calibration for loopback benchmarks, not a gateway. The response parser
(:class:`ResponseParser`) is sans-IO and pure Python, so the unit tests feed it bytes split anywhere.

``python -m bench.peers.rawproxy --port P (--upstream URL [--upstream-key K] | --hello [--answer FILE])``
starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HELLO_BODY", "MAX_IDLE", "ParseError", "Pool", "RawProxy", "ResponseParser", "app", "main", "read_answer"]

MAX_IDLE = 256
MAX_HEAD = 64 * 1024
FORWARDED = frozenset({b"content-type", b"authorization", b"x-api-key", b"anthropic-version"})

HELLO_BODY = json.dumps({
    "id": "chatcmpl-hello", "object": "chat.completion", "created": 1767225600, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}, separators=(",", ":")).encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_HEALTH_BODY = b'{"status":"healthy"}'

# chunked decoder states
_SIZE, _DATA, _CRLF, _TRAILER = 0, 1, 2, 3


class ParseError(Exception):
    """The upstream sent something that is not an HTTP/1.1 response this parser handles."""


class ResponseParser:
    """Sans-IO HTTP/1.1 response parser for one connection: ``feed`` bytes, read the state.

    After the head: ``status``, ``content_type``, ``chunked``, ``keep_alive``. Body bytes (de-chunked)
    accumulate in ``pieces`` until the reader takes them; ``done`` when the response ended. ``reusable``
    is false once the connection must not carry another request. ``reset()`` before each request.
    """

    __slots__ = ("_buf", "_need", "_state", "chunked", "content_type", "done", "head_done", "keep_alive",
                 "pieces", "reusable", "status", "until_close")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = b""
        self._need = 0
        self._state = _SIZE
        self.status = 0
        self.content_type = b""
        self.chunked = self.until_close = self.head_done = self.done = False
        self.keep_alive = self.reusable = True
        self.pieces: list[bytes] = []

    def feed(self, data: bytes) -> None:
        if self.done:
            if data:
                self.reusable = False  # bytes after the response: never reuse this connection
            return
        buf = self._buf + data if self._buf else data
        if not self.head_done:
            buf = self._head(buf)
            if not self.head_done:
                self._buf = buf
                return
        if self.done:
            pass
        elif self.chunked:
            buf = self._dechunk(buf)
        elif self.until_close:
            if buf:
                self.pieces.append(buf)
            buf = b""
        else:
            take = self._need
            if len(buf) <= take:
                if buf:
                    self.pieces.append(buf)
                self._need -= len(buf)
                buf = b""
            else:
                self.pieces.append(buf[:take])
                self._need = 0
                buf = buf[take:]
            if self._need == 0:
                self.done = True
        if buf and self.done:
            self.reusable = False
            buf = b""
        self._buf = buf

    def eof(self) -> None:
        """The upstream closed: that ends a read-until-close body; anything else unfinished is an error."""
        self.reusable = False
        if self.head_done and self.until_close:
            self.done = True
        elif not self.done:
            raise ParseError("the upstream closed the connection before the response ended")

    def _head(self, buf: bytes) -> bytes:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ParseError("response head too large")
                return buf
            lines = buf[:end].split(b"\r\n")
            buf = buf[end + 4:]
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ParseError(f"bad status line {lines[0][:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200:
                continue  # an interim response (100 Continue): the real head follows
            length = -1
            self.keep_alive = parts[0] == b"HTTP/1.1"
            for line in lines[1:]:
                name, colon, value = line.partition(b":")
                if not colon:
                    raise ParseError(f"bad header line {line[:80]!r}")
                name = name.strip().lower()
                if name == b"content-length":
                    value = value.strip()
                    if not value.isdigit():
                        raise ParseError(f"bad content-length {value[:20]!r}")
                    length = int(value)
                elif name == b"transfer-encoding":
                    if value.strip().lower().rsplit(b",", 1)[-1].strip() != b"chunked":
                        raise ParseError(f"unsupported transfer-encoding {value[:40]!r}")
                    self.chunked = True
                elif name == b"content-type":
                    self.content_type = value.strip()
                elif name == b"connection":
                    value = value.strip().lower()
                    if b"close" in value:
                        self.keep_alive = False
                    elif b"keep-alive" in value:
                        self.keep_alive = True
            self.status = status
            self.head_done = True
            if not self.keep_alive:
                self.reusable = False
            if self.chunked:
                return buf
            if status in (204, 304) or length == 0:
                self.done = True
            elif length > 0:
                self._need = length
            else:
                self.until_close = True
                self.reusable = False
            return buf

    def _dechunk(self, buf: bytes) -> bytes:
        pos, n, state = 0, len(buf), self._state
        pieces = self.pieces
        while pos < n:
            if state == _DATA:
                take = min(self._need, n - pos)
                pieces.append(buf[pos:pos + take])
                pos += take
                self._need -= take
                if self._need == 0:
                    state = _CRLF
            elif state == _SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise ParseError("chunk size line too long")
                    break
                try:
                    size = int(buf[pos:eol].split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ParseError(f"bad chunk size {buf[pos:eol][:20]!r}") from None
                pos = eol + 2
                if size:
                    self._need = size
                    state = _DATA
                else:
                    state = _TRAILER
            elif state == _CRLF:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise ParseError("no CRLF after a chunk")
                pos += 2
                state = _SIZE
            else:  # trailers, ended by an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                empty = eol == pos
                pos = eol + 2
                if empty:
                    self.done = True
                    break
        self._state = state
        return buf[pos:]


class _Conn(asyncio.Protocol):
    """One keep-alive connection to the upstream; ``wait()`` returns when anything new arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except ParseError as exc:
            self.error = exc
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        try:
            self.parser.eof()
        except ParseError as err:
            self.error = self.error or err
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one upstream origin: idle ones LIFO, at most ``MAX_IDLE`` kept."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[_Conn] = []
        self.opened = 0  # connections ever opened (tests read it)

    def take(self) -> _Conn | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self) -> _Conn:
        _, conn = await asyncio.get_running_loop().create_connection(_Conn, self.host, self.port)
        self.opened += 1
        return conn

    def release(self, conn: _Conn) -> None:
        p = conn.parser
        if p.done and p.reusable and not conn.closed and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


async def _read_body(receive: Any) -> bytes:
    msg = await receive()
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body"):
        return body
    parts = [body]
    while msg.get("more_body"):
        msg = await receive()
        parts.append(msg.get("body", b""))
    return b"".join(parts)


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


class _Broken(Exception):
    pass


class RawProxy:
    """The ASGI app: relay to ``upstream`` (``http://host:port``), or answer hello (``hello=True``)."""

    def __init__(self, upstream: str | None = None, upstream_key: str | None = None, hello: bool = False,
                 answer: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None) -> None:
        self.hello = hello or not upstream
        self.answer = answer or (200, _JSON_HEADERS, HELLO_BODY)
        """(status, headers, body) of every hello answer."""
        self.pool: Pool | None = None
        self.key = upstream_key.encode() if upstream_key else None
        self.sched: asyncio.Task[None] | None = None
        if upstream and not hello:
            u = urlsplit(upstream)
            if u.scheme != "http" or not u.hostname:
                raise ValueError(f"RAWPROXY_UPSTREAM must be http://host:port, not {upstream!r}")
            port = u.port or 80
            self.pool = Pool(u.hostname, port)
            self.host_line = b"host: %s:%d\r\n" % (u.hostname.encode(), port)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith("/health"):
                await _respond(send, 200, _HEALTH_BODY)
            elif self.pool is None:
                await _read_body(receive)
                status, headers, body = self.answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await self._relay(self.pool, scope, receive, send)
        elif kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    if os.environ.get("RAWPROXY_BATCH") == "1":  # as ``relaygate serve`` does by default
                        from relaygate.http import sched

                        self.sched = asyncio.get_running_loop().create_task(sched.keep_batch(sched.batch_threads()))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.pool is not None:
                        self.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def request_bytes(self, scope: dict[str, Any], body: bytes) -> bytes:
        """The upstream request: method, path and query, the forwarded headers, the body."""
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        out = [b"%s %s HTTP/1.1\r\n" % (scope["method"].encode(), target), self.host_line,
               b"content-length: %d\r\n" % len(body)]
        key = self.key
        for name, value in scope["headers"]:
            if name in FORWARDED:
                if key is not None and name == b"authorization":
                    value = b"Bearer " + key
                elif key is not None and name == b"x-api-key":
                    value = key
                out.append(b"%s: %s\r\n" % (name, value))
        out.append(b"\r\n")
        out.append(body)
        return b"".join(out)

    async def _relay(self, pool: Pool, scope: dict[str, Any], receive: Any, send: Any) -> None:
        req = self.request_bytes(scope, await _read_body(receive))
        try:
            conn = pool.take() or await pool.connect()
        except OSError as exc:
            await _respond(send, 502, _error(f"upstream unreachable: {exc}"))
            return
        p = conn.parser
        p.reset()
        conn.error = None
        assert conn.transport is not None
        conn.transport.write(req)
        started = False
        try:
            while not p.head_done:
                if conn.error is not None or conn.closed:
                    raise _Broken(str(conn.error or "the upstream closed the connection"))
                await conn.wait()
            start = {"type": "http.response.start", "status": p.status,
                     "headers": [(b"content-type", p.content_type)] if p.content_type else []}
            if not p.chunked:
                while not p.done:
                    if conn.error is not None:
                        raise _Broken(str(conn.error))
                    await conn.wait()
                started = True
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(p.pieces)})
            else:
                started = True
                await send(start)
                while True:
                    if p.pieces:
                        chunk = b"".join(p.pieces)
                        p.pieces.clear()
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if p.done:
                        break
                    if conn.error is not None:
                        raise _Broken(str(conn.error))
                    await conn.wait()
                await send({"type": "http.response.body", "body": b""})
        except _Broken as exc:
            conn.close()
            if started:
                await send({"type": "http.response.body", "body": b""})
            else:
                await _respond(send, 502, _error(f"upstream broke: {exc}"))
            return
        except BaseException:
            conn.close()
            raise
        pool.release(conn)


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "upstream_error", "param": None,
                                 "code": "502"}}).encode()


def read_answer(path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) from an answer file: ``{"status": 200, "headers": [[name, value], ...],
    "body": text}``. ``content-length`` is the body's own (a stale one in the file is dropped)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    body = str(doc["body"]).encode()
    headers = [(str(k).lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in doc.get("headers", ())
               if str(k).lower() != "content-length"]
    return int(doc.get("status", 200)), [*headers, (b"content-length", b"%d" % len(body))], body


def _from_env() -> RawProxy:
    answer = os.environ.get("RAWPROXY_ANSWER") or None
    return RawProxy(os.environ.get("RAWPROXY_UPSTREAM") or None, os.environ.get("RAWPROXY_UPSTREAM_KEY") or None,
                    os.environ.get("RAWPROXY_HELLO", "") not in ("", "0") or answer is not None,
                    read_answer(answer) if answer else None)


app = _from_env()


def main(argv: list[str] | None = None) -> int:
    """Serve ``app`` with Granian exactly as ``relaygate serve`` serves ``relaygate.asgi:app``."""
    p = argparse.ArgumentParser(prog="python -m bench.peers.rawproxy", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--upstream", help="relay to this origin, http://host:port")
    mode.add_argument("--hello", action="store_true", help="answer a fixed chat.completion")
    p.add_argument("--upstream-key", help="replace the client's credentials with this key")
    p.add_argument("--answer", metavar="FILE", help="hello: answer with the status, headers and body in this JSON "
                   "file ({\"status\": 200, \"headers\": [[name, value], ...], \"body\": text})")
    p.add_argument("--scheduling", choices=("batch", "normal"), default="batch",
                   help="the worker's threads on SCHED_BATCH, as relaygate serve's default (relaygate.http.sched)")
    a = p.parse_args(argv)
    os.environ["RAWPROXY_BATCH"] = "1" if a.scheduling == "batch" else ""
    os.environ["RAWPROXY_HELLO"] = "1" if a.hello else ""
    os.environ["RAWPROXY_UPSTREAM"] = a.upstream or ""
    os.environ["RAWPROXY_UPSTREAM_KEY"] = a.upstream_key or ""
    if a.answer and not a.hello:
        p.error("--answer goes with --hello")
    os.environ["RAWPROXY_ANSWER"] = os.path.abspath(a.answer) if a.answer else ""

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from relaygate.cli import connection_limits, raise_file_limit
    from relaygate.config.model import ServerSettings

    limits = connection_limits(ServerSettings(), raise_file_limit())
    Server(
        "bench.peers.rawproxy:app", address=a.host, port=a.port, interface=Interfaces.ASGI, workers=1,
        loop=Loops.uvloop, http=HTTPModes("1"), websockets=False, backlog=limits.backlog,
        backpressure=limits.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=limits.header_read_timeout_ms),
        log_enabled=True, log_access=False, log_level=LogLevels.warning, respawn_failed_workers=True,
    ).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
