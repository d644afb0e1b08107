"""Team-based logging and a team's enforced params for callers who authenticate with a JWT (``enable_jwt_auth``),
as for a team's virtual keys: a real ``relaygate serve`` (SQLite store), a real JWKS server and Langfuse
stand-ins. The token's team claim names the team; its row's ``/team/{id}/callback`` project, the config's
``default_team_settings`` and ``/team/{id}/disable_logging`` decide where its requests are logged, and the
row's ``metadata.enforced_params`` what each request must carry."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_gateway
from tests.observe.langfuse_server import LangfuseServer
from tests.observe.test_all_exporters_e2e import wait
from tests.observe.test_team_logging_e2e import generations
from tests.ui.test_jwt_auth import AUD, JWKSServer, Signer

pytestmark = pytest.mark.e2e

MASTER = "sk-jwt-team-logging"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def test_a_tokens_team_logs_where_its_keys_would(tmp_path: Path) -> None:
    jwks = JWKSServer()
    signer = Signer("tl-1")
    jwks.keys = [signer.jwk()]
    with LangfuseServer() as lf, LangfuseServer("pk-own", "sk-own") as lf_own, \
            LangfuseServer("pk-cfg", "sk-cfg") as lf_cfg:
        config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["langfuse"]
  default_team_settings:
    - team_id: configured
      success_callback: ["langfuse"]
      langfuse_public_key: pk-cfg
      langfuse_secret_key: sk-cfg
      langfuse_host: {lf_cfg.url}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp_path / "rg.db"}
  enable_jwt_auth: true
  litellm_jwtauth: {{team_id_jwt_field: team, user_id_jwt_field: sub}}
"""
        env = {"JWT_PUBLIC_KEY_URL": jwks.url, "JWT_AUDIENCE": AUD, "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
               "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": lf.url, "LANGFUSE_FLUSH_INTERVAL": "0.05"}
        try:
            with start_gateway(config, env=env) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
                for team, metadata in (("own", {}), ("configured", {}), ("quiet", {}), ("plain", {}),
                                       ("strict", {"enforced_params": ["user"]})):
                    r = c.post("/team/new", headers=AUTH, json={"team_id": team, "metadata": metadata})
                    assert r.status_code == 200, r.text
                r = c.post("/team/own/callback", headers=AUTH, json={
                    "callback_name": "langfuse", "callback_type": "success",
                    "callback_vars": {"langfuse_public_key": "pk-own", "langfuse_secret_key": "sk-own",
                                      "langfuse_host": lf_own.url}})
                assert r.status_code == 200, r.text
                assert c.post("/team/quiet/disable_logging", headers=AUTH).status_code == 200

                def chat(team: str, **extra: str) -> httpx.Response:
                    token = signer.token(team=team, sub=f"user-{team}")
                    return c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                                  json={"model": "m", "messages": [{"role": "user", "content": f"from {team}"}],
                                        **extra})

                ids: dict[str, set[str]] = {}
                for team in ("own", "configured", "quiet", "plain"):
                    for _ in range(3):
                        r = chat(team)
                        assert r.status_code == 200, r.text
                        ids.setdefault(team, set()).add(r.headers["x-litellm-call-id"])

                r = chat("strict")  # the team's enforced params hold for its tokens too
                assert r.status_code == 400 and "user" in r.json()["error"]["message"], r.text
                assert chat("strict", user="someone").status_code == 200

                assert wait(lambda: generations(lf_own) >= ids["own"] and generations(lf_cfg) >= ids["configured"]
                            and generations(lf) >= ids["plain"])
                time.sleep(0.5)
        finally:
            jwks.close()
        assert generations(lf_own) == ids["own"]  # the team's own project, not the configured one
        assert generations(lf_cfg) == ids["configured"]
        assert not generations(lf) & (ids["own"] | ids["configured"] | ids["quiet"])  # quiet: logged nowhere
        assert ids["plain"] <= generations(lf)
