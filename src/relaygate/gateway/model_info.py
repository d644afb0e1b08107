"""LiteLLM's model information routes: ``/model/info`` (and ``/v1/``, ``/v2/``), ``/model_group/info``.

Each deployment's ``model_info`` is LiteLLM's: the shipped catalog's facts for its model
(``relaygate.catalog``: ``max_input_tokens``, ``max_output_tokens``, ``mode``, costs, ``supports_*``;
found by ``model_info.base_model`` when given, else by provider and upstream model), then the keys its
``model_info`` gives (they win, as in LiteLLM's ``_get_proxy_model_info``), then its prices
(``Deployment.costs``), plus ``supported_openai_params`` from the parameter rules
(``relaygate.providers.params``; null for a model without a table: its server judges). A model the catalog
does not know shows ``null`` limits and zero costs. ``litellm_params``
are shown without credentials: only the fields below, never ``api_key`` or a provider secret. A virtual
key sees only the groups it may use (model access groups expanded), as on ``/v1/models``.

``/model_group/info`` sums each group up as LiteLLM's ``ModelGroupInfo``: the largest limits and prices of
its deployments, a flag true when any deployment has it (false, not null, when none does), ``mode`` from
the first deployment that knows it (``chat`` otherwise), ``is_public_model_group`` (listed in LiteLLM's
``litellm_settings.public_model_groups``).

LiteLLM's model hub: ``GET /public/model_hub`` answers anyone, without a key, the same summaries of the public
model groups only (every deployment of theirs, whoever asks), each with ``health_status`` (``healthy`` /
``unhealthy``), ``health_response_time`` (ms) and ``health_checked_at`` from the latest health check of any of
its deployments: the answering worker's own (``gateway.health_view``) or the newest in the health check
history (``gateway.health_history``, what every worker and instance wrote; read at most every 5 s per worker),
whichever is newer, as LiteLLM reads them from its health check table (null when none ran);
``GET /public/model_hub/info`` the hub's page header: ``docs_title``, ``custom_docs_description``,
``litellm_version`` (relaygate's) and ``useful_links``
(``public_model_groups_links``). The admin changes both lists with ``store_model_in_db``
(``management.cost_settings``).

LiteLLM's utilities: ``GET /utils/supported_openai_params?model=`` (``{"supported_openai_params": [...]}``
of a model group the caller may use — its first deployment's provider and model — or of a
``provider/model`` name; null when the gateway has no rules for it and the upstream judges; a 400 for a
name that is neither) and ``POST /utils/token_counter`` (``{"model", "messages" | "prompt" | "contents"}``
-> ``{"total_tokens", "request_model", "model_used", "tokenizer_type", "original_response"}``): the count is
the gateway's own fast estimate (``core.tokens``, the one its limits and budgets use, calibrated against
tiktoken's ``cl100k_base``), said as ``tokenizer_type: "relaygate_estimate"``; LiteLLM counts
with tiktoken or a Hugging Face tokenizer, an estimate too for every model whose tokenizer it does not
have. ``POST /utils/transform_request`` (``{"call_type", "request_body"}``: ``completion`` / ``acompletion``,
``text_completion``, ``embedding``) answers what the gateway would send for it to the first deployment of
the model group the body names, without sending it: ``{"raw_request_api_base", "raw_request_body",
"raw_request_headers"}``, every credential masked (auth headers, signatures, ``key`` query parameters).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from relaygate import __version__
from relaygate.catalog import default_catalog
from relaygate.config.model import Deployment
from relaygate.core import tokens
from relaygate.core.errors import BadRequest, GatewayError
from relaygate.core.views import controls, decode_view
from relaygate.gateway.health_history import log_of
from relaygate.gateway.health_view import book_of, healthy_groups
from relaygate.gateway.ops import principal, query
from relaygate.http.body import read_body
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.providers.base import Call
from relaygate.providers.params import supported_openai_params

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

#: ``litellm_params`` fields safe to show (no credentials)
_SHOWN = ("model", "api_base", "api_version", "rpm", "tpm", "max_parallel_requests", "timeout", "stream_timeout",
          "max_retries", "num_retries", "order", "weight", "tags", "cooldown_time")


_FLAG_FIELDS = ("supports_parallel_function_calling", "supports_vision", "supports_function_calling",
                "supports_reasoning", "supports_prompt_caching", "supports_response_schema", "supports_web_search")
_MAX_FIELDS = ("max_input_tokens", "max_output_tokens", "input_cost_per_token", "output_cost_per_token")


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path in ("/model/info", "/v1/model/info", "/v2/model/info"):
        t.add("GET", path, lambda sc, rc, sd, p: model_info(gw, sc, rc, sd, p))
    t.add("GET", "/model_group/info", lambda sc, rc, sd, p: model_group_info(gw, sc, rc, sd, p))
    t.add("GET", "/public/model_hub", lambda sc, rc, sd, p: public_model_hub(gw, sc, rc, sd, p))
    t.add("GET", "/public/model_hub/info", lambda sc, rc, sd, p: public_model_hub_info(gw, sc, rc, sd, p))
    t.add("GET", "/utils/supported_openai_params", lambda sc, rc, sd, p: supported_params(gw, sc, rc, sd, p))
    t.add("GET", "/utils/model_info", lambda sc, rc, sd, p: catalog_info(gw, sc, rc, sd, p))
    t.add("POST", "/utils/token_counter", lambda sc, rc, sd, p: token_counter(gw, sc, rc, sd, p))
    t.add("POST", "/utils/transform_request", lambda sc, rc, sd, p: transform_request(gw, sc, rc, sd, p))


async def _visible(gw: Gateway, scope: Scope, *, blocked: bool = False) -> list[Deployment]:
    """The deployments the caller may see; with ``blocked``, the stored models blocked by ``/model/block`` too
    (kept by the gateway, never routed to)."""
    who = await principal(gw, scope)
    deps = list(gw.runtime.config.deployments)
    if blocked:
        deps += [d for d in gw.db_models if d.model_info.get("blocked")]
    return deps if who.key is None else [d for d in deps if who.allows(d.model_name)]


def _base(dep: Deployment) -> dict[str, Any]:
    """The catalog's facts for the deployment's model (by ``model_info.base_model`` first), LiteLLM-shaped."""
    cat = default_catalog()
    base_model = dep.model_info.get("base_model")
    entry = None
    if isinstance(base_model, str) and base_model:
        entry = cat.lookup_name(base_model) if "/" in base_model else cat.lookup(dep.provider, base_model)
    if entry is None:
        entry = cat.lookup(dep.provider, dep.upstream_model)
    return entry.info() if entry is not None else {}


def _entry(dep: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {k: getattr(dep, k) for k in _SHOWN if getattr(dep, k) not in (None, [], {})}
    info: dict[str, Any] = {"id": dep.id, "db_model": False, "key": dep.upstream_model,
                            "litellm_provider": dep.provider, "max_tokens": None, "max_input_tokens": None,
                            "max_output_tokens": None, "mode": None, "input_cost_per_token": 0.0,
                            "output_cost_per_token": 0.0}
    info.update(_base(dep))
    info.update({k: v for k, v in dep.model_info.items() if k != "id"})
    info.update(dep.costs)
    info["supported_openai_params"] = supported_openai_params(
        dep.provider, str(dep.model_info.get("base_model") or dep.upstream_model))
    return {"model_name": dep.model_name, "litellm_params": params, "model_info": info}


async def model_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Every visible deployment (``?litellm_model_id=`` selects one); with ``healthy_only=true`` or
    ``model_list_healthy_only``, none of a group whose every deployment failed its last health check."""
    q = query(scope)
    wanted = q.get("litellm_model_id")
    deps = [d for d in await _visible(gw, scope, blocked=True) if wanted is None or d.id == wanted]
    if q.get("healthy_only", "").strip().lower() in ("1", "true", "yes", "on") or \
            gw.runtime.config.general.model_list_healthy_only:
        shown = set(healthy_groups(gw, list(dict.fromkeys(d.model_name for d in deps))))
        deps = [d for d in deps if d.model_name in shown]
    data = [_entry(d) for d in deps]
    await send_json(send, 200, orjson.dumps({"data": data}))


