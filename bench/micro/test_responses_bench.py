"""Per-event cost of the Responses API's translations, and of the passthroughs they are compared with.

Streams: 100 deltas fed one upstream event per ``feed`` and closed (divide by 100 for the per-event cost,
``extra_info`` holds ``chunks``):

- ``responses-to-anthropic``: ``/v1/messages`` on a Responses-only model, OpenAI Responses events ->
  Anthropic events (``providers.messages_responses.ResponsesToMessages``);
- ``chat-to-responses``: ``/v1/responses`` on a chat deployment, chat chunks -> Responses events
  (``providers.responses_api.ResponsesStream``);
- ``chat-to-anthropic``: ``/v1/messages`` on a chat deployment (``MessagesStream``), for comparison;
- ``native-responses`` / ``native-anthropic``: the passthroughs (whole events forwarded, usage read).

Unary: one answer of 20 words translated (``response-to-message``, ``chat-to-response``,
``chat-to-message``). The ``c``/``py`` parameter swaps the SSE decoder twin under the translators that use
it. Run::

    taskset -c 0 python -m pytest bench/micro/test_responses_bench.py --benchmark-only --benchmark-enable \
        -p no:cacheprovider --benchmark-columns=min,median,mean --benchmark-sort=name
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.shapes_responses import Answer, response_body, response_stream
from relaygate.frontends import anthropic as anthropic_fe
from relaygate.frontends import responses as responses_fe
from relaygate.providers import messages_responses as mr
from relaygate.providers import responses_api as ra
from relaygate.providers.messages_api import MessagesStream, openai_to_message

from .conftest import twin

N = 100
WORDS = [f" word{i}" for i in range(N)]
ANSWER = Answer(rid="b1", model="o3-pro", created=1, text=WORDS, input_tokens=25, output_tokens=N)
# one event per feed: split the mock's groups at event boundaries
RESPONSES = [e + b"\n\n" for g in response_stream(ANSWER) for e in g.split(b"\n\n") if e]
OPENAI = [b"data: " + orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                                    "model": "gpt-x", "choices": [{"index": 0, "delta": {"content": w},
                                                                   "finish_reason": None}]}) + b"\n\n"
          for w in WORDS] + [b"data: " + orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                                        "created": 1, "model": "gpt-x", "choices": [],
                                                        "usage": {"prompt_tokens": 25, "completion_tokens": N,
                                                                  "total_tokens": 25 + N}}) + b"\n\n",
                             b"data: [DONE]\n\n"]


def _aev(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **obj}) + b"\n\n"


ANTHROPIC = [_aev("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                "model": "claude-x", "content": [], "stop_reason": None,
                                                "usage": {"input_tokens": 25, "output_tokens": 1}}}),
             _aev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
             *[_aev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in WORDS],
             _aev("content_block_stop", {"index": 0}),
             _aev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": N}}),
             _aev("message_stop", {})]
ECHO = ra.echo({"model": "m", "input": "hi"}, None)
SHORT = Answer(rid="b2", model="o3-pro", created=1, text=WORDS[:20], input_tokens=25, output_tokens=20)
CHAT_BODY = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS[:20])},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 25, "completion_tokens": 20, "total_tokens": 45}})


def _run(make: Callable[[], Any], events: list[bytes]) -> int:
    t = make()
    n = 0
    for e in events:
        n += len(t.feed(e))
    return n + len(t.close())


def _bench(benchmark: BenchmarkFixture, make: Callable[[], Any], events: list[bytes]) -> None:
    benchmark.extra_info["chunks"] = N
    assert benchmark(_run, make, events) > 0


@pytest.mark.benchmark(group="responses-to-anthropic-100-chunks")
def test_responses_to_anthropic(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mr, "SSEDecoder", twin("sse", kind).SSEDecoder)
    _bench(benchmark, lambda: mr.ResponsesToMessages("o3", 25), RESPONSES)


@pytest.mark.benchmark(group="chat-to-responses-100-chunks")
def test_chat_to_responses(benchmark: BenchmarkFixture) -> None:
    _bench(benchmark, lambda: ra.ResponsesStream("m", 1, ECHO), OPENAI)


@pytest.mark.benchmark(group="chat-to-anthropic-100-chunks")
def test_chat_to_anthropic(benchmark: BenchmarkFixture) -> None:
    _bench(benchmark, lambda: MessagesStream("claude", 10), OPENAI)


@pytest.mark.benchmark(group="native-responses-100-chunks")
def test_native_responses(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responses_fe, "SSEDecoder", twin("sse", kind).SSEDecoder)
    _bench(benchmark, responses_fe._Native, RESPONSES)


@pytest.mark.benchmark(group="native-anthropic-100-chunks")
def test_native_anthropic(benchmark: BenchmarkFixture, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_fe, "SSEDecoder", twin("sse", kind).SSEDecoder)
    _bench(benchmark, anthropic_fe._Native, ANTHROPIC)


@pytest.mark.benchmark(group="unary-20-words")
def test_response_to_message(benchmark: BenchmarkFixture) -> None:
    body = response_body(SHORT)
    assert benchmark(mr.response_to_message, body, "o3")


@pytest.mark.benchmark(group="unary-20-words")
def test_chat_to_response(benchmark: BenchmarkFixture) -> None:
    assert benchmark(ra.chat_to_response, CHAT_BODY, "m", 1, ECHO)


@pytest.mark.benchmark(group="unary-20-words")
def test_chat_to_message(benchmark: BenchmarkFixture) -> None:
    assert benchmark(openai_to_message, CHAT_BODY, "m")
