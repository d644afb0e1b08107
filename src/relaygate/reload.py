"""Config reload without a restart: checking a config, and telling every worker process to load it again.

Workers share nothing but the runtime directory ``relaygate serve`` creates (``RELAYGATE_METRICS_DIR``).
The protocol is one file in it, :data:`GENERATION_FILE`, holding a number that only grows. Whoever wants a
reload checks the new config first (:func:`load_checked`: the same checks as start-up, every concrete
adapter built once) and only then :func:`bump`\\ s the number; a config that fails the check is refused
and the gateway keeps serving the one it has. On SIGHUP the main process does exactly that
(:func:`request_reload`), instead of Granian's default of respawning every worker, which would lose each
worker's router state and cut open streams.

Each worker runs one :class:`Watcher`: every ``interval`` seconds one ``os.stat`` of the generation file
(read only when the stat changed) and, with ``server.watch_config``, one of the config file. When the
generation rose, or the file changed and then stayed the same for one more interval (an editor's write is
complete), it awaits ``on_change(reason)``, the worker's own "load, check, swap" step. Nothing of this is
on the request path. A worker that applied a generation it bumped itself calls :meth:`Watcher.seen`.

Several gateway hosts sharing one Redis (optional): :func:`publish_reload` sends a reload on a pub/sub
channel and each worker runs :func:`subscribe_reloads`, which calls ``on_change("redis")`` for a message
from another host (a host's own workers reload through its generation file) and, after Redis was
unreachable, ``on_change("redis reconnected")`` once, since pub/sub does not keep what was missed.

The last accepted config: whoever accepts a config file (``serve`` at start, the SIGHUP path, a worker's
reload) keeps its bytes as :data:`ACCEPTED_FILE` (:func:`accept`), and a worker starting while the file on
disk fails its checks starts from those (:func:`load_for_worker`), so one worker respawned while an edit
sits on disk does not take the server down (Granian exits on a crash loop).

Invariants: :func:`bump` is atomic across processes (``flock`` on a lock file, write to a temporary file,
``os.replace``), so concurrent bumps give distinct numbers and a reader never sees a half-written file;
:func:`current` never raises (0 when the file is missing or unreadable); a failing ``on_change`` is logged
on one line and the watcher keeps going; the SIGHUP path never raises into Granian's main loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
from typing import Awaitable, Callable

from relaygate.config import Config, ConfigError, default_config, load_config, validate
from relaygate.config.litellm import read_file
from relaygate.config.model import ServerSettings
from relaygate.logs import escape_controls
from relaygate.metrics import METRICS_DIR_ENV

log = logging.getLogger("relaygate")

GENERATION_FILE = "config.generation"
"""In the runtime directory: the config generation, a decimal number (0 when the file is missing)."""
ACCEPTED_FILE = "config.accepted"
"""In the runtime directory: the bytes of the last config file ``serve`` or a worker accepted
(:func:`accept`), what a worker starts from when the file on disk fails its checks (:func:`load_for_worker`)."""
LOCK_FILE = "config.generation.lock"

OnChange = Callable[[str], Awaitable[None]]
Signature = tuple[int, int, int]


# -- checking -------------------------------------------------------------------------------------------


def deployment_problems(config: Config) -> list[str]:
    """Each concrete deployment's adapter is built once here, so one that cannot work (no api_base, unusable
    credentials, an id that cannot go into a URL) is reported before any worker starts, not per request."""
    from relaygate.core.errors import GatewayError
    from relaygate.providers import make_provider, registry

    known = registry()
    problems = []
    for i, dep in enumerate(config.deployments):
        if "*" in dep.model or dep.provider not in known:
            continue  # a wildcard's adapters are built per model name; an unknown provider was skipped
        try:
            make_provider(dep)
        except GatewayError as exc:
            problems.append(f"{dep.where or f'model_list[{i}]'} ({dep.model_name}): {exc.message}")
    return problems


def limit_problems(server: ServerSettings) -> list[str]:
    problems = []
    if server.backlog < 1:
        problems.append("server.backlog: expected a positive integer")
    if server.max_connections < 0:
        problems.append("server.max_connections: expected 0 (automatic) or a positive integer")
    if not server.header_read_timeout > 0:
        problems.append("server.header_read_timeout: expected a positive number of seconds")
    return problems


def problems(config: Config) -> list[str]:
    """Everything wrong with a loaded config, as ``field: message`` strings (empty when it can be served).
    A deployment skipped for its unknown provider is not one (``config.skipped``): LiteLLM starts without it."""
    return validate(config) + limit_problems(config.server) + deployment_problems(config) + exporter_problems(config)


def exporter_problems(config: Config) -> list[str]:
    """An exporter that cannot start (``LANGFUSE_PUBLIC_KEY`` missing ...), found before any worker starts."""
    from relaygate.observe import check

    try:
        check(config.observe)
    except ConfigError as exc:
        return [str(exc)]
    return []


def load_checked(path: str | None, text: bytes | None = None) -> Config:
    """Load ``path`` (``None``: the embedded default; ``text``: its bytes, already read) and check it fully;
    a ConfigError lists every problem."""
    config = load_config(path, text) if path else default_config()
    found = problems(config)
    if found:
        raise ConfigError(config.source, "", "; ".join(found))
    return config


# -- the last accepted config -------------------------------------------------------------------------------


def _accepted_path(directory: str) -> str:
    return os.path.join(directory, ACCEPTED_FILE)


def accept(path: str | None, directory: str | None) -> Config:
    """Read ``path`` once, check it (:func:`load_checked`) and keep its bytes in ``directory`` as the last
    accepted config (atomically; a failure to keep them is one log line, never an error)."""
    if not path:
        return load_checked(None)
    text = read_file(path)
    config = load_checked(path, text)
    if directory:
        try:
            target = _accepted_path(directory)
            tmp = f"{target}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(text)
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("config: could not keep a copy of the accepted config in %s (%s)", directory, exc)
    return config


def load_for_worker(path: str | None, directory: str | None) -> Config:
    """A worker's config at start: ``path`` as it is on disk, checked as ``serve`` checks it. When that fails
    and the server accepted a config before (:func:`accept`), the worker starts from that one (parsed as the
    file ``path``: includes and relative paths resolve as before), with one error line: a worker Granian
    respawns (killed, OOM) while a refused edit sits on disk must not fail its start, which Granian's
    crash-loop rule turned into the whole server's exit."""
    try:
        return load_checked(path)
    except ConfigError as exc:
        if not path or not directory:
            raise
        try:
            with open(_accepted_path(directory), "rb") as f:
                text = f.read()
        except OSError:
            raise exc from None
        log.error("worker %d: the config file fails its checks (%s): starting from the last config the server "
                  "accepted; fix the file, then reload", os.getpid(), _describe(exc))
        return load_checked(path, text)


