"""``relaygate`` command line: ``serve``, ``check-config``, ``db upgrade``, ``db import-litellm``, ``version``.

LiteLLM start scripts keep working: ``relaygate --config config.yaml --port 4000 --num_workers 2`` (no
sub-command) means ``serve``, and ``--num_workers``, ``--detailed_debug`` and ``--debug`` are accepted.
``serve`` loads and checks the config once in the main process (printing each warning once), then hands
the file to Granian's worker processes through ``RELAYGATE_CONFIG``; each worker loads it again in its own
lifespan startup (shared-nothing).

Client connection limits (``server.backlog``, ``max_connections``, ``header_read_timeout``): Granian
holds one slot of its ``backpressure`` per open connection, idle ones included, and stops accepting when
they are used up, so a new client waits in the listen queue behind connections that send nothing. Its
default (backlog / workers, 2,048 here) let 2,100 idle sockets lock a 1-worker gateway out for the 30 s of
Granian's header timeout. So ``serve`` raises its soft open-file limit to the hard limit (workers inherit
it), sizes the slots from that limit (less a reserve for upstream sockets) unless ``max_connections`` is
set, and closes a connection that has not sent a full request head within ``header_read_timeout``, which
in Granian's HTTP/1 is also the idle time allowed between two requests on a keep-alive connection.

SIGHUP to the main process reloads the config without a restart: Granian's own handler (respawn every
worker: router state lost, streams cut) is replaced by :func:`relaygate.reload.request_reload`, which
checks the file like start-up does and, when it can be served, bumps the generation the workers poll
(``relaygate.reload.Watcher``); a config that fails the check is refused with one log line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml  # type: ignore[import-untyped]

from relaygate import __version__, reload
from relaygate.config import ConfigError, load_config
from relaygate.config.env import load_dotenv_file
from relaygate.config.loader import MASTER_KEY_ENV, single_model
from relaygate.config.model import ServerSettings
from relaygate.http import sched
from relaygate.http.app import SUPERVISOR_ENV, WORKERS_ENV
from relaygate.logs import escape_controls, setup_logging
from relaygate.metrics import METRICS_DIR_ENV
from relaygate.store import StoreError, database_url, embedded_default_url, make_store, open_store, redact_url
from relaygate.store.pgurl import url_from_env
from relaygate.store.sealing import SALT_ENV

if TYPE_CHECKING:
    from granian.log import LogLevels

log = logging.getLogger("relaygate")
COMMANDS = ("serve", "check-config", "db", "version")


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the relaygate gateway.")
    p.add_argument("--config", "-c", help="config file: native .toml or LiteLLM config.yaml "
                   "(default: CONFIG_FILE_PATH as LiteLLM, else the embedded mock-provider config)")
    p.add_argument("--host", default=None, help="address to listen on (default from config, else 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help="port (default from config, else 4000)")
    p.add_argument("--workers", "--num_workers", dest="workers", type=int, default=None,
                   help="worker processes (default: one per core)")
    p.add_argument("--log-level", "--log_level", dest="log_level", default=None,
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--detailed_debug", "--detailed-debug", action="store_true", help="debug logging (LiteLLM flag)")
    p.add_argument("--debug", action="store_true", help="debug logging (LiteLLM flag)")
    p.add_argument("--model", "-m", help="serve this one model without a config file (LiteLLM's `litellm --model`)")
    p.add_argument("--alias", help="with --model: the name clients use for it")
    p.add_argument("--api_base", "--api-base", dest="api_base", help="with --model: the upstream's base URL")
    p.add_argument("--api_version", "--api-version", dest="api_version", help="with --model: Azure API version")
    p.add_argument("--http", choices=["1", "2", "auto"], default="1", help="HTTP versions to serve")
    p.add_argument("--backlog", type=int, default=None, help="listen queue length (default from config, 2048)")
    return p


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


FILE_LIMIT_CEILING = 1 << 20
"""Never ask for more open files than this (an unlimited hard limit is not a usable soft limit)."""


def raise_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (children inherit it); return the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_CEILING)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return FILE_LIMIT_CEILING if soft == resource.RLIM_INFINITY else min(soft, FILE_LIMIT_CEILING)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def auto_max_connections(file_limit: int) -> int:
    """Client connections a worker may hold with ``file_limit`` open files: a quarter of them (at most 4,096)
    stays for upstream sockets, Redis, logs and imports."""
    return max(64, file_limit - min(4096, file_limit // 4))


class ConnectionLimits(NamedTuple):
    backlog: int
    max_connections: int
    header_read_timeout_ms: int
    file_limit: int


def connection_limits(server: ServerSettings, file_limit: int, backlog_flag: int | None = None) -> ConnectionLimits:
    """What Granian is given: ``backlog``, ``backpressure`` (open connections per worker) and the HTTP/1
    header read timeout, from the config, the ``--backlog`` flag and the open-file limit."""
    return ConnectionLimits(
        backlog=backlog_flag if backlog_flag is not None else server.backlog,
        max_connections=server.max_connections or auto_max_connections(file_limit),
        header_read_timeout_ms=max(1, round(server.header_read_timeout * 1000)),
        file_limit=file_limit,
    )


def _litellm_log_level() -> str | None:
    """LiteLLM's ``LITELLM_LOG`` (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``, ``CRITICAL``), if set and valid."""
    value = os.environ.get("LITELLM_LOG", "").strip().lower()
    return value if value in ("debug", "info", "warning", "error", "critical") else None


