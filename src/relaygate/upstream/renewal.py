"""What every credential the IO shell renews shares: its renewal clock, and reading a platform's token file.

A Vertex service-account token, temporary AWS keys and an Entra ID token are all renewed the same way
(``upstream.calls.refresh_token``): the credential builds the renewal request and takes the answer, the shell
sends it, at most one renewal in flight while the old credential still serves. :class:`Renewable` is the
clock part: renewed :data:`REFRESH_EARLY` seconds before expiry, considered usable until ten seconds before
it. :func:`read_token_file` reads what a platform mounts (EKS's web identity token, AKS's federated token)
at each renewal, since the platform rotates it. Sans IO apart from that one read.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core import errors

REFRESH_EARLY = 300.0
"""Seconds before expiry that a credential is renewed."""


class Renewable:
    """A renewed credential's clock; a subclass says whether it holds a credential yet (:meth:`held`)."""

    __slots__ = ("expires_at", "refreshing")

    def __init__(self) -> None:
        self.expires_at = 0.0
        """Epoch seconds the held credential expires at (0: none held)."""
        self.refreshing = False
        """A renewal is in flight (``upstream.calls.refresh_token`` sets it)."""

    def held(self) -> bool:
        raise NotImplementedError

    def needs_refresh(self, now: float) -> bool:
        return not self.held() or now >= self.expires_at - REFRESH_EARLY

    def valid(self, now: float) -> bool:
        return self.held() and now < self.expires_at - 10.0


def read_token_file(path: str, variable: str, prefix: str) -> str:
    """The token in ``path`` (``variable`` names where it came from in the error, a 500 after ``prefix``)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise errors.GatewayError(f"{prefix} cannot read {variable} {path}: {exc.strerror}", status=500) from None


def json_object(body: bytes) -> dict[str, Any]:
    """An identity endpoint's answer as a JSON object (``{}`` when it is anything else)."""
    try:
        obj = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


__all__ = ["REFRESH_EARLY", "Renewable", "json_object", "read_token_file"]
