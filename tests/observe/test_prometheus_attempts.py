"""With the prometheus callback alone (no exporter that captures a Detail), a request that fails over still
shows its failed attempts as LiteLLM's failure event counts them: the failing deployment's failure and total
counters, its partial-outage state, and the first failure's status and class on the fallback counter. The
failing deployment is a real refused connection (a closed port on loopback)."""

from __future__ import annotations

import asyncio

from tests.asgi.conftest import call, make_gateway
from tests.conftest import dead_port
from tests.observe.test_prometheus_dashboard import parse_exposition

MASTER = "sk-attempts"


def _closed_port() -> int:
    return dead_port()  # bound by the test process, never listening: connections to it are refused


def test_failed_attempts_counted_without_a_detail() -> None:
    port = _closed_port()
    gw = make_gateway({
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "mock/echo"}, "model_info": {"id": "dep-ok"}},
            {"model_name": "down", "litellm_params": {"model": "openai/x", "api_base": f"http://127.0.0.1:{port}/v1",
                                                      "api_key": "sk-x"}, "model_info": {"id": "dep-down"}}],
        "router_settings": {"num_retries": 0, "fallbacks": [{"down": ["m"]}]},
        "litellm_settings": {"callbacks": ["prometheus"]},
        "general_settings": {"master_key": MASTER}})
    auth = {"authorization": f"Bearer {MASTER}"}

    async def main() -> str:
        await gw.startup()
        try:
            r = await call(gw, "POST", "/v1/chat/completions",
                           {"model": "down", "messages": [{"role": "user", "content": "hi"}]}, headers=auth)
            assert r.status == 200 and r.headers["x-litellm-attempted-fallbacks"] == "1", (r.status, r.headers)
            gw.completions.drain_now()
            return (await call(gw, "GET", "/metrics", headers=auth)).body.decode()
        finally:
            await gw.shutdown()

    scrape = parse_exposition(asyncio.run(main()))

    def by_model_id(family: str) -> dict[str, float]:
        return {s["model_id"]: v for s, v in zip(scrape.samples.get(family, []), scrape.values.get(family, []),
                                                  strict=True)}

    failures = [s for s in scrape.samples.get("litellm_deployment_failure_responses_total", [])]
    assert [s["model_id"] for s in failures] == ["dep-down"], failures
    assert failures[0]["exception_status"] == "502" and failures[0]["exception_class"].endswith("APIConnectionError")
    assert by_model_id("litellm_deployment_total_requests_total") == {"dep-down": 1.0, "dep-ok": 1.0}
    assert by_model_id("litellm_deployment_state")["dep-down"] == 1.0  # partial outage after its failed call
    (fb,) = scrape.samples["litellm_deployment_successful_fallbacks_total"]
    assert fb["exception_status"] == "502", fb
