"""Alerting's decisions, without IO: which alert kinds exist, when one may be sent again, what it says.

What it owns: the sans-IO half of ``general_settings.alerting`` (the IO half, queues and HTTP posts, is
:mod:`relaygate.observe.alerting`). Everything here takes plain values and ``now`` and returns decisions
or bytes; nothing awaits.

- **Kinds** are LiteLLM's ``alert_types`` names. :data:`DEFAULT_ALERT_TYPES` is LiteLLM's default list
  (what runs when ``alert_types`` is not set). relaygate sends (:data:`SENT_KINDS`)
  ``llm_exceptions``, ``llm_too_slow``, ``budget_alerts``, ``db_exceptions`` (database and Redis),
  ``cooldown_deployment``, ``outage_alerts`` and ``region_outage_alerts`` (:class:`OutageCounter`; a region as
  :func:`deployment_region` names it), ``llm_requests_hanging`` (``pipeline.hanging``), ``spend_reports``,
  ``daily_reports`` and ``fallback_reports`` (``observe.spend_reports``, ``observe.fallback_reports``),
  ``failed_tracking_spend`` (an unpriced model), ``new_model_added`` and the management API's events
  (:data:`MANAGEMENT_KINDS`: a virtual key, team or internal user created, updated or deleted, laid out by
  :func:`management_message`); the others (``model_deprecation_warnings``, the MCP ones) are accepted in the
  config and never fire. Each kind's text is one function here (``*_message``), LiteLLM's layout.
- **Rate limits** (:class:`Gate`): each alert has a dedupe key and a window. The first occurrence of a key
  is sent at once; the next ones inside the window are counted, not sent. For kinds that *summarize*
  (all that are gated but budgets) the window's end then sends one summary, ``[Num Alerts: n]`` followed
  by the latest occurrence, and opens a new window, so a storm costs one post per key per window and no
  occurrence goes unreported (``outage_alerts`` are not gated: :class:`OutageCounter` sends at most a
  minor and a major alert per deployment per window). Budget alerts do not summarize: a budget stays
  crossed, so LiteLLM's rule (one alert per entity and event per ``budget_alert_ttl``, 24 h by default)
  is the right one. A gate
  holds at most ``max_keys`` windows (ended ones are purged first; then the oldest is forgotten, or, for
  budgets, the new key refused): memory is bounded whatever the keys are.
- **Text is safe to show.** Every string that a client or an upstream could have chosen (model names as
  requested, error messages, metadata) goes through :func:`clean`: secrets redacted
  (:func:`relaygate.core.errors.redact`), control characters escaped onto one line, Slack's ``&``, ``<``,
  ``>`` escaped (so no ``<!channel>`` or forged link), backticks neutralised (they would close the code
  span) and the result truncated. Keys are never in an alert: key aliases are shown; a key's hash only in
  the generic webhook's ``token`` field, as LiteLLM sends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from relaygate.core.errors import redact
from relaygate.logs import escape_controls
from relaygate.sinks.record import CompletionRecord, Outcome

__all__ = ["ALL_ALERT_TYPES", "DEFAULT_ALERT_TYPES", "MANAGEMENT_KINDS", "SENT_KINDS", "AlertArgs", "Gate",
           "OutageCounter", "budget_event", "clean", "component_outage_message", "cooldown_message",
           "deployment_outage_message", "deployment_region", "exception_message", "hanging_message",
           "management_message", "model_added_message", "outage_message", "slack_text", "slow_message",
           "unpriced_message", "webhook_event"]

DEFAULT_ALERT_TYPES = ("llm_exceptions", "llm_too_slow", "llm_requests_hanging", "budget_alerts", "spend_reports",
                       "failed_tracking_spend", "db_exceptions", "daily_reports", "cooldown_deployment",
                       "new_model_added", "outage_alerts", "region_outage_alerts", "fallback_reports")
"""LiteLLM's ``DEFAULT_ALERT_TYPES``: the kinds on when ``alert_types`` is not set."""

