"""Hostile clients and faulty upstreams against a real Granian gateway: secrets, log lines, metrics labels.

Rules under test, end to end: (1) an upstream 401 that echoes the key it was sent reaches neither the
client's error body nor the log; (2) a config with credentials in a deployment URL is refused naming the
field, never the password; (3) a client who puts CR LF in the request path cannot write a log line of its
own; (4) unauthenticated requests to random ``/openai/deployments/<name>/...`` paths leave no client-chosen
label in ``/metrics``.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-master-secrets-77"
UPSTREAM_KEY = "sk-upstream-echoed-key-1234567890"
FORGED = "2026-01-01 00:00:00,000 WARNING relaygate[1] FORGED admin login accepted"


class _EchoingUpstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that rejects every call with a 401 quoting the Authorization header."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sent = self.headers.get("authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {sent[7:]} (header: {sent})",
                                     "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gateway(echo_upstream: str) -> Iterator[GatewayProc]:
    cfg = f"""
model_list:
  - model_name: leaky
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {UPSTREAM_KEY}
      api_base: {echo_upstream}
    model_info:
      id: leaky-dep
  - model_name: gpt-4o-mini
    litellm_params:
      model: mock/echo
    model_info:
      id: mock-a
general_settings:
  master_key: {MASTER}
"""
    with start_gateway(cfg) as gw:
        yield gw


def _log_settled(gw: GatewayProc, marker: str) -> str:
    deadline = time.monotonic() + 5
    while marker not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return gw.log()


def test_upstream_echo_of_the_key_reaches_neither_client_nor_log(gateway: GatewayProc) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                   json={"model": "leaky", "messages": [{"role": "user", "content": "hi"}]}, timeout=20)
    assert r.status_code == 401
    assert "Incorrect API key provided" in r.json()["error"]["message"]
    assert UPSTREAM_KEY not in r.text and UPSTREAM_KEY[:20] not in r.text
    log = _log_settled(gateway, "Incorrect API key provided")
    assert "Incorrect API key provided" in log
    assert UPSTREAM_KEY not in log and MASTER not in log


def test_cr_lf_in_the_path_cannot_forge_a_log_line(gateway: GatewayProc) -> None:
    path = "/openai/deployments/x%0d%0a" + FORGED.replace(" ", "%20") + "/chat/completions"
    r = httpx.post(gateway.url + path, json={"messages": []}, timeout=20)
    assert r.status_code == 401
    log = _log_settled(gateway, "FORGED")
    lines = [line for line in log.splitlines() if "FORGED" in line]
    assert len(lines) == 1, lines
    assert not lines[0].startswith("2026-01-01") and "x\\r\\n2026-01-01" in lines[0]
    assert "\r" not in log


def test_random_deployment_paths_leave_no_client_label_in_metrics(gateway: GatewayProc) -> None:
    rng = random.Random(9)
    names = ["".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12)) for _ in range(300)]
    with httpx.Client(base_url=gateway.url, timeout=20) as c:
        for name in names:
            assert c.post(f"/openai/deployments/{name}/chat/completions", json={"messages": []}).status_code == 401
        ok = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        assert ok.status_code == 200
        text = c.get("/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    assert not any(name in text for name in names)
    other_401 = [line for line in text.splitlines()
                 if line.startswith('relaygate_requests_total{model_group="other",model_id="",status="401"}')]
    assert other_401 and int(other_401[0].rsplit(" ", 1)[1]) >= len(names)
    # configured names keep their own series
    assert 'relaygate_requests_total{model_group="gpt-4o-mini",model_id="mock-a",status="200"} 1' in text


def test_config_with_a_password_in_a_url_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n"
                   "      api_base: https://alice:hunter2-secret@example.com/v1\n")
    r = subprocess.run([sys.executable, "-m", "relaygate.cli", "check-config", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "model_list[0].litellm_params.api_base" in r.stderr
    assert "hunter2" not in r.stderr + r.stdout


def test_json_logs_are_redacted_and_one_line_per_record(echo_upstream: str) -> None:
    cfg = f"""
model_list:
  - model_name: leaky
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {UPSTREAM_KEY}
      api_base: {echo_upstream}
general_settings:
  master_key: {MASTER}
"""
    with start_gateway(cfg, env={"RELAYGATE_JSON_LOGS": "1"}) as gw:
        with httpx.Client(base_url=gw.url, timeout=20) as c:
            assert c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"},
                          json={"model": "leaky", "messages": [{"role": "user", "content": "hi"}]}).status_code == 401
            path = "/openai/deployments/x%0d%0a%e2%80%a8" + FORGED.replace(" ", "%20") + "/chat/completions"
            assert c.post(path, json={"messages": []}).status_code == 401
        _log_settled(gw, "FORGED")
        log = _log_settled(gw, "Incorrect API key provided")
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    forged = [line for line in log.splitlines() if "FORGED" in line]
    assert len(forged) == 1 and forged[0].startswith("{") and "\r" not in log and "\u2028" not in log
    assert any("Incorrect API key provided" in r["message"] for r in records)
    assert UPSTREAM_KEY not in log and MASTER not in log
