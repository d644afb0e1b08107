"""``relaygate`` command line: ``serve``, ``check-config``, ``version``.

LiteLLM start scripts keep working: ``relaygate --config config.yaml --port 4000 --num_workers 2`` (no
sub-command) means ``serve``, and ``--num_workers``, ``--detailed_debug`` and ``--debug`` are accepted.
``serve`` loads and checks the config once in the main process (printing each warning once), then hands
the file to Granian's worker processes through ``RELAYGATE_CONFIG``; each worker loads it again in its own
lifespan startup (shared-nothing).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

import yaml  # type: ignore[import-untyped]

from relaygate import __version__
from relaygate.config import Config, ConfigError, default_config, load_config, validate
from relaygate.config.loader import single_model
from relaygate.logs import setup_logging
from relaygate.metrics import METRICS_DIR_ENV

if TYPE_CHECKING:
    from granian.log import LogLevels

log = logging.getLogger("relaygate")
COMMANDS = ("serve", "check-config", "version")


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the relaygate gateway.")
    p.add_argument("--config", "-c", help="config file: native .toml or LiteLLM config.yaml "
                   "(default: the embedded mock-provider config)")
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
    p.add_argument("--backlog", type=int, default=2048)
    return p


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _load(path: str | None) -> Config:
    config = load_config(path) if path else default_config()
    problems = validate(config)
    if problems:
        raise ConfigError(config.source, "", "; ".join(problems))
    return config


def serve(argv: list[str], prog: str = "relaygate serve") -> int:
    parser = _serve_parser(prog)
    args, unknown = parser.parse_known_args(argv)
    level = args.log_level or ("debug" if (args.detailed_debug or args.debug) else None)
    # workers share nothing but a directory: each drops its metrics snapshot there for /metrics to merge,
    # and `--model` mode writes its generated config there
    metrics_dir = tempfile.mkdtemp(prefix="relaygate-")
    os.environ[METRICS_DIR_ENV] = metrics_dir
    if args.model and not args.config:
        args.config = os.path.join(metrics_dir, "model.yaml")
        with open(args.config, "w") as f:
            yaml.safe_dump(single_model(args.model, args.alias, args.api_base, args.api_version), f)
    try:
        config = _load(args.config)
    except ConfigError as exc:
        setup_logging(level)
        print(f"relaygate: config error: {exc}", file=sys.stderr)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        return 2
    level = level or config.server.log_level
    os.environ["RELAYGATE_LOG_LEVEL"] = level
    setup_logging(level)
    for flag in unknown:
        if flag.startswith("-"):
            log.warning("command-line option %s is not supported by relaygate and was ignored", flag)
    for w in config.warnings:
        log.warning("config %s: %s", config.source, w)
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
    from granian.server import Server

    log.info("relaygate %s serving %d deployments on http://%s:%d with %d worker(s)", __version__,
             len(config.deployments), host, port, workers)
    server = Server(
        "relaygate.asgi:app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=max(1, workers),
        loop=Loops.uvloop,
        http=HTTPModes(args.http),
        websockets=False,
        backlog=args.backlog,
        log_enabled=True,
        log_access=False,
        log_level=_granian_level(level),
        respawn_failed_workers=True,
    )
    try:
        server.serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _granian_level(level: str) -> LogLevels:
    from granian.log import LogLevels

    return LogLevels.warning if level in ("info", "warning") else LogLevels(level)


def check_config(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="relaygate check-config", description="Validate a config file.")
    p.add_argument("config")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems = validate(config)
    for w in config.warnings:
        print(f"warning: {config.source}: {w}")
    for prob in problems:
        print(f"error: {config.source}: {prob}", file=sys.stderr)
    if problems:
        return 1
    groups = sorted({d.model_name for d in config.deployments})
    print(f"ok: {config.source}: {len(config.deployments)} deployments in {len(groups)} model groups "
          f"({', '.join(groups)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V", "version"):
        print(f"relaygate {__version__}")
        return 0
    if argv and argv[0] == "check-config":
        return check_config(argv[1:])
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("usage: relaygate {serve,check-config,version} [options]\n"
              "       relaygate --config FILE [--port P] [--num_workers N]   (LiteLLM style: serve)\n\n"
              "Run `relaygate serve --help` for the server's options.")
        return 0
    return serve(argv, prog="relaygate")


if __name__ == "__main__":
    sys.exit(main())