async def model_group_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Every visible model group (``?model_group=`` selects one), its deployments summed up."""
    wanted = query(scope).get("model_group")
    deps = [d for d in await _visible(gw, scope) if wanted is None or d.model_name == wanted]
    await send_json(send, 200, orjson.dumps({"data": _summaries(deps, _public(gw))}))


def _public(gw: Gateway) -> list[str]:
    return gw.runtime.config.general.public_model_groups or []


async def public_model_hub(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """The public model groups' summaries and their latest health check, without authentication."""
    public = _public(gw)
    deps = [d for d in gw.runtime.config.deployments if d.model_name in public]
    data = _summaries(deps, public)
    last = book_of(gw).last
    stored = await log_of(gw).stored_latest(tuple(e["model_group"] for e in data))
    for entry in data:
        checks = [(c.at, c.ok, c.latency_ms) for d in deps if d.model_name == entry["model_group"]
                  and (c := last.get(d.id)) is not None]
        row = stored.get(entry["model_group"])
        if row is not None and row["checked_at"]:
            checks.append((datetime.fromisoformat(row["checked_at"]), row["status"] == "healthy",
                           row["response_time_ms"]))
        latest = max(checks, key=lambda c: c[0]) if checks else None  # this worker's or the stored, the newest
        entry["health_status"] = None if latest is None else "healthy" if latest[1] else "unhealthy"
        entry["health_response_time"] = None if latest is None or latest[2] is None else round(latest[2], 3)
        entry["health_checked_at"] = None if latest is None else latest[0].isoformat()
    await send_json(send, 200, orjson.dumps(data))


