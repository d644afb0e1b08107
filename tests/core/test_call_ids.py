"""Call ids (``pipeline.overrides.new_call_id``): uuid4-shaped, unique, in the order a process made them
(the spend log's key grows at its end), and a forked child's differ from its parent's."""

from __future__ import annotations

import os
import uuid

from relaygate.pipeline.overrides import call_id_of, new_call_id


def test_call_ids_are_uuid4_shaped_unique_and_ordered() -> None:
    ids = [new_call_id().decode() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # one process's ids sort as made
    for i in ids[:50]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122


def test_a_forked_child_makes_other_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_call_id())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    parent = new_call_id().decode()
    assert child[:18] != parent[:18] and len(child) == len(parent) == 36


def test_a_clients_call_id_is_kept_when_printable() -> None:
    assert call_id_of([(b"x-litellm-call-id", b"my-id-1")]) == b"my-id-1"
    assert call_id_of([(b"x-litellm-call-id", b"bad\x00id")]) != b"bad\x00id"
