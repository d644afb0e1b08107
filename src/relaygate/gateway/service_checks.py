"""``GET /health/services?service=<name>`` (LiteLLM's): test one logging callback or alerting channel.

What it owns: the route, and the mock request record a callback test hands to its exporter.

- **Who**: the proxy admin only (the master key, an admin key or session). LiteLLM lets any key call it and
  checks the admin for its webhook, New Relic and PointFive tests only; a test posts to the operator's Slack
  channels and observability projects, so relaygate refuses everyone else (LiteLLM's admin-route 401).
- **Which**: ``service`` missing is a 400 ``Service must be specified.``; a name that is neither one of
  LiteLLM's testable services nor a callback relaygate runs is a 400 listing the testable names (LiteLLM's
  ``Service must be in list. Service=<name> not in [...]``, the name escaped).
- **Callbacks** (``langfuse``, ``otel``, ``datadog``, ``generic_api``, ``aws_sqs`` / ``sqs`` ... every exporter of
  ``observe``): one mock request record (LiteLLM's ``litellm-mock-response-model``, the user
  ``litellm:/health/services``, ``Hey, how's it going?`` answered ``This is a mock response``) is handed to each
  running exporter of that name, and nothing else: no spend row, no Prometheus count, no other exporter sees
  it (LiteLLM runs a mock completion through every callback). It goes into that exporter's own bounded buffer
  (``CompletionQueue.offer_to``), and the exporter sends it as it sends a request's record, in its next batch:
  the route never waits on the exporter. The answer is LiteLLM's ``{"status": "success", "message": "Mock LLM request
  made - check <service>."}``. An exporter that takes failures only is handed a failed record (LiteLLM's
  mock succeeds, so such a callback never sees its test). ``langfuse`` first checks the default project's
  keys (``GET /api/public/projects``, as the Langfuse SDK's ``auth_check``): refused or unreachable, the
  answer is a 500 ``langfuse auth_check failed: <reason>`` and nothing is sent. A callback the gateway does
  not run is LiteLLM's 400 ``Service=<name> is not configured as a callback, add it to
  litellm_settings.callbacks.``. ``prometheus`` is pulled, not sent: ``{"status": "healthy"}`` naming
  ``/metrics``, when it runs.
- **Alerting**: ``slack`` / ``slack_budget_alerts`` queue one Low test message per alert kind with a Slack
  destination (LiteLLM's words per kind) and answer ``{"status", "alert_types", "message"}``; ``webhook``
  queues LiteLLM's test ``budget_crossed`` event for the caller's key. Both go past the alert rate gates and
  through the alerter's bounded queues. ``email`` mails LiteLLM's test key-created notification (a test alias,
  no real key) to ``TEST_EMAIL_ADDRESS`` through ``observe.mail`` (a 400 naming the variable without one).
  Not configured (or ``ms_teams``, which relaygate does not send), LiteLLM's 422 ``"<service>" not in proxy
  config: general_settings. Unable to test this.``.

Nothing here waits on an exporter: the record goes to the named exporters' own buffers, the alerts to the
alerter's queues, and the route answers once they are queued.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from relaygate.core.errors import GatewayError
from relaygate.http.respond import send_json
from relaygate.http.routes import Params, RouteTable
from relaygate.http.types import Receive, Scope, Send
from relaygate.logs import escape_controls
from relaygate.sinks.record import CompletionRecord, Outcome

if TYPE_CHECKING:
    from relaygate.gateway.core import Gateway

MOCK_MODEL = "litellm-mock-response-model"
MOCK_USER = "litellm:/health/services"
MOCK_PROMPT = "Hey, how's it going?"
MOCK_ANSWER = "This is a mock response"

ALERT_SERVICES = frozenset({"slack", "slack_budget_alerts", "webhook", "email", "ms_teams"})
LITELLM_SERVICES = frozenset({
    "slack_budget_alerts", "langfuse", "langfuse_otel", "slack", "ms_teams", "openmeter", "webhook", "email",
    "braintrust", "datadog", "datadog_llm_observability", "generic_api", "arize", "galileo", "newrelic",
    "pointfive", "signoz", "sqs", "aws_sqs", "datadog_metrics", "custom_callback_api"})
"""LiteLLM 1.110's testable services (its ``services`` names and those with a check of their own)."""
ALIASES = {"sqs": "aws_sqs", "opentelemetry": "otel", "custom_callback_api": "generic_api"}
"""A service name -> the exporter's name in relaygate."""


def testable() -> frozenset[str]:
    """Every ``service`` value this route answers other than with the not-in-list 400."""
    from relaygate.observe import ASYNC_EXPORTERS
    return LITELLM_SERVICES | frozenset(ASYNC_EXPORTERS) | frozenset(ALIASES) | {"prometheus"}


