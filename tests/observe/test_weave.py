"""LiteLLM's ``weave_otel`` callback: where it sends and with which credential, the OpenInference span with Weave's
attributes, checked at a real OTLP/HTTP receiver that decodes with the official protobuf messages (at Weave's
``/otel/v1/traces`` path), redaction, and through a real ``relaygate serve``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe.weave import WEAVE_DEFAULT, WeaveSink, make_weave, weave_settings
from relaygate.sinks.record import CompletionRecord, Outcome
from tests.conftest import start_gateway
from tests.observe.collector_server import callback_config
from tests.observe.otlp_receiver import Receiver
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, detail, with_detail

BOTH = ObserveSettings(success_callbacks=("weave_otel",), failure_callbacks=("weave_otel",))
ENV = {"WANDB_API_KEY": "wandb-key-1", "WANDB_PROJECT_ID": "team-a/gateway"}
BASIC = "Basic " + base64.b64encode(b"api:wandb-key-1").decode()


@pytest.fixture(autouse=True)
def _no_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "WANDB_")):
            monkeypatch.delenv(name)


def export(records: list[CompletionRecord], env: dict[str, str], settings: ObserveSettings = BOTH) -> WeaveSink:
    sink = make_weave(settings, env)

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def test_destination_and_credentials() -> None:
    cfg = weave_settings(BOTH, {**ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "4"})
    assert cfg.endpoint == WEAVE_DEFAULT + "/otel/v1/traces" and cfg.protocol == "http/protobuf"
    assert cfg.headers == {"Authorization": BASIC, "project_id": "team-a/gateway"} and cfg.timeout == 4.0
    assert weave_settings(BOTH, {**ENV, "WANDB_HOST": "acme.wandb.io/traces"}).endpoint == \
        "https://acme.wandb.io/traces/otel/v1/traces"
    assert weave_settings(BOTH, {**ENV, "WANDB_HOST": "http://10.0.0.5:8080/"}).endpoint == \
        "http://10.0.0.5:8080/otel/v1/traces"
    for missing in ("WANDB_API_KEY", "WANDB_PROJECT_ID"):
        env = {k: v for k, v in ENV.items() if k != missing}
        with pytest.raises(ConfigError, match=missing):
            weave_settings(BOTH, env)
        with pytest.raises(ConfigError, match=missing):  # serve and check-config refuse before any worker
            check(BOTH, env)
    with pytest.raises(ConfigError, match="control character"):
        weave_settings(BOTH, {**ENV, "WANDB_PROJECT_ID": "a/b\r\nX-Evil: 1"})


def test_the_span_at_a_receiver() -> None:
    with Receiver(path="/otel/v1/traces") as rx:
        env = {**ENV, "WANDB_HOST": rx.url}
        ok = with_detail(detail(metadata={"session_id": "sess-9"}))
        failed = with_detail(detail(output=None, error_message="upstream down", metadata={"display_name": "my/run"}),
                             call_id="call-2", status=503, outcome=Outcome.ERROR, error_type="service_unavailable")
        sink = export([ok, failed], env)
        spans = rx.wait_spans(2)
        assert sink.dropped == 0 and len(spans) == 2
        assert all(e.headers["authorization"] == BASIC and e.headers["project_id"] == "team-a/gateway"
                   for e in rx.exports)
        first, second = sorted(spans, key=lambda s: s.status != "OK")
        a = first.attributes
        assert a["openinference.span.kind"] == "LLM" and a["llm.model_name"] == "gpt-4o"
        assert a["wandb.display_name"] == "openai__gpt-4o"
        assert a["wandb.thread_id"] == "sess-9" and a["wandb.is_turn"] is True
        assert json.loads(a["input.value"]) == {"messages": CHAT_IN["messages"]}
        assert json.loads(a["output.value"]) == CHAT_OUT
        b = second.attributes
        assert second.status == "ERROR" and b["wandb.display_name"] == "my__run" and "wandb.thread_id" not in b
        assert "output.value" not in b and b["error.message"] == "upstream down"


def test_redacted_requests_keep_their_content_out() -> None:
    with Receiver(path="/otel/v1/traces") as rx:
        settings = ObserveSettings(success_callbacks=("weave_otel",), turn_off_message_logging=True)
        export([with_detail(detail())], {**ENV, "WANDB_HOST": rx.url}, settings)
        [span] = rx.wait_spans(1)
        a = span.attributes
        assert a["input.value"] == "redacted-by-litellm" and a["output.value"] == "redacted-by-litellm"
        assert "be brief" not in json.dumps(a) and a["wandb.display_name"] == "openai__gpt-4o"


@pytest.mark.e2e
def test_through_relaygate_serve() -> None:
    cfg = callback_config("weave_otel", "sk-weave")
    with Receiver(path="/otel/v1/traces") as rx:
        env = {**ENV, "WANDB_HOST": rx.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with start_gateway(cfg, env=env) as gw:
            r = httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-weave"}, timeout=20,
                           json={"model": "m", "messages": [{"role": "user", "content": "hello weave"}],
                                 "metadata": {"session_id": "thread-1"}})
            assert r.status_code == 200
            deadline = time.monotonic() + 15
            while not rx.spans() and time.monotonic() < deadline:
                time.sleep(0.05)
        [span] = rx.spans()
        a = span.attributes
        assert a["wandb.thread_id"] == "thread-1" and "hello weave" in a["input.value"]
        assert a["wandb.display_name"] == "mock__echo"
