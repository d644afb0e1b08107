"""LiteLLM ``general_settings`` an operator brings along, through a real ``relaygate serve`` (SQLite store) with the
openai SDK: ``reject_clientside_metadata_tags``, ``disable_custom_api_keys``, the upload rules of ``/v1/files``
(``max_file_size_mb``, ``allowed_file_extensions``, ``blocked_file_extensions``, unsafe names) against the files
upstream of ``tests.files``, and ``cancel_on_disconnect`` and ``disable_reset_budget`` as read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from relaygate.config import load_config
from tests.conftest import dead_port, start_gateway
from tests.files.conftest import serve

pytestmark = pytest.mark.e2e

MASTER = "sk-general-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def echo_config(general: str) -> str:
    """A gateway serving ``m`` (the built-in echo model) with the master key and ``general``, more lines of
    ``general_settings`` (each indented two spaces, ending with a new line)."""
    return f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
{general}"""


def test_tags_custom_keys_and_uploads(tmp_path: Path) -> None:
    with serve() as up:
        config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
  - model_name: gpt-files
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up-openai, api_base: "{up.url}/v1"}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp_path / "rg.db"}
  reject_clientside_metadata_tags: true
  disable_custom_api_keys: true
  max_file_size_mb: 1
  allowed_file_extensions: [".jsonl", "txt"]
  blocked_file_extensions: [".txt"]
"""
        with start_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=20) as c, \
                openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30) as client:
            # request tags only from keys, teams and headers
            for body in ({"metadata": {"tags": ["mine"]}}, {"tags": ["mine"]}, {"litellm_metadata": {"tags": ["x"]}}):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                   extra_body=body)
                assert "metadata.tags" in refused.value.body["message"], body  # type: ignore[index]
            ok = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                extra_body={"metadata": {"session": "s1"}})
            assert ok.choices[0].message.content

            # keys are made by the gateway only
            r = c.post("/key/generate", headers=AUTH, json={"key": "sk-my-own-key-123"})
            assert r.status_code == 403 and "Custom API key values are disabled" in r.text, r.text
            made = c.post("/key/generate", headers=AUTH, json={})
            assert made.status_code == 200 and made.json()["key"].startswith("sk-")
            r = c.post("/key/regenerate", headers=AUTH, json={"key": made.json()["key"], "new_key": "sk-chosen-123"})
            assert r.status_code == 403, r.text
            assert c.post("/key/regenerate", headers=AUTH, json={"key": made.json()["key"]}).status_code == 200

            # the upload rules, before anything reaches the provider
            line = b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}\n'
            sent = len([s for s in up.seen if s.method == "POST"])
            refusals = ((("notes.txt", b"hello"), 400, "blocked_file_extensions"),
                        (("photo.png", b"\x89PNG"), 400, "allowed_file_extensions"),
                        (("README", b"x"), 400, "A file without an extension"),
                        (("../../etc/x.jsonl", line), 400, "directory traversal"),
                        (("big.jsonl", line * 20_000), 413, "max_file_size_mb of 1 MB"))
            for file, status, words in refusals:
                with pytest.raises(openai.APIStatusError) as caught:
                    client.files.create(file=file, purpose="user_data", extra_body={"model": "gpt-files"})
                assert caught.value.status_code == status and words in caught.value.message, (file[0], caught.value)
            assert len([s for s in up.seen if s.method == "POST"]) == sent  # none was forwarded
            small = client.files.create(file=("ok.jsonl", line), purpose="user_data", extra_body={"model": "gpt-files"})
            assert small.id
            big_batch = client.files.create(file=("in.JSONL", line * 20_000), purpose="batch",
                                            extra_body={"model": "gpt-files"})  # batch input files are exempt
            assert big_batch.id


def test_settings_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model_list: []\ngeneral_settings:\n  cancel_on_disconnect: false\n  disable_reset_budget: true\n")
    cfg = load_config(str(path))
    assert cfg.server.cancel_on_disconnect is False and cfg.general.disable_reset_budget is True
    assert not [w for w in cfg.warnings if "ignored" in w]


def test_token_rate_limit_type_output_counts_a_key_s_answer_tokens(tmp_path: Path) -> None:
    """``token_rate_limit_type: output`` through a real gateway: a virtual key's ``tpm_limit`` of 12 is charged
    the 5 output tokens of each answer (not the 15 in all), so three answers fit and the fourth is LiteLLM's 429;
    the same answers with ``total`` fit once."""
    from tests.e2e.openai_echo import openai_echo

    for count, fits in (("output", 3), ("total", 1)):
        with openai_echo() as (base, _seen):
            config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-up, api_base: "{base}"}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp_path / (count + ".db")}
  token_rate_limit_type: {count}
"""
            with start_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:
                made = c.post("/key/generate", headers=AUTH, json={"tpm_limit": 12, "models": ["m"]})
                assert made.status_code == 200, made.text
                with openai.OpenAI(base_url=gw.url + "/v1", api_key=made.json()["key"], max_retries=0,
                                   timeout=30) as client:
                    served = 0
                    for _ in range(fits + 1):
                        try:
                            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
                        except openai.RateLimitError as exc:
                            assert "current tpm" in exc.message and "tpm limit: 12" in exc.message, exc.message
                            break
                        served += 1
                    assert served == fits, (count, served)


