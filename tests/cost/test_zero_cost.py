"""LiteLLM 1.110's zero-cost diagnostic (``cost.zero_cost``): the same findings as LiteLLM's own
``diagnose_zero_cost`` on the same usage and prices, and through a gateway the record, the Prometheus counter,
the standard payload and the warning for a billable answer priced at $0."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys

import pytest

from relaygate.catalog import ModelEntry
from relaygate.cost import zero_cost
from relaygate.cost.prices import PriceTable, to_pico
from relaygate.logs import Every
from relaygate.observe.standard import standard_payload
from tests.asgi.conftest import call
from tests.budgets.conftest import MASTER, ask, config, started, upstream
from tests.observe.test_prometheus_dashboard import parse_exposition, record

PRICES = [
    {},
    {"input_cost_per_token": 1e-6},
    {"output_cost_per_token": 2e-6},
    {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
    {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
    {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "output_cost_per_image": 0.04},
    {"output_cost_per_image": 0.04},
    {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 0.0},
    {"input_cost_per_token": 0.0, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 1e-7},
    {"input_cost_per_token": 1e-6, "output_cost_per_token": 0.0, "input_cost_per_audio_token": 1e-5},
    {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "output_cost_per_audio_token": 0.0},
]
USAGES = [  # prompt, completion, cached read, input audio, output audio
    (0, 0, 0, 0, 0), (10, 0, 0, 0, 0), (0, 5, 0, 0, 0), (10, 5, 0, 0, 0), (10, 5, 10, 0, 0), (10, 5, 4, 0, 0),
    (10, 5, 0, 10, 0), (10, 5, 0, 3, 0), (10, 5, 0, 0, 5), (10, 5, 0, 0, 2),
]

_LITELLMS = r"""
import json, sys
from litellm.litellm_core_utils.llm_cost_calc.zero_cost_diagnostic import diagnose_zero_cost
from litellm.types.utils import Usage
out = []
for prices, (p, c, cached, audio_in, audio_out) in json.load(sys.stdin):
    usage = Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c,
                  prompt_tokens_details={"cached_tokens": cached, "audio_tokens": audio_in},
                  completion_tokens_details={"audio_tokens": audio_out})
    found = diagnose_zero_cost(usage=usage, pricing_model="gpt-x", pricing_entry=prices, calculation_failed=False)
    out.append(None if found is None else [found["reason"], list(found["missing_pricing_keys"])])
print(json.dumps(out))
"""


def _ours(prices: dict[str, float], usage: tuple[int, int, int, int, int]) -> list[object] | None:
    if not zero_cost.rated(prices):  # the caller's test (PriceTable.rated)
        return None
    found = zero_cost.diagnose("gpt-x", prices, *usage)
    return None if found is None else [found[0], list(found[2])]


def test_the_findings_are_litellms() -> None:
    """Every pair of prices and usage gives the finding LiteLLM's ``diagnose_zero_cost`` gives (run in a
    subprocess: importing litellm reads its price map)."""
    jobs = list(itertools.product(PRICES, USAGES))
    out = subprocess.run([sys.executable, "-c", _LITELLMS], input=json.dumps(jobs), capture_output=True, text=True,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=120, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = [_ours(prices, usage) for prices, usage in jobs]
    assert ours == theirs
    assert sum(1 for f in ours if f is not None) >= 20  # the matrix finds something in many cells


def test_a_price_finer_than_a_pico_usd_is_pricing_not_applied() -> None:
    """relaygate's prices are integer pico-USD: a price below half a pico-USD a token rounds to 0, and an answer
    on it costs 0 although the model declares a positive rate, LiteLLM's ``pricing_not_applied``."""
    prices = {"input_cost_per_token": 1e-13, "output_cost_per_token": 2e-13}
    table = PriceTable(ModelEntry(model="tiny", provider="openai", prices=prices))
    assert to_pico(1e-13) == 0 and table.rated and table.tokens(10, 5) == 0
    assert zero_cost.diagnose(table.model, table.prices, 10, 5) == ("pricing_not_applied", "tiny", ())
    free = PriceTable(ModelEntry(model="free", provider="openai", prices={"input_cost_per_token": 0.0}))
    assert free.known and not free.rated  # no positive rate: never diagnosed


def test_a_billable_answer_priced_at_zero_is_counted_and_logged(caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment whose prices name only an image price answers a chat with usage: the record says why it
    cost $0 (its input and output prices are missing), LiteLLM's counter counts it by reason, the warning is
    logged once a minute, and a deployment marked free (every price it needs 0) is not counted."""
    monkeypatch.setattr(zero_cost, "_every", Every(60.0))  # a fresh minute: other tests may have said it

    async def main() -> None:
        async with upstream() as up:
            cfg = config(None, up, litellm_settings={"callbacks": ["prometheus"]})
            cfg["model_list"][0]["model_info"] = {"output_cost_per_image": 0.04}
            cfg["model_list"][1]["model_info"] = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                                                  "output_cost_per_image": 0.04}
            async with started(cfg) as gw:
                with caplog.at_level(logging.WARNING, logger="relaygate.cost"):
                    for model in ("m", "m", "m2"):
                        r = await ask(gw, MASTER, model)
                        assert r.status == 200, r.body
                        assert dict(r.headers).get("x-litellm-response-cost") == "0.0"
                await asyncio.sleep(0.05)
                m = await call(gw, "GET", "/metrics", headers={"authorization": f"Bearer {MASTER}"})
                scrape = parse_exposition(m.body.decode())
                rows = list(zip(scrape.samples["litellm_zero_cost_requests_total"],
                                scrape.values["litellm_zero_cost_requests_total"], strict=True))
                assert [(dict(labels)["requested_model"], dict(labels)["model"], dict(labels)["api_provider"],
                         dict(labels)["reason"], v) for labels, v in rows] == [
                    ("m", "gpt-x", "openai", "missing_pricing_key", 2.0)], rows
        warnings = [rec.getMessage() for rec in caplog.records if "priced at $0" in rec.getMessage()]
        assert len(warnings) == 1, warnings  # once a minute, however many
        assert "has no input_cost_per_token, output_cost_per_token" in warnings[0]
        assert 'litellm_zero_cost_requests_total{reason="missing_pricing_key"}' in warnings[0]

    asyncio.run(main())


def test_the_standard_payload_carries_the_finding() -> None:
    """LiteLLM's ``zero_cost_diagnostic`` in the StandardLoggingPayload every exporter built on it sends: the
    reason, the pricing model and the missing keys; None for an answer priced as it should be."""
    r = record(0, cost=0.0)
    r.zero_cost = ("missing_pricing_key", "gpt-x", ("input_cost_per_token",))
    assert standard_payload(r)["zero_cost_diagnostic"] == {
        "reason": "missing_pricing_key", "pricing_model": "gpt-x", "missing_pricing_keys": ["input_cost_per_token"]}
    assert standard_payload(record(1))["zero_cost_diagnostic"] is None
