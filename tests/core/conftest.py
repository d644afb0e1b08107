"""One test set for both twins: the ``impl`` fixture yields the pure and the compiled module.

A test module names its component in a module-level ``COMPONENT`` ("sse", "http1", "tokens" or "otlp"). The
compiled parameter is skipped only when ``RELAYGATE_NO_EXTENSIONS`` is set; otherwise a missing
extension fails the test (a silent fallback in production is a bug).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from relaygate.core import _ext


def load_twin(component: str, kind: str) -> ModuleType:
    if kind == "c" and _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set")
    try:
        return importlib.import_module(f"relaygate.core._{component}_{kind}")
    except ImportError as exc:  # pragma: no cover - the failure case
        pytest.fail(f"compiled twin relaygate.core._{component}_c did not load: {exc}")


@pytest.fixture(scope="module", params=["py", "c"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    component = request.module.COMPONENT
    return load_twin(component, request.param)


@pytest.fixture(scope="module")
def twins(request: pytest.FixtureRequest) -> tuple[ModuleType, ModuleType]:
    """Both twins of the module's component, for differential tests."""
    component = request.module.COMPONENT
    return load_twin(component, "py"), load_twin(component, "c")
