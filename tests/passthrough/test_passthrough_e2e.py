"""End to end: the real anthropic and openai SDKs (and httpx for Gemini and custom endpoints) against a real
Granian process whose pass-through routes point at the loopback upstream, with the embedded SQLite store:
the upstream sees the config's credentials only, spend logs and the key's spend reflect the usage, a key
over its budget is refused before forwarding, uploads and answers stream through without being held."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayProc, start_gateway
from tests.passthrough.conftest import MASTER, UPSTREAM_KEY, Upstream, config_text, serve

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, Upstream]]:
    with serve() as up:
        extra = f"""
  pass_through_endpoints:
    - path: /big
      target: {up.url}/upload
      auth: true
    - path: /slow-answer
      target: {up.url}/hold
relaygate_settings:
  max_request_body_bytes: {256 * MIB}
"""
        with start_gateway(config_text(up.url, extra)) as gw:
            yield gw, up


def _key(gw: GatewayProc, **body: Any) -> str:
    r = httpx.post(gw.url + "/key/generate", json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    key: str = r.json()["key"]
    return key


def _key_spend(gw: GatewayProc, key: str, at_least: float) -> float:
    deadline = time.monotonic() + 20
    spend = 0.0
    while time.monotonic() < deadline:
        r = httpx.get(gw.url + "/key/info", params={"key": key}, headers=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        spend = float(r.json()["info"]["spend"] or 0.0)
        if spend >= at_least:
            break
        time.sleep(0.2)
    return spend


def test_anthropic_sdk_unary_and_stream_spend(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    key = _key(gw)
    client = anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key=key, max_retries=0, timeout=30)
    msg = client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=50,
                                 messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Hello from the upstream"  # type: ignore[union-attr]
    assert msg.usage.input_tokens == 1000 and msg.usage.output_tokens == 200
    seen = up.last("/v1/messages")
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and key not in str(seen.headers)
    assert "authorization" not in seen.headers and seen.headers.get("anthropic-version")
    with client.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=50,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the upstream" and final.usage.output_tokens == 200
    one = 1000 * 1e-6 + 200 * 5e-6
    assert _key_spend(gw, key, 2 * one) == pytest.approx(2 * one)
    logs = httpx.get(gw.url + "/spend/logs", params={"api_key": key}, headers=ADMIN, timeout=30).json()
    rows = [r for r in logs if r.get("call_type") == "pass_through_endpoint"]
    assert len(rows) == 2 and {r["model"] for r in rows} == {"claude-3-5-haiku-20241022"}
    assert sorted(r["prompt_tokens"] for r in rows) == [1000, 1000]


def test_anthropic_sdk_bad_key(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    before = len(up.seen)
    client = anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key="sk-not-a-key-123", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=5,
                               messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 401 and len(up.seen) == before


def test_budget_exceeded_key_refused_before_forwarding(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    key = _key(gw, max_budget=0.001)
    client = anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key=key, max_retries=0, timeout=30)
    client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    before = len(up.seen)
    deadline = time.monotonic() + 20
    while True:  # the first answer's cost (0.002) reaches the budget check once its record is handled
        try:
            client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=5,
                                   messages=[{"role": "user", "content": "x"}])
        except anthropic.UnprocessableEntityError as exc:  # LiteLLM's 422
            assert "budget" in str(exc).lower()
            break
        assert time.monotonic() < deadline, "the key over its budget was never refused"
        before = len(up.seen)
        time.sleep(0.2)
    assert len(up.seen) == before


def test_openai_sdk_through_openai_route(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    key = _key(gw)
    client = openai.OpenAI(base_url=gw.url + "/openai/v1", api_key=key, max_retries=0, timeout=30)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "hi there" and r.usage is not None and r.usage.prompt_tokens == 100
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi there"
    assert key not in str(up.last("/chat/completions").headers)
    one = 100 * 2e-6 + 20 * 4e-6
    assert _key_spend(gw, key, 2 * one) == pytest.approx(2 * one)


def test_gemini_with_query_key(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    key = _key(gw)
    r = httpx.post(gw.url + "/gemini/v1beta/models/gemini-1.5-flash:generateContent", params={"key": key},
                   json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "gemini says hi"
    assert "key=" not in up.last(":generateContent").path
    assert _key_spend(gw, key, 40 * 1e-7) > 0
    bad = httpx.post(gw.url + "/gemini/v1beta/models/gemini-1.5-flash:generateContent", params={"key": "nope-123"},
                     json={}, timeout=30)
    assert bad.status_code == 401 and bad.json()["error"]["status"] == "UNAUTHENTICATED"


def test_hostile_paths(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    before = len(up.seen)
    with httpx.Client(base_url=gw.url, headers={"x-api-key": MASTER}, timeout=30) as c:
        for path in ("/anthropic/v1/%2e%2e/%2e%2e/key/generate", "/anthropic/v1/a%2Fb",
                     "/anthropic//evil.example/x", "/anthropic/v1/..%5C..%5Cx"):
            r = c.post(path, json={"model": "m"})
            assert r.status_code in (400, 404), (path, r.status_code, r.text)
            if r.status_code == 400:
                assert r.json()["type"] == "error", r.text
    assert len(up.seen) == before


def _rss_kib(gw: GatewayProc) -> int:
    """The gateway's worker's resident memory (the child of the serving process)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(gw.proc.pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def test_large_upload_streams_without_buffering(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    key = _key(gw)
    piece = b"x" * (64 * 1024)
    total = 96 * MIB
    started = threading.Event()
    overlap = {"ok": False}

    def body() -> Iterator[bytes]:
        sent = 0
        while sent < total:
            yield piece
            sent += len(piece)
            if sent == 8 * MIB:
                # a gateway that held the body would never let the upstream see a byte before the end
                deadline = time.monotonic() + 30
                while up.received < MIB and time.monotonic() < deadline:
                    time.sleep(0.01)
                overlap["ok"] = up.received >= MIB
                started.set()

    rss_before = _rss_kib(gw)
    r = httpx.post(gw.url + "/big", content=body(), headers={"authorization": f"Bearer {key}"}, timeout=120)
    assert r.status_code == 200, r.text
    assert started.is_set() and overlap["ok"]
    assert r.json()["size"] == total and up.last("/upload").size == total
    growth_mib = (_rss_kib(gw) - rss_before) / 1024
    assert growth_mib < 48, f"the worker grew by {growth_mib:.0f} MiB for a {total // MIB} MiB upload"


def test_answer_streams_as_it_arrives(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    up.hold.clear()
    with httpx.Client(timeout=30) as c, c.stream("GET", gw.url + "/slow-answer") as r:
        assert r.status_code == 200
        it = r.iter_raw()
        first = next(it)  # arrives while the upstream still holds the rest
        assert first == b"first part;"
        up.hold.set()
        assert b"".join(it) == b"second part"


def test_client_gone_closes_the_upstream(stack: tuple[GatewayProc, Upstream]) -> None:
    gw, up = stack
    up.hold.clear()
    up.broken.clear()
    before = _gone(gw)
    with httpx.Client(timeout=30) as c, c.stream("GET", gw.url + "/slow-answer") as r:
        assert next(r.iter_raw()) == b"first part;"
    deadline = time.monotonic() + 15
    while _gone(gw) == before and time.monotonic() < deadline:  # the gateway noticed the client left
        time.sleep(0.05)
    assert _gone(gw) == before + 1
    # it closed its upstream connection then, so the rest of the answer cannot be written
    up.hold.set()
    assert up.broken.wait(15)


def _gone(gw: GatewayProc) -> int:
    text = httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=30).text
    for line in text.splitlines():
        if line.startswith('relaygate_events_total{event="client_disconnected"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
