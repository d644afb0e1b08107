"""The lanes of ``python -m bench.run --lanes``: what each lane sends, how every system is set up for it.

A lane is one way production uses a gateway. Each lane runs every system side by side against one mock
upstream:

| lane | client sends | upstream gets | gateway setup |
| --- | --- | --- | --- |
| ``passthrough`` | OpenAI chat | OpenAI chat | one ``openai/`` deployment, master key |
| ``anthropic-in`` | Anthropic ``/v1/messages`` | OpenAI chat | same |
| ``anthropic-out`` | OpenAI chat | Anthropic ``/v1/messages`` | one ``anthropic/`` deployment |
| ``responses-in`` | OpenAI ``/v1/responses`` | OpenAI chat | one ``hosted_vllm/`` deployment (chat only) |
| ``governed`` | OpenAI chat, 200 virtual keys | OpenAI chat | the production setup (below) |
| ``cached`` | one repeated OpenAI chat | (nothing after the first) | ``cache: true`` (local memory) |
| ``body100k`` | OpenAI chat, 100 KB prompt | OpenAI chat | passthrough setup |
| ``streams`` | OpenAI chat streams | 64 deltas, 20 ms apart | passthrough setup |

The governed lane's gateway: SQLite-backed virtual keys, half in teams and half owned by users, budgets on
every key, team and user, key rpm/tpm limits, a priced model, spend logs, Prometheus and JSON logs.

The systems: ``direct`` (the load generator at the mock, same request: the baseline), ``relaygate``
(1 worker), ``relaygate-2w`` (2 workers, the passthrough and streams lanes: scaling), ``litellm`` (the
pinned proxy from ``bench.litellm_env``, the same ``config.yaml``) and ``portkey`` (the open-source
Portkey gateway from ``bench/peers/portkey``: configured per request by its ``x-portkey-*`` headers, as it
takes no config file). Two calibration systems measure what the stack itself costs (issue 18's ceiling):
``rawproxy`` (``bench.peers.rawproxy``: a bare Granian ASGI app relaying each request through a raw
``asyncio.Protocol``, no auth, routing, limits or metrics; passthrough, body100k, streams and governed) and
``hello`` (the same app answering a fixed ``chat.completion``; passthrough only), both served exactly as
relaygate is and pinned to its core. A system that cannot serve a lane gets a reason (:func:`unsupported`),
which the report prints as the lane's figure: "n/a: reason".

This module owns the lane table, the per-lane config files, the governed lane's database, and Portkey's
and the calibration systems' processes; measuring is ``bench.lanerun``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import REPO_ROOT, Proc, spawn
from bench.systems import MASTER_KEY, MODEL, UPSTREAM_KEY, free_port

__all__ = ["Lane", "LANES", "LANE_SYSTEMS", "STREAM_FRAMES", "STREAM_PACING_MS", "unsupported", "write_lane_config",
           "load_args", "portkey_entry", "start_portkey", "start_rawproxy", "governed_keys", "PORTKEY_VERSION",
           "CALIBRATION_LANES", "CPU_RATIO_GOALS"]

STREAM_FRAMES = 64
STREAM_PACING_MS = 20.0
GOVERNED_KEYS, GOVERNED_ACTIVE = 1_000, 200
PORTKEY_DIR = REPO_ROOT / "bench" / "peers" / "portkey"
PORTKEY_VERSION = "1.15.2"
LANE_SYSTEMS = ("direct", "rawproxy", "hello", "relaygate", "relaygate-2w", "litellm", "portkey")
#: issue 18's goals: relaygate's CPU per request at most this many times the raw proxy's, per lane
CPU_RATIO_GOALS = {"governed": 1.3, "streams": 1.5}
#: the lanes the raw proxy runs (it relays bytes unchanged: no translation, no cache)
CALIBRATION_LANES = frozenset({"passthrough", "body100k", "streams", "governed"})


@dataclass(frozen=True)
class Lane:
    name: str
    title: str
    path: str = "/v1/chat/completions"
    upstream: str = "openai"  # openai | anthropic | vllm (the deployment's provider prefix)
    body_bytes: int = 0
    streams: bool = False  # the streams figures instead of the request/response ones
    governed: bool = False
    cached: bool = False
    two_workers: bool = False  # relaygate-2w runs this lane
    extra: tuple[str, ...] = field(default_factory=tuple)  # bench.load arguments


LANES: dict[str, Lane] = {x.name: x for x in (
    Lane("passthrough", "OpenAI in, OpenAI out (small chat)", two_workers=True),
    Lane("anthropic-in", "Anthropic /v1/messages in, OpenAI chat out", path="/v1/messages"),
    Lane("anthropic-out", "OpenAI chat in, Anthropic /v1/messages out", upstream="anthropic"),
    Lane("responses-in", "Responses /v1/responses in, OpenAI chat out", path="/v1/responses", upstream="vllm"),
    Lane("governed", "database virtual keys, team+user budgets, rpm/tpm limits, spend logs, Prometheus, "
         "JSON logs", governed=True),
    Lane("cached", "response cache hits (one repeated prompt, local cache)", cached=True),
    Lane("body100k", "100 KB prompts", body_bytes=100_000),
    Lane("streams", f"streams: {STREAM_FRAMES} deltas paced {STREAM_PACING_MS:g} ms", streams=True,
         two_workers=True),
)}


def unsupported(lane: Lane, system: str) -> str | None:
    """Why ``system`` cannot run ``lane`` (the report's "n/a: ..."), or ``None`` when it can."""
    if system == "rawproxy" and lane.name not in CALIBRATION_LANES:
        if lane.cached:
            return "the raw-proxy calibration has no cache: it relays every request"
        return "the raw-proxy calibration relays bytes unchanged: it translates no API"
    if system == "hello" and lane.name != "passthrough":
        return "the hello-world calibration answers one fixed chat.completion: passthrough lane only"
    if system == "relaygate-2w" and not lane.two_workers:
        return "2 workers measured on the passthrough and streams lanes only"
    if system == "litellm" and lane.governed:
        return ("LiteLLM's virtual keys, teams and budgets need its PostgreSQL database (Prisma); the rig has "
                "no PostgreSQL server")
    if system == "portkey":
        if lane.governed:
            return "the open-source Portkey gateway has no virtual keys, budgets or spend logs"
        if lane.cached:
            return "the open-source Portkey gateway (node build) answers x-portkey-cache-status: DISABLED"
        if lane.path == "/v1/messages":
            return ("Portkey serves /v1/messages only for Anthropic-native providers ('messages is not supported "
                    "by openai')")
        if lane.path == "/v1/responses":
            return "Portkey forwards /v1/responses to the provider's /v1/responses: no translation to chat"
    return None


def _deployment(lane: Lane, mock_port: int) -> str:
    prefix, base = {"openai": ("openai", f"http://127.0.0.1:{mock_port}/v1"),
                    "anthropic": ("anthropic", f"http://127.0.0.1:{mock_port}"),
                    "vllm": ("hosted_vllm", f"http://127.0.0.1:{mock_port}/v1")}[lane.upstream]
    prices = ("      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000002\n"
              if lane.governed else "")
    return (f"  - model_name: {MODEL}\n    litellm_params:\n      model: {prefix}/{MODEL}\n"
            f"      api_base: {base}\n      api_key: {UPSTREAM_KEY}\n{prices}")


def write_lane_config(lane: Lane, directory: Path, mock_port: int, db_url: str | None = None,
                      workers_note: str = "") -> Path:
    """The LiteLLM-format ``config.yaml`` relaygate and LiteLLM both start from for ``lane``."""
    settings = ["  set_verbose: false", "  drop_params: true", "  request_timeout: 60"]
    general = [f"  master_key: {MASTER_KEY}"]
    if lane.governed:
        settings += ["  json_logs: true", "  callbacks: [\"prometheus\"]"]
        general.append(f"  database_url: {db_url}")
    else:
        settings.append("  json_logs: false")
        general.append("  disable_spend_logs: true")
    if lane.cached:
        settings += ["  cache: true", "  cache_params: {type: local, ttl: 600}"]
    text = (f"# generated by bench.run --lanes ({lane.name}{workers_note}): relaygate and LiteLLM start from it\n"
            "model_list:\n" + _deployment(lane, mock_port) + "litellm_settings:\n" + "\n".join(settings) +
            "\ngeneral_settings:\n" + "\n".join(general) + "\n")
    path = directory / f"config-{lane.name}.yaml"
    path.write_text(text)
    return path


def governed_keys(directory: Path) -> tuple[str, Path]:
    """A SQLite database for the governed lane and the file of its active keys: ``(database_url, keys_file)``.

    Keys, teams and users come from ``bench.scenarios_spend`` (budgets on every key, team and user; half
    the keys in teams, half owned by users); each key also gets rpm and tpm limits far above the load."""
    from bench.scenarios_spend import _fill

    db = directory / "governed.db"
    url = f"sqlite:///{db}"
    keys = [f"sk-lane-{i:05d}-{secrets.token_hex(8)}" for i in range(GOVERNED_KEYS)]
    asyncio.run(_fill(url, keys, True))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE rg_keys SET rpm_limit = ?, tpm_limit = ?", (10_000_000, 10_000_000_000))
    keys_file = directory / "governed-keys.txt"
    keys_file.write_text("\n".join(keys[:GOVERNED_ACTIVE]) + "\n")
    return url, keys_file


def load_args(lane: Lane, system: str, mock_url: str, tmp: Path, keys_file: Path | None) -> list[str]:
    """The ``bench.load`` arguments (beyond url/model/key/concurrency/duration) for ``lane`` on ``system``."""
    args = ["--path", lane.path, *lane.extra]
    if lane.body_bytes:
        args += ["--body-bytes", str(lane.body_bytes)]
    if lane.streams:
        args += ["--stream"]
    if lane.path == "/v1/responses":
        body = tmp / "responses-body.json"
        body.write_text(json.dumps({"model": MODEL, "input": "Say hello in one short sentence.",
                                    "max_output_tokens": 64}))
        args += ["--body-file", str(body), "--no-check-body"]
    if lane.governed and keys_file is not None and (system.startswith("relaygate") or system == "rawproxy"):
        args += ["--api-key-file", str(keys_file)]
    if system == "portkey":
        provider = "anthropic" if lane.upstream == "anthropic" else "openai"
        args += ["--header", f"x-portkey-provider: {provider}", "--header",
                 f"x-portkey-custom-host: {mock_url}/v1"]
    return args


def portkey_entry() -> Path:
    return PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def start_portkey(cpus: str | None, log_dir: Path) -> tuple[Proc, str]:
    """Start Portkey from its own ``node_modules`` (``npm ci`` there first); returns (process, base URL)."""
    if not portkey_entry().exists():
        raise RuntimeError(f"Portkey is not installed: run `npm ci` in {PORTKEY_DIR.relative_to(REPO_ROOT)}")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    port = free_port()
    proc = spawn([node, str(portkey_entry()), f"--port={port}", "--headless"], name="portkey", cpus=cpus,
                 env={"NODE_ENV": "production"}, log_dir=log_dir, cwd=PORTKEY_DIR)
    return proc, f"http://127.0.0.1:{port}"


def start_rawproxy(mode: str, upstream: str | None, cpus: str | None, log_dir: Path) -> tuple[Proc, str]:
    """Start a calibration system (``mode`` ``rawproxy`` relaying to ``upstream``, or ``hello``), served by
    Granian as relaygate is; returns (process, base URL). Not waited for: poll ``/health/readiness``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.peers.rawproxy", "--host", "127.0.0.1", "--port", str(port)]
    if mode == "hello":
        argv.append("--hello")
    elif mode == "rawproxy" and upstream:
        argv += ["--upstream", upstream, "--upstream-key", UPSTREAM_KEY]
    else:
        raise ValueError(f"unknown calibration system {mode!r} (or no upstream)")
    proc = spawn(argv, name=mode, cpus=cpus, env={"PYTHONUNBUFFERED": "1"}, log_dir=log_dir)
    return proc, f"http://127.0.0.1:{port}"
