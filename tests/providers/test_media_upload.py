"""Multipart uploads streamed through the gateway (in-process app, real H1Transport, real upstream server).

The client side is an ASGI ``receive()`` that produces a large upload piece by piece; the upstream
(``tests.upstream.test_streamed_body.Sink``) reads it over a real socket and hashes it. Memory is
measured with tracemalloc around the whole request.
"""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from typing import Any

import orjson
import pytest

from relaygate.asgi import Gateway
from relaygate.frontends.multipart import FieldFinder
from relaygate.upstream.h1 import H1Transport
from tests.asgi.conftest import make_gateway
from tests.conftest import dead_port
from tests.upstream.test_streamed_body import Sink

B = "----relaygateBoundary7MA4YWxk"
MB = 1024 * 1024
PIECE = 64 * 1024


class Client:
    """An upload whose pieces are made on demand: ``model`` first (or the file first), then the file."""

    def __init__(self, file_size: int, *, model: str = "whisper", model_first: bool = True,
                 disconnect_at: int | None = None) -> None:
        self.file_size = file_size
        self.model = model
        self.model_first = model_first
        self.disconnect_at = disconnect_at
        field = (f'--{B}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n').encode()
        file_head = (f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                     "Content-Type: audio/wav\r\n\r\n").encode()
        self.head = field + file_head if model_first else file_head
        self.tail = b"\r\n" + (b"" if model_first else field[:-2] + b"\r\n") + f"--{B}--\r\n".encode()
        self.length = len(self.head) + file_size + len(self.tail)
        self.sent = 0
        self.messages = self._messages()

    def piece(self, k: int, size: int) -> bytes:
        return (k.to_bytes(4, "big") * (size // 4 + 1))[:size]

    def _messages(self) -> Any:
        yield self.head
        left, k = self.file_size, 0
        while left:
            n = min(PIECE, left)
            yield self.piece(k, n)
            left -= n
            k += 1
        yield self.tail

    def expected(self, upstream_model: str) -> tuple[str, int]:
        """sha256 and size of what the upstream must receive (model swapped)."""
        h = hashlib.sha256()
        size = 0
        for part in Client(self.file_size, model=self.model, model_first=self.model_first)._messages():
            if part is self.head or b'name="model"' in part:
                part = part.replace(f"\r\n\r\n{self.model}\r\n".encode(), f"\r\n\r\n{upstream_model}\r\n".encode())
            h.update(part)
            size += len(part)
        return h.hexdigest(), size

    async def receive(self) -> dict[str, Any]:
        if self.disconnect_at is not None and self.sent >= self.disconnect_at:
            return {"type": "http.disconnect"}
        try:
            part = next(self.messages)
        except StopIteration:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        self.sent += len(part)
        await asyncio.sleep(0)
        return {"type": "http.request", "body": part, "more_body": self.sent < self.length}


async def post(gw: Gateway, client: Client, content_length: bool = True,
               path: str = "/v1/audio/transcriptions") -> tuple[int, bytes, int]:
    headers = [(b"authorization", b"Bearer sk-m"), (b"content-type", f"multipart/form-data; boundary={B}".encode())]
    if content_length:
        headers.append((b"content-length", str(client.length).encode()))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b"",
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 1)}
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await gw(scope, client.receive, send)
    if not sent:
        return 0, b"", client.sent
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), client.sent


def gateway(*bases: str, max_mb: float = 100, retries: int = 0) -> Gateway:
    gw = make_gateway({
        "model_list": [{"model_name": "whisper", "litellm_params": {"model": "openai/whisper-1", "api_key": "sk",
                                                                    "api_base": base}} for base in bases],
        "general_settings": {"master_key": "sk-m", "max_request_size_mb": max_mb},
        "router_settings": {"num_retries": retries},
    })
    gw.transport = H1Transport(high_water=128 * 1024, low_water=32 * 1024)
    return gw


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_large_upload_streams_with_model_swapped_and_bounded_memory(content_length: bool) -> None:
    size = 24 * MB

    async def main() -> None:
        async with Sink(read_size=64 * 1024) as up:
            gw = gateway(up.url + "/v1")
            client = Client(size)
            tracemalloc.start()
            try:
                status, body, _ = await post(gw, client, content_length)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert status == 200, body
            digest, total = client.expected("whisper-1")
            assert up.sizes == [total] and up.digests == [digest]
            head = up.heads[0]
            if content_length:
                assert head["content-length"] == str(total) and "transfer-encoding" not in head
            else:
                assert head["transfer-encoding"] == "chunked" and "content-length" not in head
            assert head["content-type"] == f"multipart/form-data; boundary={B}"
            assert up.reads > 100  # received in pieces
            # the 24 MiB upload was never held: gateway + test client + upstream stayed a few MiB
            assert peak < 4 * MB, peak
            await gw.aclose()

    run(main())