ALL_ALERT_TYPES = frozenset(DEFAULT_ALERT_TYPES) | {
    "model_deprecation_warnings", "new_virtual_key_created", "virtual_key_updated", "virtual_key_deleted",
    "new_team_created", "team_updated", "team_deleted", "new_internal_user_created", "internal_user_updated",
    "internal_user_deleted", "mcp_tool_description_blocked", "mcp_pinned_tools_changed"}
"""Every ``alert_types`` name LiteLLM documents (others are warned about by :func:`make_alerter`)."""

MANAGEMENT_KINDS = {
    ("POST", "/key/generate"): "new_virtual_key_created", ("POST", "/key/update"): "virtual_key_updated",
    ("POST", "/key/delete"): "virtual_key_deleted", ("POST", "/team/new"): "new_team_created",
    ("POST", "/team/update"): "team_updated", ("POST", "/team/delete"): "team_deleted",
    ("POST", "/user/new"): "new_internal_user_created", ("POST", "/user/update"): "internal_user_updated",
    ("POST", "/user/delete"): "internal_user_deleted"}
"""The management routes whose success is alerted, and the kind (LiteLLM's ``send_management_endpoint_alert``)."""
SENT_KINDS = frozenset({"llm_exceptions", "llm_too_slow", "budget_alerts", "db_exceptions", "cooldown_deployment",
                        "outage_alerts", "region_outage_alerts", "llm_requests_hanging", "spend_reports",
                        "new_model_added", "failed_tracking_spend", "fallback_reports",
                        "daily_reports",
                        *MANAGEMENT_KINDS.values()})
"""The kinds relaygate actually sends."""

MAX_TEXT = 300
"""Characters kept of one client- or upstream-chosen string in an alert."""


class AlertArgs(msgspec.Struct, frozen=True, kw_only=True):
    """The ``alerting_args`` relaygate reads (LiteLLM's names and defaults)."""

    budget_alert_ttl: float = 86_400.0
    """Seconds before the same budget event of the same entity is alerted again."""
    outage_alert_ttl: float = 60.0
    """Window of the database / Redis outage alerts (one per component per window, then a summary)."""
    minor_outage_alert_threshold: int = 5
    """Upstream failures (408, 5xx) of one deployment within ``outage_alert_ttl`` for a minor outage alert."""
    major_outage_alert_threshold: int = 10
    """... and for a major outage alert."""
    region_outage_alert_ttl: float = 60.0
    """Window of ``region_outage_alerts``: the failures of one provider region's deployments counted together."""
    log_to_console: bool = False
    """Also log every alert payload (LiteLLM's ``log_to_console``)."""
    daily_report_frequency: float = 43_200.0
    """Seconds between two ``daily_reports`` (LiteLLM's default: 12 hours; ``SLACK_DAILY_REPORT_FREQUENCY``)."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> AlertArgs:
        """Read the known keys of ``alerting_args``; the others are ignored.

        Raises ``ValueError`` naming the key when a value has the wrong type or is negative."""
        out: dict[str, Any] = {}
        for name in ("budget_alert_ttl", "outage_alert_ttl", "region_outage_alert_ttl", "daily_report_frequency"):
            if name in raw:
                v = raw[name]
                if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                    raise ValueError(f"{name}: expected a number of seconds >= 0, got {v!r}")
                out[name] = float(v)
        for name in ("minor_outage_alert_threshold", "major_outage_alert_threshold"):
            if name in raw:
                v = raw[name]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"{name}: expected a whole number >= 1, got {v!r}")
                out[name] = v
        if "log_to_console" in raw:
            v = raw["log_to_console"]
            if not isinstance(v, bool):
                raise ValueError(f"log_to_console: expected true or false, got {v!r}")
            out["log_to_console"] = v
        return cls(**out)


def outage_message(severity: str, timeouts: int, errors: int, *names: tuple[str, str]) -> tuple[str, str]:
    """An ``outage_alerts`` / ``region_outage_alerts`` alert's level and text, laid out as LiteLLM's: the
    severity (``Minor``: Medium, ``Major``: High), what is down (``names``: label, value), the errors counted."""
    head = "".join(f"*{label}:* `{clean(value)}`\n" for label, value in names)
    counts = "".join(f"\n{name}: {n}" for name, n in (("Timeout Errors", timeouts), ("API Errors", errors)) if n)
    return "High" if severity == "Major" else "Medium", f"\n*⚠️ {severity} Service Outage*\n\n{head}\n*Errors:*{counts}"


def deployment_region(provider: str, params: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The region of a deployment as LiteLLM's ``region_outage_alerts`` names it (``_get_model_region``):
    Vertex AI's ``vertex_location`` (else ``VERTEXAI_LOCATION`` / ``VERTEX_LOCATION``), Bedrock's
    ``aws_region_name``, watsonx's ``watsonx_region_name``, else the deployment's ``region_name``; None: no
    region is known, and the deployment's failures count towards no region."""
    found: Any = None
    if provider == "vertex_ai":
        found = params.get("vertex_location") or env.get("VERTEXAI_LOCATION") or env.get("VERTEX_LOCATION")
    elif provider == "bedrock":
        found = params.get("aws_region_name")
    elif provider == "watsonx":
        found = params.get("watsonx_region_name")
    if not isinstance(found, str) or not found:
        found = params.get("region_name")
    return found if isinstance(found, str) and found else None


