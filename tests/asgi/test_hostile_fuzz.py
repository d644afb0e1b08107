"""Hostile clients over the whole route table, with real upstreams: a bounded fuzz that runs in CI.

The generator builds *structured* hostile requests (random bytes die at the first parser) for every
route the gateway serves, wrong methods and unknown paths included: model names (in the body or the
path) with control characters, ``../``, ``?``, ``#``, ``%``, unicode, comma lists or 20000 characters;
bodies nested deep, with duplicate keys, with numbers JSON allows but no float holds (``1e999``, ``-0``,
``2**64``, 400 digits) and tokens it does not allow (``NaN``), over the size limit, cut short; every field
with a wrong type; auth and ``x-litellm-*`` override headers with hostile (obs-text too) values;
fallbacks naming models the key may not use; URL-bearing fields (image parts the Gemini adapter
downloads, ``api_base``/``base_url`` in the body) aimed at loopback, metadata addresses, ``file://`` and a
second, "attacker" server. Bodies arrive whole or in pieces; some clients leave before the answer. Half
the requests are *calm* (valid, on a served model, but for one hostile part) so that the hostile part
travels all the way to an upstream. The gateway runs in-process with its real keep-alive transport; its
OpenAI, Anthropic and Gemini deployments (named ones and ``gemini/*``/``azure/*`` wildcards) talk to one
real ``bench.mock`` upstream over loopback, next to the built-in ``mock/echo``. Cooldowns are off: a
client-caused upstream 404 (``/v1/rerank`` on a chat model) would otherwise cool a group down and hide
the following requests behind a 429.

Every answer must hold, whatever the request:

* no 5xx: the upstream is healthy, so nothing here may be a server error (an internal 500 above all),
  and no stream may end in an in-band 5xx error frame; when the bench mock itself failed on a request,
  the failure report shows the mock's log;
* a well-formed answer: the head first, the body complete, JSON in the route's error shape (OpenAI's,
  or Anthropic's on ``/v1/messages``) for every error, header values a real server can write;
* no secret in any output: the master key, the virtual key and the upstream keys appear neither in
  the response (body or headers), nor in any log line as written by either production formatter, nor in
  any request the attacker server received -- checked for each whole secret and a slice of its middle,
  so a truncated echo counts too;
* no traceback in the log (no record with exception or stack info, from ``relaygate`` or ``asyncio``)
  and no forged log line (every line of a record but its first starts with the continuation mark);
* a virtual key is only ever served by a model group its allow-list names.

Memory is checked outside hypothesis, whose own allocations would drown the signal: a fixed batch of
requests from the same generator is replayed; after warm-up passes have filled every bounded cache,
further passes must not grow the traced heap nor the number of live objects.

Bounded time: about 20 s (8000 + 1500 examples and 1500 replayed requests), ``derandomize=True``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import heapq
import itertools
import json
import logging
import random
import re
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from bench.procs import MockHandle, start_mock
from relaygate import logs as logs_module
from relaygate.asgi import Gateway
from relaygate.logs import CONTINUATION, TEXT_FORMAT, JsonFormatter, SafeFormatter

from .conftest import make_gateway

T = TypeVar("T")

MASTER = "sk-master-fuzz-Qw7eR9tY2uI4"
VKEY = "sk-virtual-fuzz-Lp3oK8jH6gF1"
UPSTREAM_KEYS = {"openai": "sk-secret-upstream-XYZ123-oai-Zm4x", "anthropic": "sk-ant-secret-upstream-ABC456-Vn2c",
                 "gemini": "AIza-secret-upstream-GEM789-Bq5w", "azure": "az-secret-upstream-AZR012-Tk8p"}
SECRETS = (MASTER, VKEY, *UPSTREAM_KEYS.values())
# a middle slice of each secret: an echo that was cut short (a header truncated at 128 bytes, a message
# shortened for the log) still shows it, and redaction, which matches whole secrets, would miss it
_SLICES = tuple(s[len(s) // 2 - 5: len(s) // 2 + 5] for s in SECRETS)
_NEEDLES = tuple({*SECRETS, *_SLICES})
_NEEDLE_BYTES = tuple(n.encode() for n in _NEEDLES)
# models the virtual key may use: served groups must be among these (``gemini/*`` is a pattern)
VKEY_MODELS = ["echo", "oai", "gemini/*"]


def _vkey_allows(group: str) -> bool:
    return group in ("echo", "oai") or group.startswith("gemini/")


# -- the stack --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockHandle]:
    """The healthy upstream every remote deployment uses (any key accepted, but one must be sent)."""
    with start_mock(name="fuzz-up", chunks=3, seed=9) as mock:
        yield mock


@pytest.fixture(scope="module")
def attacker() -> Iterator[MockHandle]:
    """A server the hostile requests point URL-bearing fields at; it must never see a secret."""
    with start_mock(name="attacker", record=4000, require_auth=False) as mock:
        yield mock


def gateway_config(up: MockHandle, **server: Any) -> dict[str, Any]:
    def dep(name: str, model: str, provider: str, base: str, **extra: Any) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": model, "api_base": base,
                                                       "api_key": UPSTREAM_KEYS[provider], **extra}}

    return {
        "model_list": [
            dep("oai", "openai/gpt-x", "openai", up.openai_base),
            dep("claude", "anthropic/claude-x", "anthropic", up.url),
            dep("claude-x", "anthropic/claude-x", "anthropic", up.url),  # same name upstream: body passed as is
            dep("gem", "gemini/gemini-x", "gemini", up.url),
            dep("gemini/*", "gemini/*", "gemini", up.url),
            dep("azure/*", "azure/*", "azure", up.url, api_version="2024-02-01"),
            {"model_name": "echo", "litellm_params": {"model": "mock/echo", "mock_chunks": 3}},
            {"model_name": "fixed", "litellm_params": {"model": "mock/x", "mock_response": "fixed answer"}},
        ],
        "router_settings": {"retry_after": 0, "fallbacks": [{"oai": ["claude"]}], "disable_cooldowns": True},
        "general_settings": {"master_key": MASTER, "health_check_timeout": 5},
        # the response cache on (hostile bodies go through its key and controls), kept small
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "max_bytes": 1024 * 1024}},
        # a small body limit, so that some hostile bodies cross it (413)
        "relaygate_settings": {"stream_keepalive_interval": 0, "connect_timeout": 5, "request_timeout": 20,
                               "max_request_body_bytes": 48 * 1024, **server},
        "relaygate_keys": [{"key": VKEY, "models": VKEY_MODELS}],
    }


# -- the in-process client ---------------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    split: tuple[int, ...] = ()
    """Offsets where the body is cut into ``http.request`` messages (it arrives in pieces)."""
    query: bytes = b""
    gone: bool = False
    """The client disconnects as soon as its body is sent (every later ``receive()`` says so)."""

    def __repr__(self) -> str:  # what a failing example prints: short enough to read
        body = self.body if len(self.body) <= 600 else self.body[:600] + b"...(%d bytes)" % len(self.body)
        return (f"Req({self.method} {self.path[:300]!r} query={self.query[:300]!r} headers={self.headers!r} "
                f"body={body!r} split={self.split} gone={self.gone})")


@dataclass
class Answer:
    status: int
    """0 when nothing was sent (only for a client that went away)"""
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


async def send_request(gw: Gateway, req: Req) -> Answer:
    """One request through the app, checking the ASGI message sequence; headers stay bytes (a real server
    passes obs-text bytes through undecoded)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "method": req.method, "path": req.path,
             "raw_path": req.path.encode("utf-8", "surrogatepass"), "query_string": req.query, "headers": req.headers,
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 1)}
    cuts = sorted({0, *req.split, len(req.body)})
    pending = [{"type": "http.request", "body": req.body[a:b], "more_body": b < len(req.body)}
               for a, b in itertools.pairwise(cuts)] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if not req.gone:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        assert not sent or sent[-1]["type"] == "http.response.start" or sent[-1].get("more_body", False), \
            f"message after the response ended: {msg}"
        sent.append(msg)

    await gw(scope, receive, send)
    if req.gone and not sent:
        return Answer(0, [], b"")
    assert sent and sent[0]["type"] == "http.response.start", sent[:2]
    assert all(m["type"] == "http.response.body" for m in sent[1:]), [m["type"] for m in sent]
    if not req.gone:
        assert len(sent) > 1 and not sent[-1].get("more_body", False), "the response never ended"
    return Answer(sent[0]["status"], list(sent[0].get("headers", [])), b"".join(m.get("body", b"") for m in sent[1:]))


