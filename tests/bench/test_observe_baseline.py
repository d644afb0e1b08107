"""``bench.scenarios_observe --baseline`` (and ``bench.baseline``, which ``bench.scenarios_cache`` shares): which
gateways a baseline adds, which trees it accepts, and what it prints. (The run itself is a bench: ``python -m
bench.scenarios_observe --together --baseline DIR``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.baseline import BASE, baseline_env, baseline_lines, baseline_problem
from bench.scenarios_observe import ALL, main, mode_names


def test_a_baseline_mode_runs_its_own_modes_callbacks() -> None:
    assert mode_names("off") == () and mode_names("off" + BASE) == ()
    assert mode_names("otel") == ("otel",) and mode_names("otel" + BASE) == ("otel",)
    assert mode_names("all") == ALL and mode_names("all" + BASE) == ALL


def _tree(root: Path, *, built: bool) -> Path:
    (root / "src" / "relaygate" / "core").mkdir(parents=True)
    (root / "src" / "relaygate" / "__init__.py").write_text("")
    (root / "ext").mkdir()
    for name in ("_sse_c", "_otlp_c"):
        (root / "ext" / f"{name}.pyx").write_text("")
        if built:
            (root / "src" / "relaygate" / "core" / f"{name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    return root


def test_only_a_relaygate_tree_with_its_extensions_built_is_a_baseline(tmp_path: Path) -> None:
    assert "no src/relaygate" in (baseline_problem(tmp_path / "nothing") or "")
    unbuilt = _tree(tmp_path / "a", built=False)
    problem = baseline_problem(unbuilt) or ""
    assert "_otlp_c, _sse_c" in problem and "build_ext --inplace" in problem  # else it would run the pure twins
    assert baseline_problem(_tree(tmp_path / "b", built=True)) is None


def test_the_comparison_is_per_round_and_in_points(tmp_path: Path) -> None:
    shares = {"otel": [0.716, 0.705, 0.720], "otel" + BASE: [0.704, 0.708, 0.700], "json_logs": [0.93]}
    lines = baseline_lines(["off", "otel", "json_logs", "otel" + BASE], shares, tmp_path)
    assert len(lines) == 1  # json_logs ran without a baseline
    assert "71.6% of off against  70.4%" in lines[0] and "+1.2 points" in lines[0]
    assert "per round +1.2 -0.3 +2.0" in lines[0]


def test_a_baseline_needs_paired_rounds_and_a_usable_tree(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path), "--modes", "off,otel"])  # not --together
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path), "--modes", "off,otel", "--together"])  # not a relaygate tree


def test_a_baseline_gateway_imports_the_trees_package_first(tmp_path: Path) -> None:
    env = baseline_env({"PYTHONPATH": "/elsewhere", "HOME": "/root"}, tmp_path)
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "src"), "/elsewhere"] and env["HOME"] == "/root"
    assert baseline_env({}, tmp_path)["PYTHONPATH"] == str(tmp_path / "src")
