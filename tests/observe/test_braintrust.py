"""LiteLLM's ``braintrust`` callback: the events Braintrust's project-logs insert endpoint receives, at a real HTTP
server standing in for Braintrust's API (checking the bearer key, creating projects by name and decoding each
insert), from hand-built records and through a real ``relaygate serve``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.braintrust import make_braintrust, target_destination
from relaygate.observe.detail import LoggingTarget
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, T0, detail, with_detail

API_KEY = "sk-bt-test-secret-key"
BOTH = ObserveSettings(success_callbacks=("braintrust",), failure_callbacks=("braintrust",))


class Braintrust(JsonReceiver):
    """Braintrust's API under ``/v1``: ``POST /v1/project`` answers the project of that name (made on first use,
    id ``pid-<n>``); ``POST /v1/project_logs/<id>/insert`` takes the events of a known project id (or one in
    ``known``). A request without the right bearer key is answered 401, any other path 404."""

    def __init__(self, api_key: str = API_KEY, known: tuple[str, ...] = ()) -> None:
        self.projects: dict[str, str] = {}
        self.known = set(known)
        self.api_key = api_key
        self.fail_inserts = 0
        super().__init__(200, None, check=self.answer_for)

    def answer_for(self, request: Request) -> int | tuple[int, Any] | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "unauthorized"}
        if request.headers.get("content-type") != "application/json":
            return 400, {"error": "json only"}
        if request.path == "/v1/project":
            name = request.body["name"]
            assert isinstance(name, str) and set(request.body) == {"name"}
            pid = self.projects.setdefault(name, f"pid-{len(self.projects) + 1}")
            return 200, {"id": pid, "name": name, "org_id": "org-1"}
        parts = request.path.split("/")
        if len(parts) == 5 and parts[:3] == ["", "v1", "project_logs"] and parts[4] == "insert":
            if parts[3] not in self.known and parts[3] not in self.projects.values():
                return 404, {"error": f"no project {parts[3]}"}
            if self.fail_inserts:
                return self.fail_inserts
            events = request.body["events"]
            assert set(request.body) == {"events"} and all(isinstance(e, dict) for e in events)
            return 200, {"row_ids": [e["id"] for e in events]}
        return 404, {"error": "not found"}

    def inserts(self) -> list[tuple[str, dict[str, Any]]]:
        """``(project id, event)`` of every insert so far."""
        return [(path.split("/")[3], e) for path, _, body in list(self.posts) if path.endswith("/insert")
                for e in body["events"]]

    def events(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items(lambda body: body.get("events", []), want, timeout)


@pytest.fixture
def bt() -> Iterator[Braintrust]:
    with Braintrust() as b:
        yield b


def env_for(bt: Braintrust, **extra: str) -> dict[str, str]:
    return {"BRAINTRUST_API_KEY": API_KEY, "BRAINTRUST_API_BASE": bt.url + "/v1", **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_braintrust, records, env, settings, events, **{"max_attempts": 1, **options})


def test_an_event_per_answered_request_as_litellm_builds_it(bt: Braintrust) -> None:
    ok = with_detail(detail(metadata={"session_id": "s-1", "span_name": "my-span", "project_name": "proj-x",
                                      "feature": "chat", "n": 3, "model": "client-model"}), call_id="ok-1",
                     stream=True, ttft=0.25)
    failed = with_detail(detail(attempts=[]), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    settings = ObserveSettings(success_callbacks=("braintrust",), failure_callbacks=("braintrust",),
                               langfuse_default_tags=("user_api_key_alias", "feature", "absent"))
    send([ok, failed], env_for(bt), settings)
    assert [p for p, _, _ in bt.posts] == ["/v1/project", "/v1/project_logs/pid-1/insert"]
    assert bt.projects == {"proj-x": "pid-1"}
    (event,) = bt.events(1)  # LiteLLM's logger has no failure hook: the failure is not sent
    assert event["id"] == "ok-1"
    assert event["input"] == CHAT_IN["messages"] and event["output"] == CHAT_OUT["choices"]
    assert event["span_attributes"] == {"name": "my-span", "type": "llm"}
    assert event["tags"] == ["user_api_key_alias:my-key", "feature:chat"]
    metrics = event["metrics"]
    assert metrics == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "total_cost": 0.00025,
                       "start": T0, "end": T0 + 1.5, "time_to_first_token": 0.25}
    meta = event["metadata"]
    assert meta["litellm_call_id"] == "ok-1" and meta["status"] == "success" and meta["stream"] is True
    assert meta["metadata"]["user_api_key_alias"] == "my-key"
    assert meta["feature"] == "chat" and meta["span_name"] == "my-span"  # the client's text values, added
    assert "n" not in meta and meta["model"] != "client-model"  # never a payload key, only text
    assert not any(k in event for k in ("span_id", "root_span_id", "span_parents"))


def test_projects_by_id_name_and_default_batched_per_project(bt: Braintrust) -> None:
    bt.known.add("proj id/1")
    records = [with_detail(detail(metadata={"project_id": "proj id/1"}), call_id="by-id"),
               *(with_detail(detail(metadata={"project_name": "named"}), call_id=f"named-{i}") for i in range(3)),
               with_detail(detail(metadata={}), call_id="default-1"),
               with_detail(detail(metadata={"project_name": {"not": "text"}}), call_id="default-2")]
    send(records, env_for(bt))
    assert bt.projects == {"named": "pid-1", "litellm": "pid-2"}  # LiteLLM's default project: litellm
    inserts = [p for p, _, _ in bt.posts if p.endswith("/insert")]
    assert sorted(inserts) == sorted(["/v1/project_logs/proj%20id%2F1/insert", "/v1/project_logs/pid-1/insert",
                                      "/v1/project_logs/pid-2/insert"])  # one insert per project
    by_project: dict[str, list[str]] = {}
    for pid, e in bt.inserts():
        by_project.setdefault(pid, []).append(e["id"])
    assert by_project == {"proj%20id%2F1": ["by-id"], "pid-1": ["named-0", "named-1", "named-2"],
                          "pid-2": ["default-1", "default-2"]}


def test_a_project_name_is_looked_up_once(bt: Braintrust) -> None:
    sink = make_braintrust(BOTH, env_for(bt), None, flush_interval=0.01, max_attempts=1)

    async def main() -> None:
        for i in range(3):
            await sink.handle([with_detail(detail(metadata={"project_name": "p"}), call_id=f"c{i}")])
            deadline = time.monotonic() + 10
            while sink.sent < i + 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await sink.aclose()

    asyncio.run(main())
    assert [p for p, _, _ in bt.posts].count("/v1/project") == 1 and sink.sent == 3


def test_span_ids_from_the_clients_metadata(bt: Braintrust) -> None:
    child = with_detail(detail(metadata={"span_id": "s-2", "root_span_id": "r-1", "span_parents": "r-1, p-1,,"}),
                        call_id="child")
    listed = with_detail(detail(metadata={"span_parents": ["a", 7, "b"], "span_id": {"x": 1},
                                          "root_span_id": 5}), call_id="listed")
    send([child, listed], env_for(bt), ObserveSettings(success_callbacks=("braintrust",),
                                                       langfuse_default_tags=("user_api_key_alias",)))
    first, second = bt.events(2)
    assert (first["span_id"], first["root_span_id"], first["span_parents"]) == ("s-2", "r-1", ["r-1", "p-1"])
    assert "tags" not in first  # Braintrust refuses tags on a child span
    assert second["span_parents"] == ["a", "b"] and "span_id" not in second and "root_span_id" not in second
    assert second["tags"] == ["user_api_key_alias:my-key"]


def test_no_messages_when_message_logging_is_off_and_key_info_redacted(bt: Braintrust) -> None:
    settings = ObserveSettings(success_callbacks=("braintrust",), turn_off_message_logging=True,
                               redact_user_api_key_info=True)
    send([with_detail(detail())], env_for(bt), settings)
    (event,) = bt.events(1)
    text = json.dumps(event)
    assert "be brief" not in text and '"hello"' not in text and "redacted-by-litellm" in text
    assert event["metadata"]["metadata"]["user_api_key_alias"] is None
    bt.posts.clear()
    send([with_detail(detail())], env_for(bt), ObserveSettings(
        success_callbacks=("braintrust",), callback_settings={"braintrust": {"message_logging": False}}))
    assert "be brief" not in json.dumps(bt.events(1))


def test_an_embedding_has_no_output(bt: Braintrust) -> None:
    emb = with_detail(detail(input={"model": "e", "input": ["a b"]},
                             output={"object": "list", "data": [{"embedding": [0.1]}]}), route="embeddings")
    send([emb], env_for(bt))
    (event,) = bt.events(1)
    assert event["input"] == ["a b"] and event["output"] is None and event["metrics"]["prompt_tokens"] == 10


def test_failures_are_counted(bt: Braintrust) -> None:
    assert CALLBACK_FAILURES["braintrust_dropped"] == CALLBACK_FAILURES["braintrust_send_failed"] == "braintrust"
    bt.fail_inserts = 500
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail())], env_for(bt), events=events, max_attempts=2, backoff=0.01)
    assert sink.dropped == 1 and ("braintrust_dropped", 1) in events
    assert events.count(("braintrust_send_failed", 1)) == 2  # retried once
    events.clear()
    bad = Braintrust(api_key="another-key")  # refuses the lookup: the events waiting for it are dropped
    try:
        sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(3)],
                    {"BRAINTRUST_API_KEY": API_KEY, "BRAINTRUST_API_BASE": bad.url + "/v1"}, events=events,
                    max_attempts=3, backoff=0.01)
        assert [p for p, _, _ in bad.posts] == ["/v1/project"]  # a 401 is not retried
        assert sink.dropped == 3 and ("braintrust_dropped", 3) in events and ("braintrust_send_failed", 1) in events
    finally:
        bad.close()


@pytest.mark.parametrize(("env", "name"), [
    ({}, "BRAINTRUST_API_KEY"),
    ({"BRAINTRUST_API_KEY": " "}, "BRAINTRUST_API_KEY"),
    ({"BRAINTRUST_API_KEY": "k\r\nX-Injected: 1"}, "BRAINTRUST_API_KEY"),
    ({"BRAINTRUST_API_KEY": "k", "BRAINTRUST_API_BASE": "ftp://x/v1"}, "BRAINTRUST_API_BASE"),
    ({"BRAINTRUST_API_KEY": "k", "BRAINTRUST_API_BASE": "https://x/v1?token=1"}, "BRAINTRUST_API_BASE"),
    ({"BRAINTRUST_API_KEY": "k", "DEFAULT_FLUSH_INTERVAL_SECONDS": "soon"}, "DEFAULT_FLUSH_INTERVAL_SECONDS"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_braintrust(BOTH, env, None)


def test_defaults() -> None:
    sink = make_braintrust(BOTH, {"BRAINTRUST_API_KEY": "k"}, None)
    try:
        assert sink.default is not None and sink.default.base == "https://api.braintrustdata.com/v1"
        assert dict(sink.default.headers)["Authorization"] == "Bearer k"
        assert sink.default.project == "litellm" and sink.batch_size == 512 and sink.flush_interval == 5.0
        assert sink.success and not sink.failure
    finally:
        sink.discard()


# -- a key's or team's own destination ---------------------------------------------------------------------


def target(callback_type: str = "success_and_failure", **vars: str) -> LoggingTarget:
    return LoggingTarget("braintrust", callback_type, vars)


def test_a_keys_destination_replaces_the_configured_one(bt: Braintrust) -> None:
    other = Braintrust(api_key="key-own")
    try:
        own = with_detail(detail(logging=[target(braintrust_api_key="key-own", braintrust_project="key-proj",
                                                 braintrust_host=other.url)]), call_id="own-1")
        env_creds = with_detail(detail(logging=[target("success", braintrust_project="env-creds")]), call_id="env-1")
        failure_only = with_detail(detail(logging=[target("failure", braintrust_project="x")]), call_id="skip-1")
        plain = with_detail(detail(), call_id="plain-1")
        send([own, env_creds, failure_only, plain], env_for(bt))
        assert other.projects == {"key-proj": "pid-1"}  # /v1 added to the bare host
        assert [(pid, e["id"]) for pid, e in other.inserts()] == [("pid-1", "own-1")]
        assert sorted(e["id"] for _, e in bt.inserts()) == ["env-1", "plain-1"]
        assert set(bt.projects) == {"env-creds", "litellm"}
    finally:
        other.close()


def test_a_key_naming_its_own_host_gets_none_of_the_environments_credentials(
        bt: Braintrust, caplog: pytest.LogCaptureFixture) -> None:
    record = with_detail(detail(logging=[target(braintrust_host=bt.url + "/v1")]))
    with caplog.at_level("WARNING", "relaygate.observe"):
        send([record], env_for(bt))
    assert bt.posts == [] and "sends nothing: no braintrust_api_key" in caplog.text
    assert API_KEY not in caplog.text
    with pytest.raises(ValueError, match="control characters"):
        target_destination(target(braintrust_api_key="k\r\nX: 1"), {})
    with pytest.raises(ValueError, match="http"):
        target_destination(target(braintrust_api_key="k", braintrust_host="file:///etc"), {})


def test_keys_only_sink_needs_no_environment_key(bt: Braintrust) -> None:
    keyed = with_detail(detail(logging=[target(braintrust_api_key=API_KEY, braintrust_host=bt.url + "/v1")]),
                        call_id="keyed")
    receiver.send(make_braintrust, [keyed, with_detail(detail(), call_id="unkeyed")], {}, ObserveSettings(),
                  keys_only=True)
    assert [e["id"] for e in bt.events(1)] == ["keyed"]


# -- through a real gateway --------------------------------------------------------------------------------

GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["braintrust"]
general_settings:
  master_key: sk-bt-master
"""
AUTH = {"Authorization": "Bearer sk-bt-master"}


