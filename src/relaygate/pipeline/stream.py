"""The relay stage of a stream: run its attempts through the router, then send frames as they arrive.

Invariants (every frontend's streams alike):
- A stream is never buffered: each upstream chunk is re-framed by the attempt's translator and sent as it
  arrives.
- Before the first frame, SSE comment keepalives go out every ``stream_keepalive_interval`` seconds when
  the frontend allows them (``Frontend.keepalive``; not for binary audio): a timer that costs nothing
  unless it fires. A failure after the head went out with keepalives becomes the stream's last frame
  (``Frontend.error_frame``) instead of an error response.
- Once a frame went to the client, a failure is sent in-band and never retried; it counts towards the
  deployment's cooldown (``Lease.finish(ok=False, error)``). A client that went away closes the upstream
  response, which closes (not pools) its connection, and does not count against the deployment.
- The exchange is completed exactly once with the stream's usage (from the last payload's ``usage``, else
  the translator's content-token estimate) and its cost from that usage, whether the stream ended, broke
  or was abandoned (an estimate marks the exchange ``estimated``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING

from relaygate import service_metrics
from relaygate.config.model import Deployment
from relaygate.core import tokens
from relaygate.core.body import model_literal, model_pair
from relaygate.core.errors import GatewayError
from relaygate.cost import usd
from relaygate.http.respond import VERSION, Keepalive, send_quiet
from relaygate.http.types import Send
from relaygate.logs import fail_log
from relaygate.observe.capture import traced
from relaygate.pipeline.exchange import Exchange, add_upstream_headers, stream_shape_error
from relaygate.pipeline.frontend import SSE_HEADERS, Frontend
from relaygate.providers.base import SHAPE_ERRORS
from relaygate.router import ModelGroup
from relaygate.sinks import Outcome
from relaygate.sinks.record import CALL_TYPES

if TYPE_CHECKING:
    from relaygate.pipeline.core import Pipeline

log = logging.getLogger("relaygate")

_KEEPALIVE_HEAD = [(b"x-litellm-version", VERSION), *SSE_HEADERS]  # shared, never mutated


async def relay_stream(pipe: Pipeline, fe: Frontend, send: Send, ex: Exchange, group: ModelGroup) -> None:
    ctx = ex.ctx
    assert ctx is not None
    attempt = fe.streaming(pipe.transport, ex)
    if ex.obs is not None and ex.obs.exports:
        attempt = traced(ex.obs, attempt)
    interval = ex.rt.keepalive
    ka = Keepalive(send, interval, _KEEPALIVE_HEAD) if interval > 0 and fe.keepalive else None
    svc = service_metrics.active  # LiteLLM's service families (prometheus_system): the router, to the first frame
    try:
        if svc is None:
            start, lease = await ex.rt.router.run(group, ctx, attempt)
        else:
            start, lease = await svc.time("router", CALL_TYPES.get(ex.route, ex.route),
                                          ex.rt.router.run(group, ctx, attempt))
    except GatewayError as exc:
        if ka is None or not await ka.stop():
            raise
        # the head already went out with keepalives: the error becomes the stream's last frame
        fail_log.warning("stream failed before its first token: %d %s", exc.status, exc.message)
        pipe.complete(ex, exc.status, Outcome.ERROR, error=exc)
        await send_quiet(send, fe.error_frame(exc), False)
        return
    except BaseException:
        if ka is not None:
            await ka.stop()
        raise
    headers_sent = await ka.stop() if ka is not None else False
    total = time.perf_counter() - ex.t0
    translator = start.translator
    ok = gone = False
    broke: GatewayError | None = None
    try:
        if not headers_sent:
            headers = pipe.headers(ex, lease, total)
            headers.extend(fe.stream_head(start))
            up = start.headers
            if up:
                add_upstream_headers(headers, ex, up, bool(lease.headers))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        first = start.first
        old = model_literal(first) if fe.restamp else None
        new = model_pair(ex.model) if old is not None else b""
        if old is not None and old != new:  # the name the client asked for, in every frame
            first = first.replace(old, new)
        else:
            old = None
        priced = ex.rt.config.server.include_cost_in_streaming_usage  # usage.cost in the usage chunk
        if priced:
            first = _with_cost(ex, fe, lease.target.dep, first, translator.last_data)
        cache = ex.rt.cache if ex.cache is not None and ex.cache.assembler is not None else None
        if cache is not None:  # a cache miss: what the client gets is assembled into the answer to store
            cache.store_stream(ex, first)
        obs = ex.obs if ex.obs is not None and ex.obs.assembler is not None else None
        if obs is not None:  # and for exporters (observe.capture), when they may see it
            obs.stream_frames(first)
        await send({"type": "http.response.body", "body": first, "more_body": True})
        try:
            async for chunk in start.chunks:
                out = translator.feed(chunk)
                if out:
                    if old is not None:
                        out = out.replace(old, new)
                    if priced:
                        out = _with_cost(ex, fe, lease.target.dep, out, translator.last_data)
                    if cache is not None:
                        cache.store_stream(ex, out)
                    if obs is not None:
                        obs.stream_frames(out)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = translator.close()
            if old is not None:
                tail = tail.replace(old, new)
            if priced:
                tail = _with_cost(ex, fe, lease.target.dep, tail, translator.last_data)
            if cache is not None:
                cache.store_stream(ex, tail)
                cache.end_stream(ex, True)
            if obs is not None:
                obs.stream_frames(tail)
            ok = True
        except (GatewayError, *SHAPE_ERRORS) as exc:  # the upstream failed mid-stream: tell the client in-band
            if not isinstance(exc, GatewayError):
                exc = stream_shape_error(exc)
            broke = exc
            fail_log.warning("stream from %s broke: %s", lease.target.dep.id, exc.message)
            tail = fe.error_frame(exc)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    except (OSError, RuntimeError, asyncio.CancelledError) as exc:
        # the client went away (a send failed, or the disconnect watch cancelled us): close upstream
        gone = True
        await start.close()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return
    finally:
        last = translator.last_data
        usage = tokens.extract_usage(last) if last else None
        if usage:
            pt, ct = usage[0], usage[1]
        else:
            pt, ct = 0, int(getattr(translator, "content_tokens", 0))
        lease.finish(ok, pt + ct, broke, prompt=pt if usage else None)
        ex.lease, ex.prompt_tokens, ex.completion_tokens, ex.ttft = lease, pt, ct, total
        pico = fe.price_stream(ex, lease.target.dep, last, usage is not None)
        if ex.rt.prices.adjusting:  # a discount or margin (cost.adjust)
            pico, ex.cost_parts = ex.rt.prices.charge(lease.target.dep, pico)
        ex.cost = usd(pico)
        # the client left: 499, as before the first frame (pipeline.core); the upstream broke it: 599
        pipe.complete(ex, 200 if ok else 499 if gone else 599,
                      Outcome.OK if ok else Outcome.CLIENT_GONE if gone else Outcome.STREAM_BROKEN, error=broke)


_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{(\s*\})?')


def _with_cost(ex: Exchange, fe: Frontend, dep: Deployment, out: bytes, last: bytes) -> bytes:
    """``out`` with ``"cost": <USD>`` first in its usage object, priced from that usage (LiteLLM's
    ``include_cost_in_streaming_usage``); ``out`` itself when it holds no usage object."""
    m = _USAGE_OBJECT.search(out)
    if m is None:
        return out
    usage = tokens.extract_usage(last) if last else None
    if not usage:
        return out
    ex.prompt_tokens, ex.completion_tokens = usage[0], usage[1]
    cost = b'"cost":' + repr(usd(ex.rt.prices.charged(dep, fe.price(ex, dep, last)))).encode()
    at = m.start(1) if m.group(1) is not None else m.end()
    return out[:at] + cost + (b"" if m.group(1) is not None else b",") + out[at:]
