"""LiteLLM's credential management routes: reusable provider credentials kept in the database.

A credential is a named set of ``litellm_params`` values (``api_key``, ``api_base``, ``api_version``, AWS or
Vertex fields ...) that a stored model names with ``litellm_params.litellm_credential_name`` (its own values win,
as LiteLLM merges them; ``management.models``). The config file's ``credential_list`` is the config's own and
serves its deployments; these serve the models the API stores.

- ``POST /credentials`` ``{"credential_name", "credential_values" | "model_id", "credential_info",
  "display_name"}`` (the proxy admin, with ``store_model_in_db``): stored, every string value sealed
  (``store.credentials``); ``model_id`` takes the values from that deployment's credentials (``api_key``,
  ``api_base``, ``api_version`` and the other credential fields of its ``litellm_params``). A name taken is
  LiteLLM's 409. Answer ``{"success": true, "message": "Credential created successfully"}``.
- ``GET /credentials/by_model/{model_id}`` (the proxy admin and its viewer): a deployment's credential values
  (its secret-named ``litellm_params``, base URL, version ...), masked, named ``<model>-credential-<id>``.
- ``GET /credentials``, ``GET /credentials/by_name/{name}`` (the proxy admin and its viewer): LiteLLM's view,
  ``{"credential_name", "display_name", "credential_values", "credential_info", "source": "db"}``, a value whose
  name marks it secret masked as LiteLLM masks it (its first and last two characters around ``****``;
  ``*****`` when short), the others shown.
- ``PATCH /credentials/{name}`` (the proxy admin): ``credential_values`` merged over the stored ones (a masked
  value sent back, as a form edited from the view sends it, keeps the stored one; null removes a value, as
  ``credential_values_to_delete`` does), ``credential_info`` merged, ``display_name`` replaced; the name is
  immutable (400). ``DELETE /credentials/{name}`` (the proxy admin): refused with a 409 naming the stored models
  that use it (LiteLLM deletes it and those models then call their provider without the credential; here they
  would stop being served).

Every change is served by every worker within a second (the change counter): the models naming the credential
are built again with its new values.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaygate.core.errors import GatewayError
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, route
from relaygate.management.models import _SECRET_WORDS, enabled, stored_changed
from relaygate.store import credentials as store_creds
from relaygate.store.sealing import SealError, sealer_for

__all__ = ["add_routes", "masked"]

NAME_MAX = 256
DISPLAY_MAX = 100
_FROM_MODEL = ("api_base", "api_version", "organization", "region_name", "vertex_project", "vertex_location")
"""Non-secret ``litellm_params`` a credential made from a deployment (``model_id``) also takes."""


class CreateBody(msgspec.Struct, kw_only=True):
    credential_name: str
    credential_values: dict[str, Any] | None = None
    credential_info: dict[str, Any] | None = None
    display_name: str | None = None
    model_id: str | None = None


class UpdateBody(msgspec.Struct, kw_only=True):
    credential_name: str | None = None
    credential_values: dict[str, Any] | None = None
    credential_values_to_delete: list[str] | None = None
    credential_info: dict[str, Any] | None = None
    display_name: str | msgspec.UnsetType | None = msgspec.UNSET
    """Null clears it; left out, it stays."""


def _secret(name: str) -> bool:
    lower = name.lower()
    return any(w in lower for w in _SECRET_WORDS)


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    return "*****" if len(value) <= 4 else value[:2] + "****" + value[-2:]


def masked(values: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's ``get_masked_values`` of a credential: secret-named values masked, the rest as they are."""
    return {k: (_mask(v) if _secret(str(k)) else v) for k, v in values.items()}


def _is_mask(value: Any) -> bool:
    return isinstance(value, str) and (value == "*****" or (len(value) == 8 and value[2:6] == "****"))


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
        raise bad_request(f"credential_name must be 1 to {NAME_MAX} printable characters", "credential_name")
    return name


def _display(value: str | None) -> str | None:
    if value is None:
        return None
    shown = value.strip()
    if not shown:
        raise bad_request("display_name cannot be blank. Send null to clear it or omit the field to leave it "
                          "unchanged.", "display_name")
    if len(shown) > DISPLAY_MAX or any(ord(ch) < 32 for ch in shown):
        raise bad_request(f"display_name must be at most {DISPLAY_MAX} printable characters", "display_name")
    return shown


def _need_db(ctx: Ctx) -> None:
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) to keep "
                          "credentials in the database", "store_model_in_db")


def _view(cred: store_creds.Credential, values: dict[str, Any]) -> dict[str, Any]:
    return {"credential_name": cred.credential_name, "display_name": cred.display_name,
            "credential_values": masked(values), "credential_info": cred.credential_info, "source": "db"}


def _opened(ctx: Ctx, cred: store_creds.Credential) -> dict[str, Any]:
    try:
        return store_creds.opened(cred.credential_values, sealer_for(ctx.gw.runtime.config))
    except SealError:  # sealed under another key: shown as masked, never as ciphertext
        return {k: "*****" for k in cred.credential_values}


