"""Azure OpenAI with an Entra ID identity (``upstream.azure_identity``): which source a deployment uses, the token
requests (client secret, federated token file, managed identity) and answers, a real gateway on an App Service
managed identity, and a real gateway on AKS-style workload
identity (``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID`` / ``AZURE_FEDERATED_TOKEN_FILE`` / ``AZURE_AUTHORITY_HOST``)
against a local token endpoint and a local Azure OpenAI endpoint that records the bearer it gets, the token
renewed near its expiry with the rotated file read again."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from relaygate.config.env import fill_from_env
from relaygate.core import errors
from relaygate.upstream.azure_identity import ASSERTION_TYPE, SCOPE, EntraToken, ManagedIdentityToken, entra_for
from tests.conftest import dead_port, start_gateway


def test_which_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = entra_for({}, False)  # no key, no client credentials: the VM's managed identity (instance metadata)
    assert isinstance(vm, ManagedIdentityToken) and vm.direct
    req = vm.refresh_request(0)
    assert req.method == "GET" and dict(req.headers) == {"Metadata": "true"}
    assert req.url == ("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&"
                       "resource=https%3A%2F%2Fcognitiveservices.azure.com")
    user = entra_for({"client_id": "c9", "azure_imds_endpoint": "http://pod-identity:2579/"}, False)
    assert user is not None and user.refresh_request(0).url.startswith(
        "http://pod-identity:2579/metadata/identity/oauth2/token?") and "client_id=c9" in user.refresh_request(0).url
    app = entra_for({"azure_identity_endpoint": "http://localhost:42356/msi/token", "azure_identity_header": "h-1",
                     "azure_scope": "api://x/.default"}, False)
    assert app is not None and dict(app.refresh_request(0).headers) == {"X-IDENTITY-HEADER": "h-1"}
    assert app.refresh_request(0).url == ("http://localhost:42356/msi/token?api-version=2019-08-01&"
                                          "resource=api%3A%2F%2Fx")
    assert entra_for({}, True) is None  # a key wins
    t = entra_for({"tenant_id": "t1", "client_id": "c1", "client_secret": "s1"}, False)
    assert t is not None and t.refresh_request(0).url == "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
    form = urllib.parse.parse_qs(bytes(t.refresh_request(0).body).decode())  # type: ignore[arg-type]
    assert form == {"grant_type": ["client_credentials"], "client_id": ["c1"], "scope": [SCOPE],
                    "client_secret": ["s1"]}
    assert entra_for({"tenant_id": "t1", "client_id": "c1", "client_secret": "s1"}, True) is None  # a key wins
    # AKS workload identity's variables reach the adapter as parameters (config.env)
    for name in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AZURE_TENANT_ID", "t2"), ("AZURE_CLIENT_ID", "c2"),
                        ("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "f")),
                        ("AZURE_AUTHORITY_HOST", "https://login.example/")):
        monkeypatch.setenv(name, value)
    params = fill_from_env("azure", {"azure_scope": "api://x/.default"})
    fed = entra_for(params, False)
    assert fed is not None
    (tmp_path / "f").write_text("eyJ.federated\n")
    req = fed.refresh_request(0)
    form = urllib.parse.parse_qs(bytes(req.body).decode())  # type: ignore[arg-type]
    assert req.url == "https://login.example/t2/oauth2/v2.0/token"
    assert form["client_assertion"] == ["eyJ.federated"] and form["client_assertion_type"] == [ASSERTION_TYPE]
    assert form["scope"] == ["api://x/.default"] and "client_secret" not in form


def test_answers() -> None:
    got: list[str] = []
    t = EntraToken("t", "c", secret="s", on_token=got.append)
    now = time.time()
    assert t.needs_refresh(now) and not t.valid(now)
    t.accept(200, orjson.dumps({"access_token": "tok-1", "expires_in": 3599, "token_type": "Bearer"}), now)
    assert got == ["tok-1"] and t.valid(now) and not t.needs_refresh(now) and t.needs_refresh(now + 3400)
    with pytest.raises(errors.AuthError, match="AADSTS7000215: Invalid client secret"):
        t.accept(401, orjson.dumps({"error": "invalid_client",
                                    "error_description": "AADSTS7000215: Invalid client secret provided."}), now)
    with pytest.raises(errors.GatewayError) as info:
        t.accept(503, b"<html>", now)
    assert info.value.status == 502 and got == ["tok-1"]
    missing = EntraToken("t", "c", token_file="/no/such/file")
    with pytest.raises(errors.GatewayError, match="cannot read AZURE_FEDERATED_TOKEN_FILE"):
        missing.refresh_request(now)


class _Servers:
    def __init__(self, token_file: Path) -> None:
        self.grants: list[dict[str, list[str]]] = []
        self.bearers: list[str] = []
        self.lifetimes = [302, 3600]  # the first token expires soon: the third request renews it
        servers = self

        class Login(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
                servers.grants.append(form)
                n = len(servers.grants)
                ok = self.path == "/tenant-1/oauth2/v2.0/token" and form.get("client_id") == ["client-1"] and \
                    form.get("client_assertion") == [token_file.read_text().strip()]
                body = orjson.dumps({"access_token": f"entra-{n}", "expires_in": servers.lifetimes[min(n - 1, 1)],
                                     "token_type": "Bearer"} if ok else {"error": "invalid_client"})
                self.send_response(200 if ok else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Azure(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                servers.bearers.append(self.headers.get("authorization", "") + "|" + self.headers.get("api-key", ""))
                out = orjson.dumps({"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "entra"},
                                                 "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.login = ThreadingHTTPServer(("127.0.0.1", 0), Login)
        self.azure = ThreadingHTTPServer(("127.0.0.1", 0), Azure)
        for s in (self.login, self.azure):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def close(self) -> None:
        for s in (self.login, self.azure):
            s.shutdown()
            s.server_close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[_Servers, Path]]:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("eyJ.first")
    s = _Servers(token_file)
    yield s, token_file
    s.close()


def _azure_config(s: _Servers) -> str:
    """A gateway serving one Azure OpenAI deployment at the local endpoint, without a key."""
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: azure/my-gpt4o
      api_base: http://127.0.0.1:{s.azure.server_address[1]}
      api_version: "2024-10-21"
general_settings:
  master_key: sk-master-entra
"""


