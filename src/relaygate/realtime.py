"""OpenAI's Realtime API over WebSocket (``/v1/realtime``, ``/realtime``, ``/openai/v1/realtime``), relayed to an
``openai/`` or ``azure/`` deployment of the model group the client names, as LiteLLM's proxy relays it.

A session, in order:

1. **Who and what**: the key from ``Authorization`` / ``api-key`` / the gateway's key header, or, from a browser
   (which cannot set headers on a WebSocket), the subprotocol ``openai-insecure-api-key.<key>``; the model group
   from ``?model=`` (Azure's clients send ``?deployment=``). The key's allowed routes, its model access and its
   budgets (``budgets.guard``: the key's, team's, user's ..., as for any request) are checked; the group must have
   a deployment that serves the Realtime API (``openai/``, ``azure/``). Each refusal is answered before the
   session starts: the WebSocket is accepted, one OpenAI ``error`` event says why (LiteLLM's wording where it has
   one) and the socket closes with 1008 (a policy refusal) or 1011 / 1013 (the upstream, or too many sessions).
2. **Upstream**: the deployments are tried in order until one accepts (a handshake refused or failing moves on to
   the next; all failing is the error event naming the last status). The upstream gets the deployment's own
   credentials and configured headers, never the client's key; ``OpenAI-Beta`` is passed on when the client
   sent it (the beta protocol). ``wss://`` for ``https`` bases.
3. **Relay**: text and binary frames both ways, as they are, until either side closes; the other side is then
   closed too (the client gets the upstream's close code when it was a normal one). Nothing is buffered beyond
   one frame in flight each way.
4. **Usage**: every server ``response.done`` event's ``usage`` (``input_tokens``, ``output_tokens``, cached and
   audio token details) is summed, and when the session ends it is one completion record (``route``
   ``realtime``, LiteLLM's call type ``_arealtime``) priced as the deployment's answers are — audio tokens at
   their own prices when the deployment has them — so spend logs, key / team / user spend, budgets and metrics
   see it. A session that never answered is still one record (no tokens, cost 0).

An open session counts as a request in flight (``Gateway.active``: ``/health/backlog``,
``litellm_in_flight_requests``, and a graceful drain waits for it, up to its timeout). Bounded: at most
:data:`MAX_SESSIONS` sessions per worker (more are refused with 1013 and counted), frames of at
most :data:`MAX_FRAME` bytes (a larger one closes the session with 1009). The routes cost nothing to a request on
another path: Granian hands only WebSocket handshakes here. Rate limits (rpm / tpm) do not apply to a session
(LiteLLM's do not either); its tokens reach budgets and spend when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
import orjson

from relaygate.core import tokens
from relaygate.core.errors import GatewayError
from relaygate.cost import Details, usd
from relaygate.http.types import Scope
from relaygate.logs import fail_log
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["MAX_FRAME", "MAX_SESSIONS", "PATHS", "aclose", "serve", "usage_counts"]

log = logging.getLogger("relaygate.realtime")

PATHS = frozenset({"/v1/realtime", "/realtime", "/openai/v1/realtime"})
MAX_SESSIONS = 1000
"""Realtime sessions one worker relays at once."""
MAX_FRAME = 16 * 1024 * 1024
"""The largest frame relayed either way (bytes)."""
PROVIDERS = ("openai", "azure")
_SUBPROTOCOL_KEY = "openai-insecure-api-key."
_CONNECT_TIMEOUT = 20.0


class _Ask:
    """What the budget check reads of a request (``budgets.guard``): who, the model and its group."""

    __slots__ = ("who", "model", "group", "over", "hold", "view", "control")

    def __init__(self, who: Any, model: str, group: Any) -> None:
        self.who, self.model, self.group = who, model, group
        self.over = self.hold = self.view = self.control = None


class _Relay:
    """One worker's realtime sessions: the upstream WebSocket client and the count of live sessions."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.live = 0

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self.session


_RELAYS: weakref.WeakKeyDictionary[Any, _Relay] = weakref.WeakKeyDictionary()


async def aclose(gw: Any) -> None:
    """Close ``gw``'s upstream WebSocket client (the gateway's shutdown)."""
    relay = _RELAYS.pop(gw, None)
    if relay is not None and relay.session is not None:
        await relay.session.close()


def _refuse(exc: GatewayError) -> tuple[dict[str, Any], int]:
    err = {"type": exc.type or "invalid_request_error", "code": exc.code, "message": exc.message,
           "param": exc.param}
    code = 1008 if exc.status in (400, 401, 403, 404, 422) else 1013 if exc.status == 429 else 1011
    return {"type": "error", "event_id": None, "error": err}, code


def _headers(scope: Scope) -> tuple[list[tuple[bytes, bytes]], str | None, str | None]:
    """The handshake's headers (a browser's subprotocol key as ``Authorization``), the subprotocol to answer
    with, and the client's ``OpenAI-Beta``."""
    headers = list(scope.get("headers") or [])
    chosen = None
    for proto in scope.get("subprotocols") or []:
        if proto.startswith(_SUBPROTOCOL_KEY) and len(proto) > len(_SUBPROTOCOL_KEY):
            headers.append((b"authorization", b"Bearer " + proto[len(_SUBPROTOCOL_KEY):].encode("latin-1")))
        elif proto == "realtime" and chosen is None:
            chosen = proto
    beta = next((v.decode("latin-1") for k, v in headers if k == b"openai-beta"), None)
    return headers, chosen, beta