def mock_record(ok: bool = True) -> CompletionRecord:
    """LiteLLM's mock request, as a completion record with the request and answer for the exporters."""
    from relaygate.observe.detail import Detail
    from relaygate.observe.tracecontext import new_span_id, new_trace_id

    now = time.time()
    call_id = str(uuid.uuid4())
    request = {"model": MOCK_MODEL, "messages": [{"role": "user", "content": MOCK_PROMPT}], "user": MOCK_USER}
    answer = None
    if ok:
        answer = {"id": f"chatcmpl-{call_id}", "object": "chat.completion", "created": int(now), "model": MOCK_MODEL,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": MOCK_ANSWER},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}
    error = "" if ok else "This is a mock failure (/health/services)"
    detail = Detail(trace_id=new_trace_id(), span_id=new_span_id(), input=request, output=answer,
                    error_message=error)
    return CompletionRecord(
        call_id=call_id, route="chat", stream=False, model=MOCK_MODEL, model_group=MOCK_MODEL, deployment_id="",
        provider="openai", upstream_model=MOCK_MODEL, key_hash=None, key_alias=None, team_id=None, user_id=None,
        status=200 if ok else 500, outcome=Outcome.OK if ok else Outcome.ERROR, prompt_tokens=10,
        completion_tokens=20 if ok else 0, cache_read_tokens=0, cache_write_tokens=0, latency=0.0, ttft=None,
        overhead=0.0, cost=0.0, cache_hit=False, retries=0, fallbacks=0, start_time=now, end_user_id=MOCK_USER,
        error_type="" if ok else "internal_server_error", error_message=error, extra={"observe": detail})


def _not_configured(service: str) -> GatewayError:
    return GatewayError(f'"{service}" not in proxy config: general_settings. Unable to test this.', status=422,
                        type="bad_request_error", param="service")


async def _langfuse_auth(sink: Any) -> None:
    """The default project's keys checked as the Langfuse SDK's ``auth_check`` does; raises the 500."""
    from relaygate.observe.post import Poster, PostError

    project = getattr(sink, "default", None)
    if project is None:  # keys' own projects only: nothing of the gateway's to check
        return
    creds = project.creds
    poster = Poster(10.0, user_agent="relaygate-langfuse")
    try:
        got = await poster.post(creds.host + "/api/public/projects", b"", [("authorization", creds.authorization)],
                                "GET")
    except PostError as exc:
        reason = str(exc)
    else:
        if 200 <= got.status < 300:
            return
        reason = f"HTTP {got.status}"
    finally:
        await poster.aclose()
    raise GatewayError(f"langfuse auth_check failed: {reason}", status=500, type="internal_server_error")


async def send_test_record(gw: Gateway, service: str) -> dict[str, Any]:
    """Hand the mock record to the running exporters named ``service`` (see the module docstring)."""
    name = ALIASES.get(service, service)
    exporters = getattr(gw, "exporters", None)
    sinks = [s for s in (exporters.sinks if exporters is not None else ()) if getattr(s, "name", None) == name]
    if not sinks:
        raise GatewayError(f"Service={service} is not configured as a callback, add it to "
                           "litellm_settings.callbacks.", status=400, type="bad_request_error", param="service")
    if name == "prometheus":
        return {"status": "healthy", "message": "prometheus is scraped, not sent: its litellm_* families are served "
                                                "at /metrics"}
    if name == "langfuse":
        for sink in sinks:
            await _langfuse_auth(sink)
    completions = getattr(gw, "completions", None)
    for sink in sinks:
        ok = bool(getattr(sink, "success", True)) or not getattr(sink, "failure", False)
        batch = [mock_record(ok)]
        if completions is None or not completions.offer_to(sink, batch):  # a sink outside any queue (tests)
            result = sink.handle(batch)
            if result is not None:
                await result
    return {"status": "success", "message": f"Mock LLM request made - check {service}."}


def send_test_alert(gw: Gateway, service: str, token: str | None, key_alias: str | None) -> dict[str, Any]:
    exporters = getattr(gw, "exporters", None)
    if service == "email":
        return _test_email(exporters.mailer if exporters is not None else None)
    alerter = exporters.alerter if exporters is not None else None
    if alerter is None or service == "ms_teams":
        raise _not_configured(service)
    if service == "webhook":
        if not alerter.test_webhook(token, key_alias):
            raise _not_configured(service)
        return {"status": "success", "message": "Mock Webhook Alert sent, verify Webhook Alert Received"}
    kinds = alerter.test_slack()
    if not kinds:
        raise _not_configured(service)
    return {"status": "success", "alert_types": kinds,
            "message": "Mock Slack Alert sent, verify Slack Alert Received on your channel"}


def _test_email(mailer: Any) -> dict[str, Any]:
    """LiteLLM's test email: a key-created notification for a test key, to ``TEST_EMAIL_ADDRESS``."""
    import os

    from relaygate.observe.mail import TEST_ALIAS, TEST_KEY, valid_address

    if mailer is None:
        raise _not_configured("email")
    to = (os.environ.get("TEST_EMAIL_ADDRESS") or "").strip()
    if not valid_address(to):
        raise GatewayError("Set TEST_EMAIL_ADDRESS to the address the test email goes to.", status=400,
                           type="bad_request_error", param="service")
    mailer.key_created(to, TEST_KEY, TEST_ALIAS, 0.0)
    return {"status": "success", "message": "Mock Email Alert sent, verify Email Alert Received"}


def add_routes(t: RouteTable, gw: Gateway) -> None:
    from relaygate.management.common import caller_principal, check_admin, query_of

    async def services(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
        await check_admin(gw, scope, receive, params, "/health/services")
        service = query_of(scope).get("service", "")
        if not service:
            raise GatewayError("Service must be specified.", status=400, type="bad_request_error", param="service")
        names = testable()
        if service not in names:
            raise GatewayError(f"Service must be in list. Service={escape_controls(service[:100])} not in "
                               f"{sorted(names)}", status=400, type="bad_request_error", param="service")
        if service in ALERT_SERVICES:
            p = await caller_principal(gw, scope)
            body = send_test_alert(gw, service, p.key_hash, getattr(p, "key_alias", None))
        else:
            body = await send_test_record(gw, service)
        await send_json(send, 200, orjson.dumps(body))

    t.add("GET", "/health/services", services)
