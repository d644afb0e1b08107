"""Shared fixtures for every tier: free ports, a real redis-server, a real relaygate (Granian) process.

Real parts only: ``redis_server`` starts Debian's ``redis-server`` (the test command installs it; a
missing binary FAILS the test, it never skips), ``start_gateway`` runs ``relaygate serve`` as a
subprocess and waits for ``/health/readiness``. Mock upstreams come from ``bench.procs.start_mock``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent

# a `relaygate serve` without a config keeps its SQLite database in the data directory: never the tester's own
os.environ.setdefault("RELAYGATE_DATA_DIR", tempfile.mkdtemp(prefix="rg-data-"))
# a Bedrock deployment without credentials asks EC2's instance metadata last, as the AWS SDKs do: never a real
# one from the tests (the IMDS tests name their own local endpoint)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# likewise Azure's managed identity (an Azure deployment without a key): a closed local port, refused at once
os.environ.setdefault("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")

# -- skips are failures unless justified ---------------------------------------------------------------
# A skip that hides a missing part (an undeclared package, a server that did not start, an extension that
# did not build) would let the suite go green without testing anything. Every skip reason must match one of
# these, each with the condition under which it is legitimate; any other skip fails the run.
SKIP_ALLOW_LIST: tuple[tuple[str, str], ...] = (
    # the pure-twin pass (RELAYGATE_NO_EXTENSIONS=1) has no compiled twin to test
    ("RELAYGATE_NO_EXTENSIONS is set", "the pure-Python pass runs without the compiled extension"),
)
#: skips allowed in any pass: what a machine may lack, where the issue says so
SKIP_ANYWHERE: tuple[tuple[str, str], ...] = (
    ("node is not on PATH", "the Node clients run only where node is installed (issue 11)"),
)
_unjustified_skips: list[str] = []


def _skip_allowed(reason: str) -> bool:
    if any(prefix in reason for prefix, _ in SKIP_ANYWHERE):
        return True
    no_ext = os.environ.get("RELAYGATE_NO_EXTENSIONS", "") not in ("", "0")
    return any(prefix in reason for prefix, _ in SKIP_ALLOW_LIST) and no_ext


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not _skip_allowed(reason):
            _unjustified_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for s in _DEAD:  # the ports dead_port held for the session
        s.close()
    if _unjustified_skips:
        print("\n\nskips not on the allow-list (tests/conftest.py SKIP_ALLOW_LIST) fail the run:", file=sys.stderr)
        for line in _unjustified_skips:
            print(f"  {line}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """A threaded HTTP server of ``handler`` on ``host`` (``::1``: IPv6) and a free port; yields its base URL."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family

        def handle_error(self, request: object, client_address: object) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no error
                super().handle_error(request, client_address)  # type: ignore[arg-type]

    server = Server((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://[{host}]:{server.server_address[1]}" if ":" in host else f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


_DEAD: list[socket.socket] = []


def dead_port() -> int:
    """A port where connections are refused for as long as the test process runs: bound by this process and never
    listened on, so no other server can take it. (A port closed again right after ``bind(0)`` is free for the
    kernel to hand to another test's server, which then answers where a refusal was expected: seen in CI.)"""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _DEAD.append(s)
    return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


_EPHEMERAL_LOW = _ephemeral_low()
_PICK = random.SystemRandom()  # not the module's generator: hypothesis and seeded tests reset that one, and two
#                                xdist workers seeded alike would pick the same ports in the same order


def free_port(low: int = 20000, high: int | None = None) -> int:
    """A port nobody is bound to, for a server a test is about to start on it. Picked at random in
    ``[low, high)``, by default below the kernel's ephemeral range (``ip_local_port_range``): a port the kernel
    hands out for ``bind(0)`` lies in that range, where every outgoing connection of every test takes its
    source port too, so one could take the port between the pick and the server's own bind (a Redis Cluster node
    failed to start so in CI). The port is checked by binding it; ``bind(0)`` when the range is too small."""
    top = _EPHEMERAL_LOW if high is None else high
    if top - low >= 1000:
        for _ in range(100):
            port = _PICK.randrange(low, top)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProc:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """Where the log ends now: :meth:`wait_swapped` looks past it."""
        return self.log_path.stat().st_size

    def wait_swapped(self, mark: int, reason: str = "database models and settings", timeout: float = 30.0) -> None:
        """Return once every worker logged a snapshot swapped in for ``reason`` past ``mark`` (``gateway.core``'s
        "config reloaded (<reason>)" line, one per worker that swapped). A change made through one worker
        reaches the others by the store's change poll; requests spread over workers by the kernel's accept,
        which may hand a run of them to one worker, so "N answers in a row" never proves every worker has it.
        Wait for every earlier change the same way before taking ``mark``: a worker's swap for an earlier change,
        logged past it, would count."""
        line = re.compile(rf"relaygate\[(\d+)\] config reloaded \({re.escape(reason)}\)")
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                pids = set(line.findall(f.read().decode(errors="replace")))
            if len(pids) >= self.workers:
                return
            assert self.proc.poll() is None, f"the gateway exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, (f"{len(pids)} of {self.workers} workers swapped in "
                                                 f"({reason}) within {timeout:g}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)


class PortTaken(RuntimeError):
    """The process could not listen: another one took its port between ``free_port`` and its start."""


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 20.0,
               marker: bytes | None = None) -> float:
    """Seconds until ``url`` answers 200 (with ``marker`` in its body, when given: the answer is ``proc``'s, not
    another server's that took the port first); ``PortTaken`` when ``proc`` exits saying its address is in use."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            text = log_path.read_text(errors="replace")
            if "address already in use" in text.lower():
                raise PortTaken(text)
            raise RuntimeError(f"process exited with {proc.returncode}:\n{text}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200 and (marker is None or marker in r.read()):
                    return time.perf_counter() - start
        except urllib.error.HTTPError as exc:
            exc.close()  # a 503 while starting: the error holds the response's socket until closed
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"not ready after {timeout}s:\n{log_path.read_text(errors='replace')}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a process started in its own session (``start_gateway``'s)
    takes its whole process group with it when killed, so no worker of a gateway outlives a test."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        with contextlib.suppress(OSError):  # no such group: the process did not lead one
            os.killpg(proc.pid, signal.SIGKILL)  # its workers: a process group outlives its leader


@contextmanager
def start_gateway(config_text: str, *, suffix: str = ".yaml", workers: int = 1, args: list[str] | None = None,
                  env: dict[str, str] | None = None, cli: list[str] | None = None) -> Iterator[GatewayProc]:
    """Run ``relaygate serve`` on a free port with the given config text; yields once it is ready.

    ``cli`` replaces the command prefix (default ``python -m relaygate.cli serve``); ``--config``, ``--host``,
    ``--port`` and ``--workers`` are appended, then ``args``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="rg-gw-"))
    cfg = tmp / f"config{suffix}"
    cfg.write_text(config_text)
    log_path = tmp / "gateway.log"
    prefix = cli if cli is not None else [sys.executable, "-m", "relaygate.cli", "serve"]
    for attempt in range(3):  # another test's server may take the free port before the gateway listens on it
        port = free_port()
        argv = [*prefix, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                *(args or [])]
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                    start_new_session=True)
        try:  # the readiness answer must be relaygate's own (its version field), not another server's
            wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, log_path, marker=b'"relaygate_version"')
            break
        except PortTaken:
            stop_process(proc)
            if attempt == 2:
                raise
        except BaseException:
            stop_process(proc)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    try:
        yield GatewayProc(proc, port, log_path, workers)
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test that failed while Redis was SIGSTOPped
        stop_process(self.proc)

    def start(self) -> None:
        """(Re)start on the same port, e.g. after a test killed it."""
        self.proc = _spawn_redis(self.port, self.dir)


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run the README test command (it installs it with apt-get)")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    stop_process(proc)
    raise RedisDidNotStart(f"redis-server did not start on port {port} (exit {proc.returncode})")


class RedisDidNotStart(RuntimeError):
    """redis-server exited or never answered: most often its port, picked free, was taken before it bound it."""


def redis_on_a_free_port(workdir: Path, attempts: int = 3) -> RedisServer:
    """A redis-server on a port picked free; another port when the one picked was taken before the server bound it
    (a loaded CI machine, where other tests open connections all the time), at most ``attempts`` times."""
    for attempt in range(attempts):
        port = free_port()
        try:
            return RedisServer(_spawn_redis(port, workdir), port, workdir)
        except RedisDidNotStart:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = redis_on_a_free_port(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (a gateway's Granian workers), read from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


# a real PostgreSQL server (session scope), for tests/store and the e2e tests that share one database
from tests.pg import postgres_server  # noqa: E402, F401
