"""``GET /router/settings`` and ``GET /router/fields`` in-process (LiteLLM's router settings page): every field
relaygate serves with its type, default and options; the values this worker serves and where each came from;
no Redis connection setting or secret in the answer; the proxy admin only (the stored fallbacks' ``db`` source
and a virtual key's refusal run through ``relaygate serve`` in tests/e2e/test_fallback_routes_e2e.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.config.model import RouterSettings
from relaygate.core.routing import STRATEGIES
from relaygate.management.router_settings import FIELDS, current
from tests.asgi.conftest import Reply, call

MASTER = "sk-router-settings-master"
SECRET = "redis-pass-not-shown"


def gateway(router: dict[str, Any] | None = None) -> Gateway:
    return Gateway(from_litellm({
        "model_list": [{"model_name": m, "litellm_params": {"model": "mock/echo"}} for m in ("a", "b")],
        "router_settings": router or {},
        "general_settings": {"master_key": MASTER},
    }, "<test>"))


def get(gw: Gateway, path: str, key: str = MASTER) -> Reply:
    return asyncio.run(call(gw, "GET", path, headers={"authorization": f"Bearer {key}"}))


def test_fields_describe_what_is_served() -> None:
    r = get(gateway(), "/router/fields")
    assert r.status == 200, r.body
    body = r.json()
    assert set(body) == {"fields", "routing_strategy_descriptions", "routing_group_strategies"}
    fields = {f["field_name"]: f for f in body["fields"]}
    assert list(fields) == [name for name, *_ in FIELDS]
    served = set(RouterSettings.__struct_fields__)
    assert set(fields) - {"timeout"} <= served  # every field is a setting the router reads
    for f in body["fields"]:
        assert set(f) == {"field_name", "field_type", "field_value", "field_description", "field_default",
                          "options", "ui_field_name", "link"}
        assert f["field_value"] is None and f["field_description"] and f["ui_field_name"]
        assert f["field_type"] in {"String", "Integer", "Float", "Boolean", "List", "Dictionary"}
    assert fields["routing_strategy"]["options"] == list(STRATEGIES)
    assert set(body["routing_strategy_descriptions"]) == set(STRATEGIES)
    assert fields["allowed_fails"]["field_default"] == 3 and fields["cooldown_time"]["field_default"] == 5.0
    assert fields["timeout"]["field_default"] == 600.0 and fields["max_fallbacks"]["field_default"] == 5
    assert body["routing_group_strategies"] == []
    for unserved in ("routing_strategy_args", "routing_groups", "set_verbose", "redis_password", "redis_host"):
        assert unserved not in fields


def test_settings_show_the_served_values_and_their_source() -> None:
    gw = gateway({"routing_strategy": "latency-based-routing", "num_retries": 2, "timeout": 30,
                  "fallbacks": [{"a": ["b"]}], "model_group_alias": {"old": "a", "quiet": {"model": "b", "hidden": True}},
                  "redis_host": "127.0.0.1", "redis_port": 6399, "redis_password": SECRET})
    r = get(gw, "/router/settings")
    assert r.status == 200, r.body
    assert SECRET.encode() not in r.body and b"6399" not in r.body
    body = r.json()
    assert set(body) == {"fields", "current_values", "routing_strategy_descriptions", "routing_group_strategies",
                         "source"}
    values, source = body["current_values"], body["source"]
    assert values["routing_strategy"] == "latency-based-routing" and source["routing_strategy"] == "config"
    assert values["num_retries"] == 2 and values["timeout"] == 30.0 and source["timeout"] == "config"
    assert values["fallbacks"] == [{"a": ["b"]}] and source["fallbacks"] == "config"
    assert values["model_group_alias"] == {"old": "a", "quiet": {"model": "b", "hidden": True}}
    assert values["cooldown_time"] == 5.0 and source["cooldown_time"] == "default"
    assert values["stream_timeout"] is None and source["stream_timeout"] == "unset"
    assert set(values) == set(source) == {name for name, *_ in FIELDS}
    assert {f["field_name"]: f["field_value"] for f in body["fields"]} == values


def test_a_stored_fallback_list_is_the_database_s() -> None:
    gw = gateway({"fallbacks": [{"a": ["b"]}]})
    values, source = current(gw.runtime.config, {"router_settings": {"fallbacks": [{"a": ["b"]}]}})
    assert source["fallbacks"] == "db" and source["context_window_fallbacks"] == "default"
    assert values["fallbacks"] == [{"a": ["b"]}]
    _, source = current(gw.runtime.config, {"router_settings": "not a mapping"})
    assert source["fallbacks"] == "config"


@pytest.mark.parametrize("path", ["/router/settings", "/router/fields"])
def test_only_the_admin_reads_them(path: str) -> None:
    gw = gateway()
    r = get(gw, path, key="sk-wrong")
    assert r.status == 401 and r.json()["error"]["message"], r.body
    open_gw = Gateway(from_litellm({"model_list": []}, "<test>"))  # no master key: an open gateway
    assert asyncio.run(call(open_gw, "GET", path)).status == 200
