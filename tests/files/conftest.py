"""The files and batches tests' upstream: a real loopback HTTP server (a thread) that speaks OpenAI's
``/v1/files`` and ``/v1/batches`` with stored state, and Azure OpenAI's ``/openai/files`` and
``/openai/batches`` (``api-version`` query, ``api-key`` header). It records every request (method, path with
query, headers, the multipart field names it got), reads uploads in small pieces with a pause when ``slow``
(so a gateway that buffered would show it), and keeps only the size and digest of large uploads."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

KEEP = 8 * 1024 * 1024  # uploads up to this size keep their content


@dataclass
class Stored:
    id: str
    filename: str
    purpose: str
    size: int
    digest: str
    content: bytes | None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    fields: list[str] = field(default_factory=list)
    body: Any = None


class Upstream:
    def __init__(self) -> None:
        self.url = ""
        self.files: dict[str, Stored] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.stores: dict[str, dict[str, Any]] = {}
        self.seen: list[Seen] = []
        self.slow = False
        self.reject_filename = "reject-me.jsonl"
        self.batch_output = b'{"custom_id":"r1"}\n'
        """The output file of the batches created from now on (each its own copy)."""
        self.failing_reads = 0
        """Downloads of a batch output file answered 500 before the next ones succeed."""
        self.output_reads = 0
        """Downloads of batch output files (successful or not)."""
        self._n = itertools.count(1)
        self.lock = threading.Lock()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._n):06d}up"

    def last(self, method: str, path_part: str) -> Seen:
        return [s for s in self.seen if s.method == method and path_part in s.path][-1]


def _error(status: int, message: str, etype: str = "invalid_request_error", param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": etype, "param": param, "code": None}})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def up(self) -> Upstream:
        return self.server.up  # type: ignore[no-any-return]

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> bytes:
        """The body, de-chunked, in 64 KiB reads (with a pause each when the upstream is slow)."""
        out = bytearray()
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                left = size
                while left:
                    piece = self.rfile.read(min(left, 65536))
                    left -= len(piece)
                    out += piece
                    if self.up.slow:
                        time.sleep(0.002)
                self.rfile.readline()
        left = int(self.headers.get("content-length") or 0)
        while left:
            piece = self.rfile.read(min(left, 65536))
            if not piece:
                break
            left -= len(piece)
            out += piece
            if self.up.slow:
                time.sleep(0.002)
        return bytes(out)

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        seen = Seen(method, self.path, query, {k.lower(): v for k, v in self.headers.items()})
        with self.up.lock:
            self.up.seen.append(seen)
        body = self._read() if method in ("POST", "DELETE") else b""
        if path.startswith("/openai/"):  # Azure OpenAI: the resource's files and batches
            if "api-version" not in query or seen.headers.get("api-key") != "az-key":
                self._send(401, _error(401, "Azure: api-version and api-key required", "invalid_api_key"))
                return
            path = "/v1/" + path[len("/openai/"):]
        elif not seen.headers.get("authorization", "").startswith("Bearer "):
            self._send(401, _error(401, "missing key", "invalid_api_key"))
            return
        vs = re.fullmatch(r"/v1/vector_stores(?:/([^/]+))?(?:/(search|files))?(?:/([^/]+))?(?:/(content))?", path)
        if vs is not None:
            self._stores(method, vs.group(1), vs.group(2), vs.group(3), vs.group(4), body, seen)
            return
        ft = re.fullmatch(r"/v1/fine_tuning/jobs(?:/([^/]+))?(?:/(cancel|events|checkpoints))?", path)
        if ft is not None:
            self._jobs(method, ft.group(1), ft.group(2), body, seen)
            return
        m = re.fullmatch(r"/v1/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?", path)
        if m is None:
            self._send(404, _error(404, f"no route {path}"))
            return
        what, ident, tail = m.groups()
        if what == "files":
            self._files(method, ident, tail, query, body, seen)
        else:
            self._batches(method, ident, tail, query, body, seen)

    def _files(self, method: str, ident: str | None, tail: str | None, query: dict[str, str], body: bytes,
               seen: Seen) -> None:
        up = self.up
        if method == "POST" and ident is None:
            fields, filename, content = _multipart(self.headers.get("content-type", ""), body)
            seen.fields = fields
            if filename.startswith("rate-limit"):  # rate-limit-<retry-after value>.jsonl
                self.send_response(429)
                body429 = _error(429, "Rate limit reached for requests", "requests")
                self.send_header("retry-after", filename[len("rate-limit-"):-len(".jsonl")])
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body429)))
                self.end_headers()
                self.wfile.write(body429)
                return
            if filename == up.reject_filename:
                self._send(400, _error(400, "Invalid file format for Batch API. Must be .jsonl", param="file"))
                return
            fid = up.next_id("file-")
            stored = Stored(fid, filename, _field(body, "purpose"), len(content),
                            hashlib.sha256(content).hexdigest(), content if len(content) <= KEEP else None)
            up.files[fid] = stored
            self._send(200, orjson.dumps(_file_obj(stored)))
            return
        if ident is None:
            data = [_file_obj(f) for f in up.files.values() if not query.get("purpose")
                    or f.purpose == query["purpose"]]
            self._send(200, orjson.dumps({"object": "list", "data": data, "has_more": False}))
            return
        f = up.files.get(ident)
        if f is None:
            self._send(404, _error(404, f"No such File object: {ident}", param="id"))
        elif tail == "content":
            if f.purpose == "batch_output":
                with up.lock:
                    up.output_reads += 1
                    failing = up.failing_reads > 0
                    up.failing_reads -= failing
                if failing:
                    self._send(500, _error(500, "The server had an error", "server_error"))
                    return
            self._send(200, f.content or b"", "application/octet-stream")
        elif method == "DELETE":
            del up.files[ident]
            self._send(200, orjson.dumps({"id": ident, "object": "file", "deleted": True}))
        else:
            self._send(200, orjson.dumps(_file_obj(f)))

    def _batches(self, method: str, ident: str | None, tail: str | None, query: dict[str, str], body: bytes,
                 seen: Seen) -> None:
        up = self.up
        if method == "POST" and ident is None:
            req = orjson.loads(body)
            seen.body = req
            if req.get("input_file_id") not in up.files:
                self._send(400, _error(400, f"Input file {req.get('input_file_id')} not found",
                                       param="input_file_id"))
                return
            out = up.next_id("file-")
            content = up.batch_output
            up.files[out] = Stored(out, "batch_output.jsonl", "batch_output", len(content), "", content)
            bid = up.next_id("batch_")
            batch = {"id": bid, "object": "batch", "endpoint": req.get("endpoint"), "errors": None,
                     "input_file_id": req["input_file_id"], "completion_window": req.get("completion_window"),
                     "status": "completed", "output_file_id": out, "error_file_id": None, "created_at": 1700000000,
                     "request_counts": {"total": 1, "completed": 1, "failed": 0},
                     "metadata": req.get("metadata")}
            up.batches[bid] = batch
            self._send(200, orjson.dumps(batch))
            return
        if ident is None:
            self._send(200, orjson.dumps({"object": "list", "data": list(up.batches.values()), "has_more": False}))
            return
        b = up.batches.get(ident)
        if b is None:
            self._send(404, _error(404, f"No such Batch object: {ident}", param="id"))
            return
        if tail == "cancel":
            b["status"] = "cancelling"
        self._send(200, orjson.dumps(b))

    def _jobs(self, method: str, ident: str | None, tail: str | None, body: bytes, seen: Seen) -> None:
        """OpenAI's fine-tuning jobs: a created job has succeeded at once, with one result file of its own."""
        up = self.up
        if method == "POST" and ident is None:
            req = orjson.loads(body)
            seen.body = req
            for name in ("training_file", "validation_file"):
                if req.get(name) is not None and req[name] not in up.files:
                    self._send(400, _error(400, f"invalid {name}: {req[name]}", param=name))
                    return
            result = up.next_id("file-")
            up.files[result] = Stored(result, "step_metrics.csv", "fine-tune-results", 9, "", b"step,loss\n")
            jid = up.next_id("ftjob-")
            up.jobs[jid] = {"id": jid, "object": "fine_tuning.job", "model": req.get("model"), "created_at": 1700000000,
                            "fine_tuned_model": f"ft:{req.get('model')}:org::{jid}", "status": "succeeded",
                            "training_file": req["training_file"], "validation_file": req.get("validation_file"),
                            "result_files": [result], "hyperparameters": req.get("hyperparameters") or {},
                            "seed": req.get("seed", 7), "trained_tokens": 1234}
            self._send(200, orjson.dumps(up.jobs[jid]))
            return
        if ident is None:
            self._send(200, orjson.dumps({"object": "list", "data": list(up.jobs.values()), "has_more": False}))
            return
        job = up.jobs.get(ident)
        if job is None:
            self._send(404, _error(404, f"Could not find fine tune job: {ident}", param="fine_tune_id"))
        elif tail == "cancel":
            job["status"] = "cancelled"
            self._send(200, orjson.dumps(job))
        elif tail in ("events", "checkpoints"):
            item = ({"object": "fine_tuning.job.event", "id": "ftevent-1", "level": "info", "message": "done"}
                    if tail == "events" else {"object": "fine_tuning.job.checkpoint", "id": "ftckpt-1", "step_number": 3,
                                             "fine_tuning_job_id": ident})
            seen.body = dict(self._query_of())
            self._send(200, orjson.dumps({"object": "list", "data": [item], "has_more": False}))
        else:
            self._send(200, orjson.dumps(job))

    def _stores(self, method: str, ident: str | None, sub: str | None, fid: str | None, tail: str | None, body: bytes,
                seen: Seen) -> None:
        """OpenAI's vector stores: made at once, their files processed at once, a search finding the first file."""
        up = self.up
        req = orjson.loads(body) if body else {}
        seen.body = req if method == "POST" else dict(self._query_of())
        if ident is None:
            if method == "GET":
                self._send(200, orjson.dumps({"object": "list", "data": [
                    {k: v for k, v in st.items() if k != "files"} for st in up.stores.values()], "has_more": False}))
                return
            for f in req.get("file_ids") or []:
                if f not in up.files:
                    self._send(400, _error(400, f"No such file: {f}", param="file_ids"))
                    return
            sid = up.next_id("vs_")
            up.stores[sid] = {"id": sid, "object": "vector_store", "name": req.get("name"), "status": "completed",
                              "created_at": 1700000000, "metadata": req.get("metadata") or {},
                              "file_counts": {"completed": len(req.get("file_ids") or [])},
                              "files": {f: _vs_file(f, sid) for f in req.get("file_ids") or []}}
            self._send(200, orjson.dumps(_vs_obj(up.stores[sid])))
            return
        st = up.stores.get(ident)
        if st is None:
            self._send(404, _error(404, f"No vector store found with id '{ident}'.", param="vector_store_id"))
        elif sub == "search":
            hits = [{"file_id": f, "filename": up.files[f].filename if f in up.files else "?", "score": 0.9,
                     "attributes": {}, "content": [{"type": "text", "text": "hello"}]} for f in list(st["files"])[:1]]
            self._send(200, orjson.dumps({"object": "vector_store.search_results.page", "search_query": req.get("query"),
                                          "data": hits, "has_more": False, "next_page": None}))
        elif sub == "files" and fid is None:
            if method == "POST":
                if req.get("file_id") not in up.files:
                    self._send(400, _error(400, f"No such file: {req.get('file_id')}", param="file_id"))
                    return
                st["files"][req["file_id"]] = _vs_file(req["file_id"], ident)
                self._send(200, orjson.dumps(st["files"][req["file_id"]]))
            else:
                self._send(200, orjson.dumps({"object": "list", "data": list(st["files"].values()), "has_more": False}))
        elif sub == "files":
            f = st["files"].get(fid)
            if f is None:
                self._send(404, _error(404, f"No file found with id '{fid}' in vector store '{ident}'."))
            elif tail == "content":
                self._send(200, orjson.dumps({"object": "vector_store.file_content.page", "has_more": False,
                                              "next_page": None, "data": [{"type": "text", "text": "hello"}]}))
            elif method == "DELETE":
                del st["files"][fid]
                self._send(200, orjson.dumps({"id": fid, "object": "vector_store.file.deleted", "deleted": True}))
            else:
                self._send(200, orjson.dumps(f))
        elif method == "DELETE":
            del up.stores[ident]
            self._send(200, orjson.dumps({"id": ident, "object": "vector_store.deleted", "deleted": True}))
        else:
            if method == "POST":
                st.update({k: v for k, v in req.items() if k in ("name", "metadata", "expires_after")})
            self._send(200, orjson.dumps(_vs_obj(st)))

    def _query_of(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


def _vs_obj(st: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in st.items() if k != "files"}


def _vs_file(fid: str, sid: str) -> dict[str, Any]:
    return {"id": fid, "object": "vector_store.file", "vector_store_id": sid, "status": "completed",
            "created_at": 1700000000, "usage_bytes": 10, "last_error": None}


def _file_obj(f: Stored) -> dict[str, Any]:
    return {"id": f.id, "object": "file", "bytes": f.size, "created_at": 1700000000, "filename": f.filename,
            "purpose": f.purpose, "status": "processed"}


def _multipart(ctype: str, body: bytes) -> tuple[list[str], str, bytes]:
    """(field names in order, the file's name, its content) of a multipart body."""
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    assert m is not None, ctype
    delim = b"--" + m.group(1).encode()
    names: list[str] = []
    filename, content = "", b""
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part[2:].partition(b"\r\n\r\n")
        value = value[:-2]
        nm = re.search(rb'name="([^"]*)"', head)
        names.append(nm.group(1).decode() if nm else "")
        fn = re.search(rb'filename="([^"]*)"', head)
        if fn is not None:
            filename, content = fn.group(1).decode(), value
    return names, filename, content


def _field(body: bytes, name: str) -> str:
    m = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n([^\r]*)\r\n', body[:65536])
    return m.group(1).decode() if m else ""


@contextmanager
def serve() -> Iterator[Upstream]:
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.up = up  # type: ignore[attr-defined]
    up.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()
