"""JWT auth for API calls end to end: a real ``relaygate serve`` (two workers, SQLite store) with
``enable_jwt_auth``, a real JWKS server, the bench mock upstream, and the openai SDK as the client.

What is checked: an admin-scope token lists keys and creates a team, and is refused on chat (LiteLLM's default
``admin_allowed_routes``: the SDK's 401); a team token chats through the mock with the team's allow-list
enforced (a model outside it is the SDK's 401 ``PermissionDenied``/``Authentication`` error), lists models, is
refused on ``/key/generate`` (default ``team_allowed_routes``), its spend is attributed to the user its ``sub``
names and to the organization and end user its ``org`` / ``customer`` claims name (``/spend/logs``); a virtual
key and the master key work as without JWT auth; expired, tampered and wrong-audience tokens are the SDK's
401; the provider's new ``kid`` after a key rotation is accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bench.procs import MockHandle, start_mock
from tests.conftest import GatewayProc, start_gateway
from tests.ui.test_jwt_auth import AUD, JWKSServer, Signer

pytestmark = pytest.mark.e2e

MASTER = "sk-jwt-e2e-master-0123456789"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc, JWKSServer, Signer, MockHandle]]:
    tmp: Path = tmp_path_factory.mktemp("jwt")
    jwks = JWKSServer()
    k = Signer("e2e-1")
    jwks.keys = [k.jwk()]
    with start_mock(name="upstream") as mock:
        config = f"""
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{mock.openai_base}"}}
  - model_name: gpt-b
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{mock.openai_base}"}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp / "rg.db"}
  enable_jwt_auth: true
  litellm_jwtauth:
    team_id_jwt_field: team
    user_id_jwt_field: sub
    org_id_jwt_field: org
    end_user_id_jwt_field: customer
"""
        env = {"JWT_PUBLIC_KEY_URL": jwks.url, "JWT_AUDIENCE": AUD}
        try:
            with start_gateway(config, workers=2, env=env) as gw:
                yield gw, jwks, k, mock
        finally:
            jwks.close()


def _client(gw: GatewayProc, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=token, max_retries=0, timeout=15)


def _chat(gw: GatewayProc, token: str, model: str = "gpt-a") -> str:
    with _client(gw, token) as client:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    return r.choices[0].message.content or ""


def test_admin_and_team_tokens(stack: tuple[GatewayProc, JWKSServer, Signer, MockHandle]) -> None:
    gw, _, k, _ = stack
    admin = k.token(scope="litellm_proxy_admin")
    h = {"authorization": f"Bearer {admin}"}
    r = httpx.get(f"{gw.url}/key/list", headers=h)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gw.url}/team/new", headers=h, json={"team_id": "eng", "models": ["gpt-a"]})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gw.url}/user/new", headers=h, json={"user_id": "alice", "user_role": "internal_user"})
    assert r.status_code == 200, r.text

    team = k.token(team="eng", sub="alice")
    for _ in range(4):  # both workers: each verifies once, then serves from its cache
        assert _chat(gw, team)
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(gw, team, "gpt-b")
    assert "key not allowed to access model" in str(exc.value)
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(gw, k.token(team="ghost"))
    assert "Team doesn't exist in db. Team=ghost" in str(exc.value)

    rows = _spend_rows(gw, {"user_id": "alice"}, 4)
    assert len(rows) >= 4 and all(row["team_id"] == "eng" and row["user"] == "alice" for row in rows), rows


def _spend_rows(gw: GatewayProc, params: dict[str, str], want: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{gw.url}/spend/logs", params=params, headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200, r.text
        body = r.json()
        rows = body if isinstance(body, list) else body.get("data", [])
        if len(rows) >= want:
            break
        time.sleep(0.2)
    return rows


def test_route_permissions_and_claims(stack: tuple[GatewayProc, JWKSServer, Signer, MockHandle]) -> None:
    gw, _, k, _ = stack
    master = {"authorization": f"Bearer {MASTER}"}
    r = httpx.post(f"{gw.url}/team/new", headers=master, json={"team_id": "ops", "models": ["gpt-a"]})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gw.url}/organization/new", headers=master,
                   json={"organization_id": "acme", "organization_alias": "Acme"})
    assert r.status_code == 200, r.text

    # an admin token: management yes, LLM routes no (LiteLLM's default admin_allowed_routes)
    admin = k.token(scope="litellm_proxy_admin")
    assert httpx.get(f"{gw.url}/key/list", headers={"authorization": f"Bearer {admin}"}).status_code == 200
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(gw, admin)
    assert exc.value.status_code == 401 and "Admin not allowed to access this route" in str(exc.value)

    # a team token: LLM and info routes yes, key management no (LiteLLM's default team_allowed_routes)
    team = k.token(team="ops", sub="dave", org="acme", customer="cust-42")
    with _client(gw, team) as client:
        assert [m.id for m in client.models.list()] == ["gpt-a"]
    for _ in range(3):
        assert _chat(gw, team)
    r = httpx.post(f"{gw.url}/key/generate", headers={"authorization": f"Bearer {team}"}, json={"team_id": "ops"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["message"].startswith("Authentication Error, Team not allowed to access this route. "
                                                   "Route=/key/generate")
    with pytest.raises(openai.AuthenticationError) as exc:
        _chat(gw, k.token(team="ops", org="no-such-org"))
    assert "Organization doesn't exist in db. Organization=no-such-org" in str(exc.value)

    rows = _spend_rows(gw, {"user_id": "dave"}, 3)
    assert len(rows) >= 3, rows
    assert all(row["organization_id"] == "acme" and row["end_user"] == "cust-42" and row["team_id"] == "ops"
               for row in rows), rows

    # a virtual key and the master key: as without JWT auth
    r = httpx.post(f"{gw.url}/key/generate", headers=master, json={"models": ["gpt-a"]})
    assert r.status_code == 200, r.text
    key = r.json()["key"]
    assert _chat(gw, key) and _chat(gw, MASTER, "gpt-b")
    with pytest.raises(openai.AuthenticationError):
        _chat(gw, key, "gpt-b")
    r = httpx.get(f"{gw.url}/key/info", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text


def test_bad_tokens_are_the_sdks_401(stack: tuple[GatewayProc, JWKSServer, Signer, MockHandle]) -> None:
    gw, _, k, _ = stack
    good = k.token(scope="litellm_proxy_admin")
    head, _, sig = good.split(".")
    import jwt

    forged_body = jwt.utils.base64url_encode(json.dumps(
        {**jwt.decode(good, options={"verify_signature": False}), "sub": "mallory"}).encode()).decode()
    for token in (k.token(ttl=-60, scope="litellm_proxy_admin"), f"{head}.{forged_body}.{sig}",
                  k.token(scope="litellm_proxy_admin", aud="elsewhere")):
        with pytest.raises(openai.AuthenticationError) as exc:
            _chat(gw, token)
        assert exc.value.status_code == 401
        assert "Authentication Error" in str(exc.value)


def test_key_rotation(stack: tuple[GatewayProc, JWKSServer, Signer, MockHandle]) -> None:
    gw, jwks, k, _ = stack
    new = Signer("e2e-2")
    jwks.keys = [k.jwk(), new.jwk()]
    time.sleep(2.1)  # past the workers' minimum interval between refetches
    r = httpx.get(f"{gw.url}/key/list", headers={"authorization": f"Bearer {new.token(scope='litellm_proxy_admin')}"})
    assert r.status_code == 200, r.text
    jwks.keys = [new.jwk()]
