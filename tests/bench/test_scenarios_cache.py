"""bench.scenarios_cache: the ratios it reports (from req/s one after the other, from CPU per request when the
modes share the core's seconds), and a tiny run end to end with real gateways, mock and load generator."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.baseline import baseline_problem
from bench.procs import REPO_ROOT
from bench.scenarios_cache import STUBS, _modes, _ratios, gateway_of, main, share_of_off

MED = {"off": (1000.0, 200.0), "miss": (900.0, 250.0), "hit": (2000.0, 100.0)}


def test_ratios_one_after_the_other_come_from_requests_per_second() -> None:
    hit_miss, miss_off, miss_cpu = _ratios(MED, together=False)
    assert hit_miss == pytest.approx(2000 / 900) and miss_off == pytest.approx(0.9)
    assert miss_cpu == pytest.approx(1.25)


def test_ratios_together_come_from_cpu_per_request() -> None:
    # sharing the core, req/s shows how the scheduler split it; one core's throughput is 1 / CPU per request
    hit_miss, miss_off, miss_cpu = _ratios(MED, together=True)
    assert hit_miss == pytest.approx(2.5) and miss_off == pytest.approx(0.8) and miss_cpu == pytest.approx(1.25)


@pytest.mark.e2e
@pytest.mark.parametrize("together", [False, True], ids=["one-after-the-other", "together"])
def test_tiny_run(tmp_path: Path, together: bool) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_cache", "--duration", "0.5", "--repeat", "1",
                           "--concurrency", "4", "--out", str(tmp_path), *(["--together"] if together else [])],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache-latest.json").read_text())
    assert data["together"] is together
    for mode in ("off", "miss", "hit"):
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and run["errors"] == 0 and run["cpu_us"] > 0, (mode, run)
        # where the gateway's CPU went: its threads by CPU per request, the event loop's at least
        assert any(v >= 1 for v in run["threads_us_per_req"].values()), (mode, run)
    med = {m: (v["rps"], v["cpu_us"]) for m, v in data["median"].items()}
    assert data["hit_vs_miss"] == pytest.approx(_ratios(med, together)[0], abs=1e-3)
    assert "hit vs miss throughput" in proc.stdout


def test_share_of_off_from_cpu_together_and_from_rps_one_after_the_other() -> None:
    med = {**MED, "miss-nostore": (950.0, 220.0)}
    assert share_of_off(med, "miss-nostore", together=True) == pytest.approx((200 / 220, 1.1))
    assert share_of_off(med, "miss-nostore", together=False) == pytest.approx((0.95, 1.1))


def test_modes_are_checked() -> None:
    assert _modes("off, miss,miss-rawkey") == ["off", "miss", "miss-rawkey"]
    for bad in ("off,nope", "off,off", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _modes(bad)
    assert gateway_of("hit", together=False) == "cached" and gateway_of("hit", together=True) == "hit"
    assert gateway_of("miss", together=True) == "cached" and gateway_of("miss-nostore", together=False) == "miss-nostore"


_CHECKS = {
    # what the pipeline calls (find, keep) is the stub, the compiled path built or not
    "miss-nostore": "from relaygate.cache.stage import ResponseCache as R\n"
                    "from relaygate.config.cache import CacheSettings\nc = R(CacheSettings())\n"
                    "assert c.keep(None, b'x', None) is None and c.keep.__func__.__name__ == '_no_store'",
    "miss-nolookup": "from relaygate.cache.stage import ResponseCache as R\n"
                     "from relaygate.config.cache import CacheSettings\nc = R(CacheSettings())\n"
                     "assert c.find(None) is None and c.find.__func__.__name__ == '_no_lookup'",
    # both paths take the key's canonical body from cache.key when the cache is built: the body as it came
    "miss-rawkey": "import hashlib\nfrom relaygate.cache import key\nbody = b'{\"a\": 1}'\n"
                   "assert key.canonical_body(body) is body and key.canonical_body is bytes\n"
                   "head = key._head('chat', 'm', None)\n"
                   "assert key.body_key('chat', 'm', body) == hashlib.sha256(head + body).hexdigest()\n"
                   "assert key.body_key('chat', 'm', body) != key.body_key('chat', 'm', b'{\"a\":1}')",
}


@pytest.mark.parametrize("mode", sorted(STUBS))
def test_each_stub_patches_what_its_mode_says(mode: str) -> None:
    # the stub is picked up as the gateway picks it up: first on PYTHONPATH, imported at start-up
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(STUBS[mode]), os.environ.get("PYTHONPATH", ""))
                                                       if p)}
    proc = subprocess.run([sys.executable, "-c", _CHECKS[mode]], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(_CHECKS) == set(STUBS)


@pytest.mark.e2e
def test_tiny_run_taking_a_miss_apart(tmp_path: Path) -> None:
    modes = "off,miss,miss-nolookup,miss-rawkey,miss-nostore"
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_cache", "--duration", "0.5", "--repeat", "1",
                           "--concurrency", "2", "--together", "--modes", modes, "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache-latest.json").read_text())
    assert data["modes"] == modes.split(",") and "hit_vs_miss" not in data  # no hit mode: no hit ratio
    for mode in data["modes"]:
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and run["errors"] == 0 and run["cpu_us"] > 0, (mode, run)
    assert set(data["vs_off"]) == {"miss", "miss-nolookup", "miss-rawkey", "miss-nostore"}
    assert "miss-nostore vs off" in proc.stdout and "miss vs off" in proc.stdout


def test_a_baseline_needs_paired_rounds_and_a_usable_tree(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path), "--modes", "off,miss"])  # not --together
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path), "--modes", "off,miss", "--together"])  # not a relaygate tree


@pytest.mark.e2e
def test_tiny_run_against_a_baseline(tmp_path: Path) -> None:
    if baseline_problem(REPO_ROOT) is not None:
        pytest.skip(baseline_problem(REPO_ROOT) or "")
    # this tree as its own baseline: miss@base and hit@base run from REPO_ROOT/src, in the same round
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_cache", "--duration", "0.5", "--repeat", "1",
                           "--concurrency", "2", "--together", "--baseline", str(REPO_ROOT), "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache-latest.json").read_text())
    assert data["modes"] == ["off", "miss", "hit", "miss@base", "hit@base"] and data["baseline"] == str(REPO_ROOT)
    for mode in data["modes"]:
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and run["errors"] == 0, (mode, run)
    assert {m: len(v) for m, v in data["shares_per_round"].items()} == {
        "miss": 1, "hit": 1, "miss@base": 1, "hit@base": 1}
    assert "baseline miss " in proc.stdout and "baseline hit " in proc.stdout and "points (per round" in proc.stdout


def test_floor_needs_the_hit_it_replays() -> None:
    with pytest.raises(SystemExit):
        main(["--modes", "off,miss,floor"])


@pytest.mark.e2e
def test_tiny_run_with_the_floor(tmp_path: Path) -> None:
    # the floor: a bare Granian app answering the bytes the hit gateway answered, measured in the same rounds
    proc = subprocess.run([sys.executable, "-m", "bench.scenarios_cache", "--duration", "0.5", "--repeat", "1",
                           "--concurrency", "2", "--modes", "off,hit,floor", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cache-latest.json").read_text())
    for mode in ("off", "hit", "floor"):
        (run,) = data["runs"][mode]
        assert run["ok"] > 0 and run["errors"] == 0 and run["cpu_us"] > 0, (mode, run)
    med = data["median"]
    assert data["hit_over_floor_us"] == pytest.approx(med["hit"]["cpu_us"] - med["floor"]["cpu_us"], abs=0.1)
    assert "floor" not in data["vs_off"] and "hit over floor:" in proc.stdout
    assert "floor: Granian answering the hit's" in proc.stdout
