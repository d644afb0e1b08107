"""``POST /v1/responses`` (and ``/responses``): the OpenAI Responses API served by the gateway.

The official ``openai`` SDK's ``client.responses.create`` / ``client.responses.stream`` work against the
gateway unchanged. The request's ``model`` names a model group as on the chat routes, so authentication,
routing, retries, fallbacks, limits, usage and cost are the same:

* a deployment whose adapter serves the Responses API itself (``Provider.native_responses``: ``openai/`` and
  ``azure/``) receives the client's bytes natively at ``Provider.responses_url`` (model swapped, the
  gateway's own fields removed) and its answer, body or event stream, goes back untouched but for the ids
  of a stored response (below); built-in tools (``web_search``, ``file_search`` ...) work only there;
* every other deployment gets the request translated to a chat completions request
  (:func:`relaygate.providers.responses_api.to_chat`) through the gateway's own attempt functions (so each
  provider's adapter applies), and the chat answer is translated back: a body with ``chat_to_response``, a
  stream with ``ResponsesStream``, which emits the Responses event sequence with ``sequence_number``\\ s.

Conversation state (``frontends.responses_state``): with a database, ``store`` (true by default, as
OpenAI) keeps each completed response with the items its turn added, and ``previous_response_id`` puts
the stored turns before this one's ``input``. A native deployment that stored the turn itself (it is sent
``store`` as the client asked and its id is kept as ``upstream_id``) is sent its own id and holds the
state; any other deployment gets the turns expanded into ``input``. The ids clients get are always the
gateway's own (a native upstream's are swapped in the body and the events), so ``GET /v1/responses/{id}``,
``previous_response_id`` and routing to another deployment all work on one id. ``background`` runs the
turn in a task of this worker (translated deployments) or passes through (native ones). An ``item_reference``
in ``input`` (the Vercel AI SDK sends one for the text before a tool call) becomes the stored item it names
(:func:`resolve`): a translated deployment gets the item, a native one the reference when its upstream
stored the item (or the gateway knows none: it may be the upstream's own), and an id that names nothing the
caller may see is OpenAI's 404 on a translated deployment. Without a database, ``store`` is answered false,
``previous_response_id`` and ``background`` are a 400, and so is an ``item_reference`` on a translated
deployment.

A request the translation cannot serve (a built-in tool, an unknown item type) fails with a 400 on a
translated deployment only. Errors are OpenAI's shape ``{"error": {...}}``; an upstream failure after the
stream started ends it with a ``response.failed`` event (translated) or an ``error`` event (native),
numbered after the events already sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.cache.calls import FinishWatch, finish_watch
from relaygate.core import body as body_edit
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.core.sse import SSEDecoder
from relaygate.core.views import CONTROL_KEYS, TYPED_CONTROL, check_duplicate_keys, decode_view
from relaygate.frontends import responses_state as rs
from relaygate.http.body import read_body
from relaygate.http.routes import Params
from relaygate.http.types import Receive, Scope
from relaygate.pipeline import Exchange, Frontend, StreamStart, control, require_model
from relaygate.pipeline.exchange import first_frame, stream_shape_error
from relaygate.pipeline.frontend import Answer, Attempt, send_native, stream, unary
from relaygate.providers import responses_api as ra
from relaygate.providers.base import (
    SHAPE_ERRORS,
    StreamTranslator,
    WrappedTranslator,
    empty_stream_error,
    json_object,
)
from relaygate.store.responses import StoredResponse
from relaygate.upstream.base import Transport, UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from relaygate.auth import Principal
    from relaygate.router import Target

_GATEWAY_FIELDS = frozenset(CONTROL_KEYS) | frozenset(TYPED_CONTROL)
_FRAME = "relaygate_responses_frame"
"""The attribute a mid-stream error carries its rendered event on (``Responses.error_frame`` sends it)."""
_FINAL = (b"event: response.completed\n", b"event: response.incomplete\n")
_ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}

OnFinal = Callable[[dict[str, Any]], None]
"""Called with the final Response object of a stream that completed (to store it)."""


def error_event(exc: GatewayError, seq: int) -> bytes:
    return b"event: error\ndata: " + orjson.dumps({
        "type": "error", "code": ra.error_code(exc.status), "message": exc.message, "param": exc.param,
        "sequence_number": seq}) + b"\n\n"


def _load(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"Invalid JSON in request body: {exc}") from None
    if not isinstance(obj, dict):
        raise errors.BadRequest("Invalid request body: expected a JSON object")
    check_duplicate_keys(body)
    return obj


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        if "ecursion" not in str(exc):
            raise
        raise errors.BadRequest("Invalid request body: nested too deeply") from None


def turn_items(inp: Any) -> list[Any]:
    """A turn's ``input`` as OpenAI lists it (``input_items``): a string is one user message, messages get
    ``type`` and content parts, and every item an ``id``. Items it cannot read are kept as they are."""
    if isinstance(inp, str):
        inp = [{"role": "user", "content": inp}]
    if not isinstance(inp, list):
        return []
    out: list[Any] = []
    for it in inp:
        if not isinstance(it, dict):
            out.append(it)
            continue
        item = dict(it)
        kind = item.setdefault("type", "message" if "role" in item else None)
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        if "id" not in item:
            item["id"] = ra.new_id(_ITEM_PREFIX.get(str(kind), "item_"))
        out.append(item)
    return out


def history(chain: list[StoredResponse]) -> list[Any]:
    """The items of the stored turns ``chain`` (oldest first): each turn's input, then its output."""
    out: list[Any] = []
    for row in chain:
        out.extend(row.input)
        output = row.response.get("output")
        if isinstance(output, list):
            out.extend(output)
    return out