def serve(argv: list[str], prog: str = "relaygate serve") -> int:
    parser = _serve_parser(prog)
    args, unknown = parser.parse_known_args(argv)
    level = args.log_level or ("debug" if (args.detailed_debug or args.debug) else None)
    # workers share nothing but a directory: each drops its metrics snapshot there for /metrics to merge,
    # and `--model` mode writes its generated config there
    metrics_dir = tempfile.mkdtemp(prefix="relaygate-")
    os.environ[METRICS_DIR_ENV] = metrics_dir
    if not args.config and not args.model:
        if os.environ.get("LITELLM_CONFIG_BUCKET_NAME"):
            print("relaygate: LITELLM_CONFIG_BUCKET_NAME is set, but relaygate does not fetch its config from a "
                  "bucket: copy the file into the container and pass --config (or CONFIG_FILE_PATH)",
                  file=sys.stderr)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            return 2
        args.config = os.environ.get("CONFIG_FILE_PATH") or None  # LiteLLM's variable for the config file
    if args.model and not args.config:
        args.config = os.path.join(metrics_dir, "model.yaml")
        with open(args.config, "w") as f:
            yaml.safe_dump(single_model(args.model, args.alias, args.api_base, args.api_version), f)
    try:
        config = reload.accept(args.config, metrics_dir)  # kept there: what a respawned worker falls back to
    except ConfigError as exc:
        setup_logging(level)
        print(f"relaygate: config error: {exc}", file=sys.stderr)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        return 2
    level = level or _litellm_log_level() or config.server.log_level
    os.environ["RELAYGATE_LOG_LEVEL"] = level
    if config.observe is not None and config.observe.json_logs:  # LiteLLM's json_logs: every line is JSON
        os.environ.setdefault("RELAYGATE_JSON_LOGS", "1")
    setup_logging(level)
    db_url = database_url(config, args.config)
    if db_url is None and not args.config:
        # the embedded default: a SQLite file in the data directory, handed to the workers as DATABASE_URL
        db_url = embedded_default_url(config)
        if db_url is not None:
            os.environ["DATABASE_URL"] = db_url
    if db_url is not None:
        # reach the database and bring its schema up to date once, before any worker starts: an
        # unreachable database stops `serve` here with its URL (password redacted), not in each worker
        try:
            before, after = asyncio.run(upgrade_database(db_url, config.server.database_connect_timeout))
        except StoreError as exc:
            print(f"relaygate: database error: {exc}", file=sys.stderr)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            return 1
        log.info("database %s: schema version %d%s", redact_url(db_url), after,
                 f" (upgraded from {before})" if before != after else "")
        if config.server.import_litellm:
            _first_start_import(db_url, config.server.database_connect_timeout,
                                os.environ.get(SALT_ENV) or config.general.master_key)
    for flag in unknown:
        if flag.startswith("-"):
            log.warning("command-line option %s is not supported by relaygate and was ignored", flag)
    skipped = set(config.skipped)
    for w in config.warnings:
        (log.error if w in skipped else log.warning)("config %s: %s", config.source, w)
    if args.config:
        os.environ["RELAYGATE_CONFIG"] = os.path.abspath(args.config)
    else:
        os.environ.pop("RELAYGATE_CONFIG", None)
    # flags win, then LiteLLM's environment variables (HOST, PORT, NUM_WORKERS), then the config
    env = os.environ
    host = args.host or env.get("HOST") or config.server.host
    port = args.port if args.port is not None else int(env.get("PORT") or config.server.port)
    workers = args.workers if args.workers is not None else int(
        env.get("NUM_WORKERS") or config.server.workers or _cores())

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    limits = connection_limits(config.server, raise_file_limit(), args.backlog)
    log.info("relaygate %s serving %d deployments on http://%s:%d with %d worker(s)", __version__,
             len(config.deployments), host, port, workers)
    log.info("client connections: up to %d per worker (open-file limit %d), backlog %d, request head within "
             "%.1f s (also the keep-alive idle limit)", limits.max_connections, limits.file_limit, limits.backlog,
             limits.header_read_timeout_ms / 1000)
    if config.server.batch_scheduling and sched.supported():
        log.info("worker threads run under SCHED_BATCH (server.batch_scheduling; false keeps the default policy)")
    if limits.max_connections > limits.file_limit:
        log.warning("server.max_connections (%d) is above the open-file limit (%d): raise `ulimit -n`",
                    limits.max_connections, limits.file_limit)
    elif not config.server.max_connections and limits.max_connections < 10_000:
        log.warning("the open-file limit (%d) leaves room for only %d client connections per worker: idle "
                    "connections past that delay new clients; raise `ulimit -Hn`", limits.file_limit,
                    limits.max_connections)
    server = _server_class(os.environ.get("RELAYGATE_CONFIG"), metrics_dir)(
        "relaygate.asgi:app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=max(1, workers),
        loop=Loops.uvloop,
        http=HTTPModes(args.http),
        websockets=True,  # the Realtime API (relaygate.realtime); an HTTP request never reaches it
        backlog=limits.backlog,
        backpressure=limits.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=limits.header_read_timeout_ms),
        log_enabled=True,
        log_access=False,
        log_level=_granian_level(level),
        respawn_failed_workers=True,
    )
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # workers stop when it is gone (http.app.watch_parent)
    os.environ[WORKERS_ENV] = str(max(1, workers))  # how many they are (gateway.drain waits for each)
    try:
        server.serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _server_class(config_path: str | None, runtime_dir: str) -> type[Any]:
    """Granian's ``Server`` with SIGHUP turned into a config reload (see the module docstring)."""
    from granian.server import Server

    class RelaygateServer(Server):  # type: ignore[misc,valid-type]
        _hup_busy = False
        _hup_again = False

        def startup(self, spawn_target: Any, target_loader: Any) -> None:
            super().startup(spawn_target, target_loader)
            signal.signal(signal.SIGHUP, self.signal_handler_reload)  # ours, whatever Granian installed

        def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
            if os.getpid() != getattr(self, "pid", None):
                return  # a forked worker that inherited the handler: the main process decides
            if self._hup_busy:  # a SIGHUP while handling one: check once more when done
                self._hup_again = True
                return
            self._hup_busy = True
            try:
                again = True
                while again:
                    self._hup_again = False
                    reload.request_reload(config_path, runtime_dir)
                    again = self._hup_again
            finally:
                self._hup_busy = False

    return RelaygateServer


