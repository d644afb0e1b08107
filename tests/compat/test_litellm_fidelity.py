"""LiteLLM drop-in fidelity with real clients (the ``openai`` and ``anthropic`` SDKs, httpx) against a real
``relaygate serve`` and a recording upstream: what reaches the provider, and what the client sees.

Issue 11's rules covered here: control fields never forwarded (1), ``/v1/completions`` bridged for chat models
(3), comma-separated models (4), the requested model name in answers and ``x-litellm-model-name`` (5), headers
(8), tag routing (10), an unknown provider skipped at start (11), mock fields (13), and the parameter rules
(2): an o-series model through the openai SDK, Claude Code's request shape through the anthropic SDK to gpt-5.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.compat.recorder import UPSTREAM_MODEL, Recorder, recording_upstream
from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-compat-master"


def _config(up: str) -> str:
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/{UPSTREAM_MODEL}, api_key: sk-up, api_base: "{up}/oa/v1"}}
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/{UPSTREAM_MODEL}, api_key: sk-up, api_base: "{up}/mini/v1"}}
  - model_name: claude
    litellm_params: {{model: anthropic/{UPSTREAM_MODEL}, api_key: sk-ant, api_base: "{up}/ant"}}
  - model_name: tiered
    litellm_params: {{model: openai/{UPSTREAM_MODEL}, api_key: sk-up, api_base: "{up}/free/v1", tags: [free]}}
  - model_name: tiered
    litellm_params: {{model: openai/{UPSTREAM_MODEL}, api_key: sk-up, api_base: "{up}/paid/v1", tags: [paid]}}
  - model_name: tiered
    litellm_params: {{model: openai/{UPSTREAM_MODEL}, api_key: sk-up, api_base: "{up}/dflt/v1", tags: [default]}}
  - model_name: o3
    litellm_params: {{model: openai/o3, api_key: sk-up, api_base: "{up}/o3/v1"}}
  - model_name: claude-code-default
    litellm_params: {{model: openai/gpt-5, api_key: sk-up, api_base: "{up}/gpt5/v1"}}
  - model_name: not-served
    litellm_params: {{model: sagemaker/some-endpoint}}
router_settings:
  enable_tag_filtering: true
general_settings:
  master_key: {MASTER}
"""


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[GatewayProc, Recorder]]:
    with recording_upstream() as rec, start_gateway(_config(rec.url)) as gw:
        yield gw, rec


def _oa(gw: GatewayProc) -> openai.OpenAI:
    return openai.OpenAI(api_key=MASTER, base_url=gw.url + "/v1", max_retries=0)


def test_control_fields_never_reach_the_provider(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    raw = _oa(gw).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=0.3,
        extra_body={"metadata": {"team": "x", "n": 1}, "tags": ["a"], "num_retries": 1, "fallbacks": ["gpt-4o-mini"],
                    "api_base": "http://evil.invalid/v1", "api_key": "sk-client", "mock_testing_fallbacks": False,
                    "litellm_trace_id": "t-1", "caching": False})
    resp = raw.parse()
    sent = rec.last()
    assert sent.path == "/oa/v1/chat/completions" and sent.headers["authorization"] == "Bearer sk-up"
    assert set(sent.body) == {"model", "messages", "temperature"}, sent.body
    assert sent.body["model"] == UPSTREAM_MODEL
    assert resp.model == "gpt-4o" and raw.headers["x-litellm-model-name"] == UPSTREAM_MODEL
    assert raw.headers["x-litellm-model-group"] == "gpt-4o"


