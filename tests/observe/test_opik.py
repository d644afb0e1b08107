"""LiteLLM's ``opik`` callback: the traces and spans Opik's batch endpoints receive, at a real HTTP server standing
in for Opik (checking the paths, the ``authorization`` and ``Comet-Workspace`` headers and Opik's rules for ids),
from hand-built records and through a real ``relaygate serve``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.metrics import CALLBACK_FAILURES
from relaygate.observe.opik import make_opik, uuid7
from relaygate.sinks.record import Outcome
from tests.conftest import start_gateway
from tests.observe import receiver
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_otel_export import CHAT_IN, CHAT_OUT, T0, detail, with_detail

API_KEY = "opik-test-secret-key"
WORKSPACE = "ws-1"
BOTH = ObserveSettings(success_callbacks=("opik",), failure_callbacks=("opik",))
TRACES, SPANS = "/api/v1/private/traces/batch", "/api/v1/private/spans/batch"


def is_v7(value: Any) -> bool:
    return isinstance(value, str) and uuid.UUID(value).version == 7 and str(uuid.UUID(value)) == value


class Opik(JsonReceiver):
    """Opik's two batch endpoints under ``/api``: 204 for a batch it would take; 401 without the API key or with
    another workspace; 400 for a batch with an id that is not a UUID v7, as Opik answers."""

    def __init__(self, api_key: str | None = API_KEY, workspace: str | None = WORKSPACE) -> None:
        def check(request: Request) -> int | None:
            if request.path not in (TRACES, SPANS):
                return 404
            if request.headers.get("authorization") != api_key or request.headers.get("comet-workspace") != workspace:
                return 401
            field = "traces" if request.path == TRACES else "spans"
            items = request.body.get(field) if isinstance(request.body, dict) else None
            if not isinstance(items, list) or not 1 <= len(items) <= 1000:
                return 400
            for item in items:
                ids = [item.get("id"), item.get("trace_id", item.get("id")), item.get("parent_span_id") or item["id"]]
                if not all(is_v7(i) for i in ids) or any(v is None for v in item.values()):
                    return 400
            return None

        super().__init__(204, None, check=check)

    def traces(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items(lambda body: body.get("traces", []), want, timeout)

    def spans(self, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.items(lambda body: body.get("spans", []), want, timeout)


@pytest.fixture
def opik() -> Iterator[Opik]:
    with Opik() as o:
        yield o


@pytest.fixture(autouse=True)
def _no_opik_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the sink reads ~/.opik.config; the tests give it a home of its own


def env_for(o: Opik, **extra: str) -> dict[str, str]:
    return {"OPIK_URL_OVERRIDE": o.url + "/api/", "OPIK_API_KEY": API_KEY, "OPIK_WORKSPACE": WORKSPACE,
            "HOME": str(Path.home()), **extra}


def send(records: list[Any], env: dict[str, str], settings: ObserveSettings = BOTH,
         events: list[tuple[str, int]] | None = None, **options: Any) -> Any:
    return receiver.send(make_opik, records, env, settings, events, **{"max_attempts": 1, **options})


def test_a_trace_and_a_span_per_answered_request(opik: Opik) -> None:
    ok = with_detail(detail(metadata={"opik": {"tags": ["agent", 7], "thread_id": "th-1", "note": "n"}}),
                     call_id="ok-1")
    failed = with_detail(detail(attempts=[]), call_id="bad-1", status=500, outcome=Outcome.ERROR,
                         error_type="internal_server_error", error_message="upstream exploded")
    send([ok, failed], env_for(opik, OPIK_PROJECT_NAME="proj-x"))
    assert [p for p, _, _ in opik.posts] == [TRACES, SPANS]  # the traces first; no failure is sent (as LiteLLM)
    (trace,), (span,) = opik.traces(1), opik.spans(1)
    assert trace["project_name"] == span["project_name"] == "proj-x"
    assert trace["name"] == "chat.completion" and trace["thread_id"] == "th-1"
    assert trace["start_time"] == "2023-11-14T22:13:20Z" and trace["end_time"] == "2023-11-14T22:13:21.500000Z"
    assert trace["input"] == CHAT_IN["messages"] and trace["output"] == CHAT_OUT
    assert trace["tags"] == span["tags"] == ["agent", "openai"]  # the client's strings, then the provider
    assert span["trace_id"] == trace["id"] and span["id"] != trace["id"] and "parent_span_id" not in span
    assert span["type"] == "llm" and span["model"] == "gpt-4o-2024-08-06" and span["provider"] == "openai"
    assert span["name"] == f"gpt-4o-2024-08-06_chat.completion_{int(T0 + 1.5)}"
    assert span["usage"] == {"completion_tokens": 5, "prompt_tokens": 10, "total_tokens": 15}
    assert span["total_cost"] == span["total_estimated_cost"] == 0.00025
    assert (span["start_time"], span["end_time"], span["input"]) == (trace["start_time"], trace["end_time"],
                                                                   trace["input"])
    meta = trace["metadata"]
    assert meta == span["metadata"]
    assert meta["created_from"] == "litellm" and meta["note"] == "n" and meta["thread_id"] == "th-1"
    assert meta["type"] == "acompletion" and meta["status"] == "success" and meta["model_group"] == "gpt-4o-alias"
    assert meta["cost"] == {"total_tokens": 0.00025, "currency": "USD"}
    assert meta["user_api_key_alias"] == "my-key" and meta["hidden_params"]["model_id"] == "dep-1"
    assert meta["model_parameters"]["temperature"] == 0.2 and "current_span_data" not in meta


def test_a_span_joins_the_clients_trace_and_bad_ids_start_a_new_one(opik: Opik) -> None:
    trace_id, parent = uuid7(), uuid7()
    joined = with_detail(detail(metadata={"opik": {"current_span_data": {"trace_id": trace_id, "id": parent},
                                                   "project_name": "client-proj"}}), call_id="joined")
    bad = with_detail(detail(metadata={"opik": {"current_span_data": {"trace_id": str(uuid.uuid4()), "id": "x"},
                                                "project_name": "", "tags": "abc", "thread_id": ["no"]}}),
                      call_id="bad")
    send([joined, bad], env_for(opik))
    spans = opik.spans(2)
    assert opik.posts and all(p[0] in (TRACES, SPANS) for p in opik.posts)  # every batch taken (204)
    first, second = spans
    assert first["trace_id"] == trace_id and first["parent_span_id"] == parent and first["project_name"] == "client-proj"
    (trace,) = opik.traces(1)  # only the request with ids Opik would refuse got a trace of its own
    assert second["trace_id"] == trace["id"] and "parent_span_id" not in second
    assert trace["project_name"] == "Default Project" and trace["tags"] == ["openai"] and "thread_id" not in trace


def test_the_keys_opik_settings_under_the_clients(opik: Opik) -> None:
    key_meta = {"opik": {"project_name": "key-proj", "tags": ["team-a"]}, "logging": [{"secret": "s"}]}
    keyed = with_detail(detail(key_metadata=key_meta, metadata={}), call_id="k1")
    overridden = with_detail(detail(key_metadata=key_meta, metadata={"opik": {"project_name": "mine"}}), call_id="k2")
    send([keyed, overridden], env_for(opik))
    first, second = opik.spans(2)
    assert first["project_name"] == "key-proj" and first["tags"] == ["team-a", "openai"]
    assert second["project_name"] == "mine" and second["tags"] == ["team-a", "openai"]
    assert "logging" not in first["metadata"]["user_api_key_auth_metadata"]  # callback settings never exported
    opik.posts.clear()
    send([keyed], env_for(opik), ObserveSettings(success_callbacks=("opik",), redact_user_api_key_info=True))
    (span,) = opik.spans(1)
    assert span["project_name"] == "Default Project" and span["metadata"]["user_api_key_alias"] is None


def test_the_clients_opik_headers_override_the_settings(opik: Opik) -> None:
    """LiteLLM's ``opik_project_name`` / ``opik_thread_id`` / ``opik_tags`` request headers (the capture keeps them in
    ``Detail.request_headers``) over the metadata's ``opik`` settings; tags that are not a JSON list add nothing."""
    meta = {"opik": {"project_name": "from-meta", "thread_id": "t-meta", "tags": ["m"]}}
    headed = with_detail(detail(metadata=meta, request_headers={
        "opik_project_name": "from-header", "opik_thread_id": "t-header", "opik_tags": '["h1", 2, "h2"]'}),
        call_id="h1")
    bad = with_detail(detail(metadata=meta, request_headers={"opik_tags": "not json", "langfuse_x": "y"}),
                      call_id="h2")
    send([headed, bad], env_for(opik))
    first, second = opik.spans(2)
    assert first["project_name"] == "from-header" and first["tags"] == ["m", "openai", "h1", "h2"]
    assert second["project_name"] == "from-meta" and second["tags"] == ["m", "openai"]
    assert {t["thread_id"] for t in opik.traces(2)} == {"t-header", "t-meta"}


