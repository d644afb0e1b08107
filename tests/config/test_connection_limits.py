"""The client connection limits ``relaygate serve`` hands to Granian (``server.backlog``, ``max_connections``,
``header_read_timeout``) and the open-file limit they are sized from. The behaviour they buy is tested end
to end in ``tests/e2e/test_idle_connections_e2e.py``."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from relaygate.cli import (
    FILE_LIMIT_CEILING,
    auto_max_connections,
    check_config,
    connection_limits,
    raise_file_limit,
)
from relaygate.config.model import ServerSettings


def test_defaults() -> None:
    limits = connection_limits(ServerSettings(), file_limit=20_000)
    assert limits.backlog == 2048
    assert limits.max_connections == 15_904  # the file limit less a quarter of it, at most 4,096
    assert limits.header_read_timeout_ms == 10_000
    assert limits.file_limit == 20_000


@pytest.mark.parametrize(("file_limit", "connections"), [
    (1024, 768), (20_000, 15_904), (65_536, 61_440), (FILE_LIMIT_CEILING, FILE_LIMIT_CEILING - 4096), (64, 64),
])
def test_auto_max_connections_leaves_files_for_upstream_sockets(file_limit: int, connections: int) -> None:
    assert auto_max_connections(file_limit) == connections


def test_config_and_flag_win() -> None:
    server = ServerSettings(backlog=512, max_connections=300, header_read_timeout=1.5)
    limits = connection_limits(server, file_limit=20_000)
    assert (limits.backlog, limits.max_connections, limits.header_read_timeout_ms) == (512, 300, 1500)
    assert connection_limits(server, 20_000, backlog_flag=4096).backlog == 4096


@pytest.fixture
def restore_file_limit() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_raise_file_limit_goes_to_the_hard_limit(restore_file_limit: tuple[int, int]) -> None:
    _, hard = restore_file_limit
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_CEILING)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    assert raise_file_limit() == target
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (target, hard)
    assert raise_file_limit() == target  # already there: unchanged


@pytest.mark.parametrize("line", ["header_read_timeout = 0", "max_connections = -1", "backlog = 0"])
def test_bad_limits_are_config_errors(tmp_path: Path, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\n{line}\n\n[[models]]\nname = "m"\nmodel = "mock/echo"\n')
    assert check_config([str(cfg)]) == 1
    assert f"server.{line.split()[0]}" in capsys.readouterr().err
    served = subprocess.run([sys.executable, "-m", "relaygate.cli", "serve", "--config", str(cfg), "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert served.returncode == 2  # refused before Granian starts
    assert f"server.{line.split()[0]}" in served.stderr
