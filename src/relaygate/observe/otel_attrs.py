"""The attributes of the OpenTelemetry spans of one exchange: sans-IO, from a record and its Detail.

What it owns: what :mod:`relaygate.observe.otel` puts on the request span and on each attempt span (see
that module's essay for the span tree); nothing here touches OpenTelemetry's SDK except the ``Status``
value type. Three families of attribute, every value a valid OTLP attribute (str, bool, int, float or a
tuple of str), never ``None``:

- **GenAI semantic conventions** (``gen_ai.*``, ``error.type``, ``server.*``, ``http.response.status_code``):
  the operation (``chat`` for chat, Anthropic messages and Responses requests, ``text_completion``,
  ``embeddings``, else the route), ``gen_ai.system`` (the provider's name as LiteLLM reports it, and the
  pre-1.37 conventions) and ``gen_ai.provider.name`` (the conventions' well-known value when there is one:
  ``aws.bedrock``, ``gcp.vertex_ai``, ``azure.ai.openai`` ...), request parameters read from the request
  body (only numbers of the right type are kept, whatever a client sent), response id, model and finish
  reasons read from the answer, usage and time to first chunk from the record.
- **LiteLLM's** (``litellm/integrations/opentelemetry.py``): ``llm.request.type`` (its call type),
  ``llm.is_streaming`` (``"True"`` / ``"False"``, a string as LiteLLM writes it), ``llm.usage.total_tokens``,
  ``metadata.<key>`` for every set key of its StandardLoggingPayload ``metadata`` (objects as JSON; the
  ``user_api_key_*`` ones left out with ``redact_user_api_key_info``), ``hidden_params`` (JSON).
  ``gen_ai.response.finish_reasons`` is the conventions' string array (LiteLLM writes a JSON string).
- **relaygate's** (``relaygate.*``): call id, route, outcome, model group, deployment, cache hit, retries,
  fallbacks, cost (and whether it was estimated), attempts, tags; per attempt its number, kind and
  deployment.

Content (``gen_ai.input.messages``, ``gen_ai.system_instructions``, ``gen_ai.output.messages``) is added only
when the caller says message logging is allowed, as JSON in the conventions' shape
(``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``; non-text parts are kept as the client
sent them, as LiteLLM does).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import msgspec
from opentelemetry.trace import Status, StatusCode

from relaygate.observe.detail import Attempt, Detail
from relaygate.observe.standard import error_class, standard_metadata
from relaygate.sinks.record import OUTCOME_TEXT, CompletionRecord, Outcome
from relaygate.sinks.spend import CALL_TYPES

__all__ = ["PROVIDER_NAMES", "PROXY_SPAN", "REQUEST_SPAN", "attempt_attributes", "encode_json", "operation",
           "request_attributes", "request_span_name"]

REQUEST_SPAN = "litellm_request"
"""LiteLLM's name for its primary span (``LITELLM_REQUEST_SPAN_NAME``), made with ``USE_OTEL_LITELLM_REQUEST_SPAN``."""
PROXY_SPAN = "Received Proxy Server Request"
"""LiteLLM's proxy's request span (``LITELLM_PROXY_REQUEST_SPAN_NAME``): the trace's root, which carries the
request's attributes unless ``USE_OTEL_LITELLM_REQUEST_SPAN`` asks for a ``litellm_request`` child."""

PROVIDER_NAMES = {"openai": "openai", "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference",
                  "anthropic": "anthropic", "bedrock": "aws.bedrock", "vertex_ai": "gcp.vertex_ai",
                  "gemini": "gcp.gemini", "cohere": "cohere", "groq": "groq", "mistral": "mistral_ai",
                  "deepseek": "deepseek", "xai": "x_ai", "perplexity": "perplexity", "watsonx": "ibm.watsonx.ai"}
"""LiteLLM provider names -> ``gen_ai.provider.name`` well-known values (others are kept as they are)."""

_OPERATIONS = {"chat": "chat", "messages": "chat", "responses": "chat", "completions": "text_completion",
               "embeddings": "embeddings"}
_FLOAT_PARAMS = (("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p"),
                 ("frequency_penalty", "gen_ai.request.frequency_penalty"),
                 ("presence_penalty", "gen_ai.request.presence_penalty"), ("top_k", "gen_ai.request.top_k"))
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_encode = msgspec.json.Encoder().encode
_STATUS_OK = Status(StatusCode.OK)
_STATUS_UNSET = Status(StatusCode.UNSET)
"""The statuses without a description (``Status`` is immutable: one of each serves every span)."""