@pytest.mark.e2e
def test_azure_on_workload_identity_through_a_gateway(servers: tuple[_Servers, Path]) -> None:
    s, token_file = servers
    cfg = _azure_config(s)
    env = {"AZURE_TENANT_ID": "tenant-1", "AZURE_CLIENT_ID": "client-1", "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
           "AZURE_AUTHORITY_HOST": f"http://127.0.0.1:{s.login.server_address[1]}/", "AZURE_API_KEY": "",
           "AZURE_OPENAI_API_KEY": "", "AZURE_AD_TOKEN": ""}
    with start_gateway(cfg, env=env) as gw:
        def ask() -> None:
            r = httpx.post(gw.url + "/v1/chat/completions", timeout=30, headers={"authorization": "Bearer sk-master-entra"},
                           json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "entra", r.text

        ask()
        ask()
        assert len(s.grants) == 1 and s.bearers == ["Bearer entra-1|", "Bearer entra-1|"]
        time.sleep(2.5)  # within five minutes of the first token's expiry now
        token_file.write_text("eyJ.rotated")
        ask()
        assert len(s.grants) == 2 and s.grants[1]["client_assertion"] == ["eyJ.rotated"]
        assert s.bearers[-1] == "Bearer entra-2|"
        assert "eyJ.rotated" not in gw.log() and "entra-2" not in gw.log()


def test_managed_identity_unreachable_is_a_401_remembered() -> None:
    import asyncio

    from relaygate.upstream.calls import refresh_token
    from relaygate.upstream.identity import aclose_identity_clients, identity_client

    port = dead_port()
    t = entra_for({"azure_imds_endpoint": f"http://127.0.0.1:{port}"}, False)
    assert t is not None

    async def main() -> None:
        with pytest.raises(errors.AuthError, match=f"managed identity endpoint http://127.0.0.1:{port}/metadata"):
            await refresh_token(t, identity_client())
        until = t._blocked_until
        t0 = time.monotonic()
        with pytest.raises(errors.AuthError, match="gave no token"):
            await refresh_token(t, identity_client())
        assert time.monotonic() - t0 < 3.0  # (a loaded CI pauses a second or more)
        assert t._blocked_until == until  # an answer from memory does not push the next try back
        await aclose_identity_clients()

    asyncio.run(main())


@pytest.mark.e2e
def test_azure_on_a_managed_identity_through_a_gateway(servers: tuple[_Servers, Path]) -> None:
    """App Service / Container Apps style: IDENTITY_ENDPOINT + IDENTITY_HEADER, a user-assigned identity."""
    s, _ = servers
    calls: list[tuple[str, str]] = []

    class Identity(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            calls.append((self.path, self.headers.get("X-IDENTITY-HEADER", "")))
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            ok = self.headers.get("X-IDENTITY-HEADER") == "secret-header" and q.get("client_id") == ["uami-1"] and \
                q.get("resource") == ["https://cognitiveservices.azure.com"]
            body = orjson.dumps({"access_token": f"mi-{len(calls)}", "expires_in": "3599", "token_type": "Bearer",
                                 "resource": "https://cognitiveservices.azure.com"} if ok else
                                {"error": "invalid_request", "error_description": "Identity not found"})
            self.send_response(200 if ok else 400)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    identity = ThreadingHTTPServer(("127.0.0.1", 0), Identity)
    threading.Thread(target=identity.serve_forever, daemon=True).start()
    cfg = _azure_config(s)
    env = {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{identity.server_address[1]}/msi/token",
           "IDENTITY_HEADER": "secret-header", "AZURE_CLIENT_ID": "uami-1", "AZURE_TENANT_ID": "",
           "AZURE_CLIENT_SECRET": "", "AZURE_FEDERATED_TOKEN_FILE": "", "AZURE_API_KEY": "",
           "AZURE_OPENAI_API_KEY": "", "AZURE_AD_TOKEN": "", "HTTP_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    try:
        with start_gateway(cfg, env=env) as gw:
            for _ in range(2):
                r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                               headers={"authorization": "Bearer sk-master-entra"},
                               json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "entra", r.text
            assert len(calls) == 1 and s.bearers == ["Bearer mi-1|", "Bearer mi-1|"]
            assert "secret-header" not in gw.log() and "mi-1" not in gw.log()
    finally:
        identity.shutdown()
        identity.server_close()