# ------------------------------------------------------------------------------------------------ text

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "'"})


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as text that is safe inside a Slack code span: redacted, one line, escaped, truncated."""
    text = escape_controls(redact(str(value)))
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.translate(_SLACK_ESCAPES)


def slack_text(level: str, message: str, wall: float, proxy_base_url: str | None, count: int = 1) -> str:
    """The Slack ``text`` of an alert, laid out as LiteLLM lays it out (level, UTC time, message, proxy URL);
    ``count`` > 1 prefixes LiteLLM's ``[Num Alerts: n]`` (a summary of a rate-limited window)."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(wall))
    text = f"Level: `{level}`\nTimestamp: `{stamp} UTC`\n\nMessage: {message}"
    if proxy_base_url:
        text += f"\n\nProxy URL: `{clean(proxy_base_url)}`"
    if count > 1:
        text = f"[Num Alerts: {count}]\n\n{text}"
    return text


def management_message(kind: str, user_id: str | None, role: str | None, key_alias: str | None,
                       args: Mapping[str, Any]) -> str:
    """A management event as LiteLLM's ``send_virtual_key_event_slack`` lays it out: the event's name, who did
    it, then the request's fields (``args``: already without secrets; each value cleaned and cut short)."""
    lines = [f"`{kind.replace('_', ' ').title()}`", "*Action Done by:*",
             f"created_by_user_id: `{clean(user_id or 'Unknown')}`",
             f"created_by_user_role: `{clean(role or 'Unknown')}`", f"created_by_key_alias: `{clean(key_alias)}`", "",
             "*Arguments passed:*"]
    lines += [f"{clean(k, 60)}: `{clean(v if isinstance(v, str) else _json(v))}`" for k, v in list(args.items())[:40]]
    return "\n".join(lines)


def model_added_message(model_name: str, base_model: str | None, info: Mapping[str, Any],
                        proxy_base_url: str | None) -> str:
    """LiteLLM's ``new_model_added`` text (``model_added_alert``): the model group, its base model, how to call
    it with the OpenAI SDK through this proxy, and what the cost map knows of it (``info``: per-token prices
    written with 8 decimals, as LiteLLM writes them)."""
    name = clean(model_name, 200)
    base = f"Base Model: `{clean(base_model, 200)}`\n" if base_model else ""
    known = "".join(f"{clean(k, 60)}: {_price(v) if k.endswith('_cost_per_token') else clean(v)}\n"
                    for k, v in info.items())
    return (f"\n*🚅 New Model Added*\nModel Name: `{name}`\n{base}\n\nUsage OpenAI Python SDK:\n```\nimport openai\n"
            f"client = openai.OpenAI(\n    api_key=\"your_api_key\",\n"
            f"    base_url={clean(proxy_base_url or 'http://0.0.0.0:4000')}\n)\n\n"
            f"response = client.chat.completions.create(\n    model=\"{name}\", # model to send to the proxy\n"
            f"    messages = [\n        {{\n            \"role\": \"user\",\n"
            f"            \"content\": \"this is a test request, write a short poem\"\n        }}\n    ]\n)\n```\n\n"
            f"Model Info: \n```\n{known}\n```\n")


