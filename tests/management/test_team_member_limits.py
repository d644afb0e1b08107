"""LiteLLM's team member limits on both backends, through the management API and a member's keys:
``team_member_rpm_limit`` / ``team_member_tpm_limit`` (the team's default member budget row), a member's own
``rpm_limit`` / ``tpm_limit`` / ``budget_duration`` / ``max_budget_in_team`` by ``/team/member_update`` (a
merge patch; a shared row copied, never written in place), ``budget_duration`` on ``/team/member_add``, and
the fields relaygate does not keep refused by name."""

from __future__ import annotations

from typing import Any

from tests.asgi.conftest import Reply
from tests.management.conftest import Env, api_error, run


async def chat(env: Env, key: str, **body: Any) -> Reply:
    return await env.call("POST", "/v1/chat/completions",
                          {"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}], **body}, key=key)


async def statuses(env: Env, key: str, n: int) -> list[int]:
    return [(await chat(env, key)).status for _ in range(n)]


async def team_with(env: Env, *members: str, **fields: Any) -> None:
    await env.ok("POST", "/team/new", {"team_id": "t", "team_alias": "alpha", **fields,
                                       "members_with_roles": [{"role": "user", "user_id": m} for m in members]})


async def member_key(env: Env, user_id: str) -> str:
    return str((await env.ok("POST", "/key/generate", {"team_id": "t", "user_id": user_id}))["key"])


def test_default_member_rpm_limit_binds_each_member_across_its_keys(db_url: str) -> None:
    async def body(env: Env) -> None:
        await team_with(env, "ann", "ben", team_member_rpm_limit=2)
        ann1, ann2, ben = await member_key(env, "ann"), await member_key(env, "ann"), await member_key(env, "ben")
        assert (await chat(env, ann1)).status == 200
        r = await chat(env, ann2)  # the member's bucket is shared by its keys of the team
        assert r.status == 200 and r.headers["x-ratelimit-team_member-limit-requests"] == "2"
        r = await chat(env, ann1)
        api_error(r, 429, "rate limit type = team_member")
        assert "rpm limit: 2" in r.json()["error"]["message"] and int(r.headers["retry-after"]) >= 1
        assert await statuses(env, ben, 3) == [200, 200, 429]  # each member its own
        me = await env.ok("GET", "/team/t/members/me", key=ben)  # the default member budget binds it
        assert me["litellm_budget_table"]["rpm_limit"] == 2 and me["budget_id"] == me["litellm_budget_table"][
            "budget_id"]
        solo = await env.user("cat")  # a key of the same gateway outside the team: not a member
        assert await statuses(env, solo, 3) == [200, 200, 200]
        outside = str((await env.ok("POST", "/key/generate", {"team_id": "t"}))["key"])  # no user: no member
        assert await statuses(env, outside, 3) == [200, 200, 200]

    run(db_url, body)


def test_member_update_sets_its_own_limits_over_the_default(db_url: str) -> None:
    async def body(env: Env) -> None:
        await team_with(env, "ann", "ben", team_member_rpm_limit=1, team_member_budget=10)
        team = await env.store.get_team("t")
        default_id = team.metadata["team_member_budget_id"]
        upd = await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "rpm_limit": 3,
                                                           "budget_duration": "30d"})
        assert (upd["rpm_limit"], upd["tpm_limit"], upd["max_budget_in_team"], upd["budget_duration"]) == (
            3, None, 10, "30d")  # the default's budget copied into the member's own row, on its own period
        ann_row = await env.store.get_team_member("t", "ann")
        assert ann_row.budget_id not in (None, default_id)
        own = await env.store.get_budget(ann_row.budget_id)
        assert (own.rpm_limit, own.max_budget, own.budget_duration) == (3, 10, "30d") and own.budget_reset_at
        default = await env.store.get_budget(default_id)
        assert (default.rpm_limit, default.max_budget, default.budget_duration) == (1, 10, None)  # untouched
        ann, ben = await member_key(env, "ann"), await member_key(env, "ben")
        assert await statuses(env, ann, 4) == [200, 200, 200, 429]
        assert await statuses(env, ben, 2) == [200, 429]
        # a null clears the member's own limit: the team's default binds it again
        upd = await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "rpm_limit": None})
        assert upd["rpm_limit"] is None and upd["max_budget_in_team"] == 10
        assert await env.store.member_limits("t", "ann") == (1, None)
        # a field not sent is left as it is; the answer is the member's own limits after the write
        upd = await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "tpm_limit": 500})
        assert (upd["tpm_limit"], upd["budget_duration"], upd["max_budget_in_team"]) == (500, "30d", 10)
        assert (await env.store.get_budget(ann_row.budget_id)).budget_reset_at == own.budget_reset_at

    run(db_url, body)


