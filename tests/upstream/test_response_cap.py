"""The cap on upstream bodies read whole (``max_response_bytes``), through both transports.

Rule: ``read()`` never holds more than the cap. A declared ``Content-Length`` above it fails before any
body byte is read; a chunked or close-delimited body fails once the bytes counted pass it; the
connection is closed (never pooled) and the error is a 502 naming the cap. Iteration is not capped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from relaygate.core.errors import UpstreamProtocolError
from relaygate.upstream.aiohttp_transport import AiohttpTransport
from relaygate.upstream.base import Timeouts, Transport, UpstreamRequest
from relaygate.upstream.h1 import H1Transport, ResponseTooLarge

from .conftest import Request, Upstream, response

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = Timeouts(connect=2.0, first_byte=5.0, idle=5.0, total=20.0)
CAP = 64 * 1024
PIECE = b"z" * 4096


@pytest.fixture(params=["h1", "aiohttp"])
def make(request: pytest.FixtureRequest) -> Callable[[], Transport]:
    if request.param == "h1":
        return lambda: H1Transport(max_response_bytes=CAP)
    return lambda: AiohttpTransport(max_response_bytes=CAP)


class Endless:
    """Answers ``/cl`` with a Content-Length above the cap and then never sends the body, ``/chunked`` and
    ``/close`` with a body that goes on until the client hangs up, ``/exact`` with exactly the cap;
    counts the body bytes it managed to write."""

    def __init__(self) -> None:
        self.written = 0
        self.hung_up = 0

    async def __call__(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       i: int) -> bool:
        if req.target == "/exact":
            writer.write(response(b"e" * CAP))
            await writer.drain()
            return True
        if req.target == "/cl":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CAP + 1))
            await writer.drain()
            await reader.read()  # no body byte is ever sent: only the client hanging up ends this
            self.hung_up += 1
            return False
        chunked = req.target == "/chunked"
        writer.write(b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n" if chunked else b"") + b"\r\n")
        try:
            for _ in range(100 * CAP // len(PIECE)):  # far beyond the cap: the client must stop first
                writer.write(b"1000\r\n" + PIECE + b"\r\n" if chunked else PIECE)
                await writer.drain()
                self.written += len(PIECE)
        except ConnectionError:
            self.hung_up += 1
            return False
        if chunked:
            writer.write(b"0\r\n\r\n")
        return False


def get(url: str, path: str) -> UpstreamRequest:
    return UpstreamRequest("GET", url + path)


@pytest.mark.parametrize("path", ["/cl", "/chunked", "/close"])
def test_read_over_the_cap_fails_and_closes(run: Run, make: Callable[[], Transport], path: str) -> None:
    server = Endless()

    async def main() -> None:
        async with Upstream(server) as up:
            t = make()
            resp = await t.send(get(up.url, path), FAST)
            with pytest.raises(ResponseTooLarge) as info:
                await resp.read()
            err = info.value
            assert isinstance(err, UpstreamProtocolError) and err.status == 502
            assert "max_upstream_response_bytes" in err.message and str(CAP) in err.message
            await resp.aclose()
            # the connection is gone: the server sees the hang-up, and stopped long before its 100x cap
            for _ in range(500):
                if server.hung_up:
                    break
                await asyncio.sleep(0.01)
            assert server.hung_up == 1
            assert server.written < 100 * CAP
            # the next request gets a fresh connection and a body of exactly the cap is read whole
            resp = await t.send(get(up.url, "/exact"), FAST)
            assert await resp.read() == b"e" * CAP
            assert up.connections == 2
            await t.aclose()

    run(main())


@pytest.mark.parametrize("path", ["/chunked", "/close"])
def test_iteration_is_not_capped(run: Run, make: Callable[[], Transport], path: str) -> None:
    async def main() -> None:
        async with Upstream(Endless()) as up:
            t = make()
            resp = await t.send(get(up.url, path), FAST)
            got = 0
            async for chunk in resp:
                got += len(chunk)
            assert got == 100 * CAP
            await t.aclose()

    run(main())


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        H1Transport(max_response_bytes=0)
    with pytest.raises(ValueError, match="max_response_bytes"):
        AiohttpTransport(max_response_bytes=0)
