"""Drive ``wrk`` (when installed) for raw-throughput measurements, with a generated Lua script for POST bodies.

wrk is a C load generator: a better yardstick than any Python client for "how many requests per second can
this server take". This module owns writing its Lua script, running it and parsing its text report into the
same shape of numbers ``bench.load`` produces. Nothing in the suite requires wrk: callers check
:func:`available` and fall back to ``bench.load``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.load import LoadSpec, build_request

__all__ = ["available", "lua_script", "run_wrk", "parse_wrk"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_str(s: str) -> str:
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


def lua_script(spec: LoadSpec) -> tuple[str, str]:
    """(script, path) for wrk, built from the same request bytes ``bench.load`` would send."""
    raw, _marker = build_request(spec)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    out = [f'wrk.method = "{method}"']
    if body:
        out.append(f"wrk.body = {_lua_str(body.decode('latin-1'))}")
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        if name in ("host", "content-length"):
            continue
        out.append(f'wrk.headers[ {_lua_str(name)} ] = {_lua_str(value)}')
    return "\n".join(out) + "\n", path


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Throughput, latency percentiles (ms) and errors from wrk's ``--latency`` report."""
    out: dict[str, Any] = {"latency_ms": {}, "errors": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise ValueError("no Requests/sec in wrk output:\n" + text[-2000:])
    rps = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    total = int(m.group(1)) if m else 0
    window = _ms(m.group(2)) / 1000.0 if m else 0.0
    for pct, val in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M):
        out["latency_ms"]["p" + pct] = _ms(val)
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["latency_ms"]["mean"] = _ms(m.group(1))
        out["latency_ms"]["max"] = _ms(m.group(3))
    bad = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        bad = int(m.group(1))
        out["errors"]["status_non2xx"] = bad
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for kind, n in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(n):
                out["errors"][kind] = int(n)
    out["error_count"] = sum(out["errors"].values())
    ok = max(0, total - bad)
    out["ok"] = ok
    out["window_s"] = window
    # wrk's Requests/sec counts non-2xx answers too; report only good ones as throughput
    out["throughput_rps"] = ok / window if window > 0 else rps
    out["wrk_requests_per_sec"] = rps
    out["tool"] = "wrk"
    return out


def run_wrk(spec: LoadSpec, threads: int = 1, cpus: str | None = None,
            timeout_s: float | None = None) -> dict[str, Any]:
    """Closed-loop run of ``spec`` (concurrency, duration) with wrk; returns parsed numbers."""
    if not available():
        raise RuntimeError("wrk is not installed")
    script, path = lua_script(spec)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = Path(tmp) / "req.lua"
        lua.write_text(script)
        duration = max(1, round(spec.duration))
        argv = ["wrk", "-t", str(threads), "-c", str(max(spec.concurrency, threads)), "-d", f"{duration}s",
                "--latency", "--timeout", f"{max(1, int(spec.timeout))}s", "-s", str(lua),
                spec.url.rstrip("/") + path]
        if cpus is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpus, *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s or duration + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    out = parse_wrk(proc.stdout)
    out["raw"] = proc.stdout
    return out
