"""Forwarding one pass-through request: the IO shell around ``urls``, ``targets`` and ``usage``.

One :class:`Relay` per request carries it through these stages (each failure is answered in the route's
error shape, completed as one record and logged once):

1. **headers** — the call id and overrides (``pipeline.overrides``; a declared ``Content-Length`` over
   ``max_request_body_bytes`` is a 413 before a byte is read);
2. **authenticate** — with the LLM routes' resolver (``auth.PrincipalResolver``), the key read from the
   usual headers or, on Gemini's route, ``?key=``; a virtual key's ``allowed_routes`` is honoured as
   LiteLLM's (exact path, prefix, ``/x/*``, ``llm_api_routes``); a custom endpoint with ``auth: false``
   skips this stage, as LiteLLM's does;
3. **target** — the upstream URL from the route's base and the checked path and query (``urls``);
4. **body** — at most :data:`HOLD` bytes are read before forwarding starts: a body that ends within them is
   sent as ``bytes`` (and, if JSON, its ``model`` and ``stream`` read); a longer one is streamed to the
   upstream as ``receive()`` delivers it, under the body limits, with the transport's write backpressure
   reaching the client. It is read whole (still within ``max_request_body_bytes``) only when it must be:
   Bedrock's SigV4 signs the body, and a key restricted to some models must be checked against the
   body's ``model`` on a provider route (LiteLLM checks it there too; never on a custom endpoint);
5. **before_route** — the runtime's hooks: a key, team, user ... over its budget is refused before a byte
   goes upstream, as on the LLM routes; then the key's (team's, user's) rpm / tpm / parallel limits are
   paid in the router's limiter (a 429 as on the LLM routes; tokens counted once the answer says them);
6. **relay** — the upstream's status, headers (``urls.response_headers``) and body are sent to the client
   as they arrive (bounded by the transport's flow control); a copy of each piece feeds a
   :class:`~relaygate.passthrough.usage.UsageTap` on provider routes;
7. **complete** — one completion record through ``Pipeline.complete`` (route ``pass_through_endpoint``,
   LiteLLM's ``call_type``): the usage read and its cost on the answering model's price table (the
   ``use_in_pass_through`` deployment's prices when it is that model), or a custom endpoint's
   ``cost_per_request`` for a successful answer; spend logs, key spend, budgets and metrics see it.

Faults: an upstream that refuses the connection is a 502, one that does not answer in time a 504; one that
breaks off mid-answer ends the client's response without its terminating chunk (the client sees a
truncated answer, never a clean end), except an Anthropic or OpenAI event stream, which gets an in-band
``error`` event first as those APIs send one. A client that goes away closes the upstream response (and an
upload it abandons aborts the upstream request); the record says ``499``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from relaygate.auth import Principal
from relaygate.config.model import Config, Deployment
from relaygate.core import errors
from relaygate.core.baggage import add_mapped
from relaygate.core.errors import GatewayError
from relaygate.core.ratelimit import Bucket
from relaygate.core.views import check_duplicate_keys
from relaygate.cost import usd
from relaygate.http.body import ClientGone, next_message, too_large
from relaygate.http.respond import VERSION, DisconnectWatch
from relaygate.http.types import Headers, Receive, Scope, Send
from relaygate.logs import fail_log
from relaygate.passthrough import urls
from relaygate.passthrough.targets import Route, Upstream, error_body, model_in_path, upstream_for
from relaygate.passthrough.usage import Usage, UsageTap
from relaygate.pipeline.exchange import Exchange
from relaygate.pipeline.overrides import Overrides, new_call_id
from relaygate.route_context import RouteContext
from relaygate.router import Lease, Target
from relaygate.routing_limits import key_limit_error, settle
from relaygate.sinks import Outcome
from relaygate.upstream.base import Timeouts, UpstreamRequest
from relaygate.upstream.calls import refresh_token
from relaygate.upstream.identity import identity_client

if TYPE_CHECKING:
    from relaygate.pipeline import Pipeline

__all__ = ["HOLD", "ROUTE_NAME", "serve"]

ROUTE_NAME = "pass_through_endpoint"
"""The records' route (LiteLLM's ``call_type`` of pass-through requests)."""
HOLD = 256 * 1024
"""Body bytes read before forwarding starts; a body that ends within them is sent in one piece."""
_KEY = frozenset({"key"})


class _Head(msgspec.Struct):
    """What the relay reads of a JSON body: the model it names and whether it asks for a stream."""

    model: Any = None
    stream: Any = None


_HEAD = msgspec.json.Decoder(_Head)
_DEPS_MAX = 1024


class _Snapshot:
    """A config's routes resolved (built lazily, per route) and the synthetic deployments records are
    priced on; one per config snapshot, replaced when a reload brings another config."""

    __slots__ = ("config", "upstreams", "deps")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstreams: dict[tuple[str, str], Upstream] = {}
        self.deps: dict[tuple[str, str, str], Deployment] = {}

    def upstream(self, route: Route) -> Upstream:
        key = (route.prefix, route.endpoint)
        up = self.upstreams.get(key)
        if up is None:
            up = self.upstreams[key] = upstream_for(route, self.config)
        return up

    def deployment(self, route: Route, up: Upstream, model: str) -> Deployment:
        """The deployment a record names and is priced on: the route's own when it serves ``model``."""
        if up.dep is not None and (up.dep.upstream_model == model or not model):
            return up.dep
        provider = route.provider or "custom"
        key = (provider, route.name, model)
        dep = self.deps.get(key)
        if dep is None:
            dep = Deployment(model_name=model or route.name, model=f"{provider}/{model}", provider=provider,
                             upstream_model=model, id=f"pass_through:{route.name}", where="pass-through")
            if len(self.deps) < _DEPS_MAX:
                self.deps[key] = dep
        return dep


