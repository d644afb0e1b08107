"""A local stand-in for Langfuse's ingestion endpoint, checking what Langfuse checks, and the schema.

``LangfuseServer`` is a real HTTP server (``http.server`` in a thread, on a free loopback port) that
answers ``POST /api/public/ingestion`` as Langfuse does: ``401`` without the right Basic credentials,
``400`` for a body that is not ``{"batch": [...]}``, else ``207`` with ``successes`` and ``errors`` per
event, each event validated against the published OpenAPI schema (``data/langfuse_openapi_ingestion.yml``)
with ``jsonschema``; and ``GET /api/public/projects`` (the SDK's ``auth_check``), ``401`` for other keys. Tests can make it answer 500 for a while, reject events of some types, or hang.

``validate_event`` / ``unknown_fields`` are the same checks for sans-IO tests: the schema lets unknown
body fields through (Langfuse drops them silently), so ``unknown_fields`` lists the ones the schema does
not name, to catch a misspelt field.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_FILE = Path(__file__).parent / "data" / "langfuse_openapi_ingestion.yml"

_BODY_SCHEMAS = {"trace-create": "TraceBody", "generation-create": "CreateGenerationBody",
                 "generation-update": "UpdateGenerationBody", "span-create": "CreateSpanBody",
                 "span-update": "UpdateSpanBody", "event-create": "CreateEventBody", "score-create": "ScoreBody"}


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes a ``"null"`` type (``anyOf`` with
    ``null`` beside a ``$ref`` or a ``oneOf``); ``format: double`` and ``example`` are dropped."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if out.get("format") == "double":
        del out["format"]
    if node.get("nullable") is True:
        if "$ref" in out or "oneOf" in out:
            inner = {k: out.pop(k) for k in ("$ref", "oneOf") if k in out}
            out["anyOf"] = [inner, {"type": "null"}]
        elif "type" in out:
            out["type"] = [out["type"], "null"]
    return out


@cache
def openapi() -> dict[str, Any]:
    with SCHEMA_FILE.open() as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


@cache
def _validators() -> tuple[jsonschema.protocols.Validator, jsonschema.protocols.Validator]:
    doc = openapi()
    components = _json_schema(doc["components"])
    request = doc["paths"]["/api/public/ingestion"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_datetime)

    def make(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
        root = {**_json_schema(schema), "components": components}
        cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
        cls.check_schema(root)
        return cls(root, format_checker=checker)

    return make({"$ref": "#/components/schemas/IngestionEvent"}), make(request)


def _datetime(value: object) -> bool:
    """RFC 3339 date-time (what ``format: date-time`` means), checked without extra packages."""
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value and parsed.tzinfo is not None


def validate_event(event: dict[str, Any]) -> list[str]:
    """The schema's complaints about one ingestion event (``[]``: valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validators()[0].iter_errors(event)]


def validate_request(body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validators()[1].iter_errors(body)]


def _properties(name: str) -> set[str]:
    schemas = openapi()["components"]["schemas"]
    node = schemas[name]
    out = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        ref = part.get("$ref", "")
        if ref:
            out |= _properties(ref.rsplit("/", 1)[1])
    return out


def unknown_fields(event: dict[str, Any]) -> set[str]:
    """Body fields of ``event`` that its schema does not name (the schema would let them through)."""
    name = _BODY_SCHEMAS.get(event.get("type", ""))
    if name is None:
        return {f"<unknown event type {event.get('type')!r}>"}
    return set(event.get("body", {})) - _properties(name)


class LangfuseServer:
    """``with LangfuseServer("pk", "sk") as srv: ... srv.url ... srv.accepted``."""

    def __init__(self, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test",
                 tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: a certificate and its key, to answer HTTPS only."""
        self.public_key = public_key
        self.secret_key = secret_key
        self.accepted: list[dict[str, Any]] = []
        """Every event answered 201, in arrival order."""
        self.requests: list[tuple[int, int]] = []
        """(status answered, events in the request) per request."""
        self.fail_next = 0
        """Answer that many requests with ``fail_status`` before answering normally again."""
        self.fail_status = 500
        self.reject_types: set[str] = set()
        """Event types answered with a per-event 400 in the 207 answer."""
        self.release = threading.Event()
        self.release.set()
        """Cleared: requests hang until it is set (or the server stops)."""
        self.delay = 0.0
        """Seconds each ingestion request takes before it is answered."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most ingestion requests open at the same time."""
        self.proxied = 0
        """Requests that came as a proxy's (an absolute URL in the request line): ``url`` is usable as
        ``HTTP_PROXY``, the request then handled as if sent to it directly."""
        self.user_agents: set[str] = set()
        self.gets: list[tuple[str, int]] = []
        """(path, status answered) per GET (``/api/public/projects``: the SDK's ``auth_check``)."""
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="langfuse-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def hang(self) -> None:
        self.release.clear()

    def __enter__(self) -> LangfuseServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _answer(self, auth: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        if auth != expected:
            return 401, {"message": "Invalid credentials. Confirm that you've configured the correct host."}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "Invalid JSON"}
        problems = validate_request({"batch": []} if not isinstance(body, dict) else
                                    {**body, "batch": []} if isinstance(body.get("batch"), list) else body)
        if problems or not isinstance(body, dict):
            return 400, {"message": "Invalid request data", "errors": problems}
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_status, {"message": "Internal Server Error"}
        successes, errors = [], []
        for event in body["batch"]:
            eid = event.get("id", "") if isinstance(event, dict) else ""
            problems = validate_event(event) if isinstance(event, dict) else ["not an object"]
            if not problems and event.get("type") in self.reject_types:
                problems = [f"{event['type']} refused by the test"]
            if problems:
                errors.append({"id": eid, "status": 400, "message": "Invalid request data", "error": problems})
            else:
                successes.append({"id": eid, "status": 201})
                with self.lock:
                    self.accepted.append(event)
        return 207, {"successes": successes, "errors": errors}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                # the SDK's auth_check: the projects of the keys (401 for others)
                expected = "Basic " + base64.b64encode(f"{server.public_key}:{server.secret_key}".encode()).decode()
                if self.path != "/api/public/projects":
                    status, answer = 404, {"message": "not found"}
                elif self.headers.get("authorization", "") != expected:
                    status, answer = 401, {"message": "Invalid credentials. Confirm that you've configured the "
                                                      "correct host."}
                else:
                    status, answer = 200, {"data": [{"id": "project-test", "name": "test", "metadata": {}}]}
                with server.lock:
                    server.gets.append((self.path, status))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                path = self.path
                if path.startswith("http://"):  # the absolute form: sent to us as a proxy
                    path = "/" + path.split("/", 3)[3]
                    with server.lock:
                        server.proxied += 1
                if path != "/api/public/ingestion":
                    status, answer = 404, {"message": "not found"}
                else:
                    with server.lock:
                        server.in_flight += 1
                        server.max_in_flight = max(server.max_in_flight, server.in_flight)
                        server.user_agents.add(self.headers.get("user-agent", ""))
                    try:
                        if server.delay:
                            time.sleep(server.delay)
                        while not server.release.wait(0.05):
                            pass
                        status, answer = server._answer(self.headers.get("authorization", ""), raw)
                    finally:
                        with server.lock:
                            server.in_flight -= 1
                    try:
                        n = len(json.loads(raw).get("batch", []))
                    except (ValueError, AttributeError):
                        n = 0
                    with server.lock:
                        server.requests.append((status, n))
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout) while the server hung

        return Handler
