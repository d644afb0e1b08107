"""OpenAI's vector stores API (``/v1/vector_stores``) relayed to ``openai/`` and ``azure/`` deployments, as LiteLLM's
proxy relays it, on the files API's machinery (``files.api``: signed ids, ownership, errors, records).

- **Create** (``POST /vector_stores``): with ``file_ids`` (files uploaded through the gateway), the store goes to
  the deployment holding them (files held by two deployments are a 400: no upstream could read them all);
  without, where ``model`` / ``target_model_names`` / ``custom_llm_provider`` say (``files.choose``, as an upload),
  else the first OpenAI deployment the key may use. The rest of OpenAI's request (``name``, ``expires_after``,
  ``chunking_strategy``, ``metadata``) passes as sent, LiteLLM's routing fields left out.
- **The store's routes**: retrieve, modify (``POST /vector_stores/{id}``), delete, ``search`` (``query``,
  ``filters``, ``max_num_results``, ``ranking_options``, ``rewrite_query``), and its files: attach one
  (``POST .../files`` with a ``file_id`` held by the same deployment), list (``limit``, ``order``, ``after``,
  ``before``, ``filter`` passed on), retrieve, delete (detach), ``content``. Ids in answers — the store's, a
  file's, the search results' ``file_id`` — are the gateway's (``vs_<signed token>``, ``file-<signed token>``).
- **Ownership** (with a store): the key that creates a vector store owns it (``rg_files``, kind ``vector_store``);
  other keys get a 404 as if it did not exist, ``GET /vector_stores`` lists the caller's (its team's too; the
  admin's: all), as each was last seen. A file attached must be the caller's too. Without a store, vector stores
  pass through and a list is the upstream's (of the deployment the request names).

Each call is one completion record (cost 0; ``route`` LiteLLM's call type: ``avector_store_create``,
``avector_store_search`` ...). Searches and storage are billed by the provider, not priced here.
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

KIND = "vector_store"
_ROUTING = ("model", "target_model_names", "custom_llm_provider", "litellm_metadata")
_LIST_QUERY = ("order", "filter")


def add_routes(t: RouteTable, api: FilesApi) -> None:
    """Add the vector store routes (``/v1/...``, ``/...``, ``/{provider}/v1/...``) of ``api``'s gateway to ``t``."""
    vs = VectorStores(api)
    table = [("POST", "", "avector_store_create", vs.create),
             ("GET", "", "avector_store_list", vs.list_stores),
             ("GET", "/{vector_store_id}", "avector_store_retrieve", vs.retrieve),
             ("POST", "/{vector_store_id}", "avector_store_update", vs.modify),
             ("DELETE", "/{vector_store_id}", "avector_store_delete", vs.delete),
             ("POST", "/{vector_store_id}/search", "avector_store_search", vs.search),
             ("POST", "/{vector_store_id}/files", "avector_store_file_create", vs.attach),
             ("GET", "/{vector_store_id}/files", "avector_store_file_list", vs.list_files),
             ("GET", "/{vector_store_id}/files/{file_id}", "avector_store_file_retrieve", vs.file_retrieve),
             ("DELETE", "/{vector_store_id}/files/{file_id}", "avector_store_file_delete", vs.file_delete),
             ("GET", "/{vector_store_id}/files/{file_id}/content", "avector_store_file_content", vs.file_content)]
    for prefix in ("/v1", "", "/{provider}/v1"):
        for method, path, name, fn in table:
            t.add(method, prefix + "/vector_stores" + path, api.route(name, fn))


def _request(method: str, target: Target, tail: str, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None) -> UpstreamRequest:
    return UpstreamRequest(method, url_for(target, "/vector_stores" + tail, query),
                           headers_for(target, "application/json" if body is not None else None),
                           orjson.dumps(body) if body is not None else b"")


