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

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from relaygate.config.loader import credential_name
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

MASK = "********"
ENV_PREFIX = "os.environ/"
_MORE_WORDS = frozenset({"authorization", "auth", "cookie", "dsn", "pwd", "apikey", "passphrase", "salt",
                         "bearer", "signature", "private", "webhook", "webhooks"})
_NOT_SECRET_LAST = frozenset({"alias", "name", "id", "ids", "ttl", "limit", "type", "mode", "prefix", "header",
                              "headers", "field", "fields", "format", "file", "path", "env", "len", "length",
                              "count", "tokens", "enabled", "rotation", "hash"})
"""A field whose last word is one of these names or counts a secret, it does not hold one (``key_alias``,
``api_key_header``, ``max_tokens``, ``token_ttl``); its value is still scanned for keys and URLs."""
_CONNECTION = ("database_url", "db_url", "redis_url")
_KEY_LIKE = re.compile(r"^(sk|pk|rk)-[A-Za-z0-9_\-]{8,}$|^(AKIA|ASIA)[A-Z0-9]{12,}$|^eyJ[A-Za-z0-9_\-]{20,}\.")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def secret_name(name: str) -> bool:
    """Whether a field named ``name`` holds a credential."""
    low = name.strip().lower().replace("-", "_").replace(".", "_")
    if low in _CONNECTION:
        return False  # URLs: their userinfo and query are masked, the host stays visible
    words = [w for w in low.split("_") if w]
    if not words:
        return False
    if words[-1] in _NOT_SECRET_LAST and len(words) > 1:
        return False
    if low.replace("_", "") in ("connectionstring", "connstr"):
        return True
    return credential_name(low) or not _MORE_WORDS.isdisjoint(words)


def mask(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """A copy of ``value`` (dicts, lists, scalars) with every secret masked (rules in the module docstring).
    ``env`` maps environment variable names to values (default ``os.environ``): a masked value equal to one
    of them is shown as ``os.environ/NAME``."""
    env = os.environ if env is None else env
    by_value: dict[str, str] = {}
    for name, val in env.items():
        if len(val) >= 4:
            by_value.setdefault(val, name)
    return _walk(value, False, by_value)


def _walk(value: Any, secret: bool, by_value: dict[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _walk(v, secret or secret_name(str(k)), by_value) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_walk(v, secret, by_value) for v in value]
    if secret:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _secret_string(value, by_value)
        return MASK
    if isinstance(value, str):
        return _plain_string(value, by_value)
    return value


def _secret_string(value: str, by_value: dict[str, str]) -> str:
    if value == "":
        return value
    if value.startswith(ENV_PREFIX):
        return value
    ref = by_value.get(value)
    if ref is not None:
        return f"{ENV_PREFIX}{ref}"
    if _is_file(value):
        return value
    return MASK


def _is_file(value: str) -> bool:
    """A path to a credentials file (its content is read later; the path is no secret)."""
    v = value.strip()
    return ("/" in v or v.endswith(".json")) and not v.lstrip().startswith("{") and "\n" not in v \
        and os.path.isfile(v)


def _plain_string(value: str, by_value: dict[str, str]) -> str:
    v = value.strip()
    if _KEY_LIKE.match(v):
        ref = by_value.get(value)
        return f"{ENV_PREFIX}{ref}" if ref is not None else MASK
    if _URL.match(v):
        return mask_url(value)
    return value


def mask_url(url: str) -> str:
    """``url`` with its password (``user:********@``) and the values of credential-named query parameters
    masked; the scheme, user, host, port and path stay."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _pw = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{MASK}@{hostport}" if _looks_secret_user(user) \
            else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{urllib.parse.quote(k, safe='')}="
                         f"{MASK if secret_name(k) else urllib.parse.quote(v, safe='')}" for k, v in pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _looks_secret_user(user: str) -> bool:
    """A userinfo without a password is often a token (``https://TOKEN@host``): masked unless it is short
    and plain (``postgres``, ``admin``)."""
    return len(user) > 16 or bool(_KEY_LIKE.match(user))


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