def test_team_update_moves_the_default_member_limits_and_null_clears(db_url: str) -> None:
    async def body(env: Env) -> None:
        await team_with(env, "ann")
        ann = await member_key(env, "ann")
        assert await statuses(env, ann, 3) == [200, 200, 200]
        await env.ok("POST", "/team/update", {"team_id": "t", "team_member_rpm_limit": 1,
                                              "team_member_tpm_limit": 1000})
        default = await env.store.get_budget((await env.store.get_team("t")).metadata["team_member_budget_id"])
        assert (default.rpm_limit, default.tpm_limit, default.max_budget) == (1, 1000, None)
        r = await chat(env, ann)  # the team's keys are read again at once
        assert r.status == 200 and r.headers["x-ratelimit-team_member-limit-tokens"] == "1000"
        assert (await chat(env, ann)).status == 429
        await env.ok("POST", "/team/update", {"team_id": "t", "team_member_rpm_limit": None})
        assert await env.store.member_limits("t", "ann") == (None, 1000)
        assert await statuses(env, ann, 2) == [200, 200]
        r = await env.call("POST", "/team/update", {"team_id": "t", "team_member_tpm_limit": -1})
        api_error(r, 400, "team_member_tpm_limit must be >= 0")

    run(db_url, body)


def test_a_shared_row_is_copied_never_written_in_place(db_url: str) -> None:
    """Memberships imported from LiteLLM point to the team's default member budget row (LiteLLM links them to
    it): one member's update must not move the others'."""
    async def body(env: Env) -> None:
        await team_with(env, "ann", "ben", team_member_budget=5, team_member_rpm_limit=7)
        default_id = (await env.store.get_team("t")).metadata["team_member_budget_id"]
        for m in ("ann", "ben"):
            await env.store.update_team_member("t", m, budget_id=default_id)
        await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "max_budget_in_team": 2})
        ann, ben = await env.store.get_team_member("t", "ann"), await env.store.get_team_member("t", "ben")
        assert ann.budget_id != default_id and ben.budget_id == default_id
        assert (await env.store.get_budget(default_id)).max_budget == 5
        assert ((await env.store.get_budget(ann.budget_id)).max_budget,
                (await env.store.get_budget(ann.budget_id)).rpm_limit) == (2, 7)
        # the bulk route shares the rule
        out = await env.ok("POST", "/management/v1/teams/t/members/bulk_update",
                           {"members": [{"user_id": "ben", "rpm_limit": 9}]})
        assert out["data"][0]["success"] and out["data"][0]["rpm_limit"] == 9
        assert (await env.store.get_team_member("t", "ben")).budget_id not in (default_id, ann.budget_id)
        assert (await env.store.get_budget(default_id)).rpm_limit == 7

    run(db_url, body)


