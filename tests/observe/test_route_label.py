"""LiteLLM's ``route`` label and ``user_api_key_request_route``: the route the request came in on, as its template
(``/v1/chat/completions`` and ``/chat/completions`` apart, a model in the path as ``{model}``), never the client's
path text; a request without one (a record not made by a routed request) keeps the API's fixed name. The master
key's requests are recorded as LiteLLM 1.110 records them (``litellm_proxy_master_key``, ``default_user_id``)."""

from __future__ import annotations

import asyncio
from typing import Any

from relaygate.auth.keys import hash_key
from relaygate.observe.otel_attrs import request_attributes
from relaygate.observe.standard import standard_payload
from relaygate.sinks.record import CompletionRecord
from tests.asgi.conftest import call, make_gateway
from tests.asgi.test_completions import Recorder
from tests.observe.test_prometheus_dashboard import parse_exposition

MASTER = "sk-master-route"


def test_the_route_label_is_the_template_the_request_matched() -> None:
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"callbacks": ["prometheus"]},
    })
    auth = {"authorization": f"Bearer {MASTER}"}
    keep = Recorder()
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    async def main() -> str:
        await gw.startup()
        gw.completions.add_sink(keep)
        try:
            for path in ("/v1/chat/completions", "/chat/completions", "/chat/completions",
                         "/openai/deployments/m/chat/completions?api-version=2024-10-21",
                         "/engines/secret-model-text/chat/completions", "/v1/embeddings"):
                payload = {**body, "input": "x"} if path.endswith("embeddings") else body
                await call(gw, "POST", path, payload, headers=auth)
            assert (await call(gw, "POST", "/v1/chat/completions", body)).status == 401  # no key: not counted
            gw.completions.drain_now()
            return (await call(gw, "GET", "/metrics", headers=auth)).body.decode()
        finally:
            await gw.shutdown()

    text = asyncio.run(main())
    scrape = parse_exposition(text)
    counts: dict[str, float] = {}
    for labels, value in zip(scrape.samples["litellm_proxy_total_requests_metric_total"],
                             scrape.values["litellm_proxy_total_requests_metric_total"], strict=True):
        counts[labels["route"]] = counts.get(labels["route"], 0.0) + value
    assert counts == {"/v1/chat/completions": 1.0, "/chat/completions": 2.0,
                      "/openai/deployments/{model}/chat/completions": 1.0, "/engines/{model}/chat/completions": 1.0,
                      "/v1/embeddings": 1.0}
    assert "secret-model-text" not in text  # a path's text is never a label
    # the master key as LiteLLM 1.110 records it: its alias and the admin's user, never the key's hash
    labels = scrape.samples["litellm_proxy_total_requests_metric_total"][0]
    assert (labels["hashed_api_key"], labels["user"]) == ("litellm_proxy_master_key", "default_user_id")
    assert hash_key(MASTER) not in text
    assert {(r.key_hash, r.user_id) for r in keep.records if r.status != 401} == {
        ("litellm_proxy_master_key", "default_user_id")}
    routes = {r.request_route for r in keep.records if r.status != 401}  # the engines one: a 400 (unknown model)
    assert routes == set(counts)
    bad = next(r for r in keep.records if r.status == 400)  # a failure keeps the message the client got
    assert "Invalid model name passed in model=secret-model-text" in bad.error_message
    assert standard_payload(bad)["error_information"]["error_message"] == bad.error_message
    # LiteLLM's exception class for the gateway's own refusal, not the one the status names (BadRequestError)
    assert bad.error_class == "ProxyModelNotFoundError"
    assert standard_payload(bad)["error_information"]["error_class"] == "ProxyModelNotFoundError"
    failed = [labels["exception_class"] for labels in scrape.samples["litellm_proxy_failed_requests_metric_total"]]
    assert failed == ["ProxyModelNotFoundError"]
    assert all(not r.error_message for r in keep.records if r.status == 200)
    routed = next(r for r in keep.records if r.request_route == "/chat/completions")
    meta = standard_payload(routed)["metadata"]
    assert meta["user_api_key_request_route"] == "/chat/completions"
    attrs, _, _ = request_attributes(routed, None, message_logging=False, redact_key_info=False)  # OpenTelemetry
    assert (attrs["http.route"], attrs["litellm.call_id"], attrs["litellm.model_group"]) == (
        "/chat/completions", routed.call_id, "m")
    unrouted = CompletionRecord("c1", "chat", False, "m", "m", "", "", "", None, None, None, None, 200,
                                keep.records[0].outcome, 1, 1, 0, 0, 0.1, None, 0.0, 0.0, False, 0, 0)
    assert standard_payload(unrouted)["metadata"]["user_api_key_request_route"] is None


def test_the_gateways_own_429s_carry_litellms_exception_classes() -> None:
    """A key's own limit is LiteLLM's ``ProxyRateLimitError`` (``HTTPException`` in its metrics); no deployment
    free is its ``RouterRateLimitError``; neither is the ``RateLimitError`` an upstream's 429 is."""
    gw = make_gateway({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo", "rpm": 1}},
                       {"model_name": "free", "litellm_params": {"model": "mock/echo"}}],
        "general_settings": {"master_key": MASTER},
        "relaygate_keys": [{"key": "sk-slow", "rpm_limit": 1, "models": ["free"]}],
        "litellm_settings": {"callbacks": ["prometheus"]},
    })
    keep = Recorder()

    async def main() -> str:
        await gw.startup()
        gw.completions.add_sink(keep)
        try:
            for key, model in (("sk-slow", "free"), ("sk-slow", "free"), (MASTER, "m"), (MASTER, "m")):
                await call(gw, "POST", "/v1/chat/completions",
                           {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                           headers={"authorization": f"Bearer {key}"})
            gw.completions.drain_now()
            return (await call(gw, "GET", "/metrics", headers={"authorization": f"Bearer {MASTER}"})).body.decode()
        finally:
            await gw.shutdown()

    scrape = parse_exposition(asyncio.run(main()))
    assert [(r.status, r.error_class) for r in keep.records] == [
        (200, ""), (429, "HTTPException"), (200, ""), (429, "RouterRateLimitError")]
    failed = sorted(labels["exception_class"] for labels in scrape.samples["litellm_proxy_failed_requests_metric_total"])
    assert failed == ["HTTPException", "RouterRateLimitError"]