# -- the generation file ----------------------------------------------------------------------------------


def _read(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return max(0, int(f.read(64).strip() or b"0"))
    except (OSError, ValueError):
        return 0


def runtime_dir() -> str | None:
    """The directory ``relaygate serve`` shares with its workers (``None`` outside ``serve``)."""
    return os.environ.get(METRICS_DIR_ENV) or None


def current(directory: str | None) -> int:
    """The generation in ``directory`` (0 without a directory, file or number)."""
    return _read(os.path.join(directory, GENERATION_FILE)) if directory else 0


def bump(directory: str) -> int:
    """Add one to the generation in ``directory`` and return the new value (atomic across processes)."""
    path = os.path.join(directory, GENERATION_FILE)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        new = _read(path) + 1
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{new}\n")
        os.replace(tmp, path)
        return new
    finally:
        os.close(fd)  # releases the lock


def _signature(path: str | None) -> Signature | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
    return escape_controls(text)


# -- the main process: SIGHUP -----------------------------------------------------------------------------


def request_reload(config_path: str | None, directory: str | None) -> int | None:
    """Check the config at ``config_path`` and, when it can be served, bump the generation in ``directory``
    so every worker loads it; returns the new generation, or ``None`` when refused. Logs one line either
    way (and the config's warnings); never raises (it runs in a signal handler)."""
    try:
        if not config_path:
            log.warning("config reload: serving the embedded default config, no file to reload")
            return None
        if not directory:
            log.warning("config reload: no runtime directory (%s): no worker to tell", METRICS_DIR_ENV)
            return None
        try:
            config = accept(config_path, directory)
        except ConfigError as exc:
            log.error("config reload refused: %s", _describe(exc))
            return None
        for w in config.warnings:
            log.warning("config %s: %s", config.source, w)
        generation = bump(directory)
        log.info("config reload: generation %d", generation)
        return generation
    except Exception as exc:  # a bug here must not take the main process (and every worker) down
        log.error("config reload refused: %s", _describe(exc))
        return None


# -- the workers: Watcher ---------------------------------------------------------------------------------


class Watcher:
    """One worker's reload trigger: polls the generation file (and the config file with ``watch_file``).

    Create it before the worker loads its config, so a change in between is not missed; :meth:`start`
    from the running loop (lifespan startup), :meth:`aclose` at shutdown.
    """

    def __init__(self, directory: str | None, config_path: str | None, on_change: OnChange, *,
                 interval: float, watch_file: bool) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError("interval: expected a positive number of seconds")
        self.interval = interval
        self.on_change = on_change
        self._gen_path = os.path.join(directory, GENERATION_FILE) if directory else None
        self._file_path = config_path if watch_file else None
        self.generation = current(directory)
        """The highest generation this worker has applied (or started with)."""
        self._gen_sig = _signature(self._gen_path)
        self._file_applied = self._file_seen = _signature(self._file_path)
        self._task: asyncio.Task[None] | None = None

    def seen(self, generation: int) -> None:
        """This worker applied ``generation`` itself (it bumped it): the watcher will not fire for it."""
        if generation > self.generation:
            self.generation = generation

    def poll(self) -> str | None:
        """One check (two stats at most): the reason to reload, or ``None``. The loop calls it."""
        reason = None
        sig = _signature(self._gen_path)
        if sig != self._gen_sig:
            self._gen_sig = sig
            generation = _read(self._gen_path) if self._gen_path and sig is not None else 0
            if generation > self.generation:
                self.generation = generation
                reason = f"generation {generation}"
        if self._file_path is not None:
            fsig = _signature(self._file_path)
            if reason is not None:  # the reload reads the file as it is now
                self._file_applied = fsig
            elif fsig is not None and fsig != self._file_applied and fsig == self._file_seen:
                self._file_applied = fsig  # changed, then unchanged for one interval: the write is done
                reason = "config file changed"
            self._file_seen = fsig
        return reason

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="relaygate-config-watcher")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            reason = self.poll()
            if reason is not None:
                await _notify(self.on_change, reason)


