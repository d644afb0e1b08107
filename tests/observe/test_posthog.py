"""LiteLLM's ``posthog`` callback: the events PostHog's ``/batch/`` capture endpoint receives, at a real HTTP server
standing in for it (checking the path, the content type and the project key in the body), from hand-built records
and through a real ``relaygate serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.posthog import event_of, make_posthog, target_destination
from relaygate.observe.standard import standard_payload
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, TRACE, detail, with_detail

API_KEY = "phc_test_project_key"
BOTH = ObserveSettings(success_callbacks=("posthog",), failure_callbacks=("posthog",))


def well_formed(request: Request) -> int | None:
    """PostHog's own refusal: a path other than ``/batch/``, another content type, a body without its key or
    batch."""
    body = request.body
    ok = (request.path.endswith("/batch/") and request.headers.get("content-type") == "application/json"
          and isinstance(body, dict) and isinstance(body.get("api_key"), str) and isinstance(body.get("batch"), list))
    return None if ok else 400


class Capture(JsonReceiver):
    """``POST /batch/``: answers 200 (or ``status``) and keeps each request's path, headers and body; a malformed
    request is answered 400."""

    def __init__(self) -> None:
        super().__init__(200, {"status": "1"}, check=well_formed)

    def events(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items("batch", want, timeout)


@pytest.fixture
def capture() -> Iterator[Capture]:
    with Capture() as c:
        yield c


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_posthog, records, env, settings, events, **{"max_attempts": 1, **options})


def test_an_event_per_request_as_litellm_builds_it(capture: Capture) -> None:
    ok = with_detail(detail(metadata={"user_id": "user-42", "parent_run_id": "p-1", "plan": "pro",
                                      "user_api_key_hash": "x", "token": "phc_other", "langfuse_secret_key": "s"}),
                     call_id="ok-1")
    failed = with_detail(detail(attempts=[], metadata={}), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    send([ok, failed], {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url + "/"})
    (path, headers, body), = capture.posts
    assert path == "/batch/" and headers["content-type"] == "application/json" and body["api_key"] == API_KEY
    assert "authorization" not in headers
    first, second = body["batch"]
    assert first["event"] == "$ai_generation" and first["distinct_id"] == "user-42"
    p = first["properties"]
    assert (p["$ai_model"], p["$ai_provider"]) == ("gpt-4o", "openai")
    assert p["$ai_input"] == CHAT_IN["messages"] and p["$ai_output_choices"]["choices"] == CHAT_OUT["choices"]
    assert (p["$ai_input_tokens"], p["$ai_output_tokens"], p["$ai_total_cost_usd"]) == (10, 5, 0.00025)
    assert p["$ai_latency"] == 1.5 and "$ai_is_error" not in p and "$ai_stream" not in p
    assert p["$ai_trace_id"] == TRACE  # the request's own trace id (no session or trace id in its metadata)
    assert p["$ai_span_id"] == "chatcmpl-123" and p["$ai_parent_id"] == "p-1"
    assert p["plan"] == "pro" and p["tags"][:2] == ["t1", "t2"]
    for key in ("user_api_key_hash", "token", "langfuse_secret_key", "user_id", "parent_run_id"):
        assert key not in p
    assert first["timestamp"] == "2023-11-14T22:13:21.500000Z" and len(first["uuid"]) == 36
    q = second["properties"]
    assert q["$ai_is_error"] is True and "upstream exploded" in q["$ai_error"] and q["$ai_http_status"] == 500
    assert "$ai_output_choices" not in q
    assert second["distinct_id"] == q["$ai_trace_id"]  # no user, no end user: the trace id
    assert second["uuid"] != first["uuid"]


def test_embeddings_streams_and_the_clients_keys() -> None:
    emb = with_detail(detail(input={"model": "e", "input": ["a", "b"]}, output={"data": []},
                             metadata={"$ai_model": "forged", "$ai_session_id": "s-9"}),
                      route="embeddings", end_user_id="end-7")
    ev = event_of(emb, standard_payload(emb, emb.extra["observe"]), emb.extra["observe"].metadata)
    assert ev["event"] == "$ai_embedding" and ev["distinct_id"] == "end-7"
    p = ev["properties"]
    assert p["$ai_input"] == ["a", "b"] and "$ai_output_choices" not in p and "$ai_output_tokens" not in p
    assert p["$ai_model"] == "gpt-4o" and p["$ai_session_id"] == "s-9"  # the client never overwrites ours
    stream = with_detail(detail(), stream=True, ttft=0.25)
    sp = event_of(stream, standard_payload(stream, stream.extra["observe"]), {})["properties"]
    assert sp["$ai_stream"] is True and sp["$ai_time_to_first_token"] == 0.25 and sp["$ai_latency"] == 1.5


def test_no_messages_when_message_logging_is_off(capture: Capture) -> None:
    for settings in (ObserveSettings(success_callbacks=("posthog",), turn_off_message_logging=True),
                     ObserveSettings(success_callbacks=("posthog",),
                                     callback_settings={"posthog": {"message_logging": False}})):
        capture.posts.clear()
        send([with_detail(detail())], {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url}, settings)
        (event,) = capture.events(1)
        text = json.dumps(event)
        assert "be brief" not in text and "hello" not in text and "redacted-by-litellm" in text


def test_success_only_and_no_logging(capture: Capture) -> None:
    failed = with_detail(detail(), call_id="bad", status=500, outcome=Outcome.ERROR)
    quiet = with_detail(detail(), call_id="quiet", no_logging=True)
    send([failed, quiet, with_detail(detail(), call_id="ok")], {"POSTHOG_API_KEY": API_KEY,
                                                                 "POSTHOG_API_URL": capture.url},
         ObserveSettings(success_callbacks=("posthog",)))
    (event,) = capture.events(1)
    assert "$ai_is_error" not in event["properties"]


def test_a_failing_receiver_is_counted(capture: Capture) -> None:
    capture.status = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail()), with_detail(detail(), call_id="c2")],
                {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url}, events=events,
                max_attempts=2, backoff=0.01)
    assert len(capture.posts) == 2  # retried once, then given up
    assert sink.dropped == 2 and ("posthog_dropped", 2) in events and ("posthog_send_failed", 1) in events
    assert CALLBACK_FAILURES["posthog_dropped"] == CALLBACK_FAILURES["posthog_send_failed"] == "posthog"


def test_batches_hold_at_most_100_events(capture: Capture) -> None:
    send([with_detail(detail(), call_id=f"c{i}") for i in range(250)],
         {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url})
    assert [len(body["batch"]) for _, _, body in capture.posts] == [100, 100, 50]


@pytest.mark.parametrize(("env", "name"), [
    ({}, "POSTHOG_API_KEY"),
    ({"POSTHOG_API_KEY": " "}, "POSTHOG_API_KEY"),
    ({"POSTHOG_API_KEY": "k", "POSTHOG_API_URL": "ftp://x"}, "POSTHOG_API_URL"),
    ({"POSTHOG_API_KEY": "k", "POSTHOG_API_URL": "https://h/?x=1"}, "POSTHOG_API_URL"),
    ({"POSTHOG_API_KEY": "k\nx"}, "POSTHOG_API_KEY"),
    ({"POSTHOG_API_KEY": "k", "POSTHOG_API_URL": "http://h/\r\nX: 1"}, "POSTHOG_API_URL"),
    ({"POSTHOG_API_KEY": "k", "DEFAULT_FLUSH_INTERVAL_SECONDS": "soon"}, "DEFAULT_FLUSH_INTERVAL_SECONDS"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_posthog(BOTH, env, None)


def test_defaults() -> None:
    sink = make_posthog(BOTH, {"POSTHOG_API_KEY": API_KEY}, None)
    assert sink.url == "https://us.i.posthog.com/batch/" and sink.batch_size == 100 and sink.flush_interval == 5.0
    sink.discard()


# -- a key's or team's own destination ---------------------------------------------------------------------


def target(callback_type: str = "success_and_failure", **vars: str) -> LoggingTarget:
    return LoggingTarget("posthog", callback_type, vars)


def test_a_keys_destination_replaces_the_configured_one(capture: Capture) -> None:
    other = Capture()
    try:
        own = with_detail(detail(logging=[target(posthog_api_key="phc_own", posthog_api_url=other.url)]),
                          call_id="own-1")
        host_alias = with_detail(detail(logging=[target(posthog_api_key="phc_alias", posthog_host=other.url)]),
                                 call_id="alias-1")
        env_url = with_detail(detail(logging=[target(posthog_api_key="phc_keyonly")]), call_id="keyonly-1")
        failure_only = with_detail(detail(logging=[target("failure", posthog_api_key="phc_f")]), call_id="skip-1")
        plain = with_detail(detail(), call_id="plain-1")
        send([own, host_alias, env_url, failure_only, plain],
             {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url})
        assert len(other.events(2)) == 2
        assert sorted(body["api_key"] for _, _, body in other.posts) == ["phc_alias", "phc_own"]
        capture.events(2)
        keys = {body["api_key"]: [e["properties"]["$ai_span_id"] for e in body["batch"]] for _, _, body in capture.posts}
        assert set(keys) == {API_KEY, "phc_keyonly"} and len(keys[API_KEY]) == 1
    finally:
        other.close()


def test_a_key_naming_its_own_url_gets_none_of_the_environments_credentials(capture: Capture,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    record = with_detail(detail(logging=[target(posthog_api_url=capture.url)]))
    with caplog.at_level("WARNING", "relaygate.observe"):
        send([record], {"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": "http://127.0.0.1:9"})
    assert capture.posts == [] and "sends nothing: no posthog_api_key" in caplog.text
    assert API_KEY not in caplog.text
    with pytest.raises(ValueError, match="control characters"):
        target_destination(target(posthog_api_key="k\r\nx"), {})
    with pytest.raises(ValueError, match="http"):
        target_destination(target(posthog_api_key="k", posthog_api_url="file:///etc"), {})


def test_keys_only_sink_needs_no_environment_key(capture: Capture) -> None:
    keyed = with_detail(detail(logging=[target(posthog_api_key="phc_own", posthog_api_url=capture.url)]))
    receiver.send(make_posthog, [keyed, with_detail(detail(), call_id="unkeyed")], {}, ObserveSettings(),
                  keys_only=True)
    (event,) = capture.events(1)
    assert capture.posts[0][2]["api_key"] == "phc_own" and event["properties"]["$ai_span_id"] == "chatcmpl-123"


# -- through the gateway -----------------------------------------------------------------------------------

GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["posthog", "prometheus"]
general_settings:
  master_key: sk-ph-master
"""
AUTH = {"Authorization": "Bearer sk-ph-master"}


