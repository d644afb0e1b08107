"""Mock LLM upstream: a raw ``asyncio.Protocol`` HTTP/1.1 server on uvloop speaking OpenAI, Anthropic and Gemini.

Run it as ``python -m bench.mock --host 127.0.0.1 --port 0 [options]``; it prints exactly one line
``READY <port>`` on stdout once listening and stops cleanly on SIGTERM/SIGINT. ``--processes N`` starts N
worker processes on one port (SO_REUSEPORT); control requests (``/__mock/*``) are then fanned out to every
worker so config changes apply everywhere and stats are summed.

This module owns timing, faults, routing, counters and the socket; response bodies come from
``bench.shapes`` (and ``bench.shapes_responses`` for the Responses API), options and the control routes
from ``bench.mockconf``, HTTP parsing from ``bench.http1``.

Invariants:
- Responses on a connection leave in request order (pipelining-safe): while one request waits on a delay,
  later pipelined requests queue behind it.
- With no delay configured a request is answered synchronously inside ``data_received`` in one write; no
  task or timer is created, so the mock is far faster than a gateway core.
- Faults are drawn from one seeded generator per process, so a run with ``--seed`` repeats exactly for the
  same request order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import struct
import sys
import time
from collections import deque
from typing import Any, Callable

import orjson

from bench import shapes, shapes_responses
from bench.http1 import ParseError, Request, RequestParser
from bench.mockconf import (
    FAULTS,
    LatencySampler,
    MockConfig,
    Stats,
    add_config_args,
    config_from_args,
    control_call,
    handle_control,
    merge_stats,
)

__all__ = ["MockState", "MockProtocol", "main", "serve"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

OPENAI, ANTHROPIC, GEMINI = 0, 1, 2
_ERROR_SHAPES = {OPENAI: shapes.openai_error, ANTHROPIC: shapes.anthropic_error, GEMINI: shapes.gemini_error}


class MockState:
    """Per-process shared state: config, counters, RNG, recent requests, sibling control ports."""

    def __init__(self, cfg: MockConfig, index: int = 0, siblings: list[int] | None = None) -> None:
        self.index = index
        self.siblings = siblings or []
        self.stats = Stats()
        self.recent: deque[tuple[str, str, list[tuple[str, str]], bytes]] = deque(maxlen=cfg.record)
        self.counter = 0
        self.window = 0
        self.window_count = 0
        self.apply(cfg)

    def apply(self, cfg: MockConfig, reseed: bool = True) -> None:
        """Install ``cfg``; ``reseed`` restarts the random sequence (always when a seed is given anew)."""
        reseed = reseed or not hasattr(self, "cfg")
        self.cfg = cfg
        if reseed:
            seed = cfg.seed * 1_000_003 + self.index if cfg.seed is not None else None
            self.rng = random.Random(seed)
        self.sampler = LatencySampler(cfg, self.rng)
        self.faults = cfg.fault_table()
        self.delayed = cfg.latency_ms > 0 or cfg.ttft_ms > 0 or cfg.chunk_gap_ms > 0
        self.base_headers = f"server: relaygate-bench-mock\r\nx-mock-name: {cfg.name}\r\n".encode("latin-1")
        if self.recent.maxlen != cfg.record:
            self.recent = deque(self.recent, maxlen=cfg.record)

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    def ratelimit_headers(self, now: float) -> bytes:
        minute = int(now // 60)
        if minute != self.window:
            self.window, self.window_count = minute, 0
        self.window_count += 1
        cfg = self.cfg
        reset = 60 - int(now % 60)
        rem = max(0, cfg.ratelimit_requests - self.window_count)
        return (
            f"x-ratelimit-limit-requests: {cfg.ratelimit_requests}\r\n"
            f"x-ratelimit-remaining-requests: {rem}\r\n"
            f"x-ratelimit-reset-requests: {reset}s\r\n"
            f"x-ratelimit-limit-tokens: {cfg.ratelimit_tokens}\r\n"
            f"x-ratelimit-remaining-tokens: {max(0, cfg.ratelimit_tokens - self.window_count * 100)}\r\n"
            f"x-ratelimit-reset-tokens: {reset}s\r\n"
        ).encode()


def _route(method: str, path: str) -> tuple[str, int] | None:
    """Map a request to (kind, provider family)."""
    if method == "POST":
        if path.endswith("/chat/completions"):
            return "chat", OPENAI
        if path.endswith("/completions"):
            return "completion", OPENAI
        if path.endswith("/responses"):
            return "responses", OPENAI
        if path.endswith("/embeddings"):
            return "embeddings", OPENAI
        if path.endswith("/messages"):
            return "messages", ANTHROPIC
        if path.endswith(":generateContent"):
            return "gemini", GEMINI
        if path.endswith(":streamGenerateContent"):
            return "gemini_stream", GEMINI
        if path.endswith(":batchEmbedContents"):
            return "gemini_embed", GEMINI
    elif method == "GET" and path.endswith("/models"):
        return "models", OPENAI
    return None


class _Reply:
    """A planned response: status, extra head lines, then a body or stream groups."""

    __slots__ = ("status", "head", "ctype", "body", "groups", "fault")

    def __init__(self, status: int, head: bytes, ctype: bytes, body: bytes = b"",
                 groups: list[bytes] | None = None, fault: str = "") -> None:
        self.status = status
        self.head = head
        self.ctype = ctype
        self.body = body
        self.groups = groups
        self.fault = fault


_JSON = b"application/json"
_SSE = b"text/event-stream"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class MockProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, state: MockState, local_only: bool = False) -> None:
        self.state = state
        self.local_only = local_only
        self.parser = RequestParser()
        self.queue: deque[Request] = deque()
        self.busy = False
        self.in_control = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    # ------------------------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        st = self.state.stats
        st.connections += 1
        st.connections_total += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        st = self.state.stats
        st.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.busy and not self.in_control:
            st.in_flight -= 1
            st.client_aborts += 1
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.state.stats.bytes_in += len(data)
        try:
            requests = self.parser.feed(data)
        except ParseError as exc:
            self._write_plain(exc.status, str(exc).encode(), close=True)
            return
        if self.parser.expect_continue:
            self.parser.expect_continue = False
            if self.parser.waiting_for_body and not self.busy:
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.busy or self.queue:
            self.queue.extend(requests)
            return
        for i, req in enumerate(requests):
            self._handle(req)
            if self.busy or self.closed:
                self.queue.extend(requests[i + 1 :])
                return

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.state.stats.bytes_out += len(data)
            self.transport.write(data)

    def _write_plain(self, status: int, body: bytes, close: bool = False) -> None:
        head = b"HTTP/1.1 %d %b\r\n%bcontent-type: text/plain\r\ncontent-length: %d\r\n" % (
            status, _REASONS.get(status, "Error").encode(), self.state.base_headers, len(body))
        if close:
            head += b"connection: close\r\n"
        self._write(head + b"\r\n" + body)
        self._count_status(status)
        if close and self.transport is not None:
            self.transport.close()
            self.closed = True

    def _count_status(self, status: int) -> None:
        key = str(status)
        bs = self.state.stats.by_status
        bs[key] = bs.get(key, 0) + 1

    def _done(self, keep_alive: bool, traffic: bool = True) -> None:
        """The current response is complete: release the slot and serve queued pipelined requests."""
        if traffic:
            self.state.stats.in_flight -= 1
        self.busy = False
        if not keep_alive:
            if self.transport is not None and not self.closed:
                self.transport.close()
            self.closed = True
            return
        while self.queue and not self.busy and not self.closed:
            self._handle(self.queue.popleft())

    # -------------------------------------------------------------------------------------- dispatch
    def _handle(self, req: Request) -> None:
        state = self.state
        st = state.stats
        self.busy = True
        path = req.path
        if path.startswith("/__mock/"):
            self._control(req)  # control requests are not counted as traffic
            return
        st.in_flight += 1
        st.requests += 1
        if st.in_flight > st.max_in_flight:
            st.max_in_flight = st.in_flight
        st.by_path[path] = st.by_path.get(path, 0) + 1
        if state.cfg.record:
            state.recent.append((req.method, req.target, req.header_list, req.body))
        try:
            reply = self._plan(req)
        except ParseError as exc:
            reply = self._error(OPENAI, exc.status, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # a body of a shape the mock cannot answer: a real provider says 400, it does not drop the line
            reply = self._error(OPENAI, 400, f"invalid request: {exc}")
        self._send(req, reply)

    def _plan(self, req: Request) -> _Reply:
        route = _route(req.method, req.path)
        if route is None:
            return self._error(OPENAI, 404, f"no route for {req.method} {req.path}")
        kind, family = route
        cfg = self.state.cfg
        h = req.headers
        bad = self._auth(req, family, cfg)
        if bad is not None:
            return bad
        fault = h.get("x-mock-fault")
        if fault is None:
            if self.state.faults:
                draw = self.state.rng.random()
                for bound, name in self.state.faults:
                    if draw < bound:
                        fault = name
                        break
        elif fault == "none":
            fault = None
        if fault is not None:
            self._count_fault(fault)
            if fault.isdigit() and 400 <= int(fault) <= 599:
                status = int(fault)
                return self._error(family, status, f"mock fault {status}", fault=fault)
            if fault not in FAULTS:
                return self._error(family, 400, f"unknown x-mock-fault {fault!r}")
        if req.method == "GET":
            return _Reply(200, b"", _JSON, shapes.openai_models(cfg.models), fault=fault or "")
        try:
            body: Any = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError:
            return self._error(family, 400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(family, 400, "request body must be a JSON object")
        if kind == "gemini" or kind == "gemini_stream" or kind == "gemini_embed":
            model = req.path.rsplit("/", 1)[-1].split(":", 1)[0]
        else:
            model = body["model"] if isinstance(body.get("model"), str) else ""
            if not model:
                return self._error(family, 400, "you must provide a model parameter")
        if kind == "embeddings":
            return _Reply(200, b"", _JSON, shapes.openai_embeddings(body, model, cfg.embedding_dims),
                          fault=fault or "")
        if kind == "gemini_embed":
            return _Reply(200, b"", _JSON, shapes.gemini_batch_embed(body, cfg.embedding_dims), fault=fault or "")
        chunks = int(h["x-mock-chunks"]) if "x-mock-chunks" in h else cfg.chunks
        tokens = int(h["x-mock-response-tokens"]) if "x-mock-response-tokens" in h else cfg.response_tokens
        pieces, n_tokens = shapes.content_pieces(tokens, cfg.response_bytes, chunks)
        want_tools = h["x-mock-tool-calls"] not in ("0", "false") if "x-mock-tool-calls" in h else cfg.tool_calls
        tool = self._tool(body, family) if want_tools else None
        n = self.state.next_id()
        prefix = ("chatcmpl-mock", "msg_mock", "resp-mock")[family] if kind != "completion" else "cmpl-mock"
        gen = shapes.Gen(
            rid=f"{prefix}{self.state.index}x{n}",
            model=model,
            created=int(time.time()),
            prompt_tokens=max(1, len(req.body) // 4),
            pieces=pieces,
            completion_tokens=n_tokens,
            tool=(("call_mock" if family != ANTHROPIC else "toolu_mock") + f"{n}", tool[0], tool[1])
            if tool else None,
        )
        fault_s = fault or ""
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if kind == "chat":
            if stream:
                return _Reply(200, b"", _SSE, groups=shapes.openai_chat_stream(gen, include_usage), fault=fault_s)
            return _Reply(200, b"", _JSON, shapes.openai_chat(gen), fault=fault_s)
        if kind == "completion":
            if stream:
                return _Reply(200, b"", _SSE, groups=shapes.openai_completion_stream(gen, include_usage),
                              fault=fault_s)
            return _Reply(200, b"", _JSON, shapes.openai_completion(gen), fault=fault_s)
        if kind == "responses":
            return self._responses(gen, stream, fault_s)
        if kind == "messages":
            if stream:
                return _Reply(200, b"", _SSE, groups=shapes.anthropic_stream(gen), fault=fault_s)
            return _Reply(200, b"", _JSON, shapes.anthropic_message(gen), fault=fault_s)
        if kind == "gemini_stream":
            sse = req.query_params().get("alt") == "sse"
            return _Reply(200, b"", _SSE if sse else _JSON, groups=shapes.gemini_stream(gen, sse), fault=fault_s)
        return _Reply(200, b"", _JSON, shapes.gemini_generate(gen), fault=fault_s)

    @staticmethod
    def _responses(gen: shapes.Gen, stream: bool, fault: str) -> _Reply:
        answer = shapes_responses.from_gen(gen)
        if stream:
            return _Reply(200, b"", _SSE, groups=shapes_responses.response_stream(answer), fault=fault)
        return _Reply(200, b"", _JSON, shapes_responses.response_body(answer), fault=fault)

    def _count_fault(self, fault: str) -> None:
        bf = self.state.stats.by_fault
        bf[fault] = bf.get(fault, 0) + 1

    @staticmethod
    def _tool(body: dict[str, Any], family: int) -> tuple[str, str] | None:
        tools = body.get("tools")
        if not tools or not isinstance(tools, list) or body.get("tool_choice") == "none":
            return None
        first = tools[0]
        if not isinstance(first, dict):
            return None
        if family == OPENAI:
            fn: Any = first.get("function") or first  # chat nests the function; Responses: flat
            name, schema = fn.get("name"), fn.get("parameters")
        elif family == ANTHROPIC:
            name, schema = first.get("name"), first.get("input_schema")
        else:
            decls = first.get("functionDeclarations") or first.get("function_declarations") or [{}]
            name, schema = decls[0].get("name"), decls[0].get("parameters")
        if not isinstance(name, str):
            return None
        return name, shapes.tool_arguments(schema)

    def _auth(self, req: Request, family: int, cfg: MockConfig) -> _Reply | None:
        h = req.headers
        if family == ANTHROPIC:
            key = h.get("x-api-key")
            if key is None and h.get("authorization", "").startswith("Bearer "):
                key = h["authorization"][7:]
            if cfg.require_auth and (key is None or (cfg.api_key is not None and key != cfg.api_key)):
                return self._error(ANTHROPIC, 401, "invalid x-api-key")
            if "anthropic-version" not in h:
                return self._error(ANTHROPIC, 400, "anthropic-version: header is required")
            return None
        if not cfg.require_auth:
            return None
        if family == GEMINI:
            key = h.get("x-goog-api-key") or req.query_params().get("key")
            if not key:
                return self._error(GEMINI, 403, "Method doesn't allow unregistered callers. Provide an API key.")
            if cfg.api_key is not None and key != cfg.api_key:
                return self._error(GEMINI, 400, "API key not valid. Please pass a valid API key.")
            return None
        auth = h.get("authorization")
        key = auth[7:] if auth is not None and auth[:7].lower() == "bearer " else h.get("api-key")
        if not key:
            return self._error(OPENAI, 401, "You didn't provide an API key.")
        if cfg.api_key is not None and key != cfg.api_key:
            return self._error(OPENAI, 401, "Incorrect API key provided.")
        return None

    def _error(self, family: int, status: int, message: str, fault: str = "") -> _Reply:
        head = b""
        if status in (429, 503) and self.state.cfg.retry_after > 0:
            ra = self.state.cfg.retry_after
            head = b"retry-after: %b\r\n" % (str(int(ra) if ra == int(ra) else ra).encode())
        return _Reply(status, head, _JSON, _ERROR_SHAPES[family](status, message), fault=fault)

    # ---------------------------------------------------------------------------------------- sending
    def _send(self, req: Request, reply: _Reply) -> None:
        fault = reply.fault
        if fault == "hang":
            return  # stays busy until the client closes; connection_lost counts the abort
        if fault == "reset":
            self._reset()
            return
        cfg = self.state.cfg
        h = req.headers
        delay = float(h["x-mock-latency-ms"]) / 1000.0 if "x-mock-latency-ms" in h else (
            self.state.sampler.sample() if self.state.delayed else 0.0)
        if reply.groups is not None and reply.status == 200:
            ttft = float(h["x-mock-ttft-ms"]) / 1000.0 if "x-mock-ttft-ms" in h else cfg.ttft_ms / 1000.0
            gap = float(h["x-mock-chunk-gap-ms"]) / 1000.0 if "x-mock-chunk-gap-ms" in h else (
                cfg.chunk_gap_ms / 1000.0)
        else:
            ttft = gap = 0.0
        keep = req.keep_alive
        if delay > 0:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(delay, self._send_now, reply, keep, ttft, gap)
        else:
            self._send_now(reply, keep, ttft, gap)

    def _head(self, reply: _Reply, length: int | None, keep: bool) -> bytes:
        state = self.state
        framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
        extra = b"cache-control: no-cache\r\n" if reply.ctype == _SSE else b""
        return b"HTTP/1.1 %d %b\r\n%b%bcontent-type: %b\r\n%b%b%b%b\r\n" % (
            reply.status, _REASONS.get(reply.status, "Error").encode(), state.base_headers,
            state.ratelimit_headers(time.time()), reply.ctype, framing, extra, reply.head,
            b"" if keep else b"connection: close\r\n")

    def _send_now(self, reply: _Reply, keep: bool, ttft: float, gap: float) -> None:
        self.timer = None
        if self.closed:
            return
        self._count_status(reply.status)
        cut = reply.fault == "cut"
        groups = reply.groups
        if groups is None or reply.status != 200:
            body = reply.body
            if cut:
                self._write(self._head(reply, len(body), keep) + body[: len(body) // 2])
                self._abort_after_write()
                return
            self._write(self._head(reply, len(body), keep) + body)
            self._done(keep)
            return
        head = self._head(reply, None, keep)
        if cut:
            half = max(1, len(groups) // 2)
            self._write(head + b"".join(_chunk(g) for g in groups[:half]))
            self._abort_after_write()
            return
        if ttft <= 0 and gap <= 0:
            self._write(head + b"".join(_chunk(g) for g in groups) + b"0\r\n\r\n")
            self._done(keep)
            return
        self._write(head)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(ttft, self._send_group, groups, 0, keep, gap)

    def _send_group(self, groups: list[bytes], i: int, keep: bool, gap: float) -> None:
        self.timer = None
        if self.closed:
            return
        last = i == len(groups) - 1
        data = _chunk(groups[i])
        if last:
            self._write(data + b"0\r\n\r\n")
            self._done(keep)
            return
        self._write(data)
        if gap > 0:
            self.timer = asyncio.get_running_loop().call_later(gap, self._send_group, groups, i + 1, keep, gap)
        else:
            self._send_group(groups, i + 1, keep, gap)

    def _release(self) -> None:
        """The mock itself ends the exchange without a complete response (cut, reset)."""
        if self.busy:
            self.busy = False
            self.state.stats.in_flight -= 1

    def _abort_after_write(self) -> None:
        """Close after the buffered bytes are flushed (a mid-body cut the client sees as a short read)."""
        self._release()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _reset(self) -> None:
        transport = self.transport
        self._release()
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
        self.closed = True

    # ---------------------------------------------------------------------------------------- control
    def _control(self, req: Request) -> None:
        state = self.state
        self.in_control = True
        if state.siblings and not self.local_only and req.path != "/__mock/health":
            asyncio.get_running_loop().create_task(self._fanout(req))
            return
        status, payload = handle_control(state, req.method, req.path, req.body)
        self._control_reply(status, payload, req.keep_alive)

    def _control_reply(self, status: int, payload: Any, keep: bool) -> None:
        if self.closed:
            self.in_control = False
            return
        body = orjson.dumps(payload)
        head = b"HTTP/1.1 %d %b\r\n%bcontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n" % (
            status, _REASONS.get(status, "Error").encode(), self.state.base_headers, len(body),
            b"" if keep else b"connection: close\r\n")
        self._write(head + body)
        self.in_control = False
        self._done(keep, traffic=False)

    async def _fanout(self, req: Request) -> None:
        status, payload = handle_control(self.state, req.method, req.path, req.body)
        results = [payload]
        if status == 200:
            for port in self.state.siblings:
                try:
                    results.append(await control_call(port, req.method, req.path, req.body))
                except (OSError, ValueError) as exc:
                    status, payload = 502, {"error": f"worker on control port {port}: {exc}"}
                    break
        if status == 200 and req.path == "/__mock/stats":
            payload = merge_stats(results)
            payload["per_process"] = results
        self._control_reply(status, payload, req.keep_alive)


# ------------------------------------------------------------------------------------------- processes
def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def serve(cfg: MockConfig, sock: socket.socket, control: socket.socket | None = None, index: int = 0,
          siblings: list[int] | None = None, on_ready: Callable[[], None] | None = None) -> None:
    """Run one worker's event loop until SIGTERM/SIGINT."""
    import uvloop

    async def run() -> None:
        loop = asyncio.get_running_loop()
        state = MockState(cfg, index, siblings)
        server = await loop.create_server(lambda: MockProtocol(state), sock=sock, backlog=4096)
        servers = [server]
        if control is not None:
            servers.append(await loop.create_server(lambda: MockProtocol(state, local_only=True), sock=control))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        for s in servers:
            s.close()

    uvloop.run(run())