def test_member_add_period_and_fields_not_kept(db_url: str) -> None:
    async def body(env: Env) -> None:
        await team_with(env, team_member_budget=4)
        added = await env.ok("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "ann"},
                                                          "max_budget_in_team": 2, "budget_duration": "7d"})
        assert added["updated_team_memberships"][0]["litellm_budget_table"] == {"max_budget": 2,
                                                                                 "budget_duration": "7d"}
        added = await env.ok("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "ben"},
                                                          "budget_duration": "1d"})
        # a lone period: the default member budget on the member's own period
        assert added["updated_team_memberships"][0]["litellm_budget_table"] == {"max_budget": 4,
                                                                                 "budget_duration": "1d"}
        r = await env.call("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "cat"},
                                                        "budget_duration": "often"})
        api_error(r, 400, "often")
        for field, value in (("allowed_models", ["gpt-a"]), ("temp_budget_increase", 5),
                             ("model_max_budget", {"gpt-a": {"max_budget": 1}})):
            r = await env.call("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", field: value})
            api_error(r, 400, f"{field}: not supported for a team member")
            assert r.json()["error"]["param"] == field
        r = await env.call("POST", "/team/member_add", {"team_id": "t", "member": {"user_id": "dan"},
                                                        "allowed_models": ["gpt-a"]})
        api_error(r, 400, "allowed_models: not supported")
        assert "dan" not in [m["user_id"] for m in (await env.ok("GET", "/team/info?team_id=t"))["team_info"][
            "members_with_roles"]]
        r = await env.call("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "rpm_limit": -2})
        api_error(r, 400, "rpm_limit must be >= 0")

    run(db_url, body)


def test_members_me_and_spend_by_user(db_url: str) -> None:
    """LiteLLM 1.110's ``/team/{team_id}/members/me`` (the caller's own membership only) and
    ``/team/spend/by_user`` (spend per user within teams, from the spend logs; a plain member sees its own row,
    the team's admin and members the team lets read its activity see everyone's)."""
    from datetime import UTC, datetime

    from relaygate.store.records import SpendLog
    from relaygate.store.spend import write_spend

    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "t", "team_alias": "alpha", "members_with_roles": [
            {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "ann"}, {"role": "user", "user_id": "ben"}]})
        await env.ok("POST", "/team/new", {"team_id": "u", "members_with_roles": [{"role": "user", "user_id": "ann"}],
                                           "team_member_permissions": ["/team/daily/activity"]})
        await env.ok("POST", "/team/member_update", {"team_id": "t", "user_id": "ann", "max_budget_in_team": 3,
                                                     "rpm_limit": 9})
        keys = {u: str((await env.ok("POST", "/key/generate", {"team_id": "t", "user_id": u}))["key"])
                for u in ("boss", "ann", "ben")}
        await env.store.update_user("ann", user_email="ann@x.io", user_alias="Ann")
        me = await env.ok("GET", "/team/t/members/me", key=keys["ann"])
        assert (me["user_id"], me["team_alias"], me["role"], me["user_email"], me["spend"]) == (
            "ann", "alpha", "user", "ann@x.io", 0.0)
        assert me["litellm_budget_table"]["max_budget"] == 3 and me["litellm_budget_table"]["rpm_limit"] == 9
        assert (await env.ok("GET", "/team/t/members/me", key=keys["ben"]))["litellm_budget_table"] is None
        api_error(await env.call("GET", "/team/t/members/me"), 400, "no associated user_id")  # the master key
        outsider = await env.user("cat")
        api_error(await env.call("GET", "/team/t/members/me", key=outsider), 404, "is not a member of team_id=t")

        day = datetime(2026, 11, 3, 12, tzinfo=UTC)
        rows = [SpendLog(request_id=f"r{i}", spend=s, spend_nanos=int(s * 1e9), team_id=team, user_id=user,
                         prompt_tokens=10, completion_tokens=5, total_tokens=15, start_time=day, end_time=day,
                         status=status)
                for i, (team, user, s, status) in enumerate((
                    ("t", "ann", 0.5, "success"), ("t", "ann", 0.25, "failure"), ("t", "ben", 1.0, "success"),
                    ("t", None, 0.125, "success"), ("u", "ann", 0.75, "success"), ("u", "ben", 0.0625, "success")))]
        rows.append(SpendLog(request_id="old", spend=9.0, spend_nanos=9 * 10**9, team_id="t", user_id="ann",
                             start_time=datetime(2026, 10, 1, tzinfo=UTC), end_time=datetime(2026, 10, 1, tzinfo=UTC)))
        await write_spend(env.store, rows)
        q = "/team/spend/by_user?start_date=2026-11-01&end_date=2026-11-03"
        every = await env.ok("GET", q + "&team_ids=t,u")
        assert every["start_date"] == "2026-11-01" and every["end_date"] == "2026-11-03"
        got = [(r["team_id"], r["user_id"], r["spend"], r["api_requests"], r["failed_requests"]) for r in every["results"]]
        assert got == [("t", "ben", 1.0, 1, 0), ("t", "ann", 0.75, 2, 1), ("u", "ann", 0.75, 1, 0),
                       ("t", "", 0.125, 1, 0), ("u", "ben", 0.0625, 1, 0)]
        first = every["results"][1]
        assert (first["team_alias"], first["user_email"], first["user_alias"], first["total_tokens"],
                first["successful_requests"]) == ("alpha", "ann@x.io", "Ann", 30, 1)
        as_boss = await env.ok("GET", q + "&team_ids=t", key=keys["boss"])  # the team's admin: everyone
        assert [r["user_id"] for r in as_boss["results"]] == ["ben", "ann", ""]
        as_ann = await env.ok("GET", q + "&team_ids=t,u", key=keys["ann"])  # t: its own row; u: everyone's
        assert [(r["team_id"], r["user_id"]) for r in as_ann["results"]] == [("t", "ann"), ("u", "ann"), ("u", "ben")]
        api_error(await env.call("GET", q + "&team_ids=t", key=outsider), 403, "your own teams")
        api_error(await env.call("GET", q), 400, "Please provide team_ids")
        api_error(await env.call("GET", "/team/spend/by_user?team_ids=t"), 400, "Please provide start_date")

    run(db_url, body)