def unpriced_message(model: str, group: str) -> str:
    """LiteLLM's ``failed_tracking_spend`` text (``Failed Tracking Cost for ...``) for a model nobody priced: its
    requests are logged at cost 0 and charged to no budget until it has a price."""
    return (f"Failed Tracking Cost for model=`{clean(model)}` (model group `{clean(group)}`): no price is known for "
            "it, so its requests cost 0 and count towards no budget. Add input_cost_per_token and "
            "output_cost_per_token to its model_info or litellm_params, or the model to a cost map.")


def _price(value: Any) -> str:
    return f"{value:.8f}" if isinstance(value, float) else clean(value)


def _json(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, ValueError):
        return str(value)


# ------------------------------------------------------------------------------------------------ budgets

_GROUPS = {"key": "key", "user": "user", "internal_user": "user", "team": "team", "organization": "organization",
           "org": "organization", "end_user": "end_user", "customer": "end_user", "proxy": "proxy",
           "global": "proxy", "team_member": "team_member"}
"""Entity types as callers name them -> LiteLLM's ``Litellm_EntityType`` value (the webhook's ``event_group``)."""

_TITLES = {"key": "Key", "user": "User", "team": "Team", "organization": "Organization", "end_user": "Customer",
           "proxy": "Proxy", "team_member": "Team Member"}

THRESHOLDS = ((0.05, "5% Threshold Crossed"), (0.15, "15% Threshold Crossed"))
"""LiteLLM warns when 5% or 15% of a max budget is left (``threshold_crossed``)."""


def budget_event(spend: float, budget: float, soft: bool) -> tuple[str, str] | None:
    """``(event, wording)`` for an entity at ``spend`` of ``budget``, or ``None`` (nothing to say).

    A soft budget reached is ``soft_budget_crossed``; a max budget reached is ``budget_crossed``; a max
    budget with at most 15% (then 5%) left is ``threshold_crossed``, as LiteLLM decides."""
    if soft:
        return ("soft_budget_crossed", "Soft Budget Crossed") if spend >= budget else None
    if spend >= budget:
        return "budget_crossed", "Budget Crossed"
    if budget > 0:
        left = (budget - spend) / budget
        for limit, wording in THRESHOLDS:
            if left <= limit:
                return "threshold_crossed", wording
    return None


def event_group(entity_type: str) -> str:
    return _GROUPS.get(entity_type.lower(), entity_type.lower())


def webhook_event(group: str, entity_id: str, spend: float, budget: float, soft: bool, alias: str | None,
                  event: str, message: str) -> dict[str, Any]:
    """LiteLLM's ``WebhookEvent`` (every field, ``null`` when unknown) for a budget event."""
    body: dict[str, Any] = {
        "spend": spend, "max_budget": None if soft else budget, "soft_budget": budget if soft else None,
        "token": None, "customer_id": None, "user_id": None, "team_id": None, "team_alias": None,
        "organization_id": None, "user_email": None, "key_alias": None, "projected_exceeded_date": None,
        "projected_spend": None, "event_group": group, "event": event, "event_message": redact(message)}
    field = {"key": "token", "user": "user_id", "team": "team_id", "organization": "organization_id",
             "end_user": "customer_id", "team_member": "user_id"}.get(group)
    if field is not None:
        body[field] = redact(entity_id)
    if alias is not None:
        body["team_alias" if group == "team" else "key_alias"] = redact(alias)
    return body