@pytest.mark.e2e
def test_posthog_callback_through_the_gateway(capture: Capture) -> None:
    with start_gateway(GATEWAY, env={"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url,
                                     "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hello posthog"}],
                             "metadata": {"user_id": "u-gw", "feature": "chat"}})
        assert r.status_code == 200, r.text
        (event,) = capture.events(1)
        assert capture.posts[0][2]["api_key"] == API_KEY and capture.posts[0][0] == "/batch/"
        p = event["properties"]
        assert event["event"] == "$ai_generation" and event["distinct_id"] == "u-gw" and p["feature"] == "chat"
        assert p["$ai_input"] == [{"role": "user", "content": "hello posthog"}]
        assert p["$ai_input_tokens"] > 0 and p["$ai_output_tokens"] > 0 and p["$ai_provider"]
        assert p["$ai_span_id"] == r.json()["id"]
        assert API_KEY not in gw.log()


@pytest.mark.e2e
def test_a_keys_own_posthog_project_through_the_gateway(capture: Capture, tmp_path: Any) -> None:
    other = Capture()
    config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["posthog"]
general_settings:
  master_key: sk-ph-master
  database_url: sqlite:///{tmp_path / 'rg.db'}
"""
    try:
        with start_gateway(config, env={"POSTHOG_API_KEY": API_KEY, "POSTHOG_API_URL": capture.url,
                                        "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw, \
                httpx.Client(base_url=gw.url, timeout=20) as c:
            r = c.post("/key/generate", headers=AUTH, json={"metadata": {"logging": [{
                "callback_name": "posthog", "callback_type": "success",
                "callback_vars": {"posthog_api_key": "phc_key_own", "posthog_api_url": other.url}}]}})
            assert r.status_code == 200, r.text
            key = r.json()["key"]
            r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "key event"}]})
            assert r.status_code == 200, r.text
            r = c.post("/v1/chat/completions", headers=AUTH,
                       json={"model": "m", "messages": [{"role": "user", "content": "operator event"}]})
            assert r.status_code == 200, r.text
            (own,) = other.events(1)
            (ops,) = capture.events(1)
            assert other.posts[0][2]["api_key"] == "phc_key_own" and capture.posts[0][2]["api_key"] == API_KEY
            assert own["properties"]["$ai_input"] == [{"role": "user", "content": "key event"}]
            assert ops["properties"]["$ai_input"] == [{"role": "user", "content": "operator event"}]
            assert "phc_key_own" not in gw.log() and API_KEY not in gw.log()
    finally:
        other.close()
