"""A U+0000 (NUL) in a client's text is a 400 naming the problem on both backends (PostgreSQL cannot store
one; SQLite could, and answers the same so a store moved between them keeps every row), never a 500."""

from __future__ import annotations

from tests.management.conftest import Env, run


def test_a_nul_in_text_or_json_is_a_400_not_a_500(db_url: str) -> None:
    async def body(env: Env) -> None:
        for path, payload in (("/key/generate", {"key_alias": "a\x00b"}),
                              ("/key/generate", {"metadata": {"note": "x\x00y"}}),
                              ("/team/new", {"team_id": "t\x001"}),
                              ("/user/new", {"user_id": "u\x00", "user_email": "u@example.com"})):
            r = await env.call("POST", path, payload)
            assert r.status == 400, (path, r.status, r.body)
            err = r.json()["error"]
            assert "U+0000" in err["message"] and err["type"] == "bad_request_error", err
        for path in ("/team/info?team_id=t%001", "/user/info?user_id=u%00", "/key/info?key=sk-a%00b"):
            r = await env.call("GET", path)
            assert r.status in (400, 404), (path, r.status, r.body)
        # the store is untouched and still answers
        assert (await env.ok("POST", "/team/new", {"team_id": "fine"}))["team_id"] == "fine"
        assert "a\x00b" not in str(await env.ok("GET", "/key/list"))

    run(db_url, body)
