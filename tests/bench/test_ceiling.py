"""The calibration systems (``bench.peers.rawproxy``) and ``python -m bench.ceiling``.

Unit tier: the raw proxy's response parser fed whole, one byte at a time and split at every point (bodies
by length, chunked with extensions and trailers, interim heads, read-until-close), and its connection pool
against a real in-process HTTP server: one keep-alive connection carries request after request, and a
connection the upstream closes is dropped, never reused. E2E tier: the raw proxy and the hello world
served by Granian in front of the real mock (bodies relayed unchanged, unary and streamed; credentials
replaced; a dead upstream is a 502), and ``bench.ceiling --quick`` end to end. Nothing here asserts a
timing.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ceiling import RATIOS, WORKLOADS, summarize
from bench.lanereport import calibration
from bench.lanes import LANES, start_rawproxy, unsupported
from bench.peers.rawproxy import HELLO_BODY, ParseError, RawProxy, ResponseParser, read_answer
from bench.procs import REPO_ROOT, start_mock, wait_http
from bench.systems import MODEL, UPSTREAM_KEY, free_port

CL = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-a: 1\r\ncontent-length: 11\r\n\r\n{\"a\":\"bcd\"}"
CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"6\r\ndata: \r\nA;ext=1\r\n0123456789\r\n1\r\n\n\r\n0\r\nx-trailer: 1\r\n\r\n")


def feed(data: bytes, cuts: list[int], parser: ResponseParser | None = None) -> tuple[ResponseParser, list[int]]:
    """Feed ``data`` cut at ``cuts``; returns the parser and how many pieces were waiting after each feed."""
    p = parser or ResponseParser()
    waiting, prev = [], 0
    for c in [*sorted(set(cuts)), len(data)]:
        p.feed(data[prev:c])
        waiting.append(len(p.pieces))
        prev = c
    return p, waiting


@pytest.mark.parametrize("cut", range(len(CL) + 1))
def test_content_length_split_anywhere(cut: int) -> None:
    p, _ = feed(CL, [cut])
    assert (p.status, p.content_type, p.chunked, p.done, p.reusable) == (200, b"application/json", False, True, True)
    assert b"".join(p.pieces) == b'{"a":"bcd"}'


@pytest.mark.parametrize("cut", range(len(CHUNKED) + 1))
def test_chunked_split_anywhere(cut: int) -> None:
    p, _ = feed(CHUNKED, [cut])
    assert p.chunked and p.done and p.reusable and p.content_type == b"text/event-stream"
    assert b"".join(p.pieces) == b"data: 0123456789\n"


def test_byte_at_a_time_and_pieces_arrive_as_they_come() -> None:
    p, waiting = feed(CHUNKED, list(range(len(CHUNKED))))
    assert p.done and b"".join(p.pieces) == b"data: 0123456789\n"
    assert len(set(waiting)) > 3  # data was handed over while the body was still arriving
    p, _ = feed(CL, list(range(len(CL))))
    assert p.done and b"".join(p.pieces) == b'{"a":"bcd"}'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CHUNKED)), max_size=12))
def test_chunked_random_splits(cuts: list[int]) -> None:
    p, _ = feed(CHUNKED, cuts)
    assert p.done and b"".join(p.pieces) == b"data: 0123456789\n"


def test_keep_alive_reuse_of_one_parser() -> None:
    p = ResponseParser()
    for data in (CL, CHUNKED, CL):
        p.reset()
        feed(data, [len(data) // 3], p)
        assert p.done and p.reusable and p.keep_alive
    p.reset()
    feed(b"HTTP/1.1 100 Continue\r\n\r\n" + CL, [10, 30], p)
    assert p.status == 200 and p.done and b"".join(p.pieces) == b'{"a":"bcd"}'


def test_what_ends_reuse() -> None:
    p, _ = feed(CL.replace(b"x-a: 1", b"Connection: close"), [])
    assert p.done and not p.keep_alive and not p.reusable
    p, _ = feed(CL + b"HTTP/1.1", [])  # a stray byte after the response
    assert p.done and not p.reusable
    p, _ = feed(b"HTTP/1.1 204 No Content\r\n\r\n", [])
    assert p.done and p.pieces == [] and p.reusable
    p, _ = feed(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil", [])
    assert p.until_close and not p.done and not p.reusable
    p.feed(b" close")
    p.eof()
    assert p.done and b"".join(p.pieces) == b"until close"
    p, _ = feed(CL[:-3], [])
    with pytest.raises(ParseError):
        p.eof()
    for bad in (b"HTTP/2 200 OK\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"):
        with pytest.raises(ParseError):
            ResponseParser().feed(bad)
    with pytest.raises(ParseError):
        ResponseParser().feed(CHUNKED.replace(b"6\r\n", b"zz\r\n"))


# ------------------------------------------------------------------------------- lanes and summaries


def test_calibration_systems_in_the_lanes() -> None:
    runs = {name for name in LANES if unsupported(LANES[name], "rawproxy") is None}
    assert runs == {"passthrough", "body100k", "streams", "governed"}
    assert [name for name in LANES if unsupported(LANES[name], "hello") is None] == ["passthrough"]
    assert "cache" in (unsupported(LANES["cached"], "rawproxy") or "")
    assert "translates" in (unsupported(LANES["anthropic-in"], "rawproxy") or "")
    data = {"lanes": {"governed": {"systems": {"relaygate": {"cpu_us_per_req": 390.0},
                                               "rawproxy": {"cpu_us_per_req": 300.0}}},
                      "streams": {"systems": {"relaygate": {"cpu_us_per_req": 400.0},
                                              "rawproxy": {"cpu_us_per_req": 300.0}}},
                      "passthrough": {"systems": {"relaygate": {"cpu_us_per_req": 250.0},
                                                  "rawproxy": {"cpu_us_per_req": 100.0},
                                                  "hello": {"cpu_us_per_req": 50.0}}},
                      "cached": {"systems": {"relaygate": {"cpu_us_per_req": 150.0}, "rawproxy": {"na": "x"}}}}}
    rows = {line.split(" | ")[0].lstrip("| "): line for line in calibration(data) if line.startswith("| ")}
    assert "1.30×" in rows["governed"] and "met" in rows["governed"]
    assert "1.33×" in rows["streams"] and "met" in rows["streams"]
    assert "2.50×" in rows["passthrough"] and rows["passthrough"].rstrip(" |").endswith("50.0")
    assert "cached" not in rows


def test_summary_ratios_and_added_latency() -> None:
    def step(cpu: float, p50: float, p99: float) -> dict[str, Any]:
        return {"ok": 10, "error_count": 0, "rps": 100.0, "p50_ms": p50, "p99_ms": p99, "cpu_us_per_req": cpu}

    rounds = []
    for k in (1.0, 1.2):
        rounds.append({f"{s}/{w}": step(k * {"hello": 50, "rawproxy": 100, "relaygate": 200,
                                             "relaygate-governed": 120, "direct": 0}[s] or 1.0,
                                         {"direct": 0.1}.get(s, 0.2), {"direct": 0.2}.get(s, 0.4 * k))
                       for s, w in WORKLOADS})
    sm = summarize(rounds)
    ratios = {r["name"]: r for r in sm["ratios"]}
    assert ratios["relaygate-governed / rawproxy (unary)"]["value"] == 1.2
    assert ratios["relaygate-governed / rawproxy (unary)"]["met"] is True
    assert ratios["relaygate / rawproxy (20-chunk stream)"]["met"] is False
    assert ratios["relaygate / hello (unary)"]["value"] == 4.0 and ratios["relaygate / hello (unary)"]["met"] is None
    assert sm["results"]["relaygate/unary"]["cpu_us_per_req"] == {"median": 220.0, "min": 200.0, "max": 240.0}
    added = sm["added"]["relaygate"]
    assert added["p50_us"]["median"] == pytest.approx(100.0) and added["p99_us"]["max"] == pytest.approx(280.0)
    assert added["met"] is True and sm["added"]["rawproxy"]["met"] is None
    assert sm["disturbed"] is False and sm["other_cpu_max"] is None


# ------------------------------------------------------------------------------- the pool, in process


async def _call(app: RawProxy, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """One request through the ASGI app: (status, body, body messages sent)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"q=1",
             "headers": headers}
    await app(scope, receive, send)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    return sent[0]["status"], b"".join(m["body"] for m in bodies), len(bodies)


