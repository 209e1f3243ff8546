"""Notifications: tell people about raised and escalated alerts.

A notifier is anything with a ``name`` and ``send(alert)`` (:class:`Notifier`). ``send``
raises on failure; :func:`deliver` calls every notifier, never raises, and returns one
:class:`DeliveryResult` per notifier (ok/failed, attempts, error text, time) for the database
layer to record, so that a failed notification is retried later and never lost.

Implementations:

* :class:`LogNotifier`: a log record (always works; the audit trail).
* :class:`WebhookNotifier`: JSON POST with ``urllib.request`` (no extra dependency), a
  Slack-compatible payload (``text`` plus ``attachments[].fields``, and the full alert under
  ``crackwatch``), retried with exponential backoff on HTTP 5xx/429 and connection errors.
* :class:`EmailNotifier`: SMTP with ``smtplib`` and ``email.message.EmailMessage``;
  transport security ``starttls`` (default), ``ssl`` (implicit TLS) or ``none``
  (:data:`SMTP_SECURITY`, setting ``CRACKWATCH_SMTP_SECURITY``), optional login.

Secrets. The SMTP password is read only from an environment variable (name configurable,
default ``CRACKWATCH_SMTP_PASSWORD``) at send time, never taken as an argument, stored, logged
or put in an error. The webhook URL (a Slack URL is itself a secret) may be given or read from
``CRACKWATCH_WEBHOOK_URL``; logs and errors show only its scheme and host.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

from geodata.store.models import LEVEL_COLOURS  # Slack attachment colour per level
from jobs.errors import JobsError

__all__ = [
    "notifiers_from_env",
    "LEVEL_COLOURS",
    "AlertMessage",
    "DeliveryResult",
    "EmailNotifier",
    "LogNotifier",
    "NotificationError",
    "Notifier",
    "NotifierConfigError",
    "SMTP_SECURITY",
    "WebhookNotifier",
    "deliver",
]

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_URL_ENV = "CRACKWATCH_WEBHOOK_URL"
DEFAULT_SMTP_PASSWORD_ENV = "CRACKWATCH_SMTP_PASSWORD"
#: SMTP transport security modes and the port each usually uses (RFC 8314: implicit TLS on
#: 465 is preferred for submission, STARTTLS on 587 is common; plain SMTP relays on 25).
SMTP_SECURITY = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}

_LEVELS = tuple(LEVEL_COLOURS)


class NotificationError(JobsError, OSError):
    """Sending a notification failed; ``attempts`` says how many tries were made."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class NotifierConfigError(JobsError, ValueError):
    """A notifier is misconfigured (missing URL or password variable, bad option)."""