class VectorStores:
    """The vector store handlers of one gateway (see the module docstring)."""

    def __init__(self, api: FilesApi) -> None:
        self.api = api

    # -- ids in answers ---------------------------------------------------------------------------------

    def _file(self, target: Target, upstream_id: object) -> object:
        return self.api._id("file", target, upstream_id) if ids.valid_upstream_id(upstream_id) else upstream_id

    def _store_out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "id": self.api._id(KIND, target, obj.get("id"))}

    def _file_out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        out = {**obj, "id": self._file(target, obj.get("id"))}
        if ids.valid_upstream_id(obj.get("vector_store_id")):
            out["vector_store_id"] = self.api._id(KIND, target, obj["vector_store_id"])
        return out

    def _search_out(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        data = obj.get("data")
        if isinstance(data, list):
            obj = {**obj, "data": [{**hit, "file_id": self._file(target, hit.get("file_id"))}
                                   if isinstance(hit, dict) and "file_id" in hit else hit for hit in data]}
        return obj

    # -- the request's parts ----------------------------------------------------------------------------

    async def _store(self, call: Call, scope: Scope, params: Params) -> tuple[ids.Ref, rows.FileObject | None, Target]:
        await self.api._who(call, scope)
        return await self.api._locate(call, KIND, params["vector_store_id"], "vector_store_id")

    async def _same_file(self, call: Call, file_id: object, target: Target, param: str) -> str:
        """The upstream id of the caller's file ``file_id``, which ``target`` must hold."""
        if not isinstance(file_id, str) or not file_id:
            raise errors.BadRequest(f"{param}: expected a file id", param=param)
        ref, _row, held = await self.api._locate(call, "file", file_id, param)
        if held.dep.id != target.dep.id:
            raise errors.BadRequest(f"{param}: {file_id} is held by another deployment than the vector store's; "
                                    "upload the files through the same model", param=param)
        self.api._use(call, target)
        return ref.upstream_id

    # -- handlers ---------------------------------------------------------------------------------------

    async def create(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        who = await api._who(call, scope)
        body = await api.json_body(receive)
        file_ids = body.get("file_ids")
        if file_ids is not None and (not isinstance(file_ids, list) or not file_ids):
            raise errors.BadRequest("file_ids: expected a non-empty list of file ids", param="file_ids")
        if file_ids:
            _ref, _row, target = await api._locate(call, "file", file_ids[0], "file_ids")
            body["file_ids"] = [await self._same_file(call, f, target, "file_ids") for f in file_ids]
        else:
            fields = {k: v for k, v in body.items() if k in _ROUTING and isinstance(v, str)}
            target = choose(api.gw.runtime.router, who, Where.read(params.get("provider"), scope["headers"],
                                                                   _query(scope), fields))
            api._use(call, target)
        for name in _ROUTING:
            body.pop(name, None)
        obj = await api._json(call, _request("POST", target, "", body))
        out = self._store_out(target, obj)
        await api.own(KIND, out["id"], str(obj["id"]), target, who, filename=_text(body.get("name")),
                      status=_text(obj.get("status")), metadata=out)
        await api._answer(call, send, out)

    async def _store_call(self, call: Call, scope: Scope, send: Send, params: Params, method: str,
                          body: dict[str, Any] | None) -> None:
        api = self.api
        ref, row, target = await self._store(call, scope, params)
        obj = await api._json(call, _request(method, target, f"/{segment(ref.upstream_id)}", body))
        if method == "DELETE":
            out = {**obj, "id": params["vector_store_id"]}
            if api.gw.store is not None and row is not None and obj.get("deleted") is not False:
                await rows.delete_object(api.gw.store, params["vector_store_id"])
        else:
            out = self._store_out(target, obj)
            if api.gw.store is not None and row is not None:
                api._later(rows.update_object(api.gw.store, params["vector_store_id"], status=_text(obj.get("status")),
                                              metadata=out))
        await api._answer(call, send, out)

    async def retrieve(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._store_call(call, scope, send, params, "GET", None)

    async def modify(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        body = await self.api.json_body(receive)
        for name in _ROUTING:
            body.pop(name, None)
        await self._store_call(call, scope, send, params, "POST", body)

    async def delete(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._store_call(call, scope, send, params, "DELETE", None)

    async def search(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        body = await api.json_body(receive)
        if not isinstance(body.get("query"), (str, list)) or not body["query"]:
            raise errors.BadRequest("query: required (a string, or a list of strings)", param="query")
        ref, _row, target = await self._store(call, scope, params)
        for name in _ROUTING:
            body.pop(name, None)
        obj = await api._json(call, _request("POST", target, f"/{segment(ref.upstream_id)}/search", body))
        await api._answer(call, send, self._search_out(target, obj))

    async def attach(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        body = await api.json_body(receive)
        ref, _row, target = await self._store(call, scope, params)
        body["file_id"] = await self._same_file(call, body.get("file_id"), target, "file_id")
        obj = await api._json(call, _request("POST", target, f"/{segment(ref.upstream_id)}/files", body))
        await api._answer(call, send, self._file_out(target, obj))

    async def list_files(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        ref, _row, target = await self._store(call, scope, params)
        q = _query(scope)
        query: dict[str, Any] = {k: q[k] for k in _LIST_QUERY if k in q}
        query["limit"] = _limit(q.get("limit"), 20, 100)
        for name in ("after", "before"):  # cursors are file ids: the gateway's, as the client saw them
            if q.get(name):
                cursor = ids.decode("file", q[name], api.secret)
                query[name] = cursor.upstream_id if cursor is not None else None
        obj = await api._json(call, _request("GET", target, f"/{segment(ref.upstream_id)}/files", None, query))
        data = obj.get("data")
        items = [self._file_out(target, f) for f in data if isinstance(f, dict)] if isinstance(data, list) else []
        await api._answer(call, send, {**obj, "data": items, "first_id": items[0]["id"] if items else None,
                                       "last_id": items[-1]["id"] if items else None})

    async def _file_call(self, call: Call, scope: Scope, send: Send, params: Params, method: str, tail: str) -> None:
        api = self.api
        ref, _row, target = await self._store(call, scope, params)
        upstream_file = await self._same_file(call, params["file_id"], target, "file_id")
        obj = await api._json(call, _request(method, target,
                                             f"/{segment(ref.upstream_id)}/files/{segment(upstream_file)}{tail}"))
        if tail:  # content: the parsed chunks, with nothing to map
            await api._answer(call, send, obj)
        elif method == "DELETE":
            await api._answer(call, send, {**obj, "id": params["file_id"]})
        else:
            await api._answer(call, send, self._file_out(target, obj))

    async def file_retrieve(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._file_call(call, scope, send, params, "GET", "")

    async def file_delete(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._file_call(call, scope, send, params, "DELETE", "")

    async def file_content(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await self._file_call(call, scope, send, params, "GET", "/content")

    async def list_stores(self, call: Call, scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        api = self.api
        who = await api._who(call, scope)
        q = _query(scope)
        limit = _limit(q.get("limit"), 20, 100)
        store = api.gw.store
        if store is not None:
            found, more = await rows.list_objects(store, KIND, api.owner(who), limit=limit, after=q.get("after"),
                                                  ascending=q.get("order") == "asc")
            data = [r.metadata or {"id": r.object_id, "object": "vector_store", "status": r.status} for r in found]
            await api._answer(call, send, {"object": "list", "data": data, "has_more": more,
                                           "first_id": data[0]["id"] if data else None,
                                           "last_id": data[-1]["id"] if data else None})
            return
        target = choose(api.gw.runtime.router, who, Where.read(params.get("provider"), scope["headers"], q, {}))
        api._use(call, target)
        after = ids.decode(KIND, q["after"], api.secret) if q.get("after") else None
        obj = await api._json(call, _request("GET", target, "", None, {
            "limit": limit, "order": q.get("order"), "after": after.upstream_id if after is not None else None}))
        listed = obj.get("data")
        items = [self._store_out(target, v) for v in listed if isinstance(v, dict)] if isinstance(listed, list) else []
        await api._answer(call, send, {"object": "list", "data": items, "has_more": bool(obj.get("has_more")),
                                       "first_id": items[0]["id"] if items else None,
                                       "last_id": items[-1]["id"] if items else None})
