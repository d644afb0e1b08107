"""``POST /key/service-account/generate`` over both backends: a team key that belongs to no user, LiteLLM's
errors, who may make one, and that it serves requests and outlives its maker."""

from __future__ import annotations

from tests.management.conftest import Env, api_error, run


def test_service_account_keys(db_url: str) -> None:
    async def body(env: Env) -> None:
        boss = await env.user("boss")
        member = await env.user("member")
        await env.ok("POST", "/team/new", {"team_id": "t1", "models": ["gpt-a"], "members_with_roles": [
            {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "member"}]})
        out = await env.ok("POST", "/key/service-account/generate",
                           {"team_id": "t1", "key_alias": "svc", "user_id": "member"}, key=boss)
        assert out["key"].startswith("sk-") and out["team_id"] == "t1" and out.get("user_id") is None
        info = (await env.ok("GET", f"/key/info?key={out['key']}"))["info"]
        assert info["team_id"] == "t1" and info["user_id"] is None and info["key_alias"] == "svc"
        r = await env.call("POST", "/v1/chat/completions", {"model": "gpt-a", "messages": [
            {"role": "user", "content": "hi"}]}, key=out["key"])
        assert r.status == 200, r.body
        await env.ok("POST", "/user/delete", {"user_ids": ["boss"]})  # its maker gone, the key stays
        assert (await env.ok("GET", f"/key/info?key={out['key']}"))["info"]["key_alias"] == "svc"
        api_error(await env.call("POST", "/key/service-account/generate", {}), 400,
                  "team_id is required for service account keys. Please specify `team_id` in the request body.")
        api_error(await env.call("POST", "/key/service-account/generate", {"team_id": "nope"}), 400,
                  "team_id does not exist in the database.")
        api_error(await env.call("POST", "/key/service-account/generate", {"team_id": "t1"}, key=member), 403,
                  "Only the proxy admin or an admin of team=t1 can create service account keys")
        api_error(await env.call("POST", "/key/service-account/generate", {"team_id": "t1", "models": ["gpt-b"]}),
                  403, "Cannot grant models ['gpt-b']: not in team=t1 allowed models ['gpt-a']")
        made = await env.ok("POST", "/key/service-account/generate", {"team_id": "t1", "max_budget": 3})
        assert made["max_budget"] == 3 and made.get("user_id") is None

    run(db_url, body)
