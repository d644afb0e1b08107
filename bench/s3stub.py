"""A keep-alive S3 stand-in for the cache bench: ``python -m bench.s3stub --port N``.

moto's server (what the tests use: it speaks the whole S3 API) closes the connection after every answer, so a
gateway using it opens a TCP connection per lookup and per store, which S3 itself never makes it do; measured
against moto, the S3 level's CPU is mostly connection set-up. This server keeps connections open (HTTP/1.1)
and answers as S3 does for a bucket that holds nothing: ``GET`` of an object 404 ``NoSuchKey`` (of the bucket,
an empty listing), ``PUT`` 200
with an ``ETag``, ``HEAD`` 200. It checks no signature (the gateway signs every request all the same) and
keeps nothing. Loopback only; stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib

import uvloop

from bench.http1 import ParseError, RequestParser

_MISSING = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
            b"<Message>The specified key does not exist.</Message></Error>")
_EMPTY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
          b"<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>")
_XML = b"content-type: application/xml\r\n"


def _answer(status: bytes, body: bytes = b"", head: bytes = b"", send_body: bool = True) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\n" + head + b"content-length: %d\r\n\r\n" % len(body)
            + (body if send_body else b""))


class _Conn(asyncio.Protocol):
    """One keep-alive client connection (on asyncio: a threaded ``http.server`` held the bench at ~300 requests
    a second)."""

    def __init__(self) -> None:
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            requests = self.parser.feed(data)
        except ParseError:
            self.transport.write(_answer(b"400 Bad Request"))
            self.transport.close()
            return
        for req in requests:
            if req.method == "PUT":
                etag = hashlib.md5(req.body, usedforsecurity=False).hexdigest().encode()
                out = _answer(b"200 OK", head=b'etag: "' + etag + b'"\r\n')
            elif req.method == "HEAD":
                out = _answer(b"200 OK", send_body=False)
            elif "/" not in req.path.strip("/"):  # the bucket itself: an empty listing
                out = _answer(b"200 OK", _EMPTY, _XML)
            else:
                out = _answer(b"404 Not Found", _MISSING, _XML)
            self.transport.write(out)
            if not req.keep_alive:
                self.transport.close()
                return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(_Conn, "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
