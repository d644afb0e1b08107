"""Process helpers for tests and the bench runner: start the mock, wait for readiness, measure CPU and memory.

The stable entry point for other code is :func:`start_mock`::

    from bench.procs import start_mock

    with start_mock(name="a", latency_ms=5) as mock:
        base = mock.openai_base            # "http://127.0.0.1:PORT/v1"
        ...
        mock.set_config(fault_429=0.5)     # same names as the CLI flags / POST /__mock/config
        assert mock.stats()["requests"] == 3

It starts ``python -m bench.mock --port 0`` in a subprocess, waits for its ``READY <port>`` line and
terminates it (SIGTERM, then SIGKILL) when the block exits. The rest of this module is what the runner
needs: pinning with ``taskset``, waiting for an HTTP readiness URL, and reading CPU time and peak RSS of a
process tree from ``/proc``.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = ["MockHandle", "start_mock", "Proc", "spawn", "wait_http", "http_json", "tree_pids", "cpu_seconds",
           "thread_cpu_seconds", "context_switches", "threads_per_request", "threads_text", "peak_rss_kib", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def http_json(url: str, body: Any = None, method: str | None = None, timeout: float = 10.0,
              headers: dict[str, str] | None = None) -> Any:
    """A small blocking JSON request (stdlib only). Raises ``urllib.error.HTTPError`` on non-2xx."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


@dataclass
class Proc:
    """A started subprocess with its log file; ``stop()`` is idempotent."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    name: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 8.0) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in reversed(tree_pids(self.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.popen.wait(5)
        for stream in (self.popen.stdout, self.popen.stdin):
            if stream is not None:
                stream.close()


def spawn(argv: Sequence[str], *, name: str, cpus: str | None = None, env: dict[str, str] | None = None,
          log_dir: Path | None = None, cwd: Path | None = None, stdout_pipe: bool = False) -> Proc:
    """Start ``argv``, optionally pinned with ``taskset -c cpus``; stderr (and stdout unless piped) to a log."""
    argv = list(argv)
    if cpus is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
    log_dir = log_dir or Path(tempfile.gettempdir())
    log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log", dir=log_dir)[1])
    log = open(log_path, "wb")
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env={**os.environ, **(env or {})},
            cwd=str(cwd or REPO_ROOT),
        )
    finally:
        log.close()
    return Proc(popen, log_path, name)


def _read_ready(proc: Proc, timeout: float) -> int:
    assert proc.popen.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.popen.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{proc.name} did not print READY within {timeout}s\n{proc.log_tail()}")
            if not sel.select(left):
                continue
            chunk = os.read(proc.popen.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{proc.name} exited before READY (rc={proc.popen.wait()})\n{proc.log_tail()}")
            buf += chunk
            if b"\n" in buf:
                line = buf.split(b"\n", 1)[0].decode().strip()
                word, _, port = line.partition(" ")
                if word != "READY" or not port.isdigit():
                    raise RuntimeError(f"{proc.name}: unexpected first line {line!r}")
                return int(port)
    finally:
        sel.close()


@dataclass
class MockHandle:
    """A running mock upstream. ``url`` is ``http://127.0.0.1:PORT`` (no path)."""

    url: str
    port: int
    name: str
    proc: Proc
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def openai_base(self) -> str:
        """The ``api_base`` an OpenAI client or a LiteLLM deployment uses: ``{url}/v1``."""
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        """``GET /__mock/stats``: requests by path/status/fault, bytes, in-flight, max concurrency."""
        return http_json(self.url + "/__mock/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        """``POST /__mock/reset``: zero the counters and forget recorded requests."""
        http_json(self.url + "/__mock/reset", {})

    def config(self) -> dict[str, Any]:
        return http_json(self.url + "/__mock/config")  # type: ignore[no-any-return]

    def set_config(self, **options: Any) -> dict[str, Any]:
        """Change options live (``latency_ms=5, fault_500=0.1, ...``); returns the whole new config."""
        return http_json(self.url + "/__mock/config", options)  # type: ignore[no-any-return]

    def requests(self) -> list[dict[str, Any]]:
        """The most recent requests the mock received (method, target, headers, JSON body), oldest first."""
        return http_json(self.url + "/__mock/requests")  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.stop()


def mock_argv(port: int = 0, host: str = "127.0.0.1", processes: int = 1, **options: Any) -> list[str]:
    argv = [sys.executable, "-m", "bench.mock", "--host", host, "--port", str(port), "--processes", str(processes)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def launch_mock(*, cpus: str | None = None, log_dir: Path | None = None, ready_timeout: float = 20.0,
                port: int = 0, processes: int = 1, name: str = "mock", **options: Any) -> MockHandle:
    """Start a mock and return its handle; the caller must ``stop()`` it (``start_mock`` does that for you)."""
    proc = spawn(mock_argv(port=port, processes=processes, name=name, **options), name=f"mock-{name}",
                 cpus=cpus, log_dir=log_dir, stdout_pipe=True)
    try:
        real_port = _read_ready(proc, ready_timeout)
    except BaseException:
        proc.stop()
        raise
    return MockHandle(f"http://127.0.0.1:{real_port}", real_port, name, proc, dict(options))


@contextmanager
def start_mock(**options: Any) -> Iterator[MockHandle]:
    """Start ``python -m bench.mock`` with ``options`` (CLI names, underscores); stop it on exit.

    Extra keyword arguments understood here: ``processes``, ``port``, ``cpus`` (taskset list, e.g. "1"),
    ``log_dir`` and ``ready_timeout``.
    """
    handle = launch_mock(**options)
    try:
        yield handle
    finally:
        handle.stop()


def wait_http(url: str, timeout: float, proc: Proc | None = None, headers: dict[str, str] | None = None,
              interval: float = 0.1) -> None:
    """Poll ``url`` until it answers 200; raise with the log tail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited (rc={proc.popen.returncode}) before {url} answered\n"
                               f"{proc.log_tail()}")
        req = urllib.request.Request(url)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
            exc.close()  # the error holds the response's socket until closed
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(interval)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise TimeoutError(f"{url} not ready after {timeout}s ({last}){tail}")


