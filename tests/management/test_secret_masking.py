"""Logging secrets in key and team ``metadata`` over both backends: masked in every answer that carries a record
(``/key/*``, ``/v2/key/info``, ``/team/*``, ``/v2/team/list``, ``/user/info``), kept when an edit sends the mask
back, refused where the mask has no stored value behind it or would send the stored secret somewhere new
(``management.masking``)."""

from __future__ import annotations

import json
from typing import Any

from relaygate.auth.targets import key_logging
from relaygate.management.masking import MASKED, mask_metadata, unmask_metadata
from tests.management.conftest import Env, api_error, run

SECRET = "sk-lf-very-secret"
ENTRY = {"callback_name": "langfuse", "callback_type": "success",
         "callback_vars": {"langfuse_public_key": "pk-lf", "langfuse_secret_key": SECRET,
                           "langfuse_host": "https://lf.example"}}
LEGACY = {"success_callback": ["langfuse"], "callback_vars": {"langfuse_secret_key": "sk-legacy-secret",
                                                              "langfuse_public_key": "pk-legacy"}}


def _no_secret(answer: Any) -> None:
    text = json.dumps(answer)
    assert SECRET not in text and "sk-legacy-secret" not in text, text


async def _stored_secret(env: Env, token: str) -> str:
    targets, _ = key_logging((await env.store.get_key(token)).metadata)
    assert targets is not None
    return targets[0].callback_vars["langfuse_secret_key"]


def test_a_keys_logging_secret_is_in_no_answer(db_url: str) -> None:
    async def body(env: Env) -> None:
        owner = await env.user("owner")
        mate = await env.user("mate")
        await env.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": [
            {"role": "user", "user_id": "owner"}, {"role": "user", "user_id": "mate"}],
            "team_member_permissions": ["/key/generate", "/key/update", "/key/regenerate"]})  # members manage theirs
        viewer = await env.user("watcher", "proxy_admin_viewer")
        made = await env.ok("POST", "/key/generate", {"team_id": "t1", "metadata": {"logging": [ENTRY], "note": "n"}},
                            key=owner)
        _no_secret(made)
        entry = made["metadata"]["logging"][0]
        assert entry["callback_vars"] == {"langfuse_public_key": "pk-lf", "langfuse_secret_key": MASKED,
                                          "langfuse_host": "https://lf.example"}
        assert made["metadata"]["note"] == "n"
        token = made["token"]
        assert await _stored_secret(env, token) == SECRET  # stored and used as sent
        for path, key in ((f"/key/info?key={made['key']}", owner), (f"/key/info?key={token}", viewer),
                          ("/key/list?return_full_object=true", owner), ("/team/info?team_id=t1", mate),
                          ("/team/info?team_id=t1", viewer), ("/user/info?user_id=owner", owner)):
            _no_secret(await env.ok("GET", path, key=key))
        _no_secret(await env.ok("POST", "/v2/key/info", {"keys": [token]}))
        _no_secret(await env.ok("POST", "/key/update", {"key": token, "max_budget": 5}, key=owner))
        _no_secret(await env.ok("POST", "/key/regenerate", {"key": token}, key=owner))

    run(db_url, body)


def test_an_edit_that_sends_the_mask_back_keeps_the_secret(db_url: str) -> None:
    async def body(env: Env) -> None:
        owner = await env.user("owner")
        made = await env.ok("POST", "/key/generate", {"metadata": {"logging": [ENTRY]}}, key=owner)
        token = made["token"]
        shown = (await env.ok("GET", f"/key/info?key={token}", key=owner))["info"]["metadata"]
        edited = {**shown, "note": "edited in the UI"}
        out = await env.ok("POST", "/key/update", {"key": token, "metadata": edited}, key=owner)
        assert out["metadata"]["note"] == "edited in the UI"
        assert await _stored_secret(env, token) == SECRET  # not the mask
        # a new secret sent in clear replaces it
        fresh = {"logging": [{**ENTRY, "callback_vars": {**ENTRY["callback_vars"], "langfuse_secret_key": "sk-new"}}]}
        await env.ok("POST", "/key/update", {"key": token, "metadata": fresh}, key=owner)
        assert await _stored_secret(env, token) == "sk-new"
        # the mask with a changed host would hand the stored secret to that host: refused, nothing written
        before = await env.store.change_version()
        moved = {"logging": [{**ENTRY, "callback_vars": {**shown["logging"][0]["callback_vars"],
                                                         "langfuse_host": "https://elsewhere.example"}}]}
        api_error(await env.call("POST", "/key/update", {"key": token, "metadata": moved}, key=owner), 400,
                  "langfuse_host changed while the secret is the mask")
        # the mask where nothing is stored: a new key, a callback the key did not have
        api_error(await env.call("POST", "/key/generate", {"metadata": shown}, key=owner), 400,
                  "langfuse_secret_key is the mask")
        other = {"logging": [{"callback_name": "otel", "callback_vars": {"otel_api_key": MASKED}}]}
        api_error(await env.call("POST", "/key/update", {"key": token, "metadata": other}, key=owner), 400,
                  "metadata.logging[0].callback_vars.otel_api_key is the mask")
        assert await env.store.change_version() == before
        assert await _stored_secret(env, token) == "sk-new"

    run(db_url, body)


