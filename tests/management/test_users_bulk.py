"""``POST /user/bulk_update`` over both backends: named users each changed as ``/user/update`` changes them (one
that cannot be is a failed result, the others go through), every user at once with ``all_users``, LiteLLM's
wording for bodies that say neither or both, and its bound."""

from __future__ import annotations

from tests.management.conftest import Env, api_error, run


def test_bulk_update_of_named_users_and_of_all(db_url: str) -> None:
    async def body(env: Env) -> None:
        for uid in ("u1", "u2", "u3"):
            await env.ok("POST", "/user/new", {"user_id": uid, "user_email": f"{uid}@example.com",
                                               "auto_create_key": False})
        out = await env.ok("POST", "/user/bulk_update", {"users": [
            {"user_id": "u1", "max_budget": 5}, {"user_id": "ghost", "max_budget": 5},
            {"user_id": "u2", "user_role": "no-such-role"}]})
        assert out["total_requested"] == 3 and out["successful_updates"] == 1 and out["failed_updates"] == 2
        first, ghost, bad = out["results"]
        assert first["success"] and first["error"] is None and first["updated_user"]["max_budget"] == 5
        assert first["user_email"] == "u1@example.com"
        assert not ghost["success"] and ghost["updated_user"] is None and "ghost" in ghost["error"]
        assert not bad["success"] and "Invalid user_role" in bad["error"]
        out = await env.ok("POST", "/user/bulk_update", {"all_users": True, "user_updates": {"tpm_limit": 77}})
        assert out["successful_updates"] == out["total_requested"] >= 3 and out["failed_updates"] == 0
        for uid in ("u1", "u2", "u3"):
            assert (await env.store.get_user(uid)).tpm_limit == 77
        api_error(await env.call("POST", "/user/bulk_update", {}), 400,
               "Must specify either 'users' for individual updates or 'all_users=True' with 'user_updates'")
        api_error(await env.call("POST", "/user/bulk_update", {"users": [{"user_id": "u1"}], "all_users": True,
                                                             "user_updates": {}}), 400,
               "Cannot specify both 'users' and 'all_users=True'. Choose one approach.")
        api_error(await env.call("POST", "/user/bulk_update", {"all_users": True, "user_updates": {"password": "x"}}),
               400, "cannot set password")
        api_error(await env.call("POST", "/user/bulk_update", {"users": []}), 400, "No users found to update")
        api_error(await env.call("POST", "/user/bulk_update", {"users": [{"user_id": "u1"}] * 501}), 400,
               "Maximum 500 users can be updated at once. Found 501 users.")
        member = await env.user("plain")
        api_error(await env.call("POST", "/user/bulk_update", {"users": [{"user_id": "u1"}]}, key=member), 401,
               "Only proxy admin")

    run(db_url, body)