@pytest.mark.e2e
def test_braintrust_callback_through_the_gateway(bt: Braintrust) -> None:
    with start_gateway(GATEWAY, env={**env_for(bt), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/v1/chat/completions", headers=AUTH,
                   json={"model": "m", "messages": [{"role": "user", "content": "hello braintrust"}],
                         "metadata": {"project_name": "gw-proj", "span_name": "gw-span", "feature": "chat"}})
        assert r.status_code == 200, r.text
        s = c.post("/v1/chat/completions", headers=AUTH,
                   json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream it"}],
                         "metadata": {"project_name": "gw-proj"}})
        assert s.status_code == 200, s.text
        first, second = sorted(bt.events(2), key=lambda e: e["input"][0]["content"])
        assert bt.projects == {"gw-proj": "pid-1"}
        assert first["id"] == r.headers["x-litellm-call-id"]
        assert first["input"] == [{"role": "user", "content": "hello braintrust"}]
        assert first["output"][0]["message"]["content"] == r.json()["choices"][0]["message"]["content"]
        assert first["span_attributes"] == {"name": "gw-span", "type": "llm"} and first["metadata"]["feature"] == "chat"
        assert first["metrics"]["total_tokens"] > 0 and first["metrics"]["end"] >= first["metrics"]["start"]
        assert second["id"] == s.headers["x-litellm-call-id"] and second["metadata"]["stream"] is True
        assert second["output"][0]["message"]["content"]  # the assembled stream
        assert API_KEY not in gw.log()


