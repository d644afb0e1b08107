"""Request views: the few fields of a client request the gateway needs, decoded with msgspec.

What it owns: one small Struct per endpoint holding only what auth, routing, limits and providers read
(``model``, ``stream``, ``stream_options``, routing overrides), with everything else left in the client's
bytes. Decoders are built once here. A body that does not decode raises :class:`BadRequest` whose message
names the field (msgspec's ``$.stream``-style path), so the client learns exactly what was wrong.

Invariant: decoding never copies the conversation: ``messages`` / ``prompt`` / ``input`` stay
``msgspec.Raw`` slices of the request body, handed to token estimation and provider translation as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.core.errors import BadRequest

if TYPE_CHECKING:
    _ModelName = str
else:
    class _ModelName(str):
        """``model`` as the decoder sees it: decoded through :func:`_hook`, which counts how often the
        field occurs, so a duplicated ``model`` key costs nothing to find (no scan of the body)."""

        __slots__ = ()

_seen = [0]  # ``model`` occurrences in the body being decoded (one event loop, decodes never interleave)


#: LiteLLM's request-body control fields (the proxy's documented request params and the keys of
#: ``litellm.types.utils.all_litellm_params`` an HTTP client can send): read by the gateway, never forwarded to
#: a provider (OpenAI answers ``400 Unrecognized request argument``). ``fallbacks``, ``num_retries`` and
#: ``timeout`` are typed view fields; these are caught by :class:`_Ctl`. Each declared field costs every
#: decode ~12 ns (msgspec initialises every slot), so LiteLLM's in-process keyword arguments (``logger_fn``,
#: ``acompletion``, ``litellm_logging_obj`` ...) that no HTTP client sends are not listed.
CONTROL_KEYS: tuple[str, ...] = (
    "metadata", "litellm_metadata", "tags", "litellm_trace_id", "litellm_session_id", "litellm_call_id",
    "caching", "cache", "no-log", "ttl", "guardrails",
    "mock_response", "mock_timeout", "mock_testing_fallbacks", "mock_testing_rate_limit_error", "fastest_response",
    "max_retries", "request_timeout", "stream_timeout", "context_window_fallback_dict", "max_fallbacks",
    "api_key", "api_base", "base_url", "api_version", "azure_ad_token", "custom_llm_provider", "region_name",
    "user_config", "model_list", "model_info", "proxy_server_request", "drop_params", "additional_drop_params",
    "allowed_openai_params",
    "input_cost_per_token", "output_cost_per_token", "prompt_id", "prompt_variables",
    "langfuse_public_key", "langfuse_secret", "langfuse_secret_key", "langfuse_host",
    "disable_fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "enable_json_schema_validation",
    "cache_control_injection_points",
)
TYPED_CONTROL = ("fallbacks", "num_retries", "timeout")
"""Control fields the view decodes with a type (their values are validated: a wrong type is a 400)."""


class _Ctl:
    """A control field's value as decoded (any JSON); :func:`_hook` counts each one, so a request without
    any costs one integer test after decoding (no scan of the body, no extra decode)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_ABSENT = _Ctl(None)
_controls = [0]  # control fields in the body being decoded


def _hook(tp: type, obj: Any) -> Any:
    if tp is _Ctl:
        _controls[0] += 1
        return _Ctl(obj)
    if tp is _ModelName:
        if not isinstance(obj, str):
            raise TypeError(f"Expected `str`, got `{'null' if obj is None else type(obj).__name__}`")
        _seen[0] += 1
        return _ModelName(obj)
    raise NotImplementedError(tp)


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


if TYPE_CHECKING:
    _Controls = msgspec.Struct
else:
    _Controls = msgspec.defstruct(
        "_Controls", [(k.replace("-", "_"), _Ctl, msgspec.field(default=_ABSENT, name=k)) for k in CONTROL_KEYS],
        kw_only=True)


class _Common(_Controls, kw_only=True):
    model: _ModelName = ""
    user: str | None = None
    service_tier: Any = None  # what the answer is priced at when it names no tier (cost.usage.requested_tier)
    # per-request router overrides, as LiteLLM accepts them in the body
    fallbacks: list[str] | None = None
    num_retries: int | None = None
    timeout: float | None = None


class _Caps(_Common, kw_only=True):
    # the answer's size the request asks for, read as sent (any type: the budget reservation's estimate,
    # budgets.holds.caps_of, judges them; the provider judges them too)
    max_completion_tokens: Any = None
    max_tokens: Any = None
    max_output_tokens: Any = None
    n: Any = None
    best_of: Any = None


