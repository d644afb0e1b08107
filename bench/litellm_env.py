"""The LiteLLM proxy the runner compares against, installed into its own virtualenv.

``python -m bench.litellm_env`` (or the runner, on first use) creates ``.bench-venv/litellm`` at the repo
root and installs ``litellm[proxy]==1.109.1`` there, never into the environment relaygate runs in. An
existing venv whose ``litellm`` reports the pinned version is reused.

Registry quirk handled here: some published metadata pins a dependency to a release the registry does not
offer (e.g. ``certifi>=2026.10.19``). When pip's resolver fails with "Could not find a version that
satisfies the requirement NAME...", we install litellm itself with ``--no-deps`` and then its declared
dependencies (for the ``proxy`` extra, markers evaluated for the venv's Python) with the unsatisfiable
pins relaxed to any available version. The relaxed names are recorded in ``RELAXED.txt`` in the venv and
reported by the runner so the comparison is honest about it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import venv
from pathlib import Path

from bench.procs import REPO_ROOT

__all__ = ["LITELLM_SPEC", "LITELLM_VERSION", "venv_dir", "ensure_litellm", "litellm_version"]

LITELLM_VERSION = "1.109.1"
LITELLM_SPEC = f"litellm[proxy]=={LITELLM_VERSION}"

_UNSAT = re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9_.\-]+)")

_REQS_SCRIPT = r"""
import sys, json
from importlib.metadata import distribution
from packaging.requirements import Requirement
out = []
for raw in distribution("litellm").requires or []:
    req = Requirement(raw)
    if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", "proxy")):
        out.append(str(req).split(";")[0].strip())
print(json.dumps(out))
"""


def venv_dir() -> Path:
    return REPO_ROOT / ".bench-venv" / "litellm"


def litellm_version(vdir: Path | None = None) -> str | None:
    py = (vdir or venv_dir()) / "bin" / "python"
    if not py.exists():
        return None
    proc = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _pip(vdir: Path, args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(vdir / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True)
    with open(log, "a") as f:
        f.write(f"$ pip install {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    return proc


def ensure_litellm(quiet: bool = False) -> Path:
    """Return the path of the venv's ``litellm`` executable, installing it first if needed."""
    vdir = venv_dir()
    exe = vdir / "bin" / "litellm"
    if exe.exists() and litellm_version(vdir) == LITELLM_VERSION and (vdir / "INSTALLED").exists():
        return exe
    if not quiet:
        print(f"installing {LITELLM_SPEC} into {vdir} (one time, a few minutes) ...", file=sys.stderr, flush=True)
    vdir.parent.mkdir(parents=True, exist_ok=True)
    if not (vdir / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(vdir)
    log = vdir / "install.log"
    proc = _pip(vdir, [LITELLM_SPEC], log)
    relaxed: list[str] = []
    if proc.returncode != 0:
        bad = _UNSAT.findall(proc.stderr)
        if not bad:
            raise RuntimeError(f"installing {LITELLM_SPEC} failed; see {log}\n{proc.stderr[-1500:]}")
        relaxed = sorted({b.lower() for b in bad})
        if _pip(vdir, ["--no-deps", f"litellm=={LITELLM_VERSION}", "packaging"], log).returncode != 0:
            raise RuntimeError(f"installing litellm (no deps) failed; see {log}")
        reqs_proc = subprocess.run([str(vdir / "bin" / "python"), "-c", _REQS_SCRIPT], capture_output=True,
                                   text=True, check=True)
        import json

        reqs = json.loads(reqs_proc.stdout)
        for _attempt in range(5):
            wanted = []
            for r in reqs:
                name = re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower()
                if name in relaxed:
                    extras = re.search(r"\[[^\]]*\]", r)
                    wanted.append(name + (extras.group(0) if extras else ""))
                else:
                    wanted.append(r)
            proc = _pip(vdir, wanted, log)
            if proc.returncode == 0:
                break
            more = {b.lower() for b in _UNSAT.findall(proc.stderr)} - set(relaxed)
            if not more:
                raise RuntimeError(f"installing litellm's dependencies failed; see {log}\n{proc.stderr[-1500:]}")
            relaxed = sorted(set(relaxed) | more)
        else:
            raise RuntimeError(f"could not resolve litellm's dependencies; see {log}")
        (vdir / "RELAXED.txt").write_text("\n".join(relaxed) + "\n")
    if not exe.exists() or litellm_version(vdir) != LITELLM_VERSION:
        raise RuntimeError(f"{exe} missing or wrong version after install; see {log}")
    (vdir / "INSTALLED").write_text(LITELLM_SPEC + "\n")
    return exe


def relaxed_pins() -> list[str]:
    path = venv_dir() / "RELAXED.txt"
    return path.read_text().split() if path.exists() else []


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m bench.litellm_env",
                            description=f"Install {LITELLM_SPEC} into .bench-venv/litellm").parse_args(argv)
    exe = ensure_litellm()
    print(exe)
    if relaxed_pins():
        print("relaxed unsatisfiable pins: " + ", ".join(relaxed_pins()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
