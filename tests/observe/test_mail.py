"""LiteLLM's email notifications (``observe.mail``, ``management.mail_events``): the mails a real SMTP server
(aiosmtpd: plain, with a login, and with STARTTLS against a certificate the client checks) and real stand-ins of
Resend's and SendGrid's APIs receive, retries and drops, the settings, and through a real ``relaygate serve``: a
user invited, a key created and a key rotated each mail the user, with the key in clear only in that mail."""

from __future__ import annotations

import asyncio
import datetime
import email
import ipaddress
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from relaygate.config.errors import ConfigError
from relaygate.config.observe import ObserveSettings
from relaygate.observe import check
from relaygate.observe.mail import HIDDEN_KEY, Branding, Mailer, key_mail, make_mailer, valid_address
from tests.conftest import dead_port, free_port, start_gateway
from tests.observe.collector_server import Collector

KEY = "sk-new-key-0123456789abcdefghij"


class Inbox:
    """An aiosmtpd handler keeping every message; ``refuse`` holds answers for the next DATA commands."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage, bool]] = []
        self.refuse: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg, bool(session.authenticated)))
        return "250 OK"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"mailer", b"smtp-secret-pw"))


class Smtpd:
    """A real SMTP server on a free loopback port (its own thread)."""

    def __init__(self, **kw: Any) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kw)

    def __enter__(self) -> Smtpd:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

    def env(self, **more: str) -> dict[str, str]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_SENDER_EMAIL": "gateway@example.com",
                "SMTP_TLS": "False", **more}


def _send(mailer: Mailer, *calls: tuple[str, tuple[Any, ...]]) -> None:
    async def main() -> None:
        for name, args in calls:
            getattr(mailer, name)(*args)
        await mailer.aclose(20)

    asyncio.run(main())


def _html(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_smtp_plain_key_created_and_escaped() -> None:
    with Smtpd() as s:
        events: list[tuple[str, int]] = []
        m = make_mailer(["smtp_email"], [], s.env(PROXY_BASE_URL="https://llm.example.com/"),
                        lambda e, n: events.append((e, n)))
        assert m is not None and m.name == "smtp_email"
        _send(m, ("key_created", ("ana@example.com", KEY, "<b>ana's</b>", 25.0)))
        assert len(s.inbox.messages) == 1 and events == []
        sender, rcpts, msg, authed = s.inbox.messages[0]
        assert (sender, rcpts, authed) == ("gateway@example.com", ["ana@example.com"], False)
        assert msg["Subject"] == "LiteLLM: API Key Created" and msg["To"] == "ana@example.com"
        body = _html(msg)
        assert KEY in body and "$25" in body and "https://llm.example.com/v1/chat/completions" in body
        assert "<b>ana" not in body and "&lt;b&gt;ana&#x27;s&lt;/b&gt;" in body  # the alias is text, not markup
        assert KEY in _text(msg) and m.sent == 1


def test_smtp_login_and_starttls_with_a_checked_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with Smtpd(tls_context=server_tls, require_starttls=True, authenticator=_login, auth_required=True) as s:
        env = s.env(SMTP_TLS="True", SMTP_USERNAME="mailer", SMTP_PASSWORD="smtp-secret-pw")
        # the server's certificate is not one the system trusts: refused, not sent in clear, counted
        events: list[tuple[str, int]] = []
        m = make_mailer(["smtp_email"], [], env, lambda e, n: events.append((e, n)), retries=0)
        assert m is not None
        _send(m, ("user_invited", ("bo@example.com",)))
        assert s.inbox.messages == [] and events == [("smtp_email_dropped", 1)]
        # trusted through SSL_CERT_FILE, as an operator with a private CA sets it
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        m = make_mailer(["smtp_email"], [], env, None)
        assert m is not None
        _send(m, ("user_invited", ("bo@example.com",)))
        assert len(s.inbox.messages) == 1
        _, rcpts, msg, authed = s.inbox.messages[0]
        assert rcpts == ["bo@example.com"] and authed is True
        assert msg["Subject"] == "LiteLLM: Welcome to LiteLLM Proxy"
        # a wrong password: the server refuses the login and the mail never goes; a worker that stops while it is
        # still being tried counts it as dropped
        bad = make_mailer(["smtp_email"], [], {**env, "SMTP_PASSWORD": "wrong-password"}, None, backoff=0.01)
        assert bad is not None

        async def stop_early() -> None:
            bad.user_invited("bo@example.com")
            await asyncio.sleep(0.5)
            await bad.aclose(0.5)

        asyncio.run(stop_early())
        assert len(s.inbox.messages) == 1 and bad.dropped == 1 and bad.sent == 0


def test_smtp_retries_a_4xx_and_drops_a_5xx() -> None:
    with Smtpd() as s:
        m = make_mailer(["smtp_email"], [], s.env(), None, backoff=0.01)
        assert m is not None
        s.inbox.refuse = ["451 try again later"]
        _send(m, ("user_invited", ("a@example.com",)))
        assert len(s.inbox.messages) == 1 and m.sent == 1 and m.dropped == 0
        s.inbox.refuse = ["554 rejected"]
        m2 = make_mailer(["smtp_email"], [], s.env(), None, backoff=0.01)
        assert m2 is not None
        _send(m2, ("user_invited", ("a@example.com",)))
        assert len(s.inbox.messages) == 1 and m2.dropped == 1 and s.inbox.refuse == []


def test_smtp_server_gone_is_counted_not_raised() -> None:
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(dead_port()), "SMTP_SENDER_EMAIL": "g@example.com",
           "SMTP_TLS": "False"}
    events: list[tuple[str, int]] = []
    m = make_mailer([], ["email"], env, lambda e, n: events.append((e, n)), backoff=0.01)
    assert m is not None and m.name == "smtp_email"
    t0 = time.monotonic()
    _send(m, ("user_invited", ("a@example.com",)))
    assert events == [("smtp_email_dropped", 1)] and time.monotonic() - t0 < 15


@pytest.mark.parametrize("kind", ["resend_email", "sendgrid_email"])
def test_http_apis(kind: str) -> None:
    with Collector(status=200 if kind == "resend_email" else 202) as c:
        env = {"RESEND_API_KEY": "re_test_secret_key", "RESEND_API_BASE": c.url,
               "RESEND_SENDER_EMAIL": "keys@example.com", "SENDGRID_API_KEY": "SG.test-secret-key",
               "SENDGRID_API_BASE": c.url + "/", "SENDGRID_SENDER_EMAIL": "keys@example.com",
               "EMAIL_INCLUDE_API_KEY": "false", "EMAIL_SUBJECT_KEY_ROTATED": "Your key\r\nBcc: evil@example.com"}
        m = make_mailer([kind], [], env, None, backoff=0.01)
        assert m is not None
        c.fail_next(1, 503)
        _send(m, ("key_rotated", ("cy@example.com", KEY, None, None)))
        assert c.requests == 2 and len(c.posts) == 1 and m.sent == 1
        post = c.posts[0]
        body = post.json()
        if kind == "resend_email":
            assert post.path == "/emails" and post.headers["authorization"] == "Bearer re_test_secret_key"
            assert body["from"] == "keys@example.com" and body["to"] == ["cy@example.com"]
            subject, html_body = body["subject"], body["html"]
        else:
            assert post.path == "/v3/mail/send" and post.headers["authorization"] == "Bearer SG.test-secret-key"
            assert body["from"] == {"email": "keys@example.com"}
            assert body["personalizations"][0]["to"] == [{"email": "cy@example.com"}]
            subject = body["personalizations"][0]["subject"]
            html_body = next(x["value"] for x in body["content"] if x["type"] == "text/html")
        assert subject == "Your key Bcc: evil@example.com"  # one line: no header can be added through it
        assert KEY not in html_body and HIDDEN_KEY in html_body and "No budget" in html_body
        c.fail_next(1, 401)  # refused: dropped at once
        m2 = make_mailer([kind], [], env, None, backoff=0.01)
        assert m2 is not None
        _send(m2, ("user_invited", ("cy@example.com",)))
        assert c.requests == 3 and m2.dropped == 1


def test_addresses_and_settings() -> None:
    for good in ("a@example.com", "first.last+tag@sub.example.co"):
        assert valid_address(good)
    for bad in ("a@example.com\r\nBcc: b@example.com", "no-at-sign", "a b@example.com", "<a@example.com>",
                "a@example.com,b@example.com", "x" * 250 + "@example.com", None, 3):
        assert not valid_address(bad)
    m = Mailer(make_mailer(["resend_email"], [], {"RESEND_API_KEY": "re_x_secret"}, None).transport,  # type: ignore
               Branding())
    m.put(key_mail(Branding(), "key_created", "a@example.com\nBcc: x@example.com", KEY, None, None))
    assert m.dropped == 1 and not m.outbox.queue  # never queued, so never a header
    assert make_mailer([], [], {}, None) is None
    assert make_mailer([], ["slack"], {"SMTP_HOST": "h"}, None) is None
    with pytest.raises(ConfigError, match="SMTP_SENDER_EMAIL"):
        make_mailer(["smtp_email"], [], {"SMTP_HOST": "mail.example.com"}, None)
    with pytest.raises(ConfigError, match="SMTP_PORT"):
        make_mailer(["smtp_email"], [], {"SMTP_HOST": "h", "SMTP_SENDER_EMAIL": "g@example.com",
                                         "SMTP_PORT": "smtp"}, None)
    with pytest.raises(ConfigError, match="RESEND_API_KEY"):
        make_mailer(["resend_email"], [], {}, None)
    with pytest.raises(ConfigError, match="alerting"):
        make_mailer([], ["email"], {}, None)
    with pytest.raises(ConfigError, match="SMTP_HOST"):  # serve and check-config refuse before any worker starts
        check(ObserveSettings(success_callbacks=("smtp_email",)), {})
    # alerting: ["email"] picks the transport the environment has credentials for, as LiteLLM: SendGrid first
    both = {"SENDGRID_API_KEY": "SG.k-secret", "RESEND_API_KEY": "re_k_secret", "SMTP_HOST": "h",
            "SMTP_SENDER_EMAIL": "g@example.com"}
    assert make_mailer([], ["email"], both, None).name == "sendgrid_email"  # type: ignore[union-attr]
    assert make_mailer([], ["email"], {**both, "SENDGRID_API_KEY": ""}, None).name == "resend_email"  # type: ignore
    sub = Branding.from_env({"EMAIL_SUBJECT_INVITATION": " Join\n us ", "EMAIL_INCLUDE_API_KEY": "False"})
    assert sub.subject("user_invited") == "Join us" and not sub.include_key


@pytest.mark.e2e
def test_through_relaygate_serve(tmp_path: Path) -> None:
    master = "sk-mail-master"
    cfg = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
litellm_settings:
  callbacks: ["smtp_email"]
general_settings:
  master_key: {master}
  database_url: sqlite:///{tmp_path / "rg.db"}
"""
    env = {"PROXY_BASE_URL": "https://gw.example.com", "TEST_EMAIL_ADDRESS": "ops@example.com"}
    with Smtpd() as s, start_gateway(cfg, env=s.env(**env)) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {master}"}) as c:
        def mails(n: int) -> list[tuple[str, list[str], EmailMessage, bool]]:
            deadline = time.monotonic() + 20
            while len(s.inbox.messages) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(s.inbox.messages) == n, [m[2]["Subject"] for m in s.inbox.messages]
            return s.inbox.messages

        r = c.post("/user/new", json={"user_id": "ana", "user_email": "ana@example.com", "send_invite_email": True})
        assert r.status_code == 200, r.text
        msg = mails(1)[0][2]
        assert msg["To"] == "ana@example.com" and "https://gw.example.com/ui/" in _html(msg)
        assert r.json()["key"] not in msg.as_string()  # the invitation carries no key
        r = c.post("/key/generate", json={"user_id": "ana", "key_alias": "ana-1", "max_budget": 10,
                                          "send_invite_email": True})
        assert r.status_code == 200, r.text
        key = r.json()["key"]
        msg = mails(2)[1][2]
        assert msg["Subject"] == "LiteLLM: API Key Created" and key in _html(msg) and "$10" in _html(msg)
        assert httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=20,
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        r = c.post("/key/regenerate", json={"key": key})
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        msg = mails(3)[2][2]
        assert msg["Subject"] == "LiteLLM: API Key Rotated" and new in _html(msg) and key not in msg.as_string()
        # a key generated without send_invite_email mails nobody; one that cannot be mailed is refused, not made
        assert c.post("/key/generate", json={"user_id": "ana", "key_alias": "quiet"}).status_code == 200
        assert c.post("/user/new", json={"user_id": "bo"}).status_code == 200
        for body, param in (({"user_id": "bo", "key_alias": "bo-1"}, "send_invite_email"),
                            ({"key_alias": "nobody-1"}, "send_invite_email"),
                            ({"user_id": "ghost", "key_alias": "ghost-1"}, "send_invite_email")):
            r = c.post("/key/generate", json={**body, "send_invite_email": True})
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
            assert c.get("/key/info", params={"key_alias": body["key_alias"]}).status_code != 200
        r = c.post("/user/new", json={"user_id": "cy", "user_email": "cy@example.com\r\nBcc: x@example.com",
                                      "send_invite_email": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == "user_email"
        assert c.get("/user/info", params={"user_id": "cy"}).status_code == 404
        # an update cannot ask for a mail (LiteLLM's field of a new key only)
        r = c.post("/key/update", json={"key": new, "send_invite_email": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == "send_invite_email"
        time.sleep(0.3)
        assert len(s.inbox.messages) == 3
        # LiteLLM's test email (/health/services?service=email): a test key-created mail to TEST_EMAIL_ADDRESS
        r = c.get("/health/services", params={"service": "email"})
        assert r.status_code == 200 and r.json()["message"] == "Mock Email Alert sent, verify Email Alert Received"
        _, rcpts, msg, _ = mails(4)[3]
        assert rcpts == ["ops@example.com"] and "DO NOT USE THIS IN PRODUCTION" in _html(msg)
        log = gw.log()
        assert key not in log and new not in log and "email: key_rotated mail sent to ana@example.com" in log
        # LiteLLM's /email/event_settings: an event turned off mails nobody, whatever the request asks
        r = c.get("/email/event_settings")
        assert r.json() == {"settings": [{"event": e, "enabled": True} for e in (
            "Virtual Key Created", "New User Invitation", "Virtual Key Rotated", "Soft Budget Crossed")]}
        for bad in ({"settings": [{"event": "Nope", "enabled": False}]}, {"settings": [{"event": "Virtual Key Created",
                                                                                       "enabled": "no"}]}, {}):
            r = c.patch("/email/event_settings", json=bad)
            assert r.status_code == 400 and r.json()["error"]["param"] == "settings", r.text
        r = c.patch("/email/event_settings", json={"settings": [{"event": "Virtual Key Created", "enabled": False}]})
        assert r.json() == {"message": "Email event settings updated successfully"}
        assert [x["enabled"] for x in c.get("/email/event_settings").json()["settings"]] == [False, True, True, True]
        r = c.post("/key/generate", json={"user_id": "ana", "key_alias": "ana-off", "send_invite_email": True})
        assert r.status_code == 200
        assert c.post("/email/event_settings/reset").json() == {"message": "Email event settings reset to defaults"}
        r = c.post("/key/generate", json={"user_id": "ana", "key_alias": "ana-on", "send_invite_email": True})
        assert r.status_code == 200
        latest = mails(5)[4][2]
        assert r.json()["key"] in _html(latest)  # the mail after the reset; none for the key made while off
        user_key = c.post("/key/generate", json={"user_id": "ana"}).json()["key"]
        for method, path in (("GET", "/email/event_settings"), ("PATCH", "/email/event_settings"),
                             ("POST", "/email/event_settings/reset")):
            r = httpx.request(method, gw.url + path, headers={"Authorization": f"Bearer {user_key}"}, json={})
            assert r.status_code in (401, 403), (path, r.status_code)


@pytest.mark.e2e
def test_soft_budget_mails_through_relaygate_serve(tmp_path: Path) -> None:
    """``alerting: ["email"]``: a key's soft budget crossed mails its user once (not again within the TTL), a
    team's mails its ``soft_budget_alerting_emails``; the requests are never refused for it."""
    master = "sk-mail-budget"
    cfg = f"""model_list:
  - model_name: m
    litellm_params: {{model: mock/echo}}
    model_info: {{input_cost_per_token: 0.001, output_cost_per_token: 0.001}}
general_settings:
  master_key: {master}
  database_url: sqlite:///{tmp_path / "rg.db"}
  alerting: ["email"]
"""
    with Smtpd() as s, start_gateway(cfg, env=s.env()) as gw, \
            httpx.Client(base_url=gw.url, timeout=20, headers={"Authorization": f"Bearer {master}"}) as c:
        assert c.post("/user/new", json={"user_id": "dee", "user_email": "dee@example.com"}).status_code == 200
        assert c.post("/team/new", json={"team_id": "t-ops", "team_alias": "Ops", "soft_budget": 0.0001, "metadata": {
            "soft_budget_alerting_emails": "lead@example.com, bad\r\naddress, fin@example.com"}}).status_code == 200
        key = c.post("/key/generate", json={"user_id": "dee", "key_alias": "dee-soft", "soft_budget": 0.0001,
                                            "max_budget": 100}).json()["key"]
        team_key = c.post("/key/generate", json={"team_id": "t-ops"}).json()["key"]
        for k in (key, key, key, team_key, team_key, team_key):
            r = httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {k}"}, timeout=20,
                           json={"model": "m", "messages": [{"role": "user", "content": "spend some money"}]})
            assert r.status_code == 200, r.text
            time.sleep(0.3)  # the spend reaches the budget counters
        deadline = time.monotonic() + 20
        while len(s.inbox.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        got = sorted((m[1][0], m[2]["Subject"]) for m in s.inbox.messages)
        assert [to for to, _ in got] == ["dee@example.com", "fin@example.com", "lead@example.com"], got
        assert all(subject == "LiteLLM: Soft Budget Crossed - Total Soft Budget: $0.0001" for _, subject in got)
        dee = next(m[2] for m in s.inbox.messages if m[1] == ["dee@example.com"])
        assert '"dee-soft"' in _text(dee) and "$100" in _text(dee) and key not in dee.as_string()
