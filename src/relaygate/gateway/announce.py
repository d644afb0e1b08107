"""What a worker tells the others, and the Redis it tells them through: the Redis URL of ``router_settings``
(:func:`redis_url_of`), a reload announced on Redis (:func:`publish_reload_to`), changed keys announced
(:func:`publish_keys`), and a retired limiter closed once its requests ended (:func:`close_later`). Each
announcement runs as a background task of ``gateway.core.Gateway``; a failure is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
import os
from urllib.parse import quote

from relaygate.auth.changes import KeyChanges
from relaygate.config.model import Config
from relaygate.config.redis_tls import tls_for_url, tls_from_env, url_with_tls
from relaygate.reload import publish_reload
from relaygate.router import Router

__all__ = ["close_later", "publish_keys", "publish_reload_to", "redis_url_of"]

log = logging.getLogger("relaygate")


def redis_url_of(config: Config) -> str | None:
    """The Redis the limiter uses (``router_settings``), as a URL for redis-py, or None without one; with
    the TLS LiteLLM's ``REDIS_SSL*`` variables ask for spelled in it (``config.redis_tls.url_with_tls``)."""
    s = config.router
    if s.redis_url:
        url = s.redis_url
    elif s.redis_host:
        auth = f":{quote(s.redis_password, safe='')}@" if s.redis_password else ""
        url = f"redis://{auth}{s.redis_host}:{s.redis_port or 6379}" + (f"/{s.redis_db}" if s.redis_db else "")
    else:
        return None
    return url_with_tls(url, tls_for_url(url, tls_from_env(os.environ), "router_settings.redis_url"))


async def publish_reload_to(url: str, generation: int, origin: str) -> None:
    try:
        n = await publish_reload(url, generation, origin=origin)
        log.info("config reload announced to %d subscriber(s) on Redis", n)
    except Exception as exc:  # the other hosts can still be told by SIGHUP or their own /config/reload
        log.warning("config reload could not be announced on Redis: %s: %s", type(exc).__name__, exc)


async def publish_keys(changes: KeyChanges, hashes: list[str] | None) -> None:
    try:
        if changes.shared is not None and hashes:
            await changes.shared.forget_now(hashes)  # before the others hear of it: they must not read it back
        await changes.publish(hashes)
    except Exception as exc:  # the change poll still reaches every worker within a second
        log.warning("key change could not be announced on Redis: %s: %s", type(exc).__name__, exc)


async def close_later(router: Router, grace: float) -> None:
    """Close the limiter ``router`` did not keep, once requests that started on the old one had time to end
    (the old router itself is never closed: it shares the transport and, often, the limiter)."""
    try:
        await asyncio.sleep(grace)
    finally:
        await router.close_retired()

