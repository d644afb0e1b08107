"""LiteLLM's ``langsmith`` callback: the runs LangSmith's batch ingest endpoint receives, at a real HTTP server
standing in for it (checking the API key header and the body's shape), from hand-built records and through a
real ``relaygate serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.detail import LoggingTarget
from relaygate.observe.langsmith import make_langsmith, target_project
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, T0, detail, with_detail

API_KEY = "lsv2_pt_test_secret_key"
BOTH = ObserveSettings(success_callbacks=("langsmith",), failure_callbacks=("langsmith",))


INGEST_PATH = "/api/v1/runs/batch"


class Ingest(JsonReceiver):
    """``POST /api/v1/runs/batch``: answers 202 (or ``status``) and keeps each request's headers and body; any
    other path is answered 404."""

    def __init__(self) -> None:
        super().__init__(202, {}, check=lambda request: None if request.path == INGEST_PATH else 404)

    def runs(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items("post", want, timeout)


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    with Ingest() as i:
        yield i


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None) -> Any:
    return receiver.send(make_langsmith, records, env, settings, events, max_attempts=1)


def test_a_run_per_request_as_litellm_builds_it(ingest: Ingest) -> None:
    ok = with_detail(detail(metadata={"session_id": "s-1", "run_name": "my-run", "project_name": "proj-x"}),
                     call_id="ok-1")
    failed = with_detail(detail(attempts=[]), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    send([ok, failed], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url,
                        "LANGSMITH_TENANT_ID": "tenant-1"})
    (path, headers, body), = ingest.posts
    assert path == "/api/v1/runs/batch" and headers["x-api-key"] == API_KEY and headers["x-tenant-id"] == "tenant-1"
    first, second = body["post"]
    assert first["name"] == "my-run" and first["run_type"] == "llm" and first["session_name"] == "proj-x"
    assert first["inputs"]["litellm_call_id"] == "ok-1" and first["inputs"]["messages"] == CHAT_IN["messages"]
    assert first["outputs"]["choices"] == CHAT_OUT["choices"]
    assert first["outputs"]["usage_metadata"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                                                  "total_cost": 0.00025}
    assert first["start_time"] == T0 and first["end_time"] == T0 + 1.5
    assert first["extra"]["user_api_key_alias"] == "my-key"
    assert first["session_id"] == "s-1"
    assert first["trace_id"] == first["id"]  # a root run is its own trace
    assert first["dotted_order"] == f"20231114T221320000000Z{first['id']}"  # the request's start time
    assert "error" not in first
    assert second["name"] == "LLMRun" and second["session_name"] == "litellm-completion"
    assert "upstream exploded" in second["error"] and second["outputs"]["output"] is None
    assert second["id"] != first["id"]


def test_ids_from_the_client_and_sampling(ingest: Ingest) -> None:
    child = with_detail(detail(metadata={"run_id": "r-2", "parent_run_id": "p-1", "trace_id": "t-1",
                                         "session_id": "t-1", "dotted_order": "20231114T221320Zp-1.x"}))
    send([child], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url + "/api/v1"})
    (run,) = ingest.runs(1)
    assert (run["id"], run["parent_run_id"], run["trace_id"], run["dotted_order"]) == (
        "r-2", "p-1", "t-1", "20231114T221320Zp-1.x")
    assert "session_id" not in run  # equal to the trace id: LangSmith would refuse the batch
    ingest.posts.clear()
    send([with_detail(detail(), call_id=f"c{i}") for i in range(20)],
         {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url, "LANGSMITH_SAMPLING_RATE": "0"})
    assert ingest.posts == []
    send([with_detail(detail(), call_id=f"c{i}") for i in range(400)],
         {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url, "LANGSMITH_SAMPLING_RATE": "0.5"})
    assert 120 < len(ingest.runs(400, timeout=1)) < 280  # LiteLLM would ignore 0.5 (digits only); honoured here


def test_refused_batches_are_counted(ingest: Ingest) -> None:
    ingest.status = 401
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail())], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url},
                events=events)
    assert sink.dropped == 1 and ("langsmith_dropped", 1) in events
    assert CALLBACK_FAILURES["langsmith_dropped"] == "langsmith"


def test_no_messages_when_message_logging_is_off(ingest: Ingest) -> None:
    send([with_detail(detail())], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url},
         ObserveSettings(success_callbacks=("langsmith",), turn_off_message_logging=True))
    (run,) = ingest.runs(1)
    assert "hi" not in json.dumps(run["inputs"]["messages"]) and "hello" not in json.dumps(run["outputs"])


@pytest.mark.parametrize(("env", "name"), [
    ({}, "LANGSMITH_API_KEY"),
    ({"LANGSMITH_API_KEY": "k", "LANGSMITH_BASE_URL": "ftp://x"}, "LANGSMITH_BASE_URL"),
    ({"LANGSMITH_API_KEY": "k", "LANGSMITH_SAMPLING_RATE": "2"}, "LANGSMITH_SAMPLING_RATE"),
    ({"LANGSMITH_API_KEY": "k\nx"}, "LANGSMITH_API_KEY"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_langsmith(BOTH, env, None)


@pytest.mark.e2e
def test_langsmith_callback_through_the_gateway(ingest: Ingest) -> None:
    config = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["langsmith"]
general_settings:
  master_key: sk-ls-master
"""
    with start_gateway(config, env={"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url,
                                    "LANGSMITH_PROJECT": "gw-proj", "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer sk-ls-master"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello langsmith"}]}, timeout=10)
        assert r.status_code == 200, r.text
        (run,) = ingest.runs(1)
        assert ingest.posts[0][1]["x-api-key"] == API_KEY
        assert run["session_name"] == "gw-proj" and run["inputs"]["litellm_call_id"] == r.headers["x-litellm-call-id"]
        assert run["inputs"]["messages"] == [{"role": "user", "content": "hello langsmith"}]
        assert run["outputs"]["usage_metadata"]["total_tokens"] > 0
        assert API_KEY not in gw.log()


# -- a key's or team's own project -------------------------------------------------------------------------


def target(callback_type: str = "success_and_failure", **vars: str) -> LoggingTarget:
    return LoggingTarget("langsmith", callback_type, vars)


def test_a_keys_project_replaces_the_configured_one(ingest: Ingest) -> None:
    other = Ingest()
    try:
        own = with_detail(detail(logging=[target(langsmith_api_key="key-own", langsmith_project="key-proj",
                                                 langsmith_base_url=other.url)]), call_id="own-1")
        env_only = with_detail(detail(logging=[target("failure", langsmith_project="env-creds")]), call_id="skip-1")
        plain = with_detail(detail(), call_id="plain-1")
        send([own, env_only, plain], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url,
                                      "LANGSMITH_PROJECT": "ops"})
        (run,) = other.runs(1)
        assert run["inputs"]["litellm_call_id"] == "own-1" and run["session_name"] == "key-proj"
        assert [h["x-api-key"] for _, h, _ in other.posts] == ["key-own"]
        # the failure-only target does not take the key's successes, and they do not go to the default project
        assert [(r["inputs"]["litellm_call_id"], r["session_name"]) for r in ingest.runs(1)] == [("plain-1", "ops")]
        assert [h["x-api-key"] for _, h, _ in ingest.posts] == [API_KEY]
    finally:
        other.close()


def test_a_key_naming_its_own_host_gets_none_of_the_environments_credentials(ingest: Ingest,
                                                                               caplog: pytest.LogCaptureFixture) -> None:
    record = with_detail(detail(logging=[target(langsmith_base_url=ingest.url)]))
    with caplog.at_level("WARNING", "relaygate.observe"):
        send([record], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": "http://127.0.0.1:9"})
    assert ingest.posts == [] and "sends nothing: no langsmith_api_key" in caplog.text
    assert API_KEY not in caplog.text


def test_keys_only_sink_needs_no_environment_key(ingest: Ingest) -> None:
    keyed = with_detail(detail(logging=[target(langsmith_api_key="key-own", langsmith_base_url=ingest.url,
                                               langsmith_sampling_rate="1")]))
    receiver.send(make_langsmith, [keyed, with_detail(detail(), call_id="unkeyed")], {}, ObserveSettings(),
                  keys_only=True)
    assert [r["inputs"]["litellm_call_id"] for r in ingest.runs(1)] == ["call-1"]
    with pytest.raises(ValueError, match=r"0\.\.1"):
        target_project(target(langsmith_api_key="k", langsmith_sampling_rate="3"), {})
    with pytest.raises(ValueError, match="control characters"):
        target_project(target(langsmith_api_key="k\r\nX-Injected: 1"), {})


@pytest.mark.e2e
def test_a_team_callback_sends_its_keys_runs_to_its_project(ingest: Ingest, tmp_path: Any) -> None:
    config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: sk-ls-master
  database_url: sqlite:///{tmp_path / 'rg.db'}
"""
    admin = {"Authorization": "Bearer sk-ls-master"}
    with start_gateway(config, env={"DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20) as c:
        team = c.post("/team/new", headers=admin, json={"team_alias": "ls-team"}).json()["team_id"]
        r = c.post(f"/team/{team}/callback", headers=admin, json={
            "callback_name": "langsmith", "callback_type": "success",
            "callback_vars": {"langsmith_api_key": "team-ls-key", "langsmith_project": "team-proj",
                              "langsmith_base_url": ingest.url}})
        assert r.status_code == 200, r.text
        assert "team-ls-key" not in r.text  # the answer masks it
        key = c.post("/key/generate", headers=admin, json={"team_id": team}).json()["key"]
        deadline = time.monotonic() + 5  # the team's change reaches the worker within a second
        while True:
            r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "team run"}]})
            assert r.status_code == 200, r.text
            runs = ingest.runs(1, timeout=1)
            if runs or time.monotonic() > deadline:
                break
        assert runs and runs[0]["session_name"] == "team-proj"
        assert ingest.posts[0][1]["x-api-key"] == "team-ls-key"
        assert "team-ls-key" not in gw.log()


def test_a_clients_odd_names_and_ids_never_spoil_the_batch(ingest: Ingest) -> None:
    odd = with_detail(detail(metadata={"run_name": {"x": 1}, "project_name": ["p"], "run_id": 7,
                                       "parent_run_id": {"bad": True}, "trace_id": "t" * 5000}), call_id="odd")
    send([odd, with_detail(detail(), call_id="fine")], {"LANGSMITH_API_KEY": API_KEY, "LANGSMITH_BASE_URL": ingest.url})
    first, second = ingest.runs(2)
    assert first["name"] == "LLMRun" and first["session_name"] == "litellm-completion"
    assert isinstance(first["id"], str) and "parent_run_id" not in first and first["trace_id"] == first["id"]
    assert second["inputs"]["litellm_call_id"] == "fine"
