"""LiteLLM's ``sentry`` callback: what a real HTTP server standing in for Sentry receives from the official SDK
(envelopes parsed with the SDK's own ``Envelope``, the DSN's key checked), from hand-built records and through a
real ``relaygate serve`` whose upstream fails."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from sentry_sdk.envelope import Envelope

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.sentry import SentrySink, _scrub, _sdk_options, event_of, make_sentry
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe.receiver import LoopbackServer, QuietHandler
from tests.observe.test_otel_export import record

FAILURE = ObserveSettings(failure_callbacks=("sentry",))
CALL = "0f8e2a1c-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
UPSTREAM_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"


class Sentry(LoopbackServer):
    """Sentry's envelope endpoint for project 42 and public key ``public``: every event it accepts."""

    def __init__(self) -> None:
        events: list[dict[str, Any]] = []
        refused: list[str] = []
        lock = threading.Lock()

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                enc = (self.headers.get("content-encoding") or "").lower()
                body = gzip.decompress(raw) if enc == "gzip" else zlib.decompress(raw) if enc == "deflate" else raw
                auth = self.headers.get("x-sentry-auth") or ""
                ok = self.path == "/api/42/envelope/" and "sentry_key=public" in auth
                if ok:
                    for item in Envelope.deserialize(body).items:
                        if item.type == "event" and item.payload.json is not None:
                            with lock:
                                events.append(item.payload.json)
                else:
                    with lock:
                        refused.append(self.path)
                answer = b"{}" if ok else b'{"detail":"bad"}'
                self.send_response(200 if ok else 403)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        super().__init__(Handler)
        self.events, self.refused = events, refused
        self.dsn = f"http://public@{self.host}/42"

    def wait(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.events)


@pytest.fixture
def sentry() -> Iterator[Sentry]:
    with Sentry() as s:
        yield s


def handle(records: list[Any], env: dict[str, str], settings: ObserveSettings = FAILURE,
           events: list[tuple[str, int]] | None = None) -> SentrySink:
    on_event = (lambda e, n: events.append((e, n))) if events is not None else (lambda e, n: None)
    sink = make_sentry(settings, env, on_event)

    async def main() -> None:
        await sink.handle(records)
        await sink.aclose()

    asyncio.run(main())
    return sink


def test_failed_provider_calls_become_events(sentry: Sentry) -> None:
    failed = record(call_id=CALL, status=429, outcome=Outcome.ERROR, error_class="RateLimitError",
                    error_message=f"RateLimitError: quota exceeded for key {UPSTREAM_KEY}", retries=2,
                    failed_attempts=(("dep-1", 429, "quota exceeded"),), request_route="/v1/chat/completions")
    broken = record(call_id="call-broken", status=502, outcome=Outcome.STREAM_BROKEN, stream=True,
                    error_class="APIConnectionError", error_message="upstream went away")
    refused = record(call_id="call-refused", status=401, outcome=Outcome.ERROR, deployment_id="",
                     error_class="AuthenticationError", error_message="bad key")  # no provider was called
    gone = record(call_id="call-gone", status=200, outcome=Outcome.CLIENT_GONE)
    ok = record(call_id="call-ok")
    events: list[tuple[str, int]] = []
    sink = handle([ok, failed, refused, gone, broken], {"SENTRY_DSN": sentry.dsn, "SENTRY_ENVIRONMENT": "staging"},
                  events=events)
    got = {e["tags"]["litellm_call_id"]: e for e in sentry.wait(2)}
    assert set(got) == {CALL, "call-broken"} and sink.sent == 2 and ("sentry_sent", 2) in events
    e = got[CALL]
    (exc,) = e["exception"]["values"]
    assert exc["type"] == "RateLimitError" and "quota exceeded" in exc["value"] and UPSTREAM_KEY not in json.dumps(e)
    assert e["event_id"] == CALL.replace("-", "") and e["level"] == "error" and e["environment"] == "staging"
    assert e["tags"] == {"model": "gpt-4o", "model_group": "gpt-4o-alias", "deployment": "dep-1",
                         "provider": "openai", "status_code": "429", "call_type": "acompletion",
                         "litellm_call_id": CALL, "outcome": "error", "team_id": "team-1"}
    assert e["fingerprint"] == ["litellm", "RateLimitError", "gpt-4o-alias", "429"]
    assert e["transaction"] == "/v1/chat/completions" and e["extra"]["retries"] == 2
    assert e["extra"]["failed_attempts"] == [{"deployment": "dep-1", "status": 429, "error": "quota exceeded"}]
    assert "user" not in e and "user_api_key_alias" not in e["tags"]  # no PII unless SENTRY_SEND_DEFAULT_PII
    assert got["call-broken"]["exception"]["values"][0]["type"] == "APIConnectionError"
    assert not sentry.refused


