"""The ASGI application Granian calls: HTTP scopes go to one handler, built on first need; lifespan
messages start and stop it.

The shell knows nothing of LLMs: what it serves is whatever ``factory()`` returns, an object that is an
ASGI callable for HTTP scopes and has ``startup()`` / ``shutdown()`` coroutines (the gateway,
``relaygate.gateway.Gateway``). A startup failure is reported to the server as ``lifespan.startup.failed``
(Granian then stops the worker) with one log line; the handler is never half built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from relaygate.http.types import Receive, Scope, Send

log = logging.getLogger("relaygate")


class Served(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


class App:
    """One per worker process; ``handler`` is the built handler (``None`` until the first scope)."""

    def __init__(self, factory: Callable[[], Served]) -> None:
        self._factory = factory
        self.handler: Served | None = None

    def build(self) -> Served:
        if self.handler is None:
            self.handler = self._factory()
        return self.handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = self.handler
        kind = scope["type"]
        if kind == "http":
            await (h if h is not None else self.build())(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.build().startup()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self.handler is not None:
                    await self.handler.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