# ------------------------------------------------------------------------------------------- /proc


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (parents first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _stats(pid: int) -> Iterator[tuple[int, list[bytes]]]:
    """(process id, its ``/proc/<p>/stat`` fields after the command's ")") of ``pid`` and its live descendants
    (one that ended meanwhile is skipped). After ")": state(0) ppid(1) ... minflt(7) ... utime(11) stime(12)
    cutime(13) cstime(14)."""
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                yield p, f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of ``pid`` and its live descendants (plus their reaped children)."""
    total = 0
    for p, fields_ in _stats(pid):
        total += int(fields_[11]) + int(fields_[12])
        if p == pid:
            total += int(fields_[13]) + int(fields_[14])
    return total / _CLK_TCK


def kernel_share(pid: int) -> tuple[float, int]:
    """(system CPU seconds, minor page faults) of ``pid`` and its live descendants: what of a process's CPU the
    kernel spent for it, and how often it touched a page for the first time (memory a feature keeps growing)."""
    sys_ticks = faults = 0
    for _, fields_ in _stats(pid):
        faults += int(fields_[7])
        sys_ticks += int(fields_[12])
    return sys_ticks / _CLK_TCK, faults


def _thread_files(pid: int, name: str) -> Iterator[tuple[int, str, bytes]]:
    """(process id, thread id, the thread's ``/proc/<p>/task/<tid>/<name>``) of every live thread of ``pid``
    and its descendants (a thread that ended meanwhile is skipped)."""
    for p in tree_pids(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/{name}", "rb") as f:
                    yield p, tid, f.read()
            except OSError:
                continue


def context_switches(pid: int) -> int:
    """Context switches so far (voluntary and not) of every live thread of ``pid`` and its descendants."""
    return sum(int(line.split()[1]) for _, _, status in _thread_files(pid, "status")
               for line in status.splitlines() if b"ctxt_switches" in line)


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """user+sys CPU seconds of every live thread of ``pid`` and its descendants, keyed ``"pid/tid comm"``
    (the kernel's thread name: Granian's and Rust's threads are named, Python's own are ``python``)."""
    out: dict[str, float] = {}
    for p, tid, stat in _thread_files(pid, "stat"):
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
        fields_ = stat.rsplit(b")", 1)[1].split()
        out[f"{p}/{tid} {comm}"] = (int(fields_[11]) + int(fields_[12])) / _CLK_TCK
    return out


def threads_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU µs per request of each thread between two :func:`thread_cpu_seconds` readings, the threads that
    spent at least 1 µs a request, largest first."""
    per = {t: 1e6 * (s - before.get(t, 0.0)) / max(1, requests) for t, s in after.items()}
    return {t: round(v, 1) for t, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 1}


def threads_text(threads: dict[str, float]) -> str:
    """``python 179, tokio-rt-worker 42, ...``: :func:`threads_per_request` by thread name."""
    return ", ".join(f"{t.split(' ', 1)[-1]} {v:.0f}" for t, v in threads.items())


def peak_rss_kib(pid: int) -> int:
    """Sum of VmHWM (peak resident set) over ``pid`` and its live descendants, in KiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total
