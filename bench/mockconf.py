"""The mock upstream's options and counters: one definition shared by the CLI, ``/__mock/config`` and tests.

``MockConfig`` is the single list of knobs. Every field is a CLI flag (``latency_ms`` -> ``--latency-ms``)
and a key of the JSON object accepted by ``POST /__mock/config``; unknown keys and out-of-range values are
rejected with a message rather than ignored. ``Stats`` are the per-process counters served by
``GET /__mock/stats``; ``merge_stats`` adds up the counters of several worker processes. The control routes
(``/__mock/*``) are served by ``handle_control`` against a worker's state; ``control_call`` asks a sibling
worker the same question.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

__all__ = ["MockConfig", "Stats", "FAULTS", "LATENCY_DISTS", "add_config_args", "config_from_args",
           "merge_stats", "LatencySampler", "handle_control", "control_call"]

FAULTS = ("429", "500", "503", "reset", "cut", "hang")
LATENCY_DISTS = ("fixed", "uniform", "exp", "lognormal")

_HELP = {
    "latency_ms": "mean time before the response head, ms",
    "latency_dist": "distribution of latency_ms: " + "|".join(LATENCY_DISTS),
    "latency_jitter_ms": "spread: +/- for uniform, standard deviation for lognormal",
    "ttft_ms": "streams: extra time from the head to the first content chunk, ms",
    "chunk_gap_ms": "streams: time between content chunks, ms",
    "chunks": "streams: number of content chunks (SSE deltas)",
    "response_tokens": "answer length in words (tokens)",
    "response_bytes": "answer length in bytes (overrides response_tokens when > 0)",
    "embedding_dims": "length of each embedding vector",
    "fault_429": "share of requests answered 429 (0..1)",
    "fault_500": "share of requests answered 500",
    "fault_503": "share of requests answered 503",
    "fault_reset": "share of requests whose connection is reset without a response",
    "fault_cut": "share of responses cut off half way (connection closed mid-body)",
    "fault_hang": "share of requests never answered (until the client closes)",
    "retry_after": "Retry-After seconds on 429/503 (0: no header)",
    "tool_calls": "answer requests that carry tools with a tool call",
    "require_auth": "require an API key header (401/403 in the provider's error shape otherwise)",
    "api_key": "if set, the API key must equal this",
    "models": "comma-separated model ids listed by GET /v1/models",
    "ratelimit_requests": "value of x-ratelimit-limit-requests",
    "ratelimit_tokens": "value of x-ratelimit-limit-tokens",
    "seed": "random seed for latency and faults (runs repeat)",
    "name": "value of the x-mock-name header on every response",
    "record": "how many recent requests GET /__mock/requests keeps",
}


@dataclass(slots=True)
class MockConfig:
    latency_ms: float = 0.0
    latency_dist: str = "fixed"
    latency_jitter_ms: float = 0.0
    ttft_ms: float = 0.0
    chunk_gap_ms: float = 0.0
    chunks: int = 20
    response_tokens: int = 20
    response_bytes: int = 0
    embedding_dims: int = 16
    fault_429: float = 0.0
    fault_500: float = 0.0
    fault_503: float = 0.0
    fault_reset: float = 0.0
    fault_cut: float = 0.0
    fault_hang: float = 0.0
    retry_after: float = 1.0
    tool_calls: bool = False
    require_auth: bool = True
    api_key: str | None = None
    models: list[str] = field(default_factory=lambda: ["mock-model"])
    ratelimit_requests: int = 10_000
    ratelimit_tokens: int = 10_000_000
    seed: int | None = None
    name: str = "mock"
    record: int = 64

    def validate(self) -> None:
        if self.latency_dist not in LATENCY_DISTS:
            raise ValueError(f"latency_dist must be one of {LATENCY_DISTS}")
        for f in ("latency_ms", "latency_jitter_ms", "ttft_ms", "chunk_gap_ms", "retry_after"):
            v = getattr(self, f)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{f} must be a finite number >= 0")
        for f in ("chunks", "embedding_dims"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1")
        for f in ("response_tokens", "response_bytes", "ratelimit_requests", "ratelimit_tokens", "record"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0")
        total = 0.0
        for fault in FAULTS:
            share = getattr(self, "fault_" + fault)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"fault_{fault} must be in 0..1")
            total += share
        if total > 1.0 + 1e-9:
            raise ValueError("fault shares add up to more than 1")
        if not self.models:
            raise ValueError("models must not be empty")

    def fault_table(self) -> list[tuple[float, str]]:
        """Cumulative (upper bound, fault) pairs for one uniform draw; empty when no faults are set."""
        out, acc = [], 0.0
        for fault in FAULTS:
            share = getattr(self, "fault_" + fault)
            if share > 0:
                acc += share
                out.append((acc, fault))
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> MockConfig:
        """A validated copy with ``changes`` applied (JSON types coerced to the field's type)."""
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        known = {f.name: f for f in fields(self)}
        data = asdict(self)
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown option {key!r}")
            data[key] = _coerce(key, value, getattr(self, key))
        new = MockConfig(**data)
        new.validate()
        return new


def _coerce(key: str, value: Any, current: Any) -> Any:
    if key in ("seed", "api_key") and value is None:
        return None
    if key == "models":
        if isinstance(value, str):
            value = [m for m in value.split(",") if m]
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise ValueError("models must be a list of strings")
        return value
    if key == "seed":
        return int(value)
    if key == "api_key":
        return str(value)
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"bad value for {key}: {value!r}") from None
    return str(value)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    defaults = MockConfig()
    for f in fields(MockConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_ = _HELP[f.name]
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_)
        elif f.name == "models":
            parser.add_argument(flag, dest=f.name, default=",".join(default), help=help_)
        elif f.name in ("seed",):
            parser.add_argument(flag, dest=f.name, type=int, default=None, help=help_)
        elif f.name == "api_key":
            parser.add_argument(flag, dest=f.name, default=None, help=help_)
        elif f.name == "latency_dist":
            parser.add_argument(flag, dest=f.name, choices=LATENCY_DISTS, default=default, help=help_)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default,
                                help=f"{help_} (default {default})")