def _for_native(items: list[Any]) -> list[Any]:
    """Stored items sent to a native upstream that did not store them: without the ids (an upstream takes an
    id as a reference to an item it holds) and without reasoning items (only their upstream can read them)."""
    out = []
    for it in items:
        if isinstance(it, dict):
            if it.get("type") == "reasoning":
                continue
            if it.get("type") != "item_reference":  # a reference is its id
                it = {k: v for k, v in it.items() if k not in ("id", "status")}
        out.append(it)
    return out


def _as_items(inp: Any) -> list[Any]:
    """A turn's ``input`` as a list of items (a string is one user message)."""
    return [{"role": "user", "content": inp}] if isinstance(inp, str) else list(inp or ())


def _refers(items: Any) -> bool:
    return isinstance(items, list) and any(isinstance(it, dict) and it.get("type") == "item_reference"
                                           for it in items)


Resolved = list[tuple[Any, Any | None]]
"""Per input item: what a translated deployment gets, and what a native one gets (None: nothing)."""


async def resolve(st: rs.ResponseState, items: list[Any], chain: list[StoredResponse],
                  who: Principal | None) -> tuple[Resolved, str | None]:
    """``items`` with each ``item_reference`` replaced by the stored item it names, and the first id that names
    no item ``who`` may see (None when every one resolved).

    An id is looked for in the conversation ``chain`` continues, then in the response it names when the
    gateway made it (``responses_state.response_of``: its output, then its input), read with the caller's
    ownership check. A native deployment keeps the reference when the item is an output item its upstream
    stored under that id (the row has an ``upstream_id``) or when the gateway knows no such item (it may be
    the upstream's own); it gets the item itself, without its id, when only the gateway holds it (a reasoning
    item of a translated turn is left out: only its own kind of model can read it)."""
    known: dict[str, tuple[dict[str, Any], StoredResponse]] | None = None
    rows: dict[str, StoredResponse | None] = {}
    out: Resolved = []
    missing: str | None = None
    for it in items:
        if not isinstance(it, dict) or it.get("type") != "item_reference":
            out.append((it, it))
            continue
        iid = it.get("id")
        if not isinstance(iid, str):
            raise errors.BadRequest("input: an `item_reference` must have the `id` of a stored item (a string)",
                                    param="input")
        if known is None:
            known = {}
            for row in reversed(chain):  # the newest turn's copy first
                for item in history([row]):
                    if isinstance(item, dict) and isinstance(item.get("id"), str) \
                            and item.get("type") != "item_reference":
                        known.setdefault(item["id"], (item, row))
        found = known.get(iid)
        if found is None and (rid := rs.response_of(iid)) is not None:
            if rid not in rows:
                rows[rid] = await st.find(rid, who)
            held = rows[rid]
            item = rs.item_of(held, iid) if held is not None else None
            found = (item, held) if item is not None and held is not None else None
        if found is None:
            missing = missing or iid
            out.append((it, it))
            continue
        item, row = found
        output = row.response.get("output") if row.upstream_id else None
        if isinstance(output, list) and any(o is item for o in output):  # the upstream's own item
            out.append((item, it))
        else:
            out.append((item, _for_native([item])[0] if item.get("type") != "reasoning" else None))
    return out, missing


