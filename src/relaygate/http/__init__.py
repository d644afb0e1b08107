"""The HTTP shell: everything between Granian and the gateway that knows nothing of LLMs.

- ``app``: the ASGI callable (HTTP scopes and lifespan), built around a factory;
- ``routes``: the route table (method + path, path parameters, mounts; 404 / 405 with ``Allow``);
- ``types``: ASGI message types;
- ``body``: reading a request body within size, time and rate limits;
- ``respond``: JSON and error responses, client disconnects, SSE keepalives.
"""

from relaygate.http.app import App
from relaygate.http.body import BodyLimits, ClientGone, read_body
from relaygate.http.respond import DisconnectWatch, Keepalive, send_error, send_json
from relaygate.http.routes import RouteTable
from relaygate.http.types import Receive, Scope, Send

__all__ = ["App", "BodyLimits", "ClientGone", "DisconnectWatch", "Keepalive", "Receive", "RouteTable", "Scope",
           "Send", "read_body", "send_error", "send_json"]