_snapshot: _Snapshot | None = None


def snapshot(config: Config) -> _Snapshot:
    global _snapshot
    snap = _snapshot
    if snap is None or snap.config is not config:
        snap = _snapshot = _Snapshot(config)
    return snap


class _Served(Target):
    """The target a pass-through record names (``Pipeline.complete`` reads the lease's ``target.dep``)."""

    __slots__ = ()

    def __init__(self, dep: Deployment) -> None:  # no adapter, stats or buckets: nothing is routed
        self.dep = dep
        self.upstream_model = dep.upstream_model


def _route_allowed(who: Principal, route: Route, path: str) -> None:
    """A virtual key's ``allowed_routes`` (LiteLLM's ``RouteChecks.is_virtual_key_allowed_to_call_route``), and
    a JWT's allowed routes (``auth.jwt_routes``)."""
    if who.jwt is not None:
        who.jwt.check(path)
    key = who.key
    rows = key.records if key is not None else ()
    allowed = getattr(rows[0], "allowed_routes", None) if rows else None
    if not allowed:
        return
    for a in allowed:
        if not isinstance(a, str):
            continue
        if a == "llm_api_routes" or (a == "mapped_pass_through_routes" and route.provider):
            return
        if path == a or path.startswith(a.rstrip("/") + "/") or (a.endswith("*") and path.startswith(a[:-1])):
            return
    raise GatewayError(f"Virtual key is not allowed to call this route. Only allowed to call routes: {allowed}. "
                       f"Tried to call route: {path[:200]}", status=403, type="auth_error", param="None")


