"""OpenAI's ``/v1/files`` and ``/v1/batches`` relayed to ``openai/`` and ``azure/`` deployments (and, on the same
machinery, ``/v1/fine_tuning/jobs`` and ``/v1/vector_stores``: ``files.fine_tuning``, ``files.vector_stores``).

What it owns: the handlers (upload, list, retrieve, content, delete; batch create, retrieve, list, cancel),
who owns what, the ids clients see, and one completion record per call.

- **Ids.** Every id a client gets is ours (``files.ids``): it names the deployment and the upstream's id,
  signed. Upstream ids never reach the client; an id that does not decode is a 404 in OpenAI's shape.
- **Ownership** (with a store): the key that uploads a file or creates a batch owns it, in ``rg_files``
  (``store.files``), with its team and user. Another key's id is a 404 exactly like a missing one; a list
  shows only the caller's objects (its team's too); the admin (master key, or a key of a ``proxy_admin``
  user) sees all. A batch's output and error files are recorded for the batch's owner when the batch first
  shows them. The row is written before the answer (a client may use the id at once). A list is read from
  the rows (no upstream call; ``model`` / provider parameters do not narrow it): each object as the caller
  last saw it, a batch's state as of its last retrieve.
- **Without a store**, files and batches still pass through with the same ids (LiteLLM's "no database"
  mode): nothing is owned, so every key allowed on the deployment's model group can use any id, and a list
  is the upstream's list of the deployment the request names.
- **Permissions.** A virtual key's model allow-list applies to the deployment's model group on every call
  (401 ``key_model_access_denied``).
- **Errors.** An upstream error is relayed with its status in OpenAI's shape (LiteLLM's exception names);
  an upstream that cannot be reached is a 502; a body over ``max_request_body_bytes`` a 413. Each failed
  call is one log line (control characters escaped by the log formatter).
- **Records.** Each call ends as one :class:`~relaygate.sinks.record.CompletionRecord` (cost 0, ``route``
  LiteLLM's call type: ``acreate_file``, ``afile_content``, ``acreate_batch`` ...), so metrics and spend
  logs see the calls. A finished batch's own cost (its output file's usage, at the Batch API's price) is one
  more record, logged once in the background (``files.batch_cost``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson

from relaygate.auth.resolver import Principal, PrincipalKind
from relaygate.core import errors
from relaygate.core.errors import GatewayError
from relaygate.files import batch_cost, ids, policy
from relaygate.files.choose import Where, by_id, choose, headers_for, segment, url_for
from relaygate.files.upload import BatchLines, Preamble, Upload
from relaygate.frontends.multipart import boundary_of
from relaygate.http.body import BodyLimits, ClientGone, declared_length, next_message, read_body, too_large
from relaygate.http.respond import DisconnectWatch, send_error, send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.logs import fail_log
from relaygate.pipeline.overrides import new_call_id
from relaygate.router import Target
from relaygate.sinks.record import CompletionRecord, Outcome
from relaygate.store import files as rows
from relaygate.store.errors import StoreUnavailable
from relaygate.upstream.base import UpstreamRequest, UpstreamResponse

__all__ = ["FilesApi", "add_routes"]

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
"""OpenAI's upload purposes (LiteLLM refuses any other with a 400)."""
_ROUTING = ("model", "target_model_names", "custom_llm_provider", "litellm_metadata")
_MAX_BACKGROUND = 256
PURGE_EVERY = 3600.0
"""Seconds between two sweeps of expired rows (started by a call, in the background)."""


def _not_found(kind: str, object_id: str, param: str) -> GatewayError:
    shown = object_id if len(object_id) <= 100 else object_id[:100] + "..."
    what = {"file": "File", "batch": "Batch", "vector_store": "VectorStore"}.get(kind, "FineTuningJob")
    return GatewayError(f"No such {what} object: {shown}", status=404, type="invalid_request_error", param=param,
                        code="404")


