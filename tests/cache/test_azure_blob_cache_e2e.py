"""LiteLLM's ``cache_params: {type: azure-blob}`` against Azurite, Microsoft's Azure Storage emulator (installed
by the test command from ``tests/cache/azurite``), serving HTTPS with OAuth on (``--oauth basic``: it checks
every bearer token's issuer, audience and lifetime, as Azure does, but not its signature), and a real HTTP
server playing Entra ID's token endpoint for the client-credentials grant (it checks the client, its secret and
the storage scope, and issues tokens Azurite accepts). The level in process, then end to end through real
Granian processes, a real upstream that counts its calls and the openai SDK.

Shown here: an entry is a block blob at LiteLLM's name (the cache key) with its expiry as metadata; the
container is created on the first store; an expired blob, a foreign one and a missing one are misses; keys and
namespaces cannot leave the container; ``/cache/flushall`` deletes only this cache's blobs across listing
pages; refused credentials are a counted miss with one warning and no secret logged; a hit is shared between
two gateway instances; the configuration."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import jwt
import orjson
import pytest

from relaygate.cache.azure_blob import API_VERSION, EXPIRES, AzureBlobCache
from relaygate.config.cache import from_litellm as cache_from_litellm
from relaygate.config.errors import FieldError
from tests.cache.test_cache_e2e import MASTER, Upstream, ask, client, upstream  # noqa: F401 (a fixture)
from tests.cache.test_cache_e2e import config as cache_config
from tests.conftest import free_port, start_gateway, stop_process
from tests.observe.receiver import LoopbackServer, QuietHandler
from tests.upstream.conftest import make_cert

AZURITE = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
CONTAINER = "llm-cache"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
SECRET = "azure-client-secret-never-logged"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
DIGEST = "cd" * 32


class Entra(LoopbackServer):
    """``POST /<tenant>/oauth2/v2.0/token``: the client-credentials grant of one client, for the storage scope."""

    def __init__(self) -> None:
        self.grants = 0
        entra = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("content-length") or 0)).decode())
                ok = (self.path == f"/{TENANT}/oauth2/v2.0/token" and form.get("grant_type") == ["client_credentials"]
                      and form.get("client_id") == [CLIENT_ID] and form.get("client_secret") == [SECRET]
                      and form.get("scope") == ["https://storage.azure.com/.default"])
                body = {"token_type": "Bearer", "expires_in": 3599, "access_token": token()} if ok else {
                    "error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
                if ok:
                    entra.grants += 1
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


def token() -> str:
    """An access token as Entra ID issues it for Azure Storage (Azurite checks these claims, not the signature)."""
    now = int(time.time())
    return jwt.encode({"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/", "iat": now,
                       "nbf": now - 60, "exp": now + 3600, "appid": CLIENT_ID, "tid": TENANT, "oid": CLIENT_ID},
                      "not-checked-by-azurite-0123456789", algorithm="HS256")


class Azurite:
    def __init__(self, url: str, ca: Path) -> None:
        self.account_url = url
        self.ca = ca
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token()}", "x-ms-version": API_VERSION,
                   "x-ms-date": formatdate(usegmt=True), **kw.pop("headers", {})}
        return self.http.request(method, f"{self.account_url}/{path}", headers=headers, **kw)

    def names(self, container: str = CONTAINER) -> list[str]:
        r = self.call("GET", f"{container}?restype=container&comp=list")
        if r.status_code == 404:
            return []
        text = r.text
        return [part.split("</Name>")[0] for part in text.split("<Name>")[1:]]

    def put(self, name: str, body: bytes, meta: dict[str, str] | None = None) -> None:
        headers = {"x-ms-blob-type": "BlockBlob", **{f"x-ms-meta-{k}": v for k, v in (meta or {}).items()}}
        r = self.call("PUT", f"{CONTAINER}/{quote(name, safe='')}", content=body, headers=headers)
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    assert AZURITE.exists(), "Azurite is not installed: run `npm ci` in tests/cache/azurite (tests/run.sh does)"
    assert shutil.which("node"), "node is needed for Azurite"
    where = tmp_path_factory.mktemp("azurite")
    cert, key = make_cert(where)
    port = free_port()
    log = (where / "azurite.log").open("wb")
    proc = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--oauth", "basic",
                             "--cert", str(cert), "--key", str(key), "--inMemoryPersistence", "--silent",
                             "--skipApiVersionCheck"], stdout=log, stderr=subprocess.STDOUT, cwd=where,
                            start_new_session=True)
    url = f"https://127.0.0.1:{port}/{ACCOUNT}"
    try:
        az = Azurite(url, cert)
        deadline = time.monotonic() + 30
        while True:
            try:
                az.call("GET", "?comp=list")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (where / "azurite.log").read_text()
                time.sleep(0.1)
        yield az
        az.http.close()
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def entra() -> Iterator[Entra]:
    with Entra() as e:
        yield e


def env_of(az: Azurite, entra: Entra, secret: str = SECRET) -> dict[str, str]:
    return {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": secret,
            "AZURE_AUTHORITY_HOST": entra.url + "/", "SSL_CERT_FILE": str(az.ca)}


def level(az: Azurite, entra: Entra, monkeypatch: pytest.MonkeyPatch, container: str = CONTAINER,
          secret: str = SECRET) -> AzureBlobCache:
    env = env_of(az, entra, secret)
    monkeypatch.setenv("SSL_CERT_FILE", env["SSL_CERT_FILE"])  # TLS contexts load the default paths
    settings = cache_from_litellm(True, {"type": "azure-blob", "azure_account_url": az.account_url,
                                         "azure_blob_container": container}, [], environ={})
    assert settings is not None
    return AzureBlobCache.from_settings(settings, environ=env)


def test_entries_round_trip_and_what_is_a_miss(azurite: Azurite, entra: Entra,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        cache = level(azurite, entra, monkeypatch, container="round-trip")
        try:
            assert azurite.names("round-trip") == []  # no container yet: the first store makes it
            cache.set(f"team-a:{DIGEST}", b"\x00stamp\x01answer", 60)
            cache.set(DIGEST, b"no namespace", 60)
            await cache.flush_pending()
            assert sorted(azurite.names("round-trip")) == sorted([DIGEST, f"team-a:{DIGEST}"])
            blob = azurite.call("GET", f"round-trip/{quote('team-a:' + DIGEST, safe='')}")
            assert blob.content == b"\x00stamp\x01answer" and blob.headers["x-ms-blob-type"] == "BlockBlob"
            assert abs(int(blob.headers[EXPIRES]) - (time.time() + 60)) < 5
            assert await cache.get(f"team-a:{DIGEST}") == b"\x00stamp\x01answer"
            assert await cache.get_many([DIGEST, "absent"]) == [b"no namespace", None]
            assert cache.failures == 0 and cache.dropped == 0 and entra.grants == 1  # one token serves all
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_expired_foreign_and_odd_names(azurite: Azurite, entra: Entra, monkeypatch: pytest.MonkeyPatch) -> None:
    azurite.call("PUT", f"{CONTAINER}?restype=container")

    async def run() -> None:
        cache = level(azurite, entra, monkeypatch)
        try:
            azurite.put("old", b"gone", {"relaygate_expires": str(int(time.time()) - 1)})
            azurite.put("litellms", json.dumps({"timestamp": 1, "response": "x"}).encode())
            assert await cache.get("old") is None and await cache.get("litellms") is None
            key = f"../other-container/x?comp=list#:{DIGEST}"
            cache.set(key, b"v", 60)
            await cache.flush_pending()
            assert await cache.get(key) == b"v" and key in azurite.names()
            assert azurite.names("other-container") == []
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_flush_deletes_only_this_caches_blobs_across_pages(azurite: Azurite, entra: Entra,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        cache = level(azurite, entra, monkeypatch, container="flushed")
        cache.page = 2
        try:
            for i in range(5):
                cache.set(f"ns{i}:{i:064x}", b"v", 60)
            await cache.flush_pending()
            azurite.call("PUT", "flushed/notes.txt", content=b"keep me", headers={"x-ms-blob-type": "BlockBlob"})
            assert await cache.ping() is True
            assert await cache.delete(["ns0:" + "0" * 64]) == 1
            assert await cache.flush(None) == 4
            assert azurite.names("flushed") == ["notes.txt"]
        finally:
            await cache.aclose()
        missing = level(azurite, entra, monkeypatch, container="never-made")
        try:
            assert await missing.ping() is False
        finally:
            await missing.aclose()

    asyncio.run(run())


def test_refused_credentials_are_a_counted_miss(azurite: Azurite, entra: Entra, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        cache = level(azurite, entra, monkeypatch, secret="wrong-secret-never-logged")
        try:
            with caplog.at_level(logging.WARNING):
                assert await cache.get(DIGEST) is None
                assert cache.failures == 1 and cache.down and entra.grants == 0
            assert "AADSTS7000215" in caplog.text and "Azure Blob container" in caplog.text
            assert "wrong-secret" not in caplog.text
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_configuration() -> None:
    warnings: list[str] = []
    s = cache_from_litellm(True, {"type": "azure-blob", "azure_account_url": "https://acct.blob.core.windows.net/",
                                  "azure_blob_container": "litellm-cache", "ttl": 30}, warnings, environ={})
    assert s is not None and s.type == "azure-blob" and warnings == []
    assert s.azure_params == {"account_url": "https://acct.blob.core.windows.net", "container": "litellm-cache"}
    assert s.redis_ttl == 30 and s.memory_ttl == 30 and s.redis_timeout == 2.0
    for params, field in (({}, "azure_account_url"), ({"azure_account_url": "acct.blob.core.windows.net"},
                                                       "azure_account_url"),
                          ({"azure_account_url": "https://a.blob.core.windows.net"}, "azure_blob_container"),
                          ({"azure_account_url": "https://a.blob.core.windows.net", "azure_blob_container": "Bad--Name"},
                           "azure_blob_container")):
        with pytest.raises(FieldError) as info:
            cache_from_litellm(True, {"type": "azure-blob", **params}, [], environ={})
        assert info.value.field == f"litellm_settings.cache_params.{field}"


@pytest.mark.e2e
def test_hits_shared_through_the_container(azurite: Azurite, entra: Entra, upstream: Upstream) -> None:  # noqa: F811
    cfg = cache_config(upstream, None, type="azure-blob", azure_account_url=azurite.account_url,
                       azure_blob_container="shared", namespace="team-a", ttl=60)
    env = env_of(azurite, entra)
    with start_gateway(cfg, env=env) as gw1, start_gateway(cfg, env=env) as gw2, client(gw1.url) as c1, \
            client(gw2.url) as c2:
        first, hit = ask(c1, "q1")
        assert not hit and upstream.calls == 1
        deadline = time.monotonic() + 15
        while not azurite.names("shared") and time.monotonic() < deadline:
            time.sleep(0.05)
        (name,) = azurite.names("shared")
        assert name.startswith("team-a:")
        raw = c2.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "q1"}])
        assert raw.headers["x-litellm-cache-key"] == name  # from the container
        assert raw.parse().choices[0].message.content == first and upstream.calls == 1

        ping = httpx.get(gw1.url + "/cache/ping", headers=ADMIN, timeout=10).json()
        assert ping["status"] == "healthy" and ping["cache_type"] == "azure-blob"
        assert orjson.loads(ping["litellm_cache_params"])["azure_blob"] == {
            "account_url": azurite.account_url, "container": "shared"}
        azurite.call("PUT", "shared/notes.txt", content=b"keep me", headers={"x-ms-blob-type": "BlockBlob"})
        r = httpx.post(gw1.url + "/cache/flushall", headers=ADMIN, timeout=10)
        assert r.status_code == 200 and azurite.names("shared") == ["notes.txt"]
        assert SECRET not in gw1.log() + gw2.log()
