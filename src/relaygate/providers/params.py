"""Which OpenAI chat parameters each provider and model family takes, and what happens to the others.

LiteLLM's rule, kept here: a request may carry any of OpenAI's chat parameters (:data:`OPENAI_PARAMS`). Each
provider, and within OpenAI each model family, accepts some of them; one it does not accept is a 400 naming
the parameter, the provider and the model (LiteLLM's ``UnsupportedParamsError`` wording), unless
``drop_params`` is on (``litellm_settings.drop_params``, a deployment's ``litellm_params.drop_params``, or
``drop_params: true`` in the request), in which case it is removed before the provider sees it. Parameters
outside OpenAI's set (``top_k``, ``safety_settings`` ...) are provider options and are never judged here.
``additional_drop_params`` (deployment or request) always removes the listed top-level keys;
``allowed_openai_params`` (deployment or request) lets listed parameters through unjudged.

Families and their mappings (as LiteLLM's ``OpenAIOSeriesConfig`` / ``OpenAIGPT5Config`` /
``AnthropicConfig``, read from its source):

- OpenAI o-series (``o1``, ``o3``, ``o4-mini`` ...): ``max_tokens`` becomes ``max_completion_tokens``;
  ``temperature`` other than 1 is unsupported; no ``top_p``, penalties, ``logprobs``.
- gpt-5 (not ``gpt-5-chat``): as o-series, and no ``stop``, ``logit_bias``, ``modalities``, ``prediction``,
  ``audio``; gpt-5.1 and later take ``temperature`` / ``top_p`` / ``logprobs`` when ``reasoning_effort``
  is ``none`` or absent. ``reasoning_effort: {"effort": x}`` is sent as ``x``.
- Other OpenAI chat models (``gpt-4o``, ``gpt-4.1`` ...): every parameter but ``reasoning_effort``,
  ``thinking`` and ``verbosity``. A model name that is not recognisably OpenAI's behind ``openai/``
  (a vLLM or LM Studio server) gets no rules: that server judges its own parameters (LiteLLM would
  apply gpt-4's list and refuse ``reasoning_effort`` to a reasoning model on vLLM; we do not).
- ``thinking`` (Anthropic's ``{"type": "enabled", "budget_tokens": n}``) on an OpenAI reasoning model becomes
  ``reasoning_effort`` (n >= 10000 high, >= 5000 medium, >= 2000 low, else minimal on gpt-5 and low on
  o-series, which has no minimal), as LiteLLM's Messages adapter maps it.
- Claude models that reason (3.7, 4.x, on Anthropic, Bedrock and Vertex): ``reasoning_effort`` becomes
  ``thinking`` with LiteLLM's budgets (low 1024, medium 2048, high 4096 tokens) and ``max_tokens`` is raised
  above the budget when the client set none (Anthropic requires it); it is left off when the last assistant
  message calls tools without its ``thinking_blocks`` (Anthropic would refuse that turn; LiteLLM's
  ``modify_params`` drops thinking there too).
- Translating providers (Anthropic, Gemini, Vertex, Bedrock, Cohere, Ollama) accept what their adapter
  maps: the tables below are the adapters' own lists, so a parameter is never silently ignored.
  ``response_format: {"type": "text"}`` is a no-op everywhere. OpenAI-compatible servers other than OpenAI
  and Azure (Groq, Mistral, vLLM ...) get no rules: their own validation answers.

A model the gateway has no table for (an OpenAI-compatible server) judges its own parameters, except
Anthropic's ``thinking``, which only the mappings above give a meaning to.

Cost: a deployment's :class:`Rules` are built once per upstream model name (cached, bounded). A passthrough
request pays one scan of its bytes for the watched key names (a substring test for one name, as for the
OpenAI-compatible family; one compiled pattern for several: three for OpenAI's gpt models) and is decoded one
level deep only when one occurs; translating adapters check the dict they decode anyway.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from relaygate.core import body as body_edit
from relaygate.core.errors import BadRequest

#: OpenAI's chat parameters as LiteLLM judges them (``get_supported_openai_params`` lists)
OPENAI_PARAMS = frozenset({
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens",
    "modalities", "prediction", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
    "temperature", "top_p", "tools", "tool_choice", "function_call", "functions", "parallel_tool_calls",
    "audio", "response_format", "user", "reasoning_effort", "thinking", "web_search_options", "verbosity",
    "service_tier", "safety_identifier", "prompt_cache_key", "store",
})
#: taken by every provider (``user`` is dropped where the provider has no place for it)
_ALWAYS = frozenset({"stream", "stream_options", "user"})
_TRANSLATED = _ALWAYS | {"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
                         "tool_choice", "functions", "function_call", "parallel_tool_calls"}
_REASONING = frozenset({"thinking", "reasoning_effort"})
_SAMPLING = frozenset({"seed", "presence_penalty", "frequency_penalty"})

#: supported OpenAI params of the translating adapters (what each adapter maps)
_SUPPORTED: dict[str, frozenset[str]] = {
    "anthropic": _TRANSLATED | {"service_tier", "response_format", "web_search_options"},
    "bedrock": _TRANSLATED | {"response_format"},
    "gemini": _TRANSLATED | _SAMPLING | {"n", "logprobs", "top_logprobs", "response_format", "web_search_options",
                                         "modalities"},
    "cohere": _TRANSLATED | _SAMPLING | {"response_format"},
    "ollama": _TRANSLATED | _SAMPLING | {"response_format"},
}
_SUPPORTED["vertex_ai"] = _SUPPORTED["gemini"]
_SUPPORTED["ollama_chat"] = _SUPPORTED["ollama"]

_OPENAI_NAMED = frozenset({"openai", "azure", "text-completion-openai"})
_O_SERIES = re.compile(r"o[1-9](?:-|$)")
_GPT5_NONE = re.compile(r"gpt-5\.[1-9]")
_CLAUDE_THINKS = re.compile(r"claude-3-7|claude-(?:sonnet|opus|haiku)-[4-9]|claude-[4-9]")
_GEMINI_THINKS = re.compile(r"gemini-(?:2\.5|[3-9])|thinking")

_O_UNSUPPORTED = frozenset({"logprobs", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs",
                            "verbosity"})
_GPT5_UNSUPPORTED = frozenset({"presence_penalty", "frequency_penalty", "stop", "logit_bias", "modalities",
                               "prediction", "audio", "web_search_options"})
_GPT5_SAMPLING = ("logprobs", "top_logprobs", "top_p")
_GPT_UNSUPPORTED = frozenset({"reasoning_effort", "thinking", "verbosity"})
#: a model the gateway has no table for judges its own parameters, except Anthropic's ``thinking``, which
#: only the mappings here give a meaning to (OpenAI-compatible servers refuse or ignore it)
_FOREIGN = frozenset({"thinking"})

#: LiteLLM's ``reasoning_effort`` -> Anthropic ``thinking.budget_tokens``
THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
_DEFAULT_MAX_TOKENS = 4096

#: a request's own settings (control fields, stripped before any adapter sees the body)
REQUEST_KEYS = frozenset({"drop_params", "additional_drop_params", "allowed_openai_params",
                          "cache_control_injection_points"})

#: keys whose values the family rules read (decoded from raw bytes on the passthrough path)
_VALUES = ("temperature", "reasoning_effort", "thinking", "max_tokens", "max_completion_tokens")


class Rules:
    """What one provider/model pair accepts, plus the drop settings in force (immutable once built)."""

    __slots__ = ("provider", "model", "family", "unsupported", "drop", "extra_drop", "allowed", "needle",
                 "pattern", "cache_points")

    def __init__(self, provider: str, model: str, family: str | None, unsupported: frozenset[str],
                 drop: bool, extra_drop: tuple[str, ...], allowed: frozenset[str], cache_points: Any = None) -> None:
        #: the request's own ``cache_control_injection_points`` (``core.cache_points``; None: the deployment's)
        self.cache_points = cache_points
        self.provider = provider
        self.model = model
        self.family = family
        self.unsupported = unsupported - allowed
        self.drop = drop
        self.extra_drop = extra_drop
        self.allowed = allowed
        watched = set(self.unsupported) | set(extra_drop)
        if family in ("o", "gpt5", "gpt5none"):
            watched |= {"max_tokens", "temperature", "thinking", "reasoning_effort"}
        elif family == "claude":
            watched.add("reasoning_effort")
        names = sorted(watched)
        #: the one watched key (a substring test, the fastest scan), else one pattern for all of them (one
        #: pass over the body: N substring tests cost N passes, 30 us each on a 100 KB prompt)
        self.needle = b'"' + names[0].encode() + b'"' if len(names) == 1 else None
        self.pattern = (re.compile(b'"(?:' + b"|".join(re.escape(k.encode()) for k in names) + b')"')
                        if len(names) > 1 else None)

    def with_request(self, control: dict[str, Any]) -> Rules:
        """These rules with a request's ``drop_params`` / ``additional_drop_params`` /
        ``allowed_openai_params`` (wrong types are a 400 naming the field)."""
        drop = control.get("drop_params")
        if drop is not None and not isinstance(drop, bool):
            raise BadRequest("drop_params: expected a boolean", param="drop_params")
        extra = _names(control.get("additional_drop_params"), "additional_drop_params")
        allowed = _names(control.get("allowed_openai_params"), "allowed_openai_params")
        return Rules(self.provider, self.model, self.family, self.unsupported,
                     self.drop if drop is None else drop, self.extra_drop + extra, self.allowed | set(allowed),
                     control.get("cache_control_injection_points"))

    # -- applying -------------------------------------------------------------------------------------

    def apply(self, req: dict[str, Any]) -> None:
        """Check and rewrite ``req`` (a chat request's top level) in place; raises the 400 LiteLLM raises."""
        for k in self.extra_drop:
            req.pop(k, None)
        family = self.family
        if family in ("o", "gpt5", "gpt5none"):
            self._openai_reasoning(req)
        elif family == "claude":
            _claude_thinking(req)
        rf = req.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "text" and self.provider in _SUPPORTED:
            del req["response_format"]  # a no-op, and not every adapter maps it
        bad = [k for k in req if k in self.unsupported and _given(req[k])]
        if bad:
            if not self.drop:
                raise unsupported_error(self.provider, self.model, bad)
        for k in [k for k in req if k in self.unsupported]:
            del req[k]

    def apply_bytes(self, body: bytes) -> bytes:
        """:meth:`apply` on a passthrough body: ``body`` itself when no watched key occurs in it (no decode),
        else decoded one level deep, checked and re-encoded (untouched values copied as raw bytes)."""
        needle = self.needle
        if needle is not None:
            if needle not in body:
                return body
        elif self.pattern is None or self.pattern.search(body) is None:
            return body
        top = body_edit.top_level(body)
        for k in _VALUES:
            raw = top.get(k)
            if raw is not None:
                try:
                    top[k] = msgspec.json.decode(raw)
                except msgspec.DecodeError as exc:  # raw JSON msgspec will not make a value of (1e999)
                    raise BadRequest(f"Invalid request body: `{k}`: {exc}", param=k) from None
        before = dict(top)
        self.apply(top)
        return body if top == before else body_edit.encode(top)

    def _openai_reasoning(self, req: dict[str, Any]) -> None:
        family = self.family
        effort = req.get("reasoning_effort")
        if isinstance(effort, dict) and effort.keys() <= {"effort"}:
            effort = req["reasoning_effort"] = effort.get("effort")
        thinking = req.pop("thinking", None)
        if effort is None and isinstance(thinking, dict):
            effort = _effort_of(thinking, family != "o")
            if effort is not None:
                req["reasoning_effort"] = effort
        if "max_tokens" in req:
            mt = req.pop("max_tokens")
            if req.get("max_completion_tokens") is None and mt is not None:
                req["max_completion_tokens"] = mt
        loose = family == "gpt5none" and effort in (None, "none")
        if family == "gpt5none" and not loose:
            sampling = [k for k in _GPT5_SAMPLING if _given(req.get(k))]
            if sampling:
                if not self.drop:
                    raise BadRequest(
                        f"litellm.UnsupportedParamsError: gpt-5.1/5.2/5.4 only support logprobs, top_p, "
                        f"top_logprobs when reasoning_effort='none'. Current reasoning_effort='{effort}'. To drop "
                        f"unsupported params set `litellm.drop_params = True`", param=sampling[0])
                for k in sampling:
                    del req[k]
        temperature = req.get("temperature")
        if temperature is not None and temperature != 1 and not loose and "temperature" not in self.allowed:
            if not self.drop:
                what = "O-series models" if family == "o" else "gpt-5 models"
                raise BadRequest(
                    f"litellm.UnsupportedParamsError: {what} don't support temperature={temperature}. Only "
                    f"temperature=1 is supported. To drop unsupported openai params from the call, set "
                    f"`litellm.drop_params = True`", param="temperature")
            del req["temperature"]


_NULL = msgspec.Raw(b"null")


def _given(value: Any) -> bool:
    """A value that counts as set (LiteLLM: null is the default); ``value`` may be raw JSON."""
    return value is not None and value != _NULL


def _effort_of(thinking: dict[str, Any], minimal: bool) -> str | None:
    kind = thinking.get("type", "disabled")
    if kind == "adaptive":
        return "medium"
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens") or 0
    if not isinstance(budget, int):
        raise BadRequest("thinking.budget_tokens: expected an integer", param="thinking")
    if budget >= 10000:
        return "high"
    if budget >= 5000:
        return "medium"
    if budget >= 2000 or not minimal:
        return "low"
    return "minimal"


def _claude_thinking(req: dict[str, Any]) -> None:
    effort = req.pop("reasoning_effort", None)
    if effort is None or "thinking" in req:
        return
    if effort in ("none", "disable"):
        return
    budget = THINKING_BUDGET.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise BadRequest(f"reasoning_effort: expected one of {', '.join(THINKING_BUDGET)} or none, got "
                         f"{str(effort)[:40]!r}", param="reasoning_effort")
    if _unsigned_tool_turn(req.get("messages")):
        return  # Anthropic would refuse thinking here: the tool loop's assistant turn has no thinking to lead it
    req["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if req.get("max_tokens") is None and req.get("max_completion_tokens") is None:
        req["max_tokens"] = budget + _DEFAULT_MAX_TOKENS


def _unsigned_tool_turn(messages: Any) -> bool:
    """Whether the last assistant message calls tools but carries no ``thinking_blocks`` (LiteLLM's
    ``modify_params`` test: with thinking on, Anthropic wants that turn to start with its signed thinking)."""
    if not isinstance(messages, list):
        return False
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "assistant":
            return bool(m.get("tool_calls")) and not m.get("thinking_blocks")
    return False


def _names(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 64:
        raise BadRequest(f"{field}: expected a list of parameter names", param=field)
    return tuple(value)


def unsupported_error(provider: str, model: str, names: list[str]) -> BadRequest:
    """LiteLLM's ``UnsupportedParamsError`` (a 400), naming the parameters, the provider and the model."""
    shown = "[" + ", ".join(repr(n) for n in names) + "]"
    return BadRequest(
        f"litellm.UnsupportedParamsError: {provider} does not support parameters: {shown}, for model={model}. "
        f"To drop these, set `litellm_params['drop_params']=True` or for proxy: `litellm_settings: drop_params: "
        f"true`. If you want to use these params dynamically send allowed_openai_params={shown} in your request.",
        param=names[0])


# -- building ---------------------------------------------------------------------------------------------


def family(provider: str, model: str) -> str | None:
    """The model family whose rules apply (``o``, ``gpt5``, ``gpt5none``, ``gpt``, ``claude``, ``claude-old``,
    ``gemini``, ``gemini-old``, ``plain``), or None for a model the gateway has no rules for."""
    m = model.rsplit("/", 1)[-1].lower()
    if provider in _OPENAI_NAMED:
        if m.startswith("ft:"):
            m = m[3:]
        if _O_SERIES.match(m):
            return "o"
        if "gpt-5" in m and "gpt-5-chat" not in m:
            return "gpt5none" if _GPT5_NONE.match(m) and "codex" not in m else "gpt5"
        if m.startswith(("gpt-", "chatgpt-")):
            return "gpt"
        return None
    if provider == "anthropic" or (provider in ("bedrock", "vertex_ai") and "claude" in m):
        return "claude" if _CLAUDE_THINKS.search(m) else "claude-old"
    if provider in ("gemini", "vertex_ai"):
        return "gemini" if _GEMINI_THINKS.search(m) else "gemini-old"
    if provider in _SUPPORTED:
        return "plain"
    return None


def supported_openai_params(provider: str, model: str) -> list[str] | None:
    """The OpenAI chat params a provider/model accepts (LiteLLM's ``supported_openai_params`` of
    ``/model/info``), or None when the gateway has no rules for it (the upstream judges)."""
    fam = family(provider, model)
    unsupported = _unsupported(provider, fam)
    if unsupported is None:
        return None
    return sorted(OPENAI_PARAMS - unsupported)


def _unsupported(provider: str, fam: str | None) -> frozenset[str] | None:
    if fam is None:
        return None
    if fam == "o":
        return _O_UNSUPPORTED
    if fam == "gpt5":
        return _GPT5_UNSUPPORTED | set(_GPT5_SAMPLING)
    if fam == "gpt5none":
        return _GPT5_UNSUPPORTED
    if fam == "gpt":
        return _GPT_UNSUPPORTED
    table = _SUPPORTED["anthropic" if fam.startswith("claude") and provider != "bedrock" else provider]
    if fam in ("claude", "gemini"):
        table = table | _REASONING
    return OPENAI_PARAMS - table


def build(provider: str, model: str, drop: bool, extra_drop: tuple[str, ...], allowed: frozenset[str]) -> Rules:
    """The rules of one provider/model pair under a deployment's settings."""
    fam = family(provider, model)
    unsupported = _unsupported(provider, fam)
    return Rules(provider, model, fam, _FOREIGN if unsupported is None else unsupported, drop, extra_drop, allowed)


def deployment_settings(extra: dict[str, Any], global_drop: bool) -> tuple[bool, tuple[str, ...], frozenset[str]]:
    """``drop_params`` / ``additional_drop_params`` / ``allowed_openai_params`` of a deployment's
    ``litellm_params`` (the config loader checked their types), the deployment's over the global one."""
    drop = extra.get("drop_params")
    return (global_drop if drop is None else bool(drop), tuple(extra.get("additional_drop_params") or ()),
            frozenset(extra.get("allowed_openai_params") or ()))
