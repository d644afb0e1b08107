"""OpenAI and the OpenAI-compatible family: the request is the client's, the response passes through.

The adapter only points the request at the right URL with the right auth, swaps the model name when the
group's name differs from the upstream's, and adds a deployment's default params. Responses and streams
pass through; streams are re-framed into clean ``data:`` frames by the SSE re-framer so a client never
sees an upstream's comments, odd line endings or a missing final ``[DONE]``.

Stream usage, as LiteLLM's proxy: a chat or completions stream whose client did not ask for usage
(``stream_options.include_usage``) asks the upstream for it, so its spend is exact rather than estimated from
its content, and the usage-only chunk this adds is kept from the client (:class:`PassthroughStream`'s
``strip_usage``; the pricing still reads it). ``general_settings.always_include_stream_usage: true`` lets the
client have it too, ``false`` never asks. Only for the providers whose APIs take ``stream_options``
(:data:`STREAM_OPTIONS`: OpenAI, Azure, and OpenAI-compatible servers configured as ``openai/``, vLLM, DeepSeek,
xAI, OpenRouter, Groq, Together, Fireworks, LM Studio); a body that already has ``stream_options`` is left as it is.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from relaygate.core import body as body_edit
from relaygate.core.sse import DataReframer
from relaygate.core.tokens import count_stream_content
from relaygate.providers.base import ENDPOINT_PATHS, MEDIA_KINDS, Call, Provider, StreamTranslator, empty_stream_error
from relaygate.upstream.base import UpstreamRequest

#: litellm_params that are request defaults (merged into the body when the client did not set them)
REQUEST_DEFAULTS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "presence_penalty",
    "frequency_penalty", "seed", "response_format", "n", "logprobs", "top_logprobs", "reasoning_effort",
    "logit_bias", "parallel_tool_calls", "service_tier",
})


_USAGE_ONLY = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


def _without_usage_chunk(out: bytes) -> bytes:
    """``out`` (whole ``data:`` frames) without the usage-only chunk (empty ``choices``, a ``usage`` object).

    Looked for from the end, frame by frame among those naming ``usage`` only (the chunk comes last; OpenAI's
    other chunks carry ``"usage":null`` once usage is asked for): a whole stream in one piece costs a few
    ``rfind`` calls, not a split of every frame."""
    i = out.rfind(b'"usage"')
    while i >= 0:
        start = out.rfind(b"\n\n", 0, i)
        start = 0 if start < 0 else start + 2
        end = out.find(b"\n\n", i)
        end = len(out) if end < 0 else end + 2
        if _USAGE_ONLY.search(out, start, end) is not None and _USAGE_OBJECT.search(out, start, end) is not None:
            return out[:start] + out[end:]  # (Azure's first chunk has empty choices too, and usage null)
        i = out.rfind(b'"usage"', 0, start)
    return out


class PassthroughStream(StreamTranslator):
    """OpenAI SSE in, clean OpenAI SSE out; counts content tokens for upstreams that send no usage.

    A stream that ends without ``[DONE]`` gets one; one that ends without a single data frame (an HTML
    page, an empty body) is an error, not an empty success. ``strip_usage``: the usage-only chunk the gateway
    asked for is not sent on (``last_data`` still holds it, for the pricing)."""

    __slots__ = ("_r", "content_tokens", "_count", "_strip")

    def __init__(self, count_tokens: bool = True, strip_usage: bool = False) -> None:
        self._r = DataReframer()
        self.content_tokens = 0
        self._count = count_tokens
        self._strip = strip_usage

    @property
    def done(self) -> bool:  # type: ignore[override]
        return bool(self._r.done)

    @property
    def last_data(self) -> bytes:  # type: ignore[override]
        return bytes(self._r.last_data)

    def feed(self, data: bytes) -> bytes:
        out: bytes = self._r.feed(data)
        if self._count and out:
            self.content_tokens += count_stream_content(out)
        if self._strip and b'"usage"' in out:
            out = _without_usage_chunk(out)
        return out

    def close(self) -> bytes:
        out: bytes = self._r.close()
        if self._strip and b'"usage"' in out:
            out = _without_usage_chunk(out)
        if not self._r.done and not self._r.frames:
            raise empty_stream_error("the upstream")
        if not self._r.done:
            out += b"data: [DONE]\n\n"
            self._r.done = True
        return out


STREAM_OPTIONS = frozenset({"openai", "custom_openai", "text-completion-openai", "azure", "azure_ai", "hosted_vllm",
                            "vllm", "deepseek", "xai", "openrouter", "groq", "together_ai", "fireworks_ai",
                            "lm_studio"})
"""Providers whose APIs take ``stream_options`` (the usage of a stream is asked for there): those whose LiteLLM
config lists it among their supported OpenAI parameters, which LiteLLM's proxy asks it of (Mistral and
Perplexity do not take it; they send usage unasked)."""
_USAGE_ENDPOINTS = frozenset({"chat", "completions"})

#: OpenAI's (and Azure OpenAI's) models that serve ``/completions``; every other model of theirs is chat-only
_COMPLETION_MODELS = re.compile(r"instruct|davinci|babbage|curie|^ada|^text-", re.IGNORECASE)


class OpenAIProvider(Provider):
    name: ClassVar[str] = "openai"
    auth_header: ClassVar[str] = "Authorization"
    media_forward: ClassVar[frozenset[str]] = MEDIA_KINDS
    native_responses: ClassVar[bool] = True

    def __init__(self, dep: Any) -> None:
        super().__init__(dep)
        extra = dep.extra
        self.defaults = {k: v for k, v in extra.items() if k in REQUEST_DEFAULTS}
        extra_body = extra.get("extra_body")
        if isinstance(extra_body, dict):
            self.defaults.update(extra_body)
        self.static_headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        if dep.api_key:
            self.static_headers.append(self._auth(dep.api_key))
        if dep.organization:
            self.static_headers.append(("OpenAI-Organization", dep.organization))
        extra_headers = extra.get("extra_headers") or extra.get("headers")
        if isinstance(extra_headers, dict):
            self.static_headers.extend((str(k), str(v)) for k, v in extra_headers.items())

    def _auth(self, key: str) -> tuple[str, str]:
        return ("Authorization", f"Bearer {key}")

    def completions_native(self, upstream_model: str) -> bool:
        """On OpenAI and Azure only the instruct / base models serve ``/completions`` (the gateway bridges the
        rest to chat, as LiteLLM); OpenAI-compatible servers (vLLM, Together ...) get it for every model."""
        if self.name in ("openai", "azure"):
            return _COMPLETION_MODELS.search(upstream_model) is not None
        return True

    def url(self, call: Call) -> str:
        return f"{self.api_base}{ENDPOINT_PATHS[call.endpoint]}"

    def request_body(self, call: Call) -> bytes:
        if self.defaults:
            body = body_edit.set_fields(call.body, {"model": call.upstream_model}, self.defaults)
        else:
            body = body_edit.replace_model(call.body, call.model, call.upstream_model)
        rules = call.rules
        if rules is not None:
            body = rules.apply_bytes(body)
        if call.stream and call.usage_policy is not False and not call.include_usage and self.name in STREAM_OPTIONS \
                and call.endpoint in _USAGE_ENDPOINTS and body[:1] == b"{" and b'"stream_options"' not in body:
            call.usage_injected = True  # LiteLLM's proxy asks for usage too: the spend is then exact
            body = b'{"stream_options":{"include_usage":true},' + body[1:] if body[1:2] != b"}" else \
                b'{"stream_options":{"include_usage":true}}'
        return body

    def build_request(self, call: Call) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url(call), self.static_headers, self.request_body(call))

    def media_headers(self) -> list[tuple[str, str]]:
        return [h for h in self.static_headers if h[0].lower() != "content-type"]

    def responses_url(self, path: str = "") -> str:
        return f"{self.api_base}/responses{path}"

    def health_request(self) -> UpstreamRequest | None:
        headers = [h for h in self.static_headers if h[0] != "Content-Type"]
        return UpstreamRequest("GET", f"{self.api_base}/models", headers, b"")

    def stream_translator(self, call: Call) -> StreamTranslator:
        return PassthroughStream(strip_usage=call.usage_injected and call.usage_policy is None)


def _compat(name: str, base: str | None, prefix: str) -> type[OpenAIProvider]:
    return type(
        f"{name.title().replace('_', '')}Provider",
        (OpenAIProvider,),
        {"name": name, "default_api_base": base, "error_prefix": prefix, "native_responses": False},
    )


#: OpenAI-compatible providers: LiteLLM prefix -> (default api_base, error prefix)
COMPATIBLE: dict[str, tuple[str | None, str]] = {
    "openai": ("https://api.openai.com/v1", "OpenAIException"),
    "custom_openai": (None, "OpenAIException"),
    "text-completion-openai": ("https://api.openai.com/v1", "OpenAIException"),
    "groq": ("https://api.groq.com/openai/v1", "GroqException"),
    "mistral": ("https://api.mistral.ai/v1", "MistralException"),
    "deepseek": ("https://api.deepseek.com/v1", "DeepseekException"),
    "together_ai": ("https://api.together.xyz/v1", "TogetherAIException"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "Fireworks_aiException"),
    "openrouter": ("https://openrouter.ai/api/v1", "OpenrouterException"),
    "perplexity": ("https://api.perplexity.ai", "PerplexityException"),
    "xai": ("https://api.x.ai/v1", "XaiException"),
    "hosted_vllm": (None, "Hosted_vllmException"),
    "vllm": (None, "Hosted_vllmException"),
    "lm_studio": ("http://localhost:1234/v1", "Lm_studioException"),
    # more OpenAI-compatible APIs, with LiteLLM's default bases (its get_llm_provider) and exception names
    "nvidia_nim": ("https://integrate.api.nvidia.com/v1", "Nvidia_nimException"),
    "cerebras": ("https://api.cerebras.ai/v1", "CerebrasException"),
    "sambanova": ("https://api.sambanova.ai/v1", "SambanovaException"),
    "meta_llama": ("https://api.llama.com/compat/v1", "Meta_llamaException"),
    "nebius": ("https://api.studio.nebius.ai/v1", "NebiusException"),
    "codestral": ("https://codestral.mistral.ai/v1", "CodestralException"),
    "github": ("https://models.inference.ai.azure.com", "GithubException"),
    "friendliai": ("https://api.friendli.ai/serverless/v1", "FriendliaiException"),
    "novita": ("https://api.novita.ai/v3/openai", "NovitaException"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", "DeepinfraException"),
    "litellm_proxy": (None, "Litellm_proxyException"),
    "hyperbolic": ("https://api.hyperbolic.xyz/v1", "HyperbolicException"),
    "lambda_ai": ("https://api.lambda.ai/v1", "Lambda_aiException"),
    "moonshot": ("https://api.moonshot.ai/v1", "MoonshotException"),
    "dashscope": ("https://dashscope.aliyuncs.com/compatible-mode/v1", "DashscopeException"),
    "featherless_ai": ("https://api.featherless.ai/v1", "Featherless_aiException"),
    "nscale": ("https://inference.api.nscale.com/v1", "NscaleException"),
    "wandb": ("https://api.inference.wandb.ai/v1", "WandbException"),
    "volcengine": ("https://ark.cn-beijing.volces.com/api/v3", "VolcengineException"),
    "zai": ("https://api.z.ai/api/paas/v4", "ZaiException"),
    "inception": ("https://api.inceptionlabs.ai/v1", "InceptionException"),
    "vercel_ai_gateway": ("https://ai-gateway.vercel.sh/v1", "Vercel_ai_gatewayException"),
}

PROVIDERS: dict[str, type[Provider]] = {
    name: (OpenAIProvider if name == "openai" else _compat(name, base, prefix))
    for name, (base, prefix) in COMPATIBLE.items()
}