def test_pii_and_redacted_key_info(sentry: Sentry) -> None:
    failed = record(call_id=CALL, status=500, outcome=Outcome.ERROR, error_class="InternalServerError")
    handle([failed], {"SENTRY_DSN": sentry.dsn, "SENTRY_SEND_DEFAULT_PII": "true"})
    (e,) = sentry.wait(1)
    assert e["user"]["id"] == "user-1" and e["tags"]["user_api_key_alias"] == "my-key"
    redacted = ObserveSettings(failure_callbacks=("sentry",), redact_user_api_key_info=True)
    assert "team_id" not in event_of(failed, pii=True, redact_key_info=True)["tags"]
    sink = make_sentry(redacted, {"SENTRY_DSN": sentry.dsn, "SENTRY_SEND_DEFAULT_PII": "true"}, lambda e, n: None)
    assert sink.redact_key_info and sink.pii
    sink.discard()


def test_only_as_a_failure_callback_and_capped(sentry: Sentry) -> None:
    failed = [record(call_id=f"call-{i}", status=500, outcome=Outcome.ERROR, error_class="InternalServerError")
              for i in range(5)]
    sink = handle(failed, {"SENTRY_DSN": sentry.dsn}, ObserveSettings(success_callbacks=("sentry",)))
    assert sink.sent == 0  # LiteLLM sends events from its failure handler only
    events: list[tuple[str, int]] = []
    capped = ObserveSettings(failure_callbacks=("sentry",), callback_settings={"sentry": {"max_events_per_second": 2}})
    sink = handle(failed, {"SENTRY_DSN": sentry.dsn}, capped, events)
    assert len(sentry.wait(2)) == 2 and sink.dropped == 3 and ("sentry_dropped", 3) in events
    assert CALLBACK_FAILURES["sentry_dropped"] == "sentry"  # litellm_callback_logging_failures_metric


def test_error_log_lines_reach_sentry_redacted(sentry: Sentry) -> None:
    sink = make_sentry(FAILURE, {"SENTRY_DSN": sentry.dsn}, lambda e, n: None)
    try:
        logging.getLogger("relaygate.test").error("spend sink failed with key %s", UPSTREAM_KEY)
        logging.getLogger("relaygate.test").warning("only a warning")
    finally:
        asyncio.run(sink.aclose())
    (e,) = sentry.wait(1)
    text = json.dumps(e)
    assert "spend sink failed" in text and UPSTREAM_KEY not in text and "only a warning" not in text
    assert "threads" not in e and not (e.get("breadcrumbs") or {}).get("values")  # no stack, no log breadcrumbs