class ChatView(_Caps, kw_only=True):
    messages: list[msgspec.Raw]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: msgspec.Raw = msgspec.Raw(b"null")  # msgspec cannot put Raw in a union: null when absent


class CompletionView(_Caps, kw_only=True):
    prompt: msgspec.Raw
    stream: bool | None = False
    stream_options: StreamOptions | None = None


class EmbeddingView(_Common, kw_only=True):
    input: msgspec.Raw
    encoding_format: str | None = None
    stream: bool | None = False  # never true; kept so every view has it


AnyView = ChatView | CompletionView | EmbeddingView

_DECODERS: dict[str, msgspec.json.Decoder[AnyView]] = {
    "chat": msgspec.json.Decoder(ChatView, dec_hook=_hook),
    "completions": msgspec.json.Decoder(CompletionView, dec_hook=_hook),
    "embeddings": msgspec.json.Decoder(EmbeddingView, dec_hook=_hook),
}


# A top-level key given twice is a parser differential: the gateway (msgspec) keeps the last value, an
# upstream parser may keep the first. For ``model`` (routing and the key's allow-list) that would let a key
# be authorised on one model and served by another, so such a body is a 400. On the OpenAI routes the
# decoder counts ``model`` occurrences as it decodes (``_hook``): no extra pass over the body, whatever its
# size. Routes that read bodies with orjson count the key's spelling in the bytes instead and scan the top
# level only when it occurs twice. A duplicated ``stream`` needs no rule of its own: an upstream that
# reads the other value answers in the other shape, which the response checks turn into a 502.
# The control keys (fallbacks, num_retries, timeout, CONTROL_KEYS) never reach an upstream, and
# messages/prompt/input are only estimated here, so their duplicates give no differential.
_ROUTING_KEYS = (b'"model"',)
_ROUTING_NAMES = frozenset({"model"})


def _top_level_duplicates(body: bytes, read: frozenset[str]) -> str | None:
    """The first key of ``read`` that occurs twice at the top level of ``body`` (slow path, rare)."""
    import json

    dup: list[str | None] = [None]

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: set[str] = set()
        dup[0] = None  # the outermost object is finished last: its verdict is the one left
        for k, _ in items:
            if k in seen and k in read and dup[0] is None:
                dup[0] = k
            seen.add(k)
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except RecursionError:  # fail closed: a body this check cannot read is not forwarded
        raise BadRequest("Invalid JSON in request body: nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"Invalid JSON in request body: {exc}") from None
    return dup[0]


def decode_view(endpoint: str, body: bytes) -> AnyView:
    """Decode ``body`` for ``endpoint``; malformed JSON or a wrong type is a 400 naming the field, as is
    nesting deeper than the decoder's limit and a duplicated ``model`` key. :func:`controls` then says
    which control fields the body had."""
    _seen[0] = 0
    _controls[0] = 0
    try:
        view = _DECODERS[endpoint].decode(body)
    except RecursionError:
        raise BadRequest("Invalid JSON in request body: nested too deeply") from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = None
        at = text.rfind(" - at `$.")
        if at != -1:
            param = text[at + 9:-1].split(".")[0].split("[")[0]
        raise BadRequest(f"Invalid request body: {text}", param=param) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Invalid JSON in request body: {exc}") from None
    if _seen[0] > 1:
        raise BadRequest("Invalid request body: key `model` is given more than once", param="model")
    view.model = str(view.model)  # the plain str the rest of the gateway (and msgspec's encoder) expects
    return view


def controls(view: AnyView) -> dict[str, Any] | None:
    """The control fields of the view :func:`decode_view` just returned, by JSON name (``None``: none, the
    common case, decided by one counter and three attribute tests)."""
    if not _controls[0] and view.fallbacks is None and view.num_retries is None and view.timeout is None:
        return None
    found: dict[str, Any] = {k: getattr(view, k) for k in TYPED_CONTROL if getattr(view, k) is not None}
    if _controls[0]:
        for k in CONTROL_KEYS:
            v = getattr(view, k.replace("-", "_"))
            if v is not _ABSENT:
                found[k] = v.value
    return found


def check_duplicate_keys(body: bytes) -> None:
    """400 when ``model`` is given twice at the top level of a JSON body read without :func:`decode_view`."""
    for needle in _ROUTING_KEYS:
        if body.count(needle) > 1:
            key = _top_level_duplicates(body, _ROUTING_NAMES)
            if key is not None:
                raise BadRequest(f"Invalid request body: key `{key}` is given more than once", param=key)
            return
