"""A real HTTP/1.1 webhook receiver on a free loopback port, for the alerting tests.

``async with WebhookServer() as hooks:`` serves on the running loop. Every POST is recorded (its path and
decoded JSON body, in arrival order) and answered by the mode of its path (:meth:`WebhookServer.set_mode`):
``ok`` (200 ``ok``, as Slack answers), ``500``, or ``hang`` (read the request, never answer). Each
connection may carry several requests (keep-alive), as httpx sends them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal, Self

Mode = Literal["ok", "500", "429", "hang"]


class Post:
    __slots__ = ("path", "headers", "body")

    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookServer:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.attempts: dict[str, int] = {}
        """Requests received per path, answered or not."""
        self.modes: dict[str, Mode] = {}
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._arrived = asyncio.Event()
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_mode(self, path: str, mode: Mode) -> None:
        self.modes[path] = mode

    def on(self, path: str) -> list[Any]:
        """The JSON bodies received (and answered 2xx) on ``path``."""
        return [p.json for p in self.posts if p.path == path]

    async def wait_for(self, path: str, n: int, timeout: float = 5.0) -> list[Any]:
        """Wait until ``n`` answered posts arrived on ``path``; returns their bodies."""
        async with asyncio.timeout(timeout):
            while len(self.on(path)) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.on(path)

    async def wait_attempts(self, path: str, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.attempts.get(path, 0) < n:
                self._arrived.clear()
                await self._arrived.wait()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._conns):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.attempts[target] = self.attempts.get(target, 0) + 1
                mode = self.modes.get(target, "ok")
                if mode == "hang":
                    self._arrived.set()
                    await reader.read()  # until the client gives up (closes) or the server closes
                    return
                if method == "POST" and mode == "ok":
                    self.posts.append(Post(target, headers, body))
                status = {"ok": "200 OK", "500": "500 Internal Server Error", "429": "429 Too Many Requests"}[mode]
                answer = b"ok" if mode == "ok" else b"no"
                writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(answer)}\r\n"
                             f"content-type: text/plain\r\n\r\n".encode() + answer)
                await writer.drain()
                self._arrived.set()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            self._conns.discard(writer)
            writer.close()
