"""Token refresh through httpx (``upstream.identity``) against a real local token endpoint."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from relaygate.core import errors
from relaygate.providers.vertex import TokenSource
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.calls import refresh_token
from relaygate.upstream.identity import aclose_identity_clients, identity_client
from tests.conftest import dead_port


@asynccontextmanager
async def token_server(status: int = 200, body: bytes = b'{"access_token": "ya29.real", "expires_in": 3600}',
                       delay: float = 0.0) -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await answer(reader, writer)
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        seen.append(head + await reader.readexactly(length))
        await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/token", seen
    finally:
        server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _source(uri: str) -> TokenSource:
    return TokenSource({"type": "authorized_user", "client_id": "cid", "client_secret": "sec",
                        "refresh_token": "rt-1", "token_uri": uri})


def test_refresh_through_httpx_against_a_real_token_endpoint() -> None:
    async def main() -> None:
        async with token_server() as (uri, seen):
            src = _source(uri)
            await refresh_token(src, identity_client())
            await refresh_token(src, identity_client())  # still valid: no second call
            assert src.token == "ya29.real"
            assert len(seen) == 1
            form = urllib.parse.parse_qs(seen[0].split(b"\r\n\r\n", 1)[1].decode())
            assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt-1"]
            assert identity_client() is identity_client()  # one client per loop
        await aclose_identity_clients()

    asyncio.run(main())


def test_rejected_credentials_are_a_401() -> None:
    async def main() -> None:
        async with token_server(400, b'{"error": "invalid_grant", "error_description": "Bad Request"}') as (uri, _):
            with pytest.raises(errors.AuthError) as info:
                await refresh_token(_source(uri), identity_client())
            assert info.value.status == 401 and "Bad Request" in info.value.message
        await aclose_identity_clients()

    asyncio.run(main())


def test_unreachable_and_slow_endpoints_are_upstream_errors() -> None:
    dead = dead_port()  # bound, not listening: connection refused

    async def main() -> None:
        client = identity_client()
        with pytest.raises(errors.UpstreamConnectError):
            await client.send(UpstreamRequest("POST", f"http://127.0.0.1:{dead}/token", [], b"x"), Timeouts())
        async with token_server(delay=2.0) as (uri, _):
            with pytest.raises(errors.UpstreamTimeout):
                await client.send(UpstreamRequest("POST", uri, [], b"x"),
                                  Timeouts(connect=1.0, first_byte=0.2, idle=0.2, total=0.2))
        await aclose_identity_clients()

    asyncio.run(main())