class Relay:
    """One pass-through request on its way (see the module docstring for the stages)."""

    __slots__ = ("pipeline", "route", "scope", "receive", "send", "ex", "up", "started", "watch", "paid")

    def __init__(self, pipeline: Pipeline, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        self.pipeline = pipeline
        self.route = route
        self.scope = scope
        self.receive = receive
        self.send = send
        self.ex = Exchange(ROUTE_NAME, time.perf_counter(), pipeline.runtime)
        self.up: Upstream | None = None
        self.started = False
        self.watch: DisconnectWatch | None = None
        self.paid: tuple[tuple[Bucket, ...], tuple[float, ...]] | None = None
        """The key's rate-limit buckets this request took (and their costs), settled when it ends."""

    async def run(self) -> None:
        ex = self.ex
        try:
            await self._run()
        except GatewayError as exc:
            await self.fail(exc)
        except ClientGone:
            self.pipeline.complete(ex, 499, Outcome.CLIENT_GONE)
        except asyncio.CancelledError:
            w = self.watch
            if w is None or not w.gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.pipeline.complete(ex, 499, Outcome.CLIENT_GONE)
        finally:
            if self.watch is not None:
                self.watch.stop()
            if self.paid is not None:  # the parallel slot back; tokens used counted
                buckets, costs = self.paid
                used = ex.prompt_tokens + ex.completion_tokens
                ex.rt.router.limiter.adjust(buckets, settle(buckets, costs, used))

    async def fail(self, exc: GatewayError) -> None:
        ex = self.ex
        if not ex.call_id:
            ex.call_id = new_call_id()
        self.pipeline.complete(ex, exc.status, Outcome.ERROR, error=exc)
        fail_log.warning("%s failed: %d %s (call_id=%s)", self.scope["path"], exc.status, exc.message,
                         ex.call_id.decode("latin-1"))
        if self.started:
            return  # the client's response ends short: no terminating chunk, so it sees the break
        headers: Headers = [(b"x-litellm-version", VERSION), (b"x-litellm-call-id", ex.call_id),
                            (b"content-type", b"application/json"), *exc.headers]
        body = error_body(self.route.shape, exc)
        headers.append((b"content-length", b"%d" % len(body)))
        await self.send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def _run(self) -> None:
        ex, route, scope = self.ex, self.route, self.scope
        rt = ex.rt
        headers = scope["headers"]
        over = ex.over = Overrides(headers, rt.max_body, rt.user_header, rt.tag_headers)
        ex.call_id = over.call_id or new_call_id()
        up = self.up = snapshot(rt.config).upstream(route)
        ep = up.endpoint
        if up.error is not None and not route.provider:
            raise _fresh(up.error)  # a custom endpoint a reload removed
        q, dropped = urls.query(scope.get("query_string", b""), _KEY if route.query_key else frozenset())
        if ep is None or ep.auth:
            token = dropped.get("key")
            auth_headers = [(b"authorization", b"Bearer " + token.encode())] if token else headers
            principals = rt.principals
            who = ex.who = principals.resolve_cached(auth_headers) or await principals.resolve(auth_headers)
            _route_allowed(who, route, scope["path"])
        if rt.tag_mapper is not None:  # request_tag_mappings, as on the LLM routes (LiteLLM maps pass-through too)
            over.tags = add_mapped(rt.tag_mapper, headers, over.tags)
        raw = scope.get("raw_path") or scope["path"].encode()
        sub = urls.subpath(raw, route.prefix)
        if up.error is not None:
            raise _fresh(up.error)  # a provider route without credentials
        if ep is not None and not ep.include_subpath and sub not in ("", "/"):
            raise errors.NotFound(f"Route not found: {scope['method']} {scope['path'][:200]}", code="404")
        if up.strip_v1 and (sub == "/v1" or sub.startswith("/v1/")):
            sub = sub[3:]
        for name, value in up.defaults.items():
            if not any(p.split("=", 1)[0] == name for p in q.split("&")):
                q = f"{q}&{name}={value}" if q else f"{name}={value}"
        if route.provider == "vertex_ai" and "stream" in sub and "alt=" not in q:
            q = f"{q}&alt=sse" if q else "alt=sse"  # as LiteLLM's Vertex route asks for SSE
        url = urls.join(up.base, sub, q)
        ex.model = model_in_path(route.provider, sub)
        ex.stream = "stream" in sub.rsplit("/", 1)[-1]
        body, length = await self._body(up)
        caller = ex.who
        key = caller.key if caller is not None else None
        if caller is not None and key is not None and ex.model and route.provider:
            caller.check_model(ex.model)
        ex.ctx = RouteContext(stream=ex.stream, key=key, timeout=over.timeout)
        if over.tags:  # x-litellm-tags and the mapped baggage tags: the record's tags (spend logs, exports)
            ex.ctx.tags = frozenset(over.tags)
        for hook in rt.before_route:
            pending = hook(ex)
            if pending is not None:
                await pending
        if key is not None and key.buckets:
            await self._admit(key.buckets)
        await self._forward(url, body, length)

    async def _admit(self, buckets: tuple[Bucket, ...]) -> None:
        """The key's (team's, user's) rpm, tpm and parallel limits, as on the LLM routes (LiteLLM's
        pre-call limiter runs on pass-through requests too): a request is counted, tokens once known."""
        costs = tuple(0.0 if b.unit == "tokens" else 1.0 for b in buckets)
        verdict = await self.ex.rt.router.limiter.acquire(buckets, costs)
        if verdict.fail >= 0:
            raise key_limit_error(buckets, verdict)
        self.paid = (buckets, costs)

    async def _body(self, up: Upstream) -> tuple[bytes | AsyncIterator[bytes], int | None]:
        """The body to send: ``bytes`` when it ended within :data:`HOLD` bytes (or must be read whole), else
        an iterator streaming the rest from ``receive()``; and the client's ``Content-Length``, if any."""
        ex, route = self.ex, self.route
        limits = ex.rt.body_limits
        length: int | None = None
        for k, v in self.scope["headers"]:
            if k == b"content-length":
                length = int(v)  # checked by Overrides
        start = asyncio.get_running_loop().time()
        parts, size, more = await self._take(limits, start, 0, HOLD)
        key = ex.who.key if ex.who is not None else None
        whole = (route.provider == "bedrock" or
                 (route.provider != "" and key is not None and key.models is not None and not ex.model))
        if more and whole:
            rest, size, more = await self._take(limits, start, size, limits.max_bytes + 1)
            parts.extend(rest)
        if more:
            return self._stream(b"".join(parts), limits, start, size), length
        body = b"".join(parts)
        if body.lstrip()[:1] == b"{":  # whatever its content type says: the upstream may read it as JSON
            if key is not None and key.models is not None and route.provider:
                check_duplicate_keys(body)  # the model checked is the one the upstream reads
            try:
                head = _HEAD.decode(body)
            except msgspec.DecodeError:
                return body, None
            if isinstance(head.model, str) and head.model and not ex.model:
                ex.model = head.model[:256]
            if head.stream is True:
                ex.stream = True
        return body, None

    async def _take(self, limits: Any, start: float, size: int, hold: int) -> tuple[list[bytes], int, bool]:
        parts: list[bytes] = []
        while True:
            msg = await next_message(self.receive, limits, start, size)
            chunk: bytes = msg.get("body", b"")
            size += len(chunk)
            if size > limits.max_bytes:
                raise too_large(size, limits.max_bytes)
            if chunk:
                parts.append(chunk)
            if not msg.get("more_body", False):
                return parts, size, False
            if size >= hold:
                return parts, size, True

    async def _stream(self, head: bytes, limits: Any, start: float, size: int) -> AsyncIterator[bytes]:
        yield head
        while True:
            msg = await next_message(self.receive, limits, start, size)
            chunk: bytes = msg.get("body", b"")
            size += len(chunk)
            if size > limits.max_bytes:
                raise too_large(size, limits.max_bytes)
            if chunk:
                yield chunk
            if not msg.get("more_body", False):
                return

    async def _own_headers(self, method: str, url: str, body: bytes | AsyncIterator[bytes]) -> list[tuple[str, str]]:
        """The headers the gateway adds: the route's credentials (a fresh Vertex token, a SigV4 signature)."""
        up = self.up
        assert up is not None
        adapter = up.adapter
        if adapter is None:
            return up.headers
        if adapter.token_source is not None:
            await refresh_token(adapter.token_source, identity_client(self.ex.rt.config.server.http_proxy))
        if self.route.provider == "bedrock":
            assert isinstance(body, bytes)
            signed: UpstreamRequest = adapter.signed(method, url, body, time.time())  # type: ignore[attr-defined]
            return signed.headers
        request_headers = getattr(adapter, "request_headers", None)
        return list(request_headers()) if request_headers is not None else []

    async def _forward(self, url: str, body: bytes | AsyncIterator[bytes], length: int | None) -> None:
        ex, route = self.ex, self.route
        rt = ex.rt
        up = self.up
        assert up is not None
        method = self.scope["method"]
        ep = up.endpoint
        forward_all = ep.forward_headers if ep is not None else route.forward_all
        own = await self._own_headers(method, url, body)
        headers = urls.request_headers(self.scope["headers"], forward_all, own, rt.principals.key_header)
        s = rt.config.server
        wait = s.request_timeout
        timeouts = Timeouts(connect=s.connect_timeout, first_byte=s.first_byte_timeout or wait,
                            idle=s.idle_timeout or wait, total=ex.over.timeout if ex.over is not None else None)
        request = UpstreamRequest(method, url, headers, body, length if not isinstance(body, bytes) else None)
        if isinstance(body, bytes):  # the body was read: a client that leaves now cancels the call
            self.watch = DisconnectWatch(self.receive)
        t = time.perf_counter()
        try:
            resp = await self.pipeline.transport.send(request, timeouts)
        except errors.UpstreamTimeout as exc:
            raise GatewayError(f"Upstream timed out: {exc.message}", status=504, type=None) from None
        finally:
            ex.wait += time.perf_counter() - t
        try:
            await self._relay(resp)
        finally:
            await resp.aclose()

    async def _relay(self, resp: Any) -> None:
        ex, route = self.ex, self.route
        status: int = resp.status
        out = urls.response_headers(resp.headers)
        out.append((b"x-litellm-call-id", ex.call_id))
        out.append((b"x-litellm-version", VERSION))
        ctype = resp.header(b"content-type") or b""
        sse = ctype.lower().startswith(b"text/event-stream")
        tap = UsageTap.for_type(ctype) if status < 400 and route.provider else None
        if self.watch is None:  # the streamed body was sent: receive() now only says disconnect
            self.watch = DisconnectWatch(self.receive)
        send = self.send
        await send({"type": "http.response.start", "status": status, "headers": out})
        self.started = True
        t = time.perf_counter()
        pending = b""  # an event stream is sent in whole events: a break never leaves half an event
        try:
            async for chunk in resp:
                if ex.ttft is None:
                    ex.ttft = time.perf_counter() - ex.t0
                if tap is not None:
                    tap.feed(chunk)
                if sse:
                    chunk, pending = _whole_events(pending + chunk if pending else chunk)
                    if not chunk:
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if pending:
                await send({"type": "http.response.body", "body": pending, "more_body": True})
        except GatewayError as exc:  # the upstream broke off mid-answer
            ex.wait += time.perf_counter() - t
            self._settle(tap, status)
            if sse and route.shape in ("anthropic", "openai"):
                frame = (b"event: error\ndata: " + error_body("anthropic", exc) + b"\n\n" if route.shape == "anthropic"
                         else b"data: " + exc.body() + b"\n\n")
                await send({"type": "http.response.body", "body": frame, "more_body": False})
            self.pipeline.complete(ex, 599, Outcome.STREAM_BROKEN, error=exc)
            fail_log.warning("%s broke off: %s (call_id=%s)", self.scope["path"], exc.message,
                             ex.call_id.decode("latin-1"))
            return  # without the terminating chunk (unless an error event ended it): the client sees the break
        except BaseException:
            self._settle(tap, status)
            raise
        ex.wait += time.perf_counter() - t
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._settle(tap, status)
        self.pipeline.complete(ex, status, Outcome.OK if status < 400 else Outcome.ERROR)

    def _settle(self, tap: UsageTap | None, status: int) -> None:
        """The exchange's model, tokens and cost from what the answer said (once, before completing)."""
        ex, route, up = self.ex, self.route, self.up
        assert up is not None
        usage: Usage | None = tap.close() if tap is not None else None
        model = usage.model if usage is not None and usage.model else ex.model
        dep = snapshot(ex.rt.config).deployment(route, up, model)
        ex.lease = Lease(_Served(dep), ex.t0)
        ex.model = ex.model or model
        if up.endpoint is not None:
            if status < 400 and up.endpoint.cost_per_request > 0:
                ex.cost = up.endpoint.cost_per_request
            return
        if usage is None:
            return
        ex.prompt_tokens, ex.completion_tokens = usage.prompt, usage.completion
        ex.cached_tokens, ex.cache_write_tokens = usage.cache_read, usage.cache_write
        table = ex.rt.prices.table(dep)
        if table.known:
            ex.cost = usd(ex.rt.prices.charged(dep, table.tokens(usage.prompt, usage.completion, usage.cache_read,
                                                                 usage.cache_write, usage.reasoning)))


def _fresh(exc: GatewayError) -> GatewayError:
    """A new error like the snapshot's cached ``exc``: raising one instance again and again would chain
    every request's frames onto its traceback."""
    return type(exc)(exc.message, status=exc.status, type=exc.type, param=exc.param, code=exc.code)


def _whole_events(data: bytes) -> tuple[bytes, bytes]:
    """``data`` cut after its last complete event (a blank line), and the rest; a rest past
    :data:`HOLD` bytes (an event that big) is let through as it is."""
    end = 0
    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        i = data.rfind(sep)
        if i >= 0 and i + len(sep) > end:
            end = i + len(sep)
    if not end:
        return (b"", data) if len(data) <= HOLD else (data, b"")
    return data[:end], data[end:]


async def serve(pipeline: Pipeline, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request on a pass-through ``route``."""
    await Relay(pipeline, route, scope, receive, send).run()
