"""Models stored in the database: LiteLLM's ``/model/new``, ``/model/update`` (and ``PATCH
/model/{model_id}/update``), ``/model/delete``, and how stored models join the running config.

With ``general_settings.store_model_in_db: true`` (LiteLLM's switch; else these routes answer 400 saying
so) a model is one row of ``rg_models`` (LiteLLM's ``LiteLLM_ProxyModelTable``): ``model_name``,
``litellm_params``, ``model_info``, its id the ``model_id`` (``model_info.id`` when given). A row is checked
before it is written exactly as a ``model_list`` entry is at start-up (the config loader's
``make_deployment``, a provider relaygate serves, its adapter built once), so a model that cannot work is a
400 naming the field, never a broken deployment.

Joining the runtime, without a restart: the gateway keeps the config file's deployments and the stored
ones apart and serves both (:func:`with_db_models`: a stored model whose id a config deployment already
has is skipped, the file wins). After a write the route calls ``Gateway.models_changed``: this worker
reads the rows (:func:`read_db_models`) and swaps in a new runtime snapshot the same way a config reload
does (deployment stats and limiter carried over); every other worker and instance does the same when the
store's change counter moves (the key-change poll, one second) or at once through the Redis key-change
channel. Stored models show on ``/v1/models`` and ``/model/info`` with ``model_info.db_model: true``.

Credentials in ``litellm_params`` (``api_key`` ...) are sealed before they are written (``store.sealing``:
AES-GCM under ``LITELLM_SALT_KEY``, else the master key, as LiteLLM encrypts them), opened when the rows
join the runtime (and added to the log redactor then), and never answered: responses drop every
credential-like field. A row whose credentials do not open (the salt changed) is skipped with one log line.

Blocking, as LiteLLM's ``/model/block`` / ``/model/unblock``: a stored model kept but not routed to (its row's
``blocked``; listed by ``/model/info`` with ``model_info.blocked: true``), until it is unblocked.

Roles, as LiteLLM's: only the proxy admin adds, updates, blocks or deletes models.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import msgspec

from relaygate.config import ConfigError
from relaygate.config.env import PROVIDERS
from relaygate.config.litellm import with_credential
from relaygate.config.loader import make_deployment
from relaygate.config.model import Config, Deployment
from relaygate.core.errors import GatewayError, register_secrets
from relaygate.http.routes import RouteTable
from relaygate.management.common import Ctx, Gateway, admin_only, bad_request, not_found, record, route
from relaygate.management.events import model_added
from relaygate.store import ModelRow, NotFound, Store
from relaygate.store.credentials import Credential, list_credentials, opened
from relaygate.store.sealing import (
    Sealer,
    SealError,
    credential_strings,
    open_credentials,
    seal_credentials,
    sealer_for,
)

log = logging.getLogger("relaygate")

SOURCE = "<database>"
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential")


class ModelBody(msgspec.Struct, kw_only=True):
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] | None = None


class UpdateModelBody(msgspec.Struct, kw_only=True):
    model_name: str | None = None
    litellm_params: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None


class ModelRef(msgspec.Struct, kw_only=True):
    id: str


class BlockBody(msgspec.Struct, kw_only=True):
    model_id: str


def add_routes(t: RouteTable, gw: Gateway) -> None:
    for method, path, handler in (
            ("POST", "/model/new", new), ("POST", "/model/update", update),
            ("PATCH", "/model/{model_id}/update", update), ("POST", "/model/delete", delete),
            ("POST", "/model/block", _blocking(True)), ("POST", "/model/unblock", _blocking(False))):
        route(t, gw, method, path, handler)


# -- rows as deployments ------------------------------------------------------------------------------


def deployment_of(row: ModelRow, credentials: dict[str, dict[str, Any]] | None = None) -> Deployment:
    """The deployment a stored row describes, checked as a ``model_list`` entry (ConfigError naming the field,
    relative to the row: ``litellm_params.model`` ...). Its ``litellm_credential_name`` names one of the stored
    ``credentials`` (``store.credentials``, opened): their values under the row's own, as LiteLLM merges them."""
    if not row.model_name:
        raise ConfigError(SOURCE, "model_name", "expected a non-empty string")
    params = dict(row.litellm_params)
    if "litellm_credential_name" in params:
        params = with_credential(params, credentials or {}, SOURCE, "")  # a name not stored: the ConfigError
    info = {**row.model_info, "id": row.model_id, "db_model": True, "blocked": row.blocked}
    dep = make_deployment(row.model_name, params, info, SOURCE, "", where=f"model {row.model_id}")
    if dep.provider not in PROVIDERS:
        raise ConfigError(SOURCE, "litellm_params.model", f"relaygate has no provider `{dep.provider}`")
    if "*" not in dep.model:
        from relaygate.providers import make_provider

        try:
            make_provider(dep)
        except GatewayError as exc:
            raise ConfigError(SOURCE, "litellm_params", exc.message) from None
    return dep


