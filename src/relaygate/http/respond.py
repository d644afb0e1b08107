"""The response side of a request: whole responses (a JSON body with its length; the OpenAI-shaped error every
route answers with unless its frontend has a shape of its own), client disconnects, and SSE keepalives.

Every error response carries ``x-litellm-version`` and, once the request has one, its ``x-litellm-call-id``;
headers an error brings (``retry-after``, ``x-ratelimit-*``, ``allow``) are added.

A request's liveness: client disconnects are learnt from ``receive()``, because Granian swallows ``send`` to a
closed connection; a stream sends SSE comment keepalives while it waits for its first token.

:class:`DisconnectWatch` waits on ``receive()`` beside a request's work and cancels the work's task when
``http.disconnect`` arrives, so the upstream call is cancelled too. Invariant: once :meth:`DisconnectWatch.stop`
has run, nothing Granian holds (its receive future and that future's callback) references the watch, the
task or the request, whether the future is still pending or already resolved:

- Granian never resolves a ``receive()`` left pending after the response, so a pending one is cancelled;
- Granian's future keeps its done callback after it resolved (an asyncio future drops it once scheduled),
  and it is invisible to the cycle collector: the cycle future -> callback -> watch -> future of a request
  whose client went away is never freed unless the callback is removed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from relaygate import __version__
from relaygate.core.errors import GatewayError
from relaygate.http.types import Headers, Message, Receive, Send

VERSION = __version__.encode()
JSON = (b"content-type", b"application/json")


async def send_body(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """One response: ``headers`` (completed here with ``content-length``) and ``body`` in one piece."""
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """A JSON response; ``body`` is already encoded. ``headers`` (appended to) may be left out."""
    hs = headers if headers is not None else []
    hs.append(JSON)
    await send_body(send, status, body, hs)


async def send_error(send: Send, exc: GatewayError, call_id: bytes | None = None) -> None:
    """``exc`` as an OpenAI-format error body with its status (``GatewayError.body``)."""
    headers = [(b"x-litellm-version", VERSION)]
    if call_id:
        headers.append((b"x-litellm-call-id", call_id))
    headers.extend(exc.headers)
    await send_json(send, exc.status, exc.body(), headers)


async def send_quiet(send: Send, body: bytes, more: bool) -> None:
    """A body piece to a client that may be gone: a failed send is ignored."""
    try:
        await send({"type": "http.response.body", "body": body, "more_body": more})
    except (OSError, RuntimeError):
        pass


KEEPALIVE = b": keepalive\n\n"


class DisconnectWatch:
    """Waits on ``receive()`` beside a stream; on ``http.disconnect`` it cancels the streaming task."""

    __slots__ = ("task", "fut", "gone", "done")

    def __init__(self, receive: Receive) -> None:
        self.task = asyncio.current_task()
        self.gone = False
        self.done = False
        # Granian's receive() returns a future-like object: use it as is (a Task around it costs more);
        # other servers' receive is a coroutine function
        fut: Any = receive()
        self.fut = fut if asyncio.isfuture(fut) else asyncio.ensure_future(fut)
        self.fut.add_done_callback(self._on_message)

    def _on_message(self, fut: asyncio.Future[Message]) -> None:
        if self.done or fut.cancelled() or fut.exception() is not None:
            return
        if fut.result().get("type") == "http.disconnect" and self.task is not None:
            self.gone = True
            self.task.cancel()

    def stop(self) -> None:
        """Detach from ``receive()``'s future, resolved or not (see the module's invariant)."""
        self.done = True
        self.task = None
        fut = self.fut
        fut.remove_done_callback(self._on_message)
        if not fut.done():
            fut.cancel()


class Keepalive:
    """SSE comment keepalives while a stream waits for its first token.

    Arms a timer; only if it fires does it start a task that sends the response head and then a comment
    every ``interval`` seconds. ``stop()`` cancels both and says whether the head was already sent.
    """

    __slots__ = ("send", "interval", "headers", "handle", "task", "started")

    def __init__(self, send: Send, interval: float, headers: list[tuple[bytes, bytes]]) -> None:
        self.send = send
        self.interval = interval
        self.headers = headers
        """The stream's response head, sent when the first keepalive goes out."""
        self.started = False
        self.task: asyncio.Task[None] | None = None
        self.handle = asyncio.get_running_loop().call_later(interval, self._fire)

    def _fire(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self.started = True
        while True:
            await self.send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            await asyncio.sleep(self.interval)

    async def stop(self) -> bool:
        self.handle.cancel()
        task = self.task
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        return self.started
