"""LiteLLM's model cost map routes: ``POST /reload/model_cost_map`` and ``GET /model/cost_map/source``.

relaygate prices from the catalog it ships, with ``LITELLM_MODEL_COST_MAP_URL``'s local file (LiteLLM's
``model_prices_and_context_window.json`` format) over it (``relaygate.catalog``). A reload of the config reads
that file again when it changed; ``POST /reload/model_cost_map`` (the proxy admin) is that reload on every
worker — this one at once, the others within ``reload_poll_interval`` — answered in LiteLLM's words
(``{"message": "Price data reloaded successfully! <n> models updated.", "status": "success", "models_count",
"timestamp", "source_revision", "etag"}``). A file that does not load leaves the previous prices served (logged).
``GET /model/cost_map/source`` (the admin and its viewer) answers LiteLLM's fields: ``source`` (``local``),
``url`` (the variable, as set), ``is_env_forced``, ``fallback_reason`` (an ``http(s)`` URL, which relaygate does
not download), ``loaded_at``, ``source_revision`` (the catalog's source date), ``etag`` (null), ``model_count``,
and relaygate's ``override_file``. LiteLLM downloads the map from GitHub at start and on a schedule
(``/schedule/model_cost_map_reload``); relaygate never fetches at run time, so it has no schedule to set.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from relaygate.catalog import refresh_default, source_info
from relaygate.config.errors import ConfigError
from relaygate.core import errors
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

__all__ = ["add_routes"]

log = logging.getLogger("relaygate")


def add_routes(t: RouteTable, gw: Gateway) -> None:
    t.add("POST", "/reload/model_cost_map", lambda sc, rc, sd, p: reload(gw, sc, rc, sd, p))
    t.add("GET", "/model/cost_map/source", lambda sc, rc, sd, p: source(gw, sc, rc, sd, p))


async def reload(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    from relaygate.gateway.core import NothingToReload
    from relaygate.management.common import check_admin

    await check_admin(gw, scope, receive, params, "/reload/model_cost_map")
    try:
        await gw.reload("POST /reload/model_cost_map", announce=True)
    except NothingToReload:  # the embedded default config: no file to reload, this worker reads the map again
        if refresh_default():
            await gw.swap(gw.file_config, gw.runtime.generation, "model cost map")
    except ConfigError as exc:
        log.error("model cost map reload: the config file does not load, the previous prices keep serving: %s", exc)
        raise errors.BadRequest(f"Failed to reload model cost map: the config file does not load ({exc}); the "
                                "previous pricing data is kept") from None
    info = source_info()
    n = info["model_count"]
    await send_json(send, 200, orjson.dumps({
        "message": f"Price data reloaded successfully! {n} models updated.", "status": "success",
        "models_count": n, "timestamp": datetime.now(UTC).isoformat(), "source_revision": info["source_revision"],
        "etag": None}))


async def source(gw: Gateway, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    from relaygate.management.common import check_admin

    await check_admin(gw, scope, receive, params, "/model/cost_map/source", read=True)
    await send_json(send, 200, orjson.dumps(source_info()))
