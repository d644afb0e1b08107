"""Helpers for the router e2e tests (imported by tests/e2e/test_router_*.py; not a pytest conftest).

Process fixtures come from tests/conftest.py (``redis_server``, ``start_gateway``); mock upstreams from
``bench.procs.start_mock``. ``blast`` drives a gateway with httpx at a fixed concurrency and returns every
response's status, headers and body, so tests assert on shares and counts, never on timings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

MASTER = "sk-router-master"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def deployment(group: str, dep_id: str, api_base: str, **params: Any) -> str:
    extra = "".join(f"\n      {k}: {v}" for k, v in params.items())
    return f"""
  - model_name: {group}
    litellm_params:
      model: openai/{dep_id}
      api_key: sk-upstream
      api_base: {api_base}{extra}
    model_info:
      id: {dep_id}"""


def config(deployments: list[str], router: str = "", extra: str = "") -> str:
    return ("model_list:" + "".join(deployments) + f"""
general_settings:
  master_key: {MASTER}
router_settings:
{router or "  routing_strategy: simple-shuffle"}
{extra}
""")


async def _blast(url: str, model: str, n: int, concurrency: int, key: str, fresh_connections: bool,
                 stream: bool) -> list[Reply]:
    limits = httpx.Limits(max_keepalive_connections=0 if fresh_connections else concurrency,
                          max_connections=concurrency)
    out: list[Reply] = []
    sem = asyncio.Semaphore(concurrency)
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], "stream": stream}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0,
                                 headers={"authorization": f"Bearer {key}"}) as client:
        async def one() -> None:
            async with sem:
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    out.append(Reply(r.status_code, dict(r.headers), r.content))
                except httpx.HTTPError as exc:
                    out.append(Reply(-1, {}, repr(exc).encode()))

        await asyncio.gather(*(one() for _ in range(n)))
    return out


def blast(url: str, model: str, n: int, concurrency: int = 16, key: str = MASTER,
          fresh_connections: bool = False, stream: bool = False) -> list[Reply]:
    return asyncio.run(_blast(url, model, n, concurrency, key, fresh_connections, stream))


def share(replies: list[Reply], header: str = "x-litellm-model-id") -> dict[str, int]:
    out: dict[str, int] = {}
    for r in replies:
        k = r.headers.get(header, f"status-{r.status}")
        out[k] = out.get(k, 0) + 1
    return out


def redis_cmd(port: int, *args: str) -> Any:
    """One blocking command on a fresh connection (test-side inspection of the limiter's keys)."""
    import socket

    from relaygate.limits.resp import encode, parse

    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(encode(args))
        buf = b""
        while True:
            buf += s.recv(65536)
            try:
                return parse(buf, 0)[0]
            except Exception:  # incomplete: read more
                continue
