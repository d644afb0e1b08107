"""Streamed request bodies (async iterables) through both transports against real asyncio servers.

The upstream here reads the body itself (Content-Length or chunked), at its own pace, and hashes it, so
multi-megabyte uploads are checked byte for byte without the test holding them either.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from types import ModuleType
from typing import Any, Self

import pytest

from relaygate.core.errors import (
    PayloadTooLarge,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from relaygate.upstream.aiohttp_transport import AiohttpTransport
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1 import H1Transport
from tests.core.conftest import load_twin

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = Timeouts(connect=2.0, first_byte=5.0, idle=5.0, total=20.0)
PIECE = 64 * 1024


def piece(k: int, size: int = PIECE) -> bytes:
    return (k.to_bytes(4, "big") * (size // 4 + 1))[:size]


class Source:
    """An upload produced piece by piece; records how far it was pulled and what the transport held."""

    def __init__(self, total: int, transport: H1Transport | None = None, fail_at: int | None = None,
                 exc: BaseException | None = None) -> None:
        self.total = total
        self.transport = transport
        self.fail_at = fail_at
        self.exc = exc
        self.pulled = 0
        self.max_held = 0
        self.digest = hashlib.sha256()

    async def _gen(self) -> AsyncIterator[bytes]:
        k = 0
        while self.pulled < self.total:
            if self.transport is not None:
                self.max_held = max(self.max_held, self.transport.write_buffered())
            if self.fail_at is not None and self.pulled >= self.fail_at:
                assert self.exc is not None
                raise self.exc
            p = piece(k, min(PIECE, self.total - self.pulled))
            k += 1
            self.pulled += len(p)
            self.digest.update(p)
            yield p
            if k % 16 == 0:
                await asyncio.sleep(0)  # like a client whose pieces arrive over time

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()


class Sink:
    """An HTTP/1.1 upstream that reads request bodies itself and answers with the size it got."""

    def __init__(self, *, read_size: int = 16 * 1024, delay: float = 0.0, stall: asyncio.Event | None = None,
                 answer_early: int = 0, close_on_second: bool = False) -> None:
        self.read_size = read_size
        self.delay = delay
        self.stall = stall
        self.answer_early = answer_early
        self.close_on_second = close_on_second
        self.heads: list[dict[str, str]] = []
        self.digests: list[str] = []
        self.sizes: list[int] = []
        self.reads = 0
        self.received = 0
        self.connections = 0
        self.closed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        if self.stall is not None:
            await self.stall.wait()
        data = await reader.read(min(n, self.read_size))
        if not data:
            raise ConnectionResetError("eof")
        self.reads += 1
        self.received += len(data)
        if self.delay:
            await asyncio.sleep(self.delay)
        return data

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        index = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                self.heads.append(headers)
                if self.close_on_second and index == 1:
                    break
                if self.answer_early:
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 4\r\n\r\nnope" % self.answer_early)
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    break
                digest = hashlib.sha256()
                size = 0
                if "content-length" in headers:
                    left = int(headers["content-length"])
                    while left:
                        data = await self._read(reader, left)
                        digest.update(data)
                        size += len(data)
                        left -= len(data)
                else:
                    assert headers["transfer-encoding"] == "chunked"
                    while True:
                        n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        if n == 0:
                            assert await reader.readexactly(2) == b"\r\n"
                            break
                        while n:
                            data = await self._read(reader, n)
                            digest.update(data)
                            size += len(data)
                            n -= len(data)
                        assert await reader.readexactly(2) == b"\r\n"
                self.digests.append(digest.hexdigest())
                self.sizes.append(size)
                answer = b"%d" % size
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
                index += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the test is over: the server shuts down
        finally:
            self.closed.set()
            self._tasks.discard(task)
            writer.transport.abort()


def upload(url: str, body: Any, length: int | None) -> UpstreamRequest:
    return UpstreamRequest("POST", url + "/v1/audio/transcriptions",
                           [("Content-Type", "multipart/form-data; boundary=b"), ("Content-Length", "1")], body,
                           length)


# ------------------------------------------------------------------------------------- request heads


@pytest.fixture(params=["py", "c"])
def http1(request: pytest.FixtureRequest) -> ModuleType:
    return load_twin("http1", request.param)


def test_build_request_head_twins(http1: ModuleType) -> None:
    hs = [("X-A", "b"), ("content-length", "9"), ("Transfer-Encoding", "gzip"), ("host", "evil")]
    assert http1.build_request_head("POST", "h:1", "/x?q=1", hs, None) == (
        b"POST /x?q=1 HTTP/1.1\r\nHost: h:1\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert http1.build_request_head("PUT", "h", "/", [], 12345678901) == (
        b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 12345678901\r\n\r\n")
    assert http1.build_request_head("POST", "h", "/", [], 0).endswith(b"Content-Length: 0\r\n\r\n")
    for bad in (("POST", "h", "/", [("A", "b\r\nX: y")], None), ("POST", "h\n", "/", [], 1),
                ("POST", "h", "/", [], -1), ("POST", "h", "/", [("A", "\u20ac")], None)):
        with pytest.raises(ValueError):
            http1.build_request_head(*bad)


# --------------------------------------------------------------------------------------------- H1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_h1_streams_a_large_upload_to_a_slow_reader(run: Run, chunked: bool) -> None:
    total = 12 * 1024 * 1024 + 123

    async def main() -> None:
        async with Sink(read_size=32 * 1024, delay=0.0005) as up:
            t = H1Transport(high_water=128 * 1024, low_water=32 * 1024)
            src = Source(total, t)
            resp = await t.send(upload(up.url, src, None if chunked else total), FAST)
            assert resp.status == 200 and await resp.read() == b"%d" % total
            assert up.sizes == [total] and up.digests == [src.digest.hexdigest()]
            head = up.heads[0]
            if chunked:
                assert head["transfer-encoding"] == "chunked" and "content-length" not in head
            else:
                assert head["content-length"] == str(total) and "transfer-encoding" not in head
            assert up.reads > total // (32 * 1024)  # the upstream got it in pieces
            # the socket's write buffer filled (the upstream is slower than us) yet never held more than
            # the high-water mark when the next piece was pulled
            assert 0 < src.max_held <= 128 * 1024
            # the connection is reusable: a plain bytes request follows on it
            resp = await t.send(upload(up.url, b"tail", None), FAST)
            assert await resp.read() == b"4"
            assert up.connections == 1
            await t.aclose()

    run(main())


def test_h1_stalled_upstream_stops_pulling_then_completes(run: Run) -> None:
    total = 48 * 1024 * 1024

    async def main() -> None:
        go = asyncio.Event()
        async with Sink(read_size=64 * 1024, stall=go) as up:
            t = H1Transport(high_water=64 * 1024, low_water=16 * 1024)
            src = Source(total, t)
            task = asyncio.ensure_future(t.send(upload(up.url, src, total), FAST))
            prev = -1
            while src.pulled != prev:  # wait until the producer is blocked on drain
                prev = src.pulled
                await asyncio.sleep(0.1)
            assert not task.done()
            assert src.pulled < total  # socket buffers are full and nothing more was taken from the source
            assert t.write_buffered() > 0
            go.set()
            resp = await task
            assert await resp.read() == b"%d" % total
            assert up.digests == [src.digest.hexdigest()]
            assert src.max_held <= 64 * 1024 + PIECE
            await t.aclose()

    run(main())


def test_h1_upstream_that_stops_reading_is_an_idle_timeout(run: Run) -> None:
    async def main() -> None:
        never = asyncio.Event()
        async with Sink(stall=never) as up:
            t = H1Transport(high_water=64 * 1024, low_water=16 * 1024)
            src = Source(1 << 40, t)
            with pytest.raises(UpstreamTimeout) as info:
                await t.send(upload(up.url, src, None), Timeouts(connect=2, first_byte=0.2, idle=0.3, total=None))
            assert info.value.phase == "idle"
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0 and src.pulled < src.total
            await t.aclose()

    run(main())


@pytest.mark.parametrize("how", ["raise", "cancel"])
def test_h1_source_failure_or_cancel_aborts_the_upstream(run: Run, how: str) -> None:
    async def main() -> None:
        async with Sink() as up:
            t = H1Transport()
            too_big = PayloadTooLarge("too large")
            src = Source(64 * 1024 * 1024, t, fail_at=3 * 1024 * 1024 if how == "raise" else None, exc=too_big)
            task = asyncio.ensure_future(t.send(upload(up.url, src, None), FAST))
            if how == "raise":
                with pytest.raises(PayloadTooLarge) as info:
                    await task
                assert info.value is too_big
            else:
                while src.pulled < 2 * 1024 * 1024:
                    await asyncio.sleep(0.005)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await asyncio.wait_for(up.closed.wait(), 5)  # the upstream saw the connection go
            assert up.sizes == [] and t.open_connections() == 0 and t.idle_connections() == 0
            await t.aclose()

    run(main())


def test_h1_early_answer_stops_sending_and_closes(run: Run) -> None:
    async def main() -> None:
        async with Sink(answer_early=413) as up:
            t = H1Transport(high_water=64 * 1024, low_water=16 * 1024)
            src = Source(256 * 1024 * 1024, t)
            resp = await t.send(upload(up.url, src, None), FAST)
            assert resp.status == 413 and await resp.read() == b"nope"
            assert src.pulled < src.total
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0  # the unfinished request poisoned the connection
            await t.aclose()

    run(main())


def test_h1_length_mismatch_is_a_protocol_error(run: Run) -> None:
    async def main() -> None:
        async with Sink() as up:
            t = H1Transport()
            for declared in (PIECE * 2 + 1, PIECE * 2 - 1):
                with pytest.raises(UpstreamProtocolError):
                    await t.send(upload(up.url, Source(PIECE * 2), declared), FAST)
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0 and up.sizes == []
            await t.aclose()

    run(main())


def test_h1_streamed_body_is_never_resent_on_a_stale_connection(run: Run) -> None:
    async def main() -> None:
        async with Sink(close_on_second=True) as up:
            t = H1Transport()
            assert await (await t.send(upload(up.url, b"first", None), FAST)).read() == b"5"
            src = Source(PIECE * 3)
            with pytest.raises(UpstreamConnectError, match="not re-sent"):
                await t.send(upload(up.url, src, PIECE * 3), FAST)
            assert up.connections == 1 and src.pulled == PIECE * 3
            await t.aclose()

    run(main())


def test_h1_streamed_body_skips_a_cold_idle_connection(run: Run) -> None:
    async def main() -> None:
        async with Sink() as up:
            t = H1Transport(max_connections_per_origin=1)
            assert await (await t.send(upload(up.url, b"a", None), FAST)).read() == b"1"
            # a warm connection is reused for a streamed body
            assert await (await t.send(upload(up.url, Source(10), 10), FAST)).read() == b"10"
            assert up.connections == 1
            pool = next(iter(t._pools.values()))[0]
            pool.idle[-1].idle_since -= 3.0  # colder than STREAM_REUSE_IDLE
            # the pool is full (max 1): the cold connection is closed and its slot used for a fresh one
            assert await (await t.send(upload(up.url, Source(PIECE + 1), None), FAST)).read() == b"%d" % (PIECE + 1)
            assert up.connections == 2
            # bytes bodies still reuse whatever is pooled
            assert await (await t.send(upload(up.url, b"xyz", None), FAST)).read() == b"3"
            assert up.connections == 2
            await t.aclose()

    run(main())


# ------------------------------------------------------------------------------------------ aiohttp


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_aiohttp_streams_a_large_upload(run: Run, chunked: bool) -> None:
    total = 6 * 1024 * 1024 + 7

    async def main() -> None:
        async with Sink(read_size=32 * 1024, delay=0.0002) as up:
            t = AiohttpTransport()
            src = Source(total)
            resp = await t.send(upload(up.url, src, None if chunked else total), FAST)
            assert resp.status == 200 and await resp.read() == b"%d" % total
            assert up.digests == [src.digest.hexdigest()]
            head = up.heads[0]
            if chunked:
                assert head.get("transfer-encoding") == "chunked" and "content-length" not in head
            else:
                assert head["content-length"] == str(total) and "transfer-encoding" not in head
            await t.aclose()

    run(main())


def test_aiohttp_source_failure_propagates_unchanged(run: Run) -> None:
    async def main() -> None:
        async with Sink() as up:
            t = AiohttpTransport()
            too_big = PayloadTooLarge("too large")
            src = Source(64 * 1024 * 1024, fail_at=2 * 1024 * 1024, exc=too_big)
            with pytest.raises(PayloadTooLarge) as info:
                await t.send(upload(up.url, src, None), FAST)
            assert info.value is too_big
            await asyncio.wait_for(up.closed.wait(), 5)
            assert up.sizes == []
            await t.aclose()

    run(main())
