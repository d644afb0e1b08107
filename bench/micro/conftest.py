"""Micro-benchmarks compare the compiled and pure twins side by side (see README.md here)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from relaygate.core import _ext


def twin(component: str, kind: str) -> ModuleType:
    if kind == "c" and _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set")
    return importlib.import_module(f"relaygate.core._{component}_{kind}")


@pytest.fixture(params=["c", "py"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
