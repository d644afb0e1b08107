"""``POST /v2/key/info``, ``GET /key/aliases`` and ``POST /key/bulk_update`` over both backends: LiteLLM's bodies,
bounds, wording and answers, and what each caller may see or change."""

from __future__ import annotations

from typing import Any

from relaygate.store import hash_token
from tests.management.conftest import Env, api_error, run


async def _key(env: Env, alias: str | None = None, spend: float = 0.0, **fields: Any) -> str:
    body = {**({"key_alias": alias} if alias else {}), **fields}
    key = str((await env.ok("POST", "/key/generate", body))["key"])
    if spend:
        await env.ok("POST", "/key/update", {"key": key, "spend": spend})
    return key


def test_v2_key_info_answers_the_keys_the_caller_may_read(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice")
        cheap = await _key(env, "cheap", 1.0, user_id="alice")
        dear = await _key(env, "dear", 5.0, user_id="alice")
        other = await _key(env, "other", 9.0, user_id="bob")
        out = await env.ok("POST", "/v2/key/info", {"keys": [cheap, hash_token(dear), "sk-nobody"],
                                                     "key_aliases": ["other", "no-such-alias"]})
        assert out["key"] == [cheap, hash_token(dear), "sk-nobody"]
        assert [i["key_alias"] for i in out["info"]] == ["other", "dear", "cheap"]  # the most spent first
        assert out["info"][0]["token"] == hash_token(other)
        assert not any(k in str(out["info"]) for k in (cheap, dear, other))  # hashes only, never a key
        mine = await env.ok("POST", "/v2/key/info", {"keys": [cheap, other], "key_aliases": ["dear"]}, key=alice)
        assert [i["key_alias"] for i in mine["info"]] == ["dear", "cheap"]  # bob's key is not alice's to read
        api_error(await env.call("POST", "/v2/key/info", {}), 400, "At least one of 'keys' or 'key_aliases'")
        api_error(await env.call("POST", "/v2/key/info", {"keys": ["sk-x"] * 501}), 400, "At most 500")
        api_error(await env.call("POST", "/v2/key/info", {"keys": "sk-x"}), 400, "keys")

    run(db_url, body)


def test_key_aliases_search_pages_and_visibility(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice")
        loner = await env.user("loner")
        await env.ok("POST", "/team/new", {"team_id": "ta", "members_with_roles": [{"role": "user", "user_id": "alice"}]})
        for alias, fields in (("Prod-A", {"user_id": "alice"}), ("prod_b", {"team_id": "ta", "user_id": "bob"}),
                              ("staging", {"user_id": "bob"}), ("100%", {"user_id": "bob"})):
            await _key(env, alias, **fields)
        await _key(env, None, user_id="bob")  # no alias: never listed
        out = await env.ok("GET", "/key/aliases")
        all_aliases = sorted(["Prod-A", "prod_b", "staging", "100%", *(
            a for a in out["aliases"] if a not in ("Prod-A", "prod_b", "staging", "100%"))])
        assert sorted(out["aliases"]) == all_aliases and out["total_count"] == len(out["aliases"])
        assert out["aliases"] == sorted(out["aliases"]) and out["current_page"] == 1 and out["size"] == 50
        assert (await env.ok("GET", "/key/aliases?search=PROD"))["aliases"] == ["Prod-A", "prod_b"]
        assert (await env.ok("GET", "/key/aliases?search=d_"))["aliases"] == ["prod_b"]  # "_" is not a wildcard
        assert (await env.ok("GET", "/key/aliases?search=%25"))["aliases"] == ["100%"]
        paged = await env.ok("GET", "/key/aliases?search=prod&page=2&size=1")
        assert paged == {"aliases": ["prod_b"], "total_count": 2, "current_page": 2, "total_pages": 2, "size": 1}
        assert (await env.ok("GET", "/key/aliases?search=nothing-like-it"))["total_pages"] == 0
        seen = await env.ok("GET", "/key/aliases", key=alice)  # its own keys and its team's
        assert "Prod-A" in seen["aliases"] and "prod_b" in seen["aliases"] and "staging" not in seen["aliases"]
        assert (await env.ok("GET", "/key/aliases?search=prod", key=loner))["aliases"] == []
        api_error(await env.call("GET", "/key/aliases?size=101"), 400, "size")

    run(db_url, body)


def test_bulk_update_changes_each_key_or_says_why_not(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice")
        first = await _key(env, "first")
        second = await _key(env, "second")
        out = await env.ok("POST", "/key/bulk_update", {"keys": [
            {"key": first, "max_budget": 12.5, "tags": ["blue"]},
            {"key": "sk-not-a-key-at-all", "max_budget": 1},
            {"key": hash_token(second), "key_alias": "first"},  # taken by the first key
        ]})
        assert out["total_requested"] == 3
        assert [u["key"] for u in out["successful_updates"]] == [first]
        info = out["successful_updates"][0]["key_info"]
        assert info["max_budget"] == 12.5 and info["tags"] == ["blue"] and "token" not in info
        reasons = {f["key"]: f["failed_reason"] for f in out["failed_updates"]}
        assert reasons["sk-not-a-key-at-all"] == "Key not found: sk-not-a-key-at-all"
        assert "first" in reasons[hash_token(second)] and "already exists" in reasons[hash_token(second)]
        assert all(f["key_info"] is None for f in out["failed_updates"])
        assert (await env.ok("GET", f"/key/info?key={first}"))["info"]["max_budget"] == 12.5
        api_error(await env.call("POST", "/key/bulk_update", {"keys": [{"key": first}]}, key=alice), 403,
               "Only proxy admins can perform bulk key updates")
        api_error(await env.call("POST", "/key/bulk_update", {"keys": []}), 400, "No keys provided for update")
        api_error(await env.call("POST", "/key/bulk_update", {"keys": [{"key": first}] * 501}), 400,
               "Maximum 500 keys can be updated at once. Found 501 keys.")
        api_error(await env.call("POST", "/key/bulk_update", {"keys": [{"max_budget": 1}]}), 400, "key")

    run(db_url, body)
