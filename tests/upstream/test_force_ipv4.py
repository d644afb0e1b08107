"""LiteLLM's ``litellm_settings.force_ipv4``: upstream connections (both transports) and media downloads over
IPv4 only, read from the config and applied by a real gateway to real upstreams on ``::1`` and
``127.0.0.1``."""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from relaygate.config import ConfigError, load_config
from relaygate.core.errors import UpstreamConnectError
from relaygate.upstream import calls
from relaygate.upstream import media as _media
from relaygate.upstream.aiohttp_transport import AiohttpTransport
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.h1 import H1Transport
from tests.conftest import http_server, start_gateway

T = TypeVar("T")

ANSWER = {"id": "chatcmpl-v", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback on this machine")


@contextmanager
def upstream(family: socket.AddressFamily) -> Iterator[str]:
    """A chat-completions upstream on ``::1`` or ``127.0.0.1`` answering with the family it was reached over."""
    name = "v6" if family == socket.AF_INET6 else "v4"
    body = orjson.dumps({**ANSWER, "choices": [{**ANSWER["choices"][0],  # type: ignore[index]
                                                "message": {"role": "assistant", "content": name}}]})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Handler, "::1" if family == socket.AF_INET6 else "127.0.0.1") as url:
        yield url


def config(v6: str, v4: str, force: str) -> str:
    return f"""
model_list:
  - model_name: six
    litellm_params: {{model: openai/m, api_key: sk-up, api_base: "{v6}/v1"}}
  - model_name: four
    litellm_params: {{model: openai/m, api_key: sk-up, api_base: "{v4}/v1"}}
litellm_settings:
  {force}
  num_retries: 0
"""


def test_the_setting_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model_list: []\nlitellm_settings: {force_ipv4: true}\n")
    cfg = load_config(str(path))
    assert cfg.server.force_ipv4 is True and not [w for w in cfg.warnings if "force_ipv4" in w]
    path.write_text("model_list: []\nlitellm_settings: {force_ipv4: sometimes}\n")
    with pytest.raises(ConfigError, match="force_ipv4"):
        load_config(str(path))


@pytest.mark.e2e
@pytest.mark.parametrize("transport", ["h1", "aiohttp"])
def test_through_the_gateway(transport: str) -> None:
    env = {"RELAYGATE_TRANSPORT": transport}
    with upstream(socket.AF_INET6) as v6, upstream(socket.AF_INET) as v4:
        def ask(gw: Any, model: str) -> httpx.Response:
            return httpx.post(f"{gw.url}/v1/chat/completions", timeout=20,
                              json={"model": model, "messages": [{"role": "user", "content": "which"}]})

        with start_gateway(config(v6, v4, "force_ipv4: false"), env=env) as gw:
            for model, family in (("six", "v6"), ("four", "v4")):
                r = ask(gw, model)
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == family, r.text
        with start_gateway(config(v6, v4, "force_ipv4: true"), env=env) as gw:
            r = ask(gw, "four")
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "v4", r.text
            r = ask(gw, "six")  # an upstream reachable over IPv6 only: refused, in the caller's error shape
            assert r.status_code >= 500, r.text
            assert "upstream" in r.json()["error"]["message"].lower(), r.text


def _run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("make", [lambda: H1Transport(family=socket.AF_INET),
                                  lambda: AiohttpTransport(family=socket.AF_INET)], ids=["h1", "aiohttp"])
def test_the_transports_connect_over_ipv4_only(make: Callable[[], Any]) -> None:
    async def go(url: str) -> int:
        t = make()
        try:
            req = UpstreamRequest("POST", url + "/v1/chat/completions", [("content-type", "application/json")],
                                  b"{}")
            resp = await t.send(req, Timeouts(connect=5, first_byte=5, idle=5, total=10))
            await resp.read()
            return resp.status
        finally:
            await t.aclose()

    with upstream(socket.AF_INET6) as v6, upstream(socket.AF_INET) as v4:
        assert _run(go(v4)) == 200
        with pytest.raises((UpstreamConnectError, OSError)):
            _run(go(v6))


def test_media_is_fetched_over_ipv4_only() -> None:
    target = _media.parse_url("http://[2606:4700::1111]/cat.png")
    with pytest.raises(_media.MediaFetchError, match="force_ipv4"):
        _run(calls._address(target.url, target, False, socket.AF_INET))
    assert _run(calls._address(target.url, target, False)) == "2606:4700::1111"
    assert _run(calls.resolve("localhost", 80, socket.AF_INET)) and all(
        "." in a for a in _run(calls.resolve("localhost", 80, socket.AF_INET)))
