"""Alerting's sans-IO half: the gate's windows and summaries, budget events, safe text, settings."""

from __future__ import annotations

import logging

import pytest

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe.alert_rules import (
    AlertArgs,
    Gate,
    OutageCounter,
    budget_event,
    budget_message,
    clean,
    slack_text,
    webhook_event,
)
from relaygate.observe.alerting import make_alerter


def build(text: str = "x") -> tuple[str, str]:
    return "Low", text


# -- gate -----------------------------------------------------------------------------------------------


def test_gate_lets_one_through_per_window_and_counts_the_rest() -> None:
    g = Gate()
    assert g.admit(("k", "a"), 60, 0.0, True, build)
    assert not any(g.admit(("k", "a"), 60, t, True, build) for t in (1.0, 2.0, 59.9))
    assert g.admit(("k", "b"), 60, 1.0, True, build)  # another key has its own window
    assert g.suppressed == 3
    assert g.due(30.0) == []
    [s] = g.due(60.0)
    assert (s.kind, s.count) == ("k", 3)
    assert g.due(61.0) == []  # a summary opens a new window: the next occurrence inside it is held
    assert not g.admit(("k", "a"), 60, 70.0, True, build)
    assert g.admit(("k", "a"), 60, 121.0, True, build)  # that window ended: a new occurrence goes out


def test_gate_summary_shows_the_latest_occurrence() -> None:
    g = Gate()
    g.admit(("k",), 10, 0.0, True, lambda: build("first"))
    g.admit(("k",), 10, 1.0, True, lambda: build("second"))
    g.admit(("k",), 10, 2.0, True, lambda: build("third"))
    [s] = g.flush()
    assert s.count == 2 and s.build() == ("Low", "third")
    assert g.flush() == [] and g.next_due() is None


def test_gate_without_summaries_for_budgets() -> None:
    g = Gate()
    assert g.admit(("b", "key1"), 86_400, 0.0, False)
    assert not g.admit(("b", "key1"), 86_400, 3600.0, False)
    assert g.due(1e9) == [] and g.flush() == []
    assert g.admit(("b", "key1"), 86_400, 86_400.0, False)


def test_gate_memory_is_bounded() -> None:
    g = Gate(max_keys=100)
    for i in range(5000):
        g.admit(("k", str(i)), 60, i * 0.001, True, build)
        g.admit(("k", str(i)), 60, i * 0.001, True, build)  # each owes a summary
    assert len(g) <= 100
    assert len(g.flush()) <= 100


# -- budgets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spend", "budget", "soft", "expected"), [
    (10.0, 10.0, False, "budget_crossed"),
    (12.5, 10.0, False, "budget_crossed"),
    (9.6, 10.0, False, "threshold_crossed"),
    (8.6, 10.0, False, "threshold_crossed"),
    (8.0, 10.0, False, None),
    (0.0, 0.0, False, "budget_crossed"),
    (1.0, 1.0, True, "soft_budget_crossed"),
    (0.5, 1.0, True, None),
])
def test_budget_events_as_litellm_decides(spend: float, budget: float, soft: bool, expected: str | None) -> None:
    got = budget_event(spend, budget, soft)
    assert (got[0] if got else None) == expected


def test_threshold_wording() -> None:
    assert budget_event(9.6, 10.0, False) == ("threshold_crossed", "5% Threshold Crossed")
    assert budget_event(8.6, 10.0, False) == ("threshold_crossed", "15% Threshold Crossed")


def test_webhook_event_has_litellms_fields() -> None:
    body = webhook_event("team", "team-1", 5.0, 4.0, False, "Research", "budget_crossed", "Team Budget: x")
    assert set(body) == {"spend", "max_budget", "soft_budget", "token", "customer_id", "user_id", "team_id",
                         "team_alias", "organization_id", "user_email", "key_alias", "projected_exceeded_date",
                         "projected_spend", "event_group", "event", "event_message"}
    assert body["team_id"] == "team-1" and body["team_alias"] == "Research" and body["token"] is None
    soft = webhook_event("key", "abc", 1.0, 0.5, True, None, "soft_budget_crossed", "m")
    assert soft["soft_budget"] == 0.5 and soft["max_budget"] is None and soft["token"] == "abc"


def test_budget_slack_text_never_shows_the_key_hash() -> None:
    event_message, text = budget_message("key", "f" * 64, 12.0, 10.0, False, "prod-app", "Budget Crossed")
    assert event_message.startswith("Key Budget: Budget Crossed")
    assert "f" * 64 not in text and "*key_alias:* `prod-app`" in text and "*spend:* `12.0`" in text


# -- text -----------------------------------------------------------------------------------------------


def test_clean_escapes_what_a_client_could_inject() -> None:
    text = clean("gpt-4<!channel>\n`boom` & Bearer sk-abcdefghijklmnop\x1b[31m")
    assert "\n" not in text and "<" not in text and ">" not in text and "`" not in text
    assert "&lt;!channel&gt;" in text and "&amp;" in text
    assert "sk-abcdefghijklmnop" not in text and "[redacted]" in text
    assert "\x1b" not in text
    assert len(clean("x" * 10_000)) <= 302