class _State:
    """What only this frontend keeps for a request: the bodies for a native upstream (its own turn with the
    upstream's id when it holds the conversation, else the turns expanded), the echo of the request the
    Response objects repeat, a translation error kept for translated deployments, the chat-shaped usage of
    the unary answer that was sent, and what a stored turn needs (items, ids, the state)."""

    __slots__ = ("native_body", "held", "echo", "error", "usage", "created", "state", "store", "prev", "items",
                 "rid", "background", "scope", "inner", "req")

    def __init__(self, native_body: bytes, ech: dict[str, Any], error: GatewayError | None) -> None:
        self.native_body = native_body
        self.held: tuple[str, bytes, str] | None = None
        """(deployment id, body, its id): the deployment that stored the previous turn itself, the body
        naming its own id for that turn there, and that id."""
        self.echo = ech
        self.error = error
        self.usage = b""
        self.created = int(time.time())
        self.state: rs.ResponseState | None = None
        self.store = False
        self.prev: str | None = None
        self.items: list[Any] = []
        self.rid: str | None = None
        """The id this response must have (a background run's, given when it was queued)."""
        self.background = False
        self.scope: Scope | None = None
        self.inner = b""
        """A background request's body for its run (without ``background``)."""
        self.req: dict[str, Any] | None = None
        """The request with its conversation resolved (the response cache's key material, ``cache.calls``)."""

    def row(self, ex: Exchange, rid: str, dep_id: str | None, upstream_id: str | None,
            obj: dict[str, Any]) -> StoredResponse:
        who = ex.who
        now = datetime.now(UTC)
        st = self.state
        return StoredResponse(
            response_id=rid, api_key=who.key_hash if who is not None else None,
            team_id=who.team_id if who is not None else None, user_id=who.user_id if who is not None else None,
            model=ex.model, deployment_id=dep_id, upstream_id=upstream_id, previous_response_id=self.prev,
            status=str(obj.get("status") or "completed"), background=self.background, input=self.items,
            response=obj, created_at=now, updated_at=now, expires_at=st.expires(now) if st is not None else None)

    def keep(self, ex: Exchange, target: Target, obj: dict[str, Any], upstream_id: str | None = None) -> None:
        """Store the final Response ``obj`` (its id already the gateway's) once the answer is complete."""
        st = self.state
        if st is None or obj.get("status") not in ("completed", "incomplete"):
            return
        if self.background:
            obj["background"] = True
        obj["model"] = ex.model
        st.put(self.row(ex, str(obj.get("id")), target.dep.id, upstream_id, obj))

    def keep_hit(self, ex: Exchange, obj: dict[str, Any]) -> None:
        """Store a response cache hit's Response ``obj`` (its fresh id) as this request's turn, when it stores."""
        st = self.state
        if st is None or not self.store:
            return
        obj["model"] = ex.model
        st.put(self.row(ex, str(obj.get("id")), None, None, obj))


def _attach(exc: GatewayError, frame: bytes) -> GatewayError:
    setattr(exc, _FRAME, frame)
    return exc


