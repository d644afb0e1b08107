"""LiteLLM's control fields and cache controls of any JSON shape, on a gateway with the response cache: every
request is answered 200 (sent twice, the second may be a hit) or a 400 in OpenAI's error shape naming what was
wrong; never a 5xx. Integers past 64 bits, deep nesting and odd strings included (a kept value that no exporter
could write once answered "nested too deeply" for an integer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asgi.conftest import call, make_gateway

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)
_controls = st.dictionaries(st.sampled_from(["ttl", "s-maxage", "s-max-age", "no-cache", "no-store", "namespace",
                                             "use-cache", "other"]), _json, max_size=4)
REQUEST = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.just([{"role": "user", "content": "hi"}])},
    optional={"cache": _controls | _json, "caching": _json, "metadata": _json, "litellm_metadata": _json,
              "tags": _json, "user": _json, "stream": st.booleans(), "num_retries": _json, "timeout": _json,
              "fallbacks": _json, "ttl": _json, "disable_fallbacks": _json})
HEADERS = st.dictionaries(st.sampled_from(["cache-control", "x-litellm-tags", "x-litellm-num-retries",
                                           "x-litellm-timeout", "x-litellm-call-id", "x-litellm-spend-logs-metadata",
                                           "x-litellm-end-user-id"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                          max_size=3)
GATEWAY = make_gateway({"model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
                        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 60}}})


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(REQUEST, HEADERS)
def test_any_control_value_is_a_200_or_a_400_naming_it(body: dict[str, Any], headers: dict[str, str]) -> None:
    raw = json.dumps(body).encode()  # the stdlib writes any integer; the gateway reads it as sent

    async def main() -> None:
        for _ in range(2):
            r = await call(GATEWAY, "POST", "/v1/chat/completions", raw, headers=headers)
            assert r.status in (200, 400), (r.status, r.body[:300])
            if r.status == 400:
                err = r.json()["error"]
                assert err["type"] == "invalid_request_error" and err["code"] == "400", err
                assert err["param"], err  # the field or header at fault is named

    asyncio.run(main())
