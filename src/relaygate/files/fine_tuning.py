"""OpenAI's fine-tuning jobs API (``/v1/fine_tuning/jobs``) relayed to ``openai/`` and ``azure/`` deployments, as
LiteLLM's proxy relays it, on the files API's machinery (``files.api``: ids, ownership, errors, records).

- **Create** (``POST /fine_tuning/jobs``): ``training_file`` (and ``validation_file``) are ids of files uploaded
  through the gateway with ``purpose=fine-tune``; the job goes to the deployment that holds the training file
  (a validation file held elsewhere is a 400: the upstream could not read it), with every other field of
  OpenAI's request (``model``, ``hyperparameters``, ``method``, ``suffix``, ``seed``, ``integrations``,
  ``metadata``) passed as sent and LiteLLM's routing fields (``custom_llm_provider``, ``target_model_names``)
  left out. The key must be allowed the deployment's model group, as for its files.
- **Ids** are the gateway's (``ftjob-<signed token>``, ``files.ids``), and so are the file ids inside a job
  (``training_file``, ``validation_file``, ``result_files``): a job's result files are recorded for the job's
  owner when a retrieve first shows them, so ``GET /v1/files/{id}/content`` downloads them.
- **Ownership** (with a store): the key that creates a job owns it (``rg_files``, kind ``fine_tuning_job``);
  another key's job is a 404 like a missing one; ``GET /fine_tuning/jobs`` lists the caller's jobs (its team's
  too; the admin's: all), as each was last seen. Without a store, jobs pass through and a list is the
  upstream's list of the deployment the request names (``model`` / ``custom_llm_provider``).
- **Retrieve, cancel, events, checkpoints** (``GET /fine_tuning/jobs/{id}``, ``POST .../cancel``, ``GET
  .../events``, ``GET .../checkpoints``, their ``limit`` and ``after`` passed on) reach the job's deployment;
  a retrieve or cancel records the job's status.

Each call is one completion record (cost 0; ``route`` LiteLLM's call type: ``acreate_fine_tuning_job`` ...).
The training itself is billed by the provider, not priced here (LiteLLM does not price it either).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core import errors
from relaygate.files import ids
from relaygate.files.api import _limit, _query, _text
from relaygate.files.choose import Where, choose, headers_for, segment, url_for
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.store import files as rows
from relaygate.upstream.base import UpstreamRequest

if TYPE_CHECKING:
    from relaygate.files.api import Call, FilesApi
    from relaygate.router import Target

__all__ = ["KIND", "add_routes"]

KIND = "fine_tuning_job"
_ROUTING = ("target_model_names", "custom_llm_provider", "litellm_metadata")
_FILES = ("training_file", "validation_file")


def add_routes(t: RouteTable, api: FilesApi) -> None:
    """Add the fine-tuning routes (``/v1/...``, ``/...``, ``/{provider}/v1/...``) of ``api``'s gateway to ``t``."""
    jobs = FineTuning(api)
    table = [("POST", "", "acreate_fine_tuning_job", jobs.create),
             ("GET", "", "alist_fine_tuning_jobs", jobs.list_jobs),
             ("GET", "/{fine_tuning_job_id}", "aretrieve_fine_tuning_job", jobs.retrieve),
             ("POST", "/{fine_tuning_job_id}/cancel", "acancel_fine_tuning_job", jobs.cancel),
             ("GET", "/{fine_tuning_job_id}/events", "alist_fine_tuning_events", jobs.events),
             ("GET", "/{fine_tuning_job_id}/checkpoints", "alist_fine_tuning_checkpoints", jobs.checkpoints)]
    for prefix in ("/v1", "", "/{provider}/v1"):
        for method, path, name, fn in table:
            t.add(method, prefix + "/fine_tuning/jobs" + path, api.route(name, fn))


