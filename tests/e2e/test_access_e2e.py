"""End to end: LiteLLM's proxy-wide access settings through a real Granian process, as the openai and anthropic
SDKs see them — ``allowed_ips`` with ``use_x_forwarded_for`` (the proxy in front is played by the client's
``X-Forwarded-For``), ``enforce_user_param``, and a key's ``metadata.enforced_params`` set through
``/key/generate`` on the embedded database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayProc, start_gateway

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-access"
ALLOWED = "10.20.30.40"
FROM_ALLOWED = {"X-Forwarded-For": f"198.51.100.1, {ALLOWED}"}
CONFIG = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  allowed_ips: ["{ALLOWED}", "10.99.0.0/16"]
  use_x_forwarded_for: true
  enforce_user_param: true
"""
MSGS = [{"role": "user", "content": "one two"}]


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProc]:
    with start_gateway(CONFIG) as proc:
        yield proc


def test_an_address_outside_the_list_is_refused_on_every_api(gw: GatewayProc) -> None:
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as info:
        oa.chat.completions.create(model="chat", messages=MSGS, user="u")
    assert info.value.status_code == 403
    assert "Access forbidden: IP address 127.0.0.1 not allowed." in str(info.value)
    spoof = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0,
                          default_headers={"X-Forwarded-For": f"{ALLOWED}, 203.0.113.5"})
    with pytest.raises(openai.PermissionDeniedError):  # the first hop is the client's to write
        spoof.models.list()
    an = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        an.messages.create(model="chat", max_tokens=8, messages=MSGS)
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        assert c.get("/health/liveliness").status_code == 200  # probes stay open
        assert c.get("/key/list", headers={"Authorization": f"Bearer {MASTER}"}).status_code == 403
        ok = c.get("/health/liveliness", headers={"X-Forwarded-For": "10.99.3.4"})
        assert ok.status_code == 200
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {MASTER}",
                                            "X-Forwarded-For": "10.99.3.4"}).status_code == 200
    assert "-> 403 Access forbidden: IP address 127.0.0.1 not allowed." in gw.log()


def test_every_llm_call_must_name_its_user(gw: GatewayProc) -> None:
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, default_headers=FROM_ALLOWED)
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="chat", messages=MSGS)
    assert "'user' param not passed in" in str(info.value)
    r = oa.chat.completions.create(model="chat", messages=MSGS, user="u-1")
    assert r.choices[0].message.content


def test_a_keys_enforced_params(gw: GatewayProc) -> None:
    with httpx.Client(base_url=gw.url, timeout=10, headers=FROM_ALLOWED) as c:
        made = c.post("/key/generate", headers={"Authorization": f"Bearer {MASTER}"},
                      json={"metadata": {"enforced_params": ["metadata.generation_name"]}})
        assert made.status_code == 200, made.text
        key = made.json()["key"]
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, default_headers=FROM_ALLOWED)
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="chat", messages=MSGS, user="u")
    assert "param=metadata in request body" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="chat", messages=MSGS, user="u",
                                   metadata={"trace": "t"})
    assert "param=[metadata][generation_name]" in str(info.value)
    r = oa.chat.completions.create(model="chat", messages=MSGS, user="u",
                                   metadata={"generation_name": "nightly"})
    assert r.choices[0].message.content
    # the master key (no key row) is not bound by that key's fields
    master = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, default_headers=FROM_ALLOWED)
    assert master.chat.completions.create(model="chat", messages=MSGS, user="u").id


CUSTOMER_CONFIG = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: mock/echo, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {MASTER}
  user_header_mappings:
    - {{header_name: X-OpenWebUI-User-Id, litellm_user_role: internal_user}}
    - {{header_name: X-OpenWebUI-User-Email, litellm_user_role: customer}}
"""


def _poll(check: Callable[[], bool], limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_the_customer_header_names_the_end_user_for_spend_and_blocking() -> None:
    """``user_header_mappings`` (a customer entry; the internal_user one is warned about and ignored): the
    header's value is the request's end user in its spend-log row, and a blocked customer named by it is
    refused as one named by the body's ``user``."""
    admin = {"Authorization": f"Bearer {MASTER}"}
    with start_gateway(CUSTOMER_CONFIG) as gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        assert "user_header_mappings: role 'internal_user' ignored" in gw.log()
        key = c.post("/key/generate", headers=admin, json={}).json()["key"]
        oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0,
                           default_headers={"X-OpenWebUI-User-Email": "alice@example.com",
                                            "X-OpenWebUI-User-Id": "someone-else"})
        assert oa.chat.completions.create(model="chat", messages=MSGS).id

        def logged() -> bool:
            rows = c.get("/spend/logs", headers=admin).json()
            return any(r["end_user"] == "alice@example.com" and r["user"] == "" for r in rows)

        assert _poll(logged), c.get("/spend/logs", headers=admin).text
        assert c.post("/customer/block", headers=admin, json={"user_ids": ["bob@example.com"]}).status_code == 200
        bob = {"Authorization": f"Bearer {key}", "X-OpenWebUI-User-Email": "bob@example.com"}
        body = {"model": "chat", "messages": MSGS}
        assert _poll(lambda: c.post("/v1/chat/completions", headers=bob, json=body).status_code == 400)
        refused = c.post("/v1/chat/completions", headers=bob, json=body)
        assert "User blocked from making LLM API Calls. User=bob@example.com" in refused.text
        # the x-litellm header, when sent, names the customer instead; others are served
        assert c.post("/v1/chat/completions", json=body, headers={**bob, "x-litellm-end-user-id": "carol"}
                      ).status_code == 200
        assert c.post("/v1/chat/completions", json=body, headers={**bob, "X-OpenWebUI-User-Email": "dave"}
                      ).status_code == 200


UI_CONFIG = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: mock/echo}}
general_settings:
  master_key: {MASTER}
  ui_access_mode: admin_only
"""


def test_admin_ui_restrictions_through_a_real_server() -> None:
    """``ui_access_mode: admin_only`` and ``DISABLE_ADMIN_UI`` through Granian, as a browser's fetch() meets
    them (same-origin sign-in, the session cookie)."""
    admin = {"Authorization": f"Bearer {MASTER}"}
    with start_gateway(UI_CONFIG) as gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        made = c.post("/user/new", headers=admin, json={"user_id": "bo", "password": "bo-pass-1",
                                                        "user_role": "internal_user", "auto_create_key": False})
        assert made.status_code == 200, made.text
        origin = {"Origin": gw.url}
        refused = c.post("/ui/login", headers=origin, json={"username": "bo", "password": "bo-pass-1"})
        assert refused.status_code == 403 and "proxy admins only" in refused.text
        assert "set-cookie" not in refused.headers
        ok = c.post("/ui/login", headers=origin, json={"username": "admin", "password": MASTER})
        assert ok.status_code == 200 and c.get("/ui/session").status_code == 200
    with start_gateway(UI_CONFIG, env={"DISABLE_ADMIN_UI": "True"}) as gw, httpx.Client(base_url=gw.url,
                                                                                        timeout=10) as c:
        for path in ("/ui/", "/ui/config"):
            r = c.get(path)
            assert r.status_code == 403 and "DISABLE_ADMIN_UI" in r.text, path
        assert c.get("/sso/key/generate").status_code == 403
        assert c.get("/key/list", headers=admin).status_code == 200  # the API stays