def test_size_limit_enforced_while_streaming() -> None:
    async def main() -> None:
        async with Sink() as up:
            gw = gateway(up.url + "/v1", max_mb=2)
            client = Client(8 * MB)
            status, body, sent = await post(gw, client, content_length=False)
            assert status == 413
            err = orjson.loads(body)["error"]
            assert err["code"] == "413" and "Max size is 2.00 MB" in err["message"]
            assert sent < 3 * MB  # stopped reading the client right at the limit
            await asyncio.wait_for(up.closed.wait(), 5)  # the upstream request was aborted
            assert up.sizes == []
            assert gw.transport.open_connections() == 0  # type: ignore[attr-defined]
            # a declared length over the limit is refused before anything is read or sent upstream
            status, body, sent = await post(gw, Client(8 * MB), content_length=True)
            assert status == 413 and sent == 0 and up.connections == 1
            await gw.aclose()

    run(main())


def test_client_abort_mid_upload_closes_the_upstream_request() -> None:
    async def main() -> None:
        async with Sink() as up:
            gw = gateway(up.url + "/v1")
            client = Client(16 * MB, disconnect_at=3 * MB)
            status, body, _ = await post(gw, client)
            # receive() said http.disconnect before the body was whole: the answer is a 400 (Granian says the
            # same for a malformed chunked framing, so the shell always answers; a gone client never sees it)
            assert status == 400 and b"ended before it was complete" in body
            await asyncio.wait_for(up.closed.wait(), 5)
            assert up.sizes == [] and gw.transport.open_connections() == 0  # type: ignore[attr-defined]
            assert gw.metrics.render()  # the worker is fine
            await gw.aclose()

    run(main())


def test_file_before_model_is_a_clear_400_when_large_and_fine_when_small() -> None:
    async def main() -> None:
        async with Sink() as up:
            gw = gateway(up.url + "/v1")
            status, body, sent = await post(gw, Client(4 * MB, model_first=False))
            assert status == 400
            err = orjson.loads(body)["error"]
            assert err["param"] == "model" and "before the file" in err["message"]
            assert sent <= 1 * MB + PIECE and up.connections == 0
            status, body, _ = await post(gw, Client(100 * 1024, model_first=False))
            assert status == 200 and up.sizes == [Client(100 * 1024, model_first=False).expected("whisper-1")[1]]
            await gw.aclose()

    run(main())


def test_failure_after_the_upload_started_is_not_retried_but_before_it_is() -> None:
    async def main() -> None:
        dead_url = f"http://127.0.0.1:{dead_port()}/v1"
        async with Sink(answer_early=503) as bad, Sink() as good:
            # the upstream fails after the body began: no retry on the healthy deployment
            gw = gateway(bad.url + "/v1", bad.url + "/v1", retries=3)
            status, body, _ = await post(gw, Client(4 * MB))
            assert status == 503, body
            assert bad.connections == 1
            await gw.aclose()
            # a connect failure happens before the body is touched: retried on the other deployment
            gw = gateway(dead_url, good.url + "/v1", retries=3)
            for _ in range(2):
                client = Client(2 * MB)
                status, body, _ = await post(gw, client)
                assert status == 200, body
            assert len(good.sizes) == 2 and good.digests[-1] == client.expected("whisper-1")[0]
            await gw.aclose()

    run(main())


def test_image_edits_and_translations_stream_too() -> None:
    async def main() -> None:
        async with Sink() as up:
            gw = gateway(up.url + "/v1")
            for path in ("/v1/audio/translations", "/v1/images/edits"):
                client = Client(3 * MB)
                status, _, _ = await post(gw, client, path=path)
                assert status == 200
                assert up.digests[-1] == client.expected("whisper-1")[0]
            await gw.aclose()

    run(main())


@pytest.mark.parametrize("split", [None, 1, 3, 17])
def test_field_finder_any_split(split: int | None) -> None:
    c = Client(5000, model="my-model")
    c2 = Client(5000, model="my-model", model_first=False)
    for client in (c, c2):
        data = b"".join(client._messages())
        f = FieldFinder(B.encode(), "model", 1 << 20)
        step = split or len(data)
        for i in range(0, len(data), step):
            if f.feed(data[i:i + step]):
                break
        s, e = f.end()
        assert data[s:e] == b"my-model" and f.field == b"my-model"
    f = FieldFinder(B.encode(), "model", 100)
    late = b"".join(Client(5000, model_first=False)._messages())
    with pytest.raises(Exception, match="before the file"):
        for i in range(0, len(late), 50):
            f.feed(late[i:i + 50])
    f = FieldFinder(B.encode(), "model", 1 << 20)
    with pytest.raises(Exception, match="form field required"):
        f.feed(f"--{B}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--{B}--\r\n".encode())


