"""The budget tests: ``db_url`` (a SQLite file or a database on the session's real PostgreSQL, tests/pg.py), a
local OpenAI-shaped upstream that answers with usage and counts what reaches it, and a gateway started with
its lifespan (store, spend sink, budgets) against it, priced by ``model_info``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from relaygate.asgi import Gateway
from relaygate.config import from_litellm
from relaygate.store import hash_token
from tests.asgi.conftest import Reply, call
from tests.store.conftest import db_url  # noqa: F401  (both backends)

MASTER = "sk-master-budgets"
COST = 3e-6
"""What one request costs: 1 prompt token at 1e-6 and 1 completion token at 2e-6 USD."""
ANSWER = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


class Upstream:
    """Counts the requests that reach it and answers each with :data:`ANSWER`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.hits = 0
        self.url = ""
        self.delay = delay

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.hits += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(ANSWER), ANSWER))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def upstream(delay: float = 0.0) -> AsyncIterator[Upstream]:
    up = Upstream(delay)
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield up
    finally:
        server.close()


def config(url: str | None, up: Upstream, **extra: Any) -> dict[str, Any]:
    general: dict[str, Any] = {"master_key": MASTER}
    if url is not None:
        general["database_url"] = url
    out: dict[str, Any] = {
        "model_list": [{"model_name": m, "litellm_params": {"model": "openai/gpt-x", "api_base": up.url,
                                                            "api_key": "k"},
                        "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
                       for m in ("m", "m2")],
        "general_settings": general,
    }
    for k, v in extra.items():
        out.setdefault(k, {}).update(v) if isinstance(v, dict) else out.__setitem__(k, v)
    return out


@asynccontextmanager
async def started(cfg: dict[str, Any]) -> AsyncIterator[Gateway]:
    """A gateway of LiteLLM config ``cfg``, started with its lifespan and shut down after."""
    gw = Gateway(from_litellm(cfg, "<test>"))
    await gw.startup()
    try:
        yield gw
    finally:
        await gw.shutdown()


@asynccontextmanager
async def gateway(url: str | None, up: Upstream, **extra: Any) -> AsyncIterator[Gateway]:
    async with started(config(url, up, **extra)) as gw:
        yield gw


async def ask(gw: Gateway, key: str, model: str = "m", **body: Any) -> Reply:
    r = await call(gw, "POST", "/v1/chat/completions",
                   {"model": model, "messages": [{"role": "user", "content": "hi"}], **body},
                   headers={"authorization": f"Bearer {key}"})
    gw.completions.drain_now()  # the completion reaches the sinks now (else within ~1 ms)
    return r


def token(key: str) -> str:
    return hash_token(key)


__all__ = ["COST", "MASTER", "Upstream", "ask", "config", "gateway", "started", "token", "upstream"]
