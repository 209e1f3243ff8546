"""Escalation of unacknowledged alerts to second-level recipients, repeated until acknowledged.

Practice: a trigger-action response plan names who is called next when the first team does
not respond (team -> supervisor -> management), and monitoring platforms escalate an alarm
to second-level recipients after a set time without acknowledgement. Here, per site and
alert level (:mod:`geodata.alert_settings`; defaults red 30 min, orange 2 h, yellow never):

* an open alert (not a watch, not acknowledged, not resolved) that has been at its level for
  ``after_s`` gets an *escalation notice*: one outbox row per channel (``sequence`` n, action
  ``unacknowledged``), the ``email`` row addressed to the level's second-level recipients
  (the site's list, else ``CRACKWATCH_ESCALATION_EMAIL_TO``), plus an audit entry
  ``alert.escalation_notice`` and an entry in ``details["escalation_notices"]``, all in one
  transaction;
* the next notice is due ``after_s`` after the previous one (a check that was down for a
  while sends one notice, not a burst), so notices repeat at that interval until a person
  acknowledges or resolves the alert;
* the clock starts when the alert reached its current level: raised, confirmed (a watch
  promoted) or escalated to a higher level (a red alert escalated from orange is given the
  red delay from then).

The notices go through the same outbox as every notification (:mod:`jobs.outbox`): queued
in the transaction, delivered after the commit with retries and backoff, audited.
:func:`escalate_unacknowledged` runs in the scheduler's alert-check cycle (every
:data:`jobs.alert_checks.CHECK_INTERVAL_S`) and in ``crackwatch alerts check``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from geodata import audit
from geodata.alert_settings import EscalationPolicy, alerting_settings
from geodata.store.alert_state import OpenAlert, add_escalation_notice, unacknowledged_alerts
from geodata.store.engine import session_scope
from geodata.timestamps import duration_text
from jobs.outbox import enqueue

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_RECIPIENTS_ENV", "default_recipients", "escalate_unacknowledged"]

#: Environment variable with the default second-level e-mail addresses (comma-separated),
#: used for a level whose site names no recipients of its own.
DEFAULT_RECIPIENTS_ENV = "CRACKWATCH_ESCALATION_EMAIL_TO"
#: Channel that carries the second-level recipients.
EMAIL_CHANNEL = "email"


def default_recipients() -> list[str]:
    """The addresses in ``CRACKWATCH_ESCALATION_EMAIL_TO`` (comma-separated), or ``[]``."""
    raw = os.environ.get(DEFAULT_RECIPIENTS_ENV, "")
    return [r.strip() for r in raw.replace(";", ",").split(",") if r.strip()]


def escalate_unacknowledged(bind: Engine | Session, channels: Sequence[str], *,
                            now: datetime | None = None, actor: str = audit.SYSTEM,
                            site: int | str | None = None,
                            fallback_recipients: Sequence[str] | None = None
                            ) -> list[dict[str, Any]]:
    """Queue the escalation notices that are due (see the module docstring).

    Args:
        bind: the store's engine (one transaction), or a session (a SAVEPOINT of it).
        channels: notifier names every notice goes through (e.g. ``log``, ``webhook``); the
            ``email`` channel is added for a level that has second-level recipients.
        now: the current time (tests); default now (UTC).
        actor: recorded as who escalated (``system`` or ``scheduler``).
        site: only this site's alerts (id or name).
        fallback_recipients: addresses for a level whose site names none; default
            :func:`default_recipients`.

    Returns:
        One outbox record per notice queued (``alert_id``, ``level``, ``sequence``,
        ``recipients``, ``message``...).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    now = now or datetime.now(UTC)
    fallback = list(fallback_recipients) if fallback_recipients is not None else \
        default_recipients()
    queued: list[dict[str, Any]] = []
    with session_scope(bind, write=True) as s:
        settings: dict[int, Any] = {}
        for alert in unacknowledged_alerts(s, site):
            if alert.site_id not in settings:
                settings[alert.site_id] = alerting_settings(s, alert.site_id, now)
            policy = settings[alert.site_id].escalation.get(alert.level)
            if policy is None or policy.after_s is None or not _notice_due(alert, policy, now):
                continue
            queued.append(_send_notice(s, alert, policy, channels, now=now, actor=actor,
                                       recipients=list(policy.recipients) or fallback))
    return queued


def _notices_at_level(alert: OpenAlert) -> list[dict[str, Any]]:
    """The escalation notices already sent for the alert at its current level."""
    return [n for n in alert.details.get("escalation_notices", [])
            if n.get("level") == alert.level]


def _notice_due(alert: OpenAlert, policy: EscalationPolicy, now: datetime) -> bool:
    """Whether ``policy.after_s`` has passed since the alert reached its level (first notice)
    or since its previous notice at this level."""
    here = _notices_at_level(alert)
    last = alert.since if not here else datetime.fromisoformat(here[-1]["at"])
    return now.timestamp() >= last.timestamp() + policy.after_s


def _send_notice(s: Session, alert: OpenAlert, policy: EscalationPolicy,
                 channels: Sequence[str], *, now: datetime, actor: str,
                 recipients: list[str]) -> dict[str, Any]:
    """Queue one escalation notice of ``alert`` (outbox rows, the notice in its details, the
    audit entry) in ``s``'s transaction; its outbox record."""
    sequence = len(alert.details.get("escalation_notices", [])) + 1
    at_level = len(_notices_at_level(alert)) + 1
    waited = (now - alert.since).total_seconds()
    text = (f"NOT ACKNOWLEDGED {duration_text(waited)} after it reached {alert.level} at "
            f"{alert.since:%Y-%m-%d %H:%M} UTC (escalation notice {at_level}, every "
            f"{duration_text(policy.after_s)} until acknowledged"
            + (f"; to {', '.join(recipients)}" if recipients else "")
            + f"): {alert.message}")
    item = {"alert_id": alert.id, "site": alert.site_name, "level": alert.level,
            "rule": alert.rule, "track": alert.track_id,
            "measured_value": alert.measured_value, "threshold": alert.threshold,
            "unit": alert.details.get("unit", ""), "message": text,
            "forecast": alert.details.get("forecast"), "action": "unacknowledged"}
    chans = list(dict.fromkeys(channels))
    if recipients and EMAIL_CHANNEL not in chans:
        chans.append(EMAIL_CHANNEL)
    enqueue(s, [item], chans, sequence=sequence,
            recipients={EMAIL_CHANNEL: recipients} if recipients else None, actor=actor)
    add_escalation_notice(
        s, alert.id, {"level": alert.level, "sequence": sequence, "at": now.isoformat(),
                      "recipients": recipients, "unacknowledged_s": waited},
        actor=actor, at=now,
        audit_details={"level": alert.level, "rule": alert.rule, "sequence": sequence,
                       "notice_at_level": at_level, "recipients": recipients,
                       "channels": chans, "after_s": policy.after_s,
                       "unacknowledged_s": waited, "policy": policy.source})
    log.warning("alert %s (%s, %s) not acknowledged for %s: escalation notice %d",
                alert.id, alert.site_name, alert.level, duration_text(waited), sequence)
    return {**item, "sequence": sequence, "recipients": recipients}