def test_no_messages_when_message_logging_is_off(opik: Opik) -> None:
    settings = ObserveSettings(success_callbacks=("opik",), callback_settings={"opik": {"message_logging": False}})
    send([with_detail(detail())], env_for(opik), settings)
    (trace,), (span,) = opik.traces(1), opik.spans(1)
    for item in (trace, span):
        text = json.dumps({k: item[k] for k in ("input", "output", "metadata")})
        assert "hi" not in json.dumps(item["input"]) and "hello" not in text and "redacted-by-litellm" in text
    assert trace["name"] == "chat.completion" and span["model"] == "gpt-4o-2024-08-06"
    opik.posts.clear()
    redacted = with_detail(detail(input=None, output=None, redacted=True))
    send([redacted], env_for(opik))
    (span,) = opik.spans(1)
    assert "hello" not in json.dumps(span) and span["model"] == "gpt-4o" and span["name"].startswith("gpt-4o_chat.")


def test_settings_from_the_opik_config_file(opik: Opik, tmp_path: Path) -> None:
    (tmp_path / ".opik.config").write_text(
        f"[opik]\nurl_override = {opik.url}/api\napi_key = {API_KEY}\nworkspace = {WORKSPACE}\n"
        "project_name = file-proj\n")
    send([with_detail(detail())], {"HOME": str(tmp_path)})
    (span,) = opik.spans(1)
    assert span["project_name"] == "file-proj"
    opik.posts.clear()
    send([with_detail(detail())], {"HOME": str(tmp_path), "OPIK_PROJECT_NAME": "env-proj"})  # the environment first
    assert opik.spans(1)[0]["project_name"] == "env-proj"


