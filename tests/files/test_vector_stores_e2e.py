"""End to end: the ``openai`` SDK's ``client.vector_stores`` against a real Granian process (SQLite store) whose
``openai/`` and ``azure/`` deployments point at the loopback upstream of ``conftest`` (``files.vector_stores``):
a store made from files uploaded through the gateway lives on their deployment, every id is the gateway's
(search results' file ids too), stores belong to the key that made them, files attach and detach, and refusals
are OpenAI's."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import start_gateway
from tests.files.conftest import serve
from tests.files.test_files_e2e import MASTER, Stack, _client, config, stack  # noqa: F401  (the module's stack)

pytestmark = pytest.mark.e2e

DOC = b"The gateway relays vector stores.\n"


def _upload(c: openai.OpenAI, name: str, model: str = "gpt-files") -> str:
    return c.files.create(file=(name, DOC), purpose="assistants", extra_body={"model": model}).id


def test_store_lifecycle_search_and_files(stack: Stack) -> None:  # noqa: F811
    a, b, up = stack.a, stack.b, stack.up
    f1, f2 = _upload(a, "one.txt"), _upload(a, "two.txt")
    vs = a.vector_stores.create(name="docs", file_ids=[f1], metadata={"team": "x"})
    assert vs.id.startswith("vs_") and vs.name == "docs"
    sent = up.last("POST", "/v1/vector_stores").body
    assert sent["file_ids"][0] in up.files and sent["file_ids"][0] not in f1 and "model" not in sent
    assert a.vector_stores.retrieve(vs.id).id == vs.id
    assert a.vector_stores.update(vs.id, name="renamed").name == "renamed"
    page = a.vector_stores.search(vs.id, query="relays")
    (hit,) = page.data
    assert hit.file_id == f1 and hit.score == 0.9  # the upstream's file id mapped back to the gateway's
    attached = a.vector_stores.files.create(vector_store_id=vs.id, file_id=f2)
    assert attached.id == f2 and attached.vector_store_id == vs.id
    assert sorted(f.id for f in a.vector_stores.files.list(vector_store_id=vs.id)) == sorted([f1, f2])
    assert a.vector_stores.files.retrieve(file_id=f2, vector_store_id=vs.id).status == "completed"
    content = a.vector_stores.files.content(file_id=f2, vector_store_id=vs.id)
    assert [c.text for c in content] == ["hello"]
    assert vs.id in [v.id for v in a.vector_stores.list()]
    assert vs.id in [v.id for v in stack.master.vector_stores.list()]
    assert vs.id not in [v.id for v in b.vector_stores.list()]
    for op in (lambda: b.vector_stores.retrieve(vs.id), lambda: b.vector_stores.search(vs.id, query="x"),
               lambda: b.vector_stores.delete(vs.id), lambda: b.vector_stores.files.list(vector_store_id=vs.id)):
        with pytest.raises(openai.NotFoundError):
            op()
    with pytest.raises(openai.NotFoundError):  # another key's file is not one to attach
        b.vector_stores.create(name="theirs", file_ids=[f1])
    assert a.vector_stores.files.delete(file_id=f2, vector_store_id=vs.id).deleted is True
    assert [f.id for f in a.vector_stores.files.list(vector_store_id=vs.id)] == [f1]
    assert a.vector_stores.delete(vs.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        a.vector_stores.retrieve(vs.id)
    assert vs.id not in [v.id for v in a.vector_stores.list()]


def test_placement_and_refusals(stack: Stack) -> None:  # noqa: F811
    a, up = stack.a, stack.up
    empty = a.vector_stores.create(name="empty", extra_body={"model": "azure-files"})
    assert up.last("POST", "/vector_stores").path == "/openai/vector_stores?api-version=2024-10-21"
    assert a.vector_stores.retrieve(empty.id).name == "empty"
    mine = _upload(a, "three.txt")
    with pytest.raises(openai.BadRequestError) as ei:  # the file lives on another deployment than the store
        a.vector_stores.files.create(vector_store_id=empty.id, file_id=mine)
    assert ei.value.param == "file_id"  # type: ignore[attr-defined]
    az = _upload(a, "az.txt", "azure-files")
    with pytest.raises(openai.BadRequestError) as ei:
        a.vector_stores.create(name="split", file_ids=[mine, az])
    assert ei.value.param == "file_ids"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as ei:
        a.vector_stores.search(empty.id, query="")
    assert ei.value.param == "query"  # type: ignore[attr-defined]
    for bad in ("vs_", "vs_garbage", empty.id[:-3] + "AAA", empty.id.replace("vs_", "batch_", 1)):
        with pytest.raises(openai.NotFoundError):
            stack.master.vector_stores.retrieve(bad)


def test_without_a_store_vector_stores_pass_through() -> None:
    extra = "relaygate_settings:\n  embedded_database: false\n"
    with serve() as up, start_gateway(config(up, extra=extra)) as gw, _client(gw.url, MASTER) as c:
        f = c.files.create(file=("n.txt", DOC), purpose="assistants").id
        vs = c.vector_stores.create(name="open", file_ids=[f])
        assert c.vector_stores.retrieve(vs.id).name == "open"
        assert [v.id for v in c.vector_stores.list()] == [vs.id]
        assert c.vector_stores.search(vs.id, query="q").data[0].file_id == f