def test_team_secrets_masked_and_kept(db_url: str) -> None:
    async def body(env: Env) -> None:
        boss = await env.user("boss")
        member = await env.user("member")
        await env.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": [
            {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "member"}],
            "metadata": {"callback_settings": {**LEGACY, "success_callback": ["otel"]}}})
        added = await env.ok("POST", "/team/t1/callback", ENTRY, key=boss)
        _no_secret(added)
        for path, key in (("/team/info?team_id=t1", member), ("/team/list", member), ("/v2/team/list", member),
                          ("/team/list", boss), ("/user/info?user_id=member", member)):
            _no_secret(await env.ok("GET", path, key=key))
        info = (await env.ok("GET", "/team/info?team_id=t1", key=boss))["team_info"]
        meta = {**info["metadata"], "owner": "ml-platform"}
        out = await env.ok("POST", "/team/update", {"team_id": "t1", "metadata": meta}, key=boss)
        _no_secret(out)
        stored = (await env.store.get_team("t1")).metadata
        assert stored["owner"] == "ml-platform"
        assert stored["logging"][-1]["callback_vars"]["langfuse_secret_key"] == SECRET
        assert stored["callback_settings"]["callback_vars"]["langfuse_secret_key"] == "sk-legacy-secret"
        # the same callback for failures too, its secret sent back masked: the stored one of that callback
        failure = {**ENTRY, "callback_type": "failure",
                   "callback_vars": {**ENTRY["callback_vars"], "langfuse_secret_key": MASKED}}
        await env.ok("POST", "/team/t1/callback", failure, key=boss)
        stored = (await env.store.get_team("t1")).metadata
        assert stored["logging"][-1]["callback_type"] == "failure"
        assert stored["logging"][-1]["callback_vars"]["langfuse_secret_key"] == SECRET
        api_error(await env.call("POST", "/team/new", {"team_id": "t2", "metadata": meta}), 400, "is the mask")

    run(db_url, body)


def test_mask_and_unmask_rules() -> None:
    meta = {"logging": [ENTRY, "not an entry", {"callback_name": "otel"}], "callback_settings": LEGACY, "x": 1}
    masked = mask_metadata(meta)
    assert masked["logging"][0]["callback_vars"]["langfuse_secret_key"] == MASKED
    assert masked["logging"][1:] == ["not an entry", {"callback_name": "otel"}]
    assert masked["callback_settings"]["callback_vars"] == {"langfuse_secret_key": MASKED,
                                                            "langfuse_public_key": "pk-legacy"}
    assert meta["logging"][0]["callback_vars"]["langfuse_secret_key"] == SECRET  # the record is not changed
    plain = {"tags": ["a"], "logging": [{"callback_name": "otel", "callback_vars": {}}]}
    assert mask_metadata(plain) is plain and mask_metadata(None) is None
    assert unmask_metadata(masked, meta) == meta
    assert unmask_metadata(plain, None) is plain
    # a webhook URL is both the secret and the destination: sent back masked it stays where it was
    hook = {"logging": [{"callback_name": "slack", "callback_vars": {"slack_webhook_url": "https://hooks/x"}}]}
    assert unmask_metadata(mask_metadata(hook), hook) == hook
