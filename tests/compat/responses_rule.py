"""The one rule the Responses client suites' mock providers answer by, and what they record.

Each request a mock provider gets (:mod:`tests.compat.responses_apis`) is read into one provider-neutral
:class:`Ask` (the conversation as :class:`Turn`\\ s, the tools offered, a forced tool, a JSON schema asked for)
and answered by :func:`decide`: the output of the last turn's tool calls (:func:`tool_reply`), a call of a
forced tool, a call of the offered tool for a weather prompt (one per city it names, after a line of text when
it asks to explain), JSON that follows the schema (:func:`sample`), else :func:`reply_text`, which counts the
user turns the model saw. So the same prompt gets the same answer through every deployment, and the tests can
say what the client must see. :data:`USAGE` is what each provider reports, :func:`expected_usage` what a
client of the gateway must get for it. Every request is kept as a :class:`Received` in the :class:`Mock`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

KEYS = {"openai": "sk-oa-upstream", "anthropic": "sk-ant-upstream", "gemini": "gm-upstream-key"}
"""The provider credentials the gateway's config holds (never the client's key)."""
UPSTREAM_MODELS = {"openai": "gpt-4.1-mini-up", "anthropic": "claude-sonnet-4-up", "gemini": "gemini-2.5-flash-up"}
GEMINI_3 = "gemini-3-pro-up"
"""A second Gemini model, of the generation that requires its function calls' thought signatures back."""
USAGE: dict[str, dict[str, int]] = {
    "openai": {"input_tokens": 31, "cached_tokens": 5, "output_tokens": 9, "reasoning_tokens": 0},
    "anthropic": {"input_tokens": 17, "cache_read_input_tokens": 4, "output_tokens": 6},
    "gemini": {"promptTokenCount": 13, "candidatesTokenCount": 5, "thoughtsTokenCount": 2},
}
"""What each mock reports as usage on every answer, in its own API's terms."""
ANTHROPIC_VERSION = "2023-06-01"
MAX_OUTPUT = {"openai": 32768, "anthropic": 64000, "gemini": 65536}
"""The most output tokens each upstream model takes: more is the provider's own 400."""


def expected_usage(provider: str) -> dict[str, int]:
    """The Responses ``usage`` a client must get for one answer of ``provider`` (its numbers mapped as the
    provider documents them: Anthropic's cache reads are input tokens too, Gemini's thoughts are output)."""
    u = USAGE[provider]
    if provider == "openai":
        i, c, o, r = u["input_tokens"], u["cached_tokens"], u["output_tokens"], u["reasoning_tokens"]
    elif provider == "anthropic":
        i, c, o, r = u["input_tokens"] + u["cache_read_input_tokens"], u["cache_read_input_tokens"], \
            u["output_tokens"], 0
    else:
        i, c, o, r = u["promptTokenCount"], 0, u["candidatesTokenCount"] + u["thoughtsTokenCount"], \
            u["thoughtsTokenCount"]
    return {"input_tokens": i, "cached_tokens": c, "output_tokens": o, "reasoning_tokens": r, "total_tokens": i + o}


# ----------------------------------------------------------------------------------------- the one rule


@dataclass
class Turn:
    role: str  # "system" | "user" | "assistant"
    text: str = ""
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (id, name, arguments)
    results: list[tuple[str, str]] = field(default_factory=list)  # (call id or function name, output text)


@dataclass
class Ask:
    """A request as the rule sees it, whatever the provider."""

    turns: list[Turn]
    tools: dict[str, dict[str, Any]]  # name -> JSON schema of its arguments
    forced: str | None = None  # a tool the request forces
    schema: dict[str, Any] | None = None  # the JSON schema the answer must follow
    stream: bool = False
    think: bool = False  # the request asks for the model's reasoning (and it is shown)

    @property
    def prompt(self) -> str:
        """The last user text of the conversation."""
        return next((t.text for t in reversed(self.turns) if t.role == "user" and t.text), "")

    @property
    def user_turns(self) -> int:
        return sum(1 for t in self.turns if t.role == "user" and t.text)


