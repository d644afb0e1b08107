"""Comparing a change in the same seconds: a mode run a second time from an older relaygate tree (``@base``).

``bench.scenarios_observe --baseline DIR`` and ``bench.scenarios_cache --baseline DIR`` start some of their
gateways from the relaygate source tree in ``DIR`` (a worktree of the commit before a change, extensions
built: ``git worktree add DIR REV && cd DIR && python setup.py build_ext --inplace``) next to the current
ones, load them in the same rounds and compare each mode's share of off with its baseline's, round by round:
two runs an hour apart on this machine differ by more than most changes.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["BASE", "baseline_env", "baseline_lines", "baseline_problem"]

BASE = "@base"
"""The suffix of a mode run from the ``--baseline`` tree."""


def baseline_env(env: Mapping[str, str], tree: Path) -> dict[str, str]:
    """``env`` with the baseline tree's package first on ``PYTHONPATH`` (ahead of an installed or editable
    relaygate); start the gateway with ``cwd=tree`` too."""
    return {**env, "PYTHONPATH": os.pathsep.join([str(tree / "src"), *filter(None, [env.get("PYTHONPATH")])])}


def baseline_problem(tree: Path) -> str | None:
    """Why ``tree`` cannot be measured as a baseline, or None: it must be a relaygate source tree with its
    compiled extensions built (else its gateways would run the pure twins and the comparison would be of
    those)."""
    if not (tree / "src" / "relaygate" / "__init__.py").is_file():
        return f"--baseline {tree}: no src/relaygate there (give a checkout or worktree of relaygate)"
    built = {p.name.split(".", 1)[0] for p in (tree / "src" / "relaygate" / "core").glob("_*_c.*.so")}
    missing = [src.stem for src in sorted((tree / "ext").glob("_*_c.pyx")) if src.stem not in built]
    if missing:
        return (f"--baseline {tree}: compiled extensions not built ({', '.join(missing)}): "
                f"cd {tree} && python setup.py build_ext --inplace")
    return None


def baseline_lines(modes: Sequence[str], shares: Mapping[str, Sequence[float]], tree: Path) -> list[str]:
    """For each mode run with a baseline too: its median share of off against the baseline's, in points,
    and the difference in each round (both paired with off in that round's seconds)."""
    out = []
    for m in modes:
        b = m + BASE
        if m.endswith(BASE) or b not in shares or not shares[m] or not shares[b]:
            continue
        diffs = [100 * (x - y) for x, y in zip(shares[m], shares[b], strict=False)]
        out.append(f"baseline {m:10s} {100 * statistics.median(shares[m]):5.1f}% of off against "
                   f"{100 * statistics.median(shares[b]):5.1f}% from {tree}: {statistics.median(diffs):+.1f} points "
                   f"(per round {' '.join(f'{d:+.1f}' for d in diffs)})")
    return out
