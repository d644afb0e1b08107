"""A real HTTP receiver for the tests of the callbacks that POST JSON, and the one way those tests drive a sink.

:class:`LoopbackServer` is a ``ThreadingHTTPServer`` on a free loopback port, served from a daemon thread, for a
stand-in with a handler of its own (:class:`QuietHandler`: HTTP/1.1, no request log), such as the GCS tests'
Google. :class:`JsonReceiver` is one with the handler written: it keeps every POST as ``(path, headers, body)``
(header names in lower case, the body decoded from JSON) and answers ``status`` with ``reply``, unless its
``check`` hook answers otherwise. The hook sees each request whole (the raw bytes too, for a signature) and is
where a stand-in keeps its own rules: a wrong path, a missing key, a body of the wrong shape. A body that is not
JSON is answered 400 and not kept. :meth:`JsonReceiver.items` waits, with a bound, for the items the posts carry.

:func:`send` builds a sink, hands it the records and closes it, all in one event loop of its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self

__all__ = ["Check", "JsonReceiver", "LoopbackServer", "QuietHandler", "Request", "overlapping", "send"]


class Request(NamedTuple):
    """One POST as a :class:`JsonReceiver` received it."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any
    """The body, decoded from JSON."""
    raw: bytes
    """The body as received."""


Check = Callable[[Request], "int | tuple[int, Any] | None"]
"""A receiver's per-request hook: ``None`` for the usual answer, a status (with the usual reply), or
``(status, reply)``."""


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that speaks HTTP/1.1 and logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass


class LoopbackServer:
    """``handler`` served on ``127.0.0.1`` at a free port from a daemon thread until :meth:`close` (or the end
    of a ``with`` block)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonReceiver(LoopbackServer):
    """Keeps each POST's path, lower-cased headers and decoded JSON body in :attr:`posts` and answers ``status``
    with ``reply`` (JSON, or no body when ``None``), or what ``check`` says."""

    def __init__(self, status: int = 200, reply: Any = None, check: Check | None = None,
                 content_type: str = "application/json") -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self.status = status
        self.reply = reply
        self.check = check
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.answer(400, None)
                receiver.posts.append((self.path, headers, body))
                said = receiver.check(Request(self.path, headers, body, raw)) if receiver.check else None
                if said is None:
                    self.answer(receiver.status, receiver.reply)
                elif isinstance(said, int):
                    self.answer(said, receiver.reply)
                else:
                    self.answer(*said)

            def answer(self, status: int, reply: Any) -> None:
                data = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                if data:
                    self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def items(self, field: str | Callable[[Any], list[Any]], want: int, timeout: float = 15.0) -> list[Any]:
        """The items of every post so far (``body[field]``, or ``field(body)``) once there are ``want`` of them,
        or all there are at ``timeout``."""
        of = field if callable(field) else (lambda body: body[field])
        deadline = time.monotonic() + timeout
        while True:
            items = [item for _, _, body in list(self.posts) for item in of(body)]
            if len(items) >= want or time.monotonic() > deadline:
                return items
            time.sleep(0.05)


def overlapping(check: Check, delay: float = 0.01) -> tuple[Check, list[int]]:
    """``check`` answering each request ``delay`` seconds late (so that requests overlap), and a one-item list
    holding the most requests it ever saw at once: how an exporter's send concurrency is measured."""
    lock, now, most = threading.Lock(), [0], [0]

    def slow(request: Request) -> int | tuple[int, Any] | None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(delay)
        with lock:
            now[0] -= 1
        return check(request)

    return slow, most


def send(make: Callable[..., Any], records: list[Any], env: dict[str, str], settings: Any,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    """The sink ``make(settings, env, on_event, flush_interval=0.01, **options)`` makes, after it has handled
    ``records`` and closed; ``events`` (when given) collects what it counted."""
    on_event = (lambda e, n: events.append((e, n))) if events is not None else None
    sink = make(settings, env, on_event, **{"flush_interval": 0.01, **options})

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink
