"""Per-provider parameter rules (issue 11, rule 2): which OpenAI chat params each provider and model family
takes, LiteLLM's UnsupportedParamsError without drop_params, dropping with it, and the reasoning mappings."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.core.errors import BadRequest
from relaygate.providers import params
from relaygate.providers.params import build, family, supported_openai_params


def rules(provider: str, model: str, drop: bool = False, extra: tuple[str, ...] = (),
          allowed: frozenset[str] = frozenset()) -> params.Rules:
    return build(provider, model, drop, extra, allowed)


def applied(r: params.Rules, req: dict[str, Any]) -> dict[str, Any]:
    out = dict(req)
    r.apply(out)
    return out


@pytest.mark.parametrize("provider,model,fam", [
    ("openai", "o1", "o"), ("openai", "o3-mini", "o"), ("openai", "o4-mini-2025-04-16", "o"),
    ("azure", "o3", "o"), ("openai", "gpt-5", "gpt5"), ("openai", "gpt-5-mini", "gpt5"),
    ("openai", "gpt-5.1", "gpt5none"), ("openai", "gpt-5.2-pro", "gpt5none"), ("openai", "gpt-5.1-codex", "gpt5"),
    ("openai", "gpt-5-chat-latest", "gpt"), ("openai", "gpt-4o", "gpt"), ("openai", "ft:gpt-4o:org::id", "gpt"),
    ("openai", "Qwen/Qwen3-8B", None), ("openai", "omni-moderation", None), ("groq", "llama-3.1-8b", None),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude"), ("anthropic", "claude-3-7-sonnet-latest", "claude"),
    ("anthropic", "claude-3-5-haiku-latest", "claude-old"),
    ("bedrock", "us.anthropic.claude-opus-4-1-20250805-v1:0", "claude"), ("bedrock", "amazon.nova-pro-v1:0", "plain"),
    ("vertex_ai", "claude-sonnet-4@20250514", "claude"), ("vertex_ai", "gemini-2.5-pro", "gemini"),
    ("gemini", "gemini-1.5-flash", "gemini-old"), ("cohere", "command-r-plus", "plain"),
    ("ollama_chat", "llama3", "plain"), ("mock", "m", None),
])
def test_families(provider: str, model: str, fam: str | None) -> None:
    assert family(provider, model) == fam


def test_o_series_maps_max_tokens_and_refuses_temperature_as_litellm() -> None:
    r = rules("openai", "o3")
    assert applied(r, {"max_tokens": 10, "temperature": 1}) == {"max_completion_tokens": 10, "temperature": 1}
    assert applied(r, {"max_tokens": 10, "max_completion_tokens": 20}) == {"max_completion_tokens": 20}
    with pytest.raises(BadRequest) as exc:
        r.apply({"temperature": 0.2})
    assert "O-series models don't support temperature=0.2" in exc.value.message
    assert exc.value.param == "temperature" and exc.value.status == 400
    with pytest.raises(BadRequest) as exc:
        r.apply({"top_p": 0.5, "presence_penalty": 1})
    assert exc.value.message.startswith("litellm.UnsupportedParamsError: openai does not support parameters: "
                                        "['top_p', 'presence_penalty'], for model=o3.")
    assert "allowed_openai_params=['top_p', 'presence_penalty']" in exc.value.message
    dropping = rules("openai", "o3", drop=True)
    assert applied(dropping, {"temperature": 0.2, "top_p": 0.5, "seed": 1}) == {"seed": 1}


def test_null_values_are_defaults_not_unsupported_params() -> None:
    assert applied(rules("openai", "o3"), {"top_p": None, "n": 1}) == {"n": 1}


def test_gpt5_rules() -> None:
    r = rules("openai", "gpt-5")
    assert applied(r, {"reasoning_effort": {"effort": "low"}, "max_tokens": 5}) == {
        "reasoning_effort": "low", "max_completion_tokens": 5}
    for bad in ({"stop": ["x"]}, {"logit_bias": {"1": 2}}, {"top_p": 0.3}, {"temperature": 0.5}):
        with pytest.raises(BadRequest):
            r.apply(dict(bad))
    newer = rules("openai", "gpt-5.1")
    assert applied(newer, {"temperature": 0.5, "top_p": 0.3}) == {"temperature": 0.5, "top_p": 0.3}
    assert applied(newer, {"temperature": 0.5, "reasoning_effort": "none"})["temperature"] == 0.5
    with pytest.raises(BadRequest) as exc:
        newer.apply({"top_p": 0.3, "reasoning_effort": "high"})
    assert "only support logprobs, top_p, top_logprobs when reasoning_effort='none'" in exc.value.message
    with pytest.raises(BadRequest):
        newer.apply({"temperature": 0.5, "reasoning_effort": "high"})


@pytest.mark.parametrize("budget,o_effort,gpt5_effort", [
    (1024, "low", "minimal"), (2000, "low", "low"), (5000, "medium", "medium"), (10000, "high", "high")])
def test_thinking_becomes_reasoning_effort_on_openai_reasoning_models(budget: int, o_effort: str,
                                                                      gpt5_effort: str) -> None:
    thinking = {"type": "enabled", "budget_tokens": budget}
    assert applied(rules("openai", "o3"), {"thinking": thinking}) == {"reasoning_effort": o_effort}
    assert applied(rules("openai", "gpt-5"), {"thinking": thinking}) == {"reasoning_effort": gpt5_effort}
    # an explicit reasoning_effort wins; a disabled thinking is no reasoning effort at all
    assert applied(rules("openai", "o3"), {"thinking": thinking, "reasoning_effort": "high"}) == {
        "reasoning_effort": "high"}
    assert applied(rules("openai", "o3"), {"thinking": {"type": "disabled"}}) == {}


def test_non_reasoning_openai_models_refuse_reasoning_params() -> None:
    r = rules("openai", "gpt-4o")
    assert applied(r, {"temperature": 0.2, "logit_bias": {"5": 1}, "top_k": 3}) == {
        "temperature": 0.2, "logit_bias": {"5": 1}, "top_k": 3}  # top_k is not OpenAI's: never judged
    for p in ("reasoning_effort", "thinking"):
        with pytest.raises(BadRequest) as exc:
            r.apply({p: "low"})
        assert exc.value.param == p
    assert applied(rules("openai", "gpt-4o", drop=True), {"reasoning_effort": "low", "n": 2}) == {"n": 2}


def test_unknown_openai_compatible_models_judge_their_own_params_but_thinking() -> None:
    r = rules("hosted_vllm", "Qwen/Qwen3-8B")
    assert applied(r, {"reasoning_effort": "low", "top_k": 3}) == {"reasoning_effort": "low", "top_k": 3}
    with pytest.raises(BadRequest):
        r.apply({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert supported_openai_params("hosted_vllm", "Qwen/Qwen3-8B") is None


def test_anthropic_table_and_reasoning_effort_mapping() -> None:
    old = rules("anthropic", "claude-3-5-haiku-latest")
    with pytest.raises(BadRequest) as exc:
        old.apply({"logit_bias": {"1": 1}, "n": 2})
    assert "anthropic does not support parameters: ['logit_bias', 'n'], for model=claude-3-5-haiku-latest" in \
        exc.value.message
    with pytest.raises(BadRequest):
        old.apply({"reasoning_effort": "low"})
    assert applied(old, {"response_format": {"type": "text"}, "temperature": 0.1}) == {"temperature": 0.1}
    new = rules("anthropic", "claude-sonnet-4-5")
    assert applied(new, {"reasoning_effort": "medium"}) == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 2048 + 4096}
    assert applied(new, {"reasoning_effort": "high", "max_tokens": 9000}) == {
        "thinking": {"type": "enabled", "budget_tokens": 4096}, "max_tokens": 9000}
    assert applied(new, {"reasoning_effort": "none"}) == {}
    with pytest.raises(BadRequest):
        new.apply({"reasoning_effort": "extreme"})


def test_request_settings_override_the_deployment() -> None:
    r = rules("anthropic", "claude-3-5-haiku", drop=False)
    assert applied(r.with_request({"drop_params": True}), {"seed": 1, "temperature": 0}) == {"temperature": 0}
    allowed = r.with_request({"allowed_openai_params": ["seed"]})
    assert applied(allowed, {"seed": 1}) == {"seed": 1}
    extra = r.with_request({"additional_drop_params": ["temperature", "top_k"]})
    assert applied(extra, {"temperature": 0, "top_k": 3, "top_p": 1}) == {"top_p": 1}
    with pytest.raises(BadRequest):
        r.with_request({"drop_params": "yes"})
    with pytest.raises(BadRequest):
        r.with_request({"additional_drop_params": "temperature"})


def test_apply_bytes_leaves_bodies_without_watched_keys_untouched() -> None:
    r = rules("openai", "gpt-4o")
    body = b'{"model": "gpt-4o",  "messages": [{"role": "user", "content": "thinking about it"}]}'
    assert r.apply_bytes(body) is body
    o3 = rules("openai", "o3")
    body = b'{"model":"o3","messages":[{"role":"user","content":"hi"}],"max_tokens":7,"temperature":1}'
    out = orjson.loads(o3.apply_bytes(body))
    assert out == {"model": "o3", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 7,
                   "temperature": 1}
    # a watched word inside the content alone: decoded, nothing to change, the same bytes go out
    body = b'{"model":"o3","messages":[{"role":"user","content":"\\"temperature\\""}]}'
    assert o3.apply_bytes(body) is body
    with pytest.raises(BadRequest):
        o3.apply_bytes(b'{"model":"o3","messages":[],"temperature":1e999}')


def test_supported_params_lists() -> None:
    assert "max_completion_tokens" in (supported_openai_params("openai", "o3") or [])
    assert "top_p" not in (supported_openai_params("openai", "o3") or [])
    assert "thinking" in (supported_openai_params("anthropic", "claude-opus-4-1") or [])
    assert "thinking" not in (supported_openai_params("anthropic", "claude-3-haiku") or [])
    assert "logprobs" in (supported_openai_params("gemini", "gemini-2.0-flash") or [])
