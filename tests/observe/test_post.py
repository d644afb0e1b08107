"""observe.post.Poster: the exporters' batch POSTs on the gateway's HTTP/1.1 pool, against a real local server
that records the raw request bytes (what the exporter sent, header by header)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from relaygate.observe.post import Poster, PostError, _proxied
from tests.conftest import dead_port


class Raw:
    """An HTTP/1.1 server that keeps each request's head and body and answers 202 with a ``Retry-After``."""

    def __init__(self) -> None:
        self.heads: list[list[tuple[str, str]]] = []
        self.bodies: list[bytes] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:-2]
                fields = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
                size = int(next(v for k, v in fields if k.lower() == "content-length"))
                self.bodies.append(await reader.readexactly(size))
                self.heads.append(fields)
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nRetry-After: 7\r\n"
                             b"X-Thing: a\r\nx-thing: b\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server() -> AsyncIterator[Raw]:
    raw = Raw()
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ingest"
    try:
        yield raw
    finally:
        server.close()
        await server.wait_closed()


def names(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in fields if k.lower() == name]


def test_the_callers_content_type_and_user_agent_replace_the_defaults() -> None:
    async def main() -> None:
        async with raw_server() as raw:
            poster = Poster(5.0, env={}, user_agent="relaygate-test")
            try:
                plain = await poster.post(raw.url, b"[1]", [("Authorization", "Bearer t")])
                own = await poster.post(raw.url, b"[2]", [("Content-Type", "application/x-ndjson"),
                                                          ("User-Agent", "mine"), ("Content-Encoding", "gzip")])
            finally:
                await poster.aclose()
            assert plain.status == own.status == 202 and plain.content == b"ok"
            # the answer's headers by lower-case name, the first value of each
            assert plain.headers["retry-after"] == "7" and plain.headers["x-thing"] == "a"
            first, second = raw.heads
            assert raw.bodies == [b"[1]", b"[2]"]
            assert names(first, "content-type") == ["application/json"]
            assert names(first, "user-agent") == ["relaygate-test"]
            assert names(first, "authorization") == ["Bearer t"]
            # one of each: the caller's, never the default beside it
            assert names(second, "content-type") == ["application/x-ndjson"]
            assert names(second, "user-agent") == ["mine"]
            assert names(second, "content-encoding") == ["gzip"]

    asyncio.run(main())


def test_no_answer_is_a_post_error_and_a_closed_poster_refuses() -> None:
    port = dead_port()  # a port nobody listens on

    async def main() -> None:
        poster = Poster(2.0, env={})
        with pytest.raises(PostError):
            await poster.post(f"http://127.0.0.1:{port}/x", b"{}", [])
        await poster.aclose()
        with pytest.raises(RuntimeError):
            await poster.post(f"http://127.0.0.1:{port}/x", b"{}", [])

    asyncio.run(main())


@pytest.mark.parametrize(("url", "env", "proxied"), [
    ("https://cloud.langfuse.com/api", {}, False),
    ("https://cloud.langfuse.com/api", {"HTTPS_PROXY": "http://proxy:3128"}, True),
    ("http://collector:4318/v1", {"HTTPS_PROXY": "http://proxy:3128"}, False),
    ("http://collector:4318/v1", {"all_proxy": "http://proxy:3128"}, True),
    ("https://cloud.langfuse.com/api", {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "langfuse.com"}, False),
    ("https://cloud.langfuse.com/api", {"HTTPS_PROXY": "  "}, False),
])
def test_which_urls_an_environment_proxy_applies_to(url: str, env: dict[str, str], proxied: bool) -> None:
    assert _proxied(url, env) is proxied