def budget_message(group: str, entity_id: str, spend: float, budget: float, soft: bool, alias: str | None,
                   wording: str) -> tuple[str, str]:
    """``(event_message, slack message)`` of a budget alert, in LiteLLM's words.

    The Slack text lists the entity's fields as LiteLLM does (``*field:* `value```), without the key's
    hash: a key is named by its alias."""
    title = _TITLES.get(group) or clean(group.replace("_", " ").title(), 40)
    if soft:
        event_message = f"Soft Budget Crossed: Total Soft Budget:`{budget}`"
    elif wording == "Budget Crossed":
        event_message = f"{title} Budget: Budget Crossed\n Total Budget:`{budget}`"
    else:
        event_message = f"{title} Budget: {wording}"
    fields: list[tuple[str, object]] = [("spend", round(spend, 6))]
    fields.append(("soft_budget" if soft else "max_budget", budget))
    if group != "key" and group != "proxy":
        fields.append(({"user": "user_id", "team": "team_id", "organization": "organization_id",
                        "end_user": "customer_id"}.get(group, "id"), entity_id))
    if alias is not None:
        fields.append(("team_alias" if group == "team" else "key_alias", alias))
    fields.append(("event_group", group))
    info = "".join(f"*{k}:* `{clean(v)}`\n" for k, v in fields)
    return event_message, f"{event_message}\n\n{info}"


# ------------------------------------------------------------------------------------------------ gate

Builder = Callable[[], tuple[str, str]]
"""Builds ``(level, message)`` of an occurrence, only when it is sent (suppressed ones are never formatted)."""


class _Window:
    __slots__ = ("until", "length", "suppressed", "last", "kind", "summarize")

    def __init__(self, until: float, length: float, kind: str, summarize: bool) -> None:
        self.until = until
        self.length = length
        self.kind = kind
        self.summarize = summarize
        self.suppressed = 0
        self.last: Builder | None = None


class Summary(msgspec.Struct, frozen=True):
    """The end of a window that suppressed occurrences: ``count`` of them, the latest to show."""

    kind: str
    count: int
    build: Builder


class Gate:
    """Per-key rate limits: one occurrence per window is let through, the rest counted (module essay).

    Full (``max_keys`` windows open): ended windows are purged (a scan at most once a second), then an
    evicting gate forgets its oldest window, which may let that key alert again early; a non-evicting
    gate (budgets, whose windows last a day) refuses the new key instead (:attr:`refused`), so it can
    never turn into one alert per request. Sans-IO: every method takes ``now`` (monotonic seconds)."""

    def __init__(self, max_keys: int = 10_000, *, evict: bool = True) -> None:
        self.max_keys = max_keys
        self.evict = evict
        self._windows: dict[tuple[str, ...], _Window] = {}
        self._pending: dict[tuple[str, ...], _Window] = {}
        """Windows that suppressed something and summarize: they owe a summary when they end."""
        self._purge_at = -1e18
        self.suppressed = 0
        """Occurrences kept back, in total (those summarized included)."""
        self.refused = 0
        """New keys turned away by a full non-evicting gate."""

    def __len__(self) -> int:
        return len(self._windows)

    def admit(self, key: tuple[str, ...], window: float, now: float, summarize: bool,
              build: Builder | None = None) -> bool:
        """True: send this occurrence now (a new window opens). False: it is inside a window, counted (and,
        for a summarizing kind, ``build`` kept as the latest occurrence for the window's summary)."""
        w = self._windows.get(key)
        if w is not None and now < w.until:
            w.suppressed += 1
            self.suppressed += 1
            if w.summarize:
                w.last = build
                self._pending[key] = w
            return False
        if w is not None:
            del self._windows[key]  # re-inserted at the end: the dict stays in window-start order
            self._pending.pop(key, None)
        elif len(self._windows) >= self.max_keys and not self._make_room(now):
            self.refused += 1
            return False
        self._windows[key] = _Window(now + window, window, key[0], summarize)
        return True

    def due(self, now: float) -> list[Summary]:
        """Summaries of the windows that ended with suppressed occurrences; each opens a new window."""
        if not self._pending:
            return []
        out = []
        for key, w in list(self._pending.items()):
            if now < w.until:
                continue
            del self._pending[key]
            if w.last is not None and w.suppressed:
                out.append(Summary(w.kind, w.suppressed, w.last))
            w.until = now + w.length
            w.suppressed = 0
            w.last = None
        return out

    def flush(self) -> list[Summary]:
        """Every summary owed, at once (shutdown)."""
        out = [Summary(w.kind, w.suppressed, w.last) for w in self._pending.values()
               if w.last is not None and w.suppressed]
        self._pending.clear()
        return out

    def next_due(self) -> float | None:
        """The earliest end of a window owing a summary (``None``: none owes one)."""
        return min((w.until for w in self._pending.values()), default=None)

    def _make_room(self, now: float) -> bool:
        windows = self._windows
        if now >= self._purge_at:
            self._purge_at = now + 1.0
            for key in [k for k, w in windows.items() if now >= w.until and k not in self._pending]:
                del windows[key]
        if len(windows) < self.max_keys:
            return True
        if not self.evict:
            return False
        while len(windows) >= self.max_keys:
            key = next(iter(windows))
            del windows[key]
            self._pending.pop(key, None)
        return True