def _int(value: Any) -> int:
    return tokens.bound(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_counts(usage: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """A Realtime ``usage`` as (input, output, cached input, audio input, audio output) tokens, each bounded."""
    idt, odt = usage.get("input_token_details"), usage.get("output_token_details")
    idt = idt if isinstance(idt, dict) else {}
    odt = odt if isinstance(odt, dict) else {}
    return (_int(usage.get("input_tokens")), _int(usage.get("output_tokens")), _int(idt.get("cached_tokens")),
            _int(idt.get("audio_tokens")), _int(odt.get("audio_tokens")))


def _upstream_url(target: Any, model: str, query: dict[str, list[str]]) -> str:
    prov = target.provider
    base = (prov.api_base or "").rstrip("/")
    base = "wss://" + base[8:] if base.startswith("https://") else "ws://" + base[7:] if base.startswith(
        "http://") else base
    params: dict[str, str] = {}
    for name in ("call_id",):  # the rest of the client's query is the gateway's (model) or the key's
        if query.get(name):
            params[name] = query[name][0]
    if target.dep.provider == "azure" and not getattr(prov, "v1", False):
        return f"{base}/openai/realtime?{urlencode({'api-version': prov.api_version, 'deployment': model, **params})}"
    return f"{base}/realtime?{urlencode({'model': model, **params})}"


async def serve(gw: Any, scope: Scope, receive: Any, send: Any, path: str) -> None:
    """One WebSocket connection to ``path`` (the path under the root): a realtime session, or closed."""
    first = await receive()
    if first.get("type") != "websocket.connect":
        return
    if path not in PATHS:
        await send({"type": "websocket.close", "code": 1008})  # the handshake is refused (403)
        return
    relay = _RELAYS.get(gw)
    if relay is None:
        relay = _RELAYS[gw] = _Relay()
    headers, subprotocol, beta = _headers(scope)
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    t0 = time.time()
    session = _Session(gw, relay, send, receive, t0)
    try:
        targets = await session.admit(dict(scope, headers=headers), query, path)
    except GatewayError as exc:
        await session.refuse(exc, subprotocol)
        return
    relay.live += 1
    gw.active += 1  # in flight like a request: /health/backlog, litellm_in_flight_requests, a drain's wait
    try:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await session.run(targets, query, beta)
    finally:
        relay.live -= 1
        gw.active -= 1
        session.finish()


class _Session:
    """One realtime session (see the module docstring)."""

    def __init__(self, gw: Any, relay: _Relay, send: Any, receive: Any, t0: float) -> None:
        self.gw, self.relay, self.send, self.receive, self.t0 = gw, relay, send, receive, t0
        self.who: Any = None
        self.model = ""
        self.target: Any = None
        self.usage = [0, 0, 0, 0, 0]  # input, output, cached, audio in, audio out
        self.pico = 0
        self.responses = 0
        self.status = 200
        self.error: GatewayError | None = None
        self.client_open = True

    async def admit(self, scope: Scope, query: dict[str, list[str]], path: str) -> list[Any]:
        rt = self.gw.runtime
        principals = rt.principals
        who = self.who = principals.resolve_cached(scope["headers"]) or await principals.resolve(scope["headers"])
        if who.jwt is not None:
            who.jwt.check(path)
        if who.routes is not None:
            who.routes.check(path)
        model = (query.get("model") or query.get("deployment") or [""])[0]
        if not model:
            raise GatewayError("Missing required query parameter: 'model'.", status=400,
                               type="invalid_request_error", param="model")
        self.model = model
        key = who.key
        served = key.aliases.get(model, model) if key is not None and key.aliases else model  # the key's aliases
        group = rt.router.resolve(served)
        who.check_model(served)  # the model served is the one the key must be allowed, as on every route
        targets = [t for t in group.targets if t.dep.provider in PROVIDERS]
        if not targets:
            raise GatewayError(f"model={model} has no deployment that serves the Realtime API (openai/, azure/)",
                               status=400, type="invalid_request_error", param="model")
        self.target = targets[0]
        guard = getattr(self.gw, "budgets", None)
        if guard is not None and getattr(guard, "active", False):
            await guard._check(_Ask(who, model, group), 0)
        if self.relay.live >= MAX_SESSIONS:
            self.gw.metrics.count("realtime_refused")
            raise GatewayError(f"This worker relays {MAX_SESSIONS} realtime sessions already: retry later",
                               status=429, type="rate_limit_error")
        return targets

    async def refuse(self, exc: GatewayError, subprotocol: str | None) -> None:
        self.status, self.error = exc.status, exc
        event, code = _refuse(exc)
        fail_log.warning("realtime %s -> %d %s", self.model or "-", exc.status, exc.message)
        try:
            await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
            await self.send({"type": "websocket.send", "text": orjson.dumps(event).decode()})
            await self.send({"type": "websocket.close", "code": code})
        except Exception:  # the client went away meanwhile: nothing more to tell it
            pass
        if self.who is not None:
            self.finish()

    async def _connect(self, targets: list[Any], query: dict[str, list[str]], beta: str | None) -> Any:
        last: GatewayError | None = None
        for target in targets:
            hdrs = dict(target.provider.media_headers())
            if beta:
                hdrs["OpenAI-Beta"] = beta
            url = _upstream_url(target, target.upstream_model, query)
            try:
                ws = await asyncio.wait_for(self.relay.client().ws_connect(
                    url, headers=hdrs, max_msg_size=MAX_FRAME, autoping=True, heartbeat=None), _CONNECT_TIMEOUT)
            except aiohttp.WSServerHandshakeError as exc:
                last = GatewayError(f"The upstream refused the realtime session (HTTP {exc.status})", status=502,
                                    type="api_error")
                continue
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = GatewayError(f"The upstream realtime endpoint could not be reached ({type(exc).__name__})",
                                    status=502, type="api_error")
                continue
            self.target = target
            return ws
        assert last is not None
        raise last

    async def run(self, targets: list[Any], query: dict[str, list[str]], beta: str | None) -> None:
        try:
            up = await self._connect(targets, query, beta)
        except GatewayError as exc:
            self.status, self.error = exc.status, exc
            fail_log.warning("realtime %s -> %d %s", self.model, exc.status, exc.message)
            event, code = _refuse(exc)
            try:
                await self.send({"type": "websocket.send", "text": orjson.dumps(event).decode()})
                await self.send({"type": "websocket.close", "code": code})
            except Exception:  # the client went away meanwhile
                pass
            return
        pumps = [asyncio.ensure_future(self._from_client(up)), asyncio.ensure_future(self._from_upstream(up))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            code = up.close_code if up.close_code in (1000, 1001) else 1000
            await up.close()
            if self.client_open:
                self.client_open = False
                try:
                    await self.send({"type": "websocket.close", "code": code})
                except Exception:  # the client went away meanwhile
                    pass

    async def _from_client(self, up: Any) -> None:
        while True:
            msg = await self.receive()
            kind = msg["type"]
            if kind == "websocket.disconnect":
                self.client_open = False
                return
            if kind != "websocket.receive":
                continue
            text, data = msg.get("text"), msg.get("bytes")
            if text is not None:
                if len(text) > MAX_FRAME:
                    await self._too_big()
                    return
                await up.send_str(text)
            elif data is not None:
                if len(data) > MAX_FRAME:
                    await self._too_big()
                    return
                await up.send_bytes(data)

    async def _too_big(self) -> None:
        self.client_open = False
        await self.send({"type": "websocket.close", "code": 1009})

    async def _from_upstream(self, up: Any) -> None:
        async for msg in up:
            if msg.type == aiohttp.WSMsgType.TEXT:
                text: str = msg.data
                if '"response.done"' in text:
                    self._count(text)
                await self.send({"type": "websocket.send", "text": text})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await self.send({"type": "websocket.send", "bytes": msg.data})
            else:  # closed, closing or an error: the session ends
                return

    def _count(self, text: str) -> None:
        """A ``response.done`` event's usage, summed and priced."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        response = event.get("response") if isinstance(event, dict) else None
        usage = response.get("usage") if isinstance(response, dict) else None
        if event.get("type") != "response.done" or not isinstance(usage, dict):
            return
        self.responses += 1
        counts = usage_counts(usage)
        for i, n in enumerate(counts):
            self.usage[i] += n
        table = self.gw.runtime.prices.table(self.target.dep)
        if table.known:
            inp, out, cached, audio_in, audio_out = counts
            self.pico += max(Details(cache_read=cached, audio_in=audio_in, audio_out=audio_out).price(table, inp, out),
                             0)

    def finish(self) -> None:
        """The session's one completion record."""
        who, dep = self.who, (self.target.dep if self.target is not None else None)
        latency = time.time() - self.t0
        err = self.error
        self.gw.completions.put(CompletionRecord(
            call_id=str(uuid.uuid4()), route="realtime", stream=True, model=self.model,
            model_group=dep.model_name if dep is not None else "", deployment_id=dep.id if dep is not None else "",
            provider=dep.provider if dep is not None else "", upstream_model=dep.upstream_model if dep else "",
            key_hash=who.key_hash if who else None, key_alias=who.key_alias if who else None,
            team_id=who.team_id if who else None, user_id=who.user_id if who else None, status=self.status,
            outcome=Outcome.OK if err is None else Outcome.ERROR, prompt_tokens=self.usage[0],
            completion_tokens=self.usage[1], cache_read_tokens=self.usage[2], cache_write_tokens=0, latency=latency,
            ttft=None, overhead=0.0, cost=usd(self.pico), cache_hit=False, retries=0, fallbacks=0,
            start_time=self.t0, error_type=(err.type or "") if err is not None else ""))
