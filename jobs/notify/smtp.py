"""The e-mail notifier: SMTP with ``smtplib`` and ``email.message.EmailMessage``.

Transport security ``starttls`` (default), ``ssl`` (implicit TLS) or ``none``
(:data:`SMTP_SECURITY`, setting ``CRACKWATCH_SMTP_SECURITY``), optional login. The SMTP
password is read only from an environment variable (name configurable, default
``CRACKWATCH_SMTP_PASSWORD``) at send time, never taken as an argument, stored, logged or put
in an error.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from jobs.notify.core import AlertMessage, NotificationError, NotifierConfigError
from jobs.notify.retry import backoff_delay, check_retry, redact

__all__ = ["DEFAULT_SMTP_PASSWORD_ENV", "SMTP_SECURITY", "EmailNotifier"]

log = logging.getLogger(__name__)

DEFAULT_SMTP_PASSWORD_ENV = "CRACKWATCH_SMTP_PASSWORD"
#: SMTP transport security modes and the port each usually uses (RFC 8314: implicit TLS on
#: 465 is preferred for submission, STARTTLS on 587 is common; plain SMTP relays on 25).
SMTP_SECURITY = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}



@dataclass
class EmailNotifier:
    """Send the alert as a plain-text e-mail over SMTP.

    Connection, by ``security`` (one of :data:`SMTP_SECURITY`; or the older flags
    ``starttls`` / ``use_ssl``, which it sets):

    * ``"starttls"`` (default, port 587): ``smtplib.SMTP(host, port)``, then STARTTLS; a
      server that does not offer it is an error (nothing is sent in clear);
    * ``"ssl"`` (port 465): ``smtplib.SMTP_SSL``, TLS from the first byte;
    * ``"none"`` (port 25): plain SMTP, for a relay on this machine or a trusted network.
      A login (``user``) is refused unless ``host`` is this machine (the password would
      cross the network in clear).

    TLS certificates are verified with ``ssl.create_default_context()`` (the system's CAs;
    ``SSL_CERT_FILE`` names another bundle, e.g. a company CA).
    Login: when ``user`` is set, with the password from the environment variable
    ``password_env`` (default ``CRACKWATCH_SMTP_PASSWORD``), read at send time; the password
    is never an argument, attribute, log line or error text.

    Retries: up to ``attempts`` tries (default 1: the database layer retries later) on
    connection errors, disconnects, timeouts and 4xx (transient) SMTP replies, waiting
    ``min(max_delay_s, base_delay_s * 2**(n-1))`` through ``sleep``.

    Raises (from the constructor):
        NotifierConfigError: no recipients, an unknown security mode or both TLS flags, a
            login over plain SMTP to another machine, bad port or retry settings.
    """

    host: str
    sender: str
    recipients: Sequence[str]
    port: int = 587
    user: str | None = None
    password_env: str = DEFAULT_SMTP_PASSWORD_ENV
    starttls: bool = True
    use_ssl: bool = False
    security: str | None = None
    timeout_s: float = 30.0
    attempts: int = 1
    base_delay_s: float = 5.0
    max_delay_s: float = 60.0
    subject_prefix: str = "[CrackWatch]"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    name: str = "email"
    last_attempts: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.recipients, str):
            self.recipients = [self.recipients]
        self.recipients = [r.strip() for r in self.recipients if r and r.strip()]
        if not self.recipients:
            raise NotifierConfigError("EmailNotifier needs at least one recipient address")
        if not self.host or not self.sender:
            raise NotifierConfigError("EmailNotifier needs host= and sender=")
        if self.security is None:
            if self.starttls and self.use_ssl:
                raise NotifierConfigError(
                    "choose starttls (port 587) or use_ssl (port 465), not both"
                )
            self.security = "ssl" if self.use_ssl else "starttls" if self.starttls else "none"
        elif self.security not in SMTP_SECURITY:
            raise NotifierConfigError(
                f"SMTP security must be one of {', '.join(SMTP_SECURITY)} "
                f"(CRACKWATCH_SMTP_SECURITY), got {self.security!r}"
            )
        self.starttls, self.use_ssl = self.security == "starttls", self.security == "ssl"
        if self.security == "none" and self.user and self.host.lower() not in _LOOPBACK:
            raise NotifierConfigError(
                f"SMTP security 'none' with a login to {self.host} would send the password "
                "in clear: use starttls or ssl, or a relay on this machine"
            )
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise NotifierConfigError(f"port must be 1..65535, got {self.port!r}")
        check_retry(self.attempts, self.base_delay_s, self.max_delay_s)

    def build_message(self, alert: AlertMessage | Mapping[str, Any]) -> EmailMessage:
        """The e-mail for ``alert``: subject with level and site, body with the details."""
        msg = AlertMessage.from_any(alert)
        email = EmailMessage()
        email["Subject"] = f"{self.subject_prefix} {msg.subject}".strip()
        email["From"] = self.sender
        email["To"] = ", ".join(self._to(msg))
        if msg.idempotency_key:  # one Message-ID for every try: receivers drop a repeat
            email["Message-ID"] = f"<{msg.idempotency_key}@crackwatch.invalid>"
        lines = [msg.summary(), "", "Details:"]
        for key, value in msg.to_dict().items():
            if value not in (None, "", [], {}):
                lines.append(f"  {key}: {value}")
        email.set_content("\n".join(lines) + "\n")
        return email

    def _to(self, msg: AlertMessage) -> list[str]:
        """The message's own recipients (an escalation notice's second-level list), else
        this notifier's."""
        return list(msg.recipients) or list(self.recipients)

    def _password(self) -> str | None:
        if not self.user:
            return None
        password = os.environ.get(self.password_env)
        if not password:
            raise NotifierConfigError(
                f"SMTP user {self.user!r} is set but the environment variable "
                f"{self.password_env} is empty: export the password there (it is read from "
                "the environment only)"
            )
        return password

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None:
        """Send the e-mail, retrying as described in the class docstring.

        Sets ``last_attempts``.

        Raises:
            NotifierConfigError: the password variable is empty (nothing was sent).
            NotificationError: every allowed try failed, or a permanent SMTP error (5xx,
                refused recipients, authentication); ``attempts`` says how many tries.
            ValueError: a malformed alert.
        """
        self.last_attempts = 0
        email = self.build_message(alert)
        to = self._to(AlertMessage.from_any(alert))
        password = self._password()
        where = f"{self.host}:{self.port}"
        for attempt in range(1, self.attempts + 1):
            self.last_attempts = attempt
            try:
                self._send_once(email, password, to)
                log.info("e-mail alert sent via %s to %d recipient(s)", where, len(to))
                return
            except smtplib.SMTPResponseException as e:
                retryable = 400 <= e.smtp_code < 500
                error = f"SMTP {e.smtp_code}: {_smtp_text(e.smtp_error)}"
            except smtplib.SMTPRecipientsRefused as e:
                retryable = False
                error = f"recipients refused: {sorted(e.recipients)}"
            except smtplib.SMTPNotSupportedError as e:
                retryable = False
                error = (f"{e} (the server may not offer STARTTLS/AUTH: check the SMTP "
                         f"security setting, now {self.security!r}, and user)")
            except (smtplib.SMTPException, OSError) as e:  # incl. timeouts, refused
                retryable = True
                error = f"{type(e).__name__}: {e}"
            error = redact(error, [password])
            if not retryable or attempt == self.attempts:
                raise NotificationError(
                    f"e-mail via {where} failed after {attempt} attempt(s): {error}",
                    attempts=attempt,
                )
            delay = backoff_delay(attempt, self.base_delay_s, self.max_delay_s)
            log.warning("e-mail via %s attempt %d/%d failed (%s); retrying in %.3g s", where,
                        attempt, self.attempts, error, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(self, email: EmailMessage, password: str | None,
                   to: Sequence[str]) -> None:
        context = ssl.create_default_context()
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                                  context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.user:
                assert password is not None
                smtp.login(self.user, password)
            smtp.send_message(email, from_addr=self.sender, to_addrs=list(to))


def _smtp_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
