"""H1Transport against real asyncio servers: pooling, framing, failures, timeouts, backpressure, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from relaygate.core.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1 import H1Transport
from tests.conftest import dead_port

from .conftest import Request, Upstream, _make_cert_openssl, make_cert, response

Run = Callable[[Coroutine[Any, Any, Any]], Any]
FAST = Timeouts(connect=2.0, first_byte=2.0, idle=2.0, total=5.0)


async def ok_handler(
    req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
) -> bool:
    writer.write(response(b"hello " + req.body + b" #%d" % i, headers=[("X-Path", req.target)]))
    return True


def post(url: str, body: bytes = b"", path: str = "/v1/chat/completions") -> UpstreamRequest:
    return UpstreamRequest("POST", url + path, [("Content-Type", "application/json")], body)


def test_keep_alive_reuses_one_connection(run: Run) -> None:
    async def main() -> None:
        async with Upstream(ok_handler) as up:
            t = H1Transport()
            for i in range(20):
                resp = await t.send(post(up.url, b"%d" % i), FAST)
                assert resp.status == 200
                assert resp.header(b"x-path") == b"/v1/chat/completions"
                assert resp.header(b"missing") is None
                assert await resp.read() == b"hello %d #%d" % (i, i)
                await resp.aclose()  # idempotent after read
            assert up.connections == 1
            assert len(up.requests) == 20
            assert up.requests[0].headers["host"] == up.url.split("://")[1]
            assert up.requests[0].headers["content-type"] == "application/json"
            assert t.open_connections() == 1 and t.idle_connections() == 1
            await t.aclose()

    run(main())


def test_connection_close_is_not_reused(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(response(b"bye", headers=[("Connection", "close")]))
        await writer.drain()
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            for _ in range(3):
                resp = await t.send(post(up.url), FAST)
                assert await resp.read() == b"bye"
            assert up.connections == 3
            await asyncio.sleep(0.01)
            assert t.idle_connections() == 0
            await t.aclose()

    run(main())


def test_read_until_close_body(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\npart1 ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"part2")
        await writer.drain()
        writer.write_eof()
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(post(up.url), FAST)
            assert await resp.read() == b"part1 part2"
            resp = await t.send(post(up.url), FAST)
            assert [c async for c in resp] in ([b"part1 ", b"part2"], [b"part1 part2"])
            assert up.connections == 2
            await t.aclose()

    run(main())


def test_chunked_body_in_tiny_pieces_streams(run: Run) -> None:
    frames = [b'data: {"n": %d}\n\n' % i for i in range(20)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for k in range(0, len(wire), 3):
            writer.write(wire[k : k + 3])
            await writer.drain()
            if k % 30 == 0:
                await asyncio.sleep(0.001)
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            for _ in range(2):
                resp = await t.send(post(up.url), FAST)
                assert resp.header(b"content-type") == b"text/event-stream"
                pieces = [c async for c in resp]
                assert len(pieces) > 1
                assert b"".join(pieces) == b"".join(frames)
            assert up.connections == 1
            await t.aclose()

    run(main())


def test_head_and_no_content(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        if req.method == "HEAD":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(UpstreamRequest("HEAD", up.url + "/x"), FAST)
            assert resp.status == 200 and await resp.read() == b""
            resp = await t.send(UpstreamRequest("DELETE", up.url + "/x"), FAST)
            assert resp.status == 204 and await resp.read() == b""
            assert up.connections == 1
            await t.aclose()

    run(main())


def test_reset_mid_body(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.sleep(0.02)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(post(up.url), FAST)
            with pytest.raises(UpstreamProtocolError):
                await resp.read()
            resp = await t.send(post(up.url), FAST)
            got = []
            with pytest.raises(UpstreamProtocolError):
                async for chunk in resp:
                    got.append(chunk)
            assert b"".join(got) == b"0123456789"
            await resp.aclose()
            assert up.connections == 2
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0
            await t.aclose()

    run(main())


def test_garbage_is_a_protocol_error(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            with pytest.raises(UpstreamProtocolError):
                await t.send(post(up.url), FAST)
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0
            await t.aclose()

    run(main())


def test_a_request_the_upstream_received_is_never_sent_again(run: Run) -> None:
    """The upstream reads each chat request whole, then drops the connection without answering: every
    client request is delivered exactly once and fails with a 502, even on a reused connection."""

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        if req.target == "/warm":
            writer.write(response(b"warm"))
            await writer.drain()
            return True
        return False  # read the whole request, then close without answering

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            for n in range(3):
                assert await (await t.send(post(up.url, path="/warm"), FAST)).read() == b"warm"
                assert t.idle_connections() == 1  # the chat request goes on a reused connection
                with pytest.raises(UpstreamConnectError) as info:
                    await t.send(post(up.url, b"chat %d" % n), FAST)
                assert info.value.status == 502 and "not re-sent" in info.value.message
            chats = [r.body for r in up.requests if r.target != "/warm"]
            assert chats == [b"chat 0", b"chat 1", b"chat 2"]
            await t.aclose()

    run(main())


def test_pooled_connection_closed_before_the_write_is_passed_over(run: Run) -> None:
    """An idle pooled connection whose FIN is already in the socket, unseen by the event loop, is never
    written to: the request goes on a fresh connection and is delivered once."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    first_closed = threading.Event()
    got: list[bytes] = []

    def serve() -> None:
        for n in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                got.append(data.split(b"\r\n", 1)[0])
                conn.sendall(response(b"conn %d" % n))  # keep-alive: the client pools this connection
                if n == 0:
                    conn.shutdown(socket.SHUT_RDWR)
            if n == 0:
                first_closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main() -> None:
        url = f"http://127.0.0.1:{port}"
        t = H1Transport()
        assert await (await t.send(UpstreamRequest("GET", url + "/a"), FAST)).read() == b"conn 0"
        assert t.idle_connections() == 1
        first_closed.wait(5)  # blocks the loop: the FIN reaches the socket, the loop does not see it
        resp = await t.send(UpstreamRequest("GET", url + "/b"), FAST)
        assert await resp.read() == b"conn 1"
        assert got == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]
        await t.aclose()

    try:
        run(main())
    finally:
        listener.close()
        thread.join(5)