def encode_json(value: Any) -> str:
    """JSON text of a decoded body part (content attributes, objects in ``metadata.*``)."""
    return _encode(value).decode()


def operation(route: str) -> str:
    """``gen_ai.operation.name`` for a record's route."""
    return _OPERATIONS.get(route, route or "chat")


def request_span_name(r: CompletionRecord, detail: Detail | None) -> str:
    """The ``litellm_request`` span's name (``USE_OTEL_LITELLM_REQUEST_SPAN``): the request's
    ``metadata.generation_name``, else ``litellm_request``."""
    if detail is not None:
        name = detail.metadata.get("generation_name")
        if isinstance(name, str) and name.strip():
            return name.strip()
    return REQUEST_SPAN


def _number(value: Any) -> bool:
    """A finite int or float a span can carry as a double (an integer too large for one is not)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past a double's range, as a client may send one
        return False


_REQUEST_KEYS = frozenset({*(k for k, _ in _FLOAT_PARAMS), *_MAX_TOKENS, "seed", "n", "stop", "stop_sequences"})
"""Every body field :func:`_request_params` reads: a body with none of them is passed over in one C call."""
_isfinite = math.isfinite


def _request_params(body: Any, out: dict[str, Any]) -> None:
    if not isinstance(body, dict) or _REQUEST_KEYS.isdisjoint(body):
        return
    get = body.get
    for key, attr in _FLOAT_PARAMS:
        v: Any = get(key)
        if v is None:
            continue
        t = type(v)
        if t is float:  # what a JSON decoder gives; other types take the general test
            if _isfinite(v):
                out[attr] = v
        elif _number(v):
            out[attr] = float(v)
    for key in _MAX_TOKENS:
        v = get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            out["gen_ai.request.max_tokens"] = v
            break
    seed = get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        out["gen_ai.request.seed"] = seed
    n = get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        out["gen_ai.request.choice.count"] = n
    stop = get("stop", get("stop_sequences"))
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = tuple(stop)


def _finish_reasons(route: str, answer: Any) -> tuple[str, ...]:
    if not isinstance(answer, dict):
        return ()
    if route == "messages":
        reason = answer.get("stop_reason")
        return (reason,) if isinstance(reason, str) else ()
    if route == "responses":
        status = answer.get("status")
        return (status,) if isinstance(status, str) else ()
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return ()
    return tuple(c["finish_reason"] for c in choices if isinstance(c, dict) and isinstance(c.get("finish_reason"), str))


def _response(route: str, answer: Any, out: dict[str, Any]) -> None:
    """``gen_ai.response.*`` read from the answer's body."""
    if not isinstance(answer, dict):
        return
    rid = answer.get("id")
    if isinstance(rid, str) and rid:
        out["gen_ai.response.id"] = rid
    model = answer.get("model")
    if isinstance(model, str) and model:
        out["gen_ai.response.model"] = model
    reasons = _finish_reasons(route, answer)
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons


def _parts(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in content]
    return [] if content is None else [{"type": "text", "content": str(content)}]


