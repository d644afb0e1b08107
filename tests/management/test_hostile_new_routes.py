"""Hostile values on the model analytics, key regeneration and connection test routes never get a 5xx: every
query field of the analytics routes with control characters, kilobytes, out-of-range dates and offsets;
``grace_period`` of every JSON type; connection tests whose params are malformed, unreachable, negative or of
another type."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.management.conftest import Env, api_error, run
from tests.management.test_model_metrics import MODELS

VALUES = ("", "\x00", "\r\nx", "a" * 5000, "null", "undefined", "-1", "1e309", "2026-13-45",
          "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "%00", "\U0001f600", "sk-x", "NaN")
ANALYTICS = ("/model/metrics", "/model/streaming_metrics", "/model/metrics/slow_responses", "/model/metrics/exceptions")
GRACE: tuple[Any, ...] = (1, [], {}, True, "1e9d", "-1h", "0", "\x00", "1h\r\n", None, 3.5)
TESTS: tuple[dict[str, Any], ...] = (
    {"litellm_params": {"model": "gpt", "api_base": "\x00"}},
    {"litellm_params": {"model": "openai/x", "api_base": "http://[::1"}},
    {"litellm_params": {"model": "openai/x", "api_base": "ftp://x"}},
    {"litellm_params": {"model": "openai/x", "timeout": "abc"}},
    {"litellm_params": {"model": "openai/x", "rpm": -5}},
    {"litellm_params": {"model": ""}},
    {"model_info": {"id": 5}, "litellm_params": {}},
    {"litellm_params": {"model": "openai/x"}, "mode": 5},
    {"litellm_params": {"model": "openai/x", "api_base": "http://127.0.0.1:1/v1", "timeout": 0.2}},
    {"litellm_params": {"model": "gpt", "litellm_credential_name": 7}},
    {"litellm_params": {"model": "azure/x", "api_base": "https://a", "api_key": "k"}},
    {"litellm_params": {"model": "bedrock/x"}},
    {"litellm_params": {"model": "vertex_ai/x", "vertex_credentials": {"a": 1}}},
)


def test_hostile_values_get_no_5xx(db_url: str) -> None:
    async def body(env: Env) -> None:
        bad = []
        for path in ANALYTICS:
            for name in ("_selected_model_group", "startTime", "endTime", "api_key", "customer"):
                for v in VALUES:
                    r = await env.call("GET", f"{path}?{urlencode({'_selected_model_group': 'gpt', name: v})}")
                    if r.status >= 500:
                        bad.append((path, name, v[:20], r.status, r.body[:100]))
        key = await env.user("u1")
        for grace in GRACE:
            r = await env.call("POST", f"/key/{key}/regenerate", {"grace_period": grace})
            if r.status >= 500:
                bad.append(("regenerate", repr(grace), r.status, r.body[:100]))
            elif r.status == 200:
                key = r.json()["key"]
        for sent in TESTS:
            r = await env.call("POST", "/health/test_connection", sent)
            if r.status >= 500:
                bad.append(("test_connection", json.dumps(sent)[:80], r.status, r.body[:150]))
        assert not bad, bad

    run(db_url, body, model_list=MODELS)


BIG = 2**70


def test_integers_past_64_bits_are_a_400_naming_the_field(db_url: str) -> None:
    """msgspec takes an ``int`` of any size; SQLite's driver raised ``OverflowError`` on one (a 500). Now a 400
    naming the field, for a field, a list's item or an object's value; JSON fields (``metadata``) keep the
    number as sent."""
    async def body(env: Env) -> None:
        key = await env.user("u1")
        await env.ok("POST", "/team/new", {"team_id": "t1"})
        await env.ok("POST", "/budget/new", {"budget_id": "b1"})
        cases = [("/key/generate", {}, "rpm_limit", BIG), ("/key/generate", {}, "tpm_limit", -BIG),
                 ("/key/update", {"key": key}, "max_parallel_requests", BIG),
                 ("/key/update", {"key": key}, "model_rpm_limit", {"gpt-a": BIG}),
                 ("/team/new", {}, "team_member_tpm_limit", BIG), ("/team/update", {"team_id": "t1"}, "rpm_limit", BIG),
                 ("/user/new", {}, "tpm_limit", BIG), ("/user/update", {"user_id": "u1"}, "rpm_limit", BIG),
                 ("/budget/new", {}, "max_parallel_requests", BIG), ("/budget/update", {"budget_id": "b1"}, "rpm_limit", BIG)]
        for path, base, name, value in cases:
            r = await env.call("POST", path, json.dumps({**base, name: value}).encode())
            api_error(r, 400, f"{name}: integer out of range")
            assert r.json()["error"]["param"] == name
        r = await env.call("POST", "/key/update", json.dumps({"key": key, "rpm_limit": 2**63 - 1}).encode())
        assert r.status == 200, r.body
        r = await env.call("POST", "/key/generate", json.dumps({"metadata": {"n": BIG}}).encode())
        assert r.status == 200, r.body
        assert json.loads(r.body)["metadata"]["n"] == BIG

    run(db_url, body)
