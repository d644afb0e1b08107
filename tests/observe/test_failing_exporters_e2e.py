"""Eleven of LiteLLM's callbacks failing at once in one real ``relaygate serve``: ``posthog``,
``datadog_llm_observability``, ``sqs``, ``gcs_bucket``, ``braintrust``, ``opik``, ``openmeter``, ``lago``
(charging the key's user, so that every request has a subscription to bill), ``lunary``, ``athina`` and
``helicone`` (success only, as LiteLLM registers it), with ``prometheus`` so LiteLLM's failure family renders.

Each is aimed at its own test file's stand-in, which keeps its rules (a wrong key, path or signature is refused
as the real service refuses it) and answers 500 to what it would have taken; what the failure depends on still
works (GCS's token endpoint issues a token, Braintrust makes the project). Unary, streamed and upstream-failing
requests are answered as without callbacks, and for each callback the gateway counts the failure
(``litellm_callback_logging_failures_metric_total`` and ``relaygate_events_total``) and logs none of its secrets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import start_gateway
from tests.observe import test_athina as athina
from tests.observe import test_braintrust as braintrust
from tests.observe import test_datadog_llm_obs as datadog
from tests.observe import test_helicone as helicone
from tests.observe import test_lago as lago
from tests.observe import test_lunary as lunary
from tests.observe import test_openmeter as openmeter
from tests.observe import test_opik as opik
from tests.observe import test_posthog as posthog
from tests.observe import test_sqs as sqs
from tests.observe.receiver import JsonReceiver, Request
from tests.observe.test_gcs_bucket import Google, env_of, google, key_pem, sa_file  # noqa: F401  (its fixtures)

MASTER = "sk-failing-master"
AUTH = {"Authorization": f"Bearer {MASTER}"}
NAMES = ("posthog", "datadog_llm_observability", "aws_sqs", "gcs_bucket", "braintrust", "opik", "openmeter",
         "lago", "lunary", "athina", "helicone")
"""LiteLLM's ``callback_name`` of each (``sqs`` counts as ``aws_sqs``); the sinks' events are ``<name>_...``."""


def failing(r: JsonReceiver, refused: list[str]) -> None:
    """``r`` answers 500 where it would take the request (its own ``check`` saying nothing); what the check
    refuses (a 4xx: a wrong key, path or shape) it still refuses, noted in ``refused``."""
    check = r.check
    r.status = 500

    def hook(request: Request) -> int | tuple[int, Any] | None:
        said = check(request) if check else None
        status = said if isinstance(said, int) or said is None else said[0]
        if status is not None and 400 <= status < 500:
            refused.append(f"{type(r).__module__}.{type(r).__name__} {request.path}: {status}")
        return said

    r.check = hook


@pytest.fixture
def stand_ins() -> Iterator[dict[str, Any]]:
    """The JSON stand-ins, by callback name, each failing as :func:`failing` says."""
    with ExitStack() as stack:
        rs: dict[str, Any] = {
            "posthog": stack.enter_context(posthog.Capture()),
            "datadog_llm_observability": stack.enter_context(datadog.Intake()),
            "aws_sqs": stack.enter_context(sqs.FakeSqs(lambda entries: (500, {"__type": "InternalFailure",
                                                                               "message": "down"}))),
            "braintrust": stack.enter_context(braintrust.Braintrust()),
            "opik": stack.enter_context(opik.Opik()),
            "openmeter": stack.enter_context(openmeter.Capture()),
            "lago": stack.enter_context(lago.Lago()),
            "lunary": stack.enter_context(lunary.Lunary()),
            "athina": stack.enter_context(athina.Athina()),
            "helicone": stack.enter_context(helicone.Helicone()),
        }
        rs["braintrust"].fail_inserts = 500  # the project is still made: the insert is what fails
        yield rs


def gateway_config(queue_url: str) -> str:
    """All eleven and ``prometheus``; SQS's params as its own gateway test writes them."""
    params = yaml.safe_load(sqs.gateway_config(queue_url, "eu-west-1"))["litellm_settings"]["aws_sqs_callback_params"]
    return yaml.safe_dump({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/echo"}}],
        "litellm_settings": {
            "callbacks": ["posthog", "datadog_llm_observability", "sqs", "gcs_bucket", "braintrust", "opik",
                          "openmeter", "lago", "lunary", "athina", "prometheus"],
            "success_callback": ["helicone"],
            "aws_sqs_callback_params": params,
        },
        "general_settings": {"master_key": MASTER},
    })


def count(text: str, line: str) -> float:
    """The value of the ``/metrics`` sample ``line`` (a name with its labels) in ``text``; 0 when absent."""
    for ln in text.splitlines():
        if ln.startswith(line + " "):
            return float(ln.split()[-1])
    return 0.0


