"""The check every compiled-only module's twin test makes: the compiled writer loaded, or the pure path expected."""

from __future__ import annotations

import pytest

from relaygate.core import _ext


def check_loaded(component: str, selected: object) -> None:
    """``selected`` (what the selector module chose) is the compiled ``relaygate.core._<component>_c``'s function,
    which loaded without a failure; with ``RELAYGATE_NO_EXTENSIONS`` set it is None and the test skips."""
    if _ext.NO_EXTENSIONS:
        assert selected is None and _ext.LOADED[component] == "py"
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure path is expected")
    assert component not in _ext.FAILED, _ext.FAILED.get(component)
    assert selected is not None and _ext.LOADED[component] == "c"
