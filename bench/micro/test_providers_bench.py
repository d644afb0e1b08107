"""Per-chunk cost of stream translation: Anthropic/Gemini/Bedrock -> OpenAI, OpenAI -> Anthropic events.

Every benchmark feeds a 100-delta stream one upstream event per ``feed`` (as TCP delivers them from a
token-by-token upstream) and closes it; divide the time by 100 for the per-chunk cost (``extra_info``
holds ``chunks``). The ``c``/``py`` parameter swaps the SSE decoder twin under the translators; the
``passthrough`` group is the OpenAI -> OpenAI baseline. Run::

    python -m pytest bench/micro/test_providers_bench.py --benchmark-only --benchmark-enable \
        -p no:cacheprovider --benchmark-columns=min,median,mean --benchmark-sort=name
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from relaygate.core.views import decode_view
from relaygate.providers import anthropic as anthropic_mod
from relaygate.providers import gemini as gemini_mod
from relaygate.providers import openai as openai_mod
from relaygate.providers.base import Call
from relaygate.providers.bedrock import ConverseStream, encode_frame
from relaygate.providers.messages_api import MessagesStream

from .conftest import twin

N = 100
_BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                      "stream_options": {"include_usage": True}})
CALL = Call("chat", _BODY, decode_view("chat", _BODY), "m", "claude-x", 1_700_000_000.0)
WORDS = [f" word{i}" for i in range(N)]


def _aev(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n"


ANTHROPIC = [
    _aev("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
         "model": "claude-x", "content": [], "stop_reason": None, "stop_sequence": None,
         "usage": {"input_tokens": 25, "output_tokens": 1}}})
    + _aev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    *[_aev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
      for w in WORDS],
    _aev("content_block_stop", {"type": "content_block_stop", "index": 0})
    + _aev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": N}})
    + _aev("message_stop", {"type": "message_stop"}),
]
GEMINI = [b"data: " + orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}],
                                    "modelVersion": "gemini-x", "responseId": "r1"}) + b"\r\n\r\n" for w in WORDS]
BEDROCK = [encode_frame({":event-type": "contentBlockDelta", ":content-type": "application/json",
                         ":message-type": "event"}, orjson.dumps({"contentBlockIndex": 0, "delta": {"text": w}}))
           for w in WORDS]
OPENAI = [b"data: " + orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
                                    "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}) + b"\n\n"
          for w in WORDS] + [b"data: [DONE]\n\n"]


def _run(make: Callable[[], Any], events: list[bytes]) -> int:
    t = make()
    n = 0
    for e in events:
        n += len(t.feed(e))
    return n + len(t.close())


def _bench(benchmark: BenchmarkFixture, make: Callable[[], Any], events: list[bytes]) -> None:
    benchmark.extra_info["chunks"] = N
    assert benchmark(_run, make, events) > 0


@pytest.mark.benchmark(group="anthropic-to-openai-100-chunks")
def test_anthropic_to_openai(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_mod, "SSEDecoder", twin("sse", kind).SSEDecoder)
    _bench(benchmark, lambda: anthropic_mod.AnthropicStream(CALL), ANTHROPIC)


@pytest.mark.benchmark(group="gemini-to-openai-100-chunks")
def test_gemini_to_openai(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemini_mod, "SSEDecoder", twin("sse", kind).SSEDecoder)
    _bench(benchmark, lambda: gemini_mod.GeminiStream(CALL, "GeminiException"), GEMINI)


@pytest.mark.benchmark(group="bedrock-to-openai-100-chunks")
def test_bedrock_to_openai(benchmark: BenchmarkFixture) -> None:
    _bench(benchmark, lambda: ConverseStream(CALL), BEDROCK)


@pytest.mark.benchmark(group="openai-to-anthropic-100-chunks")
def test_openai_to_anthropic(benchmark: BenchmarkFixture) -> None:
    _bench(benchmark, lambda: MessagesStream("claude", 10), OPENAI)


@pytest.mark.benchmark(group="passthrough-openai-100-chunks")
def test_passthrough_baseline(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_mod, "DataReframer", twin("sse", kind).DataReframer)
    _bench(benchmark, lambda: openai_mod.PassthroughStream(), OPENAI)
