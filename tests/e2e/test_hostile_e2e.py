"""Hostile clients against a real Granian process: raw sockets, real mock upstream, real SDK.

Each test is a rule of issue 9 seen from the wire: slow and malformed bodies get an answer in the API's
shape (never Granian's plain-text 500), a virtual key cannot reach a forbidden group through fallbacks,
and nonsense per-request overrides are 400s that cost no upstream connection.
"""

from __future__ import annotations

import socket
import time
from typing import Iterator

import httpx
import orjson
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-hostile-master"
CHEAP = "sk-hostile-cheap-only"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, object]]:
    with start_mock(name="up") as mock:
        config = f"""
model_list:
  - model_name: cheap
    litellm_params: {{model: openai/cheap, api_base: "{mock.openai_base}", api_key: sk-up, rpm: 2}}
  - model_name: expensive
    litellm_params: {{model: openai/expensive, api_base: "{mock.openai_base}", api_key: sk-up}}
router_settings:
  fallbacks: [{{cheap: [expensive]}}]
general_settings:
  master_key: {MASTER}
relaygate_settings:
  body_read_timeout: 1
  min_body_rate: 1000
relaygate_keys:
  - key: {CHEAP}
    models: [cheap]
"""
        with start_gateway(config) as gw:
            yield gw, mock


def raw(port: int, data: bytes, *, trickle: bytes = b"", gap: float = 0.0, limit: float = 10.0) -> bytes:
    """Send ``data`` (then ``trickle`` one byte every ``gap`` s); -> everything the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        s.sendall(data)
        for i in range(len(trickle)):
            time.sleep(gap)
            try:
                s.sendall(trickle[i:i + 1])
            except OSError:
                break
        out = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                part = s.recv(65536)
            except OSError:
                break
            if not part:
                break
            out += part
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return out


def _status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer[:300]
    return int(head.split(b" ")[1]), orjson.loads(body)


CHAT = b'{"model":"expensive","messages":[{"role":"user","content":"hi"}]}'


def test_trickled_body_gets_a_408(stack: tuple[GatewayProc, object]) -> None:
    gw, _ = stack
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + MASTER.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
    t = time.monotonic()
    status, body = _status_and_json(raw(gw.port, head, trickle=b" " * 40, gap=0.25))
    assert status == 408, body
    assert time.monotonic() - t < 9  # cut by the body deadline, not by the client giving up


@pytest.mark.parametrize("path", [b"/v1/chat/completions", b"/v1/messages"])
def test_malformed_chunked_framing_is_a_json_400(stack: tuple[GatewayProc, object], path: bytes) -> None:
    gw, _ = stack
    req = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + MASTER.encode() +
           b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZZ\r\n" + CHAT + b"\r\n0\r\n\r\n")
    status, body = _status_and_json(raw(gw.port, req))
    assert status == 400, body
    assert "body ended" in str(body)


@pytest.mark.parametrize("path", [b"/v1/chat/completions", b"/v1/messages", b"/v1/images/generations",
                                  b"/v1/audio/transcriptions"])
def test_declared_gigabyte_is_413_at_once(stack: tuple[GatewayProc, object], path: bytes) -> None:
    gw, _ = stack
    req = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + MASTER.encode() +
           b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1073741824\r\n\r\n{")
    t = time.monotonic()
    status, _ = _status_and_json(raw(gw.port, req))
    assert status == 413
    assert time.monotonic() - t < 5  # answered without waiting for the body


def test_fallbacks_never_serve_a_forbidden_group(stack: tuple[GatewayProc, object]) -> None:
    gw, _ = stack
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        body = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}
        r = c.post("/v1/chat/completions", json={**body, "fallbacks": ["expensive"]},
                   headers={"Authorization": f"Bearer {CHEAP}"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "key_model_access_denied"
        # exhaust cheap's rpm: the config's fallback to `expensive` is not for this key
        served = []
        for _ in range(4):
            r = c.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {CHEAP}"})
            served.append((r.status_code, r.headers.get("x-litellm-model-group")))
        assert ("200", "expensive") not in [(str(s), g) for s, g in served]
        assert served[-1][0] == 429, served


@pytest.mark.parametrize("header,value", [("x-litellm-timeout", "nan"), ("x-litellm-timeout", "inf"),
                                          ("x-litellm-timeout", "-1"), ("x-litellm-num-retries", "1000000")])
def test_nonsense_overrides_are_400_and_open_no_connection(stack: tuple[GatewayProc, object], header: str,
                                                           value: str) -> None:
    gw, mock = stack
    before = mock.stats()  # type: ignore[attr-defined]
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(30):
            r = c.post("/v1/chat/completions", content=CHAT,
                       headers={"Authorization": f"Bearer {MASTER}", header: value})
            assert r.status_code == 400 and r.json()["error"]["param"] == header, r.text
    after = mock.stats()  # type: ignore[attr-defined]
    assert after["requests"] == before["requests"]
    # the only new upstream connection is the one that asked for these stats
    assert after["connections_total"] == before["connections_total"] + 1
