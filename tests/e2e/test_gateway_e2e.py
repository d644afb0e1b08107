"""End to end: a real Granian process serving a LiteLLM config.yaml, a real mock upstream, the real openai SDK.

This is the foundation's "done when": the same binary started with an unchanged LiteLLM config pointing at
an OpenAI-compatible upstream serves the openai SDK unchanged, streaming included, with LiteLLM's error
classes and headers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import openai
import pytest

from bench.procs import start_mock
from tests.conftest import GatewayProc, free_port, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-master"


def litellm_config(api_base: str, dead_base: str, extra: str = "") -> str:
    return f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-upstream
      api_base: {api_base}
    model_info:
      id: mock-a
  - model_name: renamed
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-upstream
      api_base: {api_base}
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_key: sk-upstream
      api_base: {api_base}
  - model_name: dead
    litellm_params:
      model: openai/dead
      api_base: {dead_base}
  - model_name: slow
    litellm_params:
      model: openai/slow
      api_key: sk-upstream
      api_base: {api_base}
      timeout: 0.5
general_settings:
  master_key: {MASTER}
  # the request path's memory is watched by test_streams_do_not_leak; spend tracking's has its own plateau
  # test (tests/spend/test_spend_memory_e2e.py); disable_spend_logs keeps the counters (as LiteLLM)
  disable_spend_logs: true
relaygate_settings:
  spend_tracking: false
litellm_settings:
  drop_params: true
{extra}
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[GatewayProc, object]]:
    with start_mock(name="up", chunks=6, seed=1) as mock:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        with start_gateway(litellm_config(mock.openai_base, dead)) as gw:
            yield gw, mock


@contextmanager
def mock_options(mock, **options):  # type: ignore[no-untyped-def]
    """Change the shared mock's behaviour for one block (client headers are not forwarded upstream)."""
    before = mock.config()
    mock.set_config(**options)
    try:
        yield
    finally:
        mock.set_config(**{k: before[k] for k in options})


@pytest.fixture
def client(stack: tuple[GatewayProc, object]) -> Iterator[openai.OpenAI]:
    gw, _ = stack
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as c:
        yield c


def test_chat(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.total_tokens > 0


def test_group_name_differs_from_upstream_model(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    _, mock = stack
    raw = client.chat.completions.with_raw_response.create(
        model="renamed", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-litellm-model-group"] == "renamed"
    assert mock.requests()[-1]["body"]["model"] == "gpt-4o-mini"  # the upstream got its own name


def test_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-litellm-call-id": "call-42"})
    h = raw.headers
    assert h["x-litellm-call-id"] == "call-42"
    assert h["x-litellm-model-id"] == "mock-a"
    assert h["x-litellm-model-group"] == "gpt-4o-mini"
    assert h["x-litellm-model-api-base"].startswith("http://127.0.0.1:")
    assert float(h["x-litellm-overhead-duration-ms"]) <= float(h["x-litellm-response-duration-ms"])
    assert h["x-litellm-version"]
    assert any(k.startswith("x-ratelimit-") for k in h)  # passed through from the upstream


def test_stream_chunks_arrive_one_by_one(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    spreads = []
    for _ in range(3):
        arrivals, text, usage = [], "", None
        with mock_options(stack[1], chunk_gap_ms=100):
            chunks = list(_timed(client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True,
                stream_options={"include_usage": True}), arrivals))
        for chunk in chunks:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        assert text
        assert usage is not None and usage.completion_tokens > 0
        assert len(arrivals) >= 6
        spreads.append(arrivals[-1] - arrivals[0])
        # six content chunks 100 ms apart upstream: a buffering gateway delivers them in one burst, every
        # time; this test process starved of CPU for the whole half second (CI runs two test workers, the
        # gateway, the mock and PostgreSQL on two cores) reads them in one burst too, but not three times
        if spreads[-1] > 0.25:
            break
    assert spreads[-1] > 0.25, spreads


def _timed(stream, arrivals):  # type: ignore[no-untyped-def]
    for chunk in stream:
        arrivals.append(time.perf_counter())
        yield chunk


def test_embeddings_and_models(client: openai.OpenAI) -> None:
    e = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[1].embedding) > 0
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "renamed", "text-embedding-3-small"} <= ids


def test_sdk_error_classes(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    gw, _ = stack
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-wrong", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError) as e401:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert e401.value.status_code == 401
    with pytest.raises(openai.BadRequestError) as e400:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert "Invalid model name" in str(e400.value)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError):
        client.get("/nope", cast_to=object)


def test_upstream_errors_pass_through(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    mock = stack[1]
    msgs = [{"role": "user", "content": "x"}]
    with mock_options(mock, fault_429=1.0), pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert e.value.status_code == 429
    with mock_options(mock, fault_503=1.0), pytest.raises(openai.InternalServerError) as e5:
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert e5.value.status_code == 503
    with pytest.raises(openai.APIStatusError) as ed:
        client.chat.completions.create(model="dead", messages=msgs)
    assert ed.value.status_code == 502
    with mock_options(mock, fault_hang=1.0), pytest.raises(openai.APIStatusError) as et:
        client.chat.completions.create(model="slow", messages=msgs)
    assert et.value.status_code == 408
    with mock_options(mock, fault_reset=1.0), pytest.raises(openai.APIStatusError) as er:
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert er.value.status_code == 502


def test_malformed_and_oversized(stack) -> None:  # type: ignore[no-untyped-def]
    gw, _ = stack
    h = {"Authorization": f"Bearer {MASTER}", "content-type": "application/json"}
    r = httpx.post(gw.url + "/v1/chat/completions", content=b"{oops", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "400"
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [], "stream": 3},
                   headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * (33 * 1024 * 1024) + b'"}]}'
    r = httpx.post(gw.url + "/v1/chat/completions", content=big, headers=h, timeout=30)
    assert r.status_code == 413
    # the worker is still fine
    r = httpx.post(gw.url + "/v1/chat/completions",
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ok"}]}, headers=h)
    assert r.status_code == 200


def test_client_disconnect_cancels_upstream(stack) -> None:  # type: ignore[no-untyped-def]
    gw, mock = stack
    body = (b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "x"}]}')
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}\r\n"
           f"Content-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    before = mock.stats()
    with mock_options(mock, chunks=200, chunk_gap_ms=50), socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(req)
        got = b""
        while got.count(b"data: ") < 3:
            got += s.recv(65536)
    # the client is gone; the upstream stream (200 chunks x 50 ms = 10 s) must be cut well before its end
    deadline = time.time() + 5
    while time.time() < deadline:
        if mock.stats()["in_flight"] == 0:
            break
        time.sleep(0.05)
    stats = mock.stats()
    assert stats["in_flight"] == 0, stats
    assert before is not None


