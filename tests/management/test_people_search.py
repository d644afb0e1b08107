"""Searching users and teams as LiteLLM's admin UI does, on SQLite and a real PostgreSQL (``store.people_search``):
``/user/list``'s filters and sort, ``/user/filter/ui`` (only ids and emails, only for the admin, its viewer or
the admin of the team being filled) and ``/team/filter/ui`` (every team for the admin, one's own teams for
anyone else); parts match in any case, ``%`` and ``_`` literally."""

from __future__ import annotations

from typing import Any

from tests.management.conftest import Env, api_error, run


async def _people(env: Env) -> dict[str, str]:
    """Five users (two in team ``red``, one in organization ``acme``) and keys for three of them."""
    for uid, email in (("ann", "Ann@Example.com"), ("bob", "bob@example.com"), ("carl", "carl@other.org"),
                       ("dora_x", "dora%x@example.com"), ("eve", None)):
        await env.ok("POST", "/user/new", {"user_id": uid, **({"user_email": email} if email else {}),
                                           "user_role": "internal_user", "auto_create_key": False})
    await env.ok("POST", "/team/new", {"team_id": "red", "team_alias": "Red Team",
                                       "members_with_roles": [{"role": "admin", "user_id": "ann"},
                                                              {"role": "user", "user_id": "bob"}]})
    await env.ok("POST", "/team/new", {"team_id": "blue", "team_alias": "Blue 100%"})
    await env.ok("POST", "/organization/new", {"organization_id": "acme", "organization_alias": "Acme"})
    await env.ok("POST", "/organization/member_add", {"organization_id": "acme",
                                                      "member": [{"user_id": "carl", "role": "internal_user"}]})
    await env.ok("POST", "/user/new", {"user_id": "viewer", "user_role": "proxy_admin_viewer",
                                       "auto_create_key": False})
    return {u: (await env.ok("POST", "/key/generate", {"user_id": u}))["key"] for u in ("ann", "bob", "viewer")}


def _ids(out: Any) -> list[str]:
    rows = out["users"] if isinstance(out, dict) else out
    return [r.get("user_id") or r.get("team_id") for r in rows]


def test_user_list_filters_and_sort(db_url: str) -> None:
    async def body(env: Env) -> None:
        await _people(env)
        get = lambda q: env.ok("GET", "/user/list?" + q)  # noqa: E731
        assert _ids(await get("user_ids=ann,bob&sort_by=user_id")) == ["ann", "bob"]
        assert _ids(await get("user_ids=AR")) == ["carl"]  # one id: a part of it, as LiteLLM reads one
        assert _ids(await get("user_email=EXAMPLE.com&sort_by=user_email&sort_order=desc")) == [
            "dora_x", "bob", "ann"]
        assert _ids(await get("search=other&page_size=5")) == ["carl"]
        assert _ids(await get("search=%25x")) == ["dora_x"]  # % taken literally
        assert _ids(await get("search=_x")) == ["dora_x"]
        assert sorted(_ids(await get("team=red"))) == ["ann", "bob"]
        assert _ids(await get("organization_ids=acme,nope")) == ["carl"]
        assert _ids(await get("sso_user_ids=abc")) == []
        page = await get("sort_by=user_id&page=2&page_size=2")
        assert _ids(page) == ["carl", "dora_x"] and page["total"] == 6 and page["total_pages"] == 3
        api_error(await env.call("GET", "/user/list?sort_by=password"), 400, "user_id")
        api_error(await env.call("GET", "/user/list?sort_order=sideways"), 400, "sort_order")

    run(db_url, body)


def test_user_filter_ui(db_url: str) -> None:
    async def body(env: Env) -> None:
        keys = await _people(env)
        out = await env.ok("GET", "/user/filter/ui?user_email=example")
        assert sorted(r["user_id"] for r in out) == ["ann", "bob", "dora_x"]
        assert all(set(r) == {"user_id", "user_email"} for r in out)  # LiteLLM_UserTableFiltered, nothing more
        assert await env.ok("GET", "/user/filter/ui?user_id=AN&user_email=ann") == [
            {"user_id": "ann", "user_email": "Ann@Example.com"}]
        assert _ids(await env.ok("GET", "/user/filter/ui?search=ORG")) == ["carl"]
        assert len(await env.ok("GET", "/user/filter/ui?page_size=2&page=1")) == 2
        assert len(await env.ok("GET", "/user/filter/ui", key=keys["viewer"])) == 6
        # red's admin looks for someone to add; red's plain member, or anyone naming no team it runs, may not
        assert _ids(await env.ok("GET", "/user/filter/ui?team_id=red&search=carl", key=keys["ann"])) == ["carl"]
        for q, who in (("team_id=red", "bob"), ("", "ann"), ("team_id=blue", "ann"), ("team_id=nope", "ann")):
            r = await env.call("GET", f"/user/filter/ui?{q}", key=keys[who])
            assert r.status == 401, (q, who, r.body)
        api_error(await env.call("GET", "/user/filter/ui?page_size=101"), 400, "page_size")
        api_error(await env.call("GET", "/user/filter/ui?page=0"), 400, "page")

    run(db_url, body)


def test_team_filter_ui(db_url: str) -> None:
    async def body(env: Env) -> None:
        keys = await _people(env)
        assert _ids(await env.ok("GET", "/team/filter/ui?team_alias=TEAM")) == ["red"]
        assert _ids(await env.ok("GET", "/team/filter/ui?team_alias=100%25")) == ["blue"]
        assert sorted(_ids(await env.ok("GET", "/team/filter/ui"))) == ["blue", "red"]
        (red,) = await env.ok("GET", "/team/filter/ui?team_id=re")
        assert red["team_alias"] == "Red Team" and {m["user_id"] for m in red["members_with_roles"]} == {"ann", "bob"}
        assert sorted(_ids(await env.ok("GET", "/team/filter/ui", key=keys["viewer"]))) == ["blue", "red"]
        assert _ids(await env.ok("GET", "/team/filter/ui", key=keys["bob"])) == ["red"]  # its own teams only
        assert _ids(await env.ok("GET", "/team/filter/ui?team_alias=blue", key=keys["bob"])) == []

    run(db_url, body)