def _final_response(out: bytes) -> dict[str, Any] | None:
    """The Response object of the final event in ``out`` (``response.completed`` / ``.incomplete``)."""
    at = max(out.rfind(_FINAL[0]), out.rfind(_FINAL[1]))
    if at < 0:
        return None
    start = out.find(b"data: ", at) + 6
    end = out.find(b"\n\n", start)
    try:
        resp = orjson.loads(out[start:end if end >= 0 else len(out)]).get("response")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return resp if isinstance(resp, dict) else None


class _ToResponses(WrappedTranslator):
    """A chat-chunk translator followed by the chat -> Responses event translator."""

    def __init__(self, inner: StreamTranslator, out: ra.ResponsesStream, on_final: OnFinal | None,
                 watch: FinishWatch | None = None) -> None:
        super().__init__(inner)
        self.out = out
        self.on_final = on_final
        self.watch = watch
        """The response cache's watch of a miss's chat chunks (``cache.calls``); None: not stored."""

    @property
    def done(self) -> bool:  # type: ignore[override]
        return self.out.done

    def _ended(self, out: bytes) -> bytes:
        if self.on_final is not None and self.out.done:
            final = _final_response(out)
            on_final, self.on_final = self.on_final, None
            if final is not None:
                on_final(final)
        return out

    def first(self, chunk: bytes) -> bytes:
        """The first frame (the inner translator's, already translated by it): a short answer may be whole."""
        if self.watch is not None:
            self.watch.see(chunk)
        return self._ended(self.out.feed(chunk))

    def feed(self, data: bytes) -> bytes:
        try:
            chunk = self.inner.feed(data)
        except SHAPE_ERRORS as exc:
            raise self.fail(stream_shape_error(exc)) from None
        except GatewayError as exc:
            raise self.fail(exc) from None
        if not chunk:
            return b""
        if self.watch is not None:
            self.watch.see(chunk)
        return self._ended(self.out.feed(chunk))

    def close(self) -> bytes:
        try:
            tail = self.inner.close()
        except GatewayError as exc:
            raise self.fail(exc) from None
        if self.watch is not None:
            self.watch.see(tail)
            self.watch.end()
        return self._ended(self.out.feed(tail) + self.out.close())

    def fail(self, exc: GatewayError) -> GatewayError:
        self.on_final = None
        return _attach(exc, self.out.failed(exc))


class _Native(StreamTranslator):
    """A native upstream's events go to the client untouched, whole events only (a stream that breaks
    off mid-event must not leave half an event before the error event); usage is read from the final
    event. A stored response's upstream ids are swapped for the gateway's (``ids``: upstream's -> ours,
    the response's own learnt from its first event) and its final object handed to ``on_final``."""

    def __init__(self, rid: str | None = None, prev: tuple[str, str] | None = None,
                 on_final: Callable[[dict[str, Any], str | None], None] | None = None) -> None:
        self._sse = SSEDecoder()
        self._held = b""
        self.events = 0
        self.content_tokens = 0
        self._rid = rid
        self._swap: list[tuple[bytes, bytes]] = [] if prev is None else [
            (orjson.dumps(prev[0]), orjson.dumps(prev[1]))]
        self._upstream_id: str | None = None
        self._on_final = on_final

    def feed(self, data: bytes) -> bytes:
        for event, payload in self._sse.feed(data):
            self._watch(event, payload)
        buf = self._held + data if self._held else data
        i, j = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
        end = max(i + 2 if i >= 0 else 0, j + 4 if j >= 0 else 0)
        self._held = buf[end:]
        return self._ids(buf[:end])

    def close(self) -> bytes:
        for event, payload in self._sse.close():
            self._watch(event, payload)
        if not self.events:
            raise empty_stream_error("the upstream")
        held, self._held = self._held, b""
        return self._ids(held)

    def _ids(self, out: bytes) -> bytes:
        for old, new in self._swap:
            out = out.replace(old, new)
        return out

    def fail(self, exc: GatewayError) -> GatewayError:
        self._on_final = None
        return _attach(exc, error_event(exc, self.events))

    def _watch(self, event: bytes | None, payload: bytes) -> None:
        self.events += 1
        first = self._rid is not None and self._upstream_id is None
        final = event in (b"response.completed", b"response.incomplete", b"response.failed")
        if not (first or final):
            return
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        resp = obj.get("response") if isinstance(obj, dict) else None
        if not isinstance(resp, dict):
            return
        if first and isinstance(resp.get("id"), str) and self._rid is not None:
            self._upstream_id = resp["id"]
            self._swap.append((orjson.dumps(resp["id"]), orjson.dumps(self._rid)))
        if final:
            self.done = True
            self.last_data = ra.chat_usage(resp.get("usage"), resp.get("service_tier")) or self.last_data
            if self._on_final is not None and self._rid is not None:
                on_final, self._on_final = self._on_final, None
                on_final({**resp, "id": self._rid}, self._upstream_id)