# ------------------------------------------------------------------------------------------------ outages


class _Outage:
    __slots__ = ("until", "timeouts", "errors", "minor_sent", "major_sent", "first", "several")

    def __init__(self, until: float, first: str) -> None:
        self.until = until
        self.timeouts = 0
        self.errors = 0
        self.minor_sent = False
        self.major_sent = False
        self.first = first
        self.several = False


class OutageCounter:
    """LiteLLM's ``outage_alerts`` and ``region_outage_alerts``: upstream failures (408 and 5xx) counted per
    deployment (or per provider region) in a window of ``ttl`` seconds from the first; the count reaching
    ``minor`` calls a minor outage, ``major`` a major one, each at most once per window. With ``several``
    (a region's counter), only once failures came from more than one deployment: one bad deployment is not a
    region's outage (LiteLLM's rule). Bounded: at most ``max_keys`` windows are tracked (ended windows are
    purged first, then the oldest)."""

    def __init__(self, ttl: float, minor: int, major: int, max_keys: int = 10_000, *, several: bool = False) -> None:
        self.ttl = ttl
        self.minor = minor
        self.major = major
        self.max_keys = max_keys
        self.several = several
        self._windows: dict[str, _Outage] = {}

    def failed(self, key: str, status: int, now: float, member: str = "") -> tuple[str, int, int] | None:
        """Count one failure of ``key`` (a deployment's id, or a region's; ``member``: the deployment that
        failed); ``(severity, timeouts, errors)`` when it makes an outage to report (severity ``Minor`` or
        ``Major``), else ``None``."""
        w = self._windows.get(key)
        if w is None or now >= w.until:
            if w is not None:
                del self._windows[key]
            elif len(self._windows) >= self.max_keys:
                for k in [k for k, v in self._windows.items() if now >= v.until]:
                    del self._windows[k]
                while len(self._windows) >= self.max_keys:
                    del self._windows[next(iter(self._windows))]
            w = self._windows[key] = _Outage(now + self.ttl, member)
        elif member != w.first:
            w.several = True
        if status == 408:
            w.timeouts += 1
        else:
            w.errors += 1
        n = w.timeouts + w.errors
        if self.several and not w.several:
            return None
        if not w.major_sent and n >= self.major:
            w.major_sent = w.minor_sent = True
            return "Major", w.timeouts, w.errors
        if not w.minor_sent and n >= self.minor:
            w.minor_sent = True
            return "Minor", w.timeouts, w.errors
        return None


# ---------------------------------------------------------------------------------------------- messages


def _detail(r: CompletionRecord) -> Any:
    extra = r.extra
    return extra.get("observe") if isinstance(extra, dict) else None


