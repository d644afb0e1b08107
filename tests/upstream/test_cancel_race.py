"""A request cancelled just as its response arrives never breaks another request's connection.

The race: a response is delivered (its head and a short body in one read), the exchange ends and the
connection goes back to the pool, another request takes it; then the first request's task, cancelled in
that window (a client that left), runs its cleanup. That cleanup must close the *response* it abandoned,
not the connection, which now carries someone else's request (before: that request failed with
"upstream closed the connection before responding").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from relaygate.core.http1 import build_request
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1 import H1Transport

from .conftest import Request, Upstream, response

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]
FAST = Timeouts(connect=5.0, first_byte=5.0, idle=5.0, total=10.0)


async def quick(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> bool:
    writer.write(response(b'{"ok": true}'))
    await writer.drain()
    return True


def test_the_abandoned_response_is_closed_not_the_reused_connection(run: Run) -> None:
    """Deterministic: the exchange of A ends and its connection is released to the pool (same read as
    its head); in that very callback A's task is cancelled and B takes the connection and writes on it."""

    async def main() -> None:
        async with Upstream(quick) as up:
            t = H1Transport()
            req = UpstreamRequest("POST", up.url + "/v1/chat/completions", [("content-type", "application/json")],
                                  b"{}")
            warm = await t.send(req, FAST)  # one idle keep-alive connection
            await warm.read()
            pool, target = t._pool(req.url)
            a: asyncio.Future[Any] = asyncio.ensure_future(t.send(req, FAST))
            b: dict[str, asyncio.Future[Any]] = {}
            release = pool.release

            def release_then_race(conn: Any) -> None:
                release(conn)
                if "b" in b:
                    return
                a.cancel()  # A's client left: its task will wake up cancelled
                taken = pool.take_idle()
                assert taken is conn  # B reuses A's connection at once
                data = build_request("POST", pool.host_header, target, req.headers, req.body)
                loop = asyncio.get_running_loop()
                b["b"] = taken.start(data, False, FAST, loop.time() + 10)

            pool.release = release_then_race  # type: ignore[method-assign]
            try:
                await a
            except asyncio.CancelledError:
                pass
            resp = await b["b"]  # before the fix: "upstream closed the connection before responding"
            assert resp.status == 200 and await resp.read() == b'{"ok": true}'
            await t.aclose()

    run(main())