async def _guarded(chunks: AsyncIterator[bytes], tr: _ToResponses | _Native) -> AsyncIterator[bytes]:
    """The upstream's chunks; a failure mid-stream leaves with its Responses-shaped event attached."""
    try:
        async for chunk in chunks:
            yield chunk
    except GatewayError as exc:
        raise tr.fail(exc) from None


class Responses(Frontend):
    """``POST /v1/responses`` and ``POST /responses``."""

    route = "responses"
    router_route = "/v1/responses"
    restamp = True

    def __init__(self) -> None:
        self.state: rs.ResponseState | None = None
        """The gateway's stored responses (:meth:`bind`); None: the frontend serves no state."""

    def bind(self, gw: rs.Gateway) -> None:
        """Serve ``gw``'s conversation state (``gateway.core`` calls it when it builds its routes)."""
        self.state = rs.state_of(gw)
        self.state.frontend = self

    async def parse(self, ex: Exchange, scope: Scope, receive: Receive, params: Params) -> None:
        await self.parse_request(ex, scope, _load(await read_body(receive, ex.rt.body_limits)))

    async def parse_request(self, ex: Exchange, scope: Scope, req: dict[str, Any]) -> None:
        """:meth:`parse` of the decoded body ``req``."""
        ex.model = model = require_model(req.get("model"), "model: Field required")
        prev = req.pop("previous_response_id", None)
        background = req.pop("background", None)
        ra.validate(req)
        if prev is not None and not isinstance(prev, str):
            raise errors.BadRequest("previous_response_id: expected a string", param="previous_response_id")
        if background is not None and not isinstance(background, bool):
            raise errors.BadRequest("background: expected a boolean", param="background")
        ex.stream = bool(req.get("stream"))
        st = self.state if self.state is not None and self.state.enabled else None
        if st is None and (prev is not None or background):
            raise rs.no_store("previous_response_id" if prev is not None else "background")
        if background and (req.get("store") is False or ex.stream):
            raise errors.BadRequest("background: a background response is stored and polled "
                                    "(GET /v1/responses/{id}): it cannot have `store: false` or `stream: true` "
                                    "on this gateway", param="background")
        inner = _dumps({**req, "previous_response_id": prev}) if background else b""
        found = {k: req.pop(k) for k in _GATEWAY_FIELDS.intersection(req)}
        md = found.get("metadata")
        if found:
            control.apply(ex, found)
        keep = st is not None and req.get("store") is not False
        chain = await st.chain(prev, ex.who, ex.rt.max_body) if st is not None and prev is not None else []
        past = history(chain)
        missing: str | None = None
        inp = native_inp = req.get("input")
        past_native = past
        if st is not None and (_refers(inp) or _refers(past)):  # item_reference: the stored items it names
            pairs, missing = await resolve(st, past + _as_items(inp), chain, ex.who)
            n = len(past)
            past, past_native = [a for a, _ in pairs[:n]], [b for _, b in pairs[:n] if b is not None]
            native_inp = [b for _, b in pairs[n:] if b is not None]
            req = {**req, "input": [a for a, _ in pairs[n:]]}
        native = dict(req)
        if native_inp is not inp:
            native["input"] = native_inp
        if isinstance(md, dict) and all(isinstance(v, str) for v in md.values()):
            native["metadata"] = md  # a Responses metadata (string values) is the upstream's too
        native["store"] = keep
        if background:
            native["background"] = True
        held: tuple[str, bytes, str] | None = None
        last = chain[-1] if chain else None
        if last is not None and last.upstream_id and last.deployment_id:
            held = (last.deployment_id, _dumps({**native, "previous_response_id": last.upstream_id}),
                    last.upstream_id)
        if past:
            native["input"] = _for_native(past_native) + _as_items(native_inp)
            req = {**req, "input": past + _as_items(req.get("input"))}
        error: GatewayError | None = rs.item_not_found(missing) if missing is not None else None
        try:  # what only a native deployment can serve is an error for the others
            chat = ra.to_chat(req, model) if error is None else None
        except ra.Untranslatable as exc:
            error, chat = exc, None
        if chat is None:
            chat = {"model": model, "messages": [{"role": "user", "content": ""}], "stream": ex.stream}
        ech = ra.echo(req, md)
        ech["store"], ech["previous_response_id"] = keep, prev
        state = ex.state = _State(_dumps(native), ech, error)
        state.held, state.req = held, req
        if st is not None and keep:
            state.state, state.store, state.prev = st, True, prev
            state.items = turn_items(req.get("input") if not past else req["input"][len(past):])
            rid = scope.get(rs.BACKGROUND_KEY)
            if isinstance(rid, str):  # this request is a background response's run
                state.rid, state.background = rid, True
            elif background:
                state.background, state.scope, state.inner = True, scope, inner
        ctl = ex.control
        if ctl is None or "drop_params" not in ctl:
            ex.control = {**(ctl or {}), "drop_params": True}
        ex.endpoint = "chat"
        ex.body = _dumps(chat)
        ex.view = decode_view("chat", ex.body)

    def _native(self, ex: Exchange, target: Target) -> bool:
        return target.provider.native_responses and not control.mocked(ex)

    def unary(self, transport: Transport, ex: Exchange) -> Attempt[Answer]:
        inner = unary(transport, ex)
        state: _State = ex.state
        model = ex.model

        async def attempt(target: Target) -> Answer:
            if self._native(ex, target):
                t = time.perf_counter()
                try:
                    resp = await _native_send(transport, ex, target, False)
                    data = await resp.read()
                finally:
                    ex.wait += time.perf_counter() - t
                data = json_object(data, target.provider.name)
                try:
                    obj = orjson.loads(data)
                    state.usage = ra.chat_usage(obj.get("usage"), obj.get("service_tier"))
                except (orjson.JSONDecodeError, AttributeError):
                    raise errors.UpstreamProtocolError(
                        f"{target.provider.name} answered /responses with a body that is not a Response") from None
                if state.store:
                    data = _keep_native(ex, state, target, obj)
                return data, resp.headers
            if state.error is not None:
                raise state.error
            if state.background and state.rid is None:
                return _queue(ex, state, target), []
            data, headers = await inner(target)
            state.usage = data
            out = ra.chat_to_response(data, model, state.created, state.echo)
            if state.store:
                obj = orjson.loads(out)
                if state.rid is not None:
                    _rename(obj, state.rid)
                state.keep(ex, target, obj)
                out = orjson.dumps(obj)
            return out, headers

        return attempt

    def streaming(self, transport: Transport, ex: Exchange) -> Attempt[StreamStart]:
        inner = stream(transport, ex)
        state: _State = ex.state
        model = ex.model

        async def attempt(target: Target) -> StreamStart:
            if not self._native(ex, target):
                if state.error is not None:
                    raise state.error
                start = await inner(target)
                on_final = (lambda obj: state.keep(ex, target, obj)) if state.store else None
                tr = _ToResponses(start.translator, ra.ResponsesStream(model, state.created, state.echo), on_final,
                                  finish_watch(ex))
                return StreamStart(_guarded(start.chunks, tr), tr, tr.first(start.first), start.headers,
                                   start.close)
            t = time.perf_counter()
            try:
                resp = await _native_send(transport, ex, target, True)
                native = _native_stream(ex, state, target)
                chunks = resp.__aiter__()
                first = await first_frame(chunks, native, resp.aclose)
            finally:
                ex.wait += time.perf_counter() - t
            return StreamStart(_guarded(chunks, native), native, first, resp.headers, resp.aclose)

        return attempt

    def usage(self, ex: Exchange, data: bytes) -> tuple[int, ...] | None:
        state: _State = ex.state
        return super().usage(ex, state.usage or data)

    def price(self, ex: Exchange, dep: Any, data: bytes) -> int:
        state: _State | None = ex.state
        return super().price(ex, dep, state.usage if state is not None and state.usage and not ex.stream else data)

    def error_frame(self, exc: GatewayError) -> bytes:
        frame = getattr(exc, _FRAME, None)
        return frame if isinstance(frame, bytes) else error_event(exc, 0)


