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

Modules: :mod:`.core` (the message, the protocol, :func:`deliver`, the log notifier),
:mod:`.webhook`, :mod:`.smtp` and :mod:`.retry` (what those two share); this package builds
the notifiers from the settings (:func:`notifiers_from_env`).
"""

from __future__ import annotations

import os

from geodata.levels import LEVEL_COLOURS
from jobs.notify.core import (
    AlertMessage,
    DeliveryResult,
    LogNotifier,
    NotificationError,
    Notifier,
    NotifierConfigError,
    deliver,
)
from jobs.notify.smtp import SMTP_SECURITY, EmailNotifier
from jobs.notify.webhook import WebhookNotifier

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


def notifiers_from_env() -> list[Notifier]:
    """The notifiers the settings ask for: the log always; the webhook when
    ``CRACKWATCH_WEBHOOK_URL`` is set; e-mail when ``CRACKWATCH_SMTP_HOST`` and
    ``CRACKWATCH_ALERT_EMAIL_TO`` are (``CRACKWATCH_SMTP_SECURITY``, ``_PORT``, ``_USER``,
    ``CRACKWATCH_ALERT_EMAIL_FROM``; see ``deploy/crackwatch.env.example``). Used by the CLI,
    the scheduler and the alert checks alike."""
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
