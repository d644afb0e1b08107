"""LiteLLM's ``openmeter`` callback: the CloudEvents OpenMeter's ``/api/v1/events`` receives, at a real HTTP server
standing in for it (checking the path, the bearer key, the batch content type and each event against OpenMeter's
schema), from hand-built records and through a real ``relaygate serve``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.openmeter import event_of, make_openmeter, subject_of
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import detail, record, with_detail

API_KEY = "om_test_secret_key_123"
BOTH = ObserveSettings(success_callbacks=("openmeter",), failure_callbacks=("openmeter",))
_REQUIRED = ("id", "source", "specversion", "type", "subject")


def well_formed(request: Request) -> int | None:
    """OpenMeter's own refusals: another path (404), a missing or wrong key (401), another content type (415), a
    body that is not a batch of CloudEvents its schema takes, the subject required (400)."""
    if request.path != "/api/v1/events":
        return 404
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return 401
    if request.headers.get("content-type") != "application/cloudevents-batch+json":
        return 415
    body = request.body
    if not isinstance(body, list) or not body:
        return 400
    for event in body:
        if not isinstance(event, dict) or any(not isinstance(event.get(k), str) or not event[k] for k in _REQUIRED):
            return 400
        if not isinstance(event.get("data"), dict) or not isinstance(event.get("time"), str):
            return 400
    return None


class Capture(JsonReceiver):
    """``POST /api/v1/events``: answers 204 (or ``status``) and keeps each request; a malformed one is refused."""

    def __init__(self) -> None:
        super().__init__(204, None, check=well_formed)

    def events(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items(lambda body: body, want, timeout)


@pytest.fixture
def capture() -> Iterator[Capture]:
    with Capture() as c:
        yield c


def env_for(c: Capture, **extra: str) -> dict[str, str]:
    return {"OPENMETER_API_KEY": API_KEY, "OPENMETER_API_ENDPOINT": c.url, **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_openmeter, records, env, settings, events, **{"max_attempts": 1, **options})


def test_an_event_per_answered_request_as_litellm_builds_it(capture: Capture) -> None:
    customer = with_detail(detail(), call_id="call-a", end_user_id="customer-7")
    keyed = record(call_id="call-b", route="embeddings", prompt_tokens=4, completion_tokens=0, cost=0.0001)
    events: list[tuple[str, int]] = []
    send([customer, keyed], env_for(capture, OPENMETER_API_ENDPOINT=capture.url + "/"), events=events)
    (path, headers, body), = capture.posts
    assert path == "/api/v1/events" and headers["content-type"] == "application/cloudevents-batch+json"
    assert headers["authorization"] == f"Bearer {API_KEY}"
    first, second = body
    assert first == {"specversion": "1.0", "type": "litellm_tokens", "id": "call-a",
                     "time": "2023-11-14T22:13:21.500000+00:00", "subject": "customer-7", "source": "litellm-proxy",
                     "data": {"model": "gpt-4o", "cost": 0.00025, "prompt_tokens": 10, "completion_tokens": 5,
                              "total_tokens": 15}}
    assert list(first) == ["specversion", "type", "id", "time", "subject", "source", "data"]  # LiteLLM's order
    assert second["subject"] == "user-1" and second["id"] == "call-b"  # no end user: the key's user
    assert second["data"] == {"model": "gpt-4o", "cost": 0.0001, "prompt_tokens": 4, "completion_tokens": 0,
                              "total_tokens": 4}
    assert ("openmeter_sent", 2) in events and not [e for e in events if e[0] == "openmeter_dropped"]


def test_event_type_and_untrusted_request_users(capture: Capture) -> None:
    rec = record(call_id="c1", end_user_id="forged-customer")
    send([rec], env_for(capture, OPENMETER_EVENT_TYPE="llm_usage", OPENMETER_TRUST_REQUEST_USER="FALSE"))
    (event,) = capture.events(1)
    assert event["type"] == "llm_usage" and event["subject"] == "user-1"
    assert subject_of(rec) == "forged-customer" and subject_of(rec, trust_request_user=False) == "user-1"
    assert subject_of(record(user_id=None)) is None and subject_of(record(user_id="", end_user_id="")) is None


def test_a_request_without_a_subject_is_counted_and_logged_not_sent(capture: Capture,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    nobody = [record(call_id=f"anon-{i}", user_id=None) for i in range(3)]
    untrusted = record(call_id="anon-untrusted", user_id=None, end_user_id="someone")
    events: list[tuple[str, int]] = []
    with caplog.at_level("WARNING", "relaygate.observe"):
        sink = send([*nobody, record(call_id="billed")], env_for(capture), events=events)
        other = send([untrusted], env_for(capture, OPENMETER_TRUST_REQUEST_USER="false"))
    (event,) = capture.events(1)
    assert event["id"] == "billed" and len(capture.posts) == 1  # the others were never sent
    assert sink.dropped == sink.unbilled == 3 and ("openmeter_dropped", 3) in events
    assert other.dropped == other.unbilled == 1
    assert "had no subject" in caplog.text and "anon-" in caplog.text and API_KEY not in caplog.text
    assert CALLBACK_FAILURES["openmeter_dropped"] == "openmeter"


def test_successes_only_and_no_logging(capture: Capture) -> None:
    failed = record(call_id="bad", status=500, outcome=Outcome.ERROR, error_type="internal_server_error")
    gone = record(call_id="gone", stream=True, outcome=Outcome.CLIENT_GONE)
    quiet = record(call_id="quiet", no_logging=True)
    events: list[tuple[str, int]] = []
    sink = send([failed, gone, quiet, record(call_id="ok")], env_for(capture), events=events)
    assert [e["id"] for e in capture.events(1)] == ["ok"]
    assert sink.failure is False and sink.dropped == 0
    only_failures = ObserveSettings(failure_callbacks=("openmeter",))
    capture.posts.clear()
    assert send([record()], env_for(capture), only_failures).success is False and capture.posts == []


def test_costs_and_times_as_openmeter_reads_them() -> None:
    ev = event_of(record(cost=float("nan"), latency=0.25, start_time=1_700_000_000.0, upstream_model=""), "s")
    assert ev.data.cost == 0.0 and ev.data.model == "gpt-4o-alias" and ev.time == "2023-11-14T22:13:20.250000+00:00"
    assert event_of(record(cost=-1.0), "s").data.cost == 0.0
    cached = event_of(record(cache_hit=True, cost=0.0, call_id="hit-1"), "s")
    assert cached.id == "hit-1" and cached.data.total_tokens == 15  # a cache hit is its own event


def test_a_failing_receiver_is_counted_and_a_retry_sends_the_same_ids(capture: Capture) -> None:
    capture.status = 500
    events: list[tuple[str, int]] = []
    sink = send([record(call_id="c1"), record(call_id="c2")], env_for(capture), events=events, max_attempts=2,
                backoff=0.01)
    assert len(capture.posts) == 2  # retried once, then given up
    assert sink.dropped == 2 and ("openmeter_dropped", 2) in events and ("openmeter_send_failed", 1) in events
    assert CALLBACK_FAILURES["openmeter_send_failed"] == "openmeter"
    # OpenMeter deduplicates on (id, source): a batch sent again carries the same ids, so it never bills twice
    capture.posts.clear()
    answers = iter([503])
    capture.check = lambda req: next(answers, None) or well_formed(req)
    capture.status = 204
    sink = send([record(call_id="c3"), record(call_id="c4")], env_for(capture), max_attempts=3, backoff=0.01)
    assert [[e["id"] for e in body] for _, _, body in capture.posts] == [["c3", "c4"], ["c3", "c4"]]
    assert sink.sent == 2 and sink.dropped == 0


def test_a_refused_batch_is_dropped_and_counted(capture: Capture) -> None:
    events: list[tuple[str, int]] = []
    env = {"OPENMETER_API_KEY": "wrong-key-000", "OPENMETER_API_ENDPOINT": capture.url}
    sink = send([record()], env, events=events, max_attempts=3, backoff=0.01)
    assert len(capture.posts) == 1 and sink.dropped == 1 and ("openmeter_dropped", 1) in events  # a 401: no retry


def test_batches_follow_the_batch_size(capture: Capture) -> None:
    send([record(call_id=f"c{i}") for i in range(25)], env_for(capture, DEFAULT_BATCH_SIZE="10"))
    assert [len(body) for _, _, body in capture.posts] == [10, 10, 5]
    assert len({e["id"] for e in capture.events(25)}) == 25


@pytest.mark.parametrize(("env", "name"), [
    ({}, "OPENMETER_API_KEY"),
    ({"OPENMETER_API_KEY": " "}, "OPENMETER_API_KEY"),
    ({"OPENMETER_API_KEY": "k\r\nX-Injected: 1"}, "OPENMETER_API_KEY"),
    ({"OPENMETER_API_KEY": "k", "OPENMETER_API_ENDPOINT": "ftp://meter"}, "OPENMETER_API_ENDPOINT"),
    ({"OPENMETER_API_KEY": "k", "OPENMETER_API_ENDPOINT": "https://meter/?token=x"}, "OPENMETER_API_ENDPOINT"),
    ({"OPENMETER_API_KEY": "k", "OPENMETER_API_ENDPOINT": "http://meter/\r\nX: 1"}, "OPENMETER_API_ENDPOINT"),
    ({"OPENMETER_API_KEY": "k", "DEFAULT_FLUSH_INTERVAL_SECONDS": "soon"}, "DEFAULT_FLUSH_INTERVAL_SECONDS"),
    ({"OPENMETER_API_KEY": "k", "DEFAULT_BATCH_SIZE": "many"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_openmeter(BOTH, env, None)


def test_defaults() -> None:
    sink = make_openmeter(BOTH, {"OPENMETER_API_KEY": API_KEY, "OPENMETER_EVENT_TYPE": " "}, None)
    assert sink.url == "https://openmeter.cloud/api/v1/events" and sink.event_type == "litellm_tokens"
    assert sink.batch_size == 512 and sink.flush_interval == 5.0 and sink.trust_request_user is True
    assert sink.name == "openmeter" and (sink.success, sink.failure) == (True, False)
    sink.discard()


# -- through the gateway -----------------------------------------------------------------------------------

GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["openmeter", "prometheus"]
{general}
"""
MASTER = "general_settings:\n  master_key: sk-om-master"
AUTH = {"Authorization": "Bearer sk-om-master"}


