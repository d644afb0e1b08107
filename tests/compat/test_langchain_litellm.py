"""LiteLLM drop-in fidelity with two more Python clients against a real ``relaygate serve`` and a recording
upstream: langchain-openai (``ChatOpenAI(base_url=..., api_key=...)``: invoke, stream, ``bind_tools``,
``extra_body`` metadata and tags) and the litellm SDK used as a LiteLLM proxy's client
(``litellm.completion(model="litellm_proxy/<name>", api_base=...)`` and ``openai/<name>`` with ``api_base``).

The litellm SDK runs in a child process (:func:`litellm_cases`, one run for every case, the results as JSON):
importing it takes seconds and leaves global state behind (a logging worker on an event loop, cached HTTP
clients whose sockets close at interpreter exit as ResourceWarnings, which this suite's warnings-as-errors would
pin on whatever test runs then). The child gets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no model-cost download at
import) and telemetry off. The litellm SDK keeps its own ``metadata=`` / ``tags=`` / ``num_retries=`` /
``mock_response=`` arguments for itself (``mock_response=`` never leaves the process), so a proxy's client sends
LiteLLM's control fields in ``extra_body``, as LiteLLM's proxy docs show; the cases do that.

Issue 11's rules covered: control fields stripped and honoured (1), the requested model in answers and streams
with the upstream's in ``x-litellm-model-name`` (5), headers (8), mocks (13), errors as the client's classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.compat.recorder import (
    TOOL_ARGS,
    UPSTREAM_MODEL,
    UPSTREAM_REQUEST_ID,
    Recorder,
    client_config,
    recording_upstream,
)
from tests.conftest import REPO, GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-compat-master"
KEY = "sk-compat-python-clients"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "the weather in a city",
                                            "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                                                           "required": ["location"]}}}
CONTROLS = {"metadata": {"team": "py", "n": 1}, "tags": ["py"], "num_retries": 1, "fallbacks": ["gpt-4o-mini"],
            "api_base": "http://evil.invalid/v1", "api_key": "sk-client", "litellm_trace_id": "t-py"}


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[GatewayProc, Recorder]]:
    with recording_upstream(openai_like=True) as rec, start_gateway(client_config(rec.url, MASTER, KEY)) as gw:
        yield gw, rec


def _one(rec: Recorder, prompt: str) -> dict[str, Any]:
    sent = rec.for_prompt(prompt)
    assert len(sent) == 1, (prompt, [s.path for s in sent])
    assert sent[0].headers["authorization"] == "Bearer sk-up"
    return sent[0].body


# -- langchain-openai -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat(env: tuple[GatewayProc, Recorder]) -> Any:
    """``ChatOpenAI`` bound to the gateway (imported here, not at collection: it takes seconds)."""
    from langchain_openai import ChatOpenAI

    gw, _rec = env

    def make(model: str = "gpt-4o", **kw: Any) -> Any:
        return ChatOpenAI(**{"base_url": gw.url + "/v1", "api_key": KEY, "model": model, "max_retries": 0, **kw})

    return make


def test_langchain_invoke_strips_extra_body_controls(chat: Any, env: tuple[GatewayProc, Recorder]) -> None:
    msg = chat(extra_body=CONTROLS, temperature=0.2).invoke("lc_invoke")
    assert msg.content == "hello" and msg.response_metadata["model_name"] == "gpt-4o"
    assert msg.usage_metadata["total_tokens"] == 6
    assert _one(env[1], "lc_invoke") == {"model": UPSTREAM_MODEL, "stream": False, "temperature": 0.2,
                                         "messages": [{"role": "user", "content": "lc_invoke"}]}


def test_langchain_stream_with_usage(chat: Any, env: tuple[GatewayProc, Recorder]) -> None:
    chunks = list(chat(stream_usage=True, extra_body={"metadata": {"team": "py"}, "tags": ["py"]}).stream("lc_stream"))
    assert "".join(str(c.content) for c in chunks) == "hello"
    assert {c.response_metadata.get("model_name") for c in chunks} - {None} == {"gpt-4o"}
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert total.usage_metadata["input_tokens"] == 5 and total.usage_metadata["output_tokens"] == 1
    body = _one(env[1], "lc_stream")
    assert set(body) == {"model", "stream", "messages", "stream_options"} and body["stream_options"]["include_usage"]


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_bind_tools(chat: Any, env: tuple[GatewayProc, Recorder], stream: bool) -> None:
    bound = chat("tools", extra_body={"tags": ["py"]}).bind_tools([WEATHER])
    prompt = f"lc_tools_{stream}"
    if stream:
        parts = list(bound.stream(prompt))
        msg = parts[0]
        for p in parts[1:]:
            msg += p
    else:
        msg = bound.invoke(prompt)
    assert [(c["name"], c["args"], c["id"]) for c in msg.tool_calls] == [("get_weather", TOOL_ARGS, "call_1")]
    assert msg.response_metadata["model_name"] == "tools" and msg.response_metadata["finish_reason"] == "tool_calls"
    body = _one(env[1], prompt)
    assert body["tools"][0]["function"]["name"] == "get_weather" and "tags" not in body


def test_langchain_mock_response_and_errors(chat: Any, env: tuple[GatewayProc, Recorder]) -> None:
    _gw, rec = env
    assert chat(extra_body={"mock_response": "canned by langchain"}).invoke("lc_mock").content == "canned by langchain"
    assert rec.for_prompt("lc_mock") == []
    # langchain-openai raises the openai SDK's exceptions
    with pytest.raises(openai.RateLimitError) as rate:
        chat("limited", extra_body={"num_retries": 0}).invoke("lc_429")
    assert rate.value.status_code == 429 and len(rec.for_prompt("lc_429")) == 1
    with pytest.raises(openai.InternalServerError) as failed:
        chat("flaky", extra_body={"num_retries": 0}).invoke("lc_500")
    assert failed.value.status_code == 500
    with pytest.raises(openai.AuthenticationError):
        chat(api_key="sk-wrong").invoke("lc_401")  # ChatOpenAI's own api_key here
    with pytest.raises(openai.BadRequestError):
        chat("no-such-model").invoke("lc_400")
    assert rec.for_prompt("lc_401") == rec.for_prompt("lc_400") == []


def test_langchain_fallbacks_in_extra_body(chat: Any, env: tuple[GatewayProc, Recorder]) -> None:
    msg = chat("flaky", extra_body={"fallbacks": ["gpt-4o"], "num_retries": 0}).invoke("lc_fallbacks")
    assert msg.content == "hello"
    sent = env[1].for_prompt("lc_fallbacks")
    assert [s.path for s in sent] == ["/status-500/v1/chat/completions", "/oa/v1/chat/completions"]
    assert all("fallbacks" not in s.body for s in sent)


# -- the litellm SDK as a proxy client (in a child process) -------------------------------------------------------

def litellm_cases(url: str, key: str) -> dict[str, Any]:
    """Run in the child: every litellm case for both ways of reaching a proxy; case -> what the SDK returned."""
    import litellm

    litellm.suppress_debug_info = True
    msgs = lambda p: [{"role": "user", "content": p}]  # noqa: E731

    def failure(e: Exception) -> dict[str, Any]:
        return {"error": {"mro": [f"{c.__module__}.{c.__name__}" for c in type(e).__mro__],
                          "status": getattr(e, "status_code", None), "message": str(e)[:300]}}

    def headers(r: Any) -> dict[str, str]:
        h = (getattr(r, "_hidden_params", None) or {}).get("additional_headers") or {}
        return {k: str(v) for k, v in h.items() if k.startswith("llm_provider-")}

    out: dict[str, Any] = {}
    for via, model, base in (("proxy", "litellm_proxy/{}", url), ("openai", "openai/{}", url + "/v1")):
        common = {"api_base": base, "api_key": key, "num_retries": 0, "max_retries": 0}
        try:
            r = litellm.completion(model=model.format("gpt-4o"), messages=msgs(f"{via}_chat"), temperature=0.2,
                                   extra_body=dict(CONTROLS), **common)
            out[f"{via}_chat"] = {"model": r.model, "content": r.choices[0].message.content,
                                  "usage": r.usage.total_tokens, "headers": headers(r)}
            chunks = list(litellm.completion(model=model.format("gpt-4o"), messages=msgs(f"{via}_stream"), stream=True,
                                             stream_options={"include_usage": True},
                                             extra_body={"metadata": {"team": "py"}, "tags": ["py"]}, **common))
            usage = [c.usage.total_tokens for c in chunks if getattr(c, "usage", None)]
            out[f"{via}_stream"] = {"models": sorted({c.model for c in chunks}), "usage": usage[-1] if usage else None,
                                    "text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)}
            r = litellm.completion(model=model.format("tools"), messages=msgs(f"{via}_tools"), tools=[WEATHER], **common)
            call = r.choices[0].message.tool_calls[0]
            out[f"{via}_tools"] = {"model": r.model, "name": call.function.name,
                                   "args": json.loads(call.function.arguments)}
            # litellm's own mock_response= is answered inside the SDK; in extra_body it is the proxy's
            r = litellm.completion(model=model.format("gpt-4o"), messages=msgs(f"{via}_mock"),
                                   extra_body={"mock_response": "canned by litellm"}, **common)
            out[f"{via}_mock"] = {"model": r.model, "content": r.choices[0].message.content}
        except Exception as e:  # a case that should answer did not: report it, run the error cases anyway
            out[f"{via}_unexpected"] = failure(e)
        for case, name, k in (("429", "limited", key), ("500", "flaky", key), ("401", "gpt-4o", "sk-wrong"),
                              ("400", "no-such-model", key)):
            try:
                litellm.completion(model=model.format(name), messages=msgs(f"{via}_{case}"),
                                   extra_body={"num_retries": 0}, **{**common, "api_key": k})
                out[f"{via}_{case}"] = {}
            except Exception as e:
                out[f"{via}_{case}"] = failure(e)
    return out


@pytest.fixture(scope="module")
def lite(env: tuple[GatewayProc, Recorder]) -> dict[str, Any]:
    gw, _rec = env
    code = ("import json, sys\nfrom tests.compat.test_langchain_litellm import litellm_cases\n"
            "print('RESULT ' + json.dumps(litellm_cases(sys.argv[1], sys.argv[2])))")
    child_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                 "LITELLM_LOG": "ERROR", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code, gw.url, KEY], cwd=REPO, env=child_env, capture_output=True,
                          text=True, timeout=90)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"litellm child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


VIAS = pytest.mark.parametrize("via", ["proxy", "openai"])


def _model(via: str, name: str) -> str:
    """The model a litellm answer names: the SDK itself prefixes the proxy's answer with ``litellm_proxy/``
    (for ``openai/`` it keeps the name the gateway answered with)."""
    return f"litellm_proxy/{name}" if via == "proxy" else name


def _ok(lite: dict[str, Any], via: str, case: str) -> dict[str, Any]:
    assert f"{via}_unexpected" not in lite, lite[f"{via}_unexpected"]
    return lite[f"{via}_{case}"]


@VIAS
def test_litellm_sdk_chat_controls_stripped_model_restamped(lite: dict[str, Any], env: tuple[GatewayProc, Recorder],
                                                            via: str) -> None:
    got = _ok(lite, via, "chat")
    assert got["model"] == _model(via, "gpt-4o") and got["content"] == "hello" and got["usage"] == 6
    # litellm hands the proxy's response headers back as llm_provider-*
    h = got["headers"]
    assert h["llm_provider-x-litellm-model-name"] == UPSTREAM_MODEL
    assert h["llm_provider-x-litellm-model-group"] == "gpt-4o"
    assert h["llm_provider-x-litellm-key-rpm-limit"] == "100000"
    assert h["llm_provider-x-request-id"] == UPSTREAM_REQUEST_ID  # the upstream's own, passed through
    assert _one(env[1], f"{via}_chat") == {"model": UPSTREAM_MODEL, "temperature": 0.2,
                                           "messages": [{"role": "user", "content": f"{via}_chat"}]}


@VIAS
def test_litellm_sdk_stream_with_usage(lite: dict[str, Any], env: tuple[GatewayProc, Recorder], via: str) -> None:
    got = _ok(lite, via, "stream")
    assert got["text"] == "hello" and got["usage"] == 6
    assert set(got["models"]) <= {"gpt-4o", _model(via, "gpt-4o")}, got  # never the upstream's name
    body = _one(env[1], f"{via}_stream")
    assert set(body) == {"model", "messages", "stream", "stream_options"}


@VIAS
def test_litellm_sdk_tools_and_mock(lite: dict[str, Any], env: tuple[GatewayProc, Recorder], via: str) -> None:
    assert _ok(lite, via, "tools") == {"model": _model(via, "tools"), "name": "get_weather", "args": TOOL_ARGS}
    assert _one(env[1], f"{via}_tools")["tools"] == [WEATHER]
    assert _ok(lite, via, "mock") == {"model": _model(via, "gpt-4o"), "content": "canned by litellm"}
    assert env[1].for_prompt(f"{via}_mock") == []


@VIAS
@pytest.mark.parametrize(("case", "cls", "status"), [
    ("429", "litellm.exceptions.RateLimitError", 429),
    ("500", "litellm.exceptions.InternalServerError", 500),
    ("401", "litellm.exceptions.AuthenticationError", 401),
    ("400", "litellm.exceptions.BadRequestError", 400),
])
def test_litellm_sdk_errors_are_its_exception_classes(lite: dict[str, Any], via: str, case: str, cls: str,
                                                      status: int) -> None:
    err = lite[f"{via}_{case}"].get("error")
    assert err, lite[f"{via}_{case}"]
    assert err["mro"][0] == cls and err["status"] == status, err
    assert f"openai.{cls.rsplit('.', 1)[1]}" in err["mro"], err  # litellm's classes subclass the openai SDK's