def _model_values(ctx: Ctx, model_id: str) -> tuple[str, dict[str, Any]]:
    """A deployment's model name and credential values (its secret-named ``litellm_params`` and its base URL,
    version, organization, region and project); LiteLLM's 404 for an id no deployment has."""
    for dep in ctx.gw.runtime.config.deployments:
        if dep.id == model_id:
            own = {"api_key": dep.api_key, "api_base": dep.api_base, "api_version": dep.api_version,
                   "organization": dep.organization}
            return dep.model_name, {k: v for k, v in {**dep.extra, **own}.items()
                                    if v is not None and (_secret(k) or k in _FROM_MODEL)}
    raise GatewayError("Model not found", status=404, type="not_found_error", param="model_id")


def _from_model(ctx: Ctx, model_id: str) -> dict[str, Any]:
    values = _model_values(ctx, model_id)[1]
    if not values:
        raise bad_request("Credential values are required. Unable to infer credential values from model ID.",
                          "model_id")
    return values


async def create(ctx: Ctx) -> Any:
    _need_db(ctx)
    body = await ctx.body(CreateBody)
    name = _name(body.credential_name)
    values = _from_model(ctx, body.model_id) if body.model_id else body.credential_values
    values = {k: v for k, v in (values or {}).items() if v is not None}
    if not values:
        raise bad_request("Credential values are required. Unable to infer credential values from model ID.",
                          "credential_values")
    sealer = sealer_for(ctx.gw.runtime.config)
    if not await store_creds.create_credential(ctx.store, name, _display(body.display_name),
                                               store_creds.sealed(values, sealer), body.credential_info or {},
                                               ctx.caller.user_id or "default_user_id"):
        raise GatewayError(f"Credential '{name}' already exists. Update it with PATCH /credentials/{name}, or "
                           "delete it first.", status=409, type="bad_request_error", param="credential_name")
    await stored_changed(ctx)
    return {"success": True, "message": "Credential created successfully"}


async def list_all(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    creds = await store_creds.list_credentials(ctx.store)
    return {"success": True, "credentials": [_view(c, _opened(ctx, c)) for c in creds]}


async def by_name(ctx: Ctx) -> Any:
    admin_only(ctx, read=True)
    name = ctx.params["name"]
    cred = await store_creds.get_credential(ctx.store, name)
    if cred is None:
        raise GatewayError(f"Credential not found. Got credential name: {name}", status=404, type="not_found_error",
                           param="credential_name")
    return _view(cred, _opened(ctx, cred))


async def by_model(ctx: Ctx) -> Any:
    """LiteLLM's ``GET /credentials/by_model/{model_id}``: the deployment's credential values, masked, as a
    credential named ``<model name>-credential-<id>``."""
    admin_only(ctx, read=True)
    model_id = ctx.params["model_id"]
    name, values = _model_values(ctx, model_id)
    return {"credential_name": f"{name}-credential-{model_id}", "credential_values": masked(values),
            "credential_info": {}}


async def update(ctx: Ctx) -> Any:
    _need_db(ctx)
    name = ctx.params["name"]
    body = await ctx.body(UpdateBody)
    if body.credential_name is not None and body.credential_name != name:
        raise bad_request("credential_name is immutable. Set display_name to change how the credential is "
                          "labeled.", "credential_name")
    cred = await store_creds.get_credential(ctx.store, name)
    if cred is None:
        raise GatewayError("Credential not found in DB.", status=404, type="not_found_error",
                           param="credential_name")
    sealer = sealer_for(ctx.gw.runtime.config)
    try:
        values = store_creds.opened(cred.credential_values, sealer)
    except SealError as exc:
        raise bad_request(f"Credential {name}: {exc}; give its values again in a new credential",
                          "credential_values") from None
    for key, value in (body.credential_values or {}).items():
        if value is None:
            values.pop(key, None)
        elif not _is_mask(value):  # a masked value sent back keeps the stored one
            values[key] = value
    for key in body.credential_values_to_delete or ():
        values.pop(key, None)
    if not values:
        raise bad_request("a credential keeps at least one value", "credential_values")
    info = {**cred.credential_info, **(body.credential_info or {})}
    display = cred.display_name if body.display_name is msgspec.UNSET else _display(body.display_name)
    await store_creds.update_credential(ctx.store, name, display, store_creds.sealed(values, sealer), info,
                                        ctx.caller.user_id or "default_user_id")
    await stored_changed(ctx)
    return {"success": True, "message": "Credential updated successfully"}


async def delete(ctx: Ctx) -> Any:
    _need_db(ctx)
    name = ctx.params["name"]
    users = await store_creds.models_naming(ctx.store, name, sealer_for(ctx.gw.runtime.config))
    if users:
        raise GatewayError(f"Credential '{name}' is used by stored model(s) {', '.join(sorted(users))}: change or "
                           "delete them first", status=409, type="bad_request_error", param="credential_name")
    if not await store_creds.delete_credential(ctx.store, name):
        raise GatewayError(f"Credential not found. Got credential name: {name}", status=404, type="not_found_error",
                           param="credential_name")
    await stored_changed(ctx)
    return {"success": True, "message": "Credential deleted successfully"}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    route(t, gw, "POST", "/credentials", create)
    route(t, gw, "GET", "/credentials", list_all)
    route(t, gw, "GET", "/credentials/by_name/{name:path}", by_name)
    route(t, gw, "GET", "/credentials/by_model/{model_id}", by_model)
    route(t, gw, "PATCH", "/credentials/{name:path}", update)
    route(t, gw, "DELETE", "/credentials/{name:path}", delete)