def test_slack_text_layout() -> None:
    text = slack_text("High", "msg", 0.0, "https://gw.example", count=3)
    assert text == ("[Num Alerts: 3]\n\nLevel: `High`\nTimestamp: `00:00:00 UTC`\n\nMessage: msg\n\n"
                    "Proxy URL: `https://gw.example`")


# -- settings -------------------------------------------------------------------------------------------


def test_alerting_args_parse() -> None:
    args = AlertArgs.parse({"budget_alert_ttl": 10, "outage_alert_ttl": 5.5, "log_to_console": True,
                            "daily_report_frequency": 43200})
    assert args == AlertArgs(budget_alert_ttl=10.0, outage_alert_ttl=5.5, log_to_console=True)
    with pytest.raises(ValueError, match="budget_alert_ttl"):
        AlertArgs.parse({"budget_alert_ttl": "1d"})


def test_make_alerter_none_without_alerting() -> None:
    assert make_alerter(ObserveSettings(), {}, None) is None


def test_make_alerter_unsupported_channel_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.alerting"):
        assert make_alerter(ObserveSettings(alerting=("ms_teams",)), {}, None) is None
        assert make_alerter(ObserveSettings(alerting=("email",)), {}, None) is None  # observe.mail's, no warning
    assert "ms_teams" in caplog.text and "email" not in caplog.text


def test_make_alerter_slack_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL"):
        make_alerter(ObserveSettings(alerting=("slack",)), {}, None)


def test_make_alerter_webhook_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        make_alerter(ObserveSettings(alerting=("webhook",)), {"SLACK_WEBHOOK_URL": "http://h/x"}, None)


def test_make_alerter_bad_url_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as info:
        make_alerter(ObserveSettings(alerting=("slack",)), {"SLACK_WEBHOOK_URL": "hooks.slack.com/T0/B0/s3cr3t"},
                     None)
    assert "s3cr3t" not in str(info.value) and "http(s)" in str(info.value)


def test_make_alerter_bad_args_and_threshold() -> None:
    env = {"SLACK_WEBHOOK_URL": "https://hooks.example/x"}
    with pytest.raises(ConfigError, match="alerting_args"):
        make_alerter(ObserveSettings(alerting=("slack",), alerting_args={"outage_alert_ttl": -1}), env, None)
    with pytest.raises(ConfigError, match="alerting_threshold"):
        make_alerter(ObserveSettings(alerting=("slack",), alerting_threshold=-1.0), env, None)


def test_make_alerter_routes_and_filter() -> None:
    env = {"SLACK_WEBHOOK_URL": "https://hooks.example/default", "SLOW": "https://hooks.example/slow"}
    a = make_alerter(ObserveSettings(alerting=("slack",), alert_types=("llm_too_slow", "budget_alerts"),
                                     alert_to_webhook_url={"llm_too_slow": "os.environ/SLOW"}), env, None)
    assert a is not None and a.kinds == {"llm_too_slow", "budget_alerts"}
    with pytest.raises(ConfigError, match="NOPE"):
        make_alerter(ObserveSettings(alerting=("slack",), alert_to_webhook_url={"llm_too_slow": "os.environ/NOPE"}),
                     env, None)


def test_make_alerter_mapping_without_default_warns_for_unrouted_kinds(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.alerting"):
        a = make_alerter(ObserveSettings(alerting=("slack",),
                                         alert_to_webhook_url={"budget_alerts": ["https://a.example/1"]}), {}, None)
    assert a is not None and a.kinds == {"budget_alerts"}
    assert "llm_exceptions" in caplog.text


def test_unknown_alert_types_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "relaygate.alerting"):
        make_alerter(ObserveSettings(alerting=("slack",), alert_types=("llm_too_slo",)),
                     {"SLACK_WEBHOOK_URL": "https://h.example/x"}, None)
    assert "llm_too_slo" in caplog.text


def test_outage_counter_minor_then_major_once_per_window() -> None:
    c = OutageCounter(ttl=60, minor=5, major=10)
    got = [c.failed("dep", 408 if i % 3 == 0 else 503, float(i)) for i in range(12)]
    assert got[4] == ("Minor", 2, 3) and got[9] == ("Major", 4, 6)
    assert [g for g in got if g is not None] == [got[4], got[9]]
    assert c.failed("other", 500, 1.0) is None  # per deployment
    assert all(c.failed("dep", 500, 61.0 + i) is None for i in range(4))  # a new window counts afresh
    assert c.failed("dep", 500, 70.0) == ("Minor", 0, 5)


def test_outage_counter_is_bounded() -> None:
    c = OutageCounter(ttl=60, minor=5, major=10, max_keys=50)
    for i in range(1000):
        c.failed(f"d{i}", 500, 0.0)
    assert len(c._windows) <= 50


def test_non_evicting_gate_refuses_new_keys_when_full() -> None:
    g = Gate(max_keys=3, evict=False)
    assert all(g.admit(("b", str(i)), 100, 0.0, False) for i in range(3))
    assert not g.admit(("b", "new"), 100, 1.0, False) and g.refused == 1
    assert not g.admit(("b", "0"), 100, 1.0, False) and g.refused == 1  # a known key: held, not refused
    assert g.admit(("b", "new"), 100, 100.0, False)  # the windows ended: purged, room again