@pytest.mark.e2e
def test_openmeter_callback_through_the_gateway(capture: Capture) -> None:
    with start_gateway(GATEWAY.format(general=MASTER),
                       env={**env_for(capture), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/v1/chat/completions", headers=AUTH,
                   json={"model": "m", "user": "cust-gw", "messages": [{"role": "user", "content": "bill me"}]})
        assert r.status_code == 200, r.text
        with c.stream("POST", "/v1/chat/completions", headers=AUTH,
                      json={"model": "m", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "stream me"}]}) as s:
            assert s.status_code == 200
            s.read()
            stream_id = s.headers["x-litellm-call-id"]
        bad = c.post("/v1/chat/completions", headers=AUTH, json={"model": "nope", "messages": []})
        assert bad.status_code >= 400
        by_id = {e["id"]: e for e in capture.events(2)}
        unary = by_id[r.headers["x-litellm-call-id"]]
        assert unary["subject"] == "cust-gw" and unary["type"] == "litellm_tokens"
        assert unary["source"] == "litellm-proxy" and unary["specversion"] == "1.0"
        data = unary["data"]
        assert data["prompt_tokens"] > 0 and data["completion_tokens"] > 0
        assert data["total_tokens"] == data["prompt_tokens"] + data["completion_tokens"]
        assert isinstance(data["cost"], float) and data["model"]
        streamed = by_id[stream_id]
        assert streamed["subject"] == "default_user_id"  # the master key's user, as LiteLLM's proxy names it
        assert streamed["data"]["completion_tokens"] > 0
        assert set(by_id) == {r.headers["x-litellm-call-id"], stream_id}  # the failed request bills nothing
        assert API_KEY not in gw.log()


@pytest.mark.e2e
def test_requests_without_a_subject_are_counted_through_the_gateway(capture: Capture) -> None:
    # an open gateway: no key, so no key user; only a request naming its user can be billed
    with start_gateway(GATEWAY.format(general=""),
                       env={**env_for(capture), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "anon"}]})
        assert r.status_code == 200, r.text
        r = c.post("/v1/chat/completions", headers={"x-litellm-end-user-id": "cust-hdr"},
                   json={"model": "m", "messages": [{"role": "user", "content": "named"}]})
        assert r.status_code == 200, r.text
        (event,) = capture.events(1)
        assert event["subject"] == "cust-hdr" and event["id"] == r.headers["x-litellm-call-id"]
        deadline = time.monotonic() + 30
        failures = re.compile(r'^litellm_callback_logging_failures_metric_total\{callback_name="openmeter"\} 1(\.0)?$',
                              re.M)
        while not failures.search(text := c.get("/metrics").text):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.2)
        assert len(capture.posts) == 1 and "had no subject" in gw.log()
