"""LiteLLM's ``lago`` callback: the usage events Lago's ``/api/v1/events/batch`` receives, at a real HTTP server
standing in for it (checking the path, the bearer key, the content type, each event's required fields, the batch
bound and Lago's deduplication on ``transaction_id``), from hand-built records and through a real
``relaygate serve``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.lago import BATCH_MAX, batch_url, event_of, make_lago, subscription_of
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import detail, record, with_detail

API_KEY = "lago_test_secret_key_123"
CODE = "llm_usage"
BOTH = ObserveSettings(success_callbacks=("lago",), failure_callbacks=("lago",))
PATH = "/api/v1/events/batch"


def well_formed(request: Request) -> int | tuple[int, Any] | None:
    """Lago's own refusals: another path (404), a missing or wrong key (401), a body that is not a batch of at
    most 100 events with a ``transaction_id`` and a ``code`` (422, the whole batch)."""
    if request.path != PATH:
        return 404
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return 401
    if request.headers.get("content-type") != "application/json":
        return 415
    events = request.body.get("events") if isinstance(request.body, dict) else None
    if not isinstance(events, list) or not events or len(events) > BATCH_MAX:
        return 422, {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors"}
    for event in events:
        if not isinstance(event, dict) or not event.get("transaction_id") or not event.get("code"):
            return 422, {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors"}
    return None


class Lago(JsonReceiver):
    """``POST /api/v1/events/batch``: answers 200 (or ``status``) and keeps each request; a malformed one is
    refused. :attr:`billed` holds what Lago would bill, deduplicated as it does on (subscription,
    ``transaction_id``)."""

    def __init__(self) -> None:
        super().__init__(200, {"events": []}, check=self.ingest)
        self.billed: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.extra: Any = None
        """A test's hook, consulted first (a 500, a 503 once ...)."""

    def ingest(self, request: Request) -> int | tuple[int, Any] | None:
        said = self.extra(request) if self.extra is not None else None
        if said is None:
            said = well_formed(request)
        if said is None and self.status < 300:
            with self.lock:
                for e in request.body["events"]:
                    self.billed.setdefault((e["external_subscription_id"], e["transaction_id"]), e)
        return said

    def events(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items("events", want, timeout)


@pytest.fixture
def lago() -> Iterator[Lago]:
    with Lago() as server:
        yield server


def env_for(server: Lago, **extra: str) -> dict[str, str]:
    return {"LAGO_API_KEY": API_KEY, "LAGO_API_BASE": server.url, "LAGO_API_EVENT_CODE": CODE, **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_lago, records, env, settings, events, **{"max_attempts": 1, **options})


def test_an_event_per_answered_request_as_litellm_builds_it(lago: Lago) -> None:
    customer = with_detail(detail(), call_id="call-a", end_user_id="customer-7")
    embed = record(call_id="call-b", route="embeddings", prompt_tokens=4, completion_tokens=0, cost=0.0001,
                   end_user_id="customer-8")
    events: list[tuple[str, int]] = []
    send([customer, embed], env_for(lago, LAGO_API_BASE=lago.url + "/"), events=events)
    (path, headers, body), = lago.posts
    assert path == PATH and headers["content-type"] == "application/json"
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert list(body) == ["events"]
    first, second = body["events"]
    assert first == {"transaction_id": "call-a", "external_subscription_id": "customer-7", "code": CODE,
                     "timestamp": 1_700_000_001.5,
                     "properties": {"model": "gpt-4o", "response_cost": 0.00025, "prompt_tokens": 10,
                                    "completion_tokens": 5, "total_tokens": 15}}
    assert list(first)[:3] == ["transaction_id", "external_subscription_id", "code"]  # LiteLLM's order
    assert list(first["properties"]) == ["model", "response_cost", "prompt_tokens", "completion_tokens",
                                         "total_tokens"]
    assert second["external_subscription_id"] == "customer-8" and second["transaction_id"] == "call-b"
    assert second["properties"] == {"model": "gpt-4o", "response_cost": 0.0001, "prompt_tokens": 4,
                                    "completion_tokens": 0, "total_tokens": 4}
    assert ("lago_sent", 2) in events and not [e for e in events if e[0] == "lago_dropped"]
    assert set(lago.billed) == {("customer-7", "call-a"), ("customer-8", "call-b")}


@pytest.mark.parametrize(("charge_by", "want"), [("end_user_id", "cust-1"), ("user_id", "user-1"),
                                                  ("team_id", "team-1"), (" ", "cust-1")])
def test_charge_by_chooses_the_subscription(lago: Lago, charge_by: str, want: str) -> None:
    send([record(call_id="c1", end_user_id="cust-1")], env_for(lago, LAGO_API_CHARGE_BY=charge_by))
    (event,) = lago.events(1)
    assert event["external_subscription_id"] == want


def test_subscription_of_has_no_fallback() -> None:
    keyed = record(end_user_id=None)
    assert subscription_of(keyed) is None  # LiteLLM's end_user_id is the request's user alone, never the key's
    assert subscription_of(keyed, "user_id") == "user-1" and subscription_of(keyed, "team_id") == "team-1"
    assert subscription_of(record(team_id="", end_user_id=""), "team_id") is None
    assert subscription_of(record(end_user_id=""), "end_user_id") is None


def test_a_request_without_a_subscription_is_counted_and_logged_not_sent(lago: Lago,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    nobody = [record(call_id=f"anon-{i}") for i in range(3)]  # no end user
    teamless = record(call_id="anon-team", team_id=None, end_user_id="cust")
    events: list[tuple[str, int]] = []
    with caplog.at_level("WARNING", "relaygate.observe"):
        sink = send([*nobody, record(call_id="billed", end_user_id="cust")], env_for(lago), events=events)
        other = send([teamless], env_for(lago, LAGO_API_CHARGE_BY="team_id"))
    (event,) = lago.events(1)
    assert event["transaction_id"] == "billed" and len(lago.posts) == 1  # the others were never sent
    assert sink.dropped == sink.unbilled == 3 and ("lago_dropped", 3) in events
    assert other.dropped == other.unbilled == 1
    assert "had no end_user_id" in caplog.text and "had no team_id" in caplog.text and "anon-" in caplog.text
    assert API_KEY not in caplog.text
    assert CALLBACK_FAILURES["lago_dropped"] == "lago"


def test_successes_only_and_no_logging(lago: Lago) -> None:
    failed = record(call_id="bad", status=500, outcome=Outcome.ERROR, error_type="internal_server_error",
                    end_user_id="c")
    gone = record(call_id="gone", stream=True, outcome=Outcome.CLIENT_GONE, end_user_id="c")
    quiet = record(call_id="quiet", no_logging=True, end_user_id="c")
    sink = send([failed, gone, quiet, record(call_id="ok", end_user_id="c")], env_for(lago))
    assert [e["transaction_id"] for e in lago.events(1)] == ["ok"]
    assert sink.failure is False and sink.dropped == 0
    only_failures = ObserveSettings(failure_callbacks=("lago",))
    lago.posts.clear()
    assert send([record(end_user_id="c")], env_for(lago), only_failures).success is False and lago.posts == []


def test_costs_times_and_models_as_lago_reads_them() -> None:
    ev = event_of(record(cost=float("nan"), latency=0.25, start_time=1_700_000_000.0, upstream_model=""), "s", "c")
    assert ev.properties.response_cost == 0.0 and ev.properties.model == "gpt-4o-alias"
    assert ev.timestamp == 1_700_000_000.25
    assert event_of(record(cost=-1.0), "s", "c").properties.response_cost == 0.0
    assert event_of(record(latency=0.0001234, start_time=1_700_000_000.0), "s", "c").timestamp == 1_700_000_000.0
    before = time.time()
    assert event_of(record(start_time=0.0), "s", "c").timestamp >= round(before, 3) - 0.001  # no start: now
    cached = event_of(record(cache_hit=True, cost=0.0, call_id="hit-1"), "s", "c")
    assert cached.transaction_id == "hit-1" and cached.properties.total_tokens == 15  # a cache hit is its own event


def test_a_failing_receiver_is_counted_and_a_retry_never_bills_twice(lago: Lago) -> None:
    lago.status = 500
    events: list[tuple[str, int]] = []
    recs = [record(call_id="c1", end_user_id="u"), record(call_id="c2", end_user_id="u")]
    sink = send(recs, env_for(lago), events=events, max_attempts=2, backoff=0.01)
    assert len(lago.posts) == 2 and not lago.billed  # retried once, then given up
    assert sink.dropped == 2 and ("lago_dropped", 2) in events and ("lago_send_failed", 1) in events
    assert CALLBACK_FAILURES["lago_send_failed"] == "lago"
    # Lago took the batch but its answer was lost (a 503 from the proxy in front): the retry carries the same
    # transaction ids and timestamps, so Lago keeps one copy of each
    lago.posts.clear()
    lago.status = 200
    answers = iter([503])

    def lost_answer(request: Request) -> int | None:
        said = next(answers, None)
        if said is not None:
            for e in request.body["events"]:
                lago.billed.setdefault((e["external_subscription_id"], e["transaction_id"]), e)
        return said

    lago.extra = lost_answer
    recs = [record(call_id="c3", end_user_id="u"), record(call_id="c4", end_user_id="u")]
    sink = send(recs, env_for(lago), max_attempts=3, backoff=0.01)
    first, again = (body["events"] for _, _, body in lago.posts)
    assert first == again and [e["transaction_id"] for e in first] == ["c3", "c4"]
    assert sorted(lago.billed) == [("u", "c3"), ("u", "c4")] and sink.sent == 2 and sink.dropped == 0


def test_a_refused_batch_is_dropped_and_counted(lago: Lago) -> None:
    events: list[tuple[str, int]] = []
    env = env_for(lago, LAGO_API_KEY="wrong-key-000")
    sink = send([record(end_user_id="u")], env, events=events, max_attempts=3, backoff=0.01)
    assert len(lago.posts) == 1 and sink.dropped == 1 and ("lago_dropped", 1) in events  # a 401: no retry


def test_batches_hold_at_most_lagos_hundred(lago: Lago) -> None:
    recs = [record(call_id=f"c{i}", end_user_id="u") for i in range(250)]
    send(recs, env_for(lago, DEFAULT_BATCH_SIZE="512"))  # another logger's size: bounded to Lago's
    assert [len(body["events"]) for _, _, body in lago.posts] == [100, 100, 50]
    lago.posts.clear()
    send(recs[:25], env_for(lago, DEFAULT_BATCH_SIZE="10"))
    assert [len(body["events"]) for _, _, body in lago.posts] == [10, 10, 5]
    assert len(lago.billed) == 250


@pytest.mark.parametrize(("env", "name"), [
    ({}, "LAGO_API_KEY"),
    ({"LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_KEY"),
    ({"LAGO_API_KEY": "k", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_BASE"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago"}, "LAGO_API_EVENT_CODE"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": " "}, "LAGO_API_EVENT_CODE"),
    ({"LAGO_API_KEY": " ", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_KEY"),
    ({"LAGO_API_KEY": "k\r\nX-Injected: 1", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c"},
     "LAGO_API_KEY"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "ftp://lago", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_BASE"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "https://lago/?token=x", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_BASE"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago/\r\nX: 1", "LAGO_API_EVENT_CODE": "c"}, "LAGO_API_BASE"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c",
      "LAGO_API_CHARGE_BY": "customer"}, "LAGO_API_CHARGE_BY"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c",
      "LAGO_API_CHARGE_BY": "User_Id"}, "LAGO_API_CHARGE_BY"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c",
      "DEFAULT_FLUSH_INTERVAL_SECONDS": "soon"}, "DEFAULT_FLUSH_INTERVAL_SECONDS"),
    ({"LAGO_API_KEY": "k", "LAGO_API_BASE": "http://lago", "LAGO_API_EVENT_CODE": "c",
      "DEFAULT_BATCH_SIZE": "many"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_lago(BOTH, env, None)


def test_defaults() -> None:
    sink = make_lago(BOTH, {"LAGO_API_KEY": API_KEY, "LAGO_API_BASE": " https://api.getlago.com// ",
                            "LAGO_API_EVENT_CODE": f" {CODE} "}, None)
    assert sink.url == "https://api.getlago.com/api/v1/events/batch" and sink.code == CODE
    assert sink.batch_size == 100 and sink.flush_interval == 5.0 and sink.charge_by == "end_user_id"
    assert sink.name == "lago" and (sink.success, sink.failure) == (True, False)
    assert sink.headers == {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    sink.discard()
    assert batch_url("http://localhost:3000/lago/") == "http://localhost:3000/lago/api/v1/events/batch"


# -- through the gateway -----------------------------------------------------------------------------------

GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["lago", "prometheus"]
general_settings:
  master_key: sk-lago-master
"""
AUTH = {"Authorization": "Bearer sk-lago-master"}


def failures(c: httpx.Client, want: int) -> float:
    """LiteLLM's callback failure counter for ``lago`` on ``/metrics``, once it reads at least ``want`` (bounded
    wait)."""
    line = re.compile(r'^litellm_callback_logging_failures_metric_total\{callback_name="lago"\} (\S+)$', re.M)
    deadline = time.monotonic() + 30
    while True:
        found = line.search(text := c.get("/metrics").text)
        if found and float(found.group(1)) >= want:
            return float(found.group(1))
        assert time.monotonic() < deadline, text[-2000:]
        time.sleep(0.1)


@pytest.mark.e2e
def test_lago_callback_through_the_gateway(lago: Lago) -> None:
    with start_gateway(GATEWAY.format(), env={**env_for(lago), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/v1/chat/completions", headers=AUTH,
                   json={"model": "m", "user": "cust-gw", "messages": [{"role": "user", "content": "bill me"}]})
        assert r.status_code == 200, r.text
        with c.stream("POST", "/v1/chat/completions", headers={**AUTH, "x-litellm-end-user-id": "cust-stream"},
                      json={"model": "m", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "stream me"}]}) as s:
            assert s.status_code == 200
            s.read()
            stream_id = s.headers["x-litellm-call-id"]
        anon = c.post("/v1/chat/completions", headers=AUTH,
                      json={"model": "m", "messages": [{"role": "user", "content": "nobody to bill"}]})
        assert anon.status_code == 200, anon.text
        bad = c.post("/v1/chat/completions", headers=AUTH, json={"model": "nope", "user": "cust-gw", "messages": []})
        assert bad.status_code >= 400
        assert failures(c, 1) == 1  # the request naming no end user: counted, not sent
        by_id = {e["transaction_id"]: e for e in lago.events(2)}
        unary = by_id[r.headers["x-litellm-call-id"]]
        assert unary["external_subscription_id"] == "cust-gw" and unary["code"] == CODE
        props = unary["properties"]
        assert props["prompt_tokens"] > 0 and props["completion_tokens"] > 0
        assert props["total_tokens"] == props["prompt_tokens"] + props["completion_tokens"]
        assert isinstance(props["response_cost"], float) and props["model"]
        assert abs(unary["timestamp"] - time.time()) < 120
        assert by_id[stream_id]["external_subscription_id"] == "cust-stream"
        assert by_id[stream_id]["properties"]["completion_tokens"] > 0
        assert set(by_id) == {r.headers["x-litellm-call-id"], stream_id}  # the failure bills nothing
        assert "had no end_user_id" in gw.log() and API_KEY not in gw.log()