# -- several hosts: Redis pub/sub (optional) ----------------------------------------------------------------

RELOAD_CHANNEL = "relaygate:config-reload"


async def publish_reload(url: str, generation: int, *, origin: str = "", channel: str = RELOAD_CHANNEL,
                         timeout: float = 2.0) -> int:
    """Ask every host subscribed on the Redis at ``url`` to reload; returns how many subscribers got it.
    Subscribers started with the same ``origin`` (the sender's own workers) ignore the message."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return int(await client.publish(channel, f"{generation} {origin}"))
    finally:
        await client.aclose()


async def subscribe_reloads(url: str, on_change: OnChange, *, origin: str = "", channel: str = RELOAD_CHANNEL,
                            retry: float = 1.0) -> None:
    """Run until cancelled (as a task): ``on_change("redis")`` for each reload another origin published.
    Redis unreachable: one warning, a new try every ``retry`` seconds, then ``on_change("redis
    reconnected")``. A failing ``on_change`` is logged on one line, as the Watcher does."""
    from redis.asyncio import Redis

    down = False
    while True:
        client = Redis.from_url(url, socket_connect_timeout=max(retry, 1.0), health_check_interval=30)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                if down:
                    down = False
                    log.info("config reload: Redis pub/sub %s subscribed again", channel)
                    await _notify(on_change, "redis reconnected")
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                    if origin and text.partition(" ")[2] == origin:
                        continue
                    await _notify(on_change, "redis")
        except Exception as exc:  # Redis away (connection refused, reset, timeout): try again
            if not down:
                down = True
                log.warning("config reload: cannot listen on Redis pub/sub (retrying every %gs): %s", retry,
                            _describe(exc))
        finally:
            await client.aclose()
        await asyncio.sleep(retry)


async def _notify(on_change: OnChange, reason: str) -> None:
    """Await one reload; its failure is one log line (the traceback at debug level), never the caller's."""
    try:
        await on_change(reason)
    except Exception as exc:
        log.error("config reload failed (%s): %s", reason, _describe(exc))
        log.debug("config reload failure", exc_info=True)
