"""LiteLLM's general settings stored in the database (``management.db_config``, ``config.stored_general``) on
SQLite and a real PostgreSQL: ``/config/field/update``, ``/config/update`` and ``/config/field/delete`` change
what the gateway serves at once (an error body naming its call id, the request size limit), ``/config/list``
and ``/config/field/info`` show where each value comes from, the config file owns what it sets, a setting read
only at start or one that could lock the admin out is refused by name, a value that does not load is a 400
with nothing written, another gateway on the database serves the stored settings (at start and within the
change poll while running), and only the proxy admin writes (its viewer reads)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relaygate.config import from_litellm, load_config
from relaygate.config.stored_general import FIELDS, refusal, with_stored_general
from tests.asgi.conftest import Reply, call
from tests.budgets.conftest import MASTER, gateway, upstream
from tests.store.conftest import db_url  # noqa: F401  (both backends)

AUTH = {"authorization": f"Bearer {MASTER}"}
STORED = {"general_settings": {"store_model_in_db": True, "return_wildcard_routes": True}}
GS = "general_settings"


async def post(gw: Any, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    r = await call(gw, "POST", path, body, headers=headers or AUTH)
    assert r.status == status, r.body
    return r.json()


async def get(gw: Any, path: str, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    r = await call(gw, "GET", path, headers=headers or AUTH)
    assert r.status == status, r.body
    return r.json()


async def unknown_model(gw: Any) -> dict[str, Any]:
    r = await call(gw, "POST", "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
                   headers=AUTH)
    assert r.status == 400, r.body
    return r.json()["error"]  # type: ignore[no-any-return]


async def big(gw: Any) -> Reply:
    return await call(gw, "POST", "/v1/chat/completions",
                      {"model": "m", "messages": [{"role": "user", "content": "x" * 1_500_000}]}, headers=AUTH)


def update(name: str, value: Any) -> dict[str, Any]:
    return {"field_name": name, "field_value": value, "config_type": GS}


def test_stored_fields_are_served_listed_and_deleted(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up:
            async with gateway(db_url, up, **STORED) as gw:
                listed = await get(gw, "/config/list?config_type=general_settings")
                by = {f["field_name"]: f for f in listed}
                assert set(by) == set(FIELDS)
                assert by["return_wildcard_routes"] | {} == {
                    **by["return_wildcard_routes"], "field_value": True, "source": "config", "stored_in_db": False,
                    "editable": False}
                f = by["include_call_id_in_error_body"]
                assert (f["field_value"], f["source"], f["stored_in_db"], f["editable"], f["field_type"],
                        f["field_default_value"]) == (None, "unset", None, True, "Boolean", False)
                assert "litellm_call_id" not in await unknown_model(gw)

                row = await post(gw, "/config/field/update", update("include_call_id_in_error_body", True))
                assert row == {"param_name": GS, "param_value": {"include_call_id_in_error_body": True}}
                assert "litellm_call_id" in await unknown_model(gw)  # served at once
                assert await get(gw, "/config/field/info?field_name=include_call_id_in_error_body") == {
                    "field_name": "include_call_id_in_error_body", "field_value": True, "source": "db",
                    "editable": True}
                assert await get(gw, "/config/field/info?field_name=return_wildcard_routes") == {
                    "field_name": "return_wildcard_routes", "field_value": True, "source": "config",
                    "editable": False}
                err = (await get(gw, "/config/field/info?field_name=cancel_on_disconnect", 400))["error"]
                assert err["message"] == "Field name=cancel_on_disconnect is not set"

                assert (await big(gw)).status == 200
                assert await post(gw, "/config/update", {GS: {"max_request_size_mb": 1, "cancel_on_disconnect": None}}) \
                    == {"message": "Config updated successfully"}
                r = await big(gw)
                assert r.status == 413 and "Max size is 1.00 MB" in r.json()["error"]["message"]
                by = {f["field_name"]: f for f in await get(gw, "/config/list?config_type=general_settings")}
                assert (by["max_request_size_mb"]["field_value"], by["max_request_size_mb"]["source"]) == (1, "db")

                row = await post(gw, "/config/field/delete", {"field_name": "max_request_size_mb", "config_type": GS})
                assert row["param_value"] == {"include_call_id_in_error_body": True}
                assert (await big(gw)).status == 200
                err = (await post(gw, "/config/field/delete", {"field_name": "max_request_size_mb", "config_type": GS},
                                  400))["error"]
                assert err["message"] == "Field name=max_request_size_mb not in config"
                # a null value takes the field out of the database, as a delete does
                await post(gw, "/config/field/update", update("global_max_parallel_requests", 5))
                row = await post(gw, "/config/field/update", update("global_max_parallel_requests", None))
                assert row["param_value"] == {"include_call_id_in_error_body": True}
                await post(gw, "/config/field/update", update("max_request_size_mb", 1))
                # the served config view shows the stored value translated, never the raw document
                view = (await get(gw, "/config/view"))["config"]
                assert "document" not in view and view["server"]["max_request_body_bytes"] == 1024 * 1024

            # another gateway on the database (a restart, another instance) starts with them
            async with gateway(db_url, up, **STORED) as again:
                assert "litellm_call_id" in await unknown_model(again)
                assert (await big(again)).status == 413

    asyncio.run(main())


def test_refusals_write_nothing(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **STORED) as gw:
            before = await gw.store.change_version()
            for body, param, words in (
                    (update("return_wildcard_routes", False), "return_wildcard_routes",
                     "general_settings key 'return_wildcard_routes' is set in the config file and cannot be changed "
                     "here"),
                    (update("master_key", "sk-other"), "master_key", "set in the config file"),
                    (update("allowed_routes", ["/health"]), "allowed_routes", "could lock the admin out"),
                    (update("alerting", ["slack"]), "alerting", "read when the gateway starts"),
                    (update("store_prompts_in_spend_logs", True), "store_prompts_in_spend_logs", "read when the gateway starts"),
                    (update("no_such_field", 1), "no_such_field", "Invalid field=no_such_field passed in."),
                    (update("max_request_size_mb", "abc"), GS,
                     "general_settings.max_request_size_mb: expected a size in MB"),
                    (update("global_max_parallel_requests", "many"), GS, "global_max_parallel_requests"),
                    (update("completion_model", "nosuch-group"), "completion_model", "no model group named"),
                    ({"field_name": "max_request_size_mb", "field_value": 1, "config_type": "router_settings"},
                     "config_type", "expected 'general_settings'"),
                    ({"field_name": "max_request_size_mb", "config_type": GS}, "field_value", "field_value")):
                err = (await post(gw, "/config/field/update", body, 400))["error"]
                assert words in err["message"] and err["param"] == param, (body, err)
            for body, param in (({"router_settings": {"no_such_setting": 1}}, "router_settings"),
                                ({"router_settings": {"redis_host": "h"}}, "router_settings"),
                                ({"router_settings": {"num_retries": "many"}}, "router_settings"),
                                ({"router_settings": {"fallbacks": "m2"}}, "fallbacks"),
                                ({"litellm_settings": {"drop_params": True}}, "litellm_settings"),
                                ({"environment_variables": {"X": "1"}}, "environment_variables"),
                                ({GS: {"alert_to_webhook_url": {"x": "https://h"}}}, "alert_to_webhook_url"),
                                ({GS: [1]}, GS)):
                err = (await post(gw, "/config/update", body, 400))["error"]
                assert err["param"] == param, (body, err)
            err = (await post(gw, "/config/field/delete", {"field_name": "return_wildcard_routes", "config_type": GS},
                              400))["error"]
            assert "set in the config file" in err["message"]
            await post(gw, "/config/field/update", b"{not json", 400)
            assert (await get(gw, "/config/list?config_type=router_settings", 400))["error"]["param"] == "config_type"
            assert await gw.store.change_version() == before
            # the proxy admin only writes; its viewer reads
            await post(gw, "/user/new", {"user_id": "viewer", "user_role": "proxy_admin_viewer"})
            await post(gw, "/user/new", {"user_id": "alice", "user_role": "internal_user"})
            keys = {u: {"authorization": f"Bearer {(await post(gw, '/key/generate', {'user_id': u}))['key']}"}
                    for u in ("viewer", "alice")}
            before = await gw.store.change_version()
            for who in ("viewer", "alice"):
                await post(gw, "/config/field/update", update("max_request_size_mb", 1), 401, keys[who])
                await post(gw, "/config/update", {GS: {"max_request_size_mb": 1}}, 401, keys[who])
            assert await gw.store.change_version() == before
            assert len(await get(gw, "/config/list?config_type=general_settings", headers=keys["viewer"])) == len(FIELDS)
            await get(gw, "/config/list?config_type=general_settings", 401, keys["alice"])
            await get(gw, "/config/field/info?field_name=return_wildcard_routes", 401, keys["alice"])

    asyncio.run(main())


def test_writes_need_store_model_in_db(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up) as gw:
            err = (await post(gw, "/config/field/update", update("max_request_size_mb", 1), 400))["error"]
            assert "store_model_in_db" in err["message"] and err["param"] == "store_model_in_db"
            err = (await post(gw, "/config/update", {GS: {"max_request_size_mb": 1}}, 400))["error"]
            assert err["param"] == "store_model_in_db"

    asyncio.run(main())


def test_a_running_gateway_follows_another_ones_write(db_url: str) -> None:  # noqa: F811
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **STORED) as a, gateway(db_url, up, **STORED) as b:
            assert "litellm_call_id" not in await unknown_model(b)
            await post(a, "/config/field/update", update("include_call_id_in_error_body", True))
            deadline = time.monotonic() + 15
            while "litellm_call_id" not in await unknown_model(b):  # b's change poll reads the rows again
                assert time.monotonic() < deadline, "the other gateway never served the stored setting"
                await asyncio.sleep(0.2)
            await post(a, "/config/field/delete", {"field_name": "include_call_id_in_error_body", "config_type": GS})
            while "litellm_call_id" in await unknown_model(b):
                assert time.monotonic() < deadline + 15
                await asyncio.sleep(0.2)

    asyncio.run(main())


# -- sans IO ----------------------------------------------------------------------------------------------


def _config(**general: Any) -> Any:
    return from_litellm({"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-x",
                                                                                 "api_key": "k"}}],
                         "general_settings": {"master_key": "sk-m", **general}}, "<test>")


def test_overlay_rules() -> None:
    config = _config(global_max_parallel_requests=3, include_call_id_in_error_body=None)
    stored = {GS: {"global_max_parallel_requests": 9, "include_call_id_in_error_body": True, "master_key": "sk-x",
                   "alerting": ["slack"], "max_request_size_mb": 2}}
    served = with_stored_general(config, stored)
    g = served.general
    assert g.global_max_parallel_requests == 3  # the file's, not the database's
    assert g.include_call_id_in_error_body is True  # a file's null is not set: the database's
    assert g.master_key == "sk-m" and served.observe == config.observe  # never from the database
    assert served.server.max_request_body_bytes == 2 * 1024 * 1024
    assert served.document is config.document  # the file's own, for the next overlay
    assert with_stored_general(config, stored) is served  # the same rows: not translated again
    assert with_stored_general(config, {}) is config and with_stored_general(config, {GS: "junk"}) is config


def test_a_row_that_does_not_load_is_logged_and_not_served(caplog: pytest.LogCaptureFixture) -> None:
    config = _config()
    assert with_stored_general(config, {GS: {"max_request_size_mb": "huge"}}) is config
    assert "stored general_settings / router_settings not applied" in caplog.text


def test_a_native_config_takes_nothing_from_the_database(tmp_path: Any) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[models]]\nname = "m"\nmodel = "mock/echo"\n')
    config = load_config(str(path))
    assert config.document is None
    assert "native TOML" in (refusal("max_request_size_mb", config) or "")
    assert with_stored_general(config, {GS: {"max_request_size_mb": 1}}) is config
    yaml = tmp_path / "c.yaml"
    yaml.write_text("model_list: []\ngeneral_settings:\n  max_request_size_mb: 3\n")
    assert f"Edit {yaml}" in (refusal("max_request_size_mb", load_config(str(yaml))) or "")


def test_router_settings_through_config_update(db_url: str) -> None:  # noqa: F811
    """LiteLLM's ``/config/update`` ``router_settings``: a setting the file leaves out is stored and served (and
    ``/router/settings`` says it comes from the database), one the file sets is LiteLLM's refusal naming the file,
    fallback lists are stored over the file's as ``POST /fallback`` stores them."""
    async def main() -> None:
        async with upstream() as up:
            file = {**STORED, "router_settings": {"num_retries": 2}}
            async with gateway(db_url, up, **file) as gw:
                out = await post(gw, "/config/update", {"router_settings": {
                    "routing_strategy": "least-busy", "cooldown_time": 7, "fallbacks": [{"m": ["m2"]}]}})
                assert out == {"message": "Config updated successfully"}
                shown = await get(gw, "/router/settings")
                assert shown["current_values"]["routing_strategy"] == "least-busy"
                assert shown["current_values"]["cooldown_time"] == 7
                assert shown["source"]["routing_strategy"] == "db" and shown["source"]["num_retries"] == "config"
                assert {"m": ["m2"]} in shown["current_values"]["fallbacks"] and shown["source"]["fallbacks"] == "db"
                assert gw.runtime.config.router.routing_strategy == "least-busy"
                err = (await post(gw, "/config/update", {"router_settings": {"num_retries": 5}}, 400))["error"]
                assert "router_settings key 'num_retries' is set in the config file" in err["message"]
                assert gw.runtime.config.router.num_retries == 2
            async with gateway(db_url, up, **file) as again:  # a restart serves them
                assert again.runtime.config.router.routing_strategy == "least-busy"
                assert again.runtime.config.router.cooldown_time == 7

    asyncio.run(main())


def test_router_settings_the_file_sets_in_litellm_settings_are_the_files() -> None:
    """LiteLLM reads ``num_retries``, ``request_timeout`` ... in ``litellm_settings`` too: the file owns them there."""
    from relaygate.config.stored_general import router_refusal

    config = from_litellm({"model_list": [], "litellm_settings": {"num_retries": 4, "request_timeout": 30}}, "<t>")
    assert "num_retries' is set in the config file" in (router_refusal(["num_retries"], config) or "")
    assert "timeout' is set in the config file" in (router_refusal(["timeout"], config) or "")
    served = with_stored_general(config, {"router_settings": {"num_retries": 9, "cooldown_time": 3}})
    assert (served.router.num_retries, served.router.cooldown_time) == (4, 3.0)