def test_include_call_id_in_error_body(tmp_path: Path) -> None:
    """``include_call_id_in_error_body: true``: an error answer's body names its call id as ``litellm_call_id``
    (the same as its ``x-litellm-call-id`` header), in the OpenAI error object and in Anthropic's; off (the
    default), the header only."""
    import anthropic

    for on in (True, False):
        config = echo_config(f"  include_call_id_in_error_body: {str(on).lower()}\n")
        with start_gateway(config) as gw, \
                openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30) as client:
            with pytest.raises(openai.BadRequestError) as missing:  # LiteLLM's 400 for an unknown model
                client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
            call_id = missing.value.response.headers["x-litellm-call-id"]
            assert call_id
            body = missing.value.body
            assert isinstance(body, dict) and body.get("litellm_call_id") == (call_id if on else None), body
            claude = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=30)
            with pytest.raises(anthropic.APIStatusError) as refused:
                claude.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
            error = refused.value.body["error"]  # type: ignore[index]
            assert error.get("litellm_call_id") == (refused.value.response.headers["x-litellm-call-id"] if on else None)


def test_model_list_healthy_only_and_return_wildcard_routes() -> None:
    """``model_list_healthy_only: true``: ``/v1/models`` and ``/v1/model/info`` hide a model group whose every
    deployment failed its last background health check (still callable: a 502 from its dead upstream);
    ``return_wildcard_routes: true`` lists ``openai/*`` unless the request says ``return_wildcard_routes=false``."""
    import time

    dead = dead_port()  # nothing listens there
    config = f"""
model_list:
  - model_name: alive
    litellm_params: {{model: mock/echo}}
  - model_name: dead
    litellm_params: {{model: openai/gpt-4o, api_key: sk-up, api_base: "http://127.0.0.1:{dead}/v1"}}
  - model_name: "openai/*"
    litellm_params: {{model: "openai/*", api_key: sk-up, api_base: "http://127.0.0.1:{dead}/v1"}}
general_settings:
  master_key: {MASTER}
  background_health_checks: true
  health_check_interval: 1
  model_list_healthy_only: true
  return_wildcard_routes: true
"""
    with start_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=20, headers=AUTH) as c:
        def ids(query: str = "") -> list[str]:
            r = c.get("/v1/models" + query)
            assert r.status_code == 200, r.text
            return [m["id"] for m in r.json()["data"]]

        deadline = time.monotonic() + 15
        while "dead" in ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ids() == ["alive", "openai/*"]
        assert ids("?return_wildcard_routes=false") == ["alive"]
        info = c.get("/v1/model/info")  # the model info list hides it too
        assert info.status_code == 200 and "dead" not in {m["model_name"] for m in info.json()["data"]}, info.text
        assert "alive" in {m["model_name"] for m in info.json()["data"]}
        r = c.post("/v1/chat/completions", json={"model": "dead", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code >= 500  # hidden, still routed


def _logged(tmp_path: Path, db: str, settings: str, **create: Any) -> dict[str, Any]:
    """The spend row of one chat completion (the openai SDK, ``create``'s extra arguments) through a gateway
    with ``settings`` (lines of ``general_settings``) and a SQLite store named ``db``."""
    from tests.e2e.openai_echo import spend_row

    config = echo_config(f"  database_url: sqlite:///{tmp_path / db}\n{settings}")
    with start_gateway(config) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30) as client:
        r = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], **create)
        return spend_row(gw.url, MASTER, r.headers["x-litellm-call-id"])


def test_requester_ip_address_in_the_spend_logs(tmp_path: Path) -> None:
    """LiteLLM's ``requester_ip_address``: the client's address in each spend log row (with
    ``use_x_forwarded_for``, the last ``X-Forwarded-For`` hop, the one the proxy in front wrote; the hops before it
    are the client's say), and nothing with ``disable_requester_ip_address_logging: true``."""
    for n, (settings, headers, expected) in enumerate((
            ("", {}, "127.0.0.1"),
            ("  use_x_forwarded_for: true\n", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}, "203.0.113.9"),
            ("  trusted_proxy_ranges: [127.0.0.0/8, 10.0.0.0/8]\n", {"X-Forwarded-For": "203.0.113.9, 10.2.2.2"},
             "203.0.113.9"),  # the gateway's peer (loopback) is a trusted proxy, and so is 10.2.2.2
            ("  trusted_proxy_ranges: [10.0.0.0/8]\n", {"X-Forwarded-For": "203.0.113.9"}, "127.0.0.1"),
            ("  disable_requester_ip_address_logging: true\n", {}, ""))):
        row = _logged(tmp_path, f"ip{n}.db", settings, extra_headers=headers)
        assert row and row["requester_ip_address"] == expected, (settings, row)


