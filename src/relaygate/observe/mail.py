"""Email notifications: LiteLLM's ``smtp_email`` / ``resend_email`` / ``sendgrid_email`` callbacks and
``general_settings.alerting: ["email"]``.

What it owns: :class:`Mailer`, one per worker, which turns the management events LiteLLM mails about into
messages and sends them off the request path, and the three transports. The routes decide who gets what
(``management.keys`` / ``management.users`` read the recipient's ``user_email``); this module formats, queues and
sends.

- **Events** (LiteLLM's): a virtual key made with ``send_invite_email: true`` (``/key/generate``,
  ``/key/service-account/generate``: "API Key Created", the key in clear unless ``EMAIL_INCLUDE_API_KEY=false``),
  a key regenerated (``/key/regenerate``: "API Key Rotated", to the key's user when it has an email), a user made
  with ``send_invite_email: true`` (``/user/new``: "Welcome to LiteLLM Proxy", with the admin UI's address).
  Subjects are LiteLLM's (``LiteLLM: <event>``, so a mail filter written for it keeps working), each replaced by
  ``EMAIL_SUBJECT_KEY_CREATED`` / ``EMAIL_SUBJECT_KEY_ROTATED`` / ``EMAIL_SUBJECT_INVITATION``; the body carries
  ``EMAIL_LOGO_URL``, ``EMAIL_SUPPORT_CONTACT``, ``EMAIL_SIGNATURE`` (the operator's HTML) and ``PROXY_BASE_URL``
  when set. Everything else in a body (an alias, an address, the key) is HTML-escaped.
- **Transports**, chosen by the callback named (``smtp_email``, ``resend_email``, ``sendgrid_email``) or, for
  ``alerting: ["email"]``, by what the environment holds (``SENDGRID_API_KEY``, else ``RESEND_API_KEY``, else
  ``SMTP_HOST``), as LiteLLM picks: SMTP (``SMTP_HOST``, ``SMTP_PORT`` 587, ``SMTP_USERNAME`` / ``SMTP_PASSWORD``
  for a login when both are set, ``SMTP_SENDER_EMAIL`` required, STARTTLS unless ``SMTP_TLS`` is ``False``; port
  465 is TLS from the first byte), Resend (``POST /emails``) and SendGrid (``POST /v3/mail/send``) with their API
  keys. What a transport needs and lacks stops the start, naming the variable (LiteLLM starts and fails each
  mail). Certificates are checked against the system's CAs or ``SSL_CERT_FILE`` (LiteLLM's STARTTLS checks
  none).
- **Never in the way**: the routes call sync methods that build the message and queue it (at most
  :data:`QUEUE` a worker, the oldest dropped); one task sends, SMTP in a thread. A connection failure, a
  timeout, a 429 / 5xx or an SMTP 4xx is retried twice with backoff; a mail given up is counted
  (``<callback>_dropped``, and LiteLLM's ``litellm_callback_logging_failures_metric``) and logged in one line
  that names the event and the recipient, never the key. A route never waits for a mail, and a mail that
  fails fails nothing else.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import msgspec

from relaygate.config.errors import ConfigError
from relaygate.core.errors import register_secrets
from relaygate.observe import MAIL_CALLBACKS
from relaygate.observe.outbox import Outbox
from relaygate.sinks.queue import OnEvent

__all__ = ["CALLBACKS", "EVENTS", "EVENT_SETTING", "QUEUE", "TEST_ALIAS", "TEST_KEY", "Mail", "Mailer", "event_enabled",
           "make_mailer", "valid_address"]

log = logging.getLogger("relaygate.alerting")

CALLBACKS = MAIL_CALLBACKS
"""LiteLLM's email callback names, one per transport."""
QUEUE = 1000
"""Mails waiting at most per worker (the oldest dropped past it, counted)."""
DEFAULT_SENDER = "notifications@alerts.litellm.ai"
"""LiteLLM's sender for Resend and SendGrid when none is configured (Resend refuses it for any account that has
not verified that domain: set ``RESEND_SENDER_EMAIL`` / ``SENDGRID_SENDER_EMAIL``)."""
RESEND_URL = "https://api.resend.com"
SENDGRID_URL = "https://api.sendgrid.com"
SUBJECTS = {"key_created": ("EMAIL_SUBJECT_KEY_CREATED", "LiteLLM: API Key Created"),
            "key_rotated": ("EMAIL_SUBJECT_KEY_ROTATED", "LiteLLM: API Key Rotated"),
            "user_invited": ("EMAIL_SUBJECT_INVITATION", "LiteLLM: Welcome to LiteLLM Proxy"),
            "soft_budget_crossed": ("EMAIL_SUBJECT_SOFT_BUDGET", "LiteLLM: Soft Budget Crossed")}