def _request_info(r: CompletionRecord, detail: Any) -> str:
    attempts = getattr(detail, "attempts", None) or ()
    api_base = attempts[-1].api_base if attempts else ""
    info = f"\nRequest Model: `{clean(r.model)}`\nModel Group: `{clean(r.model_group)}`"
    if r.deployment_id:
        info += f"\nDeployment: `{clean(r.deployment_id)}` ({clean(r.provider, 40)})"
    info += f"\nAPI Base: `{clean(api_base) or 'default'}`"
    if r.key_alias:
        info += f"\nKey Alias: `{clean(r.key_alias)}`"
    team = getattr(detail, "team_alias", None) or r.team_id
    if team:
        info += f"\nTeam: `{clean(team)}`"
    info += f"\nCall ID: `{clean(r.call_id, 80)}`"
    metadata = getattr(detail, "metadata", None)
    extra = metadata.get("alerting_metadata") if isinstance(metadata, dict) else None
    if isinstance(extra, dict) and extra:
        info += "\n\n*Alerting Metadata*:" + "".join(
            f"\n{clean(k, 60)}: `{clean(v, 200)}`" for k, v in list(extra.items())[:10])
    return info


def slow_message(r: CompletionRecord, threshold: float) -> tuple[str, str]:
    head = f"`Responses are slow - {round(r.latency, 2)}s response time > Alerting threshold: {threshold}s`"
    return "Low", head + _request_info(r, _detail(r))


def hanging_message(model_group: str, model: str, call_id: str, elapsed: float, threshold: float,
                     key_alias: str | None, team: str | None) -> tuple[str, str]:
    info = f"\nRequest Model: `{clean(model)}`\nModel Group: `{clean(model_group)}`"
    if key_alias:
        info += f"\nKey Alias: `{clean(key_alias)}`"
    if team:
        info += f"\nTeam: `{clean(team)}`"
    info += f"\nCall ID: `{clean(call_id, 80)}`\nWaiting: `{round(elapsed, 1)}s`"
    return "Medium", f"`Requests are hanging - {threshold}s+ request time`" + info


def exception_message(r: CompletionRecord) -> tuple[str, str]:
    detail = _detail(r)
    error = getattr(detail, "error_message", "") or f"{r.error_type or 'error'} (status {r.status})"
    if r.outcome is Outcome.STREAM_BROKEN:
        error = f"stream broken after the first frame: {error}"
    head = f"LLM API call failed: `{clean(error, 500)}`\nStatus: `{r.status}`"
    return "High", head + _request_info(r, detail)


def deployment_outage_message(r: CompletionRecord, dep_id: str, dep: tuple[str, str, str, str] | None, severity: str,
                          timeouts: int, errors: int) -> tuple[str, str]:
    """A deployment's outage: named from the config (``dep``), else from the record's attempt at it."""
    if dep is None:
        mine = [a for a in getattr(_detail(r), "attempts", None) or () if a.deployment_id == dep_id]
        a = mine[-1] if mine else None
        dep = (a.model_group, a.upstream_model, a.provider, a.api_base) if a is not None else (
            r.model_group, r.upstream_model, r.provider, "")
    return outage_message(severity, timeouts, errors, ("Model Name", dep[1]), ("Model Group", dep[0]),
                          ("Deployment", dep_id), ("Provider", dep[2]), ("API Base", dep[3] or "default"))


def cooldown_message(model_group: str, deployment_id: str, provider: str, api_base: str, reason: str,
                      seconds: float) -> tuple[str, str]:
    return "Low", (f"Router: Cooling down Deployment:\nModel Group: `{clean(model_group)}`\n"
                   f"Deployment: `{clean(deployment_id)}`\nProvider: `{clean(provider, 60)}`\n"
                   f"API Base: `{clean(api_base) or 'default'}`\nCooldown Time: `{round(seconds, 3)} seconds`\n"
                   f"Reason: `{clean(reason, 500)}`")


def component_outage_message(component: str, detail: str) -> tuple[str, str]:
    what = {"database": "DB read/write call failed", "redis": "Redis call failed"}.get(
        component, f"{clean(component, 40)} call failed")
    return "High", f"{what}: `{clean(detail, 1000)}`"
