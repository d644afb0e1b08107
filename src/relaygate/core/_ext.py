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


def describe() -> str:
    """One line for the startup log: which implementation each component runs."""
    parts = [f"{name}={impl}" for name, impl in sorted(LOADED.items())]
    return ", ".join(parts) if parts else "none loaded"
