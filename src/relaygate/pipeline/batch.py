"""LiteLLM's batch completion: ``"model": "a,b"`` asks every named model group once, concurrently.

The answer is a JSON array with one element per model, in the order asked: each group's chat completion
(with its own ``model``), or, for a group that failed after its retries and fallbacks, the OpenAI error
object it would have answered alone (``{"error": {...}}``). With ``fastest_response: true`` (a LiteLLM
control field) the first successful answer is returned alone, as an object, and the others are cancelled
(their upstream requests too). Streams cannot be batched (a 400, as the answer is a list).

Every part is an exchange of its own through the same stages as a single request (resolve, authorize,
``before_route`` hooks, admit, attempt, complete: one completion record per group), sharing the
request's principal, overrides and call id; the key must be allowed every model named (the allow-list
check covers comma lists). At most :data:`MAX_MODELS` groups per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from relaygate.core import errors
from relaygate.core.body import restamp_model
from relaygate.core.errors import GatewayError
from relaygate.cost import usd
from relaygate.http.respond import VERSION, send_body
from relaygate.http.types import Send
from relaygate.pipeline import control
from relaygate.pipeline.exchange import Exchange
from relaygate.pipeline.frontend import Frontend
from relaygate.route_context import RouteContext
from relaygate.sinks import Outcome

if TYPE_CHECKING:
    from relaygate.pipeline.core import Pipeline

MAX_MODELS = 16


def _part(ex: Exchange, model: str) -> Exchange:
    part = Exchange(ex.route, ex.t0, ex.rt)
    part.call_id, part.endpoint, part.body, part.view = ex.call_id, ex.endpoint, ex.body, ex.view
    part.model, part.over, part.control, part.who, part.fallbacks = model, ex.over, ex.control, ex.who, ex.fallbacks
    return part


async def _one(pipe: Pipeline, fe: Frontend, part: Exchange) -> bytes:
    rt, over, who = part.rt, part.over, part.who
    assert over is not None and who is not None
    try:
        group = part.group = rt.router.resolve(part.model, fe.router_route)
        for hook in rt.before_route:
            pending = hook(part)
            if pending is not None:
                await pending
        ctx = part.ctx = RouteContext(num_retries=over.num_retries, fallbacks=part.fallbacks, timeout=over.timeout,
                                      key=who.key, messages=getattr(part.view, "messages", None))
        if part.control is not None or (who.key is not None and who.key.disable_fallbacks is not None):
            control.route_controls(ctx, part.control, who.key)
        (data, _up), lease = await rt.router.run(group, ctx, fe.unary(pipe.transport, part))
    except GatewayError as exc:
        pipe.complete(part, exc.status, Outcome.ERROR, error=exc)
        return exc.body()
    usage = fe.usage(part, data)
    part.prompt_tokens, part.completion_tokens = (usage[0], usage[1]) if usage else (0, 0)
    lease.finish(True, part.prompt_tokens + part.completion_tokens, prompt=part.prompt_tokens if usage else None)
    part.lease = lease
    part.cost = usd(fe.price(part, lease.target.dep, data))
    pipe.complete(part, 200, Outcome.OK)
    return restamp_model(data, part.model)


async def run(pipe: Pipeline, fe: Frontend, send: Send, ex: Exchange) -> None:
    """Answer a batch request (a batch refused as a whole is the request's own error record)."""
    models = [m.strip() for m in ex.model.split(",") if m.strip()]
    if not models or len(models) > MAX_MODELS:
        raise errors.BadRequest(f"model: expected 1 to {MAX_MODELS} comma-separated model names", param="model")
    if ex.stream:
        raise errors.BadRequest("stream: several comma-separated models cannot be streamed", param="stream")
    who = ex.who
    assert who is not None
    who.check_models(models)
    parts = [_part(ex, m) for m in models]
    fastest = bool(ex.control and ex.control.get("fastest_response"))
    tasks = [asyncio.ensure_future(_one(pipe, fe, p)) for p in parts]
    try:
        if fastest:
            body = await _first_success(tasks)
        else:
            body = b"[" + b",".join(await asyncio.gather(*tasks)) + b"]"
    finally:
        for t in tasks:
            t.cancel()
        for p in parts:  # a part cancelled (fastest_response) has no record: what it held goes now
            if p.hold is not None and not p.done:
                p.hold.release()
    total = time.perf_counter() - ex.t0
    headers = [(b"x-litellm-call-id", ex.call_id), (b"x-litellm-version", VERSION),
               (b"x-litellm-response-duration-ms", b"%.3f" % (total * 1000.0)),
               (b"content-type", b"application/json")]
    ex.done = True  # no record of its own: each part's record says what it did
    await send_body(send, 200, body, headers)


async def _first_success(tasks: Sequence[asyncio.Future[bytes]]) -> bytes:
    """The first answer that is not an error object; when all failed, the last error."""
    last = b""
    for next_done in asyncio.as_completed(tasks):
        body = await next_done
        if not body.startswith(b'{"error"'):
            return body
        last = body
    return last
