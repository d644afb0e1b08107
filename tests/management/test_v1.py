"""LiteLLM's ``/management/v1`` API (``management.v1``, ``management.v1_bulk``) on SQLite and a real PostgreSQL:
the budgets list (sort, filters, search, pages and links), the spend logs' user and end-user facets, the
caller's own user, the bulk user writes and the bulk team member removal; errors as RFC 9457 problem
documents, authentication as every management route's."""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaygate.sinks.spend import spend_values
from relaygate.store import Budget, Team, TeamMember, User
from relaygate.store.spend import write_spend_values
from tests.asgi.conftest import Reply
from tests.management.conftest import Env, run
from tests.spend.test_spend_views import rec
from tests.store.conftest import db_url  # noqa: F401  (both backends)

V1 = "/management/v1"


def problem(r: Reply, status: int, slug: str) -> dict[str, Any]:
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = orjson.loads(r.body)
    assert body["type"] == "urn:litellm:error:" + slug and body["status"] == status and body["title"], body
    return body


def test_budgets_list(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        for bid, mx, dur in (("b-a", 10.0, "30d"), ("b-b", None, "1d"), ("b-c", 5.0, None), ("team-x", 50.0, "1mo")):
            await env.store.create_budget(Budget(budget_id=bid, max_budget=mx, budget_duration=dur, tpm_limit=100))
        page = await env.ok("GET", f"{V1}/budgets?sort=-max_budget&page_size=2")
        assert [b["budget_id"] for b in page["data"]] == ["b-b", "team-x"]  # no limit is the largest
        assert page["meta"] == {"total_count": 4, "page": 1, "page_size": 2, "total_pages": 2}
        links = page["links"]
        assert links["self"] == f"{V1}/budgets?sort=-max_budget&page_size=2&page=1" and links["prev"] is None
        assert links["next"].endswith("page=2") and links["last"].endswith("page=2")
        item = page["data"][1]
        assert set(item) == {"budget_id", "max_budget", "soft_budget", "tpm_limit", "rpm_limit", "tpd_limit",
                             "budget_duration", "budget_reset_at", "created_at", "updated_at"} and item["tpd_limit"] is None
        durations = await env.ok("GET", f"{V1}/budgets?sort=budget_duration")
        assert [b["budget_id"] for b in durations["data"]] == ["b-b", "b-a", "team-x", "b-c"]  # 1d, 30d, a month
        q = await env.ok("GET", f"{V1}/budgets?q=TEAM")
        assert [b["budget_id"] for b in q["data"]] == ["team-x"]
        got = await env.ok("GET", f"{V1}/budgets?filter[max_budget][gte]=6&filter[budget_duration][in]=30d,1mo")
        assert sorted(b["budget_id"] for b in got["data"]) == ["b-a", "team-x"]
        nulls = await env.ok("GET", f"{V1}/budgets?filter[budget_duration][is_null]=true")
        assert [b["budget_id"] for b in nulls["data"]] == ["b-c"]
        beyond = await env.ok("GET", f"{V1}/budgets?page=9")
        assert beyond["data"] == [] and beyond["links"]["next"] is None

        bad = problem(await env.call("GET", f"{V1}/budgets?nope=1"), 400, "unknown-query-parameter")
        assert "nope" in bad["detail"] and "page_size" in bad["allowed"]
        problem(await env.call("GET", f"{V1}/budgets?sort=colour"), 400, "invalid-sort-field")
        problem(await env.call("GET", f"{V1}/budgets?sort=-rpm_limit,rpm_limit"), 400, "duplicate-sort-field")
        problem(await env.call("GET", f"{V1}/budgets?page=0"), 400, "invalid-query-parameter")
        for big in ("99999999999999999999999", "1000000001"):  # past 64 bits it was a 500 (orjson)
            problem(await env.call("GET", f"{V1}/budgets?page={big}"), 400, "invalid-query-parameter")
        problem(await env.call("GET", f"{V1}/budgets?filter[max_budget][gte]=x"), 400, "invalid-query-parameter")
        problem(await env.call("GET", f"{V1}/budgets?filter[created_at][is_null]=true"), 400,
                "unsupported-filter-operator")
        problem(await env.call("GET", f"{V1}/budgets?q=a&q=b"), 400, "invalid-query-parameter")
        user_key = await env.user("u-plain")
        r = await env.call("GET", f"{V1}/budgets", key=user_key)
        assert r.status == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}

    run(db_url, body)


