"""``general_settings.request_tag_mappings`` (LiteLLM 1.110): W3C ``baggage`` entries become request tags that
count for tag budgets and land in spend logs; required keys and budgeted tags are enforced; bad rules stop the
start. The header's parsing is checked against OpenTelemetry's own W3C propagator (what LiteLLM uses)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

from relaygate.config import ConfigError, from_litellm
from relaygate.core.baggage import TagMapper, TagMapping, mapped_tags, no_store
from relaygate.core.errors import BadRequest, GatewayError
from relaygate.store import Budget, Key, Tag
from relaygate.store.spend import read_spend_logs
from tests.asgi.conftest import Reply, call
from tests.budgets.conftest import COST, config, gateway, token, upstream
from tests.budgets.test_budgets import refused

RULES = [
    {"key": "team", "value": "payments", "tag": "team:payments"},
    {"key": "tenant", "tag_prefix": "tenant:", "required": True},
    {"key": "project", "tag_prefix": "project:", "require_budgeted_tag": True},
]
SETTINGS = {"general_settings": {"request_tag_mappings": RULES}}


def rules(raw: list[dict[str, Any]] = RULES) -> tuple[TagMapping, ...]:
    return from_litellm(config(None, _Up(), general_settings={"request_tag_mappings": raw}), "<t>") \
        .general.request_tag_mappings


class _Up:
    url = "http://127.0.0.1:9/v1"


async def ask(gw: Any, key: str, baggage: str | None = None, **body: Any) -> Reply:
    headers = {"authorization": f"Bearer {key}"}
    if baggage is not None:
        headers["baggage"] = baggage
    r = await call(gw, "POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                        **body}, headers=headers)
    gw.completions.drain_now()
    return r


@pytest.mark.parametrize(("header", "want"), [
    ("tenant=acme", ["tenant:acme"]),
    ("tenant=acme,team=payments", ["team:payments", "tenant:acme"]),
    ("team=payments;prop=1, tenant = acme%20corp", ["team:payments", "tenant:acme corp"]),  # properties, spaces
    ("tenant=a+b,other=x", ["tenant:a b"]),  # '+' is a space, as OpenTelemetry decodes it
    ("team=marketing,tenant=acme", ["tenant:acme"]),  # no exact rule and no prefix rule for team: no tag
])
def test_baggage_values_become_tags(header: str, want: list[str]) -> None:
    assert sorted(tag for tag, _ in mapped_tags(header, rules())) == sorted(want)


@pytest.mark.parametrize("header", [
    "",  # no baggage
    "team=payments",  # the required key missing
    "tenant=",  # empty
    "tenant=a,tenant=b",  # sent twice: ambiguous
    "tenant=a\"b",  # a character baggage does not allow: skipped, as OpenTelemetry skips it
    "tenant=%07",  # not printable once decoded
    "tenant=" + "x" * 9000,  # past the header's 8,192 bytes: no values at all
    "tenant=" + "x" * 300,  # a tag longer than 256 characters
])
def test_a_required_key_without_a_usable_value_is_refused(header: str) -> None:
    with pytest.raises(BadRequest, match="Missing, invalid or unmapped baggage value for tenant"):
        mapped_tags(header, rules())


@pytest.mark.parametrize("header", [
    "tenant=acme,team=payments,project=x", "team=payments;a=b,tenant=acme%2Fcorp", "tenant=acme, project = p%20q",
    "tenant=acme,bad key=1", "tenant=acme," + ",".join(f"k{i}=v" for i in range(200)),
])
def test_parsing_matches_opentelemetry(header: str) -> None:
    """The values relaygate reads are the ones OpenTelemetry's W3C propagator extracts from the members without
    their properties (LiteLLM strips them first, then extracts)."""
    members = ",".join(m.partition(";")[0] for m in header.split(","))
    ctx = W3CBaggagePropagator().extract({"baggage": members}, context=Context())
    theirs = otel_baggage.get_all(ctx)
    ours = {tag for tag, _ in mapped_tags(header, rules())}
    want = {"tenant:" + str(theirs["tenant"])} | ({"team:payments"} if theirs.get("team") == "payments" else set()) \
        | ({"project:" + str(theirs["project"])} if theirs.get("project") else set())
    assert ours == want


def test_budgeted_tags_need_a_budget_and_a_database() -> None:
    mapper = TagMapper(rules(), lambda: frozenset({"project:known"}))
    assert mapper.tags([(b"baggage", b"tenant=t,project=known")]) == ["tenant:t", "project:known"]
    with pytest.raises(BadRequest, match="Mapped tag project:other requires an existing tag budget"):
        mapper.tags([(b"baggage", b"tenant=t,project=other")])
    with pytest.raises(GatewayError, match="require a database") as exc:
        TagMapper(rules(), no_store).tags([(b"baggage", b"tenant=t,project=known")])
    assert exc.value.status == 503


@pytest.mark.parametrize(("raw", "field"), [
    ([{"key": "k", "value": "v"}], "request_tag_mappings[0]: an exact value mapping requires tag"),
    ([{"key": "k", "value": "v", "tag": "t", "tag_prefix": "p"}], "cannot set tag_prefix"),
    ([{"key": "k"}], "an any-value mapping requires tag_prefix"),
    ([{"key": "k", "tag": "t"}], "an any-value mapping requires tag_prefix"),
    ([{"key": "bad key", "tag_prefix": "p"}], "request_tag_mappings[0].key"),
    ([{"key": "k", "tag_prefix": "p", "header": "x-tags"}], "only 'baggage'"),
    ([{"key": "k", "tag_prefix": ""}], "tag_prefix: expected a non-empty string"),
    ([{"key": "k", "tag_prefix": "p", "colour": 1}], "colour"),
    ("tenant", "request_tag_mappings"),
])
def test_bad_rules_stop_the_start(raw: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        rules(raw)


def test_mapped_tags_count_for_tag_budgets_and_spend_logs(db_url: str) -> None:
    """Through the gateway: a mapped tag with a budget is refused past it, a required key missing is LiteLLM's 400
    before the upstream, an unbudgeted tag where the rule asks for one is a 400, and the spend rows carry the
    mapped tags beside the client's."""
    async def main() -> None:
        async with upstream() as up, gateway(db_url, up, **SETTINGS) as gw:
            await gw.store.create_budget(Budget(budget_id="b", max_budget=COST - 1e-7))  # one request
            await gw.store.create_tag(Tag(tag_name="tenant:acme", budget_id="b"))
            await gw.store.create_tag(Tag(tag_name="project:known", budget_id="b"))
            await gw.store.create_key(Key(token=token("sk-b")))
            await gw.budgets.refresh()
            r = await ask(gw, "sk-b", "tenant=acme,team=payments", metadata={"tags": ["mine"]})
            assert r.status == 200, r.chunks
            r = await ask(gw, "sk-b", "tenant=acme")  # the tag's budget is spent: refused before the upstream
            refused(r, "Budget has been exceeded! Tag=tenant:acme")
            r = await ask(gw, "sk-b", "team=payments")
            assert r.status == 400 and r.json()["error"]["message"] == \
                "Missing, invalid or unmapped baggage value for tenant"
            assert r.json()["error"]["type"] == "invalid_request_error"
            r = await ask(gw, "sk-b", "tenant=other,project=unknown")
            assert r.status == 400 and "Mapped tag project:unknown requires an existing tag budget" in \
                r.json()["error"]["message"]
            assert up.hits == 1
            deadline = time.monotonic() + 10
            while True:
                rows = [x for x in await read_spend_logs(gw.store) if x.status == "success"]
                if rows or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert {"mine", "tenant:acme", "team:payments"} <= set(rows[0].request_tags)

    asyncio.run(main())