def test_streams_carry_the_requested_model(env: tuple[GatewayProc, Recorder]) -> None:
    gw, _rec = env
    chunks = list(_oa(gw).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    assert {c.model for c in chunks} == {"gpt-4o"}


def test_completions_on_a_chat_model_with_the_sdk(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    got = _oa(gw).completions.create(model="gpt-4o", prompt="say hello", max_tokens=5)
    assert got.choices[0].text == "hello" and got.object == "text_completion" and got.model == "gpt-4o"
    assert rec.last().path == "/oa/v1/chat/completions"
    assert rec.last().body["messages"] == [{"role": "user", "content": "say hello"}]
    streamed = list(_oa(gw).completions.create(model="gpt-4o", prompt="x", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "hello"


def test_anthropic_sdk_keeps_only_anthropics_metadata(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    client = anthropic.Anthropic(api_key=MASTER, base_url=gw.url, max_retries=0)
    msg = client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                                 metadata={"user_id": "u-7"}, extra_body={"tags": ["t"], "num_retries": 0})
    assert msg.content[0].text == "hello" and msg.model == "claude"  # type: ignore[union-attr]
    sent = rec.last()
    assert sent.path == "/ant/v1/messages"
    assert sent.body["metadata"] == {"user_id": "u-7"} and "tags" not in sent.body and "num_retries" not in sent.body


def test_comma_separated_models_and_mocks(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    h = {"Authorization": f"Bearer {MASTER}"}
    before = len(rec.seen)
    r = httpx.post(gw.url + "/v1/chat/completions", headers=h, timeout=10,
                   json={"model": "gpt-4o,gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and [x["model"] for x in r.json()] == ["gpt-4o", "gpt-4o-mini"]
    assert len(rec.seen) == before + 2
    mocked = _oa(gw).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                             extra_body={"mock_response": "canned"})
    assert mocked.choices[0].message.content == "canned" and len(rec.seen) == before + 2
    with pytest.raises(openai.RateLimitError):
        _oa(gw).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                        extra_body={"mock_testing_rate_limit_error": True})


def test_tag_routing_and_skipped_deployment(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    client = _oa(gw)
    for tags, where in ((["paid"], "/paid/"), (["free"], "/free/"), (None, "/dflt/")):
        extra = {"tags": tags} if tags else {}
        client.chat.completions.create(model="tiered", messages=[{"role": "user", "content": "hi"}],
                                       extra_body=extra)
        assert rec.last().path.startswith(where), (tags, rec.last().path)
    client.chat.completions.create(model="tiered", messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"x-litellm-tags": "free"})
    assert rec.last().path.startswith("/free/")
    with pytest.raises(openai.BadRequestError):  # skipped at start with one error line, as LiteLLM
        client.chat.completions.create(model="not-served", messages=[{"role": "user", "content": "hi"}])
    assert "sagemaker" in gw.log()


def test_parameter_rules_with_the_sdks(env: tuple[GatewayProc, Recorder]) -> None:
    gw, rec = env
    client = _oa(gw)
    client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}], max_tokens=64,
                                   extra_body={"thinking": {"type": "enabled", "budget_tokens": 6000}})
    sent = rec.last()
    assert sent.path == "/o3/v1/chat/completions"
    assert sent.body["max_completion_tokens"] == 64 and sent.body["reasoning_effort"] == "medium"
    assert "max_tokens" not in sent.body and "thinking" not in sent.body
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}], temperature=0.2)
    assert exc.value.status_code == 400 and "O-series models don't support temperature=0.2" in str(exc.value)
    client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "hi"}], temperature=0.2,
                                   top_p=0.5, extra_body={"drop_params": True})
    assert set(rec.last().body) == {"model", "messages"}

    ant = anthropic.Anthropic(api_key=MASTER, base_url=gw.url, max_retries=0)
    msg = ant.messages.create(model="claude-code-default", max_tokens=8000,
                              thinking={"type": "enabled", "budget_tokens": 2048},
                              messages=[{"role": "user", "content": "hi"}], extra_body={"temperature": 1})
    assert msg.type == "message" and msg.model == "claude-code-default"
    sent = rec.last()
    assert sent.path == "/gpt5/v1/chat/completions"
    assert sent.body["model"] == "gpt-5" and sent.body["max_completion_tokens"] == 8000
    assert sent.body["reasoning_effort"] == "low" and "thinking" not in sent.body and "max_tokens" not in sent.body