def test_pool_reuses_a_keep_alive_connection_and_drops_a_closed_one() -> None:
    async def scenario() -> None:
        conns: list[int] = []
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(1)
            try:
                await serve(reader, writer)
            finally:
                writer.close()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                seen.append(head + await reader.readexactly(length))
                close = b"/close" in head
                if b"/stream" in head:
                    writer.write(CHUNKED)
                else:
                    writer.write(CL.replace(b"x-a: 1", b"connection: close") if close else CL)
                await writer.drain()
                if close:
                    return

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        app = RawProxy(f"http://127.0.0.1:{port}", upstream_key="sk-up")
        assert app.pool is not None
        hdrs = [(b"authorization", b"Bearer client"), (b"content-type", b"application/json"), (b"x-other", b"no")]
        try:
            for _ in range(3):
                assert await _call(app, "/v1/chat/completions", b'{"x":1}', hdrs) == (200, b'{"a":"bcd"}', 1)
            status, body, n = await _call(app, "/stream", b"{}", hdrs)
            assert (status, body) == (200, b"data: 0123456789\n") and n >= 2  # streamed: more_body, then the end
            assert app.pool.opened == 1 and len(conns) == 1  # one keep-alive connection carried all four
            assert (await _call(app, "/close", b"{}", hdrs))[0] == 200
            assert app.pool.idle == []  # the upstream said close: dropped
            assert (await _call(app, "/v1/chat/completions", b"{}", hdrs))[0] == 200
            assert app.pool.opened == 2 and len(conns) == 2
        finally:
            app.pool.close()
            await asyncio.sleep(0.05)  # let the handlers see the pool's connections close
            server.close()
            await server.wait_closed()
        assert seen[0].startswith(b"POST /v1/chat/completions?q=1 HTTP/1.1\r\n")
        assert b"authorization: Bearer sk-up\r\n" in seen[0] and b"x-other" not in seen[0]
        assert seen[0].endswith(b'\r\n\r\n{"x":1}')

    asyncio.run(scenario())