# --------------------------------------------------------------------------------------------
# the message
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertMessage:
    """What a notification says about one alert (JSON-friendly, no secrets).

    Built from a mapping such as :meth:`jobs.alerts.AlertCandidate.to_dict` (plus, from the
    database layer, ``action`` = ``"raise"``/``"escalate"``/``"unacknowledged"`` and
    ``alert_id``) with :meth:`from_any`. ``measured_value`` and ``threshold`` are in ``unit``.
    ``recipients``: addresses that replace a notifier's own for this message (the
    second-level list of an escalation notice, :mod:`jobs.escalation`); empty: its own.
    """

    site: Any
    level: str
    rule: str
    message: str
    track: Any = None
    measured_value: float | None = None
    unit: str = ""
    threshold: float | None = None
    forecast: Mapping[str, Any] | None = None
    resolution_warnings: tuple[str, ...] = ()
    observed_at: str | None = None
    action: str | None = None
    alert_id: Any = None
    recipients: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        level = str(self.level).strip().lower()
        if level not in _LEVELS:
            raise ValueError(
                f"alert level {self.level!r} is not one of {', '.join(_LEVELS)}: build the "
                "message from an AlertCandidate or give a valid level"
            )
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "resolution_warnings", tuple(self.resolution_warnings or ()))
        recipients = self.recipients or ()
        if isinstance(recipients, str):
            recipients = (recipients,)
        object.__setattr__(self, "recipients",
                           tuple(str(r).strip() for r in recipients if str(r).strip()))

    @classmethod
    def from_any(cls, alert: AlertMessage | Mapping[str, Any] | Any) -> AlertMessage:
        """From an :class:`AlertMessage`, a mapping, or any object with ``to_dict()``.

        Unknown mapping keys are ignored; ``level`` and ``message`` are required.

        Raises:
            ValueError: not one of those, a missing key or an invalid level.
        """
        if isinstance(alert, AlertMessage):
            return alert
        if not isinstance(alert, Mapping) and callable(getattr(alert, "to_dict", None)):
            alert = alert.to_dict()
        if not isinstance(alert, Mapping):
            raise ValueError(
                f"an alert must be an AlertMessage, a mapping or have to_dict(), got "
                f"{type(alert).__name__}"
            )
        missing = [k for k in ("level", "message") if k not in alert]
        if missing:
            raise ValueError(f"alert mapping lacks {', '.join(missing)}: got keys {sorted(alert)}")
        known = cls.__dataclass_fields__
        data = {k: v for k, v in alert.items() if k in known}
        data.setdefault("site", None)
        data.setdefault("rule", "")
        if data.get("observed_at") is not None and not isinstance(data["observed_at"], str):
            data["observed_at"] = data["observed_at"].isoformat()
        return cls(**data)

    @property
    def subject(self) -> str:
        """One-line subject, e.g. ``CrackWatch RED alert at site 'hill': slope.opening_rate``."""
        verb = {"escalate": " (escalated)",
                "unacknowledged": " NOT ACKNOWLEDGED (escalation)"}.get(self.action or "", "")
        where = f" at site {self.site!r}" if self.site is not None else ""
        track = f", crack {self.track!r}" if self.track is not None else ""
        return f"CrackWatch {self.level.upper()} alert{verb}{where}{track}: {self.rule}"

    def summary(self) -> str:
        """The ``text`` of a webhook and the first paragraph of an e-mail."""
        parts = [f"[{self.level.upper()}] {self.subject.split(': ', 1)[0]}"]
        if self.measured_value is not None:
            unit = f" {self.unit}" if self.unit else ""
            value = f"{self.rule}: {self.measured_value:.4g}{unit}"
            if self.threshold is not None:
                value += f" (threshold {self.threshold:.4g}{unit})"
            parts.append(value)
        parts.append(self.message)
        if self.forecast and self.forecast.get("message"):
            parts.append(f"Forecast: {self.forecast['message']}")
        if self.resolution_warnings:
            parts.append(
                f"Warning: {len(self.resolution_warnings)} threshold(s) finer than the imagery "
                "resolves (see details)"
            )
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site, "track": self.track, "level": self.level, "rule": self.rule,
            "measured_value": self.measured_value, "unit": self.unit,
            "threshold": self.threshold, "message": self.message,
            "forecast": dict(self.forecast) if self.forecast else None,
            "resolution_warnings": list(self.resolution_warnings),
            "observed_at": self.observed_at, "action": self.action, "alert_id": self.alert_id,
            "recipients": list(self.recipients),
        }


