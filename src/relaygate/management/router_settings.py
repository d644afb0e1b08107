"""LiteLLM's router settings page: ``GET /router/settings`` and ``GET /router/fields``.

``/router/fields`` describes each router setting relaygate serves, for a UI to render: ``{"fields": [...],
"routing_strategy_descriptions", "routing_group_strategies"}``, each field LiteLLM's ``RouterSettingsField``
(``field_name``, ``field_type`` — ``String``, ``Integer``, ``Float``, ``Boolean``, ``List``, ``Dictionary`` —
``field_value`` (always null here), ``field_description``, ``field_default``, ``options``, ``ui_field_name``,
``link``). ``/router/settings`` adds the values this worker serves now: each field's ``field_value``,
``current_values`` (name -> value) and ``source`` (name -> ``db`` for a fallback list stored through ``POST
/fallback``, ``config`` for a value the config file changed from the default, ``default``, or ``unset`` for a
setting without a value; ``db`` also for a setting ``/config/update`` stored where the file sets none).

Where relaygate differs from LiteLLM, deliberately: only the settings it serves are listed (LiteLLM's
``routing_strategy_args``, ``routing_groups``, ``default_litellm_params``, ``set_verbose`` and
``tag_filtering_match_any`` are ignored with a warning at start-up, so a page offering them would lie), with
relaygate's defaults and its own router settings (``default_fallbacks``, ``allowed_fails_policy``,
``latency_ewma_alpha``, ``latency_exploration``, ``on_redis_failure``, ``redis_timeout``); the strategy options
are the strategies it serves; ``routing_group_strategies`` is empty (no routing groups). LiteLLM copies the
file's whole ``router_settings`` into ``current_values``, Redis host and password included; relaygate answers
the listed settings only, so no connection setting or secret is shown. Both routes are the proxy admin's and
its viewer's (LiteLLM's admin-route check) and need no database.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.config.model import Config, RouterSettings
from relaygate.config.stored_general import ROUTER_FIELDS, ROUTER_SECTION, file_keys
from relaygate.config.stored_router import KEYS, SETTING
from relaygate.core.routing import STRATEGIES
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.management.common import Gateway, check_admin

__all__ = ["FIELDS", "add_routes", "current", "fields"]

_DEFAULTS = RouterSettings()
_REQUEST_TIMEOUT = 600.0
"""``server.request_timeout``'s default: the ``timeout`` served when the file sets none."""

FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("routing_strategy", "String", "Routing Strategy",
     "How a model group's deployment is picked for each request"),
    ("num_retries", "Integer", "Number of Retries",
     "Retries of a failed request on the model group before its fallbacks are tried"),
    ("timeout", "Float", "Timeout", "Seconds a request may take upstream"),
    ("stream_timeout", "Float", "Stream Timeout",
     "Seconds a streamed request may take upstream (the timeout when unset)"),
    ("max_fallbacks", "Integer", "Max Fallbacks", "Fallback model groups tried at most for one request"),
    ("fallbacks", "List", "Fallbacks",
     "Model groups tried, in order, when a group fails: [{group: [fallback, ...]}, ...]"),
    ("context_window_fallbacks", "List", "Context Window Fallbacks",
     "Model groups tried when a request is too long for a group's context window"),
    ("content_policy_fallbacks", "List", "Content Policy Fallbacks",
     "Model groups tried when a provider refuses a request on content policy"),
    ("default_fallbacks", "List", "Default Fallbacks",
     "Model groups tried for any group without fallbacks of its own"),
    ("allowed_fails", "Integer", "Allowed Fails",
     "Failures of a deployment within a minute before it is cooled down"),
    ("allowed_fails_policy", "Dictionary", "Allowed Fails Policy",
     "Allowed fails by error kind (e.g. RateLimitErrorAllowedFails), over allowed_fails"),
    ("cooldown_time", "Float", "Cooldown Time", "Seconds a failing deployment is left out of routing"),
    ("disable_cooldowns", "Boolean", "Disable Cooldowns", "Never cool down a failing deployment"),
    ("retry_after", "Float", "Retry After", "Seconds waited at least before a retry"),
    ("retry_policy", "Dictionary", "Retry Policy",
     "Retries by error kind (e.g. RateLimitErrorRetries), over num_retries"),
    ("model_group_alias", "Dictionary", "Model Group Alias",
     "Names served as another model group: {alias: group} or {alias: {model: group, hidden: true}}"),
    ("enable_pre_call_checks", "Boolean", "Enable Pre-call Checks",
     "Leave out deployments whose context window the request does not fit"),
    ("default_max_parallel_requests", "Integer", "Max Parallel Requests",
     "Requests in flight at once per deployment that sets no max_parallel_requests"),
    ("enable_tag_filtering", "Boolean", "Enable Tag Filtering",
     "Send a request with tags only to deployments carrying them"),
    ("latency_ewma_alpha", "Float", "Latency EWMA Alpha",
     "Weight of the newest latency in latency-based routing's moving average"),
    ("latency_exploration", "Float", "Latency Exploration",
     "Share of latency-based requests sent to a deployment other than the fastest, to keep measuring it"),
    ("on_redis_failure", "String", "On Redis Failure",
     "With Redis down, keep serving on in-process limits (local) or answer 503 (reject)"),
    ("redis_timeout", "Float", "Redis Timeout", "Seconds a limiter call to Redis may take before Redis counts as down"),
)
"""(name, type, UI name, description) of each router setting served, in the page's order."""

