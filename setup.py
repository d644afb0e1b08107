"""Build script: compiles the optional Cython extensions in ext/ into relaygate.core.

Every ``ext/_NAME_c.pyx`` becomes ``relaygate.core._NAME_c``. Set ``RELAYGATE_NO_EXTENSIONS=1`` to skip
the build entirely (the pure-Python twins are then used at import time). A failed compile is an error:
a silent fallback in production is a bug.
"""

from __future__ import annotations

import glob
import os

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    if os.environ.get("RELAYGATE_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    sources = sorted(glob.glob(os.path.join("ext", "_*_c.pyx")))
    if not sources:
        return []
    from Cython.Build import cythonize

    exts = [
        Extension(
            "relaygate.core." + os.path.splitext(os.path.basename(src))[0],
            [src],
            extra_compile_args=["-O3", "-fno-plt"],
        )
        for src in sources
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=_extensions())