def _granian_level(level: str) -> LogLevels:
    from granian.log import LogLevels

    return LogLevels.warning if level in ("info", "warning") else LogLevels(level)


#: ``check-config``'s exit status when the config is served but some deployments are skipped
EXIT_SKIPPED = 3


def check_config(argv: list[str]) -> int:
    """Exit status 0: the config is served as written; 1: ``serve`` refuses it (errors on stderr);
    3 (:data:`EXIT_SKIPPED`): ``serve`` starts with it, as LiteLLM would, but some deployments are skipped
    (their error lines on stderr): a deployment the file declares is not served, which a CI check should
    see, while scripts can still tell it from a config that does not start."""
    p = argparse.ArgumentParser(prog="relaygate check-config", description="Validate a config file.",
                                epilog="exit status: 0 valid, 1 invalid (serve refuses it), "
                                       f"{EXIT_SKIPPED} valid but some deployments are skipped")
    p.add_argument("config")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems = reload.problems(config)
    skipped = set(config.skipped)
    for w in config.warnings:
        if w not in skipped:
            print(f"warning: {config.source}: {w}")
    for line in [*config.skipped, *problems]:
        print(f"error: {config.source}: {line}", file=sys.stderr)
    if problems:
        return 1
    groups = sorted({d.model_name for d in config.deployments})
    print(f"ok: {config.source}: {len(config.deployments)} deployments in {len(groups)} model groups "
          f"({', '.join(groups)})")
    if config.skipped:
        print(f"note: {config.source}: `relaygate serve` starts with this config, as LiteLLM does, without the "
              f"skipped deployments (exit status {EXIT_SKIPPED})")
        return EXIT_SKIPPED
    return 0


