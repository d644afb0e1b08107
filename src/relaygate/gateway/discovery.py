"""Model discovery for wildcard deployments (LiteLLM's ``litellm_settings.check_provider_endpoint``).

A deployment such as ``model_name: openai/*`` serves whatever its provider serves; with
``check_provider_endpoint`` on, ``/v1/models`` lists those models: the provider's own list endpoint is
read (OpenAI-compatible providers: ``GET {api_base}/models``; Ollama: ``GET {api_base}/api/tags``) and each
id is shown under the wildcard's name (``openai/*`` + ``gpt-4o`` -> ``openai/gpt-4o``).

Off the request path: the lists are cached per deployment for ``TTL`` seconds; a request that finds a list
missing or stale starts one refresh in the background (single flight per deployment) and answers with
what is cached. Only the very first listing of a deployment waits for its fetch, at most ``FIRST_WAIT``
seconds. A provider that fails or times out (the deployment's ``timeout``, else ``health_check_timeout``)
costs one log line and an empty list until the next refresh: ``/v1/models`` then shows the configured
entries only. Other providers (Anthropic, Gemini, Bedrock ...) are not asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from relaygate.config.model import Deployment
from relaygate.providers.openai import COMPATIBLE
from relaygate.upstream.base import Timeouts

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

log = logging.getLogger("relaygate")

TTL = 300.0
FIRST_WAIT = 2.0
OPENAI_COMPATIBLE = frozenset(COMPATIBLE) - {"text-completion-openai"}
"""The providers whose ``/models`` lists a wildcard's models: the OpenAI-compatible adapters."""
OLLAMA = frozenset({"ollama", "ollama_chat"})


def listable(dep: Deployment) -> bool:
    """Whether discovery can list ``dep``'s provider (a wildcard whose pattern ends with ``*``)."""
    return (dep.is_wildcard and dep.model_name.endswith("*") and dep.upstream_model.endswith("*")
            and dep.provider in OPENAI_COMPATIBLE | OLLAMA)


def parse_ids(provider: str, body: bytes) -> list[str]:
    """Model ids from a provider's list answer (OpenAI ``{"data": [{"id"}]}``, Ollama ``{"models": [{"name"}]}``)."""
    data = orjson.loads(body)
    if provider in OLLAMA:
        items, key = data.get("models"), "name"
    else:
        items, key = data.get("data"), "id"
    if not isinstance(items, list):
        raise ValueError("no model list in the answer")
    return [i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str) and i[key]]


def public_names(dep: Deployment, ids: list[str]) -> list[str]:
    """The names clients use for ``ids`` under ``dep``'s wildcard (``openai/*`` + ``gpt-4o`` -> ``openai/gpt-4o``);
    ids outside the upstream pattern's prefix are left out."""
    public, upstream = dep.model_name[:-1], dep.upstream_model[:-1]
    return [public + i[len(upstream):] for i in ids if i.startswith(upstream) and len(i) > len(upstream)]


class Discovery:
    """One worker's discovered model lists, by deployment id."""

    def __init__(self, ttl: float = TTL, first_wait: float = FIRST_WAIT) -> None:
        self.ttl = ttl
        self.first_wait = first_wait
        self._lists: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}

    async def names(self, gw: Gateway, deps: list[Deployment]) -> list[str]:
        """The public names of every model the listable ``deps`` serve, as cached (refreshing stale lists in
        the background; waiting at most ``first_wait`` for lists never fetched)."""
        now = time.monotonic()
        first: list[asyncio.Task[None]] = []
        for dep in deps:
            cached = self._lists.get(dep.id)
            if cached is not None and now - cached[0] < self.ttl:
                continue
            task = self._inflight.get(dep.id)
            if task is None:
                task = self._inflight[dep.id] = asyncio.create_task(self._refresh(gw, dep))
                task.add_done_callback(self._done(dep.id))
            if cached is None:
                first.append(task)
        if first:
            await asyncio.wait(first, timeout=self.first_wait)
        out: list[str] = []
        for dep in deps:
            out.extend(public_names(dep, list(self._lists.get(dep.id, (0.0, ()))[1])))
        return list(dict.fromkeys(out))

    def _done(self, dep_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(dep_id, None)
        return done

    async def _refresh(self, gw: Gateway, dep: Deployment) -> None:
        from relaygate.providers import make_provider

        rt = gw.runtime
        timeout = dep.timeout or rt.config.general.health_check_timeout
        try:
            provider = make_provider(dep)
            req = provider.health_request()
            if req is None:
                raise ValueError("the provider has no model list endpoint")
            resp = await (provider.transport or gw.transport).send(
                req, Timeouts(connect=timeout, first_byte=timeout, idle=timeout, total=timeout))
            body = await resp.read()
            if resp.status >= 400:
                raise ValueError(f"HTTP {resp.status}")
            ids = parse_ids(dep.provider, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("model discovery for %s (%s): %s: %s; /v1/models shows the configured entries only",
                        dep.model_name, dep.id, type(exc).__name__, exc)
            ids = []
        self._lists[dep.id] = (time.monotonic(), tuple(ids))


def discovery_of(gw: Gateway) -> Discovery:
    """The gateway's :class:`Discovery`, made on first use (it lives as long as the worker)."""
    found: Discovery | None = getattr(gw, "_model_discovery", None)
    if found is None:
        found = Discovery()
        gw._model_discovery = found  # type: ignore[attr-defined]
    return found