def _message(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        return {"role": "user", "parts": _parts(msg)}
    out: dict[str, Any] = {"role": msg.get("role") or "user", "parts": _parts(msg.get("content"))}
    for key in ("id", "tool_calls", "tool_call_id", "name"):
        if key in msg:
            out[key] = msg[key]
    return out


def _content(route: str, body: Any, answer: Any, out: dict[str, Any]) -> None:
    """The opt-in content attributes (message logging allowed)."""
    if isinstance(body, dict):
        messages: Any = None
        if isinstance(body.get("messages"), list):
            messages = body["messages"]
        elif route == "responses" and isinstance(body.get("input"), list):
            messages = body["input"]
        else:
            text = body.get("input") if route in ("responses", "embeddings") else body.get("prompt")
            if text is not None:
                messages = [{"role": "user", "content": text}]
        if messages is not None:
            out["gen_ai.input.messages"] = encode_json([_message(m) for m in messages])
        system = body.get("system", body.get("instructions"))
        if system is not None:
            out["gen_ai.system_instructions"] = encode_json(_parts(system))
    if not isinstance(answer, dict):
        return
    outputs: list[Any] = []
    if isinstance(answer.get("choices"), list):
        for c in answer["choices"]:
            if not isinstance(c, dict):
                continue
            m = _message(c.get("message") or ({"role": "assistant", "content": c["text"]} if "text" in c else {}))
            if m["role"] == "user":
                m["role"] = "assistant"
            if isinstance(c.get("finish_reason"), str):
                m["finish_reason"] = c["finish_reason"]
            outputs.append(m)
    elif route == "messages" and isinstance(answer.get("content"), list):
        parts = [{"type": "text", "content": p["text"]} if isinstance(p, dict) and p.get("type") == "text"
                 and isinstance(p.get("text"), str) else p for p in answer["content"]]
        m = {"role": "assistant", "parts": parts}
        if isinstance(answer.get("stop_reason"), str):
            m["finish_reason"] = answer["stop_reason"]
        outputs.append(m)
    elif route == "responses" and isinstance(answer.get("output"), list):
        for item in answer["output"]:
            if isinstance(item, dict) and item.get("type") == "message" and isinstance(item.get("content"), list):
                parts = [{"type": "text", "content": p["text"]} if isinstance(p, dict) and
                         isinstance(p.get("text"), str) else p for p in item["content"]]
                outputs.append({"role": item.get("role") or "assistant", "parts": parts})
            else:
                outputs.append(item)
    if outputs:
        out["gen_ai.output.messages"] = encode_json(outputs)


def _flat(value: Any) -> Any:
    """An attribute value for LiteLLM's ``metadata.*``: scalars as they are, anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    return encode_json(value)


def request_attributes(r: CompletionRecord, detail: Detail | None, *, message_logging: bool,
                       redact_key_info: bool) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]], Status]:
    """The request span's attributes, its events (``exception`` on failure) and its status."""
    ok = r.outcome is Outcome.OK
    body = detail.input if detail is not None else None
    answer = detail.output if detail is not None and ok else None
    route = r.route
    a: dict[str, Any] = {"gen_ai.operation.name": _OPERATIONS.get(route, route or "chat")}
    if r.provider:
        a["gen_ai.system"] = r.provider
        a["gen_ai.provider.name"] = PROVIDER_NAMES.get(r.provider, r.provider)
    if r.model:
        a["gen_ai.request.model"] = r.model
    a["gen_ai.request.stream"] = r.stream
    _request_params(body, a)
    _response(r.route, answer, a)
    if ok:
        a.setdefault("gen_ai.response.id", r.call_id)
        if r.upstream_model:
            a.setdefault("gen_ai.response.model", r.upstream_model)
    if ok or r.prompt_tokens or r.completion_tokens:
        a["gen_ai.usage.input_tokens"] = r.prompt_tokens
        a["gen_ai.usage.output_tokens"] = r.completion_tokens
    if r.cache_read_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = r.cache_read_tokens
    if r.cache_write_tokens:
        a["gen_ai.usage.cache_creation.input_tokens"] = r.cache_write_tokens
    if r.ttft is not None:
        a["gen_ai.response.time_to_first_chunk"] = float(r.ttft)
    if detail is not None:
        session = detail.metadata.get("session_id")
        if isinstance(session, str) and session:
            a["gen_ai.conversation.id"] = session
    a["http.response.status_code"] = r.status

    # LiteLLM's
    a["llm.request.type"] = CALL_TYPES.get(r.route, r.route)
    a["llm.is_streaming"] = str(r.stream)
    a["llm.usage.total_tokens"] = a["gen_ai.usage.total_tokens"] = r.prompt_tokens + r.completion_tokens
    if r.request_route:
        a["http.route"] = r.request_route
    meta, hidden = standard_metadata(r, detail, redact_key_info=redact_key_info)
    names = _META_NAMES
    for key, value in meta.items():
        if value is None:
            continue  # most of the payload's ~30 keys
        t = type(value)
        if t is not str and not value and isinstance(value, dict | list):
            continue  # (comparing with ``{}`` and ``[]`` built two objects per key)
        name = names.get(key)
        if name is None:  # the payload's fixed keys: a bounded table
            name = names[key] = "metadata." + key
        a[name] = value if t is str or t is int or t is float or t is bool else _flat(value)
    a["hidden_params"] = _encode(hidden).decode()

    # relaygate's, and LiteLLM's names for the same values (litellm.call_id: the x-litellm-call-id, so a trace
    # search by it finds the request)
    a["relaygate.call_id"] = a["litellm.call_id"] = r.call_id
    a["relaygate.route"] = r.route
    a["relaygate.outcome"] = OUTCOME_TEXT[r.outcome]
    if r.model_group:
        a["relaygate.model_group"] = a["litellm.model_group"] = r.model_group
    if r.deployment_id:
        a["relaygate.deployment_id"] = r.deployment_id
    if r.upstream_model:
        a["relaygate.upstream_model"] = a["litellm.provider.model"] = r.upstream_model
    a["relaygate.cache_hit"] = a["litellm.cache_hit"] = r.cache_hit
    a["relaygate.retries"] = r.retries
    a["relaygate.fallbacks"] = r.fallbacks
    a["relaygate.cost"] = float(r.cost) if math.isfinite(r.cost) else 0.0
    if r.cost_estimated:
        a["relaygate.cost_estimated"] = True
    extra = r.extra
    if type(extra) is dict and "cost_breakdown" in extra:  # a provider discount or margin: LiteLLM's gen_ai.cost.*
        for k, v in extra["cost_breakdown"].items():
            a["gen_ai.cost." + k] = v
    a["relaygate.overhead_ms"] = round(r.overhead * 1000.0, 3)
    if detail is not None:
        a["relaygate.attempts"] = len(detail.attempts)
        if detail.tags:
            a["relaygate.tags"] = tuple(detail.tags)

    if message_logging and detail is not None:
        _content(r.route, body, answer, a)

    events: list[tuple[str, dict[str, Any]]] = []
    if ok:
        status = _STATUS_OK
    elif r.outcome is Outcome.CLIENT_GONE:
        status = _STATUS_UNSET
    else:
        cls = r.error_class or error_class(r.status, r.error_type)
        message = (detail.error_message if detail is not None else "") or r.error_message or r.error_type or \
            f"HTTP {r.status}"
        a["error.type"] = cls
        a["error.message"] = message
        if r.error_type:
            a["relaygate.error_type"] = r.error_type
        events.append(("exception", {"exception.type": cls, "exception.message": message}))
        status = Status(StatusCode.ERROR, message)
    return a, events, status


_META_NAMES: dict[str, str] = {}
"""``metadata.<key>`` per key of the standard payload's ``metadata`` (its keys are fixed)."""
_servers: dict[str, tuple[str, int, str] | None] = {}


def _server(api_base: str) -> tuple[str, int, str] | None:
    """``(host, port, api_base without credentials or query)`` of a deployment's ``api_base`` (kept per
    ``api_base``: a gateway has a few, and ``urlsplit`` is ~5 µs an attempt)."""
    if api_base in _servers:
        return _servers[api_base]
    if len(_servers) >= 1024:
        _servers.clear()
    got = _servers[api_base] = _split_server(api_base)
    return got


def _split_server(api_base: str) -> tuple[str, int, str] | None:
    if not api_base:
        return None
    try:
        u = urlsplit(api_base if "://" in api_base else "https://" + api_base)
        host = u.hostname
        port = u.port or (80 if u.scheme == "http" else 443)
    except ValueError:
        return None
    if not host:
        return None
    netloc = host if u.port is None else f"{host}:{u.port}"
    if ":" in host:
        netloc = f"[{host}]" if u.port is None else f"[{host}]:{u.port}"
    return host, port, f"{u.scheme}://{netloc}{u.path}".rstrip("/")


def attempt_attributes(r: CompletionRecord, detail: Detail, a: Attempt, n: int, prev: Attempt | None,
                       last: bool, op: str) -> tuple[dict[str, Any], bool]:
    """One attempt span's attributes, and whether the attempt failed."""
    failed = not (200 <= a.status < 300) or bool(a.error_type)
    out: dict[str, Any] = {"gen_ai.operation.name": op}
    if a.provider:
        out["gen_ai.system"] = a.provider
        out["gen_ai.provider.name"] = PROVIDER_NAMES.get(a.provider, a.provider)
    if a.upstream_model:
        out["gen_ai.request.model"] = a.upstream_model
    server = _server(a.api_base)
    if server is not None:
        out["server.address"], out["server.port"], out["gen_ai.api_base"] = server
    if a.status:
        out["http.response.status_code"] = a.status
    if failed:
        out["error.type"] = a.error_type or (str(a.status) if a.status else "_OTHER")
        if a.error_message:
            out["error.message"] = a.error_message
    elif last and r.outcome is Outcome.OK:
        _response(r.route, detail.output, out)
        out["gen_ai.usage.input_tokens"] = r.prompt_tokens
        out["gen_ai.usage.output_tokens"] = r.completion_tokens
    out["relaygate.attempt"] = n + 1
    if prev is None:
        kind = "first"
    else:
        kind = "retry" if prev.model_group == a.model_group else "fallback"
    out["relaygate.attempt.kind"] = kind
    if a.deployment_id:
        out["relaygate.deployment_id"] = a.deployment_id
    if a.model_group:
        out["relaygate.model_group"] = a.model_group
    return out, failed
