"""``POST /v1/responses/input_tokens`` (and ``/responses/input_tokens``, ``/openai/v1/responses/input_tokens``):
the input tokens of a Responses API request, counted without calling the model.

OpenAI's endpoint, as LiteLLM 1.110 serves it: the body is a Responses request (``model`` and ``input``
required, ``instructions``, ``tools``, ``tool_choice``, ``previous_response_id``, ``reasoning``, ``text`` ...
counted too), the answer ``{"object": "response.input_tokens", "input_tokens": n, "litellm_count_source"}``.
The request is read exactly as ``POST /v1/responses`` reads it (``frontends.responses``: the key's access to
the model group, the stored turns a ``previous_response_id`` names, ``item_reference`` items), then:

- a deployment of the group that serves the Responses API itself (``openai/``, ``azure/``) is asked, at its
  ``/responses/input_tokens``, with the fields that endpoint takes (a turn its upstream stored is named by the
  upstream's own id): ``litellm_count_source: "provider"``. A refusal of the request itself (400, 404, 422)
  is the caller's error, as LiteLLM passes the provider's on; any other failure (the upstream down, its key
  refused, a timeout) falls back to the estimate, as ``/v1/messages/count_tokens`` does;
- otherwise the gateway estimates, over the request translated to chat messages (the tokens its limits and
  budgets reserve by; a request the translation cannot take, a built-in tool, over its JSON):
  ``litellm_count_source: "local_estimate"``.

Nothing is generated, stored or charged: the completion record has no tokens and no cost, and no rate limit
is paid. ``stream``, ``background`` and ``store`` are not read (a count is never streamed or stored).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import body as body_edit
from relaygate.core import errors, tokens
from relaygate.core.errors import GatewayError
from relaygate.frontends import responses_state as rs
from relaygate.frontends.responses import Responses, _load
from relaygate.http.body import read_body
from relaygate.http.respond import send_json
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope, Send
from relaygate.pipeline import Exchange, control
from relaygate.pipeline.frontend import send_native
from relaygate.upstream.base import Transport, UpstreamRequest

if TYPE_CHECKING:
    from relaygate.router import Target

__all__ = ["PATHS", "ResponsesInputTokens"]

log = logging.getLogger("relaygate.responses")

PATHS = ("/v1/responses/input_tokens", "/responses/input_tokens", "/openai/v1/responses/input_tokens")

COUNTED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
                     "previous_response_id", "conversation", "reasoning", "text", "truncation"})
"""The fields OpenAI's ``/responses/input_tokens`` takes: the rest of a Responses request is left out of the
upstream's count request (it refuses unknown parameters)."""

_REFUSED = (400, 404, 422)
"""Upstream statuses that judge the request itself: passed on, never estimated over."""


def _missing(param: str) -> GatewayError:
    return errors.BadRequest(f"Missing required parameter: '{param}'.", param=param,
                             code="missing_required_parameter")


class ResponsesInputTokens(Responses):
    """``POST /v1/responses/input_tokens`` (see the module docstring)."""

    route = "responses_input_tokens"
    direct = True

    def bind(self, gw: rs.Gateway) -> None:
        """Read ``gw``'s stored turns (a ``previous_response_id``); the Responses frontend keeps running them."""
        self.state = rs.state_of(gw)

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        req = _load(await read_body(receive, ex.rt.body_limits))
        model, inp = req.get("model"), req.get("input")
        if not isinstance(model, str) or not model:
            raise _missing("model")
        if inp is None:
            raise _missing("input")
        if isinstance(inp, (str, list)) and not inp:
            raise errors.BadRequest('One of "input" or "previous_response_id" or \'prompt\' or \'conversation\' '
                                    "must be provided.", code="missing_required_parameter")
        for name in ("stream", "background"):
            req.pop(name, None)
        req["store"] = False
        await self.parse_request(ex, scope, req)

    async def answer(self, transport: Transport, ex: Exchange, send: Send) -> None:
        assert ex.group is not None
        if not control.mocked(ex):
            for target in ex.group.targets:
                if not target.provider.native_responses:
                    continue
                try:
                    counted = await _ask(transport, ex, target)
                except GatewayError as exc:
                    if exc.status in _REFUSED:
                        raise
                    log.info("responses input_tokens upstream failed (%s); estimating", exc.message)
                    break
                if counted is not None:
                    await send_json(send, 200, orjson.dumps({**counted, "litellm_count_source": "provider"}))
                    return
                break
        await send_json(send, 200, orjson.dumps({"object": "response.input_tokens", "input_tokens": _estimate(ex),
                                                 "litellm_count_source": "local_estimate"}))


async def _ask(transport: Transport, ex: Exchange, target: Target) -> dict[str, Any] | None:
    """The deployment's own count (its JSON object), None when its answer is not one."""
    p = target.provider
    state = ex.state
    held = state.held
    native = held[1] if held is not None and held[0] == target.dep.id else state.native_body
    req = orjson.loads(native)
    body = orjson.dumps({k: v for k, v in req.items() if k in COUNTED})
    if ex.model != target.upstream_model:
        body = body_edit.set_fields(body, {"model": target.upstream_model})
    headers = [*p.media_headers(), ("Content-Type", "application/json")]
    resp = await send_native(transport, ex, target,
                             UpstreamRequest("POST", p.responses_url("/input_tokens"), headers, body), False)
    try:
        out = orjson.loads(await resp.read())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(out, dict) or not isinstance(out.get("input_tokens"), int):
        return None
    out.setdefault("object", "response.input_tokens")
    return out


def _estimate(ex: Exchange) -> int:
    """The gateway's estimate: the chat translation's messages and tools, else the request's JSON."""
    state = ex.state
    if state.error is None:
        chat = orjson.loads(ex.body)
        n = tokens.estimate_messages_tokens(orjson.dumps(chat.get("messages") or []))
        if chat.get("tools"):
            n += tokens.estimate_tokens(orjson.dumps(chat["tools"]))
        return max(1, n)
    req = state.req or {}
    return max(1, tokens.estimate_tokens(orjson.dumps({k: v for k, v in req.items() if k in COUNTED})))