async def upgrade_database(url: str, connect_timeout: float = 5.0) -> tuple[int, int]:
    """Open ``url``, apply the missing migrations (under the upgrade lock), close; (before, after)."""
    store = make_store(url, pool_size=1, connect_timeout=connect_timeout)
    await store.connect()
    try:
        return await store.migrate()
    finally:
        await store.close()


def db_command(argv: list[str]) -> int:
    """``relaygate db upgrade [--config FILE | --database-url URL]``: apply the schema migrations and print
    the version. Exit status 0 done, 1 the database failed (unreachable, newer schema), 2 no database."""
    p = argparse.ArgumentParser(prog="relaygate db", description="Manage relaygate's database.")
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade", help="apply the schema migrations and print the schema version")
    where = up.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", help="the config whose database to upgrade (general_settings.database_url, "
                       "else DATABASE_URL, else the embedded SQLite file beside it)")
    where.add_argument("--database-url", "--database_url", dest="database_url",
                       help="the database: postgresql://... or sqlite:///PATH (default: DATABASE_URL)")
    imp = sub.add_parser("import-litellm", help="copy keys (as hashes), users, teams, organizations, customers, "
                         "budgets, database models and cost settings from a LiteLLM proxy's PostgreSQL database "
                         "into relaygate's (its models opened with LITELLM_SALT_KEY, else the master key)")
    imp.add_argument("source", metavar="DATABASE_URL", help="the LiteLLM database: postgresql://...")
    imp.add_argument("--spend-logs", "--spend_logs", dest="spend_logs", action="store_true",
                     help="also copy LiteLLM_SpendLogs (the spend history; in chunks, resumable by running again)")
    imp.add_argument("--daily-spend", "--daily_spend", dest="daily_spend", action="store_true",
                     help="also copy LiteLLM's daily spend tables into the daily activity rollup, for the days it "
                          "has no row of yet (after --spend-logs when both are given; resumable by running again)")
    where = imp.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", help="the relaygate config whose database receives the rows")
    where.add_argument("--database-url", "--database_url", dest="database_url",
                       help="relaygate's database: postgresql://... or sqlite:///PATH (default: DATABASE_URL)")
    args = p.parse_args(argv)
    # what LiteLLM's database models are encrypted with: its LITELLM_SALT_KEY, else its master key (the
    # config's, else LITELLM_MASTER_KEY's)
    secret = os.environ.get(SALT_ENV) or next((os.environ[n] for n in MASTER_KEY_ENV if os.environ.get(n)), None)
    if args.database_url:
        url: str | None = args.database_url
    elif args.config:
        try:
            loaded = load_config(args.config)
            url = database_url(loaded, args.config)
        except ConfigError as exc:
            print(f"relaygate db: config error: {exc}", file=sys.stderr)
            return 2
        secret = os.environ.get(SALT_ENV) or loaded.general.master_key or secret
    else:
        url = os.environ.get("DATABASE_URL") or url_from_env(os.environ)
    if url is None:
        print("relaygate db: no database: give --database-url, --config, or set DATABASE_URL (or LiteLLM's "
              "DATABASE_HOST, DATABASE_USER, DATABASE_NAME ...)", file=sys.stderr)
        return 2
    if args.action == "import-litellm":
        return _import_litellm(args.source, url, secret, args.spend_logs, args.daily_spend)
    try:
        before, after = asyncio.run(upgrade_database(url))
    except StoreError as exc:
        print(f"relaygate db: error: {exc}", file=sys.stderr)
        return 1
    change = f"upgraded from version {before}" if before != after else "already up to date"
    print(f"relaygate db: {redact_url(url)}: schema version {after} ({change})")
    return 0


