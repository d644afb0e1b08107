"""A virtual key's ``allowed_routes`` on every route (LiteLLM's ``RouteChecks.is_virtual_key_allowed_to_call_route``).

What it owns: :class:`KeyRoutes`, the compiled list of a key whose ``allowed_routes`` is not empty
(``Principal.routes``; None for every other principal, so a route pays one attribute test), and its verdict on
a request path. LiteLLM runs this check for every route a virtual key calls, whatever its role; relaygate does
on the LLM routes (``pipeline``), the Responses state routes, files and batches, the pass-through routes and
every route that authenticates through ``management.common.caller_principal`` (management, ``/v1/models``,
``/health``, ``/metrics`` with its auth on ...).

Matching, as LiteLLM's: an entry naming a route group (``llm_api_routes``, ``openai_routes``, ``info_routes``,
``management_routes`` ... as ``auth.jwt_routes.GROUPS`` holds them) allows its paths; any other entry allows the
path itself and every path under it (``/v1/chat`` allows ``/v1/chat/completions``, not ``/v1/chatter``), and an
entry with ``*`` is a glob (``/v1/*``). A path outside the list is LiteLLM's 403 ``Virtual key is not allowed to
call this route. Only allowed to call routes: [...]. Tried to call route: <path>`` (the path cut at 200
characters). Verdicts are memoised per key (bounded), so a key pays a dict lookup per request after its first
call to a path. Sans IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from relaygate.auth.jwt_routes import GROUPS, RouteSet
from relaygate.core.errors import GatewayError

__all__ = ["KeyRoutes", "of_key"]

_MEMO_MAX = 1024


class KeyRoutes:
    """One key's ``allowed_routes``, compiled (see the module docstring)."""

    __slots__ = ("entries", "_groups", "_under", "_globs", "_memo")

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = [e for e in entries if isinstance(e, str) and e]
        self._groups = RouteSet([e for e in self.entries if e in GROUPS])
        self._under = tuple(e.rstrip("/") or "/" for e in self.entries if e not in GROUPS and "*" not in e)
        self._globs = tuple(re.compile("^" + ".*".join(re.escape(p) for p in e.split("*")) + "$")
                            for e in self.entries if e not in GROUPS and "*" in e)
        self._memo: dict[str, bool] = {}

    def allows(self, path: str) -> bool:
        verdict = self._memo.get(path)
        if verdict is None:
            bare = path[:-1] if len(path) > 1 and path.endswith("/") else path
            verdict = (any(bare == u or (u != "/" and bare.startswith(u + "/")) for u in self._under)
                       or any(g.match(bare) for g in self._globs) or self._groups.allows(bare))
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[path] = verdict
        return verdict

    def check(self, path: str) -> None:
        """LiteLLM's 403 unless the key may call ``path``."""
        if not self.allows(path):
            raise GatewayError(f"Virtual key is not allowed to call this route. Only allowed to call routes: "
                               f"{self.entries}. Tried to call route: {path[:200]}", status=403, type="auth_error",
                               param="None")


def of_key(records: tuple[object, ...]) -> KeyRoutes | None:
    """The :class:`KeyRoutes` of a stored key (its row first in ``records``), or None when it has no list."""
    allowed = getattr(records[0], "allowed_routes", None) if records else None
    if not allowed or not isinstance(allowed, list):
        return None
    routes = KeyRoutes(allowed)
    return routes if routes.entries else None