class FineTuning:
    """The fine-tuning handlers of one gateway (see the module docstring)."""

    def __init__(self, api: FilesApi) -> None:
        self.api = api

    def _out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        """The upstream's job with the gateway's ids in it."""
        api = self.api
        out = {**obj, "id": api._id(KIND, target, obj.get("id"))}
        for name in _FILES:
            if obj.get(name):
                out[name] = api._id("file", target, obj[name])
        results = obj.get("result_files")
        if isinstance(results, list):
            out["result_files"] = [api._id("file", target, f) for f in results if ids.valid_upstream_id(f)]
        return out

    async def _results(self, target: Target, out: dict[str, Any], obj: dict[str, Any], owner: rows.FileObject
                       ) -> None:
        """Record a job's result files for the job's owner (once each)."""
        store = self.api.gw.store
        if store is None:
            return
        for mine, theirs in zip(out.get("result_files") or [], [f for f in obj.get("result_files") or []
                                                                 if ids.valid_upstream_id(f)], strict=False):
            await rows.put_object(store, rows.FileObject(
                object_id=mine, kind="file", api_key=owner.api_key, team_id=owner.team_id, user_id=owner.user_id,
                upstream_id=str(theirs), deployment_id=target.dep.id, model=target.dep.model_name,
                custom_llm_provider=target.dep.provider, purpose="fine-tune-results", status="processed"))

    async def create(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        who = await api._who(call, scope)
        body = await api.json_body(receive)
        training = body.get("training_file")
        if not isinstance(training, str) or not training:
            raise errors.BadRequest("training_file: required (the id of a file uploaded with purpose=fine-tune)",
                                    param="training_file")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise errors.BadRequest("model: required (the base model to fine-tune)", param="model")
        ref, _row, target = await api._locate(call, "file", training, "training_file")
        body["training_file"] = ref.upstream_id
        validation = body.get("validation_file")
        if validation is not None:
            if not isinstance(validation, str):
                raise errors.BadRequest("validation_file: expected a file id", param="validation_file")
            vref, _vrow, vtarget = await api._locate(call, "file", validation, "validation_file")
            if vtarget.dep.id != target.dep.id:
                raise errors.BadRequest("validation_file: held by another deployment than training_file; upload "
                                        "both through the same model", param="validation_file")
            body["validation_file"] = vref.upstream_id
            api._use(call, target)
        for name in _ROUTING:
            body.pop(name, None)
        obj = await api._json(call, _request("POST", target, "", body))
        out = self._out(target, obj)
        await api.own(KIND, out["id"], str(obj["id"]), target, who, purpose=_text(body.get("model")),
                      status=_text(obj.get("status")), metadata=out)
        await api._answer(call, send, out)

    async def _job(self, call: Call, scope: Scope, send: Send, params: Params, method: str, tail: str,
                   query: dict[str, Any] | None = None) -> None:
        api = self.api
        await api._who(call, scope)
        job_id = params["fine_tuning_job_id"]
        ref, row, target = await api._locate(call, KIND, job_id, "fine_tuning_job_id")
        obj = await api._json(call, _request(method, target, f"/{segment(ref.upstream_id)}{tail}",
                                             {} if method == "POST" else None, query))
        if tail in ("", "/cancel"):
            out = self._out(target, obj)
            store = api.gw.store
            if store is not None and row is not None:
                await self._results(target, out, obj, row)
                api._later(rows.update_object(store, job_id, status=_text(obj.get("status")), metadata=out))
        else:
            out = obj  # events and checkpoints: OpenAI's lists, nothing in them the caller must not see
            if isinstance(out.get("data"), list):
                out["data"] = [self._item(target, item) for item in out["data"] if isinstance(item, dict)]
        await api._answer(call, send, out)

    def _item(self, target: Target, item: dict[str, Any]) -> dict[str, Any]:
        """An event or checkpoint with the job's id as the gateway's."""
        job = item.get("fine_tuning_job_id")
        return {**item, "fine_tuning_job_id": self.api._id(KIND, target, job)} if ids.valid_upstream_id(job) else item

    async def retrieve(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._job(call, scope, send, params, "GET", "")

    async def cancel(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._job(call, scope, send, params, "POST", "/cancel")

    async def events(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._job(call, scope, send, params, "GET", "/events", _paging(scope))

    async def checkpoints(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._job(call, scope, send, params, "GET", "/checkpoints", _paging(scope))

    async def list_jobs(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        who = await api._who(call, scope)
        query = _query(scope)
        limit = _limit(query.get("limit"), 20, 100)
        store = api.gw.store
        if store is not None:
            found, more = await rows.list_objects(store, KIND, api.owner(who), limit=limit, after=query.get("after"))
            data = [r.metadata or {"id": r.object_id, "object": "fine_tuning.job", "status": r.status}
                    for r in found]
            await api._answer(call, send, {"object": "list", "data": data, "has_more": more})
            return
        target = choose(api.gw.runtime.router, who, Where.read(params.get("provider"), scope["headers"], query, {}))
        api._use(call, target)
        after = query.get("after")
        ref = ids.decode(KIND, after, api.secret) if after else None
        obj = await api._json(call, _request("GET", target, "", None, {
            "limit": limit, "after": ref.upstream_id if ref is not None else None}))
        items = obj.get("data")
        data = [self._out(target, item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        await api._answer(call, send, {"object": "list", "data": data, "has_more": bool(obj.get("has_more"))})


def _request(method: str, target: Target, tail: str, body: dict[str, Any] | None,
             query: dict[str, Any] | None = None) -> UpstreamRequest:
    """The upstream request to ``/fine_tuning/jobs<tail>`` of ``target`` (a JSON body when ``body`` is given)."""
    return UpstreamRequest(method, url_for(target, "/fine_tuning/jobs" + tail, query),
                           headers_for(target, "application/json" if body is not None else None),
                           orjson.dumps(body) if body is not None else b"")


def _paging(scope: Scope) -> dict[str, Any]:
    """``limit`` (checked) and ``after`` (an upstream event or checkpoint id, passed as it is when usable)."""
    query = _query(scope)
    after = query.get("after")
    return {"limit": _limit(query.get("limit"), 20, 100), "after": after if ids.valid_upstream_id(after) else None}