"""Each event's subject: the variable that replaces it and LiteLLM's (``LiteLLM: <event_message>``)."""
EVENTS = {"key_created": "Virtual Key Created", "user_invited": "New User Invitation",
          "key_rotated": "Virtual Key Rotated", "soft_budget_crossed": "Soft Budget Crossed"}
"""Each event's name in LiteLLM's ``/email/event_settings`` (every one on unless the stored settings say not)."""
EVENT_SETTING = "email_event_settings"
"""The ``rg_config`` row ``PATCH /email/event_settings`` writes: ``{event name: enabled}``."""
HIDDEN_KEY = "[Key hidden for security - retrieve from dashboard]"
"""What stands for the key with ``EMAIL_INCLUDE_API_KEY=false`` (LiteLLM's words)."""

TEST_KEY = "sk-test-email-not-a-real-key"
TEST_ALIAS = "Email Test key (This is only a test alert key. DO NOT USE THIS IN PRODUCTION.)"
"""What ``/health/services?service=email`` mails (LiteLLM's test alias; no key of the gateway)."""

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


async def event_enabled(store: Any, event: str) -> bool:
    """Whether mails of ``event`` are on (``/email/event_settings``; on when nothing is stored)."""
    if store is None:
        return True
    from relaygate.store.settings import read_settings

    row = (await read_settings(store)).get(EVENT_SETTING)
    return not isinstance(row, dict) or row.get(EVENTS[event]) is not False


def valid_address(value: Any) -> bool:
    """An address a mail may go to: ``local@domain``, printable ASCII, no spaces, quotes, brackets or line breaks,
    at most 254 characters (what a client stored as ``user_email`` reaches a mail header only if it is one)."""
    return isinstance(value, str) and len(value) <= 254 and _ADDRESS.match(value) is not None


@dataclass(frozen=True, slots=True)
class Mail:
    """One message: an event's subject and bodies, to one address."""

    event: str
    to: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Branding:
    """What the operator puts in every mail (``EMAIL_*``, ``PROXY_BASE_URL``)."""

    logo_url: str = ""
    support: str = ""
    signature: str = ""
    base_url: str = ""
    include_key: bool = True
    subjects: tuple[tuple[str, str], ...] = tuple((event, subject) for event, (_, subject) in SUBJECTS.items())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Branding:
        def one(name: str) -> str:  # a subject is one header line
            return " ".join((env.get(name) or "").split())

        include = (env.get("EMAIL_INCLUDE_API_KEY") or "true").strip().lower() not in ("false", "0", "no", "off")
        subjects = tuple((event, one(var) or default) for event, (var, default) in SUBJECTS.items())
        return cls(logo_url=(env.get("EMAIL_LOGO_URL") or "").strip(), support=(env.get("EMAIL_SUPPORT_CONTACT") or
                   "").strip(), signature=env.get("EMAIL_SIGNATURE") or "",
                   base_url=(env.get("PROXY_BASE_URL") or "").strip().rstrip("/"), include_key=include,
                   subjects=subjects)

    def subject(self, event: str) -> str:
        return dict(self.subjects)[event]


