"""Two relaygate instances on one database (issue 12, "Must hold"): separate ``relaygate serve`` processes, two
workers each, one real PostgreSQL, one real redis-server (or none), the bench mock upstream behind both.

Management calls go to one instance; requests are sent to the other, on a new connection each (so the
kernel spreads them over its workers), and every answer is traced to the worker that gave it: the
gateway's own ``x-litellm-call-id`` carries a per-process prefix (``pipeline.overrides.new_call_id``: the
top 64 bits are the worker's random prefix xor its pid), on refusals too. "Every worker of B" is checked,
not assumed: a streak of refusals counts only once each worker of B has given one.

- (a) a key made by ``/key/generate`` on A answers on every worker of B (the real openai SDK);
- (b) a key blocked on A is refused by every worker of B within a second (Redis pub/sub; and without Redis,
  the database change poll alone);
- (c) a team's model allow-list edited on B is enforced on A (401 ``key_model_access_denied``);
- (d) a customer blocked on A: B refuses requests naming it in ``user`` with LiteLLM's 400.

The measured propagation times are printed (``-s`` shows them) and bounded at 1.5 s: the issue's 1 s, with
room for a loaded CI machine; the time is measured from the management call's answer to the first refusal
of the streak that every later request continued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from bench.procs import MockHandle, start_mock
from relaygate.auth.changes import KeyChanges
from tests.conftest import GatewayProc, RedisServer, redis_on_a_free_port, start_gateway
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-two-instances"
WORKERS = 2
STREAK = 20
BOUND = 1.5
"""Seconds a change may take to reach every worker of the other instance (the issue says 1 s)."""


def config(db: str, mock: MockHandle, redis: RedisServer | None) -> str:
    text = f"""model_list:
  - model_name: chat
    litellm_params: {{model: openai/gpt-x, api_key: sk-up, api_base: {mock.openai_base}}}
  - model_name: other
    litellm_params: {{model: openai/gpt-y, api_key: sk-up, api_base: {mock.openai_base}}}
general_settings:
  master_key: {MASTER}
  database_url: {db}
"""
    if redis is not None:
        text += f"router_settings:\n  redis_host: 127.0.0.1\n  redis_port: {redis.port}\n"
    return text


def worker_of(response: Any) -> str:
    """The worker that answered: the per-process half of the gateway's call id."""
    call_id = response.headers["x-litellm-call-id"]
    return str(call_id[:18])