def _on_store(url: str, work: Callable[[Any], Awaitable[Any]], connect_timeout: float = 5.0) -> Any:
    """``work(store)`` on the store at ``url``, opened for it and closed after, in an event loop of its own."""
    async def run() -> Any:
        store = await open_store(url, connect_timeout=connect_timeout)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _first_start_import(url: str, connect_timeout: float, secret: str | None) -> None:
    """LiteLLM's keys, teams, users ... imported from the same database on relaygate's first start there
    (``store.importer.import_on_first_start``); a failure is logged with the command that retries it, and
    serving goes on (keys already in the store, and the master key, work)."""
    from relaygate.store.importer import import_on_first_start

    try:
        counts = _on_store(url, lambda store: import_on_first_start(url, store, secret), connect_timeout)
    except Exception as exc:  # the import is a convenience: serving does not depend on it
        log.error("LiteLLM's tables in %s were not imported (%s: %s); run `relaygate db import-litellm "
                  "DATABASE_URL --database-url DATABASE_URL`", redact_url(url), type(exc).__name__, exc)
        return
    if counts is not None:
        log.info("first start on LiteLLM's database %s: its keys, teams and users imported (%s)", redact_url(url),
                 "; ".join(counts.lines()))


def _import_litellm(source: str, url: str, secret: str | None, spend_logs: bool = False,
                    daily_spend: bool = False) -> int:
    from relaygate.store.import_spend import import_daily_spend, import_spend_logs
    from relaygate.store.importer import import_litellm

    if not source.startswith(("postgresql://", "postgres://")):
        print(f"relaygate db: {redact_url(source)}: a LiteLLM database is PostgreSQL (postgresql://...)",
              file=sys.stderr)
        return 2

    try:
        counts = _on_store(url, lambda store: import_litellm(source, store, secret))
    except StoreError as exc:
        print(f"relaygate db: error: {exc}", file=sys.stderr)
        return 1
    print(f"relaygate db: imported from {redact_url(source)} into {redact_url(url)} (one transaction):")
    for line in [*counts.lines(), *(f"note: {n}" for n in counts.notes)]:
        print(f"  {line}")
    if spend_logs:
        try:
            read, new = _on_store(url, lambda store: import_spend_logs(source, store))
        except StoreError as exc:
            print(f"relaygate db: spend logs: error: {exc} (run the command again to complete them)", file=sys.stderr)
            return 1
        print(f"  spend logs: {read} read, {new} new (the rest already there)")
    if daily_spend:
        try:
            copied, skipped = _on_store(url, lambda store: import_daily_spend(source, store))
        except StoreError as exc:
            print(f"relaygate db: daily spend: error: {exc} (run the command again to complete it)", file=sys.stderr)
            return 1
        print(f"  daily spend: {copied} day(s) copied, {skipped} left as they were (the rollup had them)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V", "version"):
        print(f"relaygate {__version__}")
        return 0
    loaded = load_dotenv_file()  # LiteLLM's .env, before any os.environ/ reference is resolved
    if loaded is not None and loaded[1]:
        print(escape_controls(f"relaygate: set {len(loaded[1])} variable(s) from {loaded[0]}: {', '.join(loaded[1])}"),
              file=sys.stderr)
    if argv and argv[0] == "check-config":
        return check_config(argv[1:])
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    if argv and argv[0] == "db":
        return db_command(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("usage: relaygate {serve,check-config,db,version} [options]\n"
              "       relaygate --config FILE [--port P] [--num_workers N]   (LiteLLM style: serve)\n\n"
              "Run `relaygate serve --help` for the server's options.")
        return 0
    return serve(argv, prog="relaygate")


if __name__ == "__main__":
    sys.exit(main())
