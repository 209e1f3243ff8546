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
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata import audit
from geodata.alert_settings import alerting_settings
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.outbox import enqueue

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_RECIPIENTS_ENV", "default_recipients", "escalate_unacknowledged",
           "level_since"]

#: Environment variable with the default second-level e-mail addresses (comma-separated),
#: used for a level whose site names no recipients of its own.
DEFAULT_RECIPIENTS_ENV = "CRACKWATCH_ESCALATION_EMAIL_TO"
#: Channel that carries the second-level recipients.
EMAIL_CHANNEL = "email"


def default_recipients() -> list[str]:
    """The addresses in ``CRACKWATCH_ESCALATION_EMAIL_TO`` (comma-separated), or ``[]``."""
    raw = os.environ.get(DEFAULT_RECIPIENTS_ENV, "")
    return [r.strip() for r in raw.replace(";", ",").split(",") if r.strip()]


def _aware(text: str) -> datetime:
    return datetime.fromisoformat(text)


def level_since(alert: m.Alert) -> datetime:
    """When ``alert`` reached its current level (UTC): raised, confirmed from watch, or its
    latest escalation to this level."""
    t = alert.raised_at
    details = alert.details or {}
    if details.get("confirmed_at"):
        t = max(t, _aware(details["confirmed_at"]))
    for e in details.get("escalations", []):
        if e.get("to") == alert.level and e.get("at"):
            t = max(t, _aware(e["at"]))
    return t


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60.0))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60.0
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


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
    now = now or m.utcnow()
    fallback = list(fallback_recipients) if fallback_recipients is not None else \
        default_recipients()
    queued: list[dict[str, Any]] = []
    with session_scope(bind, write=True) as s:
        q = (select(m.Alert, m.Site.name).join(m.Site, m.Site.id == m.Alert.site_id)
             .where(m.Alert.resolved_at.is_(None), m.Alert.acknowledged_at.is_(None),
                    m.Alert.watch.is_(False))
             .order_by(m.Alert.id).with_for_update(of=m.Alert))
        if site is not None:
            from geodata.store.api import _site

            q = q.where(m.Alert.site_id == _site(s, site).id)
        settings: dict[int, Any] = {}
        for alert, site_name in s.execute(q).all():
            if alert.site_id not in settings:
                settings[alert.site_id] = alerting_settings(s, alert.site_id, now)
            policy = settings[alert.site_id].escalation.get(alert.level)
            if policy is None or policy.after_s is None:
                continue
            details = dict(alert.details or {})
            notices = list(details.get("escalation_notices", []))
            since = level_since(alert)
            here = [n for n in notices if n.get("level") == alert.level]
            due = since.timestamp() + policy.after_s if not here else \
                _aware(here[-1]["at"]).timestamp() + policy.after_s
            if now.timestamp() < due:
                continue
            sequence = len(notices) + 1
            recipients = list(policy.recipients) or fallback
            waited = (now - since).total_seconds()
            text = (f"NOT ACKNOWLEDGED {_duration(waited)} after it reached {alert.level} at "
                    f"{since:%Y-%m-%d %H:%M} UTC (escalation notice {len(here) + 1}, every "
                    f"{_duration(policy.after_s)} until acknowledged"
                    + (f"; to {', '.join(recipients)}" if recipients else "")
                    + f"): {alert.message}")
            item = {"alert_id": alert.id, "site": site_name, "level": alert.level,
                    "rule": alert.rule, "track": alert.track_id,
                    "measured_value": alert.measured_value, "threshold": alert.threshold,
                    "unit": details.get("unit", ""), "message": text,
                    "forecast": details.get("forecast"), "action": "unacknowledged"}
            chans = list(dict.fromkeys(channels))
            if recipients and EMAIL_CHANNEL not in chans:
                chans.append(EMAIL_CHANNEL)
            enqueue(s, [item], chans, sequence=sequence,
                    recipients={EMAIL_CHANNEL: recipients} if recipients else None,
                    actor=actor)
            notices.append({"level": alert.level, "sequence": sequence,
                            "at": now.isoformat(), "recipients": recipients,
                            "unacknowledged_s": waited})
            details["escalation_notices"] = notices
            alert.details = details
            audit.record(s, "alert.escalation_notice", actor=actor, site_id=alert.site_id,
                         alert_id=alert.id, at=now,
                         details={"level": alert.level, "rule": alert.rule,
                                  "sequence": sequence, "notice_at_level": len(here) + 1,
                                  "recipients": recipients, "channels": chans,
                                  "after_s": policy.after_s, "unacknowledged_s": waited,
                                  "policy": policy.source})
            log.warning("alert %s (%s, %s) not acknowledged for %s: escalation notice %d",
                        alert.id, site_name, alert.level, _duration(waited), sequence)
            queued.append({**item, "sequence": sequence, "recipients": recipients})
    return queued
