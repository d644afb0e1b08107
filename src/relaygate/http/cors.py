"""CORS for browser clients: preflights answered, ``Access-Control-*`` headers on every response.

What it owns: the decision, from the ``[server] cors_*`` settings, of what a cross-origin request gets, and
the thin wrapper around ``send`` that adds it. It behaves as Starlette's ``CORSMiddleware`` (which LiteLLM's
proxy runs with ``allow_methods=["*"]``, ``allow_headers=["*"]`` and, by default, ``allow_origins=["*"]``
without credentials), so a browser app that works against LiteLLM works against relaygate:

- a **preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) on any path, known or
  not, is answered here: 200 ``OK`` with ``Access-Control-Allow-Origin`` / ``-Methods`` / ``-Headers`` /
  ``-Max-Age`` (/ ``-Allow-Credentials``), or 400 ``Disallowed CORS origin, method, headers`` naming what
  was refused. An ``OPTIONS`` without ``Access-Control-Request-Method`` is an ordinary request (a 405);
- any other request with ``Origin`` gets ``Access-Control-Allow-Origin`` (plus ``-Allow-Credentials`` and
  ``-Expose-Headers`` as configured) on its response head, whatever answers it: a JSON body, an error
  (401, 404, 405, 429, 500) or an SSE stream;
- ``*`` origins without credentials answer ``*``; an explicit origin list, or ``*`` with credentials
  (Starlette's rule: a credentialed answer may not be ``*``), echoes the request's origin and adds
  ``Vary: Origin``.

Invariants: nothing a client sent reaches a response unchecked. An origin is echoed only when it is one of
the configured origins (validated at load) or, with ``*`` and credentials, when it has the shape of an
origin (``scheme://host[:port]``, no other characters; anything else gets ``*`` and no credentials); the
requested headers mirrored by ``allow_headers = ["*"]`` must be a comma-separated list of header names,
else the preflight is a 400. A request without ``Origin`` costs the gateway one scan of its header names
and nothing else; with one, a precomputed header list is appended to the response head (the head dict and
its list are copied, never mutated: some are shared constants).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from relaygate.http.respond import send_body
from relaygate.http.types import Headers, Outgoing, Scope, Send

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""What ``allow_methods = ["*"]`` stands for (Starlette's list)."""
SAFELISTED_HEADERS = ("accept", "accept-language", "content-language", "content-type")
"""Request headers a preflight always allows (the CORS-safelisted ones)."""

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")
_HEADER_LIST = re.compile(rb"[ \t]*" + _TOKEN.encode() + rb"[ \t]*(?:,[ \t]*" + _TOKEN.encode() + rb"[ \t]*)*\Z")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)(?::[0-9]{1,5})?"
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://" + _HOST + r"\Z")
_ORIGIN_BYTES = re.compile(rb"[a-z][a-z0-9+.\-]*://" + _HOST.encode() + rb"\Z")
_MAX_ORIGIN = 2048

ACAO = b"access-control-allow-origin"
_VARY = (b"vary", b"Origin")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class CorsSettings(Protocol):
    """The settings a policy is built from (``config.model.ServerSettings`` has them)."""

    @property
    def cors_allow_origins(self) -> Sequence[str]: ...
    @property
    def cors_allow_credentials(self) -> bool | None: ...
    @property
    def cors_allow_methods(self) -> Sequence[str]: ...
    @property
    def cors_allow_headers(self) -> Sequence[str]: ...
    @property
    def cors_expose_headers(self) -> Sequence[str]: ...
    @property
    def cors_max_age(self) -> int: ...


def problems(s: CorsSettings) -> list[str]:
    """What is wrong with ``s``'s CORS settings, one message per value naming the field (empty: valid)."""
    out: list[str] = []
    for i, o in enumerate(s.cors_allow_origins):
        if o != "*" and o != "null" and not (len(o) <= _MAX_ORIGIN and _ORIGIN.match(o)):
            out.append(f"server.cors_allow_origins[{i}]: {o!r} is not an origin: expected '*' or "
                       "scheme://host[:port] (no path, no trailing slash, no wildcard inside)")
    for field in ("cors_allow_methods", "cors_allow_headers", "cors_expose_headers"):
        for i, v in enumerate(getattr(s, field)):
            if not _TOKEN_RE.match(v):
                out.append(f"server.{field}[{i}]: {v!r} is not a method or header name (or '*')")
    if isinstance(s.cors_max_age, bool) or not isinstance(s.cors_max_age, int) or s.cors_max_age < 0:
        out.append("server.cors_max_age: expected a whole number of seconds >= 0")
    return out


