"""Per-request cost of the upstream transport on a pooled keep-alive connection.

A minimal upstream (raw ``asyncio.Protocol`` on uvloop) runs in a child process on another core and
answers every request at once, either with a small JSON body or a 20-chunk SSE stream. The client sends
requests one after another and reports wall time and client CPU time per request; CPU time is what the
gateway pays. Optionally compares aiohttp. Run::

    python bench/micro/transport_rtt.py [--n 20000] [--aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time

import uvloop


def _clock() -> tuple[float, float, float]:
    t = os.times()
    return time.perf_counter(), t.user, t.system


BODY = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}'
JSON_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
FRAMES = [b'data: {"choices":[{"index":0,"delta":{"content":" tok%d"}}]}\n\n' % i for i in range(20)] + [
    b"data: [DONE]\n\n"
]
SSE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in FRAMES)
    + b"0\r\n\r\n"
)


class _Server(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                break
            head = buf[:i]
            buf = buf[i + 4 :]
            self.t.write(SSE_RESPONSE if b" /stream " in head else JSON_RESPONSE)  # type: ignore[attr-defined]
        self.buf = buf


def _serve(port_q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Server, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    uvloop.run(main())


async def _h1(url: str, n: int, stream: bool) -> tuple[float, float, float]:
    from relaygate.upstream.base import Timeouts, UpstreamRequest
    from relaygate.upstream.h1 import H1Transport

    t = H1Transport()
    timeouts = Timeouts()
    req = UpstreamRequest("GET", url + ("/stream" if stream else "/json"), [("Authorization", "Bearer sk-x")])
    for _ in range(200):
        r = await t.send(req, timeouts)
        await r.read()
    w0, u0, s0 = _clock()
    for _ in range(n):
        r = await t.send(req, timeouts)
        if stream:
            async for _chunk in r:
                pass
        else:
            await r.read()
    w1, u1, s1 = _clock()
    await t.aclose()
    return (w1 - w0) / n * 1e6, (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6


async def _aiohttp(url: str, n: int, stream: bool) -> tuple[float, float, float]:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        target = url + ("/stream" if stream else "/json")
        for _ in range(200):
            async with s.get(target) as r:
                await r.read()
        w0, u0, s0 = _clock()
        for _ in range(n):
            async with s.get(target, headers={"Authorization": "Bearer sk-x"}) as r:
                if stream:
                    async for _chunk in r.content.iter_any():
                        pass
                else:
                    await r.read()
        w1, u1, s1 = _clock()
    return (w1 - w0) / n * 1e6, (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--aiohttp", action="store_true")
    args = ap.parse_args()
    q: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(q,), daemon=True)
    proc.start()
    try:
        url = f"http://127.0.0.1:{q.get(timeout=10)}"
        from relaygate.core import _ext, http1  # noqa: F401 - loads the parser

        print(f"python {sys.version.split()[0]}, extensions: {_ext.describe()}, pid {os.getpid()}")
        runs = [("H1Transport", _h1)] + ([("aiohttp", _aiohttp)] if args.aiohttp else [])
        for name, fn in runs:
            for stream in (False, True):
                wall, user, system = uvloop.run(fn(url, args.n if not stream else args.n // 4, stream))
                kind = "stream (20 chunks)" if stream else "json"
                print(
                    f"{name:12s} {kind:18s} wall {wall:6.1f} us/req   client cpu: user {user:6.1f} + "
                    f"system {system:6.1f} us/req"
                )
    finally:
        proc.terminate()
        proc.join()


if __name__ == "__main__":
    main()
