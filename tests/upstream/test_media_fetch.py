"""Media downloads (``upstream.calls.fetch_media``) connect to the address the SSRF guard checked.

Rule: each hop's host is resolved once (``calls.resolve``), the addresses are checked, and the transport
is pinned to the checked address; ``Host``, TLS SNI and certificate verification keep the name. The
names used here (``media.test``, ``other.test``) resolve nowhere but through the resolver the test
controls, so a transport that resolved a name itself could not reach the local server at all.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaygate.upstream import calls, media
from relaygate.upstream.aiohttp_transport import AiohttpTransport
from relaygate.upstream.base import Transport
from relaygate.upstream.h1 import H1Transport

from .conftest import Request, Upstream, response

Run = Callable[[Coroutine[Any, Any, Any]], Any]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    media.CACHE.clear()
    yield
    media.CACHE.clear()


class Resolver:
    """Answers from a script per name: the n-th lookup of a name gets the n-th answer (the last repeats)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int, family: int = 0) -> list[str]:
        assert family == 0  # force_ipv4 is off here (tests/upstream/test_force_ipv4.py has it on)
        self.calls.append((host, port))
        script = self.answers[host]
        n = sum(h == host for h, _ in self.calls) - 1
        return [script[min(n, len(script) - 1)]]


async def images(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
    if req.target.startswith("/moved"):
        port = req.headers["host"].rsplit(":", 1)[1]
        writer.write(response(b"", 302, [("Location", f"http://other.test:{port}/cat.png")]))
    else:
        writer.write(response(PNG, headers=[("Content-Type", "image/png")]))
    await writer.drain()
    return True


def transports(ssl_context: ssl.SSLContext | None = None) -> list[Transport]:
    return [H1Transport(ssl_context=ssl_context), AiohttpTransport(ssl_context=ssl_context)]


def test_fetch_connects_to_the_resolved_address_with_the_name_as_host(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = Resolver({"media.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    monkeypatch.setattr(calls, "resolve", resolver)

    async def main() -> None:
        async with Upstream(images) as up:
            port = int(up.url.rsplit(":", 1)[1])
            for t in transports():
                media.CACHE.clear()
                up.requests.clear()
                resolver.calls.clear()
                url = f"http://media.test:{port}/moved?sig=1"
                got = await calls.fetch_media([url], t, allow_private=True)
                assert got == {url: ("image/png", PNG)}
                assert [(r.target, r.headers["host"]) for r in up.requests] == [
                    ("/moved?sig=1", f"media.test:{port}"), ("/cat.png", f"other.test:{port}")]
                assert resolver.calls == [("media.test", port), ("other.test", port)]  # once per hop
                await t.aclose()

    run(main())


def _cert_for(name: str, tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)  # the name only
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_pinned_https_fetch_sends_and_verifies_the_name(
        run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _cert_for("media.test", tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)
    client_ctx = ssl.create_default_context(cafile=str(cert))  # verifies the certificate against the name
    resolver = Resolver({"media.test": ["127.0.0.1"]})
    monkeypatch.setattr(calls, "resolve", resolver)

    async def main() -> None:
        async with Upstream(images, server_ctx) as up:
            port = int(up.url.rsplit(":", 1)[1])
            url = f"https://media.test:{port}/cat.png"
            for t in transports(client_ctx):
                media.CACHE.clear()
                assert await calls.fetch_media([url], t, allow_private=True) == {url: ("image/png", PNG)}
                await t.aclose()
            assert sni == ["media.test", "media.test"]
            assert [r.headers["host"] for r in up.requests] == [f"media.test:{port}"] * 2

    run(main())


def test_a_name_that_rebinds_to_loopback_is_never_fetched(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first lookup says public, any later one says loopback: the fetch goes to the public address
    (unreachable here) and never to the local server; the name was looked up exactly once."""
    resolver = Resolver({"media.test": ["93.184.216.34", "127.0.0.1"]})
    monkeypatch.setattr(calls, "resolve", resolver)
    monkeypatch.setattr(media, "TIMEOUT", 0.5)

    async def main() -> None:
        async with Upstream(images) as up:
            port = int(up.url.rsplit(":", 1)[1])
            url = f"http://media.test:{port}/cat.png"
            for t in transports():
                resolver.calls.clear()
                with pytest.raises(media.MediaFetchError) as info:
                    await calls.fetch_media([url], t)
                assert info.value.status == 400 and "media.test" in info.value.message
                assert resolver.calls == [("media.test", port)]
                await t.aclose()
            assert up.requests == []

    run(main())


def test_names_resolving_to_private_addresses_are_refused(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "resolve", Resolver({"media.test": ["10.0.0.7"], "v6.test": ["fe80::1%eth0"]}))

    async def main() -> None:
        t = H1Transport()
        for url in ("http://media.test/a.png", "http://v6.test/a.png", "http://[::1]:9/a.png",
                    "http://127.0.0.1:9/a.png"):
            with pytest.raises(media.MediaFetchError, match="non-public address"):
                await calls.fetch_media([url], t)
        await t.aclose()

    run(main())