def streamed_text(body: str) -> str:
    """The content of an SSE chat stream, which must end with ``[DONE]``."""
    data = [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]
    assert data and data[-1] == "[DONE]", body[-500:]
    return "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-1]
                   if json.loads(d).get("choices"))


@pytest.mark.e2e
def test_failing_exporters_never_fail_requests_and_are_counted(
        stand_ins: dict[str, Any], tmp_path: Path,
        google: Google, sa_file: Path, key_pem: tuple[str, bytes]) -> None:  # noqa: F811
    refused: list[str] = []
    for r in stand_ins.values():
        failing(r, refused)
    google.upload_status = 500
    s = stand_ins
    env = {
        "POSTHOG_API_KEY": posthog.API_KEY, "POSTHOG_API_URL": s["posthog"].url,
        **datadog.env_for(s["datadog_llm_observability"]),
        "TEST_SQS_SECRET": sqs.SECRET,
        **env_of(google, sa_file, GCS_FLUSH_INTERVAL="0.1"),
        **braintrust.env_for(s["braintrust"]),
        **opik.env_for(s["opik"], HOME=str(tmp_path)),  # no ~/.opik.config of the tester's
        **openmeter.env_for(s["openmeter"]),
        **lago.env_for(s["lago"], LAGO_API_CHARGE_BY="user_id"),  # the key's user: a subscription for each
        **lunary.env_for(s["lunary"]),
        **athina.env_for(s["athina"]),
        **helicone.env_for(s["helicone"]),
        "DEFAULT_FLUSH_INTERVAL_SECONDS": "0.05",
    }
    with start_gateway(gateway_config(s["aws_sqs"].queue_url), env=env) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as c:
        for i in range(4):  # unary and streamed, each answered as the echo answers without callbacks
            prompt = f"q{i}"
            user = {"user": f"cust-{i}"} if i < 2 else {}  # an end user on some, none on the others
            r = c.post("/v1/chat/completions", headers=AUTH,
                       json={"model": "m", "stream": i % 2 == 1, "messages": [{"role": "user", "content": prompt}],
                             **user})
            assert r.status_code == 200, r.text
            if i % 2:
                assert r.headers["content-type"].startswith("text/event-stream") and streamed_text(r.text) == prompt
            else:
                assert r.json()["choices"][0]["message"]["content"] == prompt
        r = c.post("/v1/chat/completions", headers=AUTH, json={  # the upstream fails: its own error, no other
            "model": "m", "messages": [{"role": "user", "content": "x"}], "mock_response": "litellm.RateLimitError"})
        assert r.status_code == 429, r.text

        lines = {n: f'litellm_callback_logging_failures_metric_total{{callback_name="{n}"}}' for n in NAMES}
        events = {n: f'relaygate_events_total{{event="{n}_send_failed"}}' for n in NAMES}
        deadline = time.monotonic() + 30
        while True:
            text = c.get("/metrics").text
            missing = [n for n in NAMES if count(text, lines[n]) < 1 or events[n] not in text]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        counted = [ln for ln in text.splitlines() if "callback_logging_failures" in ln or "_send_failed" in ln]
        for n in NAMES:
            assert count(text, lines[n]) >= 1, (n, counted)
            assert events[n] in text, (n, counted)
        log = gw.log()

    # each receiver was tried with requests it would take, were it up
    assert refused == []
    assert s["posthog"].posts and s["datadog_llm_observability"].posts and s["opik"].posts
    assert s["openmeter"].posts and s["helicone"].posts and s["lunary"].posts and s["athina"].posts
    assert s["lago"].posts and s["lago"].posts[0][2]["events"][0]["external_subscription_id"] == "default_user_id"
    assert not s["lago"].billed  # nothing billed: every batch was answered 500
    assert any(p.endswith("/insert") for p, _, _ in s["braintrust"].posts)
    assert s["aws_sqs"].bad_signatures == 0 and s["aws_sqs"].batches
    assert google.raw_paths and google.uploads == []  # the token was issued; the upload failed
    # no secret in the gateway's log
    secrets = {"posthog": posthog.API_KEY, "datadog_llm_observability": datadog.API_KEY, "aws_sqs": sqs.SECRET,
               "gcs_bucket private key": key_pem[0].splitlines()[1], "braintrust": braintrust.API_KEY,
               "opik": opik.API_KEY, "openmeter": openmeter.API_KEY, "lago": lago.API_KEY, "lunary": lunary.API_KEY,
               "athina": athina.API_KEY, "helicone": helicone.API_KEY,
               **{f"gcs_bucket token {t[:12]}": t for t in google.issued}}
    assert google.issued
    assert [name for name, secret in secrets.items() if secret in log] == []
