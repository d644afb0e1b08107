"""LiteLLM drop-in fidelity with the Node clients: openai-node (``openai`` on npm) and the Vercel AI SDK (``ai``
with ``@ai-sdk/openai`` and ``@ai-sdk/openai-compatible``) against a real ``relaygate serve`` and a recording
upstream.

``tests/compat/node/`` holds the npm project (``package.json`` + ``package-lock.json``; ``tests/run.sh`` runs
``npm ci`` there when ``npm`` exists) and one script per client, ``openai_node.mjs`` and ``ai_sdk.mjs``. Each
script runs all of its cases against the gateway once (the URL and key come by environment) and prints one JSON
object, case name -> what the client saw (answers, stream pieces, usage, ``x-litellm-*`` headers, or the error:
class, status). Every case's prompt is its own name, so the tests here also find exactly what reached the
provider for it (:meth:`Recorder.for_prompt`). Issue 11's rules covered: control fields stripped and honoured
(1: metadata, tags, fallbacks, num_retries, mock_response), the completions bridge (3), the requested model in
answers and streams with the upstream's in ``x-litellm-model-name`` (5), headers (8), mocks (13).

Without ``node`` on PATH these tests skip with that reason (the only legitimate skip here); with ``node`` but no
``node_modules`` they fail, saying to run ``npm ci`` (the test command does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.recorder import (
    TOOL_ARGS,
    UPSTREAM_MODEL,
    UPSTREAM_REQUEST_ID,
    Recorder,
    client_config,
    recording_upstream,
)
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parent / "node"
MASTER = "sk-compat-master"
KEY = "sk-compat-node-clients"

Results = dict[str, dict[str, Any]]


def _run(script: str, gw: GatewayProc) -> Results:
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.run([node, script], cwd=NODE_DIR, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RG_URL": gw.url, "RG_KEY": KEY})
    assert proc.returncode == 0, f"node {script} exited {proc.returncode}:\n{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def node_env() -> Iterator[tuple[Results, Results, Recorder]]:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the Node clients (openai-node, the AI SDK) cannot run on this machine")
    for pkg in ("openai", "ai", "@ai-sdk/openai", "@ai-sdk/openai-compatible"):
        assert (NODE_DIR / "node_modules" / pkg / "package.json").exists(), (
            f"{pkg} is not installed in {NODE_DIR}: run `npm ci --no-audit --no-fund` there (tests/run.sh does)")
    with recording_upstream(openai_like=True) as rec, start_gateway(client_config(rec.url, MASTER, KEY)) as gw:
        yield _run("openai_node.mjs", gw), _run("ai_sdk.mjs", gw), rec


@pytest.fixture(scope="module")
def oa(node_env: tuple[Results, Results, Recorder]) -> Results:
    return node_env[0]


@pytest.fixture(scope="module")
def ai(node_env: tuple[Results, Results, Recorder]) -> Results:
    return node_env[1]


@pytest.fixture(scope="module")
def rec(node_env: tuple[Results, Results, Recorder]) -> Recorder:
    return node_env[2]


def _ok(results: Results, case: str) -> dict[str, Any]:
    got = results[case]
    assert "unexpected" not in got and "error" not in got, (case, got)
    return got


def _one(rec: Recorder, prompt: str) -> dict[str, Any]:
    sent = rec.for_prompt(prompt)
    assert len(sent) == 1, (prompt, [s.path for s in sent])
    return sent[0].body


def _error(results: Results, case: str) -> dict[str, Any]:
    got = results[case]
    assert "unexpected" not in got, (case, got)
    assert got.get("error"), (case, got)
    return got["error"]


# -- openai-node ------------------------------------------------------------------------------------------------

def test_openai_node_control_fields_stripped_model_restamped(oa: Results, rec: Recorder) -> None:
    got = _ok(oa, "chat_controls")
    sent = rec.for_prompt("chat_controls")
    assert [s.path for s in sent] == ["/oa/v1/chat/completions"]
    assert sent[0].headers["authorization"] == "Bearer sk-up"  # never the client's api_key
    assert sent[0].body == {"model": UPSTREAM_MODEL, "messages": [{"role": "user", "content": "chat_controls"}],
                            "temperature": 0.2}
    assert got["model"] == "gpt-4o" and got["content"] == "hello" and got["usage"]["total_tokens"] == 6
    h = got["headers"]
    assert h["x-litellm-model-name"] == UPSTREAM_MODEL and h["x-litellm-model-group"] == "gpt-4o"
    assert h["x-litellm-model-id"] and h["x-litellm-call-id"] and h["x-litellm-version"]
    assert h["x-litellm-attempted-retries"] == "0" and h["x-litellm-attempted-fallbacks"] == "0"
    assert float(h["x-litellm-response-duration-ms"]) >= 0.0
    assert h["x-litellm-key-rpm-limit"] == "100000" and h["x-litellm-key-tpm-limit"] == "10000000"


def test_openai_node_stream_with_usage(oa: Results, rec: Recorder) -> None:
    got = _ok(oa, "stream_usage")
    assert got["models"] == ["gpt-4o"] and got["text"] == "hello"
    assert got["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    body = _one(rec, "stream_usage")
    assert set(body) == {"model", "messages", "stream", "stream_options"} and body["model"] == UPSTREAM_MODEL


def test_openai_node_tool_calls(oa: Results, rec: Recorder) -> None:
    for case in ("tools", "tools_stream"):  # the stream through the SDK's accumulating stream helper
        got = _ok(oa, case)
        assert got["model"] == "tools" and got["finish"] == "tool_calls", case
        [call] = got["calls"]
        assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == TOOL_ARGS
        assert _one(rec, case)["tools"][0]["function"]["name"] == "get_weather"
    assert oa["tools_stream"]["usage"]["total_tokens"] == 6


def test_openai_node_completions_bridge(oa: Results, rec: Recorder) -> None:
    got = _ok(oa, "completions")
    assert got == {"object": "text_completion", "model": "gpt-4o", "text": "hello", "streamed": "hello",
                   "stream_models": ["gpt-4o"]}
    assert rec.for_prompt("completions")[0].path == "/oa/v1/chat/completions"
    assert _one(rec, "completions_stream")["stream"] is True


def test_openai_node_mock_response_and_fallbacks_honoured(oa: Results, rec: Recorder) -> None:
    assert _ok(oa, "mock_response") == {"model": "gpt-4o", "content": "canned by node"}
    assert rec.for_prompt("mock_response") == []  # answered by the gateway
    got = _ok(oa, "fallbacks")
    assert got["content"] == "hello" and got["headers"]["x-litellm-attempted-fallbacks"] == "1"
    assert got["headers"]["x-litellm-model-group"] == "gpt-4o"
    sent = rec.for_prompt("fallbacks")  # num_retries: 0 in the body: no retry on the failing group
    assert [s.path for s in sent] == ["/status-500/v1/chat/completions", "/oa/v1/chat/completions"]
    assert all(set(s.body) == {"model", "messages"} for s in sent)


def test_openai_node_num_retries_lowers_the_deployments(oa: Results, rec: Recorder) -> None:
    err = _error(oa, "num_retries")
    assert err["class"] == "InternalServerError" and err["status"] == 500 and err["apiError"]
    sent = rec.for_prompt("num_retries")  # the deployment allows 2 retries; the body's num_retries: 1 wins
    assert len(sent) == 2 and all("num_retries" not in s.body for s in sent)


@pytest.mark.parametrize(("case", "cls", "status"), [
    ("error_auth", "AuthenticationError", 401),
    ("error_model", "BadRequestError", 400),
    ("error_rate_limit", "RateLimitError", 429),
    ("error_mock_rate_limit", "RateLimitError", 429),
    ("error_upstream_500_stream", "InternalServerError", 500),
])
def test_openai_node_errors_are_its_exception_classes(oa: Results, case: str, cls: str, status: int) -> None:
    err = _error(oa, case)
    assert err["apiError"] and err["class"] == cls and err["status"] == status, err


def test_openai_node_error_types_as_litellm(oa: Results, rec: Recorder) -> None:
    assert _error(oa, "error_auth")["type"] == "auth_error"
    assert _error(oa, "error_model")["type"] == "invalid_request_error"
    assert _error(oa, "error_rate_limit")["type"] == "throttling_error"
    assert rec.for_prompt("error_auth") == rec.for_prompt("error_model") == []
    assert rec.for_prompt("error_mock_rate_limit") == []
    assert len(rec.for_prompt("error_rate_limit")) == 1


# -- the Vercel AI SDK -----------------------------------------------------------------------------------------

def test_ai_sdk_provider_options_are_control_fields(ai: Results, rec: Recorder) -> None:
    got = _ok(ai, "compat_generate")
    sent = rec.for_prompt("compat_generate")
    assert [s.path for s in sent] == ["/oa/v1/chat/completions"]
    assert sent[0].headers["authorization"] == "Bearer sk-up"
    assert sent[0].body == {"model": UPSTREAM_MODEL, "temperature": 0.2,
                            "messages": [{"role": "user", "content": "compat_generate"}]}
    assert got["text"] == "hello" and got["modelId"] == "gpt-4o"
    assert got["usage"]["inputTokens"] == 5 and got["usage"]["outputTokens"] == 1
    assert got["headers"]["x-litellm-model-name"] == UPSTREAM_MODEL
    assert got["headers"]["x-litellm-model-group"] == "gpt-4o"


def test_ai_sdk_openai_provider_metadata_not_forwarded(ai: Results, rec: Recorder) -> None:
    # @ai-sdk/openai sends OpenAI's own `metadata`; LiteLLM treats it as its own and never forwards it
    got = _ok(ai, "openai_chat")
    assert got["text"] == "hello" and got["modelId"] == "gpt-4o"
    assert _one(rec, "openai_chat") == {"model": UPSTREAM_MODEL, "user": "u-ai",
                                        "messages": [{"role": "user", "content": "openai_chat"}]}


@pytest.mark.parametrize("case", ["compat_stream", "openai_stream"])
def test_ai_sdk_streams_with_usage(ai: Results, rec: Recorder, case: str) -> None:
    got = _ok(ai, case)
    assert got["text"] == "hello" and got["modelId"] == "gpt-4o" and got["finish"] == "stop"
    assert got["usage"]["inputTokens"] == 5 and got["usage"]["outputTokens"] == 1
    assert got["headers"]["x-litellm-model-name"] == UPSTREAM_MODEL
    body = _one(rec, case)
    assert body["stream_options"] == {"include_usage": True} and "tags" not in body


@pytest.mark.parametrize("case", ["compat_tools", "compat_tools_stream", "openai_tools_stream"])
def test_ai_sdk_tool_calls(ai: Results, rec: Recorder, case: str) -> None:
    got = _ok(ai, case)
    assert got["calls"] == [{"toolName": "get_weather", "input": TOOL_ARGS}]
    assert got["modelId"] == "tools" and got["finish"] == "tool-calls"
    assert _one(rec, case)["tools"][0]["function"]["name"] == "get_weather"


def test_ai_sdk_completion_models_bridged(ai: Results, rec: Recorder) -> None:
    got = _ok(ai, "compat_completion")
    assert got["text"] == "hello" and got["modelId"] == "gpt-4o"
    assert got["streamed"]["text"] == "hello" and got["streamed"]["modelId"] == "gpt-4o"
    assert got["streamed"]["usage"]["outputTokens"] == 1
    assert _ok(ai, "openai_completion") == {"text": "hello", "modelId": "gpt-4o"}
    for prompt in ("compat_completion", "compat_completion_stream", "openai_completion"):
        [sent] = rec.for_prompt(prompt)
        assert sent.path == "/oa/v1/chat/completions", prompt


def test_ai_sdk_mock_response(ai: Results, rec: Recorder) -> None:
    assert _ok(ai, "compat_mock") == {"text": "canned by the AI SDK", "modelId": "gpt-4o"}
    assert rec.for_prompt("compat_mock") == []


@pytest.mark.parametrize(("case", "status"), [
    ("error_auth", 401), ("error_model", 400), ("error_rate_limit", 429), ("error_stream_500", 500)])
def test_ai_sdk_errors_are_api_call_errors(ai: Results, case: str, status: int) -> None:
    err = _error(ai, case)
    assert err["apiCallError"] and err["status"] == status, err
    assert json.loads(err["body"])["error"]["code"] == str(status)


def test_upstream_headers_passed_as_llm_provider(oa: Results, ai: Results) -> None:
    assert _ok(oa, "chat_controls")["headers"]["llm_provider-x-request-id"] == UPSTREAM_REQUEST_ID
    assert _ok(ai, "compat_generate")["headers"]["llm_provider-x-request-id"] == UPSTREAM_REQUEST_ID
    assert _ok(ai, "openai_stream")["headers"]["llm_provider-x-request-id"] == UPSTREAM_REQUEST_ID
