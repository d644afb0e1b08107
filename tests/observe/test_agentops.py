"""LiteLLM's ``agentops`` callback: the token exchange, where spans go and with which credential and resource,
renewal on refusal and on expiry, an AgentOps API that is down; checked at a real OTLP/HTTP receiver that decodes
with the official protobuf messages and a real token endpoint, and through a real ``relaygate serve``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import relaygate.observe.agentops as agentops
from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.core.errors import redact
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe import check
from relaygate.observe.agentops import (
    API_DEFAULT,
    EXPORTER_DEFAULT,
    AgentOpsSink,
    AgentOpsToken,
    agentops_settings,
    make_agentops,
)
from relaygate.sinks.record import CompletionRecord
from tests.conftest import start_gateway
from tests.observe.otlp_receiver import Receiver
from tests.observe.test_otel_export import SERVER, TRACE, detail, with_detail

BOTH = ObserveSettings(success_callbacks=("agentops",), failure_callbacks=("agentops",))


@pytest.fixture(autouse=True)
def _no_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AGENTOPS_")):
            monkeypatch.delenv(name)


def jwt(exp: float | None, sub: str = "proj") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, Any] = {"sub": sub}
    if exp is not None:
        claims["exp"] = int(exp)
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class TokenServer:
    """AgentOps' ``/v3/auth/token``: answers each exchange with the next of ``tokens`` (the last one repeats), or
    ``status`` when set; records the bodies it got."""

    def __init__(self, tokens: list[str], project: str = "proj-42") -> None:
        self.tokens = tokens
        self.project = project
        self.status = 0
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.paths.append(self.path)
                server.bodies.append(json.loads(raw))
                if server.status:
                    body = b'{"error": "nope"}'
                    self.send_response(server.status)
                else:
                    n = len(server.bodies) - 1
                    token = server.tokens[min(n, len(server.tokens) - 1)]
                    body = json.dumps({"token": token, "project_id": server.project}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def export(records: list[CompletionRecord], env: dict[str, str],
           events: list[tuple[str, int]] | None = None, rounds: int = 1) -> AgentOpsSink:
    sink = make_agentops(BOTH, {"OTEL_BSP_SCHEDULE_DELAY": "10", **env},
                         (lambda e, n: events.append((e, n))) if events is not None else None)

    async def main() -> None:
        for _ in range(rounds):
            await sink.handle(records)
            sink.processor.force_flush()  # type: ignore[no-untyped-call]
        await sink.aclose()

    asyncio.run(main())
    return sink


def test_destination_credential_and_resource_from_the_environment() -> None:
    cfg, key, auth = agentops_settings(BOTH, {"AGENTOPS_API_KEY": "ao-key", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c",
                                              "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a", "OTEL_EXPORTER_OTLP_TIMEOUT": "3"})
    assert (cfg.endpoint, key, auth) == (EXPORTER_DEFAULT, "ao-key", API_DEFAULT + "/v3/auth/token")
    assert cfg.protocol == "http/protobuf" and cfg.headers == {} and cfg.timeout == 3.0  # otel's destination not used
    assert cfg.resource["service.name"] == "agentops" and cfg.resource["deployment.environment"] == "production"
    assert cfg.resource["telemetry.sdk.name"] == "agentops"
    cfg, _, auth = agentops_settings(BOTH, {"AGENTOPS_API_KEY": "k", "AGENTOPS_API_ENDPOINT": "http://ao:8000/",
                                            "AGENTOPS_EXPORTER_ENDPOINT": "http://ao:4318/v1/traces",
                                            "AGENTOPS_SERVICE_NAME": "support-bot", "AGENTOPS_ENVIRONMENT": "staging"})
    assert auth == "http://ao:8000/v3/auth/token" and cfg.endpoint == "http://ao:4318/v1/traces"
    assert cfg.resource["service.name"] == "support-bot" and cfg.resource["deployment.environment"] == "staging"
    with pytest.raises(ConfigError, match="AGENTOPS_API_KEY"):  # LiteLLM starts and sends what AgentOps refuses
        agentops_settings(BOTH, {})
    with pytest.raises(ConfigError, match="AGENTOPS_API_KEY"):
        agentops_settings(BOTH, {"AGENTOPS_API_KEY": "k\r\nX-Evil: 1"})
    with pytest.raises(ConfigError, match="AGENTOPS_API_ENDPOINT"):
        agentops_settings(BOTH, {"AGENTOPS_API_KEY": "k", "AGENTOPS_API_ENDPOINT": "ftp://ao"})
    with pytest.raises(ConfigError, match="AGENTOPS_EXPORTER_ENDPOINT"):
        agentops_settings(BOTH, {"AGENTOPS_API_KEY": "k", "AGENTOPS_EXPORTER_ENDPOINT": "ao:4318"})
    with pytest.raises(ConfigError, match="AGENTOPS_API_KEY"):  # serve and check-config refuse before any worker
        check(BOTH, {})
    assert CALLBACK_FAILURES["agentops_dropped"] == "agentops"


def test_spans_reach_agentops_with_the_exchanged_token_and_project(rx: Receiver) -> None:
    token = jwt(time.time() + 3600)
    rx.authorization = f"Bearer {token}"
    with TokenServer([token]) as ts:
        sink = export([with_detail(detail())], {"AGENTOPS_API_KEY": "ao-secret-key", "AGENTOPS_API_ENDPOINT": ts.url,
                                                "AGENTOPS_EXPORTER_ENDPOINT": rx.url + "/v1/traces",
                                                "AGENTOPS_ENVIRONMENT": "staging"})
        spans = rx.wait_spans(2)
    assert ts.paths == ["/v3/auth/token"] and ts.bodies == [{"api_key": "ao-secret-key"}]
    assert rx.refused == 0 and rx.exports[0].headers["authorization"] == f"Bearer {token}"
    (server,) = [s for s in spans if s.name == "Received Proxy Server Request"]
    assert (server.trace_id, server.span_id) == (TRACE, SERVER)
    assert server.attributes["gen_ai.request.model"] == "gpt-4o-alias"  # the otel callback's spans
    assert [s.name for s in spans if s is not server] == ["chat gpt-4o"]
    for span in spans:
        assert span.resource["project.id"] == "proj-42" and span.resource["service.name"] == "agentops"
        assert span.resource["deployment.environment"] == "staging"
        assert span.resource["telemetry.sdk.name"] == "agentops"
    assert sink.dropped == 0
    assert token not in redact(f"sent {token}") and "ao-secret-key" not in redact("key ao-secret-key")


def test_a_refused_token_is_exchanged_once_more(rx: Receiver) -> None:
    """A token the endpoint refuses (revoked, expired early) is renewed and the batch sent again, not dropped."""
    old, new = jwt(time.time() + 3600, "a"), jwt(time.time() + 3600, "b")
    rx.authorization = f"Bearer {new}"
    with TokenServer([old, new]) as ts:
        sink = export([with_detail(detail())], {"AGENTOPS_API_KEY": "k", "AGENTOPS_API_ENDPOINT": ts.url,
                                                "AGENTOPS_EXPORTER_ENDPOINT": rx.url + "/v1/traces"})
        assert len(rx.wait_spans(2)) == 2
    assert len(ts.bodies) == 2 and rx.refused == 1 and sink.dropped == 0
    assert rx.exports[0].headers["authorization"] == f"Bearer {new}"


def test_a_token_is_renewed_before_its_expiry() -> None:
    calls: list[str] = []
    start = float(int(time.time())) + 0.25
    clock = [start]  # stepped by the test: a loaded machine's pauses change nothing
    tokens = [jwt(start + 30), jwt(start + 7200), "opaque-token"]

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        calls.append(url)
        return 200, json.dumps({"token": tokens[len(calls) - 1], "project_id": 7}).encode()

    t = AgentOpsToken("k", "http://ao/v3/auth/token", 5.0, post, clock=lambda: clock[0])
    first = t.current()
    assert first == tokens[0] and t.project_id == "7"
    # 30 s left is inside the renewal minute: renewed at the first export a second on (not in a hot loop)
    assert t.renew_at == start + 1.0
    clock[0] += 0.5
    assert t.current() == tokens[0] and len(calls) == 1
    clock[0] += 0.5
    assert t.current() == tokens[1] and len(calls) == 2
    assert t.renew_at == int(start) + 7200 - 60  # its exp (whole seconds) less a minute
    clock[0] += 3600
    assert t.current() == tokens[1] and len(calls) == 2  # an hour later, an hour left: kept
    clock[0] = t.renew_at
    assert t.current() == "opaque-token" and t.renew_at == 0.0  # no exp: kept until refused
    clock[0] += 86400
    assert t.current() == "opaque-token" and len(calls) == 3


def test_an_agentops_api_that_is_down_drops_batches_counted_then_recovers(rx: Receiver,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    token = jwt(time.time() + 3600)
    rx.authorization = f"Bearer {token}"
    events: list[tuple[str, int]] = []
    with TokenServer([token]) as ts:
        ts.status = 503
        env = {"AGENTOPS_API_KEY": "k", "AGENTOPS_API_ENDPOINT": ts.url, "AGENTOPS_EXPORTER_ENDPOINT": rx.url + "/v1/traces"}
        sink = export([with_detail(detail())], env, events)
        assert sink.dropped == 2 and ("agentops_dropped", 2) in events and rx.requests == 0
        assert sink.exporter.inner.auth.token is None  # type: ignore[attr-defined]
        # within the retry interval no new exchange is tried; after it, the API is back
        monkeypatch.setattr(agentops, "RETRY_S", 0.0)
        ts.status = 0
        sink = export([with_detail(detail())], env, rounds=2)
        assert sink.dropped == 0 and len(rx.wait_spans(4)) == 4
    assert rx.refused == 0


def test_odd_expiries_are_no_expiry() -> None:
    def token_with(payload: str) -> str:
        return "e30." + base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode() + ".c2ln"

    for payload in ('{"exp": 1e999}', '{"exp": ' + str(10**400) + '}', '{"exp": NaN}', '{"exp": true}', '{"exp": "1"}',
                    '[1]', 'not json'):
        assert agentops._jwt_expiry(token_with(payload)) is None, payload
    assert agentops._jwt_expiry("a.b") is None and agentops._jwt_expiry(token_with('{"exp": 5}')) == 5.0


def test_answers_without_a_usable_token_are_refused() -> None:
    answers = [(200, b"not json"), (200, b'{"token": ""}'), (200, b'{"token": "a b"}'), (200, b'{"token": "x\\r\\ny"}'),
               (401, b'{"token": "t"}'), (200, b'["t"]')]

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        return answers.pop(0)

    t = AgentOpsToken("k", "http://ao/v3/auth/token", 5.0, post)
    for _ in range(6):
        t._next_try = 0.0
        assert t.current() is None
    assert not answers

    def broken(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        raise OSError("connection refused")

    t = AgentOpsToken("k", "http://ao/v3/auth/token", 5.0, broken)
    assert t.current() is None and t.current() is None and t.exchanges == 1  # the retry interval holds


def test_agentops_beside_otel_through_the_gateway() -> None:
    """Each callback exports to its own destination; the key and the token never reach the log."""
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["otel", "agentops"]
general_settings:
  master_key: sk-agentops-master
"""
    token = jwt(time.time() + 3600)
    with Receiver() as collector, Receiver() as ao, TokenServer([token]) as ts:
        ao.authorization = f"Bearer {token}"
        with start_gateway(config, env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "AGENTOPS_API_KEY": "ao-secret-api-key",
                "AGENTOPS_API_ENDPOINT": ts.url, "AGENTOPS_EXPORTER_ENDPOINT": ao.url + "/v1/traces",
                "OTEL_BSP_SCHEDULE_DELAY": "50"}) as gw:
            r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-agentops-master"},
                           json={"model": "m", "messages": [{"role": "user", "content": "hello there"}]}, timeout=10)
            assert r.status_code == 200, r.text
            for receiver in (collector, ao):
                (span,) = [s for s in receiver.wait_spans(1) if s.name == "Received Proxy Server Request"]
                assert span.attributes["litellm.call_id"] == r.headers["x-litellm-call-id"]
            assert ao.exports[0].headers["authorization"] == f"Bearer {token}"
            assert "authorization" not in collector.exports[0].headers
            (span,) = [s for s in ao.spans() if s.name == "Received Proxy Server Request"]
            assert span.resource["project.id"] == "proj-42"
            assert "ao-secret-api-key" not in gw.log() and token not in gw.log()
    assert ts.bodies == [{"api_key": "ao-secret-api-key"}]
