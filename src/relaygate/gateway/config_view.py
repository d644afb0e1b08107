"""``GET /config/view``: the effective config this worker runs, as JSON, every secret masked.

What it owns: :func:`mask`, a pure function from a config (any nesting of dicts, lists and scalars) to a
copy that is safe to show, and the route that answers it for the proxy admin and its viewer (LiteLLM's
admin-route refusal for anyone else).

The answer is the worker's runtime snapshot (``gw.runtime.config``: the YAML or TOML file as the loader
read it, ``os.environ/`` references already resolved, and the database models served with it), so a reload
shows at once. Masking rules, applied at every depth:

- a value under a **credential-named field** (``api_key``, ``master_key``, ``aws_secret_access_key``,
  ``vertex_credentials``, ``password``, ``token``, ``authorization``, ``cookie``, ``dsn``,
  ``connection_string`` ..., the loader's :func:`~relaygate.config.loader.credential_name` words and a few
  more), whatever its type, becomes ``"********"``; when its value is the value of an environment variable
  (the file said ``os.environ/NAME``), it is shown as that reference, ``"os.environ/NAME"``, never the value;
  an unresolved ``os.environ/NAME`` stays as written; a path to a credentials file stays (it is no secret);
- any string that looks like a key (``sk-...``) is masked wherever it is;
- a URL's userinfo (``user:password@``) becomes ``user:********@``, and its query parameters with
  credential names are masked (``database_url``, Redis URLs, ``api_base``); a webhook URL (Slack's, whose
  path is the secret) is masked whole, by its field's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from relaygate.config.masking import ENV_PREFIX, MASK, mask, mask_url, secret_name
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

__all__ = ["ENV_PREFIX", "MASK", "add_routes", "config_json", "mask", "mask_url", "secret_name", "view"]


def config_json(config: Any) -> Any:
    """A config object (msgspec Structs) as plain JSON values, before masking."""
    return msgspec.to_builtins(config, builtin_types=None, str_keys=True, enc_hook=_opaque)


def _opaque(value: Any) -> str:
    """A value msgspec cannot turn into JSON: its type's name only (its ``repr`` could hold a secret)."""
    return f"<{type(value).__name__}>"


def view(gw: Gateway) -> dict[str, Any]:
    """What ``/config/view`` answers: the masked effective config, its generation and source file."""
    rt = gw.runtime
    cfg = mask(config_json(rt.config))
    cfg.pop("document", None)  # the file as parsed: its settings are in the rest, translated
    return {"config": cfg, "generation": rt.generation, "source": getattr(rt.config, "source", None)}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    async def config_view(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        from relaygate.management.common import check_admin  # the management API's role rules

        await check_admin(gw, scope, receive, params, "/config/view", read=True)
        await send_json(send, 200, orjson.dumps(view(gw)))

    t.add("GET", "/config/view", config_view)

    def cost_setting(path: str, name: str) -> None:
        async def read(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
            from relaygate.management.common import check_admin

            await check_admin(gw, scope, receive, params, path, read=True)
            await send_json(send, 200, orjson.dumps({"values": getattr(gw.runtime.config.general, name)}))

        t.add("GET", path, read)

    # LiteLLM's cost tracking settings (its UI's "Cost Tracking" page reads them): the running config's. LiteLLM
    # lets any key read them; here they are the admin's and its viewer's (a discount is a commercial term).
    # With store_model_in_db their PATCH routes store a value over the file's (management.cost_settings); these
    # answer the running snapshot's, whichever it is.
    cost_setting("/config/cost_discount_config", "cost_discount_config")
    cost_setting("/config/cost_margin_config", "cost_margin_config")

    async def block_unpriced(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        """LiteLLM's ``{"enabled"}`` of ``block_requests_for_models_without_pricing`` (``cost.unpriced``)."""
        from relaygate.management.common import check_admin

        path = "/config/block_requests_for_models_without_pricing"
        await check_admin(gw, scope, receive, params, path, read=True)
        await send_json(send, 200, orjson.dumps(
            {"enabled": gw.runtime.config.general.block_requests_for_models_without_pricing}))

    t.add("GET", "/config/block_requests_for_models_without_pricing", block_unpriced)