def _page(b: Branding, greeting: str, paragraphs: list[str]) -> str:
    e = html.escape
    parts = [f'<img src="{e(b.logo_url)}" alt="logo" width="150" />'] if b.logo_url else []
    parts.append(f"<p>Hi {e(greeting)},</p>")
    parts += paragraphs
    if b.support:
        parts.append(f'<p>Questions? Write to <a href="mailto:{e(b.support)}">{e(b.support)}</a>.</p>')
    if b.signature:
        parts.append(b.signature)  # the operator's own HTML
    return "<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def _usage(b: Branding, key: str) -> tuple[list[str], list[str]]:
    """The HTML and text lines that show how to call the gateway with ``key``."""
    base = b.base_url or "<the gateway's address>"
    snippet = (f'curl {base}/v1/chat/completions \\\n  -H "Authorization: Bearer {key}" \\\n'
               '  -H "Content-Type: application/json" \\\n'
               '  -d \'{"model": "<model>", "messages": [{"role": "user", "content": "Hello"}]}\'')
    return ([f"<p>Use it with any OpenAI client, base URL {html.escape(base)}:</p>",
             f"<pre>{html.escape(snippet)}</pre>"], [f"Use it with any OpenAI client, base URL {base}:", snippet])


def key_mail(b: Branding, event: str, to: str, key: str | None, alias: str | None, max_budget: float | None) -> Mail:
    """The mail of a key made (``key_created``) or regenerated (``key_rotated``) for ``to``."""
    shown = key if key and b.include_key else HIDDEN_KEY
    budget = f"${max_budget:g}" if max_budget is not None else "No budget"
    what = "a new API key" if event == "key_created" else "a new value for your API key (the old one was rotated)"
    named = f' named "{alias}"' if alias else ""
    h = [f"<p>Here is {what}{html.escape(named)}. Budget: {html.escape(budget)}.</p>",
         f"<p><b>Key:</b></p><pre>{html.escape(shown)}</pre>"]
    t = [f"Hi {to},", "", f"Here is {what}{named}. Budget: {budget}.", "", f"Key: {shown}", ""]
    uh, ut = _usage(b, shown if shown != HIDDEN_KEY else "<your key>")
    h += uh
    t += ut
    if b.support:
        t += ["", f"Questions? Write to {b.support}."]
    return Mail(event, to, b.subject(event), _page(b, to, h), "\n".join(t) + "\n")


def invitation_mail(b: Branding, to: str) -> Mail:
    """The mail of a user made with ``send_invite_email``: where to sign in."""
    if b.base_url:
        ui = f"{b.base_url}/ui/"
        h = [f'<p>You have been added to the LLM gateway. Sign in at <a href="{html.escape(ui)}">'
             f"{html.escape(ui)}</a> to see your keys and spend.</p>"]
        t = [f"You have been added to the LLM gateway. Sign in at {ui} to see your keys and spend."]
    else:
        h = ["<p>You have been added to the LLM gateway. Ask your administrator for its address to sign in and see "
             "your keys and spend.</p>"]
        t = ["You have been added to the LLM gateway. Ask your administrator for its address to sign in and see "
             "your keys and spend."]
    body = [f"Hi {to},", "", *t]
    if b.support:
        body += ["", f"Questions? Write to {b.support}."]
    return Mail("user_invited", to, b.subject("user_invited"), _page(b, to, h), "\n".join(body) + "\n")


def soft_budget_mail(b: Branding, to: str, kind: str, name: str | None, spend: float, soft: float,
                     max_budget: float | None) -> Mail:
    """The mail of a soft budget crossed (LiteLLM's ``soft_budget`` email): spend, the soft budget, the hard one."""
    what = {"key": "API key", "user": "account", "team": "team"}.get(kind, kind)
    named = f' "{name}"' if name else ""
    hard = (f"Requests are refused once it reaches the maximum budget of ${max_budget:g}." if max_budget is not None
            else "No maximum budget is set: requests are not refused.")
    line = f"The spend of your {what}{named} is ${spend:.4f}, past its soft budget of ${soft:g}. {hard}"
    t = [f"Hi {to},", "", line]
    if b.support:
        t += ["", f"Questions? Write to {b.support}."]
    subject = b.subject("soft_budget_crossed")
    if subject == SUBJECTS["soft_budget_crossed"][1]:
        subject += f" - Total Soft Budget: ${soft:g}"  # LiteLLM's subject
    return Mail("soft_budget_crossed", to, subject, _page(b, to, [f"<p>{html.escape(line)}</p>"]), "\n".join(t) + "\n")


