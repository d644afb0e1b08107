"""Stream usage as LiteLLM's proxy handles it, through a real ``relaygate serve`` (SQLite store) with the openai SDK
and a real OpenAI-shaped upstream that sends a usage chunk only when asked: a client that does not ask for
usage still has its stream priced from the upstream's own counts (the gateway asks for them) and never sees the
usage chunk; a client that asks gets it; ``general_settings.always_include_stream_usage`` gives it to every
client (``true``) or never asks (``false``: the spend is estimated from the content)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import start_gateway
from tests.e2e.openai_echo import openai_echo, spend_row

pytestmark = pytest.mark.e2e

MASTER = "sk-usage-master"


def run(tmp_path: Path, policy: str, model: str = "openai/m", **kw: Any) -> tuple[list[Any], dict[str, Any],
                                                                                   dict[str, Any]]:
    """One stream through a gateway with ``policy``: the chunks the client got, the body the upstream got and the
    request's spend row."""
    with openai_echo() as (base, seen):
        config = f"""
model_list:
  - model_name: m
    litellm_params: {{model: {model}, api_key: sk-up, api_base: "{base}", input_cost_per_token: 0.001,
                      output_cost_per_token: 0.002, api_version: "2024-10-21"}}
general_settings:
  master_key: {MASTER}
  database_url: sqlite:///{tmp_path / "rg.db"}
{policy}"""
        with start_gateway(config) as gw, \
                openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
            stream = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "one two"}], stream=True, **kw)
            call_id = stream.headers["x-litellm-call-id"]
            chunks = list(stream.parse())
            row = spend_row(gw.url, MASTER, call_id)
    return chunks, seen[0], row


def text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_usage_asked_for_the_client_that_did_not(tmp_path: Path) -> None:
    chunks, sent, row = run(tmp_path, "")
    assert sent["stream_options"] == {"include_usage": True}  # the gateway asked
    assert text(chunks) == "one two" and all(c.choices for c in chunks)  # no usage-only chunk for this client
    assert all(c.usage is None for c in chunks)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 5)  # the upstream's counts, not estimates
    assert row["spend"] == pytest.approx(10 * 0.001 + 5 * 0.002)


@pytest.mark.parametrize("model", ["azure/m", "groq/m", "together_ai/m"])
def test_usage_asked_of_the_other_providers_that_take_it(tmp_path: Path, model: str) -> None:
    """Azure, Groq, Together ... take ``stream_options`` as LiteLLM's configs say: asked the same way."""
    chunks, sent, row = run(tmp_path, "", model)
    assert sent["stream_options"] == {"include_usage": True}
    assert text(chunks) == "one two" and all(c.usage is None for c in chunks)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 5)


def test_a_client_that_asks_gets_it(tmp_path: Path) -> None:
    chunks, sent, row = run(tmp_path, "", stream_options={"include_usage": True})
    assert sent["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5 and not chunks[-1].choices
    assert row["completion_tokens"] == 5


def test_always_include_stream_usage(tmp_path: Path) -> None:
    chunks, sent, _ = run(tmp_path, "  always_include_stream_usage: true\n")
    assert sent["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 10


def test_never_asked_when_turned_off(tmp_path: Path) -> None:
    chunks, sent, row = run(tmp_path, "  always_include_stream_usage: false\n")
    assert "stream_options" not in sent and text(chunks) == "one two"
    assert row["prompt_tokens"] != 10 and row["completion_tokens"] > 0  # estimated from the content
