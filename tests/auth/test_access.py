"""LiteLLM's proxy-wide access settings (``auth.access``): ``allowed_ips`` / ``use_x_forwarded_for``,
``allowed_routes``, ``enforce_user_param`` / ``enforced_params``, and the refused ``custom_auth`` /
``admin_only_routes`` (fast tier: in-process ASGI; the real server is ``tests/e2e/test_access_e2e.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relaygate.asgi import Gateway
from relaygate.auth.access import AccessPolicy, RequiredFields
from relaygate.config import ConfigError, load_config
from relaygate.config.model import GeneralSettings
from tests.asgi.conftest import call, make_gateway

MASTER = "sk-access"
AUTH = {"Authorization": f"Bearer {MASTER}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def gateway(**general: Any) -> Gateway:
    return make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                         "general_settings": {"master_key": MASTER, **general}})


def scope(client: str | None, xff: list[str] | None = None) -> dict[str, Any]:
    return {"client": (client, 5000) if client else None,
            "headers": [(b"x-forwarded-for", v.encode()) for v in (xff or [])]}


def test_addresses_and_networks_match_as_normalised_addresses() -> None:
    p = AccessPolicy(msgspec.convert({"allowed_ips": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]},
                                     GeneralSettings))
    assert p.active
    for ok in ("10.1.2.3", "192.168.1.7", "::ffff:10.9.9.9", "2001:db8::1"):
        assert p.refusal(scope(ok), "/v1/models") is None, ok
    refused = p.refusal(scope("192.168.1.8"), "/v1/models")
    assert refused is not None and refused.status == 403 and refused.type == "auth_error"
    assert refused.message == "Access forbidden: IP address 192.168.1.8 not allowed."
    # no peer at all, or one that does not parse: refused without echoing it
    for bad in (None, "not-an-ip\n"):
        r = p.refusal(scope(bad), "/v1/models")
        assert r is not None and r.message == "Access forbidden: IP address not allowed."
    # the orchestrator's probes are never refused
    assert p.refusal(scope("8.8.8.8"), "/health/liveliness") is None
    assert p.refusal(scope("8.8.8.8"), "/health/readiness") is None
    assert p.refusal(scope("8.8.8.8"), "/health") is not None


def test_forwarded_address_is_the_last_hop_the_nearest_proxy_wrote() -> None:
    p = AccessPolicy(msgspec.convert({"allowed_ips": ["10.0.0.5"], "use_x_forwarded_for": True}, GeneralSettings))
    assert p.refusal(scope("172.16.0.1", ["10.0.0.5"]), "/x") is None
    assert p.refusal(scope("172.16.0.1", ["203.0.113.9, 10.0.0.5"]), "/x") is None
    # a client writing the allowed address first does not get in: the proxy appended its real one
    spoofed = p.refusal(scope("172.16.0.1", ["10.0.0.5, 203.0.113.9"]), "/x")
    assert spoofed is not None and "203.0.113.9" in spoofed.message
    # the last header wins; without one the peer's address is used
    assert p.refusal(scope("172.16.0.1", ["10.0.0.5", "198.51.100.1"]), "/x") is not None
    assert p.refusal(scope("10.0.0.5"), "/x") is None
    garbage = p.refusal(scope("10.0.0.5", ["10.0.0.5, <script>"]), "/x")
    assert garbage is not None and garbage.message == "Access forbidden: IP address not allowed."


def test_trusted_proxy_ranges_believe_only_the_proxies() -> None:
    """LiteLLM's ``trusted_proxy_ranges``: ``X-Forwarded-For`` counts only from a trusted proxy, and the client
    is its right-most hop that is not one (a hop written further left by the client cannot pass for it); the
    ranges turn the header on by themselves; a list or a comma-separated string."""
    for ranges in (["10.1.0.0/16", "192.0.2.7"], "10.1.0.0/16, 192.0.2.7"):
        p = AccessPolicy(msgspec.convert({"allowed_ips": ["203.0.113.9"], "trusted_proxy_ranges": ranges},
                                         GeneralSettings))
        assert p.client(scope("10.1.4.4", ["203.0.113.9"])) == "203.0.113.9"
        assert p.client(scope("10.1.4.4", ["6.6.6.6, 203.0.113.9, 192.0.2.7"])) == "203.0.113.9"  # two proxies
        assert p.client(scope("10.1.4.4", ["203.0.113.9, 6.6.6.6"])) == "6.6.6.6"  # the client's own hop left
        assert p.client(scope("10.1.4.4", ["garbage, 10.1.9.9"])) == "10.1.4.4"  # nothing but proxies: the peer
        direct = p.refusal(scope("198.51.100.3", ["203.0.113.9"]), "/x")  # not a proxy: its header is not read
        assert direct is not None and "198.51.100.3" in direct.message
        assert p.refusal(scope("10.1.4.4", ["203.0.113.9"]), "/x") is None
    with pytest.raises(ValueError, match=r"trusted_proxy_ranges\[1\]: 'nope'"):
        msgspec.convert({"trusted_proxy_ranges": ["10.0.0.0/8", "nope"]}, GeneralSettings)


def test_off_by_default() -> None:
    p = AccessPolicy(GeneralSettings())
    assert not p.active
    gw = gateway()
    assert not any(isinstance(h, RequiredFields) for h in gw.runtime.before_route)


@pytest.mark.parametrize("general,field,text", [
    ({"allowed_ips": ["10.0.0.0/8", "nope"]}, "general_settings", "allowed_ips[1]: 'nope' is not an IP address"),
    ({"allowed_ips": "10.0.0.1"}, "general_settings.allowed_ips", "array"),
    ({"enforced_params": ["metadata.a.b"]}, "general_settings", "enforced_params[0]"),
])
def test_bad_settings_stop_startup_naming_them(tmp_path: Path, general: dict[str, Any], field: str,
                                               text: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(msgspec.json.encode({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                                      "general_settings": general}).decode())
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.field == field and text in str(info.value)


@pytest.mark.parametrize("name,value", [("custom_auth", "custom_auth.user_api_key_auth"),
                                        ("admin_only_routes", ["/key/generate"]),
                                        ("custom_key_generate", "custom_auth.custom_generate_key_fn"),
                                        ("custom_sso", "custom_sso.custom_sso_handler")])
def test_access_settings_relaygate_does_not_run_stop_startup_unless_acknowledged(tmp_path: Path, name: str,
                                                                                 value: Any) -> None:
    p = tmp_path / "c.yaml"
    base = {"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
            "general_settings": {"master_key": MASTER, name: value}}
    p.write_text(msgspec.json.encode(base).decode())
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.field == f"general_settings.{name}" and "ignore_custom_auth" in str(info.value)
    p.write_text(msgspec.json.encode({**base, "relaygate_settings": {"ignore_custom_auth": True}}).decode())
    cfg = load_config(str(p))
    assert cfg.server.ignore_custom_auth and f"general_settings.{name}: ignored" in cfg.warnings


def test_refused_addresses_get_a_403_in_the_routes_own_shape() -> None:
    gw = gateway(allowed_ips=["10.0.0.0/8"])  # the in-process client is 127.0.0.1

    async def main() -> None:
        r = await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)
        assert r.status == 403
        assert r.json()["error"] == {"message": "Access forbidden: IP address 127.0.0.1 not allowed.",
                                     "type": "auth_error", "param": "None", "code": "403"}
        r = await call(gw, "POST", "/v1/messages", MESSAGES, AUTH)
        assert r.status == 403 and r.json()["type"] == "error"
        assert r.json()["error"]["message"] == "Access forbidden: IP address 127.0.0.1 not allowed."
        for path in ("/key/list", "/v1/models", "/metrics"):
            assert (await call(gw, "GET", path, headers=AUTH)).status == 403, path
        assert (await call(gw, "GET", "/health/liveliness")).status == 200

    asyncio.run(main())


def test_forwarded_addresses_through_the_gateway() -> None:
    gw = gateway(allowed_ips=["10.9.8.7"], use_x_forwarded_for=True)

    async def main() -> None:
        ok = await call(gw, "POST", "/v1/chat/completions", CHAT, {**AUTH, "X-Forwarded-For": "127.0.0.1, 10.9.8.7"})
        assert ok.status == 200, ok.body
        no = await call(gw, "POST", "/v1/chat/completions", CHAT, {**AUTH, "X-Forwarded-For": "10.9.8.7, 127.0.0.1"})
        assert no.status == 403

    asyncio.run(main())


def test_allowed_routes_limit_the_paths_served() -> None:
    gw = gateway(allowed_routes=["/v1/chat/completions"])

    async def main() -> None:
        assert (await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)).status == 200
        r = await call(gw, "GET", "/v1/models", headers=AUTH)
        assert r.status == 403 and r.json()["error"]["message"] == "Access forbidden: Route /v1/models not allowed"
        assert (await call(gw, "POST", "/chat/completions", CHAT, AUTH)).status == 403  # literal paths, as LiteLLM's
        assert (await call(gw, "GET", "/health/readiness")).status == 200

    asyncio.run(main())


def test_allowed_routes_take_litellms_route_groups_and_prefixes() -> None:
    gw = gateway(allowed_routes=["LiteLLMRoutes.openai_routes", "info_routes", "/key/*"])

    async def main() -> None:
        assert (await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)).status == 200
        assert (await call(gw, "POST", "/chat/completions", CHAT, AUTH)).status == 200
        assert (await call(gw, "GET", "/v1/models", headers=AUTH)).status == 200
        assert (await call(gw, "GET", "/key/list", headers=AUTH)).status == 503  # served: no database here
        assert (await call(gw, "POST", "/v1/messages", MESSAGES, AUTH)).status == 403
        assert (await call(gw, "POST", "/team/new", {}, AUTH)).status == 403

    asyncio.run(main())


def test_enforce_user_param_asks_every_llm_call_for_user() -> None:
    gw = gateway(enforce_user_param=True)

    async def main() -> None:
        r = await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)
        assert r.status == 400
        assert r.json()["error"]["message"] == "'user' param not passed in. 'enforce_user_param'=True"
        assert r.json()["error"]["param"] == "user"
        assert (await call(gw, "POST", "/v1/chat/completions", {**CHAT, "user": "u-1"}, AUTH)).status == 200
        a = await call(gw, "POST", "/v1/messages", MESSAGES, AUTH)
        assert a.status == 400 and a.json()["type"] == "error"
        assert a.json()["error"]["type"] == "invalid_request_error"
        e = await call(gw, "POST", "/v1/embeddings", {"model": "m", "input": "x"}, AUTH)
        assert e.status == 400
        assert (await call(gw, "GET", "/v1/models", headers=AUTH)).status == 200  # not an LLM call

    asyncio.run(main())


def test_enforced_params_name_what_is_missing() -> None:
    gw = gateway(enforced_params=["user", "metadata.generation_name"])

    async def main() -> None:
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "user": "u"}, AUTH)
        assert r.status == 400 and r.json()["error"]["param"] == "metadata"
        assert "param=metadata in request body" in r.json()["error"]["message"]
        r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "user": "u", "metadata": {"x": 1}}, AUTH)
        assert r.status == 400 and "param=[metadata][generation_name]" in r.json()["error"]["message"]
        ok = await call(gw, "POST", "/v1/chat/completions",
                        {**CHAT, "user": "u", "metadata": {"generation_name": "g"}}, AUTH)
        assert ok.status == 200, ok.body

    asyncio.run(main())


def test_a_reload_applies_the_new_address_list(tmp_path: Path) -> None:
    head = f"general_settings: {{master_key: {MASTER}}}\nmodel_list:\n  - {{model_name: m, litellm_params: {{model: mock/echo}}}}\n"
    p = tmp_path / "c.yaml"
    p.write_text(head)
    gw = Gateway(load_config(str(p)), config_path=str(p), runtime_dir=None)

    async def main() -> None:
        assert (await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)).status == 200
        p.write_text(head.replace("master_key: sk-access}", "master_key: sk-access, allowed_ips: [10.0.0.1]}"))
        assert (await call(gw, "POST", "/config/reload", headers=AUTH)).status == 200
        assert (await call(gw, "POST", "/v1/chat/completions", CHAT, AUTH)).status == 403

    asyncio.run(main())


def test_the_customer_header_setting() -> None:
    from relaygate.auth.access import customer_header

    def header(**general: Any) -> bytes | None:
        return customer_header(msgspec.convert(general, GeneralSettings))

    assert header() is None
    assert header(user_header_name="X-OpenWebUI-User-Email") == b"x-openwebui-user-email"
    assert header(user_header_name="X-A", user_header_mappings=[
        {"header_name": "X-B", "litellm_user_role": "internal_user"},
        {"header_name": "X-C", "litellm_user_role": "CUSTOMER"}]) == b"x-c"
    assert header(user_header_mappings={"header_name": "X-D", "litellm_user_role": "customer"}) == b"x-d"
    assert header(user_header_name="X-A", user_header_mappings=[{"header_name": "X-B"}]) == b"x-a"
    for bad in ({"user_header_name": "X Bad"}, {"user_header_mappings": [{"litellm_user_role": "customer"}]}):
        with pytest.raises(msgspec.ValidationError, match="is not a header name"):
            msgspec.convert(bad, GeneralSettings)


def test_client_addresses_are_normalised_and_remembered_within_a_bound() -> None:
    """``core.access.address`` (every request's ``requester_ip_address``, and ``allowed_ips``): an IPv4-mapped
    IPv6 address is its IPv4 one, junk is None, a text longer than any address is refused before parsing, and
    the memo of addresses seen never holds more than 4,096."""
    from relaygate.auth.access import client_address
    from relaygate.core import access

    assert access.address("::ffff:10.0.0.1") == "10.0.0.1" and access.address(" 2001:DB8::1 ") == "2001:db8::1"
    assert access.address("not an address") is None and access.address("1" * 65) is None
    for i in range(5000):
        access.address(f"10.1.{i // 256}.{i % 256}")
    assert 0 < len(access._ADDRESSES) <= 4096
    scope = {"client": ("::ffff:127.0.0.1", 5), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]}
    assert client_address(scope, False) == "127.0.0.1" and client_address(scope, True) == "203.0.113.9"
    assert client_address({"client": None, "headers": []}, False) is None