def config_from_args(ns: argparse.Namespace) -> MockConfig:
    return MockConfig().updated({f.name: getattr(ns, f.name) for f in fields(MockConfig)})


class LatencySampler:
    """Draws latencies in seconds from the configured distribution with a seeded generator."""

    __slots__ = ("rng", "dist", "mean", "jitter", "_mu", "_sigma")

    def __init__(self, cfg: MockConfig, rng: random.Random) -> None:
        self.rng = rng
        self.dist = cfg.latency_dist
        self.mean = cfg.latency_ms / 1000.0
        self.jitter = cfg.latency_jitter_ms / 1000.0
        self._mu = self._sigma = 0.0
        if self.dist == "lognormal" and self.mean > 0:
            self._sigma = math.sqrt(math.log1p((self.jitter / self.mean) ** 2))
            self._mu = math.log(self.mean) - self._sigma**2 / 2

    def sample(self) -> float:
        m = self.mean
        if m <= 0 or self.dist == "fixed":
            return m
        if self.dist == "uniform":
            return max(0.0, self.rng.uniform(m - self.jitter, m + self.jitter))
        if self.dist == "exp":
            return self.rng.expovariate(1.0 / m)
        return self.rng.lognormvariate(self._mu, self._sigma)


@dataclass(slots=True)
class Stats:
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_fault: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    connections_total: int = 0
    client_aborts: int = 0

    def reset(self) -> None:
        live_in_flight, live_conns = self.in_flight, self.connections
        for f in fields(self):
            setattr(self, f.name, f.default_factory() if callable(f.default_factory) else f.default)
        self.in_flight = live_in_flight
        self.max_in_flight = live_in_flight
        self.connections = live_conns

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-process stats. ``max_in_flight`` becomes the sum of per-process maxima (an upper bound)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                acc = out.setdefault(key, {})
                for k, v in value.items():
                    acc[k] = acc.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
    out["processes"] = len(parts)
    return out


def handle_control(state: Any, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Serve one ``/__mock/*`` request against this process's state."""
    if path == "/__mock/health":
        return 200, {"ok": True, "name": state.cfg.name}
    if path == "/__mock/stats" and method == "GET":
        return 200, {**state.stats.to_json(), "process": state.index}
    if path == "/__mock/reset" and method == "POST":
        state.stats.reset()
        state.recent.clear()
        return 200, {"ok": True}
    if path == "/__mock/config":
        if method == "GET":
            return 200, state.cfg.to_json()
        if method == "POST":
            try:
                changes = orjson.loads(body or b"{}")
                state.apply(state.cfg.updated(changes), reseed="seed" in changes)
            except (ValueError, orjson.JSONDecodeError) as exc:
                return 400, {"error": str(exc)}
            return 200, state.cfg.to_json()
    if path == "/__mock/requests" and method == "GET":
        out = []
        for m, target, headers, raw in state.recent:
            try:
                parsed: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = raw[:65536].decode("utf-8", "replace")
            out.append({"method": m, "target": target, "headers": headers, "body": parsed})
        return 200, out
    return 404, {"error": f"no control route {method} {path}"}


async def control_call(port: int, method: str, path: str, body: bytes) -> Any:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(b"%b %b HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%b" % (
            method.encode(), path.encode(), len(body), body))
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    return orjson.loads(payload)
