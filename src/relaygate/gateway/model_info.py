"""LiteLLM's model information routes: ``/model/info`` (and ``/v1/``, ``/v2/``), ``/model_group/info``.

What they answer comes from the config only: each deployment's ``model_info`` as written (LiteLLM's keys:
``max_tokens``, ``max_input_tokens``, ``max_output_tokens``, ``mode``, ``supports_*`` ...), its prices
(``Deployment.costs``, from ``litellm_params`` over ``model_info``) and its limits. relaygate does not ship
LiteLLM's model catalog yet, so a field the config does not give is ``null`` (LiteLLM fills it from its
catalog). ``litellm_params`` are shown without credentials: only the fields below, never ``api_key`` or a
provider secret. A virtual key sees only the groups it may use, as on ``/v1/models``.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.config.model import Deployment
from relaygate.gateway.ops import principal
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

#: ``litellm_params`` fields safe to show (no credentials)
_SHOWN = ("model", "api_base", "api_version", "rpm", "tpm", "max_parallel_requests", "timeout", "stream_timeout",
          "max_retries", "num_retries", "order", "weight", "tags", "cooldown_time")
_GROUP_FIELDS = ("max_input_tokens", "max_output_tokens", "mode", "supports_parallel_function_calling",
                 "supports_vision", "supports_function_calling", "supports_reasoning", "supports_prompt_caching")


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for path in ("/model/info", "/v1/model/info", "/v2/model/info"):
        t.add("GET", path, lambda sc, rc, sd, p: model_info(gw, sc, rc, sd, p))
    t.add("GET", "/model_group/info", lambda sc, rc, sd, p: model_group_info(gw, sc, rc, sd, p))


def _query(scope: Scope) -> dict[str, str]:
    qs = scope.get("query_string") or b""
    return {k: v[0] for k, v in urllib.parse.parse_qs(qs.decode("latin-1")).items() if v}


async def _visible(gw: Gateway, scope: Scope) -> list[Deployment]:
    who = await principal(gw, scope)
    deps = gw.runtime.config.deployments
    return list(deps) if who.key is None else [d for d in deps if who.allows(d.model_name)]


def _entry(dep: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {k: getattr(dep, k) for k in _SHOWN if getattr(dep, k) not in (None, [], {})}
    info: dict[str, Any] = {"id": dep.id, "db_model": False, "key": dep.upstream_model,
                            "litellm_provider": dep.provider, "max_tokens": None, "max_input_tokens": None,
                            "max_output_tokens": None, "mode": None, "input_cost_per_token": None,
                            "output_cost_per_token": None}
    info.update({k: v for k, v in dep.model_info.items() if k != "id"})
    info.update(dep.costs)
    return {"model_name": dep.model_name, "litellm_params": params, "model_info": info}


async def model_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Every visible deployment (``?litellm_model_id=`` selects one)."""
    wanted = _query(scope).get("litellm_model_id")
    data = [_entry(d) for d in await _visible(gw, scope) if wanted is None or d.id == wanted]
    await send_json(send, 200, orjson.dumps({"data": data}))


async def model_group_info(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Every visible model group (``?model_group=`` selects one), its deployments summed up."""
    wanted = _query(scope).get("model_group")
    groups: dict[str, list[Deployment]] = {}
    for d in await _visible(gw, scope):
        if wanted is None or d.model_name == wanted:
            groups.setdefault(d.model_name, []).append(d)
    data = []
    for name, deps in groups.items():
        entry: dict[str, Any] = {"model_group": name, "providers": sorted({d.provider for d in deps})}
        for field in _GROUP_FIELDS:
            values = [d.model_info[field] for d in deps if d.model_info.get(field) is not None]
            entry[field] = values[0] if values else None
        for cost in ("input_cost_per_token", "output_cost_per_token"):
            values = [d.costs[cost] for d in deps if cost in d.costs]
            entry[cost] = max(values) if values else None
        rpm = [d.rpm for d in deps if d.rpm]
        tpm = [d.tpm for d in deps if d.tpm]
        entry["rpm"] = sum(rpm) if rpm and len(rpm) == len(deps) else None
        entry["tpm"] = sum(tpm) if tpm and len(tpm) == len(deps) else None
        data.append(entry)
    await send_json(send, 200, orjson.dumps({"data": data}))