# --------------------------------------------------------------------------------------------
# protocol and results
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Notifier(Protocol):
    """Sends one alert. ``send`` returns on success and raises (any exception) on failure.

    An implementation may set ``last_attempts`` (int) after ``send`` to report retries, and
    raise :class:`NotificationError` with ``attempts``; :func:`deliver` records both.
    """

    name: str

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of sending one alert through one notifier.

    Attributes:
        notifier: the notifier's ``name``.
        ok: True when it was sent.
        attempts: tries made (0 when it failed before trying, e.g. misconfigured).
        error: ``"ExceptionType: message"`` when it failed (secrets redacted), else ``None``.
        at: UTC time the delivery finished.
        duration_s: seconds it took, retries and backoff included.
    """

    notifier: str
    ok: bool
    attempts: int
    error: str | None
    at: datetime
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"notifier": self.notifier, "ok": self.ok, "attempts": self.attempts,
                "error": self.error, "at": self.at.isoformat(), "duration_s": self.duration_s}


def deliver(alert: AlertMessage | Mapping[str, Any] | Any, notifiers: Iterable[Notifier], *,
            now: Callable[[], datetime] | None = None) -> list[DeliveryResult]:
    """Send ``alert`` through every notifier; never raises (except ``KeyboardInterrupt`` and
    ``SystemExit``), one result per notifier in order.

    A failure is returned as ``ok=False`` with its error text for the database layer to record
    and retry later; it does not stop the other notifiers. A malformed alert fails every
    notifier with ``attempts=0``.

    Args:
        alert: an :class:`AlertMessage`, mapping or ``AlertCandidate``.
        notifiers: objects following :class:`Notifier`.
        now: clock returning an aware UTC datetime (tests); default ``datetime.now(UTC)``.
    """
    clock = now or (lambda: datetime.now(UTC))
    notifiers = list(notifiers)
    try:
        msg: AlertMessage | None = AlertMessage.from_any(alert)
        bad = None
    except Exception as e:  # a bad alert is a recorded failure, not a crash
        msg, bad = None, f"{type(e).__name__}: {e}"
    results = []
    for notifier in notifiers:
        name = str(getattr(notifier, "name", type(notifier).__name__))
        start = time.monotonic()
        if msg is None:
            results.append(DeliveryResult(name, False, 0, bad, clock(), 0.0))
            continue
        try:
            notifier.send(msg)
        except Exception as e:  # never lose the result of one notifier
            attempts = getattr(e, "attempts", None)
            if attempts is None:
                attempts = 0 if isinstance(e, NotifierConfigError) else 1
            error = f"{type(e).__name__}: {e}"
            log.warning("notification via %s failed after %d attempt(s): %s", name, attempts,
                        error)
            results.append(DeliveryResult(name, False, int(attempts), error, clock(),
                                          time.monotonic() - start))
        else:
            attempts = int(getattr(notifier, "last_attempts", None) or 1)
            results.append(DeliveryResult(name, True, attempts, None, clock(),
                                          time.monotonic() - start))
    return results


def _backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return min(max_s, base_s * 2 ** (attempt - 1))


def _check_retry(attempts: Any, base_delay_s: Any, max_delay_s: Any) -> None:
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
        raise NotifierConfigError(f"attempts must be an integer in 1..20, got {attempts!r}")
    for name, v in (("base_delay_s", base_delay_s), ("max_delay_s", max_delay_s)):
        if not isinstance(v, int | float) or not 0 <= v <= 3600:
            raise NotifierConfigError(f"{name} must be seconds in [0, 3600], got {v!r}")


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


# --------------------------------------------------------------------------------------------
# log
# --------------------------------------------------------------------------------------------


@dataclass
class LogNotifier:
    """Writes the alert to a logger: ``WARNING`` for yellow and above, ``INFO`` for green.

    Attributes:
        logger: logger to use (default ``logging.getLogger("crackwatch.alerts")``).
    """

    logger: logging.Logger = field(
        default_factory=lambda: logging.getLogger("crackwatch.alerts")
    )
    name: str = "log"

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None:
        """Log the alert's summary. Raises: ValueError for a malformed alert."""
        msg = AlertMessage.from_any(alert)
        level = logging.INFO if msg.level == "green" else logging.WARNING
        self.logger.log(level, "%s", msg.summary().replace("\n", " | "),
                        extra={"crackwatch_alert": msg.to_dict()})
        self.last_attempts = 1


# --------------------------------------------------------------------------------------------
# webhook
# --------------------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """``scheme://host[:port]/...``: enough to say where, never the token in the path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..."