async def stored_models(store: Store) -> list[ModelRow]:
    """Every stored model's row, read page by page."""
    rows: list[ModelRow] = []
    page = 1
    while True:
        got = await store.list_models(page=page, page_size=1000)
        rows += got.items
        if page >= got.total_pages:
            return rows
        page += 1


async def read_db_models(store: Store, sealer: Sealer) -> tuple[tuple[Any, ...], list[Deployment]]:
    """Every stored model: a signature of the rows (ids and update times: unchanged rows, same signature) and
    the deployments of those that are valid (an invalid row is logged and skipped, as the config loader
    skips a deployment it cannot serve)."""
    rows = sorted(await stored_models(store), key=lambda r: r.model_id)
    stored = await list_credentials(store)
    credentials = stored_credentials(stored, sealer)
    deps = []
    for row in rows:
        try:
            params = open_credentials(row.litellm_params, sealer)
        except SealError as exc:
            log.error("database model %s (%s) skipped: %s", row.model_id, row.model_name, exc)
            continue
        register_secrets(credential_strings(params))
        try:
            deps.append(deployment_of(msgspec.structs.replace(row, litellm_params=params), credentials))
        except ConfigError as exc:
            log.error("database model %s (%s) skipped: %s", row.model_id, row.model_name, exc)
    return (*((r.model_id, r.updated_at, r.blocked) for r in rows),
            *(("credential", c.credential_name, c.updated_at) for c in stored)), deps


def stored_credentials(stored: list[Credential], sealer: Sealer) -> dict[str, dict[str, Any]]:
    """The stored credentials' values by name, opened (one that does not open is logged and left out: a model
    naming it is then skipped, naming the credential) and registered with the log redactor."""
    out: dict[str, dict[str, Any]] = {}
    for cred in stored:
        try:
            values = opened(cred.credential_values, sealer)
        except SealError as exc:
            log.error("stored credential %s skipped: %s", ascii(cred.credential_name), exc)
            continue
        register_secrets([v for v in values.values() if isinstance(v, str) and len(v) >= 8])
        out[cred.credential_name] = values
    return out


def with_db_models(config: Config, deps: list[Deployment]) -> Config:
    """``config`` serving ``deps`` after its own deployments (a stored model with a config deployment's id is
    left out: the file wins; a blocked one too: listed by ``/model/info``, never routed to)."""
    if not deps:
        return config
    ids = {d.id for d in config.deployments}
    extra = [d for d in deps if d.id not in ids and not d.model_info.get("blocked")]
    return msgspec.structs.replace(config, deployments=[*config.deployments, *extra])


# -- routes -------------------------------------------------------------------------------------------


def enabled(config: Config) -> bool:
    """``general_settings.store_model_in_db``, or LiteLLM's ``STORE_MODEL_IN_DB=True`` in the environment."""
    return config.general.store_model_in_db or os.environ.get("STORE_MODEL_IN_DB", "").strip().lower() == "true"


def _enabled(ctx: Ctx) -> None:
    admin_only(ctx)
    if not enabled(ctx.gw.runtime.config):
        raise bad_request("Set `general_settings.store_model_in_db: true` (LiteLLM's STORE_MODEL_IN_DB) in the config "
                          "to add, update or delete models through the API", "store_model_in_db")


_warned = [False]


def _warn_unsealed(sealer: Sealer) -> None:
    if not sealer.enabled and not _warned[0]:
        _warned[0] = True
        log.warning("stored models' credentials are written unsealed: set LITELLM_SALT_KEY or a master key")


def _checked(row: ModelRow, credentials: dict[str, dict[str, Any]] | None = None) -> None:
    try:
        deployment_of(row, credentials)
    except ConfigError as exc:
        field = exc.field.lstrip(".") or "litellm_params"
        raise bad_request(f"Invalid model: {field}: {exc.detail}", field) from None


def shown(row: ModelRow) -> dict[str, Any]:
    """A row as answered: ``litellm_params`` without credentials."""
    out = record(row)
    out["litellm_params"] = {k: v for k, v in row.litellm_params.items()
                             if not any(w in k.lower() for w in _SECRET_WORDS)}
    return out