@dataclass
class Answer:
    thought: str | None = None  # the reasoning, first
    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments), after the text


CITIES = ("Paris", "Rome", "Oslo")
"""The cities a weather prompt may name: one tool call each, in this order (parallel calls)."""
THOUGHT = "The user wants a short answer, so I keep it brief."
"""The reasoning the mocks send first when it is asked for (thinking, thoughts, a reasoning summary)."""
OVERLOADED = "[overloaded]"
"""A prompt with this in it is broken off mid-stream by Anthropic's mock with an ``overloaded_error`` event."""
PREAMBLE = "Let me look that up."
"""The text the mocks send before a tool call when the prompt asks them to explain."""


def reply_text(prompt: str, turn: int = 1) -> str:
    """What the mocks answer a plain prompt, the ``turn``-th user message of its conversation."""
    return f"turn {turn}: you said {prompt}"


def tool_reply(output: str) -> str:
    """What the mocks answer once the last turn carries a tool's output."""
    return f"The tool said: {output}"


def sample(schema: dict[str, Any], key: str = "") -> Any:
    """A value that follows ``schema`` (what the mocks answer when JSON is asked for, or a tool is called)."""
    if "anyOf" in schema:
        return sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), key)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next(x for x in t if x != "null")
    if t == "object" or "properties" in schema:
        return {k: sample(v, k) for k, v in (schema.get("properties") or {}).items()}
    if t == "array":
        return [sample(schema.get("items") or {"type": "string"}, key)]
    if t == "integer":
        return 21
    if t == "number":
        return 21.5
    if t == "boolean":
        return True
    return "Paris" if key in ("city", "location") else f"{key or 'value'}-text"


def decide(ask: Ask) -> Answer:
    ans = _decide(ask)
    ans.thought = THOUGHT if ask.think else None
    return ans


def _decide(ask: Ask) -> Answer:
    last = ask.turns[-1] if ask.turns else Turn("user")
    if last.results:
        return Answer(text=tool_reply("; ".join(out for _, out in last.results)))
    if ask.forced:
        return Answer(calls=[(ask.forced, sample(ask.tools.get(ask.forced) or {}))])
    if ask.tools and "weather" in ask.prompt.lower():
        name, schema = next(iter(ask.tools.items()))
        cities = [c for c in CITIES if c in ask.prompt] or ["Paris"]
        args = [{**sample(schema), "city": c} if "city" in (schema.get("properties") or {}) else sample(schema)
                for c in cities]
        return Answer(text=PREAMBLE if "explain" in ask.prompt.lower() else None, calls=[(name, a) for a in args])
    if ask.schema is not None:
        return Answer(text=json.dumps(sample(ask.schema)))
    return Answer(text=reply_text(ask.prompt, ask.user_turns))


def pieces(text: str) -> list[str]:
    """``text`` in the pieces a stream sends it in (words, spaces kept)."""
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


class Refused(Exception):
    """A request the real provider refuses: its status and the provider's own error body."""

    def __init__(self, status: int, body: dict[str, Any], problem: str) -> None:
        super().__init__(problem)
        self.status = status
        self.body = body


def hex_id(n: int = 24) -> str:
    return os.urandom(n).hex()


# ----------------------------------------------------------------------------------------- recording


@dataclass
class Received:
    provider: str
    method: str
    path: str  # with the query
    headers: dict[str, str]
    body: dict[str, Any]
    ask: Ask | None = None
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)  # ids and what the mock answered


@dataclass
class Mock:
    url: str = ""
    seen: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI: id -> {input, output, response}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_prompt(self, prompt: str, provider: str | None = None) -> list[Received]:
        """The requests whose last user text is ``prompt``."""
        return [r for r in self.seen if r.ask is not None and r.ask.prompt == prompt
                and (provider is None or r.provider == provider)]

    def mentioning(self, text: str) -> list[Received]:
        """The requests whose conversation has ``text`` in a user turn."""
        return [r for r in self.seen if r.ask is not None and any(text in t.text for t in r.ask.turns)]