@dataclass
class WebhookNotifier:
    """POST the alert as JSON to a webhook (Slack incoming webhooks and similar).

    Payload: ``{"text": summary, "attachments": [{"color", "title", "fields": [...]}],
    "crackwatch": {full alert}}``; Slack shows ``text`` and the attachment fields, other
    receivers read ``crackwatch``.

    Retries: up to ``attempts`` tries; after a failed try ``n`` it waits
    ``min(max_delay_s, base_delay_s * 2**(n-1))`` (or the server's ``Retry-After`` seconds if
    longer, still capped) through ``sleep`` (injectable for tests). Retried: HTTP 5xx, 429,
    connection errors and timeouts. Not retried: other HTTP errors (4xx: fix the URL/payload).

    Attributes:
        url: webhook URL (http or https); ``None`` to read the environment variable
            ``url_env`` (default ``CRACKWATCH_WEBHOOK_URL``) at send time. Never logged.
        timeout_s: per-request socket timeout, seconds.

    Raises (from the constructor):
        NotifierConfigError: a URL that is not http(s), bad retry settings.
    """

    url: str | None = field(default=None, repr=False)
    url_env: str = DEFAULT_WEBHOOK_URL_ENV
    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    name: str = "webhook"
    last_attempts: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_retry(self.attempts, self.base_delay_s, self.max_delay_s)
        if self.url is not None:
            self._validate(self.url)

    @staticmethod
    def _validate(url: str) -> str:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotifierConfigError(
                f"webhook URL must be http(s)://host/..., got scheme {parts.scheme!r}: check "
                "the configured URL"
            )
        return url.strip()

    def resolved_url(self) -> str:
        """The URL to POST to. Raises: NotifierConfigError when none is configured."""
        if self.url is not None:
            return self._validate(self.url)
        env = os.environ.get(self.url_env, "").strip()
        if not env:
            raise NotifierConfigError(
                f"no webhook URL: pass url= or set the environment variable {self.url_env}"
            )
        return self._validate(env)

    def payload(self, alert: AlertMessage | Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body sent for ``alert`` (Slack-compatible)."""
        msg = AlertMessage.from_any(alert)
        fields = [
            {"title": "Level", "value": msg.level, "short": True},
            {"title": "Site", "value": str(msg.site), "short": True},
            {"title": "Rule", "value": msg.rule, "short": True},
        ]
        if msg.track is not None:
            fields.append({"title": "Crack track", "value": str(msg.track), "short": True})
        if msg.measured_value is not None:
            fields.append({"title": "Measured", "value": f"{msg.measured_value:.4g} {msg.unit}",
                           "short": True})
        if msg.threshold is not None:
            fields.append({"title": "Threshold", "value": f"{msg.threshold:.4g} {msg.unit}",
                           "short": True})
        if msg.forecast and msg.forecast.get("message"):
            fields.append({"title": "Forecast", "value": msg.forecast["message"],
                           "short": False})
        for w in msg.resolution_warnings:
            fields.append({"title": "Resolution warning", "value": w, "short": False})
        return {
            "text": msg.summary(),
            "attachments": [{"color": LEVEL_COLOURS[msg.level], "title": msg.subject,
                             "text": msg.message, "fields": fields}],
            "crackwatch": msg.to_dict(),
        }

    def send(self, alert: AlertMessage | Mapping[str, Any]) -> None:
        """POST ``alert``, retrying as described in the class docstring.

        Sets ``last_attempts``.

        Raises:
            NotifierConfigError: no or invalid URL (nothing was sent).
            NotificationError: every allowed try failed, or a non-retryable HTTP status;
                ``attempts`` says how many tries were made.
            ValueError: a malformed alert.
        """
        self.last_attempts = 0
        body = json.dumps(self.payload(alert), default=str).encode("utf-8")
        url = self.resolved_url()
        where = _safe_url(url)
        opener = urllib.request.build_opener()
        for attempt in range(1, self.attempts + 1):
            self.last_attempts = attempt
            request = urllib.request.Request(
                url, data=body, method="POST",
                headers={"Content-Type": "application/json; charset=utf-8",
                         "User-Agent": "crackwatch-notify"},
            )
            retry_after = None
            try:
                with opener.open(request, timeout=self.timeout_s) as response:
                    response.read(65536)
                log.info("webhook %s accepted the alert (attempt %d)", where, attempt)
                return
            except urllib.error.HTTPError as e:
                status = e.code
                error = f"HTTP {status} {e.reason}"
                retryable = status >= 500 or status == 429
                retry_after = _retry_after_s(e.headers.get("Retry-After") if e.headers else None)
                e.close()
            except (urllib.error.URLError, OSError) as e:  # refused, reset, DNS, timeout
                reason = getattr(e, "reason", e)
                error = f"connection error: {type(reason).__name__}: {reason}"
                retryable = True
            error = _redact(error, [url])
            if not retryable or attempt == self.attempts:
                raise NotificationError(
                    f"webhook POST to {where} failed after {attempt} attempt(s): {error}"
                    + ("" if retryable else " (not retried: check the URL and the receiver)"),
                    attempts=attempt,
                )
            delay = _backoff(attempt, self.base_delay_s, self.max_delay_s)
            if retry_after is not None:
                delay = min(self.max_delay_s, max(delay, retry_after))
            log.warning("webhook %s attempt %d/%d failed (%s); retrying in %.3g s", where,
                        attempt, self.attempts, error, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after_s(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: use our own backoff
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


# --------------------------------------------------------------------------------------------
# e-mail
# --------------------------------------------------------------------------------------------


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
        _check_retry(self.attempts, self.base_delay_s, self.max_delay_s)

    def build_message(self, alert: AlertMessage | Mapping[str, Any]) -> EmailMessage:
        """The e-mail for ``alert``: subject with level and site, body with the details."""
        msg = AlertMessage.from_any(alert)
        email = EmailMessage()
        email["Subject"] = f"{self.subject_prefix} {msg.subject}".strip()
        email["From"] = self.sender
        email["To"] = ", ".join(self._to(msg))
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
            error = _redact(error, [password])
            if not retryable or attempt == self.attempts:
                raise NotificationError(
                    f"e-mail via {where} failed after {attempt} attempt(s): {error}",
                    attempts=attempt,
                )
            delay = _backoff(attempt, self.base_delay_s, self.max_delay_s)
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


def notifiers_from_env() -> list[Notifier]:
    """The notifiers the settings ask for: the log always; the webhook when
    ``CRACKWATCH_WEBHOOK_URL`` is set; e-mail when ``CRACKWATCH_SMTP_HOST`` and
    ``CRACKWATCH_ALERT_EMAIL_TO`` are (``CRACKWATCH_SMTP_SECURITY``, ``_PORT``, ``_USER``,
    ``CRACKWATCH_ALERT_EMAIL_FROM``; see ``deploy/crackwatch.env.example``). Used by the CLI,
    the scheduler and the alert checks alike."""
    import os

    from jobs.settings import Settings

    out = [LogNotifier()]
    if os.environ.get("CRACKWATCH_WEBHOOK_URL"):
        out.append(WebhookNotifier())
    if os.environ.get("CRACKWATCH_SMTP_HOST") and os.environ.get("CRACKWATCH_ALERT_EMAIL_TO"):
        security = Settings().smtp_security.strip().lower()  # checked by EmailNotifier
        port = os.environ.get("CRACKWATCH_SMTP_PORT") or SMTP_SECURITY.get(security, 587)
        out.append(EmailNotifier(host=os.environ["CRACKWATCH_SMTP_HOST"], port=int(port),
                                 security=security,
                                 user=os.environ.get("CRACKWATCH_SMTP_USER"),
                                 sender=os.environ.get("CRACKWATCH_ALERT_EMAIL_FROM",
                                                       "crackwatch@localhost"),
                                 recipients=os.environ["CRACKWATCH_ALERT_EMAIL_TO"].split(",")))
    return out
