"""The credential routes' rules (``management.credentials``) in-process on SQLite and a real PostgreSQL server:
LiteLLM's masking, a masked value sent back keeping the stored one, merges, the immutable name, refusals, a
stored model naming a credential that does not exist, and callers that are not the admin's."""

from __future__ import annotations

import pytest

from tests.management.conftest import Env, api_error, run


def test_credential_rules(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORE_MODEL_IN_DB", "True")

    async def body(env: Env) -> None:
        await env.ok("POST", "/credentials", {"credential_name": "c1", "credential_values": {
            "api_key": "sk-abcdefgh", "api_base": "https://api.example.com/v1", "short_token": "abc"}})
        view = await env.ok("GET", "/credentials/by_name/c1")
        assert view["credential_values"] == {"api_key": "sk****gh", "api_base": "https://api.example.com/v1",
                                             "short_token": "*****"}
        # a masked value sent back keeps the stored one; null removes one; info merges; the name is immutable
        await env.ok("PATCH", "/credentials/c1", {"credential_values": {
            "api_key": "sk****gh", "short_token": None, "api_version": "2024-10-21"},
            "credential_info": {"note": "x"}, "display_name": "Shown"})
        view = await env.ok("GET", "/credentials/by_name/c1")
        assert view["credential_values"] == {"api_key": "sk****gh", "api_base": "https://api.example.com/v1",
                                             "api_version": "2024-10-21"}
        assert view["credential_info"] == {"note": "x"} and view["display_name"] == "Shown"
        api_error(await env.call("PATCH", "/credentials/c1", {"credential_name": "c2"}), 400, "immutable")
        api_error(await env.call("PATCH", "/credentials/nope", {"display_name": "x"}), 404, "not found")
        api_error(await env.call("POST", "/credentials", {"credential_name": "empty", "credential_values": {}}), 400,
                  "Credential values are required")
        api_error(await env.call("POST", "/credentials", {"credential_name": " ", "credential_values": {"a": "b"}}),
                  400, "credential_name")
        api_error(await env.call("POST", "/credentials", {"credential_name": "d", "credential_values": {"a": "b"},
                                                          "display_name": "  "}), 400, "display_name")
        api_error(await env.call("POST", "/model/new", {"model_name": "m", "litellm_params": {
            "model": "openai/gpt-4o", "litellm_credential_name": "missing"}}), 400, "litellm_credential_name")
        key = (await env.ok("POST", "/key/generate", {}))["key"]
        for method, path in (("GET", "/credentials"), ("POST", "/credentials"), ("DELETE", "/credentials/c1")):
            r = await env.call(method, path, {"credential_name": "z", "credential_values": {"a": "b"}}, key=key)
            assert r.status == 401, (method, path, r.status)
        assert (await env.ok("DELETE", "/credentials/c1"))["message"] == "Credential deleted successfully"
        assert (await env.ok("GET", "/credentials"))["credentials"] == []

    run(db_url, body)