def _run_multi(cfg: MockConfig, host: str, port: int, n: int) -> int:
    first = _listen(host, port, reuse_port=True)
    port = first.getsockname()[1]
    socks = [first] + [_listen(host, port, reuse_port=True) for _ in range(n - 1)]
    controls = [_listen("127.0.0.1", 0, reuse_port=False) for _ in range(n)]
    control_ports = [c.getsockname()[1] for c in controls]
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                siblings = [p for j, p in enumerate(control_ports) if j != i]
                serve(cfg, socks[i], controls[i], i, siblings)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    for s in socks + controls:
        s.close()
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"READY {port}", flush=True)
    code = 0
    alive = set(pids)
    while alive:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        alive.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0 and not stopping:
            print(f"mock worker {pid} died ({status}); stopping", file=sys.stderr)
            code = 1
            forward(signal.SIGTERM, None)
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.mock",
        description="Mock OpenAI / Anthropic / Gemini upstream for gateway tests and benchmarks. Prints "
                    "'READY <port>' once listening. Options can be changed live with POST /__mock/config.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the READY line)")
    p.add_argument("--processes", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--self-test", action="store_true",
                   help="measure the mock's own ceiling (zero delay) with wrk and the bench load generator, "
                        "print the numbers and exit")
    p.add_argument("--self-test-duration", type=float, default=3.0, help="seconds per self-test measurement")
    add_config_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"bench.mock: {exc}", file=sys.stderr)
        return 2
    if args.self_test:
        from bench.selftest import mock_self_test

        return mock_self_test(args.processes, args.self_test_duration)
    if args.processes < 1:
        print("bench.mock: --processes must be >= 1", file=sys.stderr)
        return 2
    if args.processes > 1:
        return _run_multi(cfg, args.host, args.port, args.processes)
    sock = _listen(args.host, args.port, reuse_port=False)
    port = sock.getsockname()[1]
    serve(cfg, sock, on_ready=lambda: print(f"READY {port}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