def test_litellm_style_cli(stack) -> None:  # type: ignore[no-untyped-def]
    """Existing LiteLLM start scripts keep working: no sub-command, --num_workers, --detailed_debug."""
    _, mock = stack
    cfg = litellm_config(mock.openai_base, mock.openai_base)
    cli = [sys.executable, "-m", "relaygate.cli"]
    with start_gateway(cfg, cli=cli, args=["--num_workers", "1", "--detailed_debug", "--telemetry", "False"]) as gw:
        r = httpx.post(gw.url + "/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        assert "--telemetry is not supported" in gw.log()  # unknown LiteLLM flags: one warning, no crash


def test_health_checks_deployments(stack) -> None:  # type: ignore[no-untyped-def]
    gw, _ = stack
    r = httpx.get(gw.url + "/health", headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)
    assert r.status_code == 200
    data = r.json()
    unhealthy = {e["model_name"] for e in data["unhealthy_endpoints"]}
    assert unhealthy == {"dead"}
    assert data["healthy_count"] == 4
    assert "sk-upstream" not in r.text


def _rss(gw: GatewayProc) -> int:
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    line = next(x for x in text.splitlines() if x.startswith("relaygate_worker_rss_bytes"))
    return int(line.rsplit(" ", 1)[1])


def test_streams_do_not_leak(stack) -> None:  # type: ignore[no-untyped-def]
    """Thousands of streams on keep-alive connections leave the worker's memory flat.

    Regression: a disconnect watch that kept a pending Granian receive() with a callback to the request
    task leaked ~1.6 KB per stream (10 MB over this run).
    """
    gw, _ = stack

    def load(n: int) -> None:
        r = subprocess.run([sys.executable, "-m", "bench.load", "--url", gw.url, "--api-key", MASTER,
                            "--model", "gpt-4o-mini", "--stream", "--concurrency", "16", "--requests", str(n),
                            "--quiet", "--timeout", "10"], capture_output=True, text=True, timeout=100)
        assert r.returncode == 0, r.stdout + r.stderr

    load(1000)  # warm: pools, caches, allocator arenas
    before = _rss(gw)
    load(6000)
    growth = _rss(gw) - before
    assert growth < 5 * 1024 * 1024, f"worker RSS grew {growth / 1e6:.1f} MB over 6000 streams"


def test_client_disconnect_cancels_non_stream_call(stack) -> None:  # type: ignore[no-untyped-def]
    """A client that gives up on a slow non-stream completion cancels the upstream request too."""
    gw, mock = stack
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with mock_options(mock, latency_ms=10_000):
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(req)
            deadline = time.time() + 5
            while mock.stats()["in_flight"] == 0 and time.time() < deadline:
                time.sleep(0.02)
            assert mock.stats()["in_flight"] == 1
        deadline = time.time() + 5  # the upstream answer would take 10 s
        while mock.stats()["in_flight"] and time.time() < deadline:
            time.sleep(0.05)
        assert mock.stats()["in_flight"] == 0
    metrics = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    assert 'relaygate_events_total{event="client_disconnected"' in metrics


def test_metrics_aggregate_every_worker(stack) -> None:  # type: ignore[no-untyped-def]
    """With two workers, /metrics answered by either one counts the requests both served."""
    _, mock = stack
    cfg = litellm_config(mock.openai_base, mock.openai_base)
    with start_gateway(cfg, workers=2) as gw:
        h = {"Authorization": f"Bearer {MASTER}"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        with httpx.Client(base_url=gw.url, headers=h, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(40):  # fresh connections: the kernel spreads them over both workers
                assert c.post("/v1/chat/completions", json=body).status_code == 200
            assert c.post("/v1/chat/completions", json={**body, "model": "nope"}).status_code == 400
            time.sleep(1.5)  # one flush interval for the other worker's snapshot
            text = c.get("/metrics").text
    assert "from 2 worker(s)" in text
    ok = sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith('relaygate_requests_total{model_group="gpt-4o-mini",model_id="mock-a",status="200"'))
    assert ok == 40
    # a name the client made up is never a label: it counts under `other`
    assert 'relaygate_requests_total{model_group="other",model_id="",status="400"} 1' in text
    assert "nope" not in text
    assert text.count("relaygate_worker_rss_bytes{pid=") == 2


def test_health_pings_providers_without_a_health_endpoint() -> None:
    """Adapters with no cheap health call get a one-token completion, as LiteLLM's /health makes."""
    with start_mock(name="h") as mock:
        dead = f"http://127.0.0.1:{free_port()}"
        cfg = f"""
model_list:
  - model_name: gem
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: {mock.url}}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk-up, api_base: {mock.url}}}
  - model_name: gem-dead
    litellm_params: {{model: gemini/gemini-x, api_key: sk-up, api_base: {dead}}}
general_settings:
  master_key: {MASTER}
"""
        with start_gateway(cfg) as gw:
            mock.reset()
            data = httpx.get(gw.url + "/health", headers={"Authorization": f"Bearer {MASTER}"}, timeout=30).json()
            assert {e["model_name"] for e in data["healthy_endpoints"]} == {"gem", "claude"}
            assert [e["model_name"] for e in data["unhealthy_endpoints"]] == ["gem-dead"]
            assert any(":generateContent" in p for p in mock.stats()["by_path"])  # really asked


def test_litellm_model_mode_and_environment(stack) -> None:  # type: ignore[no-untyped-def]
    """`litellm --model M --api_base B` with PORT and LITELLM_MASTER_KEY from the environment, no config."""
    import os
    import tempfile
    from pathlib import Path

    from tests.conftest import stop_process, wait_ready

    _, mock = stack
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "log"
    closing: list[openai.OpenAI] = []
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "NUM_WORKERS": "1", "LITELLM_MASTER_KEY": "sk-env",
           "OPENAI_API_KEY": "sk-upstream-env"}
    with open(log, "wb") as f:
        p = subprocess.Popen([sys.executable, "-m", "relaygate.cli", "--model", "openai/gpt-4o-mini",
                              "--api_base", mock.openai_base, "--alias", "mini"], stdout=f, stderr=subprocess.STDOUT,
                             env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/readiness", p, log)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-env", max_retries=0)
        closing.append(client)
        for name in ("mini", "any-name-at-all"):  # like LiteLLM's CLI mode, every name reaches the model
            r = client.chat.completions.with_raw_response.create(model=name, messages=[{"role": "user", "content": "x"}])
            assert r.parse().choices[0].message.content
        last = mock.requests()[-1]
        assert last["body"]["model"] == "gpt-4o-mini"
        auth = [v for k, v in last["headers"] if k.lower() == "authorization"]
        assert auth == ["Bearer sk-upstream-env"]  # OPENAI_API_KEY from the environment, as LiteLLM
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope", max_retries=0)
        closing.append(bad)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    finally:
        for c in closing:
            c.close()
        stop_process(p)
