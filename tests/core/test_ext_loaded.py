"""The compiled twins must load unless ``RELAYGATE_NO_EXTENSIONS`` is set."""

from __future__ import annotations

import importlib

import pytest

from relaygate.core import _ext

COMPONENTS = ["sse", "http1", "tokens", "otlp", "sha"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_compiled_twin_loaded(component: str) -> None:
    importlib.import_module(f"relaygate.core.{component}")  # the selector loads a twin
    if _ext.NO_EXTENSIONS:
        assert _ext.LOADED[component] == "py"
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure twin is expected")
    assert component not in _ext.FAILED, _ext.FAILED.get(component)
    assert _ext.LOADED[component] == "c"
    assert importlib.import_module(f"relaygate.core._{component}_c").__file__.endswith((".so", ".pyd"))


@pytest.mark.parametrize("component", COMPONENTS)
def test_twins_export_the_same_names(component: str) -> None:
    py = importlib.import_module(f"relaygate.core._{component}_py")
    selector = importlib.import_module(f"relaygate.core.{component}")
    assert sorted(selector.__all__) == sorted(py.__all__)
    if _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set")
    c = importlib.import_module(f"relaygate.core._{component}_c")
    assert sorted(py.__all__) == sorted(c.__all__)
    for name in py.__all__:
        assert hasattr(c, name), name