def test_a_failing_opik_is_counted_and_retried_then_dropped(opik: Opik) -> None:
    opik.status = 500
    opik.check = None
    events: list[tuple[str, int]] = []
    sink = send([with_detail(detail(), call_id=f"c{i}") for i in range(3)], env_for(opik), events=events,
                max_attempts=2, backoff=0.01)
    assert CALLBACK_FAILURES["opik_dropped"] == CALLBACK_FAILURES["opik_send_failed"] == "opik"
    assert events.count(("opik_send_failed", 1)) == 4  # traces and spans, each tried twice
    assert ("opik_dropped", 3) in events and sink.dropped == 6
    opik.status = 401
    events.clear()
    send([with_detail(detail())], env_for(opik), events=events)
    assert ("opik_dropped", 1) in events and events.count(("opik_send_failed", 1)) == 2  # refused: not retried


@pytest.mark.parametrize(("env", "name"), [
    ({}, "OPIK_API_KEY"),  # Comet's cloud, the default, refuses every batch without a key
    ({"OPIK_URL_OVERRIDE": "https://www.comet.com/opik/api"}, "OPIK_API_KEY"),
    ({"OPIK_URL_OVERRIDE": "ftp://opik.local"}, "OPIK_URL_OVERRIDE"),
    ({"OPIK_API_KEY": "k\r\nX-Injected: 1"}, "OPIK_API_KEY"),
    ({"OPIK_API_KEY": "k", "OPIK_WORKSPACE": "w\nX: 1"}, "OPIK_WORKSPACE"),
    ({"OPIK_URL_OVERRIDE": "http://localhost:5173/api", "DEFAULT_BATCH_SIZE": "x"}, "DEFAULT_BATCH_SIZE"),
])
def test_config_errors(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_opik(BOTH, {"HOME": str(Path.home()), **env}, None)


def test_a_self_hosted_opik_needs_no_key_and_a_bad_config_file_stops_the_start(tmp_path: Path) -> None:
    with Opik(api_key=None, workspace=None) as local:
        send([with_detail(detail())], {"HOME": str(tmp_path), "OPIK_URL_OVERRIDE": local.url + "/api",
                                       "DEFAULT_BATCH_SIZE": "5000"})
        assert len(local.spans(1)) == 1
        assert all("authorization" not in h and "comet-workspace" not in h for _, h, _ in local.posts)
    (tmp_path / ".opik.config").write_text("no section header\n")
    with pytest.raises(ConfigError, match="opik"):
        make_opik(BOTH, {"HOME": str(tmp_path)}, None)
    sink = make_opik(BOTH, {"HOME": str(tmp_path / "none"), "OPIK_URL_OVERRIDE": "http://o/api",
                            "DEFAULT_BATCH_SIZE": "5000"}, None)
    assert sink.batch_size == 1000 and sink.urls["spans"] == "http://o/api/v1/private/spans/batch"
    sink.discard()


GATEWAY = """
model_list:
  - model_name: m
    litellm_params: {model: mock/echo}
litellm_settings:
  callbacks: ["opik"]
general_settings:
  master_key: sk-opik-master
"""
AUTH = {"Authorization": "Bearer sk-opik-master"}


@pytest.mark.e2e
def test_opik_callback_through_the_gateway(opik: Opik) -> None:
    with start_gateway(GATEWAY, env={**env_for(opik, OPIK_PROJECT_NAME="gw-proj"),
                                     "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hello opik"}],
                             "metadata": {"opik": {"tags": ["gw"], "thread_id": "t-gw"}}})
        assert r.status_code == 200, r.text
        (span,) = opik.spans(1)
        (trace,) = opik.traces(1)
        assert span["trace_id"] == trace["id"] and trace["project_name"] == "gw-proj" and trace["thread_id"] == "t-gw"
        assert trace["input"] == [{"role": "user", "content": "hello opik"}]
        assert span["usage"]["total_tokens"] > 0 and span["tags"][0] == "gw"
        assert span["metadata"]["requester_metadata"]["opik"]["thread_id"] == "t-gw"
        assert API_KEY not in gw.log()


@pytest.mark.e2e
def test_a_keys_opik_project_through_the_gateway(opik: Opik, tmp_path: Path) -> None:
    config = GATEWAY + f"  database_url: sqlite:///{tmp_path / 'rg.db'}\n"
    with start_gateway(config, env={**env_for(opik), "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.1"}) as gw, \
            httpx.Client(base_url=gw.url, timeout=20) as c:
        r = c.post("/key/generate", headers=AUTH, json={"metadata": {"opik": {"project_name": "key-proj",
                                                                             "tags": ["key-tag"]}}})
        assert r.status_code == 200, r.text
        r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {r.json()['key']}"},
                   json={"model": "m", "messages": [{"role": "user", "content": "key span"}]})
        assert r.status_code == 200, r.text
        (span,) = opik.spans(1)
        assert span["project_name"] == "key-proj" and span["tags"][0] == "key-tag"
