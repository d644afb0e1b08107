"""JWT auth for API calls (``enable_jwt_auth``, ``auth.jwt_auth``) through the gateway called in-process, with a
real SQLite store and a real JWKS served over HTTP by a local server (RSA keys made with ``cryptography``,
tokens signed with PyJWT).

What is checked: the admin scope is the proxy admin (``/key/list``); a team token gets the team's allow-list;
an unknown team is LiteLLM's 401; expired, tampered, wrong-audience, HMAC-signed and unknown-kid tokens are
401s; a verified token is cached until its ``exp`` (one signature check for many requests); a new ``kid``
is fetched when the provider rotates its keys, and made-up kids cost at most one fetch per interval; a
blocked team and a team over its budget are refused; with ``enable_jwt_auth`` off a JWT is just an unknown key.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import Budget, Store, Team, TeamMember, User
from tests.asgi.conftest import Reply, call

T = TypeVar("T")
MASTER = "sk-master-jwt-auth-0123"
AUD = "relaygate-api"


class Signer:
    """An RSA key pair with a kid: signs tokens, publishes its public JWK."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**d, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def token(self, ttl: float = 300, **claims: Any) -> str:
        now = int(time.time())
        body = {"iat": now, "exp": now + int(ttl), "aud": AUD, "sub": "someone", **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


class JWKSServer:
    """A JWKS endpoint whose keys a test can change (key rotation); counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks(monkeypatch: pytest.MonkeyPatch) -> Iterator[JWKSServer]:
    s = JWKSServer()
    monkeypatch.setenv("JWT_PUBLIC_KEY_URL", s.url)
    monkeypatch.setenv("JWT_AUDIENCE", AUD)
    try:
        yield s
    finally:
        s.close()


class Env:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        assert gw.store is not None
        self.store: Store = gw.store

    async def chat(self, token: str, model: str = "gpt-a") -> Reply:
        return await call(self.gw, "POST", "/v1/chat/completions",
                          {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                          headers={"authorization": f"Bearer {token}"})

    async def get(self, token: str, path: str) -> Reply:
        return await call(self.gw, "GET", path, headers={"authorization": f"Bearer {token}"})


def run(tmp_path: Path, body: Callable[[Env], Awaitable[T]], enable: bool = True, **jwtauth: Any) -> T:
    async def main() -> Any:
        gw = Gateway(from_litellm({
            "model_list": [{"model_name": "gpt-a", "litellm_params": {"model": "mock/echo"}},
                           {"model_name": "gpt-c", "litellm_params": {"model": "mock/echo"}}],
            "general_settings": {"master_key": MASTER, "database_url": f"sqlite:///{tmp_path / 'rg.db'}",
                                 "enable_jwt_auth": enable,
                                 "litellm_jwtauth": {"team_id_jwt_field": "team", "user_id_jwt_field": "sub",
                                                     **jwtauth}},
        }, "<test>"))
        await gw.startup()
        try:
            return await body(Env(gw))
        finally:
            await gw.shutdown()

    return asyncio.run(main())  # type: ignore[no-any-return]


def _error(r: Reply) -> dict[str, Any]:
    out: dict[str, Any] = r.json()["error"]
    return out


def test_admin_scope_is_the_proxy_admin(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        admin = k.token(scope="openid litellm_proxy_admin")
        r = await env.get(admin, "/key/list")
        assert r.status == 200, r.body
        r = await env.chat(admin, "gpt-c")  # LiteLLM's default admin_allowed_routes hold no LLM route
        assert r.status == 401 and "Admin not allowed to access this route" in _error(r)["message"]
        plain = k.token(scope="openid")  # no admin scope, no team: a user (sub) the store does not know
        r = await env.get(k.token(scope="openid", sub=""), "/key/list")
        assert r.status == 401 and "maps to no team or user" in _error(r)["message"]
        r = await env.get(plain, "/user/info")
        assert r.status == 404 and _error(r)["message"] == "User not found: someone"  # its own id, not in the store

    run(tmp_path, body)


def test_team_token_gets_the_team_allow_list(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng", models=["gpt-a"]))
        await env.store.create_user(User(user_id="alice", user_role="internal_user"))
        t = k.token(team="eng", sub="alice")
        r = await env.chat(t, "gpt-a")
        assert r.status == 200, r.body
        r = await env.chat(t, "gpt-c")
        assert r.status == 401 and _error(r)["type"] == "key_model_access_denied"
        p = env.gw.runtime.principals.cache.stale(__import__("hashlib").sha256(t.encode()).hexdigest())
        assert p is not None and p.team_id == "eng" and p.user_id == "alice"
        # a key-creating management call is refused: not in LiteLLM's default team_allowed_routes
        r = await call(env.gw, "POST", "/key/generate", {"team_id": "eng"}, headers={"authorization": f"Bearer {t}"})
        assert r.status == 401 and "Team not allowed to access this route" in _error(r)["message"], r.body
        r = await env.chat(k.token(team="nope"), "gpt-a")
        assert r.status == 401
        assert "Team doesn't exist in db. Team=nope" in _error(r)["message"]

    run(tmp_path, body)


def test_team_member_rate_limit_binds_a_jwt(tmp_path: Path, jwks: JWKSServer) -> None:
    """A JWT naming a team and a user pays the user's rate limit as a member of the team (its membership's
    budget row, else the team's default member budget), as a virtual key of that user in that team does."""
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        await env.store.create_budget(Budget(budget_id="members-default", rpm_limit=2))
        await env.store.create_team(Team(team_id="eng", models=["gpt-a"],
                                         metadata={"team_member_budget_id": "members-default"}),
                                    [TeamMember(team_id="eng", user_id="alice")])
        await env.store.create_user(User(user_id="alice", user_role="internal_user"))
        await env.store.create_user(User(user_id="bob", user_role="internal_user"))
        alice, bob = k.token(team="eng", sub="alice"), k.token(team="eng", sub="bob")
        r = await env.chat(alice)
        assert r.status == 200 and r.headers["x-ratelimit-team_member-limit-requests"] == "2"
        assert (await env.chat(alice)).status == 200
        r = await env.chat(alice)
        assert r.status == 429 and "rate limit type = team_member" in _error(r)["message"]
        assert [(await env.chat(bob)).status for _ in range(3)] == [200] * 3  # not a member: no member limit

    run(tmp_path, body)


def test_bad_tokens_are_401(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    other = Signer("k1")  # same kid, another key: a forged signature
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng"))
        cases = {
            "expired": k.token(ttl=-120, team="eng"),
            "forged": other.token(team="eng"),
            "audience": k.token(team="eng", aud="someone-else"),
            "hmac": jwt.encode({"team": "eng", "exp": int(time.time()) + 60, "aud": AUD}, "secret" * 6,
                               algorithm="HS256", headers={"kid": "k1"}),
            "kid": Signer("unknown").token(team="eng"),
        }
        good = k.token(team="eng")
        head, _, sig = good.split(".")
        tampered_payload = jwt.utils.base64url_encode(json.dumps(
            {**jwt.decode(good, options={"verify_signature": False}), "team": "other"}).encode()).decode()
        cases["tampered"] = f"{head}.{tampered_payload}.{sig}"
        for name, token in cases.items():
            r = await env.chat(token)
            assert r.status == 401, (name, r.body)
            e = _error(r)
            assert e["type"] == "auth_error" and e["message"].startswith("Authentication Error"), (name, e)
        assert "expired" in _error(await env.chat(cases["expired"]))["message"]
        assert "audience" in _error(await env.chat(cases["audience"]))["message"]
        assert (await env.chat(good)).status == 200

    run(tmp_path, body)


def test_cached_until_exp_and_key_rotation(tmp_path: Path, jwks: JWKSServer) -> None:
    old, new = Signer(f"old-{uuid.uuid4().hex[:6]}"), Signer(f"new-{uuid.uuid4().hex[:6]}")
    jwks.keys = [old.jwk()]

    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng"))
        t = old.token(team="eng")
        jwt_auth = env.gw.runtime.principals.jwt
        first = await asyncio.gather(*(env.chat(t) for _ in range(5)))  # concurrent: one shared check
        assert [r.status for r in first] == [200] * 5
        for _ in range(5):
            assert (await env.chat(t)).status == 200
        assert jwt_auth.verified == 1  # one signature check, then the principal cache
        fetches = jwks.fetches
        await asyncio.sleep(2.1)  # refetches for unknown kids are at most one per 2 s (JWKS.min_refresh)
        jwks.keys = [old.jwk(), new.jwk()]  # the provider rotates: a new kid appears
        assert (await env.chat(new.token(team="eng"))).status == 200
        assert jwks.fetches == fetches + 1
        # made-up kids right after: no new fetch inside the refresh interval
        for i in range(5):
            assert (await env.chat(Signer(f"bogus{i}").token(team="eng"))).status == 401
        assert jwks.fetches == fetches + 1
        # a token that expires soon is cached no longer than its exp
        short = old.token(ttl=2, team="eng")
        assert (await env.chat(short)).status == 200
        await asyncio.sleep(2.5)
        r = await env.chat(short)
        assert r.status == 401 and "expired" in _error(r)["message"]

    run(tmp_path, body)


def test_blocked_team_and_team_budget(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        await env.store.create_team(Team(team_id="eng", blocked=True))
        r = await env.chat(k.token(team="eng"))
        assert r.status == 401 and "Team=eng is blocked" in _error(r)["message"]
        await env.store.create_team(Team(team_id="broke", max_budget=0.5, spend=1.0))
        await env.gw.budgets.refresh()  # the guard learns that budgets exist (its periodic poll, done now)
        r = await env.chat(k.token(team="broke"))
        assert r.status == 422 and "Budget has been exceeded" in _error(r)["message"], r.body

    run(tmp_path, body)


def test_upserts_and_default_team(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        r = await env.chat(k.token(team="made-on-the-fly", sub="newbie"))
        assert r.status == 200, r.body
        team = await env.store.get_team("made-on-the-fly")
        user = await env.store.get_user("newbie")
        assert team.team_id == "made-on-the-fly" and user.user_role == "internal_user_viewer"

    run(tmp_path, body, team_id_upsert=True, user_id_upsert=True)


def test_off_a_jwt_is_an_unknown_key(tmp_path: Path, jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def body(env: Env) -> None:
        assert env.gw.runtime.principals.jwt is None
        r = await env.chat(k.token(scope="litellm_proxy_admin"))
        assert r.status == 401 and "Invalid proxy server token" in _error(r)["message"]
        assert jwks.fetches == 0

    run(tmp_path, body, enable=False)


def test_admin_token_without_a_database(jwks: JWKSServer) -> None:
    k = Signer("k1")
    jwks.keys = [k.jwk()]

    async def main() -> None:
        gw = Gateway(from_litellm({
            "model_list": [{"model_name": "gpt-a", "litellm_params": {"model": "mock/echo"}}],
            "general_settings": {"master_key": MASTER, "enable_jwt_auth": True},
        }, "<test>"))
        await gw.startup()
        try:
            env = Env.__new__(Env)
            env.gw = gw
            r = await env.get(k.token(scope="litellm_proxy_admin"), "/v1/models")  # an info route
            assert r.status == 200, r.body
            r = await env.chat(k.token(team="eng"))
            assert r.status == 503 and "needs the database" in _error(r)["message"]
            r = await env.chat("sk-not-a-key")
            assert r.status == 401 and "Invalid proxy server token" in _error(r)["message"]
        finally:
            await gw.shutdown()

    asyncio.run(main())