class LogWatch(logging.Handler):
    """Formats every record with both production formatters and notes what must never be logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text = SafeFormatter(TEXT_FORMAT)
        self.json = JsonFormatter()
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.text.format(record)
            out = self.json.format(record)
        except Exception as exc:  # a record the formatters cannot write is a problem in itself
            self.problems.append(f"formatting {record.msg!r} failed: {exc!r}")
            return
        if record.exc_info or record.exc_text or record.stack_info:
            self.problems.append(f"traceback in the log ({record.name}):\n{text}")
        for needle in _NEEDLES:
            if needle in text or needle in out:
                self.problems.append(f"secret {needle[:6]}... in a log line: {text[:500]}")
        first, *rest = text.split("\n")
        if _CONTROL.search(first) or any(not line.startswith(CONTINUATION) or _CONTROL.search(line)
                                         for line in rest):
            self.problems.append(f"forged or unescaped log line: {text[:500]!r}")
        if "\n" in out or _CONTROL.search(out):
            self.problems.append(f"JSON log line with a control character: {out[:500]!r}")

    def drain(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_HEADER_VALUE = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")


class Harness:
    """A gateway, the one event loop its upstream pool binds to, and the log watch (one per test)."""

    def __init__(self, upstream: MockHandle, attacker: MockHandle, **server: Any) -> None:
        self.gw = make_gateway(gateway_config(upstream, **server))
        self.loop = asyncio.new_event_loop()
        self.upstream = upstream
        self.attacker = attacker
        self.attacker_seen = attacker.stats()["requests"]
        self.watch = LogWatch()
        self.rg = logging.getLogger("relaygate")
        self._saved = (self.rg.level, self.rg.propagate, self.rg.handlers, logs_module.fail_log.per_second)
        # relaygate's records go to the watch only: pytest's capture handler would keep thousands of them
        # (a failure shows the offending record in full); asyncio's, rare, reach it through the root logger
        self.rg.setLevel(logging.DEBUG)
        self.rg.propagate = False
        self.rg.handlers = [self.watch]
        logging.getLogger().addHandler(self.watch)
        logs_module.fail_log.per_second = 1 << 30  # every failure line is written, so every one is checked

    def run(self, req: Req) -> Answer:
        self.rg.handlers = [self.watch]  # again: pytest attaches its handler to loggers at each test phase
        log = self.upstream.proc.log_path
        start = log.stat().st_size
        ans = self.loop.run_until_complete(asyncio.wait_for(send_request(self.gw, req), 60))
        if ans.status >= 500:  # the bench mock is a program too: say when it was the one that failed
            with log.open("rb") as f:
                f.seek(start)
                news = f.read().decode(errors="replace").strip()
            if news and currently_in_test_context():
                note(f"the upstream mock logged, during this request:\n{news[-3000:]}")
        return ans

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.gw.aclose())
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            logging.getLogger().removeHandler(self.watch)
            self.rg.setLevel(self._saved[0])
            self.rg.propagate = self._saved[1]
            self.rg.handlers = self._saved[2]
            logs_module.fail_log.per_second = self._saved[3]

    def attacker_requests(self) -> int:
        return int(self.attacker.stats()["requests"]) - self.attacker_seen


@pytest.fixture
def harness(upstream: MockHandle, attacker: MockHandle) -> Iterator[Harness]:
    h = Harness(upstream, attacker)
    try:
        yield h
    finally:
        h.close()
    assert h.attacker_requests() == 0, attacker.requests()[-5:]
    assert not h.watch.drain()


# -- what every answer must satisfy ------------------------------------------------------------------------


_ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def check_answer(req: Req, ans: Answer, problems: list[str]) -> None:
    assert not problems, "\n".join(problems)
    if req.gone and ans.status == 0:
        return
    assert 100 <= ans.status < 500, (ans.status, ans.body[:2000])
    for k, v in ans.headers:
        assert k == k.lower() and re.fullmatch(rb"[!#$%&'*+.^_`|~0-9a-z-]+", k), k
        assert not _HEADER_VALUE.search(v), (k, v)  # a real server could not write it
    blob = ans.body + b"\n".join(k + b": " + v for k, v in ans.headers)
    for needle in _NEEDLE_BYTES:
        assert needle not in blob, f"secret {needle[:6]!r}... in the response: {ans.status} {ans.body[:2000]!r}"
    ctype = ans.header(b"content-type") or b""
    if req.gone:
        return  # what a client that went away was sent may be cut anywhere
    length = ans.header(b"content-length")
    if length is not None:
        assert int(length) == len(ans.body), (length, len(ans.body))
    if ans.status >= 400:
        assert ctype == b"application/json", (ans.status, ctype)
        err = orjson.loads(ans.body)
        top = req.path.split("/")[1] if req.path.count("/") >= 1 else ""  # a pass-through route's own shape
        if (req.path in _ANTHROPIC_PATHS and req.method == "POST") or (top == "anthropic" and "type" in err):
            assert err["type"] == "error" and isinstance(err["error"]["message"], str), err
            assert isinstance(err["error"]["type"], str), err
        elif (top in ("gemini", "vertex_ai", "vertex-ai") or ":" in req.path) and "status" in (err.get("error") or {}):
            assert set(err) == {"error"} and set(err["error"]) == {"code", "message", "status"}, err
        elif top == "bedrock" and "error" not in err:
            assert set(err) == {"message"} and isinstance(err["message"], str), err
        else:
            assert set(err) == {"error"} and set(err["error"]) == {"message", "type", "param", "code"}, err
            assert isinstance(err["error"]["message"], str), err
    elif ctype == b"text/event-stream":  # whole events (Google's Gemini events end with CRLF CRLF)
        assert ans.body.endswith(b"\n\n") or (":" in req.path and ans.body.endswith(b"\r\n\r\n")), ans.body[-300:]
        for frame in ans.body.split(b"\n\n"):
            data = next((ln[6:] for ln in frame.split(b"\n") if ln.startswith(b"data: ")), None)
            if data is None or data == b"[DONE]" or b'"error"' not in data:
                continue
            err = orjson.loads(data)["error"]
            status = str(err.get("code") or err.get("type") or "")
            assert not status.startswith("5") and err.get("type") not in ("internal_server_error", "api_error"), \
                f"in-band server error: {data[:1000]!r}"
    elif ctype == b"application/json":
        orjson.loads(ans.body)
    if dict(req.headers).get(b"authorization") == b"Bearer " + VKEY.encode() and ans.status == 200:
        group = ans.header(b"x-litellm-model-group")
        if group is not None:
            assert _vkey_allows(group.decode()), f"the virtual key was served by {group!r}"


# -- the generator ------------------------------------------------------------------------------------------
#
# Hypothesis picks a seed, a ``random.Random`` makes the request from it. Hypothesis' own choice-by-choice
# drawing was tried: over a few hundred examples its bias towards boundary choices made half the requests
# duplicates; seeds give distinct requests, and the same generator drives the memory test, which must not
# run hypothesis' machinery. A failure prints the whole request (``note``) and its seed.


class Chooser:
    _alphabet = "ab Z09_-./:?#%\x00\x01\r\n\t\x7f\x85\u2028\u202e\ud800\udfffé中💥\\\"'"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calm = False

    def pick(self, seq: Sequence[T]) -> T:
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def upto(self, n: int) -> int:
        return self.rng.randint(0, n)

    def text(self) -> str:
        return "".join(self.rng.choice(self._alphabet) for _ in range(self.rng.randint(0, 24)))


GOOD = {  # served models per kind of route, upstream-backed ones first
    "chat": ["oai", "oai", "claude", "claude-x", "gem", "gemini/gemini-x", "gemini/gemini-2.0-flash", "azure/dep-1", "echo",
             "fixed"],
    "completions": ["oai", "oai", "azure/dep-1", "echo", "fixed"],
    "embeddings": ["oai", "gem", "gemini/text-embedding-004", "azure/dep-1", "echo"],
    "media": ["oai", "azure/dep-1"],
}
GOOD["messages"] = GOOD["count_tokens"] = GOOD["chat"]
GOOD_MODELS = sorted({m for ms in GOOD.values() for m in ms})
HOSTILE_MODELS = [
    "oai,echo", "echo,gem", "", " ", "echo ", " echo", "ECHO", "echo\x00", "echo\r\nX-Injected: 1", "../echo", "./echo", "echo/..", "%65cho",
    "echo?x=1", "echo#frag", "gemini/../../__mock/config", "gemini/x?key=attacker#", "gemini/a%2F..%2Fb",
    "gemini/x:streamGenerateContent", "gemini/x:generateContent?alt=sse&key=k", "gemini/a b", "gemini/\x7f",
    "gemini/\u202egnp.x", "gemini/é中", "gemini/💥", "gemini/", "gemini/*", "gemini//x", "gemini/x/../../v1",
    "azure/", "azure/a b", "azure/x/chat/completions?api-version=evil", "azure/..", "azure/%0d%0a", "azure/\t",
    "gemini/" + "a" * 5000, "x" * 20000, "*", "**", ",", "echo,", ",echo", "echo,,oai", "echo," * 300,
    "claude,echo", "echo,claude", "nope", "openai/gpt-4", "mock/echo", "anthropic/claude-x", "null", "\\",
    "\ud800", "echo\udfff", "echo\u2028", "\ufeffecho", "ｅｃｈｏ", "http://127.0.0.1:1/v1", "sk-not-a-key",
]
ROLES = ["user", "user", "assistant", "system", "tool", "developer", "function", "", "USER", "bogus"]
NUMBERS = [b"0", b"-0", b"-0.0", b"1", b"-1", b"0.5", b"1e999", b"-1e999", b"1e308", b"1.7976931348623157e308",
           b"4.9e-324", b"2.5e-400", b"18446744073709551616", b"-9223372036854775809", b"9007199254740993",
           b"1" + b"0" * 400, b"0." + b"0" * 300 + b"1", b"1E+2", b"3.0", b"2147483648", b"1e-7"]
BAD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"01", b"1.", b".5", b"+1", b"0x10", b"1e", b"--1", b"1_000"]
NUMBER_STRINGS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-0", "18446744073709551616", "", " 5 ", "0x10",
                  "١٢", "1_000", "5", "0.001"]
TEXTS = ["", " ", "hi", "\x00", "a\r\nb", "\u2028\u2029", "\u202eevil", "\x1b[31mred", "é中💥" * 5, "../../etc/passwd",
         "%00%0d%0a", "${jndi:ldap://127.0.0.1/x}", "<script>alert(1)</script>", "'; DROP TABLE keys;--",
         "Bearer sk-fake-token-123456", "\ud800", "\udfff\ud800", "\\u0000", "a" * 10000, "data:image/png;base64,AAAA"]
URLS = [
    "http://127.0.0.1:99999/a.png", "http://[::1/a.png", "http://[::1]/a.png", "file:///etc/passwd",
    "http://user:pass@host/", "http://user:hunter2@localhost/a.png", "http://169.254.169.254/latest/meta-data/",
    "http://localhost/a.png", "http://0.0.0.0/", "http://10.0.0.1/x.png", "http://127.1/a.png",
    "http://0x7f000001/a.png", "http://2130706433/a.png", "http://example.invalid/a.png",
    "https://example.invalid:0/a.png", "http://" + "a" * 9000 + ".invalid/", "http://a\r\nb.invalid/",
    "http://a b.invalid/", "http://a.invalid/\x00", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/a.png",
    "data:image/png;base64,iVBORw0KGgo=", "data:;base64,!!!", "data:image/png,%ZZ", "data:", "gs://bucket/x.png",
    "http://[fe80::1%25eth0]/a.png", "//127.0.0.1/x", "http:\\\\127.0.0.1\\a.png", "HTTP://EXAMPLE.INVALID/A.PNG",
    "http://xn--.invalid/", "http://é.invalid/a.png", "http://[::ffff:127.0.0.1]/a.png", "http://127.0.0.1:0/",
    "http://127.0.0.1:65536/", "http://127.0.0.1:-1/", "http://127.0.0.1:1e3/", "http://a.invalid/a.png?key=x#y",
]
EXTRA_HEADERS = [b"content-type", b"x-litellm-timeout", b"x-litellm-num-retries", b"x-litellm-call-id",
                 b"x-mock-fault", b"x-mock-chunks", b"anthropic-version", b"anthropic-beta", b"x-forwarded-for",
                 b"accept-encoding", b"api-key", b"x-api-key", b"x-litellm-api-key"]
HEADER_VALUES = [b"nan", b"inf", b"-inf", b"-1", b"0", b"1e999", b"abc", b"1000000", b"2.5e400", b"0.5", b"3",
                 b"1e-320", b"18446744073709551616", b"500", b"hang", b"reset", b"application/json",
                 b"multipart/form-data; boundary=", b"text/plain", b"gzip", b"2023-06-01",
                 b"\x80\xff\xfe", b"caf\xc3", b"\xc3\xa9", b"a" * 8000, b"x\ty", b"prompt-caching-2024-07-31"]


def json_str(d: Chooser, s: str) -> bytes:
    """A JSON string token for ``s``: escaped, raw UTF-8 (lone surrogates as invalid bytes) or, rarely,
    with raw control characters (not JSON at all)."""
    how = d.upto(9)
    if how < 5:
        return json.dumps(s).encode()
    if how < 9:
        return json.dumps(s, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return b'"' + s.encode("utf-8", "surrogatepass").replace(b"\\", b"").replace(b'"', b"") + b'"'


def obj(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from raw pairs, in order: duplicate keys stay duplicates."""
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in pairs) + b"}"


