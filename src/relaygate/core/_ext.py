"""Selection between compiled extensions and their pure-Python twins.

One switch, ``RELAYGATE_NO_EXTENSIONS=1``, disables the compiled modules at build and at import.
Each selector module (``sse.py``, ``http1.py``, ``tokens.py``, ``otlp.py``) calls :func:`load` and records which
implementation it got in :data:`LOADED`, which the server logs at startup. When the switch is unset and a
compiled module fails to import, the failure is recorded in :data:`FAILED` and logged as a warning; the
test suite fails on it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS: bool = os.environ.get("RELAYGATE_NO_EXTENSIONS", "") not in ("", "0")

#: component name -> "c" or "py"
LOADED: dict[str, str] = {}
#: component name -> import error text, for compiled modules that should have loaded but did not
FAILED: dict[str, str] = {}


def load(component: str) -> ModuleType:
    """Return ``relaygate.core._<component>_c`` unless disabled or missing, else ``_<component>_py``."""
    if not NO_EXTENSIONS:
        try:
            mod = importlib.import_module(f"relaygate.core._{component}_c")
        except ImportError as exc:
            FAILED[component] = str(exc)
        else:
            LOADED[component] = "c"
            return mod
    LOADED[component] = "py"
    return importlib.import_module(f"relaygate.core._{component}_py")


def compiled(component: str) -> ModuleType | None:
    """``relaygate.core._<component>_c`` for a compiled-only module whose pure twin is a path of its caller (the
    caller configures it), or None: disabled, or not built (recorded in :data:`FAILED`). :data:`LOADED` says
    which the caller runs."""
    if NO_EXTENSIONS:
        LOADED[component] = "py"
        return None
    try:
        mod = importlib.import_module(f"relaygate.core._{component}_c")
    except ImportError as exc:
        FAILED[component] = str(exc)
        LOADED[component] = "py"
        return None
    LOADED[component] = "c"
    return mod


def describe() -> str:
    """One line for the startup log: which implementation each component runs."""
    parts = [f"{name}={impl}" for name, impl in sorted(LOADED.items())]
    return ", ".join(parts) if parts else "none loaded"