def test_spend_logs_metadata_fields(tmp_path: Path) -> None:
    """``spend_logs_metadata_fields``: ``include`` writes only those keys of a spend row's ``metadata`` (and
    ``status``, always), ``exclude`` all but those; what ``/spend/logs`` shows follows it; a name that is not a
    metadata field, or excluding ``status``, stops the start."""
    for n, (rule, kept) in enumerate((("{include: [spend_logs_metadata]}", {"status", "spend_logs_metadata"}),
                                      ("{exclude: [requester_metadata, user_api_key_alias]}", None))):
        meta = _logged(tmp_path, f"meta{n}.db", f"  spend_logs_metadata_fields: {rule}\n",
                       extra_body={"metadata": {"app": "billing"}},
                       extra_headers={"x-litellm-spend-logs-metadata": '{"cost_center": "42"}'})["metadata"]
        assert meta["spend_logs_metadata"] == {"cost_center": "42"} and meta["status"] == "success"
        if kept is not None:
            assert set(meta) == kept, meta
        else:
            assert "requester_metadata" not in meta and "user_api_key_alias" not in meta
            assert "user_api_key" in meta and "attempted_retries" in meta


def test_spend_logs_metadata_fields_are_checked() -> None:
    from relaygate.config import ConfigError, from_litellm

    for bad in ({"include": ["no_such_field"]}, {"exclude": ["status"]}, {"include": [], "exclude": []}, {},
                {"include": "status"}):
        with pytest.raises(ConfigError, match="spend_logs_metadata_fields"):
            from_litellm({"model_list": [], "general_settings": {"spend_logs_metadata_fields": bad}}, "<t>")


def test_store_prompts_in_spend_logs(tmp_path: Path) -> None:
    """``store_prompts_in_spend_logs``: each row's ``proxy_server_request`` is the request body and its
    ``response`` the answer (a stream's assembled into its ``chat.completion``); a request asking for redaction
    stores its messages redacted and no answer; a key whose metadata opts out stores neither; with
    ``spend_logs_prompt_storage: latest_turn``, only the model and the last user message."""
    from tests.e2e.openai_echo import spend_row

    def config(extra: str) -> str:
        return echo_config(f"  database_url: sqlite:///{tmp_path / f'prompts{len(extra)}.db'}\n"
                           f"  store_prompts_in_spend_logs: true\n{extra}")

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    with start_gateway(config("")) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30) as client:
        r = client.chat.completions.with_raw_response.create(model="m", messages=messages, temperature=0.5)
        answer = r.parse()
        row = spend_row(gw.url, MASTER, r.headers["x-litellm-call-id"])
        assert row["proxy_server_request"] == {"model": "m", "messages": messages, "temperature": 0.5}, row
        assert row["response"]["id"] == answer.id and row["response"]["choices"][0]["message"]["content"] == \
            answer.choices[0].message.content and row["messages"] == []

        with client.chat.completions.with_streaming_response.create(model="m", messages=messages,
                                                                     stream=True) as s:
            call_id = s.headers["x-litellm-call-id"]
            text = "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices)
        row = spend_row(gw.url, MASTER, call_id)
        assert row["proxy_server_request"]["stream"] is True
        assert row["response"]["object"] == "chat.completion" and text
        assert row["response"]["choices"][0]["message"]["content"] == text

        r = client.chat.completions.with_raw_response.create(
            model="m", messages=messages, extra_headers={"x-litellm-enable-message-redaction": "true"})
        row = spend_row(gw.url, MASTER, r.headers["x-litellm-call-id"])
        assert row["proxy_server_request"]["messages"] == [{"role": "user", "content": "redacted-by-litellm"}]
        assert "hello" not in str(row["proxy_server_request"]) and row["response"] == {}

        key = httpx.post(f"{gw.url}/key/generate", headers=AUTH, timeout=10,
                         json={"metadata": {"store_prompts_in_spend_logs": False}}).json()["key"]
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30) as own:
            r = own.chat.completions.with_raw_response.create(model="m", messages=messages)
        row = spend_row(gw.url, MASTER, r.headers["x-litellm-call-id"])
        assert row and row["proxy_server_request"] == {} and row["response"] == {}

    with start_gateway(config("  spend_logs_prompt_storage: latest_turn\n")) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=30) as client:
        r = client.chat.completions.with_raw_response.create(model="m", messages=messages)
        row = spend_row(gw.url, MASTER, r.headers["x-litellm-call-id"])
        assert row["proxy_server_request"] == {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
        assert row["response"]["choices"][0]["message"]["content"]


def test_spend_logs_prompt_storage_is_checked() -> None:
    """An unknown ``spend_logs_prompt_storage`` stops the start (LiteLLM's setting takes only ``latest_turn``)."""
    from relaygate.config import ConfigError

    with pytest.raises(ConfigError, match="spend_logs_prompt_storage"):
        load_config("c.yaml", b"model_list: []\ngeneral_settings:\n  spend_logs_prompt_storage: everything\n")
