"""LiteLLM's ``enable_json_schema_validation`` through a real ``relaygate serve`` (SQLite store) with the openai SDK
as the client and a real upstream that answers with the text it was sent: an answer the request's JSON schema
accepts passes, one it refuses is the SDK's ``InternalServerError`` with LiteLLM's words (charged and logged
as a failure), the request's own field wins over the setting and never reaches the provider, a stream and a
request without a schema are not checked, and a schema that is not one is a 400."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import http_server, start_gateway
from tests.e2e.openai_echo import openai_echo, spend_row

pytestmark = pytest.mark.e2e

MASTER = "sk-schema-master"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
          "required": ["city", "days"], "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True}}


def config(base: str, db: Path, on: bool) -> str:
    return f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_key: sk-up, api_base: "{base}", input_cost_per_token: 0.001,
                      output_cost_per_token: 0.002}}
litellm_settings:
  enable_json_schema_validation: {"true" if on else "false"}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{db}
"""


def ask(client: openai.OpenAI, text: str, **kw: Any) -> Any:
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}],
                                          response_format=FORMAT, **kw)  # type: ignore[arg-type]


def test_the_setting_on(tmp_path: Path) -> None:
    with openai_echo() as (base, seen), start_gateway(config(base, tmp_path / "rg.db", True)) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
        good = '{"city": "Lisbon", "days": 3}'
        assert ask(client, good).choices[0].message.content == good

        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, '{"city": "Lisbon", "days": 0}')
        message = caught.value.body["message"]  # type: ignore[index]
        assert message.startswith("litellm.APIResponseValidationError: litellm.JSONSchemaValidationError: model=m, "
                                  'returned an invalid response={"city": "Lisbon", "days": 0}, for schema=')
        call_id = caught.value.response.headers["x-litellm-call-id"]
        with pytest.raises(openai.InternalServerError):
            ask(client, "Lisbon, for three days")  # not JSON at all

        # the request's own field wins, and the provider never sees it
        bad = '{"city": "Lisbon"}'
        r = ask(client, bad, extra_body={"enable_json_schema_validation": False})
        assert r.choices[0].message.content == bad
        assert all("enable_json_schema_validation" not in b for b in seen)
        # not checked: a stream, a request without a schema
        parts = [c.choices[0].delta.content or "" for c in
                 ask(client, bad, stream=True)]  # type: ignore[union-attr]
        assert "".join(parts) == bad
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": bad}])
        assert r.choices[0].message.content == bad
        # a schema that is not one: the caller's 400
        broken = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": good}],
                                           response_format=broken)  # type: ignore[arg-type]
        assert "not a valid JSON Schema" in refused.value.body["message"]  # type: ignore[index]

        # the refused answer used tokens: charged, and logged as a failure
        row = spend_row(gw.url, MASTER, call_id)
        assert row["spend"] == pytest.approx(10 * 0.001 + 5 * 0.002) and row["status"] == "failure", row


def test_the_request_turns_it_on(tmp_path: Path) -> None:
    with openai_echo() as (base, _seen), start_gateway(config(base, tmp_path / "rg.db", False)) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
        bad = '{"days": 2}'
        assert ask(client, bad).choices[0].message.content == bad  # the setting is off
        with pytest.raises(openai.InternalServerError):
            ask(client, bad, extra_body={"enable_json_schema_validation": True})


def test_a_remote_ref_is_never_fetched(tmp_path: Path) -> None:
    """A schema's ``$ref`` to a URL is the caller's 400 and the URL is never called (jsonschema's default would
    fetch it: any client could make the gateway call an internal address); a ``$ref`` inside the schema works."""
    calls: list[str] = []

    class Spy(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            calls.append(self.path)
            body = json.dumps({"type": "object"}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(Spy) as spy, openai_echo() as (base, _seen), \
            start_gateway(config(base, tmp_path / "rg.db", True)) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
        remote = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": f"{spy}/internal.json"}}}
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "{}"}],
                                           response_format=remote)  # type: ignore[arg-type]
        assert "fetches nothing" in refused.value.body["message"]  # type: ignore[index]
        local = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "$defs": {"trip": SCHEMA}, "$ref": "#/$defs/trip"}}}
        good = '{"city": "Porto", "days": 2}'
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": good}],
                                           response_format=local)  # type: ignore[arg-type]
        assert r.choices[0].message.content == good
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": '{"city": 1}'}],
                                           response_format=local)  # type: ignore[arg-type]
    assert calls == []
