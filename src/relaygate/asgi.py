"""The ASGI entry point Granian imports: ``relaygate.asgi:app``.

``app`` is the HTTP shell's :class:`~relaygate.http.app.App` around a factory that builds this worker's
:class:`~relaygate.gateway.Gateway` from ``RELAYGATE_CONFIG`` (the embedded default when unset), once per
worker process, on the lifespan startup (or the first request of a server without lifespan).
"""

from __future__ import annotations

import logging
import os

from relaygate.config.model import Config
from relaygate.gateway import Gateway
from relaygate.http.app import App

log = logging.getLogger("relaygate")


def build_gateway(config: Config | None = None) -> Gateway:
    from relaygate import reload
    from relaygate.core import _ext
    from relaygate.logs import setup_worker_logging

    setup_worker_logging()
    path = os.environ.get("RELAYGATE_CONFIG") or None
    if config is None:  # checked as `serve` checked it; the last accepted one when the file now fails
        config = reload.load_for_worker(path, reload.runtime_dir())
    gw = Gateway(config, config_path=path)
    log.info("worker %d ready: %d deployments, transport=%s, extensions: %s", os.getpid(),
             len(config.deployments), type(gw.transport).__name__, _ext.describe())
    for comp, err in _ext.FAILED.items():
        log.warning("compiled %s did not load, using the pure-Python twin: %s", comp, err)
    return gw


app = App(build_gateway)

__all__ = ["App", "Gateway", "app", "build_gateway"]
