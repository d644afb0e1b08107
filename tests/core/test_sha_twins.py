"""SHA-256 hex digests (``relaygate.core.sha``): both twins equal ``hashlib``'s, the compiled one with the CPU's
SHA instructions (where it has them) and without."""

from __future__ import annotations

import hashlib
import importlib
import random

import pytest

from relaygate.core import _ext, _sha_py, sha

LENGTHS = [*range(0, 200), 1000, 4096, 65_537]
PREFIXES = (b"", b"chat\0m\0", b"h" * 63, b"h" * 64, b"h" * 150)


def _check(fn: object) -> None:
    rnd = random.Random(7)
    for n in LENGTHS:
        data = rnd.randbytes(n)
        for prefix in PREFIXES:
            assert fn(data, prefix) == hashlib.sha256(prefix + data).hexdigest(), (n, len(prefix))  # type: ignore[operator]
        assert fn(data) == hashlib.sha256(data).hexdigest()  # type: ignore[operator]


def test_the_pure_twin_is_sha256() -> None:
    _check(_sha_py.sha256_hex)
    assert _sha_py.sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("instructions", [True, False])
def test_the_compiled_twin_is_sha256(instructions: bool) -> None:
    if _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure twin alone")
    mod = importlib.import_module("relaygate.core._sha_c")
    mod.use_sha_instructions(instructions)
    try:
        _check(mod.sha256_hex)
    finally:
        mod.use_sha_instructions(True)


def test_the_cpu_s_sha_instructions_are_used_where_it_has_them() -> None:
    if _ext.NO_EXTENSIONS:
        pytest.skip("RELAYGATE_NO_EXTENSIONS is set: the pure twin alone")
    try:
        with open("/proc/cpuinfo") as f:
            flags = {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        flags = set()
    assert sha.SHA_INSTRUCTIONS == ("sha_ni" in flags and {"sse4_1", "ssse3"} <= flags)


def test_the_selector_digests_a_token_as_litellm_stores_it() -> None:
    token = b"sk-1234"
    assert sha.sha256_hex(token) == hashlib.sha256(token).hexdigest()
