"""The exporters' HTTP client: one POST of a batch, on the gateway's own keep-alive HTTP/1.1 pool.

What it owns: :class:`Poster`, which sends an exporter's batch (Langfuse ingestion) and returns the answer
whole as an :class:`Answer`, or raises :class:`PostError` when no answer came (refused, reset, timed out,
TLS failed).

Why not httpx, which the exporters used before: an httpx ``AsyncClient.post`` of a 200-event Langfuse batch
costs ~1.3 ms of CPU on this machine (its request model, anyio streams, h11; ~6 µs an event, two events a
request), on the worker's one core. The upstream transport (:class:`relaygate.upstream.h1.H1Transport`)
sends the same batch for ~0.14 ms (``python -m bench.micro.exporter_post``, pinned to one core).

Which client a URL gets:

- the H1 pool (keep-alive, one pool per origin, TLS with the system's CAs or ``SSL_CERT_FILE``), unless
- a proxy from the environment applies to the URL (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, not
  excluded by ``NO_PROXY``): the H1 pool does not speak to proxies, so those POSTs go through httpx, which
  reads the same variables (as the exporters always did, and as LiteLLM's Langfuse SDK does); or
- the URL carries credentials (``https://user:password@host``), which the H1 pool does not send; or
- a test gave an httpx transport: every POST goes through httpx with it.

Timeouts: ``timeout`` seconds for connecting, for the answer's head, between body reads, and in total.
Sans secrets: the caller's headers (an ``Authorization``) are sent, never logged here.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from relaygate.core.errors import GatewayError
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.calls import send_read
from relaygate.upstream.h1 import H1Transport

__all__ = ["CONNECTIONS", "MAX_ANSWER_BYTES", "Answer", "PostError", "Poster"]

CONNECTIONS = 16
"""Connections open at most per host by a :class:`Poster` (requests beyond wait for one, within the
timeout): several per-key Langfuse projects on one host share them."""

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The largest answer read (an ingestion answer is a few KB; a hostile server cannot grow the worker)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A POST's answer, read whole."""

    status: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names, the first value of each."""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class PostError(Exception):
    """No answer: the connection failed or was lost, it timed out, or TLS failed (the message says which)."""


def _proxied(url: str, env: Mapping[str, str]) -> bool:
    """Whether a proxy of ``env`` applies to ``url`` (the standard variables, ``NO_PROXY`` honoured)."""
    proxies = {k.lower()[:-6]: v for k, v in env.items() if k.lower().endswith("_proxy") and v.strip()}
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in proxies and "all" not in proxies:
        return False
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return not urllib.request.proxy_bypass_environment(host, proxies)  # type: ignore[attr-defined]


class Poster:
    """POSTs for one exporter (see the module docstring); made cheaply, connects on first use."""

    def __init__(self, timeout: float, *, env: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, user_agent: str = "relaygate") -> None:
        self.timeout = timeout
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._transport = transport
        self._user_agent = user_agent
        self._timeouts = Timeouts(connect=timeout, first_byte=timeout, idle=timeout, total=timeout)
        self._h1: H1Transport | None = None
        self._httpx: httpx.AsyncClient | None = None
        self._route: dict[str, bool] = {}
        """Origin (``scheme://host``) -> through httpx (a proxy applies, the URL carries credentials, or a test
        transport)."""
        self.closed = False

    def _via_httpx(self, url: str) -> bool:
        scheme, _, rest = url.partition("://")
        origin = rest.split("/", 1)[0].split("?", 1)[0]  # what decides: the scheme and the host (an object
        key = f"{scheme}://{origin}"  # store's every object has a URL of its own: reading the environment per
        got = self._route.get(key)  # URL cost ~110 µs a request)
        if got is None:
            if len(self._route) >= 256:
                self._route.clear()
            got = self._route[key] = (self._transport is not None or _proxied(key, self._env)
                                      or "@" in origin)  # user:password@
        return got

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]], method: str = "POST") -> Answer:
        """POST (or ``method``) ``body`` to ``url``; the answer whole, or :class:`PostError`. ``RuntimeError``
        once closed."""
        if self.closed:
            raise RuntimeError("the exporter's HTTP client is closed")
        if self._via_httpx(url):
            return await self._post_httpx(url, body, headers, method)
        h1 = self._h1
        if h1 is None:
            h1 = self._h1 = H1Transport(max_connections_per_origin=CONNECTIONS, keepalive_expiry=30.0,
                                        max_response_bytes=MAX_ANSWER_BYTES)
        given = {k.lower() for k, _ in headers}
        hdrs = [*((k, v) for k, v in (("content-type", "application/json"), ("user-agent", self._user_agent))
                  if k not in given), *headers]  # the caller's own content-type or user-agent wins
        try:
            resp, content = await send_read(h1, UpstreamRequest(method, url, hdrs, body), self._timeouts)
        except GatewayError as exc:
            raise PostError(f"{type(exc).__name__}: {exc.message}") from None
        except ValueError as exc:  # a URL the pool cannot reach (checked again on every attempt: cheap)
            raise PostError(str(exc)) from None
        names: dict[str, str] = {}
        for k, v in resp.headers:
            names.setdefault(k.decode("latin-1"), v.decode("latin-1"))
        return Answer(resp.status, content, names)

    async def _post_httpx(self, url: str, body: bytes, headers: Sequence[tuple[str, str]], method: str) -> Answer:
        client = self._httpx
        if client is None:
            client = self._httpx = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), transport=self._transport,
                headers={"Content-Type": "application/json", "User-Agent": self._user_agent})
        try:
            resp = await client.request(method, url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise PostError(f"{type(exc).__name__}: {exc}") from None
        if len(resp.content) > MAX_ANSWER_BYTES:
            raise PostError(f"an answer of {len(resp.content)} bytes, over {MAX_ANSWER_BYTES}")
        return Answer(resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()})

    async def aclose(self) -> None:
        """Close the connections; a POST after this raises ``RuntimeError``."""
        self.closed = True
        h1, self._h1 = self._h1, None
        client, self._httpx = self._httpx, None
        if h1 is not None:
            await h1.aclose()
        if client is not None:
            await client.aclose()
