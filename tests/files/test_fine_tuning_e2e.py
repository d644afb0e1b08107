"""End to end: the ``openai`` SDK's ``client.fine_tuning.jobs`` against a real Granian process (SQLite store) whose
``openai/`` and ``azure/`` deployments point at the loopback upstream of ``conftest`` (``files.fine_tuning``):
files uploaded through the gateway train a job on their deployment, every id is the gateway's, jobs belong to
the key that made them, result files download, events and checkpoints page, and refusals are OpenAI's."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import start_gateway
from tests.files.conftest import serve
from tests.files.test_files_e2e import MASTER, Stack, _client, config, stack  # noqa: F401  (the module's stack)

pytestmark = pytest.mark.e2e

TRAIN = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


def _upload(c: openai.OpenAI, name: str, model: str = "gpt-files") -> str:
    return c.files.create(file=(name, TRAIN), purpose="fine-tune", extra_body={"model": model}).id


def test_create_retrieve_and_results(stack: Stack) -> None:  # noqa: F811
    a, b, up = stack.a, stack.b, stack.up
    train, valid = _upload(a, "train.jsonl"), _upload(a, "valid.jsonl")
    job = a.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=train, validation_file=valid,
                                    hyperparameters={"n_epochs": 2}, suffix="mine", seed=3,
                                    extra_body={"custom_llm_provider": "openai"})
    assert job.id.startswith("ftjob-") and job.training_file == train and job.validation_file == valid
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18")
    sent = up.last("POST", "/v1/fine_tuning/jobs")
    assert sent.headers["authorization"] == "Bearer sk-up-openai"
    assert sent.body["training_file"] in up.files and sent.body["validation_file"] in up.files
    assert (sent.body["hyperparameters"], sent.body["suffix"], sent.body["seed"]) == ({"n_epochs": 2}, "mine", 3)
    assert "custom_llm_provider" not in sent.body
    upstream_job = next(iter(up.jobs))
    assert upstream_job not in job.id
    got = a.fine_tuning.jobs.retrieve(job.id)
    assert got.id == job.id and got.status == "succeeded" and got.trained_tokens == 1234
    (result,) = got.result_files
    assert result.startswith("file-") and a.files.content(result).read() == b"step,loss\n"
    assert job.id in [j.id for j in a.fine_tuning.jobs.list()]
    assert job.id in [j.id for j in stack.master.fine_tuning.jobs.list()]
    assert job.id not in [j.id for j in b.fine_tuning.jobs.list()]
    for op in (lambda: b.fine_tuning.jobs.retrieve(job.id), lambda: b.fine_tuning.jobs.cancel(job.id),
               lambda: b.fine_tuning.jobs.list_events(job.id), lambda: b.files.content(result)):
        with pytest.raises(openai.NotFoundError):
            op()
    with pytest.raises(openai.NotFoundError):  # another key's file is not a training file of its
        b.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=train)
    events = a.fine_tuning.jobs.list_events(job.id, limit=5, after="ftevent-0")
    assert [e.id for e in events.data] == ["ftevent-1"]
    assert up.last("GET", "/events").query == {"limit": "5", "after": "ftevent-0"}
    (ckpt,) = a.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpt.fine_tuning_job_id == job.id and ckpt.step_number == 3
    assert a.fine_tuning.jobs.cancel(job.id).status == "cancelled"


def test_azure_and_refusals(stack: Stack) -> None:  # noqa: F811
    a, up = stack.a, stack.up
    train = _upload(a, "az.jsonl", "azure-files")
    job = a.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
    sent = up.last("POST", "/openai/fine_tuning/jobs")
    assert sent.path == "/openai/fine_tuning/jobs?api-version=2024-10-21" and sent.headers["api-key"] == "az-key"
    assert a.fine_tuning.jobs.retrieve(job.id).id == job.id
    other = _upload(a, "other.jsonl")
    with pytest.raises(openai.BadRequestError) as ei:  # the files live on two deployments
        a.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train, validation_file=other)
    assert ei.value.param == "validation_file"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as ei:
        a.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="")
    assert ei.value.param == "training_file"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as ei:
        a.fine_tuning.jobs.create(model="", training_file=other)
    assert ei.value.param == "model"  # type: ignore[attr-defined]
    for bad in ("ftjob-", "ftjob-garbage", job.id[:-3] + "AAA", job.id.replace("ftjob-", "batch_", 1)):
        with pytest.raises(openai.NotFoundError):
            stack.master.fine_tuning.jobs.retrieve(bad)
    with pytest.raises(openai.BadRequestError):
        a.fine_tuning.jobs.list(limit=0)
    with pytest.raises(openai.NotFoundError):  # not its file: never told it exists
        stack.c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=other)


def test_without_a_store_jobs_pass_through() -> None:
    extra = "relaygate_settings:\n  embedded_database: false\n"
    with serve() as up, start_gateway(config(up, extra=extra)) as gw, _client(gw.url, MASTER) as c:
        train = c.files.create(file=("n.jsonl", TRAIN), purpose="fine-tune").id
        job = c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train)
        assert c.fine_tuning.jobs.retrieve(job.id).training_file == train
        assert [j.id for j in c.fine_tuning.jobs.list()] == [job.id]