_OPTIONS = {"routing_strategy": list(STRATEGIES), "on_redis_failure": ["local", "reject"]}
_LINKS = {"enable_tag_filtering": "https://docs.litellm.ai/docs/proxy/tag_routing",
          "fallbacks": "https://docs.litellm.ai/docs/proxy/reliability"}
DESCRIPTIONS = {
    "simple-shuffle": "Picks a deployment at random, weighted by weight, else rpm, else tpm.",
    "least-busy": "Picks the deployment with the fewest requests in flight on this worker.",
    "latency-based-routing": "Picks the deployment with the lowest moving-average latency (time to first "
                             "token for streams), exploring the others now and then.",
    "usage-based-routing": "Picks the deployment with the most rpm / tpm left this minute.",
    "usage-based-routing-v2": "The same as usage-based-routing (LiteLLM's newer name).",
    "cost-based-routing": "Picks the deployment with the lowest price per token.",
}


def _default(name: str) -> Any:
    return _REQUEST_TIMEOUT if name == "timeout" else getattr(_DEFAULTS, name)


def fields(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """LiteLLM's ``RouterSettingsField`` of each setting (``field_value`` from ``values``, else null)."""
    values = values or {}
    return [{"field_name": name, "field_type": kind, "field_value": values.get(name),
             "field_description": text, "field_default": _default(name), "options": _OPTIONS.get(name),
             "ui_field_name": ui, "link": _LINKS.get(name)} for name, kind, ui, text in FIELDS]


def _aliases(s: RouterSettings) -> dict[str, Any]:
    hidden = set(s.hidden_aliases)
    return {a: {"model": g, "hidden": True} if a in hidden else g for a, g in s.model_group_alias.items()}


def current(config: Config, stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values served (``config``: the snapshot's, stored settings applied) and where each came from
    (``stored``: the settings stored through the API, by name)."""
    s = config.router
    saved = stored.get(SETTING)
    from_db = {k for k in KEYS.values() if isinstance(saved, dict) and k in saved}
    if isinstance(saved, dict):  # the settings /config/update stored where the file sets none
        owned = file_keys(config, ROUTER_SECTION)
        from_db |= {k for k in ROUTER_FIELDS if saved.get(k) is not None and k not in owned}
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, *_ in FIELDS:
        if name == "timeout":
            value: Any = s.timeout if s.timeout is not None else config.server.request_timeout
        elif name == "model_group_alias":
            value = _aliases(s)
        else:
            value = getattr(s, name)
        values[name] = value
        if name in from_db:
            source[name] = "db"
        elif value is None:
            source[name] = "unset"
        else:
            source[name] = "default" if value == _default(name) else "config"
    return values, source


_encoder = msgspec.json.Encoder()


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def settings(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/router/settings", read=True)
        values, source = current(gw.runtime.config, getattr(gw, "db_settings", {}))
        await send_json(send, 200, _encoder.encode({
            "fields": fields(values), "current_values": values, "routing_strategy_descriptions": DESCRIPTIONS,
            "routing_group_strategies": [], "source": source}))

    async def field_list(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/router/fields", read=True)
        await send_json(send, 200, _encoder.encode({
            "fields": fields(), "routing_strategy_descriptions": DESCRIPTIONS, "routing_group_strategies": []}))

    t.add("GET", "/router/settings", settings)
    t.add("GET", "/router/fields", field_list)