async def stored_changed(ctx: Ctx) -> None:
    """Stored models or settings changed: this worker serves them now, the others follow
    (``Gateway.models_changed``)."""
    changed = getattr(ctx.gw, "models_changed", None)
    if changed is not None:
        await changed()


async def new(ctx: Ctx) -> Any:
    _enabled(ctx)
    body = await ctx.body(ModelBody)
    info = dict(body.model_info or {})
    model_id = str(info.pop("id", None) or uuid.uuid4())
    if any(d.id == model_id for d in ctx.gw.runtime.config.deployments):
        raise bad_request(f"A model with id={model_id} already exists", "model_info.id")
    who = ctx.caller.user_id or "default_user_id"
    row = ModelRow(model_id=model_id, model_name=body.model_name, litellm_params=body.litellm_params,
                   model_info=info, created_by=who, updated_by=who)
    sealer = sealer_for(ctx.gw.runtime.config)
    _checked(row, stored_credentials(await list_credentials(ctx.store), sealer))
    _warn_unsealed(sealer)
    row = await ctx.store.create_model(
        msgspec.structs.replace(row, litellm_params=seal_credentials(row.litellm_params, sealer)))
    await stored_changed(ctx)
    model_added(ctx.gw, body.model_name, body.litellm_params, info)  # LiteLLM's new_model_added alert
    return shown(row)


async def update(ctx: Ctx) -> Any:
    _enabled(ctx)
    body = await ctx.body(UpdateModelBody)
    info = dict(body.model_info or {})
    model_id = ctx.params.get("model_id") or info.pop("id", None)
    info.pop("id", None)
    if not model_id:
        raise bad_request("model_info.id is required", "model_info.id")
    try:
        old = await ctx.store.get_model(str(model_id))
    except NotFound:
        raise not_found(f"Model with id={model_id} not found in db", "model_id") from None
    sealer = sealer_for(ctx.gw.runtime.config)
    try:
        before = open_credentials(old.litellm_params, sealer)
    except SealError as exc:
        raise bad_request(f"Model with id={model_id}: {exc}; give its credentials again", "litellm_params") from None
    params = {**before, **{k: v for k, v in (body.litellm_params or {}).items() if v is not None}}
    merged = msgspec.structs.replace(old, model_name=body.model_name or old.model_name, litellm_params=params,
                                     model_info={**old.model_info, **info})
    _checked(merged, stored_credentials(await list_credentials(ctx.store), sealer))
    _warn_unsealed(sealer)
    params = seal_credentials(params, sealer)
    row = await ctx.store.update_model(old.model_id, model_name=merged.model_name, litellm_params=params,
                                       model_info=merged.model_info,
                                       updated_by=ctx.caller.user_id or "default_user_id")
    await stored_changed(ctx)
    return shown(row)


async def delete(ctx: Ctx) -> Any:
    _enabled(ctx)
    body = await ctx.body(ModelRef)
    try:
        await ctx.store.delete_model(body.id)
    except NotFound:
        raise not_found(f"Model with id={body.id} not found in db", "id") from None
    await stored_changed(ctx)
    return {"message": f"Model: {body.id} deleted successfully"}


def _blocking(blocked: bool) -> Any:
    """LiteLLM's ``/model/block`` and ``/model/unblock`` (``{"model_id"}``): a stored model kept but not routed
    to (``/model/info`` lists it with ``model_info.blocked: true``; ``/v1/models`` and requests do not see it),
    or served again; every worker within a second, as any stored-model change. A config deployment's id is
    LiteLLM's 400, an unknown one its 404. Answer: the row, without credentials."""
    async def handler(ctx: Ctx) -> Any:
        _enabled(ctx)
        model_id = (await ctx.body(BlockBody)).model_id
        try:
            await ctx.store.get_model(model_id)
        except NotFound:
            if any(d.id == model_id for d in ctx.gw.runtime.config.deployments):
                raise bad_request("Cannot edit config-based model. Store model in DB via /model/new first.",
                                  "model_id") from None
            raise not_found(f"Model {model_id} not found on proxy.", "model_id") from None
        who = ctx.caller.user_id or "default_user_id"
        row = await ctx.store.update_model(model_id, blocked=blocked, updated_by=who)
        log.info("database model %s %s", ascii(model_id), "blocked" if blocked else "unblocked")
        await stored_changed(ctx)
        return shown(row)

    return handler
