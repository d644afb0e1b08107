"""/key/* on both backends: shapes, hashing at rest, validation, duplicates, grants, invalidation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaygate.store import hash_token
from tests.management.conftest import MASTER, Env, api_error, run


def test_generate_info_list_shapes(db_url: str) -> None:
    async def body(env: Env) -> None:
        out = await env.ok("POST", "/key/generate", {"key_alias": "app-1", "models": ["gpt-a"], "duration": "30d",
                                                      "tpm_limit": 100, "metadata": {"team": "x"}, "tags": ["t1"],
                                                      "router_settings": {"num_retries": 2}})
        key = out["key"]
        assert key.startswith("sk-") and len(key) > 20
        assert out["token"] == out["token_id"] == hash_token(key)
        assert out["key_name"] == f"sk-...{key[-4:]}"
        assert out["key_alias"] == "app-1" and out["models"] == ["gpt-a"] and out["tpm_limit"] == 100
        expires = datetime.fromisoformat(out["expires"])
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
        stored = await env.store.get_key(hash_token(key))
        assert stored.key_name == out["key_name"] and stored.router_settings == {"num_retries": 2}
        info = await env.ok("GET", f"/key/info?key={key}")
        assert info["key"] == key and "token" not in info["info"] and info["info"]["key_alias"] == "app-1"
        assert key not in str(info["info"])
        by_hash = await env.ok("GET", f"/key/info?key={hash_token(key)}")
        assert by_hash["info"]["tags"] == ["t1"]
        listed = await env.ok("GET", "/key/list?key_alias=app-1")
        assert listed == {"keys": [hash_token(key)], "total_count": 1, "current_page": 1, "total_pages": 1}
        full = await env.ok("GET", "/key/list?return_full_object=true")
        assert full["keys"][0]["token"] == hash_token(key) and key not in str(full)
        own = await env.ok("GET", "/key/info", key=key)
        assert own["info"]["key_alias"] == "app-1"
        assert (await env.ok("POST", "/key/health", key=key)) == {"key": "healthy", "logging_callbacks": None}

    run(db_url, body)


def test_custom_key_duplicates_and_validation(db_url: str) -> None:
    async def body(env: Env) -> None:
        out = await env.ok("POST", "/key/generate", {"key": "sk-my-custom-key-1", "key_alias": "a"})
        assert out["key"] == "sk-my-custom-key-1"
        r = await env.call("POST", "/key/generate", {"key": "sk-my-custom-key-1"})
        assert r.status == 400 and r.json()["error"]["param"] == "key"
        r = await env.call("POST", "/key/generate", {"key_alias": "a"})
        err = r.json()["error"]
        assert r.status == 400 and err["param"] == "key_alias" and err["code"] == "400"
        assert "Unique key aliases across all keys are required" in err["message"]
        r = await env.call("POST", "/key/generate", {"key": "bad-prefix-123456789"})
        assert r.status == 400 and "must start with 'sk-'" in r.json()["error"]["message"]
        assert "bad-prefix-123456789" not in r.json()["error"]["message"]
        for bad, param in (({"tpm_limit": "many"}, "tpm_limit"), ({"models": "gpt-a"}, "models"),
                           ({"duration": "soon"}, "duration"), ({"max_budget": -1}, "max_budget"),
                           ({"budget_duration": "1x"}, "budget_duration"), ({"metadata": [1]}, "metadata")):
            r = await env.call("POST", "/key/generate", bad)
            assert r.status == 400, (bad, r.body)
            assert r.json()["error"]["param"] == param, (bad, r.body)
            assert r.json()["error"]["type"] == "bad_request_error"
        r = await env.call("POST", "/key/generate", b"{not json")
        assert r.status == 400
        r = await env.call("POST", "/key/update", {"models": []})
        assert r.status == 400 and r.json()["error"]["param"] == "key"
        assert (await env.store.list_keys()).total == 1  # nothing half-written

    run(db_url, body)


def test_unknown_ids_404(db_url: str) -> None:
    async def body(env: Env) -> None:
        for method, path, payload in (("GET", "/key/info?key=sk-nope-nope", None),
                                      ("POST", "/key/update", {"key": "sk-nope-nope", "models": []}),
                                      ("POST", "/key/delete", {"keys": ["sk-nope-nope"]}),
                                      ("POST", "/key/delete", {"key_aliases": ["nope"]}),
                                      ("POST", "/key/regenerate", {"key": "sk-nope-nope"}),
                                      ("POST", "/key/sk-nope-nope/regenerate", {}),
                                      ("POST", "/key/block", {"key": "sk-nope-nope"}),
                                      ("POST", "/key/unblock", {"key": "sk-nope-nope"}),
                                      ("POST", "/key/generate", {"team_id": "no-team"})):
            r = await env.call(method, path, payload)
            assert r.status == 404, (path, r.body)
            err = r.json()["error"]
            assert err["type"] == "not_found_error" and err["code"] == "404", err

    run(db_url, body)


def test_update_block_regenerate_delete(db_url: str) -> None:
    async def body(env: Env) -> None:
        out = await env.ok("POST", "/key/generate", {"key_alias": "k1", "models": ["gpt-a"]})
        key, token = out["key"], out["token"]
        assert (await env.call("GET", "/v1/models", key=key)).status == 200
        upd = await env.ok("POST", "/key/update", {"key": key, "models": ["gpt-a", "gpt-b"], "rpm_limit": 5,
                                                    "key_alias": "k1"})
        assert upd["models"] == ["gpt-a", "gpt-b"] and upd["rpm_limit"] == 5 and "sk-" + "" not in upd.get("key", "")
        blocked = await env.ok("POST", "/key/block", {"key": key})
        assert blocked["blocked"] is True and blocked["token"] == token
        assert (await env.call("GET", "/v1/models", key=key)).status == 401  # invalidated on this worker
        assert (await env.ok("POST", "/key/unblock", {"key": token}))["blocked"] is False
        assert (await env.call("GET", "/v1/models", key=key)).status == 200
        regen = await env.ok("POST", f"/key/{key}/regenerate", {"max_budget": 3})
        new = regen["key"]
        assert new != key and regen["token"] == hash_token(new) and regen["key_alias"] == "k1"
        assert regen["max_budget"] == 3 and regen["models"] == ["gpt-a", "gpt-b"]
        assert (await env.call("GET", "/v1/models", key=key)).status == 401
        assert (await env.call("GET", "/v1/models", key=new)).status == 200
        regen2 = await env.ok("POST", "/key/regenerate", {"key": new, "new_key": "sk-chosen-by-me"})
        assert regen2["key"] == "sk-chosen-by-me"
        other = (await env.ok("POST", "/key/generate", {"key_alias": "k2"}))["key"]
        r = await env.call("POST", "/key/delete", {"keys": ["sk-chosen-by-me", "sk-missing-one"]})
        assert r.status == 404
        assert (await env.store.list_keys()).total == 2  # all or nothing
        done = await env.ok("POST", "/key/delete", {"keys": ["sk-chosen-by-me"], "key_aliases": ["k2"]})
        assert done == {"deleted_keys": ["sk-chosen-by-me", "k2"]}
        assert (await env.store.list_keys()).total == 0
        assert (await env.call("GET", "/v1/models", key=other)).status == 401

    run(db_url, body)


def test_internal_user_grants_no_more_than_it_holds(db_url: str) -> None:
    async def body(env: Env) -> None:
        alice = await env.user("alice", models=["gpt-a", "gpt-b"], tpm_limit=1000)
        await env.user("bob")
        out = await env.ok("POST", "/key/generate", {"key_alias": "alice-2"}, key=alice)
        assert out["user_id"] == "alice" and sorted(out["models"]) == ["gpt-a", "gpt-b"] and out["tpm_limit"] == 1000
        r = await env.call("POST", "/key/generate", {"models": ["gpt-c"]}, key=alice)
        assert r.status == 403 and "gpt-c" in r.json()["error"]["message"]
        r = await env.call("POST", "/key/generate", {"tpm_limit": 5000}, key=alice)
        assert r.status == 403 and "tpm_limit" in r.json()["error"]["message"]
        r = await env.call("POST", "/key/generate", {"user_id": "bob"}, key=alice)
        assert r.status == 403 and "User can only create keys for themselves" in r.json()["error"]["message"]
        r = await env.call("POST", "/key/update", {"key": out["key"], "models": ["gpt-c"]}, key=alice)
        assert r.status == 403
        r = await env.call("POST", "/key/update", {"key": out["key"], "spend": 0}, key=alice)
        assert r.status == 403
        assert (await env.ok("POST", "/key/update", {"key": out["key"], "models": ["gpt-a"]}, key=alice))["models"] == [
            "gpt-a"]
        assert MASTER not in str(await env.ok("GET", "/key/list", key=alice))

    run(db_url, body)


def test_durations_past_the_last_date_are_refused(db_url: str) -> None:
    """A key's ``duration`` or ``budget_duration`` (or a budget window's) so long its date would pass the year
    9999: a 400 naming the field, never a 500."""
    async def body(env: Env) -> None:
        for sent, param in (({"duration": "99999999999d"}, "duration"), ({"duration": "1000000mo"}, "duration"),
                            ({"budget_duration": "99999999999mo"}, "budget_duration"),
                            ({"budget_limits": [{"budget_duration": "1000000mo", "max_budget": 1}]}, "budget_")):
            api_error(await env.call("POST", "/key/generate", sent), 400, param)
        assert (await env.ok("POST", "/key/generate", {"duration": "3650d"}))["expires"]

    run(db_url, body)
