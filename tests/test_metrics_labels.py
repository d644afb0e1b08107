"""Metrics series are bounded by the config: nothing a client sends becomes a label.

The rule under test: every label value is a configured model group / alias / deployment id, a real HTTP
status, a (bounded) event name, or ``other``, and ``Metrics`` enforces it itself, whatever its callers pass.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.config import from_litellm
from relaygate.metrics import MAX_EVENTS, OTHER, Metrics

GROUPS = {"gpt-4o-mini", "claude"}
DEPLOYMENTS = {"dep-a", "dep-b"}


def _metrics(directory: str | None = None) -> Metrics:
    return Metrics(directory, groups=GROUPS, deployments=DEPLOYMENTS)


def _random_name(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + '-_."\\\n{}') for _ in range(rng.randint(1, 40)))


def test_twenty_thousand_client_model_names_leave_the_series_constant() -> None:
    m = _metrics()
    rng = random.Random(9)
    m.observe_error("gpt-4o-mini", 401)
    for _ in range(100):
        m.observe_error(_random_name(rng), 401)
    series, size = len(m.requests), len(m.render())
    for _ in range(20_000):
        m.observe_error(_random_name(rng), 401)
    assert len(m.requests) == series == 2
    assert m.requests[(OTHER, "", "401")] == 20_100
    assert len(m.render()) <= size + 3  # only the counter's digits grew
    assert len(m.render()) < 4096


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.one_of(st.integers(), st.floats(), st.text(), st.none()))
def test_every_label_is_configured_or_other(group: str, dep: str, status: object) -> None:
    m = _metrics()
    m.observe(group, dep, status, 0.01, 0.001, 3, 4)  # type: ignore[arg-type]
    m.observe_error(group, status)  # type: ignore[arg-type]
    for g, d, s in m.requests:
        assert g in GROUPS | {OTHER}
        assert d in DEPLOYMENTS | {OTHER, ""}
        assert s == OTHER or (s.isdigit() and 100 <= int(s) <= 599)
    assert set(m.latency) <= GROUPS | {OTHER}
    assert {g for g, _ in m.tokens} <= GROUPS | {OTHER}


def test_configured_labels_are_kept() -> None:
    m = _metrics()
    m.observe("claude", "dep-b", 200, 0.2, 0.001, 10, 5)
    m.observe("claude", "dep-b", 599, 0.2, 0.001)
    m.observe_error("gpt-4o-mini", 429)
    assert set(m.requests) == {("claude", "dep-b", "200"), ("claude", "dep-b", "599"), ("gpt-4o-mini", "", "429")}
    text = m.render().decode()
    assert 'relaygate_requests_total{model_group="claude",model_id="dep-b",status="200"} 1' in text
    assert 'relaygate_requests_total{model_group="gpt-4o-mini",model_id="",status="429"} 1' in text


def test_event_names_are_bounded() -> None:
    m = _metrics()
    for i in range(10 * MAX_EVENTS):
        m.count(f"event-{i}")
    m.count("event-0")  # names already counted keep their own series
    assert len(m.events) == MAX_EVENTS + 1
    assert m.events["event-0"] == 2 and m.events[OTHER] == 9 * MAX_EVENTS


def test_a_reload_replaces_the_known_labels() -> None:
    m = _metrics()
    m.set_labels({"new-group"}, {"dep-new"})
    m.observe("gpt-4o-mini", "dep-a", 200, 0.1, 0.0)
    m.observe("new-group", "dep-new", 200, 0.1, 0.0)
    assert set(m.requests) == {(OTHER, OTHER, "200"), ("new-group", "dep-new", "200")}


def test_labels_come_from_the_config() -> None:
    cfg = from_litellm({
        "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {"model": "mock/echo"},
                        "model_info": {"id": "mock-a"}},
                       {"model_name": "openai/*", "litellm_params": {"model": "mock/echo"}}],
        "router_settings": {"model_group_alias": {"gpt4": "gpt-4o-mini"}},
    }, "cfg.yaml")
    m = Metrics.for_config(cfg)
    for name in ("gpt-4o-mini", "openai/*", "gpt4", "openai/gpt-4o", "random"):
        m.observe_error(name, 400)
    assert {g for g, _, _ in m.requests} == {"gpt-4o-mini", "openai/*", "gpt4", OTHER}
    m.observe("gpt-4o-mini", "mock-a", 200, 0.1, 0.0)
    assert ("gpt-4o-mini", "mock-a", "200") in m.requests


def test_another_workers_snapshot_is_summed(tmp_path: Path) -> None:
    a, b = _metrics(str(tmp_path)), _metrics(str(tmp_path))
    b.pid = 1  # pid 1 always runs: its snapshot counts as a live worker's
    a.observe_error("nope-" * 3, 400)
    b.observe_error("also-not-configured", 400)
    b.flush()
    text = a.render().decode()
    assert 'relaygate_requests_total{model_group="other",model_id="",status="400"} 2' in text
    assert "nope" not in text and "also-not" not in text
