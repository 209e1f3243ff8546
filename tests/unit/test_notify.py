"""Notifiers against real local servers (127.0.0.1 only): an http.server webhook receiver
and an aiosmtpd SMTP server. No traffic leaves the machine."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from jobs.alerts import Observation, evaluate_site
from jobs.notify import (
    AlertMessage,
    DeliveryResult,
    EmailNotifier,
    LogNotifier,
    NotificationError,
    Notifier,
    NotifierConfigError,
    WebhookNotifier,
    deliver,
)
from tests.builders import http_server
from tests.conftest import free_port

ALERT = {
    "site": "Hillside A",
    "track": 12,
    "level": "red",
    "rule": "slope.opening_rate",
    "measured_value": 12.5,
    "unit": "mm/day",
    "threshold": 10.0,
    "message": "crack 12 opening rate 12.5 mm/day over 2 days: red",
}
SECRET_PATH = "/hooks/T000/B000/s3cr3tT0k3n"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours *_proxy variables: keep test traffic on 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------------- webhook


class Receiver:
    """A webhook receiver answering with the given statuses in turn (the last repeats)."""

    def __init__(self, statuses: list[int], retry_after: str | None = None) -> None:
        self.statuses = statuses
        self.retry_after = retry_after
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()


@contextmanager
def webhook_server(receiver: Receiver) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            with receiver.lock:
                receiver.bodies.append(body)
                receiver.paths.append(self.path)
                n = len(receiver.bodies)
            status = receiver.statuses[min(n, len(receiver.statuses)) - 1]
            self.send_response(status)
            if status != 200 and receiver.retry_after is not None:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"unavailable")

        def log_message(self, *args):
            pass

    with http_server(Handler, SECRET_PATH) as url:
        yield url


def test_webhook_retries_two_503_then_succeeds():
    receiver = Receiver([503, 503, 200])
    sleeps: list[float] = []
    with webhook_server(receiver) as url:
        hook = WebhookNotifier(url=url, attempts=5, base_delay_s=0.5, sleep=sleeps.append)
        [result] = deliver(ALERT, [hook])
    assert result.ok and result.attempts == 3 and result.error is None
    assert result.notifier == "webhook" and result.at.tzinfo is not None
    assert sleeps == [0.5, 1.0]  # exponential backoff
    assert len(receiver.bodies) == 3 and receiver.paths[0] == SECRET_PATH
    body = receiver.bodies[-1]
    assert "RED" in body["text"] and "Hillside A" in body["text"]  # Slack shows `text`
    assert "12.5 mm/day (threshold 10 mm/day)" in body["text"]
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["Level"] == "red" and fields["Site"] == "Hillside A"
    assert body["crackwatch"]["rule"] == "slope.opening_rate"
    assert body["crackwatch"]["measured_value"] == 12.5


def test_webhook_always_failing_is_recorded_not_raised(caplog):
    receiver = Receiver([503])
    sleeps: list[float] = []
    with webhook_server(receiver) as url, caplog.at_level(logging.DEBUG):
        hook = WebhookNotifier(url=url, attempts=3, base_delay_s=0.01, sleep=sleeps.append)
        results = deliver(ALERT, [hook, LogNotifier()])
    failed, logged = results
    assert not failed.ok and failed.attempts == 3
    assert "HTTP 503" in failed.error and "after 3 attempt(s)" in failed.error
    assert len(receiver.bodies) == 3 and sleeps == [0.01, 0.02]
    assert logged.ok  # one failure does not stop the others
    assert "s3cr3tT0k3n" not in failed.error and "s3cr3tT0k3n" not in caplog.text
    assert "127.0.0.1" in failed.error


def test_webhook_4xx_is_not_retried_and_retry_after_is_honoured():
    receiver = Receiver([404])
    with webhook_server(receiver) as url:
        [r] = deliver(ALERT, [WebhookNotifier(url=url, sleep=lambda s: None)])
    assert not r.ok and r.attempts == 1 and "HTTP 404" in r.error and "not retried" in r.error
    receiver = Receiver([503, 200], retry_after="4")
    sleeps: list[float] = []
    with webhook_server(receiver) as url:
        [r] = deliver(ALERT, [WebhookNotifier(url=url, base_delay_s=1, sleep=sleeps.append)])
    assert r.ok and r.attempts == 2 and sleeps == [4.0]


def test_webhook_connection_refused_is_retried_then_failed():
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"  # nothing listens
    sleeps: list[float] = []
    [r] = deliver(ALERT, [WebhookNotifier(url=url, attempts=2, base_delay_s=0,
                                          timeout_s=2, sleep=sleeps.append)])
    assert not r.ok and r.attempts == 2 and "connection error" in r.error
    assert sleeps == [0]


def test_webhook_url_from_environment(monkeypatch):
    receiver = Receiver([200])
    with webhook_server(receiver) as url:
        monkeypatch.setenv("CRACKWATCH_WEBHOOK_URL", url)
        hook = WebhookNotifier()
        assert url not in repr(hook)
        [r] = deliver(ALERT, [hook])
    assert r.ok and r.attempts == 1 and len(receiver.bodies) == 1
    monkeypatch.delenv("CRACKWATCH_WEBHOOK_URL")
    [r] = deliver(ALERT, [WebhookNotifier()])
    assert not r.ok and r.attempts == 0
    assert "NotifierConfigError" in r.error and "CRACKWATCH_WEBHOOK_URL" in r.error


def test_webhook_rejects_non_http_urls_and_bad_settings():
    with pytest.raises(NotifierConfigError, match="http"):
        WebhookNotifier(url="file:///etc/passwd")
    with pytest.raises(NotifierConfigError, match="attempts"):
        WebhookNotifier(url="https://example.invalid/x", attempts=0)


# --------------------------------------------------------------------------------- e-mail


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        from email import message_from_bytes
        from email.policy import default

        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=default)))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(**kwargs) -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_email_arrives_with_level_and_site_in_subject_and_body():
    with smtp_server() as (inbox, port):
        mail = EmailNotifier(host="127.0.0.1", port=port, starttls=False,
                             sender="crackwatch@example.org",
                             recipients=["geo@example.org", "ops@example.org"])
        [r] = deliver(ALERT, [mail])
    assert r.ok and r.attempts == 1 and r.notifier == "email"
    [(mail_from, rcpt, msg)] = inbox.messages
    assert mail_from == "crackwatch@example.org"
    assert rcpt == ["geo@example.org", "ops@example.org"]
    assert "RED" in msg["Subject"] and "Hillside A" in msg["Subject"]
    body = msg.get_content()
    assert "red" in body and "Hillside A" in body and "12.5 mm/day" in body


def test_email_login_uses_password_from_environment_only(monkeypatch, caplog):
    from aiosmtpd.smtp import AuthResult

    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"alerts" and auth_data.password == b"pa55-word"
        return AuthResult(success=ok, handled=False)

    monkeypatch.setenv("MY_SMTP_PW", "pa55-word")
    with smtp_server(authenticator=authenticator, auth_require_tls=False) as (inbox, port), \
            caplog.at_level(logging.DEBUG):
        mail = EmailNotifier(host="127.0.0.1", port=port, starttls=False, user="alerts",
                             password_env="MY_SMTP_PW", sender="cw@example.org", timeout_s=5,
                             recipients="geo@example.org")
        [ok] = deliver(ALERT, [mail])
        monkeypatch.setenv("MY_SMTP_PW", "wrong-pa55")
        [bad] = deliver(ALERT, [mail])
    assert ok.ok and len(inbox.messages) == 1
    assert seen[0] == (b"alerts", b"pa55-word")
    assert not bad.ok and bad.attempts == 1 and "SMTP 535" in bad.error
    assert "pa55" not in repr(mail) and "pa55" not in caplog.text and "pa55" not in bad.error


def test_email_without_password_variable_fails_before_sending(monkeypatch):
    monkeypatch.delenv("CRACKWATCH_SMTP_PASSWORD", raising=False)
    mail = EmailNotifier(host="127.0.0.1", port=free_port(), user="alerts",
                         sender="cw@example.org", recipients=["geo@example.org"])
    [r] = deliver(ALERT, [mail])
    assert not r.ok and r.attempts == 0 and "CRACKWATCH_SMTP_PASSWORD" in r.error


def test_email_unreachable_server_is_retried_then_failed():
    sleeps: list[float] = []
    mail = EmailNotifier(host="127.0.0.1", port=free_port(), starttls=False, attempts=3,
                         base_delay_s=0.5, timeout_s=2, sleep=sleeps.append,
                         sender="cw@example.org", recipients=["geo@example.org"])
    [r] = deliver(ALERT, [mail])
    assert not r.ok and r.attempts == 3 and sleeps == [0.5, 1.0]


def test_email_config_validation():
    with pytest.raises(NotifierConfigError, match="recipient"):
        EmailNotifier(host="h", sender="s@x", recipients=[])
    with pytest.raises(NotifierConfigError, match="not both"):
        EmailNotifier(host="h", sender="s@x", recipients=["r@x"], use_ssl=True)


# ------------------------------------------------------------------------ deliver, log


def test_deliver_never_raises_and_keeps_every_result():
    class Broken:
        name = "broken"

        def send(self, alert):
            raise RuntimeError("boom")

    fixed = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    results = deliver(ALERT, [Broken(), LogNotifier()], now=lambda: fixed)
    assert [r.notifier for r in results] == ["broken", "log"]
    assert results[0] == DeliveryResult("broken", False, 1, "RuntimeError: boom", fixed,
                                        results[0].duration_s)
    assert results[1].ok and results[1].at == fixed
    json.dumps([r.to_dict() for r in results])
    # a malformed alert: every notifier fails with attempts 0, nothing raised
    bad = deliver({"level": "purple", "message": "x"}, [LogNotifier(), Broken()])
    assert [r.ok for r in bad] == [False, False] and all(r.attempts == 0 for r in bad)
    assert "purple" in bad[0].error


def test_log_notifier_levels(caplog):
    with caplog.at_level(logging.INFO, logger="crackwatch.alerts"):
        LogNotifier().send(ALERT)
        LogNotifier().send({**ALERT, "level": "green"})
    warn, info = caplog.records
    assert warn.levelno == logging.WARNING and "[RED]" in warn.getMessage()
    assert info.levelno == logging.INFO
    assert isinstance(LogNotifier(), Notifier)
    assert isinstance(WebhookNotifier(url="https://example.invalid/x"), Notifier)


def test_candidate_from_alerts_is_delivered():
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    series = [Observation(t0, 1.0, 20.0), Observation(t0 + timedelta(days=1), 1.0, 31.0)]
    [cand] = evaluate_site("slope", None, {"t9": series}, 0.0001, site="Quarry")
    msg = AlertMessage.from_any(cand)
    assert msg.level == "red" and msg.site == "Quarry" and msg.track == "t9"
    assert "escalated" in AlertMessage.from_any({**cand.to_dict(), "action": "escalate"}).subject
    with smtp_server() as (inbox, port):
        mail = EmailNotifier(host="127.0.0.1", port=port, starttls=False,
                             sender="cw@example.org", recipients=["geo@example.org"])
        [r] = deliver(cand, [mail])
    assert r.ok and "Quarry" in inbox.messages[0][2]["Subject"]


def test_a_caller_catching_oserror_or_valueerror_handles_a_direct_send(monkeypatch):
    """Outside deliver(), callers catch the builtin bases (or JobsError): a webhook nobody
    answers raises an OSError saying how many tries were made, a webhook without a URL a
    ValueError before anything is sent."""
    from jobs.errors import JobsError

    hook = WebhookNotifier(url=f"http://127.0.0.1:{free_port()}{SECRET_PATH}", attempts=2,
                           base_delay_s=0, timeout_s=2, sleep=lambda s: None)
    with pytest.raises(OSError, match="failed after 2 attempt") as failed:
        hook.send(ALERT)
    assert isinstance(failed.value, NotificationError) and isinstance(failed.value, JobsError)
    assert failed.value.attempts == hook.last_attempts == 2
    assert SECRET_PATH not in str(failed.value)  # the URL's secret is not in the message
    monkeypatch.delenv("CRACKWATCH_WEBHOOK_URL", raising=False)
    unset = WebhookNotifier()
    with pytest.raises(ValueError, match="CRACKWATCH_WEBHOOK_URL") as bad:
        unset.send(ALERT)
    assert isinstance(bad.value, NotifierConfigError) and isinstance(bad.value, JobsError)
    assert unset.last_attempts == 0
