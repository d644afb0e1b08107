"""Single sign-on's pure parts (``ui.sso``): the role a provider's claims give (LiteLLM's role attribute, its
group role mappings, ``PROXY_ADMIN_ID``), the signed flow cookie (round trip, forgery, expiry, key change),
the redirect URI, and the start redirect's parameters."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse
from types import SimpleNamespace
from typing import Any

import pytest

from relaygate.ui import sso


def _gw(master: str | None = "sk-master-0123456789") -> Any:
    return SimpleNamespace(config=SimpleNamespace(general=SimpleNamespace(master_key=master)))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GENERIC_ROLE_MAPPINGS_ROLES", "GENERIC_USER_ROLE_MAPPINGS", "GENERIC_ROLE_MAPPINGS_GROUP_CLAIM",
                 "GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE", "GENERIC_USER_ROLE_ATTRIBUTE", "PROXY_ADMIN_ID",
                 "LITELLM_SALT_KEY", "PROXY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_role_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sso.role_from_claims({"role": "proxy_admin_viewer"}, "u") == "proxy_admin_viewer"
    assert sso.role_from_claims({"role": "emperor"}, "u") is None
    assert sso.role_from_claims({}, "u") is None
    monkeypatch.setenv("GENERIC_USER_ROLE_ATTRIBUTE", "realm_access.roles")
    assert sso.role_from_claims({"realm_access": {"roles": ["offline", "internal_user"]}}, "u") == "internal_user"
    monkeypatch.setenv("PROXY_ADMIN_ID", "boss")
    assert sso.role_from_claims({}, "boss") == "proxy_admin"


@pytest.mark.parametrize("mapping", ['{"proxy_admin": ["admins"], "internal_user": ["staff"]}',
                                     "{'proxy_admin': ['admins'], 'internal_user': ['staff']}"])
def test_group_role_mappings(monkeypatch: pytest.MonkeyPatch, mapping: str) -> None:
    monkeypatch.setenv("GENERIC_ROLE_MAPPINGS_ROLES", mapping)
    monkeypatch.setenv("GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE", "internal_user_viewer")
    assert sso.role_from_claims({"groups": ["staff", "admins"]}, "u") == "proxy_admin"  # the most privileged
    assert sso.role_from_claims({"groups": ["staff"]}, "u") == "internal_user"
    assert sso.role_from_claims({"groups": ["others"], "role": "proxy_admin"}, "u") == "internal_user_viewer"
    monkeypatch.setenv("GENERIC_ROLE_MAPPINGS_GROUP_CLAIM", "teams")
    assert sso.role_from_claims({"teams": "admins"}, "u") == "proxy_admin"


def test_unreadable_mappings_fall_back_to_the_role_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENERIC_ROLE_MAPPINGS_ROLES", "not a dict")
    assert sso.role_from_claims({"role": "internal_user"}, "u") == "internal_user"


def test_flow_cookie_round_trip_and_forgery(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = _gw()
    data = {"s": "state", "n": "nonce", "v": "verifier", "e": int(time.time()) + 60}
    value = sso.seal(gw, data)
    assert sso.unseal(gw, value) == data
    body, _, mac = value.partition(".")
    assert sso.unseal(gw, body + "." + mac[::-1]) is None
    other = base64.urlsafe_b64encode(b'{"s":"mine","n":"x","v":"y","e":9999999999}').rstrip(b"=").decode()
    assert sso.unseal(gw, other + "." + mac) is None
    assert sso.unseal(gw, sso.seal(gw, {**data, "e": int(time.time()) - 1})) is None  # expired
    assert sso.unseal(_gw("sk-another-master-key"), value) is None
    monkeypatch.setenv("LITELLM_SALT_KEY", "salt-0123456789")  # the salt key takes precedence
    assert sso.unseal(gw, value) is None
    assert sso.unseal(gw, None) is None and sso.unseal(gw, "garbage") is None
    with pytest.raises(sso.SSOError):
        monkeypatch.delenv("LITELLM_SALT_KEY")
        sso.seal(_gw(None), data)


def test_redirect_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    scope = {"scheme": "http", "headers": [(b"host", b"gw.example:4000")]}
    assert sso.redirect_uri(scope) == "http://gw.example:4000/sso/callback"
    monkeypatch.setenv("PROXY_BASE_URL", "https://llm.example.com/")
    assert sso.redirect_uri(scope) == "https://llm.example.com/sso/callback"


def test_start_redirect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENERIC_CLIENT_ID", "cid")
    monkeypatch.setenv("GENERIC_AUTHORIZATION_ENDPOINT", "https://idp.example/authorize?tenant=1")
    monkeypatch.setenv("GENERIC_TOKEN_ENDPOINT", "https://idp.example/token")
    monkeypatch.setenv("GENERIC_SCOPE", "openid email")
    status, headers, _ = sso._start(_gw(), {"scheme": "https", "headers": [(b"host", b"gw")]})
    assert status == 303
    h = dict(headers)
    url = urllib.parse.urlsplit(h[b"location"].decode())
    q = dict(urllib.parse.parse_qsl(url.query))
    assert q["tenant"] == "1" and q["client_id"] == "cid" and q["scope"] == "openid email"
    assert q["redirect_uri"] == "https://gw/sso/callback" and q["code_challenge_method"] == "S256"
    cookie = h[b"set-cookie"].decode()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Path=/sso" in cookie
    flow = sso.unseal(_gw(), cookie.split(";")[0].split("=", 1)[1])
    assert flow is not None and flow["s"] == q["state"] and flow["n"] == q["nonce"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(flow["v"].encode()).digest()).rstrip(b"=").decode()
    assert q["code_challenge"] == challenge
    assert flow["v"] not in h[b"location"].decode()  # the verifier never leaves in the URL
