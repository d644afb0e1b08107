"""``bench.micro.retention_lock`` runs both ways on a small table and says what each did."""

from __future__ import annotations

import re

import pytest

from bench.micro import retention_lock


def test_both_ways_delete_every_expired_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert retention_lock.main(["--rows", "3000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["one DELETE", "batched"]
    for line in lines:
        m = re.search(r": ([\d,]+) rows deleted in [\d.]+ s; a one-row spend write waited at most \d+ ms", line)
        assert m is not None and m.group(1) == "3,000", line