def arr(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def number(d: Chooser) -> bytes:
    return d.pick(BAD_NUMBERS) if d.chance(0.08) else d.pick(NUMBERS)


def text(d: Chooser) -> bytes:
    return json_str(d, d.pick(TEXTS) if d.chance(0.6) else d.text())


def deep(d: Chooser) -> bytes:
    n = d.pick([40, 100, 256, 600, 1000, 3000])
    if d.chance(0.5):
        return b"[" * n + b"]" * n
    return b'{"a":' * n + b"1" + b"}" * n


def value(d: Chooser, depth: int = 2) -> bytes:
    """Any JSON-ish value: the wrong type for whatever field it lands in, usually."""
    kind = d.upto(9 if depth > 0 else 5)
    if kind == 0:
        return number(d)
    if kind == 1:
        return text(d)
    if kind == 2:
        return json_str(d, d.pick(URLS))
    if kind == 3:
        return d.pick([b"true", b"false", b"null"])
    if kind == 4:
        return d.pick([b"[]", b"{}", b'""', b"[null]", b'{"":null}'])
    if kind == 5:
        return json_str(d, d.pick(NUMBER_STRINGS))
    if kind in (6, 7):
        return arr([value(d, depth - 1) for _ in range(d.upto(3))])
    if kind == 8:
        keys = [d.pick(["a", "model", "stream", "type", "", "url", "content", d.text()]) for _ in range(d.upto(3))]
        return obj([(k, value(d, depth - 1)) for k in keys])
    return deep(d)


def model_value(d: Chooser) -> bytes:
    r = d.upto(9)
    if r < 5:
        return json_str(d, d.pick(GOOD_MODELS))
    if r < 8:
        return json_str(d, d.pick(HOSTILE_MODELS))
    if r == 8:
        return json_str(d, d.pick(["", "gemini/", "azure/", "echo,"]) + d.text())
    return value(d, 1)


def url_part(d: Chooser, urls: Sequence[str] = URLS) -> bytes:
    url = json_str(d, d.pick(urls))
    if d.chance(0.2):
        return obj([("type", b'"image_url"'), ("image_url", url)])
    inner = [("url", url)] + ([("detail", value(d, 0))] if d.chance(0.3) else [])
    return obj([("type", b'"image_url"'), ("image_url", obj(inner))])


def content(d: Chooser) -> bytes:
    r = d.upto(6)
    if r < 2:
        return text(d)
    if r == 6:
        return value(d, 1)
    parts = []
    for _ in range(1 + d.upto(3)):
        p = d.upto(5)
        if p < 2:
            parts.append(obj([("type", b'"text"'), ("text", text(d) if d.chance(0.8) else value(d, 1))]))
        elif p < 4:
            parts.append(url_part(d))
        elif p == 4:
            parts.append(obj([("type", json_str(d, d.pick(["input_audio", "file", "image", "document", "x", ""]))),
                              (d.pick(["input_audio", "file", "source", "image_url"]), value(d, 1))]))
        else:
            parts.append(value(d, 1))
    return arr(parts)


def message(d: Chooser) -> bytes:
    pairs = [("role", json_str(d, d.pick(ROLES)) if d.chance(0.9) else value(d, 0)), ("content", content(d))]
    if d.chance(0.15):
        call = obj([("id", text(d)), ("type", b'"function"'),
                    ("function", obj([("name", text(d)), ("arguments", text(d) if d.chance(0.7) else value(d, 1))]))])
        pairs.append(("tool_calls", arr([call]) if d.chance(0.8) else value(d, 1)))
    if d.chance(0.1):
        pairs.append(("tool_call_id", value(d, 0)))
    if d.chance(0.05):
        pairs.append(("content", content(d)))  # duplicate key inside a message
    return obj(pairs)


def messages(d: Chooser) -> bytes:
    r = d.upto(9)
    if r < 3:
        return b'[{"role":"user","content":"hello there"}]'
    if r < 8:
        return arr([message(d) for _ in range(1 + d.upto(3))])
    if r == 8:
        return b'[{"role":"user","content":' + deep(d) + b"}]"
    return value(d, 1)


FIELD_VALUES: dict[str, Callable[[Chooser], bytes]] = {
    "messages": messages, "prompt": lambda d: text(d) if d.chance(0.6) else value(d),
    "input": lambda d: text(d) if d.chance(0.5) else value(d),
    "fallbacks": lambda d: arr([json_str(d, d.pick(GOOD_MODELS + HOSTILE_MODELS)) for _ in range(1 + d.upto(2))])
    if d.chance(0.7) else value(d, 1),
    "stream": lambda d: d.pick([b"true", b"false", b"true", b"1", b'"true"', b"null", b"{}"]),
    "stream_options": lambda d: b'{"include_usage":true}' if d.chance(0.5) else value(d, 1),
    "api_base": lambda d: json_str(d, d.pick(["{attacker}", "{attacker}/v1", *URLS])),
    "base_url": lambda d: json_str(d, d.pick(["{attacker}", "{attacker}/v1", *URLS])),
    "api_key": lambda d: json_str(d, d.pick(["sk-client-supplied-key-000", ""])),
    "timeout": lambda d: number(d) if d.chance(0.6) else value(d, 0),
    "num_retries": lambda d: number(d) if d.chance(0.6) else value(d, 0),
    "max_tokens": lambda d: number(d) if d.chance(0.7) else value(d, 0),
    "tools": lambda d: d.pick([
        lambda: arr([obj([("type", b'"function"'), ("function", obj([("name", text(d)), ("parameters", value(d, 2))]))])]),
        lambda: arr([obj([("name", text(d)), ("input_schema", value(d, 2))])]),  # Anthropic's shape
        lambda: value(d, 2)])(),
    "documents": lambda d: arr([text(d) for _ in range(d.upto(3))]) if d.chance(0.6) else value(d),
    "system": lambda d: text(d) if d.chance(0.5) else value(d),
    # Gemini's generateContent fields (frontends.google)
    "contents": lambda d: d.pick([
        lambda: arr([obj([("role", d.pick([b'"user"', b'"model"', b'"x"'])),
                          ("parts", arr([obj([("text", text(d))]), value(d, 2)]))])]),
        lambda: text(d), lambda: value(d, 3)])(),
    "systemInstruction": lambda d: obj([("parts", arr([obj([("text", text(d))])]))]) if d.chance(0.5) else value(d),
    "generationConfig": lambda d: obj([("maxOutputTokens", number(d)), ("responseSchema", value(d, 2)),
                                       ("thinkingConfig", value(d, 1))]) if d.chance(0.6) else value(d, 2),
    "toolConfig": lambda d: value(d, 3),
    "safetySettings": lambda d: value(d, 2),
}
OTHER_FIELDS = ["temperature", "top_p", "n", "stop", "tool_choice", "response_format", "user", "metadata", "seed",
                "logit_bias", "mock_response", "extra_body", "dimensions", "encoding_format", "size", "quality",
                "query", "top_n", "thinking", "stop_sequences", "echo", "logprobs", "suffix", "voice", "caching",
                "litellm_params", "model_list", "api_version", "extra_headers", "headers", "x-litellm-timeout"]
ROUTE_FIELDS = {
    "chat": ["messages", "stream", "stream_options", "tools", "fallbacks", "timeout", "num_retries", "max_tokens",
             "api_base", "base_url", "api_key"],
    "completions": ["prompt", "stream", "stream_options", "fallbacks", "timeout", "num_retries", "max_tokens",
                    "api_base"],
    "embeddings": ["input", "fallbacks", "timeout", "num_retries", "api_base", "stream"],
    "messages": ["messages", "max_tokens", "system", "stream", "tools", "api_base", "timeout"],
    "count_tokens": ["messages", "system", "tools"],
    "gemini": ["contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings"],
    "media": ["prompt", "input", "documents", "stream", "api_base", "base_url", "timeout"],
}
ROUTES = [  # (kind, path template); {m} is a model name, {x} any text
    *[("chat", "/v1/chat/completions")] * 8, ("chat", "/chat/completions"), ("completions", "/v1/completions"),
    ("completions", "/completions"), ("completions", "/v1/completions"), ("embeddings", "/v1/embeddings"),
    ("embeddings", "/v1/embeddings"), ("embeddings", "/embeddings"), ("messages", "/v1/messages"),
    ("chat", "/openai/deployments/{m}/chat/completions"), ("chat", "/engines/{m}/chat/completions"),
    ("completions", "/v1/engines/{m}/completions"), ("embeddings", "/openai/deployments/{m}/embeddings"),
    ("messages", "/v1/messages"), ("messages", "/v1/messages"), ("count_tokens", "/v1/messages/count_tokens"),
    ("media", "/v1/images/generations"), ("media", "/v1/moderations"), ("media", "/v1/rerank"),
    ("media", "/v2/rerank"), ("media", "/v1/audio/speech"), ("multipart", "/v1/audio/transcriptions"),
    ("get", "/v1/models"), ("get", "/v1/models/{m}"), ("get", "/models/{m}"), ("get", "/health"),
    ("get", "/health/readiness"), ("get", "/health/liveliness"), ("get", "/metrics"), ("get", "/"),
    ("unknown", "/v1/{x}"), ("unknown", "/{x}"), ("unknown", "/v1/chat/completions/"),
    ("unknown", "/V1/CHAT/COMPLETIONS"), ("unknown", "/v1/chat/completions/../../health"),
    ("unknown", "/openai/deployments/{m}"), ("unknown", "/engines/a/b/chat/completions"),
    ("get", "/v1/files/{x}"), ("get", "/v1/batches/{x}"), ("get", "/v1/responses/{x}"), ("multipart", "/v1/files"),
    ("get", "/cache/ping"), ("get", "/anthropic/v1/{x}"), ("gemini", "/v1beta/models/{m}:generateContent"),
    ("gemini", "/v1beta/models/{m}:streamGenerateContent"), ("gemini", "/models/{m}:countTokens"),
]
AUTH = [
    [(b"authorization", b"Bearer " + MASTER.encode())], [(b"authorization", b"Bearer " + MASTER.encode())],
    [(b"authorization", b"Bearer " + VKEY.encode())], [(b"authorization", b"Bearer " + VKEY.encode())],
    [], [(b"authorization", b"Bearer sk-wrong-key")], [(b"authorization", b"Bearer ")],
    [(b"authorization", b"Basic " + base64.b64encode(b"u:" + MASTER.encode()))],
    [(b"authorization", b"bearer " + MASTER.encode())], [(b"authorization", b"Bearer " + MASTER[:-1].encode())],
    [(b"x-api-key", VKEY.encode())], [(b"api-key", MASTER.encode())], [(b"x-litellm-api-key", VKEY.encode())], [(b"authorization", b"Bearer \x80\xff")],
    [(b"authorization", b"Bearer " + VKEY.encode()), (b"authorization", b"Bearer " + MASTER.encode())],
]


QUERIES = [b"api-version=evil", b"key=" + b"k" * 40, b"%ff%00%0d%0a", b"a=1&a=2", b"beta=true", b"alt=sse",
           b"model=claude", b"stream=true", b"?" * 500, b"api_key=sk-client", b"x=" + b"\xff\xfe"]


def path_text(d: Chooser) -> str:
    """Path text as a server hands it over (percent-decoded): anything but nothing."""
    return d.pick(HOSTILE_MODELS + GOOD_MODELS) if d.chance(0.7) else d.text()


def multipart(d: Chooser) -> tuple[bytes, bytes]:
    boundary = d.pick([b"B0undary", b"", b"x" * 100, b"\xff", b"B0undary"])
    parts = []
    for _ in range(d.upto(2) + (1 if d.chance(0.8) else 0)):
        name = d.pick([b"model", b"model", b"file", b"language", b"", b"mod\"el"])
        data = model_value(d).strip(b'"') if name == b"model" else d.pick([b"RIFF\x00\x00WAVE", b"", b"\x00" * 64])
        parts.append(b"--B0undary\r\nContent-Disposition: form-data; name=\"" + name + b"\"" +
                     (b'; filename="a.wav"' if name == b"file" else b"") + b"\r\n\r\n" + data + b"\r\n")
    body = b"".join(parts) + (b"--B0undary--\r\n" if d.chance(0.8) else b"")
    return b"multipart/form-data; boundary=" + boundary, body


def build_request(d: Chooser, attacker_url: str) -> Req:
    """One request. Half are *calm*: a valid request on a served model but for one hostile part (so the
    hostile part travels the whole path to the upstream); the other half are hostile throughout."""
    d.calm = d.chance(0.5)
    kind, template = d.pick(ROUTES)
    # a server hands over the percent-decoded path as UTF-8 text: no lone surrogates
    m = d.pick(GOOD.get(kind, GOOD["chat"])) if d.calm and kind != "get" else path_text(d)
    path = template.replace("{m}", m).replace("{x}", path_text(d)).encode("utf-8", "replace").decode()
    if kind in ("get", "unknown"):
        method = "GET" if d.calm or d.chance(0.7) else d.pick(["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
    else:
        method = "POST" if d.calm or d.chance(0.85) else d.pick(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    if d.calm or d.chance(0.6):
        headers = [(b"authorization", b"Bearer " + (MASTER if d.chance(0.6) else VKEY).encode())]
    else:
        headers = list(d.pick(AUTH))
    for _ in range(1 if d.calm and d.chance(0.2) else d.upto(2) if d.chance(0.3) else 0):
        headers.append((d.pick(EXTRA_HEADERS), d.pick(HEADER_VALUES)))
    if kind == "multipart":
        ctype, body = multipart(d)
        headers.append((b"content-type", ctype))
    elif kind in ("get", "unknown") and method in ("GET", "HEAD"):
        body = b""
    else:
        body = json_body(d, kind, "{m}" in template).replace(b"{attacker}", attacker_url.encode())
        if d.calm or d.chance(0.9):
            headers.append((b"content-type", b"application/json"))
    if kind == "messages" and (d.calm or d.chance(0.8)):
        headers.append((b"anthropic-version", b"2023-06-01"))
    if d.chance(0.5):
        headers.append((b"content-length", str(len(body)).encode()))
    split = tuple(sorted({d.upto(len(body)) for _ in range(d.upto(3))})) if body and d.chance(0.3) else ()
    query = d.pick(QUERIES) if d.chance(0.15) else b""
    return Req(method, path, headers, body, split, query, gone=d.chance(0.08))


def json_body(d: Chooser, kind: str, model_in_path: bool) -> bytes:
    if d.calm:
        return calm_body(d, kind, model_in_path)
    r = d.upto(39)
    if r == 39:
        return d.pick([b"", b"null", b"[]", b"{}", b'"model"', b"\xef\xbb\xbf{}", b"{" * 5000, b"\xff\xfe{"])
    if r == 38:
        return deep(d)
    pairs: list[tuple[str, bytes]] = []
    if not model_in_path or d.chance(0.3):
        pairs.append(("model", model_value(d)))
    fields = ROUTE_FIELDS.get(kind, ["messages", "prompt", "input"])
    for name in fields:
        if name in ("messages", "prompt", "input", "max_tokens") and d.chance(0.85):
            pairs.append((name, FIELD_VALUES[name](d)))
        elif d.chance(0.12):
            pairs.append((name, FIELD_VALUES[name](d)))
    for _ in range(d.upto(2) if d.chance(0.4) else 0):
        pairs.append((d.pick(OTHER_FIELDS), value(d, 1)))
    if pairs and d.chance(0.1):  # a duplicate key, with a different value
        name = d.pick([p[0] for p in pairs])
        pairs.insert(d.upto(len(pairs)), (name, FIELD_VALUES.get(name, model_value)(d)))
    body = obj(pairs)
    if r == 37:
        return body + d.pick([b" garbage", b"{}", b"\x00", b"\n\n"])
    if r == 36:
        return body[: max(1, len(body) // 2)]
    if r == 35:  # over the 48 KiB limit
        return body[:-1] + b',"padding":"' + b"p" * d.pick([48 * 1024, 60_000, 200_000]) + b'"}'
    return body


CALM = {
    "chat": [("messages", b'[{"role":"user","content":"hello there"}]')],
    "completions": [("prompt", b'"hello there"'), ("max_tokens", b"8")],
    "embeddings": [("input", b'["hello", "there"]')],
    "messages": [("max_tokens", b"16"), ("messages", b'[{"role":"user","content":"hello there"}]')],
    "count_tokens": [("messages", b'[{"role":"user","content":"hello there"}]')],
    "gemini": [("contents", b'[{"role":"user","parts":[{"text":"hello there"}]}]')],
    "media": [("prompt", b'"a cat"'), ("input", b'"hello"'), ("query", b'"q"'), ("documents", b'["a", "b"]')],
}


def calm_body(d: Chooser, kind: str, model_in_path: bool) -> bytes:
    """A valid body on a served model with one hostile part: a field, a message, or the stream flag."""
    pairs = [] if model_in_path else [("model", json_str(d, d.pick(GOOD.get(kind, GOOD["chat"]))))]
    pairs += CALM.get(kind, CALM["chat"])
    if d.chance(0.35):
        pairs.append(("stream", b"true"))
    which = d.upto(3)
    if which == 0 and kind in ("chat", "messages", "count_tokens"):
        msgs = [message(d) for _ in range(1 + d.upto(2))]
        if d.chance(0.5):
            msgs.append(b'{"role":"user","content":[{"type":"text","text":"look"},' + url_part(d) + b"]}")
        pairs = [(k, arr(msgs) if k == "messages" else v) for k, v in pairs]
    elif which == 1:
        name = d.pick(ROUTE_FIELDS.get(kind, ["messages"]))
        pairs.append((name, FIELD_VALUES[name](d)))
    else:
        pairs.append((d.pick(OTHER_FIELDS), value(d, 1)))
    return obj(pairs)


# -- the tests ----------------------------------------------------------------------------------------------


FUZZ = settings(max_examples=8000, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],  # shrinking a seed makes nothing simpler
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(seed=st.integers(0, 2**64))
def test_hostile_requests_over_the_route_table(harness: Harness, seed: int) -> None:
    req = build_request(Chooser(seed), harness.attacker.url)
    note(repr(req))
    ans = harness.run(req)
    check_answer(req, ans, harness.watch.drain())


# URLs a gateway that may fetch from private addresses can try without waiting on a timeout (nothing routes
# to 10.0.0.1 here, and 169.254.169.254 may be a real metadata server on a CI machine)
LOOPBACK_URLS = [u for u in URLS if "10.0.0.1" not in u and "169.254" not in u]


def media_request(d: Chooser, attacker: MockHandle) -> Req:
    """A chat request whose image parts the Gemini adapter must download, pointed at loopback servers."""
    att = attacker.url
    theirs = [f"{att}/a.png", f"{att}/v1/models", f"{att}/a.png?key=k#frag", f"{att}/" + "a" * 9000,
              f"http://localhost:{attacker.port}/x.png", f"{att}/a.png\r\nX-Injected: 1", f"{att}/%2e%2e/a.png",
              f"{att}/\x00.png", f"{att}/a.png" + "?" * 3000, f"{att}/../../etc/passwd", f"{att}/a.png%00.gif",
              f"{att.upper()}/A.PNG", f"{att}/\u00e9\u202e.png", f"{att}//a.png", f"{att}/a.png?" + "k=v&" * 200]
    parts: list[Any] = []
    for _ in range(1 + d.upto(3)):
        url = d.pick(theirs) if d.chance(0.5) else d.pick(LOOPBACK_URLS)
        if d.chance(0.2):
            parts.append({"type": "image_url", "image_url": url})
        else:
            parts.append({"type": "image_url", "image_url": {"url": url, **({"detail": "high"} if d.chance(0.3) else {})}})
    if d.chance(0.3):
        parts.append(parts[-1])  # the same URL twice
    if d.chance(0.5):
        parts.insert(0, {"type": "text", "text": "what is in these images?"})
    model = d.pick(["gem", "gem", "gemini/gemini-x", "gemini/gemini-2.0-flash", "oai", "claude", "azure/dep-1"])
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": parts}]}
    if d.chance(0.4):
        body["stream"] = True
    key = VKEY if d.chance(0.2) else MASTER
    return Req("POST", "/v1/chat/completions", [(b"authorization", b"Bearer " + key.encode()),
                                                (b"content-type", b"application/json")], json.dumps(body).encode())


@pytest.fixture
def media_harness(upstream: MockHandle, attacker: MockHandle) -> Iterator[Harness]:
    h = Harness(upstream, attacker, allow_private_media_urls=True)
    try:
        yield h
    finally:
        h.close()
    seen = attacker.requests()
    assert all(r["method"] == "GET" for r in seen), [r for r in seen if r["method"] != "GET"][:3]
    blob = orjson.dumps(seen)
    for needle in _NEEDLE_BYTES:
        assert needle not in blob, f"secret {needle[:6]!r}... sent to the attacker's server"
    assert not h.watch.drain()


@settings(FUZZ, max_examples=1500)
@given(seed=st.integers(0, 2**64))
def test_image_urls_are_fetched_safely(media_harness: Harness, seed: int) -> None:
    """With private media URLs allowed (the SSRF guard off), downloads reach the loopback servers; whatever
    the URL, the answer is a 200 or a 400 naming the URL, and no key goes to the image's host."""
    req = media_request(Chooser(seed), media_harness.attacker)
    note(repr(req))
    ans = media_harness.run(req)
    check_answer(req, ans, media_harness.watch.drain())
    assert ans.status in (200, 400, 401), (ans.status, ans.body[:1000])


def test_memory_stays_bounded(upstream: MockHandle, attacker: MockHandle) -> None:
    """A fixed batch of hostile requests, replayed: once caches are warm, replays must not grow the heap.

    Only memory is judged here (the fuzz tests judge the answers): per-request state that outlives its
    request (a reference cycle through a future, a list that only grows) shows as growth proportional
    to the requests sent."""
    h = Harness(upstream, attacker)
    try:
        d = Chooser(20261130)
        batch = [build_request(d, attacker.url) for _ in range(300)]

        def replay() -> None:
            for req in batch:
                h.run(req)
                h.watch.drain()

        for _ in range(2):  # warm-up: pools, caches, interned strings, the wildcard groups of the batch
            replay()
        gc.collect()
        tracemalloc.start()
        try:
            # objects are counted before each snapshot: a snapshot is itself a list of tuples, one or more
            # for every allocation still live since tracing began (counted after it, they were ~3x the churn)
            objects_before = live_objects(h.loop)
            before = tracemalloc.take_snapshot()
            for _ in range(ROUNDS):
                replay()
            objects_after = live_objects(h.loop)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    finally:
        h.close()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    growth = sum(s.size_diff for s in diff)
    top = "\n".join(str(s) for s in diff[:10])
    requests = ROUNDS * len(batch)
    assert growth < 128 * 1024, f"the heap grew by {growth} bytes over {requests} requests:\n{top}"
    # measured: under 10 objects over the 1,500 requests; one leaked per five requests would be 300
    assert objects_after - objects_before < 300, (objects_before, objects_after, top)


ROUNDS = 5


def live_objects(loop: asyncio.AbstractEventLoop) -> int:
    """Objects the collector tracks, once garbage is collected and the loop's cancelled timers are gone.

    asyncio drops a cancelled timer from its heap lazily (when it reaches the top, or when over half the
    heap is cancelled), so how many cancelled timers linger depends on when the count is taken. Their
    purge is done here the way asyncio itself does it; uvloop, which the gateway runs on, frees them
    at once."""
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is not None:
        live = [t for t in scheduled if not t.cancelled()]
        heapq.heapify(live)
        scheduled[:] = live
        loop._timer_cancelled_count = 0  # type: ignore[attr-defined]
    gc.collect()
    return len(gc.get_objects())