def test_fresh_connection_closed_before_response_is_not_retried(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            with pytest.raises(UpstreamConnectError) as info:
                await t.send(post(up.url), FAST)
            assert not isinstance(info.value, UpstreamProtocolError)
            assert up.connections == 1 and len(up.requests) == 1
            await t.aclose()

    run(main())


def test_connect_refused(run: Run) -> None:
    port = dead_port()

    async def main() -> None:
        t = H1Transport()
        with pytest.raises(UpstreamConnectError):
            await t.send(post(f"http://127.0.0.1:{port}"), FAST)
        assert t.open_connections() == 0
        await t.aclose()

    run(main())


async def _stall(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
    """Never answer; return when the client goes away (EOF)."""
    await asyncio.wait_for(reader.read(1), 10)
    return False


def test_first_byte_timeout(run: Run) -> None:
    async def main() -> None:
        async with Upstream(_stall) as up:
            t = H1Transport()
            with pytest.raises(UpstreamTimeout) as info:
                await t.send(post(up.url), Timeouts(connect=1, first_byte=0.05, idle=5, total=5))
            assert info.value.phase == "first_byte"
            await asyncio.wait_for(up.closed_by_peer.wait(), 2)
            await t.aclose()

    run(main())


def test_total_timeout_before_head(run: Run) -> None:
    async def main() -> None:
        async with Upstream(_stall) as up:
            t = H1Transport()
            with pytest.raises(UpstreamTimeout) as info:
                await t.send(post(up.url), Timeouts(connect=1, first_byte=5, idle=5, total=0.05))
            assert info.value.phase == "total"
            await t.aclose()

    run(main())


def test_idle_and_total_timeouts_mid_body(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        if req.body == b"trickle":
            for _ in range(100):
                await asyncio.sleep(0.01)
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
        await asyncio.sleep(10)
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(post(up.url), Timeouts(connect=1, first_byte=5, idle=0.05, total=5))
            assert await resp.__anext__() == b"first"
            with pytest.raises(UpstreamTimeout) as info:
                await resp.__anext__()
            assert info.value.phase == "idle"
            # a steady trickle never trips idle, but total bounds the whole exchange
            resp = await t.send(
                post(up.url, b"trickle"), Timeouts(connect=1, first_byte=5, idle=0.05, total=0.2)
            )
            got = b""
            with pytest.raises(UpstreamTimeout) as info:
                async for chunk in resp:
                    got += chunk
            assert info.value.phase == "total"
            assert got.startswith(b"firstx")
            await t.aclose()

    run(main())


def test_cancelling_the_caller_closes_the_connection(run: Run) -> None:
    async def main() -> None:
        async with Upstream(_stall) as up:
            t = H1Transport()
            task = asyncio.ensure_future(t.send(post(up.url), FAST))
            while not up.requests:
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(up.closed_by_peer.wait(), 2)
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0
            await t.aclose()

    run(main())


def test_aclose_unfinished_stream_closes_and_cancel_mid_body(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await reader.read(1)  # returns at EOF: the client went away
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(post(up.url), FAST)
            assert await resp.__anext__() == b"abc"
            await resp.aclose()
            await resp.aclose()
            await asyncio.wait_for(up.closed_by_peer.wait(), 2)
            up.closed_by_peer.clear()

            resp = await t.send(post(up.url), FAST)

            async def consume() -> None:
                async for _ in resp:
                    pass

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(up.closed_by_peer.wait(), 2)
            await asyncio.sleep(0.01)
            assert t.open_connections() == 0
            assert up.connections == 2
            await t.aclose()

    run(main())


def test_max_connections_per_origin_queues_waiters(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        await asyncio.sleep(0.02)
        writer.write(response(req.body))
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport(max_connections_per_origin=2)

            async def one(i: int) -> bytes:
                resp = await t.send(post(up.url, b"%d" % i), FAST)
                return await resp.read()

            results = await asyncio.gather(*(one(i) for i in range(8)))
            assert results == [b"%d" % i for i in range(8)]
            assert up.max_open <= 2 and up.connections == 2
            await t.aclose()

    run(main())


def test_waiter_gets_the_slot_of_a_closed_connection(run: Run) -> None:
    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        await asyncio.sleep(0.01)
        writer.write(response(req.body, headers=[("Connection", "close")]))
        await writer.drain()
        return False

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport(max_connections_per_origin=1)

            async def one(i: int) -> bytes:
                resp = await t.send(post(up.url, b"%d" % i), FAST)
                return await resp.read()

            assert await asyncio.gather(*(one(i) for i in range(4))) == [b"0", b"1", b"2", b"3"]
            assert up.connections == 4 and up.max_open == 1
            await t.aclose()

    run(main())


def test_keepalive_expiry(run: Run) -> None:
    async def main() -> None:
        async with Upstream(ok_handler) as up:
            t = H1Transport(keepalive_expiry=0.03)
            assert await (await t.send(post(up.url), FAST)).read() == b"hello  #0"
            await asyncio.sleep(0.06)
            assert await (await t.send(post(up.url), FAST)).read() == b"hello  #0"
            assert up.connections == 2
            await t.aclose()

    run(main())


def test_backpressure_with_a_slow_reader(run: Run) -> None:
    big = bytes(range(256)) * 4096 * 16  # 16 MiB: more than loopback socket buffers hold
    server_state: dict[str, int] = {}

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        writer.transport.set_write_buffer_limits(high=64 * 1024)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
        for k in range(0, len(big), 65536):
            writer.write(big[k : k + 65536])
            server_state["max_buffer"] = max(
                server_state.get("max_buffer", 0), writer.transport.get_write_buffer_size()
            )
            await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport(high_water=128 * 1024, low_water=32 * 1024)
            resp = await t.send(post(up.url), FAST)
            got = bytearray()
            max_buffered = max_chunk = 0
            paused_seen = False
            async for chunk in resp:
                got += chunk
                max_chunk = max(max_chunk, len(chunk))
                await asyncio.sleep(0.002)  # a slow client
                max_buffered = max(max_buffered, resp._buffered)
                conn = resp._conn
                paused_seen = paused_seen or (conn is not None and conn.paused)
            assert bytes(got) == big
            assert paused_seen
            # What waits unread, and what one take hands over, are each bounded by the high-water
            # mark plus what one read of the socket brings (256 KiB in asyncio, 64 KiB in uvloop);
            # the gateway holds at most one of each at a time.
            one_read = 256 * 1024
            assert max_buffered <= 128 * 1024 + one_read
            assert max_chunk <= 128 * 1024 + one_read
            assert server_state["max_buffer"] > 0  # the upstream had to wait for us
            # the connection went back to the pool resumed and reusable
            resp = await t.send(post(up.url), FAST)
            assert len(await resp.read()) == len(big)
            assert up.connections == 1
            await t.aclose()

    run(main())


def test_slow_reading_upstream_gets_the_whole_request(run: Run) -> None:
    body = b"x" * (2 * 1024 * 1024)

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(response(b"%d" % len(req.body)))
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport()
            resp = await t.send(post(up.url, body), FAST)
            assert await resp.read() == b"%d" % len(body)
            assert up.requests[0].body == body
            await t.aclose()

    run(main())


@pytest.mark.parametrize("maker", [make_cert, _make_cert_openssl], ids=["cryptography", "openssl-cli"])
def test_https_with_self_signed_certificate(
    run: Run, tmp_path: Path, maker: Callable[[Path], tuple[Path, Path]]
) -> None:
    cert, key = maker(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with Upstream(ok_handler, ssl_context=server_ctx) as up:
            assert up.url.startswith("https://")
            t = H1Transport(ssl_context=client_ctx)
            for i in range(3):
                resp = await t.send(post(up.url, b"tls"), FAST)
                assert await resp.read() == b"hello tls #%d" % i
            assert up.connections == 1
            await t.aclose()
            # the default context verifies: a self-signed upstream is refused
            t2 = H1Transport()
            with pytest.raises(UpstreamConnectError):
                await t2.send(post(up.url), FAST)
            await t2.aclose()

    run(main())


def test_url_handling(run: Run) -> None:
    async def main() -> None:
        async with Upstream(ok_handler) as up:
            t = H1Transport()
            resp = await t.send(UpstreamRequest("GET", up.url), FAST)
            assert resp.header(b"x-path") == b"/"
            await resp.read()
            resp = await t.send(UpstreamRequest("GET", up.url + "?a=1"), FAST)
            assert resp.header(b"x-path") == b"/?a=1"
            await resp.read()
            resp = await t.send(UpstreamRequest("GET", up.url + "/v1/models?b=2"), FAST)
            assert resp.header(b"x-path") == b"/v1/models?b=2"
            await resp.read()
            assert up.connections == 1
            for bad in ("ftp://x/", "http://user@host/", "nonsense"):
                with pytest.raises(ValueError):
                    await t.send(UpstreamRequest("GET", bad), FAST)
            await t.aclose()
            with pytest.raises(UpstreamConnectError):
                await t.send(UpstreamRequest("GET", up.url), FAST)

    run(main())


def test_paused_connection_is_not_idle(run: Run) -> None:
    big = b"y" * (2 * 1024 * 1024)

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
        writer.write(big)
        await writer.drain()
        return True

    async def main() -> None:
        async with Upstream(handler) as up:
            t = H1Transport(high_water=64 * 1024, low_water=16 * 1024)
            resp = await t.send(post(up.url), Timeouts(connect=1, first_byte=2, idle=0.03, total=10))
            total = 0
            slow = 0
            async for chunk in resp:
                total += len(chunk)
                if slow < 4:  # the reader stalls longer than the idle timeout while the socket is paused
                    slow += 1
                    await asyncio.sleep(0.08)
            assert total == len(big)
            await t.aclose()

    run(main())


def test_cancelled_waiter_does_not_leak_the_slot(run: Run) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def handler(
            req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
        ) -> bool:
            if req.body == b"slow":
                await gate.wait()
            writer.write(response(req.body))
            return True

        async with Upstream(handler) as up:
            t = H1Transport(max_connections_per_origin=1)
            first = asyncio.ensure_future(t.send(post(up.url, b"slow"), FAST))
            while not up.requests:
                await asyncio.sleep(0.005)
            waiter = asyncio.ensure_future(t.send(post(up.url, b"never"), FAST))
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            gate.set()
            assert await (await first).read() == b"slow"
            assert await (await t.send(post(up.url, b"third"), FAST)).read() == b"third"
            assert up.connections == 1
            assert [r.body for r in up.requests] == [b"slow", b"third"]
            await t.aclose()

    run(main())


def test_pool_table_does_not_grow_with_the_hosts_seen(run: Run) -> None:
    """Pools without connections are forgotten once the table is full of them; a pool that still holds a
    connection is kept (and reused). The hosts are names pinned to the local server's address."""
    from relaygate.upstream.h1 import MAX_EMPTY_POOLS

    async def handler(
        req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        keep = req.headers["host"].startswith("keep.test")
        writer.write(response(b"ok", headers=[] if keep else [("Connection", "close")]))
        await writer.drain()
        return keep

    async def main() -> None:
        async with Upstream(handler) as up:
            port = up.url.rsplit(":", 1)[1]
            t = H1Transport()
            keep = UpstreamRequest("GET", f"http://keep.test:{port}/", connect_to="127.0.0.1")
            assert await (await t.send(keep, FAST)).read() == b"ok"
            for n in range(MAX_EMPTY_POOLS + 50):
                req = UpstreamRequest("GET", f"http://h{n}.test:{port}/", connect_to="127.0.0.1")
                assert await (await t.send(req, FAST)).read() == b"ok"
                assert t.pool_count() <= MAX_EMPTY_POOLS + 1
            assert await (await t.send(keep, FAST)).read() == b"ok"
            keep_requests = [r for r in up.requests if r.headers["host"].startswith("keep.test")]
            assert len(keep_requests) == 2 and up.connections == MAX_EMPTY_POOLS + 51  # keep.test's reused
            await t.aclose()

    run(main())