class Failed(Exception):
    """A mail not delivered; ``retry``: worth another attempt (the transport or the server may recover)."""

    def __init__(self, why: str, retry: bool) -> None:
        super().__init__(why)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = True
    timeout: float = 10.0
    name = "smtp_email"

    def message(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.text)
        msg.add_alternative(mail.html, subtype="html")
        return msg

    def _send(self, msg: EmailMessage) -> None:  # on a thread
        context = ssl.create_default_context()
        try:
            if self.port == 465:
                server: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with server:
                server.ehlo()
                if self.starttls and self.port != 465:
                    server.starttls(context=context)
                    server.ehlo()
                if self.username and self.password:
                    server.login(self.username, self.password)
                server.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            raise Failed(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", 400 <= exc.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            raise Failed(f"recipient refused (SMTP {codes})", all(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise Failed(f"the server does not support it: {exc}", False) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise Failed(f"{type(exc).__name__}: {exc}", not isinstance(exc, ssl.SSLCertVerificationError)) from None

    async def send(self, mail: Mail, poster: Any) -> None:
        await asyncio.to_thread(self._send, self.message(mail))


@dataclass(frozen=True, slots=True)
class HttpApi:
    """Resend or SendGrid: one JSON POST a mail."""

    name: str
    url: str
    api_key: str
    sender: str

    def body(self, mail: Mail) -> bytes:
        if self.name == "resend_email":
            return msgspec.json.encode({"from": self.sender, "to": [mail.to], "subject": mail.subject,
                                        "html": mail.html, "text": mail.text})
        return msgspec.json.encode({"from": {"email": self.sender},
                                    "personalizations": [{"to": [{"email": mail.to}], "subject": mail.subject}],
                                    "content": [{"type": "text/plain", "value": mail.text},
                                                {"type": "text/html", "value": mail.html}]})

    async def send(self, mail: Mail, poster: Any) -> None:
        from relaygate.observe.post import PostError

        try:
            got = await poster.post(self.url, self.body(mail), [("content-type", "application/json"),
                                                                 ("authorization", f"Bearer {self.api_key}")])
        except PostError as exc:
            raise Failed(str(exc), True) from None
        if not 200 <= got.status < 300:
            raise Failed(f"HTTP {got.status}: {got.text[:200]}", got.status == 429 or got.status >= 500)


class Mailer:
    """One worker's email notifications (see the module docstring)."""

    def __init__(self, transport: Smtp | HttpApi, branding: Branding, *, on_event: OnEvent | None = None,
                 retries: int = 2, backoff: float = 0.5, timeout: float = 10.0) -> None:
        self.transport = transport
        self.branding = branding
        self.on_event = on_event
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.name = transport.name
        self.outbox: Outbox[Mail] = Outbox("email", QUEUE, self._deliver, self._drop, timeout=timeout)
        self.sent = 0
        self.dropped = 0

    # -- events (sync: build and queue, never raise) --------------------------------------------------

    def key_created(self, to: str, key: str, alias: str | None, max_budget: float | None) -> None:
        self.put(key_mail(self.branding, "key_created", to, key, alias, max_budget))

    def key_rotated(self, to: str, key: str, alias: str | None, max_budget: float | None) -> None:
        self.put(key_mail(self.branding, "key_rotated", to, key, alias, max_budget))

    def user_invited(self, to: str) -> None:
        self.put(invitation_mail(self.branding, to))

    def put(self, mail: Mail) -> None:
        if not valid_address(mail.to):
            self._drop(mail, "not an email address")
            return
        self.outbox.put(mail)

    # -- sending -------------------------------------------------------------------------------------

    async def _deliver(self, mail: Mail, poster: Any) -> None:
        for attempt in range(self.retries + 1):
            try:
                await self.transport.send(mail, poster)
            except Failed as exc:
                if not exc.retry or attempt == self.retries:
                    self._drop(mail, f"{exc} (after {attempt + 1} attempt(s))")
                    return
                await asyncio.sleep(self.backoff * 2**attempt)
            else:
                self.sent += 1
                log.info("email: %s mail sent to %s (%s)", mail.event, mail.to, self.name)
                return

    def _drop(self, mail: Mail, why: str) -> None:
        self.dropped += 1
        if self.on_event is not None:
            self.on_event(f"{self.name}_dropped", 1)
        log.warning("email: the %s mail to %r was not delivered: %s (%d in total)", mail.event, mail.to, why,
                    self.dropped)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued within ``timeout`` seconds, then stop (what is left is counted as dropped)."""
        await self.outbox.aclose(timeout)


BUDGET_ENTITIES = 10_000
"""Entities whose soft-budget mail a worker remembers at most (past it, a new entity's mail is dropped, counted)."""
LOOKUPS = 16
"""Recipient lookups in flight at most per worker (a flood of crossings is dropped and counted past it)."""


class BudgetMails:
    """Soft-budget mails (``alerting: ["email"]``, LiteLLM's ``soft_budget`` email): when a request finds a key's,
    user's or team's soft budget crossed, its people are mailed, once per entity per ``EMAIL_BUDGET_ALERT_TTL``
    seconds (24 h) per worker. A key's mail goes to its user's ``user_email``, a user's to the user's, a team's to
    its ``metadata.soft_budget_alerting_emails`` (a list or a comma-separated text, LiteLLM's field). The request
    only checks the gate and starts a task; the recipients are read from the store by that task."""

    def __init__(self, mailer: Mailer, store: Any, env: Mapping[str, str]) -> None:
        self.mailer = mailer
        self.store = store
        raw = (env.get("EMAIL_BUDGET_ALERT_TTL") or "").strip()
        self.ttl = float(raw) if raw.replace(".", "", 1).isdigit() else 86400.0
        self._until: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def crossed(self, kind: str, ident: str, spend: float, budget: float, soft: bool) -> None:
        """The guard's ``on_budget`` (sync, on the request's path: a gate and a task, nothing awaited)."""
        if not soft or kind not in ("key", "user", "team") or self.store is None:
            return
        now = time.monotonic()
        mark = (kind, ident)
        if self._until.get(mark, 0.0) > now:
            return
        if len(self._until) >= BUDGET_ENTITIES:
            for k in [k for k, until in self._until.items() if until <= now]:
                del self._until[k]
        if len(self._until) >= BUDGET_ENTITIES or len(self._tasks) >= LOOKUPS:
            self.mailer.dropped += 1
            if self.mailer.on_event is not None:
                self.mailer.on_event(f"{self.mailer.name}_dropped", 1)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._until[mark] = now + self.ttl
        task = loop.create_task(self._send(kind, ident, spend, budget), name="relaygate-email-budget")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, kind: str, ident: str, spend: float, soft: float) -> None:
        try:
            if not await event_enabled(self.store, "soft_budget_crossed"):
                return
            to, name, max_budget = await budget_recipients(self.store, kind, ident)
        except Exception as exc:  # the store down: this mail only (the next crossing after the TTL tries again)
            log.warning("email: the soft budget mail of %s %s was not sent: its recipients could not be read (%s)",
                        kind, ident[:24] if kind == "key" else ident, type(exc).__name__)
            return
        for address in to:
            self.mailer.put(soft_budget_mail(self.mailer.branding, address, kind, name, spend, soft, max_budget))


async def budget_recipients(store: Any, kind: str, ident: str) -> tuple[list[str], str | None, float | None]:
    """Who a soft-budget mail of ``kind`` ``ident`` goes to, the entity's name and its ``max_budget``."""
    from relaygate.store import NotFound

    async def user_email(user_id: str | None) -> list[str]:
        if not user_id:
            return []
        try:
            user = await store.get_user(user_id)
        except NotFound:
            return []
        return [user.user_email] if valid_address(user.user_email) else []

    try:
        if kind == "key":
            key = await store.get_key(ident)
            return await user_email(key.user_id), key.key_alias, key.max_budget
        if kind == "user":
            user = await store.get_user(ident)
            return await user_email(ident), user.user_alias or user.user_id, user.max_budget
        team = await store.get_team(ident)
    except NotFound:
        return [], None, None
    raw = (team.metadata or {}).get("soft_budget_alerting_emails")
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    to = list(dict.fromkeys(a.strip() for a in items if isinstance(a, str) and valid_address(a.strip())))
    return to, team.team_alias or team.team_id, team.max_budget


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError("environment", name, why)
    return value


def _base(env: Mapping[str, str], name: str, default: str) -> str:
    url = (env.get(name) or "").strip().rstrip("/") or default
    if not url.startswith(("http://", "https://")):
        raise ConfigError("environment", name, f"expected an http(s) URL, got {url!r}")
    return url


def _transport(kind: str, env: Mapping[str, str]) -> Smtp | HttpApi:
    if kind == "resend_email":
        key = _need(env, "RESEND_API_KEY", "the resend_email callback needs Resend's API key")
        register_secrets([key])
        return HttpApi(kind, _base(env, "RESEND_API_BASE", RESEND_URL) + "/emails", key,
                       (env.get("RESEND_SENDER_EMAIL") or "").strip() or DEFAULT_SENDER)
    if kind == "sendgrid_email":
        key = _need(env, "SENDGRID_API_KEY", "the sendgrid_email callback needs SendGrid's API key")
        register_secrets([key])
        return HttpApi(kind, _base(env, "SENDGRID_API_BASE", SENDGRID_URL) + "/v3/mail/send", key,
                       (env.get("SENDGRID_SENDER_EMAIL") or "").strip() or DEFAULT_SENDER)
    host = _need(env, "SMTP_HOST", "email over SMTP needs the server's host name")
    sender = _need(env, "SMTP_SENDER_EMAIL", "email over SMTP needs the sender's address")
    if not valid_address(sender):
        raise ConfigError("environment", "SMTP_SENDER_EMAIL", f"not an email address: {sender!r}")
    raw_port = (env.get("SMTP_PORT") or "587").strip()
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise ConfigError("environment", "SMTP_PORT", f"expected a port number, got {raw_port!r}")
    password = env.get("SMTP_PASSWORD") or ""
    register_secrets([password])
    return Smtp(host, int(raw_port), sender, (env.get("SMTP_USERNAME") or "").strip(), password,
                starttls=(env.get("SMTP_TLS") or "True").strip() != "False")


def mail_transport_kind(callbacks: tuple[str, ...] | list[str], alerting: tuple[str, ...] | list[str],
                        env: Mapping[str, str]) -> str | None:
    """The transport the settings ask for: the first email callback named, else (``alerting: ["email"]``) the one
    the environment has credentials for, as LiteLLM picks (SendGrid, Resend, then SMTP); None: no email."""
    for name in callbacks:
        if name in CALLBACKS:
            return name
    if "email" not in alerting:
        return None
    if (env.get("SENDGRID_API_KEY") or "").strip():
        return "sendgrid_email"
    if (env.get("RESEND_API_KEY") or "").strip():
        return "resend_email"
    if (env.get("SMTP_HOST") or "").strip():
        return "smtp_email"
    raise ConfigError("general_settings", "alerting", "email alerting needs a way to send mail: set SMTP_HOST and "
                      "SMTP_SENDER_EMAIL, RESEND_API_KEY or SENDGRID_API_KEY in the environment")


def make_mailer(callbacks: tuple[str, ...] | list[str], alerting: tuple[str, ...] | list[str],
                env: Mapping[str, str], on_event: OnEvent | None, **options: Any) -> Mailer | None:
    """The worker's :class:`Mailer`, or None when no email is configured; ``ConfigError`` when the transport asked
    for lacks what it needs."""
    kind = mail_transport_kind(callbacks, alerting, env)
    if kind is None:
        return None
    return Mailer(_transport(kind, env), Branding.from_env(env), on_event=on_event, **options)