def test_scrub_reaches_breadcrumbs_and_exceptions() -> None:
    event = {"breadcrumbs": {"values": [{"message": f"calling with {UPSTREAM_KEY}"}, {"category": "x"}]},
             "exception": {"values": [{"type": "ValueError", "value": f"bad key {UPSTREAM_KEY}"}]},
             "message": f"key {UPSTREAM_KEY}"}
    assert UPSTREAM_KEY not in json.dumps(_scrub(event, {}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("version", "gone"), [("2.76.0", "data_collection"), ("3.0.0", "include_local_variables")])
def test_sdk_options_follow_the_major_version(version: str, gone: str) -> None:
    # 3.0 refuses ``include_local_variables`` and reads ``level`` as Sentry logs: each major gets its own names
    options, logs = _sdk_options(version)
    assert gone not in options and logs["level"] is None and logs["event_level"] == logging.ERROR
    assert ("breadcrumb_level" in logs) == version.startswith("3.")


def test_the_installed_sdk_takes_our_options() -> None:
    import sentry_sdk
    from sentry_sdk.consts import ClientConstructor
    from sentry_sdk.integrations.logging import LoggingIntegration

    options, logs = _sdk_options(sentry_sdk.VERSION)
    inspect.signature(ClientConstructor.__init__).bind(None, **options)
    LoggingIntegration(**logs)


@pytest.mark.parametrize(("env", "field"), [
    ({}, "SENTRY_DSN"), ({"SENTRY_DSN": "not a dsn"}, "SENTRY_DSN"),
    ({"SENTRY_DSN": "http://k@127.0.0.1:9/1", "SENTRY_API_SAMPLE_RATE": "2"}, "SENTRY_API_SAMPLE_RATE"),
    ({"SENTRY_DSN": "http://k@127.0.0.1:9/1", "SENTRY_API_TRACE_RATE": "x"}, "SENTRY_API_TRACE_RATE")])
def test_configuration_errors(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_sentry(FAILURE, env, lambda e, n: None)
    assert err.value.field == field


def test_bad_cap_is_a_config_error() -> None:
    bad = ObserveSettings(failure_callbacks=("sentry",), callback_settings={"sentry": {"max_events_per_second": 0}})
    with pytest.raises(ConfigError) as err:
        make_sentry(bad, {"SENTRY_DSN": "http://k@127.0.0.1:9/1"}, lambda e, n: None)
    assert err.value.field == "callback_settings.sentry.max_events_per_second"


class Failing(LoopbackServer):
    """An OpenAI-compatible upstream that answers every call 429 with OpenAI's error body."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.dumps({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                             "param": None, "code": "rate_limit_exceeded"}}).encode()
                self.send_response(429)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def test_a_real_gateway_reports_a_failing_upstream(sentry: Sentry) -> None:
    with Failing() as up:
        config = f"""model_list:
  - model_name: chat
    litellm_params:
      model: openai/gpt-4o
      api_base: {up.url}/v1
      api_key: {UPSTREAM_KEY}
router_settings:
  num_retries: 0
litellm_settings:
  failure_callback: ["sentry"]
general_settings:
  master_key: sk-e2e-sentry-master
"""
        with start_gateway(config, env={"SENTRY_DSN": sentry.dsn}) as gw:
            client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-e2e-sentry-master", max_retries=0)
            with pytest.raises(openai.RateLimitError) as err:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            call_id = err.value.response.headers["x-litellm-call-id"]
            with pytest.raises(openai.AuthenticationError):  # refused by the gateway: no provider call, no event
                openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-wrong", max_retries=0).chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}])
            (e,) = sentry.wait(1)
            time.sleep(0.3)
            assert len(sentry.events) == 1
    assert e["tags"]["litellm_call_id"] == call_id and e["event_id"] == call_id.replace("-", "")
    assert e["exception"]["values"][0]["type"] == "RateLimitError" and e["tags"]["status_code"] == "429"
    (attempt,) = e["extra"]["failed_attempts"]  # the deployment that failed (the request had no answering one)
    assert e["tags"]["model_group"] == "chat" and e["tags"]["deployment"] == attempt["deployment"]
    assert attempt["status"] == 429
    assert UPSTREAM_KEY not in json.dumps(e) and "hi" not in json.dumps(e["extra"])
