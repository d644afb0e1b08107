"""The mock's faults (seeded rates and per-request headers), stats, live config, pipelining, processes."""

from __future__ import annotations

import json
import socket
from typing import Iterator

import httpx
import pytest

from bench.procs import MockHandle, start_mock

pytestmark = pytest.mark.e2e

AUTH = {"authorization": "Bearer sk-test"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def mock() -> Iterator[MockHandle]:
    with start_mock(name="faulty", chunks=4) as m:
        yield m


def statuses(mock: MockHandle, n: int) -> list[int]:
    with httpx.Client(base_url=mock.openai_base, headers=AUTH) as client:
        return [client.post("/chat/completions", json=CHAT).status_code for _ in range(n)]


def test_seeded_fault_rates_repeat(mock: MockHandle) -> None:
    mock.set_config(fault_429=0.2, fault_500=0.1, fault_503=0.05, seed=42)
    first = statuses(mock, 1000)
    counts = {s: first.count(s) for s in set(first)}
    # binomial, n=1000: +-5 standard deviations
    assert abs(counts[429] - 200) <= 65
    assert abs(counts[500] - 100) <= 48
    assert abs(counts[503] - 50) <= 35
    assert counts[200] == 1000 - counts[429] - counts[500] - counts[503]
    stats = mock.stats()
    assert stats["requests"] == 1000
    assert stats["by_fault"] == {str(s): counts[s] for s in (429, 500, 503)}
    assert stats["by_status"] == {str(s): c for s, c in counts.items()}
    mock.set_config(seed=42)  # same seed again: the same sequence
    assert statuses(mock, 1000) == first


def test_retry_after_and_error_shape(mock: MockHandle) -> None:
    mock.set_config(retry_after=3)
    r = httpx.post(mock.openai_base + "/chat/completions", json=CHAT, headers={**AUTH, "x-mock-fault": "429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    r = httpx.post(mock.openai_base + "/chat/completions", json=CHAT, headers={**AUTH, "x-mock-fault": "500"})
    assert r.status_code == 500 and "retry-after" not in r.headers
    r = httpx.post(mock.url + "/v1/messages", json=CHAT,
                   headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "x-mock-fault": "503"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "overloaded_error"
    r = httpx.post(mock.openai_base + "/chat/completions", json=CHAT, headers={**AUTH, "x-mock-fault": "400"})
    assert r.status_code == 400


def test_reset_cut_and_hang_headers(mock: MockHandle) -> None:
    url = mock.openai_base + "/chat/completions"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(url, json=CHAT, headers={**AUTH, "x-mock-fault": "reset"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url, json=CHAT, headers={**AUTH, "x-mock-fault": "cut"})
    with pytest.raises(httpx.RemoteProtocolError):  # a stream cut half way: incomplete chunked body
        with httpx.stream("POST", url, json={**CHAT, "stream": True}, headers={**AUTH, "x-mock-fault": "cut"}) as r:
            assert r.status_code == 200
            r.read()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=CHAT, headers={**AUTH, "x-mock-fault": "hang"}, timeout=0.3)
    stats = mock.stats()
    assert stats["by_fault"] == {"reset": 1, "cut": 2, "hang": 1}
    assert stats["client_aborts"] >= 1  # the hung request ended by the client
    assert httpx.post(url, json=CHAT, headers={**AUTH, "x-mock-fault": "none"}).status_code == 200


def test_name_header_live_config_and_validation(mock: MockHandle) -> None:
    assert mock.config()["name"] == "faulty"
    new = mock.set_config(name="b", latency_ms=1, latency_dist="exp")
    assert new["name"] == "b" and new["latency_dist"] == "exp"
    r = httpx.get(mock.openai_base + "/models", headers=AUTH)
    assert r.headers["x-mock-name"] == "b"
    for bad in ({"nope": 1}, {"fault_429": 2}, {"latency_dist": "weird"}, {"fault_500": 0.7, "fault_503": 0.7}):
        resp = httpx.post(mock.url + "/__mock/config", json=bad)
        assert resp.status_code == 400 and "error" in resp.json()
    assert mock.config()["name"] == "b"


def test_stats_reset_and_request_log(mock: MockHandle) -> None:
    statuses(mock, 3)
    assert mock.stats()["by_path"] == {"/v1/chat/completions": 3}
    log = mock.requests()
    assert len(log) == 3 and log[0]["body"] == CHAT and ["authorization", "Bearer sk-test"] in log[0]["headers"]
    mock.reset()
    stats = mock.stats()
    assert stats["requests"] == 0 and stats["by_path"] == {} and mock.requests() == []


def raw_exchange(port: int, payload: bytes, expect_responses: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < expect_responses or not data.endswith((b"}", b"\r\n\r\n")):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_pipelined_requests_answer_in_order(mock: MockHandle) -> None:
    def req(model: str, extra: str = "") -> bytes:
        body = json.dumps({"model": model}).encode()
        return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\n{extra}"
                f"content-length: {len(body)}\r\n\r\n").encode() + body
    data = raw_exchange(mock.port, req("first", "x-mock-latency-ms: 50\r\n") + req("second") + req("third"), 3)
    order = [m for m in ("first", "second", "third") if f'"model":"{m}"'.encode() in data]
    assert order == ["first", "second", "third"]
    assert data.index(b'"model":"first"') < data.index(b'"model":"second"') < data.index(b'"model":"third"')


def test_chunked_request_body(mock: MockHandle) -> None:
    body = json.dumps(CHAT).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ntransfer-encoding: chunked\r\n\r\n"
    payload = head + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    data = raw_exchange(mock.port, payload, 1)
    assert data.startswith(b"HTTP/1.1 200 OK") and b'"model":"m"' in data


def test_processes_share_config_and_sum_stats() -> None:
    with start_mock(name="multi", processes=2) as m:
        m.set_config(fault_500=1.0)
        with httpx.Client(base_url=m.openai_base, headers=AUTH) as c1, \
                httpx.Client(base_url=m.openai_base, headers=AUTH) as c2:
            codes = []
            for _ in range(10):
                codes.append(c1.post("/chat/completions", json=CHAT).status_code)
                codes.append(c2.post("/chat/completions", json=CHAT).status_code)
        assert codes == [500] * 20
        stats = m.stats()
        assert stats["processes"] == 2 and stats["requests"] == 20 and stats["by_fault"] == {"500": 20}
        assert len(stats["per_process"]) == 2