@dataclass
class Instance:
    gw: GatewayProc
    http: httpx.Client
    """No keep-alive: every request is a new connection, so every worker gets some."""

    def manage(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(f"{self.gw.url}{path}", json=body, headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 200, r.text
        return r.json()

    def chat(self, key: str, model: str = "chat", **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return self.http.post(f"{self.gw.url}/v1/chat/completions", json=body,
                              headers={"authorization": f"Bearer {key}"})

    def workers(self) -> set[str]:
        """The ids of this instance's workers (requests until WORKERS distinct ones answered)."""
        seen: set[str] = set()
        deadline = time.monotonic() + 10
        while len(seen) < WORKERS:
            assert time.monotonic() < deadline, f"only {len(seen)} of {WORKERS} workers answered"
            r = self.chat(MASTER)
            assert r.status_code == 200, r.text
            seen.add(worker_of(r))
        return seen


@pytest.fixture(scope="module")
def mock() -> Iterator[MockHandle]:
    with start_mock(name="two-instances") as handle:
        yield handle


@dataclass
class Pair:
    a: Instance
    b: Instance
    a_workers: set[str]
    b_workers: set[str]
    redis: bool


@pytest.fixture(scope="module", params=["redis", "change-poll"])
def pair(request: pytest.FixtureRequest, postgres_server: PostgresServer, mock: MockHandle,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Instances A and B (two workers each) on one new PostgreSQL database, with or without one Redis; one
    pair per mode for the module (each test makes its own keys, team and customer)."""
    with ExitStack() as stack:
        redis: RedisServer | None = None
        if request.param == "redis":
            redis = redis_on_a_free_port(tmp_path_factory.mktemp("redis"))
            stack.callback(redis.stop)
        text = config(postgres_server.new_database(), mock, redis)
        a, b = (Instance(stack.enter_context(start_gateway(text, workers=WORKERS)),
                         stack.enter_context(httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))))
                for _ in range(2))
        assert a.gw.port != b.gw.port
        yield Pair(a, b, a.workers(), b.workers(), redis is not None)


Check = Callable[[httpx.Response], bool]


def settle(send: Callable[[], httpx.Response], done: Check, workers: set[str], *, before: Check | None = None,
           limit: float = 10.0) -> float:
    """Send until STREAK answers in a row are ``done`` and every one of ``workers`` gave one; the seconds
    from the call to the first answer of that streak. An answer neither ``done`` nor ``before`` (the answer
    before the change: a 200 unless told) fails at once."""
    t0 = time.monotonic()
    first = 0.0
    streak = 0
    seen: set[str] = set()
    while True:
        r = send()
        now = time.monotonic()
        if done(r):
            if streak == 0:
                first = now - t0
            streak += 1
            seen.add(worker_of(r))
            if streak >= STREAK and seen >= workers:
                assert seen == workers, f"answers from workers {seen - workers} of another instance"
                return first
        else:
            assert (before or ok)(r), f"{r.status_code} {r.text}"
            streak, seen = 0, set()
        assert now - t0 < limit, f"not settled after {limit}s: {streak} in a row from {len(seen)} worker(s)"


def error_of(r: httpx.Response) -> dict[str, Any]:
    error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
    return error if isinstance(error, dict) else {}


def ok(r: httpx.Response) -> bool:
    return r.status_code == 200


def unknown_key(r: httpx.Response) -> bool:
    return r.status_code == 401 and "Invalid proxy server token" in str(error_of(r).get("message"))


def key_blocked(r: httpx.Response) -> bool:
    return r.status_code == 401 and "Key is blocked" in str(error_of(r).get("message"))


def model_denied(r: httpx.Response) -> bool:
    return r.status_code == 401 and error_of(r).get("type") == "key_model_access_denied"


def customer_blocked(r: httpx.Response) -> bool:
    return r.status_code == 400 and "User blocked from making LLM API Calls" in str(error_of(r).get("message"))


def report(pair: Pair, what: str, seconds: float) -> None:
    print(f"\n[{'redis' if pair.redis else 'change poll'}] {what}: {seconds * 1000:.0f} ms")
    assert seconds <= BOUND, f"{what} took {seconds:.3f}s (bound {BOUND}s)"


def sdk(instance: Instance, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{instance.gw.url}/v1", api_key=key, max_retries=0, http_client=instance.http)


def test_key_generated_on_a_answers_on_every_worker_of_b(pair: Pair) -> None:
    key = pair.a.manage("/key/generate", {"models": ["chat"]})["key"]
    client = sdk(pair.b, key)
    seen: set[str] = set()
    for i in range(200):
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hello"}])
        answer = raw.parse()
        assert answer.choices[0].message.content and answer.model == "chat"
        seen.add(worker_of(raw))
        if i + 1 >= STREAK and seen >= pair.b_workers:
            break
    assert seen == pair.b_workers
    with pytest.raises(openai.AuthenticationError):  # its allow-list came along
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "hello"}])
    # a custom key B has already refused (and cached as unknown) answers there once A creates it
    custom = "sk-e2e-custom-made-on-a"
    settle(lambda: pair.b.chat(custom), unknown_key, pair.b_workers)
    pair.a.manage("/key/generate", {"key": custom, "models": ["chat"]})
    report(pair, "custom key created on A answers on every worker of B",
           settle(lambda: pair.b.chat(custom), ok, pair.b_workers, before=unknown_key))


def test_key_blocked_on_a_is_refused_by_every_worker_of_b(pair: Pair) -> None:
    key = pair.a.manage("/key/generate", {"models": ["chat"]})["key"]
    settle(lambda: pair.b.chat(key), ok, pair.b_workers)  # cached on both workers of B
    pair.a.manage("/key/block", {"key": key})
    report(pair, "key blocked on A, refused by every worker of B", settle(lambda: pair.b.chat(key), key_blocked,
                                                                          pair.b_workers))
    with pytest.raises(openai.AuthenticationError, match="Key is blocked"):
        sdk(pair.b, key).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    pair.a.manage("/key/unblock", {"key": key})
    report(pair, "key unblocked on A, served by every worker of B",
           settle(lambda: pair.b.chat(key), ok, pair.b_workers, before=key_blocked))


def test_team_models_edited_on_b_are_enforced_on_a(pair: Pair) -> None:
    team = pair.a.manage("/team/new", {"models": ["chat", "other"]})["team_id"]
    key = pair.a.manage("/key/generate", {"team_id": team})["key"]
    settle(lambda: pair.a.chat(key, "other"), ok, pair.a_workers)  # cached on both workers of A
    pair.b.manage("/team/update", {"team_id": team, "models": ["chat"]})
    report(pair, "team models edited on B, enforced by every worker of A",
           settle(lambda: pair.a.chat(key, "other"), model_denied, pair.a_workers))
    with pytest.raises(openai.AuthenticationError) as denied:
        sdk(pair.a, key).chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])
    assert isinstance(denied.value.body, dict) and denied.value.body.get("type") == "key_model_access_denied"
    assert all(pair.a.chat(key, "chat").status_code == 200 for _ in range(STREAK))


def test_customer_blocked_on_a_is_refused_by_every_worker_of_b(pair: Pair) -> None:
    customer = "cust-two-instances"
    key = pair.a.manage("/key/generate", {"models": ["chat"]})["key"]
    settle(lambda: pair.b.chat(key, user=customer), ok, pair.b_workers)
    pair.a.manage("/customer/block", {"user_ids": [customer]})
    report(pair, "customer blocked on A, refused by every worker of B",
           settle(lambda: pair.b.chat(key, user=customer), customer_blocked, pair.b_workers))
    with pytest.raises(openai.BadRequestError, match="User blocked"):
        sdk(pair.b, key).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                                 user=customer)
    assert all(pair.b.chat(key, user="someone-else").status_code == 200 for _ in range(STREAK))
    pair.a.manage("/customer/unblock", {"user_ids": [customer]})
    report(pair, "customer unblocked on A, served by every worker of B",
           settle(lambda: pair.b.chat(key, user=customer), ok, pair.b_workers, before=customer_blocked))


@pytest.mark.redis
def test_customer_announcement_rereads_the_blocked_set(redis_server: RedisServer) -> None:
    """``!customers`` on the key-change channel makes a subscribed worker read the blocked customers again,
    with no change poll running (so the e2e's Redis figures above are the channel's, not the poll's)."""

    class Page:
        def __init__(self, ids: list[str]) -> None:
            self.items = [type("C", (), {"user_id": i})() for i in ids]
            self.total_pages = 1

    class Store:
        blocked: list[str] = []

        async def list_customers(self, **_: Any) -> Page:
            return Page(self.blocked)

    async def main() -> None:
        store = Store()
        got: list[frozenset[str]] = []
        cleared: list[int] = []
        changes = KeyChanges(store, invalidate=lambda h: None, clear=lambda: cleared.append(1),
                             customers=got.append, redis_url=redis_server.url)
        task = asyncio.ensure_future(changes.subscribe())
        try:
            deadline = time.monotonic() + 5
            while await changes.publish(["h"]) == 0:  # until the subscription is up
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            store.blocked = ["cust-1"]
            changes.customers_changed()
            while not got or got[-1] != frozenset({"cust-1"}):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert changes.blocked == frozenset({"cust-1"}) and not cleared  # no key cache was cleared
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