def _bad_gateway(message: str) -> GatewayError:
    return GatewayError(message, status=502, type=None, code="502")


class Call:
    """One files / batches request as it moves through its handler."""

    __slots__ = ("call_id", "model", "route", "started", "status", "t0", "target", "who")

    def __init__(self, route: str) -> None:
        self.route = route
        self.t0 = time.perf_counter()
        self.call_id = new_call_id()
        self.who: Principal | None = None
        self.target: Target | None = None
        self.model = ""
        self.status = 200
        self.started = False

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-litellm-call-id", self.call_id)]


Handler = Callable[[Call, Scope, Receive, Send, Params], Awaitable[None]]


class FilesApi:
    """The files and batches routes of one gateway (``gw``: its runtime, transport, store and queue)."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self._secret: tuple[bytes | None, bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._purged = -PURGE_EVERY

    # -- the request's parts --------------------------------------------------------------------------

    @property
    def secret(self) -> bytes:
        master = self.gw.runtime.principals.master_key
        got = self._secret
        if got is None or got[0] != master:
            got = self._secret = (master, ids.secret_for(master))
        return got[1]

    async def _who(self, call: Call, scope: Scope) -> Principal:
        principals = self.gw.runtime.principals
        headers = scope["headers"]
        who: Principal = principals.resolve_cached(headers) or await principals.resolve(headers)
        if who.jwt is not None:  # a JWT's allowed routes (auth.jwt_routes); None for every other caller
            who.jwt.check(scope["path"])
        if who.routes is not None:  # a virtual key's allowed_routes (auth.key_routes)
            who.routes.check(scope["path"])
        call.who = who
        return who

    @staticmethod
    def owner(who: Principal) -> rows.Owner:
        admin = who.kind is not PrincipalKind.KEY or who.role == "proxy_admin"
        return rows.Owner(who.key_hash, who.team_id, admin)

    async def _locate(self, call: Call, kind: str, object_id: str, param: str) -> tuple[ids.Ref, rows.FileObject | None,
                                                                                         Target]:
        """The deployment and row an id names, for this caller; 404 for anything it may not see."""
        assert call.who is not None
        ref = ids.decode(kind, object_id, self.secret)
        if ref is None:
            raise _not_found(kind, object_id, param)
        row = None
        store = self.gw.store
        if store is not None:
            row = await rows.get_owned(store, object_id, kind, self.owner(call.who))
            if row is None:
                raise _not_found(kind, object_id, param)
        target = by_id(self.gw.runtime.router, ref.deployment_id)
        if target is None:
            raise _not_found(kind, object_id, param)
        self._use(call, target)
        return ref, row, target

    @staticmethod
    def _use(call: Call, target: Target) -> None:
        assert call.who is not None
        call.who.check_model(target.dep.model_name)
        call.target = target
        call.model = target.dep.model_name

    async def _send(self, call: Call, req: UpstreamRequest, *, stream: bool = False) -> UpstreamResponse:
        assert call.target is not None
        timeouts = self.gw.runtime.timeouts(call.target, stream, None)
        resp: UpstreamResponse = await self.gw.transport.send(req, timeouts)
        if resp.status >= 400:
            body = await resp.read()
            retry = resp.header(b"retry-after")
            try:
                after = float(retry) if retry else None
            except ValueError:
                after = None
            if after is not None and not 0.0 <= after <= 86400.0:  # inf, nan, negative: not a usable delay
                after = None
            raise call.target.provider.map_error(resp.status, body, after)
        return resp

    async def _json(self, call: Call, req: UpstreamRequest, stream: bool = False) -> dict[str, Any]:
        resp = await self._send(call, req, stream=stream)
        body = await resp.read()
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            raise _bad_gateway("The upstream answered with a body that is not a JSON object")
        return obj

    def _id(self, kind: str, target: Target, upstream_id: object) -> str:
        if not ids.valid_upstream_id(upstream_id):
            raise _bad_gateway(f"The upstream answered without a usable {kind} id")
        assert isinstance(upstream_id, str)
        return ids.encode(kind, target.dep.id, upstream_id, self.secret)

    async def own(self, kind: str, object_id: str, upstream_id: str, target: Target, who: Principal,
                  **fields: Any) -> None:
        """With a store, ``who`` owns the new object ``object_id`` of ``kind`` (``fields``: more of its row)."""
        store = self.gw.store
        if store is not None:
            await rows.put_object(store, rows.FileObject(
                object_id=object_id, kind=kind, api_key=who.key_hash, team_id=who.team_id, user_id=who.user_id,
                upstream_id=upstream_id, deployment_id=target.dep.id, model=target.dep.model_name,
                custom_llm_provider=target.dep.provider, **fields))

    def _file_out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "id": self._id("file", target, obj.get("id"))}

    def _batch_out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        out = {**obj, "id": self._id("batch", target, obj.get("id"))}
        for name in ("input_file_id", "output_file_id", "error_file_id"):
            value = obj.get(name)
            if value:
                out[name] = self._id("file", target, value)
        return out

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        """A store write the answer does not need, off the request path (bounded: dropped when too many wait)."""
        if len(self._tasks) >= _MAX_BACKGROUND:
            coro.close()
            self.gw.metrics.count("files_write_dropped")
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    @staticmethod
    async def _purge(store: Any) -> None:
        await rows.delete_expired(store, datetime.now(UTC))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            fail_log.warning("files: a background store write failed: %r", task.exception())

    # -- the wrapper ----------------------------------------------------------------------------------

    def route(self, name: str, fn: Handler) -> Callable[[Scope, Receive, Send, Params], Awaitable[None]]:
        """``fn`` answered with its errors in OpenAI's shape and one completion record, whatever the end."""

        async def serve(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
            call = Call(name)
            if self.gw.store is not None and call.t0 - self._purged >= PURGE_EVERY:
                self._purged = call.t0
                self._later(self._purge(self.gw.store))
            try:
                await fn(call, scope, receive, send, params)
            except GatewayError as exc:
                self._finish(call, exc.status, Outcome.ERROR, exc)
                fail_log.warning("%s %s -> %d %s call_id=%s", scope["method"], scope["path"], exc.status,
                                 exc.message, call.call_id.decode())
                if not call.started:
                    await send_error(send, exc, call.call_id)
                return
            except ClientGone:
                self._finish(call, 499, Outcome.CLIENT_GONE)
                if call.started:  # a download whose client left: nothing more to say
                    return
                raise
            except (OSError, ConnectionError) as exc:
                if self.gw.store is None:
                    raise
                err = StoreUnavailable(f"Database unavailable ({type(exc).__name__}): try again later")
                self._finish(call, 503, Outcome.ERROR, err)
                if not call.started:
                    await send_error(send, err, call.call_id)
                return
            except BaseException:
                self._finish(call, 500, Outcome.ERROR)
                raise
            self._finish(call, call.status, Outcome.OK)

        return serve

    def _finish(self, call: Call, status: int, outcome: Outcome, exc: GatewayError | None = None) -> None:
        who, dep = call.who, (call.target.dep if call.target is not None else None)
        latency = time.perf_counter() - call.t0
        self.gw.completions.put(CompletionRecord(
            call_id=call.call_id.decode("latin-1"), route=call.route, stream=False, model=call.model,
            model_group=dep.model_name if dep is not None else "", deployment_id=dep.id if dep is not None else "",
            provider=dep.provider if dep is not None else "", upstream_model=dep.upstream_model if dep else "",
            key_hash=who.key_hash if who else None, key_alias=who.key_alias if who else None,
            team_id=who.team_id if who else None, user_id=who.user_id if who else None, status=status,
            outcome=outcome, prompt_tokens=0, completion_tokens=0, cache_read_tokens=0, cache_write_tokens=0,
            latency=latency, ttft=None, overhead=0.0, cost=0.0, cache_hit=False, retries=0, fallbacks=0,
            start_time=time.time() - latency, error_type=(exc.type or "") if exc is not None else ""))

    async def _answer(self, call: Call, send: Send, obj: dict[str, Any]) -> None:
        call.started = True
        await send_json(send, 200, orjson.dumps(obj), call.headers)

    # -- files ----------------------------------------------------------------------------------------

    async def upload(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        who = await self._who(call, scope)
        rt = self.gw.runtime
        limits = rt.body_limits
        ctype, declared = "", None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v.decode("latin-1")
            elif k == b"content-length":
                declared = declared_length(v, limits.max_bytes)
        if not ctype.lower().startswith("multipart/form-data"):
            raise errors.BadRequest("/v1/files expects multipart/form-data with `file` and `purpose`")
        boundary = boundary_of(ctype)
        pre = Preamble(boundary)
        start = asyncio.get_running_loop().time()
        more = True
        while more:
            msg = await next_message(receive, limits, start, len(pre.buffered))
            more = bool(msg.get("more_body", False))
            found = pre.feed(msg.get("body", b""))
            if len(pre.buffered) > limits.max_bytes:
                raise too_large(len(pre.buffered), limits.max_bytes)
            if found:
                break
        pre.end()
        purpose = pre.fields.get("purpose", "")
        if purpose not in PURPOSES:
            raise errors.BadRequest(f"Invalid purpose: {purpose[:64]!r}. Must be one of: {sorted(PURPOSES)}"
                                    if purpose else "purpose: form field required (before the file part)",
                                    param="purpose")
        cap = policy.check(rt.config.general, pre.filename, purpose, declared, pre.content_start, boundary)
        if cap is not None and cap < limits.max_bytes:  # max_file_size_mb: a streamed body past it is cut (413)
            limits = BodyLimits(cap, limits.timeout, limits.min_rate)
        where = Where.read(params.get("provider"), scope["headers"], _query(scope), pre.fields)
        target = choose(rt.router, who, where)
        self._use(call, target)
        lines = None
        if purpose == "batch" and where.model:  # the lines name the group: the deployment gets its own model
            names = frozenset({where.model, target.dep.model_name})
            if target.dep.upstream_model not in names:
                lines = BatchLines(boundary, names, target.dep.upstream_model)
        upload = Upload(pre, boundary, receive, limits, start, declared, more, lines)
        req = UpstreamRequest("POST", url_for(target, "/files"),
                              headers_for(target, f"multipart/form-data; boundary={boundary.decode('latin-1')}"),
                              upload.body(), upload.length)
        obj = await self._json(call, req, stream=True)
        out = self._file_out(target, obj)
        store = self.gw.store
        if store is not None:
            size = obj.get("bytes")
            await rows.put_object(store, rows.FileObject(
                object_id=out["id"], kind="file", api_key=who.key_hash, team_id=who.team_id, user_id=who.user_id,
                upstream_id=str(obj["id"]), deployment_id=target.dep.id, model=target.dep.model_name,
                custom_llm_provider=target.dep.provider, purpose=purpose,
                filename=_text(obj.get("filename")) or pre.filename, bytes=size if isinstance(size, int) else None,
                status=_text(obj.get("status")), metadata=out, expires_at=_when(obj.get("expires_at"))))
        await self._answer(call, send, out)

    async def list_files(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._list(call, scope, send, params, "file", 10_000)

    async def retrieve_file(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._who(call, scope)
        ref, _row, target = await self._locate(call, "file", params["file_id"], "file_id")
        obj = await self._json(call, UpstreamRequest("GET", url_for(target, f"/files/{segment(ref.upstream_id)}"),
                                                     headers_for(target)))
        await self._answer(call, send, self._file_out(target, obj))

    async def delete_file(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._who(call, scope)
        file_id = params["file_id"]
        ref, row, target = await self._locate(call, "file", file_id, "file_id")
        obj = await self._json(call, UpstreamRequest("DELETE", url_for(target, f"/files/{segment(ref.upstream_id)}"),
                                                     headers_for(target)))
        store = self.gw.store
        if store is not None and row is not None and obj.get("deleted") is not False:
            await rows.delete_object(store, file_id)
        await self._answer(call, send, {**obj, "id": file_id})

    async def content(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._who(call, scope)
        ref, _row, target = await self._locate(call, "file", params["file_id"], "file_id")
        await read_body(receive, self.gw.runtime.body_limits)  # a GET's (empty) body: then receive() waits
        resp = await self._send(call, UpstreamRequest(
            "GET", url_for(target, f"/files/{segment(ref.upstream_id)}/content"), headers_for(target)), stream=True)
        watch = DisconnectWatch(receive)  # a client that leaves stops the download from the upstream
        try:
            headers = [*call.headers, (b"content-type", resp.header(b"content-type") or b"application/octet-stream")]
            for name in (b"content-length", b"content-disposition"):
                value = resp.header(name)
                if value is not None and b"\r" not in value and b"\n" not in value:
                    headers.append((name, value))
            call.started = True
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in resp:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not watch.gone or task is None:
                raise
            task.uncancel()
            raise ClientGone() from None
        finally:
            watch.stop()
            await resp.aclose()

    # -- batches --------------------------------------------------------------------------------------

    async def json_body(self, receive: Receive) -> dict[str, Any]:
        """The request's JSON object (an empty body: ``{}``); a 400 for anything else."""
        raw = await read_body(receive, self.gw.runtime.body_limits)
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise errors.BadRequest("Invalid request body: not JSON") from None
        if not isinstance(body, dict):
            raise errors.BadRequest("Invalid request body: expected a JSON object")
        return body

    async def create_batch(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        who = await self._who(call, scope)
        body = await self.json_body(receive)
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise errors.BadRequest("input_file_id: required (the id of a file uploaded with purpose=batch)",
                                    param="input_file_id")
        ref, _row, target = await self._locate(call, "file", file_id, "input_file_id")
        for name in _ROUTING:
            body.pop(name, None)
        body["input_file_id"] = ref.upstream_id
        obj = await self._json(call, UpstreamRequest("POST", url_for(target, "/batches"),
                                                     headers_for(target, "application/json"), orjson.dumps(body)))
        out = self._batch_out(target, obj)
        store = self.gw.store
        if store is not None:
            await rows.put_object(store, rows.FileObject(
                object_id=out["id"], kind="batch", api_key=who.key_hash, team_id=who.team_id, user_id=who.user_id,
                upstream_id=str(obj["id"]), deployment_id=target.dep.id, model=target.dep.model_name,
                custom_llm_provider=target.dep.provider, purpose=_text(body.get("endpoint")),
                status=_text(obj.get("status")), metadata=out))
            await self._outputs(target, out, obj, who.key_hash, who.team_id, who.user_id)
            self._cost_later(target, out["id"], obj, who.key_hash, who.team_id, who.user_id)
        await self._answer(call, send, out)

    async def _outputs(self, target: Target, out: dict[str, Any], obj: dict[str, Any], api_key: str | None,
                       team_id: str | None, user_id: str | None) -> None:
        """Record a batch's output and error files for the batch's owner (once each)."""
        store = self.gw.store
        assert store is not None
        for name, purpose in (("output_file_id", "batch_output"), ("error_file_id", "batch_output")):
            if out.get(name):
                await rows.put_object(store, rows.FileObject(
                    object_id=out[name], kind="file", api_key=api_key, team_id=team_id, user_id=user_id,
                    upstream_id=str(obj[name]), deployment_id=target.dep.id, model=target.dep.model_name,
                    custom_llm_provider=target.dep.provider, purpose=purpose, status="processed"))

    async def _batch_call(self, call: Call, scope: Scope, send: Send, params: Params, method: str, tail: str) -> None:
        await self._who(call, scope)
        batch_id = params["batch_id"]
        ref, row, target = await self._locate(call, "batch", batch_id, "batch_id")
        obj = await self._json(call, UpstreamRequest(
            method, url_for(target, f"/batches/{segment(ref.upstream_id)}{tail}"),
            headers_for(target, "application/json" if method == "POST" else None), b"{}" if method == "POST" else b""))
        out = self._batch_out(target, obj)
        store = self.gw.store
        if store is not None and row is not None:
            await self._outputs(target, out, obj, row.api_key, row.team_id, row.user_id)
            self._later(rows.update_object(store, batch_id, status=_text(obj.get("status")), metadata=out))
            if row.costed_at is None:
                self._cost_later(target, batch_id, obj, row.api_key, row.team_id, row.user_id)
        await self._answer(call, send, out)

    def _cost_later(self, target: Target, batch_id: str, obj: dict[str, Any], api_key: str | None,
                    team_id: str | None, user_id: str | None) -> None:
        """Log a finished batch's cost in the background when nobody has (``files.batch_cost``)."""
        output = obj.get("output_file_id")
        if obj.get("status") in batch_cost.TERMINAL and isinstance(output, str) and ids.valid_upstream_id(output):
            self._later(self._log_cost(target, batch_id, output, api_key, team_id, user_id))

    async def _log_cost(self, target: Target, batch_id: str, output: str, api_key: str | None, team_id: str | None,
                        user_id: str | None) -> None:
        store = self.gw.store
        if store is None or not await rows.claim_cost(store, batch_id):
            return
        done = False
        t0 = time.time()
        try:
            resp = await self.gw.transport.send(
                UpstreamRequest("GET", url_for(target, f"/files/{segment(output)}/content"), headers_for(target)),
                self.gw.runtime.timeouts(target, True, None))
            try:
                if resp.status >= 400:
                    raise _bad_gateway(f"the batch's output file answered {resp.status}")
                usage = await batch_cost.read_usage(resp, self.gw.runtime.prices.table(target.dep))
            finally:
                await resp.aclose()
            done = True
        finally:
            if not done:  # give the claim back: a later retrieve tries again
                await asyncio.shield(rows.release_cost(store, batch_id))
        if usage.priced == 0:
            return
        dep = target.dep
        self.gw.completions.put(CompletionRecord(
            call_id=batch_id, route="aretrieve_batch", stream=False, model=dep.model_name, model_group=dep.model_name,
            deployment_id=dep.id, provider=dep.provider, upstream_model=dep.upstream_model, key_hash=api_key,
            key_alias=None, team_id=team_id, user_id=user_id, status=200, outcome=Outcome.OK,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cached_tokens, cache_write_tokens=0, latency=time.time() - t0, ttft=None,
            overhead=0.0, cost=usage.cost, cache_hit=False, retries=0, fallbacks=0, start_time=t0,
            extra={"spend_logs_metadata": {"batch_id": batch_id, "requests_priced": usage.priced,
                                           "requests_unpriced": usage.unpriced, "lines_unread": usage.unread}}))

    async def retrieve_batch(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._batch_call(call, scope, send, params, "GET", "")

    async def cancel_batch(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._batch_call(call, scope, send, params, "POST", "/cancel")

    async def list_batches(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._list(call, scope, send, params, "batch", 100)

    # -- listing --------------------------------------------------------------------------------------

    async def _list(self, call: Call, scope: Scope, send: Send, params: Params, kind: str, most: int) -> None:
        who = await self._who(call, scope)
        query = _query(scope)
        limit = _limit(query.get("limit"), 10_000 if kind == "file" else 20, most)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise errors.BadRequest("order: must be 'asc' or 'desc'", param="order")
        purpose = query.get("purpose") if kind == "file" else None
        store = self.gw.store
        if store is not None:
            found, more = await rows.list_objects(store, kind, self.owner(who), limit=limit, after=query.get("after"),
                                                  purpose=purpose, ascending=order == "asc")
            data = [r.metadata or _object_of(r) for r in found]
            await self._answer(call, send, _page(data, more))
            return
        target = choose(self.gw.runtime.router, who, Where.read(params.get("provider"), scope["headers"], query, {}))
        self._use(call, target)
        after = query.get("after")
        ref = ids.decode(kind, after, self.secret) if after else None
        up_query: dict[str, Any] = {"limit": limit, "after": ref.upstream_id if ref is not None else None}
        if kind == "file":
            up_query.update(order=order, purpose=purpose)
        path = "/files" if kind == "file" else "/batches"
        obj = await self._json(call, UpstreamRequest("GET", url_for(target, path, up_query), headers_for(target)))
        items = obj.get("data")
        if not isinstance(items, list):
            raise _bad_gateway("The upstream's list has no `data` array")
        mapper = self._file_out if kind == "file" else self._batch_out
        data = [mapper(target, item) for item in items if isinstance(item, dict)]
        await self._answer(call, send, _page(data, bool(obj.get("has_more"))))


def _when(value: object) -> datetime | None:
    """An OpenAI timestamp (epoch seconds) as a time, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 40:
        return datetime.fromtimestamp(value, UTC)
    return None


def _text(value: object) -> str | None:
    return value[:255] if isinstance(value, str) else None


def _object_of(row: rows.FileObject) -> dict[str, Any]:
    """An object from its row's columns (a row written without the upstream's object)."""
    created = int(row.created_at.timestamp()) if row.created_at is not None else 0
    if row.kind == "batch":
        return {"id": row.object_id, "object": "batch", "status": row.status, "created_at": created}
    return {"id": row.object_id, "object": "file", "bytes": row.bytes, "created_at": created,
            "filename": row.filename, "purpose": row.purpose, "status": row.status}


def _page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


def _limit(raw: str | None, default: int, most: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.BadRequest(f"limit: must be an integer, got {raw[:32]!r}", param="limit") from None
    if not 1 <= value <= most:
        raise errors.BadRequest(f"limit: must be between 1 and {most}, got {value}", param="limit")
    return value


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qs

    qs: bytes = scope.get("query_string") or b""
    return {k: v[0] for k, v in parse_qs(qs.decode("latin-1")).items() if v}


def add_routes(t: RouteTable, gw: Any) -> FilesApi:
    """Add the files and batches routes (``/v1/...``, ``/...`` and ``/{provider}/v1/...``) to ``t``."""
    api = FilesApi(gw)
    table: list[tuple[str, str, str, Handler]] = [
        ("POST", "/files", "acreate_file", api.upload),
        ("GET", "/files", "afile_list", api.list_files),
        ("GET", "/files/{file_id}", "afile_retrieve", api.retrieve_file),
        ("DELETE", "/files/{file_id}", "afile_delete", api.delete_file),
        ("GET", "/files/{file_id}/content", "afile_content", api.content),
        ("POST", "/batches", "acreate_batch", api.create_batch),
        ("GET", "/batches", "alist_batches", api.list_batches),
        ("GET", "/batches/{batch_id}", "aretrieve_batch", api.retrieve_batch),
        ("POST", "/batches/{batch_id}/cancel", "acancel_batch", api.cancel_batch),
    ]
    for prefix in ("/v1", "", "/{provider}/v1"):
        for method, path, name, fn in table:
            t.add(method, prefix + path, api.route(name, fn))
    from relaygate.files import fine_tuning, vector_stores  # on this module's handlers

    fine_tuning.add_routes(t, api)
    vector_stores.add_routes(t, api)
    return api
