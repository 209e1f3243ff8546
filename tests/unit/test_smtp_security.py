"""SMTP transport security ``starttls | ssl | none`` against real local aiosmtpd servers.

Each server runs on 127.0.0.1 with a certificate made for the test (its own CA, SAN
127.0.0.1); the client trusts it through ``SSL_CERT_FILE``, as a company CA would be
configured, and refuses it without. No traffic leaves the machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobs.notify import SMTP_SECURITY, EmailNotifier, NotifierConfigError, deliver
from tests.conftest import free_port
from tests.unit.test_notify import ALERT, Inbox

PASSWORD = "tls-only-pa55"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """``(certificate, key)`` PEM files: a self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crackwatch test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def trust(tls_files, monkeypatch) -> None:
    """Trust the test certificate (OpenSSL reads SSL_CERT_FILE for the default CAs)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))


def _server_context(tls_files) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


@contextmanager
def smtp_server(mode: str, tls_files, *, login: bool = False) -> Iterator[tuple[Inbox, int]]:
    """An aiosmtpd server on 127.0.0.1: ``starttls`` (offers and requires STARTTLS),
    ``ssl`` (TLS from the first byte) or ``none`` (plain, no STARTTLS offered). With
    ``login``, AUTH is required and accepts user ``alerts`` with :data:`PASSWORD`."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    inbox = Inbox()
    kwargs: dict = {}
    if mode == "starttls":
        kwargs.update(tls_context=_server_context(tls_files), require_starttls=True)
    elif mode == "ssl":
        kwargs.update(ssl_context=_server_context(tls_files))
    if login:
        def check(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode()
            return AuthResult(success=ok, handled=False)

        # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; on an implicit-TLS
        # server the whole session is TLS already
        kwargs.update(authenticator=check, auth_required=True,
                      auth_require_tls=mode == "starttls")
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, server_hostname="127.0.0.1",
                            **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _mail(port: int, security: str | None, **kwargs) -> EmailNotifier:
    return EmailNotifier(host="127.0.0.1", port=port, security=security,
                         sender="cw@example.org", recipients=["geo@example.org"], timeout_s=10,
                         **kwargs)


@pytest.mark.parametrize("mode", ["starttls", "ssl", "none"])
def test_each_security_mode_delivers_to_a_server_of_that_kind(mode, tls_files, trust):
    with smtp_server(mode, tls_files) as (inbox, port):
        [r] = deliver(ALERT, [_mail(port, mode)])
    assert r.ok, r.error
    [(_, rcpt, msg)] = inbox.messages
    assert rcpt == ["geo@example.org"] and "Hillside A" in msg["Subject"]


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_login_over_tls_sends_the_password_only_inside_tls(mode, tls_files, trust,
                                                           monkeypatch):
    monkeypatch.setenv("CRACKWATCH_SMTP_PASSWORD", PASSWORD)
    with smtp_server(mode, tls_files, login=True) as (inbox, port):
        [r] = deliver(ALERT, [_mail(port, mode, user="alerts")])
    assert r.ok, r.error
    assert len(inbox.messages) == 1


def test_starttls_refuses_a_server_without_it_and_sends_nothing_in_clear(tls_files, trust):
    with smtp_server("none", tls_files) as (inbox, port):
        [r] = deliver(ALERT, [_mail(port, "starttls")])
    assert not r.ok and r.attempts == 1  # not retried: it will not change by itself
    assert "STARTTLS" in r.error and "'starttls'" in r.error
    assert inbox.messages == []


def test_tls_with_an_untrusted_certificate_is_refused(tls_files, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0].with_name("missing.pem")))
    for mode in ("starttls", "ssl"):
        with smtp_server(mode, tls_files) as (inbox, port):
            [r] = deliver(ALERT, [_mail(port, mode)])
        assert not r.ok and "CERTIFICATE_VERIFY_FAILED" in r.error, r.error
        assert inbox.messages == []


def test_ssl_against_a_plain_server_fails_cleanly(tls_files, trust):
    with smtp_server("none", tls_files) as (inbox, port):
        [r] = deliver(ALERT, [_mail(port, "ssl")])
    assert not r.ok and inbox.messages == []


def test_security_setting_is_checked():
    assert SMTP_SECURITY == {"starttls": 587, "ssl": 465, "none": 25}
    with pytest.raises(NotifierConfigError, match="starttls, ssl, none.*'tls'"):
        _mail(25, "tls")
    with pytest.raises(NotifierConfigError, match="password in clear"):
        EmailNotifier(host="smtp.example.org", security="none", user="alerts",
                      sender="cw@example.org", recipients=["geo@example.org"])
    # the older flags still work and say which mode they mean
    assert _mail(25, None, starttls=False).security == "none"
    assert _mail(25, None, starttls=False, use_ssl=True).security == "ssl"
    assert _mail(25, None).security == "starttls"
    m = _mail(25, "ssl")
    assert (m.starttls, m.use_ssl) == (False, True)


def test_notifiers_read_the_security_setting_and_its_default_port(monkeypatch):
    from jobs.notify import notifiers_from_env as _notifiers

    monkeypatch.setenv("CRACKWATCH_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("CRACKWATCH_ALERT_EMAIL_TO", "geo@example.org")
    monkeypatch.delenv("CRACKWATCH_SMTP_PORT", raising=False)
    monkeypatch.delenv("CRACKWATCH_SMTP_USER", raising=False)
    monkeypatch.delenv("CRACKWATCH_SMTP_SECURITY", raising=False)
    email = _notifiers()[-1]
    assert (email.security, email.port) == ("starttls", 587)  # the default
    monkeypatch.setenv("CRACKWATCH_SMTP_SECURITY", "ssl")
    assert (_notifiers()[-1].security, _notifiers()[-1].port) == ("ssl", 465)
    monkeypatch.setenv("CRACKWATCH_SMTP_SECURITY", "none")
    monkeypatch.setenv("CRACKWATCH_SMTP_PORT", "2525")
    assert (_notifiers()[-1].security, _notifiers()[-1].port) == ("none", 2525)
    monkeypatch.setenv("CRACKWATCH_SMTP_SECURITY", "tls")
    with pytest.raises(NotifierConfigError, match="CRACKWATCH_SMTP_SECURITY"):
        _notifiers()
