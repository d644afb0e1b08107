"""``POST /key/{key}/reset_spend`` and ``POST /global/spend/reset`` over both backends: LiteLLM's bodies,
checks, wording and answers, who may call them, and what they leave alone (budget_reset_at, users, spend logs
and counters)."""

from __future__ import annotations

from typing import Any

from relaygate.store import Budget, hash_token
from tests.management.conftest import Env, api_error, run


async def _key(env: Env, spend: float, **fields: Any) -> str:
    key = str((await env.ok("POST", "/key/generate", fields))["key"])
    await env.ok("POST", "/key/update", {"key": key, "spend": spend})
    return key


def test_reset_spend_sets_the_key_back_and_answers_as_litellm(db_url: str) -> None:
    async def body(env: Env) -> None:
        key = await _key(env, 5.0, max_budget=10.0, budget_duration="30d")
        before = (await env.ok("GET", f"/key/info?key={key}"))["info"]
        out = await env.ok("POST", f"/key/{key}/reset_spend", {"reset_to": 2})
        token = hash_token(key)
        assert out["key_hash"] == token and out["spend"] == 2.0 and out["previous_spend"] == 5.0
        assert out["max_budget"] == 10.0 and out["budget_reset_at"] == before["budget_reset_at"] is not None
        info = (await env.ok("GET", f"/key/info?key={key}"))["info"]
        assert info["spend"] == 2.0 and info["budget_reset_at"] == before["budget_reset_at"]
        out = await env.ok("POST", f"/key/{token}/reset_spend", {"reset_to": 0.0})  # by its hash too
        assert out["previous_spend"] == 2.0 and out["spend"] == 0.0

    run(db_url, body)


def test_reset_spend_checks_the_value_as_litellm(db_url: str) -> None:
    async def body(env: Env) -> None:
        key = await _key(env, 5.0, max_budget=10.0)
        path = f"/key/{key}/reset_spend"
        api_error(await env.call("POST", path, {"reset_to": -1}), 400, "reset_to must be >= 0")
        api_error(await env.call("POST", path, {"reset_to": 6}), 400, "reset_to (6.0) must be <= current spend (5.0)")
        api_error(await env.call("POST", path, {}), 400, "reset_to")
        api_error(await env.call("POST", path, {"reset_to": True}), 400, "reset_to")
        api_error(await env.call("POST", path, {"reset_to": "1"}), 400, "reset_to")
        api_error(await env.call("POST", path, b"{not json"), 400, "")
        over = await _key(env, 20.0, max_budget=10.0)  # spent past its budget: reset_to at most the budget
        api_error(await env.call("POST", f"/key/{over}/reset_spend", {"reset_to": 15}), 400,
               "reset_to (15.0) must be <= budget (10.0)")
        budget = await env.store.create_budget(Budget(budget_id="b-small", max_budget=3.0))
        row = await _key(env, 5.0, budget_id=budget.budget_id)  # the budget row's max_budget binds too
        api_error(await env.call("POST", f"/key/{row}/reset_spend", {"reset_to": 4}), 400,
               "reset_to (4.0) must be <= budget (3.0)")
        assert (await env.ok("POST", f"/key/{row}/reset_spend", {"reset_to": 3}))["spend"] == 3.0
        api_error(await env.call("POST", "/key/sk-nobody-has-this/reset_spend", {"reset_to": 0}), 404,
               f"Key {hash_token('sk-nobody-has-this')} not found.")
        for k in (key, over):  # nothing refused was written
            assert (await env.ok("GET", f"/key/info?key={k}"))["info"]["spend"] in (5.0, 20.0)

    run(db_url, body)


def test_reset_spend_is_for_the_proxy_admin_and_the_team_admin(db_url: str) -> None:
    async def body(env: Env) -> None:
        boss = await env.user("boss")
        worker = await env.user("worker")
        await env.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": [
            {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "worker"}]})
        viewer = await env.user("watcher", "proxy_admin_viewer")
        team_key = await _key(env, 4.0, team_id="t1", user_id="worker")
        own_key = str((await env.ok("POST", "/key/generate", {"user_id": "worker"}))["key"])
        await env.ok("POST", "/key/update", {"key": own_key, "spend": 4.0})
        refused = "You must be a proxy admin or team admin to reset key spend"
        api_error(await env.call("POST", f"/key/{team_key}/reset_spend", {"reset_to": 0}, key=worker), 403, refused)
        api_error(await env.call("POST", f"/key/{own_key}/reset_spend", {"reset_to": 0}, key=worker), 403, refused)
        api_error(await env.call("POST", f"/key/{own_key}/reset_spend", {"reset_to": 0}, key=boss), 403, refused)
        # a caller who may not reset learns nothing about the key: not whether it exists, nor its spend
        api_error(await env.call("POST", "/key/sk-missing-key/reset_spend", {"reset_to": 0}, key=worker), 403, refused)
        api_error(await env.call("POST", f"/key/{team_key}/reset_spend", {"reset_to": 99}, key=worker), 403, refused)
        api_error(await env.call("POST", f"/key/{team_key}/reset_spend", {"reset_to": 0}, key=viewer), 401,
               "Only proxy admin")
        out = await env.ok("POST", f"/key/{team_key}/reset_spend", {"reset_to": 1.5}, key=boss)
        assert out["spend"] == 1.5 and out["previous_spend"] == 4.0
        assert (await env.ok("GET", f"/key/info?key={own_key}"))["info"]["spend"] == 4.0

    run(db_url, body)


def test_global_spend_reset_zeroes_keys_and_teams_only(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "t1"})
        await env.store.update_team("t1", spend=7.0)
        keys = [await _key(env, 1.0 + i) for i in range(3)]
        await env.ok("POST", "/user/new", {"user_id": "u1", "spend": 4.0, "auto_create_key": False})
        version = await env.store.change_version()
        out = await env.ok("POST", "/global/spend/reset")
        assert out == {"message": "Spend for all API Keys and Teams reset successfully", "status": "success"}
        assert await env.store.change_version() > version  # every worker reads its keys again
        for k in keys:
            assert (await env.ok("GET", f"/key/info?key={k}"))["info"]["spend"] == 0.0
        assert (await env.store.get_team("t1")).spend == 0.0
        assert (await env.store.get_user("u1")).spend == 4.0  # as LiteLLM: keys and teams only

    run(db_url, body)


def test_global_spend_reset_is_for_the_master_key_only(db_url: str) -> None:
    async def body(env: Env) -> None:
        admin = await env.user("root", "proxy_admin")  # a virtual key with the admin role: refused, as LiteLLM
        key = await _key(env, 3.0)
        version = await env.store.change_version()
        for caller in (admin, key):
            api_error(await env.call("POST", "/global/spend/reset", key=caller), 401,
                   "Authentication Error, Tried to access route=/global/spend/reset, which is only for MASTER KEY")
        assert await env.store.change_version() == version
        assert (await env.ok("GET", f"/key/info?key={key}"))["info"]["spend"] == 3.0

    run(db_url, body)