@pytest.mark.e2e
def test_a_keys_own_braintrust_destination_through_the_gateway(bt: Braintrust, tmp_path: Any) -> None:
    other = Braintrust(api_key="key-own-secret")
    config = GATEWAY + f"  database_url: sqlite:///{tmp_path / 'rg.db'}\n"
    try:
        with start_gateway(config, env={**env_for(bt), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05"}) as gw, \
                httpx.Client(base_url=gw.url, timeout=20) as c:
            entry = {"callback_name": "braintrust", "callback_type": "success",
                     "callback_vars": {"braintrust_api_key": "key-own-secret", "braintrust_project": "key-proj",
                                       "braintrust_host": other.url}}
            r = c.post("/key/generate", headers=AUTH, json={"metadata": {"logging": [entry]}})
            assert r.status_code == 200, r.text
            ids = {}
            for name, key in (("own", r.json()["key"]), ("master", "sk-bt-master")):
                r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "m", "messages": [{"role": "user", "content": f"from {name}"}]})
                assert r.status_code == 200, r.text
                ids[name] = r.headers["x-litellm-call-id"]
            assert [e["id"] for e in other.events(1)] == [ids["own"]]
            assert [e["id"] for e in bt.events(1)] == [ids["master"]]
            assert other.projects == {"key-proj": "pid-1"} and set(bt.projects) == {"litellm"}
            assert "key-own-secret" not in gw.log() and API_KEY not in gw.log()
    finally:
        other.close()