def _rename(obj: dict[str, Any], rid: str) -> None:
    """Give a translated Response ``obj`` the id ``rid`` (a background run's, handed out when it was queued),
    its output items' ids too: they name their response (``responses_state.response_of``)."""
    old, obj["id"] = str(obj.get("id"))[5:], rid
    for item in obj.get("output") or ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            item["id"] = item["id"].replace(old, rid[5:], 1)


def _upstream_prev(state: _State, target: Target) -> tuple[str, str] | None:
    """(upstream's id, ours) of the previous turn when ``target`` holds it, else None."""
    held = state.held
    if held is None or held[0] != target.dep.id or state.prev is None:
        return None
    return held[2], state.prev


def _keep_native(ex: Exchange, state: _State, target: Target, obj: dict[str, Any]) -> bytes:
    """A native unary answer to store: our id for the upstream's (the upstream's kept as ``upstream_id``
    when it stored the response), our previous id for its; the body the client gets."""
    upstream_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    obj["id"] = state.rid or ra.new_id("resp_")
    obj["previous_response_id"] = state.prev
    upstream_stored = obj.get("store") is not False
    if state.background and state.rid is None and obj.get("status") in ("queued", "in_progress"):
        st = state.state
        assert st is not None
        st.put(state.row(ex, obj["id"], target.dep.id, upstream_id, {**obj, "model": ex.model}))
    else:
        state.keep(ex, target, obj, upstream_id if upstream_stored else None)
    return orjson.dumps(obj)


