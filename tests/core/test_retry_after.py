"""An upstream's ``Retry-After`` becomes a delay only when it is one: a finite number of seconds up to a
day (``inf`` made a 429 into a 500 through an overflow in the cooldown arithmetic)."""

from __future__ import annotations

import pytest

from relaygate.pipeline.exchange import retry_after


@pytest.mark.parametrize(("value", "seconds"), [
    (b"5", 5.0), (b"0.25", 0.25), (b"-3", 0.0), (b"86400", 86400.0),
    (b"inf", None), (b"-inf", 0.0), (b"nan", None), (b"1e9", None), (b"soon", None), (b"", None), (None, None),
])
def test_retry_after(value: bytes | None, seconds: float | None) -> None:
    assert retry_after(value) == seconds