async def public_model_hub_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """The model hub page's header (LiteLLM's ``PublicModelHubInfo``), without authentication."""
    links = gw.runtime.config.general.public_model_groups_links
    await send_json(send, 200, orjson.dumps({"docs_title": "LiteLLM API", "custom_docs_description": None,
                                             "litellm_version": __version__, "useful_links": links or None}))


def _summaries(deployments: list[Deployment], public: list[str]) -> list[dict[str, Any]]:
    """LiteLLM's ``ModelGroupInfo`` of each model group of ``deployments``, in their order."""
    groups: dict[str, list[Deployment]] = {}
    for d in deployments:
        groups.setdefault(d.model_name, []).append(d)
    data = []
    for name, deps in groups.items():
        infos = [_entry(d)["model_info"] for d in deps]
        entry: dict[str, Any] = {"model_group": name, "providers": sorted({d.provider for d in deps})}
        for field in _MAX_FIELDS:
            values = [i[field] for i in infos if isinstance(i.get(field), (int, float))]
            entry[field] = max(values) if values else None
        modes = [i["mode"] for i in infos if i.get("mode")]
        entry["mode"] = modes[0] if modes else "chat"
        for field in _FLAG_FIELDS:
            entry[field] = any(i.get(field) is True for i in infos)
        rpm = [d.rpm for d in deps if d.rpm]
        tpm = [d.tpm for d in deps if d.tpm]
        entry["rpm"] = sum(rpm) if rpm and len(rpm) == len(deps) else None
        entry["tpm"] = sum(tpm) if tpm and len(tpm) == len(deps) else None
        supported = [i["supported_openai_params"] for i in infos if i.get("supported_openai_params") is not None]
        entry["supported_openai_params"] = supported[0] if supported else None
        entry["is_public_model_group"] = name in public
        data.append(entry)
    return data


async def _deployment_of(gw: Gateway, scope: Scope, model: str) -> Deployment | None:
    """The first deployment of model group ``model`` when the caller may use it, else None."""
    for d in await _visible(gw, scope):
        if d.model_name == model:
            return d
    return None


