"""The route table: method + path (static, with path parameters, or a mounted prefix) -> handler.

What it owns: deciding which handler answers a request, and the two errors that decision can end in —
404 for a path no route knows, 405 with an ``Allow`` header for a known path asked with another method.
Every route of the gateway goes through one :meth:`RouteTable.match`, so an admin API (GET/POST/PUT/DELETE
on ``/key/{key_id}``-style paths) and a UI under a prefix plug in by adding routes, never by touching the
shell.

Invariants:
- Static paths are one dict lookup (the LLM routes are static: this is the hot path). Parameterised routes
  are tried only when no static path matched, most specific first (more literal segments win; among equal
  ones, the order they were added). Mounts are tried last, longest prefix first.
- ``{name}`` matches one non-empty path segment, ``{name:path}`` one or more segments (a deployment name
  may contain ``/``). Parameter values are the path's text as Granian decoded it; handlers validate them.
- ``HEAD`` is accepted wherever ``GET`` is.
- A trailing slash is served like the path without it (``/v1/models/``), tried only once nothing else
  matched: LiteLLM's FastAPI app redirects such paths (307, ``redirect_slashes``); answering in place gives
  clients the same result without a second round trip, and keeps POST bodies whatever the client does
  with redirects.
- Matching never raises anything but :class:`~relaygate.core.errors.GatewayError` (404 / 405).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType

from relaygate.core import errors

Handler = Callable[..., Awaitable[None]]
Params = Mapping[str, str]
NO_PARAMS: Params = MappingProxyType({})

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


class _Pattern:
    __slots__ = ("path", "regex", "literals", "methods", "order")

    def __init__(self, path: str, order: int) -> None:
        self.path = path
        self.order = order
        self.methods: dict[str, Handler] = {}
        parts, pos, literals = [], 0, 0
        for m in _PARAM.finditer(path):
            literal = path[pos:m.start()]
            parts.append(re.escape(literal))
            literals += literal.count("/") + (1 if literal.strip("/") else 0)
            parts.append(f"(?P<{m.group(1)}>{'[^/]+(?:/[^/]+)*' if m.group(2) else '[^/]+'})")
            pos = m.end()
        tail = path[pos:]
        parts.append(re.escape(tail))
        literals += tail.count("/") + (1 if tail.strip("/") else 0)
        self.literals = literals
        self.regex = re.compile("".join(parts) + r"\Z")


class Match:
    """What :meth:`RouteTable.match` found: the handler and the path parameters."""

    __slots__ = ("handler", "params")

    def __init__(self, handler: Handler, params: Params) -> None:
        self.handler = handler
        self.params = params


def _methods(methods: str | Iterable[str]) -> list[str]:
    ms = [methods] if isinstance(methods, str) else list(methods)
    out = [m.upper() for m in ms]
    if "GET" in out and "HEAD" not in out:
        out.append("HEAD")
    return out


class RouteTable:
    """Routes by method and path; build once per worker, then :meth:`match` on every request."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Match]] = {}
        self._patterns: list[_Pattern] = []
        self._by_path: dict[str, _Pattern] = {}
        self._mounts: list[tuple[str, dict[str, Handler]]] = []

    def add(self, methods: str | Iterable[str], path: str, handler: Handler) -> None:
        """Route ``methods`` on ``path`` (``/key/{key_id}``, ``/x/{rest:path}/y`` or a static path) to
        ``handler``. Adding the same method and path twice is an error (a wiring bug)."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        if _PARAM.search(path) is None:
            table = self._static.setdefault(path, {})
            for m in _methods(methods):
                if m in table:
                    raise ValueError(f"route {m} {path} added twice")
                table[m] = Match(handler, NO_PARAMS)
            return
        pat = self._by_path.get(path)
        if pat is None:
            pat = self._by_path[path] = _Pattern(path, len(self._patterns))
            self._patterns.append(pat)
            self._patterns.sort(key=lambda p: (-p.literals, p.order))
        for m in _methods(methods):
            if m in pat.methods:
                raise ValueError(f"route {m} {path} added twice")
            pat.methods[m] = handler

    def mount(self, prefix: str, handler: Handler, methods: Iterable[str] = ("GET", "POST", "PUT", "PATCH",
                                                                                 "DELETE")) -> None:
        """Every path equal to ``prefix`` or under ``prefix + "/"`` goes to ``handler`` (``params["path"]`` is
        the rest, without the leading slash)."""
        prefix = prefix.rstrip("/")
        self._mounts.append((prefix, {m: handler for m in _methods(methods)}))
        self._mounts.sort(key=lambda x: -len(x[0]))

    def match(self, method: str, path: str) -> Match:
        """The handler for ``method`` ``path``; 404 when no route knows the path, 405 (with ``Allow``) when
        it is known under other methods."""
        table = self._static.get(path)
        if table is not None:
            found = table.get(method)
            if found is not None:
                return found
            raise _not_allowed(method, path, table)
        allowed: set[str] = set()
        for pat in self._patterns:
            m = pat.regex.match(path)
            if m is None:
                continue
            handler = pat.methods.get(method)
            if handler is not None:
                return Match(handler, MappingProxyType(m.groupdict()))
            allowed.update(pat.methods)
        for prefix, handlers in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                handler = handlers.get(method)
                if handler is not None:
                    return Match(handler, MappingProxyType({"path": path[len(prefix) + 1:]}))
                allowed.update(handlers)
                break
        if allowed:
            raise _not_allowed(method, path, allowed)
        if len(path) > 1 and path.endswith("/"):
            try:
                return self.match(method, path[:-1])
            except errors.NotFound:
                pass
        raise errors.NotFound(f"Route not found: {method} {path}", code="404")

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, path pattern) known, mounts as ``prefix/{path:path}`` (for ``/routes``-style listings)."""
        out = [(m, p) for p, t in self._static.items() for m in t]
        out += [(m, p.path) for p in sorted(self._patterns, key=lambda p: p.order) for m in p.methods]
        out += [(m, prefix + "/{path:path}") for prefix, hs in self._mounts for m in hs]
        return out


    def handlers(self) -> list[tuple[str, str, Handler]]:
        """Every (method, path pattern, handler), in the order of :meth:`routes`."""
        out = [(m, p, match.handler) for p, t in self._static.items() for m, match in t.items()]
        out += [(m, p.path, h) for p in sorted(self._patterns, key=lambda p: p.order) for m, h in p.methods.items()]
        out += [(m, prefix + "/{path:path}", h) for prefix, hs in self._mounts for m, h in hs.items()]
        return out


def _not_allowed(method: str, path: str, allowed: Iterable[str]) -> errors.GatewayError:
    allow = ", ".join(sorted(allowed))
    return errors.GatewayError(f"Method {method} not allowed on {path}", status=405, type="invalid_request_error",
                               headers=[(b"allow", allow.encode())])


__all__ = ["NO_PARAMS", "Handler", "Match", "Params", "RouteTable"]
