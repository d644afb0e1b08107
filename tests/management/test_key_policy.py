"""LiteLLM's key-generation settings on both backends (``config.key_policy``): ``default_key_generate_params``
fills a new key, ``upperbound_key_generate_params`` bounds every key (and fills a new key that names no
bounded value), ``key_generation_settings`` says who may mint team and personal keys and what they must
send. Before, all three were warned about and ignored: any user with a key could mint keys without a
budget or an expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.config import load_config
from relaygate.config.errors import ConfigError
from tests.management.conftest import Env, run

POLICY = {
    "default_key_generate_params": {"max_budget": 1.5, "models": ["gpt-a"], "metadata": {"source": "default"}},
    "upperbound_key_generate_params": {"max_budget": 10, "tpm_limit": 1000, "duration": "30d",
                                       "budget_duration": "7d"},
    "key_generation_settings": {
        "team_key_generation": {"allowed_team_member_roles": ["admin"], "required_params": ["key_alias"]},
        "personal_key_generation": {"allowed_user_roles": ["proxy_admin", "internal_user"],
                                    "required_params": ["key_alias"]},
    },
}


def test_defaults_bounds_and_who_may_mint(db_url: str) -> None:
    async def body(env: Env) -> None:
        # the master key too: defaults, then the bounds fill what is left
        out = await env.ok("POST", "/key/generate", {"key_alias": "first"})
        assert out["max_budget"] == 1.5 and out["models"] == ["gpt-a"] and out["metadata"] == {"source": "default"}
        assert out["tpm_limit"] == 1000 and out["budget_duration"] == "7d" and out["expires"] is not None
        # over a bound: LiteLLM's 400 and words
        for sent, name in (({"max_budget": 11}, "max_budget"), ({"tpm_limit": 1001}, "tpm_limit"),
                           ({"duration": "31d"}, "duration"), ({"duration": "-1"}, "duration"),
                           ({"budget_duration": "1mo"}, "budget_duration")):
            r = await env.call("POST", "/key/generate", {**sent, "key_alias": "over"})
            assert r.status == 400, sent
            err = r.json()["error"]
            assert err["message"].startswith(f"{name} is over max limit set in config - user_value=") and \
                err["param"] == name
        ok = await env.ok("POST", "/key/generate", {"max_budget": 10, "duration": "1h", "models": ["gpt-b"],
                                                    "key_alias": "bounded"})
        assert ok["max_budget"] == 10 and ok["models"] == ["gpt-b"]
        # an update is checked, not filled
        r = await env.call("POST", "/key/update", {"key": ok["key"], "max_budget": 50})
        assert r.status == 400 and "max_budget is over max limit" in r.json()["error"]["message"]
        assert (await env.ok("POST", "/key/update", {"key": ok["key"], "key_alias": "renamed"}))["max_budget"] == 10

        # personal keys: with the required params (a default counts as sent, as in LiteLLM)
        alice = await env.user("alice", models=["gpt-a", "gpt-b"], key_alias="alice-own")
        r = await env.call("POST", "/key/generate", {"models": ["gpt-a"]}, key=alice)
        assert r.status == 400 and r.json()["error"]["message"] == "Required param key_alias not in data"
        assert (await env.ok("POST", "/key/generate", {"key_alias": "alice-2"}, key=alice))["user_id"] == "alice"

        # team keys: the member's team role must be listed, and key_alias sent
        bob = await env.user("bob", models=["gpt-a"], key_alias="bob-own")
        await env.ok("POST", "/team/new", {"team_id": "t", "models": ["gpt-a"], "members_with_roles": [
            {"role": "admin", "user_id": "alice"}, {"role": "user", "user_id": "bob"}]})
        r = await env.call("POST", "/key/generate", {"team_id": "t", "key_alias": "b"}, key=bob)
        assert r.status == 400 and "Team member role user not in allowed_team_member_roles=['admin']" in \
            r.json()["error"]["message"]
        r = await env.call("POST", "/key/generate", {"team_id": "t"}, key=alice)
        assert r.status == 400 and r.json()["error"]["message"] == "Required param key_alias not in data"
        assert (await env.ok("POST", "/key/generate", {"team_id": "t", "key_alias": "team-a"}, key=alice))[
            "team_id"] == "t"

    run(db_url, body, POLICY)


def test_only_listed_roles_mint_personal_keys(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice", models=["gpt-a"])
        r = await env.call("POST", "/key/generate", {}, key=alice)
        assert r.status == 400
        assert r.json()["error"]["message"] == ("Personal key creation has been restricted by admin. Allowed "
                                                "roles=['proxy_admin']. Your role=internal_user")
        assert (await env.ok("POST", "/key/generate", {}))["key"]  # the proxy admin is listed

    run(db_url, body, {"key_generation_settings": {"personal_key_generation": {"allowed_user_roles": ["proxy_admin"]}}})


@pytest.mark.parametrize(("settings", "field"), [
    ({"upperbound_key_generate_params": {"max_budget": "lots"}}, "litellm_settings.upperbound_key_generate_params.max_budget"),
    ({"upperbound_key_generate_params": {"duration": "forever"}}, "litellm_settings.upperbound_key_generate_params.duration"),
    ({"upperbound_key_generate_params": {"models": ["a"]}}, "litellm_settings.upperbound_key_generate_params.models"),
    ({"default_key_generate_params": ["x"]}, "litellm_settings.default_key_generate_params"),
    ({"key_generation_settings": {"team_key_generation": {"allowed_team_member_roles": "admin"}}},
     "litellm_settings.key_generation_settings.team_key_generation.allowed_team_member_roles"),
    ({"key_generation_settings": {"someone_else": {}}}, "litellm_settings.key_generation_settings"),
])
def test_mistakes_name_the_setting(tmp_path: Path, settings: dict[str, object], field: str) -> None:
    import yaml

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"litellm_settings": settings}))
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg))
    assert info.value.field == field


def test_check_grant_team_models_follow_the_team_without_escalating() -> None:
    """A team key with no models (or ``all-team-models``) is stored as asked: the team's models, as they
    change. A restricted grantor cannot reach past its own list that way: an unrestricted team's key from it
    gets the grantor's list, and a team model the grantor lacks is refused."""
    import pytest as _pytest

    from relaygate.core.errors import GatewayError
    from relaygate.management.common import Caller, check_grant
    from relaygate.store import Team

    admin = Caller("proxy_admin", None)  # type: ignore[arg-type]
    user = Caller("internal_user", None, models=frozenset({"a", "b"}))  # type: ignore[arg-type]
    listed, open_team, wider = Team(team_id="t", models=["a"]), Team(team_id="o"), Team(team_id="w", models=["a", "z"])
    assert check_grant(admin, [], {}, listed) == [] and check_grant(user, [], {}, listed) == []
    assert check_grant(user, ["all-team-models"], {}, listed) == ["all-team-models"]
    assert check_grant(user, [], {}, open_team) == ["a", "b"]  # every model from a restricted grantor: its list
    assert check_grant(user, ["all-team-models"], {}, open_team) == ["a", "b"]
    assert check_grant(admin, [], {}, None) == [] and check_grant(user, [], {}, None) == ["a", "b"]
    for models, team in (([], wider), (["all-team-models"], wider), (["all-team-models"], None), (["z"], listed)):
        with _pytest.raises(GatewayError):
            check_grant(user, models, {}, team)