def test_hello_answers_what_an_answer_file_holds(tmp_path: Path) -> None:
    # bench.scenarios_cache's floor: the hit's status, headers and body, the length recomputed, the server's own
    # headers left to the server
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"status": 201, "body": '{"x":"\u00e9"}',
                                "headers": [["Content-Type", "application/json"], ["x-litellm-cache-key", "k1"],
                                            ["content-length", "999"]]}))
    status, headers, body = read_answer(str(path))
    assert status == 201 and body == '{"x":"\u00e9"}'.encode()
    assert headers == [(b"content-type", b"application/json"), (b"x-litellm-cache-key", b"k1"),
                       (b"content-length", str(len(body)).encode())]
    app = RawProxy(hello=True, answer=(status, headers, body))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    asyncio.run(app({"type": "http", "path": "/v1/chat/completions", "headers": []}, receive, send))
    assert sent == [{"type": "http.response.start", "status": 201, "headers": headers},
                    {"type": "http.response.body", "body": body}]


# ------------------------------------------------------------------------------- e2e


def _post(url: str, body: dict[str, Any], key: str = "sk-client") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json",
                                                                    "authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def _same(body: bytes) -> bytes:
    """The mock's answer without what differs per request (its id counter, the clock)."""
    return re.sub(rb'"created":\s*\d+', b'"created":0', re.sub(rb"mock\d+x\d+", b"mockNxN", body))


@pytest.mark.e2e
def test_rawproxy_relays_the_mock_unchanged_and_hello_answers(tmp_path: Path) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]}
    with start_mock(name="upstream", chunks=20, record=8) as mock:
        procs = [start_rawproxy("rawproxy", mock.url, None, tmp_path), start_rawproxy("hello", None, None, tmp_path)]
        dead = start_rawproxy("rawproxy", f"http://127.0.0.1:{free_port()}", None, tmp_path)
        try:
            for proc, url in [*procs, dead]:
                wait_http(url + "/health/readiness", 30, proc=proc, interval=0.05)
            raw, hello = procs[0][1], procs[1][1]
            for body in (chat, {**chat, "stream": True}):
                direct = _post(mock.url + "/v1/chat/completions", body, UPSTREAM_KEY)
                relayed = _post(raw + "/v1/chat/completions?trace=a%20b", body)
                assert direct[0] == relayed[0] == 200 and direct[1] == relayed[1]
                assert _same(relayed[2]) == _same(direct[2]) and len(relayed[2]) > 200
                seen = mock.requests()[-1]
                assert seen["method"] == "POST" and seen["target"] == "/v1/chat/completions?trace=a%20b"
                assert seen["body"] == body and dict(seen["headers"])["authorization"] == f"Bearer {UPSTREAM_KEY}"
            assert relayed[1].startswith("text/event-stream") and relayed[2].rstrip().endswith(b"data: [DONE]")
            assert _post(hello + "/v1/chat/completions", chat) == (200, "application/json", HELLO_BODY)
            status, ctype, err = _post(dead[1] + "/v1/chat/completions", chat)
            assert status == 502 and ctype == "application/json" and "upstream" in json.loads(err)["error"]["message"]
        finally:
            for proc, _ in [*procs, dead]:
                proc.stop()


@pytest.mark.e2e
def test_ceiling_quick_end_to_end(tmp_path: Path) -> None:
    # unpinned: under a parallel test run another process may hold the gateway core for a whole 1 s load
    run = subprocess.run([sys.executable, "-m", "bench.ceiling", "--quick", "--no-pin", "--out", str(tmp_path)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / "ceiling-latest.json").read_text())
    results = data["summary"]["results"]
    assert sorted(results) == sorted(f"{s}/{w}" for s, w in WORKLOADS)
    for key, r in results.items():
        assert r["ok"] > 0 and r["error_count"] == 0, (key, r["rounds"])
        if r["system"] != "direct":
            assert r["cpu_us_per_req"]["median"] > 0, key
    stream = results["relaygate/stream20"]["rounds"][0]
    assert stream["chunks_min"] >= 20 and results["rawproxy/stream20"]["rounds"][0]["chunks_min"] >= 20
    assert [r["name"] for r in data["summary"]["ratios"]] == [r[0] for r in RATIOS]
    assert all(r["value"] > 0 for r in data["summary"]["ratios"])
    assert all(a["p99_us"] is not None for a in data["summary"]["added"].values())
    assert data["meta"]["pinning"].startswith("none")
    assert 0 <= results["relaygate/unary"]["other_cpu"]["median"] <= 2
    md = (tmp_path / "ceiling-latest.md").read_text()
    assert "relaygate-governed / rawproxy (unary)" in md and "≤ 1.3×" in md
    assert len(list(tmp_path.glob("2*-ceiling.json"))) == 1