def _native_stream(ex: Exchange, state: _State, target: Target) -> _Native:
    if not state.store:
        return _Native()

    def on_final(obj: dict[str, Any], upstream_id: str | None) -> None:
        state.keep(ex, target, obj, upstream_id if obj.get("store") is not False else None)

    return _Native(ra.new_id("resp_"), _upstream_prev(state, target), on_final)


def _queue(ex: Exchange, state: _State, target: Target) -> bytes:
    """A background response on a translated deployment: stored ``queued`` and run in a task of this
    worker (``ResponseState.start_run``); the client gets the queued Response at once."""
    st = state.state
    assert st is not None and state.scope is not None
    rid = ra.new_id("resp_")
    obj = ra.response_object(rid, state.created, ex.model, state.echo, "queued", [], None)
    obj["background"] = True
    row = state.row(ex, rid, target.dep.id, None, obj)
    st.start_run(row, state.scope, state.inner)
    st.put(row)
    return orjson.dumps(obj)


async def _native_send(transport: Transport, ex: Exchange, target: Target, streaming: bool) -> UpstreamResponse:
    p = target.provider
    state: _State = ex.state
    held = state.held
    body = held[1] if held is not None and held[0] == target.dep.id else state.native_body
    if ex.model != target.upstream_model:
        body = body_edit.set_fields(body, {"model": target.upstream_model})
    headers = [*p.media_headers(), ("Content-Type", "application/json")]
    return await send_native(transport, ex, target, UpstreamRequest("POST", p.responses_url(), headers, body),
                             streaming)