def test_facets_users_me_and_bulk_users(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        now = time.time()
        rows = [rec(f"f{i}", 0.1, now, user_id=u, end_user_id=e)
                for i, (u, e) in enumerate((("u-1", "acme-1"), ("u-2", "acme-2"), ("u-1", "beta"), ("u-3", None)))]
        assert await write_spend_values(env.store, [spend_values(r, env.store.dialect) for r in rows]) == 4
        window = (f"filter[startTime][gte]={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now - 60))}"
                  f"&filter[startTime][lte]={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now + 60))}")
        ends = await env.ok("GET", f"{V1}/spend_logs/end_users?{window}&page_size=2")
        assert ends["data"] == ["acme-1", "acme-2"] and ends["meta"] == {"page": 1, "page_size": 2, "has_more": True}
        assert ends["links"]["next"].endswith("page=2") and "first" not in ends["links"]
        assert (await env.ok("GET", f"{V1}/spend_logs/end_users?{window}&q=BET"))["data"] == ["beta"]
        assert (await env.ok("GET", f"{V1}/spend_logs/users?{window}"))["data"] == ["u-1", "u-2", "u-3"]
        problem(await env.call("GET", f"{V1}/spend_logs/users?q=x"), 400, "invalid-query-parameter")
        problem(await env.call("GET", f"{V1}/spend_logs/users?{window}&page_size=101"), 400, "invalid-query-parameter")

        key = await env.user("u-1")
        assert (await env.ok("GET", f"{V1}/spend_logs/users?{window}", key=key))["data"] == ["u-1"]
        me = await env.ok("GET", f"{V1}/users/me", key=key)
        assert me == {"user_id": "u-1", "user_role": "internal_user", "user_email": None}
        problem(await env.call("GET", f"{V1}/users/me"), 404, "user-not-found")  # the master key has no user

        await env.store.create_team(Team(team_id="t-1"))
        await env.store.create_user(User(user_id="taken", user_email="Taken@Example.com"))
        out = await env.ok("POST", f"{V1}/users/bulk", {"users": [
            {"user_id": "n-1", "user_email": "n1@example.com", "teams": ["t-1"]},
            {"user_id": "n-2", "user_email": "N1@example.com"},
            {"user_id": "taken"}, {"user_id": "n-3", "user_email": "taken@example.com"},
            {"user_id": "n-4", "teams": ["no-such-team"]}, {"user_id": "n-1"},
            {"user_id": "n-5", "auto_create_key": True}]})
        rows_out = out["data"]
        assert [r["success"] for r in rows_out] == [True, False, False, False, False, False, True]
        assert rows_out[0]["teams"] == ["t-1"] and rows_out[0]["key"] is None and rows_out[6]["key"].startswith("sk-")
        assert rows_out[1]["error"] == "Duplicate user_email in request: N1@example.com"
        assert rows_out[2]["error"] == "User id=taken already exists"
        assert rows_out[3]["error"] == "User email=taken@example.com already exists"
        assert "no-such-team" in rows_out[4]["error"] and rows_out[5]["error"] == "Duplicate user_id in request: n-1"
        assert out["meta"] == {"total_requested": 7, "created": 2, "failed": 5}
        assert "t-1" in (await env.store.get_user("n-1")).teams
        problem(await env.call("POST", f"{V1}/users/bulk", {"users": [{"user_id": "x", "password": "p"}]}), 422,
                "invalid-request-body")
        problem(await env.call("POST", f"{V1}/users/bulk", {"users": []}), 422, "invalid-request-body")
        problem(await env.call("POST", f"{V1}/users/bulk", {"users": [{"user_id": "y"}]}, key=key), 403, "forbidden")

        gone = await env.ok("POST", f"{V1}/users/bulk_delete", {"user_ids": ["n-1", "nobody", "n-1", "n-5"]})
        assert [(r["user_id"], r["success"], r["error"]) for r in gone["data"]] == [
            ("n-1", True, None), ("nobody", False, "User id=nobody not found"),
            ("n-1", False, "Duplicate user_id in request: n-1"), ("n-5", True, None)]
        assert gone["data"][0]["teams_removed"] == ["t-1"] and gone["data"][0]["user_email"] == "n1@example.com"
        assert [m.user_id for m in await env.store.list_team_members("t-1")] == []
        problem(await env.call("POST", f"{V1}/users/bulk_delete", {"user_ids": ["taken"]}, key=key), 403, "forbidden")
        problem(await env.call("POST", f"{V1}/users/bulk_delete?x=1", {"user_ids": ["taken"]}), 400,
                "unknown-query-parameter")

    run(db_url, body)


def test_team_members_bulk_delete(db_url: str) -> None:  # noqa: F811
    async def body(env: Env) -> None:
        for uid in ("a", "b", "c", "boss"):
            await env.store.create_user(User(user_id=uid, user_email=f"{uid}@example.com"))
        await env.store.create_team(Team(team_id="t-9"), [
            TeamMember(team_id="t-9", user_id=u, user_email=f"{u}@example.com", role="admin" if u == "boss" else "user")
            for u in ("a", "b", "c", "boss")])
        out = await env.ok("POST", f"{V1}/teams/t-9/members/bulk_delete", {"members": [
            {"user_id": "a"}, {"user_email": "b@example.com"}, {"user_id": "a"}, {"user_id": "zed"}]})
        assert [(r["success"], r["error"]) for r in out["data"]] == [
            (True, None), (True, None), (False, "Duplicate member in request"), (False, "User not found in team")]
        assert sorted(m.user_id for m in await env.store.list_team_members("t-9")) == ["boss", "c"]
        problem(await env.call("POST", f"{V1}/teams/nope/members/bulk_delete", {"members": [{"user_id": "c"}]}), 404,
                "team-not-found")
        problem(await env.call("POST", f"{V1}/teams/t-9/members/bulk_delete",
                               {"members": [{"user_id": "c", "user_email": "c@example.com"}]}), 422,
                "invalid-request-body")
        outsider = await env.user("outsider")
        problem(await env.call("POST", f"{V1}/teams/t-9/members/bulk_delete", {"members": [{"user_id": "c"}]},
                               key=outsider), 403, "forbidden")

    run(db_url, body)


def test_team_members_bulk_update(db_url: str) -> None:  # noqa: F811
    """A merge patch of each member's own budget in the team: absent untouched, null cleared; a row the team's
    default shares is copied, not written; a member left with no limit falls back to the team default."""
    async def body(env: Env) -> None:
        await env.store.create_budget(Budget(budget_id="team-default", max_budget=7.0))
        await env.store.create_budget(Budget(budget_id="own-a", max_budget=3.0, rpm_limit=5))
        for uid in ("a", "b", "c"):
            await env.store.create_user(User(user_id=uid, user_email=f"{uid}@example.com"))
        await env.store.create_team(Team(team_id="t-7", metadata={"team_member_budget_id": "team-default"}), [
            TeamMember(team_id="t-7", user_id="a", user_email="a@example.com", budget_id="own-a"),
            TeamMember(team_id="t-7", user_id="b", user_email="b@example.com", budget_id="team-default"),
            TeamMember(team_id="t-7", user_id="c", user_email="c@example.com")])
        out = (await env.ok("POST", f"{V1}/teams/t-7/members/bulk_update", {"members": [
            {"user_id": "a", "tpm_limit": 100, "rpm_limit": None},
            {"user_email": "b@example.com", "max_budget_in_team": 2.5, "budget_duration": "7d"},
            {"user_id": "c"}, {"user_id": "a"}, {"user_id": "zed", "tpm_limit": 1}]}))["data"]
        a, b, c, dup, zed = out
        assert (a["success"], a["budget_id"], a["max_budget"], a["tpm_limit"], a["rpm_limit"]) == (
            True, "own-a", 3.0, 100, None) and a["max_budget_source"] == "member"
        own_a = await env.store.get_budget("own-a")
        assert (own_a.tpm_limit, own_a.rpm_limit, own_a.max_budget) == (100, None, 3.0)  # written in place
        assert b["success"] and b["budget_id"] not in (None, "team-default") and b["budget_duration"] == "7d"
        assert (await env.store.get_budget("team-default")).max_budget == 7.0  # the shared default untouched
        assert (c["success"], c["budget_id"], c["max_budget"], c["max_budget_source"]) == (
            True, None, 7.0, "team_default")
        assert dup["error"] == "Duplicate member in request" and zed["error"] == "User not found in team"
        cleared = (await env.ok("POST", f"{V1}/teams/t-7/members/bulk_update", {"members": [
            {"user_id": "a", "max_budget_in_team": None, "tpm_limit": None}]}))["data"][0]
        assert cleared["budget_id"] is None and cleared["max_budget_source"] == "team_default"
        members = {m.user_id: m for m in await env.store.list_team_members("t-7")}
        assert members["a"].budget_id is None and members["b"].budget_id == b["budget_id"]
        problem(await env.call("POST", f"{V1}/teams/t-7/members/bulk_update", {"members": [
            {"user_id": "a", "budget_duration": "soon"}]}), 422, "invalid-request-body")
        problem(await env.call("POST", f"{V1}/teams/t-7/members/bulk_update", {"members": [
            {"user_id": "a", "allowed_models": ["m"]}]}), 422, "invalid-request-body")

    run(db_url, body)
