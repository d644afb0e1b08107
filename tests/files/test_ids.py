"""The id scheme (``files.ids``): round trips, and every malformed, tampered or foreign id is unknown (None,
which the routes answer with a 404), never an exception."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.files import ids

SECRET = ids.secret_for(b"sk-master")


@pytest.mark.parametrize("kind,prefix", [("file", "file-"), ("batch", "batch_")])
def test_round_trip(kind: str, prefix: str) -> None:
    made = ids.encode(kind, "dep-1/a b", "file-abc123", SECRET)
    assert made.startswith(prefix) and "abc123" not in made
    assert made == ids.encode(kind, "dep-1/a b", "file-abc123", SECRET)  # a function of its parts
    assert ids.decode(kind, made, SECRET) == ids.Ref(kind, "dep-1/a b", "file-abc123")


def test_kind_secret_and_prefix_must_match() -> None:
    made = ids.encode("file", "d", "u1", SECRET)
    assert ids.decode("batch", made, SECRET) is None
    assert ids.decode("batch", "batch_" + made[len("file-"):], SECRET) is None  # the MAC covers the kind
    assert ids.decode("file", made, ids.secret_for(b"another master")) is None
    assert ids.decode("file", made, ids.secret_for(None)) is None
    assert ids.decode("nope", made, SECRET) is None


def test_every_one_character_change_is_unknown() -> None:
    made = ids.encode("file", "deployment-7", "file-XYZ", SECRET)
    alphabet = "AB_-9z"
    for i in range(len("file-"), len(made)):
        for ch in alphabet:
            if ch == made[i]:
                continue
            changed = made[:i] + ch + made[i + 1:]
            got = ids.decode("file", changed, SECRET)
            assert got is None or got == ids.decode("file", made, SECRET), changed


def test_truncated_extended_and_forged() -> None:
    made = ids.encode("file", "d", "u1", SECRET)
    for bad in (made[:-1], made[:-4], made + "A", made + "==", "file-", "file-" + "A" * 800, "file-\x00",
                "file-é", "file-a b", "batch_" * 3):
        assert ids.decode("file", bad, SECRET) is None, bad
    payload = b"\x01d\x00u1" + b"\x00" * 12  # right shape, no MAC
    assert ids.decode("file", "file-" + base64.urlsafe_b64encode(payload).decode().rstrip("="), SECRET) is None
    assert ids.decode("file", 12345, SECRET) is None  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_any_text_decodes_to_none_or_a_ref(text: str) -> None:
    for kind in ("file", "batch"):
        got = ids.decode(kind, text, SECRET)
        assert got is None


@pytest.mark.parametrize("upstream", ["", "a b", "x\ny", "é", "a" * 257, "a\x00b"])
def test_unusable_upstream_ids_refused(upstream: str) -> None:
    assert not ids.valid_upstream_id(upstream)
    with pytest.raises(ValueError):
        ids.encode("file", "d", upstream, SECRET)