class CorsPolicy:
    """The CORS answers of one config; built once per config snapshot, read-only afterwards."""

    __slots__ = ("source", "enabled", "all_origins", "echo", "origins", "methods", "all_headers", "headers",
                 "_preflight", "_star", "_echoed")

    def __init__(self, s: CorsSettings) -> None:
        found = problems(s)
        if found:
            raise ValueError("; ".join(found))
        self.source = s
        """The settings object this policy was built from (the gateway rebuilds it when the config changes)."""
        origins = list(s.cors_allow_origins)
        self.enabled = bool(origins)
        self.all_origins = "*" in origins
        credentials = s.cors_allow_credentials if s.cors_allow_credentials is not None else not self.all_origins
        self.echo = credentials or not self.all_origins
        """Answer with the request's (allowed) origin and ``Vary: Origin`` instead of ``*``."""
        self.origins = frozenset(o.lower().encode() for o in origins if o != "*")
        methods = ALL_METHODS if "*" in s.cors_allow_methods else tuple(s.cors_allow_methods)
        self.methods = frozenset(m.encode() for m in methods)
        self.all_headers = "*" in s.cors_allow_headers
        allowed = sorted(set(SAFELISTED_HEADERS) | {h.lower() for h in s.cors_allow_headers})
        self.headers = frozenset(h.encode() for h in allowed)

        extra: Headers = []  # on every allowed answer: credentials, exposed headers
        if credentials:
            extra.append((b"access-control-allow-credentials", b"true"))
        if s.cors_expose_headers:
            extra.append((b"access-control-expose-headers", ", ".join(s.cors_expose_headers).encode()))
        self._echoed = extra
        self._star: Headers = [(ACAO, b"*"), *(h for h in extra if h[0] != b"access-control-allow-credentials")]
        pre: Headers = [_VARY] if self.echo else [(ACAO, b"*")]
        pre.append((b"access-control-allow-methods", ", ".join(methods).encode()))
        pre.append((b"access-control-max-age", b"%d" % s.cors_max_age))
        if not self.all_headers:
            pre.append((b"access-control-allow-headers", ", ".join(allowed).encode()))
        if credentials:
            pre.append((b"access-control-allow-credentials", b"true"))
        self._preflight = pre

    def allow(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value ``origin`` gets, or None when it is refused."""
        if not self.echo:
            return b"*"
        if self.all_origins:  # credentials: echo what has the shape of an origin, nothing else
            return origin if len(origin) <= _MAX_ORIGIN and _ORIGIN_BYTES.match(origin) else None
        return origin if origin in self.origins else None

    def response_headers(self, origin: bytes) -> Headers:
        """What a response to a (non-preflight) request from ``origin`` gets added; never mutate it."""
        allowed = self.allow(origin)
        if allowed is None:
            # a refused origin is told nothing but that the answer depends on it; with '*' and credentials,
            # an origin that cannot be echoed still gets '*' (without credentials)
            return self._star if self.all_origins else [_VARY]
        if not self.echo:
            return self._star
        return [(ACAO, allowed), _VARY, *self._echoed]

    def preflight(self, origin: bytes, method: bytes, requested: bytes | None) -> tuple[int, Headers, bytes]:
        """The answer to a preflight: status, headers, body (Starlette's texts)."""
        headers = list(self._preflight)
        failures: list[bytes] = []
        if self.echo:
            allowed = self.allow(origin)
            if allowed is None:
                failures.append(b"origin")
            else:
                headers.append((ACAO, allowed))
        if method not in self.methods:
            failures.append(b"method")
        if requested:
            if self.all_headers:
                if _HEADER_LIST.match(requested):
                    headers.append((b"access-control-allow-headers", requested))
                else:
                    failures.append(b"headers")
            elif any(h.strip().lower() not in self.headers for h in requested.split(b",")):
                failures.append(b"headers")
        headers.append(_TEXT)
        if failures:
            return 400, headers, b"Disallowed CORS " + b", ".join(failures)
        return 200, headers, b"OK"

    async def apply(self, scope: Scope, origin: bytes, send: Send) -> Send | None:
        """For a request carrying ``Origin``: answer it when it is a preflight (returns None), else return
        the ``send`` that adds this policy's headers to the response head."""
        if not self.enabled:
            return send
        if scope["method"] == "OPTIONS":
            method = requested = None
            for name, value in scope["headers"]:
                if name == b"access-control-request-method":
                    method = value
                elif name == b"access-control-request-headers":
                    requested = value
            if method is not None:
                status, headers, body = self.preflight(origin, method, requested)
                await send_body(send, status, body, headers)
                return None
        return _with_headers(send, self.response_headers(origin))


def _with_headers(send: Send, extra: Headers) -> Send:
    async def cors_send(message: Outgoing) -> None:
        if message["type"] == "http.response.start":
            await send({"type": "http.response.start", "status": message["status"],
                        "headers": [*message["headers"], *extra]})
        else:
            await send(message)

    return cors_send
