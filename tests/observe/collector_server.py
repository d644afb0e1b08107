"""A real HTTP collector for the exporter tests, and the records they export.

:class:`Collector` is a ``ThreadingHTTPServer`` on a free loopback port that records every POST (path,
headers, body gunzipped when ``Content-Encoding: gzip``) and answers as a test tells it: a fixed status,
a queue of statuses for the next requests (``fail_next``), a status chosen per body (``answer``), or no
answer at all until released (``hang``). It runs in its own thread, so the exporters under test talk to it
over real sockets from their own event loop.

:func:`record` and :func:`detail` build completion records and their observability detail with plain
defaults (keyword overrides), the way the pipeline would for a chat request.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relaygate.observe.detail import Attempt, Detail
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["Collector", "Post", "callback_config", "detail", "record"]


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    raw: bytes
    """The body as received."""
    body: bytes
    """The body, gunzipped when it was gzipped."""

    def json(self) -> Any:
        return json.loads(self.body)

    def entries(self) -> list[Any]:
        """The payloads the post carries: a JSON list's items, NDJSON lines, or the one object."""
        text = self.body.decode()
        if "\n" in text.strip():
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        value = json.loads(text)
        return value if isinstance(value, list) else [value]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timed-out exporter) is part of the tests


@dataclass
class Collector:
    status: int = 200
    posts: list[Post] = field(default_factory=list)
    requests: int = 0
    """Every request received, answered or not."""
    answer: Callable[[Post], int | None] | None = None
    """Optional per-body status (``None``: the usual rules)."""
    _script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    _hang: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None,
                  body: bytes = b'{"error": "collector down"}') -> None:
        """Answer the next ``n`` requests with ``status`` (they are not recorded as posts)."""
        with self._lock:
            self._script.extend([(status, headers or {}, body)] * n)

    def hang(self) -> None:
        """Hold every request without answering until :meth:`release` (or :meth:`stop`)."""
        self._hang = threading.Event()

    def release(self) -> None:
        if self._hang is not None:
            self._hang.set()
            self._hang = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def entries(self) -> list[Any]:
        with self._lock:
            return [e for p in self.posts for e in p.entries()]

    def wait_entries(self, n: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.entries()
            if len(got) >= n:
                return got
            time.sleep(0.01)
        return self.entries()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Collector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with collector._lock:
                    collector.requests += 1
                hang = collector._hang
                if hang is not None:  # held: whatever the client does meanwhile, this request is lost
                    hang.wait(30)
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
                post = Post(self.path, headers, raw, body)
                with collector._lock:
                    scripted = collector._script.pop(0) if collector._script else None
                status, extra, answer = scripted if scripted else (collector.status, {}, b'{"ok": true}')
                if scripted is None and collector.answer is not None:
                    chosen = collector.answer(post)
                    if chosen is not None:
                        status = chosen
                        answer = b'{"ok": true}' if status < 300 else b'{"error": "refused"}'
                if status < 300:
                    with collector._lock:
                        collector.posts.append(post)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="collector",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- records -----------------------------------------------------------------------------------------------

_RECORD_DEFAULTS: dict[str, Any] = dict(
    call_id="call-1", route="chat", stream=False, model="gpt-4o-alias", model_group="gpt-4o-alias",
    deployment_id="dep-1", provider="openai", upstream_model="gpt-4o", key_hash="ab" * 32, key_alias="my-key",
    team_id="team-1", user_id="user-1", status=200, outcome=Outcome.OK, prompt_tokens=10, completion_tokens=5,
    cache_read_tokens=0, cache_write_tokens=0, latency=1.5, ttft=None, overhead=0.002, cost=0.00025,
    cache_hit=False, retries=0, fallbacks=0, start_time=1_700_000_000.0)


def record(**kw: Any) -> CompletionRecord:
    """A completion record of a chat request (override any field by keyword)."""
    return CompletionRecord(**{**_RECORD_DEFAULTS, **kw})


def detail(**kw: Any) -> Detail:
    """The detail of a chat request that carried metadata and tags and got one answer."""
    values: dict[str, Any] = dict(
        trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331",
        input={"model": "gpt-4o-alias", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
               "metadata": {"generation_name": "g1"}},
        output={"id": "chatcmpl-123", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop"}]},
        metadata={"generation_name": "g1", "tags": ["t-meta"]}, tags=["t1", "t2"],
        attempts=[Attempt(deployment_id="dep-1", model_group="gpt-4o-alias", provider="openai",
                          upstream_model="gpt-4o", api_base="https://api.openai.com/v1/", start=1_700_000_000.1,
                          end=1_700_000_001.4, status=200)],
        team_alias="team-alias", request_headers={"x-custom": "v"})
    values.update(kw)
    return Detail(**values)


def callback_config(callback: str, master: str) -> str:
    """A ``relaygate serve`` config of one echo model group ``m``, the one ``callback`` and master key ``master``."""
    return (f"model_list:\n  - model_name: m\n    litellm_params: {{model: mock/echo}}\nlitellm_settings:\n"
            f"  callbacks: [\"{callback}\"]\ngeneral_settings:\n  master_key: {master}\n")
