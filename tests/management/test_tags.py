"""/tag/new|update|info|list|delete on both backends (LiteLLM's tag management): the answers' shapes, a tag's
budget row created and updated with it, tags seen only on requests listed as LiteLLM lists them, bad input
answered 400 / 404 in LiteLLM's error shape with nothing written, and the roles: only the proxy admin writes
tags, its viewer reads them, an internal user lists the tags its keys carry."""

from __future__ import annotations

from typing import Any

from relaygate.management.tags import DYNAMIC
from relaygate.store import ModelRow
from relaygate.store.records import SpendLog
from relaygate.store.spend import write_spend
from tests.management.conftest import Env, run

TAG_KEYS = {"name", "description", "models", "model_info", "created_at", "updated_at", "created_by", "spend"}


async def _bad(env: Env, method: str, path: str, body: Any, status: int, param: str, key: str | None = None) -> None:
    before = await env.store.change_version()
    r = await env.call(method, path, body) if key is None else await env.call(method, path, body, key)
    assert r.status == status, (path, body, r.status, r.body)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["param"] == param and err["code"] == str(status), (path, body, err)
    assert await env.store.change_version() == before, (path, body, "written")


def test_tag_lifecycle_and_shapes(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.store.create_model(ModelRow(model_id="dep-1", model_name="gpt-a"))
        out = await env.ok("POST", "/tag/new", {"name": "prod", "description": "production traffic",
                                                "models": ["dep-1", "gpt-b"], "max_budget": 10,
                                                "budget_duration": "30d"})
        assert out["message"] == "Tag prod created successfully"
        tag = out["tag"]
        assert set(tag) == TAG_KEYS and tag["name"] == "prod" and tag["models"] == ["dep-1", "gpt-b"]
        assert tag["model_info"] == {"dep-1": "gpt-a"} and tag["spend"] == 0.0 and tag["created_at"]
        row = await env.store.get_tag("prod")
        assert row.budget_id is not None
        budget = await env.store.get_budget(row.budget_id)
        assert budget.max_budget == 10 and budget.budget_duration == "30d" and budget.budget_reset_at is not None
        await _bad(env, "POST", "/budget/delete", {"id": row.budget_id}, 400, "id")  # the tag still uses it
        await env.ok("POST", "/tag/new", {"name": "plain"})

        info = await env.ok("POST", "/tag/info", {"names": ["prod", "plain"]})
        assert list(info) == ["prod", "plain"]
        assert info["prod"]["litellm_budget_table"]["max_budget"] == 10 and "litellm_budget_table" not in info["plain"]

        up = await env.ok("POST", "/tag/update", {"name": "prod", "max_budget": 20, "description": "prod v2"})
        assert up["message"] == "Tag prod updated successfully" and up["tag"]["description"] == "prod v2"
        assert up["tag"]["models"] == ["dep-1", "gpt-b"]  # fields not sent are kept
        assert (await env.store.get_tag("prod")).budget_id == row.budget_id  # the same budget row, updated
        assert (await env.store.get_budget(row.budget_id)).max_budget == 20
        up = await env.ok("POST", "/tag/update", {"name": "plain", "soft_budget": 1, "spend": 0})
        assert (await env.store.get_budget(str((await env.store.get_tag("plain")).budget_id))).soft_budget == 1

        await write_spend(env.store, [SpendLog(request_id="r1", spend=0.5, spend_nanos=500_000_000,
                                               request_tags=["prod", "seen-only"])])
        listed = {t["name"]: t for t in await env.ok("GET", "/tag/list")}
        assert set(listed) == {"prod", "plain", "seen-only"}
        assert listed["prod"]["spend"] == 0.5  # the spend sink's write reaches the tag's row
        assert listed["seen-only"] == {"name": "seen-only", "description": DYNAMIC, "models": None,
                                       "created_at": None, "updated_at": None}

        assert await env.ok("POST", "/tag/delete", {"name": "plain"}) == {"message": "Tag plain deleted successfully"}
        assert set(await env.ok("POST", "/tag/info", {"names": ["prod"]})) == {"prod"}
        await _bad(env, "POST", "/tag/info", {"names": ["plain"]}, 404, "names")

    run(db_url, body)


def test_bad_input_is_refused_and_nothing_is_written(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/tag/new", {"name": "taken"})
        await env.ok("POST", "/budget/new", {"budget_id": "b1", "max_budget": 1})
        for path, payload, status, param in (
                ("/tag/new", {"name": "taken"}, 400, "name"),
                ("/tag/new", {}, 400, "name"),
                ("/tag/new", {"name": ""}, 400, "name"),
                ("/tag/new", {"name": "x", "max_budget": -1}, 400, "max_budget"),
                ("/tag/new", {"name": "x", "max_budget": "lots"}, 400, "max_budget"),
                ("/tag/new", {"name": "x", "budget_duration": "soon"}, 400, "budget_duration"),
                ("/tag/new", {"name": "x", "models": "gpt-a"}, 400, "models"),
                ("/tag/new", {"name": "x", "budget_id": "b1", "max_budget": 2}, 400, "budget_id"),
                ("/tag/new", {"name": "x", "budget_id": "nope"}, 404, "budget_id"),
                ("/tag/update", {"name": "nope", "description": "d"}, 404, "name"),
                ("/tag/update", {"name": "taken", "spend": -1}, 400, "spend"),
                ("/tag/info", {"names": []}, 400, "names"),
                ("/tag/info", {"names": ["taken", "nope"]}, 404, "names"),
                ("/tag/delete", {"name": "nope"}, 404, "name"),
                ("/tag/delete", {}, 400, "name")):
            await _bad(env, "POST", path, payload, status, param)
        r = await env.call("POST", "/tag/new", b"{not json")
        assert r.status == 400 and r.json()["error"]["type"] == "bad_request_error"
        r = await env.call("POST", "/tag/info", {"names": ["nope"]})
        assert r.json()["error"]["message"] == "Tags not found: ['nope']"

    run(db_url, body)


def test_only_the_proxy_admin_writes_tags(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/tag/new", {"name": "mine", "max_budget": 1})
        await env.ok("POST", "/tag/new", {"name": "theirs"})
        user = await env.user("u1", tags=["mine"])
        viewer = await env.user("v1", "proxy_admin_viewer")
        for key in (user, viewer):
            for path, payload in (("/tag/new", {"name": "new"}), ("/tag/update", {"name": "mine", "max_budget": 5}),
                                  ("/tag/delete", {"name": "mine"})):
                r = await env.call("POST", path, payload, key)
                assert r.status == 401, (path, r.status, r.body)
                err = r.json()["error"]
                assert err["type"] == "auth_error" and "Only proxy admin can be used" in err["message"], err
        r = await env.call("POST", "/tag/info", {"names": ["mine"]}, user)
        assert r.status == 401
        assert set(await env.ok("POST", "/tag/info", {"names": ["mine", "theirs"]}, key=viewer)) == {"mine", "theirs"}
        assert {t["name"] for t in await env.ok("GET", "/tag/list", key=viewer)} == {"mine", "theirs"}
        assert [t["name"] for t in await env.ok("GET", "/tag/list", key=user)] == ["mine"]  # its keys' tags
        assert await env.store.get_tag("mine") is not None and (await env.store.get_budget(
            str((await env.store.get_tag("mine")).budget_id))).max_budget == 1

    run(db_url, body)
