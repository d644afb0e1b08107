"""The ASGI application Granian calls: HTTP scopes go to one handler, built on first need; lifespan
messages start and stop it.

The shell knows nothing of LLMs: what it serves is whatever ``factory()`` returns, an object that is an
ASGI callable for HTTP scopes and has ``startup()`` / ``shutdown()`` coroutines (the gateway,
``relaygate.gateway.Gateway``). A startup failure is reported to the server as ``lifespan.startup.failed``
(Granian then stops the worker) with one log line; the handler is never half built.

Once the handler has started, the worker's heap is settled for the cycle collector (:func:`settle_heap`):
what startup built (modules, config, routing tables, key caches: ~50,000 objects) lives as long as the
worker, so it is collected once and frozen out of every later collection, and the young generation's
threshold is raised. Requests make almost no cyclic garbage (refcounting frees it), so the collector
was pure cost: measured on the governed lane, ~10 µs of CPU per request and a 35 ms full collection
every few thousand requests, which was most of the p99.9 at concurrency 1.

Once started, a worker's threads run under Linux's ``SCHED_BATCH`` policy unless ``server.batch_scheduling``
is false (``relaygate.http.sched``: no wakeup preemption between Granian's thread and the event loop's,
about five fewer context switches per request at load).

A worker also watches its parent, Granian's supervisor (:func:`watch_parent`, once a second: one
``getppid``): if the supervisor is gone — killed by the OOM killer or ``SIGKILL``, so it could not stop its
workers — the worker stops itself the graceful way (``SIGTERM``: in-flight requests finish, sinks flush their
spend rows) instead of living on as an orphan that holds its database connections and, with the port
shared, keeps answering requests no supervisor manages. The watch starts with the handler's startup: a
worker still starting when the supervisor dies cancels its startup and reports it failed (Granian acts on a
``SIGTERM`` only after the startup, which a busy database can make long).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

from relaygate.http import sched
from relaygate.http.types import Receive, Scope, Send

log = logging.getLogger("relaygate")

# gen0 runs when this many container objects more were allocated than freed: each run scans at most
# about that many live young objects (0.3 ms on average on the governed lane, 2 ms at most, once every
# ~800 requests); gen1/gen2 as CPython's defaults
GC_THRESHOLD = (10_000, 10, 10)


PARENT_CHECK_S = 1.0
"""How often a worker checks that its supervisor is still its parent."""
ABANDON_S = 5.0
"""How long a worker whose supervisor died during its startup spends closing what the startup opened."""
SUPERVISOR_ENV = "RELAYGATE_SUPERVISOR_PID"
"""Set by ``relaygate serve`` to its own pid before Granian forks the workers: a worker knows its supervisor
even when the supervisor died before the worker's startup finished (``getppid`` then already names the
process that adopted it)."""
WORKERS_ENV = "RELAYGATE_WORKERS"
"""How many workers ``relaygate serve`` started (``gateway.drain`` waits for each; the config may say otherwise)."""


def supervisor() -> int:
    """The pid this worker's parent must be: ``relaygate serve``'s when that is the parent or is gone (it died
    before this worker's startup finished), else whoever the parent is now (the variable is stale or another
    process's: an ``App`` run in some other process that inherited it)."""
    parent = os.getppid()
    try:
        named = int(os.environ.get(SUPERVISOR_ENV, ""))
    except ValueError:
        return parent
    if named == parent:
        return named
    try:
        os.kill(named, 0)
    except ProcessLookupError:
        return named  # gone: this worker is an orphan already
    except OSError:
        pass
    return parent


async def watch_parent(parent: int, every: float = PARENT_CHECK_S,
                       starting: asyncio.Future[Any] | None = None) -> None:
    """Stop this worker once ``parent`` is no longer its parent process (see the module docstring): while
    ``starting`` (the handler's startup) runs, by cancelling it (nothing is served yet, and Granian would
    act on a ``SIGTERM`` only once the startup ended, however long a busy database makes it); after, by
    ``SIGTERM`` to itself (Granian's graceful shutdown)."""
    while True:
        await asyncio.sleep(every)
        if os.getppid() != parent:
            if starting is not None and not starting.done():
                log.warning("the server process (pid %d) is gone: worker %d stops (during its startup)", parent,
                            os.getpid())
                starting.cancel()
                return
            log.warning("the server process (pid %d) is gone: worker %d stops", parent, os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)
            return


def settle_heap() -> None:
    """Collect what startup left, move every surviving object out of the collector's reach and raise
    the young generation's threshold (see the module's docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _batch_scheduling(loop: asyncio.AbstractEventLoop, handler: object) -> asyncio.Task[None] | None:
    """The worker's threads moved to ``SCHED_BATCH`` now and kept there (``relaygate.http.sched``), in a
    worker of ``relaygate serve`` only (never an in-process server: tests, tools), unless the handler's config
    says ``server.batch_scheduling = false`` or the platform has no such policy."""
    if os.environ.get(SUPERVISOR_ENV, str(os.getpid())) == str(os.getpid()):
        return None  # not a worker started by ``relaygate serve``
    server = getattr(getattr(handler, "config", None), "server", None)
    if not getattr(server, "batch_scheduling", False) or not sched.supported():
        return None
    return loop.create_task(sched.keep_batch(sched.batch_threads()))


class Served(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


class App:
    """One per worker process; ``handler`` is the built handler (``None`` until the first scope)."""

    def __init__(self, factory: Callable[[], Served]) -> None:
        self._factory = factory
        self.handler: Served | None = None
        self._watch: asyncio.Task[None] | None = None
        self._sched: asyncio.Task[None] | None = None

    def build(self) -> Served:
        if self.handler is None:
            self.handler = self._factory()
        return self.handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = self.handler
        kind = scope["type"]
        if kind == "http":
            await (h if h is not None else self.build())(scope, receive, send)
        elif kind == "websocket":
            await (h if h is not None else self.build()).websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _start(self) -> None:
        await self.build().startup()

    async def _abandon(self, send: Any, why: str) -> None:
        """A startup cancelled because the supervisor is gone: close what it opened (at most
        :data:`ABANDON_S` seconds), then tell Granian the startup failed (the worker exits)."""
        if self.handler is not None:
            try:
                await asyncio.wait_for(self.handler.shutdown(), ABANDON_S)
            except Exception as exc:  # best effort: the worker exits next either way
                log.warning("closing an abandoned startup failed: %s: %s", type(exc).__name__, exc)
        await send({"type": "lifespan.startup.failed", "message": why})

    async def _lifespan(self, receive: Receive, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                starting = loop.create_task(self._start())
                # watched from the start: a worker whose startup outlives its supervisor stops too
                self._watch = loop.create_task(watch_parent(supervisor(), PARENT_CHECK_S, starting))
                try:
                    await starting
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # this lifespan itself is cancelled
                    await self._abandon(send, "the server process is gone")
                    return
                except Exception as exc:
                    self._watch.cancel()
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                settle_heap()
                self._sched = _batch_scheduling(loop, self.handler)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._watch is not None:
                    self._watch.cancel()
                if self._sched is not None:
                    self._sched.cancel()
                if self.handler is not None:
                    await self.handler.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
