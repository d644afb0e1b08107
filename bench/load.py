"""HTTP load generator for LLM gateways: closed and open loop, streaming-aware, fixed-memory histograms.

``python -m bench.load --url http://127.0.0.1:4000 --concurrency 32 --duration 10`` drives keep-alive
HTTP/1.1 connections from a raw ``asyncio.Protocol`` client on uvloop (httpx and aiohttp cost far more CPU
per request than the gateways we measure). This module owns request building, the connection state machine,
the two loops, error classification and result merging; histograms are ``bench.hist``.

- Closed loop (``--concurrency N``): N connections, each sends its next request as soon as the previous
  response ends. Latency is measured from the send.
- Open loop (``--rate R``): requests are *due* at ``start + i/R``; a 1 ms ticker sends those falling due
  before the next tick on an idle connection (new ones are opened up to ``--max-connections``) or queues
  them. Latency is measured from the due time when a send is late, so a stalled server shows up in the
  percentiles (coordinated omission is not hidden), and from the send itself when it went out early. Sends
  that left more than ``--late-ms`` after their due time are counted as late: many late sends mean the
  generator or a saturated server set the pace.
- Streams: time to first SSE event (TTFT), gaps between reads that carried events, events per response and
  distinct arrivals per response (fewer arrivals than events means something merged or buffered chunks).
  Stream numbers, like latencies, come from successful responses only.
- Errors by kind: ``status_<code>``, ``connect``, ``reset`` (closed before a response head), ``truncated``
  (closed mid-body), ``timeout``, ``bad_body`` (malformed HTTP, or a 200 body without its terminator).
- ``--api-key-file FILE`` (one key per line): requests take the keys in turn, round robin (one pre-built
  request per key), to spread load over many virtual keys or to send a flood of distinct bad ones.
- ``--processes P`` forks P generators with the load split between them and merges their histograms.
- ``--compare-url URL2`` runs the paired one-in-flight mode instead: requests alternate between the two
  targets, and the result is the median of per-round median latencies for each and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.hist import Histogram
from bench.http1 import ParseError, ResponseParser

__all__ = ["LoadSpec", "Result", "build_request", "build_requests", "run", "run_paired", "main"]

_now = time.perf_counter
_TICK = 0.001  # open-loop scheduling granularity (libuv timers are millisecond timers)


@dataclass
class LoadSpec:
    url: str
    path: str = "/v1/chat/completions"
    model: str = "mock-model"
    api_key: str = "sk-bench"
    stream: bool = False
    concurrency: int = 32
    rate: float = 0.0  # > 0: open loop
    duration: float = 10.0
    requests: int = 0  # > 0: stop after this many sends
    warmup: float = 0.0
    body_bytes: int = 0
    max_tokens: int = 64
    timeout: float = 30.0
    late_ms: float = 2.0
    headers: list[tuple[str, str]] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)  # non-empty: requests take these in turn (over api_key)
    body: bytes | None = None
    check_body: bool = True
    vary: int = 0  # > 0: requests take this many distinct prompts in turn (a response cache's misses)
    vary_seed: str = ""  # makes one run's distinct prompts differ from another's

    @property
    def host_port(self) -> tuple[str, int]:
        u = urlsplit(self.url)
        return u.hostname or "127.0.0.1", u.port or 80


def _api(path: str) -> str:
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/models"):
        return "models"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "completion"
    return "chat"


def _text(body_bytes: int, overhead: int) -> str:
    base = "Say hello in one short sentence."
    if body_bytes <= overhead + len(base):
        return base
    filler = " lorem ipsum dolor sit amet"
    n = body_bytes - overhead
    return (base + filler * (n // len(filler) + 1))[:n]


def build_request(spec: LoadSpec) -> tuple[bytes, bytes | None]:
    """The complete request bytes (sent for every request) and the end marker a 200 stream must contain."""
    api = _api(spec.path)
    path = spec.path
    headers = [("host", "{}:{}".format(*spec.host_port)), ("user-agent", "relaygate-bench")]
    marker: bytes | None = None
    body: Any
    if api == "anthropic":
        headers += [("x-api-key", spec.api_key), ("anthropic-version", "2023-06-01")]
        body = {"model": spec.model, "max_tokens": spec.max_tokens,
                "messages": [{"role": "user", "content": ""}], "stream": spec.stream}
        marker = b"message_stop" if spec.stream else None
    elif api == "gemini":
        headers.append(("x-goog-api-key", spec.api_key))
        body = {"contents": [{"role": "user", "parts": [{"text": ""}]}]}
        if spec.stream and ":generateContent" in path:
            path = path.replace(":generateContent", ":streamGenerateContent")
        if ":streamGenerateContent" in path and "alt=sse" not in path:
            path += ("&" if "?" in path else "?") + "alt=sse"
    else:
        headers.append(("authorization", f"Bearer {spec.api_key}"))
        if api == "embeddings":
            body = {"model": spec.model, "input": ""}
        elif api == "completion":
            body = {"model": spec.model, "prompt": "", "max_tokens": spec.max_tokens, "stream": spec.stream}
        else:
            body = {"model": spec.model, "messages": [{"role": "user", "content": ""}],
                    "max_tokens": spec.max_tokens, "stream": spec.stream}
        marker = b"[DONE]" if spec.stream else None
    method = "GET" if api == "models" else "POST"
    payload = b""
    if method == "POST":
        if spec.body is not None:
            payload = spec.body
        else:
            overhead = len(json.dumps(body, separators=(",", ":")))
            text = _text(spec.body_bytes, overhead)
            if api == "anthropic" or api == "chat":
                body["messages"][0]["content"] = text
            elif api == "gemini":
                body["contents"][0]["parts"][0]["text"] = text
            elif api == "embeddings":
                body["input"] = text
            else:
                body["prompt"] = text
            payload = json.dumps(body, separators=(",", ":")).encode()
        headers += [("content-type", "application/json"), ("content-length", str(len(payload)))]
    headers += spec.headers
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + payload, marker


def build_requests(spec: LoadSpec) -> list[bytes]:
    """The request bytes to send in turn: one per key of ``spec.api_keys``, one per distinct prompt with
    ``spec.vary`` (the generated prompt gets a numbered suffix), or the one request."""
    if spec.vary > 0 and spec.body is None:
        base = LoadSpec(**{**spec.__dict__, "vary": 0})
        reqs = []
        for i in range(spec.vary):
            base.headers = [*spec.headers]
            r = build_request(base)[0]
            head, _, payload = r.partition(b"\r\n\r\n")
            tag = f" #{spec.vary_seed}{i}".encode()
            payload = payload.replace(b'"}', tag + b'"}', 1) if b'"}' in payload else payload
            head = head.replace(b"content-length: %d" % (len(payload) - len(tag)), b"content-length: %d" % len(payload))
            reqs.append(head + b"\r\n\r\n" + payload)
        return reqs
    if not spec.api_keys:
        return [build_request(spec)[0]]
    base = LoadSpec(**{**spec.__dict__, "api_keys": []})
    out = []
    for key in spec.api_keys:
        base.api_key = key
        out.append(build_request(base)[0])
    return out


class Result:
    """Everything one generator measured; ``merge`` combines processes, ``to_json`` reports."""

    def __init__(self) -> None:
        self.latency = Histogram()  # microseconds
        self.ttft = Histogram()
        self.gaps = Histogram()
        self.chunks = Histogram()  # SSE events per response
        self.arrivals = Histogram()  # reads carrying events per response
        self.errors: dict[str, int] = {}
        self.ok = 0
        self.sent = 0
        self.late = 0
        self.max_late_us = 0
        self.unfinished = 0
        self.connects = 0
        self.bytes_in = 0
        self.window = 0.0
        self.cpu_s = 0.0
        self.processes = 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def merge(self, other: Result) -> Result:
        for name in ("latency", "ttft", "gaps", "chunks", "arrivals"):
            getattr(self, name).merge(getattr(other, name))
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.ok += other.ok
        self.sent += other.sent
        self.late += other.late
        self.max_late_us = max(self.max_late_us, other.max_late_us)
        self.unfinished += other.unfinished
        self.connects += other.connects
        self.bytes_in += other.bytes_in
        self.window = max(self.window, other.window)
        self.cpu_s += other.cpu_s
        self.processes += other.processes
        return self

    def to_dict(self) -> dict[str, Any]:
        """Raw, mergeable form (histograms included)."""
        return {
            "hist": {n: getattr(self, n).to_dict() for n in ("latency", "ttft", "gaps", "chunks", "arrivals")},
            "errors": self.errors, "ok": self.ok, "sent": self.sent, "late": self.late,
            "max_late_us": self.max_late_us, "unfinished": self.unfinished, "connects": self.connects,
            "bytes_in": self.bytes_in,
            "window": self.window, "cpu_s": self.cpu_s, "processes": self.processes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        r = cls()
        for n, h in d["hist"].items():
            setattr(r, n, Histogram.from_dict(h))
        for k in ("errors", "ok", "sent", "late", "max_late_us", "unfinished", "connects", "bytes_in", "window",
                  "cpu_s", "processes"):
            setattr(r, k, d[k])
        return r

    def to_json(self, spec: LoadSpec | None = None) -> dict[str, Any]:
        n_err = sum(self.errors.values())
        out: dict[str, Any] = {
            "mode": ("open" if spec.rate > 0 else "closed") if spec else None,
            "window_s": round(self.window, 3),
            "ok": self.ok,
            "errors": dict(sorted(self.errors.items())),
            "error_count": n_err,
            "sent": self.sent,
            "unfinished": self.unfinished,
            "connections_opened": self.connects,
            "throughput_rps": self.ok / self.window if self.window > 0 else 0.0,
            "latency_ms": self.latency.summary(1e-3),
            "late_sends": self.late,
            "max_lateness_ms": self.max_late_us / 1000.0,
            "bytes_in": self.bytes_in,
            "generator_cpu_s": round(self.cpu_s, 3),
            "generator_cpu_share": self.cpu_s / (self.window * self.processes) if self.window > 0 else 0.0,
            "processes": self.processes,
            "hist": {"latency": self.latency.to_dict()},
        }
        if self.ttft.count:
            out["ttft_ms"] = self.ttft.summary(1e-3)
            out["chunk_gap_ms"] = self.gaps.summary(1e-3)
            out["chunks_per_response"] = self.chunks.summary()
            out["arrivals_per_response"] = self.arrivals.summary()
            out["hist"]["ttft"] = self.ttft.to_dict()
        if spec is not None:
            out["spec"] = {k: v for k, v in spec.__dict__.items() if k not in ("body", "headers", "api_keys")}
            if spec.api_keys:
                out["spec"]["api_keys"] = len(spec.api_keys)  # how many, not the keys
            if spec.rate > 0:
                out["target_rps"] = spec.rate
        return out


class _Conn(asyncio.Protocol):
    """One keep-alive connection; the driver tells it when to send."""

    __slots__ = ("drv", "transport", "parser", "t_due", "t_sent", "busy", "status", "events", "arrivals",
                 "t_last", "tail", "now", "stream", "body_tail", "dead", "gaps_us", "ttft_us")

    def __init__(self, drv: _Driver) -> None:
        self.drv = drv
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser(self._on_head, self._on_body, self._on_end)
        self.t_due = self.t_sent = self.t_last = self.now = 0.0
        self.busy = False
        self.dead = False
        self.status = 0
        self.events = self.arrivals = 0
        self.tail = b""
        self.body_tail = b""
        self.stream = False
        self.gaps_us: list[float] = []
        self.ttft_us = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, t_due: float) -> None:
        self.busy = True
        self.t_due = t_due
        self.events = self.arrivals = 0
        self.tail = self.body_tail = b""
        self.gaps_us: list[float] = []
        self.ttft_us = 0.0
        self.status = 0
        self.t_sent = _now()
        if t_due > self.t_sent:
            self.t_due = self.t_sent  # sent ahead of its due time (open-loop look-ahead): time the real send
        assert self.transport is not None
        self.transport.write(next(self.drv.requests))

    def data_received(self, data: bytes) -> None:
        self.now = _now()
        self.drv.result.bytes_in += len(data)
        try:
            self.parser.feed(data)
        except ParseError:
            self._fail("bad_body")

    def _on_head(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.stream = headers.get("content-type", "").startswith("text/event-stream")

    def _on_body(self, piece: bytes) -> None:
        if self.stream:
            joined = self.tail + piece
            n = joined.count(b"\n\n") + joined.count(b"\r\n\r\n") - self.tail.count(b"\n\n")
            self.tail = joined[-3:]
            if n > 0:
                now = self.now
                if self.events == 0:
                    self.ttft_us = (now - self.t_due) * 1e6
                elif now != self.t_last:
                    self.gaps_us.append((now - self.t_last) * 1e6)
                if now != self.t_last or self.arrivals == 0:
                    self.arrivals += 1
                self.t_last = now
                self.events += n
        self.body_tail = (self.body_tail + piece)[-32:]

    def _on_end(self, keep_alive: bool) -> None:
        drv = self.drv
        self.busy = False
        if self.t_due >= drv.record_from and self.now > drv.deadline:
            drv.result.unfinished += 1  # ended after the measured window
        elif self.t_due >= drv.record_from:
            res = drv.result
            if self.status != 200:
                res.error(f"status_{self.status}")
            elif drv.marker is not None and self.stream and drv.marker not in self.body_tail:
                res.error("bad_body")
            else:
                res.ok += 1
                res.latency.record((self.now - self.t_due) * 1e6)
                if self.stream:
                    res.chunks.record(self.events)
                    res.arrivals.record(self.arrivals)
                    if self.events:
                        res.ttft.record(self.ttft_us)
                    res.gaps.record_many(self.gaps_us)
        if not keep_alive:
            self.dead = True
            if self.transport is not None:
                self.transport.close()
            drv.replace(self)
            return
        drv.idle(self)

    def _fail(self, kind: str) -> None:
        if self.dead:
            return
        self.dead = True
        drv = self.drv
        if self.busy and self.t_due >= drv.record_from and not drv.stopped:
            drv.result.error(kind)
        self.busy = False
        if self.transport is not None:
            self.transport.abort()
        drv.replace(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.dead:
            return
        if self.busy:
            self.parser.eof()
        if self.busy:
            self._fail("truncated" if self.status else "reset")
        else:
            self.dead = True
            self.drv.replace(self)


class _Driver:
    """Runs one closed- or open-loop measurement in the current event loop."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.req_bytes, self.marker = build_request(spec)
        self.requests = itertools.cycle(build_requests(spec))  # one entry unless spec.api_keys
        if not spec.check_body:
            self.marker = None
        self.result = Result()
        self.conns: set[_Conn] = set()
        self.idle_conns: deque[_Conn] = deque()
        self.backlog: deque[float] = deque()
        self.connecting = 0
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self.stopped = False
        self.record_from = 0.0
        self.deadline = math.inf
        self.budget = spec.requests if spec.requests > 0 else -1
        self.done = asyncio.get_running_loop().create_future()
        self.open_loop = spec.rate > 0

    # -------------------------------------------------------------------------------- connections
    async def _connect(self) -> None:
        host, port = self.spec.host_port
        loop = asyncio.get_running_loop()
        self.connecting += 1
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(lambda: _Conn(self), host, port),
                                             self.spec.timeout)
        except (TimeoutError, OSError):
            self.connecting -= 1
            if not self.stopped:
                self.result.error("connect")
                await asyncio.sleep(0.01)
                if not self.stopped:
                    self._spawn_connect(loop)
            return
        self.connecting -= 1
        self.result.connects += 1
        if self.stopped:
            conn.transport.close()  # type: ignore[union-attr]
            return
        self.conns.add(conn)
        self.idle(conn)


    def _spawn_connect(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def replace(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if not self.stopped and (not self.open_loop or self.backlog):
            asyncio.get_running_loop().create_task(self._connect())

    def _take_budget(self) -> bool:
        if self.budget == 0:
            return False
        if self.budget > 0:
            self.budget -= 1
            if self.budget == 0:
                self._finish_after_drain()
        return True

    def idle(self, conn: _Conn) -> None:
        if self.stopped:
            return
        if self.open_loop:
            if self.backlog:
                self._send(conn, self.backlog.popleft())
            else:
                self.idle_conns.append(conn)
        elif self._take_budget():
            self._send(conn, _now())

    def _send(self, conn: _Conn, t_due: float) -> None:
        res = self.result
        conn.send(t_due)
        if conn.t_due >= self.record_from:  # conn.t_due: the send time if it went out ahead of schedule
            res.sent += 1
        if self.open_loop:
            late = conn.t_sent - t_due
            if late * 1000 > self.spec.late_ms and t_due >= self.record_from:
                res.late += 1
                if late * 1e6 > res.max_late_us:
                    res.max_late_us = int(late * 1e6)

    # ----------------------------------------------------------------------------------- open loop
    def _tick(self, t0: float, i: int) -> None:
        if self.stopped:
            return
        loop = asyncio.get_running_loop()
        period = 1.0 / self.spec.rate
        horizon = _now() + _TICK  # send what falls due before the next tick, not up to a tick late
        while t0 + i * period <= horizon:
            if not self._take_budget():
                return
            due = t0 + i * period
            i += 1
            while self.idle_conns and self.idle_conns[0].dead:
                self.idle_conns.popleft()
            if self.idle_conns:
                self._send(self.idle_conns.popleft(), due)
            else:
                self.backlog.append(due)
                if len(self.conns) + self.connecting < self.spec.concurrency:
                    self._spawn_connect(loop)
        delay = t0 + i * period - _now() - _TICK
        loop.call_later(max(_TICK, delay), self._tick, t0, i)

    # ----------------------------------------------------------------------------------- lifecycle
    def _watchdog(self) -> None:
        if self.stopped:
            return
        now = _now()
        limit = self.spec.timeout
        for conn in list(self.conns):
            if conn.busy and now - conn.t_sent > limit:
                conn._fail("timeout")
        if self.open_loop and self.backlog and now - self.backlog[0] > limit:
            while self.backlog and now - self.backlog[0] > limit:
                self.backlog.popleft()
                self.result.error("timeout")
        asyncio.get_running_loop().call_later(min(0.1, limit / 4), self._watchdog)

    def _finish_after_drain(self) -> None:
        """Request budget spent: finish when the last in-flight response ends."""
        async def drain() -> None:
            while any(c.busy for c in self.conns) or self.backlog:
                await asyncio.sleep(0.002)
            self._stop()

        asyncio.get_running_loop().create_task(drain())

    def _stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        end = _now()
        if self.deadline == math.inf or end < self.deadline:
            self.deadline = end
        self.result.window = self.deadline - self.record_from
        for conn in self.conns:
            if conn.busy:
                self.result.unfinished += 1
            conn.dead = True
            if conn.transport is not None:
                conn.transport.close()
        self.result.unfinished += len(self.backlog)
        if not self.done.done():
            self.done.set_result(None)

    async def run(self) -> Result:
        loop = asyncio.get_running_loop()
        spec = self.spec
        cpu0 = [time.process_time()]
        start = _now()
        self.record_from = start + spec.warmup
        if spec.warmup > 0:  # generator CPU is reported for the measured window only
            loop.call_later(spec.warmup, lambda: cpu0.__setitem__(0, time.process_time()))
        if spec.duration > 0:
            self.deadline = self.record_from + spec.duration
            loop.call_at(loop.time() + spec.warmup + spec.duration, self._stop)
        n_initial = spec.concurrency if not self.open_loop else min(spec.concurrency, max(4, int(spec.rate / 500)))
        await asyncio.gather(*(self._connect() for _ in range(n_initial)))
        self._watchdog()
        if self.open_loop:
            self._tick(_now(), 0)
        await self.done
        self.result.cpu_s = time.process_time() - cpu0[0]
        return self.result


async def run(spec: LoadSpec) -> Result:
    """Run one generator in the current (ideally uvloop) event loop."""
    return await _Driver(spec).run()


def run_sync(spec: LoadSpec, processes: int = 1) -> Result:
    """Run ``spec`` in ``processes`` forked generators (the load split evenly) and merge their results."""
    import uvloop

    if processes <= 1:
        return uvloop.run(run(spec))
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parts = []
    for i in range(processes):
        sub = LoadSpec(**{**spec.__dict__})
        sub.concurrency = max(1, spec.concurrency // processes + (1 if i < spec.concurrency % processes else 0))
        if spec.rate > 0:
            sub.rate = spec.rate / processes
        if spec.requests > 0:
            sub.requests = max(1, spec.requests // processes)
        if spec.api_keys:  # each process starts at its own offset in the key list
            k = i * len(spec.api_keys) // processes
            sub.api_keys = spec.api_keys[k:] + spec.api_keys[:k]
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(sub, child), daemon=True)
        proc.start()
        child.close()
        parts.append((proc, parent))
    merged: Result | None = None
    for proc, conn in parts:
        data = conn.recv()
        proc.join()
        r = Result.from_dict(data)
        merged = r if merged is None else merged.merge(r)
    assert merged is not None
    return merged


def _child(spec: LoadSpec, conn: Any) -> None:
    import uvloop

    conn.send(uvloop.run(run(spec)).to_dict())
    conn.close()


# ----------------------------------------------------------------------------------- paired latency


async def _one(conn: _Conn, fut_holder: list[asyncio.Future[float]]) -> float:
    fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    fut_holder[0] = fut
    conn.send(_now())
    return await fut


class _PairDriver(_Driver):
    """Driver variant: one connection per target, one request at a time, results to a future."""

    def __init__(self, spec: LoadSpec) -> None:
        super().__init__(spec)
        self.holder: list[asyncio.Future[float]] = [asyncio.get_running_loop().create_future()]

    def idle(self, conn: _Conn) -> None:
        fut = self.holder[0]
        if conn.status and not fut.done():
            if conn.status == 200:
                fut.set_result(conn.now - conn.t_sent)
            else:
                fut.set_exception(RuntimeError(f"status {conn.status}"))

    def replace(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        fut = self.holder[0]
        if not fut.done():
            fut.set_exception(ConnectionError("connection lost"))


async def run_paired(specs: dict[str, LoadSpec], rounds: int, per_round: int) -> dict[str, Any]:
    """Alternate requests across targets, one in flight; median of per-round medians per target (ms)."""
    loop = asyncio.get_running_loop()
    drivers: dict[str, _PairDriver] = {}
    conns: dict[str, _Conn] = {}
    for name, spec in specs.items():
        drv = _PairDriver(spec)
        drv.record_from = math.inf  # keep the generic accounting out of the way
        host, port = spec.host_port
        _, conn = await loop.create_connection(lambda d=drv: _Conn(d), host, port)  # type: ignore[misc]
        drivers[name], conns[name] = drv, conn
    medians: dict[str, list[float]] = {n: [] for n in specs}
    errors: dict[str, int] = {n: 0 for n in specs}
    for _ in range(rounds):
        samples: dict[str, list[float]] = {n: [] for n in specs}
        for _ in range(per_round):
            for name in specs:
                drv = drivers[name]
                try:
                    samples[name].append(await asyncio.wait_for(_one(conns[name], drv.holder),
                                                                specs[name].timeout))
                except (TimeoutError, RuntimeError, ConnectionError):
                    errors[name] += 1
                    if conns[name].dead or conns[name].transport is None or conns[name].transport.is_closing():
                        host, port = specs[name].host_port
                        _, conns[name] = await loop.create_connection(lambda d=drv: _Conn(d), host, port)  # type: ignore[misc]
        for name, xs in samples.items():
            if xs:
                medians[name].append(statistics.median(xs) * 1000)
    for conn in conns.values():
        if conn.transport is not None:
            conn.transport.close()
    out: dict[str, Any] = {"rounds": rounds, "per_round": per_round, "errors": errors, "median_ms": {},
                           "round_medians_ms": medians}
    for name, ms in medians.items():
        out["median_ms"][name] = statistics.median(ms) if ms else math.nan
    names = list(specs)
    if len(names) == 2 and medians[names[0]] and medians[names[1]]:
        diffs = [b - a for a, b in zip(medians[names[0]], medians[names[1]])]
        out["added_ms"] = statistics.median(diffs)
        out["added_ms_rounds"] = diffs
    return out


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:4000 (http only)")
    p.add_argument("--path", default="/v1/chat/completions",
                   help="request path; the API (OpenAI chat/completions/embeddings, Anthropic /v1/messages, "
                        "Gemini :generateContent) is inferred from it")
    p.add_argument("--model", default="mock-model")
    p.add_argument("--api-key", default="sk-bench")
    p.add_argument("--api-key-file", help="one key per line: requests take them in turn (overrides --api-key)")
    p.add_argument("--stream", action="store_true", help="ask for a streamed response")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--concurrency", type=int, default=None, help="closed loop: connections (default 32)")
    g.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second")
    p.add_argument("--max-connections", type=int, default=512, help="open loop: connection cap")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to measure (after warmup)")
    p.add_argument("--requests", type=int, default=0, help="stop after this many requests instead")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds of load before measuring")
    p.add_argument("--body-bytes", type=int, default=0, help="pad the request body to about this size")
    p.add_argument("--body-file", help="send this file as the request body")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--vary", type=int, default=0, help="rotate over this many distinct prompts (cache misses)")
    p.add_argument("--vary-seed", default="", help="a tag that makes this run's distinct prompts its own")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--late-ms", type=float, default=2.0, help="open loop: a send this late counts as late")
    p.add_argument("--no-check-body", action="store_true", help="do not require the stream terminator")
    p.add_argument("--processes", type=int, default=1, help="generator processes (load split, results merged)")
    p.add_argument("--compare-url", help="paired mode: alternate one-in-flight requests between --url and this")
    p.add_argument("--rounds", type=int, default=10, help="paired mode: rounds")
    p.add_argument("--per-round", type=int, default=50, help="paired mode: requests per target per round")
    p.add_argument("--json-out", help="write the full result (with histograms) to this file")
    p.add_argument("--quiet", action="store_true", help="no human summary on stdout")
    return p


def spec_from_args(a: argparse.Namespace) -> LoadSpec:
    headers = []
    for h in a.header:
        name, _, value = h.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    body = open(a.body_file, "rb").read() if a.body_file else None
    api_keys: list[str] = []
    if a.api_key_file:
        with open(a.api_key_file) as f:
            api_keys = [line.strip() for line in f if line.strip()]
    rate = a.rate or 0.0
    concurrency = a.concurrency if a.concurrency is not None else (a.max_connections if rate > 0 else 32)
    return LoadSpec(url=a.url, path=a.path, model=a.model, api_key=a.api_key, stream=a.stream,
                    concurrency=concurrency, rate=rate,
                    duration=a.duration if a.requests <= 0 else 0.0, requests=a.requests, warmup=a.warmup,
                    body_bytes=a.body_bytes, max_tokens=a.max_tokens, timeout=a.timeout, late_ms=a.late_ms,
                    headers=headers, api_keys=api_keys, body=body, check_body=not a.no_check_body,
                    vary=max(0, a.vary), vary_seed=a.vary_seed)


def format_summary(out: dict[str, Any]) -> str:
    lat = out["latency_ms"]
    lines = [
        f"{out['mode']} loop  window {out['window_s']:.2f}s  ok {out['ok']}  errors {out['error_count']}"
        f"  throughput {out['throughput_rps']:.1f} req/s",
    ]
    if lat.get("count"):
        lines.append("latency ms  p50 {p50:.3f}  p90 {p90:.3f}  p99 {p99:.3f}  p99.9 {p99_9:.3f}  max {max:.3f}"
                     .format(**lat))
    if "ttft_ms" in out and out["ttft_ms"].get("count"):
        t, c, a = out["ttft_ms"], out["chunks_per_response"], out["arrivals_per_response"]
        lines.append(f"ttft ms     p50 {t['p50']:.3f}  p99 {t['p99']:.3f}   events/response p50 {c['p50']:.0f}"
                     f" min {c['min']:.0f}   arrivals/response p50 {a['p50']:.0f} min {a['min']:.0f}")
    if out["errors"]:
        lines.append("errors      " + "  ".join(f"{k} {v}" for k, v in out["errors"].items()))
    if out["mode"] == "open":
        lines.append(f"late sends  {out['late_sends']} (max {out['max_lateness_ms']:.1f} ms)")
    lines.append(f"generator   cpu {out['generator_cpu_s']:.2f}s ({out['generator_cpu_share']:.0%} of a core"
                 f" per process)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not a.url.startswith("http://"):
        print("bench.load: only http:// URLs are supported", file=sys.stderr)
        return 2
    spec = spec_from_args(a)
    if a.compare_url:
        import uvloop

        other = LoadSpec(**{**spec.__dict__, "url": a.compare_url})
        out = uvloop.run(run_paired({"a": spec, "b": other}, a.rounds, a.per_round))
        if not a.quiet:
            print(f"median latency ms: a {out['median_ms']['a']:.3f}  b {out['median_ms']['b']:.3f}  "
                  f"added (b - a) {out.get('added_ms', math.nan):.3f}  errors {out['errors']}")
    else:
        res = run_sync(spec, a.processes)
        out = res.to_json(spec)
        out["hist"] = {n: getattr(res, n).to_dict() for n in ("latency", "ttft", "gaps", "chunks", "arrivals")}
        if not a.quiet:
            print(format_summary(out))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