async def supported_params(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    model = query(scope).get("model") or ""
    if not model:
        raise BadRequest("model is required (a model group, or provider/model)", param="model")
    dep = await _deployment_of(gw, scope, model)
    if dep is not None:
        provider, name = dep.provider, str(dep.model_info.get("base_model") or dep.upstream_model)
    elif "/" in model:
        provider, _, name = model.partition("/")
    else:
        raise BadRequest(f"Could not map model={model[:200]!r}: name a model group you may use, or provider/model",
                         param="model")
    await send_json(send, 200, orjson.dumps({"supported_openai_params": supported_openai_params(provider, name)}))


async def catalog_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """LiteLLM's ``GET /utils/model_info?model=&custom_llm_provider=`` (any valid key): the catalog's entry for
    any model it prices, served here or not (``provider/model`` names pick the provider too), as
    ``{"model", "custom_llm_provider", "model_info"}``; a model it does not know is LiteLLM's 404."""
    await principal(gw, scope)
    q = query(scope)
    model = q.get("model") or ""
    provider = q.get("custom_llm_provider") or None
    if not model:
        raise BadRequest("model: Field required", param="model")
    catalog = default_catalog()
    entry = catalog.lookup(provider, model) if provider else catalog.lookup_name(model)
    if entry is None:
        raise GatewayError(f"model={model[:200]}, custom_llm_provider={(provider or 'None')[:100]} is not in the model "
                           "cost map", status=404, type="not_found_error", param="model")
    info = entry.info()
    info["supported_openai_params"] = supported_openai_params(entry.provider, entry.model)
    await send_json(send, 200, orjson.dumps({"model": model, "custom_llm_provider": entry.provider,
                                             "model_info": info}))


def _count(body: dict[str, Any]) -> int:
    messages, prompt, contents = body.get("messages"), body.get("prompt"), body.get("contents")
    if isinstance(messages, list):
        return tokens.estimate_messages_tokens(orjson.dumps(messages))
    if isinstance(prompt, str):
        return tokens.estimate_tokens(prompt)
    if isinstance(contents, list):  # Gemini's contents: the text of every part
        texts = [part["text"] for c in contents if isinstance(c, dict) for part in c.get("parts") or []
                 if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return tokens.estimate_tokens("\n".join(texts))
    raise BadRequest("messages, prompt or contents is required", param="messages")


async def _json_body(gw: Gateway, scope: Scope, receive: Receive) -> Any:
    """The caller checked (``principal``), then its body decoded as JSON (a 400 when it is not)."""
    await principal(gw, scope)
    raw = await read_body(receive, gw.runtime.body_limits)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("Invalid request body: not JSON") from None


async def token_counter(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    body = await _json_body(gw, scope, receive)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model is required", param="model")
    model = body["model"]
    dep = await _deployment_of(gw, scope, model)
    await send_json(send, 200, orjson.dumps({
        "total_tokens": _count(body), "request_model": model, "model_used": dep.upstream_model if dep else model,
        "tokenizer_type": "relaygate_estimate", "original_response": None}))


_ENDPOINTS = {"completion": "chat", "acompletion": "chat", "text_completion": "completions",
              "atext_completion": "completions", "embedding": "embeddings", "aembedding": "embeddings"}
_SECRET_HEADER = re.compile(r"(?i)authorization|api[-_]?key|token|secret|signature|credential|cookie")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:key|api[-_]?key|access_token|sig|signature|token)=)[^&#]*")


async def transform_request(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    outer = await _json_body(gw, scope, receive)
    if not isinstance(outer, dict) or not isinstance(outer.get("request_body"), dict):
        raise BadRequest("request_body: expected the request as an object", param="request_body")
    endpoint = _ENDPOINTS.get(str(outer.get("call_type") or "completion"))
    if endpoint is None:
        raise BadRequest(f"call_type: one of {sorted(_ENDPOINTS)}", param="call_type")
    body = outer["request_body"]
    model = body.get("model")
    dep = await _deployment_of(gw, scope, model) if isinstance(model, str) else None
    if dep is None:
        raise BadRequest("request_body.model: name a model group you may use", param="model")
    target = next((t for t in gw.router.resolve(dep.model_name).targets if t.dep.id == dep.id), None)
    if target is None:  # a pattern (wildcard) deployment: name a model it serves
        raise BadRequest("request_body.model: name a model group you may use", param="model")
    provider = target.provider
    if not provider.supports(endpoint):
        raise BadRequest(f"{provider.name} does not support /{endpoint}", param="call_type")
    fwd = orjson.dumps(body)
    view = decode_view(endpoint, fwd)
    found = controls(view)
    if found:  # LiteLLM's control fields: never sent on
        fwd = orjson.dumps({k: v for k, v in body.items() if k not in found})
        view = decode_view(endpoint, fwd)
    call = Call(endpoint, fwd, view, model, target.upstream_model, time.time(),
                provider.param_rules(target.upstream_model, found) if endpoint == "chat" else None)
    request = provider.build_requests(call, {})[0] if provider.hooks else provider.build_request(call)
    payload: Any = request.body if isinstance(request.body, bytes) else b""
    try:
        payload = orjson.loads(payload)
    except orjson.JSONDecodeError:
        payload = payload.decode("utf-8", "replace")
    headers = {k: ("***" if _SECRET_HEADER.search(k) else v) for k, v in request.headers}
    await send_json(send, 200, orjson.dumps({"raw_request_api_base": _SECRET_QUERY.sub(r"\1***", request.url),
                                             "raw_request_body": payload, "raw_request_headers": headers}))
