"""LiteLLM's upstream TLS settings through a real gateway to an HTTPS upstream with a self-signed certificate
(an internal vLLM behind a corporate CA, say): refused by default (a 502 naming the failure), served with
``litellm_settings.ssl_verify: <CA bundle>`` or ``SSL_VERIFY=<CA bundle>``, and with ``ssl_verify: false``
(warned about at startup); a client certificate (``SSL_CERTIFICATE``) is presented to an upstream that asks."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from relaygate.config import ConfigError, load_config
from tests.conftest import start_gateway
from tests.limits.tls_redis import self_signed
from tests.upstream.conftest import make_cert

pytestmark = pytest.mark.e2e

ANSWER = orjson.dumps({"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})


@contextmanager
def https_upstream(cert: Path, key: Path, client_ca: Path | None = None) -> Iterator[tuple[str, list[Any]]]:
    peers: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            peers.append(self.connection.getpeercert())
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v1", peers
    finally:
        server.shutdown()
        server.server_close()


def _config(base: str, extra: str = "") -> str:
    return (f"model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, api_key: sk-up, api_base: {base}}}\n"
            f"{extra}")


def _ask(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def test_self_signed_upstreams(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with https_upstream(cert, key) as (base, _):
        with start_gateway(_config(base)) as gw:
            r = _ask(gw.url)
            assert r.status_code == 502 and "CERTIFICATE_VERIFY_FAILED" in r.text
        with start_gateway(_config(base, f"litellm_settings:\n  ssl_verify: {cert}\n")) as gw:
            assert _ask(gw.url).json()["choices"][0]["message"]["content"] == "over tls"
        with start_gateway(_config(base), env={"SSL_VERIFY": str(cert)}) as gw:
            assert _ask(gw.url).status_code == 200
        with start_gateway(_config(base, "litellm_settings:\n  ssl_verify: false\n")) as gw:
            assert _ask(gw.url).status_code == 200
            assert "upstream TLS certificates are not verified" in gw.log()


def test_client_certificate_to_an_upstream_that_asks(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    client_cert, client_key = self_signed(tmp_path, "gateway-client", None)
    bundle = tmp_path / "client.pem"
    bundle.write_bytes(client_cert.read_bytes() + client_key.read_bytes())
    with https_upstream(cert, key, client_ca=client_cert) as (base, peers):
        extra = f"litellm_settings:\n  ssl_verify: {cert}\n"
        with start_gateway(_config(base, extra)) as gw:
            assert _ask(gw.url).status_code == 502  # no client certificate: the upstream refuses the handshake
        with start_gateway(_config(base, extra), env={"SSL_CERTIFICATE": str(bundle)}) as gw:
            assert _ask(gw.url).status_code == 200
        assert peers and peers[-1] is not None


@pytest.mark.parametrize(("text", "env", "field"), [
    ("litellm_settings:\n  ssl_verify: /no/such/ca.pem\n", {}, "litellm_settings.ssl_verify"),
    ("", {"SSL_VERIFY": "/no/such/ca.pem"}, "SSL_VERIFY"),
    ("", {"SSL_CERTIFICATE": "/no/such/cert.pem"}, "SSL_CERTIFICATE"),
])
def test_missing_files_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                        env: dict[str, str], field: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("model_list: []\n" + text)
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg))
    assert info.value.field == field
