"""Renewing an exporter's temporary credentials in its sending task (AWS keys for ``s3`` / ``aws_sqs``, Google
access tokens for ``gcs_bucket``).

What it owns: :class:`Renewal`, one exporter's renewal state: a source (``upstream.aws_identity.AwsCredentials``,
``providers.vertex.TokenSource``, ``gcs_bucket.MetadataToken``: ``needs_refresh``, ``valid``, ``expires_at``) is
refreshed through ``upstream.calls.refresh_token`` when due, by one task at a time (the concurrent uploads of a
flush wait for one renewal), each new credential logged once with its expiry. A failed renewal while the credential
held is still valid is a warning at most once a minute and the attempt goes on with it; once it is no longer valid,
the attempt fails with a ``PostError`` (retried, then dropped and counted by the exporter's shell).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from relaygate.core.errors import GatewayError
from relaygate.observe.post import PostError
from relaygate.upstream.calls import refresh_token
from relaygate.upstream.identity import identity_client

__all__ = ["WARN_EVERY", "Renewal"]

log = logging.getLogger("relaygate.observe")

WARN_EVERY = 60.0
"""Seconds between two warnings of failed renewals while the credential held still serves."""


class Renewal:
    """One exporter's renewal of ``source`` (see the module docstring). ``name``: the exporter, for logs;
    ``what``: where the credential comes from, as logged (never a secret); ``held``: the warning's clause on what still
    serves; ``ident``: the current credential's identity (a new one is logged); ``strip``: prefixes taken off a
    failure's message."""

    __slots__ = ("source", "name", "what", "held", "ident", "strip", "_lock", "_warned_at")

    def __init__(self, source: Any, name: str, what: str, held: str, ident: Callable[[], object],
                 strip: tuple[str, ...] = ()) -> None:
        self.source = source
        self.name = name
        self.what = what
        self.held = held
        self.ident = ident
        self.strip = strip
        self._lock: asyncio.Lock | None = None
        self._warned_at = -1e18

    async def renew(self) -> None:
        """Renew the credential when due; ``PostError`` when none can be had."""
        src = self.source
        if not src.needs_refresh(time.time()):
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                before = self.ident()
                await refresh_token(src, identity_client())
                if self.ident() != before:
                    log.info("%s exporter: %s, valid until %s UTC (renewed five minutes before)", self.name,
                             self.what, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(src.expires_at)))
            except Exception as exc:
                why = exc.message if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
                for prefix in self.strip:
                    why = why.removeprefix(prefix)
                why = f"{self.what}: {why[:300]}"
                if not src.valid(time.time()):
                    raise PostError(why) from None
                now = time.monotonic()
                if now - self._warned_at >= WARN_EVERY:
                    self._warned_at = now
                    log.warning("%s exporter: renewing failed, %s (%s)", self.name, self.held, why)
