"""LiteLLM's ``gcs_pubsub`` callback against a real HTTP server playing Pub/Sub's publish API (its path, the
bearer token Google's stand-in token endpoint issued, base64 messages of JSON), as an emulator
(``PUBSUB_EMULATOR_HOST``, no credentials) and with a service account; from hand-built records and through a real
``relaygate serve``."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import KNOWN_CALLBACKS, ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.gcs_pubsub import make_gcs_pubsub
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import LoopbackServer, QuietHandler
from tests.observe.test_gcs_bucket import Google, google, key_pem, sa_file  # noqa: F401  (fixtures)
from tests.observe.test_otel_export import CHAT_IN, detail, record, with_detail

SUCCESS = ObserveSettings(success_callbacks=("gcs_pubsub",), failure_callbacks=("gcs_pubsub",))
PROJECT, TOPIC = "relaygate-test", "spend/logs"  # a topic id with a slash: it must arrive percent-encoded


class PubSub(LoopbackServer):
    """``POST /v1/projects/<project>/topics/<topic>:publish``: keeps each publish's decoded messages; checks the
    bearer token against ``tokens`` when given; answers ``statuses`` in turn (then 200)."""

    def __init__(self, tokens: set[str] | None = None) -> None:
        self.publishes: list[list[dict[str, Any]]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        lock = threading.Lock()
        pubsub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    pubsub.paths.append(self.path)
                    status = pubsub.statuses.pop(0) if pubsub.statuses else 200
                auth = self.headers.get("authorization") or ""
                if tokens is not None and not (auth.startswith("Bearer ") and auth[7:] in tokens):
                    status = 401
                if self.path != f"/v1/projects/{PROJECT}/topics/spend%2Flogs:publish":
                    status = 404
                body: dict[str, Any] = {"error": {"code": status}}
                if status == 200:
                    messages = [json.loads(base64.b64decode(m["data"])) for m in json.loads(raw)["messages"]]
                    with lock:
                        pubsub.publishes.append(messages)
                    body = {"messageIds": [str(i) for i in range(len(messages))]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def messages(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while sum(len(p) for p in self.publishes) < want and time.monotonic() < deadline:
            time.sleep(0.02)
        return [m for p in list(self.publishes) for m in p]


@pytest.fixture
def emulator() -> Iterator[PubSub]:
    with PubSub() as p:
        yield p


def env_of(p: PubSub, **extra: str) -> dict[str, str]:
    return {"GCS_PUBSUB_PROJECT_ID": PROJECT, "GCS_PUBSUB_TOPIC_ID": TOPIC, "PUBSUB_EMULATOR_HOST": p.host, **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = SUCCESS,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_gcs_pubsub, records, env, settings, events, **options)


def test_answered_requests_published_as_standard_payloads(emulator: PubSub) -> None:
    ok = [with_detail(detail(), call_id=f"ok-{i}") for i in range(3)]
    failed = record(call_id="bad", status=500, outcome=Outcome.ERROR, error_type="internal")
    events: list[tuple[str, int]] = []
    sink = send([ok[0], failed, ok[1], ok[2]], env_of(emulator), events=events)
    msgs = emulator.messages(3)
    assert len(emulator.publishes) == 1 and sink.sent == 3 and ("gcs_pubsub_sent", 3) in events
    assert {m["metadata"]["user_api_key_alias"] for m in msgs} == {"my-key"}
    assert [m["response_cost"] for m in msgs] == [0.00025] * 3 and msgs[0]["messages"] == CHAT_IN["messages"]
    assert all(m["status"] == "success" for m in msgs)  # LiteLLM publishes answered requests only


def test_spend_log_rows_with_gcs_pub_sub_use_v1(emulator: PubSub) -> None:
    from relaygate.config.observe import from_litellm

    settings = from_litellm({"callbacks": ["gcs_pubsub"], "gcs_pub_sub_use_v1": True}, {}, {}, [])
    assert settings is not None and settings.gcs_pubsub_v1
    send([record(call_id="row-1")], env_of(emulator), settings)
    (m,) = emulator.messages(1)
    assert m["request_id"] == "row-1" and m["spend"] == 0.00025 and m["model_group"] == "gpt-4o-alias"
    assert m["total_tokens"] == 15 and m["call_type"] == "acompletion" and m["status"] == "success"
    assert {"startTime", "endTime", "api_key", "metadata", "request_tags"} <= set(m)


def test_message_logging_off_and_a_failing_topic_counted(emulator: PubSub) -> None:
    quiet = ObserveSettings(success_callbacks=("gcs_pubsub",), turn_off_message_logging=True)
    send([with_detail(detail(), call_id="q-1")], env_of(emulator), quiet)
    (m,) = emulator.messages(1)
    assert "hello" not in json.dumps(m["messages"]) and m["messages"] != CHAT_IN["messages"]
    emulator.statuses = [503, 200]  # retried
    sink = send([record(call_id="r-1")], env_of(emulator), backoff=0.01)
    assert len(emulator.messages(2)) == 2 and sink.dropped == 0
    emulator.statuses = [400]  # refused: not retried, counted
    events: list[tuple[str, int]] = []
    sink = send([record(call_id="x-1"), record(call_id="x-2")], env_of(emulator), events=events)
    assert sink.dropped == 2 and ("gcs_pubsub_dropped", 2) in events
    assert CALLBACK_FAILURES["gcs_pubsub_dropped"] == "gcs_pubsub" and "gcs_pubsub" in KNOWN_CALLBACKS


def test_service_account_bearer_token(google: Google, sa_file: Path) -> None:  # noqa: F811
    with PubSub(tokens=google.issued) as pubsub:
        env = {"GCS_PUBSUB_PROJECT_ID": PROJECT, "GCS_PUBSUB_TOPIC_ID": TOPIC, "GCS_PUBSUB_BASE_URL": pubsub.url,
               "GCS_PATH_SERVICE_ACCOUNT": str(sa_file)}
        send([record(call_id="sa-1")], env)
        (m,) = pubsub.messages(1)
        assert m["id"] and len(google.grants) == 1  # a token from the service account's JWT grant


@pytest.mark.parametrize(("extra", "name"), [
    ({"GCS_PUBSUB_TOPIC_ID": ""}, "GCS_PUBSUB_TOPIC_ID"), ({"GCS_PUBSUB_PROJECT_ID": " "}, "GCS_PUBSUB_PROJECT_ID"),
    ({"PUBSUB_EMULATOR_HOST": "evil/path"}, "PUBSUB_EMULATOR_HOST"),
    ({"PUBSUB_EMULATOR_HOST": "", "GCS_PUBSUB_BASE_URL": "ftp://x"}, "GCS_PUBSUB_BASE_URL")])
def test_config_errors(extra: dict[str, str], name: str) -> None:
    env = {"GCS_PUBSUB_PROJECT_ID": PROJECT, "GCS_PUBSUB_TOPIC_ID": TOPIC, "PUBSUB_EMULATOR_HOST": "127.0.0.1:1",
           **extra}
    with pytest.raises(ConfigError) as err:
        make_gcs_pubsub(SUCCESS, env, None)
    assert err.value.field == name


def test_gcs_pubsub_through_the_gateway(emulator: PubSub) -> None:
    config = """model_list:
  - model_name: chat
    litellm_params:
      model: mock/echo
litellm_settings:
  callbacks: ["gcs_pubsub"]
general_settings:
  master_key: sk-e2e-pubsub-master
"""
    env = {**env_of(emulator), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}
    with start_gateway(config, env=env) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "chat", "messages": [
            {"role": "user", "content": "publish me"}]}, headers={"authorization": "Bearer sk-e2e-pubsub-master"})
        assert r.status_code == 200
        (m,) = emulator.messages(1)
    assert m["model_group"] == "chat" and m["metadata"]["user_api_key_alias"] is None  # the master key
    assert m["messages"] == [{"role": "user", "content": "publish me"}] and m["status"] == "success"
